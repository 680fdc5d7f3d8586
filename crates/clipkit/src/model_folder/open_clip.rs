//! open_clip model folders, as open_clip's `push_to_hf_hub` writes them (and as Hub
//! repositories such as `laion/CLIP-ViT-B-32-laion2B-s34B-b79K` hold them):
//! `open_clip_config.json` (`model_cfg`, the architecture; `preprocess_cfg`, the image
//! transform) and the weights in `open_clip_model.safetensors` or
//! `open_clip_pytorch_model.bin`, under OpenAI's key names (renamed by
//! [`super::openai_layout::rename_openai`]). The tokenizer is CLIP's, carried by clipkit.
//!
//! Both image towers: the ViT (`layers` a number; `width`, `head_width`, `mlp_ratio`,
//! `patch_size`, `image_size`) and the ModifiedResNet (`layers` a list of four). Options
//! that change the network in ways clipkit does not implement (layer scale, attentional
//! pooling, a Hugging Face or timm tower, a logit bias, …) are refused, naming the option;
//! options that only matter for training (`patch_dropout`) are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::Deserialize;
use serde_json::Value;

use super::openai_layout::rename_openai;
use super::torch_checkpoint::read_tensors;
use super::{ModelParts, PendingTokenizer};
use crate::checkpoint::Checkpoint;
use crate::config::{Activation, TextConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::image::preprocess::ResizeTarget;
use crate::image::resample::Filter;
use crate::image::{CropCorner, PreprocessConfig};
use crate::model::{Architecture, ImageTowerConfig, ResNetConfig};

/// open_clip's model and preprocessing configuration.
pub const OPEN_CLIP_CONFIG_FILE: &str = "open_clip_config.json";
/// open_clip's weights as safetensors (preferred when both are present).
pub const OPEN_CLIP_SAFETENSORS_FILE: &str = "open_clip_model.safetensors";
/// open_clip's weights as a PyTorch pickle (`torch.save` of the state dict).
pub const OPEN_CLIP_BIN_FILE: &str = "open_clip_pytorch_model.bin";

/// `open_clip_config.json`.
#[derive(Deserialize)]
struct RawFile {
    model_cfg: ModelCfg,
    #[serde(default)]
    preprocess_cfg: PreprocessCfg,
}

/// `model_cfg`: open_clip's `CLIP` / `CustomTextCLIP` arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelCfg {
    embed_dim: usize,
    vision_cfg: VisionCfg,
    text_cfg: TextCfg,
    #[serde(default)]
    quick_gelu: bool,
    /// The text tower under `text.`; same tower.
    #[serde(default)]
    custom_text: bool,
    /// Ignored: the weights hold the logit scale.
    #[serde(default, rename = "init_logit_scale")]
    _init_logit_scale: Option<Value>,
    /// Ignored: inference runs in f32.
    #[serde(default, rename = "cast_dtype")]
    _cast_dtype: Option<Value>,
    init_logit_bias: Option<Value>,
    nonscalar_logit_scale: Option<Value>,
}

/// `model_cfg.vision_cfg`: `CLIPVisionCfg` (other keys land in `options` and are checked).
#[derive(Deserialize)]
struct VisionCfg {
    layers: Layers,
    #[serde(default = "vision_width")]
    width: usize,
    #[serde(default = "head_width")]
    head_width: usize,
    #[serde(default = "mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default = "patch_size")]
    patch_size: usize,
    #[serde(default = "image_size")]
    image_size: ImageSize,
    /// Ignored: drops patches in training only.
    #[serde(default, rename = "patch_dropout")]
    _patch_dropout: Option<Value>,
    /// Ignored: what the tower returns besides the pooled feature.
    #[serde(default, rename = "output_tokens")]
    _output_tokens: Option<Value>,
    #[serde(flatten)]
    options: BTreeMap<String, Value>,
}

/// `model_cfg.text_cfg`: `CLIPTextCfg` (other keys land in `options` and are checked).
#[derive(Deserialize)]
struct TextCfg {
    #[serde(default = "context_length")]
    context_length: usize,
    #[serde(default = "vocab_size")]
    vocab_size: usize,
    #[serde(default = "text_width")]
    width: usize,
    #[serde(default = "text_heads")]
    heads: usize,
    #[serde(default = "text_layers")]
    layers: usize,
    #[serde(default = "mlp_ratio")]
    mlp_ratio: f64,
    /// Ignored: the id the tokenizer pads with, which never reaches the result.
    #[serde(default, rename = "pad_id")]
    _pad_id: Option<Value>,
    /// Ignored: what the tower returns besides the pooled feature.
    #[serde(default, rename = "output_tokens")]
    _output_tokens: Option<Value>,
    #[serde(flatten)]
    options: BTreeMap<String, Value>,
}

