//! The VQ model's group norms, optionally followed by SiLU, as one candle op with its own
//! backward pass.
//!
//! candle composes a group norm (and SiLU) of a dozen tensor ops, each with a backward pass
//! that reduces over broadcast axes; in a VQ training step those reductions were a fifth of
//! the time. Here one pass per image computes each group's statistics and the output, and
//! the backward pass recomputes them from the input. The gain and bias gradients are summed
//! over fixed chunks of images in chunk order, so they are the same bit for bit on every run
//! and thread count.
//!
//! Shapes: x (B, C, H, W) (any trailing size), gain and bias (C); C is a multiple of the
//! group count G, and each group's C/G channels are normalised together.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::group_norm_math::{self, Group, GroupGrads};
use crate::model::grad_ops::add_columns;
use crate::model::ops::contiguous_f32;

/// Images per task of the gain and bias gradient sums (fixed, so the sum order never changes).
const IMAGES_PER_CHUNK: usize = 4;

/// A group norm with a learned per-channel gain and bias (diffusers' `GroupNorm`).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    shape: NormShape,
}

/// The group count and epsilon of a group norm.
#[derive(Debug, Clone, Copy)]
struct NormShape {
    groups: usize,
    eps: f32,
}

impl GroupNorm {
    /// Loads `weight` and `bias` of width `channels` under `vb` (ones and zeros when new).
    pub fn load(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            candle_core::bail!("a group norm of {channels} channels in {groups} groups");
        }
        Ok(GroupNorm {
            weight: vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            shape: NormShape {
                groups,
                eps: eps as f32,
            },
        })
    }

    /// The normalised, scaled and shifted input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }

    /// SiLU of [`GroupNorm::forward`], in the same pass.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }

    fn apply(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let x = x.contiguous()?;
        let op = GroupNormOp {
            shape: self.shape,
            silu,
        };
        if x.track_op() || self.weight.track_op() || self.bias.track_op() {
            x.apply_op3_arc(&self.weight, &self.bias, Arc::new(Box::new(op)))
        } else {
            x.apply_op3_no_bwd(&self.weight, &self.bias, &op)
        }
    }
}

/// Sizes of one application: images of C channels of S values each, in G groups.
#[derive(Debug, Clone, Copy)]
struct Dims {
    channels: usize,
    spatial: usize,
    groups: usize,
}

impl Dims {
    fn new(x: &Layout, gain: &Layout, groups: usize) -> Result<Self> {
        let dims = x.shape().dims();
        if dims.len() < 2 {
            candle_core::bail!("group norm: input of shape {dims:?}");
        }
        let channels = dims[1];
        if gain.shape().elem_count() != channels || !channels.is_multiple_of(groups) {
            candle_core::bail!(
                "group norm: {channels} channels, {} gains, {groups} groups",
                gain.shape().elem_count()
            );
        }
        Ok(Dims {
            channels,
            spatial: dims[2..].iter().product(),
            groups,
        })
    }

    fn image_len(&self) -> usize {
        self.channels * self.spatial
    }

    /// Channels per group.
    fn per_group(&self) -> usize {
        self.channels / self.groups
    }
}

