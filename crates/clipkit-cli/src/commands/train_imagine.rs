//! `clipkit train imagine`: a DALL·E-style text-to-image transformer over a VQ model's codes
//! of shapes-world images, resumable, written as a generator folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::model::imagine::{ImagineConfig, ImagineSizes};
use clipkit::model::vq::VqModel;
use clipkit::model_folder::{read_tokenizer, TOKENIZER_FILE};
use clipkit::train::imagine::{
    run_imagine, ImagineInputs, ImagineProgress, ImagineRunSettings, ImagineRunSummary,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `clipkit train imagine`.
#[derive(clap::Args)]
pub struct Args {
    /// The VQ model folder (diffusers VQModel, from `clipkit train vq`) whose codes the
    /// transformer learns to predict.
    #[arg(long, value_name = "DIR")]
    pub vq: PathBuf,
    /// Run folder: code pool, checkpoints, metrics and the final generator (`DIR/model`).
    /// The same command again resumes.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A CLIP model folder whose tokenizer (`tokenizer.json`) reads the captions.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: PathBuf,
    /// Caption tokens per stream (start and end included; longer captions are cut).
    #[arg(long, default_value_t = 24, value_parser = super::positive_count)]
    pub text_length: usize,
    /// Width of the transformer.
    #[arg(long, default_value_t = 128, value_parser = super::positive_count)]
    pub hidden: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4, value_parser = super::positive_count)]
    pub layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4, value_parser = super::positive_count)]
    pub heads: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000, value_parser = super::positive_count)]
    pub steps: usize,
    /// Caption–image pairs per batch.
    #[arg(long, default_value_t = 32, value_parser = super::positive_count)]
    pub batch_size: usize,
    /// Training images, encoded once by the VQ model.
    #[arg(long, default_value_t = 4096, value_parser = super::positive_count)]
    pub images: usize,
    /// Side of the shapes-world images.
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = super::positive_number)]
    pub lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// AdamW weight decay of the linear maps.
    #[arg(long, default_value_t = 0.01, value_parser = super::non_negative)]
    pub weight_decay: f64,
    /// Weight of the caption tokens' loss (DALL·E weighs text 1 : 7 against image).
    #[arg(long, default_value_t = 0.125, value_parser = super::non_negative)]
    pub text_weight: f64,
    /// Chance of training on the empty caption instead (for classifier-free guidance).
    #[arg(long, default_value_t = 0.1, value_parser = super::unit_interval)]
    pub drop_caption: f64,
    /// Seed of the weights, the images and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100, value_parser = super::positive_count)]
    pub checkpoint_every: usize,
}

/// Runs `clipkit train imagine`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let vq = VqModel::load(&args.vq)
        .with_context(|| format!("cannot load the VQ model {}", args.vq.display()))?;
    let tokenizer_json = std::fs::read(args.tokenizer.join(TOKENIZER_FILE)).with_context(|| {
        format!(
            "{}: the caption tokenizer must be a tokenizer.json",
            args.tokenizer.display()
        )
    })?;
    let tokenizer = read_tokenizer(&args.tokenizer, args.text_length)?;
    let sizes = ImagineSizes {
        text_length: args.text_length,
        hidden_size: args.hidden,
        num_layers: args.layers,
        num_heads: args.heads,
    };
    let config = ImagineConfig::over(&sizes, &vq, &args.vq, &tokenizer, args.image_size)?;
    let settings = ImagineRunSettings {
        config,
        steps: args.steps,
        batch_size: args.batch_size,
        images: args.images,
        image_size: args.image_size,
        learning_rate: args.lr,
        warmup_steps: args.warmup.min(args.steps.saturating_sub(1)),
        weight_decay: args.weight_decay,
        text_weight: args.text_weight,
        drop_caption: args.drop_caption,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };
    let inputs = ImagineInputs {
        vq: &vq,
        tokenizer: &tokenizer,
        tokenizer_json: &tokenizer_json,
    };
    let summary = train_with_progress(&args.out, &settings, &inputs)?;
    eprintln!(
        "generator saved in {} ({} steps trained now); try `clipkit imagine \"a red circle\" \
         --generator {} --out DIR`",
        summary.model.display(),
        summary.steps_trained,
        summary.model.display()
    );
    Ok(())
}

/// Trains (or resumes) a generator in `out` with a progress bar showing the losses.
pub fn train_with_progress(
    out: &Path,
    settings: &ImagineRunSettings,
    inputs: &ImagineInputs,
) -> anyhow::Result<ImagineRunSummary> {
    let bar = ProgressBar::new(settings.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "generator step {pos}/{len} {wide_bar} [{elapsed_precise}, eta {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = run_imagine(out, settings, inputs, |event| match event {
        ImagineProgress::Encoding(done, total) => {
            bar.set_message(format!("encoding the image pool: {done}/{total}"));
        }
        ImagineProgress::Resumed(step) => {
            bar.set_position(step as u64);
            bar.suspend(|| eprintln!("resuming from the checkpoint at step {step}"));
        }
        ImagineProgress::Step(m) => {
            bar.set_position(m.step as u64);
            bar.set_message(format!(
                "image {:.3} text {:.3} nats, {:.1} steps/s",
                m.image_loss, m.text_loss, m.steps_per_s
            ));
        }
        ImagineProgress::Checkpoint(_) => {}
    })?;
    bar.finish_and_clear();
    Ok(summary)
}
