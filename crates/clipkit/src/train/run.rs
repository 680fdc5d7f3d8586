//! A training run in a folder: the loop, its metrics, checkpoints and resumption.
//!
//! Layout of a run folder:
//! - `checkpoint/`: the latest checkpoint, a HuggingFace model folder (loadable by
//!   [`Clip::load`](crate::Clip::load)) plus `optimizer.safetensors` and `trainer_state.json`;
//!   replaced atomically, so a run killed at any moment resumes from the last one written;
//! - `model/`: the final model, written when the run completes;
//! - `metrics.jsonl`: one line per step.
//!
//! Running the same command again on the same folder resumes from `checkpoint/` instead of
//! restarting; a completed run is not trained again.

use std::collections::BTreeMap;
use std::fs::{self};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::loader::{BatchLoader, Preparation, SampleOrder};
use super::optimizer::{AdamW, AdamWConfig};
use super::parameters::Parameters;
use super::schedule::LrSchedule;
use super::step::{train_step, StepMetrics};
use candle_core::Tensor;

use super::metrics_log::MetricsLog;
use super::resume_files::{
    read_trainer_state, restore_optimizer, resume_files, settings_difference,
};
use super::varmap::load_tensors;
use crate::config::ClipConfig;
use crate::data::PairSource;
use crate::error::{Error, Result};
use crate::image::PreprocessConfig;
use crate::model_folder::{
    read_config, read_preprocess, read_tokenizer_files, write_model_folder, FolderFile,
    ModelFolder, WEIGHTS_FILE,
};

/// Everything that decides what a run computes. Saved with each checkpoint; a resume with
/// different settings is refused rather than silently mixing two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Optimiser steps in the whole run.
    pub steps: usize,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Learning rate at the end of the cosine decay.
    pub min_learning_rate: f64,
    /// Decoupled weight decay of matrices.
    pub weight_decay: f64,
    /// Global gradient-norm clip, if any.
    pub max_grad_norm: Option<f64>,
    /// Seed of the sample order.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
}

impl RunSettings {
    /// Refuses settings no run can follow, naming the setting: no steps, a batch of fewer
    /// than two pairs (a contrastive batch needs a negative), checkpoints every 0 steps, a
    /// learning rate, decay or clip norm that is no finite number in its range.
    pub fn validate(&self) -> Result<()> {
        let problem = if self.steps == 0 {
            "0 steps: a run needs at least one".to_string()
        } else if self.batch_size < 2 {
            format!(
                "batch size {}: contrastive training needs at least 2 pairs per batch",
                self.batch_size
            )
        } else if self.checkpoint_every == 0 {
            "a checkpoint every 0 steps: give at least 1".to_string()
        } else if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            format!("learning rate {}: give a number > 0", self.learning_rate)
        } else if !(self.min_learning_rate >= 0.0 && self.min_learning_rate.is_finite()) {
            format!(
                "final learning rate {}: give a number ≥ 0",
                self.min_learning_rate
            )
        } else if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            format!("weight decay {}: give a number ≥ 0", self.weight_decay)
        } else if let Some(norm) = self.max_grad_norm.filter(|n| !(*n > 0.0 && n.is_finite())) {
            format!("gradient clip norm {norm}: give a number > 0")
        } else {
            return Ok(());
        };
        Err(Error::InvalidArgument(problem))
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.learning_rate,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            floor: self.min_learning_rate,
        }
    }

    fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            ..AdamWConfig::default()
        }
    }
}

/// What completes the weights into a loadable model folder: the configuration, the image
/// preprocessing and the tokenizer files.
#[derive(Debug, Clone)]
pub struct ModelAssets {
    /// Written as `config.json`.
    pub config: ClipConfig,
    /// Written as `preprocessor_config.json`.
    pub preprocess: PreprocessConfig,
    /// Tokenizer files, written as they are.
    pub tokenizer: Vec<FolderFile>,
}

impl ModelAssets {
    /// The assets of an existing model folder (to fine-tune it).
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        Ok(ModelAssets {
            preprocess: read_preprocess(dir, &config)?,
            tokenizer: read_tokenizer_files(dir)?,
            config,
        })
    }

    /// A complete model folder with these assets, `weights` and `extra` files.
    fn folder(&self, weights: BTreeMap<String, Tensor>, extra: Vec<FolderFile>) -> ModelFolder {
        ModelFolder {
            config: self.config.clone(),
            tensors: weights,
            preprocess: self.preprocess.clone(),
            tokenizer: self.tokenizer.clone(),
            extra,
        }
    }
}

