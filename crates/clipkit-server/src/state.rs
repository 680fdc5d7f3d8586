//! What every handler shares: the model, the index, the thumbnail cache, the limits and
//! the host names answered.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use clipkit::search::{NamedRoots, SearchError, VectorStore};
use clipkit::Clip;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::host_policy::HostPolicy;

/// Limits on what clients may send and ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body in bytes (default 16 MiB).
    pub max_body_bytes: usize,
    /// Largest uploaded image in pixels (default 40 megapixels).
    pub max_image_pixels: u64,
    /// Most results one search returns (default 200).
    pub max_top_k: usize,
    /// Model computations running at once; more requests wait their turn (default 2).
    pub model_workers: usize,
    /// Time a client has to send a request's line and headers, from the moment its
    /// connection opens or its previous request is answered; then the connection is
    /// closed, so slow or idle clients cannot hold connections open (default 10 s).
    pub header_read_timeout: Duration,
    /// How often the server asks the index whether it changed (another process indexed
    /// or removed images), reopening it when it did (default 2 s).
    pub refresh_interval: Duration,
    /// Connections served at once; further clients wait in the listen queue until one
    /// closes (default 512, below the usual limit of 1024 open files).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_image_pixels: 40_000_000,
            max_top_k: 200,
            model_workers: 2,
            header_read_timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(2),
            max_connections: 512,
        }
    }
}

/// The server's shared state.
pub struct AppState {
    /// The model (its pixel limit set to `limits.max_image_pixels`).
    pub clip: Clip,
    /// The index searched and whose files are served; replaced by [`AppState::refresh`].
    store: RwLock<Arc<dyn VectorStore>>,
    /// The index's change counter when it was (re)opened; `None` until read once.
    seen_changes: Mutex<Option<u64>>,
    /// The model's identity, as the index records it.
    pub model: String,
    /// The named roots the index's keys resolve through on this host.
    pub named: NamedRoots,
    /// Where thumbnails are cached (made once per file content).
    pub thumbs: PathBuf,
    /// The limits in force.
    pub limits: Limits,
    /// The `Host` names requests may carry.
    pub hosts: HostPolicy,
    model_slots: Semaphore,
}

impl AppState {
    /// Shared state over a loaded model and an opened index whose model is `model`, its keys
    /// resolved through `named`;
    /// thumbnails are cached in `thumbs/` of the store's cache folder (the index folder).
    pub fn new(
        clip: Clip,
        store: Box<dyn VectorStore>,
        model: String,
        named: NamedRoots,
        limits: Limits,
        hosts: HostPolicy,
    ) -> Arc<Self> {
        let thumbs = store.location().cache_dir().join("thumbs");
        let seen = store.changes().ok();
        Arc::new(AppState {
            clip: clip.with_max_pixels(limits.max_image_pixels),
            store: RwLock::new(Arc::from(store)),
            seen_changes: Mutex::new(seen),
            model,
            named,
            thumbs,
            model_slots: Semaphore::new(limits.model_workers.max(1)),
            limits,
            hosts,
        })
    }

    /// The index as last (re)opened. Searches hold their own handle, so a refresh never
    /// waits for them nor they for it.
    pub fn store(&self) -> Arc<dyn VectorStore> {
        Arc::clone(&self.store.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reopens the index when its change counter moved since it was opened, so that
    /// images indexed (or removed) by other processes show without a restart. Blocking:
    /// call it off the async threads. Returns whether it reopened. A reopened index made
    /// by another model is refused and the old one kept.
    pub fn refresh(&self) -> Result<bool, SearchError> {
        let current = self.store();
        let now = current.changes()?;
        let mut seen = self.seen_changes.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == Some(now) {
            return Ok(false);
        }
        let fresh = clipkit::search::open(current.location())?;
        fresh.check_model(&self.model)?;
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = Arc::from(fresh);
        *seen = Some(now);
        Ok(true)
    }

    /// Runs blocking work (the model, image decoding) off the async threads, at most
    /// `limits.model_workers` at a time.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .model_slots
            .acquire()
            .await
            .map_err(|_| ApiError::BadRequest("server is shutting down".into()))?;
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&state)).await?
    }
}
