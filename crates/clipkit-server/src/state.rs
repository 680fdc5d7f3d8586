//! What every handler shares: the model, the index, the thumbnail cache and the limits.

use std::path::PathBuf;
use std::sync::Arc;

use clipkit::search::VectorStore;
use clipkit::Clip;
use tokio::sync::Semaphore;

use crate::error::ApiError;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_image_pixels: 40_000_000,
            max_top_k: 200,
            model_workers: 2,
        }
    }
}

/// The server's shared state.
pub struct AppState {
    /// The model (its pixel limit set to `limits.max_image_pixels`).
    pub clip: Clip,
    /// The index searched and whose files are served.
    pub store: Box<dyn VectorStore>,
    /// The model's identity, as the index records it.
    pub model: String,
    /// Where thumbnails are cached (made once per file content).
    pub thumbs: PathBuf,
    /// The limits in force.
    pub limits: Limits,
    model_slots: Semaphore,
}

impl AppState {
    /// Shared state over a loaded model and an opened index whose model is `model`;
    /// thumbnails are cached in `thumbs/` of the store's cache folder (the index folder).
    pub fn new(
        clip: Clip,
        store: Box<dyn VectorStore>,
        model: String,
        limits: Limits,
    ) -> Arc<Self> {
        let thumbs = store.location().cache_dir().join("thumbs");
        Arc::new(AppState {
            clip: clip.with_max_pixels(limits.max_image_pixels),
            store,
            model,
            thumbs,
            model_slots: Semaphore::new(limits.model_workers.max(1)),
            limits,
        })
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
