//! One pre-norm transformer block of the text-to-image model (GPT-2's order: x + attn(ln(x)),
//! then x + mlp(ln(x)), tanh-GELU MLP). Attention is causal; during sampling each block
//! keeps the keys and values of earlier positions ([`KvCache`]). The layer norms, every
//! linear map's bias (+ GELU) and, without a cache (training), the attention run as the
//! fused ops the CLIP towers train with, each with its own backward pass (candle's
//! composite ops, each with a generic backward, made training 4.6x slower than PyTorch).
//!
//! Blocks read and write the residual stream as rows (B·L, C), so that no linear map
//! reshapes its input or output (candle's backward pass gives every reshape a zeroed
//! gradient buffer and an add); only attention sees the batch axis.
//!
//! Shapes: B = batch, L = new positions, K = cached + new positions, C = hidden size,
//! H = heads, D = C / H.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

use super::ImagineConfig;
use crate::config::Activation;
use crate::model::layers::LayerNorm;
use crate::model::linear_op::linear_with_bias;
use crate::model::ops::{fused_ok, AttentionOp, BiasActivationOp};

/// Keys and values (B, H, K, D) of the positions a block has seen.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
}

impl KvCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Causal multi-head self-attention with separate query, key, value and output maps.
#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: VarBuilder, config: &ImagineConfig) -> Result<Self> {
        let c = config.hidden_size;
        Ok(Attention {
            q_proj: linear(c, c, vb.pp("q_proj"))?,
            k_proj: linear(c, c, vb.pp("k_proj"))?,
            v_proj: linear(c, c, vb.pp("v_proj"))?,
            out_proj: linear(c, c, vb.pp("out_proj"))?,
            heads: config.num_heads,
        })
    }

    /// (B, L, C) → (B, H, L, D).
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, c) = x.dims3()?;
        x.reshape((b, l, self.heads, c / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Attends from the new positions `x` (B·L, C) of `batch` sequences to the cached ones and
    /// to themselves (causally), appending the new keys and values to `cache` when one is
    /// given.
    fn forward(&self, x: &Tensor, batch: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let (rows, c) = x.dims2()?;
        let (b, l) = (batch, rows / batch.max(1));
        if b * l != rows {
            candle_core::bail!("imagine attention: {rows} rows are not {batch} sequences");
        }
        let scale = 1.0 / ((c / self.heads) as f64).sqrt();
        if cache.is_none() && fused_ok(&[x]) {
            // [q·scale | k | v] (B, L, 3C), heads side by side in each, the fused op's input:
            // one product with the three weights stacked, the query rows scaled.
            let stack = |part: fn(&Linear) -> Option<&Tensor>| -> Result<Tensor> {
                let [q, k, v] = [&self.q_proj, &self.k_proj, &self.v_proj].map(part);
                match (q, k, v) {
                    (Some(q), Some(k), Some(v)) => Tensor::cat(&[&(q * scale)?, k, v], 0),
                    _ => candle_core::bail!("imagine attention: a projection without a bias"),
                }
            };
            let weight = stack(|linear| Some(linear.weight()))?;
            let bias = stack(Linear::bias)?;
            let qkv = fused_linear(x, &weight, &bias, None)?.reshape((b, l, 3 * c))?;
            let context = qkv.apply_op1(AttentionOp {
                heads: self.heads,
                causal: true,
            })?;
            return linear_layer(&self.out_proj, &context.reshape((rows, c))?, None);
        }
        let x = &x.reshape((b, l, c))?;
        let q = self.split_heads(&self.q_proj.forward(x)?)?;
        let mut k = self.split_heads(&self.k_proj.forward(x)?)?;
        let mut v = self.split_heads(&self.v_proj.forward(x)?)?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(cache) = cache {
            if let (Some(pk), Some(pv)) = (&cache.keys, &cache.values) {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            cache.keys = Some(k.clone());
            cache.values = Some(v.clone());
        }
        let mut scores = (q.matmul(&k.t()?)? * scale)?; // (B, H, L, K)
        if l > 1 {
            scores = scores.broadcast_add(&causal_mask(l, past, x.device())?)?;
        }
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = weights.matmul(&v)?; // (B, H, L, D)
        let out = out.transpose(1, 2)?.reshape((rows, c))?;
        self.out_proj.forward(&out)
    }
}

/// (L, past + L): 0 where new position i may see position j (j ≤ past + i), −∞ elsewhere.
fn causal_mask(l: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let k = past + l;
    let values: Vec<f32> = (0..l)
        .flat_map(|i| {
            (0..k).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (l, k), device)
}

/// The feed-forward half: C → I, tanh-GELU, I → C.
#[derive(Debug, Clone)]
struct Mlp {
    fc: Linear,
    proj: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = linear_layer(&self.fc, x, Some(Activation::GeluTanh))?;
        linear_layer(&self.proj, &hidden, None)
    }
}

/// `activation(x Wᵀ + b)` of a [`Linear`] for x (N, C_in) → (N, C_out), through
/// [`fused_linear`] when the layer has a bias.
fn linear_layer(linear: &Linear, x: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
    match linear.bias() {
        Some(bias) => fused_linear(x, linear.weight(), bias, activation),
        None => {
            let y = linear.forward(x)?;
            match activation {
                Some(act) => act.apply(&y),
                None => Ok(y),
            }
        }
    }
}

/// `activation(x Wᵀ + b)` for x (N, C_in), W (C_out, C_in), b (C_out), each piece an op
/// with its own backward pass where the tensors allow: without an activation, the product
/// and bias as one op ([`linear_with_bias`]); with one, the product, then the bias and
/// activation as one op ([`BiasActivationOp`], whose backward needs the product kept).
fn fused_linear(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    activation: Option<Activation>,
) -> Result<Tensor> {
    let Some(act) = activation else {
        return linear_with_bias(x, weight, bias);
    };
    let pre = x.matmul(&weight.t()?)?; // (N, C_out)
    if fused_ok(&[&pre, bias]) {
        pre.apply_op2(
            bias,
            BiasActivationOp {
                activation: Some(act),
            },
        )
    } else {
        act.apply(&pre.broadcast_add(bias)?)
    }
}

/// One transformer block (`h.{i}.*` in the checkpoint).
#[derive(Debug, Clone)]
pub struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    /// Reads `ln_1`, `attn.{q,k,v,out}_proj`, `ln_2`, `mlp.fc` and `mlp.proj` from `vb`.
    pub fn new(vb: VarBuilder, config: &ImagineConfig) -> Result<Self> {
        let (c, i, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        Ok(Block {
            ln_1: LayerNorm::new(vb.pp("ln_1"), c, eps)?,
            attn: Attention::new(vb.pp("attn"), config)?,
            ln_2: LayerNorm::new(vb.pp("ln_2"), c, eps)?,
            mlp: Mlp {
                fc: linear(c, i, vb.pp("mlp.fc"))?,
                proj: linear(i, c, vb.pp("mlp.proj"))?,
            },
        })
    }

    /// Rows (B·L, C) of `batch` sequences → (B·L, C), attending to `cache`'s positions too
    /// and extending it.
    pub fn forward(&self, x: &Tensor, batch: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, batch, cache)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?)?
    }
}
