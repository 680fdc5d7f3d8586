//! What can go wrong talking to the Hub or reading its cache.

use std::path::PathBuf;

/// An error of [`crate::hub`]: every variant names the repository, file or URL.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A `--model` value that is neither an existing path nor a Hub name.
    #[error("{spec:?}: no such file or folder, and not a Hub model name (ORG/NAME or ORG/NAME@REVISION)")]
    NotAModel {
        /// What was given.
        spec: String,
    },
    /// The model is not in the cache and downloads are off.
    #[error("{repo}: not in the Hub cache at {} and HF_HUB_OFFLINE is set; unset it to download, or pass a model folder", cache.display())]
    Offline {
        /// The repository, with its revision when not `main`.
        repo: String,
        /// The cache that was searched.
        cache: PathBuf,
    },
    /// The Hub refused access (401/403): the repository is private or gated, or does not
    /// exist (the Hub answers 401 for unknown names when no token is sent).
    #[error("{repo}: the Hub refused access ({status} at {url}): the repository does not exist, or is private or gated; set HF_TOKEN to a token that may read it")]
    Unauthorized {
        /// The repository.
        repo: String,
        /// 401 or 403.
        status: u16,
        /// The URL asked for.
        url: String,
    },
    /// The Hub has no such repository, revision or file (404).
    #[error("{repo}: not found on the Hub ({url} answered 404): check the name{}", if *revision { " and the revision" } else { "" })]
    NotFound {
        /// The repository.
        repo: String,
        /// The URL asked for.
        url: String,
        /// Whether a revision other than `main` was asked for.
        revision: bool,
    },
    /// Any other answer the Hub should not give (5xx, unexpected 3xx or 4xx).
    #[error("{repo}: the Hub answered {status} for {url}; try again later")]
    Status {
        /// The repository.
        repo: String,
        /// The HTTP status.
        status: u16,
        /// The URL asked for.
        url: String,
    },
    /// The connection failed or broke off.
    #[error("{repo}: {url}: {message}")]
    Transport {
        /// The repository.
        repo: String,
        /// The URL asked for.
        url: String,
        /// What the HTTP client reported.
        message: String,
    },
    /// A download ended before the size the Hub announced; the part stays in the cache as
    /// `.incomplete` and the next pull resumes it.
    #[error("{repo}: download of {file} stopped at {received} of {expected} bytes; run the pull again to resume it")]
    Truncated {
        /// The repository.
        repo: String,
        /// The file in the repository.
        file: String,
        /// Bytes on disk.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A downloaded file's hash is not the ETag the Hub gave for it; the download was deleted.
    #[error("{repo}: {file}: the download's {algorithm} is {actual} but the Hub's ETag is {expected}; the file was discarded (a proxy or the mirror at HF_ENDPOINT altered it)")]
    Integrity {
        /// The repository.
        repo: String,
        /// The file in the repository.
        file: String,
        /// `sha256` (LFS files) or `git blob sha1`.
        algorithm: &'static str,
        /// The ETag.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
    /// An answer that does not follow the Hub's protocol (bad JSON, missing header).
    #[error("{repo}: {url}: unexpected answer: {message}")]
    Protocol {
        /// The repository.
        repo: String,
        /// The URL asked for.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A cache file or folder could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
}

impl HubError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> HubError {
        HubError::Io {
            path: path.into(),
            cause,
        }
    }
}
