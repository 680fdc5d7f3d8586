//! `Encoder`: image → latent (diffusers' `Encoder` with `double_z = False`; taming's
//! `Encoder`).
//!
//! Shapes: B = batch, C = channels, H × W = image size, f = 2^(levels − 1),
//! Z = `latent_channels`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{VqConfig, ATTN_DOWN_BLOCK};
use super::conv::Conv;
use super::group_norm::GroupNorm;
use super::level::{Level, LevelShape};
use super::mid_block::MidBlock;
use super::resnet::{conv3x3, norm};
use super::sampling::Downsample;

/// One encoder level (`down_blocks.i`): residual blocks, each followed by attention in an
/// `AttnDownEncoderBlock2D`, then a downsampler unless it is the last level.
fn down_level(
    vb: VarBuilder,
    cfg: &VqConfig,
    level: usize,
    in_c: usize,
) -> Result<Level<Downsample>> {
    let out_c = cfg.block_out_channels[level];
    let last = level + 1 == cfg.block_out_channels.len();
    let downsample = if last {
        None
    } else {
        Some(Downsample::new(vb.pp("downsamplers").pp("0"), out_c)?)
    };
    let shape = LevelShape {
        in_c,
        out_c,
        blocks: cfg.layers_per_block,
        attention: cfg.down_block_types[level] == ATTN_DOWN_BLOCK,
        groups: cfg.norm_num_groups,
    };
    Level::new(&vb, shape, downsample)
}

/// `conv_in`, the levels `down_blocks.*`, `mid_block`, `conv_norm_out`, SiLU, `conv_out`.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv_in: Conv,
    levels: Vec<Level<Downsample>>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl Encoder {
    /// Loads the encoder under `vb` (`encoder`).
    pub fn new(vb: VarBuilder, cfg: &VqConfig) -> Result<Self> {
        let channels = &cfg.block_out_channels;
        let top = channels[channels.len() - 1];
        let conv_in = conv3x3(vb.pp("conv_in"), cfg.in_channels, channels[0])?;
        let mut levels = Vec::new();
        let mut in_c = channels[0];
        for (level, &out_c) in channels.iter().enumerate() {
            levels.push(down_level(
                vb.pp("down_blocks").pp(level),
                cfg,
                level,
                in_c,
            )?);
            in_c = out_c;
        }
        Ok(Encoder {
            conv_in,
            levels,
            mid: MidBlock::new(
                vb.pp("mid_block"),
                top,
                cfg.norm_num_groups,
                cfg.mid_block_add_attention,
            )?,
            norm_out: norm(vb.pp("conv_norm_out"), cfg.norm_num_groups, top)?,
            conv_out: conv3x3(vb.pp("conv_out"), top, cfg.latent_channels)?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, 3, H, W) → (B, Z, H/f, W/f)
        let mut h = self.conv_in.forward(x)?;
        for level in &self.levels {
            h = level.forward(&h)?;
        }
        let h = self.mid.forward(&h)?;
        let h = self.norm_out.forward_silu(&h)?;
        self.conv_out.forward(&h)
    }
}
