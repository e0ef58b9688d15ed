//! bench-control: what `examples/hello/bench/bench.sh` measures hello
//! against. Bare axum, the workspace's versions, no middleware:
//!
//! - `GET /ping` answers `{}`, like pym's built-in;
//! - `GET /me` verifies the bearer token with jsonwebtoken exactly as pym
//!   does for hello (HS256, `exp`, `sub`, `iss`, `aud` required) and
//!   answers the claims;
//! - `POST /signup` parses `{"email", "name"?}`, XADDs it to the stream
//!   `bench-control` on Redis (capped at ~100k entries) and answers 201.
//!
//! Usage: `bench-control <port>`, with `PYM_JWT_SECRET`, `PYM_REDIS_URL`,
//! `JWT_ISSUER` and `JWT_AUDIENCE` in the environment.
//!
//! Calibration: with `BENCH_SPIN_NS=N`, `/ping` first spins N ns of CPU, to
//! show what a given cost per request does to req/s on the machine (the
//! kernel's share per request grows as a server slows: wrk's threads sleep
//! more and each response must wake one).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

struct Shared {
    key: DecodingKey,
    validation: Validation,
    redis: redis::aio::ConnectionManager,
}

#[derive(Deserialize)]
struct SignupRequest {
    email: String,
    name: Option<String>,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("bench-control: set {name}");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: bench-control <port>");
        std::process::exit(2)
    });
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[env("JWT_ISSUER")]);
    validation.set_audience(&[env("JWT_AUDIENCE")]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    let spin = std::time::Duration::from_nanos(
        std::env::var("BENCH_SPIN_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let client = redis::Client::open(env("PYM_REDIS_URL")).expect("PYM_REDIS_URL");
    let shared = Arc::new(Shared {
        key: DecodingKey::from_secret(env("PYM_JWT_SECRET").as_bytes()),
        validation,
        redis: client
            .get_connection_manager()
            .await
            .expect("redis reachable"),
    });
    let app = Router::new()
        .route("/ping", get(move || async move { ping(spin) }))
        .route("/me", get(me))
        .route("/signup", post(signup))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("port free");
    axum::serve(listener, app).await.expect("serve");
}

/// `{}`, after spinning `spin` (see the calibration note above).
fn ping(spin: std::time::Duration) -> Json<Value> {
    let start = std::time::Instant::now();
    while start.elapsed() < spin {
        std::hint::spin_loop();
    }
    Json(json!({}))
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Result<Json<Value>, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &s.key, &s.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    let user = data.claims.get("sub").cloned();
    Ok(Json(json!({"user_id": user, "claims": data.claims})))
}

async fn signup(
    State(s): State<Arc<Shared>>,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({"id": id, "email": req.email, "name": req.name}).to_string();
    let mut redis = s.redis.clone();
    let _: String = redis::cmd("XADD")
        .arg("bench-control")
        .arg("MAXLEN")
        .arg("~")
        .arg(100_000)
        .arg("*")
        .arg("body")
        .arg(body)
        .query_async(&mut redis)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "email": req.email, "name": req.name})),
    ))
}
