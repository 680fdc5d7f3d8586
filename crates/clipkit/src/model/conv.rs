//! Inference convolutions on channels-last images, with the batch norm that follows each
//! one folded into its weights, the ReLU and residual sum after it fused into the product,
//! and 2×2-style average pooling.
//!
//! Shape legend: B = batch, H × W = spatial size, C = channels. Images are (B, H, W, C)
//! here (channels last), so a k × k convolution is one matrix product of the k·k·C patch
//! rows with the (C_out, k·k·C) weight, and a 1 × 1 convolution is a product over the last
//! axis as it stands. With packed weights the patch rows are read from the image a depth
//! block at a time ([`PatchRows`]), never laid out whole (that would be k·k times the
//! image, written and read again).

use candle_core::{Device, Result, Storage, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::layers::{tensor_name, Linear};
use super::load_options::LoadOptions;
use super::ops::contiguous_f32;
use super::packed::{Epilogue, InputRows, Matrix};

/// PyTorch's `BatchNorm2d` default epsilon, which CLIP's ResNet keeps.
const BATCH_NORM_EPS: f64 = 1e-5;

/// A bias-free `Conv2d` followed by `BatchNorm2d` (eval mode), as one convolution with a
/// bias: W' = W·γ/√(σ² + ε), b' = β − μ·γ/√(σ² + ε).
#[derive(Debug, Clone)]
pub struct ConvBatchNorm {
    /// (C_out, k·k·C_in), columns in (ky, kx, c) order.
    map: Linear,
    shape: ConvShape,
}

/// What follows a convolution: `relu(conv(x) + residual)`, each part optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Then<'a> {
    /// (B, H', W', C_out) added to the convolution's output.
    pub residual: Option<&'a Tensor>,
    /// max(0, ·) last.
    pub relu: bool,
}

impl Then<'static> {
    /// `relu(conv(x))`.
    pub const RELU: Then<'static> = Then {
        residual: None,
        relu: true,
    };
}

/// A convolution's kernel side, stride and zero padding, and its input channels.
#[derive(Debug, Clone, Copy)]
struct ConvShape {
    kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
}

impl ConvShape {
    /// The output side of an input side: (n + 2p − k) / s + 1.
    fn out_side(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }
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
        let bn = vb.pp(bn);
        let gamma = bn.get(out_channels, "weight")?;
        let beta = bn.get(out_channels, "bias")?;
        let mean = bn.get(out_channels, "running_mean")?;
        let var = bn.get(out_channels, "running_var")?;
        let scale = gamma.broadcast_div(&(var + BATCH_NORM_EPS)?.sqrt()?)?; // (C_out)
        let bias = (beta - mean.mul(&scale)?)?;
        let depth = kernel * kernel * in_channels;
        let weight = || {
            vb.get(
                (out_channels, in_channels, kernel, kernel),
                &format!("{conv}.weight"),
            )?
            .permute((0, 2, 3, 1))? // (C_out, k, k, C_in)
            .contiguous()?
            .reshape((out_channels, depth))?
            .broadcast_mul(&scale.unsqueeze(1)?)
        };
        // Packed with the batch norm's scale folded in, under the convolution's name.
        let key = tensor_name(vb, &format!("{conv}.weight"));
        let sources = [key.clone()];
        let shape = (out_channels, depth);
        Ok(ConvBatchNorm {
            map: Linear::cached(options, &key, &sources, shape, weight, Some(bias))?,
            shape: ConvShape {
                kernel,
                stride,
                padding: kernel / 2,
                in_channels,
            },
        })
    }

    /// (B, H, W, C_in) → `then` of the convolution: (B, H', W', C_out),
    /// H' = (H + 2p − k) / s + 1.
    pub fn forward(&self, x: &Tensor, then: Then) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        if c != self.shape.in_channels {
            candle_core::bail!(
                "convolution expects {} channels, got {c}",
                self.shape.in_channels
            );
        }
        let (oh, ow) = (self.shape.out_side(h), self.shape.out_side(w));
        let bias = match self.map.bias() {
            Some(b) => b.to_vec1::<f32>()?, // (C_out)
            None => candle_core::bail!("convolution without its folded bias"),
        };
        let out_channels = bias.len();
        let x = x.contiguous()?;
        let residual = then.residual.map(Tensor::contiguous).transpose()?;
        if let Some(r) = &residual {
            if r.dims() != [b, oh, ow, out_channels] {
                candle_core::bail!(
                    "residual of shape {:?} does not fit the convolution's ({b}, {oh}, {ow}, {out_channels})",
                    r.dims()
                );
            }
        }
        let Some(weight) = self.map.packed_weight() else {
            return self.forward_unpacked(&x, residual.as_ref(), then.relu);
        };
        let y = with_values(&x, |pixels| {
            let with_residual = |residual: Option<&[f32]>| {
                let epilogue = Epilogue {
                    residual,
                    relu: then.relu,
                };
                let rows = self.rows(pixels, (b, h, w));
                match &rows {
                    Rows::Pixels(m) => weight.product(m, Some(&bias), epilogue),
                    Rows::Patches(p) => weight.product(p, Some(&bias), epilogue),
                }
            };
            match &residual {
                Some(r) => with_values(r, |r| Ok(with_residual(Some(r)))),
                None => Ok(with_residual(None)),
            }
        })?;
        Tensor::from_vec(y, (b, oh, ow, out_channels), &Device::Cpu)
    }

    /// The product's input rows over `pixels` (B, H, W, C): the pixels themselves for a 1 × 1
    /// convolution of stride 1, else their patches.
    fn rows<'a>(&self, pixels: &'a [f32], (b, h, w): (usize, usize, usize)) -> Rows<'a> {
        let s = self.shape;
        if s.kernel == 1 && s.stride == 1 {
            Rows::Pixels(Matrix::new(pixels, s.in_channels))
        } else {
            Rows::Patches(PatchRows {
                pixels,
                batch: b,
                height: h,
                width: w,
                out_height: s.out_side(h),
                out_width: s.out_side(w),
                shape: s,
            })
        }
    }

    /// The same convolution through [`Linear`] (weights the kernel did not pack): patches
    /// laid out whole, then candle's ops.
    fn forward_unpacked(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Result<Tensor> {
        let (b, h, w, _) = x.dims4()?;
        let cols = match with_values(x, |pixels| {
            Ok(match self.rows(pixels, (b, h, w)) {
                Rows::Pixels(_) => None,
                Rows::Patches(p) => {
                    Some(p.materialise(self.shape.kernel.pow(2) * p.shape.in_channels))
                }
            })
        })? {
            None => x.clone(),
            Some(cols) => {
                let (oh, ow) = (self.shape.out_side(h), self.shape.out_side(w));
                let row = cols.len() / (b * oh * ow).max(1);
                Tensor::from_vec(cols, (b, oh, ow, row), &Device::Cpu)?
            }
        };
        let mut y = candle_core::Module::forward(&self.map, &cols)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if relu {
            y = y.relu()?;
        }
        Ok(y)
    }
}

