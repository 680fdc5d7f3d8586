//! Fused CPU kernels: layer norm, bias + activation, and attention.
//!
//! Each replaces a chain of candle ops that would allocate and sweep memory several times.
//! Their backward passes live in [`super::grad_ops`], so training uses them too. Callers use
//! them for f32 tensors on the CPU (`fused_ok`) and fall back to the composite formulation
//! otherwise; tests check that the two agree, forward and backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::grad_ops::{AttentionBackward, BiasActivationBackward, LayerNormBackward};
use super::kernel::compiled_per_kernel;
use crate::config::Activation;

/// Whether fused kernels may be used: every operand is an f32 tensor on the CPU.
pub fn fused_ok(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

pub(super) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: expected f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

/// Rows per parallel task, so that small tensors are not split into many tiny tasks.
pub(super) fn rows_per_task(rows: usize, width: usize) -> usize {
    const MIN_ELEMENTS: usize = 16 * 1024;
    (MIN_ELEMENTS / width.max(1)).clamp(1, rows.max(1))
}

/// Layer norm over the last axis: x (…, C), gain (C), bias (C).
pub struct LayerNormOp {
    /// Added to the variance.
    pub eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "clipkit-layer-norm"
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
        let bias = contiguous_f32(s3, l3, "layer norm bias")?;
        let c = gain.len();
        if c == 0 || x.len() % c != 0 || bias.len() != c {
            candle_core::bail!("layer norm: width mismatch");
        }
        let mut out = vec![0f32; x.len()];
        let chunk = rows_per_task(x.len() / c, c) * c;
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(out, x)| {
                layer_norm_rows(out, x, gain, bias, self.eps);
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dgain, dbias] = LayerNormBackward { eps: self.eps }.grads(x, gain, grad)?;
        Ok((Some(dx), Some(dgain), Some(dbias)))
    }
}

/// `activation(x + bias)` over the last axis: x (…, N), bias (N); a plain bias add without
/// an activation.
pub struct BiasActivationOp {
    /// The activation applied after the bias, if any.
    pub activation: Option<Activation>,
}

