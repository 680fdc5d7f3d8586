//! Small building blocks: linear maps over the last axis, layer norm and activations.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::ops::{fused_ok, LayerNormOp};
use crate::config::Activation;

/// `y = x Wᵀ + b` over the last axis of an input of any rank.
///
/// Leading axes are folded into one before the product, so a (B, T, C) input costs one large
/// matrix product instead of B small ones.
#[derive(Debug, Clone)]
pub struct Linear {
    /// (out, in), as stored in the checkpoint.
    weight: Tensor,
    /// (out)
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (and `bias` when `with_bias`) under `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, with_bias: bool) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if with_bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Builds a map from tensors already in hand.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }
}

impl Linear {
    /// `x Wᵀ` without the bias: (…, in) → (…, out).
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?; // (M, out)
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = y.dim(1)?;
        y.reshape(out_dims)
    }

    /// The bias, if the map has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.product(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
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
        Ok(LayerNorm { weight: vb.get(dim, "weight")?, bias: vb.get(dim, "bias")?, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if fused_ok(&[&x, &self.weight, &self.bias]) {
            return x.apply_op3_no_bwd(&self.weight, &self.bias, &LayerNormOp { eps: self.eps as f32 });
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
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
