//! int8 weights for [`super::packed::PackedWeight`]: per-channel quantisation, the panel
//! layout and the AVX-512 micro-kernel (weight-only: the input stays f32).
//!
//! Each output channel j keeps `scale_j = max_k |w_jk| / 127` and `q_jk = round(w_jk /
//! scale_j)` in −127..=127, so its weights are `scale_j · q_jk`. A panel is K × NR
//! bytes (channel j of step kk at `kk·NR + j`) and its NR scales. The micro-kernel widens the
//! bytes to f32 as it reads them, sums `x_k · q_jk` over a depth block and adds
//! `scale_j ·` that sum to the tile (the bias or the earlier blocks' sum).

use super::packed_tiles::{Init, AVX512_MR, AVX512_NR};

/// Per-channel symmetric quantisation of a row-major (N, K) matrix: (q (N, K), scales (N)).
/// A channel of zeros gets scale 0 (and zeros).
pub fn quantize_rows(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), n * k, "weight buffer does not match its shape");
    let mut q = vec![0i8; n * k];
    let mut scales = vec![0f32; n];
    for ((row, q_row), scale) in w
        .chunks_exact(k.max(1))
        .zip(q.chunks_exact_mut(k.max(1)))
        .zip(scales.iter_mut())
    {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max > 0.0 && max.is_finite() {
            *scale = max / 127.0;
            for (qv, &v) in q_row.iter_mut().zip(row) {
                *qv = (v / *scale).round().clamp(-127.0, 127.0) as i8;
            }
        }
    }
    (q, scales)
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

/// The AVX-512 int8 tile, dispatched on its row count so the kernel's loops are unrolled.
///
/// # Safety
/// The CPU has AVX-512 F; `x` holds kc × 12 values, `w` kc × 32 bytes, `scales` 32 values,
/// and the `rows` × `cols` tile at `c` (row stride `ldc`) is writable and written by no one
/// else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn avx512_int8_tile(
    rows: usize,
    x: *const f32,
    w: *const i8,
    scales: &[f32],
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    // SAFETY (all arms): the caller's contract, with R = rows ≤ 12.
    match rows {
        12 => int8::<12>(x, w, scales, kc, c, ldc, cols, init),
        11 => int8::<11>(x, w, scales, kc, c, ldc, cols, init),
        10 => int8::<10>(x, w, scales, kc, c, ldc, cols, init),
        9 => int8::<9>(x, w, scales, kc, c, ldc, cols, init),
        8 => int8::<8>(x, w, scales, kc, c, ldc, cols, init),
        7 => int8::<7>(x, w, scales, kc, c, ldc, cols, init),
        6 => int8::<6>(x, w, scales, kc, c, ldc, cols, init),
        5 => int8::<5>(x, w, scales, kc, c, ldc, cols, init),
        4 => int8::<4>(x, w, scales, kc, c, ldc, cols, init),
        3 => int8::<3>(x, w, scales, kc, c, ldc, cols, init),
        2 => int8::<2>(x, w, scales, kc, c, ldc, cols, init),
        _ => int8::<1>(x, w, scales, kc, c, ldc, cols, init),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn int8<const R: usize>(
    x: *const f32,
    w: *const i8,
    scales: &[f32],
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    const NR: usize = AVX512_NR;
    let lanes = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let widen = |p: *const i8| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast())));
    for kk in 0..kc {
        let w0 = widen(w.add(kk * NR));
        let w1 = widen(w.add(kk * NR + 16));
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*x.add(kk * AVX512_MR + r));
            a[0] = _mm512_fmadd_ps(xv, w0, a[0]);
            a[1] = _mm512_fmadd_ps(xv, w1, a[1]);
        }
    }
    let s0 = _mm512_loadu_ps(scales.as_ptr());
    let s1 = _mm512_loadu_ps(scales.as_ptr().add(16));
    for (r, a) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        let (base0, base1) = match init {
            Init::Bias(b) => (
                _mm512_loadu_ps(b.as_ptr()),
                _mm512_loadu_ps(b.as_ptr().add(16)),
            ),
            Init::Accumulate => (
                _mm512_maskz_loadu_ps(m0, row),
                _mm512_maskz_loadu_ps(m1, row.wrapping_add(16)),
            ),
        };
        _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(a[0], s0, base0));
        _mm512_mask_storeu_ps(row.wrapping_add(16), m1, _mm512_fmadd_ps(a[1], s1, base1));
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
