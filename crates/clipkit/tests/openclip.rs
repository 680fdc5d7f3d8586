//! open_clip folders and OpenAI checkpoints loaded as [`Clip`] models, against open_clip and
//! OpenAI's `clip.model` (`tools/make_openclip_fixtures.py`): random weights with a
//! non-trivial init, both image towers (ViT, ModifiedResNet), weights in
//! `open_clip_model.safetensors`, `open_clip_pytorch_model.bin` and traced TorchScript `.pt`.
//! Embeddings of inputs at the model's size within 1e-4, embeddings of a resized non-square
//! image at cosine ≥ 0.999, open_clip's token ids exactly; bad inputs are refused naming
//! the file.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use clipkit::model::ImageTowerConfig;
use clipkit::model_folder::{probe_layout, Layout};
use clipkit::{Clip, Error};
use common::*;

/// Max abs difference allowed between unit-length embeddings.
const TOL: f32 = 1e-4;
/// Least cosine between embeddings of an image preprocessed by clipkit and by open_clip.
const RESIZED_COSINE: f32 = 0.999;

fn dir() -> PathBuf {
    fixtures().join("openclip")
}

fn load_reference(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("reference tensors load")
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(dir().join("texts.json")).unwrap()).unwrap()
}

/// The cosine of each row of `a` with the same row of `b` (both unit length), the least.
fn least_cosine(a: &Tensor, b: &Tensor) -> f32 {
    let cos = (a * b)
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    // NaN fails: `min` over a NaN would not, so map it to -inf first.
    cos.into_iter()
        .map(|c| if c.is_finite() { c } else { f32::NEG_INFINITY })
        .fold(f32::INFINITY, f32::min)
}

fn check_images(what: &str, clip: &Clip, reference: &HashMap<String, Tensor>) {
    let got = clip.embed_pixels(&reference["pixels"]).unwrap();
    assert_close(
        &format!("{what} image embeddings"),
        &got,
        &reference["image_embeds"],
        TOL,
    );
    let resized = clip
        .embed_image_files(&[image("wide_rgb.png")], |_| {})
        .unwrap();
    let cosine = least_cosine(&resized, &reference["resized_embeds"]);
    eprintln!("{what}: resized image cosine {cosine}");
    assert!(
        cosine >= RESIZED_COSINE,
        "{what}: resized image cosine {cosine} < {RESIZED_COSINE}"
    );
}

fn check_open_clip_folder(name: &str, tower: &str) {
    let path = dir().join(name);
    assert_eq!(probe_layout(&path), Some(Layout::OpenClipFolder), "{name}");
    let clip = Clip::load(&path).unwrap();
    assert_eq!(clip.architecture().image.kind(), tower, "{name}");
    let reference = load_reference(&path.join("reference.safetensors"));
    check_images(name, &clip, &reference);

    let texts = texts();
    let want_ids = reference["token_ids"]
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap();
    for (text, want) in texts.iter().zip(&want_ids) {
        let got = clip.tokenizer().encode(text).unwrap().ids;
        let want: Vec<u32> = want
            .iter()
            .take_while(|&&id| id != 0)
            .map(|&id| id as u32)
            .collect();
        assert_eq!(got, want, "{name}: token ids of {text:?}");
    }
    let got = clip.embed_texts(&texts).unwrap();
    assert_close(
        &format!("{name} text embeddings"),
        &got,
        &reference["text_embeds"],
        TOL,
    );
}

#[test]
fn open_clip_vit_folders_match_open_clip() {
    check_open_clip_folder("vit_safetensors", "ViT");
    check_open_clip_folder("vit_bin", "ViT");
}

#[test]
fn open_clip_resnet_folders_match_open_clip() {
    check_open_clip_folder("resnet_safetensors", "ModifiedResNet");
    check_open_clip_folder("resnet_bin", "ModifiedResNet");
}

fn check_openai_pt(name: &str, tower: &str) {
    let path = dir().join(format!("{name}.pt"));
    assert_eq!(probe_layout(&path), Some(Layout::TorchCheckpoint));
    let clip = Clip::load(&path).unwrap();
    assert_eq!(clip.architecture().image.kind(), tower);
    let reference = load_reference(&dir().join(format!("{name}_pt.safetensors")));
    check_images(name, &clip, &reference);
    let ids: Vec<Vec<u32>> = reference["ids"]
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|row| {
            let end = row.iter().position(|&id| id == 999).unwrap() + 1;
            row[..end].iter().map(|&id| id as u32).collect()
        })
        .collect();
    let got = clip.embed_token_ids(&ids).unwrap();
    assert_close(
        &format!("{name}.pt text embeddings"),
        &got,
        &reference["text_embeds"],
        TOL,
    );
}

#[test]
fn openai_torchscript_vit_matches_clip() {
    check_openai_pt("vit", "ViT");
}

#[test]
fn openai_torchscript_resnet_matches_clip() {
    check_openai_pt("resnet", "ModifiedResNet");
}