impl CustomOp2 for BiasActivationOp {
    fn name(&self) -> &'static str {
        "clipkit-bias-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "activation input")?;
        let bias = contiguous_f32(s2, l2, "activation bias")?;
        let n = bias.len();
        if n == 0 || x.len() % n != 0 {
            candle_core::bail!("bias + activation: width mismatch");
        }
        let act = self.activation;
        let mut out = vec![0f32; x.len()];
        let chunk = rows_per_task(x.len() / n, n) * n;
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(out, x)| {
                for (o, row) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
                    match act {
                        Some(act) => activation_row(act, o, row, bias),
                        None => {
                            for i in 0..n {
                                o[i] = row[i] + bias[i];
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let backward = BiasActivationBackward {
            activation: self.activation,
        };
        let [dx, dbias] = backward.grads(x, bias, grad)?;
        Ok((Some(dx), Some(dbias)))
    }
}

impl Activation {
    /// The activation of one value, as PyTorch defines it.
    pub fn scalar(self, x: f32) -> f32 {
        match self {
            Activation::QuickGelu => x / (1.0 + exp_fast(-1.702 * x)),
            Activation::Gelu => {
                0.5 * x
                    * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
            }
            Activation::GeluTanh => gelu_tanh(x),
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// tanh-GELU, PyTorch's `gelu(approximate="tanh")`, through [`tanh_fast`].
#[inline(always)]
pub(super) fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh_fast(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

/// √(2/π), of tanh-GELU.
pub(super) const SQRT_2_OVER_PI: f32 = 0.797_884_6;

compiled_per_kernel! {
    /// `act(x + bias)` over one row, in the widest registers the active
    /// [`Kernel`](crate::model::Kernel) allows; the GELUs through [`exp_fast`] so their loops
    /// vectorise.
    fn activation_row(
        act: Activation,
        out: &mut [f32],
        x: &[f32],
        bias: &[f32],
    ) => activation_row_portable
}

#[inline(always)]
fn activation_row_portable(act: Activation, out: &mut [f32], x: &[f32], bias: &[f32]) {
    #[inline(always)]
    fn each(out: &mut [f32], x: &[f32], bias: &[f32], f: impl Fn(f32) -> f32) {
        for ((o, &v), &b) in out.iter_mut().zip(x).zip(bias) {
            *o = f(v + b);
        }
    }
    match act {
        Activation::QuickGelu => each(out, x, bias, |v| v / (1.0 + exp_fast(-1.702 * v))),
        Activation::GeluTanh => each(out, x, bias, gelu_tanh),
        act => each(out, x, bias, |v| act.scalar(v)),
    }
}

/// e^x for f32 without a libm call, so loops over it vectorise: x = n·ln2 + r with
/// |r| ≤ ln2/2, a degree-6 polynomial for e^r (relative error < 2e-7 on that range), and 2^n
/// put into the exponent bits. Inputs beyond ±87 saturate to 0 or a huge finite value, which
/// is what callers (sigmoids) need.
///
/// n comes from adding 1.5·2²³, which rounds x·log₂e to an integer held in the low mantissa
/// bits: the float n and its bits follow without a conversion. (`round()` then `as i32`,
/// which saturates, was compiled lane by lane: a scalar conversion, a NaN test and an insert
/// per value, the bulk of a tanh-GELU's time.)
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let two_to_n = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) << 23;
    f32::from_bits(p.to_bits().wrapping_add(two_to_n))
}

/// tanh through [`exp_fast`], `1 − 2 / (e^{2x} + 1)`: absolute error below 3e-7 (near zero
/// the subtraction costs relative precision, not absolute), ±1 far out. libm's `tanhf` (and
/// the `expm1f` it calls) was a quarter of a tanh-GELU model's training step.
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * x) + 1.0)
}

/// Multi-head attention straight from the fused projection: qkv (B, T, 3·C) laid out as
/// [q | k | v], each head's D channels adjacent → context (B, T, C), heads side by side.
/// The query part must already carry the 1/√D scale.
pub struct AttentionOp {
    /// H: number of heads.
    pub heads: usize,
    /// Whether position t may attend only to positions ≤ t.
    pub causal: bool,
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "clipkit-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(storage, layout, "attention input")?;
        let (b, t, c3) = layout.shape().dims3()?;
        let c = c3 / 3;
        let h = self.heads;
        if c3 % 3 != 0 || h == 0 || c % h != 0 {
            candle_core::bail!("attention: {c3} channels do not split into 3 × {h} heads");
        }
        let d = c / h;
        let mut out = vec![0f32; b * t * c];
        // Each (batch, head) pair writes its own D-wide columns of `out`.
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(
            || vec![0f32; t * t],
            |scores, job| {
                let (bi, hi) = (job / h, job % h);
                let base = bi * t * c3;
                let q = qkv[base + hi * d..].as_ptr();
                let k = qkv[base + c + hi * d..].as_ptr();
                let v = qkv[base + 2 * c + hi * d..].as_ptr();
                let rs = c3 as isize;
                // SAFETY: the pointers stay inside `qkv` (rows of stride 3C, D columns from
                // the head's offset), `scores` is T×T, and this job's destination columns
                // [hi·D, hi·D + D) of batch bi are written by no other job.
                unsafe {
                    // scores = Q Kᵀ: (T×D)·(D×T), Kᵀ read through strides.
                    gemm::gemm(
                        t,
                        t,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        t as isize,
                        false,
                        q,
                        1,
                        rs,
                        k,
                        rs,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    softmax_rows(scores, t, self.causal);
                    let dst = out_ptr.get().add(bi * t * c + hi * d);
                    // context = P V: (T×T)·(T×D), written into the head's columns.
                    gemm::gemm(
                        t,
                        d,
                        t,
                        dst,
                        1,
                        c as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        t as isize,
                        v,
                        1,
                        rs,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from_dims(&[b, t, c])))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let backward = AttentionBackward {
            heads: self.heads,
            causal: self.causal,
        };
        Ok(Some(qkv.apply_op2_no_bwd(&grad.contiguous()?, &backward)?))
    }
}

compiled_per_kernel! {
    /// Row-wise softmax of a T×T score matrix; with `causal`, entries above the diagonal get 0.
    pub(super) fn softmax_rows(scores: &mut [f32], t: usize, causal: bool) => softmax_rows_portable
}

/// The softmax rows in plain Rust that vectorises: lane-wise max and sum, [`exp_fast`].
#[inline(always)]
fn softmax_rows_portable(scores: &mut [f32], t: usize, causal: bool) {
    for (i, row) in scores.chunks_exact_mut(t).enumerate() {
        let visible = if causal { i + 1 } else { t };
        let max = lanes_max(&row[..visible]);
        for s in &mut row[..visible] {
            *s = exp_fast(*s - max);
        }
        let inv = 1.0 / lanes_sum(&row[..visible], |v| v);
        for s in &mut row[..visible] {
            *s *= inv;
        }
        for s in &mut row[visible..] {
            *s = 0.0;
        }
    }
}

compiled_per_kernel! {
    /// Layer norm of the rows of x (…, C) into out: two passes, the mean, then the variance
    /// around it, in the widest registers the active [`Kernel`](crate::model::Kernel) allows.
    fn layer_norm_rows(
        out: &mut [f32],
        x: &[f32],
        gain: &[f32],
        bias: &[f32],
        eps: f32,
    ) => layer_norm_rows_portable
}

#[inline(always)]
fn layer_norm_rows_portable(out: &mut [f32], x: &[f32], gain: &[f32], bias: &[f32], eps: f32) {
    let c = gain.len();
    for (o, row) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let mean = lanes_sum(row, |v| v) / c as f32;
        let var = lanes_sum(row, |v| (v - mean) * (v - mean)) / c as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..c {
            o[i] = (row[i] - mean) * inv * gain[i] + bias[i];
        }
    }
}

/// Lanes of the partial sums and maxima below: one 512-bit register of f32.
const LANES: usize = 16;

/// Σ f(v) over `values`, in LANES partial sums so the loop vectorises (a single running sum
/// would serialise every addition).
#[inline(always)]
pub(super) fn lanes_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest of `values` (−∞ for none), in LANES partial maxima so the loop vectorises.
#[inline(always)]
pub(super) fn lanes_max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_fast_is_within_3e_7_of_tanh() {
        let mut worst = 0f64;
        let mut x = -20.0f32;
        while x < 20.0 {
            let error = (f64::from(tanh_fast(x)) - f64::from(x).tanh()).abs();
            worst = if error.is_nan() {
                f64::INFINITY
            } else {
                worst.max(error)
            };
            x += 0.001_3;
        }
        assert!(worst < 3e-7, "worst absolute error {worst}");
    }

    #[test]
    fn exp_fast_is_accurate_to_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 87.0 {
            let rel = ((exp_fast(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        // Saturation keeps sigmoids well defined far from zero.
        assert!(exp_fast(-1000.0) < 1e-37 && exp_fast(-1000.0) >= 0.0);
        assert!(exp_fast(1000.0).is_finite() && exp_fast(1000.0) > 1e37);
    }
}

#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to parallel jobs.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}
