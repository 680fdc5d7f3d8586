//! OpenAI-layout CLIP checkpoints (`tools/make_openai_layout_fixture.py`: an open_clip ViT
//! CLIP, saved as a `torch.save` state dict and as a traced TorchScript archive, float16):
//! read with `torch_checkpoint`, renamed and configured by `openai_layout::openai_to_hf`,
//! run by clipkit's network, image and text features equal to open_clip's within 1e-4.

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clipkit::model::ClipNetwork;
use clipkit::model_folder::openai_layout::openai_to_hf;
use clipkit::model_folder::torch_checkpoint::read_tensors;
use clipkit::{Error, LoadOptions};
use common::*;

/// Max abs difference of unnormalised features (O(1)) against open_clip.
const TOL: f32 = 1e-4;

fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
        .join(dir)
        .join(name)
}

#[test]
fn openai_state_dict_and_torchscript_match_open_clip() {
    let io =
        candle_core::safetensors::load(fixture("openai", "io.safetensors"), &Device::Cpu).unwrap();
    let ids: Vec<Vec<u32>> = io["ids"]
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|row| row.into_iter().map(|i| i as u32).collect())
        .collect();
    for file in ["vit.bin", "vit.pt"] {
        let path = fixture("openai", file);
        let (config, tensors) = openai_to_hf(read_tensors(&path).unwrap(), &path).unwrap();
        let (v, t) = (&config.vision_config, &config.text_config);
        assert_eq!(
            (
                v.image_size,
                v.patch_size,
                v.hidden_size,
                v.num_attention_heads
            ),
            (32, 8, 128, 2)
        );
        assert_eq!((v.num_hidden_layers, v.intermediate_size), (1, 512));
        assert_eq!(
            (
                t.vocab_size,
                t.max_position_embeddings,
                t.num_attention_heads
            ),
            (1000, 16, 2)
        );
        assert_eq!((t.eos_token_id, config.projection_dim), (999, 24));
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let network = ClipNetwork::new(vb, &config, LoadOptions::default()).unwrap();
        let image = network.image_features(&io["pixels"]).unwrap();
        assert_close(
            &format!("{file}: image features"),
            &image,
            &io["image_features"],
            TOL,
        );
        let text = network.text_features(&ids).unwrap();
        assert_close(
            &format!("{file}: text features"),
            &text,
            &io["text_features"],
            TOL,
        );
    }
}

#[test]
fn resnet_and_incomplete_state_dicts_are_refused_by_name() {
    let resnet = fixture("resnet", "weights.safetensors");
    let tensors: Vec<(String, Tensor)> = candle_core::safetensors::load(&resnet, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    let err = openai_to_hf(tensors, &resnet).unwrap_err();
    assert!(
        matches!(&err, Error::Weights { .. }) && err.to_string().contains("ResNet"),
        "{err}"
    );

    let path = fixture("openai", "vit.bin");
    let mut tensors = read_tensors(&path).unwrap();
    tensors.retain(|(name, _)| name != "ln_final.weight");
    let err = openai_to_hf(tensors, &path).unwrap_err().to_string();
    assert!(
        err.contains("vit.bin") && err.contains("`ln_final.weight`"),
        "{err}"
    );
}
