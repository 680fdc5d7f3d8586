//! `clipkit train` and `clipkit quickstart` end to end: a short run writes a loadable model,
//! metrics and curves; a run killed with SIGKILL resumes from its last checkpoint and ends
//! where an uninterrupted run ends; a resume with other settings or data is refused, and so
//! are settings no run can follow; quickstart evaluates, reports and installs the default
//! model.

mod common;

use std::path::Path;

use common::training::{assert_same_weights, kill_after_first_checkpoint, metric_steps, resume};
use common::{clipkit, clipkit_at};

const STEPS: &str = "8";

fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--out",
        &out.display().to_string(),
        "--steps",
        STEPS,
        "--batch-size",
        "16",
        "--checkpoint-every",
        "2",
        "--warmup",
        "2",
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_killed_run_resumes_and_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    clipkit(&train_args(&clean)).ok();
    assert_eq!(metric_steps(&clean), (1..=8).collect::<Vec<_>>());
    assert!(clean.join("curves.png").is_file());
    // The trained model is an ordinary model folder.
    let embed = clipkit(&[
        "embed",
        "--model",
        &clean.join("model").display().to_string(),
        "--text",
        "a red circle",
        "--json",
    ])
    .json();
    assert_eq!(embed["texts"][0]["embedding"].as_array().unwrap().len(), 96);

    let killed = tmp.path().join("killed");
    kill_after_first_checkpoint(&train_args(&killed), &killed);
    resume(&train_args(&killed));
    assert_eq!(metric_steps(&killed), (1..=8).collect::<Vec<_>>());
    assert_same_weights(
        &clean.join("model/model.safetensors"),
        &killed.join("model/model.safetensors"),
    );

    // A finished run is not trained again; other settings or other data are refused.
    let again = clipkit(&train_args(&killed));
    again.ok();
    let mut other = train_args(&killed);
    other[4] = "9".into();
    clipkit(&other).assert_fails_naming("other settings");
    let mut other_data = train_args(&killed);
    other_data.extend(["--shapes-one-group".into(), "0.3".into()]);
    clipkit(&other_data).assert_fails_naming("other data");
}

/// Settings no run can follow are refused by name before anything is drawn or written.
#[test]
fn impossible_settings_are_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for (flag, value, culprit) in [
        ("--steps", "0", "0 steps"),
        ("--batch-size", "1", "batch size 1"),
        ("--checkpoint-every", "0", "a checkpoint every 0 steps"),
    ] {
        let mut args = train_args(&out);
        let at = args.iter().position(|a| a == flag).unwrap() + 1;
        args[at] = value.into();
        let run = clipkit(&args);
        run.assert_fails_naming(culprit);
        assert!(!run.stderr().contains("weights on"), "{}", run.explain());
        assert!(!out.exists(), "{flag} {value} left {}", out.display());
    }
    for (flag, value) in [
        ("--lr", "nan"),
        ("--lr", "0"),
        ("--min-lr", "inf"),
        ("--weight-decay", "nan"),
        ("--max-grad-norm", "nan"),
    ] {
        let mut args = train_args(&out);
        args.extend([flag.to_string(), value.to_string()]);
        clipkit(&args).assert_fails_naming(flag);
        assert!(!out.exists(), "{flag} {value} left {}", out.display());
    }
}

#[test]
fn quickstart_trains_evaluates_installs_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let run = tmp.path().join("run");
    let run_arg = run.to_str().unwrap();
    let json = clipkit_at(
        &home,
        &[
            "quickstart",
            "--out",
            run_arg,
            "--steps",
            "4",
            "--batch-size",
            "16",
            "--eval-count",
            "10",
            "--json",
        ],
    )
    .json();
    let results = json["results"].as_object().unwrap();
    let keys: Vec<&str> = results.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "colour",
            "count",
            "position",
            "shape",
            "top1",
            "unseen_combinations",
            "unseen_parts"
        ]
    );
    let parts = results["unseen_parts"].as_object().unwrap();
    assert_eq!(parts.len(), 5, "{parts:?}");
    let pairs = parts["pairs"].as_object().unwrap();
    assert_eq!(pairs.len(), 8, "{pairs:?}");
    assert!(results
        .iter()
        .filter(|(key, _)| key.as_str() != "unseen_parts")
        .chain(parts.iter().filter(|(key, _)| key.as_str() != "pairs"))
        .chain(pairs.iter().filter(|(_, v)| !v.is_null()))
        .all(|(_, v)| (0.0..=1.0).contains(&v.as_f64().unwrap())));
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("data:image/png;base64,") && report.contains("unseen_combinations"));
    // Installed as the default model: a command without --model uses it.
    let installed = home.join("models").join("default");
    assert!(installed.join("model.safetensors").is_file());
    clipkit_at(&home, &["embed", "--text", "two red circles", "--json"]).ok();
}