/// A convolution's input rows: pixels as they are, or their patches.
enum Rows<'a> {
    Pixels(Matrix<'a>),
    Patches(PatchRows<'a>),
}

/// The patch rows of a (B, H, W, C) image for a k × k convolution: one row per output pixel
/// (b, oy, ox), k·k runs of C channels in (ky, kx, c) order, zeros where the patch leaves
/// the image.
struct PatchRows<'a> {
    pixels: &'a [f32],
    batch: usize,
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    shape: ConvShape,
}

impl InputRows for PatchRows<'_> {
    fn len(&self) -> usize {
        self.batch * self.out_height * self.out_width
    }

    fn read_row(&self, row: usize, kb: usize, dst: &mut [f32]) {
        let ConvShape {
            kernel: k,
            stride: s,
            padding: p,
            in_channels: c,
        } = self.shape;
        let (n, rest) = (
            row / (self.out_height * self.out_width),
            row % (self.out_height * self.out_width),
        );
        let (oy, ox) = (rest / self.out_width, rest % self.out_width);
        let (mut d, end) = (kb, kb + dst.len());
        while d < end {
            let (tap, channel) = (d / c, d % c);
            let run = (c - channel).min(end - d);
            let out = &mut dst[d - kb..d - kb + run];
            let iy = (oy * s + tap / k)
                .checked_sub(p)
                .filter(|&y| y < self.height);
            let ix = (ox * s + tap % k)
                .checked_sub(p)
                .filter(|&x| x < self.width);
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let src = ((n * self.height + iy) * self.width + ix) * c + channel;
                    out.copy_from_slice(&self.pixels[src..src + run]);
                }
                _ => out.fill(0.0),
            }
            d += run;
        }
    }
}

/// Calls `f` with the values of a contiguous f32 CPU tensor, read in place.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous_f32(cpu, layout, "convolution input")?),
        _ => candle_core::bail!("convolution expects a CPU tensor"),
    }
}

