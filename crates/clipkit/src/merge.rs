//! Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): a fine-tuned model and the model
//! it started from are interpolated parameter by parameter, θ = (1 − α)·θ_base + α·θ_ft.
//! Between the ends lie models that keep much of the base model's zero-shot accuracy while
//! gaining most of the fine-tuned accuracy on the new task; α picks the trade-off.
//!
//! Both folders must share one architecture: configs equal in every field, the same tensor
//! names and shapes. The merged folder carries FINETUNED's tokenizer and preprocessing.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model_folder::{write_model_folder, ModelFolder, CONFIG_FILE};

/// A base model and its fine-tuned version, read and checked once, ready to be
/// interpolated at any number of α.
pub struct WiseFt {
    base: ModelFolder,
    finetuned: ModelFolder,
}

impl WiseFt {
    /// Reads both model folders; an error names the first config field (the initial
    /// `logit_scale_init_value` aside) or tensor in which they differ.
    pub fn open(base_dir: &Path, finetuned_dir: &Path) -> Result<Self> {
        let base = ModelFolder::read(base_dir)?;
        let finetuned = ModelFolder::read(finetuned_dir)?;
        let incompatible = |message: String| Error::Incompatible {
            left: base_dir.to_path_buf(),
            right: finetuned_dir.to_path_buf(),
            message,
        };
        // The starting value of the learned temperature says nothing about the weights (the
        // learned `logit_scale` is a tensor, merged like the others), and tools write it
        // with other digits (2.6592 against ln(1/0.07)).
        let comparable = |folder: &ModelFolder| {
            let mut config = folder.config.clone();
            config.logit_scale_init_value = 0.0;
            serde_json::to_value(config)
                .map_err(|e| Error::InvalidArgument(format!("cannot compare configs: {e}")))
        };
        let (a, b) = (comparable(&base)?, comparable(&finetuned)?);
        if let Some((field, x, y)) = first_difference(&a, &b, String::new()) {
            return Err(incompatible(format!(
                "{CONFIG_FILE} field `{field}` is {x} in one and {y} in the other"
            )));
        }
        for (name, t) in &base.tensors {
            match finetuned.tensors.get(name) {
                None => {
                    return Err(incompatible(format!(
                        "tensor {name} is missing from {}",
                        finetuned_dir.display()
                    )))
                }
                Some(u) if u.dims() != t.dims() => {
                    return Err(incompatible(format!(
                        "tensor {name} has shape {:?} in one and {:?} in the other",
                        t.dims(),
                        u.dims()
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(name) = finetuned
            .tensors
            .keys()
            .find(|n| !base.tensors.contains_key(*n))
        {
            return Err(incompatible(format!(
                "tensor {name} is missing from {}",
                base_dir.display()
            )));
        }
        Ok(WiseFt { base, finetuned })
    }

    /// The model at `alpha` in [0, 1]: every tensor (1 − α)·base + α·finetuned; config,
    /// tokenizer and preprocessing from the fine-tuned folder.
    pub fn at(&self, alpha: f64) -> Result<ModelFolder> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::InvalidArgument(format!(
                "alpha must be between 0 and 1, got {alpha}"
            )));
        }
        let mut tensors = std::collections::BTreeMap::new();
        for (name, base) in &self.base.tensors {
            let finetuned = &self.finetuned.tensors[name];
            let mixed = ((base * (1.0 - alpha))? + (finetuned * alpha)?)?;
            tensors.insert(name.clone(), mixed);
        }
        Ok(ModelFolder {
            config: self.finetuned.config.clone(),
            tensors,
            preprocess: self.finetuned.preprocess.clone(),
            tokenizer: self.finetuned.tokenizer.clone(),
            extra: Vec::new(),
        })
    }
}

/// Interpolates `base` and `finetuned` at `alpha` and writes the result to `out`
/// (atomically; see [`write_model_folder`]).
pub fn merge_model_folders(base: &Path, finetuned: &Path, alpha: f64, out: &Path) -> Result<()> {
    write_model_folder(out, &WiseFt::open(base, finetuned)?.at(alpha)?)
}

/// The dotted path of the first field where two JSON values differ, with both values.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                first_difference(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), field)
            })
        }
        _ if a == b => None,
        _ => Some((path, a.clone(), b.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_nested_field() {
        let a = json!({"text_config": {"hidden_size": 32, "layers": 2}, "projection_dim": 8});
        let b = json!({"text_config": {"hidden_size": 48, "layers": 2}, "projection_dim": 8});
        let (field, x, y) = first_difference(&a, &b, String::new()).unwrap();
        assert_eq!(
            (field.as_str(), x, y),
            ("text_config.hidden_size", json!(32), json!(48))
        );
        assert!(first_difference(&a, &a, String::new()).is_none());
    }
}
