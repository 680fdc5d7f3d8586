//! `clipkit generate` end to end on the committed quickstart model: a short run writes the
//! image, the frames and the contact sheet; the same seed and threads give the same PNG
//! bytes; bad input fails cleanly, naming the culprit, and leaves no output file. On failure
//! each test prints the command, stdout and stderr.

mod common;

use std::path::Path;

use common::{clipkit, model};

fn generate_args(out: &Path, seed: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--threads",
        "1",
        "generate",
        "a red circle | a blue square:-0.5",
        "--model",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(model("quickstart").display().to_string());
    for a in [
        "--size",
        "48x40",
        "--steps",
        "4",
        "--cutouts",
        "3",
        "--json",
    ] {
        args.push(a.into());
    }
    args.push("--seed".into());
    args.push(seed.to_string());
    args.push("--out".into());
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_short_run_writes_the_image_frames_and_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.png");
    let frames = dir.path().join("frames");
    let sheet = dir.path().join("sheet.png");
    let extra = [
        "--frames",
        frames.to_str().unwrap(),
        "--frame-every",
        "2",
        "--sheet",
        sheet.to_str().unwrap(),
        "--drawer",
        "fourier",
    ];
    let summary = clipkit(&generate_args(&out, 3, &extra)).json();
    assert_eq!(summary["steps"], 4);
    assert_eq!(summary["drawer"], "fourier");
    assert!(summary["loss"].as_f64().is_some_and(f64::is_finite));
    assert_eq!(summary["similarity"].as_array().map(Vec::len), Some(2));
    let image = image::open(&out).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (48, 40));
    let mut names: Vec<String> = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["00000.png", "00002.png", "00004.png"]);
    assert!(image::open(&sheet).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
}

#[test]
fn the_same_seed_and_threads_give_the_same_png_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ["a.png", "b.png", "c.png"].map(|n| dir.path().join(n));
    for (path, seed) in paths.iter().zip([5, 5, 6]) {
        clipkit(&generate_args(path, seed, &[])).ok();
    }
    let bytes = paths.map(|p| std::fs::read(p).unwrap());
    assert!(
        bytes[0] == bytes[1],
        "seed 5 twice gave two different files"
    );
    assert!(bytes[0] != bytes[2], "seeds 5 and 6 gave the same file");
}

#[test]
fn bad_input_fails_by_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "not an image").unwrap();
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    let with_prompt = |prompt: &str, extra: &[&str]| {
        let mut args = generate_args(&out, 0, extra);
        args[3] = prompt.to_string();
        args
    };
    cases.push((with_prompt("", &[]), "prompt is empty"));
    cases.push((with_prompt("a red circle:heavy", &[]), "weight \"heavy\""));
    cases.push((with_prompt("a red circle |", &[]), "prompt 2"));
    let mut zero_steps = generate_args(&out, 0, &[]);
    let at = zero_steps.iter().position(|a| a == "--steps").unwrap();
    zero_steps[at + 1] = "0".into();
    cases.push((zero_steps, "at least 1"));
    cases.push((
        generate_args(&out, 0, &["--init-image", not_image.to_str().unwrap()]),
        "notes.txt",
    ));
    cases.push((generate_args(&out, 0, &["--drawer", "vqgan"]), "vqgan"));
    let vq_dir = dir.path().to_str().unwrap().to_string();
    cases.push((
        generate_args(&out, 0, &["--drawer", "pixel", "--vq", &vq_dir]),
        "--drawer vqgan",
    ));
    let missing = dir.path().join("no-such-folder").join("x.png");
    cases.push((generate_args(&missing, 0, &[]), "no-such-folder"));
    for (args, culprit) in cases {
        clipkit(&args).assert_fails_naming(culprit);
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only notes.txt"
    );
}