/// Group norm (+ SiLU): (x, gain, bias) → y.
struct GroupNormOp {
    shape: NormShape,
    silu: bool,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "clipkit-group-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(xl, gl, self.shape.groups)?;
        let x = contiguous_f32(xs, xl, "group norm input")?;
        let gain = contiguous_f32(gs, gl, "group norm gain")?;
        let bias = contiguous_f32(bs, bl, "group norm bias")?;
        let group_len = (d.per_group() * d.spatial).max(1);
        let spatial = d.spatial.max(1);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(group_len)
            .zip(x.par_chunks(group_len))
            .enumerate()
            .for_each(|(row, (out, values))| {
                let first = (row % d.groups) * d.per_group();
                let group = Group {
                    gain: &gain[first..first + d.per_group()],
                    bias: &bias[first..first + d.per_group()],
                    spatial,
                    eps: self.shape.eps,
                    silu: self.silu,
                };
                group_norm_math::forward(group, values, out);
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let backward = GroupNormBackward {
            shape: self.shape,
            silu: self.silu,
            bias: bias.flatten_all()?.to_vec1::<f32>()?,
        };
        let stacked = x.apply_op3_no_bwd(gain, &grad.contiguous()?, &backward)?;
        let (nx, c) = (x.elem_count(), gain.elem_count());
        let dx = stacked.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dgain = stacked.narrow(0, nx, c)?;
        let dbias = stacked.narrow(0, nx + c, c)?;
        Ok((Some(dx), Some(dgain), Some(dbias)))
    }
}

/// The gradients: (x, gain, dy) → [dx; dgain; dbias], flattened.
struct GroupNormBackward {
    shape: NormShape,
    silu: bool,
    /// The bias, to recompute the SiLU's input.
    bias: Vec<f32>,
}

impl CustomOp3 for GroupNormBackward {
    fn name(&self) -> &'static str {
        "clipkit-group-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(xl, gl, self.shape.groups)?;
        let x = contiguous_f32(xs, xl, "group norm input")?;
        let gain = contiguous_f32(gs, gl, "group norm gain")?;
        let dy = contiguous_f32(ds, dl, "group norm output gradient")?;
        if dy.len() != x.len() || self.bias.len() != d.channels {
            candle_core::bail!("group norm: gradient or bias does not match the input");
        }
        let (image_len, c) = (d.image_len().max(1), d.channels);
        let (group_len, spatial) = ((d.per_group() * d.spatial).max(1), d.spatial.max(1));
        // Room for the gain and bias gradients after dx, so appending them does not copy dx.
        let mut dx = Vec::with_capacity(x.len() + 2 * c);
        dx.resize(x.len(), 0f32);
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(image_len * IMAGES_PER_CHUNK)
            .zip(x.par_chunks(image_len * IMAGES_PER_CHUNK))
            .zip(dy.par_chunks(image_len * IMAGES_PER_CHUNK))
            .map(|((dx, x), dy)| {
                // [dgain; dbias] of this chunk's images.
                let mut sums = vec![0f32; 2 * c];
                let mut dz = vec![0f32; group_len];
                let rows = dx.chunks_mut(group_len).zip(x.chunks(group_len));
                for (row, ((dx, values), dy)) in rows.zip(dy.chunks(group_len)).enumerate() {
                    let first = (row % d.groups) * d.per_group();
                    let channels = first..first + d.per_group();
                    let (dgain, dbias) = sums.split_at_mut(c);
                    let group = Group {
                        gain: &gain[channels.clone()],
                        bias: &self.bias[channels.clone()],
                        spatial,
                        eps: self.shape.eps,
                        silu: self.silu,
                    };
                    let grads = GroupGrads {
                        dx,
                        dz: &mut dz[..values.len()],
                        dgain: &mut dgain[channels.clone()],
                        dbias: &mut dbias[channels],
                    };
                    group_norm_math::backward(group, values, dy, grads);
                }
                sums
            })
            .collect();
        let mut out = dx;
        let sums = partials.into_iter().fold(vec![0f32; 2 * c], add_columns);
        out.extend_from_slice(&sums);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Var};

    use super::*;
    use crate::model::test_support::{max_difference, random};

    /// Output and every gradient against candle_nn's group norm (and candle's SiLU) and
    /// autograd, with and without the SiLU, on an odd batch (a partial chunk) whose values
    /// sit off zero (so the mean matters).
    #[test]
    fn matches_candle_group_norm_and_its_gradients() {
        for silu in [false, true] {
            let x = Var::from_tensor(&random(&[5, 6, 4, 3], 1, 0.7)).unwrap();
            let gain = Var::from_tensor(&random(&[6], 2, 1.0)).unwrap();
            let bias = Var::from_tensor(&random(&[6], 3, 0.0)).unwrap();
            let ours = GroupNorm {
                weight: gain.as_tensor().clone(),
                bias: bias.as_tensor().clone(),
                shape: NormShape {
                    groups: 3,
                    eps: 1e-6,
                },
            };
            let theirs = candle_nn::GroupNorm::new(
                gain.as_tensor().clone(),
                bias.as_tensor().clone(),
                6,
                3,
                1e-6,
            )
            .unwrap();
            let (a, b) = if silu {
                let a = ours.forward_silu(x.as_tensor()).unwrap();
                let b = candle_nn::ops::silu(&theirs.forward(x.as_tensor()).unwrap()).unwrap();
                (a, b)
            } else {
                (
                    ours.forward(x.as_tensor()).unwrap(),
                    theirs.forward(x.as_tensor()).unwrap(),
                )
            };
            assert!(max_difference(&a, &b) < 1e-5, "silu {silu}: forward");
            let probe = random(a.dims(), 4, 0.0);
            let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("gain", &gain), ("bias", &bias)] {
                let (p, q) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(max_difference(p, q) < 1e-5, "silu {silu}: d{name}");
            }
        }
    }

    #[test]
    fn gradients_are_the_same_on_every_thread_count() {
        let x = Var::from_tensor(&random(&[9, 4, 5, 5], 5, 0.3)).unwrap();
        let gain = Var::from_tensor(&random(&[4], 6, 1.0)).unwrap();
        let norm = GroupNorm {
            weight: gain.as_tensor().clone(),
            bias: random(&[4], 7, 0.0),
            shape: NormShape {
                groups: 2,
                eps: 1e-6,
            },
        };
        let grads = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = norm.forward_silu(x.as_tensor()).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let values = |v: &Var| g.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>();
                (values(&x).unwrap(), values(&gain).unwrap())
            })
        };
        assert_eq!(grads(1), grads(4));
    }

    #[test]
    fn channels_that_do_not_split_into_groups_are_refused() {
        let vb = VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu);
        let err = GroupNorm::load(vb, 4, 6, 1e-6).unwrap_err();
        assert!(err.to_string().contains("6 channels in 4 groups"), "{err}");
    }
}
