//! A run's `metrics.jsonl`, one JSON object a step, as every trainer (CLIP, VQ,
//! text-to-image) writes it: appended step by step, cut back to the resume point when a
//! run continues, read back for curves and reports.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model_folder::atomic_dir::write_synced;

/// An open `metrics.jsonl` that a run appends one line a step to.
pub(crate) struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for a run that continues after `start` steps: lines of later steps (and
    /// lines without a step) are dropped, since the run writes those steps again.
    pub(crate) fn resume_at(path: &Path, start: usize) -> Result<Self> {
        keep_steps_until(path, start)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `line` as one JSON line.
    pub(crate) fn append<M: Serialize>(&mut self, line: &M) -> Result<()> {
        let text = serde_json::to_string(line).map_err(|e| Error::Training(e.to_string()))?;
        writeln!(self.file, "{text}").map_err(|e| Error::io(&self.path, e))
    }

    /// Makes the lines written so far durable (before a checkpoint that counts them).
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads the lines of a run's `metrics.jsonl` as `M` (lines that do not parse are ignored).
pub fn read_metrics_file<M: DeserializeOwned>(path: &Path) -> Result<Vec<M>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// Keeps the lines of steps up to `step`, as written; a missing file stays missing.
fn keep_steps_until(path: &Path, step: usize) -> Result<()> {
    #[derive(Deserialize)]
    struct Step {
        step: usize,
    }
    if !path.is_file() {
        return Ok(());
    }
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut kept = String::new();
    for line in text.lines() {
        if serde_json::from_str::<Step>(line).is_ok_and(|s| s.step <= step) {
            kept += line;
            kept.push('\n');
        }
    }
    write_synced(path, kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_keeps_the_steps_before_the_resume_point_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let lines = [
            r#"{"step":1,"loss":2.5}"#,
            r#"{"step":2,"loss":2.25}"#,
            "not json",
            r#"{"step":3,"loss":2.0}"#,
        ];
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut log = MetricsLog::resume_at(&path, 2).unwrap();
        log.append(&serde_json::json!({"step": 3, "loss": 1.5}))
            .unwrap();
        drop(log);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{}\n{}\n{}\n",
                lines[0], lines[1], r#"{"loss":1.5,"step":3}"#
            )
        );
        let read: Vec<serde_json::Value> = read_metrics_file(&path).unwrap();
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn a_new_log_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        MetricsLog::resume_at(&path, 0).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
