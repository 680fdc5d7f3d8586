//! Training maths against PyTorch: the contrastive loss, the gradient of every parameter and
//! two AdamW steps (with clipping, decay groups and the logit-scale clamp) on one batch, as
//! written by `tools/make_train_fixture.py` with transformers' `CLIPModel`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use clipkit::config::ClipConfig;
use clipkit::train::{contrastive_loss, gradients, AdamW, AdamWConfig, Batch, Parameters};

/// Gradients and losses must match to this absolute difference.
const GRAD_TOLERANCE: f32 = 1e-4;
/// Parameters after two optimiser steps (learning rate 1e-3) must match to this.
const STEP_TOLERANCE: f32 = 1e-4;

fn fixture_dir() -> PathBuf {
    common::fixtures().join("train")
}

fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir().join(name), &Device::Cpu).expect("fixture loads")
}

fn batch() -> Batch {
    let tensors = load("batch.safetensors");
    let ids = tensors["input_ids"].to_vec2::<i64>().expect("ids");
    Batch {
        pixels: tensors["pixel_values"].clone(),
        ids: ids
            .into_iter()
            .map(|row| row.into_iter().map(|id| id as u32).collect())
            .collect(),
        also_true: Vec::new(),
    }
}

fn parameters() -> Parameters {
    let dir = fixture_dir();
    let config = ClipConfig::from_file(&dir.join("config.json")).expect("config");
    Parameters::from_checkpoint(&dir, &config).expect("parameters")
}

fn loss_of(parameters: &Parameters, batch: &Batch) -> clipkit::train::ContrastiveOutput {
    let network = parameters.network().expect("network");
    let images = network.image_features(&batch.pixels).expect("images");
    let texts = network.text_features(&batch.ids).expect("texts");
    contrastive_loss(&images, &texts, network.log_logit_scale(), &batch.also_true).expect("loss")
}

#[test]
fn loss_and_every_gradient_match_pytorch() {
    let reference = load("reference.safetensors");
    let parameters = parameters();
    let batch = batch();
    let out = loss_of(&parameters, &batch);
    let loss = out.loss.to_scalar::<f32>().unwrap();
    let expected = reference["loss"].to_vec1::<f32>().unwrap()[0];
    assert!(
        (loss - expected).abs() < GRAD_TOLERANCE,
        "loss {loss} vs {expected}"
    );
    let logits = common::max_abs_diff(&out.logits_per_image, &reference["logits_per_image"]);
    assert!(
        logits < GRAD_TOLERANCE,
        "logits_per_image differ by {logits}"
    );

    let grads = out.loss.backward().unwrap();
    let mut worst = (String::new(), 0f32);
    for (name, var) in parameters.vars() {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let diff = common::max_abs_diff(grad, &reference[&format!("grad.{name}")]);
        if diff > worst.1 {
            worst = (name.clone(), diff);
        }
    }
    println!("loss {loss} (torch {expected}); largest gradient difference {worst:?}");
    assert!(
        worst.1 < GRAD_TOLERANCE,
        "gradient of {} differs by {}",
        worst.0,
        worst.1
    );
    assert_eq!(parameters.vars().len(), 78, "every parameter is trained");
}

#[test]
fn sharded_gradients_match_pytorch() {
    let reference = load("reference.safetensors");
    let parameters = parameters();
    let batch = batch();
    for shards in [2, 3, 6] {
        assert_sharded_gradients_match(&parameters, &batch, shards, &reference, "");
    }
}

/// Loss and every gradient of `gradients` over `shards` shards against the reference's
/// `{prefix}loss` and `{prefix}grad.<name>`.
fn assert_sharded_gradients_match(
    parameters: &Parameters,
    batch: &Batch,
    shards: usize,
    reference: &HashMap<String, Tensor>,
    prefix: &str,
) {
    let (grads, loss, _) = gradients(parameters, batch, shards).expect("gradients");
    let expected = reference[&format!("{prefix}loss")]
        .to_vec1::<f32>()
        .unwrap()[0];
    assert!(
        (loss - expected).abs() < GRAD_TOLERANCE,
        "{shards} shards: {prefix}loss {loss} vs {expected}"
    );
    for (name, var) in parameters.vars() {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{shards} shards: no gradient for {name}"));
        common::assert_close(
            &format!("{shards} shards: {prefix}gradient of {name}"),
            grad,
            &reference[&format!("{prefix}grad.{name}")],
            GRAD_TOLERANCE,
        );
    }
}

/// The (caption, image) pairs `tools/make_train_fixture.py` masks (its `ALSO_TRUE`).
const ALSO_TRUE: [(usize, usize); 4] = [(0, 1), (1, 0), (2, 5), (4, 3)];

#[test]
fn known_false_negatives_are_masked_as_pytorch_masks_them() {
    let reference = load("reference.safetensors");
    let parameters = parameters();
    let batch = Batch {
        also_true: ALSO_TRUE.to_vec(),
        ..batch()
    };
    // Masked entries are −∞ on both sides; clamping keeps them comparable (a NaN would not
    // survive the clamp and fails the comparison).
    let finite = |t: &Tensor| t.clamp(-1e4f32, 1e4f32).unwrap();
    let out = loss_of(&parameters, &batch);
    let logits = out.logits_per_image.to_vec2::<f32>().unwrap();
    for (caption, image) in ALSO_TRUE {
        assert_eq!(logits[image][caption], f32::NEG_INFINITY);
    }
    common::assert_close(
        "masked logits_per_image",
        &finite(&out.logits_per_image),
        &finite(&reference["masked.logits_per_image"]),
        GRAD_TOLERANCE,
    );
    let unmasked = reference["loss"].to_vec1::<f32>().unwrap()[0];
    let expected = reference["masked.loss"].to_vec1::<f32>().unwrap()[0];
    assert!(
        (unmasked - expected).abs() > 0.01,
        "the mask changes the loss"
    );
    for shards in [1, 3] {
        assert_sharded_gradients_match(&parameters, &batch, shards, &reference, "masked.");
    }
}

#[test]
fn two_adamw_steps_match_pytorch() {
    let reference = load("reference.safetensors");
    let parameters = parameters();
    let batch = batch();
    let mut optimizer = AdamW::new(parameters.trainable(), AdamWConfig::default()).unwrap();
    for _ in 0..2 {
        let grads = loss_of(&parameters, &batch).loss.backward().unwrap();
        optimizer.step(&grads, 1e-3).unwrap();
        parameters.clamp_logit_scale().unwrap();
    }
    let mut worst = (String::new(), 0f32);
    for (name, var) in parameters.vars() {
        let diff = common::max_abs_diff(var.as_tensor(), &reference[&format!("step2.{name}")]);
        if diff > worst.1 {
            worst = (name.clone(), diff);
        }
    }
    println!("largest parameter difference after two steps {worst:?}");
    assert!(
        worst.1 < STEP_TOLERANCE,
        "{} differs by {}",
        worst.0,
        worst.1
    );
}
