//! `ApiError`: every failure a handler can meet, each mapped to a status code in one
//! exhaustive `match`, and `json_error`, the one shape of every error response
//! (`{"error": message}`). Clients get a short message; internal details go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clipkit::search::SearchError;

use crate::indexed_file::Unservable;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible.
    #[error("{0}")]
    BadRequest(String),
    /// No indexed image has this id.
    #[error("no indexed image with id {0}")]
    NotFound(u64),
    /// An uploaded body or image is over the limits.
    #[error("{0}")]
    TooLarge(String),
    /// The file of an indexed image cannot be served: deleted (404), changed since it was
    /// indexed (409 Conflict: the index and the folder disagree until `clipkit index` runs
    /// again), or unreadable (500).
    #[error("the file of image {id} {reason}; re-run `clipkit index` to update the index")]
    File {
        /// The image's id.
        id: u64,
        /// What is wrong with its file.
        reason: Unservable,
    },
    /// The request's `Host` names neither loopback nor an allowed host (a defence against
    /// DNS rebinding).
    #[error("{0}")]
    MisdirectedHost(String),
    /// The library failed.
    #[error(transparent)]
    Clipkit(#[from] clipkit::Error),
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        ApiError::Clipkit(e.into())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::File { reason, .. } => match reason {
                Unservable::Gone | Unservable::NotHere => StatusCode::NOT_FOUND,
                Unservable::Changed(_) => StatusCode::CONFLICT,
                Unservable::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Clipkit(e) => library_status(e),
            ApiError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Bad input from the client is 4xx; trouble with the model or the index is 5xx.
fn library_status(e: &clipkit::Error) -> StatusCode {
    use clipkit::Error as E;
    match e {
        E::Image { .. } | E::InvalidArgument(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::ImageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::Search(SearchError::Query { .. } | SearchError::Dimension { .. }) => {
            StatusCode::BAD_REQUEST
        }
        // The database holding the index is down or refused: the server cannot answer now.
        E::Search(SearchError::Database { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        E::Search(
            SearchError::Io { .. }
            | SearchError::Records { .. }
            | SearchError::NoIndex { .. }
            | SearchError::Location { .. }
            | SearchError::Corrupt { .. }
            | SearchError::ModelMismatch { .. }
            | SearchError::Locked { .. }
            | SearchError::Ann { .. },
        )
        | E::Io { .. }
        | E::MissingFile { .. }
        | E::Config { .. }
        | E::Weights { .. }
        | E::CorruptCheckpoint { .. }
        | E::UnsafePickle { .. }
        | E::Tokenizer { .. }
        | E::Training(_)
        | E::Incompatible { .. }
        | E::Data { .. }
        | E::Tensor(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.status(), self.to_string())
    }
}

/// The one shape of every error response: `{"error": message}` with `status`. A server
/// error's message goes to the log and the client gets a generic one.
pub(crate) fn json_error(status: StatusCode, message: String) -> Response {
    let message = if status.is_server_error() {
        tracing::error!("{message}");
        "internal error (see the server log)".to_string()
    } else {
        message
    };
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
