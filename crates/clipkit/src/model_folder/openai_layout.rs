//! The OpenAI CLIP layout (`clip.model.CLIP`, which open_clip keeps): its ViT key names
//! renamed to transformers' `CLIPModel` names, and the architecture inferred from the
//! weights' shapes as OpenAI's `build_model` does. HF names are clipkit's native names; this
//! table is the one place that knows the other spelling.
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
//! TorchScript attributes that are not weights (`attn_mask`, `input_resolution`,
//! `context_length`, `vocab_size`) are dropped.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use super::torch_checkpoint::read_tensors;
use super::ModelFolder;
use crate::config::{Activation, ClipConfig, TextConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::image::PreprocessConfig;
use crate::tokenizer::clip_vocab_files;

/// OpenAI's attention head width: `build_model` sets heads = width / 64.
const HEAD_WIDTH: usize = 64;

/// An OpenAI-layout ViT checkpoint at `path` (a TorchScript `.pt` as `clip.load` downloads
/// it, or a `torch.save` state dict) as a HuggingFace model folder in memory: the weights
/// renamed ([`openai_to_hf`]), OpenAI's preprocessing at the inferred image size
/// ([`PreprocessConfig::openai`]) and CLIP's vocabulary ([`clip_vocab_files`]). Write it
/// with [`super::write_model_folder`].
pub fn read_openai_checkpoint(path: &Path) -> Result<ModelFolder> {
    let (config, tensors) = openai_to_hf(read_tensors(path)?, path)?;
    let preprocess = PreprocessConfig::openai(config.vision_config.image_size as u32);
    Ok(ModelFolder {
        config,
        tensors,
        preprocess,
        tokenizer: clip_vocab_files()?,
        extra: Vec::new(),
    })
}

/// Renames an OpenAI-layout ViT CLIP state dict (`tensors`, read from `source`) to HF names and
/// infers its [`ClipConfig`] from the shapes: widths from `visual.conv1.weight` and
/// `ln_final.weight`, layer counts from the `resblocks` indices, image size from the patch
/// size and the position-embedding count, heads = width / 64, quick-GELU, ε = 1e-5,
/// bos/eos = the two largest ids (49406/49407 for CLIP's vocabulary).
///
/// A ResNet state dict (`visual.layer1.…`), or one missing a tensor the table needs, is
/// [`Error::Weights`] naming what is missing.
pub fn openai_to_hf(
    tensors: Vec<(String, Tensor)>,
    source: &Path,
) -> Result<(ClipConfig, BTreeMap<String, Tensor>)> {
    let by_name: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let problem = |message: String| Error::Weights {
        path: source.to_path_buf(),
        problems: message,
    };
    if by_name.contains_key("visual.attnpool.positional_embedding") {
        return Err(problem(
            "a ModifiedResNet image tower (`visual.attnpool.*`): clipkit converts ViT models to \
             the HF layout only, as transformers has no ResNet CLIP"
                .into(),
        ));
    }
    let get = |name: &str| -> Result<&Tensor> {
        by_name
            .get(name)
            .ok_or_else(|| problem(format!("missing tensor `{name}` of the OpenAI CLIP layout")))
    };
    let conv1 = get("visual.conv1.weight")?.dims().to_vec();
    let [vision_width, channels, patch, _] = conv1[..] else {
        return Err(problem(format!(
            "`visual.conv1.weight` has shape {conv1:?}, not (C, 3, p, p)"
        )));
    };
    let positions = get("visual.positional_embedding")?.dim(0)?;
    let grid = (((positions.saturating_sub(1)) as f64).sqrt().round()) as usize;
    let text_width = get("ln_final.weight")?.dim(0)?;
    let (vocab, _) = get("token_embedding.weight")?.dims2()?;
    let context = get("positional_embedding")?.dim(0)?;
    let (_, embed) = get("text_projection")?.dims2()?;
    let layers = |prefix: &str| {
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
    let vision_layers = layers("visual.transformer.resblocks.");
    let text_layers = layers("transformer.resblocks.");
    let mlp =
        |prefix: &str| -> Result<usize> { Ok(get(&format!("{prefix}0.mlp.c_fc.weight"))?.dim(0)?) };
    let config = ClipConfig {
        text_config: TextConfig {
            vocab_size: vocab,
            hidden_size: text_width,
            intermediate_size: mlp("transformer.resblocks.")?,
            num_hidden_layers: text_layers,
            num_attention_heads: (text_width / HEAD_WIDTH).max(1),
            max_position_embeddings: context,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 0,
            bos_token_id: vocab.saturating_sub(2) as u32,
            eos_token_id: vocab.saturating_sub(1) as u32,
        },
        vision_config: VisionConfig {
            hidden_size: vision_width,
            intermediate_size: mlp("visual.transformer.resblocks.")?,
            num_hidden_layers: vision_layers,
            num_attention_heads: (vision_width / HEAD_WIDTH).max(1),
            num_channels: channels,
            image_size: patch * grid,
            patch_size: patch,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        },
        projection_dim: embed,
        logit_scale_init_value: 2.6592,
    };

    let mut out = BTreeMap::new();
    let mut put = |name: String, t: &Tensor| {
        out.insert(name, t.clone());
    };
    put("logit_scale".into(), get("logit_scale")?);
    put(
        "text_projection.weight".into(),
        &get("text_projection")?.t()?.contiguous()?,
    );
    put(
        "visual_projection.weight".into(),
        &get("visual.proj")?.t()?.contiguous()?,
    );
    let v = "vision_model";
    put(
        format!("{v}.embeddings.patch_embedding.weight"),
        get("visual.conv1.weight")?,
    );
    put(
        format!("{v}.embeddings.class_embedding"),
        get("visual.class_embedding")?,
    );
    put(
        format!("{v}.embeddings.position_embedding.weight"),
        get("visual.positional_embedding")?,
    );
    for (from, to) in [
        ("visual.ln_pre", "pre_layrnorm"),
        ("visual.ln_post", "post_layernorm"),
    ] {
        for p in ["weight", "bias"] {
            put(format!("{v}.{to}.{p}"), get(&format!("{from}.{p}"))?);
        }
    }
    let t = "text_model";
    put(
        format!("{t}.embeddings.token_embedding.weight"),
        get("token_embedding.weight")?,
    );
    put(
        format!("{t}.embeddings.position_embedding.weight"),
        get("positional_embedding")?,
    );
    for p in ["weight", "bias"] {
        put(
            format!("{t}.final_layer_norm.{p}"),
            get(&format!("ln_final.{p}"))?,
        );
    }
    for (from, to, count) in [
        (
            "visual.transformer.resblocks",
            "vision_model.encoder.layers",
            vision_layers,
        ),
        (
            "transformer.resblocks",
            "text_model.encoder.layers",
            text_layers,
        ),
    ] {
        for i in 0..count {
            let (from, to) = (format!("{from}.{i}"), format!("{to}.{i}"));
            for (a, b) in [
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
                ("attn.out_proj", "self_attn.out_proj"),
            ] {
                for p in ["weight", "bias"] {
                    put(format!("{to}.{b}.{p}"), get(&format!("{from}.{a}.{p}"))?);
                }
            }
            for (suffix, p) in [("in_proj_weight", "weight"), ("in_proj_bias", "bias")] {
                let packed = get(&format!("{from}.attn.{suffix}"))?;
                let c = packed.dim(0)? / 3;
                for (k, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                    put(
                        format!("{to}.self_attn.{name}.{p}"),
                        &packed.narrow(0, k * c, c)?.contiguous()?,
                    );
                }
            }
        }
    }
    Ok((config, out))
}
