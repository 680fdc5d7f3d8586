//! `clipkit train`: contrastive training from scratch or fine-tuning, resumable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clipkit::config::ClipConfig;
use clipkit::data::shapes::{attribute_captions, captions, ShapesConfig, ShapesWorld, Split};
use clipkit::data::{CaptionsFile, PairSource, ShapesSource, WebDataset};
use clipkit::train::{
    preset, read_metrics_file, write_training_curves, MetricsLine, Progress, RunFolder,
    RunSettings, RunSummary, Start,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `clipkit train`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// Train another kind of model instead of a CLIP.
    #[command(subcommand)]
    pub other: Option<Other>,
    /// Run folder: checkpoints, metrics, curves and the final model (`DIR/model`). Running
    /// the same command again resumes from the last checkpoint.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelChoice,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// Models other than a CLIP that `clipkit train` trains.
#[derive(clap::Subcommand)]
pub enum Other {
    /// A VQ autoencoder (diffusers VQModel / VQGAN architecture) on the shapes world.
    Vq(super::train_vq::Args),
    /// A DALL·E-style text-to-image transformer over a VQ model's codes of the shapes world.
    Imagine(super::train_imagine::Args),
}

/// What to train: a new model (preset or config) or an existing one.
#[derive(clap::Args)]
pub struct ModelChoice {
    /// Train a new model of this named shape (quickstart, small).
    #[arg(long, default_value = "quickstart", conflicts_with_all = ["config", "init_from"])]
    pub preset: String,
    /// Train a new model of the shape in this config.json.
    #[arg(long, value_name = "FILE", conflicts_with = "init_from")]
    pub config: Option<PathBuf>,
    /// Fine-tune the model in this folder.
    #[arg(long, value_name = "DIR")]
    pub init_from: Option<PathBuf>,
}

/// Where the (image, caption) pairs come from; the shapes world when none is given.
#[derive(clap::Args)]
pub struct DataArgs {
    /// A captions file (JSON Lines `{"path", "caption"}` or CSV `path,caption`), paths
    /// relative to the file.
    #[arg(long, value_name = "FILE", conflicts_with = "webdataset")]
    pub captions: Option<PathBuf>,
    /// WebDataset tar shards (`key.jpg` + `key.txt`), or folders of them (repeatable).
    #[arg(long, value_name = "PATH")]
    pub webdataset: Vec<PathBuf>,
    /// Seed of the shapes world (when no other data is given).
    #[arg(long, default_value_t = 0)]
    pub shapes_seed: u64,
    /// Shapes-world scenes per family of variants kept in one batch: one layout whose
    /// first object runs over two colours × ⌈N/2⌉ shapes, so a batch cannot be told apart
    /// by colour alone and colour must be bound to shape (1 to 6; 1 = independent scenes).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub shapes_family: u8,
    /// Chance that a shapes-world scene of several objects is captioned by one of them only
    /// ("a red heart" for a red heart beside a blue star), as alt text names the main
    /// subject: what lets "a red heart" find every image holding one (0 to 1).
    #[arg(long, default_value_t = 0.8, value_parser = super::unit_interval)]
    pub shapes_one_group: f64,
    /// Chance that a shapes-world caption names one attribute of its main group only, the
    /// colour ("a red shape") or the shape ("two stars"): colours and shapes learned as
    /// separate words, for pairs never seen together (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = super::unit_interval)]
    pub shapes_attribute: f64,
    /// Chance that a shapes-world family is one of binding swaps: every second member
    /// trades the shapes of two groups ("a red star and a blue circle" beside "a red
    /// circle and a blue star"), so only binding tells them apart (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = super::unit_interval)]
    pub shapes_swap: f64,
    /// How far a shapes-world object's fill may stray from its colour's usual shade, in
    /// levels per channel (0 to 255; 0 = a few levels). Each colour word then covers a
    /// range of shades, still nearest its own, so shapes are seen in more colour mixes.
    #[arg(long, default_value_t = 0)]
    pub shapes_colour_spread: u8,
}

/// The run's optimisation settings.
#[derive(clap::Args)]
pub struct SettingsArgs {
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    /// Pairs per batch (more negatives per positive; at least 2).
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = crate::commands::positive_number)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-5, value_parser = crate::commands::non_negative)]
    pub min_lr: f64,
    /// Decoupled weight decay of weight matrices.
    #[arg(long, default_value_t = 0.1, value_parser = crate::commands::non_negative)]
    pub weight_decay: f64,
    /// Clip gradients to this global norm (0 disables).
    #[arg(long, default_value_t = 1.0, value_parser = crate::commands::non_negative)]
    pub max_grad_norm: f64,
    /// Seed of the initial weights and of the sample order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
}

impl SettingsArgs {
    /// The library's run settings.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            warmup_steps: self.warmup.min(self.steps.saturating_sub(1)),
            min_learning_rate: self.min_lr,
            weight_decay: self.weight_decay,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
        }
    }
}

/// Runs `clipkit train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.other {
        Some(Other::Vq(args)) => return super::train_vq::run(args),
        Some(Other::Imagine(args)) => return super::train_imagine::run(args),
        None => {}
    }
    let out = args.out.context("--out DIR is required")?;
    let summary = train(&out, &args.model, &args.data, &args.settings.settings())?;
    eprintln!(
        "model saved in {} ({} steps trained now, {} samples skipped)",
        summary.model.display(),
        summary.steps_trained,
        summary.skipped
    );
    Ok(())
}

