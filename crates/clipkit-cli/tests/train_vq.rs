//! `clipkit train vq` end to end: a short run writes a diffusers VQModel folder that loads,
//! metrics, curves, the held-out evaluation and the diffusers check file; a run killed with
//! SIGKILL resumes from its last checkpoint and ends bit for bit where an uninterrupted run
//! ends; other settings and a config of another architecture are refused.

mod common;

use std::path::Path;

use common::clipkit;
use common::training::{assert_same_weights, kill_after_first_checkpoint, metric_steps, resume};

fn args(out: &Path) -> Vec<String> {
    [
        "train",
        "vq",
        "--out",
        &out.display().to_string(),
        "--steps",
        "12",
        "--batch-size",
        "4",
        "--image-size",
        "16",
        "--checkpoint-every",
        "2",
        "--restart-every",
        "4",
        "--warmup",
        "2",
        "--eval-images",
        "8",
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_killed_vq_run_resumes_and_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let run = clipkit(&args(&clean));
    run.ok();
    assert_eq!(metric_steps(&clean), (1..=12).collect::<Vec<_>>());
    for file in [
        "curves.png",
        "eval.json",
        "check.safetensors",
        "model/config.json",
    ] {
        assert!(clean.join(file).is_file(), "{file} missing");
    }
    let eval = run.json();
    let psnr = eval["psnr_db"].as_f64().expect("psnr_db");
    assert!(psnr.is_finite() && psnr > 0.0, "{eval}");
    let used = eval["used_codes"].as_u64().expect("used_codes");
    assert_eq!(used + eval["dead_codes"].as_u64().expect("dead_codes"), 128);
    clipkit::model::vq::VqModel::load(&clean.join("model")).expect("the model folder loads");

    let killed = tmp.path().join("killed");
    kill_after_first_checkpoint(&args(&killed), &killed);
    resume(&args(&killed));
    assert_eq!(metric_steps(&killed), (1..=12).collect::<Vec<_>>());
    let weights = "model/diffusion_pytorch_model.safetensors";
    assert_same_weights(&clean.join(weights), &killed.join(weights));

    let mut other = args(&killed);
    other[5] = "13".into();
    clipkit(&other).assert_fails_naming("other settings");
}

#[test]
fn a_config_of_another_architecture_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(&config, r#"{"_class_name": "AutoencoderKL"}"#).unwrap();
    let out = tmp.path().join("run");
    let mut a = args(&out);
    a.extend(["--config".into(), config.display().to_string()]);
    clipkit(&a).assert_fails_naming("AutoencoderKL");
    assert!(!out.join("model").exists());
}
