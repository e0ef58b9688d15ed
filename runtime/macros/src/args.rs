//! The arguments of `#[asynctask(..)]`, read with darling into [`TaskArgs`].
//!
//! darling reports unknown and duplicate arguments; the value types below
//! report a wrong value, naming the argument and what it expects.

use darling::util::path_to_string;
use darling::{Error, FromMeta, Result, ast::NestedMeta};
use proc_macro2::TokenStream;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Meta, UnOp};

/// `#[asynctask(name = "..", queue = "..", max_retries = N, timeout_secs = N,
/// priority = "high" | "normal" | "low", fresh_token, replay_guard_secs = N,
/// expires_in_secs = N, on_expiry = "dead_letter" | "discard",
/// cron = "..", tz = "..", missed = "skip" | "once" | "all:N", unique(..),
/// rate = "N/s", max_concurrency = N, limit_key = "..", trace_link,
/// track | track(ttl_secs = N))]`, all optional (unique, rate,
/// max_concurrency, limit_key: see [`crate::flow`]).
#[derive(Debug, FromMeta)]
pub(crate) struct TaskArgs {
    /// Wire name; the function's name if absent.
    pub name: Option<StrLit>,
    /// Checked at compile time by the runtime's own rule (see
    /// `generate::queue_check`): this crate cannot depend on the runtime.
    pub queue: Option<StrLit>,
    pub max_retries: Option<MaxRetries>,
    pub timeout_secs: Option<Seconds>,
    pub priority: Option<Priority>,
    #[darling(default)]
    pub fresh_token: FreshToken,
    pub replay_guard_secs: Option<ReplayGuardSecs>,
    pub expires_in_secs: Option<Seconds>,
    pub on_expiry: Option<OnExpiry>,
    /// A periodic task (see `crate::periodic`).
    pub cron: Option<crate::periodic::Cron>,
    pub tz: Option<crate::periodic::Tz>,
    pub missed: Option<crate::periodic::MissedArg>,
    pub unique: Option<crate::flow::UniqueArg>,
    pub rate: Option<crate::flow::RateArg>,
    pub max_concurrency: Option<crate::flow::MaxConcurrency>,
    pub limit_key: Option<StrLit>,
    #[darling(default)]
    pub trace_link: TraceLink,
    pub track: Option<Track>,
}

impl TaskArgs {
    /// The flow-control arguments ([`crate::flow`]).
    pub(crate) fn flow(&self) -> crate::flow::FlowArgs<'_> {
        crate::flow::FlowArgs {
            unique: self.unique.as_ref(),
            rate: self.rate.as_ref(),
            max_concurrency: self.max_concurrency.as_ref(),
            limit_key: self.limit_key.as_ref(),
        }
    }

    /// Reads the tokens between the parentheses of `#[asynctask(..)]`.
    pub(crate) fn parse(attr: TokenStream) -> Result<Self> {
        let (bare, items): (Vec<_>, Vec<_>) = NestedMeta::parse_meta_list(attr)?
            .into_iter()
            .partition(|item| matches!(item, NestedMeta::Lit(_)));
        let mut errors: Vec<Error> = bare
            .iter()
            .map(|lit| {
                Error::custom("expected `argument = value` or `fresh_token`, found a bare literal")
                    .with_span(lit)
            })
            .collect();
        // Unknown arguments are told here, with the list of the known ones
        // (darling stops listing them past a handful).
        let unknown_name = |item: &NestedMeta| match item {
            NestedMeta::Meta(m) => {
                Some(path_to_string(m.path())).filter(|name| !ARGUMENTS.contains(&name.as_str()))
            }
            _ => None,
        };
        let (unknown, items): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|item| unknown_name(item).is_some());
        errors.extend(unknown.iter().map(|item| {
            let name = unknown_name(item).unwrap_or_default();
            let guess = ARGUMENTS
                .iter()
                .map(|a| (strsim::jaro_winkler(&name, a), a))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|x, y| x.0.total_cmp(&y.0))
                .map_or(String::new(), |(_, a)| format!(" (did you mean `{a}`?)"));
            Error::custom(format!(
                "unknown argument `{name}`{guess}; #[asynctask] takes: {}",
                ARGUMENTS.join(", ")
            ))
            .with_span(item)
        }));
        match Self::from_list(&items) {
            Ok(args) if errors.is_empty() => Ok(args),
            Ok(_) => Err(Error::multiple(errors)),
            Err(e) => {
                errors.push(e);
                Err(Error::multiple(errors))
            }
        }
    }
}

