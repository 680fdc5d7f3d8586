//! Named model shapes for training from scratch.
//!
//! The vocabulary size and special-token ids are left at transformers' defaults; a fitted
//! tokenizer sets them (see [`crate::tokenizer::FittedTokenizer::configure`]).

use crate::config::{Activation, ClipConfig, TextConfig, VisionConfig};

/// The preset names, for help texts.
pub const PRESET_NAMES: [&str; 2] = ["quickstart", "small"];

/// The configuration of a named preset, if the name is known.
///
/// - `quickstart`: about 0.6 M weights, 64-pixel images in 8-pixel patches, 96 channels,
///   three image layers and two text layers, 24-token context: learns the shapes world in
///   minutes on two cores.
/// - `small`: the 19 M-weight scale the training issue measures PyTorch at: 64-pixel
///   images, patch 8, width 256, four layers per tower, 32-token context.
pub fn preset(name: &str) -> Option<ClipConfig> {
    let (width, vision_layers, text_layers, heads, context) = match name {
        "quickstart" => (96, 3, 2, 4, 24),
        "small" => (256, 4, 4, 4, 32),
        _ => return None,
    };
    Some(ClipConfig {
        text_config: TextConfig {
            hidden_size: width,
            intermediate_size: 4 * width,
            num_hidden_layers: text_layers,
            num_attention_heads: heads,
            max_position_embeddings: context,
            hidden_act: Activation::QuickGelu,
            ..TextConfig::default()
        },
        vision_config: VisionConfig {
            hidden_size: width,
            intermediate_size: 4 * width,
            num_hidden_layers: vision_layers,
            num_attention_heads: heads,
            image_size: 64,
            patch_size: 8,
            hidden_act: Activation::QuickGelu,
            ..VisionConfig::default()
        },
        projection_dim: width,
        logit_scale_init_value: (1.0f64 / 0.07).ln(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_configs() {
        for name in PRESET_NAMES {
            let config = preset(name).expect("known preset");
            config
                .validate(std::path::Path::new(name))
                .expect("valid preset");
        }
        assert!(preset("huge").is_none());
    }
}
