//! Named model shapes for training from scratch.
//!
//! The vocabulary size and special-token ids are left at transformers' defaults; a fitted
//! tokenizer sets them (see [`crate::tokenizer::FittedTokenizer::configure`]).

use crate::config::{Activation, ClipConfig, TextConfig, VisionConfig};

/// The preset names, for help texts.
pub const PRESET_NAMES: [&str; 2] = ["quickstart", "small"];

/// The configuration of a named preset, if the name is known.
///
/// - `quickstart`: about 0.8 M weights, 72-pixel images in 24-pixel patches, 96 channels,
///   three image layers and two text layers, 24-token context: learns the shapes world in
///   minutes on two cores. Its 3×3 patch grid is the shapes world's layout grid (the five
///   positions are cell centres), so each object lies inside one patch and the image tower
///   reads ten tokens instead of 65: about four times the pairs per second of 8-pixel
///   patches, and shapes are learned from single patches rather than assembled from pieces.
/// - `small`: the 19 M-weight scale the training issue measures PyTorch at: 64-pixel
///   images, patch 8, width 256, four layers per tower, 32-token context.
pub fn preset(name: &str) -> Option<ClipConfig> {
    let (width, vision_layers, text_layers, heads, context, patch_size, image_size) = match name {
        "quickstart" => (96, 3, 2, 4, 24, 24, 72),
        "small" => (256, 4, 4, 4, 32, 8, 64),
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
            image_size,
            patch_size,
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
