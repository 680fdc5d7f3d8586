//! `ResnetBlock`: diffusers' `ResnetBlock2D` without a time embedding (taming's `ResnetBlock`).
//!
//! Shapes: B = batch, C = channels, H × W = spatial size.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::Conv;
use super::group_norm::GroupNorm;

/// The epsilon of every group norm in the VQ encoder and decoder (diffusers' `resnet_eps`).
pub(super) const NORM_EPS: f64 = 1e-6;

/// A 3×3 convolution with padding 1 (keeps the size), loaded as `weight` + `bias`.
pub(super) fn conv3x3(vb: VarBuilder, in_c: usize, out_c: usize) -> Result<Conv> {
    Conv::load(vb, in_c, out_c, 3, 1, 1)
}

/// A 1×1 convolution, loaded as `weight` + `bias`.
pub(super) fn conv1x1(vb: VarBuilder, in_c: usize, out_c: usize) -> Result<Conv> {
    Conv::load(vb, in_c, out_c, 1, 1, 0)
}

/// A group norm with the VQ model's epsilon, loaded as `weight` + `bias`.
pub(super) fn norm(vb: VarBuilder, groups: usize, channels: usize) -> Result<GroupNorm> {
    GroupNorm::load(vb, groups, channels, NORM_EPS)
}

/// `x + conv2(silu(norm2(conv1(silu(norm1(x))))))`, with a 1×1 `conv_shortcut` on `x` when
/// the channel count changes.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    norm2: GroupNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResnetBlock {
    /// Loads `norm1`, `conv1`, `norm2`, `conv2` (and `conv_shortcut` when `in_c != out_c`).
    pub fn new(vb: VarBuilder, in_c: usize, out_c: usize, groups: usize) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: norm(vb.pp("norm1"), groups, in_c)?,
            conv1: conv3x3(vb.pp("conv1"), in_c, out_c)?,
            norm2: norm(vb.pp("norm2"), groups, out_c)?,
            conv2: conv3x3(vb.pp("conv2"), out_c, out_c)?,
            shortcut: if in_c == out_c {
                None
            } else {
                Some(conv1x1(vb.pp("conv_shortcut"), in_c, out_c)?)
            },
        })
    }
}

impl Module for ResnetBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, C_in, H, W) → (B, C_out, H, W)
        let h = self.norm1.forward_silu(x)?;
        let h = self.conv1.forward(&h)?;
        let h = self.norm2.forward_silu(&h)?;
        let h = self.conv2.forward(&h)?;
        match &self.shortcut {
            Some(conv) => conv.forward(x)? + h,
            None => x + h,
        }
    }
}
