//! The text-to-image transformer against its PyTorch twin (`tools/make_imagine_reference.py`,
//! float64 reference of float32 weights): logits, the three losses and the gradient of every
//! parameter after one batch; and the KV-cached sampling path against the full forward pass.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clipkit::model::imagine::{ImagineConfig, ImagineModel};
use common::*;

/// Logits (|values| up to about 6).
const LOGITS_TOL: f32 = 1e-4;
/// Losses (about 3.5).
const LOSS_TOL: f32 = 1e-5;
/// Gradients of the total loss (|values| up to about 0.5).
const GRAD_TOL: f32 = 1e-5;
/// The cached, one position at a time, path against the full pass (same arithmetic, other
/// matrix shapes).
const CACHE_TOL: f32 = 1e-5;

fn folder() -> PathBuf {
    fixtures().join("imagine")
}

fn reference() -> HashMap<String, Tensor> {
    let path = folder().join("reference.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).expect("reference loads")
}

fn ids(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

#[test]
fn logits_and_losses_match_pytorch() {
    let r = reference();
    let model = ImagineModel::load(&folder()).unwrap();
    let (text, codes) = (ids(&r["text"]), ids(&r["codes"]));
    let t = text.dim(1).unwrap();
    let n = codes.dim(1).unwrap();
    let stream = model.stream(&text, &codes).unwrap();
    let logits = model
        .forward(&stream.narrow(1, 0, t + n - 1).unwrap(), None)
        .unwrap();
    assert_close("logits", &logits, &r["logits"], LOGITS_TOL);
    let weight = r["text_weight"].to_vec1::<f32>().unwrap()[0] as f64;
    let loss = model.loss(&text, &codes, weight).unwrap();
    for (name, got) in [
        ("loss_total", &loss.total),
        ("loss_image", &loss.image),
        ("loss_text", &loss.text),
    ] {
        assert_close(name, &got.reshape(1).unwrap(), &r[name], LOSS_TOL);
    }
}

#[test]
fn gradients_of_one_training_step_match_pytorch() {
    let r = reference();
    let config = ImagineConfig::read(&folder().join("config.json")).unwrap();
    let varmap = VarMap::new();
    let model = ImagineModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    let weights =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    let vars = varmap.data().lock().unwrap().clone();
    assert_eq!(vars.len(), weights.len(), "parameter sets differ");
    for (name, var) in &vars {
        var.set(&weights[name]).unwrap();
    }
    let weight = r["text_weight"].to_vec1::<f32>().unwrap()[0] as f64;
    let loss = model
        .loss(&ids(&r["text"]), &ids(&r["codes"]), weight)
        .unwrap();
    let grads = loss.total.backward().unwrap();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let got = grads
            .get(vars[name].as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_close(
            &format!("grad {name}"),
            got,
            &r[&format!("grad.{name}")],
            GRAD_TOL,
        );
    }
}

#[test]
fn cached_decoding_matches_the_full_pass() {
    let r = reference();
    let model = ImagineModel::load(&folder()).unwrap();
    let (text, codes) = (ids(&r["text"]), ids(&r["codes"]));
    let stream = model.stream(&text, &codes).unwrap();
    let length = stream.dim(1).unwrap();
    let full = model.forward(&stream, None).unwrap();
    let mut caches = model.new_caches();
    let t = text.dim(1).unwrap();
    // The caption at once, as sampling feeds it, then one id at a time.
    let mut parts = vec![model.forward(&text, Some(&mut caches)).unwrap()];
    for i in t..length {
        let one = stream.narrow(1, i, 1).unwrap();
        parts.push(model.forward(&one, Some(&mut caches)).unwrap());
    }
    let cached = Tensor::cat(&parts, 1).unwrap();
    assert_close("cached logits", &cached, &full, CACHE_TOL);
    let past_end = model.forward(&stream.narrow(1, 0, 1).unwrap(), Some(&mut caches));
    assert!(
        past_end.is_err(),
        "a position past the stream must be refused"
    );
}
