//! The VQ autoencoder against diffusers (`tools/make_vq_reference.py`, float64 reference of
//! float32 weights): decode, d decode / d latent through the straight-through quantiser,
//! encode, the taming-transformers layout, and the errors for folders it cannot load.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Tensor, Var};
use clipkit::model::vq::{taming, VqModel};
use common::*;

/// Decoded pixels (|values| up to 1.6): max abs difference against diffusers.
const DECODE_TOL: f32 = 1e-4;
/// d sum(decoded · probe) / d latent (|values| up to 4.7).
const GRAD_TOL: f32 = 1e-4;
/// Encoded latents.
const ENCODE_TOL: f32 = 1e-4;

fn vq_fixtures() -> PathBuf {
    fixtures().join("vq")
}

fn reference() -> HashMap<String, Tensor> {
    let path = vq_fixtures().join("reference.safetensors");
    candle_core::safetensors::load(&path, &candle_core::Device::Cpu).expect("reference loads")
}

fn check_decode(model: &VqModel, reference: &HashMap<String, Tensor>, what: &str) {
    let decoded = model.decode(&reference["latent"]).unwrap();
    assert_close(what, &decoded, &reference["decoded"], DECODE_TOL);
}

#[test]
fn decode_matches_diffusers() {
    let reference = reference();
    let model = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    check_decode(&model, &reference, "decode");
}

