//! The code `#[asynctask]` writes: the function as it was, then a module of
//! the same name with the `Task` type, its registration and the spawn handles.
//!
//! Every runtime path goes through `pym` (see `runtime_path`): `Queue`,
//! `SpawnError`, `TaskId`, `When`, `contract::*`, `inventory::submit`,
//! `task::*`. The runtime facade keeps exporting them.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Ident, ItemFn, LitStr, ReturnType, Type, Visibility};

use crate::args::{OnExpiry, Priority, TaskArgs};
use crate::signature::TaskSignature;

/// The function followed by its task module.
pub(crate) fn task(
    func: &ItemFn,
    args: &TaskArgs,
    sig: &TaskSignature,
    pym: &TokenStream,
) -> TokenStream {
    let fn_name = &func.sig.ident;
    let vis = &func.vis;
    let inner_vis = inner_visibility(vis);
    let name = match &args.name {
        Some(n) => n.0.value(),
        None => fn_name.to_string(),
    };
    let idents: Vec<Ident> = (0..sig.params.len())
        .map(|i| format_ident!("__arg{}", i))
        .collect();
    let (args_ty, destructure) = args_binding(&sig.params, &idents);
    let queue = args.queue.as_ref().map(|q| &q.0);
    let queue_check = queue.map(|q| queue_check(q, pym));
    let (schedule, tick_check) = crate::periodic::options(args, sig, pym);
    let options = options(args, queue, schedule, pym);
    let doc = format!("Spawn handles of the task [`{fn_name}`](fn@{fn_name}).");
    let task_ty = Ident::new("Task", Span::call_site());
    let spawn_fns = spawn_fns(&task_ty, &inner_vis, pym);
    let flow_fn = match args.flow().flow_fn(func, pym) {
        Ok(f) => f,
        Err(e) => {
            let errors = e.write_errors();
            return quote!(#func #errors);
        }
    };
    let output = match &func.sig.output {
        ReturnType::Type(_, ty) => quote!(<#ty as #pym::task::TaskReturn>::Ok),
        ReturnType::Default => quote!(()),
    };
    // A tracked task keeps its result in its record.
    let ok = match args.track {
        Some(_) => quote!(::core::result::Result::Ok(__value) => #pym::task::keep_result(&__value)),
        None => quote!(::core::result::Result::Ok(_) => ::core::result::Result::Ok(())),
    };

    quote! {
        #func

        #[doc = #doc]
        #[allow(non_snake_case, dead_code)]
        #vis mod #fn_name {
            #[allow(unused_imports)]
            use super::*;

            #queue_check
            #tick_check

            /// Arguments of the task (one parameter: itself; several: a tuple).
            #inner_vis type Args = #args_ty;

            /// What the task returns in `Ok` (its handle's `result()`).
            #inner_vis type Output = #output;

            /// The task type registered with the worker.
            #inner_vis struct #task_ty;

            impl #pym::task::Task for #task_ty {
                type Args = Args;
                const NAME: &'static str = #name;
                const OPTIONS: #pym::task::TaskOptions = #options;
                fn call(__args: Args) -> #pym::task::TaskFuture {
                    ::std::boxed::Box::pin(async move {
                        #destructure
                        match super::#fn_name(#(#idents),*).await {
                            #ok,
                            ::core::result::Result::Err(e) => ::core::result::Result::Err(
                                ::core::convert::Into::<#pym::task::TaskError>::into(e),
                            ),
                        }
                    })
                }
                #flow_fn
            }

            #pym::inventory::submit! {
                #pym::task::Registration::of::<#task_ty>()
            }

            #spawn_fns
        }
    }
}

/// Items inside the generated module are as visible as the function, so a
/// private task may take private argument types.
fn inner_visibility(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => quote!(pub),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(_) => quote!(pub(crate)),
    }
}

