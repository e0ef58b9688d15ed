//! `ServiceBuilder::document`: another OpenAPI document's operations served
//! beside the spec's, bound, validated and authenticated alike (pym's admin
//! API is one).

mod http_common;

use http_common::*;
use pym_runtime::http::ServiceError;

const DOC: &str = r#"
openapi: 3.1.0
info: {title: extra, version: '1'}
paths:
  /_extra/{n}:
    get:
      operationId: extra_get
      parameters: [{name: n, in: path, required: true, schema: {type: integer, maximum: 10}}]
      responses: {'200': {description: ok}}
"#;

#[tokio::test]
async fn a_documents_operations_are_bound_and_validated() {
    let svc = builder()
        .document("extra.yaml", DOC)
        .handler("extra_get", || async { "extra" })
        .build()
        .unwrap();
    let ok = call(&svc, get("/_extra/3")).await;
    assert_eq!((ok.status, ok.text.as_str()), (200, "extra"));
    call(&svc, get("/_extra/11"))
        .await
        .error(400, "INVALID_PARAMETER");
    // The spec's own operations are still there; /openapi.yaml is the spec alone.
    call(&svc, get("/me"))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
    let doc = call(&svc, get("/openapi.yaml")).await.text;
    assert!(!doc.contains("extra_get"), "{doc}");
}

#[test]
fn a_documents_operations_need_handlers_and_paths_of_their_own() {
    let unbound = builder().document("extra.yaml", DOC).build().err().unwrap();
    assert!(matches!(unbound, ServiceError::Binding(_)), "{unbound}");
    assert!(
        unbound.to_string().contains("extra_get (GET /_extra/{n})"),
        "{unbound}"
    );
    let clash = DOC.replace("/_extra/{n}", "/items/{n}");
    let clash = builder()
        .document("extra.yaml", &clash)
        .handler("extra_get", || async { "extra" })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        clash.contains("operation extra_get (GET /items/{n}) of extra is also in the spec"),
        "{clash}"
    );
}
