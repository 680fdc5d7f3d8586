//! `clipkit eval`: JSON contracts and clean failures, on the random fixture model.

mod common;

use std::path::Path;

use common::{clipkit, model};
use serde_json::Value;

fn model_arg() -> String {
    model("clip-a").display().to_string()
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn assert_fraction(v: &Value) {
    let x = v.as_f64().unwrap_or(-1.0);
    assert!((0.0..=1.0).contains(&x), "{v} is not a fraction");
}

/// `data shapes` output turned into an ImageFolder by first object colour (classes with at
/// least two images only); returns the captions file too.
fn folders_from_shapes(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    clipkit(&[
        "data",
        "shapes",
        "--out",
        d,
        "--count",
        "40",
        "--layout",
        "single-object",
    ])
    .ok();
    let captions = data.join("captions.jsonl");
    let folder = dir.join("folder");
    for line in std::fs::read_to_string(&captions).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let colour = v["objects"][0]["colour"].as_str().unwrap();
        let class = folder.join(colour);
        std::fs::create_dir_all(&class).unwrap();
        let from = data.join(v["path"].as_str().unwrap());
        std::fs::copy(&from, class.join(from.file_name().unwrap())).unwrap();
    }
    captions
}

#[test]
fn eval_zeroshot_shapes_json_has_exactly_the_six_keys() {
    let m = model_arg();
    let out = clipkit(&[
        "eval", "zeroshot", "--shapes", "--count", "8", "--json", "--model", &m,
    ])
    .json();
    assert_eq!(
        sorted_keys(&out),
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
    for (key, value) in out.as_object().unwrap() {
        match key.as_str() {
            "unseen_parts" => {
                assert_eq!(
                    sorted_keys(value),
                    ["colour", "colour_alone", "pairs", "shape", "shape_alone"]
                );
                for (part, fraction) in value.as_object().unwrap() {
                    if part == "pairs" {
                        assert!(sorted_keys(fraction).contains(&"red star".to_owned()));
                        for of_pair in fraction.as_object().unwrap().values() {
                            // A pair that none of 8 images showed has no fraction.
                            if !of_pair.is_null() {
                                assert_fraction(of_pair);
                            }
                        }
                    } else {
                        assert_fraction(fraction);
                    }
                }
            }
            _ => assert_fraction(value),
        }
    }
}

#[test]
fn eval_zeroshot_without_a_model_points_to_quickstart() {
    clipkit(&["eval", "zeroshot", "--shapes", "--count", "2", "--json"])
        .assert_fails_naming("quickstart");
}

#[test]
fn eval_zeroshot_image_folder_json_and_confusion_png() {
    let tmp = tempfile::tempdir().unwrap();
    folders_from_shapes(tmp.path());
    let folder = tmp.path().join("folder");
    let png = tmp.path().join("confusion.png");
    let m = model_arg();
    let out = clipkit(&[
        "eval",
        "zeroshot",
        "--model",
        &m,
        "--images",
        folder.to_str().unwrap(),
        "--template",
        "a photo of a {} shape",
        "--confusion",
        png.to_str().unwrap(),
        "--json",
    ])
    .json();
    assert_eq!(sorted_keys(&out), ["classes", "count", "top1", "top5"]);
    assert_eq!(out["count"], 40);
    assert_fraction(&out["top1"]);
    assert_fraction(&out["top5"]);
    for class in out["classes"].as_array().unwrap() {
        assert_eq!(sorted_keys(class), ["accuracy", "count", "label"]);
        assert_fraction(&class["accuracy"]);
    }
    assert!(image::open(&png).unwrap().width() > 100);
}

#[test]
fn eval_retrieval_reads_the_captions_jsonl_that_data_shapes_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let captions = folders_from_shapes(tmp.path());
    let m = model_arg();
    let out = clipkit(&[
        "eval",
        "retrieval",
        "--model",
        &m,
        "--captions",
        captions.to_str().unwrap(),
        "--json",
    ])
    .json();
    assert_eq!(
        sorted_keys(&out),
        ["count", "image_to_text", "skipped", "text_to_image"]
    );
    assert_eq!(out["count"], 40);
    for direction in ["image_to_text", "text_to_image"] {
        assert_eq!(sorted_keys(&out[direction]), ["r1", "r10", "r5"]);
        for k in ["r1", "r5", "r10"] {
            assert_fraction(&out[direction][k]);
        }
    }
}

#[test]
fn eval_linear_probe_reports_probe_beside_zero_shot() {
    let m = model_arg();
    let out = clipkit(&[
        "eval",
        "linear-probe",
        "--shapes",
        "--count",
        "8",
        "--iterations",
        "20",
        "--model",
        &m,
        "--json",
    ])
    .json();
    assert_eq!(sorted_keys(&out), ["linear_probe", "zero_shot"]);
    for part in ["linear_probe", "zero_shot"] {
        assert_eq!(
            sorted_keys(&out[part]),
            ["colour", "count", "position", "shape"]
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    folders_from_shapes(tmp.path());
    let folder = tmp.path().join("folder");
    let out = clipkit(&[
        "eval",
        "linear-probe",
        "--images",
        folder.to_str().unwrap(),
        "--model",
        &m,
        "--json",
    ])
    .json();
    assert_eq!(
        sorted_keys(&out),
        ["linear_probe", "test", "train", "zero_shot"]
    );
    assert_eq!(
        out["train"].as_u64().unwrap() + out["test"].as_u64().unwrap(),
        40
    );
}

#[test]
fn eval_fails_cleanly_on_missing_inputs() {
    let m = model_arg();
    clipkit(&[
        "eval",
        "zeroshot",
        "--model",
        &m,
        "--images",
        "/no/such/folder",
    ])
    .assert_fails_naming("/no/such/folder");
    clipkit(&[
        "eval",
        "retrieval",
        "--model",
        &m,
        "--captions",
        "/no/such/captions.jsonl",
    ])
    .assert_fails_naming("/no/such/captions.jsonl");
    clipkit(&[
        "eval",
        "retrieval",
        "--model",
        &m,
        "--shards",
        "/no/such/shard.tar",
    ])
    .assert_fails_naming("/no/such/shard.tar");
    // No images to ask: refused by name, never a tensor error with a backtrace.
    for question in ["zeroshot", "retrieval", "linear-probe"] {
        clipkit(&["eval", question, "--model", &m, "--shapes", "--count", "0"])
            .assert_fails_naming("--count");
    }
}
