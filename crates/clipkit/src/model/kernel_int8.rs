//! int8 weights for [`super::packed::PackedWeight`]: per-channel quantisation and the panel
//! layout (weight-only: the input stays f32).
//!
//! Each output channel j keeps `scale_j = max_k |w_jk| / 127` and `q_jk = round(w_jk /
//! scale_j)` in −127..=127 (to nearest, ties to even), so its weights are `scale_j · q_jk`. A panel is K × NR
//! bytes (channel j of step kk at `kk·NR + j`) and its NR scales. The product widens each
//! panel's depth block to f32 once ([`dequantize_panel`]) and runs the f32 micro-kernel on
//! it for every tile of rows: a quarter of the weight memory, the same arithmetic.

/// Per-channel symmetric quantisation of a row-major (N, K) matrix: (q (N, K), scales (N)),
/// the rows in parallel. A channel of zeros gets scale 0 (and zeros).
pub fn quantize_rows(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    use rayon::prelude::*;
    assert_eq!(w.len(), n * k, "weight buffer does not match its shape");
    let mut q = vec![0i8; n * k];
    let mut scales = vec![0f32; n];
    w.par_chunks_exact(k.max(1))
        .zip(q.par_chunks_exact_mut(k.max(1)))
        .zip(scales.par_iter_mut())
        .for_each(|((row, q_row), scale)| {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max > 0.0 && max.is_finite() {
                *scale = max / 127.0;
                for (qv, &v) in q_row.iter_mut().zip(row) {
                    *qv = round_small(v / *scale).clamp(-127.0, 127.0) as i8;
                }
            }
        });
    (q, scales)
}

/// `x` (|x| ≤ 2²²) rounded to the nearest integer, ties to even: adding 1.5·2²³ leaves no
/// fraction bits, so the f32 sum rounds, and subtracting it back is exact. (`f32::round`
/// is a library call on baseline x86-64, and was half the w8a8 product's time.)
fn round_small(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (x + SHIFT) - SHIFT
}

/// The f32 matrix that int8 weights stand for: `scale_j · q_jk`, row-major (N, K).
pub fn dequantize_rows(q: &[i8], scales: &[f32], k: usize) -> Vec<f32> {
    q.chunks_exact(k.max(1))
        .zip(scales)
        .flat_map(|(row, &s)| row.iter().map(move |&v| s * f32::from(v)))
        .collect()
}

/// Quantises a row-major (N, K) matrix and packs it into ⌈N/NR⌉ zero-padded panels of
/// K × NR bytes, with the scales padded to a whole number of panels.
pub(super) fn pack_panels(w: &[f32], n: usize, k: usize, nr: usize) -> (Vec<i8>, Vec<f32>) {
    let (q, scales) = quantize_rows(w, n, k);
    let panels = n.div_ceil(nr);
    let mut data = vec![0i8; panels * k * nr];
    for (p, panel) in data.chunks_exact_mut((k * nr).max(1)).enumerate() {
        for j in 0..nr.min(n - p * nr) {
            for (kk, &v) in q[(p * nr + j) * k..(p * nr + j + 1) * k].iter().enumerate() {
                panel[kk * nr + j] = v;
            }
        }
    }
    let mut padded = vec![0f32; panels * nr];
    padded[..n].copy_from_slice(&scales);
    (data, padded)
}

/// Widens one panel's depth block (kc × NR bytes, k-major) to the f32 weights
/// `scale_j · q` it stands for, in the f32 kernel's panel layout.
pub(super) fn dequantize_panel(bytes: &[i8], scales: &[f32], out: &mut [f32]) {
    let nr = scales.len();
    for (out_row, row) in out.chunks_exact_mut(nr).zip(bytes.chunks_exact(nr)) {
        for ((o, &q), &s) in out_row.iter_mut().zip(row).zip(scales) {
            *o = s * f32::from(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_keeps_each_weight_within_half_a_step() {
        let (n, k) = (5, 37);
        let mut w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 29 % 83) as f32 - 41.0) / 7.0)
            .collect();
        w[k..2 * k].fill(0.0); // an all-zero channel
        let (q, scales) = quantize_rows(&w, n, k);
        assert_eq!(scales[1], 0.0);
        let back = dequantize_rows(&q, &scales, k);
        for j in 0..n {
            let max = w[j * k..(j + 1) * k]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!(q[j * k..(j + 1) * k].iter().all(|&v| v != i8::MIN));
            for t in 0..k {
                let err = (back[j * k + t] - w[j * k + t]).abs();
                assert!(err <= scales[j] * 0.5 + 1e-6, "channel {j}: {err}");
            }
            if max > 0.0 {
                assert_eq!(
                    q[j * k..(j + 1) * k].iter().map(|v| v.abs()).max(),
                    Some(127)
                );
            }
        }
    }
}
