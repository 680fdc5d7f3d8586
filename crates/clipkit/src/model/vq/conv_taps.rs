//! 3×3 stride-1 "same" convolutions on AVX-512, read straight from the zero-padded image:
//! no patch matrix, no packing.
//!
//! With an image stored padded, (C, H+2, W+2), what kernel tap (kh, kw) reads for every
//! output position is one window of it: from `kh·(W+2) + kw`, `H·(W+2)` positions long,
//! channels a padded plane apart. Computed at the padded width ("wide": two columns per row
//! that are not outputs, dropped at the end), the convolution is a sum over channels and taps
//! of weight × window, which `Taps::product` runs as tiles of 12 output channels × 32 positions
//! held in registers. The patch-matrix path ([`super::conv`]) wrote nine copies of each image
//! and `gemm` packed them again; here one padded copy is made (the VQ trainer's figures
//! against that path and PyTorch are in the README).
//!
//! Backward: the input gradient is the same product over the padded output gradient with
//! the kernel flipped and its channels swapped; the weight gradient, a sum over positions,
//! is `dWᵀ[c, tap] += Σ_l window(c, tap)[l] · dY_wideᵀ[l]` (in tiles of
//! 12 (channel, tap) rows × 32 output channels), where `dY_wide` is the padded output
//! gradient read from its first inside position (its padding is the wide layout's zero
//! extra columns).

/// Taps of a 3×3 kernel.
const TAPS: usize = 9;
/// Kernel side.
const KERNEL: usize = 3;

/// The sizes of a 3×3, stride-1, padding-1 convolution of one image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taps {
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Image height (the output's too).
    pub h: usize,
    /// Image width (the output's too).
    pub w: usize,
}

/// Per-task scratch of [`Taps`]: the padded image and output gradient, a wide output, and
/// the wide output gradient transposed. Sized (and zeroed) on first use for a shape; after
/// that each image rewrites only the positions inside the image, so the padding stays zero.
#[derive(Default)]
pub(super) struct TapScratch {
    padded: Vec<f32>,
    padded_grad: Vec<f32>,
    wide: Vec<f32>,
    transposed: Vec<f32>,
}

impl Taps {
    /// Whether this CPU runs the tap products (AVX-512 F, as the active kernel).
    pub fn supported() -> bool {
        matches!(
            crate::model::Kernel::active(),
            crate::model::Kernel::Avx512 | crate::model::Kernel::Amx
        )
    }

    /// The padded row length.
    fn wide(&self) -> usize {
        self.w + 2
    }

    /// A padded channel.
    fn plane(&self) -> usize {
        (self.h + 2) * self.wide()
    }

    /// Output positions at the padded width.
    fn positions(&self) -> usize {
        self.h * self.wide()
    }

    /// Where tap `t`'s window starts in a padded plane.
    fn offset(&self, t: usize) -> usize {
        (t / KERNEL) * self.wide() + t % KERNEL
    }

    /// Copies `image` (channels, H, W) inside the padding of `padded`, sized for `channels`
    /// planes and two values more: the last tap's window of the last plane reaches two
    /// values past it (into columns that are dropped).
    fn pad(&self, image: &[f32], channels: usize, padded: &mut Vec<f32>) {
        let len = channels * self.plane() + 2;
        if padded.len() != len {
            padded.clear();
            padded.resize(len, 0.0);
        }
        let (w, wide, plane) = (self.w, self.wide(), self.plane());
        for (c, channel) in image.chunks_exact(self.h * w).enumerate() {
            for (y, row) in channel.chunks_exact(w).enumerate() {
                let at = c * plane + (y + 1) * wide + 1;
                padded[at..at + w].copy_from_slice(row);
            }
        }
    }

    /// The forward weights: `weight` (O, C, 3, 3) as (C, tap, O).
    pub fn forward_weights(&self, weight: &[f32]) -> Vec<f32> {
        let (c, o) = (self.in_c, self.out_c);
        (0..c * TAPS * o)
            .map(|i| {
                let (ct, oi) = (i / o, i % o);
                weight[(oi * c + ct / TAPS) * TAPS + ct % TAPS]
            })
            .collect()
    }

