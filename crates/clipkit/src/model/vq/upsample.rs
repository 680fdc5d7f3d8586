//! Nearest-neighbour doubling of the spatial size as one candle op with its own backward
//! pass.
//!
//! candle takes the gradient of `upsample_nearest2d` through a grouped convolution with a
//! kernel of ones, which it runs as one convolution per channel: in a VQ training step
//! (64 channels at 16 × 16) that was more time than the decoder's own convolutions. Here the
//! forward pass copies each value into its 2 × 2 block and the backward pass sums each block,
//! one image plane per task.
//!
//! Shapes: x (B, C, H, W), y (B, C, 2H, 2W).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::model::ops::contiguous_f32;

/// `x` with every value repeated over a 2 × 2 block: (B, C, H, W) → (B, C, 2H, 2W), the same
/// as `x.upsample_nearest2d(2H, 2W)`.
pub(super) fn upsample2x(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.track_op() {
        x.apply_op1_arc(Arc::new(Box::new(Upsample2x)))
    } else {
        x.apply_op1_no_bwd(&Upsample2x)
    }
}

/// The (B, C, H, W) sizes of an input.
fn planes(layout: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    let (b, c, h, w) = layout.shape().dims4()?;
    if h == 0 || w == 0 {
        candle_core::bail!("{what}: an empty {h}×{w} image");
    }
    Ok((b * c, h, w))
}

/// Doubling: x → y.
struct Upsample2x;

impl CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "clipkit-upsample2x"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "upsampling input")?;
        let (planes, h, w) = planes(layout, "upsampling")?;
        let mut y = vec![0f32; planes * 4 * h * w];
        y.par_chunks_mut(4 * h * w)
            .zip(x.par_chunks(h * w))
            .for_each(|(out, plane)| {
                for (rows, row) in out.chunks_exact_mut(4 * w).zip(plane.chunks_exact(w)) {
                    let (top, bottom) = rows.split_at_mut(2 * w);
                    for (pair, &v) in top.chunks_exact_mut(2).zip(row) {
                        pair.fill(v);
                    }
                    bottom.copy_from_slice(top);
                }
            });
        let (b, c, _, _) = layout.shape().dims4()?;
        Ok((CpuStorage::F32(y), (b, c, 2 * h, 2 * w).into()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad.contiguous()?.apply_op1_no_bwd(&BlockSums)?;
        Ok(Some(dx.reshape(x.shape())?))
    }
}

/// The doubling's gradient: dy (B, C, 2H, 2W) → dx (B, C, H, W), each value the sum of its
/// 2 × 2 block.
struct BlockSums;

impl CustomOp1 for BlockSums {
    fn name(&self) -> &'static str {
        "clipkit-upsample2x-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dy = contiguous_f32(storage, layout, "upsampling gradient")?;
        let (planes, h2, w2) = planes(layout, "upsampling gradient")?;
        if h2 % 2 != 0 || w2 % 2 != 0 {
            candle_core::bail!("upsampling gradient: a {h2}×{w2} image is not doubled");
        }
        let (h, w) = (h2 / 2, w2 / 2);
        let mut dx = vec![0f32; planes * h * w];
        dx.par_chunks_mut(h * w)
            .zip(dy.par_chunks(4 * h * w))
            .for_each(|(out, plane)| {
                for (row, rows) in out.chunks_exact_mut(w).zip(plane.chunks_exact(4 * w)) {
                    let (top, bottom) = rows.split_at(2 * w);
                    for ((d, t), b) in row
                        .iter_mut()
                        .zip(top.chunks_exact(2))
                        .zip(bottom.chunks_exact(2))
                    {
                        *d = (t[0] + t[1]) + (b[0] + b[1]);
                    }
                }
            });
        let (b, c, _, _) = layout.shape().dims4()?;
        Ok((CpuStorage::F32(dx), (b, c, h, w).into()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::model::test_support::{max_difference, random};

    /// Forward and gradient against candle's `upsample_nearest2d` and its autograd, on a
    /// non-square image and several planes.
    #[test]
    fn matches_candle_nearest_upsampling_and_its_gradient() {
        let x = Var::from_tensor(&random(&[3, 5, 4, 7], 1, 0.0)).unwrap();
        let ours = upsample2x(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().upsample_nearest2d(8, 14).unwrap();
        assert_eq!(ours.dims(), &[3, 5, 8, 14]);
        assert_eq!(max_difference(&ours, &theirs), 0.0);
        let probe = random(ours.dims(), 2, 0.0);
        let gradient = |y: Tensor| {
            let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            grads.get(&x).unwrap().clone()
        };
        let (g_ours, g_theirs) = (gradient(ours), gradient(theirs));
        assert_eq!(g_ours.dims(), x.dims());
        assert!(max_difference(&g_ours, &g_theirs) < 1e-6);
    }

    #[test]
    fn an_odd_gradient_is_an_error() {
        let err = random(&[1, 1, 3, 4], 3, 0.0)
            .apply_op1_no_bwd(&BlockSums)
            .unwrap_err();
        assert!(err.to_string().contains("not doubled"), "{err}");
    }
}
