//! JWT: every failure mode, through the HTTP layer, plus RS256/ES256.

mod http_common;

use http_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pym_http::auth::now_secs;
use pym_runtime::http::Auth;
use serde_json::{Value, json};

const RSA_PRIVATE: &str = include_str!("http_fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("http_fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("http_fixtures/ec_private.pem");
const EC_PUBLIC: &str = include_str!("http_fixtures/ec_public.pem");

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn hs(secret: &str, c: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn me_with(token: &str) -> Reply {
    call(&service(), get_auth("/me", token)).await
}

fn desc(v: &Value) -> String {
    v["error_description"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn valid_token_is_accepted() {
    let r = me_with(&hs(SECRET, &claims(json!({"role": "admin"})))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["claims"]["role"], "admin");
}

#[tokio::test]
async fn missing_header() {
    call(&service(), get("/me"))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
    // "Bearer " with nothing after it
    let req = axum::http::Request::get("/me")
        .header("authorization", "Bearer ")
        .body(axum::body::Body::empty())
        .unwrap();
    call(&service(), req)
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
}

#[tokio::test]
async fn wrong_scheme() {
    let req = axum::http::Request::get("/me")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(axum::body::Body::empty())
        .unwrap();
    let v = call(&service(), req).await.error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("Bearer"), "{v}");
}

#[tokio::test]
async fn malformed_tokens() {
    for t in [
        "garbage",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.!!!.x",
    ] {
        let v = me_with(t).await.error(401, "TOKEN_INVALID");
        assert!(desc(&v).contains("well-formed"), "{t}: {v}");
    }
}

#[tokio::test]
async fn bad_signature() {
    let v = me_with(&hs("another-secret", &claims(json!({}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("signature"), "{v}");
    // Tampered payload, original signature.
    let good = hs(SECRET, &claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64url(claims(json!({"sub": "admin"})).to_string().as_bytes());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    me_with(&forged).await.error(401, "TOKEN_INVALID");
}

#[tokio::test]
async fn expired() {
    let now = now_secs();
    let v = me_with(&hs(
        SECRET,
        &claims(json!({"exp": now - 3600, "iat": now - 7200})),
    ))
    .await
    .error(401, "TOKEN_EXPIRED");
    assert_eq!(v["status"], 401);
}

#[tokio::test]
async fn not_yet_valid() {
    let v = me_with(&hs(SECRET, &claims(json!({"nbf": now_secs() + 3600}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("nbf"), "{v}");
}

#[tokio::test]
async fn wrong_audience_and_issuer() {
    let v = me_with(&hs(SECRET, &claims(json!({"aud": "other-api"}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("aud"), "{v}");
    let v = me_with(&hs(SECRET, &claims(json!({"iss": "https://evil.test"}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("iss"), "{v}");
    let v = me_with(&hs(SECRET, &claims(json!({"aud": null}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("aud"), "{v}");
    let v = me_with(&hs(SECRET, &claims(json!({"iss": null}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("iss"), "{v}");
}

#[tokio::test]
async fn missing_exp_or_sub() {
    let v = me_with(&hs(SECRET, &claims(json!({"exp": null}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("exp"), "{v}");
    let v = me_with(&hs(SECRET, &claims(json!({"sub": null}))))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("sub"), "{v}");
    me_with(&hs(SECRET, &claims(json!({"sub": ""}))))
        .await
        .error(401, "TOKEN_INVALID");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let payload = b64url(claims(json!({})).to_string().as_bytes());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let h = b64url(header.as_bytes());
        for t in [format!("{h}.{payload}."), format!("{h}.{payload}")] {
            me_with(&t).await.error(401, "TOKEN_INVALID");
        }
    }
}

fn rs_service() -> pym_runtime::http::Service {
    let auth = Auth::pem(
        Algorithm::RS256,
        RSA_PUBLIC,
        Some(RSA_PRIVATE),
        Some(ISSUER),
        Some(AUDIENCE),
    )
    .unwrap();
    builder().auth(auth).build().unwrap()
}

#[tokio::test]
async fn rs256_works() {
    let svc = rs_service();
    let token = svc
        .auth()
        .unwrap()
        .mint("u-rs", json!({"scope": "x"}))
        .unwrap();
    let r = call(&svc, get_auth("/me", &token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ctx_user_id"], "u-rs");
}

#[tokio::test]
async fn hs_rs_confusion_is_refused() {
    // Classic attack: HS256 token whose HMAC key is the service's RSA public key.
    let svc = rs_service();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    let v = call(&svc, get_auth("/me", &forged))
        .await
        .error(401, "TOKEN_INVALID");
    assert!(desc(&v).contains("RS256"), "{v}");
    // And the other way: an HS256 service handed an RS256 token.
    let rs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    me_with(&rs_token).await.error(401, "TOKEN_INVALID");
}

#[tokio::test]
async fn es256_works_and_rejects_other_keys() {
    let auth = Auth::pem(
        Algorithm::ES256,
        EC_PUBLIC,
        Some(EC_PRIVATE),
        Some(ISSUER),
        Some(AUDIENCE),
    )
    .unwrap();
    let svc = builder().auth(auth).build().unwrap();
    let token = svc.auth().unwrap().mint("u-ec", json!(null)).unwrap();
    let r = call(&svc, get_auth("/me", &token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // An RS256 token is refused by an ES256 service.
    let rs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    call(&svc, get_auth("/me", &rs_token))
        .await
        .error(401, "TOKEN_INVALID");
}

#[test]
fn mint_and_verify_round_trip() {
    let a = auth();
    let t = a.mint("u-5", json!({"plan": "pro"})).unwrap();
    let c = a.verify(&t).unwrap();
    assert_eq!(c.user_id(), "u-5");
    assert_eq!(c.get("plan").unwrap(), "pro");
    assert_eq!(c.get("iss").unwrap(), ISSUER);
    assert_eq!(c.get("aud").unwrap(), AUDIENCE);
    // Debug of claims does not dump them.
    assert!(!format!("{c:?}").contains("pro"));
}

#[test]
fn config_builds_rs256_from_env() {
    let yaml = "jwt_algorithm: RS256\njwt_public_key_env: K_PUB\njwt_private_key_env: K_PRIV\n";
    let cfg = pym_runtime::config::Config::from_yaml("c.yaml", yaml, &|k| match k {
        "K_PUB" => Some(RSA_PUBLIC.to_string()),
        "K_PRIV" => Some(RSA_PRIVATE.to_string()),
        _ => None,
    })
    .unwrap();
    let a = Auth::required(&cfg.jwt).unwrap();
    let t = a.mint("u", json!(null)).unwrap();
    assert!(a.verify(&t).is_ok());
    // A wrong PEM names the env var.
    let bad = pym_runtime::config::Config::from_yaml("c.yaml", yaml, &|k| match k {
        "K_PUB" => Some("not a pem".to_string()),
        _ => None,
    })
    .unwrap();
    let e = Auth::required(&bad.jwt).unwrap_err().to_string();
    assert!(e.contains("K_PUB"), "{e}");
}
