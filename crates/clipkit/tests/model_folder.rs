//! Writing a model folder: what `Clip::load` reads back equals what was written, embeddings
//! included, and replacing a folder is safe.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clipkit::config::ClipConfig;
use clipkit::image::PreprocessConfig;
use clipkit::model::{random_weights, ClipNetwork, LoadOptions};
use clipkit::model_folder::{read_tokenizer_files, write_model_folder, FolderFile, ModelFolder};
use clipkit::tokenizer::{fit, FitOptions};
use clipkit::{l2_normalize, Clip};
use common::*;

/// A small model unlike the fixtures: gelu, two heads, 16-pixel images.
fn small_config() -> ClipConfig {
    let text = std::fs::read_to_string(model_dir("clip-a").join("config.json")).unwrap();
    let mut config = ClipConfig::from_json(&text, Path::new("config.json")).unwrap();
    config.vision_config.image_size = 16;
    config.vision_config.patch_size = 4;
    config.vision_config.hidden_act = clipkit::config::Activation::Gelu;
    config.text_config.num_attention_heads = 2;
    config.projection_dim = 12;
    config
}

/// The small model with a tokenizer fitted to a few captions.
fn small_folder() -> ModelFolder {
    let mut config = small_config();
    let captions = ["a photo of a cat", "two red squares", "a dog on the left"];
    let fitted = fit(&captions, &FitOptions::default()).unwrap();
    fitted.configure(&mut config.text_config);
    ModelFolder {
        tensors: random_weights(&config).unwrap(),
        preprocess: PreprocessConfig::openai(config.vision_config.image_size as u32),
        tokenizer: fitted.files,
        extra: vec![FolderFile {
            name: "optimizer.bin".into(),
            bytes: vec![1, 2, 3],
        }],
        config,
    }
}

#[test]
fn loaded_folder_embeds_as_the_in_memory_weights() {
    let parts = small_folder();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    write_model_folder(&dir, &parts).unwrap();

    let plain: HashMap<String, Tensor> = parts.tensors.clone().into_iter().collect();
    let vb = VarBuilder::from_tensors(plain, DType::F32, &Device::Cpu);
    let in_memory = ClipNetwork::new(vb, &parts.config, LoadOptions::default()).unwrap();
    let clip = Clip::load(&dir).unwrap();

    let pixels = Tensor::randn(0f32, 1.0, (3, 3, 16, 16), &Device::Cpu).unwrap();
    let want = l2_normalize(&in_memory.image_features(&pixels).unwrap()).unwrap();
    assert_close(
        "image embeddings",
        &clip.embed_pixels(&pixels).unwrap(),
        &want,
        1e-6,
    );

    let ids: Vec<Vec<u32>> = ["a photo of a cat", "two red squares", "", "a zebra"]
        .iter()
        .map(|t| clip.tokenizer().encode(t).unwrap().ids)
        .collect();
    let longest = ids.iter().map(Vec::len).max().unwrap();
    let padded: Vec<Vec<u32>> = ids
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.resize(longest, 0);
            r
        })
        .collect();
    let want = l2_normalize(&in_memory.text_features(&padded).unwrap()).unwrap();
    assert_close(
        "text embeddings",
        &clip.embed_token_ids(&ids).unwrap(),
        &want,
        1e-6,
    );
    assert!((clip.logit_scale().unwrap() - 2.6592f32.exp()).abs() < 1e-4);
}

#[test]
fn tokenizer_files_are_copied_from_a_folder() {
    let files = read_tokenizer_files(&model_dir("clip-b")).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "vocab.json",
            "merges.txt",
            "tokenizer_config.json",
            "special_tokens_map.json"
        ]
    );
    let err = read_tokenizer_files(&fixtures().join("images"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn every_part_reads_back_unchanged() {
    let parts = small_folder();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    write_model_folder(&dir, &parts).unwrap();
    let back = ModelFolder::read(&dir).unwrap();
    assert_eq!(back.config, parts.config);
    assert_eq!(back.preprocess, parts.preprocess);
    assert_eq!(back.tokenizer, parts.tokenizer);
    assert_eq!(
        back.tensors.keys().collect::<Vec<_>>(),
        parts.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &parts.tensors {
        assert_eq!(max_abs_diff(&back.tensors[name], t), 0.0, "{name}");
    }
    assert_eq!(std::fs::read(dir.join("optimizer.bin")).unwrap(), [1, 2, 3]);
}

#[test]
fn replacing_a_model_folder_swaps_its_contents() {
    let mut parts = small_folder();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    write_model_folder(&dir, &parts).unwrap();
    parts.extra.clear();
    parts.config.logit_scale_init_value = 1.5;
    write_model_folder(&dir, &parts).unwrap();
    assert!(!dir.join("optimizer.bin").exists());
    assert_eq!(
        ModelFolder::read(&dir)
            .unwrap()
            .config
            .logit_scale_init_value,
        1.5
    );
    let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no staging folder left behind");
}

#[test]
fn refuses_to_replace_a_folder_that_is_not_a_model() {
    let parts = small_folder();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("notes.txt"), "keep me").unwrap();
    let err = write_model_folder(root.path(), &parts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a model folder"), "{err}");
    assert!(root.path().join("notes.txt").exists());
}

#[test]
fn refuses_bad_parts_naming_the_problem() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    let mut parts = small_folder();
    parts.extra.push(FolderFile {
        name: "../escape".into(),
        bytes: vec![],
    });
    let err = write_model_folder(&dir, &parts).unwrap_err().to_string();
    assert!(err.contains("../escape"), "{err}");

    let mut parts = small_folder();
    parts
        .tokenizer
        .retain(|f| f.name == "tokenizer_config.json");
    let err = write_model_folder(&dir, &parts).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");

    let mut parts = small_folder();
    parts.config.vision_config.patch_size = 0;
    let err = write_model_folder(&dir, &parts).unwrap_err().to_string();
    assert!(err.contains("vision_config.patch_size"), "{err}");
    assert!(!dir.exists(), "nothing written on error");
}
