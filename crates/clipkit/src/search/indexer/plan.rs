//! Deciding what an indexing run does: compare the files found with what the store has.
//!
//! - same path, same size and mtime: unchanged, not read at all;
//! - same path, different size or mtime: hashed; same hash → record refreshed (the file
//!   was touched: it neither moved nor changed), else embedded again;
//! - new path: hashed; the hash of an indexed file that disappeared → moved (the vector is
//!   kept), else embedded;
//! - indexed path under a scanned folder that is gone and did not move: removed;
//! - a failure whose file is unchanged is not retried; one whose file is gone is forgotten.
//!
//! Items outside the scanned folders are left alone, so folders can be indexed one at a time.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::scan::{Found, Root};
use crate::search::store::{Failure, FileRecord, Item, ItemId};

/// What to do to bring the store up to date with the folders.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files to decode and embed (new content), in path order, hashes filled in.
    pub to_embed: Vec<FileRecord>,
    /// Items whose vector is kept under a new path (moved files).
    pub moved: Vec<(ItemId, FileRecord)>,
    /// Items whose vector is kept under a new mtime, same path and content (touched files).
    pub refreshed: Vec<(ItemId, FileRecord)>,
    /// Items whose file is gone.
    pub removed: Vec<ItemId>,
    /// Failures whose file is gone.
    pub forgotten: Vec<String>,
    /// Files that could not even be read to hash them.
    pub unreadable: Vec<Failure>,
    /// Files already indexed and unchanged.
    pub unchanged: usize,
    /// Files that failed before and have not changed since.
    pub still_failing: usize,
}

/// Compares `found` (under `roots`) with the store's `items` and `failures`.
pub fn plan(found: &[Found], roots: &[Root], items: &[Item], failures: &[Failure]) -> Plan {
    let mut plan = Plan::default();
    let by_path: HashMap<&str, &Item> = items.iter().map(|i| (i.file.path.as_str(), i)).collect();
    let failed: HashMap<&str, &Failure> = failures.iter().map(|f| (f.path.as_str(), f)).collect();
    let present: HashSet<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let under_roots = |p: &str| roots.iter().any(|r| r.covers(p));

    let mut candidates = Vec::new();
    for f in found {
        match (by_path.get(f.path.as_str()), failed.get(f.path.as_str())) {
            (Some(item), _) if item.file.size == f.size && item.file.mtime_ns == f.mtime_ns => {
                plan.unchanged += 1
            }
            (None, Some(fail)) if fail.size == f.size && fail.mtime_ns == f.mtime_ns => {
                plan.still_failing += 1
            }
            _ => candidates.push(f),
        }
    }
    let hashed: Vec<(&Found, Result<String, String>)> = candidates
        .par_iter()
        .map(|f| (*f, hash_file(&f.local)))
        .collect();

    // Indexed files that disappeared, by content hash: where moved files came from.
    let mut gone: HashMap<&str, Vec<ItemId>> = HashMap::new();
    for item in items {
        if under_roots(&item.file.path) && !present.contains(item.file.path.as_str()) {
            gone.entry(item.file.hash.as_str())
                .or_default()
                .push(item.id);
        }
    }
    for (f, hash) in hashed {
        let hash = match hash {
            Ok(h) => h,
            Err(message) => {
                plan.unreadable.push(Failure {
                    path: f.path.clone(),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    message,
                });
                continue;
            }
        };
        let record = FileRecord {
            path: f.path.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            hash,
        };
        let existing = by_path.get(f.path.as_str());
        if let Some(item) = existing.filter(|i| i.file.hash == record.hash) {
            plan.refreshed.push((item.id, record));
        } else if let Some(id) = gone.get_mut(record.hash.as_str()).and_then(Vec::pop) {
            plan.removed.extend(existing.map(|i| i.id));
            plan.moved.push((id, record));
        } else {
            plan.to_embed.push(record);
        }
    }
    plan.removed.extend(gone.into_values().flatten());
    plan.forgotten = failures
        .iter()
        .filter(|f| under_roots(&f.path) && !present.contains(f.path.as_str()))
        .map(|f| f.path.clone())
        .collect();
    plan
}

/// BLAKE3 of a file's content, hexadecimal; the error message when it cannot be read.
pub fn hash_file(path: &Path) -> Result<String, String> {
    let mut hasher = blake3::Hasher::new();
    std::fs::File::open(path)
        .and_then(|file| hasher.update_reader(file).map(|_| ()))
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(hasher.finalize().to_hex().to_string())
}