/// Builds the data and the starting model, trains with a progress bar, and draws the curves
/// next to the metrics.
pub fn train(
    out: &Path,
    model: &ModelChoice,
    data: &DataArgs,
    settings: &RunSettings,
) -> anyhow::Result<RunSummary> {
    settings.validate()?;
    let data = open_data(data)?;
    let start = starting_point(model, &data, settings.seed)?;
    let source = match data {
        Data::Pairs(source) => source,
        // Drawn at the model's own input size, so preprocessing never resamples them.
        Data::Shapes(world) => {
            let count = settings.steps.saturating_mul(settings.batch_size).max(1);
            let config = ShapesConfig {
                image_size: super::eval::model_image_size(&start.assets.config),
                ..*world.config()
            };
            Arc::new(ShapesSource::new(config, count)?)
        }
    };
    let folder = RunFolder::new(out);
    eprintln!(
        "training {} weights on {} for {} steps of {}",
        start.parameters.count(),
        source.describe(),
        settings.steps,
        settings.batch_size
    );
    let bar = step_bar(settings.steps);
    let summary = clipkit::train::run(
        &folder,
        settings,
        start.parameters,
        &start.assets,
        source,
        Arc::new(start.preparation),
        |event| match event {
            Progress::Resumed(step) => {
                bar.set_position(step as u64);
                bar.suspend(|| eprintln!("resuming from the checkpoint at step {step}"));
            }
            Progress::Step(m) => {
                bar.set_position(m.step as u64);
                bar.set_message(format!(
                    "loss {:.3} acc {:.2} lr {:.1e} {:.0} pairs/s",
                    m.loss, m.accuracy, m.lr, m.samples_per_s
                ));
            }
            Progress::Checkpoint(_) => {}
            Progress::Skipped(problem) => bar.suspend(|| eprintln!("skipped {problem}")),
        },
    )?;
    bar.finish_and_clear();
    let metrics: Vec<MetricsLine> = read_metrics_file(&folder.metrics())?;
    let curves = out.join("curves.png");
    write_training_curves(&metrics, &curves)?;
    eprintln!("curves drawn in {}", curves.display());
    Ok(summary)
}

fn step_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template(
        "step {pos}/{len} {wide_bar} [{elapsed_precise}, eta {eta}] {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// What to train on.
enum Data {
    /// A user's pairs (captions file or WebDataset shards).
    Pairs(Arc<dyn PairSource>),
    /// The shapes world, a fresh sample for every position of every batch.
    Shapes(ShapesWorld),
}

/// The given captions file or shards, else the shapes world.
fn open_data(data: &DataArgs) -> anyhow::Result<Data> {
    if let Some(file) = &data.captions {
        return Ok(Data::Pairs(Arc::new(CaptionsFile::open(file)?)));
    }
    if !data.webdataset.is_empty() {
        return Ok(Data::Pairs(Arc::new(WebDataset::open(&data.webdataset)?)));
    }
    Ok(Data::Shapes(ShapesWorld::new(shapes_config(data))?))
}

fn shapes_config(data: &DataArgs) -> ShapesConfig {
    ShapesConfig {
        seed: data.shapes_seed,
        family: usize::from(data.shapes_family),
        one_group: data.shapes_one_group,
        attribute: data.shapes_attribute,
        swap: data.shapes_swap,
        colour_spread: data.shapes_colour_spread,
        split: Split::Train,
        ..ShapesConfig::default()
    }
}

/// Most captions read from a user's data set to fit a new tokenizer.
const TOKENIZER_CORPUS: usize = 20_000;

fn starting_point(model: &ModelChoice, data: &Data, seed: u64) -> anyhow::Result<Start> {
    if let Some(dir) = &model.init_from {
        return Start::fine_tune(dir)
            .with_context(|| format!("cannot fine-tune the model in {}", dir.display()));
    }
    let config = match &model.config {
        Some(path) => ClipConfig::from_file(path)?,
        None => preset(&model.preset).with_context(|| {
            format!(
                "unknown preset {:?}; choose one of {}",
                model.preset,
                clipkit::train::PRESET_NAMES.join(", ")
            )
        })?,
    };
    let captions = corpus(data);
    Ok(Start::scratch(config, &captions, seed)?)
}

/// Captions to fit a new tokenizer on: every phrasing of a few thousand shapes scenes, or the
/// captions of up to [`TOKENIZER_CORPUS`] samples of the user's data.
fn corpus(data: &Data) -> Vec<String> {
    match data {
        // Scenes only: their captions need no rendering. The attribute phrasings are
        // fitted only when the run trains on them, so other runs keep their vocabulary.
        Data::Shapes(world) => (0..4000)
            .flat_map(|i| {
                let scene = world.scene(i);
                let attributes: Vec<String> = if world.config().attribute > 0.0 {
                    scene
                        .groups()
                        .iter()
                        .flat_map(|g| attribute_captions(&scene, g))
                        .collect()
                } else {
                    Vec::new()
                };
                captions(&scene).into_iter().chain(attributes)
            })
            .collect(),
        Data::Pairs(source) => (0..source.len().min(TOKENIZER_CORPUS))
            .filter_map(|i| source.get(i).ok().map(|pair| pair.caption))
            .collect(),
    }
}