#[test]
fn quantiser_picks_the_codes_diffusers_picks() {
    let reference = reference();
    let model = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    let quantized = model.quantize(&reference["latent"]).unwrap();
    let got: Vec<u32> = quantized.indices.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<i64> = reference["indices"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: Vec<u32> = want.into_iter().map(|i| i as u32).collect();
    assert_eq!(got, want);
    // The codes of those indices, decoded without quantising again, give the same image.
    let codes = model.quantizer().lookup(&quantized.indices).unwrap();
    let decoded = model.decode_quantized(&codes).unwrap();
    assert_close(
        "decode of looked-up codes",
        &decoded,
        &reference["decoded"],
        DECODE_TOL,
    );
}

#[test]
fn latent_gradient_matches_torch_autograd_straight_through() {
    let reference = reference();
    let model = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    let latent = Var::from_tensor(&reference["latent"]).unwrap();
    let decoded = model.decode(latent.as_tensor()).unwrap();
    let loss = (decoded * &reference["probe"]).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let grad = grads
        .get(latent.as_tensor())
        .expect("the latent receives a gradient");
    assert_close(
        "d loss / d latent",
        grad,
        &reference["latent_grad"],
        GRAD_TOL,
    );
}

#[test]
fn encode_matches_diffusers() {
    let reference = reference();
    let model = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    let encoded = model.encode(&reference["image"]).unwrap();
    assert_close("encode", &encoded, &reference["encoded"], ENCODE_TOL);
    assert_eq!(model.latent_shape(16, 16).unwrap(), (4, 8, 8));
    assert!(model.latent_shape(15, 16).is_err());
}

#[test]
fn taming_layout_loads_to_the_same_model() {
    let reference = reference();
    let dir = vq_fixtures().join("taming");
    let model = taming::load_checkpoint(&dir.join("model.yaml"), &dir.join("model.ckpt")).unwrap();
    let diffusers = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    assert_eq!(
        model.config().block_out_channels,
        diffusers.config().block_out_channels
    );
    assert_eq!(
        model.config().down_block_types,
        diffusers.config().down_block_types
    );
    assert_eq!(
        model.config().up_block_types,
        diffusers.config().up_block_types
    );
    check_decode(&model, &reference, "decode (taming .ckpt)");

    // The same state dict saved as safetensors loads the same way.
    let tensors = clipkit::model_folder::torch_checkpoint::read_tensors_under(
        &dir.join("model.ckpt"),
        "state_dict",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&tensors.into_iter().collect::<HashMap<_, _>>(), &copy).unwrap();
    let model = taming::load_checkpoint(&dir.join("model.yaml"), &copy).unwrap();
    check_decode(&model, &reference, "decode (taming safetensors)");
}

#[test]
fn taming_names_map_to_diffusers_names() {
    let cases = [
        (
            "encoder.down.1.block.0.nin_shortcut.weight",
            "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
        ),
        (
            "encoder.down.0.downsample.conv.bias",
            "encoder.down_blocks.0.downsamplers.0.conv.bias",
        ),
        (
            "encoder.mid.attn_1.proj_out.weight",
            "encoder.mid_block.attentions.0.to_out.0.weight",
        ),
        (
            "decoder.up.4.attn.2.q.weight",
            "decoder.up_blocks.0.attentions.2.to_q.weight",
        ),
        (
            "decoder.up.0.block.2.norm2.bias",
            "decoder.up_blocks.4.resnets.2.norm2.bias",
        ),
        (
            "decoder.up.3.upsample.conv.weight",
            "decoder.up_blocks.1.upsamplers.0.conv.weight",
        ),
        ("decoder.norm_out.weight", "decoder.conv_norm_out.weight"),
        ("quantize.embedding.weight", "quantize.embedding.weight"),
    ];
    for (taming_name, diffusers_name) in cases {
        assert_eq!(
            taming::diffusers_name(taming_name, 5).unwrap().as_deref(),
            Some(diffusers_name),
            "{taming_name}"
        );
    }
    assert_eq!(
        taming::diffusers_name("loss.discriminator.main.0.weight", 5),
        Ok(None)
    );
    let err = taming::diffusers_name("decoder.up.0.blocks.1.conv1.weight", 5).unwrap_err();
    assert!(err.contains("decoder.up.0.blocks.1.conv1.weight"), "{err}");
}

#[test]
fn folder_of_another_architecture_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"_class_name": "AutoencoderKL", "latent_channels": 4}"#,
    )
    .unwrap();
    let err = VqModel::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("AutoencoderKL") && err.contains("_class_name"),
        "{err}"
    );
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn missing_and_misshaped_weights_are_all_named() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = vq_fixtures().join("tiny");
    std::fs::copy(tiny.join("config.json"), dir.path().join("config.json")).unwrap();
    let err = VqModel::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("diffusion_pytorch_model.safetensors"), "{err}");

    let mut tensors = candle_core::safetensors::load(
        tiny.join("diffusion_pytorch_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    tensors.remove("decoder.conv_out.bias");
    tensors.insert(
        "quantize.embedding.weight".into(),
        Tensor::zeros((7, 4), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(
        &tensors,
        dir.path().join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    let err = VqModel::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("decoder.conv_out.bias"), "{err}");
    assert!(err.contains("quantize.embedding.weight"), "{err}");
}

#[test]
fn vqgan_drawer_renders_unit_range_images_with_latent_gradients() {
    use clipkit::generate::vqgan_drawer;
    let model = VqModel::load(&vq_fixtures().join("tiny")).unwrap();
    let mut drawer = vqgan_drawer(model.clone(), (16, 16), 3).unwrap();
    let image = drawer.render().unwrap();
    assert_eq!(image.dims(), &[1, 3, 16, 16]);
    let values = image.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    let grads = image.sum_all().unwrap().backward().unwrap();
    let latent = &drawer.variables()[0].var;
    let grad = grads.get(latent.as_tensor()).expect("latent gradient");
    let norm = grad
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm.is_finite() && norm > 0.0, "gradient norm {norm}");
    // Same seed, same start.
    let again = vqgan_drawer(model.clone(), (16, 16), 3)
        .unwrap()
        .render()
        .unwrap();
    assert_close("same seed", &again, &image, 0.0);
    // --init-image: the latent becomes the encoding of the image.
    let reference = reference();
    let picture = ((reference["image"].narrow(0, 0, 1).unwrap() + 1.0).unwrap() / 2.0).unwrap();
    drawer.init_from_image(&picture, 0).unwrap();
    let want = model
        .encode(&reference["image"].narrow(0, 0, 1).unwrap())
        .unwrap();
    assert_close("init latent", latent.as_tensor(), &want, 1e-5);
}
