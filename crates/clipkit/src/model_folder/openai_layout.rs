//! The OpenAI CLIP layout (`clip.model.CLIP`, which open_clip keeps): its key names renamed
//! to transformers' `CLIPModel` names ([`rename_openai`]), and the architecture inferred from
//! the weights' shapes as OpenAI's `build_model` does ([`infer_architecture`]). HF names are
//! clipkit's native names; this table is the one place that knows the other spelling. A
//! ModifiedResNet image tower keeps its `visual.*` names (transformers has none), less the
//! batch norms' `num_batches_tracked` counters.
//!
//! | OpenAI / open_clip                           | transformers                                   |
//! |----------------------------------------------|------------------------------------------------|
//! | `visual.conv1.weight`                        | `vision_model.embeddings.patch_embedding.weight` |
//! | `visual.class_embedding`                     | `vision_model.embeddings.class_embedding`      |
//! | `visual.positional_embedding`                | `vision_model.embeddings.position_embedding.weight` |
//! | `visual.ln_pre` / `visual.ln_post`           | `vision_model.pre_layrnorm` / `post_layernorm` |
//! | `visual.transformer.resblocks.N`             | `vision_model.encoder.layers.N`                |
//! | `visual.proj` (C, E)                         | `visual_projection.weight` (E, C), transposed  |
//! | `token_embedding` / `positional_embedding`   | `text_model.embeddings.{token,position}_embedding` |
//! | `transformer.resblocks.N`                    | `text_model.encoder.layers.N`                  |
//! | `ln_final`                                   | `text_model.final_layer_norm`                  |
//! | `text_projection` (C, E)                     | `text_projection.weight` (E, C), transposed    |
//! | block `ln_1`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`, `attn.out_proj` | `layer_norm1`, `layer_norm2`, `mlp.fc1`, `mlp.fc2`, `self_attn.out_proj` |
//! | block `attn.in_proj_weight` / `_bias` (3C, …) | `self_attn.{q,k,v}_proj.weight` / `.bias`, split in three |
//!
//! TorchScript attributes and buffers that are not weights (`attn_mask`,
//! `input_resolution`, `context_length`, `vocab_size`) are dropped.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use super::torch_checkpoint::read_tensors;
use super::{ModelFolder, ModelParts, PendingTokenizer};
use crate::checkpoint::Checkpoint;
use crate::config::{Activation, ClipConfig, TextConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::image::PreprocessConfig;
use crate::model::{
    Architecture, ClipNetwork, ImageTowerConfig, LoadOptions, ResNetConfig, WeightFormat,
};
use crate::tokenizer::clip_vocab_files;

/// OpenAI's attention head width: `build_model` sets heads = width / 64.
const HEAD_WIDTH: usize = 64;
/// Names of a TorchScript archive's or state dict's tensors that are not weights.
const NOT_WEIGHTS: [&str; 4] = [
    "attn_mask",
    "input_resolution",
    "context_length",
    "vocab_size",
];

/// An OpenAI checkpoint at `path` (a TorchScript `.pt` as `clip.load` downloads it, or a
/// `torch.save` state dict in `.bin`/`.pth`), ViT or ModifiedResNet, ready for
/// [`crate::Clip::load`]: the architecture inferred from the weights
/// ([`infer_architecture`]), the weights renamed ([`rename_openai`]), OpenAI's
/// preprocessing at the inferred size ([`PreprocessConfig::openai_torchvision`]) and CLIP's
/// carried vocabulary ([`crate::tokenizer::ClipTokenizer::clip_vocabulary`]).
pub fn read_openai_model(path: &Path) -> Result<ModelParts> {
    let by_name: BTreeMap<String, Tensor> = read_tensors(path)?.into_iter().collect();
    let architecture = infer_architecture(&by_name, path)?;
    let weights = rename_openai(by_name, &architecture.image, path)?;
    Ok(ModelParts {
        preprocess: PreprocessConfig::openai_torchvision(architecture.image_size() as u32),
        tokenizer: PendingTokenizer::clip_vocabulary(architecture.text.max_position_embeddings),
        weights: Checkpoint::from_tensors(path, weights),
        architecture,
    })
}

/// An OpenAI-layout ViT checkpoint at `path` (a TorchScript `.pt` as `clip.load` downloads
/// it, or a `torch.save` state dict) as a HuggingFace model folder in memory: the weights
/// renamed ([`openai_to_hf`]), OpenAI's preprocessing at the inferred image size
/// ([`PreprocessConfig::openai`]) and CLIP's vocabulary ([`clip_vocab_files`]). Write it
/// with [`super::write_model_folder`].
pub fn read_openai_checkpoint(path: &Path) -> Result<ModelFolder> {
    let (config, tensors) = openai_to_hf(read_tensors(path)?, path)?;
    // Building the network once checks that every tensor is there with its shape.
    let check = Checkpoint::from_tensors(path, tensors.clone());
    let options = LoadOptions {
        weight_format: WeightFormat::Plain,
        input_gradients: false,
        ..LoadOptions::default()
    };
    let built = ClipNetwork::new(check.var_builder(), &config, options);
    check.finish()?;
    built?;
    let preprocess = PreprocessConfig::openai(config.vision_config.image_size as u32);
    Ok(ModelFolder {
        config,
        tensors,
        preprocess,
        tokenizer: clip_vocab_files()?,
        extra: Vec::new(),
    })
}

/// Renames an OpenAI-layout ViT CLIP state dict (`tensors`, read from `source`) to HF names
/// and infers its [`ClipConfig`] from the shapes ([`infer_architecture`]).
///
/// A ResNet state dict (`visual.layer1.…`), which the HF layout cannot hold, or one missing a
/// tensor the inference needs, is [`Error::Weights`] naming what is missing.
pub fn openai_to_hf(
    tensors: Vec<(String, Tensor)>,
    source: &Path,
) -> Result<(ClipConfig, BTreeMap<String, Tensor>)> {
    let by_name: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let resnet = || {
        problem(
            source,
            "a ModifiedResNet image tower (`visual.attnpool.*`): clipkit converts ViT models to \
             the HF layout only, as transformers has no ResNet CLIP"
                .into(),
        )
    };
    if by_name.contains_key("visual.attnpool.positional_embedding") {
        return Err(resnet());
    }
    let architecture = infer_architecture(&by_name, source)?;
    let ImageTowerConfig::Vit(vision_config) = architecture.image.clone() else {
        return Err(resnet());
    };
    let tensors = rename_openai(by_name, &architecture.image, source)?;
    let config = ClipConfig {
        text_config: architecture.text,
        vision_config,
        projection_dim: architecture.projection_dim,
        logit_scale_init_value: 2.6592,
    };
    Ok((config, tensors))
}

fn problem(source: &Path, message: String) -> Error {
    Error::Weights {
        path: source.to_path_buf(),
        problems: message,
    }
}

/// The architecture of an OpenAI-layout state dict, from its shapes as `build_model` infers
/// it: a ModifiedResNet when `visual.layer1.…` is present (blocks per stage from the
/// `visual.layerN.M` indices, width from `visual.layer1.0.conv1.weight`, image size 32 × the
/// attention pool's grid, heads = 32·width / 64), else a ViT (width from
/// `visual.conv1.weight`, image size from the patch size and the position-embedding count,
/// heads = width / 64); the text tower's width from `ln_final.weight`, heads = width / 64,
/// layers from the `resblocks` indices, context from `positional_embedding`; quick-GELU,
/// ε = 1e-5, bos/eos = the two largest ids (49406/49407 for CLIP's vocabulary).
pub fn infer_architecture(
    by_name: &BTreeMap<String, Tensor>,
    source: &Path,
) -> Result<Architecture> {
    let get = |name: &str| -> Result<&Tensor> {
        by_name.get(name).ok_or_else(|| {
            problem(
                source,
                format!("missing tensor `{name}` of the OpenAI CLIP layout"),
            )
        })
    };
    let dim = |name: &str, axis: usize| -> Result<usize> {
        let tensor = get(name)?;
        tensor
            .dims()
            .get(axis)
            .copied()
            .ok_or_else(|| problem(source, format!("`{name}` has shape {:?}", tensor.dims())))
    };
    let blocks = |prefix: &str| {
        by_name
            .keys()
            .filter_map(|k| {
                k.strip_prefix(prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |n| n + 1)
    };
    let grid = |positions: usize| ((positions.saturating_sub(1)) as f64).sqrt().round() as usize;
    let (vocab, context) = (
        dim("token_embedding.weight", 0)?,
        dim("positional_embedding", 0)?,
    );
    let text_width = dim("ln_final.weight", 0)?;
    let embed = dim("text_projection", 1)?;
    let image = if by_name.contains_key("visual.layer1.0.conv1.weight") {
        let width = dim("visual.layer1.0.conv1.weight", 0)?;
        let layers = [1, 2, 3, 4].map(|stage| blocks(&format!("visual.layer{stage}.")));
        ImageTowerConfig::ResNet(ResNetConfig {
            layers,
            width,
            image_size: 32 * grid(dim("visual.attnpool.positional_embedding", 0)?),
            heads: (width * 32 / HEAD_WIDTH).max(1),
            output_dim: dim("visual.attnpool.c_proj.weight", 0)?,
        })
    } else {
        let width = dim("visual.conv1.weight", 0)?;
        let patch = dim("visual.conv1.weight", 3)?;
        ImageTowerConfig::Vit(VisionConfig {
            hidden_size: width,
            intermediate_size: dim("visual.transformer.resblocks.0.mlp.c_fc.weight", 0)?,
            num_hidden_layers: blocks("visual.transformer.resblocks."),
            num_attention_heads: (width / HEAD_WIDTH).max(1),
            num_channels: dim("visual.conv1.weight", 1)?,
            image_size: patch * grid(dim("visual.positional_embedding", 0)?),
            patch_size: patch,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        })
    };
    Ok(Architecture {
        text: TextConfig {
            vocab_size: vocab,
            hidden_size: text_width,
            intermediate_size: dim("transformer.resblocks.0.mlp.c_fc.weight", 0)?,
            num_hidden_layers: blocks("transformer.resblocks."),
            num_attention_heads: (text_width / HEAD_WIDTH).max(1),
            max_position_embeddings: context,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 0,
            bos_token_id: vocab.saturating_sub(2) as u32,
            eos_token_id: vocab.saturating_sub(1) as u32,
        },
        image,
        projection_dim: embed,
    })
}

/// Renames an OpenAI-layout (or open_clip) state dict to clipkit's names by the table above:
/// the text tower and projections always, the image tower to HF names for a ViT `image`,
/// kept under `visual.` for a ModifiedResNet. Names the table does not know pass through
/// unchanged, so loading reports them as unexpected; non-weights are dropped.
pub fn rename_openai(
    by_name: BTreeMap<String, Tensor>,
    image: &ImageTowerConfig,
    source: &Path,
) -> Result<BTreeMap<String, Tensor>> {
    let vit = matches!(image, ImageTowerConfig::Vit(_));
    let mut out = BTreeMap::new();
    for (name, tensor) in by_name {
        if NOT_WEIGHTS.contains(&name.as_str()) || name.ends_with("num_batches_tracked") {
            continue;
        }
        let transposed = || -> Result<Tensor> { Ok(tensor.t()?.contiguous()?) };
        let renamed = match name.as_str() {
            "text_projection" => Some(("text_projection.weight".to_string(), transposed()?)),
            "visual.proj" if vit => Some(("visual_projection.weight".to_string(), transposed()?)),
            _ => None,
        };
        if let Some((to, t)) = renamed {
            out.insert(to, t);
            continue;
        }
        let text_block = name.strip_prefix("transformer.resblocks.");
        let vision_block = name
            .strip_prefix("visual.transformer.resblocks.")
            .filter(|_| vit);
        if let Some((rest, to)) = text_block
            .map(|r| (r, "text_model.encoder.layers"))
            .or(vision_block.map(|r| (r, "vision_model.encoder.layers")))
        {
            rename_block(rest, to, tensor, &mut out, source)?;
            continue;
        }
        let to = match name.as_str() {
            "token_embedding.weight" => "text_model.embeddings.token_embedding.weight".into(),
            "positional_embedding" => "text_model.embeddings.position_embedding.weight".into(),
            "visual.conv1.weight" if vit => "vision_model.embeddings.patch_embedding.weight".into(),
            "visual.class_embedding" if vit => "vision_model.embeddings.class_embedding".into(),
            "visual.positional_embedding" if vit => {
                "vision_model.embeddings.position_embedding.weight".into()
            }
            _ => {
                let table = [
                    ("ln_final.", "text_model.final_layer_norm."),
                    ("visual.ln_pre.", "vision_model.pre_layrnorm."),
                    ("visual.ln_post.", "vision_model.post_layernorm."),
                ];
                table
                    .iter()
                    .filter(|(from, _)| vit || !from.starts_with("visual."))
                    .find_map(|(from, to)| name.strip_prefix(from).map(|p| format!("{to}{p}")))
                    .unwrap_or(name)
            }
        };
        out.insert(to, tensor);
    }
    Ok(out)
}

/// One residual block's tensor (`rest` = `N.ln_1.weight`, …) under `to` = `…encoder.layers`,
/// the fused attention input projection split into q, k and v.
fn rename_block(
    rest: &str,
    to: &str,
    tensor: Tensor,
    out: &mut BTreeMap<String, Tensor>,
    source: &Path,
) -> Result<()> {
    let Some((index, part)) = rest.split_once('.') else {
        out.insert(format!("{to}.{rest}"), tensor);
        return Ok(());
    };
    let fused = match part {
        "attn.in_proj_weight" => Some("weight"),
        "attn.in_proj_bias" => Some("bias"),
        _ => None,
    };
    if let Some(p) = fused {
        let c = tensor.dim(0)? / 3;
        if c * 3 != tensor.dim(0)? {
            return Err(problem(
                source,
                format!("`{rest}` has {} rows, not a multiple of 3", tensor.dim(0)?),
            ));
        }
        for (k, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
            out.insert(
                format!("{to}.{index}.self_attn.{name}.{p}"),
                tensor.narrow(0, k * c, c)?.contiguous()?,
            );
        }
        return Ok(());
    }
    let renamed = [
        ("ln_1.", "layer_norm1."),
        ("ln_2.", "layer_norm2."),
        ("mlp.c_fc.", "mlp.fc1."),
        ("mlp.c_proj.", "mlp.fc2."),
        ("attn.out_proj.", "self_attn.out_proj."),
    ]
    .iter()
    .find_map(|(from, to)| part.strip_prefix(from).map(|p| format!("{to}{p}")))
    .unwrap_or_else(|| part.to_string());
    out.insert(format!("{to}.{index}.{renamed}"), tensor);
    Ok(())
}
