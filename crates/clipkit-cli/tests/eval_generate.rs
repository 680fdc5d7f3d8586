//! `clipkit data prompts` and `clipkit eval generate` end to end: the truth images of the
//! shapes-world prompt set score (nearly) in full, the same images given to the wrong
//! prompts do not, and bad input fails cleanly. The judge here is the committed quickstart
//! fixture: these images were drawn, not generated, so no model guided them. The judge
//! fixture (`tests/fixtures/models/judge`, trained with other seeds to judge what the
//! quickstart model guided) must read them too.

mod common;

use std::ffi::OsString;
use std::path::Path;

use common::{clipkit, model};
use serde_json::Value;

/// Writes the prompt set and its truth images at 72 px; returns the prompt count.
fn prompts_and_truth(dir: &Path) -> usize {
    let prompts = dir.join("prompts.jsonl");
    let truth = dir.join("truth");
    let (p, t) = (prompts.display().to_string(), truth.display().to_string());
    clipkit(&[
        "data", "prompts", "--out", &p, "--truth", &t, "--size", "72",
    ])
    .ok();
    std::fs::read_to_string(&prompts).unwrap().lines().count()
}

fn evaluate(dir: &Path, images: &Path, report: Option<&Path>) -> Value {
    evaluate_judged_by(dir, images, "quickstart", report)
}

fn evaluate_judged_by(dir: &Path, images: &Path, judge: &str, report: Option<&Path>) -> Value {
    let quickstart = model("quickstart");
    let mut args: Vec<OsString> = vec![
        "eval".into(),
        "generate".into(),
        "--prompts".into(),
        dir.join("prompts.jsonl").into_os_string(),
        "--images".into(),
        images.as_os_str().to_owned(),
        "--model".into(),
        quickstart.as_os_str().to_owned(),
        "--judge".into(),
        model(judge).into_os_string(),
        "--json".into(),
    ];
    if let Some(report) = report {
        args.push("--report".into());
        args.push(report.as_os_str().to_owned());
    }
    clipkit(&args).json()
}

fn all_row(out: &Value) -> &Value {
    out["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "all")
        .unwrap()
}

fn measure(row: &Value, name: &str) -> f64 {
    row[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} missing in {row}"))
}

#[test]
fn truth_images_score_in_full_and_shuffled_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let n = prompts_and_truth(dir.path());
    assert!(n >= 48, "{n} prompts");
    let report = dir.path().join("report");
    let truth = evaluate(dir.path(), &dir.path().join("truth"), Some(&report));
    let row = all_row(&truth);
    eprintln!("truth: {row}");
    assert_eq!(row["prompts"], n);
    for name in ["colour", "count", "position"] {
        assert_eq!(measure(row, name), 1.0, "{name} of the truth images");
    }
    for name in ["judge_colour", "shape", "binding"] {
        assert!(
            measure(row, name) >= 0.75,
            "{name} of the truth images: {row}"
        );
    }
    let categories: Vec<&str> = truth["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        [
            "colour",
            "shape",
            "unseen_pair",
            "counting",
            "position",
            "binding",
            "three_objects",
            "all"
        ]
    );
    assert_eq!(truth["results"].as_array().unwrap().len(), n);
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert_eq!(html.matches("<figure>").count(), n);
    assert!(html.contains("<h3>binding</h3>"));

    // The same images, each under the next prompt's index.
    let shuffled = dir.path().join("shuffled");
    std::fs::create_dir(&shuffled).unwrap();
    for i in 0..n {
        std::fs::copy(
            dir.path()
                .join("truth")
                .join(format!("{:03}.png", (i + 1) % n)),
            shuffled.join(format!("{i}.png")),
        )
        .unwrap();
    }
    let wrong = evaluate(dir.path(), &shuffled, None);
    let wrong_row = all_row(&wrong);
    eprintln!("shuffled: {wrong_row}");
    for name in ["colour", "count", "binding"] {
        assert!(
            measure(wrong_row, name) < 0.5,
            "{name} of shuffled images: {wrong_row}"
        );
    }
    assert!(measure(wrong_row, "clipscore") < measure(row, "clipscore"));
}

/// The judge fixture reads the perfect answers about as its README says (measured at 72 px:
/// judge colour 1.0, shape 0.882, binding 0.75): a retrained judge that reads worse fails here.
#[test]
fn judge_fixture_reads_the_truth_images() {
    let dir = tempfile::tempdir().unwrap();
    prompts_and_truth(dir.path());
    let out = evaluate_judged_by(dir.path(), &dir.path().join("truth"), "judge", None);
    let row = all_row(&out);
    eprintln!("judge fixture on the truth: {row}");
    assert!(measure(row, "judge_colour") >= 0.95, "{row}");
    assert!(measure(row, "shape") >= 0.8, "{row}");
    assert!(measure(row, "binding") >= 0.625, "{row}");
}

#[test]
fn eval_generate_fails_cleanly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let n = prompts_and_truth(dir.path());
    let quickstart = model("quickstart").display().to_string();
    let prompts = dir.path().join("prompts.jsonl").display().to_string();
    let truth = dir.path().join("truth");
    std::fs::remove_file(truth.join(format!("{:03}.png", n - 1))).unwrap();
    let report = dir.path().join("report");
    let r = report.display().to_string();
    let t = truth.display().to_string();
    clipkit(&[
        "eval",
        "generate",
        "--prompts",
        &prompts,
        "--images",
        &t,
        "--model",
        &quickstart,
        "--report",
        &r,
    ])
    .assert_fails_naming(&format!("no image for prompt(s) {}", n - 1));
    assert!(!report.exists(), "a failed run left a report");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"a red circle\", \"category\": \"colour\", \"objects\": [{\"colour\": \"red\", \"shape\": \"blob\", \"count\": 1}]}\n").unwrap();
    let b = bad.display().to_string();
    clipkit(&[
        "eval",
        "generate",
        "--prompts",
        &b,
        "--images",
        &t,
        "--model",
        &quickstart,
    ])
    .assert_fails_naming("bad.jsonl: line 1: unknown shape \"blob\"");
}
