//! CLIPScore of image–caption pairs, as the field reports it.
//!
//! - CLIP-S (Hessel et al. 2021, the `jmhessel/clipscore` code): the caption is embedded as
//!   [`CLIPSCORE_PREFIX`] followed by the caption; per pair `2.5 · max(cos(image, text), 0)`;
//!   overall the mean over pairs.
//! - RefCLIP-S (same paper): references are embedded with the same prefix; per pair the
//!   harmonic mean of CLIP-S and `max(max_r cos(text, reference_r), 0)` (0 when both are 0);
//!   overall the mean over pairs. The paper clamps the text–text term at 0; the reference code
//!   does not, which only differs when every reference points away from the caption.
//! - torchmetrics' `clip_score`: `100 · cos(image, text)` per pair with no prefix, averaged
//!   over pairs, then clamped at 0 (the clamp is applied to the mean, not per pair).
//!
//! Shapes: N = pairs, D = embedding width; embeddings are unit rows (N, D).
//!
//! ```
//! use clipkit::eval::clip_score::{clip_s, harmonic_mean, torchmetrics_mean};
//! assert_eq!(clip_s(0.4), 1.0);
//! assert_eq!(clip_s(-0.3), 0.0);
//! assert_eq!(harmonic_mean(1.0, 0.5), 2.0 / 3.0);
//! assert_eq!(torchmetrics_mean(&[30.0, -50.0]), 0.0);
//! ```

use std::path::Path;

use crate::clip::Clip;
use crate::error::{Error, Result};

/// The text put before every caption and reference, as `jmhessel/clipscore` does.
pub const CLIPSCORE_PREFIX: &str = "A photo depicts ";

/// The weight `w` of CLIP-S in Hessel et al. 2021.
pub const CLIPSCORE_WEIGHT: f32 = 2.5;

/// The scores of one image–caption pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    /// CLIP-S: `2.5 · max(cos, 0)` with the caption prefixed by [`CLIPSCORE_PREFIX`].
    pub clipscore: f32,
    /// torchmetrics' per-pair value: `100 · cos` with the caption as given (may be negative).
    pub torchmetrics_score: f32,
    /// RefCLIP-S, when references were given.
    pub refclipscore: Option<f32>,
}

/// The scores of a set of pairs: per pair and overall.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipScoreReport {
    /// One entry per pair, in input order.
    pub pairs: Vec<PairScore>,
    /// Mean CLIP-S over pairs.
    pub clipscore: f32,
    /// torchmetrics' CLIPScore: mean of `100 · cos` over pairs, clamped at 0.
    pub torchmetrics_clip_score: f32,
    /// Mean RefCLIP-S over pairs, when references were given.
    pub refclipscore: Option<f32>,
}

/// CLIP-S of one cosine similarity: `2.5 · max(cos, 0)`.
pub fn clip_s(cos: f32) -> f32 {
    CLIPSCORE_WEIGHT * cos.max(0.0)
}

/// Harmonic mean of two non-negative numbers; 0 when both are 0.
pub fn harmonic_mean(a: f32, b: f32) -> f32 {
    if a + b == 0.0 {
        0.0
    } else {
        2.0 * a * b / (a + b)
    }
}

/// torchmetrics' reduction: the mean of the per-pair scores, clamped at 0; 0 for no scores.
pub fn torchmetrics_mean(scores: &[f32]) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    (scores.iter().sum::<f32>() / scores.len() as f32).max(0.0)
}

