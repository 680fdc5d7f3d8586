//! The micro-kernels of [`super::packed::PackedWeight`]'s product: each computes one tile of
//! R ≤ MR rows × NR output channels, Y = X W over a depth block of kc, from
//!
//! - x: the tile's rows, each copied to a stride of [`KC`] values (row r of step kk at
//!   `r·KC + kk`), so each row's broadcasts read one contiguous stream at a fixed offset
//!   and laying them out is a copy, not a transposition;
//! - w: the panel's slice, kc × NR values (channel j of step kk at `kk·NR + j`);
//! - c: the output tile's first value, rows `ldc` apart, of which `cols` ≤ NR are written.
//!
//! One kernel per instruction set, each compiled for its features with `#[target_feature]`;
//! callers check [`super::kernel::Kernel::active`] before calling.

/// Depth of one pass over the panels, and the stride of a tile's rows: a 16 × KC panel
/// slice (16 KiB) stays in L1, a 32 × KC one (32 KiB) in L1 or the nearest L2 lines.
/// (128 was tried on a 2-core Sapphire Rapids: ViT products within noise of 256, the
/// RN50-shaped tower about 5% slower.)
pub(super) const KC: usize = 256;

/// Output channels per panel and rows per tile of the AVX2 kernel: 6 × 2 accumulators +
/// 2 weight registers + 1 broadcast fit in 16 ymm registers.
pub(super) const AVX2_NR: usize = 16;
/// See [`AVX2_NR`].
pub(super) const AVX2_MR: usize = 6;
/// Output channels per panel and rows per tile of the AVX-512 kernel: 12 × 2 accumulators +
/// 2 weight registers + 1 broadcast fit in 32 zmm registers, and each step issues
/// 24 FMAs for 14 loads (a core with two FMA units and two load ports stays FMA-bound).
pub(super) const AVX512_NR: usize = 32;
/// See [`AVX512_NR`].
pub(super) const AVX512_MR: usize = 12;
/// How many depth steps ahead the AVX-512 kernels prefetch their weight panel (2 KiB): 8
/// to 32 measured alike on a Xeon (Emerald Rapids); without the prefetch, 8–20% slower.
#[cfg(target_arch = "x86_64")]
const PREFETCH_STEPS: usize = 16;
/// Bytes of one depth step of an AVX-512 panel: 32 channels of f32, of bf16 pairs or of
/// int8 quads.
#[cfg(target_arch = "x86_64")]
const PANEL_STEP_BYTES: usize = 128;

/// Asks for the panel's lines [`PREFETCH_STEPS`] depth steps after `step` to be brought into
/// L1. A panel is read once per tile, and without this its lines arrive late (on a Xeon the
/// f32 kernel's loads of them held a quarter of its samples). Reading past the panel is
/// harmless.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn prefetch_panel_step<T>(panel: *const T, step: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let ahead = panel
        .cast::<i8>()
        .wrapping_add((step + PREFETCH_STEPS) * PANEL_STEP_BYTES);
    // SAFETY: a prefetch is a hint: it never faults and changes nothing the program sees.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
    }
}

/// How a tile's accumulators start.
#[derive(Clone, Copy)]
pub(super) enum Init<'a> {
    /// From the bias (the first depth block); the slice holds NR values.
    Bias(&'a [f32]),
    /// From the values already in the output (later depth blocks).
    Accumulate,
}