/// `preprocess_cfg`: open_clip's `PreprocessCfg`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreprocessCfg {
    #[serde(alias = "image_size")]
    size: Option<ImageSize>,
    #[serde(default = "rgb")]
    mode: String,
    #[serde(default = "openai_mean")]
    mean: Vec<f32>,
    #[serde(default = "openai_std")]
    std: Vec<f32>,
    #[serde(default = "bicubic")]
    interpolation: String,
    #[serde(default = "shortest")]
    resize_mode: String,
    #[serde(default)]
    fill_color: u8,
}

impl Default for PreprocessCfg {
    fn default() -> Self {
        PreprocessCfg {
            size: None,
            mode: rgb(),
            mean: openai_mean(),
            std: openai_std(),
            interpolation: bicubic(),
            resize_mode: shortest(),
            fill_color: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Layers {
    Vit(usize),
    ResNet([usize; 4]),
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum ImageSize {
    Square(usize),
    HeightWidth([usize; 2]),
}

fn vision_width() -> usize {
    768
}
fn head_width() -> usize {
    64
}
fn mlp_ratio() -> f64 {
    4.0
}
fn patch_size() -> usize {
    16
}
fn image_size() -> ImageSize {
    ImageSize::Square(224)
}
fn context_length() -> usize {
    77
}
fn vocab_size() -> usize {
    49408
}
fn text_width() -> usize {
    512
}
fn text_heads() -> usize {
    8
}
fn text_layers() -> usize {
    12
}
fn rgb() -> String {
    "RGB".into()
}
fn bicubic() -> String {
    "bicubic".into()
}
fn shortest() -> String {
    "shortest".into()
}
// OpenAI's statistics, open_clip's `OPENAI_DATASET_MEAN` / `_STD`.
#[allow(clippy::excessive_precision)]
fn openai_mean() -> Vec<f32> {
    vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
}
#[allow(clippy::excessive_precision)]
fn openai_std() -> Vec<f32> {
    vec![0.268_629_54, 0.261_302_58, 0.275_777_11]
}

/// Architecture options clipkit implements only at open_clip's default: the value each must
/// have (`null` also accepted), by `vision_cfg` / `text_cfg` key.
const VISION_DEFAULTS: [(&str, &str); 12] = [
    ("ls_init_value", "null"),
    ("attentional_pool", "false"),
    ("no_ln_pre", "false"),
    ("pos_embed_type", "\"learnable\""),
    ("final_ln_after_pool", "false"),
    ("pool_type", "\"tok\""),
    ("act_kwargs", "null"),
    ("norm_kwargs", "null"),
    ("timm_model_name", "null"),
    ("input_patchnorm", "false"),
    ("global_average_pool", "false"),
    ("attn_pooler_queries", "256"),
];
const TEXT_DEFAULTS: [(&str, &str); 14] = [
    ("hf_tokenizer_name", "null"),
    ("tokenizer_kwargs", "null"),
    ("ls_init_value", "null"),
    ("embed_cls", "false"),
    ("no_causal_mask", "false"),
    ("final_ln_after_pool", "false"),
    ("pool_type", "\"argmax\""),
    ("proj_bias", "false"),
    ("proj_type", "\"linear\""),
    ("act_kwargs", "null"),
    ("norm_kwargs", "null"),
    ("hf_model_name", "null"),
    ("hf_model_pretrained", "null"),
    ("hf_proj_type", "null"),
];
/// Options read only by a tower clipkit refuses anyway (timm, Hugging Face, attentional
/// pooling): accepted with any value once the option that enables them is at its default.
const DEPENDENT_OPTIONS: [&str; 6] = [
    "attn_pooler_heads",
    "timm_model_pretrained",
    "timm_pool",
    "timm_proj",
    "timm_proj_bias",
    "timm_drop",
];

/// What `open_clip_config.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenClipConfig {
    /// The network (`model_cfg`).
    pub architecture: Architecture,
    /// The image transform (`preprocess_cfg`, with the model's image size).
    pub preprocess: PreprocessConfig,
    /// Whether the text tower's weights sit under `text.` (`model_cfg.custom_text`,
    /// open_clip's `CustomTextCLIP`).
    pub custom_text: bool,
}

/// Reads the open_clip folder at `dir`: architecture from `model_cfg`, preprocessing from
/// `preprocess_cfg`, CLIP's carried tokenizer, the weights renamed to clipkit's names.
pub fn read_open_clip_folder(dir: &Path) -> Result<ModelParts> {
    let config_path = dir.join(OPEN_CLIP_CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let OpenClipConfig {
        architecture,
        preprocess,
        custom_text,
    } = parse_config(&text, &config_path)?;
    let tokenizer = PendingTokenizer::clip_vocabulary(architecture.text.max_position_embeddings);
    let (weights_path, tensors) = read_weights(dir)?;
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            let name = match name.strip_prefix("text.") {
                Some(rest) if custom_text => rest.to_string(),
                _ => name,
            };
            (name, t)
        })
        .collect();
    let weights = rename_openai(tensors, &architecture.image, &weights_path)?;
    Ok(ModelParts {
        architecture,
        preprocess,
        tokenizer,
        weights: Checkpoint::from_tensors(&weights_path, weights),
    })
}

/// Every tensor of the folder's weights file (safetensors first), with that file's path.
fn read_weights(dir: &Path) -> Result<(PathBuf, BTreeMap<String, Tensor>)> {
    let safetensors = dir.join(OPEN_CLIP_SAFETENSORS_FILE);
    if safetensors.is_file() {
        let tensors = Checkpoint::open_file(&safetensors)?.into_tensors()?;
        return Ok((safetensors, tensors));
    }
    let bin = dir.join(OPEN_CLIP_BIN_FILE);
    if bin.is_file() {
        let tensors = read_tensors(&bin)?.into_iter().collect();
        return Ok((bin, tensors));
    }
    Err(Error::MissingFile {
        path: safetensors,
        hint: format!("an open_clip folder holds its weights in {OPEN_CLIP_SAFETENSORS_FILE} or {OPEN_CLIP_BIN_FILE}"),
    })
}

/// The architecture and preprocessing an `open_clip_config.json` text describes; `path`
/// names the file in errors, which name the offending field.
pub fn parse_config(text: &str, path: &Path) -> Result<OpenClipConfig> {
    let fail = |field: &str, message: String| Error::Config {
        path: path.to_path_buf(),
        field: field.into(),
        message,
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawFile = serde_path_to_error::deserialize(de)
        .map_err(|e| fail(&e.path().to_string(), e.into_inner().to_string()))?;
    let model = raw.model_cfg;
    for (field, value) in [
        ("model_cfg.init_logit_bias", &model.init_logit_bias),
        (
            "model_cfg.nonscalar_logit_scale",
            &model.nonscalar_logit_scale,
        ),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
        {
            return Err(unsupported(path, field));
        }
    }
    check_defaults(
        &model.vision_cfg.options,
        &VISION_DEFAULTS,
        "model_cfg.vision_cfg",
        path,
    )?;
    check_defaults(
        &model.text_cfg.options,
        &TEXT_DEFAULTS,
        "model_cfg.text_cfg",
        path,
    )?;
    let activation = if model.quick_gelu {
        Activation::QuickGelu
    } else {
        Activation::Gelu
    };
    let v = &model.vision_cfg;
    let image_size = square(v.image_size).ok_or_else(|| {
        fail(
            "model_cfg.vision_cfg.image_size",
            "only square images are supported".into(),
        )
    })?;
    let heads = |width: usize, field: &str| {
        if v.head_width == 0 || !width.is_multiple_of(v.head_width) {
            Err(fail(
                field,
                format!(
                    "width {width} is not a multiple of head_width {}",
                    v.head_width
                ),
            ))
        } else {
            Ok(width / v.head_width)
        }
    };
    let image = match v.layers {
        Layers::Vit(layers) => ImageTowerConfig::Vit(VisionConfig {
            hidden_size: v.width,
            intermediate_size: (v.width as f64 * v.mlp_ratio) as usize,
            num_hidden_layers: layers,
            num_attention_heads: heads(v.width, "model_cfg.vision_cfg.head_width")?,
            num_channels: 3,
            image_size,
            patch_size: v.patch_size,
            hidden_act: activation,
            layer_norm_eps: 1e-5,
        }),
        Layers::ResNet(layers) => ImageTowerConfig::ResNet(ResNetConfig {
            layers,
            width: v.width,
            image_size,
            heads: heads(v.width * 32, "model_cfg.vision_cfg.head_width")?,
            output_dim: model.embed_dim,
        }),
    };
    let t = &model.text_cfg;
    if t.heads == 0 || !t.width.is_multiple_of(t.heads) {
        return Err(fail(
            "model_cfg.text_cfg.heads",
            format!("{} does not divide the width {}", t.heads, t.width),
        ));
    }
    let architecture = Architecture {
        text: TextConfig {
            vocab_size: t.vocab_size,
            hidden_size: t.width,
            intermediate_size: (t.width as f64 * t.mlp_ratio) as usize,
            num_hidden_layers: t.layers,
            num_attention_heads: t.heads,
            max_position_embeddings: t.context_length,
            hidden_act: activation,
            layer_norm_eps: 1e-5,
            pad_token_id: 0,
            bos_token_id: 49406,
            eos_token_id: 49407,
        },
        image,
        projection_dim: model.embed_dim,
    };
    let preprocess = preprocess_config(&raw.preprocess_cfg, image_size, path)?;
    Ok(OpenClipConfig {
        architecture,
        preprocess,
        custom_text: model.custom_text,
    })
}

fn square(size: ImageSize) -> Option<usize> {
    match size {
        ImageSize::Square(s) => Some(s),
        ImageSize::HeightWidth([h, w]) => (h == w).then_some(h),
    }
}

fn unsupported(path: &Path, field: &str) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        field: field.into(),
        message: "this open_clip architecture option is not supported by clipkit".into(),
    }
}

/// Refuses any option in `options` that is not known or differs from its default.
fn check_defaults(
    options: &BTreeMap<String, Value>,
    defaults: &[(&str, &str)],
    section: &str,
    path: &Path,
) -> Result<()> {
    for (name, value) in options {
        let field = format!("{section}.{name}");
        if DEPENDENT_OPTIONS.contains(&name.as_str()) {
            continue;
        }
        let Some((_, default)) = defaults.iter().find(|(known, _)| known == name) else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                field,
                message: "unknown open_clip architecture option".into(),
            });
        };
        let default: Value = serde_json::from_str(default).unwrap_or(Value::Null);
        let empty_object = value.as_object().is_some_and(|o| o.is_empty());
        if *value != default && !value.is_null() && !empty_object {
            return Err(Error::Config {
                path: path.to_path_buf(),
                field,
                message: format!(
                    "{value} is not supported by clipkit (only open_clip's default, {default})"
                ),
            });
        }
    }
    Ok(())
}