const CHECKPOINT_DIR: &str = "checkpoint";
const MODEL_DIR: &str = "model";
const METRICS_FILE: &str = "metrics.jsonl";

/// Where a run keeps its files.
#[derive(Debug, Clone)]
pub struct RunFolder {
    root: PathBuf,
}

impl RunFolder {
    /// A run folder at `root` (created when the run starts).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunFolder { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The latest checkpoint (a model folder).
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join(CHECKPOINT_DIR)
    }

    /// The final model, once the run has completed.
    pub fn model(&self) -> PathBuf {
        self.root.join(MODEL_DIR)
    }

    /// The per-step metrics.
    pub fn metrics(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }
}

/// What the trainer saves beside a checkpoint to resume from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    /// Steps completed.
    step: usize,
    /// Samples skipped so far.
    skipped: usize,
    settings: RunSettings,
    /// The data source's [`PairSource::describe`] (empty in checkpoints written before it
    /// was recorded, which resume without the check).
    #[serde(default)]
    data: String,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsLine {
    /// Step number, from 1.
    pub step: usize,
    /// Contrastive loss.
    pub loss: f32,
    /// In-batch pair accuracy.
    pub accuracy: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// exp(logit_scale) after the step.
    pub logit_scale: f32,
    /// Training throughput of this step (pairs per second).
    pub samples_per_s: f64,
    /// Samples skipped so far.
    pub skipped: usize,
}

