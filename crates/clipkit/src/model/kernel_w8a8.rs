//! int8 weights and int8 inputs for [`super::packed::PackedWeight`] (`w8a8`): the panel
//! layout, the input quantisation and the AVX-512 VNNI micro-kernel (`vpdpbusd`: four
//! u8 × i8 products summed into each i32 lane).
//!
//! Weights are quantised per output channel as for `int8` ([`super::kernel_int8`]); each
//! input row (token) is quantised the same way when the product runs, `x_rk ≈ sx_r · p_rk`.
//! `vpdpbusd` takes one side unsigned, so the kernel reads `p + 128` (in 1..=255) and
//! subtracts `128 · Σ_k q_jk` per channel and depth block (kept exact in i32). So a depth
//! block adds `sx_r · s_j · Σ_k p_rk q_jk` to the tile; integer sums are exact, and only
//! their conversion to f32 and the scaling round.
//!
//! Layout: values go in quads along the depth, a quad being one `u32` (the lowest index in
//! the low byte). A panel is ⌈K/4⌉ × NR quads (quad kq of channel j at `kq·NR + j`), with NR
//! scales and, per depth block, NR corrections; a tile's input is ⌈kc/4⌉ × MR quads.

use super::kernel_int8::quantize_rows;
use super::packed_tiles::{pair_masks, prefetch_panel_step, Init, AVX512_NR, KC};

/// The unsigned offset `vpdpbusd` needs on the input side.
const OFFSET: i32 = 128;

/// A (N, K) matrix quantised and packed for the VNNI kernel.
#[derive(Debug, Clone)]
pub(super) struct W8a8Panels {
    /// ⌈N/NR⌉ panels of ⌈K/4⌉ × NR quads.
    pub quads: Vec<u32>,
    /// NR scales per panel.
    pub scales: Vec<f32>,
    /// `128 · Σ q_jk` over each depth block: NR values per (panel, block), block-major
    /// within a panel.
    pub corrections: Vec<i32>,
}

/// Four bytes `v[4i..4i + 4]` (zero past the end) as one quad.
fn quad(v: impl Fn(usize) -> u8, len: usize, i: usize) -> u32 {
    (0..4).fold(0u32, |acc, t| {
        let j = 4 * i + t;
        let byte = if j < len { v(j) } else { 0 };
        acc | (u32::from(byte) << (8 * t))
    })
}

/// Quantises a row-major (N, K) matrix per channel and packs it in panels of NR channels,
/// with corrections for depth blocks of `kc` values.
pub(super) fn pack_panels(w: &[f32], n: usize, k: usize, nr: usize, kc: usize) -> W8a8Panels {
    let (q, scales) = quantize_rows(w, n, k);
    let (panels, quads_per_row, blocks) = (n.div_ceil(nr), k.div_ceil(4), k.div_ceil(kc));
    let mut data = W8a8Panels {
        quads: vec![0u32; panels * quads_per_row * nr],
        scales: vec![0f32; panels * nr],
        corrections: vec![0i32; panels * blocks * nr],
    };
    data.scales[..n].copy_from_slice(&scales);
    for j in 0..n {
        let (p, c) = (j / nr, j % nr);
        let row = &q[j * k..(j + 1) * k];
        for kq in 0..quads_per_row {
            data.quads[(p * quads_per_row + kq) * nr + c] = quad(|t| row[t] as u8, k, kq);
        }
        for (b, block) in row.chunks(kc).enumerate() {
            let sum: i32 = block.iter().map(|&v| i32::from(v)).sum();
            data.corrections[(p * blocks + b) * nr + c] = OFFSET * sum;
        }
    }
    data
}

/// Re-lays `rows` quantised rows of one depth block (each `kc` values, `stride` apart from
/// `q`) as quads of `p + 128` into `tile`, row r's ⌈kc/4⌉ quads from `r·QUADS_PER_ROW`.
pub(super) fn pack_input_quads(q: &[i8], stride: usize, rows: usize, kc: usize, tile: &mut [u32]) {
    for (r, dst) in tile.chunks_exact_mut(QUADS_PER_ROW).take(rows).enumerate() {
        let row = &q[r * stride..r * stride + kc];
        for (kq, d) in dst[..kc.div_ceil(4)].iter_mut().enumerate() {
            *d = quad(|t| (i32::from(row[t]) + OFFSET) as u8, kc, kq);
        }
    }
}

