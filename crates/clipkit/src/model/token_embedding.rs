//! The text tower's token embedding: a tensor (differentiable, for training), or rows mapped
//! from a [`super::PackedCache`] file, read in place.

use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::tensor_name;
use super::load_options::LoadOptions;
use super::packed_cache::MappedF32;

/// A (vocabulary, C) table of token vectors.
#[derive(Debug, Clone)]
pub(super) enum TokenEmbedding {
    /// Read from the checkpoint into memory.
    Tensor(Tensor),
    /// Mapped from a packed-weight cache file.
    Mapped { rows: MappedF32, dim: usize },
}

impl TokenEmbedding {
    /// Loads `weight` (vocab, dim) under `vb`: mapped when the options' packed-weight cache
    /// has it for this load, else read (and recorded for the cache).
    pub(super) fn new(
        vb: VarBuilder,
        vocab: usize,
        dim: usize,
        options: LoadOptions,
    ) -> Result<Self> {
        let Some(cache) = options.packed_cache else {
            return Ok(TokenEmbedding::Tensor(vb.get((vocab, dim), "weight")?));
        };
        let key = tensor_name(&vb, "weight");
        if let Some(rows) = cache.lookup_rows(&key, vocab, dim) {
            return Ok(TokenEmbedding::Mapped { rows, dim });
        }
        let table = vb.get((vocab, dim), "weight")?;
        cache.record_rows(&key, &table);
        Ok(TokenEmbedding::Tensor(table))
    }

    /// The vectors of `ids` (each below the vocabulary size), as (B, T, C) for `(b, t)`.
    pub(super) fn forward(&self, ids: &[u32], (b, t): (usize, usize)) -> Result<Tensor> {
        match self {
            TokenEmbedding::Tensor(table) => {
                let ids = Tensor::from_slice(ids, ids.len(), table.device())?;
                let dim = table.dim(1)?;
                table.index_select(&ids, 0)?.reshape((b, t, dim))
            }
            TokenEmbedding::Mapped { rows, dim } => {
                let table = rows.values();
                let mut out = Vec::with_capacity(ids.len() * dim);
                for &id in ids {
                    let start = id as usize * dim;
                    let row = table.get(start..start + dim).ok_or_else(|| {
                        candle_core::Error::Msg(format!("token id {id} is outside the table"))
                    })?;
                    out.extend_from_slice(row);
                }
                Tensor::from_vec(out, (b, t, *dim), &Device::Cpu)
            }
        }
    }
}
