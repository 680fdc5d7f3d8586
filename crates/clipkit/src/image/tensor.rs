//! Differentiable image operations on pixel tensors, for generation: resize, crop and
//! normalise images that carry gradients, so a loss on the model's output reaches the image.
//!
//! Images are (B, 3, H, W) f32 tensors with values in [0, 1] (B = batch, H × W = size).
//! Every operation is composed of candle ops (`narrow`, `matmul`, broadcasts), so backward
//! passes through it. Resizing follows `torch.nn.functional.interpolate` with
//! `align_corners=False` and no antialiasing; unlike [`super::resample`] (Pillow's filter,
//! for decoded images), it samples the input at the output's pixel centres only.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use clipkit::image::tensor::{resize, Interpolation};
//!
//! // One image, 1 × 2 pixels per channel: 0 then 1. Doubling its width samples at
//! // input x = -0.25 (clamped to 0), 0.25, 0.75 and 1.25 (past the last pixel: 1).
//! let values: Vec<f32> = [0.0, 1.0].repeat(3);
//! let image = Var::from_vec(values, (1, 3, 1, 2), &Device::Cpu)?;
//! let wide = resize(&image, (1, 4), Interpolation::Bilinear)?;
//! let red = wide.get(0)?.get(0)?.get(0)?.to_vec1::<f32>()?;
//! assert_eq!(red, [0.0, 0.25, 0.75, 1.0]);
//!
//! // Gradients flow back to the image: each input pixel's share of the four outputs.
//! let grads = wide.sum_all()?.backward()?;
//! let share = grads.get(image.as_tensor()).expect("a gradient");
//! assert_eq!(share.get(0)?.get(0)?.get(0)?.to_vec1::<f32>()?, [2.0, 2.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Tensor};

use super::preprocess::PreprocessConfig;
use crate::error::{Error, Result};

/// The interpolation of [`resize`], as `torch.nn.functional.interpolate` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// `mode="bilinear"`: two taps per axis.
    Bilinear,
    /// `mode="bicubic"`: four taps per axis, Keys' cubic with a = −0.75 (as torch), edge
    /// pixels repeated past the border.
    Bicubic,
    /// `mode="area"` (`adaptive_avg_pool2d`): output pixel i is the mean of input pixels
    /// ⌊i · in / out⌋ .. ⌈(i + 1) · in / out⌉, so shrinking averages every pixel rather than
    /// sampling a few.
    Area,
}

/// A rectangle of pixels: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows in the box, at least 1.
    pub height: usize,
    /// Columns in the box, at least 1.
    pub width: usize,
}

/// Resizes images (B, 3, H, W) to (B, 3, height, width).
pub fn resize(
    images: &Tensor,
    (height, width): (usize, usize),
    interpolation: Interpolation,
) -> Result<Tensor> {
    let (_, _, h, w) = check_images(images)?;
    if height == 0 || width == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot resize images to {height} × {width} pixels"
        )));
    }
    let device = images.device();
    let rows = interpolation_matrix(h, height, interpolation, device)?; // (height, H)
    let cols = interpolation_matrix(w, width, interpolation, device)?; // (width, W)
                                                                       // (B, 3, H, W) · (W, width) → (B, 3, H, width); then (height, H) · that → (B, 3, height, width)
    let across = images.broadcast_matmul(&cols.t()?)?;
    Ok(rows.broadcast_matmul(&across)?)
}

/// The pixels of `crop` in every image: (B, 3, H, W) → (B, 3, crop.height, crop.width); an
/// error when the box does not lie inside the images.
pub fn crop(images: &Tensor, crop: CropBox) -> Result<Tensor> {
    let (_, _, h, w) = check_images(images)?;
    let inside = crop.height > 0
        && crop.width > 0
        && crop
            .top
            .checked_add(crop.height)
            .is_some_and(|end| end <= h)
        && crop
            .left
            .checked_add(crop.width)
            .is_some_and(|end| end <= w);
    if !inside {
        return Err(Error::InvalidArgument(format!(
            "crop box {crop:?} does not lie inside {h} × {w} images"
        )));
    }
    Ok(images
        .narrow(2, crop.top, crop.height)?
        .narrow(3, crop.left, crop.width)?)
}

/// [`crop`] then [`resize`] to `size`: one cut-out per image, at the model's input size.
pub fn crop_resize(
    images: &Tensor,
    crop_box: CropBox,
    size: (usize, usize),
    interpolation: Interpolation,
) -> Result<Tensor> {
    resize(&crop(images, crop_box)?, size, interpolation)
}

