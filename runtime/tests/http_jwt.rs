//! JWT rules of issue #14 item 11 through a real listener: key rotation by
//! `kid`, `iss`/`aud` required when configured, the `typ` header, and the
//! start-up bounds.

mod http_common;

use http_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pym_runtime::config::Config;
use pym_runtime::http::{Auth, Service};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The secret of the rotated-out key `k1`.
const OLD_SECRET: &str = "old-test-secret-0123456789abcdef-0123456789";

/// The common test config, with the current key named `k2` and `k1` kept
/// for verification.
fn rotation_config() -> Config {
    let yaml = format!(
        "name: test\nversion: 9.9.9\njwt_issuer: {ISSUER}\njwt_audience: {AUDIENCE}\n\
         jwt_secret_env: TEST_SECRET\njwt_kid: k2\nvalidate_responses: true\n"
    );
    Config::from_yaml("rotation.yaml", &yaml, &|k| match k {
        "TEST_SECRET" => Some(SECRET.to_string()),
        "PYM_JWT_PREVIOUS_SECRETS" => Some(format!("k1={OLD_SECRET}")),
        _ => None,
    })
    .unwrap()
}

/// Serve `svc` on a free port of 127.0.0.1 until the returned sender drops.
async fn listen(svc: Service) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(svc.serve(listener, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// `GET /me` with this bearer token, over TCP.
async fn get_me(addr: SocketAddr, token: &str) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /me HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Reply {
        status,
        headers: axum::http::HeaderMap::new(),
        text: if chunked {
            unchunk(body)
        } else {
            body.to_string()
        },
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// An HS256 token with this secret, `kid` and `typ`.
fn token(secret: &str, kid: Option<&str>, typ: Option<&str>, c: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(String::from);
    h.typ = typ.map(String::from);
    jsonwebtoken::encode(&h, c, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn desc(r: &Reply) -> String {
    let v = r.error(401, "TOKEN_INVALID");
    let d = v["error_description"].as_str().unwrap().to_string();
    for secret in [SECRET, OLD_SECRET] {
        assert!(!r.text.contains(secret), "leaks a secret: {}", r.text);
    }
    d
}

async fn rotation_server() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    listen(builder_with(rotation_config()).build().unwrap()).await
}

#[tokio::test]
async fn previous_key_with_its_kid_is_accepted() {
    let (addr, _stop) = rotation_server().await;
    let ok = claims(json!({}));
    for (secret, kid) in [
        (OLD_SECRET, Some("k1")),
        (SECRET, Some("k2")),
        (SECRET, None),
    ] {
        let r = get_me(addr, &token(secret, kid, Some("JWT"), &ok)).await;
        assert_eq!(r.status, 200, "{kid:?}: {}", r.text);
        assert_eq!(r.json()["claims"]["sub"], "u-1");
    }
    // A token minted by the service carries the current kid and verifies.
    let minted = Auth::required(&rotation_config().jwt)
        .unwrap()
        .mint("u-2", Value::Null)
        .unwrap();
    let kid = jsonwebtoken::decode_header(&minted).unwrap().kid;
    assert_eq!(kid.as_deref(), Some("k2"));
    assert_eq!(get_me(addr, &minted).await.status, 200);
}

#[tokio::test]
async fn unknown_kid_or_wrong_key_is_refused() {
    let (addr, _stop) = rotation_server().await;
    let ok = claims(json!({}));
    let r = get_me(addr, &token(SECRET, Some("k9"), None, &ok)).await;
    assert!(desc(&r).contains("key id (kid)"), "{}", r.text);
    // The old secret is only good under its own kid ...
    let r = get_me(addr, &token(OLD_SECRET, Some("k2"), None, &ok)).await;
    assert!(desc(&r).contains("signature"), "{}", r.text);
    // ... and a token without kid is checked with the current key.
    let r = get_me(addr, &token(OLD_SECRET, None, None, &ok)).await;
    assert!(desc(&r).contains("signature"), "{}", r.text);
}

#[tokio::test]
async fn missing_iss_or_aud_is_refused_when_configured() {
    let (addr, _stop) = listen(service()).await;
    for (claim, word) in [("iss", "'iss'"), ("aud", "'aud'")] {
        let t = token(SECRET, None, None, &claims(json!({ claim: null })));
        let r = get_me(addr, &t).await;
        assert!(desc(&r).contains(word), "{claim}: {}", r.text);
    }
    let r = get_me(addr, &token(SECRET, None, None, &claims(json!({})))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn typ_other_than_jwt_is_refused() {
    let (addr, _stop) = listen(service()).await;
    let ok = claims(json!({}));
    for typ in ["foo", "dpop+jwt", "JWE"] {
        let r = get_me(addr, &token(SECRET, None, Some(typ), &ok)).await;
        assert!(desc(&r).contains("typ"), "{typ}: {}", r.text);
    }
    for typ in [None, Some("JWT"), Some("jwt"), Some("at+jwt")] {
        let r = get_me(addr, &token(SECRET, None, typ, &ok)).await;
        assert_eq!(r.status, 200, "{typ:?}: {}", r.text);
    }
}

/// A service that names no key ignores `kid` (identity providers set one).
#[tokio::test]
async fn kid_ignored_when_no_key_is_named() {
    let (addr, _stop) = listen(service()).await;
    let r = get_me(
        addr,
        &token(SECRET, Some("idp-key-7"), None, &claims(json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn setup_errors_are_clear() {
    let mut c = rotation_config();
    c.jwt.leeway = 3600;
    let e = Auth::required(&c.jwt).unwrap_err().to_string();
    assert!(e.contains("jwt_leeway") && e.contains("300 s"), "{e}");
    let mut c = rotation_config();
    c.jwt.kid = None;
    let e = Auth::required(&c.jwt).unwrap_err().to_string();
    assert!(
        e.contains("PYM_JWT_PREVIOUS_SECRETS") && e.contains("jwt_kid"),
        "{e}"
    );
    let mut c = rotation_config();
    c.jwt.algorithm = Algorithm::RS256;
    c.jwt.public_key = Some(include_str!("http_fixtures/rsa_public.pem").into());
    let e = Auth::required(&c.jwt).unwrap_err().to_string();
    assert!(e.contains("HS256"), "{e}");
    assert!(!format!("{:?}", Auth::required(&rotation_config().jwt).unwrap()).contains(OLD_SECRET));
}
