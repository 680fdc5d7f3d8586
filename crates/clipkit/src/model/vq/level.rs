//! One resolution level of the VQ encoder or decoder (diffusers' `DownEncoderBlock2D` /
//! `UpDecoderBlock2D` and their `Attn…` variants): residual blocks, each followed by
//! attention when the level has it, then a resampler unless it is the last level.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::AttentionBlock;
use super::resnet::ResnetBlock;

/// What a level is made of: `blocks` residual blocks from `in_c` to `out_c` channels
/// (the first changes the width), with attention after each when `attention`.
pub(super) struct LevelShape {
    pub in_c: usize,
    pub out_c: usize,
    pub blocks: usize,
    pub attention: bool,
    pub groups: usize,
}

/// A level whose resampler `S` (a downsampler in the encoder, an upsampler in the
/// decoder) runs last.
#[derive(Debug, Clone)]
pub(super) struct Level<S> {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<AttentionBlock>,
    resample: Option<S>,
}

impl<S: Module> Level<S> {
    /// Loads `resnets.j` and `attentions.j` under `vb`; `resample` is loaded by the caller
    /// (its weights sit under a name of its own: `downsamplers.0`, `upsamplers.0`).
    pub(super) fn new(vb: &VarBuilder, shape: LevelShape, resample: Option<S>) -> Result<Self> {
        let mut resnets = Vec::with_capacity(shape.blocks);
        let mut attentions = Vec::new();
        for j in 0..shape.blocks {
            let c = if j == 0 { shape.in_c } else { shape.out_c };
            let groups = shape.groups;
            resnets.push(ResnetBlock::new(
                vb.pp("resnets").pp(j),
                c,
                shape.out_c,
                groups,
            )?);
            if shape.attention {
                let vb = vb.pp("attentions").pp(j);
                attentions.push(AttentionBlock::new(vb, shape.out_c, groups)?);
            }
        }
        Ok(Level {
            resnets,
            attentions,
            resample,
        })
    }
}

impl<S: Module> Module for Level<S> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (j, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(&h)?;
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(&h)?;
            }
        }
        match &self.resample {
            Some(resample) => resample.forward(&h),
            None => Ok(h),
        }
    }
}
