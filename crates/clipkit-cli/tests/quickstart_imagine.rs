//! `clipkit quickstart --imagine` end to end with a tiny recipe: it trains both models,
//! judges the prompt set, writes the report, installs the generator so that `clipkit
//! imagine` works without --generator, and a second call resumes instead of retraining.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::model;

fn quickstart(home: &Path, run: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .env("CLIPKIT_HOME", home)
        .args(["--threads", "2", "quickstart", "--imagine", "--out"])
        .arg(run)
        .args([
            "--vq-steps",
            "2",
            "--generator-steps",
            "2",
            "--batch-size",
            "2",
            "--images",
            "4",
            "--samples",
            "2",
            "--rerank-model",
        ])
        .arg(model("quickstart"))
        .arg("--judge")
        .arg(model("judge"))
        .args(extra)
        .output()
        .expect("clipkit runs")
}

/// `clipkit imagine "a red circle"` with the default generator of `home`, into `out`.
fn imagine(home: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .env("CLIPKIT_HOME", home)
        .args(["--threads", "2", "imagine", "a red circle", "--out"])
        .arg(out)
        .arg("--rerank-model")
        .arg(model("quickstart"))
        .args(extra)
        .output()
        .expect("clipkit runs")
}

fn explain(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn imagine_quickstart_trains_judges_installs_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));

    // Without a generator installed, `imagine` says how to get one.
    let out = tmp.path().join("drawn");
    let missing = imagine(&home, &out, &[]);
    assert!(!missing.status.success(), "{}", explain(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("quickstart --imagine"),
        "{}",
        explain(&missing)
    );

    let output = quickstart(&home, &run, &["--json"]);
    assert!(output.status.success(), "{}", explain(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for set in ["vq_truth", "first", "best"] {
        let categories = json[set]["categories"].as_array().unwrap();
        let all = categories.iter().find(|r| r["category"] == "all").unwrap();
        assert_eq!(all["prompts"], 51, "{set}: the whole prompt set is judged");
        for measure in ["colour", "count", "shape"] {
            let v = all[measure].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{set} {measure} = {v}");
        }
        assert!(categories.iter().any(|r| r["category"] == "unseen_pair"));
    }
    assert!(json["vq"]["psnr_db"].as_f64().unwrap().is_finite());
    for dir in ["first", "best", "vq_truth"] {
        assert!(run.join("eval").join(dir).join("050.png").is_file());
    }
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    for part in [
        "unseen_pair",
        "Best of 2",
        "truth scene",
        "data:image/png;base64,",
    ] {
        assert!(report.contains(part), "the report lacks {part:?}");
    }

    // Installed with its VQ model inside: the run folder can go.
    let installed = home.join("generators").join("default");
    assert!(installed.join("model.safetensors").is_file());
    assert!(installed
        .join("vq")
        .join("diffusion_pytorch_model.safetensors")
        .is_file());
    std::fs::remove_dir_all(run.join("vq")).unwrap();
    let drawn = imagine(&home, &out, &["--samples", "2"]);
    assert!(drawn.status.success(), "{}", explain(&drawn));
    assert!(out.join("001.png").is_file() && out.join("scores.json").is_file());
    // It sampled as the quickstart judged: the installed generation_config.json.
    assert!(installed.join("generation_config.json").is_file());
    let scores = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("scores.json")).unwrap()).unwrap()
    };
    let drawn_with = scores(&out);
    assert_eq!(
        (&drawn_with["guidance"], &drawn_with["top_k"]),
        (&serde_json::json!(3.0), &serde_json::json!(8))
    );
    // Flags still win: no guidance, every code.
    let plain_out = tmp.path().join("plain");
    let plain = imagine(
        &home,
        &plain_out,
        &["--samples", "1", "--guidance", "1", "--top-k", "0"],
    );
    assert!(plain.status.success(), "{}", explain(&plain));
    let plain_with = scores(&plain_out);
    assert_eq!(
        (&plain_with["guidance"], &plain_with["top_k"]),
        (&serde_json::json!(1.0), &serde_json::Value::Null)
    );

    // The judge must not be the reranker.
    let tmp2 = tempfile::tempdir().unwrap();
    let same = Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .env("CLIPKIT_HOME", tmp2.path())
        .args(["quickstart", "--imagine", "--out"])
        .arg(tmp2.path().join("run"))
        .arg("--rerank-model")
        .arg(model("quickstart"))
        .arg("--judge")
        .arg(model("quickstart"))
        .output()
        .unwrap();
    assert!(!same.status.success(), "{}", explain(&same));
    assert!(String::from_utf8_lossy(&same.stderr).contains("is the reranker"));
    assert!(!tmp2.path().join("run").exists(), "nothing is written");
}

#[test]
fn imagine_quickstart_resumes_a_finished_run_without_retraining() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    let first = quickstart(&home, &run, &["--no-install"]);
    assert!(first.status.success(), "{}", explain(&first));
    let lines = |dir: &str| {
        std::fs::read_to_string(run.join(dir).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((lines("vq"), lines("generator")), (2, 2));
    let again = quickstart(&home, &run, &["--no-install"]);
    assert!(again.status.success(), "{}", explain(&again));
    assert_eq!(
        (lines("vq"), lines("generator")),
        (2, 2),
        "nothing retrained"
    );
    assert!(
        !home.join("generators").join("default").exists(),
        "--no-install leaves the default generator alone"
    );

    // Other sampling options over the finished run: redrawn and rejudged, not retrained.
    let guided = quickstart(
        &home,
        &run,
        &[
            "--no-install",
            "--guidance",
            "2",
            "--top-k",
            "4",
            "--temperature",
            "0.5",
        ],
    );
    assert!(guided.status.success(), "{}", explain(&guided));
    assert_eq!(
        (lines("vq"), lines("generator")),
        (2, 2),
        "nothing retrained"
    );
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        report.contains("temperature 0.5, top-k 4, guidance 2"),
        "the report names the sampling"
    );
    let bad = quickstart(&home, &run, &["--no-install", "--temperature", "0"]);
    assert!(!bad.status.success(), "{}", explain(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("temperature 0 is not a positive number"),
        "{}",
        explain(&bad)
    );

    // Another image size is another run, refused over this one; a size the VQ model cannot
    // divide into codes is refused before anything is trained.
    for (size, message) in [
        (
            "64",
            "other settings (image_size: 32 in the checkpoint, 64 now)",
        ),
        ("30", "downscale factor 4, not 30"),
    ] {
        let other = quickstart(&home, &run, &["--no-install", "--image-size", size]);
        assert!(!other.status.success(), "{}", explain(&other));
        assert!(
            String::from_utf8_lossy(&other.stderr).contains(message),
            "{}",
            explain(&other)
        );
    }
    assert_eq!(
        (lines("vq"), lines("generator")),
        (2, 2),
        "nothing retrained"
    );
}