/// The AVX2 tile, dispatched on its row count so the kernel's loops are fully unrolled.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` holds 6 rows of KC values (kc ≤ KC of them read), `w` kc × 16, and the `rows` × `cols`
/// tile at `c` (row stride `ldc`) is writable and written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn avx2_tile(
    rows: usize,
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    // SAFETY (all arms): the caller's contract, with R = rows ≤ 6.
    match rows {
        6 => avx2::<6>(x, w, kc, c, ldc, cols, init),
        5 => avx2::<5>(x, w, kc, c, ldc, cols, init),
        4 => avx2::<4>(x, w, kc, c, ldc, cols, init),
        3 => avx2::<3>(x, w, kc, c, ldc, cols, init),
        2 => avx2::<2>(x, w, kc, c, ldc, cols, init),
        _ => avx2::<1>(x, w, kc, c, ldc, cols, init),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2<const R: usize>(
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    const NR: usize = AVX2_NR;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    match init {
        Init::Bias(b) => {
            let b0 = _mm256_loadu_ps(b.as_ptr());
            let b1 = _mm256_loadu_ps(b.as_ptr().add(8));
            for a in acc.iter_mut() {
                *a = [b0, b1];
            }
        }
        Init::Accumulate => {
            for (r, a) in acc.iter_mut().enumerate() {
                let mut buf = [0f32; NR];
                std::ptr::copy_nonoverlapping(c.add(r * ldc), buf.as_mut_ptr(), cols);
                *a = [
                    _mm256_loadu_ps(buf.as_ptr()),
                    _mm256_loadu_ps(buf.as_ptr().add(8)),
                ];
            }
        }
    }
    for kk in 0..kc {
        let w0 = _mm256_loadu_ps(w.add(kk * NR));
        let w1 = _mm256_loadu_ps(w.add(kk * NR + 8));
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = _mm256_broadcast_ss(&*x.add(r * KC + kk));
            a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
            a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let dst = c.add(r * ldc);
        if cols == NR {
            _mm256_storeu_ps(dst, a[0]);
            _mm256_storeu_ps(dst.add(8), a[1]);
        } else {
            let mut buf = [0f32; NR];
            _mm256_storeu_ps(buf.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(buf.as_mut_ptr().add(8), a[1]);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, cols);
        }
    }
}

/// The AVX-512 tile, dispatched on its row count so the kernel's loops are fully unrolled.
///
/// # Safety
/// The CPU has AVX-512 F; `x` holds 12 rows of KC values (kc ≤ KC of them read), `w` kc × 32, and the `rows` × `cols`
/// tile at `c` (row stride `ldc`) is writable and written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn avx512_tile(
    rows: usize,
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    // SAFETY (all arms): the caller's contract, with R = rows ≤ 12.
    match rows {
        12 => avx512::<12>(x, w, kc, c, ldc, cols, init),
        11 => avx512::<11>(x, w, kc, c, ldc, cols, init),
        10 => avx512::<10>(x, w, kc, c, ldc, cols, init),
        9 => avx512::<9>(x, w, kc, c, ldc, cols, init),
        8 => avx512::<8>(x, w, kc, c, ldc, cols, init),
        7 => avx512::<7>(x, w, kc, c, ldc, cols, init),
        6 => avx512::<6>(x, w, kc, c, ldc, cols, init),
        5 => avx512::<5>(x, w, kc, c, ldc, cols, init),
        4 => avx512::<4>(x, w, kc, c, ldc, cols, init),
        3 => avx512::<3>(x, w, kc, c, ldc, cols, init),
        2 => avx512::<2>(x, w, kc, c, ldc, cols, init),
        _ => avx512::<1>(x, w, kc, c, ldc, cols, init),
    }
}

/// The lanes of two 16-lane registers that hold the first `n` values of a 32-wide tile:
/// masked loads and stores neither read nor write the others (and cannot fault on them).
#[cfg(target_arch = "x86_64")]
pub(super) fn pair_masks(n: usize) -> [std::arch::x86_64::__mmask16; 2] {
    let lanes = |n: usize| ((1u32 << n.min(16)) - 1) as std::arch::x86_64::__mmask16;
    [lanes(n), lanes(n.saturating_sub(16))]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512<const R: usize>(
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
    const NR: usize = AVX512_NR;
    // Lanes of the two 16-wide halves that hold real output channels.
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
    for kk in 0..kc {
        prefetch_panel_step(w, kk);
        let w0 = _mm512_loadu_ps(w.add(kk * NR));
        let w1 = _mm512_loadu_ps(w.add(kk * NR + 16));
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*x.add(r * KC + kk));
            a[0] = _mm512_fmadd_ps(xv, w0, a[0]);
            a[1] = _mm512_fmadd_ps(xv, w1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let row = c.add(r * ldc);
        _mm512_mask_storeu_ps(row, m0, a[0]);
        _mm512_mask_storeu_ps(row.wrapping_add(16), m1, a[1]);
    }
}
