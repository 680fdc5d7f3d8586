//! Finding the images under the folders to index: recursive, symbolic links not followed,
//! image files recognised by extension (the content is checked when decoding).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::search::error::{Result, SearchError};

/// File name extensions taken as images (compared without case).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "jfif"];

/// A file found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Absolute path, as it will be indexed.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// Every image file under `roots` (absolute, sorted by path), and the absolute roots.
/// A root that does not exist or is not a folder is an error naming it; an unreadable
/// entry below a root is skipped with a warning.
pub fn scan(roots: &[PathBuf]) -> Result<(Vec<Found>, Vec<String>)> {
    let mut found = Vec::new();
    let mut absolute_roots = Vec::new();
    for root in roots {
        let abs = root.canonicalize().map_err(|e| SearchError::io(root, e))?;
        if !abs.is_dir() {
            return Err(SearchError::io(
                root,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
            ));
        }
        for entry in walkdir::WalkDir::new(&abs) {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("skipping: {e}");
                    continue;
                }
            };
            if !entry.file_type().is_file() || !is_image_name(entry.path()) {
                continue;
            }
            let Some(path) = entry.path().to_str() else {
                tracing::warn!(
                    "{}: skipping a path that is not UTF-8",
                    entry.path().display()
                );
                continue;
            };
            match entry.metadata() {
                Ok(meta) => found.push(Found {
                    path: path.to_string(),
                    size: meta.len(),
                    mtime_ns: meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos() as i64),
                }),
                Err(e) => tracing::warn!("{}: skipping: {e}", entry.path().display()),
            }
        }
        absolute_roots.push(with_separator(&abs));
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    Ok((found, absolute_roots))
}

/// True when `path` has an image extension.
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The root as a prefix that matches only paths below it (`/a/b/`, never `/a/bc`).
fn with_separator(root: &Path) -> String {
    let mut s = root.to_string_lossy().into_owned();
    if !s.ends_with(std::path::MAIN_SEPARATOR) {
        s.push(std::path::MAIN_SEPARATOR);
    }
    s
}
