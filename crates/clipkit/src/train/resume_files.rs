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

/// Restores `optimizer`'s moments from the checkpoint folder `dir`, `step` steps in.
pub(crate) fn restore_optimizer(optimizer: &mut AdamW, dir: &Path, step: usize) -> Result<()> {
    optimizer.restore(&load_tensors(&dir.join(OPTIMIZER_FILE))?, step as u64)?;
    Ok(())
}
