//! A matrix product for inference with weights packed once at load time.
//!
//! General-purpose GEMM libraries re-pack the weight matrix on every call. With few rows of
//! input (one image is 50 tokens) that packing costs as much as the arithmetic, so here the
//! weights (out, in) are laid out once in panels of 16 output channels, k-major, and an
//! AVX2/FMA kernel computes 6 × 16 output tiles from the panels and from the input rows,
//! which are re-laid per depth block (cheap: they are few and reused by every panel). The bias is the tiles' starting value. Threads take blocks of rows, or for
//! small inputs ranges of panels, and write disjoint parts of the output.
//!
//! Shapes: X (M, K) row-major, W (N, K) as in the checkpoint, Y = X Wᵀ + b (M, N).

use rayon::prelude::*;

/// Output channels per panel: two AVX registers of 8 lanes.
const NR: usize = 16;
/// Rows per tile: 6 × 2 accumulators + 2 weight registers + 1 broadcast fit in 16 registers.
const MR: usize = 6;
/// Depth of one pass over the panels; a 16 × KC panel slice (16 KiB) stays in L1.
const KC: usize = 256;
/// Rows handed to one parallel task: a 96 × KC block of input (96 KiB) stays in L2.
const ROWS_PER_TASK: usize = 16 * MR;

/// Weights (N, K) re-laid as ⌈N/16⌉ panels of K × 16 values, zero-padded.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    data: Vec<f32>,
    n: usize,
    k: usize,
}

impl PackedWeight {
    /// Whether this CPU can run the packed kernel (x86-64 with AVX2 and FMA).
    pub fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packs a row-major (N, K) weight matrix.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight buffer does not match its shape");
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        data.par_chunks_exact_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                for j in 0..NR.min(n - p * NR) {
                    let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                    for (kk, &v) in row.iter().enumerate() {
                        panel[kk * NR + j] = v;
                    }
                }
            });
        PackedWeight { data, n, k }
    }

    /// Output width N.
    pub fn out_dim(&self) -> usize {
        self.n
    }

    /// Input width K.
    pub fn in_dim(&self) -> usize {
        self.k
    }

    /// Y = X Wᵀ (+ bias): x (M, K) row-major → (M, N) row-major.
    pub fn matmul(&self, x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let m = x.len() / k.max(1);
        assert_eq!(x.len(), m * k, "input does not match the weight's width");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias does not match the weight's height");
        }
        let mut y = vec![0f32; m * n];
        if m == 0 || n == 0 {
            return y;
        }
        let mut padded_bias = vec![0f32; n.div_ceil(NR) * NR];
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(b);
        }
        let out = SendPtr(y.as_mut_ptr());
        let panels = n.div_ceil(NR);
        if m <= ROWS_PER_TASK {
            // Few rows: share out the panels, so each weight is read by one thread only.
            let per_task = panels.div_ceil(2 * rayon::current_num_threads()).max(1);
            (0..panels)
                .into_par_iter()
                .step_by(per_task)
                .for_each(|p0| {
                    self.rows(x, m, p0..(p0 + per_task).min(panels), &padded_bias, out);
                });
        } else {
            // Many rows: blocks of rows, each kept in L2 while every panel passes over it.
            y.par_chunks_mut(ROWS_PER_TASK * n)
                .zip(x.par_chunks(ROWS_PER_TASK * k))
                .for_each(|(y, x)| {
                    self.rows(
                        x,
                        x.len() / k,
                        0..panels,
                        &padded_bias,
                        SendPtr(y.as_mut_ptr()),
                    );
                });
        }
        y
    }

    /// Computes `panels` of the output for `m` rows of x into `out` (row stride N).
    fn rows(
        &self,
        x: &[f32],
        m: usize,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr,
    ) {
        let (n, k) = (self.n, self.k);
        let tiles = m.div_ceil(MR);
        // The rows' current depth block, re-laid tile by tile as kc × MR values (k-major), so
        // the kernel's broadcasts read one contiguous stream.
        let mut packed_x = vec![0f32; tiles * KC * MR];
        for kb in (0..k).step_by(KC) {
            let kc = KC.min(k - kb);
            for (t, tile_x) in packed_x.chunks_exact_mut(KC * MR).enumerate() {
                for r in 0..MR.min(m - t * MR) {
                    let row = &x[(t * MR + r) * k + kb..(t * MR + r) * k + kb + kc];
                    for (kk, &v) in row.iter().enumerate() {
                        tile_x[kk * MR + r] = v;
                    }
                }
            }
            for p in panels.clone() {
                let panel = &self.data[p * k * NR + kb * NR..p * k * NR + (kb + kc) * NR];
                let cols = NR.min(n - p * NR);
                let init = if kb == 0 {
                    Init::Bias(&bias[p * NR..p * NR + NR])
                } else {
                    Init::Accumulate
                };
                for t in 0..tiles {
                    let rows = MR.min(m - t * MR);
                    let tile_x = &packed_x[t * KC * MR..];
                    // SAFETY: the tile covers rows t·6..t·6+rows and columns p·16..p·16+cols
                    // of the (M, N) output, inside `out`, written by this call alone; tile_x
                    // holds kc × 6 values and the panel slice kc × 16.
                    unsafe {
                        let c = out.0.add(t * MR * n + p * NR);
                        tile(rows, tile_x.as_ptr(), panel.as_ptr(), kc, c, n, cols, init);
                    }
                }
            }
        }
    }
}

/// How a tile's accumulators start.
#[derive(Clone, Copy)]
enum Init<'a> {
    /// From the bias (the first depth block).
    Bias(&'a [f32]),
    /// From the values already in the output (later depth blocks).
    Accumulate,
}

/// Dispatches on the tile's row count so the kernel's loops are fully unrolled.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    rows: usize,
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    match rows {
        6 => kernel::<6>(x, w, kc, c, ldc, cols, init),
        5 => kernel::<5>(x, w, kc, c, ldc, cols, init),
        4 => kernel::<4>(x, w, kc, c, ldc, cols, init),
        3 => kernel::<3>(x, w, kc, c, ldc, cols, init),
        2 => kernel::<2>(x, w, kc, c, ldc, cols, init),
        _ => kernel::<1>(x, w, kc, c, ldc, cols, init),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::x86_64::*;
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
            let xv = _mm256_broadcast_ss(&*x.add(kk * MR + r));
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

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(
    _: *const f32,
    _: *const f32,
    _: usize,
    _: *mut f32,
    _: usize,
    _: usize,
    _: Init,
) {
    unreachable!("PackedWeight::supported() is false off x86-64")
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each parallel task writes a disjoint block of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]))
                    .sum();
                y[i * n + j] = dot as f32 + b[j];
            }
        }
        y
    }

    #[test]
    fn matches_a_plain_product_for_awkward_shapes() {
        if !PackedWeight::supported() {
            return;
        }
        for (m, n, k) in [
            (1, 1, 1),
            (7, 17, 300),
            (50, 48, 513),
            (13, 33, 256),
            (2, 100, 31),
            (61, 16, 1000),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
            let got = PackedWeight::pack(&w, n, k).matmul(&x, Some(&b));
            let want = reference(&x, &w, &b, m, n, k);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-3, "{m}x{n}x{k}: {worst}");
        }
    }
}
