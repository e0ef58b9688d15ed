//! Checks of the function under `#[asynctask]`: what a task can be.

use darling::{Error, Result};
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

/// What generation needs from a checked function: its parameter types, in order.
pub(crate) struct TaskSignature {
    pub params: Vec<Type>,
}

impl TaskSignature {
    /// Checks `func`, reporting every problem at once.
    pub(crate) fn check(func: &ItemFn) -> Result<Self> {
        let sig = &func.sig;
        let mut errors = Error::accumulator();
        if sig.asyncness.is_none() {
            errors.push(Error::custom("#[asynctask] needs an `async fn`").with_span(&sig.fn_token));
        }
        if !sig.generics.params.is_empty() {
            errors.push(
                Error::custom("#[asynctask] functions cannot be generic: the worker must know the argument types")
                    .with_span(&sig.generics),
            );
        }
        if let ReturnType::Default = sig.output {
            errors.push(
                Error::custom("#[asynctask] functions return a `Result<_, E>` with `E: Into<TaskError>`: add `-> Result<(), TaskError>`")
                    .with_span(&sig.ident),
            );
        }
        let params = sig
            .inputs
            .iter()
            .filter_map(|arg| errors.handle(param(arg)))
            .collect();
        errors.finish_with(Self { params })
    }
}

/// The type of one parameter, if it is `name: Type` (or `_: Type`).
fn param(arg: &FnArg) -> Result<Type> {
    match arg {
        FnArg::Receiver(r) => {
            Err(Error::custom("#[asynctask] functions cannot take self").with_span(r))
        }
        FnArg::Typed(pt) if matches!(&*pt.pat, Pat::Ident(_) | Pat::Wild(_)) => {
            Ok((*pt.ty).clone())
        }
        FnArg::Typed(pt) => Err(Error::custom(
            "use a plain name for task parameters (`name: Type`), then destructure in the body",
        )
        .with_span(&pt.pat)),
    }
}
