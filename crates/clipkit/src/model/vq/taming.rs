//! taming-transformers VQGAN checkpoints (the `.ckpt` + `.yaml` pairs VQGAN+CLIP users have):
//! the YAML's `ddconfig` turned into a [`VqConfig`], and a renaming table from taming's
//! tensor names to diffusers' — one model, two layouts.
//!
//! | taming | diffusers |
//! | --- | --- |
//! | `encoder.down.{i}.block.{j}` | `encoder.down_blocks.{i}.resnets.{j}` |
//! | `encoder.down.{i}.attn.{j}` | `encoder.down_blocks.{i}.attentions.{j}` |
//! | `encoder.down.{i}.downsample` | `encoder.down_blocks.{i}.downsamplers.0` |
//! | `decoder.up.{i}.block.{j}` | `decoder.up_blocks.{L−1−i}.resnets.{j}` (taming numbers decoder levels by resolution, diffusers by order of use) |
//! | `decoder.up.{i}.attn.{j}` | `decoder.up_blocks.{L−1−i}.attentions.{j}` |
//! | `decoder.up.{i}.upsample` | `decoder.up_blocks.{L−1−i}.upsamplers.0` |
//! | `{en,de}coder.mid.block_1` / `attn_1` / `block_2` | `….mid_block.resnets.0` / `attentions.0` / `resnets.1` |
//! | `{en,de}coder.norm_out` | `….conv_norm_out` |
//! | `nin_shortcut` | `conv_shortcut` |
//! | attention `norm`, `q`, `k`, `v`, `proj_out` (1×1 convolutions) | `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0` (linear: the 1×1 kernels lose their two unit axes) |
//! | `loss.*` (discriminator, LPIPS) | dropped: training-only |
//!
//! Everything else (`conv_in`, `conv_out`, `norm1`, `conv1`, `norm2`, `conv2`,
//! `quant_conv`, `post_quant_conv`, `quantize.embedding`) keeps its name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::config::{
    VqConfig, ATTN_DOWN_BLOCK, ATTN_UP_BLOCK, DOWN_BLOCK, UP_BLOCK, VQ_CLASS_NAME,
};
use super::VqModel;
use crate::error::{Error, Result};
use crate::model_folder::torch_checkpoint::read_tensors_under;

/// The `target` of a taming VQGAN with a plain codebook (GumbelVQ and others are refused).
pub const TAMING_VQGAN_TARGET: &str = "taming.models.vqgan.VQModel";
/// The group count of taming's `Normalize` (fixed in its code, not in the YAML).
const TAMING_NORM_GROUPS: usize = 32;

#[derive(Debug, Deserialize)]
struct YamlFile {
    model: YamlModel,
}

#[derive(Debug, Deserialize)]
struct YamlModel {
    target: String,
    params: YamlParams,
}

#[derive(Debug, Deserialize)]
struct YamlParams {
    embed_dim: usize,
    n_embed: usize,
    ddconfig: DdConfig,
}

#[derive(Debug, Deserialize)]
struct DdConfig {
    #[serde(default)]
    double_z: bool,
    z_channels: usize,
    resolution: usize,
    in_channels: usize,
    out_ch: usize,
    ch: usize,
    ch_mult: Vec<usize>,
    num_res_blocks: usize,
    #[serde(default)]
    attn_resolutions: Vec<usize>,
}

