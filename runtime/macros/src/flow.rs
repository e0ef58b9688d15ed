//! Flow-control arguments of `#[asynctask]`: `unique(key = "..", until =
//! "started" | "finished", ttl_secs = N)` (or `unique = ".."`), `rate =
//! "N/s" | "N/m" | "N/h"`, `max_concurrency = N` and `limit_key = ".."`,
//! read into [`TaskOptions`](pym_broker::task::TaskOptions) fields and the
//! task's `flow` function, which renders the keys of a spawn.
//!
//! A key is a template: `{name}` is the argument `name` (its `Display`),
//! `{claim.NAME}` the claim `NAME` of the caller's token, `{user_id}` (when
//! no argument has that name) the caller's user id.

use crate::args::{Seconds, StrLit};
use darling::{Error, FromMeta, Result};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, LitStr, Meta, Pat};

/// `until = "started" | "finished"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Until {
    pub started: bool,
}

impl FromMeta for Until {
    fn from_string(value: &str) -> Result<Self> {
        match value {
            "started" => Ok(Self { started: true }),
            "finished" => Ok(Self { started: false }),
            other => Err(Error::custom(format!(
                r#"`until` expects "started" or "finished", found {other:?}"#
            ))),
        }
    }
}

/// The parts of `unique(..)`.
#[derive(Debug, FromMeta)]
struct UniqueList {
    key: StrLit,
    until: Option<Until>,
    ttl_secs: Option<Seconds>,
}

/// `unique(key = "..", until = .., ttl_secs = N)`, or `unique = ".."`.
#[derive(Debug)]
pub(crate) struct UniqueArg {
    key: LitStr,
    until_started: bool,
    ttl_secs: Option<u64>,
}

impl FromMeta for UniqueArg {
    fn from_meta(mi: &Meta) -> Result<Self> {
        match mi {
            Meta::List(_) => {
                let u = UniqueList::from_meta(mi)?;
                Ok(Self {
                    key: u.key.0,
                    until_started: u.until.is_some_and(|u| u.started),
                    ttl_secs: u.ttl_secs.map(|s| s.0),
                })
            }
            _ => Ok(Self {
                key: StrLit::from_meta(mi)?.0,
                until_started: false,
                ttl_secs: None,
            }),
        }
    }
}

/// `rate = "N/s" | "N/m" | "N/h"`, N ≥ 1.
#[derive(Debug)]
pub(crate) struct RateArg {
    count: u32,
    period_secs: u64,
}

impl FromMeta for RateArg {
    fn from_meta(mi: &Meta) -> Result<Self> {
        const EXPECTED: &str = r#""N/s", "N/m" or "N/h" with 1 ≤ N ≤ 4294967295"#;
        let s = match mi {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => s,
                other => {
                    return Err(
                        Error::custom(format!("`rate` expects {EXPECTED}")).with_span(other)
                    );
                }
            },
            _ => return Err(Error::custom(format!("`rate` expects {EXPECTED}")).with_span(mi)),
        };
        parse_rate(&s.value()).ok_or_else(|| {
            Error::custom(format!("`rate` expects {EXPECTED}, found {:?}", s.value())).with_span(s)
        })
    }
}

/// `"10/s"` → 10 per 1 s; `None` when malformed.
fn parse_rate(s: &str) -> Option<RateArg> {
    let (n, per) = s.split_once('/')?;
    let count: u32 = n.trim().parse().ok().filter(|&n| n > 0)?;
    let period_secs = match per.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    Some(RateArg { count, period_secs })
}

/// `max_concurrency = N`, N ≥ 1.
#[derive(Debug)]
pub(crate) struct MaxConcurrency(u32);

impl FromMeta for MaxConcurrency {
    fn from_meta(mi: &Meta) -> Result<Self> {
        let err = || Error::custom("`max_concurrency` expects an integer from 1 to 4294967295");
        match mi {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(i), ..
                }) => match i.base10_parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Self(n)),
                    _ => Err(err().with_span(i)),
                },
                other => Err(err().with_span(other)),
            },
            _ => Err(err().with_span(mi)),
        }
    }
}

/// The flow-control arguments given.
pub(crate) struct FlowArgs<'a> {
    pub unique: Option<&'a UniqueArg>,
    pub rate: Option<&'a RateArg>,
    pub max_concurrency: Option<&'a MaxConcurrency>,
    pub limit_key: Option<&'a StrLit>,
}

