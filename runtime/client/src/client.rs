//! The client of one called API: a pooled reqwest client, its base URL and
//! settings; [`Client::send`] makes one call with its retries.

use crate::answer::{Answer, error_of};
use crate::config::ClientConfig;
use crate::forward::{self, Forwarded};
use crate::retry::{self, Failure};
use backon::{ExponentialBuilder, Retryable};
use pym_http::ApiError;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error(
        "the API {service}: no base URL: set {env} to its base URL, e.g. http://{service}:8080"
    )]
    MissingUrl { service: String, env: String },
    #[error("the API {service}: base URL '{url}': {why}; expected http(s)://host[:port][/prefix]")]
    InvalidUrl {
        service: String,
        url: String,
        why: String,
    },
    #[error("the API {service}: cannot build the HTTP client: {0}", service = .1)]
    Http(#[source] reqwest::Error, String),
}

/// One call: what the generated method fills in.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path as the spec writes it (`/users/{id}`): the route, which
    /// names the call's span.
    pub route: &'static str,
    /// The path, parameters filled in (see [`crate::params::path`]).
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(&'static str, String)>,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
}

/// The client of one API. Cheap to clone (connections are shared).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    base: Url,
    http: reqwest::Client,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.inner.service)
            .field("base", &self.inner.base.as_str())
            .field("config", &self.inner.config)
            .finish()
    }
}

/// One failed attempt: how it failed, and the error it is if it is the last.
struct Attempt {
    failure: Failure,
    error: ApiError,
}

impl Client {
    /// The client of `service` at `base_url` (`http://greeter:8080`, or
    /// with a path prefix: `https://api.example.com/greeter`).
    pub fn new(
        service: &str,
        base_url: &str,
        config: ClientConfig,
    ) -> Result<Self, ClientSetupError> {
        let invalid = |why: String| ClientSetupError::InvalidUrl {
            service: service.into(),
            url: base_url.into(),
            why,
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme '{}' is not http or https",
                base.scheme()
            )));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment".into()));
        }
        let prefix = base.path().trim_end_matches('/').to_string();
        base.set_path(&prefix);
        // reqwest is built without a crypto provider of its own: use the
        // process's (ring), as the Redis client does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("pym-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientSetupError::Http(e, service.into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                service: service.into(),
                base,
                http,
                config,
            }),
        })
    }

    /// The client of `service` at the URL in `$PYM_API_<SERVICE>_URL`
    /// (see [`pym_core::contract::env_api_url`]).
    pub fn from_env(service: &str, config: ClientConfig) -> Result<Self, ClientSetupError> {
        let env = pym_core::contract::env_api_url(service);
        match std::env::var(&env) {
            Ok(url) if !url.trim().is_empty() => Self::new(service, &url, config),
            _ => Err(ClientSetupError::MissingUrl {
                service: service.into(),
                env,
            }),
        }
    }

    /// The name of the called API (its spec's title).
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Its base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// Make `request`, with the caller's context and the retries the
    /// failures allow. `Ok` holds any answer that is not retried (a 404
    /// too); transport failures and the last retried answer are `Err`.
    pub async fn send(&self, request: Request) -> Result<Answer, ApiError> {
        let inner = &*self.inner;
        let call = format!("{}: {} {}", inner.service, request.method, request.path);
        let url = self.url(&request)?;
        let (mut span, fwd) = pym_core::context::with_current(|ctx| {
            let span = call_span(&inner.service, &url, &request, ctx);
            // The called service's parent: this call's exported span, or
            // (spans off) an id of this call that nothing records.
            let span_id = span
                .traceparent()
                .and_then(|tp| u64::from_str_radix(tp.get(36..52)?, 16).ok())
                .unwrap_or_else(|| rand::random::<u64>() | 1);
            let fwd = forward::forwarded(ctx, &inner.config.credentials, span_id);
            (span, fwd)
        });
        let headers = headers(&fwd, &request)?;
        let cfg = &inner.config;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_min)
            .with_max_delay(cfg.backoff_max)
            .with_max_times(cfg.retries)
            .with_jitter();
        let attempts = AtomicUsize::new(0);
        let once = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(&request, url.clone(), headers.clone(), &call)
        };
        let sent = once
            .retry(backoff)
            .when(|a: &Attempt| retry::retryable(&request.method, a.failure))
            .adjust(|a: &Attempt, d| d.map(|d| retry::delay(a.failure, d, cfg.backoff_max)))
            .notify(|a: &Attempt, d| {
                tracing::warn!(
                    call = %call,
                    attempt = attempts.load(Ordering::Relaxed),
                    retry_in_ms = d.as_millis() as u64,
                    "call failed, retrying: {}",
                    a.error.description
                );
            })
            .await;
        let n = attempts.load(Ordering::Relaxed);
        let sent = sent.map_err(|mut a| {
            if n > 1 {
                a.error.description = format!("{} ({n} attempts)", a.error.description);
            }
            a.error
        });
        ended(&mut span, &sent, n);
        sent
    }

    fn url(&self, request: &Request) -> Result<Url, ApiError> {
        let base = &self.inner.base;
        let mut url = base.clone();
        url.set_path(&format!(
            "{}{}",
            base.path().trim_end_matches('/'),
            request.path
        ));
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(request.query.iter());
        }
        Ok(url)
    }

    async fn attempt(
        &self,
        request: &Request,
        url: Url,
        headers: HeaderMap,
        call: &str,
    ) -> Result<Answer, Attempt> {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|e| transport(call, &e))?;
        let status = response.status();
        let after = retry::retry_after(
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let body = response.bytes().await.map_err(|e| transport(call, &e))?;
        let answer = Answer {
            status,
            body,
            call: call.to_string(),
        };
        let failure = Failure::Status(status.as_u16(), after);
        if retry::retryable(&request.method, failure) {
            return Err(Attempt {
                failure,
                error: error_of(call, status, &answer.body),
            });
        }
        Ok(answer)
    }
}

