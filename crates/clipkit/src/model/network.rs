//! Both towers, their projections into the shared space and the temperature.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::architecture::Architecture;
use super::image_tower::ImageTower;
use super::layers::Linear;
use super::load_options::LoadOptions;
use super::text::TextTower;
use crate::config::ClipConfig;

/// The full CLIP network, named as transformers' `CLIPModel` (a ModifiedResNet image tower
/// keeps open_clip's `visual.*` names, as transformers has none).
#[derive(Debug, Clone)]
pub struct ClipNetwork {
    text_model: TextTower,
    image_tower: ImageTower,
    text_projection: Linear,
    /// Scalar: log of the inverse temperature.
    logit_scale: Tensor,
}

impl ClipNetwork {
    /// Loads the network from `vb` (pointing at the checkpoint's root), its weights held as
    /// `options` say.
    pub fn new(vb: VarBuilder, config: &ClipConfig, options: LoadOptions) -> Result<Self> {
        Self::build(vb, &Architecture::from(config), options)
    }

    /// Loads a network of any [`Architecture`] (a ViT or ModifiedResNet image tower) from
    /// `vb`, its weights held as `options` say.
    pub fn build(
        vb: VarBuilder,
        architecture: &Architecture,
        options: LoadOptions,
    ) -> Result<Self> {
        let e = architecture.projection_dim;
        let (text_model, image_tower) = rayon::join(
            || TextTower::new(vb.pp("text_model"), &architecture.text, options),
            || ImageTower::new(&vb, &architecture.image, e, options),
        );
        Ok(ClipNetwork {
            text_model: text_model?,
            image_tower: image_tower?,
            text_projection: Linear::new(
                vb.pp("text_projection"),
                architecture.text.hidden_size,
                e,
                false,
                options,
            )?,
            logit_scale: vb.get((), "logit_scale")?,
        })
    }

    /// pixels (B, 3, S, S) → projected, not normalised, image features (B, E).
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        self.image_tower.forward(pixels)
    }

    /// Token-id rows of equal length → projected, not normalised, text features (B, E).
    pub fn text_features(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        self.text_projection.forward(&self.text_model.forward(ids)?)
    }

    /// The logit-scale parameter itself (a scalar, log of the multiplier).
    pub fn log_logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }

    /// The multiplier of cosine similarities: exp(logit_scale).
    pub fn logit_scale(&self) -> Result<f32> {
        self.logit_scale.exp()?.to_scalar::<f32>()
    }
}
