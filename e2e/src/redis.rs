//! Free loopback ports and a throw-away `redis-server` per test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Result, unique_suffix, wait};

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it).
/// Another process can still take it before you bind: retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A `redis-server` on a free loopback port, without persistence, killed on drop.
///
/// The binary is `$PYM_E2E_REDIS_SERVER` or `redis-server` from `PATH`
/// (Debian: `apt-get install -y redis-server`).
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts the server and waits until it answers PING.
    pub async fn start() -> Result<RedisServer> {
        let program =
            std::env::var_os("PYM_E2E_REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("pym-e2e-redis-{port}-{}", unique_suffix()));
            std::fs::create_dir_all(&dir)?;
            let child = Command::new(&program)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot start {}: {e} (install it: apt-get install -y redis-server)",
                        program.to_string_lossy()
                    )
                })?;
            let mut server = RedisServer { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    // Most likely someone took the port in the meantime: retry.
                    last_error = format!("redis-server on port {port} exited: {status}");
                    break;
                }
                match ping(port).await {
                    Ok(()) => return Ok(server),
                    Err(e) if Instant::now() >= deadline => {
                        last_error =
                            format!("redis-server on port {port} not answering after 10s: {e}");
                        break;
                    }
                    Err(_) => tokio::time::sleep(wait::POLL).await,
                }
            }
            server.stop();
        }
        Err(format!("redis-server did not start: {last_error}").into())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn ping(port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
    if buf[..n].starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}
