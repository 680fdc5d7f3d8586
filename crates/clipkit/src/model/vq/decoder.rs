//! `Decoder`: latent → image (diffusers' `Decoder` with group norm; taming's `Decoder`).
//!
//! Shapes: B = batch, C = channels, h × w = latent size, f = 2^(levels − 1),
//! Z = `latent_channels`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{VqConfig, ATTN_UP_BLOCK};
use super::conv::Conv;
use super::group_norm::GroupNorm;
use super::level::{Level, LevelShape};
use super::mid_block::MidBlock;
use super::resnet::{conv3x3, norm};
use super::sampling::Upsample;

/// One decoder level (`up_blocks.k`, lowest resolution first): `layers_per_block + 1`
/// residual blocks, each followed by attention in an `AttnUpDecoderBlock2D`, then an
/// upsampler unless it is the last level.
fn up_level(vb: VarBuilder, cfg: &VqConfig, k: usize, in_c: usize) -> Result<Level<Upsample>> {
    let levels = cfg.block_out_channels.len();
    let out_c = cfg.block_out_channels[levels - 1 - k];
    let upsample = if k + 1 == levels {
        None
    } else {
        Some(Upsample::new(vb.pp("upsamplers").pp("0"), out_c)?)
    };
    let shape = LevelShape {
        in_c,
        out_c,
        blocks: cfg.layers_per_block + 1,
        attention: cfg.up_block_types[k] == ATTN_UP_BLOCK,
        groups: cfg.norm_num_groups,
    };
    Level::new(&vb, shape, upsample)
}

/// `conv_in`, `mid_block`, the levels `up_blocks.*`, `conv_norm_out`, SiLU, `conv_out`.
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv,
    mid: MidBlock,
    levels: Vec<Level<Upsample>>,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl Decoder {
    /// Loads the decoder under `vb` (`decoder`).
    pub fn new(vb: VarBuilder, cfg: &VqConfig) -> Result<Self> {
        let channels = &cfg.block_out_channels;
        let top = channels[channels.len() - 1];
        let mut levels = Vec::new();
        let mut in_c = top;
        for k in 0..channels.len() {
            levels.push(up_level(vb.pp("up_blocks").pp(k), cfg, k, in_c)?);
            in_c = channels[channels.len() - 1 - k];
        }
        Ok(Decoder {
            conv_in: conv3x3(vb.pp("conv_in"), cfg.latent_channels, top)?,
            mid: MidBlock::new(
                vb.pp("mid_block"),
                top,
                cfg.norm_num_groups,
                cfg.mid_block_add_attention,
            )?,
            levels,
            norm_out: norm(vb.pp("conv_norm_out"), cfg.norm_num_groups, channels[0])?,
            conv_out: conv3x3(vb.pp("conv_out"), channels[0], cfg.out_channels)?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        // (B, Z, h, w) → (B, 3, h·f, w·f)
        let h = self.conv_in.forward(z)?;
        let mut h = self.mid.forward(&h)?;
        for level in &self.levels {
            h = level.forward(&h)?;
        }
        let h = self.norm_out.forward_silu(&h)?;
        self.conv_out.forward(&h)
    }
}
