//! A pymacaron service's Swagger 2.0 spec, served as it is: `api!` and the
//! start-up loader upgrade it to OpenAPI 3 (x-bind-server names the
//! operations, basePath stays in the URLs, pymacaron's bearer apiKey is a
//! bearer scheme), and requests are validated against it.

mod http_common;

use axum::body::Body;
use axum::http::Request;
use axum::http::StatusCode;
use http_common::*;
use pym_runtime::http::{ApiError, Claims, Service};

pym_runtime::api!("http_fixtures/swagger2.yaml");

struct Items;

impl ItemsApi for Items {
    // `x-bind-server: myservice.api.create_item`, `security: [{oauth_token: []}]`.
    async fn create_item(
        &self,
        claims: Claims,
        body: NewItem,
    ) -> Result<create_item::Response, ApiError> {
        Ok(create_item::Response::Created(Item {
            id: "i1".into(),
            name: String::from(body.name),
            note: body.note,
            tags: vec![],
            owner: Some(claims.user_id().to_string()),
        }))
    }

    // `x-bind-server: myservice.api.get_item`; `tags` is a csv array.
    async fn get_item(
        &self,
        item_id: GetItemItemId,
        tags: Option<Vec<String>>,
    ) -> Result<get_item::Response, ApiError> {
        let id = String::from(item_id);
        if id == "gone" {
            return Ok(get_item::Response::NotFound);
        }
        Ok(get_item::Response::Ok(Item {
            id,
            name: "thing".into(),
            note: None,
            tags: tags.unwrap_or_default(),
            owner: None,
        }))
    }
}

fn service() -> Service {
    bind(Service::builder(config()), Items).build().unwrap()
}

#[tokio::test]
async fn a_swagger2_spec_binds_by_x_bind_server_and_serves_at_its_base_path() {
    let svc = service();
    let r = call(&svc, get("/v1/items/abc?tags=red,blue")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], "abc");
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["red", "blue"]),
        "csv, 2.0's default"
    );
    assert_eq!(
        call(&svc, get("/items/abc")).await.status,
        404,
        "the base path is part of the URL"
    );
    call(&svc, get("/v1/items/gone"))
        .await
        .error(404, "NOT_FOUND");
    let r = call(&svc, get("/v1/items/ABC")).await;
    let e = r.error(400, "INVALID_PARAMETER");
    assert!(
        e["error_description"].as_str().unwrap().contains("item_id"),
        "{e}"
    );
}

#[tokio::test]
async fn its_body_is_validated_and_its_pymacaron_token_scheme_is_a_bearer_token() {
    let svc = service();
    let token = auth().mint("u-1", serde_json::json!({})).unwrap();
    let ok = call(
        &svc,
        post_json_auth("/v1/items", r#"{"name": "pen"}"#, &token),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED.as_u16(), "{}", ok.text);
    assert_eq!(ok.json()["owner"], "u-1");
    assert_eq!(ok.json()["note"], serde_json::Value::Null);

    let bad = call(&svc, post_json_auth("/v1/items", r#"{"name": ""}"#, &token)).await;
    let e = bad.error(400, "INVALID_PARAMETER");
    assert!(
        e["error_description"].as_str().unwrap().contains("name"),
        "{e}"
    );

    let anonymous = call(&svc, post_json("/v1/items", r#"{"name": "pen"}"#)).await;
    anonymous.error(401, "AUTHORIZATION_HEADER_MISSING");
}

fn post_json_auth(uri: &str, body: &str, token: &str) -> Request<Body> {
    let mut req = post_json(uri, body);
    let bearer = format!("Bearer {token}").parse().unwrap();
    req.headers_mut().insert("authorization", bearer);
    req
}
