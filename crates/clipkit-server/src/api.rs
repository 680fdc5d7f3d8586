//! The JSON API. Handlers unpack the request, run the work through
//! [`AppState::blocking`], and shape the answer.
//!
//! - `GET /api/health` → `{"status": "ok", "images", "model", "dim"}`
//! - `GET /api/search?q=TEXT&top_k=N&min_score=S` → `{"results": [{"id", "path", "score"}],
//!   "unknown_words": [words of the query the model's vocabulary cannot represent]}`;
//!   `top_k` at least 1, `min_score` a cosine from -1 to 1
//! - `POST /api/search` (multipart: `q`, `image` files, `top_k`, `min_score`) → the same,
//!   for image-to-image and mixed queries
//! - `POST /api/classify` (multipart: `image` files, `label` fields, `template` fields) →
//!   `{"results": [{"name", "labels": [{"label", "prob"}]}], "unknown_words"}`
//! - `POST /api/embed` (multipart: `text` fields, `image` files) →
//!   `{"dim", "texts": [{"text", "embedding", "unknown_words"}], "images": [{"name",
//!   "embedding"}]}`
//!
//! Every failure answers `{"error": message}` with a 4xx or 5xx status; a message about an
//! uploaded image names it by its multipart file name.

use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::Json;
use clipkit::search::query::parse;
use clipkit::search::{nearest, query_vector};
use clipkit::zeroshot::{TemplateSet, ZeroShotClassifier};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;
use crate::upload::{self, Form};

/// Query-string parameters of `GET /api/search`.
#[derive(Deserialize)]
pub struct SearchParams {
    q: String,
    top_k: Option<usize>,
    min_score: Option<f32>,
}

/// One search result.
#[derive(Serialize)]
pub struct Found {
    id: u64,
    path: String,
    score: f32,
}

/// A search's answer: the results, best first, and the query's words the model cannot
/// represent (they read as nothing, so results for them mean little).
#[derive(Serialize)]
pub struct Answer {
    results: Vec<Found>,
    unknown_words: Vec<String>,
}

/// `GET /api/health`.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let store = state.store();
    Json(json!({
        "status": "ok",
        "images": store.len(),
        "model": state.model,
        "dim": store.dim(),
    }))
}

/// `GET /api/search`: text (mixed) queries.
pub async fn search_get(
    State(state): State<Arc<AppState>>,
    Query(p): Query<SearchParams>,
) -> Result<Json<Answer>, ApiError> {
    let answer = state
        .blocking(move |s| search(s, Some(p.q), &[], p.top_k, p.min_score))
        .await?;
    Ok(Json(answer))
}

/// `POST /api/search`: example images, optionally mixed with text.
pub async fn search_post(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Json<Answer>, ApiError> {
    let form = upload::read(multipart).await?;
    let top_k = parse_opt(&form, "top_k")?;
    let min_score = parse_opt(&form, "min_score")?;
    let answer = form
        .process(&state, move |s, form| {
            search(s, form.first("q"), &form.file_paths(), top_k, min_score)
        })
        .await?;
    Ok(Json(answer))
}

/// `POST /api/classify`: zero-shot classification of uploaded images.
pub async fn classify(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let form = upload::read(multipart).await?;
    form.process(&state, classify_form).await.map(Json)
}

/// `POST /api/embed`: embeddings of texts and uploaded images.
pub async fn embed(
    State(state): State<Arc<AppState>>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let form = upload::read(multipart).await?;
    form.process(&state, embed_form).await.map(Json)
}

/// The transport-free search: query vector, nearest items, score floor, and the query's
/// unknown words. `top_k` below 1 and a `min_score` that is no cosine are refused, as the
/// CLI refuses them.
pub fn search(
    state: &AppState,
    text: Option<String>,
    images: &[&std::path::Path],
    top_k: Option<usize>,
    min_score: Option<f32>,
) -> Result<Answer, ApiError> {
    if top_k == Some(0) {
        return Err(ApiError::BadRequest("top_k must be at least 1".into()));
    }
    if let Some(min) = min_score.filter(|m| !(-1.0..=1.0).contains(m)) {
        return Err(ApiError::BadRequest(format!(
            "min_score {min} is not a cosine similarity: give a number from -1 to 1"
        )));
    }
    let text = text.filter(|t| !t.trim().is_empty());
    let top_k = top_k.unwrap_or(20).min(state.limits.max_top_k);
    let terms = match &text {
        Some(text) => parse(text)?,
        None => Vec::new(),
    };
    let texts: Vec<&str> = terms.iter().map(|t| t.text.as_str()).collect();
    let unknown_words = state.clip.tokenizer().unknown_words_in(&texts)?;
    let query = query_vector(&state.clip, text.as_deref(), images, 1.0)?;
    let results = nearest(&*state.store(), &query, top_k, min_score)?
        .into_iter()
        .map(|h| Found {
            id: h.id,
            path: state.named.display(&h.path),
            score: h.score,
        })
        .collect();
    Ok(Answer {
        results,
        unknown_words,
    })
}

fn classify_form(state: &AppState, form: &Form) -> Result<Value, ApiError> {
    let labels = form.all("label");
    if labels.is_empty() || form.files.is_empty() {
        return Err(ApiError::BadRequest(
            "give at least one `image` file and one `label` field".into(),
        ));
    }
    let mut templates = form.all("template");
    if templates.is_empty() {
        templates = TemplateSet::Simple.templates();
    }
    let classifier = ZeroShotClassifier::new(&state.clip, &labels, &templates)?;
    let embeds = state.clip.embed_image_files(&form.file_paths(), |_| {})?;
    let results: Vec<Value> = form
        .files
        .iter()
        .zip(classifier.classify(&embeds)?)
        .map(|((_, name, _), scores)| {
            let labels: Vec<Value> = scores
                .into_iter()
                .map(|s| json!({ "label": s.label, "prob": s.prob }))
                .collect();
            json!({ "name": name, "labels": labels })
        })
        .collect();
    Ok(json!({ "results": results, "unknown_words": classifier.unknown_words() }))
}

fn embed_form(state: &AppState, form: &Form) -> Result<Value, ApiError> {
    let texts = form.all("text");
    if texts.is_empty() && form.files.is_empty() {
        return Err(ApiError::BadRequest(
            "give `text` fields or `image` files".into(),
        ));
    }
    let text_embeds = state
        .clip
        .embed_texts(&texts)?
        .to_vec2::<f32>()
        .map_err(clipkit::Error::from)?;
    let image_embeds = state
        .clip
        .embed_image_files(&form.file_paths(), |_| {})?
        .to_vec2::<f32>()
        .map_err(clipkit::Error::from)?;
    Ok(json!({
        "dim": state.clip.embedding_dim(),
        "texts": texts.iter().zip(text_embeds).map(|(t, e)| {
            let unknown = state.clip.tokenizer().unknown_words(t)?;
            Ok(json!({"text": t, "embedding": e, "unknown_words": unknown}))
        }).collect::<Result<Vec<_>, clipkit::Error>>()?,
        "images": form.files.iter().zip(image_embeds).map(|((_, n, _), e)| json!({"name": n, "embedding": e})).collect::<Vec<_>>(),
    }))
}

fn parse_opt<T: std::str::FromStr>(form: &Form, name: &str) -> Result<Option<T>, ApiError> {
    form.first(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("`{name}`: cannot parse {v:?}")))
        })
        .transpose()
}
