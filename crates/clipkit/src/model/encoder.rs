//! The pre-norm transformer encoder shared by both towers.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::layers::{tensor_name, LayerNorm, Linear};
use super::load_options::LoadOptions;
use super::ops::{fused_ok, AttentionOp, BiasActivationOp};
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
    fn new(vb: VarBuilder, shape: &EncoderShape, options: LoadOptions) -> Result<Self> {
        let c = shape.hidden;
        let head_dim = c / shape.heads;
        let scale = (head_dim as f64).powf(-0.5);
        let parts = ["q_proj", "k_proj", "v_proj"];
        let biases = parts.map(|name| vb.pp(name).get(c, "bias"));
        let [qb, kb, vb_] = biases;
        let bias = Tensor::cat(&[(qb? * scale)?, kb?, vb_?], 0)?;
        // One product for the three projections, its query rows scaled.
        let weight = || {
            let [qw, kw, vw] = parts.map(|name| vb.pp(name).get((c, c), "weight"));
            Tensor::cat(&[(qw? * scale)?, kw?, vw?], 0)
        };
        let sources = parts.map(|name| tensor_name(&vb, &format!("{name}.weight")));
        let key = tensor_name(&vb, "qkv_proj.weight");
        Ok(SelfAttention {
            qkv: Linear::cached(options, &key, &sources, (3 * c, c), weight, Some(bias))?,
            out: Linear::new(vb.pp("out_proj"), c, c, true, options)?,
            heads: shape.heads,
        })
    }

    /// `residual` + attention over x: (B, T, C) → (B, T, C); with `causal`, position t
    /// sees positions ≤ t only.
    fn forward(&self, x: &Tensor, causal: bool, residual: &Tensor) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?; // (B, T, 3C)
        let ctx = if fused_ok(&[&qkv]) {
            qkv.apply_op1(AttentionOp {
                heads: self.heads,
                causal,
            })?
        } else {
            self.composite(&qkv, causal)?
        };
        self.out.forward_residual(&ctx, residual)
    }

    /// The same attention from candle ops, differentiable: qkv (B, T, 3C) → (B, T, C).
    fn composite(&self, qkv: &Tensor, causal: bool) -> Result<Tensor> {
        let (b, t, c3) = qkv.dims3()?;
        let c = c3 / 3;
        let d = c / self.heads;
        let qkv = qkv.reshape((b, t, 3, self.heads, d))?;
        let qkv = qkv.permute((2, 0, 3, 1, 4))?; // (3, B, H, T, D)
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?; // (B, H, T, T)
        let scores = if causal {
            scores.broadcast_add(&causal_mask(t, q.device())?.to_dtype(scores.dtype())?)?
        } else {
            scores
        };
        // The composite softmax, which has a backward pass (the fused one does not).
        let probs = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
        let ctx = probs.matmul(&v)?; // (B, H, T, D)
        ctx.transpose(1, 2)?.reshape((b, t, c))
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    fn new(vb: VarBuilder, shape: &EncoderShape, options: LoadOptions) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(
                vb.pp("fc1"),
                shape.hidden,
                shape.intermediate,
                true,
                options,
            )?,
            fc2: Linear::new(
                vb.pp("fc2"),
                shape.intermediate,
                shape.hidden,
                true,
                options,
            )?,
            activation: shape.activation,
        })
    }

    /// `residual` + the MLP of x: (B, T, C) → (B, T, C).
    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let pre = self.fc1.product(x)?; // (B, T, I)
        let h = match self.fc1.bias() {
            Some(bias) if fused_ok(&[&pre, bias]) => pre.contiguous()?.apply_op2(
                bias,
                BiasActivationOp {
                    activation: Some(self.activation),
                },
            )?,
            Some(bias) => self.activation.apply(&pre.broadcast_add(bias)?)?,
            None => self.activation.apply(&pre)?,
        };
        self.fc2.forward_residual(&h, residual)
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
    fn new(vb: VarBuilder, shape: &EncoderShape, options: LoadOptions) -> Result<Self> {
        Ok(EncoderLayer {
            layer_norm1: LayerNorm::new(vb.pp("layer_norm1"), shape.hidden, shape.eps)?,
            self_attn: SelfAttention::new(vb.pp("self_attn"), shape, options)?,
            layer_norm2: LayerNorm::new(vb.pp("layer_norm2"), shape.hidden, shape.eps)?,
            mlp: Mlp::new(vb.pp("mlp"), shape, options)?,
        })
    }

    fn forward(&self, x: &Tensor, causal: bool) -> Result<Tensor> {
        let x = self
            .self_attn
            .forward(&self.layer_norm1.forward(x)?, causal, x)?;
        self.mlp.forward(&self.layer_norm2.forward(&x)?, &x)
    }
}