/// `AvgPool2d(f)` (kernel = stride = f, no padding, floor) on (B, H, W, C) → (B, H/f, W/f, C).
pub fn avg_pool(x: &Tensor, f: usize) -> Result<Tensor> {
    if f == 1 {
        return Ok(x.clone());
    }
    let (b, h, w, c) = x.dims4()?;
    let (oh, ow) = (h / f, w / f);
    let x = x.contiguous()?;
    let mut out = vec![0f32; b * oh * ow * c];
    let inv = 1.0 / (f * f) as f32;
    with_values(&x, |x| {
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
        Ok(())
    })?;
    Tensor::from_vec(out, (b, oh, ow, c), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packed::PackedWeight;
    use crate::model::precision::Precision;
    use crate::model::test_support::packed_kernels;

    /// relu(conv(x) + bias + residual) computed directly in f64: x (B, H, W, C), w (N, k, k, C).
    #[allow(clippy::too_many_arguments)]
    fn direct(
        x: &[f32],
        (b, h, w, c): (usize, usize, usize, usize),
        weight: &[f32],
        bias: &[f32],
        residual: &[f32],
        shape: ConvShape,
    ) -> Vec<f32> {
        let (k, s, p, n) = (shape.kernel, shape.stride, shape.padding, bias.len());
        let (oh, ow) = (shape.out_side(h), shape.out_side(w));
        let mut y = Vec::with_capacity(b * oh * ow * n);
        for img in 0..b {
            for oy in 0..oh {
                for ox in 0..ow {
                    for j in 0..n {
                        let mut sum = f64::from(bias[j]);
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (
                                    (oy * s + ky) as isize - p as isize,
                                    (ox * s + kx) as isize - p as isize,
                                );
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for ch in 0..c {
                                    let xv =
                                        x[((img * h + iy as usize) * w + ix as usize) * c + ch];
                                    let wv = weight[((j * k + ky) * k + kx) * c + ch];
                                    sum += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        let at = y.len();
                        y.push((sum as f32 + residual[at]).max(0.0));
                    }
                }
            }
        }
        y
    }

    /// Patch rows read a depth block at a time give the direct convolution, with the
    /// residual and ReLU fused, on every packed kernel and precision this CPU runs (bf16 and
    /// w8a8 lay the patches out whole first), for strides, paddings, channel counts whose
    /// taps straddle depth blocks, and images smaller than the kernel's reach.
    #[test]
    fn patch_rows_convolve_as_a_direct_convolution_on_every_kernel() {
        let mut runs = Vec::new();
        for kernel in packed_kernels() {
            for precision in [
                Precision::Fp32,
                Precision::Bf16,
                Precision::Int8,
                Precision::W8a8,
            ] {
                if PackedWeight::supports(kernel, precision) {
                    runs.push((kernel, precision));
                }
            }
        }
        for (kernel, precision) in runs {
            for (dims, n, kernel_side, stride) in [
                ((2, 9, 7, 3), 5, 3, 2),
                ((1, 6, 6, 100), 33, 3, 1),
                ((3, 5, 4, 8), 40, 3, 1),
                ((1, 2, 3, 17), 7, 3, 2),
                ((2, 4, 4, 12), 9, 1, 2),
            ] {
                let (b, h, w, c) = dims;
                let shape = ConvShape {
                    kernel: kernel_side,
                    stride,
                    padding: kernel_side / 2,
                    in_channels: c,
                };
                let depth = kernel_side * kernel_side * c;
                let x: Vec<f32> = (0..b * h * w * c)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                    .collect();
                let weight: Vec<f32> = (0..n * depth)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 480.0)
                    .collect();
                let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - 0.2).collect();
                let rows = PatchRows {
                    pixels: &x,
                    batch: b,
                    height: h,
                    width: w,
                    out_height: shape.out_side(h),
                    out_width: shape.out_side(w),
                    shape,
                };
                let residual: Vec<f32> = (0..rows.len() * n)
                    .map(|i| ((i * 29 % 31) as f32 - 15.0) / 30.0)
                    .collect();
                let packed =
                    PackedWeight::pack_as(kernel, precision, &weight, n, depth).expect("supported");
                let epilogue = Epilogue {
                    residual: Some(&residual),
                    relu: true,
                };
                let got = packed.product(&rows, Some(&bias), epilogue);
                let want = direct(&x, dims, &weight, &bias, &residual, shape);
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                // Rounded weights (and w8a8's inputs) move outputs of size ~1 by ~1e-2.
                let tolerance = if precision == Precision::Fp32 {
                    1e-4
                } else {
                    5e-2
                };
                assert!(
                    got.iter().all(|v| v.is_finite()) && worst < tolerance,
                    "{kernel} {precision} {dims:?} → {n}, k {kernel_side} s {stride}: {worst}"
                );
                assert!(want.contains(&0.0) && want.iter().any(|&v| v > 0.0));
            }
        }
    }
}
