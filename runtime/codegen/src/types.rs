//! Rust types from JSON Schemas, by typify: one per `components/schemas`
//! entry, and one per inline schema an operation uses (named after the
//! operation).
//!
//! What typify is given: the schema in JSON Schema 2020-12 (3.0 documents
//! translated first by `pym_schema::convert_30`), with `required` relaxed
//! for `readOnly` and `writeOnly` properties (`pym_schema::apply_view`,
//! both views): one type serves requests and responses, so a property the
//! server sets (`readOnly`) or never returns (`writeOnly`) is an `Option`.
//! Run-time validation still requires it on the side where the spec does.
//! A `{type: string, format: email}` becomes the runtime's `Email` (typify's
//! `x-rust-type` extension), checked by the rule validation uses.

use crate::crate_paths;
use proc_macro2::TokenStream;
use pym_schema::{Dialect, View, apply_view};
use serde_json::Value;
use typify::{CrateVers, TypeSpace, TypeSpaceSettings};

/// The module the schema types are generated in, at the macro's call site.
pub const TYPES_MOD: &str = "types";

/// The runtime crate, as `x-rust-type` names it.
const RUNTIME_CRATE: &str = "pym-runtime";

/// The types of one document.
pub struct Types {
    space: TypeSpace,
    /// The path of the runtime crate, through which generated code names
    /// the crates it uses.
    runtime: TokenStream,
}

impl Types {
    /// The type space with every `components/schemas` entry added.
    pub fn of_components(
        doc: &Value,
        dialect: Dialect,
        runtime: &TokenStream,
    ) -> Result<Self, String> {
        let mut settings = TypeSpaceSettings::default();
        settings.with_type_mod(TYPES_MOD);
        // `x-rust-type` naming the runtime's types (see `mark_emails`),
        // under the name the service knows the runtime by.
        let runtime_name = runtime.to_string().replace(' ', "");
        let rename = runtime_name.trim_start_matches("::").to_string();
        settings.with_crate(RUNTIME_CRATE, CrateVers::Any, Some(&rename));
        let mut space = TypeSpace::new(&settings);
        let mut defs = Vec::new();
        for (name, schema) in doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let schema = prepared(schema, dialect, true);
            let parsed = serde_json::from_value::<schemars::schema::Schema>(schema)
                .map_err(|e| format!("components.schemas.{name}: not a JSON Schema: {e}"))?;
            defs.push((name.clone(), parsed));
        }
        space
            .add_ref_types(defs)
            .map_err(|e| format!("components.schemas: {e}"))?;
        Ok(Types {
            space,
            runtime: runtime.clone(),
        })
    }

    /// The Rust type of `schema` (already in 2020-12), adding a type named
    /// after `name_hint` if it is not a `$ref` to a component.
    pub fn type_of(
        &mut self,
        schema: &Value,
        name_hint: &str,
        place: &str,
    ) -> Result<TokenStream, String> {
        let schema = prepared(schema, Dialect::V31, false);
        let parsed = serde_json::from_value::<schemars::schema::Schema>(schema)
            .map_err(|e| format!("{place}: not a JSON Schema: {e}"))?;
        let id = self
            .space
            .add_type_with_name(&parsed, Some(name_hint.to_string()))
            .map_err(|e| format!("{place}: {e}"))?;
        let ty = self
            .space
            .get_type(&id)
            .map_err(|e| format!("{place}: {e}"))?;
        Ok(crate_paths::through_runtime(ty.ident(), &self.runtime))
    }

    /// Every type, as items of the types module, with the crates they use
    /// named through the runtime.
    pub fn into_tokens(self) -> TokenStream {
        crate_paths::through_runtime(self.space.to_stream(), &self.runtime)
    }
}

/// `schema` in 2020-12, `required` relaxed for read-only and write-only
/// properties.
fn prepared(schema: &Value, dialect: Dialect, from_30: bool) -> Value {
    let schema = match (dialect, from_30) {
        (Dialect::V30, true) => pym_schema::convert_30(schema, false),
        _ => schema.clone(),
    };
    let mut schema = apply_view(
        &apply_view(&schema, View::Request, false),
        View::Response,
        false,
    );
    mark_emails(&mut schema);
    schema
}