/// Images in [0, 1] → the model's pixel values: each channel c becomes
/// `(x · 255 · rescale − mean[c]) / std[c]` with the model's `rescale_factor`, `image_mean`
/// and `image_std` (a model without rescaling sees x · 255; without normalisation, no
/// mean and std are applied), as [`PreprocessConfig::apply`] does for 8-bit images.
pub fn normalize(images: &Tensor, config: &PreprocessConfig) -> Result<Tensor> {
    check_images(images)?;
    let scale = 255.0 * f64::from(config.rescale.unwrap_or(1.0));
    let (mean, std) = config.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
    let per_channel = |values: [f64; 3]| -> Result<Tensor> {
        let values = values.map(|v| v as f32);
        Ok(Tensor::from_slice(&values, (1, 3, 1, 1), images.device())?)
    };
    let gain = per_channel(std::array::from_fn(|c| scale / f64::from(std[c])))?;
    let offset = per_channel(std::array::from_fn(|c| {
        -f64::from(mean[c]) / f64::from(std[c])
    }))?;
    Ok(images.broadcast_mul(&gain)?.broadcast_add(&offset)?)
}

/// (B, 3, H, W) of f32, or an error saying what was given instead.
fn check_images(images: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match images.dims() {
        &[b, 3, h, w] if images.dtype() == DType::F32 && h > 0 && w > 0 => Ok((b, 3, h, w)),
        dims => Err(Error::InvalidArgument(format!(
            "expected f32 images of shape (B, 3, H, W), got {:?} of shape {dims:?}",
            images.dtype()
        ))),
    }
}

/// The (out, in) matrix whose row i holds the weights of input pixels for output pixel i,
/// taps past the border folded onto the edge pixel.
fn interpolation_matrix(
    input: usize,
    output: usize,
    interpolation: Interpolation,
    device: &Device,
) -> Result<Tensor> {
    let mut weights = vec![0f32; output * input];
    // align_corners=False: output pixel i's centre maps to input coordinate
    // (i + 0.5) · in / out − 0.5.
    let scale = input as f64 / output as f64;
    let last = input as i64 - 1;
    for i in 0..output {
        let source = (i as f64 + 0.5) * scale - 0.5;
        let row = &mut weights[i * input..(i + 1) * input];
        let mut add = |tap: i64, weight: f64| row[tap.clamp(0, last) as usize] += weight as f32;
        match interpolation {
            Interpolation::Bilinear => {
                // torch clamps negative source coordinates to 0 for linear modes.
                let source = source.max(0.0);
                let base = source.floor();
                let t = source - base;
                add(base as i64, 1.0 - t);
                add(base as i64 + 1, t);
            }
            Interpolation::Area => {
                let start = i * input / output;
                let end = ((i + 1) * input).div_ceil(output);
                for tap in start..end {
                    add(tap as i64, 1.0 / (end - start) as f64);
                }
            }
            Interpolation::Bicubic => {
                let base = source.floor();
                let t = source - base;
                for (offset, weight) in (-1i64..=2).zip(cubic_weights(t)) {
                    add(base as i64 + offset, weight);
                }
            }
        }
    }
    Ok(Tensor::from_vec(weights, (output, input), device)?)
}

/// Keys' cubic convolution weights (a = −0.75, torch's choice) of the four taps at
/// offsets −1, 0, 1, 2 from the sample's floor, for a sample `t` ∈ [0, 1) past it.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; // |x| ≤ 1
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; // 1 < |x| < 2
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(b: usize, h: usize, w: usize) -> Tensor {
        let n = b * 3 * h * w;
        let values: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 96.0).collect();
        Tensor::from_vec(values, (b, 3, h, w), &Device::Cpu).unwrap()
    }

    #[test]
    fn resizing_to_the_same_size_changes_nothing() {
        let images = ramp(2, 5, 7);
        for interpolation in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Area,
        ] {
            let same = resize(&images, (5, 7), interpolation).unwrap();
            let diff = (same - &images)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(
                diff.iter().all(|d| *d <= 1e-6),
                "{interpolation:?}: {diff:?}"
            );
        }
    }

    #[test]
    fn every_row_of_weights_sums_to_one() {
        for interpolation in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Area,
        ] {
            for (input, output) in [(7, 3), (3, 7), (1, 4), (224, 224), (5, 1)] {
                let m = interpolation_matrix(input, output, interpolation, &Device::Cpu)
                    .unwrap()
                    .sum(1)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                assert!(
                    m.iter().all(|s| (s - 1.0).abs() <= 1e-6),
                    "{interpolation:?} {input}→{output}: {m:?}"
                );
            }
        }
    }

    #[test]
    fn boxes_outside_the_image_and_wrong_shapes_are_refused() {
        let images = ramp(1, 4, 4);
        let outside = CropBox {
            top: 2,
            left: 0,
            height: 3,
            width: 4,
        };
        assert!(crop(&images, outside).is_err());
        let empty = CropBox {
            height: 0,
            ..outside
        };
        assert!(crop(&images, empty).is_err());
        let gray = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(resize(&gray, (2, 2), Interpolation::Bilinear).is_err());
        assert!(resize(&images, (0, 2), Interpolation::Bilinear).is_err());
    }
}
