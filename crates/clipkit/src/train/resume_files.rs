//! What every trainer (CLIP, VQ, text-to-image) keeps in its checkpoint beside the weights
//! to continue bit for bit: the optimizer's moments (`optimizer.safetensors`) and the
//! trainer's state (`trainer_state.json`: steps done, settings, anything else it needs).

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::varmap::load_tensors;
use super::AdamW;
use crate::error::{Error, Result};
use crate::model_folder::{OPTIMIZER_FILE, TRAINER_STATE_FILE};

/// The two files to write into a checkpoint folder beside the weights: (name, bytes).
pub(crate) fn resume_files<S: Serialize>(
    optimizer: &AdamW,
    state: &S,
) -> Result<[(&'static str, Vec<u8>); 2]> {
    let (moments, _) = optimizer.state()?;
    let moments = safetensors::serialize(moments.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| Error::Training(format!("optimizer state: {e}")))?;
    let state = serde_json::to_vec_pretty(state).map_err(|e| Error::Training(e.to_string()))?;
    Ok([(OPTIMIZER_FILE, moments), (TRAINER_STATE_FILE, state)])
}

/// The trainer state of the checkpoint folder `dir`, or `None` when it has none.
pub(crate) fn read_trainer_state<S: DeserializeOwned>(dir: &Path) -> Result<Option<S>> {
    let path = dir.join(TRAINER_STATE_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Config {
            path,
            field: "(top level)".into(),
            message: format!("unreadable trainer state: {e}"),
        })
}

/// What differs between the settings a checkpoint was made with and the settings of this
/// call, setting by setting ("image_size: 32 in the checkpoint, 64 now"; nested settings
/// by their path, "config.num_vq_embeddings"), for the error that refuses the resume.
pub(crate) fn settings_difference<S: Serialize>(saved: &S, now: &S) -> String {
    let as_json = |s: &S| serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    let mut lines = Vec::new();
    differences("", &as_json(saved), &as_json(now), &mut lines);
    if lines.is_empty() {
        "settings that compare unequal".into()
    } else {
        lines.join("; ")
    }
}

/// Appends to `out` each path under `prefix` where `saved` and `now` differ.
fn differences(
    prefix: &str,
    saved: &serde_json::Value,
    now: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (saved, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                let missing = Value::Null;
                let (x, y) = (
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                );
                differences(&path, x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{prefix}: {a} in the checkpoint, {b} now")),
        _ => {}
    }
}

/// Restores `optimizer`'s moments from the checkpoint folder `dir`, `step` steps in.
pub(crate) fn restore_optimizer(optimizer: &mut AdamW, dir: &Path, step: usize) -> Result<()> {
    optimizer.restore(&load_tensors(&dir.join(OPTIMIZER_FILE))?, step as u64)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        codes: usize,
        name: &'static str,
    }

    #[derive(Serialize)]
    struct Settings {
        steps: usize,
        image_size: u32,
        config: Inner,
    }

    #[test]
    fn the_difference_names_each_changed_setting_by_its_path() {
        let saved = Settings {
            steps: 600,
            image_size: 32,
            config: Inner {
                codes: 128,
                name: "a",
            },
        };
        let now = Settings {
            steps: 600,
            image_size: 64,
            config: Inner {
                codes: 512,
                name: "a",
            },
        };
        assert_eq!(
            settings_difference(&saved, &now),
            "config.codes: 128 in the checkpoint, 512 now; image_size: 32 in the checkpoint, 64 now"
        );
    }
}
