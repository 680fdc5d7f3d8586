//! What the trainers' kill-and-resume tests share: kill a run with SIGKILL once it has
//! written a checkpoint, resume it, and compare its steps and weights with a clean run's.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use super::clipkit;

/// The `step` of every line of `RUN/metrics.jsonl`, in file order.
pub fn metric_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("json line")["step"]
                .as_u64()
                .expect("step")
        })
        .collect()
}

/// Starts `clipkit ARGS` (a training run writing to `run`), kills it with SIGKILL as soon
/// as its first checkpoint is on disk, and checks it died between checkpoint and end.
pub fn kill_after_first_checkpoint(args: &[String], run: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let state = run.join("checkpoint").join("trainer_state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.is_file() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("the killed run is reaped");
    assert!(state.is_file(), "no checkpoint was written before the kill");
    assert!(
        !run.join("model").exists(),
        "the run finished before it could be killed; the test needs a longer run"
    );
}

/// Runs `clipkit ARGS` again on a killed run: it must succeed and say it resumed.
pub fn resume(args: &[String]) {
    let resumed = clipkit(args);
    resumed.ok();
    assert!(
        resumed
            .stderr()
            .contains("resuming from the checkpoint at step"),
        "{}",
        resumed.explain()
    );
}

/// Asserts two safetensors files hold the same tensors, bit for bit (training is
/// reproducible on a given number of threads, across a kill and resume too).
pub fn assert_same_weights(a: &Path, b: &Path) {
    let load = |path: &Path| -> HashMap<String, Tensor> {
        candle_core::safetensors::load(path, &Device::Cpu).expect("weights load")
    };
    let (a, b) = (load(a), load(b));
    assert_eq!(a.len(), b.len(), "different tensor sets");
    for (name, t) in &a {
        let other = b.get(name).unwrap_or_else(|| panic!("{name} missing"));
        let diff = (t - other)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .expect("comparable tensors");
        assert_eq!(diff, 0.0, "{name} differs by {diff} after resuming");
    }
}
