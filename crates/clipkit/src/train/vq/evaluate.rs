//! Held-out quality of a VQ autoencoder: reconstruction PSNR and codebook usage.
//!
//! Shapes: B = batch, S = image side, N = codebook size.

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use serde::Serialize;

use crate::error::Result;
use crate::model::vq::VqModel;

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct VqEvaluation {
    /// Images evaluated.
    pub images: usize,
    /// Mean over images of 10·log10(1 / MSE), pixels in [0, 1] (reconstructions clamped).
    pub psnr_db: f64,
    /// exp(entropy) of the code histogram over every latent position: the number of
    /// equally used codes that would give the same entropy (at most N).
    pub perplexity: f64,
    /// Codes used at least once.
    pub used_codes: usize,
    /// Codes never used (N − used).
    pub dead_codes: usize,
}

/// Images (8-bit RGB, one size) as a (B, 3, S, S) tensor in [-1, 1].
pub fn images_tensor(images: &[RgbImage]) -> Result<Tensor> {
    let (w, h) = images[0].dimensions();
    let mut values = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for image in images {
        for c in 0..3 {
            values.extend(image.pixels().map(|p| p[c] as f32 / 127.5 - 1.0));
        }
    }
    Ok(Tensor::from_vec(
        values,
        (images.len(), 3, h as usize, w as usize),
        &Device::Cpu,
    )?)
}

/// Reconstructs `images` (B, 3, S, S) in [-1, 1] in batches of `batch` and measures PSNR and
/// codebook usage.
pub fn evaluate(model: &VqModel, images: &Tensor, batch: usize) -> Result<VqEvaluation> {
    let n = images.dim(0)?;
    let codes = model.config().num_vq_embeddings;
    let mut counts = vec![0u64; codes];
    let mut psnr_sum = 0.0;
    for start in (0..n).step_by(batch.max(1)) {
        let chunk = images.narrow(0, start, batch.min(n - start))?;
        let quantized = model.quantize(&model.encode(&chunk)?)?;
        for i in quantized.indices.flatten_all()?.to_vec1::<u32>()? {
            counts[i as usize] += 1;
        }
        let decoded = model
            .decode_quantized(&quantized.latent)?
            .clamp(-1f32, 1f32)?;
        // Per-image mean squared error in [0, 1] units: the [-1, 1] difference over 2.
        let mse = ((decoded - &chunk)? / 2.0)?
            .sqr()?
            .flatten_from(1)?
            .mean(1)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        psnr_sum += mse
            .iter()
            .map(|m| 10.0 * (1.0 / m.max(1e-10)).log10())
            .sum::<f64>();
    }
    let total: u64 = counts.iter().sum();
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum();
    let used = counts.iter().filter(|&&c| c > 0).count();
    Ok(VqEvaluation {
        images: n,
        psnr_db: psnr_sum / n as f64,
        perplexity: entropy.exp(),
        used_codes: used,
        dead_codes: codes - used,
    })
}

/// `images` (8-bit RGB, one size) encoded, quantised and decoded by `model`: what the VQ
/// model can give back of them, the ceiling of any generator over its codes.
pub fn reconstruct(model: &VqModel, images: &[RgbImage]) -> Result<Vec<RgbImage>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let batch = images_tensor(images)?; // (B, 3, S, S) in [-1, 1]
    let quantized = model.quantize(&model.encode(&batch)?)?;
    let decoded = ((model
        .decode_quantized(&quantized.latent)?
        .to_dtype(DType::F32)?
        + 1.0)?
        / 2.0)?;
    (0..images.len())
        .map(|i| crate::generate::output::to_rgb_image(&decoded.narrow(0, i, 1)?))
        .collect()
}
