//! clipkit's HTTP server: the JSON API ([`api`]), indexed images and thumbnails by id
//! ([`files`]) and a one-page web interface, over one loaded model and one index.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] binds it and runs
//! until Ctrl-C or SIGTERM, letting requests in flight finish.
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod files;
mod page;
pub mod state;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::{AppState, Limits};

/// The router: API, files by id, and the page.
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves [`app`] on `addr` until Ctrl-C or SIGTERM; `on_bound` gets the bound address
/// (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    state: Arc<AppState>,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