impl FlowArgs<'_> {
    /// The `unique`, `rate` and `max_concurrency` fields of `TaskOptions`.
    pub(crate) fn options(&self, pym: &TokenStream) -> TokenStream {
        let some = |t: TokenStream| quote!(::core::option::Option::Some(#t));
        let none = quote!(::core::option::Option::None);
        let unique = self.unique.map_or(none.clone(), |u| {
            let until_started = u.until_started;
            let ttl = match u.ttl_secs {
                Some(s) => quote!(::core::time::Duration::from_secs(#s)),
                None => quote!(#pym::task::flow::Unique::DEFAULT_TTL),
            };
            some(quote!(#pym::task::flow::Unique { until_started: #until_started, ttl: #ttl }))
        });
        let rate = self.rate.map_or(none.clone(), |r| {
            let (count, secs) = (r.count, r.period_secs);
            some(quote!(#pym::task::flow::Rate {
                count: #count,
                period: ::core::time::Duration::from_secs(#secs),
            }))
        });
        let max = self.max_concurrency.map_or(none, |m| {
            let m = m.0;
            some(quote!(#m))
        });
        let per_key = self.limit_key.is_some();
        quote!(unique: #unique, rate: #rate, max_concurrency: #max, limit_per_key: #per_key,)
    }

    /// The task's `flow` function (none when it has no keys), or the errors
    /// of its key templates.
    pub(crate) fn flow_fn(&self, func: &ItemFn, pym: &TokenStream) -> Result<TokenStream> {
        if let Some(k) = self.limit_key
            && self.rate.is_none()
            && self.max_concurrency.is_none()
        {
            return Err(Error::custom(
                "`limit_key` keys a `rate` or a `max_concurrency`: give one of them",
            )
            .with_span(&k.0));
        }
        if self.unique.is_none() && self.limit_key.is_none() {
            return Ok(quote!());
        }
        let names = param_names(func);
        let mut errors = Error::accumulator();
        let mut render = |key: Option<&LitStr>| match key {
            Some(k) => errors.handle(render(k, &names, pym)).map_or(
                quote!(::core::option::Option::None),
                |t| quote!(::core::option::Option::Some(#t)),
            ),
            None => quote!(::core::option::Option::None),
        };
        let unique = render(self.unique.map(|u| &u.key));
        let limit = render(self.limit_key.map(|k| &k.0));
        errors.finish()?;
        let idents: Vec<_> = (0..names.len())
            .map(|i| format_ident!("__arg{}", i))
            .collect();
        let bind = match idents.as_slice() {
            [] => quote!(),
            [a] => quote!(let #a = __args;),
            _ => quote!(let (#(#idents,)*) = __args;),
        };
        Ok(quote! {
            #[allow(unused_variables)]
            fn flow(__args: &Args) -> #pym::task::flow::Flow {
                #bind
                #pym::task::flow::Flow {
                    unique: #unique,
                    limit: #limit,
                    rate_slot: ::core::option::Option::None,
                }
            }
        })
    }
}

/// The name of each parameter (`None` for `_`).
fn param_names(func: &ItemFn) -> Vec<Option<String>> {
    func.sig
        .inputs
        .iter()
        .map(|a| match a {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(i) => Some(i.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// One piece of a key template.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Arg(usize),
    Claim(String),
    UserId,
}

/// `key` cut into pieces, each placeholder resolved against `names`.
fn pieces(key: &str, names: &[Option<String>]) -> std::result::Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = key;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without its `{`".into());
        }
        out.push(Piece::Text(rest[..open].to_owned()));
        let close = rest[open..].find('}').ok_or("a `{` without its `}`")? + open;
        let name = &rest[open + 1..close];
        let piece = if let Some(i) = names.iter().position(|n| n.as_deref() == Some(name)) {
            Piece::Arg(i)
        } else if let Some(claim) = name.strip_prefix("claim.").filter(|c| !c.is_empty()) {
            Piece::Claim(claim.to_owned())
        } else if name == "user_id" {
            Piece::UserId
        } else {
            let args: Vec<_> = names.iter().flatten().map(String::as_str).collect();
            return Err(format!(
                "`{{{name}}}` is neither an argument ({}) nor `{{claim.NAME}}` nor `{{user_id}}`",
                args.join(", ")
            ));
        };
        out.push(piece);
        rest = &rest[close + 1..];
    }
    out.push(Piece::Text(rest.to_owned()));
    out.retain(|p| *p != Piece::Text(String::new()));
    Ok(out)
}

/// The expression that renders key template `key` to a `String`.
fn render(key: &LitStr, names: &[Option<String>], pym: &TokenStream) -> Result<TokenStream> {
    let pieces = pieces(&key.value(), names)
        .map_err(|e| Error::custom(format!("in key {:?}: {e}", key.value())).with_span(key))?;
    let parts = pieces.iter().map(|p| match p {
        Piece::Text(t) => quote!(__key.push_str(#t);),
        Piece::Arg(i) => {
            let a = format_ident!("__arg{}", i);
            quote!(__key.push_str(&::std::string::ToString::to_string(#a));)
        }
        Piece::Claim(c) => quote!(__key.push_str(&#pym::task::flow::claim(#c));),
        Piece::UserId => quote!(__key.push_str(&#pym::task::flow::user_id());),
    });
    Ok(quote!({
        let mut __key = ::std::string::String::new();
        #(#parts)*
        __key
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read() {
        let table = [
            ("10/s", Some((10, 1))),
            ("5/m", Some((5, 60))),
            (" 7 / h ", Some((7, 3600))),
            ("0/s", None),
            ("10/d", None),
            ("ten/s", None),
            ("10", None),
            ("-1/s", None),
        ];
        for (s, want) in table {
            let got = parse_rate(s).map(|r| (r.count, r.period_secs));
            assert_eq!(got, want, "{s}");
        }
    }

    #[test]
    fn key_templates_resolve_arguments_claims_and_the_user() {
        let names = [Some("user_id".to_owned()), None, Some("n".to_owned())];
        let text = |s: &str| Piece::Text(s.into());
        let table: [(&str, std::result::Result<Vec<Piece>, &str>); 6] = [
            ("user:{user_id}", Ok(vec![text("user:"), Piece::Arg(0)])),
            (
                "{claim.tenant}/{n}",
                Ok(vec![
                    Piece::Claim("tenant".into()),
                    text("/"),
                    Piece::Arg(2),
                ]),
            ),
            ("all", Ok(vec![text("all")])),
            (
                "x{nope}",
                Err("`{nope}` is neither an argument (user_id, n)"),
            ),
            ("x{n", Err("a `{` without its `}`")),
            ("x}", Err("a `}` without its `{`")),
        ];
        for (key, want) in table {
            match (pieces(key, &names), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{key}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{key}: {got}"),
                (got, want) => panic!("{key}: {got:?} vs {want:?}"),
            }
        }
        let no_arg = pieces("{user_id}", &[]).unwrap();
        assert_eq!(no_arg, vec![Piece::UserId]);
    }
}
