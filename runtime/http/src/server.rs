//! The service: spec + handlers bound by `operationId`, middleware, serving.
//!
//! ```no_run
//! use pym_http::{ApiError, HttpConfig, Service};
//! use pym_http::axum::Json;
//! # async fn example(config: HttpConfig) -> Result<(), Box<dyn std::error::Error>> {
//! async fn me() -> Result<Json<serde_json::Value>, ApiError> {
//!     let ctx = pym_core::context();
//!     Ok(Json(ctx.claims.clone().unwrap_or_default()))
//! }
//! let service = Service::builder(config)
//!     .spec_str("openapi.yaml", r#"
//! openapi: 3.1.0
//! info: {title: example, version: '1'}
//! paths:
//!   /me:
//!     get:
//!       operationId: me
//!       security: [{bearer: []}]
//!       responses: {'200': {description: the caller's claims}}
//! components:
//!   securitySchemes: {bearer: {type: http, scheme: bearer}}
//! "#)
//!     .handler("me", me)
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! Connections: [`Service::serve`] accepts at most `max_connections` at
//! once (when full it stops accepting until one closes) and serves each
//! with hyper's HTTP/1 server and a timer, so headers not received within
//! `header_read_timeout` close the connection.
//!
//! Request path, outermost first: request id (tower-http's layers, see
//! `request_id.rs`) → trace + context + metrics + panic catcher + error
//! normaliser (every route) → `Content-Length` over `body_limit`: 413 at
//! once → in-flight cap (`max_in_flight`, else 503) → request timeout
//! (503) → per operation: JWT check (per
//! the operation's `security`), parameter and body validation, context scope
//! (so [`pym_core::context()`] and spawned tasks see the caller) → handler →
//! response validation (debug builds / `validate_responses`).

use crate::around::{self, Around, AroundLayer, Inner};
use crate::auth::{Auth, AuthSetupError, Claims};
use crate::auth_cookie;
use crate::builtins;
use crate::config::{HttpConfig, HttpLimits};
use crate::error::{ApiError, PymError, normalize};
use crate::metrics::{HttpMetrics, Label, RequestLabels, method_label};
use crate::readiness::{Check, Readiness};
use crate::request_id;
use crate::request_span;
use crate::spec::{AuthMode, Operation, Spec, SpecError};
use crate::typed::Input;
use crate::validate;
use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use futures::FutureExt;
use pym_core::context::{self, Context};
use pym_core::contract;
use pym_core::panic_message;
use pym_core::{ErrorReport, ErrorReporter, ErrorSource, Metrics};
use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, watch};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("no OpenAPI spec: call .spec_file(path) or .spec_str(name, text) on the builder")]
    NoSpec,
    #[error("{0}")]
    Binding(String),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
}

/// A bound handler: given its method and its operation's layer, its route.
pub(crate) type BoxedHandler =
    Box<dyn FnOnce(MethodFilter, AroundLayer<Arc<OpState>>) -> MethodRouter + Send>;

/// A handler and whether it is typed (it reads the validated values,
/// [`crate::typed::Input`], instead of the request).
pub(crate) struct Bound {
    pub(crate) make: BoxedHandler,
    pub(crate) typed: bool,
}

impl Bound {
    /// An axum handler bound to its operation: the operation's layer wraps
    /// the handler itself, inside its route (`MethodRouter::route_layer`
    /// would box the route again).
    pub(crate) fn new<H, T>(handler: H, typed: bool) -> Self
    where
        H: axum::handler::Handler<T, ()>,
        T: 'static,
    {
        Bound {
            make: Box::new(move |filter, layer| axum::routing::on(filter, handler.layer(layer))),
            typed,
        }
    }
}
type RouterHook = Box<dyn FnOnce(Router) -> Router + Send>;
/// Serves the service's own tower stack on a listener until the stop
/// signal (see [`Service::serve_with_metrics`]).
type Serve = Box<
    dyn FnOnce(
            tokio::net::TcpListener,
            HttpLimits,
            watch::Receiver<bool>,
        ) -> futures::future::BoxFuture<'static, ()>
        + Send,