/// open_clip's inference transform for `cfg` as a [`PreprocessConfig`]: `shortest`
/// resizes the short side and centre-crops (torchvision's rounding), `longest` resizes the
/// long side and pads the other with black (open_clip's `CenterCropOrPad`), `squash`
/// resizes to the square; bicubic or bilinear, then the mean and std.
fn preprocess_config(
    cfg: &PreprocessCfg,
    model_size: usize,
    path: &Path,
) -> Result<PreprocessConfig> {
    let fail = |field: &str, message: String| Error::Config {
        path: path.to_path_buf(),
        field: format!("preprocess_cfg.{field}"),
        message,
    };
    let size = match cfg.size {
        Some(size) => {
            square(size).ok_or_else(|| fail("size", "only square sizes are supported".into()))?
        }
        None => model_size,
    };
    if size != model_size {
        return Err(fail(
            "size",
            format!("{size} differs from the model's image_size {model_size}"),
        ));
    }
    if cfg.mode != "RGB" {
        return Err(fail(
            "mode",
            format!("{:?} is not supported (only \"RGB\")", cfg.mode),
        ));
    }
    // open_clip resamples bicubic for anything but "bilinear" at inference ("random" too).
    let filter = if cfg.interpolation == "bilinear" {
        Filter::Bilinear
    } else if ["bicubic", "random"].contains(&cfg.interpolation.as_str()) {
        Filter::Bicubic
    } else {
        return Err(fail(
            "interpolation",
            format!(
                "{:?} is not one of \"bicubic\", \"bilinear\", \"random\"",
                cfg.interpolation
            ),
        ));
    };
    let s = size as u32;
    let (resize, crop, crop_corner) = match cfg.resize_mode.as_str() {
        "shortest" => (
            ResizeTarget::ShortestEdge(s),
            Some((s, s)),
            CropCorner::RoundHalfEven,
        ),
        "longest" => (
            ResizeTarget::LongestEdge(s),
            Some((s, s)),
            CropCorner::PadFloorOrRoundHalfEven,
        ),
        "squash" => (
            ResizeTarget::Exact {
                height: s,
                width: s,
            },
            None,
            CropCorner::RoundHalfEven,
        ),
        other => {
            return Err(fail(
                "resize_mode",
                format!("{other:?} is not one of \"shortest\", \"longest\", \"squash\""),
            ))
        }
    };
    if cfg.fill_color != 0 {
        return Err(fail("fill_color", "only 0 is supported".into()));
    }
    let three = |v: &[f32], field: &str| -> Result<[f32; 3]> {
        <[f32; 3]>::try_from(v).map_err(|_| fail(field, format!("needs 3 values, got {}", v.len())))
    };
    let (mean, std) = (three(&cfg.mean, "mean")?, three(&cfg.std, "std")?);
    if std.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
        return Err(fail("std", "values must be finite and non-zero".into()));
    }
    Ok(PreprocessConfig {
        resize: Some(resize),
        filter,
        crop,
        crop_corner,
        rescale: Some(1.0 / 255.0),
        normalize: Some((mean, std)),
    })
}
