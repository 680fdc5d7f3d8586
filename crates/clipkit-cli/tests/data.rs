//! `clipkit data shapes`: files on disk as the captions.jsonl contract says.

mod common;

use std::path::Path;

use clipkit::data::shapes::{is_held_out, Colour, Shape};
use common::clipkit;
use serde_json::Value;

fn lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("captions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn generate(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "data",
        "shapes",
        "--out",
        dir.to_str().unwrap(),
        "--count",
        "20",
    ];
    args.extend_from_slice(extra);
    clipkit(&args).ok();
}

#[test]
fn data_shapes_writes_pngs_and_captions_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), &["--seed", "3"]);
    let lines = lines(tmp.path());
    assert_eq!(lines.len(), 20);
    for line in &lines {
        let object = line.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3, "{line}");
        for key in ["path", "caption", "objects"] {
            assert!(object.contains_key(key), "{line}");
        }
        let path = line["path"].as_str().unwrap();
        assert!(Path::new(path).is_relative());
        let image = image::open(tmp.path().join(path)).unwrap();
        assert_eq!((image.width(), image.height()), (64, 64));
        let objects = line["objects"].as_array().unwrap();
        assert!((1..=3).contains(&objects.len()));
        for o in objects {
            let colour = o["colour"].as_str().unwrap();
            let shape = o["shape"].as_str().unwrap();
            assert!(line["caption"].as_str().unwrap().contains(colour), "{line}");
            assert!(["small", "large"].contains(&o["size"].as_str().unwrap()));
            let position = o["position"].as_str().unwrap();
            assert!(["left", "right", "top", "bottom", "centre"].contains(&position));
            let (c, s) = (
                Colour::from_name(colour).unwrap(),
                Shape::from_name(shape).unwrap(),
            );
            assert!(
                !is_held_out(c, s),
                "train split shows a held-out {colour} {shape}"
            );
        }
    }
}

#[test]
fn data_shapes_is_reproducible_and_honours_size_and_split() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--seed", "9", "--split", "unseen", "--size", "32"];
    generate(a.path(), &args);
    generate(b.path(), &args);
    let (la, lb) = (lines(a.path()), lines(b.path()));
    assert_eq!(la, lb);
    for line in &la {
        let path = line["path"].as_str().unwrap();
        let bytes_a = std::fs::read(a.path().join(path)).unwrap();
        assert_eq!(bytes_a, std::fs::read(b.path().join(path)).unwrap());
        assert_eq!(image::open(a.path().join(path)).unwrap().width(), 32);
        for o in line["objects"].as_array().unwrap() {
            let c = Colour::from_name(o["colour"].as_str().unwrap()).unwrap();
            let s = Shape::from_name(o["shape"].as_str().unwrap()).unwrap();
            assert!(
                is_held_out(c, s),
                "unseen split shows a training combination"
            );
        }
    }
}

#[test]
fn data_shapes_fails_cleanly_on_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.to_str().unwrap();
    clipkit(&["data", "shapes", "--out", out, "--count", "2"]).assert_fails_naming("a-file");
    let dir = tmp.path().to_str().unwrap();
    clipkit(&[
        "data", "shapes", "--out", dir, "--count", "2", "--size", "0",
    ])
    .assert_fails_naming("size");
}
