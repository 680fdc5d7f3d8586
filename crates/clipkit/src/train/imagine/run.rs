//! The text-to-image training loop in a run folder: the code pool, batches of captions and
//! codes, cross-entropy, AdamW with warm-up and cosine decay, metrics, checkpoints and
//! resumption after kill -9 with bit-identical results.

use std::fs::{self};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::data::CodePool;
use super::init::initialise;
use crate::error::{Error, Result};
use crate::model::imagine::{write_generator_folder, ImagineConfig, ImagineModel};
use crate::model::vq::VqModel;
use crate::model_folder::WEIGHTS_FILE;
use crate::tokenizer::ClipTokenizer;
use crate::train::metrics_log::MetricsLog;
use crate::train::resume_files::{
    read_trainer_state, restore_optimizer, resume_files, settings_difference,
};
use crate::train::varmap::{restore_vars, trainable_vars, var_values};
use crate::train::{AdamW, AdamWConfig, LrSchedule};

/// Everything that decides what a run computes; saved with each checkpoint, and a resume
/// with other settings is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagineRunSettings {
    /// The architecture and the VQ model it reads codes of.
    pub config: ImagineConfig,
    /// Optimiser steps.
    pub steps: usize,
    /// Caption–image pairs per batch.
    pub batch_size: usize,
    /// Training images in the code pool (encoded once).
    pub images: usize,
    /// Side of the shapes-world images (the VQ latent of this size must be the config's grid).
    pub image_size: u32,
    /// Peak learning rate (AdamW, β = (0.9, 0.95), gradient norm clipped at 1).
    pub learning_rate: f64,
    /// Steps of linear warm-up before the cosine decay to a tenth of the peak.
    pub warmup_steps: usize,
    /// Decoupled weight decay of the linear maps' weights.
    pub weight_decay: f64,
    /// Weight of the caption tokens' loss beside the image codes' (DALL·E: 1/7).
    pub text_weight: f64,
    /// Chance that a caption is replaced by the empty one, so that the model also learns
    /// the unconditional distribution that classifier-free guidance needs (0 disables).
    pub drop_caption: f64,
    /// Seed of the initial weights, of the pool's images and of the batches.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagineMetricsLine {
    /// Step number, from 1.
    pub step: usize,
    /// The minimised loss.
    pub loss: f32,
    /// Cross-entropy of the image codes (nats per code).
    pub image_loss: f32,
    /// Cross-entropy of the caption tokens.
    pub text_loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Optimiser steps per second of this step.
    pub steps_per_s: f64,
}

/// What the loop reports as it goes.
#[derive(Debug)]
pub enum ImagineProgress<'a> {
    /// `done` of `total` pool images encoded.
    Encoding(usize, usize),
    /// The run continues from a checkpoint at this step.
    Resumed(usize),
    /// A step finished.
    Step(&'a ImagineMetricsLine),
    /// A checkpoint was written after this step.
    Checkpoint(usize),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct ImagineRunSummary {
    /// The final generator folder.
    pub model: PathBuf,
    /// Steps trained by this call (0 when the run had already completed).
    pub steps_trained: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    settings: ImagineRunSettings,
}

/// What a run reads besides its settings.
pub struct ImagineInputs<'a> {
    /// The frozen VQ model whose codes are predicted.
    pub vq: &'a VqModel,
    /// The caption tokenizer.
    pub tokenizer: &'a ClipTokenizer,
    /// Its `tokenizer.json`, copied into each generator folder.
    pub tokenizer_json: &'a [u8],
}