/// Every argument of `#[asynctask(..)]`, as written: the fields of
/// [`TaskArgs`] (a test checks that each one is known to it).
pub(crate) const ARGUMENTS: [&str; 18] = [
    "name",
    "queue",
    "priority",
    "max_retries",
    "timeout_secs",
    "fresh_token",
    "replay_guard_secs",
    "expires_in_secs",
    "on_expiry",
    "cron",
    "tz",
    "missed",
    "unique",
    "rate",
    "max_concurrency",
    "limit_key",
    "trace_link",
    "track",
];

/// A string literal: `queue = "emails"`.
#[derive(Debug)]
pub(crate) struct StrLit(pub LitStr);

impl FromMeta for StrLit {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match literal(value(mi, r#""...""#)?) {
            Some(Lit::Str(s)) => Ok(Self(s.clone())),
            _ => Err(expected(mi, "a string literal")),
        }
    }
}

/// `max_retries = N`, N from 0 to `u32::MAX`.
#[derive(Debug)]
pub(crate) struct MaxRetries(pub u32);

impl FromMeta for MaxRetries {
    fn from_meta(mi: &Meta) -> Result<Self> {
        let (n, lit) = integer(mi)?;
        match u32::try_from(n) {
            Ok(n) => Ok(Self(n)),
            Err(_) => Err(expected(mi, &format!("at most {}", u32::MAX)).with_span(lit)),
        }
    }
}

/// A number of seconds, at least 1: `timeout_secs = N` (the run-time
/// limit of one attempt), `expires_in_secs = N` (how long after it is due a
/// task may still start).
#[derive(Debug)]
pub(crate) struct Seconds(pub u64);

impl FromMeta for Seconds {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match integer(mi)? {
            (0, lit) => Err(expected(mi, "at least 1 (second)").with_span(lit)),
            (n, _) => Ok(Self(n)),
        }
    }
}

/// `replay_guard_secs = N`, 1 ≤ N ≤ [`ReplayGuardSecs::MAX`]: how long the
/// id of a task that succeeded is remembered.
#[derive(Debug)]
pub(crate) struct ReplayGuardSecs(pub u64);

impl ReplayGuardSecs {
    /// One year.
    pub const MAX: u64 = 366 * 24 * 3600;
}

impl FromMeta for ReplayGuardSecs {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match integer(mi)? {
            (0, lit) => Err(expected(mi, "at least 1 (second)").with_span(lit)),
            (n, lit) if n > Self::MAX => Err(expected(
                mi,
                &format!("at most {} (seconds: one year)", Self::MAX),
            )
            .with_span(lit)),
            (n, _) => Ok(Self(n)),
        }
    }
}

/// `on_expiry = "dead_letter" | "discard"`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnExpiry {
    DeadLetter,
    Discard,
}

impl FromMeta for OnExpiry {
    fn from_meta(mi: &Meta) -> Result<Self> {
        const EXPECTED: &str = r#""dead_letter" or "discard""#;
        match literal(value(mi, EXPECTED)?) {
            Some(Lit::Str(s)) if s.value() == "dead_letter" => Ok(Self::DeadLetter),
            Some(Lit::Str(s)) if s.value() == "discard" => Ok(Self::Discard),
            _ => Err(expected(mi, EXPECTED)),
        }
    }
}

/// `track` (a record kept a day) or `track(ttl_secs = N)`: the task keeps a
/// record (state, progress, result) with that TTL; `None`: the default.
#[derive(Debug)]
pub(crate) struct Track {
    pub ttl_secs: Option<u64>,
}

impl FromMeta for Track {
    fn from_meta(mi: &Meta) -> Result<Self> {
        const FORM: &str = "`track` is a flag or `track(ttl_secs = N)`";
        let list = match mi {
            Meta::Path(_) => return Ok(Self { ttl_secs: None }),
            Meta::List(list) => list,
            Meta::NameValue(_) => {
                return Err(Error::custom(format!("{FORM}, not `track = ...`")).with_span(mi));
            }
        };
        let mut ttl_secs = None;
        for item in NestedMeta::parse_meta_list(list.tokens.clone())? {
            match &item {
                NestedMeta::Meta(m) if m.path().is_ident("ttl_secs") => {
                    ttl_secs = Some(Seconds::from_meta(m)?.0);
                }
                _ => {
                    return Err(
                        Error::custom(format!("{FORM}: unknown item in `track(..)`"))
                            .with_span(&item),
                    );
                }
            }
        }
        Ok(Self { ttl_secs })
    }
}

/// `priority = "high" | "normal" | "low"`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Priority {
    High,
    Normal,
    Low,
}

