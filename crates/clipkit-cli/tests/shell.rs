//! The binary as a shell user runs it: piped into a reader that stops early (`| head -1`),
//! and the README's search examples typed exactly as written there.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fixtures, model};

/// A `CLIPKIT_HOME` holding a default model (fixture `clip-a`) and a default index of a few
/// fixture images, so commands run with no `--model` or `--index`, as in the README.
struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    images: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn home() -> Home {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    copy_dir(&model("clip-a"), &home.join("models/default"));
    let images = tmp.path().join("pictures");
    std::fs::create_dir_all(&images).unwrap();
    for name in [
        "a_input_0.png",
        "a_input_1.png",
        "b_input_0.png",
        "rgba.png",
    ] {
        let from = fixtures().join("images").join(name);
        std::fs::copy(&from, images.join(name)).unwrap();
        // A copy under another name: something for `dupes` to print.
        std::fs::copy(&from, images.join(format!("copy-{name}"))).unwrap();
    }
    let home = Home {
        _tmp: tmp,
        home,
        images,
    };
    let out = home
        .command(&["index", home.images.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "index failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    home
}

impl Home {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
        cmd.args(args)
            .env("CLIPKIT_HOME", &self.home)
            .env("RUST_BACKTRACE", "1");
        cmd
    }
}

/// Runs `args` with stdout a pipe whose reader has already gone, as `| head -0` leaves it.
/// The command must end at once and quietly: by SIGPIPE (as `ls` does) or successfully,
/// never with a panic or an error message.
fn assert_quiet_when_reader_closes(home: &Home, args: &[&str]) {
    let mut child = home
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let line = format!("clipkit {}", args.join(" "));
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "{line}: status {status}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("Broken pipe")
            && !stderr.contains("error"),
        "{line}: stderr should be quiet\n{stderr}"
    );
}

#[test]
fn every_command_ends_quietly_when_its_reader_goes_away() {
    let home = home();
    let image = home.images.join("a_input_0.png");
    let image = image.to_str().unwrap();
    let commands: [&[&str]; 12] = [
        &["search", "a red circle", "--top-k", "300"],
        &["search", "a red circle", "--json"],
        &["search", "--image", image],
        &["dupes"],
        &["dupes", "--json"],
        &["index", "--status"],
        &["embed", "--image", image, "--text", "a cat", "--json"],
        &["tokenize", "--text", "a cat", "--text", "a dog"],
        &["tokenize", "--text", "a cat", "--json"],
        &[
            "classify", "--image", image, "--label", "cat", "--label", "dog",
        ],
        &["preprocess", "--help"],
        &["--help"],
    ];
    for args in commands {
        assert_quiet_when_reader_closes(&home, args);
    }
    // Indexing with a closed stdout loses nothing: the new image is in the index.
    std::fs::copy(
        fixtures().join("images/b_input_1.png"),
        home.images.join("new.png"),
    )
    .unwrap();
    assert_quiet_when_reader_closes(&home, &["index", home.images.to_str().unwrap()]);
    let status = home.command(&["index", "--status"]).output().unwrap();
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(report.contains("images:  9 ("), "{report}");
}

/// The README's `clipkit search` example lines, verbatim, in order; those naming a Hub
/// model with `--model` need the internet and are left out.
fn readme_search_examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("clipkit search ") && !l.contains("QUERY..."))
        .filter(|l| !l.contains("--model "))
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_search_examples_work_as_typed() {
    let home = home();
    let examples = readme_search_examples();
    let want: [&[(&str, f32)]; 4] = [
        &[("beach", 1.0), ("sunset", 1.0), ("people", -1.0)],
        &[("beach", 1.0), ("sunset", 1.0), ("people", -1.0)],
        &[("a red circle", 1.0), ("on the left", 0.5), ("blue", -0.3)],
        &[("people", -1.0), ("beach", 1.0)],
    ];
    assert_eq!(
        examples.len(),
        want.len(),
        "README examples changed: {examples:#?}"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_clipkit")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (line, want) in examples.iter().zip(want) {
        for json in [false, true] {
            let typed = if json && !line.contains(" --json") {
                line.replacen("clipkit search ", "clipkit search --json ", 1)
            } else {
                line.clone()
            };
            let out = Command::new("sh")
                .args(["-c", &typed])
                .env("PATH", &path)
                .env("CLIPKIT_HOME", &home.home)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !stdout.is_empty(),
                "{typed}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            if json {
                let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                let got: Vec<(String, f32)> = v["query"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        let text = t["text"].as_str().unwrap().to_string();
                        (text, t["weight"].as_f64().unwrap() as f32)
                    })
                    .collect();
                let want: Vec<(String, f32)> =
                    want.iter().map(|(t, w)| (t.to_string(), *w)).collect();
                assert_eq!(got, want, "{typed}");
                assert!(!v["results"].as_array().unwrap().is_empty(), "{typed}");
            }
        }
    }
}
