//! One format for every error: a middleware around the whole router that turns any error
//! response not already JSON into `{"error": ...}`, keeping its status and headers (such
//! as `Allow` on 405). It catches what handlers never see: axum's rejections (bad query
//! string, bad path parameter, bad multipart body, body too large), the 404 of an unknown
//! route, the 405 of a wrong method, and a panic caught by the layer below it.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::error::json_error;

/// The most of a non-JSON error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Middleware (for `axum::middleware::map_response`): error responses in JSON.
pub async fn to_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let (json_parts, json_body) = json_error(status, message).into_parts();
    let mut response = Response::from_parts(parts, Body::empty());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &json_parts.headers {
        headers.insert(name, value.clone());
    }
    *response.body_mut() = json_body;
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