/// Give every `{type: string, format: email}` inside `schema` the runtime's
/// `Email` as its Rust type. A nullable one stays a string (typify would
/// drop the null).
fn mark_emails(schema: &mut Value) {
    let Value::Object(m) = schema else {
        return;
    };
    if m.get("type").and_then(Value::as_str) == Some("string")
        && m.get("format").and_then(Value::as_str) == Some("email")
    {
        m.insert(
            "x-rust-type".into(),
            serde_json::json!({"crate": RUNTIME_CRATE, "version": "*", "path": "pym_runtime::Email"}),
        );
    }
    for (k, v) in m.iter_mut() {
        match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                for s in v.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                    mark_emails(s);
                }
            }
            "items" | "additionalProperties" | "not" | "contains" | "propertyNames" => {
                mark_emails(v);
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                for s in v.as_array_mut().into_iter().flatten() {
                    mark_emails(s);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types(components: Value, dialect: &str) -> String {
        let doc = json!({"openapi": dialect, "components": {"schemas": components}});
        let d = if dialect.starts_with("3.0") {
            Dialect::V30
        } else {
            Dialect::V31
        };
        let t = Types::of_components(&doc, d, &quote::quote!(::rt)).unwrap();
        t.into_tokens().to_string()
    }

    /// `(case, components, dialect, text the generated code must contain)`.
    #[test]
    fn schemas_become_types() {
        let user = json!({"User": {
            "type": "object",
            "description": "A person.",
            "required": ["id", "email", "password"],
            "properties": {
                "id": {"type": "string", "format": "uuid", "readOnly": true},
                "email": {"type": "string"},
                "password": {"type": "string", "writeOnly": true},
                "nick": {"type": "string", "nullable": true}
            }
        }});
        let cases = [
            ("docs", user.clone(), "3.0.3", "# [doc = \"A person.\"]"),
            ("struct", user.clone(), "3.0.3", "pub struct User"),
            (
                "required",
                user.clone(),
                "3.0.3",
                "pub email : :: std :: string :: String",
            ),
            (
                "readOnly relaxed",
                user.clone(),
                "3.0.3",
                "pub id : :: std :: option :: Option < :: rt :: __private :: uuid :: Uuid >",
            ),
            (
                "writeOnly relaxed",
                user.clone(),
                "3.0.3",
                "pub password : :: std :: option :: Option < :: std :: string :: String >",
            ),
            (
                "3.0 nullable",
                user,
                "3.0.3",
                "pub nick : :: std :: option :: Option < :: std :: string :: String >",
            ),
            (
                "serde through the runtime",
                json!({"A": {"type": "object", "properties": {"a": {"type": "integer"}}}}),
                "3.1.0",
                "# [serde (crate = \"::rt::__private::serde\")]",
            ),
            (
                "enum",
                json!({"Color": {"type": "string", "enum": ["red", "green"]}}),
                "3.1.0",
                "pub enum Color { # [serde (rename = \"red\")] Red",
            ),
            (
                "oneOf",
                json!({"Pet": {"oneOf": [
                    {"type": "object", "required": ["cat"], "properties": {"cat": {"type": "string"}}, "additionalProperties": false},
                    {"type": "object", "required": ["dog"], "properties": {"dog": {"type": "string"}}, "additionalProperties": false}
                ]}}),
                "3.1.0",
                "pub enum Pet",
            ),
            (
                "allOf",
                json!({
                    "Base": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
                    "Named": {"allOf": [{"$ref": "#/components/schemas/Base"},
                        {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}]}
                }),
                "3.1.0",
                "pub struct Named { pub id : i64 , pub name : :: std :: string :: String",
            ),
            (
                "email",
                json!({"A": {"type": "object", "required": ["to"], "properties": {
                    "to": {"type": "string", "format": "email", "maxLength": 254},
                    "cc": {"type": "array", "items": {"type": "string", "format": "email"}},
                    "bcc": {"type": ["string", "null"], "format": "email"}}}}),
                "3.1.0",
                "pub bcc : :: std :: option :: Option < :: std :: string :: String > , \
                 # [serde (default , skip_serializing_if = \"::std::vec::Vec::is_empty\")] \
                 pub cc : :: std :: vec :: Vec < :: rt :: Email > , pub to : :: rt :: Email ,",
            ),
            (
                "date-time",
                json!({"E": {"type": "object", "required": ["at"], "properties": {"at": {"type": "string", "format": "date-time"}}}}),
                "3.1.0",
                "pub at : :: rt :: __private :: chrono :: DateTime < :: rt :: __private :: chrono :: offset :: Utc >",
            ),
        ];
        for (case, components, dialect, want) in cases {
            let got = types(components, dialect);
            assert!(got.contains(want), "{case}: {want}\nnot in\n{got}");
        }
    }

    #[test]
    fn a_bad_schema_is_named() {
        let doc = json!({"components": {"schemas": {"A": {"type": 12}}}});
        let e = Types::of_components(&doc, Dialect::V31, &quote::quote!(::rt))
            .err()
            .unwrap();
        assert!(
            e.starts_with("components.schemas.A: not a JSON Schema"),
            "{e}"
        );
    }
}
