//! Retrieval recall: image→text and text→image recall@1/5/10 over (image, caption) pairs.
//!
//! Pair i's image and caption are the queries and candidates. A candidate counts as right
//! when its caption *text* equals the query's caption, so a data set where several images
//! share a caption ("two red circles") does not punish a model for picking the twin.

use candle_core::Tensor;
use rayon::prelude::*;
use serde::Serialize;

use super::metrics::{self, Recall};
use crate::clip::Clip;
use crate::data::PairSource;
use crate::error::Result;

/// Recall in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetrievalReport {
    /// Each image queries all captions.
    pub image_to_text: Recall,
    /// Each caption queries all images.
    pub text_to_image: Recall,
    /// How many pairs were evaluated.
    pub count: usize,
    /// How many samples of the source were bad and skipped.
    pub skipped: usize,
}

/// Recall from unit embeddings of images (N, E) and their captions' texts (N, E).
pub fn recall(
    image_embeds: &Tensor,
    text_embeds: &Tensor,
    captions: &[String],
) -> Result<RetrievalReport> {
    let sims = metrics::rows(&image_embeds.matmul(&text_embeds.t()?)?)?; // (N images, N texts)
    let same = |a: usize, b: usize| captions[a] == captions[b];
    let i2t: Vec<usize> = sims
        .iter()
        .enumerate()
        .map(|(i, row)| metrics::rank_of_best(row, |j| same(i, j)))
        .collect();
    let columns = metrics::rows(&text_embeds.matmul(&image_embeds.t()?)?)?; // (N texts, N images)
    let t2i: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(j, row)| metrics::rank_of_best(row, |i| same(i, j)))
        .collect();
    Ok(RetrievalReport {
        image_to_text: Recall::from_ranks(&i2t),
        text_to_image: Recall::from_ranks(&t2i),
        count: captions.len(),
        skipped: 0,
    })
}

/// Reads every pair of `source` (skipping and counting bad samples), embeds images and
/// captions, and measures recall. `progress` gets the number of samples read.
pub fn evaluate_source(
    clip: &Clip,
    source: &dyn PairSource,
    mut progress: impl FnMut(usize),
) -> Result<RetrievalReport> {
    const CHUNK: usize = 256;
    let mut image_parts = Vec::new();
    let mut captions = Vec::new();
    let mut skipped = 0;
    let mut start = 0;
    while start < source.len() {
        let end = (start + CHUNK).min(source.len());
        let pairs: Vec<_> = (start..end)
            .into_par_iter()
            .map(|i| source.get(i))
            .collect();
        let mut images = Vec::new();
        for pair in pairs {
            match pair {
                Ok(p) => {
                    images.push(p.image);
                    captions.push(p.caption);
                }
                Err(e) => {
                    tracing::warn!("skipping a bad sample: {e}");
                    skipped += 1;
                }
            }
        }
        if !images.is_empty() {
            image_parts.push(clip.embed_images(&images)?);
        }
        progress(end);
        start = end;
    }
    if captions.is_empty() {
        return Err(crate::Error::InvalidArgument(format!(
            "no readable sample in {}",
            source.describe()
        )));
    }
    let image_embeds = Tensor::cat(&image_parts, 0)?;
    let text_embeds = clip.embed_texts(&captions)?;
    let mut report = recall(&image_embeds, &text_embeds, &captions)?;
    report.skipped = skipped;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn perfect_embeddings_give_full_recall_and_shuffled_ones_do_not() {
        let n = 20;
        let eye = Tensor::eye(n, candle_core::DType::F32, &Device::Cpu).unwrap();
        let captions: Vec<String> = (0..n).map(|i| format!("caption {i}")).collect();
        let report = recall(&eye, &eye, &captions).unwrap();
        assert_eq!(
            report.image_to_text,
            Recall {
                r1: 1.0,
                r5: 1.0,
                r10: 1.0
            }
        );
        assert_eq!(
            report.text_to_image,
            Recall {
                r1: 1.0,
                r5: 1.0,
                r10: 1.0
            }
        );
        // Texts shifted by one: the right text scores 0 like every other but one, and
        // ties rank it last, so it is never found.
        let shifted = Tensor::cat(
            &[
                eye.narrow(0, 1, n - 1).unwrap(),
                eye.narrow(0, 0, 1).unwrap(),
            ],
            0,
        )
        .unwrap();
        let report = recall(&eye, &shifted, &captions).unwrap();
        assert_eq!(report.image_to_text.r1, 0.0);
        assert_eq!(report.image_to_text.r10, 0.0);
        assert_eq!(report.text_to_image.r10, 0.0);
    }

    #[test]
    fn twins_with_the_same_caption_count_as_right() {
        let eye = Tensor::eye(2, candle_core::DType::F32, &Device::Cpu).unwrap();
        let swapped = Tensor::new(&[[0f32, 1.0], [1.0, 0.0]], &Device::Cpu).unwrap();
        let same = vec!["two red circles".to_string(); 2];
        let report = recall(&eye, &swapped, &same).unwrap();
        assert_eq!(report.image_to_text.r1, 1.0);
        assert_eq!(report.text_to_image.r1, 1.0);
    }
}
