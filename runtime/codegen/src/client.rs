//! The typed client of a document: `<Title>Client`, one async method per
//! operation (the handler's arguments, without the caller, who travels in
//! the context), and per operation `Response::from_answer`, which reads
//! an answer back into the operation's `Response`.
//!
//! A method returns the body of the operation's one success response
//! (`Result<Signup, ApiError>`) when it declares exactly one 2XX; else the
//! whole `Response`. Errors in pym's standard JSON are `Err(ApiError)`.

use crate::operations::{Location, OperationModel, ParamModel};
use crate::status::StatusKey;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// One typed argument of an operation, as the server side typed it.
pub struct ArgModel<'a> {
    pub param: &'a ParamModel,
    pub arg: Ident,
    pub ty: TokenStream,
}

/// One variant of an operation's `Response`.
pub struct VariantModel {
    pub name: Ident,
    pub key: StatusKey,
    pub ty: Option<TokenStream>,
}

/// The parts of one operation's client.
pub struct ClientOp {
    /// The method of `<Title>Client`.
    pub method: TokenStream,
    /// `impl <module>::Response { fn from_answer }`.
    pub decode: TokenStream,
}

/// The client method and decoder of `op`.
pub fn operation(
    rt: &TokenStream,
    op: &OperationModel,
    module: &Ident,
    method: &Ident,
    args: &[ArgModel<'_>],
    body: Option<&(Ident, TokenStream, bool)>,
    variants: &[VariantModel],
) -> ClientOp {
    let api_error = quote!(#rt::http::ApiError);
    let decls = args.iter().map(|a| {
        let (n, t) = (&a.arg, &a.ty);
        quote!(#n: #t)
    });
    let body_decl = body.map(|(n, t, required)| match required {
        true => quote!(#n: &#t),
        false => quote!(#n: ::core::option::Option<&#t>),
    });
    let decls: Vec<TokenStream> = decls.chain(body_decl).collect();
    let request = request(rt, op, args, body);
    let (ret, finish) = match single_success(variants) {
        Some(v) => {
            let name = &v.name;
            let (ty, bind, value) = match (&v.ty, &v.key) {
                (Some(t), StatusKey::Code(_)) => (t.clone(), quote!((body)), quote!(body)),
                (Some(t), StatusKey::Range { .. }) => (t.clone(), quote!((_, body)), quote!(body)),
                (None, StatusKey::Code(_)) => (quote!(()), quote!(), quote!(())),
                (None, StatusKey::Range { .. }) => (quote!(()), quote!((_)), quote!(())),
            };
            (
                ty,
                quote! {
                    match #module::Response::from_answer(&answer)? {
                        #module::Response::#name #bind => ::core::result::Result::Ok(#value),
                        #[allow(unreachable_patterns)]
                        _ => ::core::result::Result::Err(answer.error()),
                    }
                },
            )
        }
        None => (
            quote!(#module::Response),
            quote!(#module::Response::from_answer(&answer)),
        ),
    };
    let doc = format!(
        " `{} {}`{}: the caller's token, request id and trace go along.",
        op.method,
        op.path,
        op.summary
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    let method = quote! {
        #[doc = #doc]
        pub async fn #method(&self, #(#decls),*) -> ::core::result::Result<#ret, #api_error> {
            let request = #request;
            let answer = self.client.send(request).await?;
            #finish
        }
    };
    let decode = decode(rt, module, variants);
    ClientOp { method, decode }
}

/// The one 2XX variant, if the operation declares exactly one.
fn single_success(variants: &[VariantModel]) -> Option<&VariantModel> {
    let mut ok = variants.iter().filter(|v| match v.key {
        StatusKey::Code(c) => (200..300).contains(&c),
        StatusKey::Range { min, max } => min == 200 && max == 299,
    });
    let first = ok.next()?;
    ok.next().is_none().then_some(first)
}

/// The `Request` of a call: path filled in, query pairs, header values
/// (arrays joined by commas), the body as JSON.
fn request(
    rt: &TokenStream,
    op: &OperationModel,
    args: &[ArgModel<'_>],
    body: Option<&(Ident, TokenStream, bool)>,
) -> TokenStream {
    let c = quote!(#rt::client);
    let method = format_ident!("{}", op.method.to_ascii_uppercase());
    let template = &op.path;
    let of = |loc: Location| args.iter().filter(move |a| a.param.location == loc);
    let path_values = of(Location::Path).map(|a| {
        let (n, arg) = (&a.param.name, &a.arg);
        quote!((#n, #c::params::texts(#n, &#arg)?))
    });
    let queries = of(Location::Query).map(|a| {
        let (n, arg) = (&a.param.name, &a.arg);
        quote! {
            for v in #c::params::texts(#n, &#arg)? {
                query.push((#n, v));
            }
        }
    });
    let headers = of(Location::Header).map(|a| {
        let (n, arg) = (&a.param.name, &a.arg);
        quote! {
            let values = #c::params::texts(#n, &#arg)?;
            if !values.is_empty() {
                headers.push((#n, values.join(",")));
            }
        }
    });
    let json = |n: &Ident| {
        quote! {
            #rt::__private::serde_json::to_vec(#n)
                .map_err(|e| #rt::http::ApiError::invalid_parameter("body", e))?
        }
    };
    let body = match body {
        Some((n, _, true)) => {
            let json = json(n);
            quote!(::core::option::Option::Some(#json))
        }
        Some((n, _, false)) => {
            let json = json(n);
            quote!(match #n {
                ::core::option::Option::Some(#n) => ::core::option::Option::Some(#json),
                ::core::option::Option::None => ::core::option::Option::None,
            })
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {{
        #[allow(unused_mut)]
        let mut query: ::std::vec::Vec<(&'static str, ::std::string::String)> = ::std::vec::Vec::new();
        #(#queries)*
        #[allow(unused_mut)]
        let mut headers: ::std::vec::Vec<(&'static str, ::std::string::String)> = ::std::vec::Vec::new();
        #(#headers)*
        #c::Request {
            method: #c::Method::#method,
            route: #template,
            path: #c::params::path(#template, &[#(#path_values),*])?,
            query,
            headers,
            body: #body,
        }
    }}
}

/// `Response::from_answer`: a pym error JSON → `Err`; else the variant of
/// the status (exact codes, then ranges, then `default`), its body read
/// as the declared type; an undeclared status → `Err`.
fn decode(rt: &TokenStream, module: &Ident, variants: &[VariantModel]) -> TokenStream {
    let c = quote!(#rt::client);
    let ranked = |want_code: bool| {
        variants
            .iter()
            .filter(move |v| matches!(v.key, StatusKey::Code(_)) == want_code)
    };
    let codes = ranked(true).map(|v| {
        let (name, StatusKey::Code(code)) = (&v.name, &v.key) else {
            unreachable!()
        };
        match &v.ty {
            Some(_) => quote!(#code => Self::#name(answer.json()?),),
            None => quote!(#code => Self::#name,),
        }
    });
    // Narrow ranges (2XX) before `default` (100..=599).
    let mut ranges: Vec<&VariantModel> = ranked(false).collect();
    ranges.sort_by_key(|v| match v.key {
        StatusKey::Range { min, max } => max - min,
        StatusKey::Code(_) => 0,
    });
    let ranges = ranges.iter().map(|v| {
        let (name, StatusKey::Range { min, max }) = (&v.name, &v.key) else {
            unreachable!()
        };
        match &v.ty {
            Some(_) => quote!(s if (#min..=#max).contains(&s) => Self::#name(answer.status, answer.json()?),),
            None => quote!(s if (#min..=#max).contains(&s) => Self::#name(answer.status),),
        }
    });
    quote! {
        impl #module::Response {
            /// The answer of a call of this operation, as its variant.
            pub fn from_answer(
                answer: &#c::Answer,
            ) -> ::core::result::Result<Self, #rt::http::ApiError> {
                if let ::core::option::Option::Some(e) = answer.pym_error() {
                    return ::core::result::Result::Err(e);
                }
                ::core::result::Result::Ok(match answer.status.as_u16() {
                    #(#codes)*
                    #(#ranges)*
                    _ => return ::core::result::Result::Err(answer.error()),
                })
            }
        }
    }
}

/// The `<Title>Client` struct and its methods.
pub fn client_struct(
    rt: &TokenStream,
    title: &str,
    name: &Ident,
    methods: &[TokenStream],
) -> TokenStream {
    let c = quote!(#rt::client);
    let doc = format!(
        " The client of `{title}`: one method per operation. Calls made in a request \
         handler or a task carry the caller's token, request id and trace; idempotent \
         calls are retried; errors come back as `ApiError`."
    );
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #[allow(dead_code)]
        pub struct #name {
            client: #c::Client,
        }

        #[allow(dead_code, clippy::all, clippy::pedantic)]
        impl #name {
            /// The API's name: its spec's `info.title`.
            pub const SERVICE: &'static str = #title;

            /// The client of the API at `base_url`, with default settings.
            pub fn new(base_url: &str) -> ::core::result::Result<Self, #c::ClientSetupError> {
                Self::with_config(base_url, #c::ClientConfig::default())
            }

            /// The client of the API at `base_url`.
            pub fn with_config(
                base_url: &str,
                config: #c::ClientConfig,
            ) -> ::core::result::Result<Self, #c::ClientSetupError> {
                ::core::result::Result::Ok(Self {
                    client: #c::Client::new(Self::SERVICE, base_url, config)?,
                })
            }

            /// The client of the API at the URL in `PYM_API_<TITLE>_URL`.
            pub fn from_env(config: #c::ClientConfig) -> ::core::result::Result<Self, #c::ClientSetupError> {
                ::core::result::Result::Ok(Self {
                    client: #c::Client::from_env(Self::SERVICE, config)?,
                })
            }

            /// The untyped client underneath.
            pub fn client(&self) -> &#c::Client {
                &self.client
            }

            #(#methods)*
        }
    }
}
