//! typify's output names the crates it uses by absolute paths (`::serde`,
//! `::serde_json`, `::uuid`, `::chrono`, `::regress`). Here they are
//! renamed to the runtime's re-exports (`::pym_runtime::__private::uuid`),
//! so a service that calls `api!` needs none of them as dependencies. A
//! serde derive is followed by `#[serde(crate = "...")]`, so the code it
//! expands to names serde through the runtime too.

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, TokenStream, TokenTree};

/// The crates generated code uses that the runtime re-exports.
pub const CRATES: &[&str] = &["serde", "serde_json", "uuid", "chrono", "regress"];

/// Keywords a path can follow.
const KEYWORDS: &[&str] = &[
    "as", "impl", "for", "dyn", "use", "where", "in", "return", "let", "mut", "ref", "const",
    "static", "type", "pub", "break", "else", "match", "if", "while", "move",
];

/// `tokens` with each `::<crate>` of [`CRATES`] that starts a path
/// replaced by `<runtime>::__private::<crate>`.
pub fn through_runtime(tokens: TokenStream, runtime: &TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if let Some(derive) = serde_derive(&trees, i) {
            out.push(trees[i].clone());
            out.push(TokenTree::Group(Group::new(
                Delimiter::Bracket,
                through_runtime(derive, runtime),
            )));
            let path = format!("{}::__private::serde", runtime.to_string().replace(' ', ""));
            out.extend(quote::quote!(#[serde(crate = #path)]));
            i += 2;
            continue;
        }
        if let TokenTree::Group(g) = &trees[i] {
            let mut ng = Group::new(g.delimiter(), through_runtime(g.stream(), runtime));
            ng.set_span(g.span());
            out.push(TokenTree::Group(ng));
            i += 1;
            continue;
        }
        if starts_path(&trees, i, &out) {
            out.extend(runtime.clone());
            out.push(TokenTree::Punct(Punct::new(':', Spacing::Joint)));
            out.push(TokenTree::Punct(Punct::new(':', Spacing::Alone)));
            out.push(TokenTree::Ident(Ident::new(
                "__private",
                proc_macro2::Span::call_site(),
            )));
            out.push(TokenTree::Punct(Punct::new(':', Spacing::Joint)));
            out.push(TokenTree::Punct(Punct::new(':', Spacing::Alone)));
            out.push(trees[i + 2].clone());
            i += 3;
            continue;
        }
        out.push(trees[i].clone());
        i += 1;
    }
    out.into_iter().collect()
}

/// The inside of `#[derive(..)]` at `trees[i..]`, if it derives serde's traits.
fn serde_derive(trees: &[TokenTree], i: usize) -> Option<TokenStream> {
    let (Some(TokenTree::Punct(hash)), Some(TokenTree::Group(g))) =
        (trees.get(i), trees.get(i + 1))
    else {
        return None;
    };
    if hash.as_char() != '#' || g.delimiter() != Delimiter::Bracket {
        return None;
    }
    let mut inner = g.stream().into_iter();
    let is_derive = matches!(inner.next(), Some(TokenTree::Ident(id)) if id == "derive");
    let names_serde = g.stream().to_string().contains("serde ::");
    (is_derive && names_serde).then(|| g.stream())
}

/// Whether `trees[i..]` is `:: <crate>` and that `::` begins a path (what
/// came before is not an identifier (but a keyword) nor a group, so it is not the
/// middle of `a::serde`).
fn starts_path(trees: &[TokenTree], i: usize, before: &[TokenTree]) -> bool {
    let colon =
        |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
    let is_crate =
        matches!(trees.get(i + 2), Some(TokenTree::Ident(id)) if CRATES.iter().any(|c| id == c));
    let joint = matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint);
    let leading = match before.last() {
        None => true,
        // After a keyword (`as ::serde::X`, `impl ::serde::X for`) a path
        // starts; after another identifier (`a::serde`) it goes on.
        Some(TokenTree::Ident(id)) => KEYWORDS.iter().any(|k| id == k),
        Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::None,
        Some(TokenTree::Punct(_)) => true,
        Some(TokenTree::Literal(_)) => true,
    };
    joint && colon(trees.get(i + 1)) && is_crate && leading
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn crate_paths_are_renamed() {
        let rt = quote!(::rt);
        let cases = [
            (
                quote!(
                    #[derive(::serde::Serialize)]
                    struct A(::uuid::Uuid);
                ),
                "# [derive (:: rt :: __private :: serde :: Serialize)] # [serde (crate = \"::rt::__private::serde\")] struct A (:: rt :: __private :: uuid :: Uuid) ;",
            ),
            (
                quote!(
                    #[derive(Clone)]
                    struct B;
                ),
                "# [derive (Clone)] struct B ;",
            ),
            (
                quote!(let m: ::serde_json::Map<String, ::serde_json::Value>;),
                "let m : :: rt :: __private :: serde_json :: Map < String , :: rt :: __private :: serde_json :: Value > ;",
            ),
            (quote!(a::serde::X), "a :: serde :: X"),
            (
                quote!(<T as ::serde::Serialize>::f),
                "< T as :: rt :: __private :: serde :: Serialize > :: f",
            ),
            (
                quote!(
                    impl<'de> ::serde::Deserialize<'de> for A {}
                ),
                "impl < 'de > :: rt :: __private :: serde :: Deserialize < 'de > for A { }",
            ),
            (
                quote!(fn f() -> ::uuid::Uuid),
                "fn f () -> :: rt :: __private :: uuid :: Uuid",
            ),
            (
                quote!(impl ::serde::Serialize for A {}),
                "impl :: rt :: __private :: serde :: Serialize for A { }",
            ),
            (quote!(::std::string::String), ":: std :: string :: String"),
            (quote!(::serdex::A), ":: serdex :: A"),
        ];
        for (input, want) in cases {
            assert_eq!(through_runtime(input, &rt).to_string(), want);
        }
    }
}
