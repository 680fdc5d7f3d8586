//! WiSE-FT merging: the ends of the interpolation are the two models, the middle is the
//! average, and folders that do not match are refused naming what differs.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use clipkit::config::ClipConfig;
use clipkit::image::PreprocessConfig;
use clipkit::merge::{merge_model_folders, WiseFt};
use clipkit::model::random_weights;
use clipkit::model_folder::{write_model_folder, ModelFolder};
use clipkit::tokenizer::{fit, FitOptions};
use clipkit::Clip;
use common::*;

/// A tiny config whose image tower's MLP is `vision_mlp` wide.
fn config_json(vision_mlp: usize) -> String {
    format!(
        r#"{{"projection_dim": 8,
        "text_config": {{"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "max_position_embeddings": 16}},
        "vision_config": {{"hidden_size": 16, "intermediate_size": {vision_mlp},
                          "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 16,
                          "patch_size": 8}}}}"#
    )
}

fn folder(vision_mlp: usize) -> ModelFolder {
    let json = config_json(vision_mlp);
    let mut config = ClipConfig::from_json(&json, Path::new("config.json")).unwrap();
    let fitted = fit(
        &["a red circle", "two blue squares"],
        &FitOptions::default(),
    )
    .unwrap();
    fitted.configure(&mut config.text_config);
    ModelFolder {
        tensors: random_weights(&config).unwrap(),
        preprocess: PreprocessConfig::openai(16),
        tokenizer: fitted.files,
        extra: Vec::new(),
        config,
    }
}

/// Base and fine-tuned folders of one architecture; the fine-tuned one has its own
/// preprocessing and tokenizer settings.
fn pair(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (base, finetuned) = (root.join("base"), root.join("finetuned"));
    write_model_folder(&base, &folder(32)).unwrap();
    let mut ft = folder(32);
    ft.preprocess.normalize = Some(([0.5; 3], [0.25; 3]));
    for file in &mut ft.tokenizer {
        if file.name == "tokenizer_config.json" {
            file.bytes =
                br#"{"tokenizer_class": "CLIPTokenizer", "model_max_length": 16}"#.to_vec();
        }
    }
    write_model_folder(&finetuned, &ft).unwrap();
    (base, finetuned)
}

fn embeddings(dir: &Path) -> (Tensor, Tensor) {
    let clip = Clip::load(dir).unwrap();
    // The same pixels for every model.
    let pixels = Tensor::arange(0f32, (2 * 3 * 16 * 16) as f32, &Device::Cpu)
        .and_then(|t| t.sin())
        .and_then(|t| t.reshape((2, 3, 16, 16)))
        .unwrap();
    let images = clip.embed_pixels(&pixels).unwrap();
    let texts = clip
        .embed_texts(&["a red circle", "two blue squares"])
        .unwrap();
    (images, texts)
}

#[test]
fn alpha_zero_is_base_and_alpha_one_is_finetuned() {
    let root = tempfile::tempdir().unwrap();
    let (base, finetuned) = pair(root.path());
    let wise = WiseFt::open(&base, &finetuned).unwrap();
    for (alpha, like) in [(0.0, &base), (1.0, &finetuned)] {
        let out = root.path().join(format!("merged-{alpha}"));
        write_model_folder(&out, &wise.at(alpha).unwrap()).unwrap();
        let (images, texts) = embeddings(&out);
        let (want_images, want_texts) = embeddings(like);
        assert_eq!(max_abs_diff(&images, &want_images), 0.0, "alpha {alpha}");
        assert_eq!(max_abs_diff(&texts, &want_texts), 0.0, "alpha {alpha}");
    }
}

#[test]
fn middle_is_the_weighted_average_with_finetuned_files() {
    let root = tempfile::tempdir().unwrap();
    let (base, finetuned) = pair(root.path());
    let out = root.path().join("merged");
    merge_model_folders(&base, &finetuned, 0.25, &out).unwrap();
    let (b, f, m) = (
        ModelFolder::read(&base).unwrap(),
        ModelFolder::read(&finetuned).unwrap(),
        ModelFolder::read(&out).unwrap(),
    );
    for (name, merged) in &m.tensors {
        let want =
            ((&b.tensors[name] * 0.75).unwrap() + (&f.tensors[name] * 0.25).unwrap()).unwrap();
        assert!(max_abs_diff(merged, &want) < 1e-6, "{name}");
    }
    assert_eq!(m.preprocess, f.preprocess);
    assert_eq!(m.tokenizer, f.tokenizer);
    assert_ne!(m.tokenizer, b.tokenizer);
}

#[test]
fn different_configs_are_refused_naming_the_field() {
    let root = tempfile::tempdir().unwrap();
    let (base, _) = pair(root.path());
    let other = root.path().join("other");
    write_model_folder(&other, &folder(24)).unwrap();
    let err = WiseFt::open(&base, &other).err().unwrap().to_string();
    assert!(err.contains("vision_config.intermediate_size"), "{err}");
    assert!(err.contains("32") && err.contains("24"), "{err}");
}

#[test]
fn the_initial_temperature_is_no_difference() {
    let root = tempfile::tempdir().unwrap();
    let (base, _) = pair(root.path());
    let mut other = folder(32);
    other.config.logit_scale_init_value = 2.6592;
    let dir = root.path().join("other-init");
    write_model_folder(&dir, &other).unwrap();
    let merged = WiseFt::open(&base, &dir).unwrap().at(0.5).unwrap();
    assert_eq!(merged.config.logit_scale_init_value, 2.6592);
}

#[test]
fn mismatched_or_missing_tensors_are_refused_naming_the_tensor() {
    let root = tempfile::tempdir().unwrap();
    let (base, _) = pair(root.path());
    let name = "text_model.final_layer_norm.bias";

    let mut reshaped = folder(32);
    reshaped.tensors.insert(
        name.into(),
        Tensor::zeros(17, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = root.path().join("reshaped");
    write_model_folder(&dir, &reshaped).unwrap();
    let err = WiseFt::open(&base, &dir).err().unwrap().to_string();
    assert!(err.contains(name) && err.contains("[17]"), "{err}");

    let mut missing = folder(32);
    missing.tensors.remove(name);
    let dir = root.path().join("missing");
    write_model_folder(&dir, &missing).unwrap();
    let err = WiseFt::open(&base, &dir).err().unwrap().to_string();
    assert!(err.contains(name) && err.contains("missing"), "{err}");
    let err = WiseFt::open(&dir, &base).err().unwrap().to_string();
    assert!(err.contains(name) && err.contains("missing"), "{err}");
}

#[test]
fn alpha_outside_zero_to_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (base, finetuned) = pair(root.path());
    let wise = WiseFt::open(&base, &finetuned).unwrap();
    for alpha in [-0.1, 1.5, f64::NAN] {
        let err = wise.at(alpha).err().unwrap().to_string();
        assert!(err.contains("alpha"), "{err}");
    }
}
