//! Indexed images and their thumbnails, by id only: a client names an item of the index,
//! never a path, so nothing outside the index can be reached.
//!
//! - `GET /image/{id}` → the file as indexed
//! - `GET /thumb/{id}` → a JPEG at most [`THUMB_SIZE`] pixels on its longer side, made once
//!   per file content and kept in the index folder's `thumbs/`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use clipkit::search::FileRecord;

use crate::error::ApiError;
use crate::state::AppState;

/// Longer side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;

/// `GET /image/{id}`.
pub async fn image(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    let file = record(&state, id)?;
    let bytes = tokio::fs::read(&file.path)
        .await
        .map_err(|e| clipkit::Error::io(&file.path, e))?;
    let mime = image::guess_format(&bytes)
        .map(|f| f.to_mime_type())
        .unwrap_or("application/octet-stream");
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

/// `GET /thumb/{id}`.
pub async fn thumb(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<u64>,
) -> Result<Response, ApiError> {
    let file = record(&state, id)?;
    let cached = state.thumbs.join(format!("{}.jpg", file.hash));
    if !cached.is_file() {
        let target = cached.clone();
        state
            .blocking(move |s| make_thumb(s, Path::new(&file.path), &target))
            .await?;
    }
    let bytes = tokio::fs::read(&cached)
        .await
        .map_err(|e| clipkit::Error::io(&cached, e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        bytes,
    )
        .into_response())
}

fn record(state: &AppState, id: u64) -> Result<FileRecord, ApiError> {
    state
        .store
        .item(id)?
        .map(|item| item.file)
        .ok_or(ApiError::NotFound(id))
}

/// Decodes, shrinks and writes a thumbnail atomically (a temporary file renamed into place,
/// so concurrent requests for one image never see half a file).
fn make_thumb(state: &AppState, source: &Path, target: &PathBuf) -> Result<(), ApiError> {
    let dir = &state.thumbs;
    std::fs::create_dir_all(dir).map_err(|e| clipkit::Error::io(dir, e))?;
    let rgb = state.clip.load_image(source)?;
    let small = image::imageops::thumbnail(
        &rgb,
        scaled(rgb.width(), rgb.height()).0,
        scaled(rgb.width(), rgb.height()).1,
    );
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| clipkit::Error::io(dir, e))?;
    small
        .save_with_format(tmp.path(), image::ImageFormat::Jpeg)
        .map_err(|e| clipkit::Error::Image {
            path: target.clone(),
            message: e.to_string(),
        })?;
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
