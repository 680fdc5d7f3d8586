//! clipkit's HTTP server: the JSON API ([`api`]), indexed images and thumbnails by id
//! ([`files`]) and a one-page web interface, over one loaded model and one index.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] binds it and runs
//! until Ctrl-C or SIGTERM, letting requests in flight finish. Every error response is JSON
//! `{"error": ...}`; requests must name loopback or an allowed host ([`HostPolicy`]);
//! indexed files are served only while they are the files indexed ([`indexed_file`]).
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod files;
pub mod host_policy;
pub mod indexed_file;
mod json_errors;
mod page;
mod serve;
pub mod state;
mod upload;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use host_policy::HostPolicy;
pub use serve::serve;
pub use state::{AppState, Limits};

/// The router: API, files by id, and the page; around them, from the outside in: tracing,
/// JSON for every error response, the `Host` check, panics turned into 500s, and the body
/// limit.
pub fn app(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/", get(page::index))
        .route("/api/health", get(api::health))
        .route("/api/search", get(api::search_get).post(api::search_post))
        .route("/api/classify", post(api::classify))
        .route("/api/embed", post(api::embed))
        .route("/image/{id}", get(files::image))
        .route("/thumb/{id}", get(files::thumb))
        .with_state(Arc::clone(&state));
    guarded(routes, state.hosts.clone(), state.limits.max_body_bytes)
}

/// `routes` inside, from the outside in: tracing, JSON for every error response, the
/// `Host` check (DNS rebinding), panics turned into 500s, and the body limit (which axum's
/// extractors report as 413 Payload Too Large).
fn guarded(routes: Router, hosts: HostPolicy, max_body_bytes: usize) -> Router {
    routes
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn_with_state(
            Arc::new(hosts),
            host_policy::check,
        ))
        .layer(middleware::map_response(json_errors::to_json))
        .layer(TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        async fn buggy() -> &'static str {
            panic!("a bug in a handler")
        }
        let routes = Router::new().route("/panic", get(buggy));
        let app = guarded(routes, HostPolicy::loopback(), 1024);
        let request = Request::get("/panic")
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "internal error (see the server log)");
    }
}
