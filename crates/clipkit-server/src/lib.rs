//! clipkit's HTTP server: the JSON API ([`api`]), indexed images and thumbnails by id
//! ([`files`]) and a one-page web interface, over one loaded model and one index.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] binds it and runs
//! until Ctrl-C or SIGTERM, letting requests in flight finish. Requests must name loopback or an allowed host ([`HostPolicy`]);
//! indexed files are served only while they are the files indexed ([`indexed_file`]).
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod files;
pub mod host_policy;
pub mod indexed_file;
mod page;
mod serve;
pub mod state;
mod upload;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use host_policy::HostPolicy;
pub use serve::serve;
pub use state::{AppState, Limits};

/// The router: API, files by id, and the page. Around it, from the outside in: tracing,
/// the `Host` check (DNS rebinding), and the body limit.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(page::index))
        .route("/api/health", get(api::health))
        .route("/api/search", get(api::search_get).post(api::search_post))
        .route("/api/classify", post(api::classify))
        .route("/api/embed", post(api::embed))
        .route("/image/{id}", get(files::image))
        .route("/thumb/{id}", get(files::thumb))
        // axum's own limit: its extractors report it as 413 Payload Too Large.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            host_policy::check,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
