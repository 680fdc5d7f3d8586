//! A matrix product for inference with weights packed once at load time.
//!
//! General-purpose GEMM libraries re-pack the weight matrix on every call. With few rows of
//! input (one image is 50 tokens) that packing costs as much as the arithmetic, so here the
//! weights (out, in) are laid out once in panels of NR output channels, k-major, for the
//! [`Kernel`] in use: NR = 32 and tiles of 12 × 32 with AVX-512, NR = 16 and tiles of 6 × 16
//! with AVX2 ([`super::packed_tiles`]). The input rows are copied per depth block (cheap:
//! they are few and reused by every panel), from any [`InputRows`]: a matrix, or rows made
//! on the fly such as a convolution's patches. The bias is the tiles' starting value; an
//! [`Epilogue`] (residual sum, ReLU) runs on each finished block while it is in cache.
//! Threads take blocks of rows times groups of panels, and write disjoint parts of the
//! output. [`Kernel::Portable`] packs nothing: its products go through candle's matmul.
//! f32 panels may also be mapped from a file an earlier load wrote ([`super::PackedCache`]).
//!
//! Weights of lower [`Precision`] are packed in panels of the same width: int8 values with
//! per-channel scales ([`super::kernel_int8`], any packed kernel), and for the AVX-512
//! kernel bf16 pairs ([`super::kernel_bf16`]) or int8 quads for int8 inputs
//! ([`super::kernel_w8a8`]).
//!
//! Shapes: X (M, K) row-major, W (N, K) as in the checkpoint, Y = X Wᵀ + b (M, N).

use rayon::prelude::*;

use super::kernel::{has_feature, Kernel};
use super::kernel_amx::AMX_MR;
use super::kernel_w8a8::{W8a8Panels, W8a8Tile};
use super::packed_cache::MappedF32;
use super::packed_tiles::{Init, AVX2_MR, AVX2_NR, AVX512_MR, AVX512_NR, KC};
use super::precision::Precision;
use super::{kernel_amx, kernel_bf16, kernel_int8, kernel_w8a8};

/// Rows handed to one parallel task by the FMA kernels (a multiple of both their tile
/// heights): a 96 × KC block of input (96 KiB) stays in L2, and each panel slice read from
/// memory serves 8 tiles (AVX-512) or 16 (AVX2), enough to keep the FMAs busy.
const ROWS_PER_TASK: usize = 96;

/// Rows per task on AMX tiles: they multiply so fast that a panel slice must serve more rows
/// to pay for its trip from memory (at 96 rows the weight tile loads were most of the time:
/// image batch 32 ran 1.15x faster at 384); 384 × KC bf16 inputs are 192 KiB, still in L2.
/// (Passes over a few panels at a time, to keep the output block in L2 across the depth
/// blocks, made batch 32 1.4x slower.)
const AMX_ROWS_PER_TASK: usize = 384;

/// Weights (N, K) re-laid as ⌈N/NR⌉ panels of K × NR values, zero-padded, for one kernel.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    data: Panels,
    n: usize,
    k: usize,
    kernel: Kernel,
}

/// The panels' values in one precision.
#[derive(Debug, Clone)]
enum Panels {
    /// K × NR f32 values per panel.
    F32(F32Panels),
    /// ⌈K/2⌉ × NR bf16 pairs per panel.
    Bf16(Vec<u32>),
    /// K × NR bytes per panel and NR scales per panel.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
    /// ⌈K/4⌉ × NR byte quads per panel, for inputs quantised per row.
    W8a8(W8a8Panels),
}

/// f32 panel values: packed at load time, or mapped from a packed-weight cache file.
#[derive(Debug, Clone)]
enum F32Panels {
    Packed(Vec<f32>),
    Mapped(MappedF32),
}

impl F32Panels {
    fn values(&self) -> &[f32] {
        match self {
            F32Panels::Packed(values) => values,
            F32Panels::Mapped(values) => values.values(),
        }
    }
}

impl PackedWeight {
    /// Packs a row-major (N, K) weight matrix for [`Kernel::active`]; `None` when that kernel
    /// has no packed product ([`Kernel::Portable`]).
    pub fn pack(w: &[f32], n: usize, k: usize) -> Option<Self> {
        Self::pack_for(Kernel::active(), w, n, k)
    }

