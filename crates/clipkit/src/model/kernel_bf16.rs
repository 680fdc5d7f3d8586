//! bfloat16 weights for [`super::packed::PackedWeight`]: rounding, the panel layout and the
//! AVX-512 BF16 micro-kernel (`vdpbf16ps`: two bf16 products summed into each f32 lane).
//!
//! Layout: values go in pairs along the depth, a pair being one `u32` (the even index in the
//! low half, as `vdpbf16ps` reads it). A panel is ⌈K/2⌉ × NR pairs (pair kp of channel j at
//! `kp·NR + j`); a tile's input is re-laid as ⌈kc/2⌉ × MR pairs (pair kp of row r at
//! `kp·MR + r`). An odd depth is padded with a zero value. Products of two bf16 values are
//! exact in f32, so the result differs from an f32 product of the rounded values only by the
//! order of the f32 sums (and by denormals, which `vdpbf16ps` flushes to zero).

use super::packed_tiles::{pair_masks, prefetch_panel_step, Init, AVX512_NR, KC};

/// `x` rounded to the nearest bfloat16 (ties to even), as its 16 bits; NaN stays NaN.
pub fn round_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 value of a bfloat16 (exact).
pub fn bf16_value(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `x` rounded to bfloat16 and back: what the bf16 product sees of an f32 value.
pub fn to_bf16_and_back(x: f32) -> f32 {
    bf16_value(round_bf16(x))
}

/// Values `v[2i]` and `v[2i + 1]` (zero past the end) as one pair.
fn pair(v: &[f32], i: usize) -> u32 {
    let at = |j: usize| v.get(j).map_or(0, |&x| u32::from(round_bf16(x)));
    at(2 * i) | (at(2 * i + 1) << 16)
}

/// Packs a row-major (N, K) f32 matrix into ⌈N/NR⌉ zero-padded panels of ⌈K/2⌉ × NR pairs.
pub(super) fn pack_panels(w: &[f32], n: usize, k: usize, nr: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let pairs = k.div_ceil(2);
    let mut data = vec![0u32; n.div_ceil(nr) * pairs * nr];
    data.par_chunks_exact_mut((pairs * nr).max(1))
        .enumerate()
        .for_each(|(p, panel)| {
            for j in 0..nr.min(n - p * nr) {
                let row = &w[(p * nr + j) * k..(p * nr + j + 1) * k];
                for kp in 0..pairs {
                    panel[kp * nr + j] = pair(row, kp);
                }
            }
        });
    data
}

/// Re-lays `rows` rows of one depth block (each `kc` values, `stride` apart from `x`) as
/// pairs into `tile`, row r's ⌈kc/2⌉ pairs from `r·PAIRS_PER_ROW` (the rows past `rows` are
/// left as they are).
pub(super) fn pack_input_pairs(x: &[f32], stride: usize, rows: usize, kc: usize, tile: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    let vector = super::kernel::has_feature("avx512bf16");
    for (r, dst) in tile.chunks_exact_mut(PAIRS_PER_ROW).take(rows).enumerate() {
        let row = &x[r * stride..r * stride + kc];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: the CPU has AVX-512 F and BF16.
            done = unsafe { round_pairs_avx512(row, dst) };
        }
        for (kp, d) in dst[..kc.div_ceil(2)].iter_mut().enumerate().skip(done) {
            *d = pair(row, kp);
        }
    }
}

/// Rounds the first 32·⌊len/32⌋ values of `row` to bf16 pairs in `dst`, 32 at a time
/// (`vcvtne2ps2bf16` rounds to nearest even, as [`round_bf16`], and makes denormals zero,
/// as the products do with them anyway); returns the pairs written.
///
/// # Safety
/// The CPU has AVX-512 F and BF16; `dst` holds ⌈row.len()/2⌉ pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_pairs_avx512(row: &[f32], dst: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = row.len() / 32;
    for (b, values) in row.chunks_exact(32).enumerate() {
        let lo = _mm512_loadu_ps(values.as_ptr());
        let hi = _mm512_loadu_ps(values.as_ptr().add(16));
        // Value i of the 32 lands in 16-bit lane i: pair j holds values 2j and 2j + 1.
        let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr().add(16 * b).cast(), pairs);
    }
    16 * blocks
}

