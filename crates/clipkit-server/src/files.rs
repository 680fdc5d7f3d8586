//! Indexed images and their thumbnails, by id only: a client names an item of the index,
//! never a path, so nothing outside the index can be reached. The file is served only while
//! it is still the one indexed (see [`crate::indexed_file`]): deleted → 404, replaced,
//! modified or reached through a symbolic link → 409 Conflict, each with a JSON error.
//!
//! - `GET /image/{id}` → the file as indexed
//! - `GET /thumb/{id}` → a JPEG at most [`THUMB_SIZE`] pixels on its longer side, made once
//!   per file content and kept in the index folder's `thumbs/` (served from there only
//!   after the source file passes the same check)

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::indexed_file::IndexedFile;
use crate::state::AppState;

/// Longer side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;

/// `GET /image/{id}`.
pub async fn image(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    let file = open(&state, id).await?;
    let bytes = tokio::task::spawn_blocking(move || file.read_all())
        .await?
        .map_err(|reason| ApiError::File { id, reason })?;
    let mime = image::guess_format(&bytes)
        .map(|f| f.to_mime_type())
        .unwrap_or("application/octet-stream");
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /thumb/{id}`.
pub async fn thumb(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    let file = open(&state, id).await?;
    let cached = state.thumbs.join(format!("{}.jpg", file.record().hash));
    let bytes = match tokio::fs::read(&cached).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            state
                .blocking(move |s| make_thumb(s, id, file, &cached))
                .await?
        }
        Err(e) => return Err(clipkit::Error::io(&cached, e).into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        bytes,
    )
        .into_response())
}

/// The indexed file of item `id`, opened and checked against its record.
async fn open(state: &AppState, id: u64) -> Result<IndexedFile, ApiError> {
    // The store may ask a database server: blocking, like opening the file.
    let store = state.store();
    let named = state.named.clone();
    tokio::task::spawn_blocking(move || {
        let record = store
            .item(id)?
            .map(|item| item.file)
            .ok_or(ApiError::NotFound(id))?;
        IndexedFile::open(&record, &named).map_err(|reason| ApiError::File { id, reason })
    })
    .await?
}

/// Decodes the checked source, shrinks it and returns the JPEG, kept in the cache too: a
/// temporary file renamed into place, so concurrent requests for one image never see half
/// a file. A cache that cannot be written is logged, and the thumbnail served all the same.
fn make_thumb(
    state: &AppState,
    id: u64,
    source: IndexedFile,
    target: &Path,
) -> Result<Vec<u8>, ApiError> {
    let name = PathBuf::from(&source.record().path);
    let bytes = source
        .read_all()
        .map_err(|reason| ApiError::File { id, reason })?;
    let rgb =
        clipkit::image::decode::load_rgb_from_bytes(&bytes, &name, state.limits.max_image_pixels)?;
    let (width, height) = scaled(rgb.width(), rgb.height());
    let small = image::imageops::thumbnail(&rgb, width, height);
    let mut jpeg = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        // Encoding into memory fails only on a bug: a server error, not the client's.
        .map_err(|e| clipkit::Error::io(target, std::io::Error::other(e)))?;
    if let Err(e) = cache(&state.thumbs, target, &jpeg) {
        tracing::warn!("thumbnail not cached: {e}");
    }
    Ok(jpeg)
}

/// Writes `bytes` to `target` in `dir` atomically.
fn cache(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), clipkit::Error> {
    std::fs::create_dir_all(dir).map_err(|e| clipkit::Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| clipkit::Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| clipkit::Error::io(tmp.path(), e))?;
    tmp.persist(target)
        .map_err(|e| clipkit::Error::io(target, e.error))?;
    Ok(())
}

/// (width, height) fitting in THUMB_SIZE × THUMB_SIZE with the aspect kept; never enlarged.
fn scaled(width: u32, height: u32) -> (u32, u32) {
    let longer = width.max(height).max(1);
    if longer <= THUMB_SIZE {
        return (width.max(1), height.max(1));
    }
    let scale =
        |side: u32| ((u64::from(side) * u64::from(THUMB_SIZE)) / u64::from(longer)).max(1) as u32;
    (scale(width), scale(height))
}
