//! # pym-codegen
//!
//! The code `pym_runtime::api!("openapi.yaml")` expands to, from an
//! OpenAPI 3.0 or 3.1 document: Rust types for `components/schemas` (by
//! typify), per operation a `Response` enum of its status codes, a trait
//! with one method per `operationId` (parameters and body as typed
//! arguments) and `bind`, which binds an implementation of it to a
//! `ServiceBuilder`. A library, so the macro crate stays a thin shell and
//! the generation is tested with plain `#[test]`s.

mod client;
mod crate_paths;
mod generate;
pub mod operations;
pub mod status;
mod types;

pub use generate::{Input, title_camel};
use proc_macro2::TokenStream;
use serde_json::Value;

/// The code of the document `text`, or every problem found in it (each
/// naming the place in the document and what was expected).
pub fn generate(input: &Input<'_>, text: &str) -> Result<TokenStream, Vec<String>> {
    let (doc, dialect) = pym_schema::read_doc(text).map_err(|e| vec![e])?;
    let types = types::Types::of_components(&doc, dialect, input.runtime).map_err(|e| vec![e])?;
    let ops = operations::operations(&doc, dialect)?;
    let info = |k: &str| doc.pointer(&format!("/info/{k}")).and_then(Value::as_str);
    let input = Input {
        title: info("title").unwrap_or("service"),
        version: info("version").unwrap_or(""),
        ..*input
    };
    generate::items(&input, types, &ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    const SPEC: &str = r#"
openapi: 3.0.3
info: {title: pet store, version: '2'}
security: [{bearer: []}]
components:
  securitySchemes: {bearer: {type: http, scheme: bearer}}
  schemas:
    Pet:
      type: object
      required: [id, name]
      properties:
        id: {type: integer, format: int64, readOnly: true}
        name: {type: string}
paths:
  /pets/{pet_id}:
    parameters:
      - {name: pet_id, in: path, required: true, schema: {type: string, format: uuid}}
    put:
      operationId: replacePet
      summary: Replace a pet.
      parameters:
        - {name: type, in: query, schema: {type: string, enum: [cat, dog]}}
        - {name: X-Dry-Run, in: header, required: true, schema: {type: boolean}}
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
      responses:
        '200':
          description: replaced
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '4XX': {description: refused}
        default:
          description: other
          content:
            application/json:
              schema: {type: object, properties: {why: {type: string}}}
"#;

    fn generated(spec: &str) -> Result<String, Vec<String>> {
        let rt = quote!(::rt);
        let input = Input {
            title: "",
            version: "",
            spec_name: "spec.yaml",
            spec_path: "/abs/spec.yaml",
            runtime: &rt,
            server: true,
        };
        generate(&input, spec).map(|t| t.to_string())
    }

    /// What the generated code must hold, piece by piece.
    #[test]
    fn a_document_becomes_a_trait_responses_and_bind() {
        let code = generated(SPEC).unwrap();
        let cases = [
            ("trait named after the title", "pub trait PetStoreApi"),
            (
                "method: path, query, header parameters then the body; optional ones as Option",
                "fn replace_pet (& self , claims : :: rt :: http :: Claims , pet_id : :: rt :: __private :: uuid :: Uuid , r#type : :: core :: option :: Option < types :: ReplacePetType > , x_dry_run : bool , body : :: core :: option :: Option < types :: Pet >) -> impl :: core :: future :: Future < Output = :: core :: result :: Result < replace_pet :: Response , :: rt :: http :: ApiError > , > + :: core :: marker :: Send ;",
            ),
            (
                "doc from method, path and summary",
                "# [doc = \" `PUT /pets/{pet_id}`: Replace a pet.\"]",
            ),
            ("response module", "pub mod replace_pet"),
            ("a status with a body", "Ok (types :: Pet) ,"),
            (
                "a range without one",
                "Status4xx (:: rt :: http :: axum :: http :: StatusCode) ,",
            ),
            (
                "default with an inline type",
                "Default (:: rt :: http :: axum :: http :: StatusCode , types :: ReplacePetDefault) ,",
            ),
            (
                "ranges checked",
                ":: rt :: http :: typed :: within (status , 400u16 , 499u16)",
            ),
            (
                "bind sets the spec",
                "builder . spec_str (\"spec.yaml\" , :: core :: include_str ! (\"/abs/spec.yaml\"))",
            ),
            (
                "bind reads parameters by their names (headers in lower case, as validation keeps them)",
                "let x_dry_run = input . param :: < bool > (\"x-dry-run\") ?",
            ),
            ("client named after the title", "pub struct PetStoreClient"),
            (
                "client method: the handler's arguments without the caller, the body by reference; one 2XX, so its body",
                "pub async fn replace_pet (& self , pet_id : :: rt :: __private :: uuid :: Uuid , r#type : :: core :: option :: Option < types :: ReplacePetType > , x_dry_run : bool , body : :: core :: option :: Option < & types :: Pet >) -> :: core :: result :: Result < types :: Pet , :: rt :: http :: ApiError >",
            ),
            (
                "answers read back: pym errors first, then codes, then ranges",
                "if let :: core :: option :: Option :: Some (e) = answer . pym_error ()",
            ),
            (
                "header parameters sent under their spec name",
                "headers . push ((\"X-Dry-Run\" , values . join (\",\")))",
            ),
            (
                "readOnly relaxed in the model",
                "pub id : :: std :: option :: Option < i64 >",
            ),
        ];
        for (case, want) in cases {
            assert!(code.contains(want), "{case}: {want}\nnot in\n{code}");
        }
    }

    #[test]
    fn problems_are_all_reported() {
        let spec = r#"
openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /a:
    get:
      responses: {'200': {description: ok}}
  /b:
    get:
      operationId: b
      responses: {'299x': {description: odd}}
"#;
        let cases = [
            (
                "swagger: '1.2'\n",
                vec![
                    "'swagger: \"1.2\"': expected \"2.0\" (upgraded to OpenAPI 3.0 on load) or an OpenAPI 3.0.x or 3.1.x document",
                ],
            ),
            (
                &spec.replace(
                    "      responses: {'200': {description: ok}}\n  /b",
                    "      operationId: a\n      responses: {'200': {description: ok}}\n  /b",
                ),
                vec![
                    "paths./b.get: response key '299x': expected a status code (100-599), a range such as 2XX, or default",
                ],
            ),
            (
                spec,
                vec![
                    "paths./a.get: no operationId (pym binds handlers by operationId)",
                    "paths./b.get: response key '299x': expected a status code (100-599), a range such as 2XX, or default",
                ],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(generated(text).unwrap_err(), want);
        }
        let clash = r#"
openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /a: {get: {operationId: getPet, responses: {'200': {description: ok}}}}
  /b: {get: {operationId: get_pet, responses: {'200': {description: ok}}}}
  /c: {get: {operationId: Types, responses: {'200': {description: ok}}}}
"#;
        assert_eq!(
            generated(clash).unwrap_err(),
            [
                "operationIds 'getPet' and 'get_pet' both become `get_pet`; rename one",
                "operationId 'Types' would be the module `types`, which holds the schema types; rename the operation",
            ]
        );
    }
}
