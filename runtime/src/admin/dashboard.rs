//! The dashboard (`/_pym/`): one page of plain HTML, CSS and JavaScript,
//! embedded in the binary (no build step for anyone), which polls the
//! admin API every 2 s with the token typed in; and the admin document.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pym_http::{ApiError, axum};

/// The dashboard's files: (name, content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
];
const PAGE: &str = include_str!("assets/index.html");

/// `text` as `content_type`, to be checked again at every load (the page
/// changes with the binary).
fn file(content_type: &'static str, text: &'static str) -> Response {
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

/// `GET /_pym/`.
pub(super) async fn page() -> Response {
    file("text/html; charset=utf-8", PAGE)
}

/// `GET /_pym/assets/{file}`.
pub(super) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, t, text)| file(t, text))
        .ok_or_else(|| ApiError::not_found(format!("no dashboard file {name}")))
}

/// `GET /_pym/admin/openapi.yaml`: the admin API's document.
pub(super) async fn openapi() -> Response {
    file("application/yaml", super::DOCUMENT)
}

#[cfg(test)]
#[test]
fn the_page_stays_small_and_names_only_embedded_files() {
    let total: usize = PAGE.len() + ASSETS.iter().map(|(_, _, t)| t.len()).sum::<usize>();
    assert!(
        total < 200 * 1024,
        "the dashboard is {total} bytes; the bound is ~200 KB"
    );
    for (name, ..) in ASSETS {
        assert!(
            PAGE.contains(&format!("assets/{name}")),
            "{name} is not used by the page"
        );
    }
}
