//! A real listener and a raw HTTP/1.1 client, for the connection-level
//! tests (timeouts, limits, ports).
#![allow(dead_code)]

use pym_runtime::config::Config;
use pym_runtime::http::Service;
use pym_runtime::http::axum::Json;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const SPEC: &str = r#"
openapi: 3.0.3
info: {title: limits, version: '1'}
paths:
  /fast:
    get:
      operationId: fast
      responses: {'200': {description: ok}}
  /slow:
    get:
      operationId: slow
      responses: {'200': {description: ok}}
  /echo:
    post:
      operationId: echo
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses: {'200': {description: ok}}
"#;

/// How long `/slow` takes.
pub const SLOW: Duration = Duration::from_secs(3);

async fn fast() -> Json<Value> {
    Json(json!({"ok": true}))
}
async fn slow() -> Json<Value> {
    tokio::time::sleep(SLOW).await;
    Json(json!({"slow": true}))
}
async fn echo(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}

/// A running service: its API address, its metrics address (when the
/// config sets `metrics_port`), its stop switch and its serve task.
pub struct Running {
    pub api: SocketAddr,
    pub metrics: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Start draining; the serve task ends when every connection is closed.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serve the test spec with this pym-config.yaml text, on 127.0.0.1.
pub async fn start(yaml: &str) -> Running {
    let config = Config::from_yaml("limits.yaml", yaml, &|_| None).unwrap();
    let metrics_listener = match config.metrics_port {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        None => None,
    };
    let svc = Service::builder(&config)
        .spec_str("limits.yaml", SPEC)
        .handler("fast", fast)
        .handler("slow", slow)
        .handler("echo", echo)
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let metrics = metrics_listener.as_ref().map(|l| l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        svc.serve_with_metrics(listener, metrics_listener, async move {
            let _ = rx.await;
        }),
    );
    Running {
        api,
        metrics,
        stop: Some(tx),
        task,
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    /// The value of header `name` (lower case), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Parse what a server sent on a `Connection: close` request.
pub fn parse(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head:?}"));
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Send `raw` on `stream` and read the response until the server closes
/// (the request says `Connection: close`), within 10 s.
pub async fn exchange(stream: &mut TcpStream, raw: &str) -> Raw {
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("no response within 10 s")
        .unwrap();
    parse(&buf)
}

/// `GET path` on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    exchange(
        &mut s,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// RSS of this process, KiB (from /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}
