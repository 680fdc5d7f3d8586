//! The trainable parameter set: one candle variable per checkpoint tensor, named as in the
//! HuggingFace checkpoint.
//!
//! The model's constructors are the one list of parameters: building a [`ClipNetwork`]
//! against a recording backend discovers every name and shape, and each is filled from a
//! checkpoint (fine-tuning) or from the initial-value scheme (training from scratch).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::init::initial_value;
use super::optimizer::TrainableVar;
use crate::checkpoint::Checkpoint;
use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::model::{ClipNetwork, LoadOptions};

/// Name of the temperature parameter.
pub const LOGIT_SCALE: &str = "logit_scale";
/// The logit scale is clamped to ln(100) after each step, as in the CLIP paper, so the
/// temperature never drops below 0.01.
pub const MAX_LOGIT_SCALE: f32 = 4.605_170_2;

/// Every trainable tensor of a CLIP model, by checkpoint name.
pub struct Parameters {
    vars: BTreeMap<String, Var>,
    config: ClipConfig,
}

impl Parameters {
    /// Fresh weights for `config`, drawn deterministically from `seed`.
    pub fn init(config: &ClipConfig, seed: u64) -> Result<Self> {
        let vars = record(config, |name, shape| {
            initial_value(name, shape, config, seed)
        })?;
        Ok(Parameters {
            vars,
            config: config.clone(),
        })
    }

    /// The weights of a model folder's checkpoint, to fine-tune.
    pub fn from_checkpoint(dir: &Path, config: &ClipConfig) -> Result<Self> {
        let checkpoint = Checkpoint::open_dir(dir)?;
        let vars = {
            let source = checkpoint.var_builder();
            record(config, |name, shape| source.get(shape.clone(), name))
        };
        // Report every tensor problem at once before any error from building the network.
        checkpoint.finish()?;
        Ok(Parameters {
            vars: vars?,
            config: config.clone(),
        })
    }

    /// Replaces every value with the one of the same name in `tensors` (a saved state).
    pub fn load_values(&self, tensors: &HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        for (name, var) in &self.vars {
            let value = tensors.get(name).ok_or_else(|| Error::Weights {
                path: origin.to_path_buf(),
                problems: format!("  missing tensor {name}"),
            })?;
            var.set(value).map_err(|e| Error::Weights {
                path: origin.to_path_buf(),
                problems: format!("  tensor {name}: {e}"),
            })?;
        }
        Ok(())
    }

    /// The network with these weights; its forward passes are differentiable with respect
    /// to them. Rebuild it after each optimiser step.
    pub fn network(&self) -> Result<ClipNetwork> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Ok(ClipNetwork::new(vb, &self.config, LoadOptions::TRAINING)?)
    }

    /// The variables, by name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// Every variable, by name in order, marked with [`decays`]: what
    /// [`AdamW::new`](super::AdamW::new) takes to train the model.
    pub fn trainable(&self) -> Vec<TrainableVar> {
        self.vars
            .iter()
            .map(|(name, var)| TrainableVar {
                name: name.clone(),
                var: var.clone(),
                decays: decays(name, var.shape()),
            })
            .collect()
    }

    /// The configuration the parameters were made for.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Number of scalar weights.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Copies of the current values, detached from any graph, for saving.
    pub fn values(&self) -> Result<BTreeMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().detach().copy()?)))
            .collect()
    }

    /// exp(logit_scale): the current multiplier of cosine similarities.
    pub fn logit_scale(&self) -> candle_core::Result<f32> {
        match self.vars.get(LOGIT_SCALE) {
            Some(var) => var.as_tensor().exp()?.to_scalar::<f32>(),
            None => candle_core::bail!("the model has no {LOGIT_SCALE}"),
        }
    }

    /// Keeps the logit scale in [0, ln 100].
    pub fn clamp_logit_scale(&self) -> candle_core::Result<()> {
        if let Some(var) = self.vars.get(LOGIT_SCALE) {
            var.set(&var.as_tensor().clamp(0f32, MAX_LOGIT_SCALE)?)?;
        }
        Ok(())
    }
}

/// Whether weight decay applies to a parameter: to matrices, not to gains, biases, the class
/// embedding, the logit scale (all 1-D or scalar) nor to token and position embeddings.
pub fn decays(name: &str, shape: &Shape) -> bool {
    shape.rank() >= 2
        && !name.ends_with("token_embedding.weight")
        && !name.ends_with("position_embedding.weight")
}

/// Builds the network once against a backend that creates a variable for every tensor the
/// constructors ask for, filled by `source(name, shape)`.
fn record(
    config: &ClipConfig,
    source: impl Fn(&str, &Shape) -> candle_core::Result<Tensor> + Send + Sync,
) -> Result<BTreeMap<String, Var>> {
    let recorder = Recorder {
        source,
        vars: Mutex::new(BTreeMap::new()),
    };
    ClipNetwork::new(
        VarBuilder::from_backend(Box::new(&recorder), DType::F32, Device::Cpu),
        config,
        LoadOptions::TRAINING,
    )?;
    Ok(recorder
        .vars
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner()))
}

struct Recorder<F> {
    source: F,
    vars: Mutex<BTreeMap<String, Var>>,
}

impl<F> SimpleBackend for &Recorder<F>
where
    F: Fn(&str, &Shape) -> candle_core::Result<Tensor> + Send + Sync,
{
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        _: DType,
        _: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self
            .vars
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(var) = vars.get(name) {
            return Ok(var.as_tensor().clone());
        }
        let value = (self.source)(name, &shape)?.to_dtype(DType::F32)?;
        let var = Var::from_tensor(&value)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("parameter {name} requested without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
