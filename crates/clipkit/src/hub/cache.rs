//! The Hub cache on disk, laid out exactly as `huggingface_hub` lays it out (see the
//! module docs of [`crate::hub`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::HubError;
use super::repo_id::RepoId;

/// `models--ORG--NAME`: the folder of a model repository in the cache.
pub fn repo_folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// Whether `revision` is a full commit hash (40 lower-case hex digits).
pub(crate) fn is_commit(revision: &str) -> bool {
    revision.len() == 40
        && revision
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The snapshot folder of `id` if the cache has it: the revision read through `refs/`
/// (or taken as the commit when it is one) and `snapshots/COMMIT` present. No network.
pub fn cached_snapshot(cache_dir: &Path, id: &RepoId) -> Result<Option<PathBuf>, HubError> {
    let repo_dir = cache_dir.join(repo_folder_name(&id.repo));
    let commit = if is_commit(&id.revision) {
        id.revision.clone()
    } else {
        let ref_file = repo_dir.join("refs").join(&id.revision);
        match std::fs::read_to_string(&ref_file) {
            Ok(text) => text.trim().to_string(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HubError::io(ref_file, e)),
        }
    };
    if !is_commit(&commit) {
        return Ok(None);
    }
    let snapshot = repo_dir.join("snapshots").join(&commit);
    Ok(snapshot.is_dir().then_some(snapshot))
}

/// One snapshot of a cached model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRevision {
    /// The commit hash, the snapshot folder's name.
    pub commit: String,
    /// Revision names (`main`, tags) whose ref points at this commit; may be empty.
    pub refs: Vec<String>,
    /// The snapshot folder.
    pub path: PathBuf,
}

/// A model repository in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// `ORG/NAME`.
    pub repo: String,
    /// Its snapshots, by commit.
    pub revisions: Vec<CachedRevision>,
    /// Bytes of its complete blobs.
    pub size_bytes: u64,
    /// Downloads that were interrupted (`blobs/*.incomplete`), resumed by the next pull.
    pub incomplete: usize,
}

/// Every model repository in the cache, by name; an absent cache is an empty one.
pub fn list_cached(cache_dir: &Path) -> Result<Vec<CachedModel>, HubError> {
    let mut models = Vec::new();
    for entry in read_dir_or_empty(cache_dir)? {
        let Some(name) = entry.strip_prefix("models--") else {
            continue;
        };
        let repo_dir = cache_dir.join(&entry);
        let refs = read_refs(&repo_dir.join("refs"))?;
        let mut revisions = Vec::new();
        for commit in read_dir_or_empty(&repo_dir.join("snapshots"))? {
            revisions.push(CachedRevision {
                refs: refs
                    .iter()
                    .filter(|(_, c)| *c == commit)
                    .map(|(r, _)| r.clone())
                    .collect(),
                path: repo_dir.join("snapshots").join(&commit),
                commit,
            });
        }
        let (mut size_bytes, mut incomplete) = (0, 0);
        let blobs = repo_dir.join("blobs");
        for blob in read_dir_or_empty(&blobs)? {
            if blob.ends_with(".incomplete") {
                incomplete += 1;
            } else {
                let path = blobs.join(&blob);
                size_bytes += std::fs::metadata(&path)
                    .map_err(|e| HubError::io(path, e))?
                    .len();
            }
        }
        models.push(CachedModel {
            repo: name.replacen("--", "/", 1),
            revisions,
            size_bytes,
            incomplete,
        });
    }
    Ok(models)
}

/// Sorted entry names of a folder; none when it does not exist.
fn read_dir_or_empty(dir: &Path) -> Result<Vec<String>, HubError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HubError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HubError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// `(revision, commit)` for every file under `refs/` (revisions may hold `/`).
fn read_refs(refs_dir: &Path) -> Result<Vec<(String, String)>, HubError> {
    let mut refs = Vec::new();
    for entry in walkdir::WalkDir::new(refs_dir).sort_by_file_name() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.io_error().map(|e| e.kind()) == Some(ErrorKind::NotFound) => break,
            Err(e) => return Err(HubError::io(refs_dir, e.into())),
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let commit = std::fs::read_to_string(path).map_err(|e| HubError::io(path, e))?;
        let name = path.strip_prefix(refs_dir).unwrap_or(path);
        refs.push((
            name.to_string_lossy().into_owned(),
            commit.trim().to_string(),
        ));
    }
    Ok(refs)
}

/// Paths of one repository's cache folder.
pub(crate) struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, repo: &str) -> RepoCache {
        RepoCache {
            dir: cache_dir.join(repo_folder_name(repo)),
        }
    }

    /// `blobs/ETAG`.
    pub(crate) fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// `blobs/ETAG.incomplete`: a download under way or interrupted.
    pub(crate) fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// `snapshots/COMMIT`.
    pub(crate) fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// Points `snapshots/COMMIT/FILE` at `blobs/ETAG` by a relative symlink, replacing what
    /// was there.
    pub(crate) fn link(&self, commit: &str, file: &str, etag: &str) -> Result<(), HubError> {
        let link = self.snapshot(commit).join(file);
        let parent = link.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
        // From snapshots/COMMIT/a/b/FILE up to the repository folder: one `..` per folder.
        let depth = 2 + file.matches('/').count();
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(HubError::io(link, e)),
        }
        symlink_or_copy(&target, &self.blob(etag), &link)
    }

    /// Writes `refs/REVISION` = commit, atomically.
    pub(crate) fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        let path = self.dir.join("refs").join(revision);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
        let staging = parent.join(format!(
            ".{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&staging, commit).map_err(|e| HubError::io(&staging, e))?;
        std::fs::rename(&staging, &path).map_err(|e| HubError::io(path, e))
    }
}

#[cfg(unix)]
fn symlink_or_copy(target: &Path, _blob: &Path, link: &Path) -> Result<(), HubError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| HubError::io(link, e))
}

/// Where symlinks need privileges, `huggingface_hub` copies the blob; so do we.
#[cfg(not(unix))]
fn symlink_or_copy(_target: &Path, blob: &Path, link: &Path) -> Result<(), HubError> {
    std::fs::copy(blob, link)
        .map(|_| ())
        .map_err(|e| HubError::io(link, e))
}