    /// Packs a row-major (N, K) weight matrix for `kernel`; `None` when the kernel has no
    /// packed product or this CPU cannot run it.
    pub fn pack_for(kernel: Kernel, w: &[f32], n: usize, k: usize) -> Option<Self> {
        Self::pack_as(kernel, Precision::Fp32, w, n, k)
    }

    /// Packs a row-major (N, K) weight matrix for `kernel` in `precision`; `None` when the
    /// kernel has no packed product in that precision on this CPU (bf16 needs AVX-512 BF16,
    /// w8a8 AVX-512 VNNI; int8 runs on AVX2 and AVX-512; portable packs nothing).
    pub fn pack_as(
        kernel: Kernel,
        precision: Precision,
        w: &[f32],
        n: usize,
        k: usize,
    ) -> Option<Self> {
        assert_eq!(w.len(), n * k, "weight buffer does not match its shape");
        if !Self::supports(kernel, precision) {
            return None;
        }
        let nr = tiling(kernel, precision).nr;
        let data = match precision {
            Precision::Fp32 => Panels::F32(F32Panels::Packed(pack_f32(w, n, k, nr))),
            Precision::Bf16 => Panels::Bf16(kernel_bf16::pack_panels(w, n, k, nr)),
            Precision::Int8 => {
                let (values, scales) = kernel_int8::pack_panels(w, n, k, nr);
                Panels::Int8 { values, scales }
            }
            Precision::W8a8 => Panels::W8a8(kernel_w8a8::pack_panels(w, n, k, nr, KC)),
        };
        Some(PackedWeight { data, n, k, kernel })
    }

    /// Whether `kernel` has a packed product in `precision` on this CPU.
    pub fn supports(kernel: Kernel, precision: Precision) -> bool {
        if kernel == Kernel::Portable || !kernel.is_supported() {
            return false;
        }
        match precision {
            Precision::Fp32 => true,
            Precision::Bf16 => {
                matches!(kernel, Kernel::Amx | Kernel::Avx512) && has_feature("avx512bf16")
            }
            Precision::Int8 => true,
            Precision::W8a8 => {
                matches!(kernel, Kernel::Amx | Kernel::Avx512) && has_feature("avx512vnni")
            }
        }
    }

    /// f32 panels for `kernel` that a packed-weight cache file holds: `None` unless the
    /// kernel has a packed f32 product on this CPU and `values` is as long as the panels of
    /// an (N, K) weight are.
    pub(super) fn from_mapped(
        kernel: Kernel,
        values: MappedF32,
        n: usize,
        k: usize,
    ) -> Option<Self> {
        let expected = Self::f32_panel_len(kernel, n, k)?;
        (values.len() == expected).then_some(PackedWeight {
            data: Panels::F32(F32Panels::Mapped(values)),
            n,
            k,
            kernel,
        })
    }

    /// How many values the f32 panels of an (N, K) weight hold for `kernel`; `None` when it
    /// has no packed f32 product on this CPU.
    pub(super) fn f32_panel_len(kernel: Kernel, n: usize, k: usize) -> Option<usize> {
        let nr = tiling(kernel, Precision::Fp32).nr;
        Self::supports(kernel, Precision::Fp32).then(|| n.div_ceil(nr) * k * nr)
    }

    /// The f32 panels' values, when the weight is held in f32 (what a cache file stores).
    pub(super) fn f32_panels(&self) -> Option<&[f32]> {
        match &self.data {
            Panels::F32(panels) => Some(panels.values()),
            _ => None,
        }
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
        assert_eq!(
            x.len() % self.k.max(1),
            0,
            "input does not match the weight's width"
        );
        self.product(&Matrix::new(x, self.k), bias, Epilogue::default())
    }

