//! `MidBlock`: the lowest-resolution stage of encoder and decoder — a residual block, an
//! optional self-attention block, a residual block (diffusers' `UNetMidBlock2D`; taming's
//! `mid.block_1`, `mid.attn_1`, `mid.block_2`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::AttentionBlock;
use super::resnet::ResnetBlock;

/// `resnets.0`, `attentions.0` (when configured), `resnets.1`, all at C channels.
#[derive(Debug, Clone)]
pub struct MidBlock {
    first: ResnetBlock,
    attention: Option<AttentionBlock>,
    second: ResnetBlock,
}

impl MidBlock {
    /// Loads the block under `vb` (`mid_block`).
    pub fn new(vb: VarBuilder, channels: usize, groups: usize, attention: bool) -> Result<Self> {
        Ok(MidBlock {
            first: ResnetBlock::new(vb.pp("resnets").pp("0"), channels, channels, groups)?,
            attention: if attention {
                Some(AttentionBlock::new(
                    vb.pp("attentions").pp("0"),
                    channels,
                    groups,
                )?)
            } else {
                None
            },
            second: ResnetBlock::new(vb.pp("resnets").pp("1"), channels, channels, groups)?,
        })
    }
}

impl Module for MidBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // (B, C, H, W) → (B, C, H, W)
        let mut h = self.first.forward(x)?;
        if let Some(attention) = &self.attention {
            h = attention.forward(&h)?;
        }
        self.second.forward(&h)
    }
}
