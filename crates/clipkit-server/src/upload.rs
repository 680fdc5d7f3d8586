//! Multipart uploads: text fields and image files, images saved to temporary files so the
//! library decodes them with all its checks (format by content, pixel limit, orientation).

use axum::extract::Multipart;
use tempfile::NamedTempFile;

use crate::error::ApiError;

/// A parsed multipart form.
#[derive(Default)]
pub struct Form {
    /// Text fields in order: (name, value).
    pub fields: Vec<(String, String)>,
    /// Uploaded files in order: (field name, original file name, saved copy).
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