    /// Y = epilogue(X Wᵀ + bias) for any [`InputRows`] of width K → (M, N) row-major.
    /// Inputs that are not a matrix in memory are read tile by tile as the f32 and int8
    /// panels need them, and laid out whole first for the bf16 and w8a8 panels (which
    /// round or quantise whole rows).
    pub(super) fn product<S: InputRows>(
        &self,
        x: &S,
        bias: Option<&[f32]>,
        epilogue: Epilogue,
    ) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        if matches!(self.data, Panels::Bf16(_) | Panels::W8a8(_)) && x.matrix().is_none() {
            let rows = x.materialise(k);
            return self.product(&Matrix::new(&rows, k), bias, epilogue);
        }
        let m = x.len();
        // w8a8 inputs are quantised per row once, for every task.
        let quantized = match (&self.data, x.matrix()) {
            (Panels::W8a8(_), Some(x)) => Some(kernel_int8::quantize_rows(x, m, k)),
            _ => None,
        };
        let Tiling {
            nr,
            mr,
            rows_per_task,
        } = self.tiling();
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias does not match the weight's height");
        }
        if let Some(r) = epilogue.residual {
            assert_eq!(r.len(), m * n, "residual does not match the output");
        }
        let mut padded_bias = vec![0f32; n.div_ceil(nr) * nr];
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(b);
        }
        // The output is not cleared first (a pass over it, in a product that writes each
        // tile whole in its first depth block).
        let mut y: Vec<f32> = Vec::with_capacity(m * n);
        if m == 0 || n == 0 || k == 0 {
            // No depth block runs: each output is its bias.
            for _ in 0..m {
                y.extend_from_slice(&padded_bias[..n]);
            }
            // SAFETY: the (M, N) output, whole and this call's alone.
            unsafe { epilogue.apply(SendPtr(y.as_mut_ptr()), m, n, 0, n) };
            return y;
        }
        let out = SendPtr(y.as_mut_ptr());
        let panels = n.div_ceil(nr);
        // Tasks are blocks of rows (each kept in L2 while its panels pass over it) times
        // groups of panels, with enough groups for two tasks per thread: few rows (one
        // image) are shared out by panels, so each weight is read by one thread only, and
        // a few row blocks (eight images) still keep many threads busy.
        let rows_per_task = block_rows(m, rows_per_task, mr);
        let row_blocks = m.div_ceil(rows_per_task);
        let groups = panel_groups(row_blocks, panels, rayon::current_num_threads());
        let per_group = panels.div_ceil(groups);
        (0..row_blocks * groups).into_par_iter().for_each(|job| {
            let (block, group) = (job / groups, job % groups);
            let (r0, p0) = (block * rows_per_task, group * per_group);
            if p0 >= panels {
                return;
            }
            let rows = rows_per_task.min(m - r0);
            // SAFETY: row r0 is inside the (M, N) output, so the offset stays in `y`.
            let block_out = unsafe { out.add(r0 * n) };
            let block_epilogue = Epilogue {
                residual: epilogue.residual.map(|r| &r[r0 * n..(r0 + rows) * n]),
                relu: epilogue.relu,
            };
            self.rows(
                x,
                quantized.as_ref(),
                r0..r0 + rows,
                p0..(p0 + per_group).min(panels),
                &padded_bias,
                block_epilogue,
                block_out,
            );
        });
        // SAFETY: the tasks' rows and panels cover the (M, N) output, and the first depth
        // block (k > 0, so it ran) wrote each tile whole from the bias (`Init::Bias`) before
        // anything read it; the capacity is M·N.
        unsafe { y.set_len(m * n) };
        y
    }

    /// Computes `panels` of the output for `rows` of x into `out` (the first row's output,
    /// row stride N), the epilogue's residual starting at that row too; `quantized` holds
    /// every row of x quantised (values and scales) for w8a8 panels.
    #[allow(clippy::too_many_arguments)]
    fn rows<S: InputRows>(
        &self,
        source: &S,
        quantized: Option<&(Vec<i8>, Vec<f32>)>,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        epilogue: Epilogue,
        out: SendPtr,
    ) {
        let (n, k) = (self.n, self.k);
        let (r0, m) = (rows.start, rows.len());
        // The quantised panels read a matrix in memory (`product` made one).
        let x = source
            .matrix()
            .map_or(&[][..], |x| &x[r0 * k..(r0 + m) * k]);
        let Tiling { nr, mr, .. } = self.tiling();
        let tiles = m.div_ceil(mr);
        // The rows' current depth block, copied tile by tile as MR rows of stride KC (the f32
        // kernels' layout); bf16 inputs as rows of pairs and w8a8 inputs (quantised per row
        // first) as rows of quads, in `words`.
        let mut packed_x = Vec::new();
        let mut words = Vec::new();
        let quantized_x = quantized.map(|(q, s)| (&q[r0 * k..(r0 + m) * k], &s[r0..r0 + m]));
        match self.data {
            Panels::Bf16(_) | Panels::W8a8(_) => words = vec![0u32; tiles * KC.div_ceil(2) * mr],
            Panels::F32(_) | Panels::Int8 { .. } => packed_x = vec![0f32; tiles * KC * mr],
        }
        let words_per_tile = KC.div_ceil(2) * mr;
        let mut widened = match self.data {
            Panels::Int8 { .. } => vec![0f32; KC * nr],
            _ => Vec::new(),
        };
        for kb in (0..k).step_by(KC) {
            let kc = KC.min(k - kb);
            match (&self.data, &quantized_x) {
                (Panels::Bf16(_), _) => {
                    for (t, tile_x) in words.chunks_exact_mut(words_per_tile).enumerate() {
                        let first = &x[t * mr * k + kb..];
                        let rows = mr.min(m - t * mr);
                        kernel_bf16::pack_input_pairs(first, k, rows, kc, tile_x);
                    }
                }
                (Panels::W8a8(_), Some((q, _))) => {
                    for (t, tile_x) in words.chunks_exact_mut(words_per_tile).enumerate() {
                        let first = &q[t * mr * k + kb..];
                        let rows = mr.min(m - t * mr);
                        kernel_w8a8::pack_input_quads(first, k, rows, kc, tile_x);
                    }
                }
                _ => {
                    for (t, tile_x) in packed_x.chunks_exact_mut(KC * mr).enumerate() {
                        let first = r0 + t * mr;
                        source.pack_tile(first, mr.min(m - t * mr), kb, kc, tile_x);
                    }
                }
            }
            for p in panels.clone() {
                let cols = nr.min(n - p * nr);
                let init = if kb == 0 {
                    Init::Bias(&bias[p * nr..p * nr + nr])
                } else {
                    Init::Accumulate
                };
                // int8 weights are widened once per panel and depth block, then every tile
                // runs the f32 micro-kernel on them.
                if let Panels::Int8 { values, scales } = &self.data {
                    let bytes = &values[p * k * nr + kb * nr..p * k * nr + (kb + kc) * nr];
                    let scales = &scales[p * nr..(p + 1) * nr];
                    kernel_int8::dequantize_panel(bytes, scales, &mut widened[..kc * nr]);
                }
                for t in 0..tiles {
                    let rows = mr.min(m - t * mr);
                    // SAFETY: the tile covers rows t·MR..t·MR+rows and columns
                    // p·NR..p·NR+cols of the (M, N) output, inside `out`, written by this
                    // call alone; the input tile holds kc × MR values (⌈kc/2⌉ × MR pairs,
                    // ⌈kc/4⌉ × MR quads) and the panel slice kc × NR values (⌈kc/2⌉ × NR
                    // pairs, ⌈kc/4⌉ × NR quads, with NR scales and corrections); `pack_as`
                    // made this weight only for a kernel and precision the CPU supports.
                    unsafe {
                        let c = out.0.add(t * mr * n + p * nr);
                        let tile_words = words.get(t * words_per_tile..).unwrap_or(&[]).as_ptr();
                        let tile_x = packed_x.get(t * KC * mr..).unwrap_or(&[]).as_ptr();
                        let values = match &self.data {
                            Panels::F32(data) => {
                                let panel = data.values()[p * k * nr + kb * nr..].as_ptr();
                                tile(self.kernel, rows, tile_x, panel, kc, c, n, cols, init);
                                continue;
                            }
                            Panels::Bf16(data) => {
                                let pairs = k.div_ceil(2);
                                Quantized::Bf16(
                                    tile_words,
                                    data[(p * pairs + kb / 2) * nr..].as_ptr(),
                                )
                            }
                            Panels::Int8 { .. } => {
                                let panel = widened.as_ptr();
                                tile(self.kernel, rows, tile_x, panel, kc, c, n, cols, init);
                                continue;
                            }
                            Panels::W8a8(data) => {
                                let (quads, blocks) = (k.div_ceil(4), k.div_ceil(KC));
                                let correction = (p * blocks + kb / KC) * nr;
                                let row_scales = quantized_x.map_or(&[][..], |(_, s)| s);
                                Quantized::W8a8(
                                    tile_words,
                                    W8a8Tile {
                                        w: data.quads[(p * quads + kb / 4) * nr..].as_ptr(),
                                        row_scales: &row_scales[t * mr..],
                                        scales: &data.scales[p * nr..(p + 1) * nr],
                                        corrections: &data.corrections[correction..correction + nr],
                                    },
                                )
                            }
                        };
                        quantized_tile(self.kernel, rows, values, kc, c, n, cols, init);
                    }
                }
                if kb + kc == k {
                    // SAFETY: rows 0..m, columns p·NR..p·NR+cols of the block's output, which
                    // this call alone writes, and every tile of them is complete.
                    unsafe { epilogue.apply(out.add(p * nr), m, n, p * nr, cols) };
                }
            }
        }
    }
}

