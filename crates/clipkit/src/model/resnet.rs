//! The ModifiedResNet image tower of the CLIP paper (OpenAI's RN50, RN101, RN50x4, …, and
//! open_clip's `RN*` models): a three-convolution stem with average pooling, anti-aliased
//! bottleneck blocks (a stride is an average pool before the 1 × 1 expansion, and before the
//! shortcut's 1 × 1 convolution), and attention pooling of the final feature map.
//!
//! Weight names are open_clip's and OpenAI's under `visual.` (`conv1.weight`, `bn1.*`,
//! `layer1.0.conv2.weight`, `layer2.0.downsample.0.weight`, `attnpool.q_proj.weight`, …);
//! transformers has no ResNet CLIP, so these are the native names. Inference only: every
//! batch norm is folded into its convolution at load time.
//!
//! Shape legend: B = batch, S = image size, H × W = feature map, C = channels, L = H·W + 1
//! pooled tokens, h = heads, d = C / h, E = output size.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::{avg_pool, ConvBatchNorm, Then};
use super::layers::Linear;
use super::load_options::LoadOptions;

/// The shape of a ModifiedResNet tower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Bottleneck blocks in each of the four stages (RN50: `[3, 4, 6, 3]`).
    pub layers: [usize; 4],
    /// Stem width; stage i has `width·2^i` inner and `4·width·2^i` output channels, so the
    /// pooled feature has `32·width` channels (RN50: 64).
    pub width: usize,
    /// Input image side (RN50: 224); a multiple of 32.
    pub image_size: usize,
    /// Attention-pooling heads (OpenAI: `32·width / 64`).
    pub heads: usize,
    /// Size of the output (the embedding; RN50: 1024).
    pub output_dim: usize,
}

impl ResNetConfig {
    /// OpenAI's RN50 (`RN50.pt`, open_clip `RN50`).
    pub fn rn50() -> Self {
        ResNetConfig {
            layers: [3, 4, 6, 3],
            width: 64,
            image_size: 224,
            heads: 32,
            output_dim: 1024,
        }
    }

    /// Channels of the final feature map, the attention pool's width: 32·width.
    pub fn embed_dim(&self) -> usize {
        self.width * 32
    }
}

/// One bottleneck: 1 × 1 reduce, 3 × 3, average pool (when strided), 1 × 1 expand; the
/// shortcut average-pools and projects when the shape changes.
#[derive(Debug, Clone)]
struct Bottleneck {
    conv1: ConvBatchNorm,
    conv2: ConvBatchNorm,
    conv3: ConvBatchNorm,
    stride: usize,
    downsample: Option<ConvBatchNorm>,
}

impl Bottleneck {
    fn new(
        vb: VarBuilder,
        inplanes: usize,
        planes: usize,
        stride: usize,
        options: LoadOptions,
    ) -> Result<Self> {
        let out = planes * 4;
        let downsample = if stride > 1 || inplanes != out {
            Some(ConvBatchNorm::new(
                &vb,
                "downsample.0",
                "downsample.1",
                (inplanes, out),
                1,
                1,
                options,
            )?)
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: ConvBatchNorm::new(&vb, "conv1", "bn1", (inplanes, planes), 1, 1, options)?,
            conv2: ConvBatchNorm::new(&vb, "conv2", "bn2", (planes, planes), 3, 1, options)?,
            conv3: ConvBatchNorm::new(&vb, "conv3", "bn3", (planes, out), 1, 1, options)?,
            stride,
            downsample,
        })
    }

    /// (B, H, W, C_in) → (B, H/s, W/s, 4·planes)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.conv1.forward(x, Then::RELU)?;
        let out = self.conv2.forward(&out, Then::RELU)?;
        let identity = match &self.downsample {
            Some(project) => project.forward(&avg_pool(x, self.stride)?, Then::default())?,
            None => x.clone(),
        };
        let then = Then {
            residual: Some(&identity),
            relu: true,
        };
        self.conv3.forward(&avg_pool(&out, self.stride)?, then)
    }
}

/// Multi-head attention of the mean feature (prepended to the map) over the map and
/// itself, with a learned position embedding: the tower's pooled output.
#[derive(Debug, Clone)]
struct AttentionPool {
    /// (L, C)
    positional_embedding: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    c_proj: Linear,
    heads: usize,
}

