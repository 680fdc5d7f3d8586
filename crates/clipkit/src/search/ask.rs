//! Turning what a user asks — a mixed text query, example images — into one query vector
//! with a model, and asking a store for the nearest images above a score floor.

use std::path::Path;

use super::query::{combine, parse};
use super::store::{Hit, VectorStore};
use crate::clip::Clip;
use crate::error::Result;

/// The unit query vector for an optional mixed text query (see [`super::query`]) and
/// example images, each image weighing `image_weight`. At least one of the two is needed.
pub fn query_vector<P: AsRef<Path> + Sync>(
    clip: &Clip,
    text: Option<&str>,
    images: &[P],
    image_weight: f32,
) -> Result<Vec<f32>> {
    let terms = match text {
        Some(t) => parse(t)?,
        None => Vec::new(),
    };
    let mut weighted = Vec::new();
    if !terms.is_empty() {
        let texts: Vec<&str> = terms.iter().map(|t| t.text.as_str()).collect();
        let embeddings = clip.embed_texts(&texts)?.to_vec2::<f32>()?;
        weighted.extend(terms.iter().map(|t| t.weight).zip(embeddings));
    }
    if !images.is_empty() {
        let embeddings = clip.embed_image_files(images, |_| {})?.to_vec2::<f32>()?;
        weighted.extend(embeddings.into_iter().map(|e| (image_weight, e)));
    }
    if weighted.is_empty() {
        return Err(crate::Error::InvalidArgument(
            "nothing to search for: give a text query or an image".into(),
        ));
    }
    Ok(combine(&weighted)?)
}

/// The `k` items of `store` nearest to the unit vector `query`, best first, without those
/// scoring below `min_score` (cosine similarity; `None` keeps all `k`). The one score floor
/// the CLI and the server apply.
pub fn nearest(
    store: &dyn VectorStore,
    query: &[f32],
    k: usize,
    min_score: Option<f32>,
) -> super::Result<Vec<Hit>> {
    let mut hits = store.search(query, k)?;
    if let Some(min) = min_score {
        hits.retain(|h| h.score >= min);
    }
    Ok(hits)
}
