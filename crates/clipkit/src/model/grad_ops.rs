//! Backward passes of the fused kernels in [`super::ops`], so training runs the same fused
//! layer norm, bias + activation and attention as inference.
//!
//! Each kernel here is itself a candle op without a backward pass (second derivatives are not
//! needed). Ops that produce several gradients return them stacked along the first axis of
//! one tensor, which the caller slices apart.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernel::compiled_per_kernel;
use super::ops::{
    contiguous_f32, exp_fast, rows_per_task, softmax_rows, tanh_fast, SendPtr, SQRT_2_OVER_PI,
};
use crate::config::Activation;

/// Sums per-task partial column sums into one vector.
///
/// Per-chunk partial sums are collected in chunk order and added in that order (not in
/// rayon's work-stealing order), so a gradient is the same bit for bit on every run.
pub(super) fn add_columns(mut total: Vec<f32>, part: Vec<f32>) -> Vec<f32> {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
    total
}

/// Splits a stacked gradient (rows + extra, C) into the input-shaped gradient and the
/// `extra` trailing rows, each a (C) vector.
fn unstack(stacked: Tensor, input: &Tensor, extra: usize) -> Result<(Tensor, Vec<Tensor>)> {
    let c = *input.dims().last().unwrap_or(&1);
    let rows = input.elem_count() / c.max(1);
    let grad = stacked.narrow(0, 0, rows)?.reshape(input.shape())?;
    let vectors = (0..extra)
        .map(|i| stacked.get(rows + i))
        .collect::<Result<Vec<_>>>()?;
    Ok((grad, vectors))
}

/// Layer-norm backward: (x, gain, upstream gradient) → [dx rows; dgain; dbias].
pub struct LayerNormBackward {
    /// The forward pass's epsilon.
    pub eps: f32,
}

impl LayerNormBackward {
    /// Gradients for x, gain and bias.
    pub fn grads(&self, x: &Tensor, gain: &Tensor, grad: &Tensor) -> Result<[Tensor; 3]> {
        let stacked = x
            .contiguous()?
            .apply_op3_no_bwd(gain, &grad.contiguous()?, self)?;
        let (dx, mut vectors) = unstack(stacked, x, 2)?;
        let dbias = vectors.pop();
        let dgain = vectors.pop();
        match (dgain, dbias) {
            (Some(dgain), Some(dbias)) => Ok([dx, dgain, dbias]),
            _ => candle_core::bail!("layer norm backward: missing gradients"),
        }
    }
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "clipkit-layer-norm-backward"
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
        let x = contiguous_f32(s1, l1, "layer norm input")?;
        let gain = contiguous_f32(s2, l2, "layer norm gain")?;
        let dy = contiguous_f32(s3, l3, "layer norm gradient")?;
        let c = gain.len();
        if c == 0 || x.len() % c != 0 || dy.len() != x.len() {
            candle_core::bail!("layer norm backward: width mismatch");
        }
        let rows = x.len() / c;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, _) = out.split_at_mut(x.len());
        let chunk = rows_per_task(rows, c) * c;
        let (dgain, dbias) = dx
            .par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk).zip(dy.par_chunks(chunk)))
            .map(|(dx, (x, dy))| {
                let mut dgain = vec![0f32; c];
                let mut dbias = vec![0f32; c];
                let mut xhat = vec![0f32; c];
                for ((dx, x), dy) in dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    let mean = x.iter().sum::<f32>() / c as f32;
                    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
                    let inv = 1.0 / (var + self.eps).sqrt();
                    let (mut mean_g, mut mean_gx) = (0f32, 0f32);
                    for i in 0..c {
                        xhat[i] = (x[i] - mean) * inv;
                        let g = dy[i] * gain[i];
                        mean_g += g;
                        mean_gx += g * xhat[i];
                        dgain[i] += dy[i] * xhat[i];
                        dbias[i] += dy[i];
                    }
                    mean_g /= c as f32;
                    mean_gx /= c as f32;
                    for i in 0..c {
                        dx[i] = inv * (dy[i] * gain[i] - mean_g - xhat[i] * mean_gx);
                    }
                }
                (dgain, dbias)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold((vec![0f32; c], vec![0f32; c]), |a, b| {
                (add_columns(a.0, b.0), add_columns(a.1, b.1))
            });
        let tail = &mut out[x.len()..];
        tail[..c].copy_from_slice(&dgain);
        tail[c..].copy_from_slice(&dbias);
        Ok((CpuStorage::F32(out), Shape::from_dims(&[rows + 2, c])))
    }
}

/// Backward of `activation(x + bias)`: (x, bias, upstream gradient) → [dx rows; dbias].
/// With no activation it is the backward of a bias add.
pub struct BiasActivationBackward {
    /// The forward activation, or `None` for a plain bias add.
    pub activation: Option<Activation>,
}