#[test]
fn openai_checkpoint_architecture_is_inferred_as_build_model_does() {
    let clip = Clip::load(&dir().join("resnet.pt")).unwrap();
    let ImageTowerConfig::ResNet(resnet) = &clip.architecture().image else {
        panic!("not a ResNet");
    };
    // width 4 → heads 4·32 / 64 = 2; a 2 × 2 attention-pool grid → 64 px.
    assert_eq!(
        (resnet.layers, resnet.width, resnet.heads, resnet.image_size),
        ([1; 4], 4, 2, 64)
    );
    let text = &clip.architecture().text;
    assert_eq!(
        (
            text.hidden_size,
            text.num_attention_heads,
            text.max_position_embeddings
        ),
        (64, 1, 16)
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clipkit-openclip-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load_error(path: &Path) -> String {
    match Clip::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_and_foreign_checkpoints_are_refused_naming_the_file() {
    let tmp = temp_dir("bad-pt");
    let whole = std::fs::read(dir().join("vit.pt")).unwrap();
    let truncated = tmp.join("truncated.pt");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let err = load_error(&truncated);
    assert!(err.contains("truncated.pt"), "{err}");

    // A PyTorch checkpoint of something else: a state dict with one linear layer.
    let foreign = fixtures().join("torch/state_dict.bin");
    let err = load_error(&foreign);
    assert!(
        err.contains("state_dict.bin") && err.contains("token_embedding.weight"),
        "{err}"
    );

    // Not a checkpoint at all.
    let png = tmp.join("image.pt");
    std::fs::copy(image("wide_rgb.png"), &png).unwrap();
    let err = load_error(&png);
    assert!(
        err.contains("image.pt") && err.contains("neither a model folder"),
        "{err}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn pickle_that_runs_code_is_refused() {
    let evil = fixtures().join("torch/evil.bin");
    let err = Clip::load(&evil).err().expect("evil.bin loaded");
    assert!(matches!(err, Error::UnsafePickle { .. }), "{err}");
    assert!(err.to_string().contains("evil.bin"), "{err}");

    // The same pickle as an open_clip folder's weights.
    let tmp = temp_dir("evil-folder");
    std::fs::copy(
        dir().join("vit_bin/open_clip_config.json"),
        tmp.join("open_clip_config.json"),
    )
    .unwrap();
    std::fs::copy(&evil, tmp.join("open_clip_pytorch_model.bin")).unwrap();
    let err = Clip::load(&tmp).err().expect("evil folder loaded");
    assert!(matches!(err, Error::UnsafePickle { .. }), "{err}");
    assert!(
        err.to_string().contains("open_clip_pytorch_model.bin"),
        "{err}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A copy of the ViT safetensors folder with `edit` applied to its config.
fn folder_with_config(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = dir().join("vit_safetensors");
    let tmp = temp_dir(name);
    std::fs::copy(
        src.join("open_clip_model.safetensors"),
        tmp.join("open_clip_model.safetensors"),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("open_clip_config.json")).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(tmp.join("open_clip_config.json"), config.to_string()).unwrap();
    tmp
}

#[test]
fn unknown_or_unsupported_open_clip_options_are_refused_by_name() {
    /// A case name, its edit of the config, the field the error must name.
    type Case = (&'static str, fn(&mut serde_json::Value), &'static str);
    let cases: [Case; 4] = [
        (
            "unknown",
            |c| c["model_cfg"]["vision_cfg"]["rope_theta"] = 10000.into(),
            "model_cfg.vision_cfg.rope_theta",
        ),
        (
            "layer-scale",
            |c| c["model_cfg"]["text_cfg"]["ls_init_value"] = 0.1.into(),
            "model_cfg.text_cfg.ls_init_value",
        ),
        (
            "coca",
            |c| c["model_cfg"]["multimodal_cfg"] = serde_json::json!({"width": 8}),
            "multimodal_cfg",
        ),
        (
            "sideways",
            |c| c["preprocess_cfg"]["resize_mode"] = "sideways".into(),
            "preprocess_cfg.resize_mode",
        ),
    ];
    for (name, edit, field) in cases {
        let folder = folder_with_config(name, edit);
        let err = load_error(&folder);
        assert!(
            err.contains("open_clip_config.json") && err.contains(field),
            "{name}: {err}"
        );
        std::fs::remove_dir_all(&folder).unwrap();
    }
}

/// `resize_mode: longest` (resize the longer side to the model's size, pad the other with
/// black, centred as open_clip's `CenterCropOrPad`) against open_clip's own transform
/// (`tools/make_open_clip_longest_reference.py`). Tolerance in normalised units: a PNG is
/// reproduced exactly (Pillow's resampling bit for bit: 1e-5 · 1/std), a JPEG to within 3
/// levels of its decoder's rounding.
#[test]
fn open_clip_longest_resize_mode_pads_as_open_clip() {
    let folder = folder_with_config("longest-mode", |c| {
        c["preprocess_cfg"]["resize_mode"] = "longest".into()
    });
    let clip = Clip::load(&folder).unwrap();
    let reference = load_reference(&dir().join("longest_pixels.safetensors"));
    let least_std = 0.2;
    for (name, levels) in [("wide_rgb.png", 0.0), ("tall_rgb.jpg", 3.0)] {
        let got = clip
            .preprocess(&clip.load_image(&image(name)).unwrap())
            .unwrap();
        let tol = (1e-5 + levels / 255.0) / least_std;
        assert_close(&format!("{name} pixels"), &got, &reference[name], tol);
    }
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn open_clip_folder_with_mismatched_weights_lists_the_tensors() {
    let folder = folder_with_config("mismatch", |c| {
        c["model_cfg"]["vision_cfg"]["width"] = 32.into()
    });
    let err = load_error(&folder);
    assert!(
        err.contains("open_clip_model.safetensors")
            && err.contains("vision_model.encoder.layers.0"),
        "{err}"
    );
    std::fs::remove_dir_all(&folder).unwrap();
}
