//! The health and metrics server of a process (a worker, the operator):
//!
//! | request | answer |
//! |---|---|
//! | `GET` [`PATH_HEALTHZ`](contract::PATH_HEALTHZ) | 200 `ok` while the process runs |
//! | `GET` [`PATH_READYZ`](contract::PATH_READYZ) | 200 `ready`, or 503 and the caller's message while its check says no |
//! | `GET` [`PATH_METRICS`](contract::PATH_METRICS) | 200, the registry in [`contract::METRICS_CONTENT_TYPE`] |
//! | anything else | 404 |
//!
//! `HEAD` is answered like `GET`, without the body. HTTP/1.1 only; it stops
//! (open connections closed gracefully) when its token is cancelled.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use pym_core::{Metrics, contract};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long open connections get to finish once the server is stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    NotFound,
}

/// The route of `method` `path`.
pub fn route(method: &Method, path: &str) -> Route {
    if method != Method::GET && method != Method::HEAD {
        return Route::NotFound;
    }
    match path {
        contract::PATH_HEALTHZ => Route::Healthz,
        contract::PATH_READYZ => Route::Readyz,
        contract::PATH_METRICS => Route::Metrics,
        _ => Route::NotFound,
    }
}

type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// The server's answers: the registry and the readiness check.
#[derive(Clone)]
pub struct Probes {
    metrics: Metrics,
    ready: ReadyCheck,
    not_ready: &'static str,
}

impl Probes {
    /// Serves `metrics`; ready until [`Probes::ready_when`] says otherwise.
    pub fn new(metrics: Metrics) -> Self {
        Probes {
            metrics,
            ready: Arc::new(|| true),
            not_ready: "not ready",
        }
    }

    /// `/readyz` answers 200 while `check()` is true, else 503 `not_ready`.
    pub fn ready_when(
        mut self,
        check: impl Fn() -> bool + Send + Sync + 'static,
        not_ready: &'static str,
    ) -> Self {
        self.ready = Arc::new(check);
        self.not_ready = not_ready;
        self
    }

    /// The answer to `method` `path`.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = match route(method, path) {
            Route::Healthz => (StatusCode::OK, "ok"),
            Route::Readyz if (self.ready)() => (StatusCode::OK, "ready"),
            Route::Readyz => (StatusCode::SERVICE_UNAVAILABLE, self.not_ready),
            Route::Metrics => {
                let mut r = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(contract::METRICS_CONTENT_TYPE),
                );
                return r;
            }
            Route::NotFound => (StatusCode::NOT_FOUND, "not found"),
        };
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }

    /// Bind `addr` and serve until `stop` is cancelled; the bound address
    /// (port 0 → the chosen one) and the server task, which ends after the
    /// open connections are closed.
    pub async fn start(
        self,
        addr: impl ToSocketAddrs,
        stop: CancellationToken,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, "serving /healthz /readyz /metrics");
        Ok((local, tokio::spawn(self.serve(listener, stop))))
    }

    /// Serve on `listener` until `stop` is cancelled.
    pub async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        let probes = Arc::new(self);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        loop {
            let stream = tokio::select! {
                r = listener.accept() => r,
                () = stop.cancelled() => break,
            };
            let stream = match stream {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: try again soon.
                    tracing::debug!(error = %e, "probe server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let p = probes.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let r = p.respond(req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn routes() {
        let cases = [
            (Method::GET, "/healthz", Route::Healthz),
            (Method::HEAD, "/healthz", Route::Healthz),
            (Method::GET, "/readyz", Route::Readyz),
            (Method::GET, "/metrics", Route::Metrics),
            (Method::POST, "/metrics", Route::NotFound),
            (Method::DELETE, "/healthz", Route::NotFound),
            (Method::GET, "/", Route::NotFound),
            (Method::GET, "/healthz/", Route::NotFound),
            (Method::GET, "/metricsx", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(&method, path), want, "{method} {path}");
        }
    }

    /// One request on a fresh connection: (status, content type, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_string();
        (status, content_type, body.to_string())
    }

    #[tokio::test]
    async fn serves_the_three_paths_and_stops() {
        let metrics = Metrics::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics.register("pym_probe_test", "A test counter", counter.clone());
        counter.inc();
        let ready = Arc::new(AtomicBool::new(false));
        let r = ready.clone();
        let probes = Probes::new(metrics)
            .ready_when(move || r.load(Ordering::Relaxed), "broker unreachable");
        let stop = CancellationToken::new();
        let (addr, task) = probes.start("127.0.0.1:0", stop.clone()).await.unwrap();

        let text = "text/plain; charset=utf-8";
        assert_eq!(get(addr, "/healthz").await, (200, text.into(), "ok".into()));
        assert_eq!(
            get(addr, "/readyz").await,
            (503, text.into(), "broker unreachable".into())
        );
        ready.store(true, Ordering::Relaxed);
        assert_eq!(
            get(addr, "/readyz").await,
            (200, text.into(), "ready".into())
        );
        let (status, content_type, body) = get(addr, "/metrics").await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, contract::METRICS_CONTENT_TYPE)
        );
        assert!(body.contains("pym_probe_test_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get(addr, "/nope").await.0, 404);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server stops on cancel")
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
