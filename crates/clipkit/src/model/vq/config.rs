//! `VqConfig`: a typed mirror of the `config.json` that diffusers writes for a `VQModel`.
//!
//! Field names and defaults are diffusers' (`VQModel.__init__`), so its folders load here and
//! the folders clipkit writes load in diffusers. What clipkit does not implement (another
//! activation, the `spatial` norm of MoVQ, codebook look-up decoding) is refused at load with
//! an error naming the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The class name diffusers records in `config.json` for this architecture.
pub const VQ_CLASS_NAME: &str = "VQModel";
/// An encoder level without attention.
pub const DOWN_BLOCK: &str = "DownEncoderBlock2D";
/// An encoder level with a self-attention block after each residual block.
pub const ATTN_DOWN_BLOCK: &str = "AttnDownEncoderBlock2D";
/// A decoder level without attention.
pub const UP_BLOCK: &str = "UpDecoderBlock2D";
/// A decoder level with a self-attention block after each residual block.
pub const ATTN_UP_BLOCK: &str = "AttnUpDecoderBlock2D";

/// The architecture of a VQ autoencoder, as diffusers' `VQModel` config.
///
/// Level `i` of the encoder has `block_out_channels[i]` channels and halves the resolution
/// after its blocks unless it is the last; the decoder mirrors it (`up_block_types[0]` is
/// the lowest resolution), so an image of side S has a latent of side
/// S / 2^(levels − 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqConfig {
    /// Always `"VQModel"`; another value means a folder of another architecture.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// The diffusers version that wrote the file (informational).
    #[serde(rename = "_diffusers_version", default = "default_version")]
    pub diffusers_version: String,
    /// Where diffusers loaded the model from (informational; not written by clipkit).
    #[serde(rename = "_name_or_path", default, skip_serializing)]
    pub name_or_path: Option<String>,
    /// Image channels in (3).
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out (3).
    #[serde(default = "three")]
    pub out_channels: usize,
    /// One entry per encoder level: `DownEncoderBlock2D` or `AttnDownEncoderBlock2D`.
    #[serde(default = "default_down")]
    pub down_block_types: Vec<String>,
    /// One entry per decoder level, lowest resolution first: `UpDecoderBlock2D` or
    /// `AttnUpDecoderBlock2D`.
    #[serde(default = "default_up")]
    pub up_block_types: Vec<String>,
    /// Channels of each level, highest resolution first.
    #[serde(default = "default_channels")]
    pub block_out_channels: Vec<usize>,
    /// Residual blocks per encoder level (the decoder has one more per level).
    #[serde(default = "one")]
    pub layers_per_block: usize,
    /// Activation; only `silu` is implemented.
    #[serde(default = "default_act")]
    pub act_fn: String,
    /// Channels of the encoder output and decoder input (taming's `z_channels`).
    #[serde(default = "three")]
    pub latent_channels: usize,
    /// The image side the model was trained at (informational).
    #[serde(default = "default_sample_size")]
    pub sample_size: usize,
    /// Codebook size (taming's `n_embed`).
    #[serde(default = "default_codes")]
    pub num_vq_embeddings: usize,
    /// Groups of every group norm.
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    /// Width of a code (taming's `embed_dim`); `None` means `latent_channels`.
    #[serde(default)]
    pub vq_embed_dim: Option<usize>,
    /// The latent scaling factor latent-diffusion pipelines apply (unused by the autoencoder).
    #[serde(default = "default_scaling")]
    pub scaling_factor: f64,
    /// `group` (implemented) or `spatial` (MoVQ; refused).
    #[serde(default = "default_norm_type")]
    pub norm_type: String,
    /// Whether the middle blocks of encoder and decoder have self-attention.
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    /// Decoding from code indices (refused: clipkit decodes latents).
    #[serde(default)]
    pub lookup_from_codebook: bool,
    /// Whether pipelines upcast to f32 (clipkit always computes in f32).
    #[serde(default)]
    pub force_upcast: bool,
}

fn default_version() -> String {
    "0.42.1".into()
}
fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_down() -> Vec<String> {
    vec![DOWN_BLOCK.into()]
}
fn default_up() -> Vec<String> {
    vec![UP_BLOCK.into()]
}
fn default_channels() -> Vec<usize> {
    vec![64]
}
fn default_act() -> String {
    "silu".into()
}
fn default_sample_size() -> usize {
    32
}
fn default_codes() -> usize {
    256
}
fn default_groups() -> usize {
    32
}
fn default_scaling() -> f64 {
    0.18215
}
fn default_norm_type() -> String {
    "group".into()
}