/// The `Args` type (one parameter: itself; several: a tuple) and the
/// statement that binds `idents` from `__args`.
fn args_binding(types: &[Type], idents: &[Ident]) -> (TokenStream, TokenStream) {
    match (types, idents) {
        ([], _) => (quote!(()), quote!(let () = __args;)),
        ([t], [a]) => (quote!(#t), quote!(let #a = __args;)),
        _ => (quote!((#(#types,)*)), quote!(let (#(#idents,)*) = __args;)),
    }
}

/// The queue-name rule lives in `pym_runtime::contract`; a bad literal fails
/// const evaluation, with the error on the literal.
fn queue_check(queue: &LitStr, pym: &TokenStream) -> TokenStream {
    quote_spanned! {queue.span()=>
        const _: () = if !#pym::contract::is_valid_queue_name(#queue) {
            ::core::panic!("{}", #pym::contract::QUEUE_NAME_MACRO_ERROR)
        };
    }
}

/// The `TaskOptions` literal: each argument given, else the runtime's default.
fn options(
    args: &TaskArgs,
    queue: Option<&LitStr>,
    schedule: TokenStream,
    pym: &TokenStream,
) -> TokenStream {
    let default = quote!(#pym::task::TaskOptions::DEFAULT);
    let queue = match queue {
        Some(q) => quote!(#q),
        None => quote!(#default.queue),
    };
    let max_retries = match &args.max_retries {
        Some(r) => {
            let r = r.0;
            quote!(#r)
        }
        None => quote!(#default.max_retries),
    };
    let timeout = match &args.timeout_secs {
        Some(t) => {
            let t = t.0;
            quote!(::core::time::Duration::from_secs(#t))
        }
        None => quote!(#default.timeout),
    };
    let priority = match args.priority {
        Some(Priority::High) => quote!(#pym::task::Priority::High),
        Some(Priority::Normal) => quote!(#pym::task::Priority::Normal),
        Some(Priority::Low) => quote!(#pym::task::Priority::Low),
        None => quote!(#default.priority),
    };
    let fresh_token = args.fresh_token.0;
    let trace_link = args.trace_link.0;
    let replay_guard = match &args.replay_guard_secs {
        Some(r) => {
            let r = r.0;
            quote!(::core::option::Option::Some(::core::time::Duration::from_secs(#r)))
        }
        None => quote!(#default.replay_guard),
    };
    let expires_in = match &args.expires_in_secs {
        Some(e) => {
            let e = e.0;
            quote!(::core::option::Option::Some(::core::time::Duration::from_secs(#e)))
        }
        None => quote!(#default.expires_in),
    };
    let discard_expired = match args.on_expiry {
        Some(OnExpiry::Discard) => quote!(true),
        Some(OnExpiry::DeadLetter) => quote!(false),
        None => quote!(#default.discard_expired),
    };
    let flow = args.flow().options(pym);
    let track = match &args.track {
        Some(t) => {
            let secs = t.ttl_secs;
            let ttl = match secs {
                Some(n) => quote!(::core::time::Duration::from_secs(#n)),
                None => quote!(#pym::task_record::DEFAULT_TTL),
            };
            quote!(::core::option::Option::Some(#ttl))
        }
        None => quote!(#default.track),
    };
    quote! {
        #pym::task::TaskOptions {
            queue: #queue,
            max_retries: #max_retries,
            timeout: #timeout,
            priority: #priority,
            fresh_token: #fresh_token,
            replay_guard: #replay_guard,
            expires_in: #expires_in,
            discard_expired: #discard_expired,
            schedule: #schedule,
            #flow
            trace_link: #trace_link,
            track: #track,
        }
    }
}

/// `spawn`, `spawn_in` and `spawn_at`: enqueue now, after a delay, at a
/// time; `spawn_keyed`: now, on the shard of a key; `spawn_with`: with
/// every option (when, shard key, expiry), the one that makes the handle
/// the others return. `handle` and `cancel`: from an id, in any process.
fn spawn_fns(task_ty: &Ident, inner_vis: &TokenStream, pym: &TokenStream) -> TokenStream {
    let result = quote!(::core::result::Result<#pym::TaskHandle<Output>, #pym::SpawnError>);
    quote! {
        /// Enqueue the task now (in the caller's context).
        #inner_vis async fn spawn(queue: &#pym::Queue, args: Args) -> #result {
            spawn_with(queue, ::core::default::Default::default(), args).await
        }

        /// Enqueue the task to run after `delay`.
        #inner_vis async fn spawn_in(
            queue: &#pym::Queue,
            delay: ::core::time::Duration,
            args: Args,
        ) -> #result {
            let opts = #pym::SpawnOptions {
                when: #pym::When::After(delay),
                ..::core::default::Default::default()
            };
            spawn_with(queue, opts, args).await
        }

        /// Enqueue the task to run at `at`.
        #inner_vis async fn spawn_at(
            queue: &#pym::Queue,
            at: ::std::time::SystemTime,
            args: Args,
        ) -> #result {
            let opts = #pym::SpawnOptions {
                when: #pym::When::At(at),
                ..::core::default::Default::default()
            };
            spawn_with(queue, opts, args).await
        }

        /// Enqueue the task now, on the shard of `key` if its queue is
        /// sharded: the tasks of one key keep their order.
        #inner_vis async fn spawn_keyed(
            queue: &#pym::Queue,
            key: &str,
            args: Args,
        ) -> #result {
            let opts = #pym::SpawnOptions {
                shard_key: ::core::option::Option::Some(key),
                ..::core::default::Default::default()
            };
            spawn_with(queue, opts, args).await
        }

        /// Enqueue the task with `opts`: when, the shard key, the expiry.
        #inner_vis async fn spawn_with(
            queue: &#pym::Queue,
            opts: #pym::SpawnOptions<'_>,
            args: Args,
        ) -> #result {
            queue
                .spawn_with::<#task_ty>(args, opts)
                .await
                .map(#pym::TaskHandle::typed)
        }

        /// The handle of the task `id` (spawned by any process).
        #inner_vis fn handle(
            queue: &#pym::Queue,
            id: impl ::core::convert::Into<#pym::TaskId>,
        ) -> #pym::TaskHandle<Output> {
            #pym::TaskHandle::of::<#task_ty>(queue, id.into())
        }

        /// Cancel the task `id` (an id or a handle), from any process: if it
        /// has not started it never runs; if it runs, it is told through its
        /// context (`context().cancelled()`).
        #inner_vis async fn cancel(
            queue: &#pym::Queue,
            id: impl ::core::convert::Into<#pym::TaskId>,
        ) -> ::core::result::Result<#pym::Cancelled, #pym::HandleError> {
            handle(queue, id).cancel().await
        }
    }
}
