//! Small building blocks: linear maps over the last axis, layer norm and activations.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use std::sync::Arc;

use super::kernel::Kernel;
use super::linear_op::linear_with_bias;
use super::load_options::{LoadOptions, WeightFormat};
use super::ops::{fused_ok, LayerNormOp};
use super::packed::PackedWeight;
use super::packed_linear::{DifferentiablePackedLinear, PackedLinearOp, PackedResidualLinearOp};
use super::precision::Precision;
use crate::config::Activation;

/// `y = x Wᵀ + b` over the last axis of an input of any rank.
///
/// Leading axes are folded into one before the product, so a (B, T, C) input costs one large
/// matrix product instead of B small ones. With [`WeightFormat::Packed`], gradient-free f32
/// weights are packed once for [`PackedWeight`]'s kernel (and the unpacked copy dropped) when
/// the active [`super::Kernel`] has one (AVX-512 or AVX2); weights that train, and every
/// weight under the portable kernel, stay tensors and go through candle's matmul.
///
/// With a lower [`Precision`], the packed kernels that have it hold the weights as bf16 or
/// int8; other kernels hold the same rounded or quantised values as an f32 tensor (and round
/// or quantise each input as the precision does before the product), so every kernel
/// computes the same function.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    /// (out)
    bias: Option<Tensor>,
    /// The precision a [`Weight::Tensor`] product's input is first rounded to (`Fp32`: none).
    input_precision: Precision,
}

#[derive(Debug, Clone)]
enum Weight {
    /// (out, in), as stored in the checkpoint.
    Tensor(Tensor),
    /// The same values in the inference kernel's layout; with `transposed` (Wᵀ packed), the
    /// product also passes gradients back to its input.
    Packed {
        forward: Arc<PackedWeight>,
        transposed: Option<Arc<PackedWeight>>,
    },
}

impl Linear {
    /// Loads `weight` (and `bias` when `with_bias`) under `vb`.
    pub fn new(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        with_bias: bool,
        options: LoadOptions,
    ) -> Result<Self> {
        let bias = if with_bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let key = tensor_name(&vb, "weight");
        let sources = [key.clone()];
        let weight = || vb.get((out_dim, in_dim), "weight");
        Self::cached(options, &key, &sources, (out_dim, in_dim), weight, bias)
    }

    /// A map whose (N, K) = `shape` weight is `key` in the options' [`PackedCache`] when the
    /// load in progress has it there; otherwise made by `weight` (from the checkpoint
    /// tensors `sources`) as [`Linear::from_parts`] does, and recorded in the cache.
    ///
    /// [`PackedCache`]: super::PackedCache
    pub(super) fn cached(
        options: LoadOptions,
        key: &str,
        sources: &[String],
        (n, k): (usize, usize),
        weight: impl FnOnce() -> Result<Tensor>,
        bias: Option<Tensor>,
    ) -> Result<Self> {
        let Some(cache) = options.packed_cache else {
            return Self::from_parts(weight()?, bias, options);
        };
        if let Some(forward) = cache.lookup(key, n, k) {
            return Ok(Linear {
                weight: Weight::Packed {
                    forward,
                    transposed: None,
                },
                bias,
                input_precision: Precision::Fp32,
            });
        }
        let linear = Self::from_parts(weight()?, bias, options)?;
        if let Weight::Packed { forward, .. } = &linear.weight {
            cache.record(key, sources, forward);
        }
        Ok(linear)
    }

