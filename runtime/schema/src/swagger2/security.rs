//! `securityDefinitions` → `components.securitySchemes`.

use super::Ctx;
use super::params::extensions;
use serde_json::{Map, Value, json};

/// One 2.0 security definition as a 3.0 security scheme. pymacaron's JWT
/// definition (an `apiKey` in the `Authorization` header with
/// `x-authentication-scheme: Bearer`) becomes an HTTP bearer scheme; its
/// `x-bind-function` (pymacaron's token check) is kept but not needed: pym
/// verifies the token itself, with pym-config.yaml's `jwt_*` keys.
pub(super) fn scheme(cx: &mut Ctx<'_>, d: &Value, at: &str) -> Value {
    let get = |k: &str| d.get(k).and_then(Value::as_str);
    let mut out = match get("type") {
        Some("basic") => json!({ "type": "http", "scheme": "basic" }),
        Some("apiKey") if is_bearer(d) => {
            json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" })
        }
        Some("apiKey") => json!({ "type": "apiKey", "name": d.get("name"), "in": d.get("in") }),
        Some("oauth2") => oauth2(cx, d, at),
        other => {
            cx.note(
                at,
                format!(
                    "security type {other:?} is not one of basic, apiKey, oauth2; kept as it is"
                ),
            );
            d.clone()
        }
    };
    if let Value::Object(m) = &mut out {
        if let Some(desc) = d.get("description") {
            m.insert("description".into(), desc.clone());
        }
        extensions(d, m);
    }
    out
}

/// An `apiKey` in the `Authorization` header whose value is a bearer token.
fn is_bearer(d: &Value) -> bool {
    let get = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
    get("in") == "header"
        && get("name").eq_ignore_ascii_case("authorization")
        && get("x-authentication-scheme").eq_ignore_ascii_case("bearer")
}

fn oauth2(cx: &mut Ctx<'_>, d: &Value, at: &str) -> Value {
    let flow = d.get("flow").and_then(Value::as_str).unwrap_or_default();
    let (name, keys): (&str, &[&str]) = match flow {
        "implicit" => ("implicit", &["authorizationUrl"]),
        "password" => ("password", &["tokenUrl"]),
        "application" => ("clientCredentials", &["tokenUrl"]),
        "accessCode" => ("authorizationCode", &["authorizationUrl", "tokenUrl"]),
        other => {
            cx.note(at, format!("oauth2 flow {other:?} is not one of implicit, password, application, accessCode"));
            return json!({ "type": "oauth2", "flows": {} });
        }
    };
    let mut f = Map::new();
    for k in keys {
        if let Some(v) = d.get(*k) {
            f.insert((*k).to_string(), v.clone());
        }
    }
    f.insert(
        "scopes".into(),
        d.get("scopes").cloned().unwrap_or_else(|| json!({})),
    );
    json!({ "type": "oauth2", "flows": { name: f } })
}
