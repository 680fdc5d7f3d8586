//! Typed model configuration, read from a HuggingFace `config.json`.
//!
//! Fields that transformers fills with a default when they are absent get the same default
//! here (HF writes only the fields that differ from its defaults), so real checkpoints load
//! unchanged. Values that cannot describe a working model are refused with an error that
//! names the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The activation function of a tower's MLP (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI CLIP's choice.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// The exact, erf-based GELU.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`); written
    /// as `gelu_new`.
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// `max(x, 0)`.
    #[serde(rename = "relu")]
    Relu,
    /// `x * sigmoid(x)` (`silu`, `swish`).
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

/// The text tower's configuration (`text_config`), defaults as in transformers' `CLIPTextConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TextConfig {
    /// Number of token ids the embedding table holds. Default 49408.
    pub vocab_size: usize,
    /// Width of the residual stream. Default 512.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer. Default 2048.
    pub intermediate_size: usize,
    /// Number of transformer layers. Default 12.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`. Default 8.
    pub num_attention_heads: usize,
    /// Context length: the most tokens a text may have, start and end included. Default 77.
    pub max_position_embeddings: usize,
    /// MLP activation. Default `quick_gelu`.
    pub hidden_act: Activation,
    /// Layer-norm epsilon. Default 1e-5.
    pub layer_norm_eps: f64,
    /// Padding token id. Default 1.
    pub pad_token_id: u32,
    /// Start-of-text token id. Default 49406.
    pub bos_token_id: u32,
    /// End-of-text token id. Default 49407; the legacy value 2 means "pool at the largest id".
    pub eos_token_id: u32,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 49406,
            eos_token_id: 49407,
        }
    }
}

/// How the text tower picks the token whose state becomes the text embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPooling {
    /// The first position holding this end-of-text id.
    FirstEos(u32),
    /// The position of the largest id (configs written with the legacy `eos_token_id` 2).
    ArgmaxId,
}

impl TextConfig {
    /// The pooling rule transformers applies for this config.
    pub fn pooling(&self) -> TextPooling {
        if self.eos_token_id == 2 {
            TextPooling::ArgmaxId
        } else {
            TextPooling::FirstEos(self.eos_token_id)
        }
    }
}

/// The image tower's configuration (`vision_config`), defaults as in `CLIPVisionConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct VisionConfig {
    /// Width of the residual stream. Default 768.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer. Default 3072.
    pub intermediate_size: usize,
    /// Number of transformer layers. Default 12.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`. Default 12.
    pub num_attention_heads: usize,
    /// Input channels. Default 3.
    pub num_channels: usize,
    /// Side of the square input image in pixels. Default 224.
    pub image_size: usize,
    /// Side of a square patch in pixels. Default 32.
    pub patch_size: usize,
    /// MLP activation. Default `quick_gelu`.
    pub hidden_act: Activation,
    /// Layer-norm epsilon. Default 1e-5.
    pub layer_norm_eps: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl VisionConfig {
    /// Patches along one side of the image (the convolution's output side).
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens the image tower sees: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.patches_per_side() * self.patches_per_side() + 1
    }
}

/// A whole CLIP model's configuration (`CLIPConfig`).
///
/// `Serialize` gives the typed fields only; [`ClipConfig::to_json`] writes the file
/// transformers loads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClipConfig {
    /// The text tower.
    #[serde(alias = "text_config_dict")]
    pub text_config: TextConfig,
    /// The image tower.
    #[serde(alias = "vision_config_dict")]
    pub vision_config: VisionConfig,
    /// Size of the shared embedding space. Default 512.
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    /// Initial value of the log temperature (used when training from scratch). Default 2.6592.
    #[serde(default = "default_logit_scale_init")]
    pub logit_scale_init_value: f64,
}

/// The layout of transformers' `config.json` for `CLIPModel`.
#[derive(Serialize)]
struct HfClipConfig<'a> {
    architectures: [&'static str; 1],
    model_type: &'static str,
    dtype: &'static str,
    projection_dim: usize,
    logit_scale_init_value: f64,
    text_config: HfTower<'a, TextConfig>,
    vision_config: HfTower<'a, VisionConfig>,
}

/// One tower's sub-config with the fields transformers adds to it.
#[derive(Serialize)]
struct HfTower<'a, T> {
    model_type: &'static str,
    projection_dim: usize,
    #[serde(flatten)]
    fields: &'a T,
}

fn default_projection_dim() -> usize {
    512
}

fn default_logit_scale_init() -> f64 {
    2.6592
}