impl BiasActivationBackward {
    /// Gradients for x and the bias.
    pub fn grads(&self, x: &Tensor, bias: &Tensor, grad: &Tensor) -> Result<[Tensor; 2]> {
        let stacked = x
            .contiguous()?
            .apply_op3_no_bwd(bias, &grad.contiguous()?, self)?;
        let (dx, mut vectors) = unstack(stacked, x, 1)?;
        match vectors.pop() {
            Some(dbias) => Ok([dx, dbias]),
            None => candle_core::bail!("bias backward: missing gradient"),
        }
    }
}

impl CustomOp3 for BiasActivationBackward {
    fn name(&self) -> &'static str {
        "clipkit-bias-activation-backward"
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
        let x = contiguous_f32(s1, l1, "activation input")?;
        let bias = contiguous_f32(s2, l2, "activation bias")?;
        let dy = contiguous_f32(s3, l3, "activation gradient")?;
        let n = bias.len();
        if n == 0 || x.len() % n != 0 || dy.len() != x.len() {
            candle_core::bail!("bias + activation backward: width mismatch");
        }
        let rows = x.len() / n;
        let mut out = vec![0f32; x.len() + n];
        let (dx, _) = out.split_at_mut(x.len());
        let chunk = rows_per_task(rows, n) * n;
        let activation = self.activation;
        let dbias = dx
            .par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk).zip(dy.par_chunks(chunk)))
            .map(|(dx, (x, dy))| {
                let mut dbias = vec![0f32; n];
                for ((dx, x), dy) in dx
                    .chunks_exact_mut(n)
                    .zip(x.chunks_exact(n))
                    .zip(dy.chunks_exact(n))
                {
                    gradient_row(activation, dx, x, bias, dy, &mut dbias);
                }
                dbias
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold(vec![0f32; n], add_columns);
        out[x.len()..].copy_from_slice(&dbias);
        Ok((CpuStorage::F32(out), Shape::from_dims(&[rows + 1, n])))
    }
}

/// One row of the bias (+ activation) backward: dx = dy · act'(x + bias), dbias += dx.
fn gradient_row(
    activation: Option<Activation>,
    dx: &mut [f32],
    x: &[f32],
    bias: &[f32],
    dy: &[f32],
    dbias: &mut [f32],
) {
    match activation {
        Some(act) => activation_gradient_row(act, dx, x, bias, dy, dbias),
        None => {
            dx.copy_from_slice(dy);
            for (b, g) in dbias.iter_mut().zip(dy) {
                *b += g;
            }
        }
    }
}

compiled_per_kernel! {
    /// One row of an activation's backward, in the widest registers the active
    /// [`Kernel`](crate::model::Kernel) allows; the GELUs through [`exp_fast`] so their loops
    /// vectorise.
    fn activation_gradient_row(
        act: Activation,
        dx: &mut [f32],
        x: &[f32],
        bias: &[f32],
        dy: &[f32],
        dbias: &mut [f32],
    ) => activation_gradient_row_portable
}

#[inline(always)]
fn activation_gradient_row_portable(
    act: Activation,
    dx: &mut [f32],
    x: &[f32],
    bias: &[f32],
    dy: &[f32],
    dbias: &mut [f32],
) {
    #[inline(always)]
    fn each(
        dx: &mut [f32],
        x: &[f32],
        bias: &[f32],
        dy: &[f32],
        dbias: &mut [f32],
        derivative: impl Fn(f32) -> f32,
    ) {
        let n = dx
            .len()
            .min(x.len())
            .min(bias.len())
            .min(dy.len())
            .min(dbias.len());
        for i in 0..n {
            let g = dy[i] * derivative(x[i] + bias[i]);
            dx[i] = g;
            dbias[i] += g;
        }
    }
    match act {
        Activation::QuickGelu => each(dx, x, bias, dy, dbias, |z| {
            let s = 1.0 / (1.0 + exp_fast(-1.702 * z));
            s + 1.702 * z * s * (1.0 - s)
        }),
        Activation::GeluTanh => each(dx, x, bias, dy, dbias, gelu_tanh_derivative),
        act => each(dx, x, bias, dy, dbias, |z| act.derivative(z)),
    }
}

/// The derivative of tanh-GELU at `x`.
#[inline(always)]
fn gelu_tanh_derivative(x: f32) -> f32 {
    let t = tanh_fast(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x)
}

impl Activation {
    /// The derivative of [`Activation::scalar`] at `x`.
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            Activation::QuickGelu => {
                let s = 1.0 / (1.0 + (-1.702 * x).exp());
                s + 1.702 * x * s * (1.0 - s)
            }
            Activation::Gelu => {
                let cdf = 0.5
                    * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3; // 1/√(2π)
                cdf + x * pdf
            }
            Activation::GeluTanh => gelu_tanh_derivative(x),
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
        }
    }
}

/// Attention backward: (qkv, upstream gradient of the context) → d qkv, laid out as qkv.
/// Scores and probabilities are recomputed per head rather than kept from the forward pass.
pub struct AttentionBackward {
    /// H: number of heads.
    pub heads: usize,
    /// Whether the forward pass was causal.
    pub causal: bool,
}

