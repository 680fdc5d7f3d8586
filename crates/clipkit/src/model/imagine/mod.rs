//! A DALL·E-style text-to-image model: a decoder-only causal transformer over one stream of
//! caption tokens followed by the codes of a VQ model's latent grid, row by row, as
//! DALL·E 1 (at shapes-world scale). Caption ids are `0..text_vocab`; code `c` is stream id
//! `text_vocab + c`. One embedding table serves both, with learned positions; one output
//! layer predicts the next id, and its code columns alone are read for image positions (its
//! text columns for caption positions).
//!
//! A generator folder holds `config.json` ([`ImagineConfig`], naming the VQ model),
//! `model.safetensors` (names `wte`, `wpe`, `h.{i}.*`, `ln_f`, `lm_head`) and the caption
//! tokenizer's `tokenizer.json`.
//!
//! Shapes: B = batch, T = caption tokens, n = image codes, L = positions fed, V = text
//! vocabulary + codebook, C = hidden size.

mod block;
mod config;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Module, Result as CandleResult, Tensor};
use candle_nn::{embedding, linear_no_bias, Embedding, Linear, VarBuilder};

pub use block::{Block, KvCache};
pub use config::{ImagineConfig, ImagineSizes, VqIdentity, IMAGINE_MODEL_TYPE};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::model::cross_entropy;
use crate::model::layers::LayerNorm;
use crate::model_folder::atomic_dir::{replace_dir, sync_file, write_synced};
use crate::model_folder::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

/// The transformer.
#[derive(Debug, Clone)]
pub struct ImagineModel {
    config: ImagineConfig,
    wte: Embedding,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
}

/// The training objective of one batch.
#[derive(Debug, Clone)]
pub struct ImagineLoss {
    /// `image + text_weight · text`, the quantity minimised.
    pub total: Tensor,
    /// Mean cross-entropy of the image codes given everything before them.
    pub image: Tensor,
    /// Mean cross-entropy of the caption tokens after the start token.
    pub text: Tensor,
}

impl ImagineModel {
    /// Builds the model from `vb` (checkpoint names).
    pub fn new(vb: VarBuilder, config: &ImagineConfig) -> CandleResult<Self> {
        let (v, c) = (config.vocab_size(), config.hidden_size);
        Ok(ImagineModel {
            config: config.clone(),
            wte: embedding(v, c, vb.pp("wte"))?,
            wpe: vb.get((config.sequence_length(), c), "wpe.weight")?,
            blocks: (0..config.num_layers)
                .map(|i| Block::new(vb.pp(format!("h.{i}")), config))
                .collect::<CandleResult<_>>()?,
            ln_f: LayerNorm::new(vb.pp("ln_f"), c, config.layer_norm_eps)?,
            lm_head: linear_no_bias(c, v, vb.pp("lm_head"))?,
        })
    }

    /// Loads a generator folder's `config.json` and `model.safetensors` (every missing,
    /// mis-shaped or unexpected tensor is reported at once).
    pub fn load(dir: &Path) -> Result<Self> {
        let config = ImagineConfig::read(&dir.join(CONFIG_FILE))?;
        let checkpoint = Checkpoint::open_dir(dir)?;
        let model = ImagineModel::new(checkpoint.var_builder(), &config);
        checkpoint.finish()?;
        Ok(model?)
    }

    /// The architecture.
    pub fn config(&self) -> &ImagineConfig {
        &self.config
    }

