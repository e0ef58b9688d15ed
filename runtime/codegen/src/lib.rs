//! # pym-codegen
//!
//! The code `pym_runtime::api!("openapi.yaml")` expands to, from an
//! OpenAPI 3.0 or 3.1 document: Rust types for `components/schemas` (by
//! typify), per operation a `Response` enum of its status codes, a trait
//! with one method per `operationId` (parameters and body as typed
//! arguments) and `bind`, which binds an implementation of it to a
//! `ServiceBuilder`. A library, so the macro crate stays a thin shell and
//! the generation is tested with plain `#[test]`s.

mod crate_paths;
mod generate;
pub mod operations;
pub mod status;
mod types;

pub use generate::Input;
use proc_macro2::TokenStream;
use serde_json::Value;

/// The code of the document `text`, or every problem found in it (each
/// naming the place in the document and what was expected).
pub fn generate(input: &Input<'_>, text: &str) -> Result<TokenStream, Vec<String>> {
    let (doc, dialect) = pym_schema::read_doc(text).map_err(|e| vec![e])?;
    let types = types::Types::of_components(&doc, dialect).map_err(|e| vec![e])?;
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
    #[test]
    fn dump_hello() {
        let text = std::fs::read_to_string("../../examples/hello/openapi.yaml").unwrap();
        let rt = quote::quote!(::pym_runtime);
        let input = crate::Input { title: "", version: "", spec_name: "openapi.yaml", spec_path: "/x/openapi.yaml", runtime: &rt };
        let out = crate::generate(&input, &text).unwrap();
        std::fs::write("/tmp/hello_gen.rs", out.to_string()).unwrap();
    }
}