/// The [`VqConfig`] of a taming-transformers model YAML (`model.params.ddconfig`,
/// `n_embed`, `embed_dim`); `path` names the file in errors.
pub fn config_from_yaml(text: &str, path: &Path) -> Result<VqConfig> {
    let de = serde_norway::Deserializer::from_str(text);
    let file: YamlFile = serde_path_to_error::deserialize(de).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    let model = file.model;
    if model.target != TAMING_VQGAN_TARGET {
        return Err(Error::Config {
            path: path.to_path_buf(),
            field: "model.target".into(),
            message: format!(
                "`{}` is not a VQGAN with a plain codebook (`{TAMING_VQGAN_TARGET}`)",
                model.target
            ),
        });
    }
    let dd = model.params.ddconfig;
    if dd.double_z {
        return Err(Error::Config {
            path: path.to_path_buf(),
            field: "model.params.ddconfig.double_z".into(),
            message: "a VQGAN's encoder has double_z: false".into(),
        });
    }
    let levels = dd.ch_mult.len();
    let attention_at = |level: usize| {
        dd.resolution
            .checked_shr(level as u32)
            .is_some_and(|r| dd.attn_resolutions.contains(&r))
    };
    let config = VqConfig {
        class_name: VQ_CLASS_NAME.into(),
        diffusers_version: "0.42.1".into(),
        name_or_path: None,
        in_channels: dd.in_channels,
        out_channels: dd.out_ch,
        down_block_types: (0..levels)
            .map(|i| {
                if attention_at(i) {
                    ATTN_DOWN_BLOCK
                } else {
                    DOWN_BLOCK
                }
                .into()
            })
            .collect(),
        up_block_types: (0..levels)
            .map(|k| {
                if attention_at(levels - 1 - k) {
                    ATTN_UP_BLOCK
                } else {
                    UP_BLOCK
                }
                .into()
            })
            .collect(),
        block_out_channels: dd.ch_mult.iter().map(|m| dd.ch * m).collect(),
        layers_per_block: dd.num_res_blocks,
        act_fn: "silu".into(),
        latent_channels: dd.z_channels,
        sample_size: dd.resolution,
        num_vq_embeddings: model.params.n_embed,
        norm_num_groups: TAMING_NORM_GROUPS,
        vq_embed_dim: Some(model.params.embed_dim),
        scaling_factor: 0.18215,
        norm_type: "group".into(),
        mid_block_add_attention: true,
        lookup_from_codebook: false,
        force_upcast: false,
    };
    config.validate(path)?;
    Ok(config)
}

/// The diffusers name of a taming tensor name; `Ok(None)` for training-only tensors
/// (`loss.*`), an error for a name the table does not know. `levels` is the number of
/// resolution levels (`len(ch_mult)`).
pub fn diffusers_name(name: &str, levels: usize) -> std::result::Result<Option<String>, String> {
    let parts: Vec<&str> = name.split('.').collect();
    let unknown = || format!("unknown taming tensor name `{name}`");
    let index = |s: &str| s.parse::<usize>().map_err(|_| unknown());
    let (head, rest) = match parts.as_slice() {
        ["loss", ..] => return Ok(None),
        ["quant_conv" | "post_quant_conv", _] | ["quantize", "embedding", "weight"] => {
            return Ok(Some(name.to_string()))
        }
        [tower @ ("encoder" | "decoder"), rest @ ..] => (*tower, rest),
        _ => return Err(unknown()),
    };
    let (path, leaf): (String, &[&str]) = match (head, rest) {
        (_, ["conv_in" | "conv_out", ..]) => (rest[0].to_string(), &rest[1..]),
        (_, ["norm_out", leaf @ ..]) => ("conv_norm_out".into(), leaf),
        (_, ["mid", block, leaf @ ..]) => {
            let block = match *block {
                "block_1" => "resnets.0",
                "attn_1" => "attentions.0",
                "block_2" => "resnets.1",
                _ => return Err(unknown()),
            };
            (format!("mid_block.{block}"), leaf)
        }
        ("encoder", ["down", i, kind, tail @ ..]) => {
            let i = index(i)?;
            level_part("down_blocks", i, kind, tail, "downsample", "downsamplers")
                .ok_or_else(unknown)?
        }
        ("decoder", ["up", i, kind, tail @ ..]) => {
            let i = index(i)?;
            if i >= levels {
                return Err(unknown());
            }
            level_part(
                "up_blocks",
                levels - 1 - i,
                kind,
                tail,
                "upsample",
                "upsamplers",
            )
            .ok_or_else(unknown)?
        }
        _ => return Err(unknown()),
    };
    let leaf: Vec<String> = match leaf {
        [module, param] => {
            let module = match *module {
                "nin_shortcut" => "conv_shortcut",
                "norm" => "group_norm",
                "q" => "to_q",
                "k" => "to_k",
                "v" => "to_v",
                "proj_out" => "to_out.0",
                "norm1" | "norm2" | "conv1" | "conv2" | "conv" => module,
                _ => return Err(unknown()),
            };
            vec![module.to_string(), param.to_string()]
        }
        [param] => vec![param.to_string()],
        _ => return Err(unknown()),
    };
    Ok(Some(format!("{head}.{path}.{}", leaf.join("."))))
}

