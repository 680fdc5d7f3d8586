//! Initial weights for a model trained from scratch, following the scheme transformers uses
//! for `CLIPModel` (initializer factor 1): normal draws whose deviation shrinks with the
//! width and depth of the tower, unit layer-norm gains and zero biases.

use candle_core::{Device, Result, Shape, Tensor};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::config::ClipConfig;

/// The initial value of the parameter `name` of shape `shape`.
///
/// Each parameter draws from its own generator seeded by `seed` and its name, so the values
/// do not depend on the order in which the model asks for them.
pub fn initial_value(name: &str, shape: &Shape, config: &ClipConfig, seed: u64) -> Result<Tensor> {
    let filled = |value: f32| Tensor::full(value, shape, &Device::Cpu);
    if name == super::LOGIT_SCALE {
        return filled(config.logit_scale_init_value as f32);
    }
    if name.contains("norm") {
        return filled(if name.ends_with("weight") { 1.0 } else { 0.0 });
    }
    if name.ends_with("bias") {
        return filled(0.0);
    }
    let std = deviation(name, config);
    let normal = Normal::new(0.0f32, std as f32).map_err(candle_core::Error::wrap)?;
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(name));
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| normal.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Standard deviation of a weight's normal initialisation.
fn deviation(name: &str, config: &ClipConfig) -> f64 {
    let (width, layers) = if name.starts_with("vision_model") || name == "visual_projection.weight"
    {
        let v = &config.vision_config;
        (v.hidden_size as f64, v.num_hidden_layers as f64)
    } else {
        let t = &config.text_config;
        (t.hidden_size as f64, t.num_hidden_layers as f64)
    };
    let into_residual = width.powf(-0.5) * (2.0 * layers).powf(-0.5);
    if name.ends_with("projection.weight") || name.ends_with("class_embedding") {
        width.powf(-0.5)
    } else if name.contains("q_proj") || name.contains("k_proj") || name.contains("v_proj") {
        into_residual
    } else if name.contains("out_proj") {
        width.powf(-0.5)
    } else if name.contains("fc1") {
        (2.0 * width).powf(-0.5)
    } else if name.contains("fc2") {
        into_residual
    } else {
        // Token, position and patch embeddings: transformers' initializer_range.
        0.02
    }
}

/// 64-bit FNV-1a hash: a stable per-name seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
