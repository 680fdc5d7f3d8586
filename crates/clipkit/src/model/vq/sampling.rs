//! `Upsample` and `Downsample`: the resolution changes between levels (diffusers'
//! `Upsample2D` / `Downsample2D` with a convolution, taming's `Upsample` / `Downsample`).
//!
//! Shapes: B = batch, C = channels, H × W = spatial size.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::Conv;

use super::resnet::conv3x3;
use super::upsample::upsample2x;

/// Nearest-neighbour doubling, then a 3×3 convolution `conv`.
#[derive(Debug, Clone)]
pub struct Upsample {
    conv: Conv,
}

impl Upsample {
    /// Loads `conv` (C → C).
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Upsample {
            conv: conv3x3(vb.pp("conv"), channels, channels)?,
        })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, C, H, W) → (B, C, 2H, 2W)
        self.conv.forward(&upsample2x(x)?)
    }
}

/// One row and column of zeros on the bottom and right, then a 3×3 convolution `conv` of
/// stride 2 without padding: (H, W) → (H/2, W/2) for even sizes.
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv,
}

impl Downsample {
    /// Loads `conv` (C → C).
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Downsample {
            conv: Conv::load(vb.pp("conv"), channels, channels, 3, 2, 0)?,
        })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, C, H, W) → (B, C, H/2, W/2)
        let padded = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
        self.conv.forward(&padded)
    }
}