    /// The input-gradient weights: `weight` (O, C, 3, 3) flipped and transposed, as
    /// (O, tap, C) with tap `t` holding the forward tap `8 − t`.
    pub fn backward_weights(&self, weight: &[f32]) -> Vec<f32> {
        let (c, o) = (self.in_c, self.out_c);
        (0..o * TAPS * c)
            .map(|i| {
                let (ot, ci) = (i / c, i % c);
                weight[((ot / TAPS) * c + ci) * TAPS + (TAPS - 1 - ot % TAPS)]
            })
            .collect()
    }

    /// `out` (O, H, W) = the convolution of `image` (C, H, W) + `bias`, with `weights` from
    /// [`Taps::forward_weights`].
    pub fn forward(
        &self,
        image: &[f32],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
        scratch: &mut TapScratch,
    ) {
        self.pad(image, self.in_c, &mut scratch.padded);
        self.product(
            &scratch.padded,
            self.in_c,
            weights,
            self.out_c,
            Some(bias),
            &mut scratch.wide,
        );
        self.crop(&scratch.wide, out);
    }

    /// Adds this image's weight gradient to `dw_t` ((C·9) × O, row `c·9 + tap`) and writes
    /// its input gradient into `dx` (C, H, W), from the output gradient `dy` (O, H, W) and
    /// `weights` from [`Taps::backward_weights`].
    pub fn backward(
        &self,
        image: &[f32],
        weights: &[f32],
        dy: &[f32],
        dw_t: &mut [f32],
        dx: &mut [f32],
        scratch: &mut TapScratch,
    ) {
        let (c, o, l, plane) = (self.in_c, self.out_c, self.positions(), self.plane());
        self.pad(image, c, &mut scratch.padded);
        self.pad(dy, o, &mut scratch.padded_grad);
        // dY at the padded width, zero in the extra columns, is the padded gradient from its
        // first inside position (row 1, column 1); the weight gradient reads it transposed.
        let dy_wide = &scratch.padded_grad[self.wide() + 1..];
        scratch.transposed.resize(l * o, 0.0);
        // Written in order, read from O rows at once (scattered writes were slower).
        for (li, out) in scratch.transposed.chunks_exact_mut(o).enumerate() {
            for (oi, v) in out.iter_mut().enumerate() {
                *v = dy_wide[oi * plane + li];
            }
        }
        assert!(
            scratch.padded.len() >= c * plane + 2 && dw_t.len() == c * TAPS * o,
            "tap weight gradient: operand sizes"
        );
        let gradient = WeightGradient {
            src: scratch.padded.as_ptr(),
            plane,
            offsets: std::array::from_fn(|t| self.offset(t)),
            in_c: c,
            dy_t: scratch.transposed.as_ptr(),
            out_c: o,
            positions: l,
            dw_t: dw_t.as_mut_ptr(),
        };
        // SAFETY: the sizes were checked above, and `supported` (AVX-512 F) decides whether
        // this path runs at all.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::weight_gradient(&gradient);
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("tap products run only on x86-64 ({gradient:?})");
        self.product(&scratch.padded_grad, o, weights, c, None, &mut scratch.wide);
        self.crop(&scratch.wide, dx);
    }

    /// `wide` (out_c × L) = Σ over input channels and taps of weight × window of `padded`
    /// (+ `bias` per output channel), `weights` laid out (in_c, tap, out_c).
    fn product(
        &self,
        padded: &[f32],
        in_c: usize,
        weights: &[f32],
        out_c: usize,
        bias: Option<&[f32]>,
        wide: &mut Vec<f32>,
    ) {
        let l = self.positions();
        wide.resize(out_c * l, 0.0);
        assert!(
            padded.len() >= in_c * self.plane() + 2
                && weights.len() == in_c * TAPS * out_c
                && bias.is_none_or(|b| b.len() == out_c),
            "tap product: operand sizes"
        );
        let product = Product {
            src: padded.as_ptr(),
            plane: self.plane(),
            offsets: std::array::from_fn(|t| self.offset(t)),
            in_c,
            weights: weights.as_ptr(),
            out_c,
            bias: bias.map(<[f32]>::as_ptr),
            out: wide.as_mut_ptr(),
            positions: l,
        };
        // SAFETY: the sizes were checked above, and `supported` (AVX-512 F) decides whether
        // this path runs at all.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::product(&product);
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("tap products run only on x86-64 ({product:?})");
    }