>;

/// Builds a [`Service`].
pub struct ServiceBuilder {
    config: Arc<HttpConfig>,
    spec: Option<Result<Spec, SpecError>>,
    handlers: Vec<(String, Bound)>,
    /// The values given to [`ServiceBuilder::extension`], for
    /// [`ServiceBuilder::get_extension`].
    values: axum::http::Extensions,
    metrics: Metrics,
    readiness: Readiness,
    auth: Option<Auth>,
    hooks: Vec<RouterHook>,
    reporter: Option<ErrorReporter>,
    /// Documents whose operations are served beside the spec's (see
    /// [`ServiceBuilder::document`]).
    documents: Vec<Result<Spec, SpecError>>,
}

/// What the middleware and built-ins share.
pub(crate) struct Shared {
    pub config: Arc<HttpConfig>,
    pub spec: Spec,
    pub auth: Option<Auth>,
    pub metrics: Metrics,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    /// Permits of requests in flight (`max_in_flight`).
    pub in_flight: Semaphore,
    /// The operation name of a request no route matched.
    pub unmatched: OperationName,
    /// The built-ins' paths and names.
    pub builtins: Vec<(&'static str, OperationName)>,
    /// Told of every 5xx and panic.
    pub reporter: Option<ErrorReporter>,
}

impl Shared {
    /// The name of the built-in at `path`, else `unmatched`.
    fn builtin_name(&self, path: &str) -> &OperationName {
        self.builtins
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(&self.unmatched, |(_, name)| name)
    }
}

/// A built service: an axum [`Router`] plus what it was built from.
pub struct Service {
    router: Router,
    serve: Serve,
    shared: Arc<Shared>,
}

impl Service {
    /// Start building a service from its config.
    pub fn builder(config: impl Into<HttpConfig>) -> ServiceBuilder {
        let config: HttpConfig = config.into();
        let mut values = axum::http::Extensions::new();
        // The token minter, for handlers that issue tokens (a login): read
        // it with `get_extension::<Auth>()`. A key that does not load is
        // reported by `build`.
        if let Ok(Some(auth)) = Auth::from_config(&config.jwt) {
            values.insert(auth);
        }
        ServiceBuilder {
            config: Arc::new(config),
            spec: None,
            handlers: Vec::new(),
            values,
            metrics: Metrics::default(),
            readiness: Readiness::default(),
            auth: None,
            hooks: Vec::new(),
            reporter: None,
            documents: Vec::new(),
        }
    }

    /// The axum router (for tests with `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn config(&self) -> &HttpConfig {
        &self.shared.config
    }

    pub fn spec(&self) -> &Spec {
        &self.shared.spec
    }

    /// The token verifier/minter, if a JWT key is configured.
    pub fn auth(&self) -> Option<&Auth> {
        self.shared.auth.as_ref()
    }

