//! A VQ autoencoder with diffusers' `VQModel` architecture (taming-transformers' VQGAN):
//! a convolutional encoder, a codebook with straight-through quantisation and a
//! convolutional decoder, loaded from a diffusers folder (`config.json` +
//! `diffusion_pytorch_model.safetensors`) or from taming-transformers tensors and YAML
//! ([`taming`]). Every operation is differentiable: CLIP-guided generation optimises a latent
//! through [`VqModel::decode`], and training updates every weight.
//!
//! Shapes: B = batch, D = code width (`vq_embed_dim`), Z = `latent_channels`, H × W = image
//! size, h × w = latent size = (H/f, W/f) with f = [`VqConfig::downscale_factor`].
//! Images are RGB in [-1, 1] in and out (diffusers' convention); map with `(x + 1) / 2`.

mod attention;
mod config;
mod conv;
mod conv_taps;
mod decoder;
mod encoder;
mod group_norm;
mod group_norm_math;
mod level;
mod mid_block;
mod quantizer;
mod resnet;
mod sampling;
pub mod taming;
mod upsample;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Module, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

pub use attention::AttentionBlock;
pub use config::{VqConfig, ATTN_DOWN_BLOCK, ATTN_UP_BLOCK, DOWN_BLOCK, UP_BLOCK, VQ_CLASS_NAME};
pub use conv::Conv;
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use group_norm::GroupNorm;
pub use mid_block::MidBlock;
pub use quantizer::{Quantized, Quantizer, COMMITMENT_WEIGHT};
pub use resnet::ResnetBlock;
pub use sampling::{Downsample, Upsample};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::model_folder::atomic_dir::{replace_dir, sync_file, write_synced};
use crate::model_folder::CONFIG_FILE;

/// The weights file of a diffusers model folder.
pub const VQ_WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// A loaded VQ autoencoder.
#[derive(Debug, Clone)]
pub struct VqModel {
    config: VqConfig,
    encoder: Encoder,
    quant_conv: Conv,
    quantizer: Quantizer,
    post_quant_conv: Conv,
    decoder: Decoder,
}

impl VqModel {
    /// Builds the model from `vb`, whose names are diffusers' (`encoder.conv_in.weight`,
    /// `quantize.embedding.weight`, …).
    pub fn new(vb: VarBuilder, config: &VqConfig) -> CandleResult<Self> {
        let (z, d) = (config.latent_channels, config.code_dim());
        Ok(VqModel {
            config: config.clone(),
            encoder: Encoder::new(vb.pp("encoder"), config)?,
            quant_conv: resnet::conv1x1(vb.pp("quant_conv"), z, d)?,
            quantizer: Quantizer::new(vb.pp("quantize"), config.num_vq_embeddings, d)?,
            post_quant_conv: resnet::conv1x1(vb.pp("post_quant_conv"), d, z)?,
            decoder: Decoder::new(vb.pp("decoder"), config)?,
        })
    }

    /// Loads a diffusers `VQModel` folder: `config.json` (another architecture is refused,
    /// naming `_class_name`) and `diffusion_pytorch_model.safetensors` (every missing,
    /// mis-shaped or unexpected tensor is reported at once).
    pub fn load(dir: &Path) -> Result<Self> {
        let config = read_vq_config(dir)?;
        let weights = dir.join(VQ_WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(Error::MissingFile {
                path: weights,
                hint: "a diffusers VQModel folder holds its weights in this file".into(),
            });
        }
        let checkpoint = Checkpoint::open_file(&weights)?;
        let model = VqModel::new(checkpoint.var_builder(), &config);
        checkpoint.finish()?;
        Ok(model?)
    }

    /// The architecture.
    pub fn config(&self) -> &VqConfig {
        &self.config
    }

    /// The quantiser (codebook, index look-up).
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// The latent shape (D, h, w) of an image of `height` × `width` pixels, which must be
    /// multiples of the downscale factor.
    pub fn latent_shape(&self, height: usize, width: usize) -> Result<(usize, usize, usize)> {
        let f = self.config.downscale_factor();
        if height == 0 || width == 0 || !height.is_multiple_of(f) || !width.is_multiple_of(f) {
            return Err(Error::InvalidArgument(format!(
                "image size {height}x{width} is not a positive multiple of the VQ model's downscale factor {f}"
            )));
        }
        Ok((self.config.code_dim(), height / f, width / f))
    }

    /// Encodes images (B, 3, H, W) in [-1, 1] to unquantised latents (B, D, h, w), as
    /// diffusers' `VQModel.encode` (encoder, then `quant_conv`).
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let h = self.encoder.forward(images)?;
        Ok(self.quant_conv.forward(&h)?)
    }

    /// Quantises latents (B, D, h, w) to their nearest codes, straight-through.
    pub fn quantize(&self, latents: &Tensor) -> Result<Quantized> {
        Ok(self.quantizer.quantize(latents)?)
    }

    /// Decodes latents (B, D, h, w) to images (B, 3, H, W), nominally in [-1, 1] (not
    /// clamped): quantisation (straight-through, so d image / d latent exists), then
    /// `post_quant_conv` and the decoder — diffusers' `VQModel.decode`.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let quantized = self.quantize(latents)?;
        self.decode_quantized(&quantized.latent)
    }

    /// Decodes latents (B, D, h, w) that are already codes (or deliberately not quantised),
    /// as diffusers' `decode(..., force_not_quantize=True)`.
    pub fn decode_quantized(&self, latents: &Tensor) -> Result<Tensor> {
        let h = self.post_quant_conv.forward(latents)?;
        Ok(self.decoder.forward(&h)?)
    }
}

/// Writes a diffusers `VQModel` folder atomically: `config.json`,
/// `diffusion_pytorch_model.safetensors` (f32, diffusers names) and `extra` files (name,
/// bytes), replacing any folder at `dir`.
pub fn write_vq_folder(
    dir: &Path,
    config: &VqConfig,
    tensors: &HashMap<String, Tensor>,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    config.validate(&dir.join(CONFIG_FILE))?;
    let config_json = config.to_json()?;
    replace_dir(dir, |staging| {
        write_synced(&staging.join(CONFIG_FILE), config_json.as_bytes())?;
        let weights = staging.join(VQ_WEIGHTS_FILE);
        candle_core::safetensors::save(tensors, &weights)?;
        sync_file(&weights)?;
        for (name, bytes) in extra {
            write_synced(&staging.join(name), bytes)?;
        }
        Ok(())
    })
}

/// Reads and validates a VQ model folder's `config.json`.
pub fn read_vq_config(dir: &Path) -> Result<VqConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    VqConfig::from_json(&text, &path)
}
