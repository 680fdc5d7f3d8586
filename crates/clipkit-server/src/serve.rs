//! Serving [`crate::app`] on a socket: HTTP/1.1 over hyper, with a deadline for each
//! request's headers ([`Limits::header_read_timeout`]), at most
//! [`Limits::max_connections`] connections at once, and a graceful stop on Ctrl-C or
//! SIGTERM that lets requests in flight finish.
//!
//! (`axum::serve` can set neither a header deadline nor a connection cap, so slow clients
//! holding hundreds of connections open would exhaust it. HTTP/2 is left out on purpose:
//! telling it from HTTP/1 means reading the first bytes, before any header deadline runs.)
//!
//! [`Limits::header_read_timeout`]: crate::Limits::header_read_timeout
//! [`Limits::max_connections`]: crate::Limits::max_connections

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::state::AppState;

/// Serves [`crate::app`] on `addr` until Ctrl-C or SIGTERM; `on_bound` gets the bound address
/// (useful with port 0). Warns in the log when the address is not loopback: the server has
/// no authentication, so anyone who reaches it can search the library and fetch its images.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<AppState>,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "listening on {bound}, not on loopback: the server has no authentication, so \
             anyone who can reach this address can search your library and download every \
             indexed image"
        );
    }
    on_bound(bound);
    let refresher = tokio::spawn(refresh_every(Arc::clone(&state)));
    accept_until(listener, state, shutdown).await;
    refresher.abort();
    Ok(())
}

/// Every [`crate::Limits::refresh_interval`], reopens the index when another process changed
/// it ([`AppState::refresh`]), off the async threads; searches meanwhile use the handle
/// they hold. Failures are logged and retried at the next tick.
async fn refresh_every(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.limits.refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = Arc::clone(&state);
        match tokio::task::spawn_blocking(move || s.refresh()).await {
            Ok(Ok(true)) => tracing::info!("the index changed: reopened it"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("cannot refresh the index: {e}"),
            Err(e) => tracing::warn!("index refresh failed: {e}"),
        }
    }
}

/// Accepts and serves connections until `shutdown` resolves, then waits for the open ones
/// to finish their requests.
async fn accept_until(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    let service = TowerToHyperService::new(crate::app(state));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("{peer}: connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An accept that fails for one connection (reset before it was accepted) is skipped; one
/// that fails for the process (out of file descriptors) is logged and retried a little later
/// rather than spinning.
async fn pause_after_accept_error(e: std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    ) {
        return;
    }
    tracing::warn!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so that a signal arriving right after the port is announced
/// is already caught instead of taking the default action and killing the process.
fn shutdown_signal() -> impl Future<Output = ()> {
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
