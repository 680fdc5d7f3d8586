//! The ViT image tower (`vision_model.*` in the checkpoint).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::encoder::{Encoder, EncoderShape};
use super::layers::{tensor_name, LayerNorm, Linear};
use super::load_options::LoadOptions;
use crate::config::VisionConfig;

/// Patch embedding, class token, position embeddings, pre-norm, encoder and post-norm of the
/// class token: pixels in, the pooled (B, C) state out.
#[derive(Debug, Clone)]
pub struct VisionTower {
    /// The patch convolution as a product: (C·p·p) → hidden, no bias.
    patch_embedding: Linear,
    /// (C)
    class_embedding: Tensor,
    /// (P + 1, C)
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    config: VisionConfig,
}

impl VisionTower {
    /// Loads the tower from `vb` (pointing at `vision_model`).
    pub fn new(vb: VarBuilder, config: &VisionConfig, options: LoadOptions) -> Result<Self> {
        let c = config.hidden_size;
        let p = config.patch_size;
        let channels = config.num_channels;
        let emb = vb.pp("embeddings");
        let key = tensor_name(&emb, "patch_embedding.weight");
        let sources = [key.clone()];
        let weight = || {
            emb.get((c, channels, p, p), "patch_embedding.weight")?
                .reshape((c, channels * p * p))
        };
        let patch_embedding =
            Linear::cached(options, &key, &sources, (c, channels * p * p), weight, None)?;
        let shape = EncoderShape {
            hidden: c,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            activation: config.hidden_act,
            eps: config.layer_norm_eps,
        };
        Ok(VisionTower {
            patch_embedding,
            class_embedding: emb.get(c, "class_embedding")?,
            position_embedding: emb
                .get((config.num_positions(), c), "position_embedding.weight")?,
            // The checkpoint's own spelling.
            pre_layrnorm: LayerNorm::new(vb.pp("pre_layrnorm"), c, config.layer_norm_eps)?,
            encoder: Encoder::new(vb.pp("encoder"), &shape, options)?,
            post_layernorm: LayerNorm::new(vb.pp("post_layernorm"), c, config.layer_norm_eps)?,
            config: config.clone(),
        })
    }

    /// pixels: (B, channels, S, S) with S = image_size → pooled state (B, C).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, channels, height, width) = pixels.dims4()?;
        let p = self.config.patch_size;
        let g = self.config.patches_per_side();
        if channels != self.config.num_channels
            || height != self.config.image_size
            || width != self.config.image_size
        {
            candle_core::bail!(
                "pixel tensor of shape {:?} does not fit the model's ({}, {s}, {s}) input",
                pixels.dims(),
                self.config.num_channels,
                s = self.config.image_size
            );
        }
        // A stride-p convolution ignores the last image_size % p rows and columns.
        let pixels = pixels.narrow(2, 0, g * p)?.narrow(3, 0, g * p)?;
        let patches = pixels
            .reshape((b, channels, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))? // (B, g, g, channels, p, p)
            .contiguous()?
            .reshape((b, g * g, channels * p * p))?;
        let patches = self.patch_embedding.forward(&patches)?; // (B, P, C)
        let c = self.config.hidden_size;
        let class = self.class_embedding.reshape((1, 1, c))?.repeat((b, 1, 1))?;
        let tokens = Tensor::cat(&[class, patches], 1)?; // (B, P + 1, C)
        let tokens = tokens.broadcast_add(&self.position_embedding)?;
        let hidden = self
            .encoder
            .forward(&self.pre_layrnorm.forward(&tokens)?, false)?;
        let class_state = hidden.narrow(1, 0, 1)?.squeeze(1)?; // (B, C)
        self.post_layernorm.forward(&class_state)
    }
}
