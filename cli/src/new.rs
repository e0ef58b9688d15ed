//! `pym new NAME`: write a new service's files (see [`crate::scaffold`]).

use crate::Failure;
use crate::scaffold::{PymSource, check_name, render};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The service name: crate, binary, API title and PymService name
    /// (a-z, 0-9, '-'; at most 40 characters).
    name: String,
    /// Directory to create (default: ./NAME). It must not exist, or be empty.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Take pym-runtime from this pym checkout (its runtime/ directory, as
    /// a path dependency), for working on pym itself. Default: the registry
    /// version of this `pym` (see --pym-version).
    #[arg(long, value_name = "DIR", conflicts_with = "pym_version")]
    pym_path: Option<PathBuf>,
    /// Take pym-runtime from the crates registry at this version requirement.
    /// Default: the version of this `pym`.
    #[arg(long, value_name = "VERSION")]
    pym_version: Option<String>,
}

/// The pym-runtime version a new service asks for by default: pym's own
/// workspace version, as this binary was built.
const PYM_VERSION: &str = env!("CARGO_PKG_VERSION");

fn pym_source(args: &NewArgs) -> Result<PymSource, Failure> {
    if let Some(v) = &args.pym_version {
        return Ok(PymSource::Version(v.clone()));
    }
    let Some(p) = &args.pym_path else {
        return Ok(PymSource::Version(PYM_VERSION.into()));
    };
    let dir = if p.join("runtime/Cargo.toml").is_file() {
        p.join("runtime")
    } else {
        p.clone()
    };
    if !dir.join("Cargo.toml").is_file() {
        return Err(Failure(format!(
            "--pym-path {}: no pym checkout there (expected runtime/Cargo.toml or Cargo.toml of pym-runtime)",
            p.display()
        )));
    }
    let abs =
        std::fs::canonicalize(&dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    Ok(PymSource::Path(abs.display().to_string()))
}

pub fn run(args: &NewArgs) -> Result<(), Failure> {
    check_name(&args.name).map_err(Failure)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        return Err(Failure(format!(
            "{} exists and is not empty: pym new writes a new directory (give another with --path)",
            dir.display()
        )));
    }
    let source = pym_source(args)?;
    for (rel, text) in render(&args.name, &source) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    // Formatted as `cargo fmt` would (names change line lengths and the
    // order of imports); without rustfmt the files are still valid.
    let formatted = std::process::Command::new("cargo")
        .args(["fmt", "--all"])
        .current_dir(&dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !formatted {
        eprintln!(
            "pym: note: `cargo fmt` did not run in {}; the files are unformatted",
            dir.display()
        );
    }
    let from = match &source {
        PymSource::Path(p) => format!("pym-runtime from {p}"),
        PymSource::Version(v) => {
            format!("pym-runtime {v} from the registry; --pym-path DIR takes a local pym checkout")
        }
    };
    println!("created {} ({from})", dir.display());
    println!(
        "next:\n  cd {}\n  cargo test\n  cargo run -- up",
        dir.display()
    );
    Ok(())
}