impl CustomOp2 for AttentionBackward {
    fn name(&self) -> &'static str {
        "clipkit-attention-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s1, l1, "attention input")?;
        let dout = contiguous_f32(s2, l2, "attention gradient")?;
        let (b, t, c3) = l1.shape().dims3()?;
        let c = c3 / 3;
        let h = self.heads;
        if c3 % 3 != 0 || h == 0 || c % h != 0 || dout.len() != b * t * c {
            candle_core::bail!("attention backward: shapes do not match");
        }
        let d = c / h;
        let mut dqkv = vec![0f32; qkv.len()];
        let dst = SendPtr(dqkv.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(
            || (vec![0f32; t * t], vec![0f32; t * t]),
            |(probs, dprobs), job| {
                let (bi, hi) = (job / h, job % h);
                let base = bi * t * c3;
                let q = qkv[base + hi * d..].as_ptr();
                let k = qkv[base + c + hi * d..].as_ptr();
                let v = qkv[base + 2 * c + hi * d..].as_ptr();
                let go = dout[bi * t * c + hi * d..].as_ptr();
                let rs = c3 as isize;
                let cs = c as isize;
                let ti = t as isize;
                // SAFETY: every pointer stays inside its buffer (rows of stride 3C or C, D
                // columns from the head's offset; T×T scratch), and this job writes only the
                // head's columns of batch bi in `dqkv`, which no other job touches.
                unsafe {
                    let dq = dst.get().add(base + hi * d);
                    let dk = dst.get().add(base + c + hi * d);
                    let dv = dst.get().add(base + 2 * c + hi * d);
                    // P = softmax(Q Kᵀ), as in the forward pass.
                    matmul(t, t, d, probs.as_mut_ptr(), 1, ti, q, 1, rs, k, rs, 1);
                    softmax_rows(probs, t, self.causal);
                    // dV = Pᵀ dO.
                    matmul(t, d, t, dv, 1, rs, probs.as_ptr(), ti, 1, go, 1, cs);
                    // dP = dO Vᵀ.
                    matmul(t, t, d, dprobs.as_mut_ptr(), 1, ti, go, 1, cs, v, rs, 1);
                    // dS = P ⊙ (dP − rowsum(P ⊙ dP)).
                    for (p, dp) in probs.chunks_exact(t).zip(dprobs.chunks_exact_mut(t)) {
                        let dot: f32 = p.iter().zip(dp.iter()).map(|(a, b)| a * b).sum();
                        for (g, &p) in dp.iter_mut().zip(p) {
                            *g = p * (*g - dot);
                        }
                    }
                    // dQ = dS K; dK = dSᵀ Q.
                    matmul(t, d, t, dq, 1, rs, dprobs.as_ptr(), 1, ti, k, 1, rs);
                    matmul(t, d, t, dk, 1, rs, dprobs.as_ptr(), ti, 1, q, 1, rs);
                }
            },
        );
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

/// dst (m×n) = lhs (m×k) · rhs (k×n), every operand addressed by (column, row) strides.
///
/// # Safety
/// The pointers and strides must describe valid, non-overlapping regions of those sizes.
#[allow(clippy::too_many_arguments)]
#[rustfmt::skip]
pub(super) unsafe fn matmul(
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_cs: isize, dst_rs: isize,
    lhs: *const f32, lhs_cs: isize, lhs_rs: isize,
    rhs: *const f32, rhs_cs: isize, rhs_rs: isize,
) {
    gemm_strided(false, m, n, k, dst, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs);
}

/// dst (m×n) += lhs (m×k) · rhs (k×n), every operand addressed by (column, row) strides.
///
/// # Safety
/// The pointers and strides must describe valid, non-overlapping regions of those sizes.
#[allow(clippy::too_many_arguments)]
#[rustfmt::skip]
pub(super) unsafe fn matmul_accumulate(
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_cs: isize, dst_rs: isize,
    lhs: *const f32, lhs_cs: isize, lhs_rs: isize,
    rhs: *const f32, rhs_cs: isize, rhs_rs: isize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    gemm_strided(true, m, n, k, dst, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs);
}

/// The single-threaded `gemm` call behind [`matmul`] and [`matmul_accumulate`]: the product
/// added to dst (`accumulate`) or written over it.
///
/// # Safety
/// As [`matmul`].
#[allow(clippy::too_many_arguments)]
#[rustfmt::skip]
unsafe fn gemm_strided(
    accumulate: bool,
    m: usize, n: usize, k: usize,
    dst: *mut f32, dst_cs: isize, dst_rs: isize,
    lhs: *const f32, lhs_cs: isize, lhs_rs: isize,
    rhs: *const f32, rhs_cs: isize, rhs_rs: isize,
) {
    // gemm: dst = alpha·dst + beta·lhs·rhs when it reads dst, beta·lhs·rhs otherwise.
    let alpha = if accumulate { 1.0 } else { 0.0 };
    gemm::gemm(
        m, n, k,
        dst, dst_cs, dst_rs,
        accumulate,
        lhs, lhs_cs, lhs_rs,
        rhs, rhs_cs, rhs_rs,
        alpha, 1.0,
        false, false, false,
        gemm::Parallelism::None,
    );
}
