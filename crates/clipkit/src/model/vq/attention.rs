//! `AttentionBlock`: single-head self-attention over the pixels of a feature map, with a
//! residual connection (diffusers' `Attention` as the VQ model builds it: one head of width
//! C, group norm first; taming's `AttnBlock`).
//!
//! Shapes: B = batch, C = channels, H × W = spatial size, P = H·W pixels.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

use super::group_norm::GroupNorm;
use super::resnet::norm;

/// `x + to_out(softmax(q kᵀ / √C) v)` with q, k, v linear maps of `group_norm(x)`.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    scale: f64,
}

impl AttentionBlock {
    /// Loads `group_norm`, `to_q`, `to_k`, `to_v` and `to_out.0`.
    pub fn new(vb: VarBuilder, channels: usize, groups: usize) -> Result<Self> {
        Ok(AttentionBlock {
            group_norm: norm(vb.pp("group_norm"), groups, channels)?,
            to_q: candle_nn::linear(channels, channels, vb.pp("to_q"))?,
            to_k: candle_nn::linear(channels, channels, vb.pp("to_k"))?,
            to_v: candle_nn::linear(channels, channels, vb.pp("to_v"))?,
            to_out: candle_nn::linear(channels, channels, vb.pp("to_out").pp("0"))?,
            scale: 1.0 / (channels as f64).sqrt(),
        })
    }
}

impl Module for AttentionBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        // (B, C, H, W) → (B, P, C)
        let tokens = self
            .group_norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.to_q.forward(&tokens)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?; // (B, P, P)
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = self.to_out.forward(&weights.matmul(&v)?)?; // (B, P, C)
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        x + out
    }
}
