//! Zero-shot accuracy of a [`ZeroShotClassifier`] on labelled images.

use candle_core::Tensor;
use serde::Serialize;

use super::image_folder::ImageFolder;
use super::metrics::{self, Confusion};
use crate::clip::Clip;
use crate::error::Result;
use crate::zeroshot::ZeroShotClassifier;

/// One class's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassResult {
    /// The class label.
    pub label: String,
    /// How many images of this class were evaluated.
    pub count: usize,
    /// The fraction of them classified right (0 for a class with no image).
    pub accuracy: f64,
}

/// Zero-shot accuracy over a labelled image set.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotReport {
    /// Top-1 accuracy over all images.
    pub top1: f64,
    /// Top-5 accuracy over all images (1 when there are five classes or fewer).
    pub top5: f64,
    /// How many images were evaluated.
    pub count: usize,
    /// Per-class accuracy, in class order.
    pub classes: Vec<ClassResult>,
    /// Counts of (true, predicted) classes.
    pub confusion: Confusion,
}

/// Scores unit image embeddings (N, E) with true class indices against the classifier's
/// labels (whose order the indices refer to).
pub fn evaluate(
    classifier: &ZeroShotClassifier,
    image_embeds: &Tensor,
    truth: &[usize],
) -> Result<ZeroShotReport> {
    let scores = metrics::rows(&image_embeds.matmul(&classifier.class_embeds().t()?)?)?; // (N, L)
    let ranks = metrics::ranks(&scores, truth);
    let confusion = Confusion::new(classifier.labels(), &metrics::argmax(&scores), truth);
    let classes = classifier
        .labels()
        .iter()
        .zip(confusion.per_class())
        .map(|(label, (count, accuracy))| ClassResult {
            label: label.clone(),
            count,
            accuracy,
        })
        .collect();
    Ok(ZeroShotReport {
        top1: metrics::top_k(&ranks, 1),
        top5: metrics::top_k(&ranks, 5),
        count: truth.len(),
        classes,
        confusion,
    })
}

/// Embeds every image of `folder` and classifies it among the folder's classes, each
/// prompt-ensembled over `templates`. `progress` gets the number of images embedded.
pub fn evaluate_image_folder(
    clip: &Clip,
    folder: &ImageFolder,
    templates: &[String],
    progress: impl FnMut(usize),
) -> Result<ZeroShotReport> {
    let classifier = ZeroShotClassifier::new(clip, folder.classes(), templates)?;
    let embeds = clip.embed_image_files(&folder.paths(), progress)?;
    evaluate(&classifier, &embeds, &folder.labels())
}
