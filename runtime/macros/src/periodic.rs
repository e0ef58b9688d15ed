//! `cron = "..", tz = "..", missed = ".."`: a periodic task. The values are
//! checked here, at compile time, by the runtime's own rules
//! (pym-schedule): a bad expression, zone or policy is an error on its
//! literal. A periodic task takes no argument, or one `pym_runtime::Tick`
//! (the tick it runs for; its type is checked by the generated code).

use crate::args::{TaskArgs, expected, literal, value};
use crate::signature::TaskSignature;
use darling::{Error, FromMeta, Result};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Lit, LitStr, Meta};

/// The string literal of `name = ".."`, checked by `check`.
fn checked_str(
    mi: &Meta,
    check: impl Fn(&str) -> std::result::Result<(), String>,
) -> Result<LitStr> {
    match literal(value(mi, r#""...""#)?) {
        Some(Lit::Str(s)) => match check(&s.value()) {
            Ok(()) => Ok(s.clone()),
            Err(e) => Err(Error::custom(e).with_span(s)),
        },
        _ => Err(expected(mi, "a string literal")),
    }
}

/// `cron = ".."`: 5 or 6 fields.
#[derive(Debug)]
pub(crate) struct Cron(pub LitStr);

impl FromMeta for Cron {
    fn from_meta(mi: &Meta) -> Result<Self> {
        checked_str(mi, |s| {
            pym_schedule::parse_cron(s)
                .map(drop)
                .map_err(|e| format!("`cron`: {e}"))
        })
        .map(Self)
    }
}

/// `tz = ".."`: an IANA time zone name.
#[derive(Debug)]
pub(crate) struct Tz(pub LitStr);

impl FromMeta for Tz {
    fn from_meta(mi: &Meta) -> Result<Self> {
        checked_str(mi, |s| {
            pym_schedule::parse_tz(s)
                .map(drop)
                .map_err(|e| format!("`tz`: {e}"))
        })
        .map(Self)
    }
}

/// `missed = "skip" | "once" | "all:N"`.
#[derive(Debug)]
pub(crate) struct MissedArg(pub pym_schedule::Missed, pub LitStr);

impl FromMeta for MissedArg {
    fn from_meta(mi: &Meta) -> Result<Self> {
        let lit = checked_str(mi, |s| {
            s.parse::<pym_schedule::Missed>()
                .map(drop)
                .map_err(|e| format!("`missed`: {e}"))
        })?;
        Ok(Self(lit.value().parse().expect("checked above"), lit))
    }
}

/// `tz` and `missed` need `cron`; a periodic task takes at most one
/// parameter (the tick).
pub(crate) fn check(args: &TaskArgs, sig: &TaskSignature) -> Result<()> {
    let mut errors = Error::accumulator();
    if args.cron.is_none() {
        if let Some(tz) = &args.tz {
            errors.push(
                Error::custom("`tz` is the zone of a `cron` schedule: add `cron = \"..\"`")
                    .with_span(&tz.0),
            );
        }
        if let Some(m) = &args.missed {
            errors.push(
                Error::custom("`missed` is the policy of a `cron` schedule: add `cron = \"..\"`")
                    .with_span(&m.1),
            );
        }
    }
    if let Some(c) = &args.cron
        && sig.params.len() > 1
    {
        errors.push(
            Error::custom(
                "a periodic task (`cron`) takes no argument, or one `pym_runtime::Tick` (the tick it runs for)",
            )
            .with_span(&sig.params[1].span())
            .with_span(&c.0),
        );
    }
    errors.finish()
}

/// `Some(Periodic { .. })` or `None`, for `TaskOptions::schedule`; and the
/// check that the one parameter, if any, is the tick.
pub(crate) fn options(
    args: &TaskArgs,
    sig: &TaskSignature,
    pym: &TokenStream,
) -> (TokenStream, TokenStream) {
    let Some(cron) = &args.cron else {
        return (quote!(::core::option::Option::None), quote!());
    };
    let cron = &cron.0;
    let tz = match &args.tz {
        Some(t) => {
            let t = &t.0;
            quote!(#t)
        }
        None => {
            let d = pym_schedule::DEFAULT_TZ;
            quote!(#d)
        }
    };
    let missed = match args.missed.as_ref().map_or_else(Default::default, |m| m.0) {
        pym_schedule::Missed::Skip => quote!(#pym::task::Missed::Skip),
        pym_schedule::Missed::Once => quote!(#pym::task::Missed::Once),
        pym_schedule::Missed::All(n) => quote!(#pym::task::Missed::All(#n)),
    };
    let takes_tick = !sig.params.is_empty();
    let tick_check = match sig.params.first() {
        Some(t) => quote_spanned! {t.span()=>
            const _: fn(#pym::task::Tick) -> #t = |tick| tick;
        },
        None => quote!(),
    };
    let periodic = quote! {
        ::core::option::Option::Some(#pym::task::Periodic {
            cron: #cron,
            tz: #tz,
            missed: #missed,
            takes_tick: #takes_tick,
        })
    };
    (periodic, tick_check)
}
