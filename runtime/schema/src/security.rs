//! What an operation's `security` means for pym: no token, a token
//! required, or a token verified when sent; a malformed `security` is an
//! error naming what was expected (it never means "no auth").

use serde_json::{Map, Value};

/// How an operation authenticates, from its (or the document's) `security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No `security`: no token needed (a token sent anyway is ignored).
    None,
    /// A non-empty requirement: a valid bearer token is required.
    Required,
    /// A requirement list that includes `{}`: a token is verified if sent.
    Optional,
}

/// The auth an operation needs from its `security` (or the document's):
/// none (absent, or `[]`: OpenAPI's explicit "no auth"), optional (an empty
/// requirement `{}` is listed) or required. Anything else than a list of
/// requirement objects, each mapping the name of a scheme defined in
/// `schemes` (`components.securitySchemes`) to a list of scopes, is an
/// error saying what was found and what is expected.
pub fn auth_mode(security: Option<&Value>, schemes: Option<&Value>) -> Result<AuthMode, String> {
    let Some(security) = security else {
        return Ok(AuthMode::None);
    };
    let Value::Array(reqs) = security else {
        return Err(format!(
            "'security' is {}; expected a list of security requirements such as \
             [{{bearer: []}}], or [] for no authentication",
            kind_of(security)
        ));
    };
    let schemes = schemes.and_then(Value::as_object);
    for (i, req) in reqs.iter().enumerate() {
        let Value::Object(req) = req else {
            return Err(format!(
                "'security[{i}]' is {}; expected an object mapping a security scheme name \
                 to a list of scopes, such as {{bearer: []}}",
                kind_of(req)
            ));
        };
        for (name, scopes) in req {
            if !scopes
                .as_array()
                .is_some_and(|s| s.iter().all(Value::is_string))
            {
                return Err(format!(
                    "'security[{i}].{name}' is {}; expected a list of scopes (strings), such as []",
                    kind_of(scopes)
                ));
            }
            if !schemes.is_some_and(|s| s.contains_key(name)) {
                let defined = schemes
                    .map(|s| s.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "none".into());
                return Err(format!(
                    "'security[{i}]' names the scheme '{name}', which is not defined in \
                     components.securitySchemes (defined: {defined})"
                ));
            }
        }
    }
    Ok(if reqs.is_empty() {
        AuthMode::None
    } else if reqs
        .iter()
        .any(|r| r.as_object().is_some_and(Map::is_empty))
    {
        AuthMode::Optional
    } else {
        AuthMode::Required
    })
}

/// What a JSON value is, for errors: "null", "a string", ...
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The mode of the operation `op` of `doc`: its own `security`, else the
/// document's.
pub fn operation_auth(doc: &Value, op: &Value) -> Result<AuthMode, String> {
    let schemes = doc.pointer("/components/securitySchemes");
    match op.get("security") {
        Some(own) => auth_mode(Some(own), schemes),
        None => auth_mode(doc.get("security"), schemes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_mode_from_security() {
        let schemes = json!({"bearer": {"type": "http", "scheme": "bearer"}, "other": {}});
        let ok = [
            (None, AuthMode::None),
            (Some(json!([])), AuthMode::None),
            (Some(json!([{"bearer": []}])), AuthMode::Required),
            (Some(json!([{"bearer": ["read"]}])), AuthMode::Required),
            (
                Some(json!([{"bearer": [], "other": []}])),
                AuthMode::Required,
            ),
            (Some(json!([{"bearer": []}, {}])), AuthMode::Optional),
            (Some(json!([{}])), AuthMode::Optional),
        ];
        for (security, want) in ok {
            assert_eq!(
                auth_mode(security.as_ref(), Some(&schemes)),
                Ok(want),
                "{security:?}"
            );
        }
    }

    #[test]
    fn auth_mode_refuses_malformed_security() {
        let schemes = json!({"bearer": {"type": "http", "scheme": "bearer"}});
        let bad = [
            (
                json!(null),
                Some(&schemes),
                "'security' is null; expected a list",
            ),
            (
                json!({"bearer": []}),
                Some(&schemes),
                "'security' is an object; expected a list",
            ),
            (
                json!("bearer"),
                Some(&schemes),
                "'security' is a string; expected a list",
            ),
            (json!(true), Some(&schemes), "'security' is a boolean"),
            (
                json!([null]),
                Some(&schemes),
                "'security[0]' is null; expected an object",
            ),
            (
                json!([{}, "bearer"]),
                Some(&schemes),
                "'security[1]' is a string",
            ),
            (
                json!([["bearer"]]),
                Some(&schemes),
                "'security[0]' is a list",
            ),
            (
                json!([{"bearer": null}]),
                Some(&schemes),
                "'security[0].bearer' is null; expected a list of scopes",
            ),
            (
                json!([{"bearer": "read"}]),
                Some(&schemes),
                "'security[0].bearer' is a string",
            ),
            (
                json!([{"bearer": [1]}]),
                Some(&schemes),
                "'security[0].bearer' is a list; expected a list of scopes (strings)",
            ),
            (
                json!([{"bearr": []}]),
                Some(&schemes),
                "names the scheme 'bearr', which is not defined in components.securitySchemes (defined: bearer)",
            ),
            (
                json!([{"bearer": []}]),
                None,
                "names the scheme 'bearer', which is not defined in components.securitySchemes (defined: none)",
            ),
        ];
        for (security, schemes, want) in bad {
            let got = auth_mode(Some(&security), schemes).unwrap_err();
            assert!(got.contains(want), "{security}: got {got}, want {want}");
        }
    }

    #[test]
    fn an_operation_overrides_the_document() {
        let doc = json!({
            "security": [{"bearer": []}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        });
        let cases = [
            (json!({}), AuthMode::Required),
            (json!({"security": []}), AuthMode::None),
            (
                json!({"security": [{}, {"bearer": []}]}),
                AuthMode::Optional,
            ),
        ];
        for (op, want) in cases {
            assert_eq!(operation_auth(&doc, &op), Ok(want), "{op}");
        }
        assert!(operation_auth(&doc, &json!({"security": {"bearer": []}})).is_err());
    }
}