/// The input of a [`PackedWeight`] product: M rows of K values, read a depth block of
/// some rows at a time, so an input such as a convolution's patches need never be laid out
/// whole.
pub(super) trait InputRows: Sync {
    /// Rows M.
    fn len(&self) -> usize;

    /// Writes values kb..kb + dst.len() of row `row` into `dst`.
    fn read_row(&self, row: usize, kb: usize, dst: &mut [f32]);

    /// The rows as one row-major (M, K) matrix in memory, when they are one.
    fn matrix(&self) -> Option<&[f32]> {
        None
    }

    /// Copies values kb..kb + kc of `rows` rows from `first` into `tile`, row r at `r·KC`
    /// (kc ≤ [`KC`]): the f32 micro-kernels' input layout.
    fn pack_tile(&self, first: usize, rows: usize, kb: usize, kc: usize, tile: &mut [f32]) {
        for (r, dst) in tile.chunks_exact_mut(KC).take(rows).enumerate() {
            self.read_row(first + r, kb, &mut dst[..kc]);
        }
    }

    /// The rows laid out as one row-major (M, K) matrix.
    fn materialise(&self, k: usize) -> Vec<f32> {
        let mut rows = vec![0f32; self.len() * k];
        for (i, row) in rows.chunks_exact_mut(k.max(1)).enumerate() {
            self.read_row(i, 0, row);
        }
        rows
    }
}

