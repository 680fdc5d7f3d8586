//! Softmax cross-entropy of logit rows against class indices as one op with its own backward
//! pass. candle_nn's composite (max, subtract, exp, sum, log, subtract, gather, mean) keeps
//! a tensor of the logits' size per step and takes a generic backward through each; here the
//! forward keeps nothing but the per-row losses and the backward recomputes the softmax.
//!
//! Shapes: N = rows, K = classes.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::compiled_per_kernel;
use super::ops::{contiguous_f32, exp_fast, fused_ok, lanes_max, lanes_sum, rows_per_task};

/// Mean over rows of `logsumexp(logits_i) − logits_i[targets_i]`, for logits (N, K) and
/// targets (N) u32 class indices: the value and gradient of candle_nn's `cross_entropy`,
/// through one fused op on f32 CPU tensors (the composite elsewhere).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if fused_ok(&[logits]) && targets.dtype() == DType::U32 && targets.device().is_cpu() {
        logits
            .contiguous()?
            .apply_op2(&targets.contiguous()?, RowCrossEntropy)?
            .mean_all()
    } else {
        candle_nn::loss::cross_entropy(logits, targets)
    }
}

/// Per-row losses (N) of logits (N, K) against targets (N).
struct RowCrossEntropy;

impl CustomOp2 for RowCrossEntropy {
    fn name(&self) -> &'static str {
        "clipkit-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, targets, k) = operands(s1, l1, s2, l2)?;
        let mut losses = vec![0f32; targets.len()];
        let rows = rows_per_task(targets.len(), k);
        losses
            .par_chunks_mut(rows)
            .zip(logits.par_chunks(rows * k))
            .zip(targets.par_chunks(rows))
            .for_each(|((losses, logits), targets)| row_losses(losses, logits, targets, k));
        Ok((CpuStorage::F32(losses), Shape::from(targets.len())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _losses: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dlogits =
            logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &CrossEntropyBackward)?;
        Ok((Some(dlogits), None))
    }
}

/// d loss / d logits (N, K) from logits, targets and the per-row loss gradients g (N):
/// `g_i · (softmax(logits_i) − onehot(targets_i))`.
struct CrossEntropyBackward;

impl CustomOp3 for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "clipkit-cross-entropy-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, targets, k) = operands(s1, l1, s2, l2)?;
        let grad = contiguous_f32(s3, l3, "cross-entropy gradient")?;
        if grad.len() != targets.len() {
            candle_core::bail!("cross-entropy gradient: one value per row expected");
        }
        let mut dlogits = vec![0f32; logits.len()];
        let rows = rows_per_task(targets.len(), k);
        dlogits
            .par_chunks_mut(rows * k)
            .zip(logits.par_chunks(rows * k))
            .zip(targets.par_chunks(rows).zip(grad.par_chunks(rows)))
            .for_each(|((dlogits, logits), (targets, grad))| {
                row_gradients(dlogits, logits, targets, grad, k)
            });
        Ok((CpuStorage::F32(dlogits), l1.shape().clone()))
    }
}

/// The contiguous logits, targets and K of the two operands, shapes and targets checked.
fn operands<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [u32], usize)> {
    let logits = contiguous_f32(s1, l1, "cross-entropy logits")?;
    let (n, k) = l1.shape().dims2()?;
    let CpuStorage::U32(targets) = s2 else {
        candle_core::bail!("cross-entropy targets: expected u32 class indices");
    };
    let targets = match l2.contiguous_offsets() {
        Some((start, end)) if end - start == n && l2.shape().rank() == 1 => &targets[start..end],
        _ => candle_core::bail!("cross-entropy targets: expected one index per logit row"),
    };
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= k) {
        candle_core::bail!("cross-entropy: target {t} outside the {k} classes");
    }
    Ok((logits, targets, k))
}

compiled_per_kernel! {
    /// Each row's loss `logsumexp(row) − row[target]`, for rows of `k` logits.
    fn row_losses(
        losses: &mut [f32],
        logits: &[f32],
        targets: &[u32],
        k: usize,
    ) => row_losses_portable
}

#[inline(always)]
fn row_losses_portable(losses: &mut [f32], logits: &[f32], targets: &[u32], k: usize) {
    for ((loss, row), &t) in losses.iter_mut().zip(logits.chunks_exact(k)).zip(targets) {
        *loss = log_sum_exp(row) - row[t as usize];
    }
}

compiled_per_kernel! {
    /// Each row's `g · (softmax(row) − onehot(target))`, for rows of `k` logits.
    fn row_gradients(
        dlogits: &mut [f32],
        logits: &[f32],
        targets: &[u32],
        grad: &[f32],
        k: usize,
    ) => row_gradients_portable
}

#[inline(always)]
fn row_gradients_portable(
    dlogits: &mut [f32],
    logits: &[f32],
    targets: &[u32],
    grad: &[f32],
    k: usize,
) {
    let rows = dlogits.chunks_exact_mut(k).zip(logits.chunks_exact(k));
    for ((d, row), (&t, &g)) in rows.zip(targets.iter().zip(grad)) {
        let lse = log_sum_exp(row);
        for (d, &x) in d.iter_mut().zip(row) {
            *d = g * exp_fast(x - lse);
        }
        d[t as usize] -= g;
    }
}

/// `ln Σ_j e^{x_j}`, shifted by the row's maximum.
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = lanes_max(row);
    max + lanes_sum(row, |x| exp_fast(x - max)).ln()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::test_support::{max_difference, random};

    fn targets(n: usize, k: usize) -> Tensor {
        let ids: Vec<u32> = (0..n).map(|i| ((i * 7 + 3) % k) as u32).collect();
        Tensor::from_vec(ids, n, &Device::Cpu).unwrap()
    }

    /// Value and gradient against candle_nn's composite, with logits spread over ±8 so the
    /// softmax is far from uniform, and more rows than one parallel task takes.
    #[test]
    fn matches_the_composite_value_and_gradient() {
        let (n, k) = (700, 131);
        let logits = Var::from_tensor(&(random(&[n, k], 5, 0.0) * 16.0).unwrap()).unwrap();
        let t = targets(n, k);
        let ours = cross_entropy(logits.as_tensor(), &t).unwrap();
        let theirs = candle_nn::loss::cross_entropy(logits.as_tensor(), &t).unwrap();
        assert!(max_difference(&ours, &theirs) < 1e-5, "{ours} vs {theirs}");
        let gradient = |loss: Tensor| loss.backward().unwrap().get(&logits).unwrap().clone();
        let (g_ours, g_theirs) = (gradient(ours), gradient(theirs));
        assert_eq!(g_ours.dims(), &[n, k]);
        assert!(max_difference(&g_ours, &g_theirs) < 1e-7);
    }

    #[test]
    fn a_target_outside_the_classes_is_an_error() {
        let err = cross_entropy(&random(&[2, 3], 1, 0.0), &targets(2, 4)).unwrap_err();
        assert!(err.to_string().contains("outside the 3 classes"), "{err}");
    }
}
