//! [`Architecture`]: the shape of a whole CLIP network, whatever layout it was read from.

use super::image_tower::ImageTowerConfig;
use crate::config::{ClipConfig, TextConfig};

/// Text tower, image tower and embedding size: what [`super::ClipNetwork::build`] needs.
/// A HuggingFace `config.json` gives a ViT one ([`From<&ClipConfig>`]); OpenAI checkpoints
/// and open_clip folders give either tower.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    /// The causal text transformer (HF names, `text_model.*`).
    pub text: TextConfig,
    /// The image tower.
    pub image: ImageTowerConfig,
    /// Size of the shared embedding space.
    pub projection_dim: usize,
}

impl From<&ClipConfig> for Architecture {
    fn from(config: &ClipConfig) -> Self {
        Architecture {
            text: config.text_config.clone(),
            image: ImageTowerConfig::Vit(config.vision_config.clone()),
            projection_dim: config.projection_dim,
        }
    }
}

impl Architecture {
    /// Side of the square input image in pixels.
    pub fn image_size(&self) -> usize {
        self.image.image_size()
    }
}
