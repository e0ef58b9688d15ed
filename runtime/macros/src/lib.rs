//! Procedural macros of pym-runtime: `#[asynctask]`.
//!
//! One step per file: [`args`] reads the attribute's arguments, [`signature`]
//! checks the function, [`generate`] writes the task module.

mod args;
mod generate;
mod signature;

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

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
/// the caller's token has expired), `replay_guard_secs = N` (remember the id
/// of a task that succeeded for N seconds and skip later deliveries of it). Arguments: one parameter is passed as
/// itself, several as a tuple; all must be `Serialize + DeserializeOwned`.
/// The function itself stays callable directly (it then runs inline).
#[proc_macro_attribute]
pub fn asynctask(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// The task, or every error found in the arguments and the signature, after
/// the item unchanged (so that its users report nothing more).
fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let message = format!("#[asynctask] goes on an `async fn`: {e}");
            let error = syn::Error::new(e.span(), message).to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = darling::Error::accumulator();
    let args = errors.handle(args::TaskArgs::parse(attr));
    let sig = errors.handle(signature::TaskSignature::check(&func));
    match (errors.finish(), args, sig) {
        (Ok(()), Some(args), Some(sig)) => generate::task(&func, &args, &sig, &runtime_path()),
        (result, _, _) => {
            let errors = result.err().map(darling::Error::write_errors);
            quote!(#func #errors)
        }
    }
}

/// How the generated code names pym-runtime from the crate being compiled.
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