    /// `out` (channels, H, W) from the wide rows of `wide`.
    fn crop(&self, wide: &[f32], out: &mut [f32]) {
        let (w, stride) = (self.w, self.wide());
        for (out, wide) in out
            .chunks_exact_mut(self.h * w)
            .zip(wide.chunks_exact(self.positions()))
        {
            for (row, wide_row) in out.chunks_exact_mut(w).zip(wide.chunks_exact(stride)) {
                row.copy_from_slice(&wide_row[..w]);
            }
        }
    }
}

/// The operands of one tap product, checked by [`Taps::product`].
#[derive(Debug)]
struct Product {
    /// The padded image: `in_c` planes of `plane` values, and two more.
    src: *const f32,
    plane: usize,
    /// Where each tap's window starts in a plane.
    offsets: [usize; TAPS],
    in_c: usize,
    /// (in_c, tap, out_c).
    weights: *const f32,
    out_c: usize,
    /// One per output channel, or zero.
    bias: Option<*const f32>,
    /// out_c × positions.
    out: *mut f32,
    positions: usize,
}

/// The operands of one image's weight gradient, checked by [`Taps::backward`].
#[derive(Debug)]
struct WeightGradient {
    /// The padded image: `in_c` planes of `plane` values, and two more.
    src: *const f32,
    plane: usize,
    /// Where each tap's window starts in a plane.
    offsets: [usize; TAPS],
    in_c: usize,
    /// The wide output gradient, transposed: positions × out_c.
    dy_t: *const f32,
    out_c: usize,
    positions: usize,
    /// (in_c·9) × out_c, added to.
    dw_t: *mut f32,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Product, WeightGradient, TAPS};
    use crate::model::packed_tiles::pair_masks;

    /// Positions per tile: two 16-lane registers.
    const TILE: usize = 32;

    /// Input channels per pass of the product, so that a tile's weights (16 channels × 9
    /// taps × 12 output channels, 6.9 KiB) and input rows stay in L1.
    const CHANNEL_BLOCK: usize = 16;

    /// Rows of a tile: 12 where there are as many left, then 8, 4, 1.
    fn block(left: usize) -> usize {
        match left {
            r if r >= 12 => 12,
            r if r >= 8 => 8,
            r if r >= 4 => 4,
            _ => 1,
        }
    }

    /// Runs the whole product: output channels in blocks of [`block`], positions in tiles
    /// of 32 (the last one masked).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, and `p` describe buffers of its sizes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(p: &Product) {
        for c0 in (0..p.in_c).step_by(CHANNEL_BLOCK) {
            let channels = c0..(c0 + CHANNEL_BLOCK).min(p.in_c);
            let mut o0 = 0;
            while o0 < p.out_c {
                let block = block(p.out_c - o0);
                let mut l0 = 0;
                while l0 < p.positions {
                    let channels = channels.clone();
                    match block {
                        12 => tile::<12>(p, o0, l0, channels),
                        8 => tile::<8>(p, o0, l0, channels),
                        4 => tile::<4>(p, o0, l0, channels),
                        _ => tile::<1>(p, o0, l0, channels),
                    }
                    l0 += TILE;
                }
                o0 += block;
            }
        }
    }

    /// Two 16-lane registers from `at`: the lanes under `masks`, zero in the others (which
    /// are not read).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_pair(masks: [__mmask16; 2], at: *const f32) -> [__m512; 2] {
        [
            _mm512_maskz_loadu_ps(masks[0], at),
            _mm512_maskz_loadu_ps(masks[1], at.wrapping_add(16)),
        ]
    }

    /// Stores the lanes of `pair` under `masks` at `at`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_pair(masks: [__mmask16; 2], at: *mut f32, pair: [__m512; 2]) {
        _mm512_mask_storeu_ps(at, masks[0], pair[0]);
        _mm512_mask_storeu_ps(at.wrapping_add(16), masks[1], pair[1]);
    }

    /// `acc += scale · x`, lane by lane, for both registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn fma_pair(acc: &mut [__m512; 2], scale: __m512, x: [__m512; 2]) {
        acc[0] = _mm512_fmadd_ps(scale, x[0], acc[0]);
        acc[1] = _mm512_fmadd_ps(scale, x[1], acc[1]);
    }

    /// Output channels `o0..o0 + OB`, positions `l0..l0 + 32` (those below `positions`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const OB: usize>(
        p: &Product,
        o0: usize,
        l0: usize,
        channels: std::ops::Range<usize>,
    ) {
        let masks = pair_masks(p.positions - l0);
        let out = |j: usize| p.out.wrapping_add((o0 + j) * p.positions + l0);
        let mut acc = [[_mm512_setzero_ps(); 2]; OB];
        for (j, acc) in acc.iter_mut().enumerate() {
            if channels.start > 0 {
                // A later block of channels adds to what the earlier ones wrote.
                *acc = load_pair(masks, out(j));
            } else if let Some(bias) = p.bias {
                *acc = [_mm512_set1_ps(*bias.add(o0 + j)); 2];
            }
        }
        for c in channels {
            let src = p.src.wrapping_add(c * p.plane + l0);
            let weights = p.weights.add(c * TAPS * p.out_c + o0);
            for (t, &offset) in p.offsets.iter().enumerate() {
                // Masked loads touch no lane past the window (nor past the buffer).
                let x = load_pair(masks, src.wrapping_add(offset));
                let w = weights.add(t * p.out_c);
                for (j, acc) in acc.iter_mut().enumerate() {
                    fma_pair(acc, _mm512_set1_ps(*w.add(j)), x);
                }
            }
        }
        for (j, &acc) in acc.iter().enumerate() {
            store_pair(masks, out(j), acc);
        }
    }

    /// Adds the weight gradient: rows (channel, tap) in blocks of [`block`], output
    /// channels in tiles of 32 (the last one masked).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, and `g` describe buffers of its sizes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_gradient(g: &WeightGradient) {
        let rows = g.in_c * TAPS;
        let mut r0 = 0;
        while r0 < rows {
            let block = block(rows - r0);
            let mut o0 = 0;
            while o0 < g.out_c {
                match block {
                    12 => gradient_tile::<12>(g, r0, o0),
                    8 => gradient_tile::<8>(g, r0, o0),
                    4 => gradient_tile::<4>(g, r0, o0),
                    _ => gradient_tile::<1>(g, r0, o0),
                }
                o0 += TILE;
            }
            r0 += block;
        }
    }

    /// Rows `r0..r0 + RB` of dWᵀ, output channels `o0..o0 + 32` (those below `out_c`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gradient_tile<const RB: usize>(g: &WeightGradient, r0: usize, o0: usize) {
        let masks = pair_masks(g.out_c - o0);
        let rows: [*const f32; RB] = std::array::from_fn(|j| {
            let r = r0 + j;
            g.src.add((r / TAPS) * g.plane + g.offsets[r % TAPS])
        });
        let dw = |j: usize| g.dw_t.wrapping_add((r0 + j) * g.out_c + o0);
        let mut acc = [[_mm512_setzero_ps(); 2]; RB];
        for (j, acc) in acc.iter_mut().enumerate() {
            *acc = load_pair(masks, dw(j));
        }
        for l in 0..g.positions {
            let dy = load_pair(masks, g.dy_t.wrapping_add(l * g.out_c + o0));
            for (acc, row) in acc.iter_mut().zip(&rows) {
                fma_pair(acc, _mm512_set1_ps(*row.add(l)), dy);
            }
        }
        for (j, &acc) in acc.iter().enumerate() {
            store_pair(masks, dw(j), acc);
        }
    }
}
