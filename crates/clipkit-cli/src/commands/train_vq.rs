//! `clipkit train vq`: a VQ autoencoder on the shapes world, resumable, written as a
//! diffusers `VQModel` folder, then evaluated on held-out images.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::data::shapes::{ShapesConfig, ShapesWorld, Split};
use clipkit::model::vq::{VqConfig, VqModel};
use clipkit::train::read_metrics_file;
use clipkit::train::vq::{
    evaluate, images_tensor, run_vq, shapes_vq_config, write_vq_curves, PerceptualSettings,
    VqEvaluation, VqMetricsLine, VqProgress, VqRunSettings, VqRunSummary, SHAPES_OBJECT_WEIGHT,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `clipkit train vq`.
#[derive(clap::Args)]
pub struct Args {
    /// Run folder: checkpoints, metrics, curves, evaluation and the final model
    /// (`DIR/model`, a diffusers VQModel folder). The same command again resumes.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The architecture, as a diffusers VQModel `config.json` (default: the built-in
    /// shapes-world model: 32/64/64 channels, f = 4, 128 codes of width 16).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Optimiser steps.
    #[arg(long, default_value_t = 400, value_parser = super::positive_count)]
    pub steps: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 32, value_parser = super::positive_count)]
    pub batch_size: usize,
    /// Side of the shapes-world images (a multiple of the model's downscale factor).
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3, value_parser = super::positive_number)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Seed of the initial weights and of the training images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50, value_parser = super::positive_count)]
    pub checkpoint_every: usize,
    /// Steps between restarts of unused codes (0 disables).
    #[arg(long, default_value_t = 50)]
    pub restart_every: usize,
    /// Weight of object pixels (any pixel unlike the scene's background) in the
    /// reconstruction loss, background pixels weighing 1 (1: plain mean squared error).
    #[arg(long, default_value_t = SHAPES_OBJECT_WEIGHT as f32)]
    pub object_weight: f32,
    /// A CLIP (folder or Hub name) whose embeddings give the perceptual term: 1 − cosine
    /// between each reconstruction's embedding and its original's, beside the
    /// reconstruction loss (default: no perceptual term).
    #[arg(long, value_name = "DIR|ORG/NAME")]
    pub perceptual_model: Option<String>,
    /// Weight of the perceptual term (with --perceptual-model).
    #[arg(long, default_value_t = 0.5, requires = "perceptual_model")]
    pub perceptual_weight: f32,
    /// Held-out (test split) images for the PSNR and codebook evaluation.
    #[arg(long, default_value_t = 256, value_parser = super::positive_count)]
    pub eval_images: usize,
}

/// Runs `clipkit train vq`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            VqConfig::from_json(&text, path)?
        }
        None => shapes_vq_config(),
    };
    let settings = VqRunSettings {
        config,
        steps: args.steps,
        batch_size: args.batch_size,
        image_size: args.image_size,
        learning_rate: args.lr,
        warmup_steps: args.warmup.min(args.steps.saturating_sub(1)),
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        restart_every: args.restart_every,
        object_weight: args.object_weight,
        perceptual: args
            .perceptual_model
            .as_deref()
            .map(|spec| {
                anyhow::Ok(PerceptualSettings {
                    model: super::models::resolve(spec)?,
                    weight: args.perceptual_weight,
                })
            })
            .transpose()?,
    };
    let summary = train_with_progress(&args.out, &settings)?;
    let evaluation = finish_run(
        &args.out,
        &summary.model,
        args.image_size,
        args.seed,
        args.eval_images,
    )?;
    eprintln!(
        "model saved in {} ({} steps trained now); curves in {}",
        summary.model.display(),
        summary.steps_trained,
        args.out.join("curves.png").display()
    );
    println!("{}", serde_json::to_string_pretty(&evaluation)?);
    Ok(())
}

/// Trains (or resumes) a VQ model in `out` with a progress bar showing the losses.
pub fn train_with_progress(out: &Path, settings: &VqRunSettings) -> anyhow::Result<VqRunSummary> {
    let bar = ProgressBar::new(settings.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "VQ step {pos}/{len} {wide_bar} [{elapsed_precise}, eta {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = run_vq(out, settings, |event| match event {
        VqProgress::Resumed(step) => {
            bar.set_position(step as u64);
            bar.suspend(|| eprintln!("resuming from the checkpoint at step {step}"));
        }
        VqProgress::Step(m) => {
            bar.set_position(m.step as u64);
            let perceptual = m
                .perceptual
                .map(|d| format!(" clip {d:.4}"))
                .unwrap_or_default();
            bar.set_message(format!(
                "mse {:.4} vq {:.4}{perceptual} perplexity {:.1} {:.0} images/s",
                m.reconstruction, m.vq, m.perplexity, m.samples_per_s
            ));
        }
        VqProgress::Checkpoint(_) => {}
    })?;
    bar.finish_and_clear();
    Ok(summary)
}

/// After a VQ run in `out`: writes `curves.png`, evaluates the model in `model_dir` on
/// `eval_images` held-out `image_size`-pixel images of seed `seed` (written to `eval.json`)
/// and writes `check.safetensors` (two latents and their decoding, for the diffusers check).
pub fn finish_run(
    out: &Path,
    model_dir: &Path,
    image_size: u32,
    seed: u64,
    eval_images: usize,
) -> anyhow::Result<VqEvaluation> {
    let metrics: Vec<VqMetricsLine> = read_metrics_file(&out.join("metrics.jsonl"))?;
    write_vq_curves(&metrics, &out.join("curves.png"))?;
    let model = VqModel::load(model_dir)
        .with_context(|| format!("cannot reload {}", model_dir.display()))?;
    let world = ShapesWorld::new(ShapesConfig {
        image_size,
        seed,
        split: Split::Test,
        ..ShapesConfig::default()
    })?;
    let held_out: Vec<_> = (0..eval_images as u64)
        .map(|i| world.sample(i).image)
        .collect();
    let images = images_tensor(&held_out)?;
    let evaluation = evaluate(&model, &images, 64)?;
    let report = serde_json::to_string_pretty(&evaluation)?;
    std::fs::write(out.join("eval.json"), &report)
        .with_context(|| format!("{}: cannot write eval.json", out.display()))?;
    let latent = model.encode(&images.narrow(0, 0, 2.min(eval_images))?)?;
    let decoded = model.decode(&latent)?;
    candle_core::safetensors::save(
        &std::collections::HashMap::from([
            ("latent".to_string(), latent),
            ("decoded".to_string(), decoded),
        ]),
        out.join("check.safetensors"),
    )?;
    Ok(evaluation)
}
