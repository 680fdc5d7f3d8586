//! Models by name from the HuggingFace Hub, in the Hub's standard cache.
//!
//! The cache is the one `huggingface_hub` and transformers use, so a model either of them
//! downloaded is read here without a new download, and what clipkit pulls they read:
//!
//! ```text
//! $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
//! └── models--ORG--NAME/
//!     ├── blobs/ETAG                     file contents, named by the Hub's ETag
//!     ├── refs/main                      the commit a revision name pointed at
//!     └── snapshots/COMMIT/FILE → ../../blobs/ETAG   (relative symlinks)
//! ```
//!
//! [`resolve_model`] is the one resolver of a `--model` argument: a path that exists is
//! used as it is; `ORG/NAME[@REVISION]` is looked up in the cache (no network), and pulled
//! ([`pull`]) when missing unless [`HubSettings::offline`]. [`list_cached`] lists the cache,
//! and [`crate::model_folder::probe_layout`] says which of its snapshots clipkit can load.
//!
//! The protocol is the Hub's: `GET /api/models/{repo}/revision/{rev}` for the commit,
//! `GET /api/models/{repo}/tree/{commit}?recursive=true` for the files, and
//! `GET /{repo}/resolve/{commit}/{file}` for each file, whose `X-Linked-Etag` (LFS files:
//! the sha256 of the contents) or `ETag` (other files: the git blob sha1) names the blob and
//! is checked against what arrives. Downloads go to `blobs/ETAG.incomplete`, resume with a
//! `Range` request, and become blobs only once verified; snapshot links and the ref are
//! written after every file is in, so a failed pull leaves nothing usable behind.

mod cache;
mod download;
mod error;
mod http;
mod repo_id;
mod settings;

pub use cache::{cached_snapshot, list_cached, repo_folder_name, CachedModel, CachedRevision};
pub use download::{pull, PullOptions, PullProgress};
pub use error::HubError;
pub use repo_id::RepoId;
pub use settings::HubSettings;

use std::path::{Path, PathBuf};

/// Where a `--model` argument led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedModel {
    /// A path on disk, used as given.
    Path(PathBuf),
    /// A Hub model found in the cache: its snapshot folder.
    Cached(PathBuf),
    /// A Hub model that was not in the cache and has just been pulled: its snapshot folder.
    Pulled(PathBuf),
}

impl ResolvedModel {
    /// The folder or file to load.
    pub fn path(&self) -> &Path {
        match self {
            ResolvedModel::Path(p) | ResolvedModel::Cached(p) | ResolvedModel::Pulled(p) => p,
        }
    }
}

/// Resolves a `--model` argument: an existing path as it is, else a Hub name
/// `ORG/NAME[@REVISION]` through the cache, pulling it when missing (`before_pull` is called
/// first, to tell the user) unless the settings are offline.
///
/// A spec that is neither an existing path nor a well-formed Hub name is an error naming
/// both readings.
pub fn resolve_model(
    spec: &str,
    settings: &HubSettings,
    before_pull: &mut dyn FnMut(&RepoId),
    progress: &mut dyn PullProgress,
) -> Result<ResolvedModel, HubError> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(ResolvedModel::Path(path.to_path_buf()));
    }
    let Some(repo) = RepoId::parse(spec) else {
        return Err(HubError::NotAModel {
            spec: spec.to_string(),
        });
    };
    if let Some(dir) = cached_snapshot(&settings.cache_dir, &repo)? {
        return Ok(ResolvedModel::Cached(dir));
    }
    if settings.offline {
        return Err(HubError::Offline {
            repo: repo.to_string(),
            cache: settings.cache_dir.clone(),
        });
    }
    before_pull(&repo);
    let dir = pull(settings, &repo, &PullOptions::default(), progress)?;
    Ok(ResolvedModel::Pulled(dir))
}
