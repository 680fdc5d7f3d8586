//! Random weights with the names and shapes a configuration asks for: for tests, tools and
//! benchmarks that need a working model without training one. Not a training initialisation.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{ClipNetwork, LoadOptions};
use crate::config::ClipConfig;

/// Every tensor [`ClipNetwork::new`] reads, by HF name, with normal random values that keep
/// activations of order one: matrices with std 1/√fan_in, norm gains 1 with std 0.1, other
/// vectors 0 with std 0.1; `logit_scale` at the config's initial value.
pub fn random_weights(config: &ClipConfig) -> Result<BTreeMap<String, Tensor>> {
    let varmap = VarMap::new();
    // Building the network once records every tensor it requests.
    ClipNetwork::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        config,
        LoadOptions::TRAINING,
    )?;
    let requested = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|(name, var)| (name.clone(), var.shape().clone()))
        .collect::<Vec<_>>();
    let mut weights = BTreeMap::new();
    for (name, shape) in requested {
        let dims = shape.dims();
        let tensor = if name == "logit_scale" {
            Tensor::new(config.logit_scale_init_value as f32, &Device::Cpu)?
        } else if dims.len() >= 2 {
            let fan_in = shape.elem_count() / dims[0];
            Tensor::randn(0f32, (fan_in as f32).powf(-0.5), &shape, &Device::Cpu)?
        } else if is_norm_gain(&name) {
            (Tensor::randn(0f32, 0.1, &shape, &Device::Cpu)? + 1.0)?
        } else {
            Tensor::randn(0f32, 0.1, &shape, &Device::Cpu)?
        };
        weights.insert(name, tensor);
    }
    Ok(weights)
}

fn is_norm_gain(name: &str) -> bool {
    let module = name.strip_suffix(".weight").unwrap_or_default();
    module.ends_with("norm") || module.ends_with("norm1") || module.ends_with("norm2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_checkpoint() {
        let config: ClipConfig = serde_json::from_str(
            r#"{"text_config": {"vocab_size": 50, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 7},
                "vision_config": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                "num_attention_heads": 2, "image_size": 8, "patch_size": 4},
                "projection_dim": 6}"#,
        )
        .unwrap();
        let w = random_weights(&config).unwrap();
        assert_eq!(
            w["text_model.embeddings.token_embedding.weight"].dims(),
            [50, 8]
        );
        assert_eq!(w["vision_model.pre_layrnorm.weight"].dims(), [8]);
        assert_eq!(w["visual_projection.weight"].dims(), [6, 8]);
        assert_eq!(w["logit_scale"].to_scalar::<f32>().unwrap(), 2.6592);
        assert!(is_norm_gain(
            "text_model.encoder.layers.0.layer_norm1.weight"
        ));
        assert!(is_norm_gain("vision_model.pre_layrnorm.weight"));
        assert!(!is_norm_gain("vision_model.post_layernorm.bias"));
    }
}