impl ClipConfig {
    /// Reads and validates `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and validates a `config.json` text; `path` is used in error messages only.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: ClipConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            Error::Config {
                path: path.to_path_buf(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// `config.json` as transformers writes it for `CLIPModel`: every typed field, plus the
    /// markers transformers needs to pick the model class (`model_type`, `architectures`) and
    /// each tower's `projection_dim`. [`ClipConfig::from_json`] reads it back unchanged.
    pub fn to_json(&self) -> Result<String> {
        let file = HfClipConfig {
            architectures: ["CLIPModel"],
            model_type: "clip",
            dtype: "float32",
            projection_dim: self.projection_dim,
            logit_scale_init_value: self.logit_scale_init_value,
            text_config: HfTower {
                model_type: "clip_text_model",
                projection_dim: self.projection_dim,
                fields: &self.text_config,
            },
            vision_config: HfTower {
                model_type: "clip_vision_model",
                projection_dim: self.projection_dim,
                fields: &self.vision_config,
            },
        };
        serde_json::to_string_pretty(&file)
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise config.json: {e}")))
    }

    /// Checks the values describe a model that can run.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let fail = |field: &str, message: String| Error::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let positive = [
            ("projection_dim", self.projection_dim),
            ("text_config.vocab_size", self.text_config.vocab_size),
            ("text_config.hidden_size", self.text_config.hidden_size),
            (
                "text_config.intermediate_size",
                self.text_config.intermediate_size,
            ),
            (
                "text_config.num_hidden_layers",
                self.text_config.num_hidden_layers,
            ),
            (
                "text_config.num_attention_heads",
                self.text_config.num_attention_heads,
            ),
            (
                "text_config.max_position_embeddings",
                self.text_config.max_position_embeddings,
            ),
            ("vision_config.hidden_size", self.vision_config.hidden_size),
            (
                "vision_config.intermediate_size",
                self.vision_config.intermediate_size,
            ),
            (
                "vision_config.num_hidden_layers",
                self.vision_config.num_hidden_layers,
            ),
            (
                "vision_config.num_attention_heads",
                self.vision_config.num_attention_heads,
            ),
            (
                "vision_config.num_channels",
                self.vision_config.num_channels,
            ),
            ("vision_config.image_size", self.vision_config.image_size),
            ("vision_config.patch_size", self.vision_config.patch_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(fail(field, "must be at least 1".into()));
            }
        }
        let t = &self.text_config;
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(fail(
                "text_config.num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    t.num_attention_heads, t.hidden_size
                ),
            ));
        }
        if t.max_position_embeddings < 2 {
            return Err(fail(
                "text_config.max_position_embeddings",
                "must leave room for the start and end tokens (at least 2)".into(),
            ));
        }
        let v = &self.vision_config;
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(fail(
                "vision_config.num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    v.num_attention_heads, v.hidden_size
                ),
            ));
        }
        if v.patch_size > v.image_size {
            return Err(fail(
                "vision_config.patch_size",
                format!(
                    "patch {} is larger than image_size {}",
                    v.patch_size, v.image_size
                ),
            ));
        }
        for (field, eps) in [
            ("text_config.layer_norm_eps", t.layer_norm_eps),
            ("vision_config.layer_norm_eps", v.layer_norm_eps),
        ] {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(fail(field, format!("must be a positive number, got {eps}")));
            }
        }
        if !self.logit_scale_init_value.is_finite() {
            return Err(fail(
                "logit_scale_init_value",
                format!(
                    "must be a finite number, got {}",
                    self.logit_scale_init_value
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClipConfig> {
        ClipConfig::from_json(text, Path::new("config.json"))
    }

    #[test]
    fn absent_fields_take_transformers_defaults() {
        let c = parse(r#"{"text_config": {}, "vision_config": {"patch_size": 16}}"#).unwrap();
        assert_eq!(c.vision_config.patch_size, 16);
        assert_eq!(c.vision_config.num_positions(), 197);
        assert_eq!(c.text_config.max_position_embeddings, 77);
        assert_eq!(c.text_config.pooling(), TextPooling::FirstEos(49407));
        assert_eq!(c.projection_dim, 512);
    }

    #[test]
    fn legacy_eos_id_pools_at_argmax() {
        let c = parse(r#"{"text_config": {"eos_token_id": 2}, "vision_config": {}}"#).unwrap();
        assert_eq!(c.text_config.pooling(), TextPooling::ArgmaxId);
    }

    #[test]
    fn activations_parse_with_aliases() {
        let c = parse(
            r#"{"text_config": {"hidden_act": "gelu_new"}, "vision_config": {"hidden_act": "gelu"}}"#,
        )
        .unwrap();
        assert_eq!(c.text_config.hidden_act, Activation::GeluTanh);
        assert_eq!(c.vision_config.hidden_act, Activation::Gelu);
    }

    #[test]
    fn written_json_reads_back_identical() {
        let mut c = parse(r#"{"text_config": {"hidden_act": "gelu_pytorch_tanh"}, "vision_config": {"hidden_act": "silu", "layer_norm_eps": 1e-6}}"#).unwrap();
        c.projection_dim = 24;
        c.text_config.vocab_size = 321;
        c.text_config.eos_token_id = 320;
        let written = c.to_json().unwrap();
        assert_eq!(parse(&written).unwrap(), c);
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(value["model_type"], "clip");
        assert_eq!(value["architectures"][0], "CLIPModel");
        assert_eq!(value["text_config"]["model_type"], "clip_text_model");
        assert_eq!(value["text_config"]["hidden_act"], "gelu_new");
        assert_eq!(value["vision_config"]["projection_dim"], 24);
        assert_eq!(value["text_config"]["eos_token_id"], 320);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"vision_config": {}}"#, "text_config"),
            (
                r#"{"text_config": {"hidden_size": "wide"}, "vision_config": {}}"#,
                "text_config.hidden_size",
            ),
            (
                r#"{"text_config": {"hidden_act": "tanh"}, "vision_config": {}}"#,
                "text_config.hidden_act",
            ),
            (
                r#"{"text_config": {}, "vision_config": {"num_attention_heads": 7}}"#,
                "vision_config.num_attention_heads",
            ),
            (
                r#"{"text_config": {}, "vision_config": {"patch_size": 0}}"#,
                "vision_config.patch_size",
            ),
            (
                r#"{"text_config": {"layer_norm_eps": -1.0}, "vision_config": {}}"#,
                "text_config.layer_norm_eps",
            ),
        ];
        for (text, field) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.contains(field),
                "error for {text} should name {field}: {err}"
            );
        }
    }
}
