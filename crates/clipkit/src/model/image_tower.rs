//! The image tower behind [`super::ClipNetwork`]: the ViT of transformers' `CLIPModel`
//! followed by its visual projection, or the CLIP paper's ModifiedResNet, whose attention
//! pooling ends in the projection itself.
//!
//! Shape legend: B = batch, S = image size, C = the ViT's width, E = embedding size.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::Linear;
use super::load_options::LoadOptions;
use super::resnet::{ResNetConfig, ResNetTower};
use super::vision::VisionTower;
use crate::config::VisionConfig;

/// Which image tower a model has, and its shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageTowerConfig {
    /// A vision transformer (`vision_model.*` and `visual_projection.weight`, HF names).
    Vit(VisionConfig),
    /// A ModifiedResNet (`visual.*`, open_clip's and OpenAI's names).
    ResNet(ResNetConfig),
}

impl ImageTowerConfig {
    /// Side of the square input image in pixels.
    pub fn image_size(&self) -> usize {
        match self {
            ImageTowerConfig::Vit(config) => config.image_size,
            ImageTowerConfig::ResNet(config) => config.image_size,
        }
    }

    /// A short name for messages: `ViT` or `ModifiedResNet`.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageTowerConfig::Vit(_) => "ViT",
            ImageTowerConfig::ResNet(_) => "ModifiedResNet",
        }
    }
}

/// An image tower with its projection into the shared space.
#[derive(Debug, Clone)]
pub enum ImageTower {
    /// The ViT and its bias-free projection (C → E).
    Vit {
        /// The transformer, pooled to its class token.
        model: VisionTower,
        /// `visual_projection`.
        projection: Linear,
    },
    /// The ModifiedResNet, projecting in its attention pool.
    ResNet(ResNetTower),
}

impl ImageTower {
    /// Loads the tower `config` describes from `vb` (the checkpoint's root), projecting to
    /// `projection_dim`.
    pub fn new(
        vb: &VarBuilder,
        config: &ImageTowerConfig,
        projection_dim: usize,
        options: LoadOptions,
    ) -> Result<Self> {
        Ok(match config {
            ImageTowerConfig::Vit(vision) => ImageTower::Vit {
                model: VisionTower::new(vb.pp("vision_model"), vision, options)?,
                projection: Linear::new(
                    vb.pp("visual_projection"),
                    vision.hidden_size,
                    projection_dim,
                    false,
                    options,
                )?,
            },
            ImageTowerConfig::ResNet(resnet) => {
                if resnet.output_dim != projection_dim {
                    candle_core::bail!(
                        "ResNet tower: attention pool output {} differs from the embedding size {projection_dim}",
                        resnet.output_dim
                    );
                }
                ImageTower::ResNet(ResNetTower::new(vb.pp("visual"), resnet, options)?)
            }
        })
    }

    /// pixels (B, 3, S, S) → projected, not normalised, image features (B, E).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        match self {
            ImageTower::Vit { model, projection } => projection.forward(&model.forward(pixels)?),
            ImageTower::ResNet(tower) => tower.forward(pixels),
        }
    }
}