impl AttentionPool {
    fn new(vb: VarBuilder, config: &ResNetConfig, options: LoadOptions) -> Result<Self> {
        let c = config.embed_dim();
        let side = config.image_size / 32;
        let proj = |name: &str, out: usize| Linear::new(vb.pp(name), c, out, true, options);
        Ok(AttentionPool {
            positional_embedding: vb.get((side * side + 1, c), "positional_embedding")?,
            q_proj: proj("q_proj", c)?,
            k_proj: proj("k_proj", c)?,
            v_proj: proj("v_proj", c)?,
            c_proj: proj("c_proj", config.output_dim)?,
            heads: config.heads,
        })
    }

    /// (B, H, W, C) → (B, E)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let (heads, d) = (self.heads, c / self.heads);
        let map = x.reshape((b, h * w, c))?;
        let tokens = Tensor::cat(&[map.mean_keepdim(1)?, map], 1)?; // (B, L, C)
        let tokens = tokens.broadcast_add(&self.positional_embedding)?;
        let l = h * w + 1;
        let q = self.q_proj.forward(&tokens.narrow(1, 0, 1)?)?; // (B, 1, C)
        let split = |t: Tensor, n: usize| -> Result<Tensor> {
            t.reshape((b, n, heads, d))?.transpose(1, 2)?.contiguous() // (B, h, n, d)
        };
        let q = (split(q, 1)? * (1.0 / (d as f64).sqrt()))?;
        let k = split(self.k_proj.forward(&tokens)?, l)?;
        let v = split(self.v_proj.forward(&tokens)?, l)?;
        let weights = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?; // (B, h, 1, L)
        let pooled = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, c))?; // (B, C)
        self.c_proj.forward(&pooled)
    }
}

/// The ModifiedResNet tower: pixels in, the (B, E) image feature out (attention pooling
/// includes the projection, so no separate visual projection follows).
#[derive(Debug, Clone)]
pub struct ResNetTower {
    stem: [ConvBatchNorm; 3],
    stages: Vec<Bottleneck>,
    attnpool: AttentionPool,
    config: ResNetConfig,
}

impl ResNetTower {
    /// Loads the tower from `vb` (pointing at `visual`).
    pub fn new(vb: VarBuilder, config: &ResNetConfig, options: LoadOptions) -> Result<Self> {
        let w = config.width;
        if !config.image_size.is_multiple_of(32)
            || config.heads == 0
            || !config.embed_dim().is_multiple_of(config.heads)
        {
            candle_core::bail!(
                "ResNet tower: image_size {} must be a multiple of 32 and 32·width = {} divisible by heads {}",
                config.image_size,
                config.embed_dim(),
                config.heads
            );
        }
        let stem = [
            ConvBatchNorm::new(&vb, "conv1", "bn1", (3, w / 2), 3, 2, options)?,
            ConvBatchNorm::new(&vb, "conv2", "bn2", (w / 2, w / 2), 3, 1, options)?,
            ConvBatchNorm::new(&vb, "conv3", "bn3", (w / 2, w), 3, 1, options)?,
        ];
        let mut stages = Vec::new();
        let mut inplanes = w;
        for (i, &blocks) in config.layers.iter().enumerate() {
            let planes = w << i;
            let stage = vb.pp(format!("layer{}", i + 1));
            for j in 0..blocks {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                stages.push(Bottleneck::new(
                    stage.pp(j.to_string()),
                    inplanes,
                    planes,
                    stride,
                    options,
                )?);
                inplanes = planes * 4;
            }
        }
        Ok(ResNetTower {
            stem,
            stages,
            attnpool: AttentionPool::new(vb.pp("attnpool"), config, options)?,
            config: config.clone(),
        })
    }

    /// The tower's shape.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// pixels: (B, 3, S, S) → image features (B, E).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (_, channels, height, width) = pixels.dims4()?;
        let s = self.config.image_size;
        if channels != 3 || height != s || width != s {
            candle_core::bail!(
                "pixel tensor of shape {:?} does not fit the model's (3, {s}, {s}) input",
                pixels.dims()
            );
        }
        let mut x = pixels.permute((0, 2, 3, 1))?.contiguous()?; // (B, S, S, 3)
        for conv in &self.stem {
            x = conv.forward(&x, Then::RELU)?;
        }
        x = avg_pool(&x, 2)?; // (B, S/4, S/4, width)
        for block in &self.stages {
            x = block.forward(&x)?;
        }
        self.attnpool.forward(&x) // (B, E)
    }
}
