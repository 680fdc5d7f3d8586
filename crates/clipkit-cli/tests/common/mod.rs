//! Running the `clipkit` binary in tests: on failure, print the command, stdout and stderr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod training;

/// The committed fixtures written by `tools/make_fixtures.py`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A fixture model folder.
pub fn model(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// One finished run of the binary.
pub struct Run {
    pub command: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts success.
    pub fn ok(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "command failed\n{}",
            self.explain()
        );
        self
    }

    /// Asserts success and parses stdout as one JSON value.
    pub fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("bad JSON ({e})\n{}", self.explain()))
    }

    /// Asserts a clean failure: non-zero exit, a message naming `culprit`, no panic.
    pub fn assert_fails_naming(&self, culprit: &str) {
        let err = self.stderr();
        assert!(
            !self.output.status.success(),
            "should fail\n{}",
            self.explain()
        );
        assert!(
            err.contains(culprit),
            "message should name {culprit}\n{}",
            self.explain()
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "panicked\n{}",
            self.explain()
        );
    }
}

/// Runs `clipkit ARGS...` with `CLIPKIT_HOME` pointed at an empty place.
pub fn clipkit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    clipkit_at(&std::env::temp_dir().join("clipkit-tests-no-home"), args)
}

/// Runs `clipkit ARGS...` with `CLIPKIT_HOME` at `home` (its default model and index, its
/// packed-weight cache).
pub fn clipkit_at<S: AsRef<std::ffi::OsStr>>(home: &Path, args: &[S]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
    cmd.args(args).env("CLIPKIT_HOME", home);
    let command = format!(
        "clipkit {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = cmd.output().expect("clipkit runs");
    Run { command, output }
}
