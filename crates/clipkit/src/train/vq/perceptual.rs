//! The VQ trainer's perceptual term: how far a CLIP sees each reconstruction from its
//! original, as 1 − cosine of their image embeddings. No LPIPS weights can reach these
//! machines; the user's CLIP is a network that already reads colour, shape and count, so
//! its embedding is the feature space in which a blurred star should be far from a star.
//!
//! Shapes: B = batch, S = image side, M = the CLIP's input side, E = embedding width.

use std::path::{Path, PathBuf};

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::clip::{l2_normalize, Clip};
use crate::error::{Error, Result};
use crate::image::tensor::{normalize, resize, Interpolation};
use crate::model::LoadOptions;

/// Which CLIP measures the perceptual term and how much it weighs; part of
/// [`VqRunSettings`](super::VqRunSettings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceptualSettings {
    /// The CLIP model folder.
    pub model: PathBuf,
    /// Weight of the term beside the (weighted) reconstruction loss.
    pub weight: f32,
}

/// A frozen CLIP through which the perceptual term's gradient reaches the decoder.
pub struct PerceptualTerm {
    clip: Clip,
    weight: f64,
}

impl PerceptualTerm {
    /// Loads the CLIP of `settings` with input gradients.
    pub fn load(settings: &PerceptualSettings) -> Result<Self> {
        if !(settings.weight.is_finite() && settings.weight > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the perceptual weight must be a positive number, not {}",
                settings.weight
            )));
        }
        let options = LoadOptions {
            input_gradients: true,
            ..LoadOptions::default()
        };
        Ok(PerceptualTerm {
            clip: Clip::load_with(&settings.model, options)?,
            weight: f64::from(settings.weight),
        })
    }

    /// The CLIP's folder.
    pub fn model_dir(&self) -> &Path {
        self.clip.dir()
    }

    /// Mean over the batch of 1 − cos(CLIP(decoded), CLIP(images)), unweighted, for images
    /// (B, 3, S, S) in [-1, 1]; differentiable with respect to `decoded`.
    pub fn distance(&self, decoded: &Tensor, images: &Tensor) -> Result<Tensor> {
        let target = self.embed(&images.detach())?.detach();
        let embedded = self.embed(decoded)?;
        let cosine = (embedded * target)?.sum(D::Minus1)?; // (B)
        Ok(cosine.affine(-1.0, 1.0)?.mean_all()?)
    }

    /// [`Self::distance`] times the term's weight: what joins the loss.
    pub fn weighted(&self, distance: &Tensor) -> Result<Tensor> {
        Ok(distance.affine(self.weight, 0.0)?)
    }

    /// Unit embeddings (B, E) of images in [-1, 1], resized to the CLIP's side M as its
    /// preprocessing resizes a small image (bicubic).
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        let side = self.clip.image_size();
        let unit = images.affine(0.5, 0.5)?; // [0, 1]
        let resized = resize(&unit, (side, side), Interpolation::Bicubic)?; // (B, 3, M, M)
        let pixels = normalize(&resized, self.clip.preprocess_config())?;
        Ok(l2_normalize(&self.clip.image_features(&pixels)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::vq::images_tensor;
    use candle_core::Var;
    use image::RgbImage;

    fn fixture() -> PerceptualTerm {
        let model =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/quickstart");
        PerceptualTerm::load(&PerceptualSettings { model, weight: 0.5 }).unwrap()
    }

    fn scene(colour: [u8; 3], square: bool) -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            let inside = if square {
                (10..22).contains(&x) && (10..22).contains(&y)
            } else {
                (x as i32 - 16).pow(2) + (y as i32 - 16).pow(2) <= 36
            };
            image::Rgb(if inside { colour } else { [128, 128, 128] })
        })
    }

    #[test]
    fn an_image_is_at_distance_zero_from_itself_and_gradients_reach_the_pixels() {
        let term = fixture();
        let images =
            images_tensor(&[scene([220, 30, 30], true), scene([30, 30, 220], false)]).unwrap();
        let same = term
            .distance(&images, &images)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(same.abs() < 1e-5, "distance to itself {same}");

        let other =
            images_tensor(&[scene([30, 200, 30], false), scene([220, 30, 30], true)]).unwrap();
        let decoded = Var::from_tensor(&other).unwrap();
        let distance = term.distance(decoded.as_tensor(), &images).unwrap();
        let value = distance.to_scalar::<f32>().unwrap();
        assert!(
            value > 1e-3 && value <= 2.0,
            "distance to other scenes {value}"
        );
        let weighted = term
            .weighted(&distance)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((weighted - 0.5 * value).abs() < 1e-7);

        let grads = distance.backward().unwrap();
        let grad = grads
            .get(decoded.as_tensor())
            .expect("a gradient for the decoded images");
        let norm = grad
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm.is_finite() && norm > 0.0, "gradient norm² {norm}");
    }

    #[test]
    fn a_weight_that_is_not_positive_is_refused() {
        for weight in [0.0, -1.0, f32::NAN] {
            let settings = PerceptualSettings {
                model: PathBuf::from("unused"),
                weight,
            };
            let error = PerceptualTerm::load(&settings).err().expect("refused");
            assert!(error.to_string().contains("perceptual weight"), "{error}");
        }
    }
}