    /// Fresh, empty caches, one per block.
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::default(); self.blocks.len()]
    }

    /// Logits (B, L, V) of the next id after each of `ids` (B, L) u32 stream ids. With
    /// `caches`, the ids continue the positions already cached, which are extended.
    pub fn forward(&self, ids: &Tensor, caches: Option<&mut [KvCache]>) -> CandleResult<Tensor> {
        let (b, l) = ids.dims2()?;
        let hidden = self.hidden(ids, caches)?;
        self.lm_head
            .forward(&hidden)?
            .reshape((b, l, self.config.vocab_size()))
    }

    /// The final hidden states (B·L, C), after `ln_f`, of `ids` (B, L): [`Self::forward`]
    /// before the output layer.
    fn hidden(&self, ids: &Tensor, caches: Option<&mut [KvCache]>) -> CandleResult<Tensor> {
        let (b, l) = ids.dims2()?;
        let past = caches
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, KvCache::len);
        if past + l > self.config.sequence_length() {
            candle_core::bail!(
                "{} positions exceed the model's stream of {}",
                past + l,
                self.config.sequence_length()
            );
        }
        let positions = self.wpe.narrow(0, past, l)?;
        let mut x = self
            .wte
            .forward(ids)?
            .broadcast_add(&positions)?
            .reshape((b * l, self.config.hidden_size))?;
        match caches {
            Some(caches) => {
                for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
                    x = block.forward(&x, b, Some(cache))?;
                }
            }
            None => {
                for block in &self.blocks {
                    x = block.forward(&x, b, None)?;
                }
            }
        }
        self.ln_f.forward(&x)
    }

    /// The stream (B, T + n) of captions `text` (B, T) and codes `codes` (B, n), both u32.
    pub fn stream(&self, text: &Tensor, codes: &Tensor) -> CandleResult<Tensor> {
        let offset = Tensor::full(self.config.text_vocab as u32, codes.shape(), codes.device())?;
        Tensor::cat(&[text, &codes.add(&offset)?], 1)
    }

    /// The training objective on captions `text` (B, T) and their images' codes `codes`
    /// (B, n): cross-entropy of each code over the code columns, and of each caption token
    /// after the first over the text columns (padding included, as the stream has a fixed
    /// length), combined as `image + text_weight · text`.
    pub fn loss(
        &self,
        text: &Tensor,
        codes: &Tensor,
        text_weight: f64,
    ) -> CandleResult<ImagineLoss> {
        let (b, t) = text.dims2()?;
        let n = self.config.image_tokens();
        let (tv, k) = (self.config.text_vocab, self.config.codebook_size);
        let stream = self.stream(text, codes)?;
        let l = t + n - 1;
        let hidden = self.hidden(&stream.narrow(1, 0, l)?, None)?.reshape((
            b,
            l,
            self.config.hidden_size,
        ))?;
        // Each position's logits over the columns it is scored on only: the code columns
        // of the output layer for image positions, the text columns for caption positions.
        let head = self.lm_head.weight(); // (V, C)
        let logits = |from: usize, len: usize, columns: usize, count: usize| {
            hidden
                .narrow(1, from, len)?
                .reshape((b * len, self.config.hidden_size))?
                .matmul(&head.narrow(0, columns, count)?.t()?)
        };
        let image = cross_entropy(&logits(t - 1, n, tv, k)?, &codes.flatten_all()?)?;
        let text_loss = cross_entropy(
            &logits(0, t - 1, 0, tv)?,
            &text.narrow(1, 1, t - 1)?.flatten_all()?,
        )?;
        let total = (&image + (&text_loss * text_weight)?)?;
        Ok(ImagineLoss {
            total,
            image,
            text: text_loss,
        })
    }
}

/// Writes a generator folder atomically: `config.json`, `model.safetensors` (f32) and the
/// caption tokenizer's `tokenizer.json` (bytes), plus `extra` files (name, bytes),
/// replacing any folder at `dir`.
pub fn write_generator_folder(
    dir: &Path,
    config: &ImagineConfig,
    tensors: &HashMap<String, Tensor>,
    tokenizer_json: &[u8],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    config.validate(&dir.join(CONFIG_FILE))?;
    let config_json =
        serde_json::to_vec_pretty(config).map_err(|e| Error::Training(e.to_string()))?;
    let tensors: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
        .collect::<CandleResult<_>>()?;
    replace_dir(dir, |staging| {
        write_synced(&staging.join(CONFIG_FILE), &config_json)?;
        write_synced(&staging.join(TOKENIZER_FILE), tokenizer_json)?;
        let weights = staging.join(WEIGHTS_FILE);
        candle_core::safetensors::save(&tensors, &weights)?;
        sync_file(&weights)?;
        for (name, bytes) in extra {
            write_synced(&staging.join(name), bytes)?;
        }
        Ok(())
    })
}
