//! Cut-outs: K augmented views of the image per step, each resized to a model's input.
//!
//! The scheme (defaults in [`CutoutConfig::default`]):
//! - **scale**: a share `zoomed` of the cut-outs are zoomed crops whose side is a uniform
//!   fraction in [`min_zoom`, 0.9) of the image's shorter side; the others are wide views,
//!   a fraction in [0.9, 1] of it. Pixray mixes 60% zoomed with 40% wide (`zoomed` 0.6);
//!   the default is 0.8: the quickstart model reads its 72-pixel input as a 3 × 3 grid of
//!   24-pixel patches, and with wide views only (the grid always in about the same place)
//!   the drawing fits one coloured blob to each patch; zoomed crops move and scale the
//!   grid, which breaks the blobs up and lets one larger object of the prompted colour
//!   win (README, judged evaluation: on the 23 single-object prompts judge shape
//!   0.52 → 0.61 and pixel colour 0.74 → 0.83 against wide views only);
//! - **affine**: the crop's height and width are each stretched by up to `stretch` (±10%),
//!   independently, so the cut-out is scaled anisotropically as well as translated; the
//!   position is uniform over the places the crop fits;
//! - **flip**: left–right with probability `flip` (default 0: shapes-world captions name
//!   positions, and a flip swaps left and right);
//! - **colour**: contrast × U(1 − `jitter`, 1 + `jitter`) about mid-grey and brightness
//!   shifted by U(−`jitter`, `jitter`), one draw per cut-out for all channels (hue is left
//!   alone: the colour is what the prompt asks for);
//! - **noise**: f · N(0, 1) added per pixel with f ~ U(0, `noise`) per cut-out, as
//!   VQGAN+CLIP (noise factor up to 0.1).
//!
//! Crops larger than the model's input are shrunk by area averaging (every pixel gets a
//! gradient), smaller ones enlarged bilinearly. All randomness comes from the caller's
//! generator, drawn in a fixed order, so a seed fixes every cut-out.
//!
//! Shapes: K = cut-outs, S = the model's input side, (1, 3, H, W) the image.

use candle_core::{Device, Tensor};
use rand::Rng;

use crate::error::{Error, Result};
use crate::image::tensor::{crop_resize, CropBox, Interpolation};

/// How cut-outs are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutoutConfig {
    /// K: cut-outs per step, at least 1.
    pub count: usize,
    /// Share of zoomed crops, in [0, 1].
    pub zoomed: f64,
    /// Smallest zoomed crop side as a fraction of the image's shorter side, in (0, 0.9].
    pub min_zoom: f64,
    /// Largest relative stretch of a crop's height or width, in [0, 1).
    pub stretch: f64,
    /// Chance of a left–right flip, in [0, 1].
    pub flip: f64,
    /// Amplitude of the brightness and contrast jitter, in [0, 1].
    pub jitter: f64,
    /// Largest noise factor, ≥ 0.
    pub noise: f64,
}

impl Default for CutoutConfig {
    /// 16 cut-outs, 80% zoomed down to half the image and 20% wide, stretch 0.1, no
    /// flips, jitter 0.05, noise up to 0.1.
    fn default() -> Self {
        CutoutConfig {
            count: 16,
            zoomed: 0.8,
            min_zoom: 0.5,
            stretch: 0.1,
            flip: 0.0,
            jitter: 0.05,
            noise: 0.1,
        }
    }
}

impl CutoutConfig {
    /// An error naming the first setting out of its range.
    pub fn validate(&self) -> Result<()> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let problem = if self.count == 0 {
            Some("count must be at least 1")
        } else if !unit(self.zoomed) {
            Some("zoomed share must lie in [0, 1]")
        } else if !(self.min_zoom > 0.0 && self.min_zoom <= 0.9) {
            Some("min_zoom must lie in (0, 0.9]")
        } else if !(0.0..1.0).contains(&self.stretch) {
            Some("stretch must lie in [0, 1)")
        } else if !unit(self.flip) {
            Some("flip chance must lie in [0, 1]")
        } else if !unit(self.jitter) {
            Some("jitter must lie in [0, 1]")
        } else if !(self.noise >= 0.0 && self.noise.is_finite()) {
            Some("noise must be a number ≥ 0")
        } else {
            None
        };
        match problem {
            Some(p) => Err(Error::InvalidArgument(format!("cut-outs: {p}"))),
            None => Ok(()),
        }
    }
}

/// One cut-out's random choices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutout {
    /// The pixels taken from the image.
    pub crop: CropBox,
    /// Mirrored left–right.
    pub flip: bool,
    /// Multiplies the distance from mid-grey.
    pub contrast: f32,
    /// Added to every value.
    pub brightness: f32,
    /// Factor of the standard normal noise added.
    pub noise: f32,
}