/// Scores image `i` against text `i` with `clip`; `references[i]`, when given, are the
/// reference captions of pair `i` and add RefCLIP-S.
///
/// An empty caption is allowed (it is embedded as the bare prefix for CLIP-S and as the empty
/// text for torchmetrics, as both reference implementations do). Errors with
/// [`Error::InvalidArgument`] when there are no pairs, when the counts of images, texts (and
/// reference lists) differ, or when a pair has no references; image errors name the file.
pub fn clip_score<P, S>(
    clip: &Clip,
    images: &[P],
    texts: &[S],
    references: Option<&[Vec<String>]>,
) -> Result<ClipScoreReport>
where
    P: AsRef<Path> + Sync,
    S: AsRef<str>,
{
    check_counts(images.len(), texts.len(), references)?;
    let image_rows = clip.embed_image_files(images, |_| {})?.to_vec2::<f32>()?; // (N, D)
    let prefixed: Vec<String> = texts.iter().map(|t| prefixed(t.as_ref())).collect();
    let caption_rows = clip.embed_texts(&prefixed)?.to_vec2::<f32>()?; // (N, D)
    let plain_rows = clip.embed_texts(texts)?.to_vec2::<f32>()?; // (N, D)

    let text_text = match references {
        Some(references) => Some(best_reference_similarity(clip, &caption_rows, references)?),
        None => None,
    };
    let pairs: Vec<PairScore> = (0..images.len())
        .map(|i| {
            let clipscore = clip_s(dot(&image_rows[i], &caption_rows[i]));
            PairScore {
                clipscore,
                torchmetrics_score: 100.0 * dot(&image_rows[i], &plain_rows[i]),
                refclipscore: text_text
                    .as_ref()
                    .map(|t| harmonic_mean(clipscore, t[i].max(0.0))),
            }
        })
        .collect();
    let n = pairs.len() as f32;
    let torchmetrics: Vec<f32> = pairs.iter().map(|p| p.torchmetrics_score).collect();
    Ok(ClipScoreReport {
        clipscore: pairs.iter().map(|p| p.clipscore).sum::<f32>() / n,
        torchmetrics_clip_score: torchmetrics_mean(&torchmetrics),
        refclipscore: text_text
            .map(|_| pairs.iter().filter_map(|p| p.refclipscore).sum::<f32>() / n),
        pairs,
    })
}

fn check_counts(images: usize, texts: usize, references: Option<&[Vec<String>]>) -> Result<()> {
    if images == 0 {
        return Err(Error::InvalidArgument(
            "no image–text pairs to score".into(),
        ));
    }
    if images != texts {
        return Err(Error::InvalidArgument(format!(
            "{images} images but {texts} texts: image i is scored against text i, so the counts \
             must match"
        )));
    }
    if let Some(references) = references {
        if references.len() != images {
            return Err(Error::InvalidArgument(format!(
                "{images} pairs but {} reference lists",
                references.len()
            )));
        }
        if let Some(i) = references.iter().position(|r| r.is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "pair {} has no references",
                i + 1
            )));
        }
    }
    Ok(())
}

/// Per pair, the largest cosine between its (prefixed) caption and its (prefixed) references.
fn best_reference_similarity(
    clip: &Clip,
    caption_rows: &[Vec<f32>],
    references: &[Vec<String>],
) -> Result<Vec<f32>> {
    let flat: Vec<String> = references.iter().flatten().map(|r| prefixed(r)).collect();
    let reference_rows = clip.embed_texts(&flat)?.to_vec2::<f32>()?; // (R, D)
    let mut start = 0;
    let mut best = Vec::with_capacity(references.len());
    for (caption, refs) in caption_rows.iter().zip(references) {
        let rows = &reference_rows[start..start + refs.len()];
        start += refs.len();
        best.push(
            rows.iter()
                .map(|r| dot(caption, r))
                .fold(f32::NEG_INFINITY, f32::max),
        );
    }
    Ok(best)
}

fn prefixed(text: &str) -> String {
    format!("{CLIPSCORE_PREFIX}{text}")
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_s_clamps_negative_cosines_to_zero() {
        assert_eq!(clip_s(-0.9), 0.0);
        assert!((clip_s(0.3) - 0.75).abs() < 1e-7);
    }

    #[test]
    fn torchmetrics_clamps_the_mean_not_each_pair() {
        // Per-pair clamping would give (30 + 0) / 2 = 15.
        assert!((torchmetrics_mean(&[30.0, -10.0]) - 10.0).abs() < 1e-6);
        assert_eq!(torchmetrics_mean(&[-30.0, 10.0]), 0.0);
    }

    #[test]
    fn harmonic_mean_of_zeros_is_zero_not_nan() {
        assert_eq!(harmonic_mean(0.0, 0.0), 0.0);
        assert_eq!(harmonic_mean(0.0, 0.8), 0.0);
    }

    #[test]
    fn mismatched_counts_and_empty_references_are_refused() {
        assert!(matches!(
            check_counts(2, 3, None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check_counts(0, 0, None),
            Err(Error::InvalidArgument(_))
        ));
        let refs = vec![vec!["a".to_string()], vec![]];
        assert!(matches!(
            check_counts(2, 2, Some(&refs)),
            Err(Error::InvalidArgument(m)) if m.contains("pair 2")
        ));
        assert!(check_counts(1, 1, Some(&refs[..1])).is_ok());
    }
}
