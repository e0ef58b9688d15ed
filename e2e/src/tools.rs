//! Running command-line tools (kubectl, helm, ...) the way a user would.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncWriteExt;

use crate::Result;

/// A command to run; built with [`crate::Cluster::kubectl`] / [`crate::Cluster::helm`]
/// or [`Tool::new`]. Cheap to clone, so a prepared base command can be reused.
#[derive(Clone, Debug)]
pub struct Tool {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct ToolOutput {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl fmt::Display for ToolOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl Tool {
    pub fn new(program: impl Into<PathBuf>) -> Tool {
        Tool {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tool {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Tool {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Data written to the command's stdin (e.g. a manifest for `-f -`).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Tool {
        self.stdin = Some(data.into());
        self
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command; only fails if it cannot be started. Check `status` yourself.
    pub async fn output(&self) -> Result<ToolOutput> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run `{}`: {e} (is the e2e cluster up?)",
                self.command_line()
            )
        })?;
        if let (Some(data), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            pipe.write_all(&data).await?;
            drop(pipe);
        }
        let out = child.wait_with_output().await?;
        Ok(self.finish(out))
    }

    /// Runs the command and returns its stdout; an error (with stdout and
    /// stderr in the message) if it exits non-zero.
    pub async fn run(&self) -> Result<String> {
        let out = self.output().await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(out.to_string().into())
        }
    }

    /// Runs a command that is expected to FAIL; returns its output (stderr has
    /// the reason), or an error if it unexpectedly succeeds.
    pub async fn run_expect_failure(&self) -> Result<ToolOutput> {
        let out = self.output().await?;
        if out.success() {
            Err(format!("expected failure, but {out}").into())
        } else {
            Ok(out)
        }
    }

    /// Blocking variant of [`Tool::output`], for `Drop` and non-async code.
    pub fn run_blocking(&self) -> Result<ToolOutput> {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.command_line()))?;
        Ok(self.finish(out))
    }

    fn finish(&self, out: std::process::Output) -> ToolOutput {
        ToolOutput {
            command: self.command_line(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
