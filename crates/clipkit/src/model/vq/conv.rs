//! The VQ model's convolutions: one candle op for convolution + bias, with its own backward
//! pass.
//!
//! candle's CPU convolution takes its input gradient through a direct transposed
//! convolution (a dot product per output value) and its bias gradient through a broadcast
//! reduction; those two were a third of a VQ training step. Here every product is one GEMM
//! per image over the patch matrix (im2col): forward `Y = W · cols + b`, backward
//! `dW = Σ dY · colsᵀ` (summed as its transpose `cols · dYᵀ`, so `gemm` packs dY rather than
//! the patches), `db = Σ dY`, `dcols = Wᵀ · dY` folded back onto the input (col2im).
//! On AVX-512, 3×3 stride-1 padded convolutions of 8 channels or more (all of a VQ model's
//! but its RGB input, its strided downsamplers and 1×1 shortcuts) skip the patch matrix and
//! run as tap products over the padded image ([`super::conv_taps`]).
//! Images run in parallel; the weight and bias gradients are summed over fixed chunks of
//! images in chunk order, so they are the same bit for bit on every run and thread count.
//!
//! Shapes: x (B, C, H, W), weight (O, C, K, K), bias (O), y (B, O, OH, OW); P = OH·OW and
//! CKK = C·K·K.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::conv_taps::{TapScratch, Taps};
use crate::model::grad_ops::{add_columns, matmul, matmul_accumulate};
use crate::model::ops::contiguous_f32;

/// Images per task of the weight-gradient sums (fixed, so the sum order never changes).
const IMAGES_PER_CHUNK: usize = 4;

/// Input channels from which a 3×3 "same" convolution runs as tap products: an RGB input's
/// patch matrix is small, and its one product deeper than nine taps of three channels.
const MIN_TAP_CHANNELS: usize = 8;

/// A square convolution with a bias, zero padding on every side, and a stride.
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    geometry: Geometry,
}

impl Conv {
    /// Loads `weight` (out_c, in_c, kernel, kernel) and `bias` (out_c) under `vb`.
    pub fn load(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let init = candle_nn::init::DEFAULT_KAIMING_NORMAL;
        let weight = vb.get_with_hints((out_c, in_c, kernel, kernel), "weight", init)?;
        // candle_nn::conv2d's initialisation, so new models start as they did before.
        let bound = 1.0 / (in_c as f64).sqrt();
        let bias_init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let bias = vb.get_with_hints(out_c, "bias", bias_init)?;
        Ok(Conv {
            weight,
            bias,
            geometry: Geometry {
                kernel,
                stride,
                padding,
            },
        })
    }

    /// The (out_c, in_c, kernel, kernel) weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let op = ConvOp(self.geometry);
        if x.track_op() || self.weight.track_op() || self.bias.track_op() {
            x.apply_op3_arc(&self.weight, &self.bias, Arc::new(Box::new(op)))
        } else {
            x.apply_op3_no_bwd(&self.weight, &self.bias, &op)
        }
    }
}

/// Kernel side, stride and padding of a convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    kernel: usize,
    stride: usize,
    padding: usize,
}

/// The sizes of one application of a convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    in_c: usize,
    out_c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    geometry: Geometry,
}

/// A block of [`Dims::for_each_block`]: `rows` runs of `len` output positions.
#[derive(Clone, Copy)]
struct Run {
    /// Patch-matrix index of the first run's first position.
    col: usize,
    /// Image offset its input starts at.
    at: usize,
    /// Positions per run.
    len: usize,
    /// Runs, one per output row.
    rows: usize,
}

impl Dims {
    fn new(x: &Layout, weight: &Layout, geometry: Geometry) -> Result<Self> {
        let (batch, in_c, h, w) = x.shape().dims4()?;
        let (out_c, w_in, kh, kw) = weight.shape().dims4()?;
        let Geometry {
            kernel,
            stride,
            padding,
        } = geometry;
        if w_in != in_c || kh != kernel || kw != kernel || stride == 0 {
            candle_core::bail!(
                "convolution: input of {in_c} channels, weight {:?}, kernel {kernel}, stride {stride}",
                weight.shape().dims()
            );
        }
        let (ph, pw) = (h + 2 * padding, w + 2 * padding);
        if ph < kernel || pw < kernel {
            candle_core::bail!(
                "convolution: a {h}×{w} input is smaller than its {kernel}×{kernel} kernel"
            );
        }
        Ok(Dims {
            batch,
            in_c,
            out_c,
            h,
            w,
            oh: (ph - kernel) / stride + 1,
            ow: (pw - kernel) / stride + 1,
            geometry,
        })
    }

