//! The causal text transformer (`text_model.*` in the checkpoint).

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::encoder::{Encoder, EncoderShape};
use super::layers::LayerNorm;
use super::load_options::LoadOptions;
use super::token_embedding::TokenEmbedding;
use crate::config::{TextConfig, TextPooling};

/// Token and position embeddings, a causally masked encoder and the final norm, pooled at
/// the end-of-text token the way transformers does it.
#[derive(Debug, Clone)]
pub struct TextTower {
    token_embedding: TokenEmbedding,
    /// (context, C)
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    config: TextConfig,
}

impl TextTower {
    /// Loads the tower from `vb` (pointing at `text_model`).
    pub fn new(vb: VarBuilder, config: &TextConfig, options: LoadOptions) -> Result<Self> {
        let c = config.hidden_size;
        let emb = vb.pp("embeddings");
        let shape = EncoderShape {
            hidden: c,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            activation: config.hidden_act,
            eps: config.layer_norm_eps,
        };
        Ok(TextTower {
            token_embedding: TokenEmbedding::new(
                emb.pp("token_embedding"),
                config.vocab_size,
                c,
                options,
            )?,
            position_embedding: emb.get(
                (config.max_position_embeddings, c),
                "position_embedding.weight",
            )?,
            encoder: Encoder::new(vb.pp("encoder"), &shape, options)?,
            final_layer_norm: LayerNorm::new(vb.pp("final_layer_norm"), c, config.layer_norm_eps)?,
            config: config.clone(),
        })
    }

    /// ids: rows of token ids, all of one length T ≤ context (padded after the end token) →
    /// pooled state (B, C).
    ///
    /// Because attention is causal, padding after the pooled position never changes the
    /// result, so callers may pad a batch to its longest text rather than to the context.
    pub fn forward(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || ids.iter().any(|row| row.len() != t) {
            candle_core::bail!("text batch must be non-empty rows of equal length");
        }
        if t > self.config.max_position_embeddings {
            candle_core::bail!(
                "{t} tokens exceed the context length {}",
                self.config.max_position_embeddings
            );
        }
        if let Some(bad) = ids
            .iter()
            .flatten()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            candle_core::bail!(
                "token id {bad} is outside the vocabulary of {}",
                self.config.vocab_size
            );
        }
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let tokens = self.token_embedding.forward(&flat, (b, t))?; // (B, T, C)
        let tokens = tokens.broadcast_add(&self.position_embedding.narrow(0, 0, t)?)?;
        let hidden = self.encoder.forward(&tokens, true)?;
        let hidden = self.final_layer_norm.forward(&hidden)?; // (B, T, C)
        let positions: Vec<u32> = ids
            .iter()
            .map(|row| pooled_position(row, self.config.pooling()) as u32)
            .collect();
        let c = self.config.hidden_size;
        let rows = hidden.reshape((b * t, c))?;
        let index: Vec<u32> = positions
            .iter()
            .enumerate()
            .map(|(i, &p)| i as u32 * t as u32 + p)
            .collect();
        rows.index_select(&Tensor::from_vec(index, b, &Device::Cpu)?, 0) // (B, C)
    }
}

/// Where transformers reads the text embedding: the first end-of-text id, or for legacy
/// configs the first position of the largest id (torch's argmax picks the first maximum).
pub fn pooled_position(ids: &[u32], pooling: TextPooling) -> usize {
    match pooling {
        TextPooling::FirstEos(eos) => ids.iter().position(|&id| id == eos).unwrap_or(0),
        TextPooling::ArgmaxId => {
            let mut best = 0;
            for (i, &id) in ids.iter().enumerate() {
                if id > ids[best] {
                    best = i;
                }
            }
            best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_follows_transformers() {
        assert_eq!(
            pooled_position(&[49406, 320, 49407, 49407], TextPooling::FirstEos(49407)),
            2
        );
        assert_eq!(
            pooled_position(&[49406, 320, 5], TextPooling::FirstEos(49407)),
            0
        );
        assert_eq!(
            pooled_position(&[49406, 320, 49407, 49407], TextPooling::ArgmaxId),
            2
        );
    }
}
