//! Typed handlers from `api!`: the arguments a handler gets (converted to
//! the spec's types, after validation), what it answers (one variant per
//! status of the spec), and what is refused before it runs.

mod http_common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_common::*;
use pym_runtime::http::{ApiError, Claims, Service};
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

pym_runtime::api!("http_fixtures/typed.yaml");

/// What the handlers were called with, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Notes {
    seen: Seen,
}

impl NotesApi for Notes {
    async fn get_note(
        &self,
        note_id: NonZeroU64,
        tags: Option<Vec<String>>,
        limit: Option<i64>,
        x_tenant: GetNoteXTenant,
    ) -> Result<get_note::Response, ApiError> {
        // `minimum: 1` made the id non-zero, the pattern the tenant a
        // checked newtype.
        let x_tenant = String::from(x_tenant);
        self.seen
            .push(format!("get_note {note_id} {tags:?} {limit:?} {x_tenant}"));
        if note_id.get() == 404 {
            return Ok(get_note::Response::NotFound);
        }
        Ok(get_note::Response::Ok(Note {
            id: Some(note_id.get() as i64),
            text: "hello".into(),
            tags: tags.unwrap_or_default(),
            tenant: Some(x_tenant),
        }))
    }

    async fn add_note(&self, body: Option<NewNote>) -> Result<add_note::Response, ApiError> {
        let Some(note) = body else {
            self.seen.push("add_note None".into());
            return Ok(add_note::Response::Default(
                StatusCode::UNPROCESSABLE_ENTITY,
                Problem {
                    why: "no note".into(),
                },
            ));
        };
        let text = String::from(note.text);
        // `format: email`: an `Email`, checked by validation's own rule.
        let author: Option<pym_runtime::Email> = note.author;
        self.seen.push(format!(
            "add_note {text:?} pin={} author={:?}",
            note.pin.is_some(),
            author.as_deref()
        ));
        match text.as_str() {
            "conflict" => Err(ApiError::new(
                StatusCode::CONFLICT,
                "NOTE_EXISTS",
                "that note exists",
            )),
            "wrong status" => Ok(add_note::Response::Status2xx(
                StatusCode::NOT_FOUND,
                note_of(text),
            )),
            _ => Ok(add_note::Response::Status2xx(
                StatusCode::ACCEPTED,
                note_of(text),
            )),
        }
    }

    async fn whoami(&self, claims: Claims) -> Result<whoami::Response, ApiError> {
        self.seen.push(format!("whoami {}", claims.user_id()));
        Ok(whoami::Response::Ok(Caller {
            user: Some(claims.user_id().to_string()),
        }))
    }

    async fn maybe(&self, claims: Option<Claims>) -> Result<maybe::Response, ApiError> {
        let user = claims.map(|c| c.user_id().to_string());
        self.seen.push(format!("maybe {user:?}"));
        Ok(maybe::Response::Ok(Caller { user }))
    }
}

/// A note as answered: `id` is `readOnly` (so an `Option` in the shared
/// type) and required in responses, which debug builds check.
fn note_of(text: String) -> Note {
    Note {
        id: Some(1),
        text,
        tags: vec![],
        tenant: None,
    }
}

fn service() -> (Service, Seen) {
    let seen = Seen::default();
    let svc = bind(Service::builder(config()), Notes { seen: seen.clone() })
        .build()
        .unwrap();
    (svc, seen)
}