    /// Output positions per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of the patch matrix: one per (input channel, kernel row, kernel column).
    fn ckk(&self) -> usize {
        self.in_c * self.geometry.kernel * self.geometry.kernel
    }

    fn image_len(&self) -> usize {
        self.in_c * self.h * self.w
    }

    /// The convolution as tap products ([`Taps`]) when it is 3×3, stride 1, padding 1 over
    /// at least [`MIN_TAP_CHANNELS`] channels, and the CPU runs them.
    fn taps(&self) -> Option<Taps> {
        let g = self.geometry;
        let fits = g.kernel == 3 && g.stride == 1 && g.padding == 1;
        (fits && self.in_c >= MIN_TAP_CHANNELS && Taps::supported()).then_some(Taps {
            in_c: self.in_c,
            out_c: self.out_c,
            h: self.h,
            w: self.w,
        })
    }

    /// Whether the patch matrix is the image itself (1×1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        let g = self.geometry;
        g.kernel == 1 && g.stride == 1 && g.padding == 0
    }

    /// For each patch-matrix row, the block of output rows whose inputs are inside the image:
    /// `f(Run { col, at, len, rows })`. Row r of the block is the run of `len` output
    /// positions from column `col + r·ow`, reading inputs `stride` apart from offset
    /// `at + r·stride·w` (within one image). The one walk shared by im2col and col2im.
    fn for_each_block(&self, mut f: impl FnMut(Run)) {
        let Geometry {
            kernel,
            stride,
            padding,
        } = self.geometry;
        let p = self.p();
        // Output column ox reads input column ox·stride + kw − padding: the first ox at or
        // past the left padding, and the count that stays left of the right edge.
        let span = |k: usize, size: usize, outputs: usize| {
            let first = padding.saturating_sub(k).div_ceil(stride);
            let end = (size + padding)
                .checked_sub(k)
                .map_or(0, |reach| reach.div_ceil(stride))
                .min(outputs);
            (first, end.saturating_sub(first))
        };
        for c in 0..self.in_c {
            for kh in 0..kernel {
                let (oy0, rows) = span(kh, self.h, self.oh);
                for kw in 0..kernel {
                    let (ox0, len) = span(kw, self.w, self.ow);
                    if len == 0 || rows == 0 {
                        continue;
                    }
                    let row = ((c * kernel + kh) * kernel + kw) * p;
                    let (iy, ix) = (oy0 * stride + kh - padding, ox0 * stride + kw - padding);
                    f(Run {
                        col: row + oy0 * self.ow + ox0,
                        at: (c * self.h + iy) * self.w + ix,
                        len,
                        rows,
                    });
                }
            }
        }
    }

    /// Whether a block's rows lie `w` apart in both the patch matrix and the image (stride
    /// 1 and an output as wide as the input, as in a "same" convolution): then a block is
    /// one stretch of each, with `w − len` positions between its runs.
    fn rows_are_contiguous(&self) -> bool {
        self.geometry.stride == 1 && self.ow == self.w
    }

    /// The patch-matrix column and image offset where row `r` of `run` starts.
    fn run_start(&self, run: Run, r: usize) -> (usize, usize) {
        (
            run.col + r * self.ow,
            run.at + r * self.geometry.stride * self.w,
        )
    }

    /// The length of a block taken as one stretch, when [`Dims::rows_are_contiguous`].
    fn stretch(&self, run: Run) -> usize {
        (run.rows - 1) * self.w + run.len
    }

    /// Sets the patch-matrix positions between the runs of a contiguous block (padding
    /// positions inside its stretch) to zero.
    fn zero_gaps(&self, run: Run, cols: &mut [f32]) {
        for r in 0..run.rows - 1 {
            let (col, _) = self.run_start(run, r);
            cols[col + run.len..col + self.w].fill(0.0);
        }
    }

    /// Writes the patch matrix of one image into `cols` (CKK × P) where the kernel reads the
    /// image; the positions where it reads padding are left as they are (zero, see
    /// [`Dims::patches`]).
    fn im2col(&self, image: &[f32], cols: &mut [f32]) {
        let stride = self.geometry.stride;
        let contiguous = self.rows_are_contiguous();
        self.for_each_block(|run| {
            if contiguous {
                // One copy of the stretch (short copies, one per row, were a call each),
                // then the padding positions between the runs set back to zero.
                let span = self.stretch(run);
                cols[run.col..run.col + span].copy_from_slice(&image[run.at..run.at + span]);
                self.zero_gaps(run, cols);
                return;
            }
            for r in 0..run.rows {
                let (col, at) = self.run_start(run, r);
                let dst = &mut cols[col..col + run.len];
                if stride == 1 {
                    dst.copy_from_slice(&image[at..at + run.len]);
                } else {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = image[at + i * stride];
                    }
                }
            }
        });
    }

    /// Adds a (CKK, P) patch-matrix gradient onto the image gradient it came from. The
    /// entries at padding positions are gradients of nothing; `cols` is scratch, and they may
    /// be overwritten.
    fn col2im(&self, cols: &mut [f32], image: &mut [f32]) {
        let stride = self.geometry.stride;
        let contiguous = self.rows_are_contiguous();
        self.for_each_block(|run| {
            if contiguous {
                // Zero the padding positions between the runs, then add the stretch whole.
                self.zero_gaps(run, cols);
                let span = self.stretch(run);
                let src = &cols[run.col..run.col + span];
                for (d, &v) in image[run.at..run.at + span].iter_mut().zip(src) {
                    *d += v;
                }
                return;
            }
            for r in 0..run.rows {
                let (col, at) = self.run_start(run, r);
                let src = &cols[col..col + run.len];
                if stride == 1 {
                    for (d, &v) in image[at..at + run.len].iter_mut().zip(src) {
                        *d += v;
                    }
                } else {
                    for (i, &v) in src.iter().enumerate() {
                        image[at + i * stride] += v;
                    }
                }
            }
        });
    }

    /// The patch matrix of `image`, borrowed when it is the image itself. `buffer` is
    /// zeroed when it is first sized for these dimensions; after that, each image writes
    /// the same positions, so the padding positions stay zero and the matrix need not be
    /// cleared again (that clearing was a tenth of a VQ training step).
    fn patches<'a>(&self, image: &'a [f32], buffer: &'a mut Vec<f32>) -> &'a [f32] {
        if self.is_pointwise() {
            return image;
        }
        let len = self.ckk() * self.p();
        if buffer.len() != len {
            buffer.clear();
            buffer.resize(len, 0.0);
        }
        self.im2col(image, buffer);
        buffer
    }
}

