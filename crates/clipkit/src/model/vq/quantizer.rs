//! `Quantizer`: nearest-code vector quantisation with a straight-through gradient
//! (diffusers' `VectorQuantizer`, taming's `VectorQuantizer2`).
//!
//! Shapes: B = batch, D = code width, h × w = latent size, N = codebook size.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

/// The weight of the commitment term in [`Quantized::loss`] (taming's and diffusers' β).
pub const COMMITMENT_WEIGHT: f64 = 0.25;

/// A codebook `embedding.weight` of N codes of width D.
#[derive(Debug, Clone)]
pub struct Quantizer {
    /// (N, D)
    codebook: Tensor,
}

/// The result of [`Quantizer::quantize`].
#[derive(Debug, Clone)]
pub struct Quantized {
    /// (B, D, h, w): the nearest code of each latent vector in the forward pass; in the
    /// backward pass the identity (straight-through: `z + (z_q − z).detach()`), so a loss on
    /// it reaches the latent unchanged.
    pub latent: Tensor,
    /// (B, h, w) u32: the index of each vector's nearest code.
    pub indices: Tensor,
    /// Scalar: `mean((sg[z_q] − z)²)·β + mean((z_q − sg[z])²)` — the commitment term pulls the
    /// encoder towards its codes, the codebook term pulls the codes towards the encoder
    /// (VQ-VAE's loss, with β on the commitment term as in the paper; diffusers' and taming's
    /// `legacy` default puts β on the other term).
    pub loss: Tensor,
}

impl Quantizer {
    /// Loads `embedding.weight` (N, D) under `vb` (`quantize`).
    pub fn new(vb: VarBuilder, codes: usize, width: usize) -> Result<Self> {
        Ok(Quantizer {
            codebook: vb.pp("embedding").get((codes, width), "weight")?,
        })
    }

    /// The codebook, (N, D).
    pub fn codebook(&self) -> &Tensor {
        &self.codebook
    }

    /// Replaces each D-vector of `z` by its nearest code (Euclidean distance; the lowest
    /// index wins a tie), with a straight-through gradient.
    pub fn quantize(&self, z: &Tensor) -> Result<Quantized> {
        let (b, d, h, w) = z.dims4()?;
        // (B, D, h, w) → (B·h·w, D)
        let flat = z.permute((0, 2, 3, 1))?.reshape((b * h * w, d))?;
        let indices = self.nearest(&flat.detach())?; // (B·h·w)
        let codes = self.codebook.index_select(&indices, 0)?; // (B·h·w, D)
        let z_q = codes.reshape((b, h, w, d))?.permute((0, 3, 1, 2))?;
        let commitment = (z_q.detach() - z)?.sqr()?.mean_all()?;
        let codebook = (&z_q - z.detach())?.sqr()?.mean_all()?;
        let loss = ((commitment * COMMITMENT_WEIGHT)? + codebook)?;
        let latent = (z + (z_q - z)?.detach())?;
        Ok(Quantized {
            latent,
            indices: indices.reshape((b, h, w))?,
            loss,
        })
    }

    /// The codes of `indices` (B, h, w) as a latent (B, D, h, w) — decoding from indices, as
    /// a model over codes needs.
    pub fn lookup(&self, indices: &Tensor) -> Result<Tensor> {
        let (b, h, w) = indices.dims3()?;
        let d = self.codebook.dim(1)?;
        let flat = indices.to_dtype(DType::U32)?.flatten_all()?;
        self.codebook
            .index_select(&flat, 0)?
            .reshape((b, h, w, d))?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }

    /// The index of the nearest code of each row of `flat` (M, D) → (M) u32, from
    /// ‖z‖² − 2 z·e + ‖e‖².
    fn nearest(&self, flat: &Tensor) -> Result<Tensor> {
        let codebook = self.codebook.detach();
        let z2 = flat.sqr()?.sum_keepdim(1)?; // (M, 1)
        let e2 = codebook.sqr()?.sum(1)?.unsqueeze(0)?; // (1, N)
        let cross = flat.matmul(&codebook.t()?)?; // (M, N)
        let distances = z2.broadcast_add(&e2)?.sub(&(cross * 2.0)?)?;
        distances.argmin(D::Minus1)
    }
}