fn get_tenant(uri: &str, tenant: &str) -> Request<Body> {
    Request::get(uri)
        .header("x-tenant", tenant)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn parameters_arrive_typed() {
    let (svc, seen) = service();
    let r = call(&svc, get_tenant("/notes/7?tags=a,b&limit=3", "acme")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({"id": 7, "text": "hello", "tags": ["a", "b"], "tenant": "acme"})
    );
    let r = call(&svc, get_tenant("/notes/8", "acme")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A status the spec declares without a body: pym's error JSON, with
    // the spec's description of that response.
    let r = call(&svc, get_tenant("/notes/404", "acme")).await;
    let e = r.error(404, "NOT_FOUND");
    assert_eq!(e["error_description"], "no such note");
    assert_eq!(
        seen.all(),
        [
            "get_note 7 Some([\"a\", \"b\"]) Some(3) acme",
            "get_note 8 None None acme",
            "get_note 404 None None acme",
        ]
    );
}

#[tokio::test]
async fn what_the_spec_refuses_never_reaches_the_handler() {
    let (svc, seen) = service();
    // (request, field and rule named in the 400)
    let cases = [
        (
            get_tenant("/notes/0", "acme"),
            "note_id: 0 is less than the minimum of 1",
        ),
        (
            get_tenant("/notes/x", "acme"),
            "note_id: must be an integer, got \"x\"",
        ),
        (
            get_tenant("/notes/1?limit=11", "acme"),
            "limit: 11 is greater than the maximum of 10",
        ),
        (
            get_tenant("/notes/1", "ACME"),
            "x-tenant: \"ACME\" does not match \"^[a-z]+$\"",
        ),
        (
            get("/notes/1"),
            "x-tenant: the header parameter is required",
        ),
        (
            post_json("/notes", r#"{"text": "UPPER"}"#),
            "text: \"UPPER\" does not match \"^[a-z ]+$\"",
        ),
        (
            post_json("/notes", r#"{"text": "a", "pin": "12"}"#),
            "pin: <hidden> is shorter than 4 characters",
        ),
        (
            post_json("/notes", r#"{"text": "a", "x": 1}"#),
            "body: unexpected properties x",
        ),
        (
            post_json("/notes", r#"{"text": "a", "author": "ann"}"#),
            "author: \"ann\" is not a \"email\"",
        ),
    ];
    for (req, want) in cases {
        let r = call(&svc, req).await;
        let e = r.error(400, "INVALID_PARAMETER");
        assert_eq!(e["error_description"], want);
    }
    assert!(seen.all().is_empty(), "{:?}", seen.all());
}

#[tokio::test]
async fn bodies_and_status_ranges() {
    let (svc, seen) = service();
    let r = call(
        &svc,
        post_json(
            "/notes",
            r#"{"text": "a note", "pin": "1234", "author": "ann@example.com"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({"id": 1, "text": "a note", "tags": []})
    );
    let empty = Request::post("/notes").body(Body::empty()).unwrap();
    let r = call(&svc, empty).await;
    // An error status with a body the spec declares: sent as declared.
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json(), serde_json::json!({"why": "no note"}));
    let r = call(&svc, post_json("/notes", r#"{"text": "conflict"}"#)).await;
    r.error(409, "NOTE_EXISTS");
    // 404 is not within the 2XX the variant stands for.
    let r = call(&svc, post_json("/notes", r#"{"text": "wrong status"}"#)).await;
    r.error(500, "SERVER_ERROR");
    assert_eq!(
        seen.all(),
        [
            "add_note \"a note\" pin=true author=Some(\"ann@example.com\")",
            "add_note None",
            "add_note \"conflict\" pin=false author=None",
            "add_note \"wrong status\" pin=false author=None",
        ]
    );
}

#[test]
fn typed_and_untyped_handlers_share_the_binding_check() {
    let err = bind(
        Service::builder(config()),
        Notes {
            seen: Seen::default(),
        },
    )
    .handler("get_note", || async { "again" })
    .build()
    .err()
    .expect("bound twice")
    .to_string();
    assert!(err.contains("handlers bound twice: get_note"), "{err}");
}

#[tokio::test]
async fn the_caller_arrives_as_claims() {
    let (svc, seen) = service();
    let token = auth().mint("u-1", serde_json::json!({})).unwrap();
    let r = call(&svc, get_auth("/whoami", &token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), serde_json::json!({"user": "u-1"}));
    call(&svc, get("/whoami"))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
    let r = call(&svc, get_auth("/maybe", &token)).await;
    assert_eq!(r.json(), serde_json::json!({"user": "u-1"}));
    let r = call(&svc, get("/maybe")).await;
    assert_eq!(r.json(), serde_json::json!({}));
    assert_eq!(
        seen.all(),
        ["whoami u-1", "maybe Some(\"u-1\")", "maybe None"]
    );
}
