//! `clipkit train vq` end to end: a short run writes a diffusers VQModel folder that loads,
//! metrics, curves, the held-out evaluation and the diffusers check file; a run killed with
//! SIGKILL resumes from its last checkpoint and ends bit for bit where an uninterrupted run
//! ends; other settings and a config of another architecture are refused.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::clipkit;

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

fn weights(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(
        dir.join("diffusion_pytorch_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("weights load")
}

fn metric_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("json")["step"]
                .as_u64()
                .expect("step")
        })
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = killed.join("checkpoint").join("trainer_state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.is_file() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(state.is_file(), "no checkpoint was written before the kill");
    assert!(
        !killed.join("model").exists(),
        "the run finished before it could be killed; the test needs a longer run"
    );
    let resumed = clipkit(&args(&killed));
    resumed.ok();
    assert!(resumed
        .stderr()
        .contains("resuming from the checkpoint at step"));
    assert_eq!(metric_steps(&killed), (1..=12).collect::<Vec<_>>());
    let (a, b) = (
        weights(&clean.join("model")),
        weights(&killed.join("model")),
    );
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let diff = (t - &b[name]).unwrap().abs().unwrap().max_all().unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name} differs by {diff} after resuming");
    }

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
