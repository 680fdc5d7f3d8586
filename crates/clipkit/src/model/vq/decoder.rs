//! `Decoder`: latent → image (diffusers' `Decoder` with group norm; taming's `Decoder`).
//!
//! Shapes: B = batch, C = channels, h × w = latent size, f = 2^(levels − 1),
//! Z = `latent_channels`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::AttentionBlock;
use super::config::{VqConfig, ATTN_UP_BLOCK};
use super::conv::Conv;
use super::group_norm::GroupNorm;
use super::mid_block::MidBlock;
use super::resnet::{conv3x3, norm, ResnetBlock};
use super::sampling::Upsample;

/// One decoder level (`up_blocks.k`, lowest resolution first): `layers_per_block + 1`
/// residual blocks, each followed by attention in an `AttnUpDecoderBlock2D`, then an
/// upsampler unless it is the last level.
#[derive(Debug, Clone)]
struct UpLevel {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<AttentionBlock>,
    upsample: Option<Upsample>,
}

impl UpLevel {
    fn new(vb: VarBuilder, cfg: &VqConfig, k: usize, in_c: usize) -> Result<Self> {
        let levels = cfg.block_out_channels.len();
        let out_c = cfg.block_out_channels[levels - 1 - k];
        let groups = cfg.norm_num_groups;
        let with_attention = cfg.up_block_types[k] == ATTN_UP_BLOCK;
        let mut resnets = Vec::new();
        let mut attentions = Vec::new();
        for j in 0..cfg.layers_per_block + 1 {
            let c = if j == 0 { in_c } else { out_c };
            resnets.push(ResnetBlock::new(vb.pp("resnets").pp(j), c, out_c, groups)?);
            if with_attention {
                attentions.push(AttentionBlock::new(
                    vb.pp("attentions").pp(j),
                    out_c,
                    groups,
                )?);
            }
        }
        let upsample = if k + 1 == levels {
            None
        } else {
            Some(Upsample::new(vb.pp("upsamplers").pp("0"), out_c)?)
        };
        Ok(UpLevel {
            resnets,
            attentions,
            upsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (j, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(&h)?;
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(&h)?;
            }
        }
        match &self.upsample {
            Some(up) => up.forward(&h),
            None => Ok(h),
        }
    }
}

/// `conv_in`, `mid_block`, the levels `up_blocks.*`, `conv_norm_out`, SiLU, `conv_out`.
#[derive(Debug, Clone)]
pub struct Decoder {
    conv_in: Conv,
    mid: MidBlock,
    levels: Vec<UpLevel>,
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
            levels.push(UpLevel::new(vb.pp("up_blocks").pp(k), cfg, k, in_c)?);
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