/// The stride of a tile's rows of input pairs: a whole depth block.
pub(super) const PAIRS_PER_ROW: usize = KC / 2;

/// The AVX-512 BF16 tile, dispatched on its row count so the kernel's loops are unrolled.
///
/// # Safety
/// The CPU has AVX-512 F and BF16; `x` holds 12 rows of `PAIRS_PER_ROW` pairs (⌈kc/2⌉ of each read), `w` ⌈kc/2⌉ × 32, and the
/// `rows` × `cols` tile at `c` (row stride `ldc`) is writable and written by no one else.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn avx512_bf16_tile(
    rows: usize,
    x: *const u32,
    w: *const u32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    let pairs = kc.div_ceil(2);
    // SAFETY (all arms): the caller's contract, with R = rows ≤ 12.
    match rows {
        12 => bf16::<12>(x, w, pairs, c, ldc, cols, init),
        11 => bf16::<11>(x, w, pairs, c, ldc, cols, init),
        10 => bf16::<10>(x, w, pairs, c, ldc, cols, init),
        9 => bf16::<9>(x, w, pairs, c, ldc, cols, init),
        8 => bf16::<8>(x, w, pairs, c, ldc, cols, init),
        7 => bf16::<7>(x, w, pairs, c, ldc, cols, init),
        6 => bf16::<6>(x, w, pairs, c, ldc, cols, init),
        5 => bf16::<5>(x, w, pairs, c, ldc, cols, init),
        4 => bf16::<4>(x, w, pairs, c, ldc, cols, init),
        3 => bf16::<3>(x, w, pairs, c, ldc, cols, init),
        2 => bf16::<2>(x, w, pairs, c, ldc, cols, init),
        _ => bf16::<1>(x, w, pairs, c, ldc, cols, init),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16<const R: usize>(
    x: *const u32,
    w: *const u32,
    pairs: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    const NR: usize = AVX512_NR;
    let [m0, m1] = pair_masks(cols);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    match init {
        Init::Bias(b) => {
            let b0 = _mm512_loadu_ps(b.as_ptr());
            let b1 = _mm512_loadu_ps(b.as_ptr().add(16));
            for a in acc.iter_mut() {
                *a = [b0, b1];
            }
        }
        Init::Accumulate => {
            for (r, a) in acc.iter_mut().enumerate() {
                let row = c.add(r * ldc);
                *a = [
                    _mm512_maskz_loadu_ps(m0, row),
                    _mm512_maskz_loadu_ps(m1, row.wrapping_add(16)),
                ];
            }
        }
    }
    let as_bh = |v: __m512i| -> __m512bh { std::mem::transmute(v) };
    for kp in 0..pairs {
        prefetch_panel_step(w, kp);
        let w0 = as_bh(_mm512_loadu_si512(w.add(kp * NR).cast()));
        let w1 = as_bh(_mm512_loadu_si512(w.add(kp * NR + 16).cast()));
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = as_bh(_mm512_set1_epi32(*x.add(r * PAIRS_PER_ROW + kp) as i32));
            a[0] = _mm512_dpbf16_ps(a[0], xv, w0);
            a[1] = _mm512_dpbf16_ps(a[1], xv, w1);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        _mm512_mask_storeu_ps(row, m0, a[0]);
        _mm512_mask_storeu_ps(row.wrapping_add(16), m1, a[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_special_values() {
        assert_eq!(to_bf16_and_back(1.0), 1.0);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa, 1.
        assert_eq!(to_bf16_and_back(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: ties go to 1 + 2⁻⁶.
        assert_eq!(to_bf16_and_back(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(to_bf16_and_back(-3.0), -3.0);
        assert_eq!(to_bf16_and_back(f32::INFINITY), f32::INFINITY);
        assert!(to_bf16_and_back(f32::NAN).is_nan());
        let x = 0.123_456_79_f32;
        assert!((to_bf16_and_back(x) - x).abs() <= x * (1.0 / 256.0));
    }
}
