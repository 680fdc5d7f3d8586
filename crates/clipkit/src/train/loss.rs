//! CLIP's objective: the N×N cosine similarities of a batch of (image, caption) pairs,
//! scaled by the learned temperature, with cross-entropy along rows and along columns.

use candle_core::{DType, Device, Result, Tensor};

use crate::clip::l2_normalize;
use crate::model::cross_entropy;

/// The loss of one batch and the logits it came from.
#[derive(Debug, Clone)]
pub struct ContrastiveOutput {
    /// Scalar: mean of the image→text and text→image cross-entropies.
    pub loss: Tensor,
    /// (N images, N texts): scaled cosine similarities, −∞ where a caption is also true of
    /// another image.
    pub logits_per_image: Tensor,
}

/// Symmetric InfoNCE, as transformers' `CLIPModel(return_loss=True)` computes it, with
/// known false negatives left out.
///
/// `image_features` and `text_features` are the projected, not yet normalised, features
/// (N, E) of matching pairs (row i of one belongs to row i of the other); `log_scale` is the
/// scalar logit-scale parameter, whose exponential multiplies the cosine similarities.
/// Each `(caption, image)` of `also_true` (never a pair's own row) is a caption that also
/// describes that other image: its logit is masked to −∞ in both directions, so it is
/// neither a negative nor a positive (with none, the loss is transformers' exactly).
pub fn contrastive_loss(
    image_features: &Tensor,
    text_features: &Tensor,
    log_scale: &Tensor,
    also_true: &[(usize, usize)],
) -> Result<ContrastiveOutput> {
    let n = image_features.dim(0)?;
    let images = l2_normalize(image_features)?;
    let texts = l2_normalize(text_features)?;
    let mut logits_per_text = texts
        .matmul(&images.t()?)?
        .broadcast_mul(&log_scale.exp()?)?; // (N texts, N images)
    if !also_true.is_empty() {
        logits_per_text = logits_per_text.broadcast_add(&false_negative_mask(n, also_true)?)?;
    }
    let logits_per_image = logits_per_text.t()?;
    let targets = Tensor::arange(0u32, n as u32, &Device::Cpu)?;
    let text_loss = cross_entropy(&logits_per_text, &targets)?;
    let image_loss = cross_entropy(&logits_per_image, &targets)?;
    let loss = ((text_loss + image_loss)? * 0.5)?.to_dtype(DType::F32)?;
    Ok(ContrastiveOutput {
        loss,
        logits_per_image,
    })
}

/// (N texts, N images): 0, and −∞ at every `(caption, image)` of `also_true`.
fn false_negative_mask(n: usize, also_true: &[(usize, usize)]) -> Result<Tensor> {
    let mut mask = vec![0f32; n * n];
    for &(caption, image) in also_true {
        if caption == image || caption >= n || image >= n {
            candle_core::bail!("false negative ({caption}, {image}) is not an off-diagonal entry of a batch of {n}");
        }
        mask[caption * n + image] = f32::NEG_INFINITY;
    }
    Tensor::from_vec(mask, (n, n), &Device::Cpu)
}

/// Top-1 accuracy of matching each image to its own caption and each caption to its image,
/// averaged: a readable training metric beside the loss.
pub fn pair_accuracy(logits_per_image: &Tensor) -> Result<f32> {
    let n = logits_per_image.dim(0)?;
    let targets = Tensor::arange(0u32, n as u32, &Device::Cpu)?;
    let hits = |logits: &Tensor| -> Result<f32> {
        let predicted = logits.argmax(1)?;
        predicted
            .eq(&targets)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()
    };
    Ok((hits(logits_per_image)? + hits(&logits_per_image.t()?)?) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_cannot_be_its_own_false_negative() {
        let features = Tensor::ones((3, 4), DType::F32, &Device::Cpu).unwrap();
        let scale = Tensor::new(0f32, &Device::Cpu).unwrap();
        for bad in [(1, 1), (0, 3), (5, 0)] {
            let err = contrastive_loss(&features, &features, &scale, &[bad]).unwrap_err();
            assert!(err.to_string().contains("batch of 3"), "{err}");
        }
        assert!(contrastive_loss(&features, &features, &scale, &[(0, 2)]).is_ok());
    }
}
