//! Inference convolutions on channels-last images, with the batch norm that follows each
//! one folded into its weights, and 2×2-style average pooling.
//!
//! Shape legend: B = batch, H × W = spatial size, C = channels. Images are (B, H, W, C)
//! here (channels last), so a k × k convolution is one matrix product of the k·k·C patch
//! rows (im2col) with the (C_out, k·k·C) weight, and a 1 × 1 convolution is a [`Linear`]
//! over the last axis as it stands.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::layers::Linear;
use super::load_options::LoadOptions;

/// PyTorch's `BatchNorm2d` default epsilon, which CLIP's ResNet keeps.
const BATCH_NORM_EPS: f64 = 1e-5;

/// A bias-free `Conv2d` followed by `BatchNorm2d` (eval mode), as one convolution with a
/// bias: W' = W·γ/√(σ² + ε), b' = β − μ·γ/√(σ² + ε).
#[derive(Debug, Clone)]
pub struct ConvBatchNorm {
    /// (C_out, k·k·C_in), columns in (ky, kx, c) order.
    map: Linear,
    kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
}

impl ConvBatchNorm {
    /// Loads `conv` (`{conv}.weight`, (C_out, C_in, k, k)) and `bn` (`{bn}.weight`, `.bias`,
    /// `.running_mean`, `.running_var`) under `vb`; padding is `kernel / 2`.
    pub fn new(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        (in_channels, out_channels): (usize, usize),
        kernel: usize,
        stride: usize,
        options: LoadOptions,
    ) -> Result<Self> {
        let weight = vb.get(
            (out_channels, in_channels, kernel, kernel),
            &format!("{conv}.weight"),
        )?;
        let bn = vb.pp(bn);
        let gamma = bn.get(out_channels, "weight")?;
        let beta = bn.get(out_channels, "bias")?;
        let mean = bn.get(out_channels, "running_mean")?;
        let var = bn.get(out_channels, "running_var")?;
        let scale = gamma.broadcast_div(&(var + BATCH_NORM_EPS)?.sqrt()?)?; // (C_out)
        let bias = (beta - mean.mul(&scale)?)?;
        let weight = weight
            .permute((0, 2, 3, 1))? // (C_out, k, k, C_in)
            .contiguous()?
            .reshape((out_channels, kernel * kernel * in_channels))?
            .broadcast_mul(&scale.unsqueeze(1)?)?;
        Ok(ConvBatchNorm {
            map: Linear::from_parts(weight, Some(bias), options)?,
            kernel,
            stride,
            padding: kernel / 2,
            in_channels,
        })
    }

    /// (B, H, W, C_in) → (B, H', W', C_out), H' = (H + 2p − k) / s + 1.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernel == 1 && self.stride == 1 {
            return self.map.forward(x);
        }
        let (b, h, w, c) = x.dims4()?;
        if c != self.in_channels {
            candle_core::bail!("convolution expects {} channels, got {c}", self.in_channels);
        }
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let x = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let row = k * k * c;
        let mut cols = vec![0f32; b * oh * ow * row];
        // One output pixel's patch per row: k·k runs of C contiguous input channels.
        cols.par_chunks_mut(row)
            .enumerate()
            .for_each(|(pixel, out)| {
                let (n, rest) = (pixel / (oh * ow), pixel % (oh * ow));
                let (oy, ox) = (rest / ow, rest % ow);
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * s + kx) as isize - p as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let src = ((n * h + iy as usize) * w + ix as usize) * c;
                        let dst = (ky * k + kx) * c;
                        out[dst..dst + c].copy_from_slice(&x[src..src + c]);
                    }
                }
            });
        let cols = Tensor::from_vec(cols, (b, oh, ow, row), &Device::Cpu)?;
        self.map.forward(&cols)
    }
}

/// `AvgPool2d(f)` (kernel = stride = f, no padding, floor) on (B, H, W, C) → (B, H/f, W/f, C).
pub fn avg_pool(x: &Tensor, f: usize) -> Result<Tensor> {
    if f == 1 {
        return Ok(x.clone());
    }
    let (b, h, w, c) = x.dims4()?;
    let (oh, ow) = (h / f, w / f);
    let x = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; b * oh * ow * c];
    let inv = 1.0 / (f * f) as f32;
    out.par_chunks_mut(c).enumerate().for_each(|(pixel, out)| {
        let (n, rest) = (pixel / (oh * ow), pixel % (oh * ow));
        let (oy, ox) = (rest / ow, rest % ow);
        for dy in 0..f {
            for dx in 0..f {
                let src = ((n * h + oy * f + dy) * w + ox * f + dx) * c;
                for (o, v) in out.iter_mut().zip(&x[src..src + c]) {
                    *o += v;
                }
            }
        }
        for o in out.iter_mut() {
            *o *= inv;
        }
    });
    Tensor::from_vec(out, (b, oh, ow, c), &Device::Cpu)
}
