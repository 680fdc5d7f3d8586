//! Batches for the training loop, prepared on a background thread while the previous batch
//! trains: samples drawn in a seeded order, decoded and preprocessed in parallel, captions
//! tokenised. Bad samples are skipped and counted, never fatal.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use rayon::prelude::*;

use super::step::Batch;
use crate::data::PairSource;
use crate::error::{Error, Result};
use crate::image::PreprocessConfig;
use crate::tokenizer::ClipTokenizer;

/// Batches prepared ahead of the training loop.
const PREFETCH: usize = 2;

/// Which samples make up each step's batch: a fresh seeded permutation of the source's
/// families ([`PairSource::family_len`] consecutive indices, kept in order) each epoch,
/// cut into consecutive batches. Depends only on the step, so a resumed run sees exactly
/// the batches the interrupted one would have.
#[derive(Debug, Clone, Copy)]
pub struct SampleOrder {
    /// Seed of the permutations.
    pub seed: u64,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Consecutive indices shuffled as one (1: every sample on its own).
    pub family: usize,
}

impl SampleOrder {
    /// Source indices of the batch of `step`.
    pub(crate) fn indices(
        &self,
        step: usize,
        len: usize,
        cache: &mut Option<(usize, Vec<usize>)>,
    ) -> Vec<usize> {
        let first = step * self.batch_size;
        (first..first + self.batch_size)
            .map(|position| {
                let (epoch, offset) = (position / len, position % len);
                if cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    *cache = Some((epoch, self.permutation(epoch, len)));
                }
                cache.as_ref().map_or(offset, |(_, order)| order[offset])
            })
            .collect()
    }

    /// The order of `0..len` in `epoch`: families shuffled, members in order.
    fn permutation(&self, epoch: usize, len: usize) -> Vec<usize> {
        let family = self.family.max(1);
        let mut families: Vec<usize> = (0..len.div_ceil(family)).collect();
        families.shuffle(&mut StdRng::seed_from_u64(self.seed ^ epoch as u64));
        families
            .into_iter()
            .flat_map(|f| f * family..((f + 1) * family).min(len))
            .collect()
    }
}

/// A prepared batch and what was left out of it.
pub struct LoadedBatch {
    /// The step it belongs to.
    pub step: usize,
    /// The batch (smaller than asked when samples were skipped).
    pub batch: Batch,
    /// Samples skipped because they could not be read.
    pub skipped: Vec<String>,
}

/// What the loader needs to turn pairs into model inputs.
pub struct Preparation {
    /// Image preprocessing of the model being trained.
    pub preprocess: PreprocessConfig,
    /// Tokenizer of the model being trained.
    pub tokenizer: ClipTokenizer,
}

/// A background thread producing the batches of steps `first..end` in order.
pub struct BatchLoader {
    receiver: Receiver<Result<LoadedBatch>>,
    _worker: JoinHandle<()>,
}

impl BatchLoader {
    /// Starts preparing batches of `source` for steps `first..end`.
    pub fn spawn(
        source: Arc<dyn PairSource>,
        preparation: Arc<Preparation>,
        order: SampleOrder,
        first: usize,
        end: usize,
    ) -> Result<Self> {
        let len = source.len();
        if len == 0 {
            return Err(Error::Training(format!(
                "{} holds no samples",
                source.describe()
            )));
        }
        let (sender, receiver) = sync_channel(PREFETCH);
        let worker = std::thread::spawn(move || {
            let mut cache = None;
            for step in first..end {
                let indices = order.indices(step, len, &mut cache);
                let loaded =
                    load(&*source, &preparation, &indices).map(|(batch, skipped)| LoadedBatch {
                        step,
                        batch,
                        skipped,
                    });
                if sender.send(loaded).is_err() {
                    return; // The training loop has stopped.
                }
            }
        });
        Ok(BatchLoader {
            receiver,
            _worker: worker,
        })
    }

    /// The next batch, in step order; `None` after the last.
    pub fn next_batch(&self) -> Option<Result<LoadedBatch>> {
        self.receiver.recv().ok()
    }
}

/// One sample as model inputs: pixels (3·S·S) and token ids.
type Prepared = (Vec<f32>, Vec<u32>);

fn load(
    source: &dyn PairSource,
    preparation: &Preparation,
    indices: &[usize],
) -> Result<(Batch, Vec<String>)> {
    let prepared: Vec<std::result::Result<Prepared, String>> = indices
        .par_iter()
        .map(|&index| {
            let pair = source
                .get(index)
                .map_err(|e| format!("sample {index}: {e}"))?;
            let (pixels, _, _) = preparation
                .preprocess
                .apply(&pair.image)
                .map_err(|e| format!("sample {index}: {e}"))?;
            let ids = preparation
                .tokenizer
                .encode(&pair.caption)
                .map_err(|e| format!("sample {index}: {e}"))?
                .ids;
            Ok((pixels, ids))
        })
        .collect();
    let mut skipped = Vec::new();
    let mut pixels = Vec::new();
    let mut rows = Vec::new();
    let mut kept = Vec::new();
    for (item, &index) in prepared.into_iter().zip(indices) {
        match item {
            Ok((p, ids)) => {
                pixels.extend_from_slice(&p);
                rows.push(ids);
                kept.push(index);
            }
            Err(message) => skipped.push(message),
        }
    }
    let n = rows.len();
    if n < 2 {
        return Err(Error::Training(format!(
            "fewer than two readable samples in a batch; the last problems: {}",
            skipped.join("; ")
        )));
    }
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    for row in &mut rows {
        // Causal attention and pooling at the end token make the padding value irrelevant.
        row.resize(longest, 0);
    }
    let per_image = pixels.len() / n;
    let side = ((per_image / 3) as f64).sqrt() as usize;
    let pixels = Tensor::from_vec(pixels, (n, 3, side, side), &Device::Cpu)?;
    let batch = Batch {
        pixels,
        ids: rows,
        also_true: source.also_true(&kept),
    };
    Ok((batch, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_permutation_per_epoch_and_depends_only_on_the_step() {
        let order = SampleOrder {
            seed: 3,
            batch_size: 4,
            family: 1,
        };
        let mut cache = None;
        let mut epoch: Vec<usize> = (0..3)
            .flat_map(|step| order.indices(step, 12, &mut cache))
            .collect();
        epoch.sort_unstable();
        assert_eq!(epoch, (0..12).collect::<Vec<_>>());
        let again = order.indices(4, 12, &mut None);
        assert_eq!(again, order.indices(4, 12, &mut cache));
        assert_ne!(
            order.indices(0, 12, &mut None),
            order.indices(3, 12, &mut None)
        );
    }

    #[test]
    fn families_stay_together_and_in_order() {
        let order = SampleOrder {
            seed: 5,
            batch_size: 6,
            family: 3,
        };
        let mut cache = None;
        let epoch: Vec<usize> = (0..4)
            .flat_map(|step| order.indices(step, 22, &mut cache))
            .take(22)
            .collect();
        let mut sorted = epoch.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..22).collect::<Vec<_>>());
        // Every family of three starts at a multiple of three and runs on in order; the
        // last one (21) is cut short by the end of the source.
        let mut at = 0;
        while at < epoch.len() {
            let first = epoch[at];
            assert_eq!(first % 3, 0, "{epoch:?}");
            let members = (first..(first + 3).min(22)).collect::<Vec<_>>();
            assert_eq!(&epoch[at..at + members.len()], &members[..], "{epoch:?}");
            at += members.len();
        }
        assert_ne!(epoch[..6], [0, 1, 2, 3, 4, 5], "shuffled");
    }
}
