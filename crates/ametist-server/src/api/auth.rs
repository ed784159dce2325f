//! The REST API key (`service.api_key`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::envelope::ApiError;

/// The configured key, if any, and which routes are open without it.
#[derive(Clone)]
pub struct ApiKey {
    key: Option<Arc<str>>,
    metrics_public: bool,
}

impl ApiKey {
    pub fn new(key: Option<&str>, metrics_public: bool) -> Self {
        ApiKey { key: key.map(Arc::from), metrics_public }
    }

    /// Requests served without the key: health checks (as in Qdrant, so that probes need no
    /// secret), `/metrics` when `service.metrics_public` says so, the dashboard's assets
    /// (they hold no data; the page asks for the key before it shows any), and a browser's
    /// `GET /`, which is only a redirect to the dashboard.
    fn is_open(&self, req: &Request) -> bool {
        let path = req.uri().path();
        matches!(path, "/healthz" | "/livez" | "/readyz")
            || (self.metrics_public && path == "/metrics")
            || crate::dashboard::is_asset(path)
            || (path == "/" && req.method() == axum::http::Method::GET && crate::dashboard::wants_html(req.headers()))
    }
}

/// With `service.api_key` set, refuses requests that do not carry it (`api-key: <key>` or
/// `Authorization: Bearer <key>`, as Qdrant's clients send it): 401 without a key, 403
/// with a wrong one. Keys are compared in constant time, whatever their lengths
/// (`secrets_match` hashes both first).
pub async fn require_api_key(key: ApiKey, req: Request, next: Next) -> Response {
    let Some(expected) = key.key.as_deref() else { return next.run(req).await };
    if key.is_open(&req) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let given = headers.get("api-key").and_then(|v| v.to_str().ok()).or_else(|| {
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    });
    let (status, message) = match given {
        Some(g) if ametist_cluster::transport::secrets_match(g.as_bytes(), expected.as_bytes()) => {
            return next.run(req).await
        }
        Some(_) => (StatusCode::FORBIDDEN, "Invalid API key"),
        None => (StatusCode::UNAUTHORIZED, "Must provide an API key or an Authorization bearer token"),
    };
    ApiError { status, message: message.to_string(), started: Instant::now() }.into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(method: &str, path: &str, accept: &str) -> Request {
        Request::builder().method(method).uri(path).header(header::ACCEPT, accept).body(Body::empty()).unwrap()
    }

    #[test]
    fn only_health_checks_dashboard_assets_and_a_browsers_root_are_open() {
        let key = ApiKey::new(Some("k"), false);
        for (method, path, accept) in [
            ("GET", "/healthz", "*/*"),
            ("GET", "/dashboard", "text/html"),
            ("GET", "/dashboard/app.js", "*/*"),
            ("GET", "/", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ] {
            assert!(key.is_open(&request(method, path, accept)), "{method} {path} should be open");
        }
        for (method, path, accept) in [
            // The root's JSON names the server; only a browser's redirect is open.
            ("GET", "/", "*/*"),
            ("GET", "/", "application/json"),
            ("POST", "/", "text/html"),
            ("GET", "/metrics", "*/*"),
            ("GET", "/metrics/history", "text/html"),
            ("GET", "/dashboards", "text/html"),
            ("GET", "/collections", "text/html"),
        ] {
            assert!(!key.is_open(&request(method, path, accept)), "{method} {path} should need the key");
        }
        assert!(ApiKey::new(Some("k"), true).is_open(&request("GET", "/metrics", "*/*")));
        assert!(!ApiKey::new(Some("k"), true).is_open(&request("GET", "/metrics/history", "*/*")));
    }
}
