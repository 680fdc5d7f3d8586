//! The web page: one self-contained HTML file (search box, image upload, thumbnail grid
//! with scores, full image on click), compiled into the binary.

use axum::response::Html;

const PAGE: &str = include_str!("page.html");

/// `GET /`.
pub async fn index() -> Html<&'static str> {
    Html(PAGE)
}