/// Trains a text-to-image transformer in `root` as `settings` say, resuming from
/// `root/checkpoint`. The final generator folder is `root/model`.
pub fn run_imagine(
    root: &Path,
    settings: &ImagineRunSettings,
    inputs: &ImagineInputs,
    mut observe: impl FnMut(ImagineProgress),
) -> Result<ImagineRunSummary> {
    check_settings(settings, inputs.vq)?;
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let (checkpoint, model_dir, metrics_path) = (
        root.join("checkpoint"),
        root.join("model"),
        root.join("metrics.jsonl"),
    );
    let config = &settings.config;
    let varmap = VarMap::new();
    let model = ImagineModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        config,
    )?;
    initialise(&varmap, settings.seed, config.num_layers)?;
    let decays = |name: &str| name.ends_with(".weight") && !name.contains("ln_");
    let mut optimizer = AdamW::new(trainable_vars(&varmap, decays), adamw(settings))?;
    let start = resume(&checkpoint, settings, &varmap, &mut optimizer)?;
    if start > 0 {
        observe(ImagineProgress::Resumed(start));
    }
    if start >= settings.steps && model_dir.join(WEIGHTS_FILE).is_file() {
        return Ok(ImagineRunSummary {
            model: model_dir,
            steps_trained: 0,
        });
    }
    let pool = CodePool::build(
        inputs.vq,
        &config.vq.path,
        inputs.tokenizer,
        config.text_length,
        config.pad_token_id,
        settings.images,
        settings.image_size,
        settings.seed,
        &root.join("codes.safetensors"),
        |done, total| observe(ImagineProgress::Encoding(done, total)),
    )?;
    let mut metrics = MetricsLog::resume_at(&metrics_path, start)?;
    let schedule = LrSchedule {
        peak: settings.learning_rate,
        warmup_steps: settings.warmup_steps,
        total_steps: settings.steps,
        floor: settings.learning_rate / 10.0,
    };
    for step in start..settings.steps {
        let started = Instant::now();
        let (text, codes) = pool.batch(
            step,
            settings.batch_size,
            settings.seed,
            settings.drop_caption,
        )?;
        let loss = model.loss(&text, &codes, settings.text_weight)?;
        let grads = loss.total.backward()?;
        let lr = schedule.at(step);
        let report = optimizer.step(&grads, lr)?;
        let done = step + 1;
        let value = loss.total.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::Training(format!(
                "the loss became {value} at step {done}; lower the learning rate"
            )));
        }
        let line = ImagineMetricsLine {
            step: done,
            loss: value,
            image_loss: loss.image.to_scalar::<f32>()?,
            text_loss: loss.text.to_scalar::<f32>()?,
            lr,
            grad_norm: report.grad_norm,
            steps_per_s: 1.0 / started.elapsed().as_secs_f64(),
        };
        metrics.append(&line)?;
        observe(ImagineProgress::Step(&line));
        if done % settings.checkpoint_every == 0 || done == settings.steps {
            metrics.sync()?;
            let state = TrainerState {
                step: done,
                settings: settings.clone(),
            };
            save_checkpoint(&checkpoint, &state, &varmap, &optimizer, inputs)?;
            observe(ImagineProgress::Checkpoint(done));
        }
    }
    write_generator_folder(
        &model_dir,
        config,
        &var_values(&varmap),
        inputs.tokenizer_json,
        &[],
    )?;
    Ok(ImagineRunSummary {
        model: model_dir,
        steps_trained: settings.steps - start,
    })
}

fn check_settings(settings: &ImagineRunSettings, vq: &VqModel) -> Result<()> {
    if settings.steps == 0
        || settings.batch_size == 0
        || settings.checkpoint_every == 0
        || settings.images == 0
    {
        return Err(Error::InvalidArgument(
            "a text-to-image run needs at least one step, one pair per batch, one image in \
             the pool and checkpoints every one or more steps"
                .into(),
        ));
    }
    if !(0.0..1.0).contains(&settings.drop_caption) {
        return Err(Error::InvalidArgument(format!(
            "a caption drop rate of {} is outside [0, 1)",
            settings.drop_caption
        )));
    }
    let side = settings.image_size as usize;
    let (_, h, w) = vq.latent_shape(side, side)?;
    let config = &settings.config;
    if [h, w] != config.grid || vq.config().num_vq_embeddings != config.codebook_size {
        return Err(Error::InvalidArgument(format!(
            "the VQ model makes a {h}x{w} grid of {} codes from {side} px images, but the \
             transformer expects a {}x{} grid of {} codes",
            vq.config().num_vq_embeddings,
            config.grid[0],
            config.grid[1],
            config.codebook_size
        )));
    }
    Ok(())
}

fn adamw(settings: &ImagineRunSettings) -> AdamWConfig {
    AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: settings.weight_decay,
        max_grad_norm: Some(1.0),
    }
}

fn save_checkpoint(
    dir: &Path,
    state: &TrainerState,
    varmap: &VarMap,
    optimizer: &AdamW,
    inputs: &ImagineInputs,
) -> Result<()> {
    write_generator_folder(
        dir,
        &state.settings.config,
        &var_values(varmap),
        inputs.tokenizer_json,
        &resume_files(optimizer, state)?,
    )
}

/// Loads `dir`'s checkpoint, if any; returns the steps done.
fn resume(
    dir: &Path,
    settings: &ImagineRunSettings,
    varmap: &VarMap,
    optimizer: &mut AdamW,
) -> Result<usize> {
    let Some(state) = read_trainer_state::<TrainerState>(dir)? else {
        return Ok(0);
    };
    if state.settings != *settings {
        return Err(Error::InvalidArgument(format!(
            "{} holds a text-to-image run with other settings ({}); resume it with the same \
             options and VQ model, or train into another folder",
            dir.display(),
            settings_difference(&state.settings, settings)
        )));
    }
    restore_vars(varmap, &dir.join(WEIGHTS_FILE))?;
    restore_optimizer(optimizer, dir, state.step)?;
    Ok(state.step)
}
