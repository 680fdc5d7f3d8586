//! The arithmetic of one group of a group norm (and the SiLU after it), forward and
//! backward, written so its loops vectorise and compiled for the widest registers the active
//! [`Kernel`](crate::model::Kernel) allows.
//!
//! Sums run in eight f32 lanes over blocks of [`BLOCK`] values, and the blocks' sums add up
//! in f64, so the order (and the result) does not depend on the thread count; the sigmoid
//! uses [`exp_fast`], not a libm call per value. (Scalar f64 sums and libm's `expf` were
//! two thirds of the group norms' time in a VQ training step.)

use crate::model::kernel::compiled_per_kernel;
use crate::model::ops::exp_fast;

/// Values summed in f32 lanes before their sum is added in f64.
const BLOCK: usize = 1024;

/// f32 lanes of a sum.
const LANES: usize = 8;

/// One group: its channels' gains and biases, the values per channel, the epsilon and
/// whether a SiLU follows.
#[derive(Clone, Copy)]
pub(super) struct Group<'a> {
    /// The group's channels' gains.
    pub gain: &'a [f32],
    /// The group's channels' biases.
    pub bias: &'a [f32],
    /// Values per channel.
    pub spatial: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Whether SiLU follows the norm.
    pub silu: bool,
}

compiled_per_kernel! {
    /// `out` = the norm (+ SiLU) of the group's `values` (channel-major, `spatial` per channel).
    pub(super) fn forward(group: Group, values: &[f32], out: &mut [f32]) => forward_portable
}

compiled_per_kernel! {
    /// The group's input gradient into `dx`, from its `values` and output gradient `dy`, and its
    /// channels' gain and bias gradients added to `dgain` and `dbias`; `dz` is scratch of the
    /// group's length.
    pub(super) fn backward(
        group: Group,
        values: &[f32],
        dy: &[f32],
        grads: GroupGrads,
    ) => backward_portable
}

/// Where [`backward`] writes: the group's input gradient, scratch, and its channels' gain
/// and bias gradients (added to).
pub(super) struct GroupGrads<'a> {
    /// The input gradient, the group's length.
    pub dx: &'a mut [f32],
    /// Scratch, the group's length.
    pub dz: &'a mut [f32],
    /// The channels' gain gradients.
    pub dgain: &'a mut [f32],
    /// The channels' bias gradients.
    pub dbias: &'a mut [f32],
}

#[inline(always)]
fn forward_portable(group: Group, values: &[f32], out: &mut [f32]) {
    let (mean, rstd) = statistics(values, group.eps);
    let spatial = group.spatial.max(1);
    let channels = out.chunks_mut(spatial).zip(values.chunks(spatial));
    for (c, (out, values)) in channels.enumerate() {
        let (a, b) = (rstd * group.gain[c], group.bias[c]);
        if group.silu {
            for (o, &v) in out.iter_mut().zip(values) {
                let z = (v - mean) * a + b;
                *o = z * sigmoid(z);
            }
        } else {
            for (o, &v) in out.iter_mut().zip(values) {
                *o = (v - mean) * a + b;
            }
        }
    }
}

#[inline(always)]
fn backward_portable(group: Group, values: &[f32], dy: &[f32], grads: GroupGrads) {
    let (mean, rstd) = statistics(values, group.eps);
    let spatial = group.spatial.max(1);
    // dz = dy · (d silu / dz); Σ dxhat = Σ g·dz and Σ dxhat·xhat = Σ g·dz·xhat per group.
    let (mut sum_dxhat, mut sum_dxhat_xhat) = (0f64, 0f64);
    let channels = grads.dz.chunks_mut(spatial).zip(values.chunks(spatial));
    for (c, ((dz, values), dy)) in channels.zip(dy.chunks(spatial)).enumerate() {
        let (g, b) = (group.gain[c], group.bias[c]);
        if group.silu {
            for ((dz, &v), &dy) in dz.iter_mut().zip(values).zip(dy) {
                let z = (v - mean) * rstd * g + b;
                let s = sigmoid(z);
                *dz = dy * s * (1.0 + z * (1.0 - s));
            }
        } else {
            dz.copy_from_slice(dy);
        }
        let dbias = lane_sum(dz, values, |dz, _| dz);
        let dgain = lane_sum(dz, values, |dz, v| dz * ((v - mean) * rstd));
        grads.dgain[c] += dgain as f32;
        grads.dbias[c] += dbias as f32;
        sum_dxhat += f64::from(g) * dbias;
        sum_dxhat_xhat += f64::from(g) * dgain;
    }
    let n = values.len().max(1) as f64;
    let (mean_dxhat, mean_dxhat_xhat) = ((sum_dxhat / n) as f32, (sum_dxhat_xhat / n) as f32);
    let channels = grads.dx.chunks_mut(spatial).zip(values.chunks(spatial));
    for (c, ((dx, values), dz)) in channels.zip(grads.dz.chunks(spatial)).enumerate() {
        let g = group.gain[c];
        for ((dx, &v), &dz) in dx.iter_mut().zip(values).zip(dz) {
            let xhat = (v - mean) * rstd;
            *dx = rstd * (dz * g - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
}

/// Mean and 1/σ of one group's values.
#[inline(always)]
fn statistics(values: &[f32], eps: f32) -> (f32, f32) {
    let n = values.len().max(1) as f64;
    let mean = (lane_sum(values, values, |v, _| v) / n) as f32;
    let var = lane_sum(values, values, |v, _| (v - mean) * (v - mean)) / n;
    (mean, (1.0 / (var + f64::from(eps)).sqrt()) as f32)
}

/// Σ f(a_i, b_i) over the shorter of `a` and `b`: eight f32 lanes per block of [`BLOCK`]
/// values, the blocks added in f64.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let len = a.len().min(b.len());
    let mut total = 0f64;
    for start in (0..len).step_by(BLOCK) {
        let end = (start + BLOCK).min(len);
        let (a, b) = (&a[start..end], &b[start..end]);
        let mut lanes = [0f32; LANES];
        let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = a_chunks
            .remainder()
            .iter()
            .zip(b_chunks.remainder())
            .map(|(&x, &y)| f(x, y))
            .sum();
        for (xs, ys) in a_chunks.zip(b_chunks) {
            for ((lane, &x), &y) in lanes.iter_mut().zip(xs).zip(ys) {
                *lane += f(x, y);
            }
        }
        total += f64::from(lanes.iter().sum::<f32>() + tail);
    }
    total
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-z))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane sums equal f64 sums to f32 precision, on lengths with a tail and across blocks.
    #[test]
    fn lane_sums_match_f64_sums() {
        for len in [0, 1, 7, 8, 9, 1023, 1024, 1025, 5000] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 101) as f32 / 7.0 - 5.0)
                .collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 13) % 17) as f32 / 3.0).collect();
            let ours = lane_sum(&a, &b, |x, y| x * y);
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            assert!(
                (ours - exact).abs() <= 1e-5 * exact.abs().max(1.0),
                "{len}: {ours} {exact}"
            );
        }
    }
}
