//! Auth in code: a login handler mints tokens with the `Auth` the builder
//! holds (no key handling of its own), and a `token` cookie is accepted
//! in place of the `Authorization` header when the config opts in.

mod http_common;

use axum::Json;
use axum::body::Body;
use axum::http::Request;
use http_common::*;
use pym_runtime::config::Config;
use pym_runtime::http::{ApiError, Auth, Claims, Service};
use serde_json::{Value, json};

const SPEC: &str = r#"
openapi: 3.1.0
info: {title: login, version: '1'}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
paths:
  /login:
    post:
      operationId: login
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [user], properties: {user: {type: string}}}
      responses: {'200': {description: a token}}
  /whoami:
    get:
      operationId: whoami
      security: [{bearer: []}]
      responses: {'200': {description: the caller}}
"#;

fn config_with(extra: &str) -> Config {
    let yaml = format!(
        "name: login\njwt_issuer: {ISSUER}\njwt_audience: {AUDIENCE}\njwt_secret_env: TEST_SECRET\n{extra}"
    );
    Config::from_yaml("login.yaml", &yaml, &|k| {
        (k == "TEST_SECRET").then(|| SECRET.to_string())
    })
    .unwrap()
}

fn service(config: Config) -> Service {
    let builder = Service::builder(config).spec_str("login.yaml", SPEC);
    let auth: Auth = builder
        .get_extension::<Auth>()
        .expect("the builder holds the Auth of the config");
    builder
        .handler("login", move |Json(body): Json<Value>| {
            let auth = auth.clone();
            async move {
                let user = body["user"].as_str().unwrap_or_default();
                let token = auth.mint(user, json!({"role": "member"}))?;
                Ok::<_, ApiError>(Json(json!({ "token": token })))
            }
        })
        .handler("whoami", |claims: Claims| async move {
            Json(json!({"user": claims.user_id(), "role": claims.get("role")}))
        })
        .build()
        .unwrap()
}

fn whoami(cookie: Option<&str>, bearer: Option<&str>) -> Request<Body> {
    let mut r = Request::get("/whoami");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    if let Some(t) = bearer {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_login_mints_tokens_that_work_in_the_header_or_the_opted_in_cookie() {
    let svc = service(config_with("jwt_cookie: token\n"));
    let r = call(&svc, post_json("/login", r#"{"user": "ann"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["token"].as_str().unwrap().to_string();
    // The minted token verifies with the service's own verifier.
    assert_eq!(auth().verify(&token).unwrap().user_id(), "ann");

    let cookie = format!("theme=dark; token={token}");
    let r = call(&svc, whoami(Some(&cookie), None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"user": "ann", "role": "member"}));
    let r = call(&svc, whoami(None, Some(&token))).await;
    assert_eq!(r.json()["user"], "ann");

    // A bad cookie is a bad token; the header wins over the cookie.
    call(&svc, whoami(Some("token=garbage"), None))
        .await
        .error(401, "TOKEN_INVALID");
    call(&svc, whoami(Some(&cookie), Some("garbage")))
        .await
        .error(401, "TOKEN_INVALID");
    call(&svc, whoami(Some("other=1"), None))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
}

#[tokio::test]
async fn without_jwt_cookie_a_cookie_is_not_a_token() {
    let svc = service(config_with(""));
    let token = auth().mint("ann", Value::Null).unwrap();
    call(&svc, whoami(Some(&format!("token={token}")), None))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
}

#[test]
fn a_bad_cookie_name_is_refused_at_load() {
    let yaml = "name: x\njwt_cookie: \"to ken\"\n";
    let e = Config::from_yaml("c.yaml", yaml, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("c.yaml:2: key 'jwt_cookie': a cookie name is"),
        "{e}"
    );
}