/// What the loop reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The run continues from a checkpoint at this step.
    Resumed(usize),
    /// A step finished.
    Step(&'a MetricsLine),
    /// A checkpoint was written after this step.
    Checkpoint(usize),
    /// A sample could not be read and was skipped.
    Skipped(&'a str),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The final model folder.
    pub model: PathBuf,
    /// Steps trained by this call (0 when the run had already completed).
    pub steps_trained: usize,
    /// Samples skipped in the whole run.
    pub skipped: usize,
    /// The last step's metrics, if this call trained any.
    pub last: Option<MetricsLine>,
}

/// Trains `parameters` on `source` according to `settings`, in `folder`, resuming from the
/// folder's checkpoint when there is one. `assets` completes every saved model folder.
pub fn run(
    folder: &RunFolder,
    settings: &RunSettings,
    parameters: Parameters,
    assets: &ModelAssets,
    source: Arc<dyn PairSource>,
    preparation: Arc<Preparation>,
    mut observe: impl FnMut(Progress),
) -> Result<RunSummary> {
    settings.validate()?;
    fs::create_dir_all(folder.root()).map_err(|e| Error::io(folder.root(), e))?;
    let mut optimizer = AdamW::new(parameters.trainable(), settings.adamw())?;
    let data = source.describe();
    let (start, mut skipped) = resume(folder, settings, &data, &parameters, &mut optimizer)?;
    if start > 0 {
        observe(Progress::Resumed(start));
    }
    if start >= settings.steps && folder.model().join(WEIGHTS_FILE).is_file() {
        return Ok(RunSummary {
            model: folder.model(),
            steps_trained: 0,
            skipped,
            last: None,
        });
    }
    let mut metrics = MetricsLog::resume_at(&folder.metrics(), start)?;
    let order = SampleOrder {
        seed: settings.seed,
        batch_size: settings.batch_size,
        family: source.family_len(),
    };
    let loader = BatchLoader::spawn(source, preparation, order, start, settings.steps)?;
    let schedule = settings.schedule();
    let shards = rayon::current_num_threads();
    let mut last = None;
    for step in start..settings.steps {
        let loaded = loader
            .next_batch()
            .ok_or_else(|| Error::Training("the data loader stopped early".into()))??;
        for problem in &loaded.skipped {
            observe(Progress::Skipped(problem));
        }
        skipped += loaded.skipped.len();
        let lr = schedule.at(step);
        let started = Instant::now();
        let StepMetrics {
            loss,
            accuracy,
            grad_norm,
            logit_scale,
        } = train_step(&parameters, &mut optimizer, &loaded.batch, lr, shards)?;
        if !loss.is_finite() {
            return Err(Error::Training(format!(
                "the loss became {loss} at step {}; lower the learning rate",
                step + 1
            )));
        }
        let line = MetricsLine {
            step: step + 1,
            loss,
            accuracy,
            lr,
            grad_norm,
            logit_scale,
            samples_per_s: loaded.batch.ids.len() as f64 / started.elapsed().as_secs_f64(),
            skipped,
        };
        metrics.append(&line)?;
        observe(Progress::Step(&line));
        last = Some(line);
        let done = step + 1;
        if done % settings.checkpoint_every == 0 || done == settings.steps {
            metrics.sync()?;
            let state = TrainerState {
                step: done,
                skipped,
                settings: settings.clone(),
                data: data.clone(),
            };
            save_checkpoint(folder, &state, &parameters, &optimizer, assets)?;
            observe(Progress::Checkpoint(done));
        }
    }
    write_model_folder(
        &folder.model(),
        &assets.folder(parameters.values()?, Vec::new()),
    )?;
    Ok(RunSummary {
        model: folder.model(),
        steps_trained: settings.steps - start,
        skipped,
        last,
    })
}

/// Loads the folder's checkpoint into `parameters` and `optimizer`, if there is one:
/// (steps done, samples skipped). A checkpoint of other settings or other data (as
/// [`PairSource::describe`] tells it) is refused.
fn resume(
    folder: &RunFolder,
    settings: &RunSettings,
    data: &str,
    parameters: &Parameters,
    optimizer: &mut AdamW,
) -> Result<(usize, usize)> {
    let dir = folder.checkpoint();
    let Some(state) = read_trainer_state::<TrainerState>(&dir)? else {
        return Ok((0, 0));
    };
    if state.settings != *settings {
        return Err(Error::InvalidArgument(format!(
            "{} holds a run with other settings ({}); resume it with the same options or \
             train into another folder",
            folder.root().display(),
            settings_difference(&state.settings, settings)
        )));
    }
    if !state.data.is_empty() && state.data != data {
        return Err(Error::InvalidArgument(format!(
            "{} holds a run on other data ({}; now {data}); resume it with the same data \
             options or train into another folder",
            folder.root().display(),
            state.data
        )));
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    parameters.load_values(&load_tensors(&weights_path)?, &weights_path)?;
    restore_optimizer(optimizer, &dir, state.step)?;
    Ok((state.step, state.skipped))
}

/// Writes `state` with the weights and optimizer moments as the folder's checkpoint.
fn save_checkpoint(
    folder: &RunFolder,
    state: &TrainerState,
    parameters: &Parameters,
    optimizer: &AdamW,
    assets: &ModelAssets,
) -> Result<()> {
    let extra = resume_files(optimizer, state)?
        .into_iter()
        .map(|(name, bytes)| FolderFile {
            name: name.into(),
            bytes,
        })
        .collect();
    write_model_folder(
        &folder.checkpoint(),
        &assets.folder(parameters.values()?, extra),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RunSettings {
        RunSettings {
            steps: 10,
            batch_size: 8,
            learning_rate: 1e-3,
            warmup_steps: 2,
            min_learning_rate: 0.0,
            weight_decay: 0.1,
            max_grad_norm: Some(1.0),
            seed: 0,
            checkpoint_every: 5,
        }
    }

    #[test]
    fn validate_names_each_setting_no_run_can_follow() {
        assert!(valid().validate().is_ok());
        assert!(RunSettings {
            max_grad_norm: None,
            ..valid()
        }
        .validate()
        .is_ok());
        let cases: [(RunSettings, &str); 8] = [
            (
                RunSettings {
                    steps: 0,
                    ..valid()
                },
                "0 steps",
            ),
            (
                RunSettings {
                    batch_size: 1,
                    ..valid()
                },
                "batch size 1",
            ),
            (
                RunSettings {
                    checkpoint_every: 0,
                    ..valid()
                },
                "checkpoint every 0",
            ),
            (
                RunSettings {
                    learning_rate: f64::NAN,
                    ..valid()
                },
                "learning rate NaN",
            ),
            (
                RunSettings {
                    learning_rate: 0.0,
                    ..valid()
                },
                "learning rate 0",
            ),
            (
                RunSettings {
                    min_learning_rate: f64::INFINITY,
                    ..valid()
                },
                "final learning rate inf",
            ),
            (
                RunSettings {
                    weight_decay: -0.1,
                    ..valid()
                },
                "weight decay -0.1",
            ),
            (
                RunSettings {
                    max_grad_norm: Some(f64::NAN),
                    ..valid()
                },
                "clip norm NaN",
            ),
        ];
        for (settings, culprit) in cases {
            let err = settings
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(culprit), "{culprit}: {err:?}");
        }
    }
}
