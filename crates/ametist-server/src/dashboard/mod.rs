//! The web dashboard at `/dashboard`: a page that shows the collections, their points,
//! a search console, the partition actors, the cluster and request metrics.
//!
//! The page is three files written by hand (`assets/`), built into the binary with
//! `include_str!`: installing Ametist needs no build step for it, and the page fetches
//! nothing but this server's own REST routes (its charts are drawn on a canvas by
//! `app.js`, with no library). The assets hold no data, so they are served without the
//! API key; everything the page shows comes from the API, which asks for the key as for
//! any client (the page asks the user for it and sends it as `api-key`).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The paths the dashboard's assets are served at, all without the API key.
pub fn is_asset(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// Whether a request comes from a browser that navigated to a page (its `Accept` names
/// `text/html`), rather than from an API client (which sends `*/*` or `application/json`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("text/html"))
}

/// What `GET /` answers a browser: a redirect to the dashboard, with a link for clients
/// that do not follow redirects.
pub fn root_redirect() -> Response {
    (
        axum::http::StatusCode::SEE_OTHER,
        [(header::LOCATION, "/dashboard"), (header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Ametist</title><a href=\"/dashboard\">Ametist dashboard</a>\n",
    )
        .into_response()
}

/// Adds the dashboard's routes to `app`.
pub fn install(app: Router) -> Router {
    app.merge(
        Router::new()
            .route("/dashboard", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
            .route("/dashboard/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
            .route("/dashboard/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
            .route("/dashboard/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) })),
    )
}

/// The policy every asset is served with: the page may run only its own script and
/// style, talk only to this server, and never be framed (it has buttons that delete
/// collections, which a framing page could trick a user into pressing).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = resp.headers_mut();
    // Small files: always revalidated, so a browser never runs the page of an older binary.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_asking_for_html_are_told_apart_from_api_clients() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
    }

    #[test]
    fn assets_reference_only_each_other() {
        // The page must load nothing from elsewhere: no absolute URL in a src or href.
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"), "an asset names an outside URL");
        }
        assert!(INDEX_HTML.contains("/dashboard/app.js") && INDEX_HTML.contains("/dashboard/style.css"));
    }
}
