//! Procedural macros of pym-runtime: `#[asynctask]`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, Token};

/// Turn an `async fn` into a task that can be spawned on a queue.
///
/// ```ignore
/// #[pym_runtime::asynctask(queue = "emails", max_retries = 8, timeout_secs = 30, priority = "high")]
/// async fn send_email_async(to: String, welcome: Welcome) -> Result<(), TaskError> { ... }
///
/// send_email_async::spawn(&queue, ("a@b.c".into(), welcome)).await?;
/// send_email_async::spawn_in(&queue, Duration::from_secs(60), args).await?;
/// ```
///
/// Attributes (all optional): `name = "..."` (wire name, default the
/// function name), `queue = "..."`, `max_retries = N`, `timeout_secs = N`,
/// `priority = "high" | "normal" | "low"`, `fresh_token` (refuse to run once
/// the caller's token has expired). Arguments: one parameter is passed as
/// itself, several as a tuple; all must be `Serialize + DeserializeOwned`.
/// The function itself stays callable directly (it then runs inline).
#[proc_macro_attribute]
pub fn asynctask(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn runtime_path() -> proc_macro2::TokenStream {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("pym-runtime") {
        Ok(FoundCrate::Itself) => quote!(crate),
        Ok(FoundCrate::Name(name)) => {
            let id = format_ident!("{}", name);
            quote!(::#id)
        }
        Err(_) => quote!(::pym_runtime),
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let func: ItemFn = syn::parse2(item)?;
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "#[asynctask] needs an `async fn`",
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            func.sig.generics.span(),
            "#[asynctask] functions cannot be generic: the worker must know the argument types",
        ));
    }
    let pym = runtime_path();
    let fn_name = &func.sig.ident;
    let vis = &func.vis;
    // Items inside the generated module are as visible as the function, so a
    // private task may take private argument types.
    let inner_vis = match vis {
        syn::Visibility::Public(_) => quote!(pub),
        syn::Visibility::Inherited => quote!(pub(super)),
        syn::Visibility::Restricted(_) => quote!(pub(crate)),
    };

    let mut name = fn_name.to_string();
    let mut queue: Option<syn::LitStr> = None;
    let mut max_retries: Option<u32> = None;
    let mut timeout_secs: Option<u64> = None;
    let mut priority: Option<String> = None;
    let mut fresh_token = false;

    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match &meta {
            Meta::Path(p) if p.is_ident("fresh_token") => fresh_token = true,
            Meta::NameValue(nv) => {
                let key = nv
                    .path
                    .get_ident()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                let lit = match &nv.value {
                    Expr::Lit(ExprLit { lit, .. }) => lit,
                    other => return Err(syn::Error::new(other.span(), "expected a literal")),
                };
                match (key.as_str(), lit) {
                    ("name", Lit::Str(s)) => name = s.value(),
                    // Checked at compile time by the runtime's own rule
                    // (`queue_check` below): this crate cannot depend on it.
                    ("queue", Lit::Str(s)) => queue = Some(s.clone()),
                    ("max_retries", Lit::Int(i)) => max_retries = Some(i.base10_parse()?),
                    ("timeout_secs", Lit::Int(i)) => {
                        let t: u64 = i.base10_parse()?;
                        if t == 0 {
                            return Err(syn::Error::new(
                                i.span(),
                                "timeout_secs must be at least 1",
                            ));
                        }
                        timeout_secs = Some(t);
                    }
                    ("priority", Lit::Str(s)) => {
                        let p = s.value();
                        if !["high", "normal", "low"].contains(&p.as_str()) {
                            return Err(syn::Error::new(
                                s.span(),
                                "priority is \"high\", \"normal\" or \"low\"",
                            ));
                        }
                        priority = Some(p);
                    }
                    _ => {
                        return Err(syn::Error::new(
                            meta.span(),
                            "unknown or mistyped attribute; expected name = \"..\", queue = \"..\", max_retries = N, timeout_secs = N, priority = \"high|normal|low\", fresh_token",
                        ));
                    }
                }
            }
            _ => {
                return Err(syn::Error::new(
                    meta.span(),
                    "unknown attribute; expected name, queue, max_retries, timeout_secs, priority or fresh_token",
                ));
            }
        }
    }

    // Parameters → Args type and destructuring.
    let mut types = Vec::new();
    let mut idents = Vec::new();
    for (i, arg) in func.sig.inputs.iter().enumerate() {
        match arg {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "#[asynctask] functions cannot take self",
                ));
            }
            FnArg::Typed(pt) => {
                if !matches!(&*pt.pat, Pat::Ident(_) | Pat::Wild(_)) {
                    return Err(syn::Error::new(
                        pt.pat.span(),
                        "use a plain name for task parameters",
                    ));
                }
                types.push((*pt.ty).clone());
                idents.push(format_ident!("__arg{}", i));
            }
        }
    }
    let (args_ty, destructure) = match types.len() {
        0 => (quote!(()), quote!(let () = __args;)),
        1 => {
            let t = &types[0];
            let a = &idents[0];
            (quote!(#t), quote!(let #a = __args;))
        }
        _ => (quote!((#(#types,)*)), quote!(let (#(#idents,)*) = __args;)),
    };

    let queue_expr = match &queue {
        Some(q) => quote!(#q),
        None => quote!(#pym::task::TaskOptions::DEFAULT.queue),
    };
    // The queue-name rule lives in pym_runtime::contract; a bad literal fails
    // const evaluation, with the error on the literal.
    let queue_check = queue.as_ref().map(|q| {
        quote_spanned! {q.span()=>
            const _: () = if !#pym::contract::is_valid_queue_name(#q) {
                ::core::panic!("{}", #pym::contract::QUEUE_NAME_MACRO_ERROR)
            };
        }
    });
    let retries_expr = match max_retries {
        Some(r) => quote!(#r),
        None => quote!(#pym::task::TaskOptions::DEFAULT.max_retries),
    };
    let timeout_expr = match timeout_secs {
        Some(t) => quote!(::core::time::Duration::from_secs(#t)),
        None => quote!(#pym::task::TaskOptions::DEFAULT.timeout),
    };
    let priority_expr = match priority.as_deref() {
        Some("high") => quote!(#pym::task::Priority::High),
        Some("low") => quote!(#pym::task::Priority::Low),
        Some(_) => quote!(#pym::task::Priority::Normal),
        None => quote!(#pym::task::TaskOptions::DEFAULT.priority),
    };
    let doc = format!("Spawn handles of the task [`{fn_name}`](fn@{fn_name}).");
    let span = Span::call_site();
    let task_ty = syn::Ident::new("Task", span);

    Ok(quote! {
        #func

        #[doc = #doc]
        #[allow(non_snake_case, dead_code)]
        #vis mod #fn_name {
            #[allow(unused_imports)]
            use super::*;

            #queue_check

            /// Arguments of the task (one parameter: itself; several: a tuple).
            #inner_vis type Args = #args_ty;

            /// The task type registered with the worker.
            #inner_vis struct #task_ty;

            impl #pym::task::Task for #task_ty {
                type Args = Args;
                const NAME: &'static str = #name;
                const OPTIONS: #pym::task::TaskOptions = #pym::task::TaskOptions {
                    queue: #queue_expr,
                    max_retries: #retries_expr,
                    timeout: #timeout_expr,
                    priority: #priority_expr,
                    fresh_token: #fresh_token,
                };
                fn call(__args: Args) -> #pym::task::TaskFuture {
                    ::std::boxed::Box::pin(async move {
                        #destructure
                        match super::#fn_name(#(#idents),*).await {
                            ::core::result::Result::Ok(_) => ::core::result::Result::Ok(()),
                            ::core::result::Result::Err(e) => ::core::result::Result::Err(
                                ::core::convert::Into::<#pym::task::TaskError>::into(e),
                            ),
                        }
                    })
                }
            }

            #pym::inventory::submit! {
                #pym::task::Registration::of::<#task_ty>()
            }

            /// Enqueue the task now (in the caller's context).
            #inner_vis async fn spawn(queue: &#pym::Queue, args: Args) -> ::core::result::Result<#pym::TaskId, #pym::SpawnError> {
                queue.spawn::<#task_ty>(args, #pym::When::Now).await
            }

            /// Enqueue the task to run after `delay`.
            #inner_vis async fn spawn_in(
                queue: &#pym::Queue,
                delay: ::core::time::Duration,
                args: Args,
            ) -> ::core::result::Result<#pym::TaskId, #pym::SpawnError> {
                queue.spawn::<#task_ty>(args, #pym::When::After(delay)).await
            }

            /// Enqueue the task to run at `at`.
            #inner_vis async fn spawn_at(
                queue: &#pym::Queue,
                at: ::std::time::SystemTime,
                args: Args,
            ) -> ::core::result::Result<#pym::TaskId, #pym::SpawnError> {
                queue.spawn::<#task_ty>(args, #pym::When::At(at)).await
            }
        }
    })
}