/// A stack of pre-norm transformer layers (`encoder.layers.{i}` in the checkpoint).
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    /// Loads `layers.{0..n}` under `vb`.
    pub fn new(vb: VarBuilder, shape: &EncoderShape, options: LoadOptions) -> Result<Self> {
        let vb = vb.pp("layers");
        // Layers load in parallel: reading a layer's tensors out of the checkpoint is one
        // thread's copy, so a sequential load left the other cores idle between packings.
        let layers = (0..shape.layers)
            .into_par_iter()
            .map(|i| EncoderLayer::new(vb.pp(i), shape, options))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder { layers })
    }

    /// x: (B, T, C) → (B, T, C); `causal` masks attention to later positions.
    pub fn forward(&self, x: &Tensor, causal: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward(&x, causal)?;
        }
        Ok(x)
    }
}

/// Additive causal mask (T, T): 0 on and below the diagonal, -inf above.
fn causal_mask(t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (t, t), device)
}

#[cfg(test)]
mod tests {
    use super::super::load_options::WeightFormat;
    use super::*;
    use candle_core::Var;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// Gradients through the fused kernels are the same bit for bit on every run, with
    /// enough rows that their column sums are split over many parallel chunks (rayon's
    /// `reduce` over those chunks made training runs differ in the last bits).
    #[test]
    fn fused_gradients_are_reproducible() {
        let shape = EncoderShape {
            hidden: 96,
            intermediate: 384,
            layers: 1,
            heads: 4,
            activation: Activation::QuickGelu,
            eps: 1e-5,
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let encoder = Encoder::new(vb, &shape, LoadOptions::TRAINING).unwrap();
        let x = Tensor::randn(0f32, 1.0, (48, 65, 96), &Device::Cpu).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (48, 65, 96), &Device::Cpu).unwrap();
        let gradients = || -> Vec<Vec<f32>> {
            let y = encoder.forward(&x, false).unwrap();
            let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let mut named: Vec<(String, Var)> =
                varmap.data().lock().unwrap().clone().into_iter().collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            named
                .iter()
                .map(|(_, v)| {
                    grads
                        .get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect()
        };
        // Two at a time, as training runs one shard per thread, so the kernels' parallel
        // chunks are scheduled differently from run to run.
        let first = gradients();
        for run in 0..6 {
            let (a, b) = rayon::join(gradients, gradients);
            assert!(a == first && b == first, "run {run} differs");
        }
    }

    /// The fused kernels (f32) and the composite candle ops (run in f64, where the fused
    /// kernels do not apply) agree on the output and on the gradients of every weight and of
    /// the input.
    #[test]
    fn fused_kernels_match_composite_ops_forward_and_backward() {
        for (activation, causal) in [
            (Activation::QuickGelu, false),
            (Activation::Gelu, true),
            (Activation::GeluTanh, true),
            (Activation::Silu, false),
            (Activation::Relu, true),
        ] {
            let shape = EncoderShape {
                hidden: 24,
                intermediate: 40,
                layers: 2,
                heads: 3,
                activation,
                eps: 1e-5,
            };
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            Encoder::new(vb.clone(), &shape, LoadOptions::TRAINING).unwrap();
            // Move every weight off its initial value (gains of one, biases of zero).
            for v in varmap.all_vars() {
                v.set(
                    &(v.as_tensor() + Tensor::randn(0f32, 0.1, v.shape(), &Device::Cpu).unwrap())
                        .unwrap(),
                )
                .unwrap();
            }
            let wide: std::collections::HashMap<String, Var> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let value = v.as_tensor().to_dtype(DType::F64).unwrap();
                    (k.clone(), Var::from_tensor(&value).unwrap())
                })
                .collect();
            let fused = Encoder::new(vb, &shape, LoadOptions::TRAINING).unwrap();
            let composite = Encoder::new(
                VarBuilder::from_tensors(
                    wide.iter()
                        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                        .collect(),
                    DType::F64,
                    &Device::Cpu,
                ),
                &shape,
                LoadOptions::TRAINING,
            )
            .unwrap();
            let x = Var::randn(0f32, 1.0, (2, 7, 24), &Device::Cpu).unwrap();
            let x_wide = Var::from_tensor(&x.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
            let probe = Tensor::randn(0f32, 1.0, (2, 7, 24), &Device::Cpu).unwrap();
            let a = fused.forward(x.as_tensor(), causal).unwrap();
            let b = composite.forward(x_wide.as_tensor(), causal).unwrap();
            let forward = max_diff(&a, &b);
            assert!(
                forward < 1e-4,
                "{activation:?} causal={causal}: output {forward}"
            );
            let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let probe_wide = probe.to_dtype(DType::F64).unwrap();
            let gb = (b * probe_wide)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let dx = max_diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x_wide.as_tensor()).unwrap(),
            );
            assert!(
                dx < 1e-4,
                "{activation:?} causal={causal}: input gradient {dx}"
            );
            for (name, var) in varmap.data().lock().unwrap().iter() {
                let g = ga.get(var.as_tensor()).unwrap();
                let w = gb.get(wide[name].as_tensor()).unwrap();
                let diff = max_diff(g, w);
                assert!(diff < 1e-4, "{activation:?} causal={causal}: {name} {diff}");
            }
        }
    }

    /// Frozen packed weights loaded with `input_gradients` pass the same input gradient as
    /// the plain f64 composite; loaded without it, they refuse an input that tracks one.
    #[test]
    fn packed_weights_pass_input_gradients_when_asked() {
        if super::super::Kernel::active() == super::super::Kernel::Portable {
            return;
        }
        let shape = EncoderShape {
            hidden: 32,
            intermediate: 48,
            layers: 2,
            heads: 4,
            activation: Activation::QuickGelu,
            eps: 1e-5,
        };
        let varmap = VarMap::new();
        Encoder::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &shape,
            LoadOptions::TRAINING,
        )
        .unwrap();
        let weights: std::collections::HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let noise = Tensor::randn(0f32, 0.1, v.shape(), &Device::Cpu).unwrap();
                (k.clone(), (v.as_tensor() + noise).unwrap().detach())
            })
            .collect();
        let build = |dtype: DType, options: LoadOptions| {
            let tensors = weights
                .iter()
                .map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap()))
                .collect();
            let vb = VarBuilder::from_tensors(tensors, dtype, &Device::Cpu);
            Encoder::new(vb, &shape, options).unwrap()
        };
        let packed = build(
            DType::F32,
            LoadOptions {
                weight_format: WeightFormat::Packed,
                input_gradients: true,
                ..LoadOptions::default()
            },
        );
        let plain = build(DType::F64, LoadOptions::TRAINING);
        let x = Var::randn(0f32, 1.0, (3, 9, 32), &Device::Cpu).unwrap();
        let x_wide = Var::from_tensor(&x.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (3, 9, 32), &Device::Cpu).unwrap();
        let a = packed.forward(x.as_tensor(), false).unwrap();
        let b = plain.forward(x_wide.as_tensor(), false).unwrap();
        let forward = max_diff(&a, &b);
        assert!(forward < 1e-4, "output {forward}");
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * probe.to_dtype(DType::F64).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let dx = max_diff(
            ga.get(x.as_tensor()).unwrap(),
            gb.get(x_wide.as_tensor()).unwrap(),
        );
        assert!(dx < 1e-4, "input gradient {dx}");

        let inference_only = build(DType::F32, LoadOptions::default());
        let refused = inference_only.forward(x.as_tensor(), false).unwrap_err();
        assert!(refused.to_string().contains("input_gradients"), "{refused}");
    }

    /// Largest absolute difference; infinite when either side holds a NaN or infinity, so
    /// a broken output never passes.
    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let values = |t: &Tensor| {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        let (a, b) = (values(a), values(b));
        assert_eq!(a.len(), b.len(), "sizes differ");
        a.iter().zip(&b).fold(0f32, |worst, (x, y)| {
            let d = (x - y).abs() as f32;
            if d.is_finite() {
                worst.max(d)
            } else {
                f32::INFINITY
            }
        })
    }
}