    /// The registry served at `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Serve on `listener` until `shutdown` resolves, then drain: stop
    /// accepting, let requests in flight finish, close idle connections.
    /// With `metrics_port` set, `/metrics` is not served here: see
    /// [`Service::serve_with_metrics`].
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with_metrics(listener, None, shutdown).await
    }

    /// [`Service::serve`], and `/metrics` alone on `metrics` (the listener
    /// of `metrics_port`), both stopped by `shutdown`.
    pub async fn serve_with_metrics(
        self,
        listener: tokio::net::TcpListener,
        metrics: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let name = &self.shared.config.name;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, service = %name, "HTTP API listening");
        }
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let limits = self.shared.config.limits;
        let metrics_task = metrics.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, service = %name, "serving /metrics");
            }
            let router = builtins::metrics_router(self.shared.clone());
            tokio::spawn(accept_loop(l, router, limits, stop.clone()))
        });
        (self.serve)(listener, limits, stop).await;
        if let Some(t) = metrics_task {
            t.await.map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// Accept connections on `listener` (at most `max_connections` open at
/// once) and serve `service` on each, until `stop` turns true; then wait
/// until every connection is closed.
async fn accept_loop<S>(
    mut listener: tokio::net::TcpListener,
    service: S,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    use tower::ServiceExt;
    let service = service
        .map_request(|r: hyper::Request<hyper::body::Incoming>| r.map(axum::body::Body::new));
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Every connection task holds a receiver; `open.closed()` waits for them.
    let (open, held) = watch::channel(());
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            () = stopped(&mut stop) => break,
        };
        let (io, _) = tokio::select! {
            c = axum::serve::Listener::accept(&mut listener) => c,
            () = stopped(&mut stop) => break,
        };
        let conn = http
            .serve_connection(
                TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service.clone()),
            )
            .with_upgrades();
        let (mut conn_stop, conn_held) = (stop.clone(), held.clone());
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut conn_stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed");
            }
            drop((slot, conn_held));
        });
    }
    drop((listener, held));
    open.closed().await;
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl ServiceBuilder {
    /// Read the OpenAPI document from a file (YAML or JSON).
    pub fn spec_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.spec = Some(Spec::from_file(path.as_ref()));
        self
    }

    /// Use OpenAPI text, e.g. `include_str!("../openapi.yaml")`; `name` is for errors.
    pub fn spec_str(mut self, name: &str, text: &str) -> Self {
        self.spec = Some(Spec::parse(name, text));
        self
    }

    /// Serve the operations of another OpenAPI document (e.g. pym's admin
    /// API) beside the spec's: each must be bound with
    /// [`ServiceBuilder::handler`] and is validated and authenticated like
    /// the spec's own. `/openapi.yaml` still serves the spec alone.
    pub fn document(mut self, name: &str, text: &str) -> Self {
        self.documents.push(Spec::parse(name, text));
        self
    }

    /// Bind an axum handler to the operation with this `operationId`.
    pub fn handler<H, T>(self, operation_id: &str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ()>,
        T: 'static,
    {
        self.bind(operation_id, Bound::new(handler, false))
    }

    pub(crate) fn bind(mut self, operation_id: &str, bound: Bound) -> Self {
        self.handlers.push((operation_id.to_string(), bound));
        self
    }

    /// Record request metrics in `registry` and serve it at `/metrics`
    /// (default: a registry of the service's own).
    pub fn metrics(mut self, registry: Metrics) -> Self {
        self.metrics = registry;
        self
    }

    /// Add a dependency `/readyz` checks (each within 2 s); `what` names it
    /// in the 503 answer, e.g. "the broker".
    pub fn readiness(mut self, what: &str, check: impl Check) -> Self {
        self.readiness.add(what, check);
        self
    }

    /// Call `reporter` once for every 5xx answer and every handler panic
    /// (see [`ErrorReporter`]).
    pub fn error_reporter(mut self, reporter: ErrorReporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Use this verifier instead of the one built from the config.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.values.insert(auth.clone());
        self.auth = Some(auth);
        self
    }

    /// Make `value` available to handlers as `axum::Extension<T>`.
    pub fn extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.values.insert(value.clone());
        self.hooks
            .push(Box::new(move |r| r.layer(axum::Extension(value))));
        self
    }

    /// The value of type `T` given to [`ServiceBuilder::extension`] (the
    /// runtime gives the task `Queue`), e.g. for the value a generated
    /// `bind` is given.
    pub fn get_extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.values.get::<T>().cloned()
    }

    /// Check the bindings and build the router.
    pub fn build(self) -> Result<Service, ServiceError> {
        let spec = self
            .spec
            .ok_or(ServiceError::NoSpec)?
            .map_err(ServiceError::Spec)?;
        let spec = with_documents(spec, self.documents)?;
        check_bindings(&spec, &self.handlers)?;
        let auth = match self.auth {
            Some(a) => Some(a),
            None => auth_from_config(&self.config, &spec)?,
        };
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            spec: spec.clone(),
            auth,
            http_metrics: HttpMetrics::registered(&self.metrics),
            metrics: self.metrics,
            readiness: self.readiness,
            in_flight: Semaphore::new(self.config.limits.max_in_flight),
            unmatched: OperationName(Arc::from("unmatched")),
            builtins: builtins::names(&self.config),
            reporter: self.reporter,
        });
        let mut router = operation_routes(&spec, self.handlers, &shared)?
            .merge(builtins::router(shared.clone()))
            .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.yaml") });
        for hook in self.hooks {
            router = hook(router);
        }
        // The layers every request passes wrap the router once, as one
        // service: `Router::layer` would wrap each route, and each request
        // would clone and box every layer again.
        let stack = request_id::layers()
            .layer(AroundLayer(shared.clone()))
            .layer(catch_panics())
            .layer(axum::extract::DefaultBodyLimit::max(
                shared.config.body_limit,
            ))
            .service(router);
        // Served as it is (`Router::fallback_service` would box it and each
        // request's future once more); tests get it as a `Router`.
        let router = Router::new().fallback_service(stack.clone());
        let serve: Serve = Box::new(move |listener, limits, stop| {
            Box::pin(accept_loop(listener, stack, limits, stop))
        });
        Ok(Service {
            router,
            serve,
            shared,
        })
    }
}

