//! A linear probe on an [`ImageFolder`], reported beside zero-shot on the same test images.
//!
//! Split: within each class, images in name order; every fourth one (the 4th, 8th, …) is a
//! test image, the rest train the probe. Both scores are measured on the test images only.

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::image_folder::ImageFolder;
use super::linear_probe::{LinearProbe, ProbeConfig};
use super::metrics;
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::zeroshot::ZeroShotClassifier;

/// Every how many images of a class one goes to the test set.
pub const TEST_EVERY: usize = 4;

/// Top-1 accuracy of a probe and of zero-shot prompts on the held-out images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FolderProbeReport {
    /// Logistic regression on the training images' embeddings.
    pub linear_probe: f64,
    /// Zero-shot classification with the given templates.
    pub zero_shot: f64,
    /// Images that trained the probe.
    pub train: usize,
    /// Images both were tested on.
    pub test: usize,
}

/// Which items of `labels` (in folder order) are test items: every [`TEST_EVERY`]th of
/// each class.
pub fn test_mask(labels: &[usize]) -> Vec<bool> {
    let mut seen = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let k = seen.entry(l).or_insert(0usize);
            *k += 1;
            *k % TEST_EVERY == 0
        })
        .collect()
}

/// Embeds the folder, fits a probe on the training part and scores it and zero-shot on the
/// test part. `progress` gets the number of images embedded.
pub fn probe_image_folder(
    clip: &Clip,
    folder: &ImageFolder,
    templates: &[String],
    probe: &ProbeConfig,
    progress: impl FnMut(usize),
) -> Result<FolderProbeReport> {
    let labels = folder.labels();
    let mask = test_mask(&labels);
    let test_count = mask.iter().filter(|&&t| t).count();
    if test_count == 0 || test_count == labels.len() {
        return Err(Error::Data {
            path: folder.root().into(),
            message: format!(
                "too few images for a probe: every {TEST_EVERY}th image of a class is held out \
                 for testing, so some class needs at least {TEST_EVERY}"
            ),
        });
    }
    let embeds = clip.embed_image_files(&folder.paths(), progress)?;
    let pick = |test: bool| -> Result<(Tensor, Vec<usize>)> {
        let rows: Vec<u32> = (0..labels.len())
            .filter(|&i| mask[i] == test)
            .map(|i| i as u32)
            .collect();
        let chosen = rows.iter().map(|&i| labels[i as usize]).collect();
        let idx = Tensor::new(rows.as_slice(), &Device::Cpu)?;
        Ok((embeds.index_select(&idx, 0)?, chosen))
    };
    let (train_x, train_y) = pick(false)?;
    let (test_x, test_y) = pick(true)?;
    let fitted = LinearProbe::fit(&train_x, &train_y, folder.classes().len(), probe)?;
    let classifier = ZeroShotClassifier::new(clip, folder.classes(), templates)?;
    let scores = metrics::rows(&test_x.matmul(&classifier.class_embeds().t()?)?)?;
    Ok(FolderProbeReport {
        linear_probe: fitted.accuracy(&test_x, &test_y)?,
        zero_shot: metrics::accuracy(&metrics::argmax(&scores), &test_y),
        train: train_y.len(),
        test: test_y.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fourth_image_of_each_class_is_held_out() {
        let labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2];
        let mask = test_mask(&labels);
        let test: Vec<usize> = (0..labels.len()).filter(|&i| mask[i]).collect();
        assert_eq!(test, vec![3, 8]);
    }
}