    /// Builds a map from a (out, in) weight and an optional (out) bias.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, options: LoadOptions) -> Result<Self> {
        if options.precision != Precision::Fp32 {
            return Self::lower_precision(weight, bias, options);
        }
        // Trained weights (tracked by autograd) stay tensors: the packed kernel has no
        // backward pass to its weights.
        let packable = options.weight_format == WeightFormat::Packed
            && !weight.track_op()
            && fused_ok(&[&weight])
            && bias
                .as_ref()
                .is_none_or(|b| !b.track_op() && fused_ok(&[b]));
        let forward = if packable { pack(&weight)? } else { None };
        let weight = match forward {
            Some(forward) => {
                let transposed = if options.input_gradients {
                    pack(&weight.t()?)?.map(Arc::new)
                } else {
                    None
                };
                Weight::Packed {
                    forward: Arc::new(forward),
                    transposed,
                }
            }
            None => Weight::Tensor(weight),
        };
        Ok(Linear {
            weight,
            bias,
            input_precision: Precision::Fp32,
        })
    }

    /// A map whose weights are held in `options.precision` (bf16 or int8), for inference.
    fn lower_precision(weight: Tensor, bias: Option<Tensor>, options: LoadOptions) -> Result<Self> {
        let precision = options.precision;
        if options.input_gradients || weight.track_op() {
            candle_core::bail!(
                "precision {precision} is for inference: gradients (input_gradients, \
                 training) need fp32 weights"
            );
        }
        let (n, k) = weight.dims2()?;
        let values = weight
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let packed = match options.weight_format {
            WeightFormat::Packed => {
                PackedWeight::pack_as(Kernel::active(), precision, &values, n, k)
            }
            WeightFormat::Plain => None,
        };
        let weight = match packed {
            Some(forward) => Weight::Packed {
                forward: Arc::new(forward),
                transposed: None,
            },
            None => {
                let stored = precision.round_rows(&values, n, k);
                Weight::Tensor(Tensor::from_vec(stored, (n, k), weight.device())?)
            }
        };
        Ok(Linear {
            weight,
            bias,
            input_precision: precision,
        })
    }

    /// `x Wᵀ` without the bias: (…, in) → (…, out).
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }

    /// `x Wᵀ + b + residual`, the residual shaped as the output. With packed weights and
    /// inputs that track no gradient the residual is added inside the product
    /// ([`PackedResidualLinearOp`]); otherwise the map, then an add.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::Packed { forward, .. }
                if !x.track_op() && !residual.track_op() && fused_ok(&[x, residual]) =>
            {
                let in_dim = forward.in_dim();
                let rows = x.elem_count() / in_dim.max(1);
                let x2 = x.reshape((rows, in_dim))?.contiguous()?;
                let r2 = residual.reshape((rows, forward.out_dim()))?.contiguous()?;
                let bias = self.bias_values(true)?;
                let op = PackedResidualLinearOp {
                    weight: forward,
                    bias: bias.as_deref(),
                };
                x2.apply_op2_no_bwd(&r2, &op)?.reshape(residual.shape())
            }
            _ => self.forward(x)? + residual,
        }
    }

    /// The bias, if the map has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The weights in the inference kernel's layout, when they were packed (the kernel has
    /// a packed product and the weights are constants); the product then takes any
    /// [`super::packed::InputRows`].
    pub(super) fn packed_weight(&self) -> Option<&PackedWeight> {
        match &self.weight {
            Weight::Packed { forward, .. } => Some(forward),
            Weight::Tensor(_) => None,
        }
    }

    /// The bias as values for the packed kernel, when the product adds it.
    fn bias_values(&self, with_bias: bool) -> Result<Option<Vec<f32>>> {
        match (&self.bias, with_bias) {
            (Some(b), true) => Ok(Some(b.to_vec1::<f32>()?)),
            _ => Ok(None),
        }
    }

    fn apply(&self, x: &Tensor, with_bias: bool) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?; // (M, in)
        let y = match &self.weight {
            Weight::Packed { forward, .. } if !x.track_op() && fused_ok(&[x]) => {
                let bias = self.bias_values(with_bias)?;
                x2.contiguous()?.apply_op1_no_bwd(&PackedLinearOp {
                    weight: forward,
                    bias: bias.as_deref(),
                })?
            }
            Weight::Packed {
                forward,
                transposed: Some(transposed),
            } if fused_ok(&[x]) => {
                let op = DifferentiablePackedLinear {
                    weight: forward.clone(),
                    transposed: transposed.clone(),
                    bias: self.bias_values(with_bias)?,
                };
                x2.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?
            }
            Weight::Packed { .. } => candle_core::bail!(
                "packed weights serve f32 CPU inputs, and inputs that track gradients only \
                 when loaded with LoadOptions {{ input_gradients: true, .. }}"
            ),
            Weight::Tensor(w) => {
                let x2 = match self.input_precision {
                    Precision::Fp32 | Precision::Int8 => x2,
                    Precision::Bf16 | Precision::W8a8 => {
                        let values = x2.flatten_all()?.to_vec1::<f32>()?;
                        let rounded = self.input_precision.round_rows(&values, rows, in_dim);
                        Tensor::from_vec(rounded, (rows, in_dim), x2.device())?
                    }
                };
                match (&self.bias, with_bias) {
                    (Some(b), true) => linear_with_bias(&x2, w, b)?,
                    _ => x2.matmul(&w.t()?)?,
                }
            }
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = y.dim(1)?;
        y.reshape(out_dims)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }
}

/// The checkpoint name of tensor `name` under `vb`'s prefix.
pub(super) fn tensor_name(vb: &VarBuilder, name: &str) -> String {
    match vb.prefix() {
        prefix if prefix.is_empty() => name.to_string(),
        prefix => format!("{prefix}.{name}"),
    }
}

/// Packs a (rows, cols) f32 CPU matrix for the active kernel; `None` when it packs nothing.
fn pack(weight: &Tensor) -> Result<Option<PackedWeight>> {
    let (n, k) = weight.dims2()?;
    let weight = weight.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let values = match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)), Some((start, end))) => {
            &data[start..end]
        }
        _ => candle_core::bail!("packing expects a contiguous f32 CPU weight"),
    };
    Ok(PackedWeight::pack(values, n, k))
}

/// Layer normalisation over the last axis with a learned gain and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of width `dim` under `vb`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if fused_ok(&[&x, &self.weight, &self.bias]) {
            return x.apply_op3(
                &self.weight,
                &self.bias,
                LayerNormOp {
                    eps: self.eps as f32,
                },
            );
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::QuickGelu => x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => candle_nn::ops::silu(x),
        }
    }
}
