//! Errors of the search module: the store's files, the model a store belongs to, queries.

use std::path::PathBuf;

/// Everything that can go wrong while indexing or searching.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A store file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error. Part of the message, so not also the error's
        /// `source()`: a reporter printing the chain (`{:#}`) would say it twice.
        cause: std::io::Error,
    },
    /// The store's SQLite database reported an error.
    #[error("{path}: {cause}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error (in the message, not `source()`, as for `Io`).
        cause: rusqlite::Error,
    },
    /// There is no index in the folder.
    #[error("no index at {path}; run `clipkit index DIR` first")]
    NoIndex {
        /// The folder searched.
        path: PathBuf,
    },
    /// A store file is damaged: its content contradicts what the store recorded.
    #[error("{path}: corrupt index: {message}; delete the index folder and re-run `clipkit index` to rebuild it")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The store was made by another model; embeddings of two models never mix.
    #[error("{path}: this index was made with model {stored}, not with {given}; pass the same --model, or a new --index folder")]
    ModelMismatch {
        /// The store folder.
        path: PathBuf,
        /// The identity the store recorded.
        stored: String,
        /// The identity of the model given now.
        given: String,
    },
    /// A vector of the wrong length was given.
    #[error("vector of dimension {given} given to an index of dimension {expected}")]
    Dimension {
        /// The store's dimension.
        expected: usize,
        /// The vector's length.
        given: usize,
    },
    /// Another process is writing to the store.
    #[error("{path}: the index is being written by another process (try again when it is done)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The approximate-nearest-neighbour index failed.
    #[error("{path}: approximate index: {message}")]
    Ann {
        /// The index file (or the store folder when the index is in memory).
        path: PathBuf,
        /// What the index library reported.
        message: String,
    },
    /// A mixed query could not be parsed.
    #[error("query {query:?}: {message}")]
    Query {
        /// The query as given.
        query: String,
        /// What is wrong, with the position where it matters.
        message: String,
    },
}

impl SearchError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        SearchError::Io {
            path: path.into(),
            cause,
        }
    }

    /// A corrupt-store error on `path`.
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SearchError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The search module's result type.
pub type Result<T, E = SearchError> = std::result::Result<T, E>;
