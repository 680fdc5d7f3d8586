//! The training pairs of the text-to-image transformer: a fixed pool of shapes-world images
//! encoded once by the frozen VQ model (cached as `codes.safetensors` in the run folder),
//! each with every phrasing of its caption, tokenised and padded to the stream's caption
//! length.
//!
//! Shapes: M = images in the pool, n = codes per image, T = caption tokens, B = batch.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::shapes::{ShapesConfig, ShapesWorld, Split};
use crate::error::{Error, Result};
use crate::model::vq::VqModel;
use crate::model_folder::atomic_dir::write_synced;
use crate::tokenizer::ClipTokenizer;
use crate::train::vq::images_tensor;
use crate::train::SampleOrder;

/// Images encoded per VQ forward pass.
const ENCODE_BATCH: usize = 32;

/// The metadata key of the code cache naming what it was made from.
const POOL_KEY: &str = "clipkit_code_pool";

/// The codes in `cache` if it exists and was made as `identity` says.
fn read_cached_codes(cache: &Path, identity: &str) -> Result<Option<Tensor>> {
    if !cache.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(cache).map_err(|e| Error::io(cache, e))?;
    let corrupt = |message: String| Error::CorruptCheckpoint {
        path: cache.to_path_buf(),
        message,
    };
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let same = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(POOL_KEY))
        .is_some_and(|made| made == identity);
    if !same {
        return Ok(None);
    }
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(tensors.remove("codes"))
}

/// The pool: codes and tokenised captions.
pub struct CodePool {
    /// (M, n) u32.
    codes: Tensor,
    /// Per image, every phrasing as T ids.
    captions: Vec<Vec<Vec<u32>>>,
    /// The empty caption (start, end, padding): what classifier-free guidance conditions on
    /// when the caption is dropped.
    empty: Vec<u32>,
}

/// Tokenises `text` to exactly `length` ids, padding with `pad`; too long a text keeps its
/// first tokens and its end token.
pub fn caption_ids(
    tokenizer: &ClipTokenizer,
    text: &str,
    length: usize,
    pad: u32,
) -> Result<Vec<u32>> {
    let mut ids = tokenizer.encode(text)?.ids;
    if ids.len() > length {
        let end = ids[ids.len() - 1];
        ids.truncate(length - 1);
        ids.push(end);
    }
    ids.resize(length, pad);
    Ok(ids)
}

impl CodePool {
    /// The pool of the `count` first training images of the shapes world of `seed` at
    /// `image_size`, read from `cache` when it holds them (made by the same VQ weights, read
    /// from `vq_dir`, with the same seed, size and count) and encoded (and cached) otherwise;
    /// `progress(done, count)` follows the encoding.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        vq: &VqModel,
        vq_dir: &Path,
        tokenizer: &ClipTokenizer,
        text_length: usize,
        pad: u32,
        count: usize,
        image_size: u32,
        seed: u64,
        cache: &Path,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let world = ShapesWorld::new(ShapesConfig {
            image_size,
            seed,
            split: Split::Train,
            ..ShapesConfig::default()
        })?;
        let (_, h, w) = vq.latent_shape(image_size as usize, image_size as usize)?;
        // The cache names what it was made from; another VQ model, seed, size or count
        // re-encodes.
        let identity = format!(
            "{}/{seed}/{image_size}/{count}",
            crate::model::imagine::VqIdentity::of(vq_dir)?.weights_blake3
        );
        let cached = read_cached_codes(cache, &identity)?.filter(|c| c.dims() == [count, h * w]);
        let codes = match cached {
            Some(codes) => codes,
            None => {
                let mut parts = Vec::new();
                for first in (0..count).step_by(ENCODE_BATCH) {
                    let end = (first + ENCODE_BATCH).min(count);
                    let images: Vec<_> =
                        (first..end).map(|i| world.sample(i as u64).image).collect();
                    let latents = vq.encode(&images_tensor(&images)?)?;
                    let indices = vq.quantize(&latents)?.indices; // (b, h, w)
                    parts.push(indices.flatten_from(1)?);
                    progress(end, count);
                }
                let codes = Tensor::cat(&parts, 0)?;
                let metadata = std::collections::HashMap::from([(POOL_KEY.to_string(), identity)]);
                let bytes = safetensors::serialize([("codes", &codes)], Some(metadata))
                    .map_err(|e| Error::Training(format!("code cache: {e}")))?;
                write_synced(cache, &bytes)?;
                codes
            }
        };
        // Rendering each scene and tokenising its phrasings took seconds at start-up on one
        // core.
        let captions = (0..count)
            .into_par_iter()
            .map(|i| {
                world
                    .sample(i as u64)
                    .captions
                    .iter()
                    .map(|c| caption_ids(tokenizer, c, text_length, pad))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let empty = caption_ids(tokenizer, "", text_length, pad)?;
        Ok(CodePool {
            codes,
            captions,
            empty,
        })
    }

    /// The batch of `step`: captions (B, T) and codes (B, n), both u32. Images come in
    /// [`SampleOrder`]'s seeded epochs; each takes one of its phrasings at random, and with
    /// chance `drop_caption` the empty caption instead, every draw seeded by `seed` and the
    /// step (so a resumed run sees the same batches).
    pub fn batch(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        drop_caption: f64,
    ) -> Result<(Tensor, Tensor)> {
        let order = SampleOrder {
            seed,
            batch_size,
            family: 1,
        };
        let indices = order.indices(step, self.captions.len(), &mut None);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x2545_f491));
        let mut text = Vec::with_capacity(batch_size * self.empty.len());
        for &i in &indices {
            let phrasings = &self.captions[i];
            let pick = &phrasings[rng.random_range(0..phrasings.len())];
            let dropped = drop_caption > 0.0 && rng.random_bool(drop_caption);
            text.extend_from_slice(if dropped { &self.empty } else { pick });
        }
        let text = Tensor::from_vec(text, (batch_size, self.empty.len()), &Device::Cpu)?;
        let rows = Tensor::from_vec(
            indices.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            batch_size,
            &Device::Cpu,
        )?;
        Ok((text, self.codes.index_select(&rows, 0)?))
    }
}