/// The stride of a tile's rows of input quads: a whole depth block.
pub(super) const QUADS_PER_ROW: usize = KC / 4;

/// A tile's quantised operands besides the input quads.
#[derive(Clone, Copy)]
pub(super) struct W8a8Tile<'a> {
    /// The panel's slice, ⌈kc/4⌉ × NR quads.
    pub w: *const u32,
    /// The tile rows' input scales (at least `rows` values).
    pub row_scales: &'a [f32],
    /// The panel's NR channel scales.
    pub scales: &'a [f32],
    /// The panel's NR corrections for this depth block.
    pub corrections: &'a [i32],
}

/// The AVX-512 VNNI tile, dispatched on its row count so the kernel's loops are unrolled.
/// The integer sums start from zero, or from `start` (R rows of 32 sums, 32 apart: the
/// sums of the depth block's first part, made on AMX tiles).
///
/// # Safety
/// The CPU has AVX-512 F and VNNI; `x` holds 12 rows of `QUADS_PER_ROW` quads (⌈kc/4⌉ of
/// each read), `t.w` ⌈kc/4⌉ × 32, the slices of `t` their stated lengths, `start` (when
/// given) `rows` × 32 sums, and the `rows` × `cols` tile at `c` (row stride `ldc`) is
/// writable and written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn avx512_vnni_tile(
    rows: usize,
    x: *const u32,
    t: W8a8Tile,
    kc: usize,
    start: Option<*const i32>,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    let quads = kc.div_ceil(4);
    // SAFETY (all arms): the caller's contract, with R = rows ≤ 12.
    match rows {
        12 => vnni::<12>(x, t, quads, start, c, ldc, cols, init),
        11 => vnni::<11>(x, t, quads, start, c, ldc, cols, init),
        10 => vnni::<10>(x, t, quads, start, c, ldc, cols, init),
        9 => vnni::<9>(x, t, quads, start, c, ldc, cols, init),
        8 => vnni::<8>(x, t, quads, start, c, ldc, cols, init),
        7 => vnni::<7>(x, t, quads, start, c, ldc, cols, init),
        6 => vnni::<6>(x, t, quads, start, c, ldc, cols, init),
        5 => vnni::<5>(x, t, quads, start, c, ldc, cols, init),
        4 => vnni::<4>(x, t, quads, start, c, ldc, cols, init),
        3 => vnni::<3>(x, t, quads, start, c, ldc, cols, init),
        2 => vnni::<2>(x, t, quads, start, c, ldc, cols, init),
        _ => vnni::<1>(x, t, quads, start, c, ldc, cols, init),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn vnni<const R: usize>(
    x: *const u32,
    t: W8a8Tile,
    quads: usize,
    start: Option<*const i32>,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    const NR: usize = AVX512_NR;
    let [m0, m1] = pair_masks(cols);
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    if let Some(sums) = start {
        for (r, a) in acc.iter_mut().enumerate() {
            let row = sums.add(r * NR);
            *a = [
                _mm512_loadu_si512(row.cast()),
                _mm512_loadu_si512(row.add(16).cast()),
            ];
        }
    }
    for kq in 0..quads {
        prefetch_panel_step(t.w, kq);
        let w0 = _mm512_loadu_si512(t.w.add(kq * NR).cast());
        let w1 = _mm512_loadu_si512(t.w.add(kq * NR + 16).cast());
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_epi32(*x.add(r * QUADS_PER_ROW + kq) as i32);
            a[0] = _mm512_dpbusd_epi32(a[0], xv, w0);
            a[1] = _mm512_dpbusd_epi32(a[1], xv, w1);
        }
    }
    let s0 = _mm512_loadu_ps(t.scales.as_ptr());
    let s1 = _mm512_loadu_ps(t.scales.as_ptr().add(16));
    let c0 = _mm512_loadu_si512(t.corrections.as_ptr().cast());
    let c1 = _mm512_loadu_si512(t.corrections.as_ptr().add(16).cast());
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
        let sx = _mm512_set1_ps(t.row_scales[r]);
        let v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[0], c0));
        let v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[1], c1));
        let y0 = _mm512_fmadd_ps(v0, _mm512_mul_ps(s0, sx), base0);
        let y1 = _mm512_fmadd_ps(v1, _mm512_mul_ps(s1, sx), base1);
        _mm512_mask_storeu_ps(row, m0, y0);
        _mm512_mask_storeu_ps(row.wrapping_add(16), m1, y1);
    }
}
