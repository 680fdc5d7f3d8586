//! The ModifiedResNet image tower against open_clip (`tools/make_resnet_fixture.py`): random
//! weights with a non-trivial init, features equal to PyTorch's within 1e-4, with packed and
//! plain weights.

mod common;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clipkit::model::{ResNetConfig, ResNetTower};
use clipkit::{LoadOptions, WeightFormat};
use common::*;

/// Max abs difference allowed against PyTorch's features (which are O(1)).
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/resnet"
    ))
    .join(name)
}

/// The fixture's shape, as `tools/make_resnet_fixture.py` writes it in `config.json`.
fn fixture_config() -> ResNetConfig {
    ResNetConfig {
        layers: [2, 1, 1, 1],
        width: 8,
        image_size: 64,
        heads: 4,
        output_dim: 24,
    }
}

#[test]
fn resnet_features_match_open_clip() {
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    assert_eq!(written["layers"], serde_json::json!([2, 1, 1, 1]));
    assert_eq!(written["width"], 8);
    assert_eq!(written["output_dim"], 24);
    let io = candle_core::safetensors::load(fixture("io.safetensors"), &Device::Cpu).unwrap();
    for weight_format in [WeightFormat::Packed, WeightFormat::Plain] {
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[fixture("weights.safetensors")],
                DType::F32,
                &Device::Cpu,
            )
        }
        .unwrap();
        let options = LoadOptions {
            weight_format,
            ..LoadOptions::default()
        };
        let tower = ResNetTower::new(vb.pp("visual"), &fixture_config(), options).unwrap();
        let got = tower.forward(&io["pixels"]).unwrap();
        assert_close(
            &format!("ResNet features ({weight_format:?})"),
            &got,
            &io["features"],
            TOL,
        );
    }
}

#[test]
fn resnet_refuses_pixels_of_another_size() {
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[fixture("weights.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let tower =
        ResNetTower::new(vb.pp("visual"), &fixture_config(), LoadOptions::default()).unwrap();
    let pixels = candle_core::Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let err = tower.forward(&pixels).unwrap_err().to_string();
    assert!(err.contains("(3, 64, 64)"), "{err}");
}