/// The span of a call (kind client, `<METHOD> <route>` as OpenTelemetry's
/// HTTP conventions name it), the child of the caller's span, when spans
/// are exported; no span otherwise.
fn call_span(
    service: &str,
    url: &Url,
    request: &Request,
    ctx: Option<&pym_core::Context>,
) -> pym_trace::Span {
    if !pym_trace::exporting() {
        return pym_trace::Span::none();
    }
    use pym_trace::KeyValue;
    let mut full = url.clone();
    full.set_query(None);
    pym_trace::Span::start(
        format!("{} {}", request.method, request.route),
        pym_trace::Kind::Client,
        ctx.and_then(|c| c.traceparent.as_deref()),
        None,
        vec![
            KeyValue::new("http.request.method", request.method.to_string()),
            KeyValue::new("url.template", request.route),
            KeyValue::new("server.address", url.host_str().unwrap_or("").to_owned()),
            KeyValue::new("url.full", full.to_string()),
            KeyValue::new("pym.service", service.to_owned()),
        ],
    )
}

/// End a call's span: the status answered, the attempts made, failed when
/// the call failed or the answer is a 5xx.
fn ended(span: &mut pym_trace::Span, sent: &Result<Answer, ApiError>, attempts: usize) {
    if !span.is_recording() {
        return;
    }
    use pym_trace::KeyValue;
    span.set_attribute(KeyValue::new("pym.attempts", attempts as i64));
    match sent {
        Ok(a) => {
            let status = a.status.as_u16();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.set_error(format!("answered {status}"));
            }
        }
        // No status attribute: a transport failure's status is our own.
        Err(e) => span.set_error(e.description.clone()),
    }
}

/// The headers of every attempt: the forwarded context, the request's own
/// header parameters, and the JSON content type of a body.
fn headers(fwd: &Forwarded, request: &Request) -> Result<HeaderMap, ApiError> {
    let mut map = HeaderMap::new();
    let value = |name: &str, v: &str| {
        HeaderValue::from_str(v).map_err(|_| {
            ApiError::invalid_parameter(name, "not a valid header value (control characters?)")
        })
    };
    if let Some(auth) = &fwd.authorization {
        let mut v = value("Authorization", auth)?;
        v.set_sensitive(true);
        map.insert(AUTHORIZATION, v);
    }
    if let Some(id) = &fwd.request_id {
        map.insert(forward::REQUEST_ID, value(forward::REQUEST_ID, id)?);
    }
    if let Some(tp) = &fwd.traceparent {
        map.insert(forward::TRACEPARENT, value(forward::TRACEPARENT, tp)?);
    }
    for (name, v) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::invalid_parameter(name, "not a valid header name"))?;
        map.append(header, value(name, v)?);
    }
    if request.body.is_some() {
        map.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(map)
}

/// An attempt that got no answer: no connection (503), no answer in time
/// (504), or a broken exchange (502); the message names the call and the
/// cause, never the URL's query.
fn transport(call: &str, e: &reqwest::Error) -> Attempt {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() {
        Attempt {
            failure: Failure::Connect,
            error: ApiError::service_unavailable(format!("{call}: cannot connect{cause}")),
        }
    } else if e.is_timeout() {
        Attempt {
            failure: Failure::Timeout,
            error: ApiError::gateway_timeout(format!("{call}: no answer in time{cause}")),
        }
    } else {
        Attempt {
            failure: Failure::Transport,
            error: ApiError::bad_gateway(format!("{call}: the exchange failed{cause}")),
        }
    }
}
