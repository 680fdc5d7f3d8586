//! Finding the images to index: under each folder given, recursively, or a single image
//! file given by name. Image files are recognised by extension (the content is checked when
//! decoding).
//!
//! Symbolic links inside a folder are not followed: each one that names an image or a
//! folder is reported in [`Scan::skipped_links`]. An item's path is where its bytes are (the
//! server serves a file only while its path still resolves to itself), and a link's target
//! may lie outside every folder indexed, where no later run would notice it vanish. A file
//! or folder given by name may itself be a link: it is indexed under its target's path.
//!
//! Files are keyed by [`NamedRoots::key`]: their absolute path, or `NAME:relative/path`
//! under a named root.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::image::{has_image_extension, IMAGE_EXTENSIONS};
use crate::search::error::{Result, SearchError};
use crate::search::named_roots::NamedRoots;

/// A file found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its key, as it will be indexed (see [`NamedRoots::key`]).
    pub path: String,
    /// Where it is on this host (absolute, canonical).
    pub local: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// What one indexing run covers: an indexed path under a root that the scan did not find
/// is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A folder, as a key prefix that matches only keys below it (`/a/b/`, never `/a/bc`;
    /// `photos:` or `photos:a/` under a named root).
    Folder(String),
    /// A single file, by its key.
    File(String),
}

impl Root {
    /// The root of everything at or below the file or folder keyed `key`.
    pub fn of(mut key: String, is_dir: bool) -> Root {
        if !is_dir {
            return Root::File(key);
        }
        let separator = if Path::new(&key).is_absolute() {
            std::path::MAIN_SEPARATOR
        } else {
            '/'
        };
        if !key.ends_with(separator) && !key.ends_with(':') {
            key.push(separator);
        }
        Root::Folder(key)
    }

    /// Whether an indexed `path` lies under this root.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Root::Folder(prefix) => path.starts_with(prefix.as_str()),
            Root::File(file) => path == file,
        }
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every image file, sorted by path, each once.
    pub found: Vec<Found>,
    /// The roots scanned.
    pub roots: Vec<Root>,
    /// Symbolic links to images or folders inside the folders, not followed, by path.
    pub skipped_links: Vec<String>,
}

/// Scans `roots`: folders recursively, files as themselves, keyed under `named`. A root that
/// does not exist, or a file given by name that is not an image by extension, is an error
/// naming it; an unreadable entry below a folder is skipped with a warning.
pub fn scan(roots: &[PathBuf], named: &NamedRoots) -> Result<Scan> {
    let mut scan = Scan::default();
    for root in roots {
        let abs = root.canonicalize().map_err(|e| SearchError::io(root, e))?;
        if abs.is_dir() {
            scan_folder(&abs, named, &mut scan);
            scan.roots.push(Root::of(named.key(&abs), true));
        } else if has_image_extension(&abs) {
            let meta = std::fs::metadata(&abs).map_err(|e| SearchError::io(root, e))?;
            scan.found.extend(found(&abs, &meta, named));
            scan.roots.push(Root::of(named.key(&abs), false));
        } else {
            let message = format!(
                "not an image file name (indexed extensions: {}); give an image or a folder",
                IMAGE_EXTENSIONS.join(", ")
            );
            return Err(SearchError::io(
                root,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
            ));
        }
    }
    scan.found.sort_by(|a, b| a.path.cmp(&b.path));
    scan.found.dedup_by(|a, b| a.path == b.path);
    scan.skipped_links.sort();
    scan.skipped_links.dedup();
    Ok(scan)
}

fn scan_folder(folder: &Path, named: &NamedRoots, scan: &mut Scan) {
    for entry in walkdir::WalkDir::new(folder) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("skipping: {e}");
                continue;
            }
        };
        if entry.path_is_symlink() {
            // `metadata` follows the link: a link to a folder, or an image name, is worth
            // reporting; a link to some other file is ignored like that file would be.
            let to_folder = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            if to_folder || has_image_extension(entry.path()) {
                scan.skipped_links
                    .push(entry.path().to_string_lossy().into_owned());
            }
            continue;
        }
        if !entry.file_type().is_file() || !has_image_extension(entry.path()) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => scan.found.extend(found(entry.path(), &meta, named)),
            Err(e) => tracing::warn!("{}: skipping: {e}", entry.path().display()),
        }
    }
}

/// The file at `path` as found, or `None` (with a warning) when its path is not UTF-8.
fn found(path: &Path, meta: &std::fs::Metadata, named: &NamedRoots) -> Option<Found> {
    if path.to_str().is_none() {
        tracing::warn!("{}: skipping a path that is not UTF-8", path.display());
        return None;
    }
    Some(Found {
        path: named.key(path),
        local: path.to_path_buf(),
        size: meta.len(),
        mtime_ns: meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64),
    })
}
