//! `api!("../openapi.yaml")`: read the spec (relative to the calling
//! file, as `include_str!` does; to the crate's `Cargo.toml` where the
//! compiler cannot tell that file, as some IDE servers) and expand to what `pym_codegen` generates from it, or to
//! one `compile_error!` per problem found in it, at the path's literal.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

/// `"path"` or `"path", client`.
struct Args {
    path: LitStr,
    client_only: bool,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path: LitStr = input.parse()?;
        let mut client_only = false;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let what: Ident = input.parse()?;
            if what != "client" {
                return Err(syn::Error::new(
                    what.span(),
                    format!(
                        "unknown option `{what}`: the only option is `client` (the client of an API this service calls, without the service trait)"
                    ),
                ));
            }
            client_only = true;
            let _ = input.parse::<Option<Token![,]>>()?;
        }
        Ok(Self { path, client_only })
    }
}

/// The generated items, or the errors.
pub fn expand(
    input: TokenStream,
    base: Option<std::path::PathBuf>,
    runtime: &TokenStream,
) -> TokenStream {
    let Args {
        path: lit,
        client_only,
    } = match syn::parse2(input) {
        Ok(a) => a,
        Err(e) => {
            let message = format!(
                "api! takes the path of an OpenAPI file, relative to this file, and `client` for the client only: api!(\"../openapi.yaml\") or api!(\"../apis/greeter.yaml\", client): {e}"
            );
            return syn::Error::new(e.span(), message).to_compile_error();
        }
    };
    let name = lit.value();
    let dir = base.unwrap_or_else(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| ".".into())
            .into()
    });
    // Absolute, so the generated `include_str!` finds it from any file.
    let path = std::fs::canonicalize(dir.join(&name)).unwrap_or_else(|_| dir.join(&name));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let message = format!(
                "api!: cannot read {}: {e} (the path is relative to the file that calls api!)",
                path.display()
            );
            return syn::Error::new(lit.span(), message).to_compile_error();
        }
    };
    let spec_path = path.to_string_lossy();
    let input = pym_codegen::Input {
        title: "",
        version: "",
        spec_name: &name,
        spec_path: &spec_path,
        runtime,
        server: !client_only,
    };
    match pym_codegen::generate(&input, &text) {
        Ok(items) => items,
        Err(problems) => {
            let errors = problems.iter().map(|p| {
                syn::Error::new(lit.span(), format!("api!: {name}: {p}")).to_compile_error()
            });
            quote!(#(#errors)*)
        }
    }
}