/// A row-major (M, K) matrix as [`InputRows`].
pub(super) struct Matrix<'a> {
    values: &'a [f32],
    k: usize,
}

impl<'a> Matrix<'a> {
    /// `values` holds whole rows of `k` values.
    pub(super) fn new(values: &'a [f32], k: usize) -> Self {
        Matrix { values, k }
    }
}

impl InputRows for Matrix<'_> {
    fn len(&self) -> usize {
        self.values.len() / self.k.max(1)
    }

    fn read_row(&self, row: usize, kb: usize, dst: &mut [f32]) {
        let start = row * self.k + kb;
        dst.copy_from_slice(&self.values[start..start + dst.len()]);
    }

    fn matrix(&self) -> Option<&[f32]> {
        Some(self.values)
    }
}

/// What is done to the product's output once it is complete, while it is still in cache.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Epilogue<'a> {
    /// (M, N) values added to the product and bias (a residual connection).
    pub residual: Option<&'a [f32]>,
    /// max(0, ·) last.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Applies the epilogue to `rows` × `cols` outputs at `out` (row stride `ldc`), whose
    /// residual starts at column `col` of the epilogue's first row.
    ///
    /// # Safety
    /// The `rows` × `cols` block at `out` is inside the output and written by no one else
    /// meanwhile.
    unsafe fn apply(&self, out: SendPtr, rows: usize, ldc: usize, col: usize, cols: usize) {
        if self.residual.is_none() && !self.relu {
            return;
        }
        for r in 0..rows {
            // SAFETY: the caller's contract.
            let y = unsafe { std::slice::from_raw_parts_mut(out.0.add(r * ldc), cols) };
            if let Some(residual) = self.residual {
                let add = &residual[r * ldc + col..r * ldc + col + cols];
                for (v, a) in y.iter_mut().zip(add) {
                    *v += a;
                }
            }
            if self.relu {
                for v in y.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        }
    }
}

/// How many groups of panels each block of rows is split into, for `threads` threads: at
/// least two tasks per thread, and where the panels allow, a task count that is a multiple
/// of the thread count, so no thread is left with one task more than the others (eight
/// images are 5 blocks of rows: 5 tasks on 2 threads kept one idle for a sixth of the
/// product; 10 keep both busy).
fn panel_groups(row_blocks: usize, panels: usize, threads: usize) -> usize {
    let least = (2 * threads)
        .div_ceil(row_blocks.max(1))
        .clamp(1, panels.max(1));
    (least..=panels)
        .find(|g| (row_blocks * g).is_multiple_of(threads.max(1)))
        .unwrap_or(least)
}