impl VqConfig {
    /// Parses and validates a `config.json` text; `path` is used in error messages only.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        // Read the class name first, so another architecture's folder gets that message
        // rather than one about the first field `VqConfig` does not know.
        #[derive(Deserialize)]
        struct ClassOnly {
            #[serde(rename = "_class_name")]
            class_name: Option<String>,
        }
        let class: ClassOnly = serde_json::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            field: "(top level)".into(),
            message: e.to_string(),
        })?;
        match class.class_name.as_deref() {
            Some(VQ_CLASS_NAME) => {}
            other => {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    field: "_class_name".into(),
                    message: format!(
                        "{} is not a VQ autoencoder; expected a diffusers `{VQ_CLASS_NAME}` folder",
                        other.map_or("a missing class name".to_string(), |c| format!("`{c}`"))
                    ),
                })
            }
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: VqConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            Error::Config {
                path: path.to_path_buf(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// `config.json` as diffusers writes it; [`VqConfig::from_json`] reads it back unchanged.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("VQ config: {e}")))
    }

    /// Width of one code: `vq_embed_dim`, or `latent_channels` when unset.
    pub fn code_dim(&self) -> usize {
        self.vq_embed_dim.unwrap_or(self.latent_channels)
    }

    /// How many times smaller the latent is than the image on each side: 2^(levels − 1).
    pub fn downscale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }

    /// Checks what the network needs: consistent level lists, channels divisible by the
    /// group count, and only the variants clipkit implements.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let fail = |field: &str, message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                field: field.into(),
                message,
            })
        };
        if self.class_name != VQ_CLASS_NAME {
            return fail(
                "_class_name",
                format!("`{}` is not `{VQ_CLASS_NAME}`", self.class_name),
            );
        }
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return fail("block_out_channels", "needs at least one level".into());
        }
        if self.down_block_types.len() != levels {
            return fail(
                "down_block_types",
                format!(
                    "{} entries for {levels} levels",
                    self.down_block_types.len()
                ),
            );
        }
        if self.up_block_types.len() != levels {
            return fail(
                "up_block_types",
                format!("{} entries for {levels} levels", self.up_block_types.len()),
            );
        }
        for (i, t) in self.down_block_types.iter().enumerate() {
            if t != DOWN_BLOCK && t != ATTN_DOWN_BLOCK {
                return fail(
                    &format!("down_block_types[{i}]"),
                    format!("`{t}` is not {DOWN_BLOCK} or {ATTN_DOWN_BLOCK}"),
                );
            }
        }
        for (i, t) in self.up_block_types.iter().enumerate() {
            if t != UP_BLOCK && t != ATTN_UP_BLOCK {
                return fail(
                    &format!("up_block_types[{i}]"),
                    format!("`{t}` is not {UP_BLOCK} or {ATTN_UP_BLOCK}"),
                );
            }
        }
        if self.act_fn != "silu" {
            return fail(
                "act_fn",
                format!("`{}` is not implemented (only `silu`)", self.act_fn),
            );
        }
        if self.norm_type != "group" {
            return fail(
                "norm_type",
                format!(
                    "`{}` is not implemented (only `group`; `spatial` is MoVQ)",
                    self.norm_type
                ),
            );
        }
        if self.lookup_from_codebook {
            return fail(
                "lookup_from_codebook",
                "decoding from code indices is not implemented".into(),
            );
        }
        let groups = self.norm_num_groups;
        if groups == 0 {
            return fail("norm_num_groups", "must be at least 1".into());
        }
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c == 0 || c % groups != 0 {
                return fail(
                    &format!("block_out_channels[{i}]"),
                    format!(
                        "{c} channels are not a positive multiple of norm_num_groups = {groups}"
                    ),
                );
            }
        }
        for (field, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("num_vq_embeddings", self.num_vq_embeddings),
            ("vq_embed_dim", self.code_dim()),
        ] {
            if value == 0 {
                return fail(field, "must be at least 1".into());
            }
        }
        Ok(())
    }
}
