//! The token in a cookie (`jwt_cookie`, opt-in): read from the request's
//! `Cookie` headers by the `cookie` crate.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The value of the cookie `name` among `headers`' `Cookie` headers, if
/// one is set and not empty.
pub fn token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_cookie_is_read() {
        let cases: [(&[&str], Option<&str>); 6] = [
            (&["token=abc"], Some("abc")),
            (&["a=1; token=abc; b=2"], Some("abc")),
            (&["a=1", "token=xyz"], Some("xyz")),
            (&["tokens=abc"], None),
            (&["token="], None),
            (&[], None),
        ];
        for (values, want) in cases {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(COOKIE, v.parse().unwrap());
            }
            assert_eq!(token(&h, "token").as_deref(), want, "{values:?}");
        }
    }
}
