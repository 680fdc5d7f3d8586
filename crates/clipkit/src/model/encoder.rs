//! The pre-norm transformer encoder shared by both towers.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{LayerNorm, Linear};
use crate::config::Activation;

/// Shape of one tower's transformer stack.
#[derive(Debug, Clone, Copy)]
pub struct EncoderShape {
    /// C: width of the residual stream.
    pub hidden: usize,
    /// I: width of the MLP's hidden layer.
    pub intermediate: usize,
    /// Number of layers.
    pub layers: usize,
    /// H: attention heads.
    pub heads: usize,
    /// MLP activation.
    pub activation: Activation,
    /// Layer-norm epsilon.
    pub eps: f64,
}

/// Multi-head self-attention with the query, key and value maps fused into one product.
#[derive(Debug, Clone)]
struct SelfAttention {
    /// (B·T, C) → (B·T, 3C); the query rows carry the 1/√D scale.
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let c = shape.hidden;
        let head_dim = c / shape.heads;
        let scale = (head_dim as f64).powf(-0.5);
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            let vb = vb.pp(name);
            Ok((vb.get((c, c), "weight")?, vb.get(c, "bias")?))
        };
        let (qw, qb) = part("q_proj")?;
        let (kw, kb) = part("k_proj")?;
        let (vw, vb_) = part("v_proj")?;
        let weight = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let bias = Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?;
        Ok(SelfAttention {
            qkv: Linear::from_parts(weight, Some(bias)),
            out: Linear::new(vb.pp("out_proj"), c, c, true)?,
            heads: shape.heads,
        })
    }

    /// x: (B, T, C); mask: additive (T, T) or none. Returns (B, T, C).
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let d = c / self.heads;
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, self.heads, d))?;
        let qkv = qkv.permute((2, 0, 3, 1, 4))?; // (3, B, H, T, D)
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?; // (B, H, T, T)
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?; // (B, H, T, D)
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, c))?;
        self.out.forward(&ctx)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(vb.pp("fc1"), shape.hidden, shape.intermediate, true)?,
            fc2: Linear::new(vb.pp("fc2"), shape.intermediate, shape.hidden, true)?,
            activation: shape.activation,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.apply(&self.fc1.forward(x)?)?; // (B, T, I)
        self.fc2.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: SelfAttention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        Ok(EncoderLayer {
            layer_norm1: LayerNorm::new(vb.pp("layer_norm1"), shape.hidden, shape.eps)?,
            self_attn: SelfAttention::new(vb.pp("self_attn"), shape)?,
            layer_norm2: LayerNorm::new(vb.pp("layer_norm2"), shape.hidden, shape.eps)?,
            mlp: Mlp::new(vb.pp("mlp"), shape)?,
        })
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let attended = self.self_attn.forward(&self.layer_norm1.forward(x)?, mask)?;
        let x = (x + attended)?;
        let transformed = self.mlp.forward(&self.layer_norm2.forward(&x)?)?;
        x + transformed
    }
}

/// A stack of pre-norm transformer layers (`encoder.layers.{i}` in the checkpoint).
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    /// Loads `layers.{0..n}` under `vb`.
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..shape.layers)
            .map(|i| EncoderLayer::new(vb.pp(i), shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder { layers })
    }

    /// x: (B, T, C), mask: additive (T, T) or none → (B, T, C).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward(&x, mask)?;
        }
        Ok(x)
    }
}
