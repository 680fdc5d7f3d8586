//! Errors of the search module: the store's files and records, the model a store belongs
//! to, queries. Variants name what failed, never the engine a backend is built on; the
//! engine's own words go in the message.

use std::path::PathBuf;

use super::location::StoreLocation;

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
    /// The store's records (items, failures, metadata) could not be read or written.
    #[error("{path}: cannot read or write the index records: {message}")]
    Records {
        /// The file or address holding the records.
        path: PathBuf,
        /// What the storage engine reported.
        message: String,
    },
    /// There is no index at the location.
    #[error("no index at {location}; run `clipkit index DIR` first")]
    NoIndex {
        /// Where the index was looked for.
        location: StoreLocation,
    },
    /// A database server holding the store refused a request or could not be reached.
    #[error("{location}: {message}")]
    Database {
        /// The store (its password left out).
        location: StoreLocation,
        /// What the server or the connection reported.
        message: String,
    },
    /// The location names a kind of store this build cannot open.
    #[error("index location {location:?}: {message}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        message: String,
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
    #[error("{location}: this index was made with model {stored}, not with {given} (an identity ends in @bf16, @int8 or @w8a8 for embeddings of that --precision); pass the same --model and --precision, or a new --index folder")]
    ModelMismatch {
        /// The store.
        location: StoreLocation,
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
