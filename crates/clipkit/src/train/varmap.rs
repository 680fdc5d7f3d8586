//! The variables of a model trained from a candle `VarMap` (the VQ autoencoder, the
//! text-to-image transformer): listed for the optimiser, read out for saving, and set back
//! from a checkpoint file when a run resumes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::TrainableVar;
use crate::error::{Error, Result};

/// The variables by name, in name order (the optimiser's state keys); `decays` says which
/// take weight decay.
pub(crate) fn trainable_vars(varmap: &VarMap, decays: impl Fn(&str) -> bool) -> Vec<TrainableVar> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut all: Vec<TrainableVar> = vars
        .iter()
        .map(|(name, var)| TrainableVar {
            name: name.clone(),
            var: var.clone(),
            decays: decays(name),
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The variables' current values by name.
pub(crate) fn var_values(varmap: &VarMap) -> HashMap<String, Tensor> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    vars.iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect()
}

/// Reads a safetensors file, a corrupt one reported as such.
pub(crate) fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Sets every variable from the weights file `path`; a missing tensor is named.
pub(crate) fn restore_vars(varmap: &VarMap, path: &Path) -> Result<()> {
    let weights = load_tensors(path)?;
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (name, var) in vars.iter() {
        let value = weights.get(name).ok_or_else(|| Error::Weights {
            path: path.to_path_buf(),
            problems: format!("  missing tensor {name}"),
        })?;
        var.set(value)?;
    }
    Ok(())
}