/// `spec` with the operations of `documents` added (their paths may not
/// be the spec's).
fn with_documents(
    mut spec: Spec,
    documents: Vec<Result<Spec, SpecError>>,
) -> Result<Spec, ServiceError> {
    for doc in documents {
        let doc = doc.map_err(ServiceError::Spec)?;
        if let Some(op) = doc.operations.iter().find(|o| {
            spec.operations
                .iter()
                .any(|s| path_shape(&s.path) == path_shape(&o.path) || s.id == o.id)
        }) {
            return Err(ServiceError::Binding(format!(
                "operation {} ({} {}) of {} is also in the spec: rename it or move it",
                op.id, op.method, op.path, doc.title
            )));
        }
        spec.operations.extend(doc.operations);
    }
    Ok(spec)
}

/// A path template with its parameters unnamed (`/items/{}`): two paths
/// of one shape are one route.
fn path_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

/// Binding check: every operation has a handler, every handler an
/// operation, none twice, and no operation on a built-in path.
fn check_bindings(spec: &Spec, handlers: &[(String, Bound)]) -> Result<(), ServiceError> {
    let ops: HashSet<&str> = spec.operations.iter().map(|o| o.id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    let dup: Vec<&str> = handlers
        .iter()
        .filter(|(id, _)| !seen.insert(id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    if !dup.is_empty() {
        problems.push(format!("handlers bound twice: {}", dup.join(", ")));
    }
    let missing: Vec<String> = spec
        .operations
        .iter()
        .filter(|o| !seen.contains(o.id.as_str()))
        .map(|o| format!("{} ({} {})", o.id, o.method, o.path))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "operations without a handler: {} (add .handler(\"<operationId>\", fn) for each)",
            missing.join(", ")
        ));
    }
    let unknown: Vec<&str> = handlers
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !ops.contains(id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "handlers without an operation: {} (no operationId of that name in {}; fix the name or add the operation)",
            unknown.join(", "),
            if spec.title.is_empty() { "the spec" } else { &spec.title }
        ));
    }
    for op in &spec.operations {
        if builtins::PATHS.contains(&op.path.as_str()) {
            problems.push(format!(
                "operation {} uses {}, a pym built-in path; remove it from the spec",
                op.id, op.path
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Binding(format!(
            "the spec and the handlers do not match:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    Ok(())
}

/// The verifier from the config: required when an operation needs a token.
fn auth_from_config(config: &HttpConfig, spec: &Spec) -> Result<Option<Auth>, ServiceError> {
    if spec.operations.iter().any(|o| o.auth != AuthMode::None) {
        Ok(Some(Auth::required(&config.jwt)?))
    } else {
        Ok(Auth::from_config(&config.jwt)?)
    }
}

/// One route per path, each operation's handler behind its
/// [`operation_layer`]. `handlers` have passed [`check_bindings`].
fn operation_routes(
    spec: &Spec,
    handlers: Vec<(String, Bound)>,
    shared: &Arc<Shared>,
) -> Result<Router, ServiceError> {
    let mut handlers: BTreeMap<String, Bound> = handlers.into_iter().collect();
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for op in &spec.operations {
        let bound = handlers.remove(&op.id).expect("checked above");
        let filter = MethodFilter::try_from(op.method.clone()).map_err(|_| {
            ServiceError::Binding(format!("{}: unsupported method {}", op.id, op.method))
        })?;
        let state = Arc::new(OpState {
            op: op.clone(),
            name: OperationName(Arc::from(op.id.as_str())),
            shared: shared.clone(),
            typed: bound.typed,
        });
        let mr = (bound.make)(filter, AroundLayer(state));
        let entry = by_path.remove(&op.path).unwrap_or_default();
        by_path.insert(op.path.clone(), entry.merge(mr));
    }
    let mut router = Router::new();
    for (path, mr) in by_path {
        router = router.route(&path, mr);
    }
    Ok(router)
}

pub(crate) struct OpState {
    op: Operation,
    name: OperationName,
    shared: Arc<Shared>,
    /// The handler reads the validated values ([`crate::typed::Input`]).
    typed: bool,
}

/// Name of the operation that handled a request (for metrics and logs),
/// shared by every response of that operation.
#[derive(Clone, Debug)]
pub struct OperationName(pub Arc<str>);

/// Append `n` (at most 16) random bytes, as lowercase hex, to `out`.
fn push_random_hex(out: &mut String, n: usize) {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes[..n]);
    let mut text = [0u8; 32];
    hex::encode_to_slice(&bytes[..n], &mut text[..2 * n]).expect("sized to fit");
    out.push_str(std::str::from_utf8(&text[..2 * n]).expect("hex is ASCII"));
}

/// Parse a W3C `traceparent` and continue it with a new span id; start a
/// new trace when it is absent or malformed.
pub fn continue_trace(incoming: Option<&str>) -> String {
    if let Some(tp) = incoming {
        let parts: Vec<&str> = tp.trim().split('-').collect();
        let hex_ok = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if parts.len() >= 4
            && hex_ok(parts[0], 2)
            && parts[0] != "ff"
            && hex_ok(parts[1], 32)
            && parts[1] != "0".repeat(32)
            && hex_ok(parts[2], 16)
            && parts[2] != "0".repeat(16)
            && hex_ok(parts[3], 2)
        {
            let mut tp = String::with_capacity(55);
            tp.push_str("00-");
            tp.push_str(parts[1]);
            tp.push('-');
            push_random_hex(&mut tp, 8);
            tp.push('-');
            tp.push_str(parts[3]);
            return tp;
        }
    }
    let mut tp = String::with_capacity(55);
    tp.push_str("00-");
    push_random_hex(&mut tp, 16);
    tp.push('-');
    push_random_hex(&mut tp, 8);
    tp.push_str("-01");
    tp
}

/// A panic in a built-in (or anywhere outside an operation's handler)
/// becomes the standard error JSON.
fn catch_panics() -> CatchPanicLayer<fn(Box<dyn std::any::Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(|payload: Box<dyn std::any::Any + Send + 'static>| {
        panic_response(payload.as_ref())
    })
}

/// The standard error JSON of a panic.
fn panic_response(payload: &(dyn std::any::Any + Send)) -> Response {
    let msg = panic_message(payload);
    let mut response = ApiError::server_error(format!("handler panicked: {msg}")).into_response();
    response.extensions_mut().insert(Panicked);
    response
}

/// [`request`] around every request, inside the request-id layers.
impl Around for Arc<Shared> {
    fn around<S: Inner>(self, req: Request, inner: S) -> impl Future<Output = Response> + Send {
        request(self, req, inner)
    }
}

/// [`operation`] around each operation's handler.
impl Around for Arc<OpState> {
    fn around<S: Inner>(self, req: Request, inner: S) -> impl Future<Output = Response> + Send {
        operation(self, req, inner)
    }
}

/// Every request: trace, context, limits, metrics, the access line, one
/// error format.
///
/// Every log line of the request carries its request id and trace id: they
/// are in its context, which the log format reads
/// (`pym_process::caller_fields`). A tracing span `request` with the same
/// two fields is opened only when enabled at debug level (e.g.
/// `PYM_LOG=info,pym_http=debug`), for subscribers that work on spans.
async fn request<S: Inner>(shared: Arc<Shared>, req: Request, inner: S) -> Response {
    let started = Instant::now();
    let incoming = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let otel = request_span::start(&method, &path, incoming);
    let traceparent = otel
        .traceparent()
        .unwrap_or_else(|| continue_trace(incoming));
    // Built-ins and unmatched routes run in a context with the request id;
    // operations extend it with the caller (user, claims, token).
    let base = Arc::new(Context {
        request_id: Some(request_id::of(&req)),
        traceparent: Some(traceparent),
        method: Some(method.to_string()),
        path: Some(path.clone()),
        ..Context::default()
    });
    let span = tracing::debug_span!(
        "request",
        request_id = base.request_id.as_deref(),
        trace_id = base.trace_id(),
    );
    let s = &shared;
    let handled = async move {
        let response = normalize(limited(s, req, inner).await).await;
        done(s, &method, &path, started, &response, otel);
        response
    };
    context::scope(base, handled.instrument(span)).await
}

/// Count the request in the metrics and write its access line.
fn done(
    shared: &Shared,
    method: &axum::http::Method,
    path: &str,
    started: Instant,
    response: &Response,
    otel: pym_trace::Span,
) {
    let labels = RequestLabels {
        operation: Label(
            response
                .extensions()
                .get::<OperationName>()
                .unwrap_or_else(|| shared.builtin_name(path))
                .0
                .clone(),
        ),
        method: method_label(method),
        status: response.status().as_u16(),
    };
    let elapsed = started.elapsed().as_secs_f64();
    shared.http_metrics.observe(&labels, elapsed);
    request_span::finish(otel, method, &labels.operation.0, labels.status);
    if labels.status >= 500
        && let Some(reporter) = &shared.reporter
    {
        reporter.report(&error_report(&labels.operation.0, response));
    }
    tracing::info!(
        method = labels.method,
        path,
        operation = &*labels.operation.0,
        status = labels.status,
        latency_ms = elapsed * 1000.0,
        "request done"
    );
}

/// The report of a 5xx `response` of `operation`: its error (every 5xx is
/// pym's error JSON by now, see `normalize`), whether a panic made it,
/// and the caller it answered.
fn error_report(operation: &str, response: &Response) -> ErrorReport {
    let ext = response.extensions();
    let (code, error_id, message) = match ext.get::<PymError>() {
        Some(e) => (e.code.clone(), e.error_id.clone(), e.description.clone()),
        None => Default::default(),
    };
    let operation = operation.to_string();
    let source = if ext.get::<Panicked>().is_some() {
        ErrorSource::Panic { operation }
    } else {
        ErrorSource::Http {
            operation,
            status: response.status().as_u16(),
        }
    };
    ErrorReport {
        source,
        error_id,
        code,
        message,
        user_id: ext.get::<ErrorCaller>().and_then(|c| c.0.clone()),
        request_id: context::with_current(|c| c.and_then(|c| c.request_id.clone())),
    }
}

/// Marks the response of a panic, for the error report.
#[derive(Clone, Copy)]
struct Panicked;

/// The user a 5xx answered, for the error report (the report is made
/// outside the operation's context).
#[derive(Clone)]
struct ErrorCaller(Option<String>);

/// Error code of a body that did not arrive within `body_timeout`.
const REQUEST_TIMEOUT_CODE: &str = "REQUEST_TIMEOUT";

/// The request within the limits: `Content-Length` at most `body_limit`
/// (else 413 before the body is read), a permit of `max_in_flight` (else
/// 503 at once; `/healthz` and `/metrics` need none) and an answer within
/// `request_timeout` (else 503).
async fn limited<S: Inner>(shared: &Shared, req: Request, inner: S) -> Response {
    let config = &shared.config;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > config.body_limit as u64) {
        return too_large(config.body_limit).into_response();
    }
    let path = req.uri().path();
    let _permit = if path == contract::PATH_HEALTHZ || path == contract::PATH_METRICS {
        None
    } else {
        match shared.in_flight.try_acquire() {
            Ok(p) => Some(p),
            Err(_) => return overloaded(config.limits.max_in_flight),
        }
    };
    let limit = config.limits.request_timeout;
    match tokio::time::timeout(limit, around::call(inner, req)).await {
        Ok(r) => r,
        Err(_) => ApiError::service_unavailable(format!(
            "no answer within {} s (request_timeout_secs in pym-config.yaml)",
            limit.as_secs()
        ))
        .into_response(),
    }
}

/// 503 with `Retry-After: 1`: `max_in_flight` requests are being handled.
fn overloaded(max: usize) -> Response {
    let mut r = ApiError::service_unavailable(format!(
        "{max} requests in flight already (max_in_flight in pym-config.yaml)"
    ))
    .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        crate::error::codes::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {limit} bytes (body_limit in pym-config.yaml)"),
    )
}

/// Per operation: auth, validation, context, response validation.
async fn operation<S: Inner>(st: Arc<OpState>, req: Request, inner: S) -> Response {
    let op_name = st.name.clone();
    let mut response = match run_operation(&st, req, inner).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(op_name);
    response
}

async fn run_operation<S: Inner>(
    st: &OpState,
    req: Request,
    inner: S,
) -> Result<Response, ApiError> {
    let op = &st.op;
    let (mut parts, body) = req.into_parts();

    // 1. Authentication, per the operation's security.
    let (claims, token) = authenticate(st, &parts.headers)?;

    // 2. Parameters.
    let params = check_params(op, &mut parts).await?;

    // 3. Body, parsed once: a typed handler gets the values validated here.
    let config = &st.shared.config;
    let bytes = read_body(body, config.body_limit, config.limits.body_timeout).await?;
    let value = validate::check_body(op, &parts.headers, &bytes)?;
    if st.typed {
        parts.extensions.insert(Input::new(params, value));
    }

    // 4. Context: the request's (id, trace, method, path; see `request`)
    // and the caller (the `Claims` extractor reads them there).
    let ctx = Arc::new(Context {
        user_id: claims.as_ref().map(|c: &Claims| c.user_id().to_string()),
        claims: claims.map(|c| c.0),
        token,
        ..context::with_current(|base| base.cloned().unwrap_or_default())
    });
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    // A panic in the handler is caught here, inside the operation's context
    // and span, so the operation still names the response.
    let handled = AssertUnwindSafe(around::call(inner, req)).catch_unwind();
    let caller = Arc::clone(&ctx);
    let mut response = context::scope(ctx, handled)
        .await
        .unwrap_or_else(|payload| panic_response(payload.as_ref()));
    if response.status().is_server_error() {
        let user = ErrorCaller(caller.user_id.clone());
        response.extensions_mut().insert(user);
    }

    // 5. Response validation (debug builds, tests, or validate_responses).
    if !st.shared.config.validate_responses || response.extensions().get::<PymError>().is_some() {
        return Ok(response);
    }
    check_response(op, response).await
}

/// The caller's claims and token, when the operation's security asks for
/// them (always when required; when optional, if a token is sent).
fn authenticate(
    st: &OpState,
    headers: &HeaderMap,
) -> Result<(Option<Claims>, Option<String>), ApiError> {
    let op = &st.op;
    if op.auth == AuthMode::None {
        return Ok((None, None));
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    // The cookie is read only when the header is absent, and only if the
    // config names one.
    let cookie = match (header, &st.shared.config.jwt.cookie) {
        (None, Some(name)) => auth_cookie::token(headers, name),
        _ => None,
    };
    if op.auth != AuthMode::Required && header.is_none() && cookie.is_none() {
        return Ok((None, None));
    }
    let auth = st
        .shared
        .auth
        .as_ref()
        .ok_or_else(|| ApiError::server_error("no JWT key configured"))?;
    if let Some(token) = cookie {
        return Ok((Some(auth.verify(&token)?), Some(token)));
    }
    let (c, t) = auth.verify_header(header)?;
    Ok((Some(c), Some(t)))
}

/// Validate the path and query parameters and the headers against the
/// spec; the values sent, converted to their schema's types.
async fn check_params(
    op: &Operation,
    parts: &mut Parts,
) -> Result<Vec<(String, serde_json::Value)>, ApiError> {
    let path_params: Vec<(String, String)> =
        match RawPathParams::from_request_parts(parts, &()).await {
            Ok(p) => p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Err(e) => return Err(ApiError::bad_request(format!("bad path: {e}"))),
        };
    let query: Vec<(String, String)> = match parts.uri.query() {
        None => Vec::new(),
        Some(_) => axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .map_err(|e| ApiError::invalid_parameter("query", e.body_text()))?,
    };
    validate::check_params(op, &path_params, &query, &parts.headers)
}

/// The whole request body, at most `limit` bytes, within `timeout`.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<axum::body::Bytes, ApiError> {
    if axum::body::HttpBody::is_end_stream(&body) {
        // No body (a GET, say): nothing to wait for, no timer to arm.
        return Ok(axum::body::Bytes::new());
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_error(&e) => Err(too_large(limit)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT_CODE,
            format!(
                "the body did not arrive within {} s (body_timeout_secs in pym-config.yaml)",
                timeout.as_secs()
            ),
        )),
    }
}

