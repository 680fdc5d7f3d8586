//! One training step, with the batch split into shards that run in parallel.
//!
//! Each shard builds its own graph through the towers on its slice of the batch. The
//! contrastive loss needs every pair of the whole batch, so it is computed once on the
//! gathered (detached) features; its gradient with respect to each shard's features is then
//! pushed back through that shard's graph, again in parallel, and the shards' parameter
//! gradients are summed. The result equals the gradient of the unsharded batch, while each
//! thread runs long single-threaded kernels instead of synchronising on every small op.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use rayon::prelude::*;

use super::loss::{contrastive_loss, pair_accuracy};
use super::optimizer::AdamW;
use super::parameters::Parameters;

/// A training batch: N images and their N captions.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Preprocessed pixels (N, 3, S, S).
    pub pixels: Tensor,
    /// Token ids of the captions, each row padded to the same length.
    pub ids: Vec<Vec<u32>>,
    /// `(caption, image)` rows whose caption is also true of the other image: left out
    /// of the loss's negatives ([`PairSource::also_true`](crate::data::PairSource::also_true)).
    pub also_true: Vec<(usize, usize)>,
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetrics {
    /// Contrastive loss of the batch before the update.
    pub loss: f32,
    /// Fraction of images and captions whose best match in the batch is their own pair.
    pub accuracy: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// exp(logit_scale) after the update.
    pub logit_scale: f32,
}

/// The loss of `batch`, its pair accuracy, and the gradient of the loss for every parameter,
/// computed on `shards` slices of the batch in parallel.
pub fn gradients(
    parameters: &Parameters,
    batch: &Batch,
    shards: usize,
) -> Result<(GradStore, f32, f32)> {
    let n = batch.ids.len();
    if n == 0 || batch.pixels.dim(0)? != n {
        candle_core::bail!("a batch needs as many images as captions, and at least one");
    }
    let network = parameters.network().map_err(candle_core::Error::wrap)?;
    let ranges = split(n, shards);
    // Forward: one graph per shard, each ending in that shard's image and text features.
    let features: Vec<(Tensor, Tensor)> = ranges
        .par_iter()
        .map(|&(start, len)| {
            let pixels = batch.pixels.narrow(0, start, len)?;
            Ok((
                network.image_features(&pixels)?,
                network.text_features(&batch.ids[start..start + len])?,
            ))
        })
        .collect::<Result<_>>()?;
    // The loss on the gathered features, as leaves of a small graph of their own.
    let gather = |pick: fn(&(Tensor, Tensor)) -> &Tensor| -> Result<Var> {
        let parts: Vec<Tensor> = features.iter().map(|f| pick(f).detach()).collect();
        Var::from_tensor(&Tensor::cat(&parts, 0)?)
    };
    let images = gather(|f| &f.0)?;
    let texts = gather(|f| &f.1)?;
    let out = contrastive_loss(
        images.as_tensor(),
        texts.as_tensor(),
        network.log_logit_scale(),
        &batch.also_true,
    )?;
    let mut grads = out.loss.backward()?;
    let missing = || candle_core::Error::Msg("the loss has no gradient for the features".into());
    let image_grad = grads.remove(images.as_tensor()).ok_or_else(missing)?;
    let text_grad = grads.remove(texts.as_tensor()).ok_or_else(missing)?;
    // Backward: each shard's features times their gradient, summed, has the shard's share of
    // the parameter gradients as its own gradient.
    let shard_grads: Vec<GradStore> = ranges
        .par_iter()
        .zip(&features)
        .map(|(&(start, len), (image_features, text_features))| {
            let surrogate = (image_features * image_grad.narrow(0, start, len)?)?
                .sum_all()?
                .add(&(text_features * text_grad.narrow(0, start, len)?)?.sum_all()?)?;
            surrogate.backward()
        })
        .collect::<Result<_>>()?;
    for var in parameters.vars().values() {
        let tensor = var.as_tensor();
        let mut total = grads.remove(tensor);
        for store in &shard_grads {
            if let Some(g) = store.get(tensor) {
                total = Some(match total {
                    Some(t) => (t + g)?,
                    None => g.clone(),
                });
            }
        }
        if let Some(total) = total {
            grads.insert(tensor, total);
        }
    }
    let loss = out.loss.to_scalar::<f32>()?;
    let accuracy = pair_accuracy(&out.logits_per_image)?;
    Ok((grads, loss, accuracy))
}

/// Computes the gradients of `batch` and applies one optimiser update with learning rate
/// `lr`, then clamps the logit scale.
pub fn train_step(
    parameters: &Parameters,
    optimizer: &mut AdamW,
    batch: &Batch,
    lr: f64,
    shards: usize,
) -> Result<StepMetrics> {
    let (grads, loss, accuracy) = gradients(parameters, batch, shards)?;
    let report = optimizer.step(&grads, lr)?;
    parameters.clamp_logit_scale()?;
    Ok(StepMetrics {
        loss,
        accuracy,
        grad_norm: report.grad_norm,
        logit_scale: parameters.logit_scale()?,
    })
}

/// `n` items cut into at most `shards` contiguous (start, len) ranges of near-equal size.
fn split(n: usize, shards: usize) -> Vec<(usize, usize)> {
    let shards = shards.clamp(1, n.max(1));
    let (base, extra) = (n / shards, n % shards);
    let mut start = 0;
    (0..shards)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = (start, len);
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(split(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(split(2, 4), vec![(0, 1), (1, 1)]);
        assert_eq!(split(5, 1), vec![(0, 5)]);
    }
}
