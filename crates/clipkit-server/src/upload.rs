//! Multipart uploads: text fields and image files, images saved to temporary files so the
//! library decodes them with all its checks (format by content, pixel limit, orientation).
//! The work on a form runs through [`Form::process`], which names an uploaded file in any
//! error the way the client named it, never by the server's temporary copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Multipart;
use tempfile::NamedTempFile;

use crate::error::ApiError;
use crate::state::AppState;

/// A parsed multipart form.
#[derive(Default)]
pub struct Form {
    /// Text fields in order: (name, value).
    pub fields: Vec<(String, String)>,
    /// Uploaded files in order: (field name, file name as uploaded, saved copy).
    pub files: Vec<(String, String, NamedTempFile)>,
}

impl Form {
    /// Values of the text fields called `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The first text field called `name`.
    pub fn first(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// The saved copies of the uploaded files, in order.
    pub fn file_paths(&self) -> Vec<&Path> {
        self.files.iter().map(|(_, _, f)| f.path()).collect()
    }

    /// Runs `work` on the form through [`AppState::blocking`]; an error about one of the
    /// saved copies is rewritten to name the uploaded file instead.
    pub async fn process<T: Send + 'static>(
        self,
        state: &Arc<AppState>,
        work: impl FnOnce(&AppState, &Form) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        state
            .blocking(move |s| work(s, &self).map_err(|e| self.name_uploads(e)))
            .await
    }

    /// `e` with the path of a saved copy replaced by the uploaded file's name.
    fn name_uploads(&self, e: ApiError) -> ApiError {
        use clipkit::Error as E;
        let ApiError::Clipkit(e) = e else {
            return e;
        };
        let rename = |path: PathBuf| {
            self.files
                .iter()
                .find(|(_, _, f)| f.path() == path)
                .map_or(path, |(_, name, _)| PathBuf::from(name))
        };
        ApiError::Clipkit(match e {
            E::Image { path, message } => E::Image {
                path: rename(path),
                message,
            },
            E::ImageTooLarge {
                path,
                width,
                height,
                limit,
            } => E::ImageTooLarge {
                path: rename(path),
                width,
                height,
                limit,
            },
            E::Io { path, cause } => E::Io {
                path: rename(path),
                cause,
            },
            other => other,
        })
    }
}

/// Reads a whole multipart body (its size is capped by the body limit layer).
pub async fn read(mut multipart: Multipart) -> Result<Form, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    };
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let file_name = if file_name.trim().is_empty() {
                    format!("unnamed upload {}", form.files.len() + 1)
                } else {
                    file_name
                };
                let bytes = field.bytes().await.map_err(bad)?;
                let mut file = NamedTempFile::new()
                    .map_err(|e| clipkit::Error::io(std::env::temp_dir(), e))?;
                std::io::Write::write_all(&mut file, &bytes)
                    .map_err(|e| clipkit::Error::io(file.path(), e))?;
                form.files.push((name, file_name, file));
            }
            None => {
                let text = field.text().await.map_err(bad)?;
                form.fields.push((name, text));
            }
        }
    }
    Ok(form)
}