/// Rows per block when `m` rows are cut into blocks of at most `most` rows (a multiple of
/// `mr`): as many blocks as `most` needs, of equal size rounded up to whole tiles. Each
/// block reads every panel once, so a short last block (eight images are 400 rows: four
/// of 96 and one of 16) paid a pass over the weights for a few rows.
fn block_rows(m: usize, most: usize, mr: usize) -> usize {
    let blocks = m.div_ceil(most).max(1);
    (m.div_ceil(blocks).div_ceil(mr) * mr).min(most)
}

/// A kernel's panel width NR, tile height MR and rows per parallel task.
#[derive(Clone, Copy)]
struct Tiling {
    nr: usize,
    mr: usize,
    rows_per_task: usize,
}

impl PackedWeight {
    /// The tiling of this weight's kernel and precision.
    fn tiling(&self) -> Tiling {
        let precision = match self.data {
            Panels::F32(_) => Precision::Fp32,
            Panels::Bf16(_) => Precision::Bf16,
            Panels::Int8 { .. } => Precision::Int8,
            Panels::W8a8(_) => Precision::W8a8,
        };
        tiling(self.kernel, precision)
    }
}

fn tiling(kernel: Kernel, precision: Precision) -> Tiling {
    match kernel {
        // AMX blocks are 32 rows (two input tiles) for bf16 and w8a8.
        Kernel::Amx if matches!(precision, Precision::Bf16 | Precision::W8a8) => Tiling {
            nr: AVX512_NR,
            mr: AMX_MR,
            rows_per_task: AMX_ROWS_PER_TASK,
        },
        Kernel::Amx | Kernel::Avx512 => Tiling {
            nr: AVX512_NR,
            mr: AVX512_MR,
            rows_per_task: ROWS_PER_TASK,
        },
        // Portable never packs; its arm only keeps the match total.
        Kernel::Avx2 | Kernel::Portable => Tiling {
            nr: AVX2_NR,
            mr: AVX2_MR,
            rows_per_task: ROWS_PER_TASK,
        },
    }
}

/// One tile by the kernel's micro-kernel.
///
/// # Safety
/// `kernel` is supported by this CPU and is not [`Kernel::Portable`]; the pointers satisfy
/// the micro-kernels' contract ([`super::packed_tiles`]).
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kernel: Kernel,
    rows: usize,
    x: *const f32,
    w: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: the caller's contract.
        Kernel::Amx | Kernel::Avx512 => {
            super::packed_tiles::avx512_tile(rows, x, w, kc, c, ldc, cols, init)
        }
        Kernel::Avx2 => super::packed_tiles::avx2_tile(rows, x, w, kc, c, ldc, cols, init),
        Kernel::Portable => unreachable!("the portable kernel packs no weights"),
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kernel, rows, x, w, kc, c, ldc, cols, init);
        unreachable!("PackedWeight::pack_for packs nothing off x86-64")
    }
}

/// A tile's input and panel in a lower precision (int8 weights run the f32 kernel once
/// widened).
enum Quantized<'a> {
    /// Input pairs and weight pairs.
    Bf16(*const u32, *const u32),
    /// Input quads and the weights' side.
    W8a8(*const u32, W8a8Tile<'a>),
}

/// One tile of a lower precision, by the AVX-512 kernels (the only ones that pack them), bf16
/// on AMX tiles for [`Kernel::Amx`].
///
/// # Safety
/// This CPU runs `kernel` and the precision's kernel ([`PackedWeight::supports`]); the
/// pointers satisfy its contract ([`super::kernel_bf16`], [`super::kernel_amx`],
/// [`super::kernel_w8a8`]).
#[allow(clippy::too_many_arguments)]
unsafe fn quantized_tile(
    kernel: Kernel,
    rows: usize,
    values: Quantized,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    #[cfg(target_arch = "x86_64")]
    match values {
        // SAFETY: the caller's contract.
        Quantized::Bf16(x, w) if kernel == Kernel::Amx => {
            kernel_amx::amx_bf16_tile(rows, x, w, kc, c, ldc, cols, init)
        }
        Quantized::Bf16(x, w) => kernel_bf16::avx512_bf16_tile(rows, x, w, kc, c, ldc, cols, init),
        Quantized::W8a8(x, t) if kernel == Kernel::Amx => {
            kernel_amx::amx_w8a8_tile(rows, x, t, kc, c, ldc, cols, init)
        }
        Quantized::W8a8(x, t) => {
            kernel_w8a8::avx512_vnni_tile(rows, x, t, kc, None, c, ldc, cols, init)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kernel, rows, values, kc, c, ldc, cols, init);
        unreachable!("PackedWeight::pack_as packs nothing off x86-64")
    }
}

