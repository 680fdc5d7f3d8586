//! `clipkit train imagine` and `clipkit imagine` end to end on the tiny VQ fixture: a run
//! killed with SIGKILL resumes and ends bit for bit where an uninterrupted one ends; the
//! generator draws the same images for the same seed, ranked best first in `scores.json`;
//! bad input fails with a clear message and writes nothing.

mod common;

use std::path::{Path, PathBuf};

use common::training::{assert_same_weights, kill_after_first_checkpoint, metric_steps, resume};
use common::{clipkit, fixtures, model};

fn vq() -> PathBuf {
    fixtures().join("vq").join("tiny")
}

fn train_args(out: &Path) -> Vec<String> {
    let (vq, tokenizer) = (vq(), model("quickstart"));
    [
        "train",
        "imagine",
        "--vq",
        &vq.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--tokenizer",
        &tokenizer.display().to_string(),
        "--image-size",
        "16",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--steps",
        "10",
        "--batch-size",
        "4",
        "--images",
        "12",
        "--warmup",
        "2",
        "--checkpoint-every",
        "2",
        "--drop-caption",
        "0.25",
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn imagine_args(generator: &Path, out: &Path, prompt: &str, samples: &str) -> Vec<String> {
    let rerank = model("quickstart");
    [
        "imagine",
        prompt,
        "--generator",
        &generator.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--samples",
        samples,
        "--seed",
        "5",
        "--top-k",
        "8",
        "--guidance",
        "1.5",
        "--rerank-model",
        &rerank.display().to_string(),
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_killed_imagine_run_resumes_and_then_draws_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    clipkit(&train_args(&clean)).ok();
    assert_eq!(metric_steps(&clean), (1..=10).collect::<Vec<_>>());
    let generator = clean.join("model");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(generator.join(file).is_file(), "{file} missing");
    }

    let killed = tmp.path().join("killed");
    kill_after_first_checkpoint(&train_args(&killed), &killed);
    resume(&train_args(&killed));
    assert_eq!(metric_steps(&killed), (1..=10).collect::<Vec<_>>());
    assert_same_weights(
        &generator.join("model.safetensors"),
        &killed.join("model/model.safetensors"),
    );
    let mut other = train_args(&killed);
    other[17] = "11".into(); // --steps
    clipkit(&other).assert_fails_naming("other settings");

    // Same seed and threads: the same images, ranked best first.
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    for out in [&first, &second] {
        clipkit(&imagine_args(&generator, out, "a red circle", "3")).ok();
    }
    let scores: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("scores.json")).unwrap()).unwrap();
    let ranked: Vec<f64> = scores["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["score"].as_f64().expect("score"))
        .collect();
    assert_eq!(ranked.len(), 3);
    assert!(ranked.windows(2).all(|w| w[0] >= w[1]), "{ranked:?}");
    for file in ["000.png", "001.png", "002.png", "scores.json"] {
        let (x, y) = (
            std::fs::read(first.join(file)).unwrap(),
            std::fs::read(second.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
    let image = image::open(first.join("000.png")).unwrap();
    assert_eq!((image.width(), image.height()), (16, 16));

    // Words the tokenizer never saw are named.
    let odd = tmp.path().join("odd");
    let run = clipkit(&imagine_args(&generator, &odd, "a red zebra", "1"));
    run.ok();
    assert!(run.stderr().contains("\"zebra\""), "{}", run.explain());

    // Bad input: a clear error and nothing written.
    let nothing = tmp.path().join("nothing");
    clipkit(&imagine_args(&generator, &nothing, "  ", "2")).assert_fails_naming("empty");
    clipkit(&imagine_args(&generator, &nothing, "a red circle", "0"))
        .assert_fails_naming("--samples");
    clipkit(&imagine_args(
        &tmp.path().join("absent"),
        &nothing,
        "a red circle",
        "2",
    ))
    .assert_fails_naming("no generator");
    assert!(!nothing.exists(), "a failed run wrote its output folder");
    // A folder that is not an earlier output is never replaced.
    clipkit(&imagine_args(&generator, &clean, "a red circle", "1"))
        .assert_fails_naming("not an earlier");
    assert!(clean.join("metrics.jsonl").is_file());
}