/// Whether reading a body failed because it is longer than the limit.
fn is_length_error(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Validate a handler's response against the operation's responses.
async fn check_response(op: &Operation, response: Response) -> Result<Response, ApiError> {
    let (rparts, rbody) = response.into_parts();
    let rbytes = axum::body::to_bytes(rbody, usize::MAX)
        .await
        .map_err(|e| ApiError::server_error(format!("cannot read the response body: {e}")))?;
    if let Err(msg) = validate::check_response(op, rparts.status, &rparts.headers, &rbytes) {
        return Err(ApiError::server_error(msg));
    }
    Ok(Response::from_parts(rparts, axum::body::Body::from(rbytes)))
}

/// The verified claims of the caller, from the operation's context: a
/// handler of an operation without a verified token gets a 401.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context::with_current(|c| c.and_then(|c| c.claims.clone()))
            .map(Claims)
            .ok_or_else(ApiError::authorization_header_missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_continues_or_starts() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace_id = |tp: &str| tp.split('-').nth(1).unwrap_or("").to_string();
        let c = continue_trace(Some(tp));
        assert_eq!(trace_id(&c), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(c, tp);
        let n = continue_trace(Some("garbage"));
        assert_eq!(trace_id(&n).len(), 32);
        assert_eq!(trace_id(&continue_trace(None)).len(), 32);
    }
}
