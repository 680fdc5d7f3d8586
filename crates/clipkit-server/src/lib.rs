//! clipkit's HTTP server: the JSON API ([`api`]), indexed images and thumbnails by id
//! ([`files`]) and a one-page web interface, over one loaded model and one index.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] binds it and runs
//! until Ctrl-C or SIGTERM, letting requests in flight finish. Indexed files are served only
//! while they are the files indexed ([`indexed_file`]).
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod files;
pub mod indexed_file;
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
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: axum polls it from a task of its own, which may start only
/// after the first requests are answered, and a signal before that would take the default
/// action and kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let listeners = {
        use tokio::signal::unix::{signal, SignalKind};
        [SignalKind::interrupt(), SignalKind::terminate()].map(|kind| {
            signal(kind)
                .map_err(|e| tracing::warn!("cannot listen for signal {kind:?}: {e}"))
                .ok()
        })
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |listener: Option<tokio::signal::unix::Signal>| async move {
                match listener {
                    Some(mut listener) => {
                        listener.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let [interrupt, terminate] = listeners;
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
