//! `clipkit score` against PyTorch: CLIPScore, RefCLIPScore and torchmetrics' CLIPScore on the
//! fixture models match `tests/fixtures/reference/clip_score.json` (written by
//! `tools/make_clip_score_reference.py`) within [`TOL`]; bad input fails cleanly, naming the
//! culprit. On failure each test prints the command, stdout and stderr.

mod common;
#[path = "../../clipkit/tests/common/compare.rs"]
mod compare;

use std::path::Path;

use serde_json::Value;

use common::{clipkit, fixtures, model};
use compare::max_abs_diff_slices;

/// Largest allowed absolute difference from the PyTorch (float64) reference.
const TOL: f32 = 1e-4;

fn reference() -> Value {
    let path = fixtures().join("reference/clip_score.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

fn image(name: &str) -> String {
    fixtures().join("images").join(name).display().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn numbers(v: &Value, key: &str) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| p[key].as_f64().unwrap_or(f64::NAN) as f32)
        .collect()
}

fn number(v: &Value, key: &str) -> f32 {
    v[key].as_f64().unwrap_or(f64::NAN) as f32
}

/// `clipkit score` arguments for one reference case, with a references file in `dir`.
fn score_args(case: &Value, dir: &Path) -> Vec<String> {
    let name = case["model"].as_str().expect("model name");
    let images = strings(&case["images"]);
    let refs_file = dir.join(format!("{name}.jsonl"));
    let lines: Vec<String> = images
        .iter()
        .zip(case["references"].as_array().expect("references"))
        .map(|(im, refs)| serde_json::json!({"path": image(im), "references": refs}).to_string())
        .collect();
    std::fs::write(&refs_file, lines.join("\n") + "\n").expect("write references");
    let mut args = vec![
        "score".to_string(),
        "--model".into(),
        model(name).display().to_string(),
        "--json".into(),
        "--references".into(),
        refs_file.display().to_string(),
    ];
    for (im, text) in images.iter().zip(strings(&case["texts"])) {
        args.extend(["--image".into(), image(im), "--text".into(), text]);
    }
    args
}

#[test]
fn scores_match_the_pytorch_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    for case in reference()["cases"].as_array().expect("cases") {
        let out = clipkit(&score_args(case, dir.path())).json();
        let name = case["model"].as_str().expect("model name");
        let want_pairs = &case["pairs"];
        let got_pairs = &out["pairs"];
        let checks = [
            (
                "per-pair clipscore",
                numbers(got_pairs, "clipscore"),
                numbers(want_pairs, "clipscore"),
            ),
            (
                "per-pair refclipscore",
                numbers(got_pairs, "refclipscore"),
                numbers(want_pairs, "refclipscore"),
            ),
            (
                "overall",
                vec![
                    number(&out, "clipscore"),
                    number(&out, "refclipscore"),
                    number(&out, "torchmetrics_clip_score"),
                ],
                vec![
                    number(case, "clipscore"),
                    number(case, "refclipscore"),
                    number(case, "torchmetrics_clip_score"),
                ],
            ),
        ];
        for (what, got, want) in checks {
            let diff = max_abs_diff_slices(&got, &want);
            println!("{name} {what}: max abs diff {diff:e}");
            assert!(
                diff <= TOL,
                "{name} {what}: got {got:?}, want {want:?} (max abs diff {diff} > {TOL})"
            );
        }
        assert_eq!(
            strings(&Value::Array(
                got_pairs
                    .as_array()
                    .expect("pairs")
                    .iter()
                    .map(|p| p["text"].clone())
                    .collect()
            )),
            strings(&case["texts"]),
            "texts echoed in order"
        );
    }
}

#[test]
fn table_output_lists_every_pair_and_the_means() {
    let run = clipkit(&[
        "score",
        "--model",
        &model("clip-a").display().to_string(),
        "--image",
        &image("a_input_0.png"),
        "--text",
        "a photo of a cat",
    ]);
    let out = run.ok().stdout();
    assert!(
        out.contains("a_input_0.png") && out.contains("CLIPScore (mean)"),
        "{}",
        run.explain()
    );
    assert!(out.contains("torchmetrics CLIPScore"), "{}", run.explain());
}

#[test]
fn mismatched_counts_fail_naming_both_counts() {
    clipkit(&[
        "score",
        "--model",
        &model("clip-a").display().to_string(),
        "--image",
        &image("a_input_0.png"),
        &image("a_input_1.png"),
        "--text",
        "a cat",
    ])
    .assert_fails_naming("2 --image but 1 --text");
}

#[test]
fn missing_image_fails_naming_it() {
    let missing = fixtures().join("images/no_such_image.png");
    clipkit(&[
        "score",
        "--model",
        &model("clip-a").display().to_string(),
        "--image",
        &missing.display().to_string(),
        "--text",
        "a cat",
    ])
    .assert_fails_naming("no_such_image.png");
}

#[test]
fn malformed_references_fail_naming_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = serde_json::json!({"path": image("a_input_0.png"), "references": ["a cat"]});
    let cases = [
        (
            "bad_json.jsonl",
            format!("{good}\n{{not json\n"),
            "bad_json.jsonl line 2",
        ),
        (
            "no_refs.jsonl",
            r#"{"path": "x.png", "references": []}"#.to_string(),
            "no_refs.jsonl line 1",
        ),
        (
            "twice.jsonl",
            format!("{good}\n{good}\n"),
            "twice.jsonl line 2",
        ),
        (
            "other_image.jsonl",
            serde_json::json!({"path": image("a_input_1.png"), "references": ["a"]}).to_string(),
            "a_input_0.png",
        ),
    ];
    for (file, text, culprit) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write");
        clipkit(&[
            "score",
            "--model",
            &model("clip-a").display().to_string(),
            "--image",
            &image("a_input_0.png"),
            "--text",
            "a cat",
            "--references",
            &path.display().to_string(),
        ])
        .assert_fails_naming(culprit);
    }
}