/// Convolution + bias: (x, weight, bias) → y.
struct ConvOp(Geometry);

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "clipkit-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(xl, wl, self.0)?;
        let x = contiguous_f32(xs, xl, "convolution input")?;
        let weight = contiguous_f32(ws, wl, "convolution weight")?;
        let bias = contiguous_f32(bs, bl, "convolution bias")?;
        if bias.len() != d.out_c {
            candle_core::bail!(
                "convolution: {} biases for {} channels",
                bias.len(),
                d.out_c
            );
        }
        let (p, ckk) = (d.p(), d.ckk());
        let taps = d.taps().map(|taps| (taps, taps.forward_weights(weight)));
        let mut y = vec![0f32; d.batch * d.out_c * p];
        y.par_chunks_mut((d.out_c * p).max(1))
            .zip(x.par_chunks(d.image_len().max(1)))
            .for_each_init(
                <(Vec<f32>, TapScratch)>::default,
                |(buffer, scratch), (out, image)| {
                    if let Some((taps, tap_weights)) = &taps {
                        taps.forward(image, tap_weights, bias, out, scratch);
                        return;
                    }
                    for (row, &b) in out.chunks_exact_mut(p.max(1)).zip(bias) {
                        row.fill(b);
                    }
                    let cols = d.patches(image, buffer);
                    // SAFETY: W (O × CKK), cols (CKK × P) and out (O × P) are row-major buffers
                    // of exactly those sizes; out is this task's alone.
                    unsafe {
                        matmul_accumulate(
                            d.out_c,
                            p,
                            ckk,
                            out.as_mut_ptr(),
                            1,
                            p as isize,
                            weight.as_ptr(),
                            1,
                            ckk as isize,
                            cols.as_ptr(),
                            1,
                            p as isize,
                        );
                    }
                },
            );
        Ok((CpuStorage::F32(y), (d.batch, d.out_c, d.oh, d.ow).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stacked = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &ConvBackward(self.0))?;
        let (nx, nw) = (x.elem_count(), weight.elem_count());
        let dx = stacked.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = stacked.narrow(0, nx, nw)?.reshape(weight.shape())?;
        let db = stacked.narrow(0, nx + nw, bias.elem_count())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The convolution's gradients: (x, weight, dy) → [dx; dweight; dbias], flattened.
struct ConvBackward(Geometry);

impl CustomOp3 for ConvBackward {
    fn name(&self) -> &'static str {
        "clipkit-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(xl, wl, self.0)?;
        let x = contiguous_f32(xs, xl, "convolution input")?;
        let weight = contiguous_f32(ws, wl, "convolution weight")?;
        let dy = contiguous_f32(gs, gl, "convolution output gradient")?;
        let (p, ckk, o) = (d.p(), d.ckk(), d.out_c);
        if dy.len() != d.batch * o * p {
            candle_core::bail!("convolution: an output gradient of {} values", dy.len());
        }
        let (image_len, out_len) = (d.image_len().max(1), (o * p).max(1));
        let taps = d.taps().map(|taps| (taps, taps.backward_weights(weight)));
        // Room for dW and db after dx, so appending them does not copy dx.
        let mut dx = Vec::with_capacity(x.len() + weight.len() + o);
        dx.resize(x.len(), 0f32);
        // Each chunk of images: its input gradients in place, and its partial dW and db.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(image_len * IMAGES_PER_CHUNK)
            .zip(x.par_chunks(image_len * IMAGES_PER_CHUNK))
            .zip(dy.par_chunks(out_len * IMAGES_PER_CHUNK))
            .map(|((dx, x), dy)| {
                let mut dw_t = vec![0f32; ckk * o];
                let mut db = vec![0f32; o];
                let mut scratch = TapScratch::default();
                let (mut buffer, mut dcols) = (Vec::new(), Vec::new());
                if taps.is_none() {
                    dcols.resize(ckk * p, 0f32);
                }
                for ((dx, image), dy) in dx
                    .chunks_mut(image_len)
                    .zip(x.chunks(image_len))
                    .zip(dy.chunks(out_len))
                {
                    for (b, row) in db.iter_mut().zip(dy.chunks_exact(p.max(1))) {
                        *b += row.iter().sum::<f32>();
                    }
                    if let Some((taps, tap_weights)) = &taps {
                        taps.backward(image, tap_weights, dy, &mut dw_t, dx, &mut scratch);
                        continue;
                    }
                    let cols = d.patches(image, &mut buffer);
                    let dcols_into = if d.is_pointwise() {
                        &mut *dx
                    } else {
                        &mut dcols[..]
                    };
                    // SAFETY: dy (O × P), cols (CKK × P), W (O × CKK), dWᵀ (CKK × O) and the
                    // patch gradient (CKK × P) are row-major buffers of those sizes, each
                    // written buffer this task's alone.
                    unsafe {
                        // dWᵀ += cols · dYᵀ
                        matmul_accumulate(
                            ckk,
                            o,
                            p,
                            dw_t.as_mut_ptr(),
                            1,
                            o as isize,
                            cols.as_ptr(),
                            1,
                            p as isize,
                            dy.as_ptr(),
                            p as isize,
                            1,
                        );
                        // dcols = Wᵀ · dY
                        matmul(
                            ckk,
                            p,
                            o,
                            dcols_into.as_mut_ptr(),
                            1,
                            p as isize,
                            weight.as_ptr(),
                            ckk as isize,
                            1,
                            dy.as_ptr(),
                            1,
                            p as isize,
                        );
                    }
                    if !d.is_pointwise() {
                        d.col2im(&mut dcols, dx);
                    }
                }
                (dw_t, db)
            })
            .collect();
        let mut out = dx;
        // dW from the summed dWᵀ.
        let (dw_t, db) = partials.into_iter().fold(
            (vec![0f32; ckk * o], vec![0f32; o]),
            |(dw, db), (pw, pb)| (add_columns(dw, pw), add_columns(db, pb)),
        );
        out.extend((0..o * ckk).map(|i| dw_t[(i % ckk) * o + i / ckk]));
        out.extend_from_slice(&db);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::model::test_support::{max_difference, random};

    /// Forward and every gradient against candle's own convolution and autograd, for each
    /// shape the VQ model uses: 3×3 padded, 3×3 stride 2 unpadded (on an odd side, as after
    /// the downsampler's one-sided padding; candle's own gradient is wrong where the stride
    /// does not divide the side), 1×1; an odd batch (a partial chunk), non-square images;
    /// 3×3 padded convolutions of few channels (patch matrix) and of many (tap products),
    /// one of them on a single row, one of more channels than a pass of the product takes.
    #[test]
    fn matches_candle_convolution_and_its_gradients() {
        let cases = [
            (3, 1, 1, 5usize, 3usize, 9usize, 8usize),
            (3, 2, 0, 4, 4, 9, 9),
            (1, 1, 0, 6, 5, 9, 8),
            (3, 1, 1, 2, 7, 5, 11),
            (3, 1, 1, 8, 5, 6, 7),
            (3, 1, 1, 12, 16, 1, 9),
            (3, 1, 1, 16, 13, 9, 8),
            (3, 1, 1, 20, 18, 5, 6),
        ];
        for (case, &(kernel, stride, padding, in_c, out_c, h, w)) in cases.iter().enumerate() {
            let seed = case as u64 * 10;
            let x = Var::from_tensor(&random(&[5, in_c, h, w], seed + 1, 0.0)).unwrap();
            let w =
                Var::from_tensor(&random(&[out_c, in_c, kernel, kernel], seed + 2, 0.0)).unwrap();
            let b = Var::from_tensor(&random(&[out_c], seed + 3, 0.0)).unwrap();
            let conv = Conv {
                weight: w.as_tensor().clone(),
                bias: b.as_tensor().clone(),
                geometry: Geometry {
                    kernel,
                    stride,
                    padding,
                },
            };
            let ours = conv.forward(x.as_tensor()).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.as_tensor().reshape((1, out_c, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "case {case}");
            assert!(max_difference(&ours, &theirs) < 1e-5, "case {case} forward");
            let probe = random(ours.dims(), seed + 4, 0.0);
            let g_ours = (ours * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_theirs = (theirs * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
                let (a, e) = (g_ours.get(v).unwrap(), g_theirs.get(v).unwrap());
                assert!(max_difference(a, e) < 1e-5, "case {case} d{name}");
            }
        }
    }

    #[test]
    fn gradients_are_the_same_on_every_thread_count() {
        for in_c in [3, MIN_TAP_CHANNELS] {
            gradients_match_across_thread_counts(in_c);
        }
    }

    fn gradients_match_across_thread_counts(in_c: usize) {
        let x = Var::from_tensor(&random(&[7, in_c, 6, 6], 1, 0.0)).unwrap();
        let weight = Var::from_tensor(&random(&[4, in_c, 3, 3], 2, 0.0)).unwrap();
        let conv = Conv {
            weight: weight.as_tensor().clone(),
            bias: random(&[4], 3, 0.0),
            geometry: Geometry {
                kernel: 3,
                stride: 1,
                padding: 1,
            },
        };
        let grads = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = conv.forward(x.as_tensor()).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let values = |v: &Var| g.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>();
                (values(&x).unwrap(), values(&weight).unwrap())
            })
        };
        assert_eq!(grads(1), grads(3));
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_is_an_error() {
        let conv = Conv {
            weight: random(&[1, 1, 3, 3], 1, 0.0),
            bias: random(&[1], 2, 0.0),
            geometry: Geometry {
                kernel: 3,
                stride: 1,
                padding: 0,
            },
        };
        let err = conv.forward(&random(&[1, 1, 2, 2], 3, 0.0)).unwrap_err();
        assert!(
            err.to_string().contains("smaller than its 3×3 kernel"),
            "{err}"
        );
    }
}