/// `down.{i}.block.{j}` → (`down_blocks.{i}.resnets.{j}`, rest) and the like.
fn level_part<'a>(
    blocks: &str,
    level: usize,
    kind: &str,
    tail: &'a [&'a str],
    sampler: &str,
    samplers: &str,
) -> Option<(String, &'a [&'a str])> {
    match (kind, tail) {
        ("block", [j, leaf @ ..]) => Some((format!("{blocks}.{level}.resnets.{j}"), leaf)),
        ("attn", [j, leaf @ ..]) => Some((format!("{blocks}.{level}.attentions.{j}"), leaf)),
        (k, leaf) if k == sampler => Some((format!("{blocks}.{level}.{samplers}.0"), leaf)),
        _ => None,
    }
}

/// Renames a taming state dict to diffusers' names (see the module table), dropping
/// training-only tensors and turning the attention's 1×1 kernels into linear weights.
/// `origin` names the checkpoint in errors; every unknown name is reported at once.
pub fn to_diffusers(
    tensors: BTreeMap<String, Tensor>,
    config: &VqConfig,
    origin: &Path,
) -> Result<HashMap<String, Tensor>> {
    let levels = config.block_out_channels.len();
    let mut renamed = HashMap::new();
    let mut problems = Vec::new();
    for (name, tensor) in tensors {
        match diffusers_name(&name, levels) {
            Ok(None) => {}
            Ok(Some(new)) => {
                let is_attention_kernel = new.contains(".attentions.")
                    && new.ends_with(".weight")
                    && !new.contains(".group_norm.")
                    && tensor.rank() == 4;
                let tensor = if is_attention_kernel {
                    tensor.squeeze(3)?.squeeze(2)?
                } else {
                    tensor
                };
                renamed.insert(new, tensor);
            }
            Err(message) => problems.push(format!("  {message}")),
        }
    }
    if problems.is_empty() {
        Ok(renamed)
    } else {
        Err(Error::Weights {
            path: origin.to_path_buf(),
            problems: problems.join("\n"),
        })
    }
}

/// Loads a taming VQGAN from its YAML and its tensors (a state dict by taming names,
/// `loss.*` allowed); `origin` names the tensors' file in errors.
pub fn load(yaml: &Path, tensors: BTreeMap<String, Tensor>, origin: &Path) -> Result<VqModel> {
    let text = std::fs::read_to_string(yaml).map_err(|e| Error::io(yaml, e))?;
    let config = config_from_yaml(&text, yaml)?;
    let renamed = to_diffusers(tensors, &config, origin)?;
    let vb = VarBuilder::from_tensors(renamed, DType::F32, &Device::Cpu);
    VqModel::new(vb, &config).map_err(|e| Error::Weights {
        path: origin.to_path_buf(),
        problems: format!("  {e}"),
    })
}

/// Loads a taming VQGAN from its YAML and its weights: a PyTorch Lightning `.ckpt` (as
/// taming-transformers saves it; the tensors under `state_dict`, read without running any
/// pickle code) or a safetensors file of the same state dict (any other extension).
pub fn load_checkpoint(yaml: &Path, weights: &Path) -> Result<VqModel> {
    let is_pickle = weights
        .extension()
        .is_some_and(|e| e == "ckpt" || e == "pt" || e == "pth");
    let tensors: Vec<(String, Tensor)> = if is_pickle {
        read_tensors_under(weights, "state_dict")?
    } else {
        candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| Error::CorruptCheckpoint {
                path: weights.to_path_buf(),
                message: e.to_string(),
            })?
            .into_iter()
            .collect()
    };
    let tensors = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    load(yaml, tensors, weights)
}
