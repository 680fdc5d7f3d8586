//! `clipkit merge` driven as a user drives it: the ends of the interpolation embed as the
//! two inputs do, sweeps write one folder per α, mismatched models and bad arguments fail
//! cleanly, and a merge killed mid-write never leaves a broken folder. On failure each test
//! prints the command, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clipkit::model_folder::{write_model_folder, ModelFolder};
use serde_json::Value;

fn fixture_model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn image() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images/a_input_0.png")
        .display()
        .to_string()
}

fn command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
    cmd.args(args);
    cmd
}

fn explain(args: &[String], output: &Output) -> String {
    format!(
        "command: clipkit {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs clipkit; its stdout, or a panic describing the failed run.
fn succeed(args: &[String]) -> String {
    let output = command(args).output().unwrap();
    assert!(output.status.success(), "{}", explain(args, &output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs clipkit expecting a clean failure whose message names `culprit`.
fn fail_naming(args: &[String], culprit: &str) {
    let output = command(args).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "should fail\n{}",
        explain(args, &output)
    );
    assert!(
        err.contains(culprit),
        "should name {culprit}\n{}",
        explain(args, &output)
    );
    assert!(
        !err.contains("panicked"),
        "panicked\n{}",
        explain(args, &output)
    );
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn merge(alpha: &str, base: &Path, finetuned: &Path, out: &Path) -> Vec<String> {
    strings(&[
        "merge",
        "--alpha",
        alpha,
        base.to_str().unwrap(),
        finetuned.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Image and text embeddings of a model folder, as `clipkit embed --json` prints them.
fn embed(model: &Path) -> (Value, Value) {
    let out = succeed(&strings(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--image",
        &image(),
        "--text",
        "a photo of a cat",
        "--json",
    ]));
    let json: Value = serde_json::from_str(&out).unwrap();
    (
        json["images"][0]["embedding"].clone(),
        json["texts"][0]["embedding"].clone(),
    )
}

/// A "fine-tuned" copy of fixture model clip-a: every weight moved a little.
fn finetuned_copy(dir: &Path) -> PathBuf {
    let mut folder = ModelFolder::read(&fixture_model("clip-a")).unwrap();
    for tensor in folder.tensors.values_mut() {
        *tensor = tensor.affine(0.9, 0.01).unwrap();
    }
    let out = dir.join("finetuned");
    write_model_folder(&out, &folder).unwrap();
    out
}

#[test]
fn merge_ends_embed_as_base_and_finetuned() {
    let root = tempfile::tempdir().unwrap();
    let base = fixture_model("clip-a");
    let finetuned = finetuned_copy(root.path());
    assert_ne!(embed(&base), embed(&finetuned));
    for (alpha, like) in [("0", &base), ("1", &finetuned)] {
        let out = root.path().join(format!("merged-{alpha}"));
        let printed = succeed(&merge(alpha, &base, &finetuned, &out));
        assert!(printed.contains(&format!("alpha {alpha}")), "{printed}");
        assert_eq!(embed(&out), embed(like), "alpha {alpha}");
    }
}

#[test]
fn merge_sweep_writes_one_folder_per_alpha() {
    let root = tempfile::tempdir().unwrap();
    let base = fixture_model("clip-a");
    let finetuned = finetuned_copy(root.path());
    let out = root.path().join("sweep");
    succeed(&strings(&[
        "merge",
        "--sweep",
        "3",
        base.to_str().unwrap(),
        finetuned.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    for alpha in ["0", "0.5", "1"] {
        assert!(out
            .join(format!("alpha-{alpha}/model.safetensors"))
            .is_file());
    }
    assert_eq!(embed(&out.join("alpha-0")), embed(&base));
    let mut args = merge("0.25", &base, &finetuned, &out);
    args.extend(strings(&["--alpha", "0.75"]));
    succeed(&args);
    assert!(out.join("alpha-0.75/config.json").is_file());
}

#[test]
fn merge_failures_name_the_culprit() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (fixture_model("clip-a"), fixture_model("clip-b"));
    let out = root.path().join("out");
    // clip-b differs from clip-a in every config field; the first in order that matters to
    // the weights is named, once.
    fail_naming(&merge("0.5", &a, &b, &out), "field `projection_dim`");
    fail_naming(&merge("1.5", &a, &a, &out), "outside 0..1");
    fail_naming(&merge("half", &a, &a, &out), "not a number");
    fail_naming(
        &merge("0.5", &a, &root.path().join("nowhere"), &out),
        "nowhere",
    );
    let finetuned = finetuned_copy(root.path());
    fail_naming(
        &merge("0.5", &a, &finetuned, &finetuned),
        "is an input of the merge",
    );
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    fail_naming(&merge("0.5", &a, &finetuned, &out), "not a model folder");
    let mut repeated = merge("0.5", &a, &finetuned, &root.path().join("x"));
    repeated.extend(strings(&["--alpha", "0.5"]));
    fail_naming(&repeated, "must differ");
}

#[test]
fn merge_killed_mid_write_leaves_old_or_new_folder_whole() {
    let root = tempfile::tempdir().unwrap();
    let base = fixture_model("clip-a");
    let finetuned = finetuned_copy(root.path());
    let out = root.path().join("merged");
    succeed(&merge("0", &base, &finetuned, &out));
    let (old, new) = (embed(&base), embed(&finetuned));
    // The kill lands at a different point of the write each time; whatever it interrupts,
    // the folder must load and be the old model or the new one.
    for delay_ms in [0, 10, 25, 50, 75, 100, 125, 150, 200, 250] {
        let mut child = command(&merge("1", &base, &finetuned, &out))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let now = embed(&out);
        assert!(
            now == old || now == new,
            "after a kill at {delay_ms} ms: neither model"
        );
        succeed(&merge("0", &base, &finetuned, &out));
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging folders left: {leftovers:?}");
}
