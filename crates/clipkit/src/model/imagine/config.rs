//! The text-to-image transformer's architecture and the VQ model it was trained over, as the
//! generator folder's `config.json` holds them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::vq::VqModel;
use crate::tokenizer::ClipTokenizer;

/// The `model_type` of a generator folder's `config.json`.
pub const IMAGINE_MODEL_TYPE: &str = "clipkit_imagine";

/// The transformer over one stream of `text_length` caption tokens followed by the
/// `grid[0] × grid[1]` codes of an image, row by row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagineConfig {
    /// Always [`IMAGINE_MODEL_TYPE`].
    pub model_type: String,
    /// Size of the caption tokenizer's vocabulary (ids `0..text_vocab`).
    pub text_vocab: usize,
    /// Caption tokens per stream, start and end tokens included, padded with
    /// `pad_token_id`.
    pub text_length: usize,
    /// The padding id (CLIP's end token).
    pub pad_token_id: u32,
    /// Codes of the VQ codebook (stream ids `text_vocab..text_vocab + codebook_size`).
    pub codebook_size: usize,
    /// The latent grid (h, w) of one image.
    pub grid: [usize; 2],
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Attention heads per block (`hidden_size` must divide evenly).
    pub num_heads: usize,
    /// Hidden width of each block's MLP.
    pub intermediate_size: usize,
    /// Epsilon of the layer norms.
    pub layer_norm_eps: f64,
    /// The VQ model the codes come from.
    pub vq: VqIdentity,
}

/// Which VQ model a generator was trained over: where it was and a digest of its weights,
/// so `imagine` can refuse a VQ folder that was replaced since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqIdentity {
    /// The VQ folder (absolute when trained).
    pub path: PathBuf,
    /// BLAKE3 of its `diffusion_pytorch_model.safetensors`, hex.
    pub weights_blake3: String,
}

impl VqIdentity {
    /// The identity of the VQ folder `dir` as it is now.
    pub fn of(dir: &Path) -> Result<Self> {
        let weights = dir.join(crate::model::vq::VQ_WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?;
        let path = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        Ok(VqIdentity {
            path,
            weights_blake3: blake3::hash(&bytes).to_hex().to_string(),
        })
    }

    /// An error unless the VQ folder `dir` holds the weights this identity names.
    pub fn check(&self, dir: &Path) -> Result<()> {
        let now = VqIdentity::of(dir)?;
        if now.weights_blake3 != self.weights_blake3 {
            return Err(Error::InvalidArgument(format!(
                "{}: the VQ weights differ from those the generator was trained with \
                 (BLAKE3 {} instead of {}); pass the VQ folder it was trained with (--vq)",
                dir.display(),
                now.weights_blake3,
                self.weights_blake3
            )));
        }
        Ok(())
    }
}

/// The sizes of a generator's transformer; the rest of its config follows from the VQ model
/// and the caption tokenizer ([`ImagineConfig::over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagineSizes {
    /// Caption tokens per stream (start and end included; longer captions are cut).
    pub text_length: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Attention heads per block.
    pub num_heads: usize,
}

impl ImagineConfig {
    /// The config of a generator of `sizes` over the codes that the VQ model `vq` (loaded
    /// from `vq_dir`) gives `image_size`-pixel images, reading captions with `tokenizer`
    /// (padded with its end token). MLPs are four times as wide as the stream.
    pub fn over(
        sizes: &ImagineSizes,
        vq: &VqModel,
        vq_dir: &Path,
        tokenizer: &ClipTokenizer,
        image_size: u32,
    ) -> Result<Self> {
        let pad_token_id = *tokenizer.encode("")?.ids.last().ok_or_else(|| {
            Error::InvalidArgument("the caption tokenizer gives no end token".into())
        })?;
        let side = image_size as usize;
        let (_, h, w) = vq.latent_shape(side, side)?;
        Ok(ImagineConfig {
            model_type: IMAGINE_MODEL_TYPE.into(),
            text_vocab: tokenizer.vocab_size(),
            text_length: sizes.text_length,
            pad_token_id,
            codebook_size: vq.config().num_vq_embeddings,
            grid: [h, w],
            hidden_size: sizes.hidden_size,
            num_layers: sizes.num_layers,
            num_heads: sizes.num_heads,
            intermediate_size: 4 * sizes.hidden_size,
            layer_norm_eps: 1e-5,
            vq: VqIdentity::of(vq_dir)?,
        })
    }

    /// Image codes per stream.
    pub fn image_tokens(&self) -> usize {
        self.grid[0] * self.grid[1]
    }

    /// Tokens of a whole stream (caption then image).
    pub fn sequence_length(&self) -> usize {
        self.text_length + self.image_tokens()
    }

    /// Size of the shared embedding table and of the output layer.
    pub fn vocab_size(&self) -> usize {
        self.text_vocab + self.codebook_size
    }

    /// Checks that the numbers fit together; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, message: String| Error::Config {
            path: path.to_path_buf(),
            field: field.into(),
            message,
        };
        if self.model_type != IMAGINE_MODEL_TYPE {
            return Err(bad(
                "model_type",
                format!(
                    "{:?} is not a clipkit text-to-image generator ({IMAGINE_MODEL_TYPE:?})",
                    self.model_type
                ),
            ));
        }
        for (field, value) in [
            ("text_vocab", self.text_vocab),
            ("codebook_size", self.codebook_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("grid", self.image_tokens()),
        ] {
            if value == 0 {
                return Err(bad(field, "must be positive".into()));
            }
        }
        if self.text_length < 2 {
            return Err(bad(
                "text_length",
                "must hold at least the start and end tokens".into(),
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(bad(
                "num_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    self.num_heads, self.hidden_size
                ),
            ));
        }
        if self.pad_token_id as usize >= self.text_vocab {
            return Err(bad(
                "pad_token_id",
                format!("{} is outside the vocabulary", self.pad_token_id),
            ));
        }
        Ok(())
    }

    /// Reads and validates a `config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let config: ImagineConfig =
            serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        config.validate(path)?;
        Ok(config)
    }
}