/// Packs a row-major (N, K) f32 matrix into ⌈N/NR⌉ zero-padded panels of K × NR values.
fn pack_f32(w: &[f32], n: usize, k: usize, nr: usize) -> Vec<f32> {
    let mut data = vec![0f32; n.div_ceil(nr) * k * nr];
    data.par_chunks_exact_mut((k * nr).max(1))
        .enumerate()
        .for_each(|(p, panel)| {
            for j in 0..nr.min(n - p * nr) {
                let row = &w[(p * nr + j) * k..(p * nr + j + 1) * k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * nr + j] = v;
                }
            }
        });
    data
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each parallel task writes a disjoint block of the output.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer `offset` values further on (a method, so closures capture the whole
    /// `SendPtr` rather than its raw pointer field).
    ///
    /// # Safety
    /// The result stays inside the buffer the pointer points into.
    unsafe fn add(self, offset: usize) -> SendPtr {
        SendPtr(self.0.add(offset))
    }
}

/// The integration tests' comparison (non-finite values never pass).
#[cfg(test)]
#[path = "../../tests/common/compare.rs"]
mod compare_in_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::packed_kernels;
    use compare_in_tests as compare;

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
    fn row_blocks_are_whole_tiles_of_even_size() {
        assert_eq!(block_rows(400, 96, 12), 84); // 84 × 4 + 64, not 96 × 4 + 16
        assert_eq!(block_rows(1600, 96, 12), 96);
        assert_eq!(block_rows(50, 96, 12), 60);
        assert_eq!(block_rows(96, 96, 12), 96);
        assert_eq!(block_rows(0, 96, 12), 0);
        for m in 1..1000 {
            let rows = block_rows(m, 96, 12);
            assert!(
                rows > 0 && rows <= 96 && rows.is_multiple_of(12),
                "{m}: {rows}"
            );
            assert_eq!(m.div_ceil(rows), m.div_ceil(96), "{m}: {rows}");
        }
    }

    /// Tasks come to at least two per thread, and to a multiple of the thread count where
    /// the panels allow it (ViT-B/32 on AVX2: 48 panels; 5 row blocks are eight images).
    #[test]
    fn panel_groups_give_every_thread_the_same_number_of_tasks() {
        for threads in [1, 2, 3, 4, 8, 16] {
            for row_blocks in [1, 2, 5, 17, 26] {
                let groups = panel_groups(row_blocks, 48, threads);
                let tasks = row_blocks * groups;
                assert!((1..=48).contains(&groups));
                assert!(
                    tasks >= (2 * threads).min(row_blocks * 48),
                    "{threads} {row_blocks}"
                );
                assert!(
                    tasks.is_multiple_of(threads),
                    "{threads} threads, {row_blocks} blocks"
                );
            }
        }
        assert_eq!(
            panel_groups(5, 48, 2),
            2,
            "eight images on two threads: 10 tasks"
        );
        // Too few panels for a multiple: at least two tasks per thread still.
        assert_eq!(panel_groups(1, 3, 2), 3);
        assert_eq!(panel_groups(1, 24, 32), 24);
    }

    /// Every packed kernel this CPU runs matches an f64 product, across shapes that leave
    /// partial tiles, partial panels and partial depth blocks, with and without many rows.
    #[test]
    fn every_supported_kernel_matches_a_plain_product_for_awkward_shapes() {
        for kernel in packed_kernels() {
            for (m, n, k) in [
                (1, 1, 1),
                (7, 17, 300),
                (50, 48, 513),
                (13, 33, 256),
                (2, 100, 31),
                (61, 16, 1000),
                (200, 70, 300),
                (25, 32, 64),
            ] {
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                    .collect();
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                    .collect();
                let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
                let packed = PackedWeight::pack_for(kernel, &w, n, k).expect("supported");
                let got = packed.matmul(&x, Some(&b));
                let want = reference(&x, &w, &b, m, n, k);
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    got.iter().all(|v| v.is_finite()) && worst < 1e-3,
                    "{kernel} {m}x{n}x{k}: {worst}"
                );
            }
        }
    }

    #[test]
    fn the_portable_kernel_packs_nothing() {
        assert!(PackedWeight::pack_for(Kernel::Portable, &[1.0], 1, 1).is_none());
        for p in [Precision::Bf16, Precision::Int8, Precision::W8a8] {
            assert!(PackedWeight::pack_as(Kernel::Portable, p, &[1.0], 1, 1).is_none());
            let avx2 = PackedWeight::pack_as(Kernel::Avx2, p, &[1.0], 1, 1);
            assert_eq!(
                avx2.is_some(),
                p == Precision::Int8 && Kernel::Avx2.is_supported()
            );
        }
    }

    /// The AMX tiles compute what the AVX-512 kernels compute: w8a8 exactly (integer sums,
    /// the same scaling), bf16 up to the order of f32 sums; across whole and partial
    /// blocks, depths with and without a tail past the AMX steps, and rows past 16.
    #[test]
    fn amx_tiles_match_the_avx512_kernels() {
        if !Kernel::Amx.is_supported() {
            eprintln!("no AMX on this CPU: nothing to compare");
            return;
        }
        for (m, n, k) in [
            (32, 32, 256),
            (96, 64, 768),
            (50, 70, 300),
            (17, 33, 64),
            (5, 32, 1000),
            (40, 9, 31),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.3)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.7)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
            for precision in [Precision::Bf16, Precision::W8a8] {
                let product = |kernel| {
                    PackedWeight::pack_as(kernel, precision, &w, n, k)
                        .expect("supported")
                        .matmul(&x, Some(&b))
                };
                let (amx, avx512) = (product(Kernel::Amx), product(Kernel::Avx512));
                let worst = compare::max_abs_diff_slices(&amx, &avx512);
                let bound = if precision == Precision::W8a8 {
                    0.0
                } else {
                    1e-4
                };
                assert!(worst <= bound, "{precision} {m}x{n}x{k}: {worst}");
            }
        }
    }

    /// What a precision makes of a row-major (N, K) matrix (the weights, or the input:
    /// weight-only int8 leaves its inputs as they are).
    fn rounded(precision: Precision, v: &[f32], rows: usize, k: usize, input: bool) -> Vec<f32> {
        if input && precision == Precision::Int8 {
            v.to_vec()
        } else {
            precision.round_rows(v, rows, k)
        }
    }

    /// The bf16, int8 and w8a8 products of every packed kernel match an f64 product of the
    /// same rounded (bf16) or quantised (int8; w8a8 inputs per row too) values within 1e-3
    /// (as the f32 kernels do), across awkward shapes (odd depths included), and differ from
    /// the unrounded product by more than that: the comparison can tell the precisions apart.
    #[test]
    fn lower_precision_kernels_match_a_scalar_product_of_the_same_rounding() {
        let mut runs = Vec::new();
        for kernel in [Kernel::Amx, Kernel::Avx512, Kernel::Avx2] {
            for p in [Precision::Bf16, Precision::Int8, Precision::W8a8] {
                if PackedWeight::supports(kernel, p) {
                    runs.push((kernel, p));
                }
            }
        }
        eprintln!("lower precisions packed on this CPU: {runs:?}");
        for (kernel, precision) in runs {
            let (mut worst_same, mut worst_vs_fp32) = (0f32, 0f32);
            for (m, n, k) in [
                (1, 1, 1),
                (7, 17, 301),
                (50, 48, 513),
                (13, 33, 256),
                (2, 100, 31),
                (61, 16, 1000),
                (200, 70, 300),
            ] {
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.3)
                    .collect();
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.7)
                    .collect();
                let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
                let packed = PackedWeight::pack_as(kernel, precision, &w, n, k).expect("supported");
                let got = packed.matmul(&x, Some(&b));
                let w_rounded = rounded(precision, &w, n, k, false);
                let x_rounded = rounded(precision, &x, m, k, true);
                let want = reference(&x_rounded, &w_rounded, &b, m, n, k);
                let worst = compare::max_abs_diff_slices(&got, &want);
                assert!(worst < 1e-3, "{kernel} {precision} {m}x{n}x{k}: {worst}");
                worst_same = worst_same.max(worst);
                let fp32 = reference(&x, &w, &b, m, n, k);
                worst_vs_fp32 = worst_vs_fp32.max(compare::max_abs_diff_slices(&got, &fp32));
            }
            eprintln!(
                "{kernel} {precision}: worst difference {worst_same:.1e} from the same \
                 rounding, {worst_vs_fp32:.1e} from fp32"
            );
            assert!(worst_vs_fp32 > 1e-2, "{precision}: {worst_vs_fp32}");
        }
    }
}