impl FromMeta for Priority {
    fn from_meta(mi: &Meta) -> Result<Self> {
        const EXPECTED: &str = r#""high", "normal" or "low""#;
        let lit = match literal(value(mi, EXPECTED)?) {
            Some(Lit::Str(s)) => s,
            _ => return Err(expected(mi, EXPECTED)),
        };
        match lit.value().as_str() {
            "high" => Ok(Self::High),
            "normal" => Ok(Self::Normal),
            "low" => Ok(Self::Low),
            _ => Err(expected(mi, EXPECTED)),
        }
    }
}

/// `fresh_token`: a flag, present or not.
#[derive(Debug, Default)]
pub(crate) struct FreshToken(pub bool);

impl FromMeta for FreshToken {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match mi {
            Meta::Path(_) => Ok(Self(true)),
            _ => Err(Error::custom(
                "`fresh_token` is a flag and takes no value: write `fresh_token` alone",
            )
            .with_span(mi)),
        }
    }
}

/// The value of `argument = value`; `example` shows the value expected when
/// the argument comes alone or as a list.
pub(crate) fn value<'a>(mi: &'a Meta, example: &str) -> Result<&'a Expr> {
    match mi {
        Meta::NameValue(nv) => Ok(&nv.value),
        _ => {
            let name = path_to_string(mi.path());
            Err(
                Error::custom(format!("`{name}` needs a value: `{name} = {example}`"))
                    .with_span(mi),
            )
        }
    }
}

/// A non-negative integer literal that fits a `u64`, and the literal.
fn integer(mi: &Meta) -> Result<(u64, &LitInt)> {
    match literal(value(mi, "N")?) {
        Some(Lit::Int(lit)) if lit.base10_digits().starts_with('-') => {
            Err(expected(mi, "a non-negative integer"))
        }
        Some(Lit::Int(lit)) => match lit.base10_parse() {
            Ok(n) => Ok((n, lit)),
            Err(_) => Err(expected(mi, &format!("at most {}", u64::MAX))),
        },
        _ => Err(expected(mi, "an integer literal")),
    }
}

/// "`argument` expects `what`, found `what was written`", on the value.
pub(crate) fn expected(mi: &Meta, what: &str) -> Error {
    let name = path_to_string(mi.path());
    match mi {
        Meta::NameValue(nv) => Error::custom(format!(
            "`{name}` expects {what}, found {}",
            found(&nv.value)
        ))
        .with_span(&nv.value),
        _ => Error::custom(format!("`{name}` expects {what}")).with_span(mi),
    }
}

/// The literal `expr` is, if it is one (also inside the invisible group a
/// `macro_rules!` expansion leaves around a `$x:expr`).
pub(crate) fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(g) => literal(&g.expr),
        _ => None,
    }
}

/// What the user wrote instead, for the error message.
fn found(expr: &Expr) -> String {
    match literal(expr) {
        Some(Lit::Str(s)) => format!("{:?}", s.value()),
        Some(Lit::Int(i)) => i.base10_digits().to_owned(),
        Some(Lit::Float(_)) => "a float".to_owned(),
        Some(Lit::Bool(b)) => b.value.to_string(),
        Some(_) => "another literal".to_owned(),
        None => match expr {
            Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => "a negative number".to_owned(),
            Expr::Path(p) => format!("`{}`", path_to_string(&p.path)),
            _ => "an expression".to_owned(),
        },
    }
}

/// `trace_link`, a flag: each run starts a trace of its own, linked to the
/// span that enqueued it.
#[derive(Debug, Default)]
pub(crate) struct TraceLink(pub bool);

impl FromMeta for TraceLink {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match mi {
            Meta::Path(_) => Ok(Self(true)),
            _ => Err(Error::custom(
                "`trace_link` is a flag and takes no value: write `trace_link` alone",
            )
            .with_span(mi)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_listed_is_one_darling_knows() {
        for name in ARGUMENTS {
            let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
            let item = NestedMeta::Meta(syn::parse_quote!(#ident));
            let told = TaskArgs::from_list(&[item]).err().map(|e| e.to_string());
            assert!(
                !told.as_deref().unwrap_or("").contains("Unknown field"),
                "{name}: {told:?}"
            );
        }
    }

    #[test]
    fn an_unknown_argument_is_told_with_the_known_ones() {
        let e = TaskArgs::parse(quote::quote!(queue = "q", urgent)).unwrap_err();
        let told = e.to_string();
        assert!(told.contains("unknown argument `urgent`;"), "{told}");
        let e = TaskArgs::parse(quote::quote!(retries = 3)).unwrap_err();
        let told = e.to_string();
        assert!(
            told.contains("`retries` (did you mean `max_retries`?)"),
            "{told}"
        );
        assert!(told.contains("max_concurrency, limit_key"), "{told}");
    }
}