/// Draws `config.count` cut-outs of an (height, width) image from `rng`.
pub fn sample_cutouts(
    config: &CutoutConfig,
    (height, width): (usize, usize),
    rng: &mut impl Rng,
) -> Vec<Cutout> {
    let short = height.min(width) as f64;
    (0..config.count)
        .map(|_| {
            let zoomed = rng.random::<f64>() < config.zoomed;
            let (low, high) = if zoomed {
                (config.min_zoom, 0.9)
            } else {
                (0.9, 1.0)
            };
            let side = short * (low + (high - low) * rng.random::<f64>());
            let mut stretched = |limit: usize| {
                let factor = 1.0 + config.stretch * (2.0 * rng.random::<f64>() - 1.0);
                ((side * factor).round() as usize).clamp(1, limit)
            };
            let crop_height = stretched(height);
            let crop_width = stretched(width);
            let top = rng.random_range(0..=height - crop_height);
            let left = rng.random_range(0..=width - crop_width);
            let flip = rng.random::<f64>() < config.flip;
            let mut symmetric =
                |amplitude: f64| (amplitude * (2.0 * rng.random::<f64>() - 1.0)) as f32;
            let contrast = 1.0 + symmetric(config.jitter);
            let brightness = symmetric(config.jitter);
            let noise = (config.noise * rng.random::<f64>()) as f32;
            Cutout {
                crop: CropBox {
                    top,
                    left,
                    height: crop_height,
                    width: crop_width,
                },
                flip,
                contrast,
                brightness,
                noise,
            }
        })
        .collect()
}

/// Standard normal noise (K, 3, S, S) for [`apply_cutouts`], drawn from `rng`.
pub fn sample_noise(count: usize, side: usize, rng: &mut impl Rng) -> Result<Tensor> {
    let values: Vec<f32> = (0..count * 3 * side * side)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    Ok(Tensor::from_vec(
        values,
        (count, 3, side, side),
        &Device::Cpu,
    )?)
}

/// The cut-outs of `image` (1, 3, H, W), each resized to `side` × `side`, flipped,
/// jittered and given `noise` (K, 3, S, S) × its factor: (K, 3, S, S), differentiable
/// with respect to the image. Values may leave [0, 1] (jitter and noise).
pub fn apply_cutouts(
    image: &Tensor,
    cutouts: &[Cutout],
    side: usize,
    noise: &Tensor,
) -> Result<Tensor> {
    let device = image.device();
    let reversed: Vec<u32> = (0..side as u32).rev().collect();
    let reversed = Tensor::from_vec(reversed, side, device)?;
    let mut views = Vec::with_capacity(cutouts.len());
    for cut in cutouts {
        let interpolation = if cut.crop.height >= side && cut.crop.width >= side {
            Interpolation::Area
        } else {
            Interpolation::Bilinear
        };
        let mut view = crop_resize(image, cut.crop, (side, side), interpolation)?; // (1, 3, S, S)
        if cut.flip {
            view = view.index_select(&reversed, 3)?;
        }
        let shift = f64::from(cut.brightness) + 0.5 * (1.0 - f64::from(cut.contrast));
        views.push(view.affine(f64::from(cut.contrast), shift)?);
    }
    let views = Tensor::cat(&views, 0)?; // (K, 3, S, S)
    let factors: Vec<f32> = cutouts.iter().map(|c| c.noise).collect();
    let factors = Tensor::from_vec(factors, (cutouts.len(), 1, 1, 1), device)?;
    Ok((views + noise.broadcast_mul(&factors)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crops_lie_inside_the_image_and_follow_the_seed() {
        let config = CutoutConfig {
            count: 200,
            flip: 0.5,
            zoomed: 0.6,
            ..CutoutConfig::default()
        };
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            sample_cutouts(&config, (40, 60), &mut rng)
        };
        let cuts = draw(3);
        assert_eq!(cuts, draw(3));
        assert_ne!(cuts, draw(4));
        for c in &cuts {
            assert!(c.crop.top + c.crop.height <= 40 && c.crop.left + c.crop.width <= 60);
            assert!(c.crop.height >= 18 && c.crop.width >= 18, "{c:?}");
            assert!((0.0..=0.1).contains(&c.noise));
        }
        let flips = cuts.iter().filter(|c| c.flip).count();
        assert!((60..140).contains(&flips), "{flips} flips of 200");
    }

    #[test]
    fn a_flipped_cutout_is_the_mirror_image() {
        let image = Tensor::arange(0f32, 48.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 4, 4))
            .unwrap();
        let whole = CropBox {
            top: 0,
            left: 0,
            height: 4,
            width: 4,
        };
        let cut = |flip| Cutout {
            crop: whole,
            flip,
            contrast: 1.0,
            brightness: 0.0,
            noise: 0.0,
        };
        let noise = Tensor::zeros((2, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let views = apply_cutouts(&image, &[cut(false), cut(true)], 4, &noise).unwrap();
        let row = |k: usize| {
            views
                .get(k)
                .unwrap()
                .get(0)
                .unwrap()
                .get(1)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(row(0), [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(row(1), [7.0, 6.0, 5.0, 4.0]);
    }
}
