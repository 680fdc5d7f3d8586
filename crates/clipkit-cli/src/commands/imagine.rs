//! `clipkit imagine`: text to image with a trained generator, samples reranked by CLIP.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clipkit::imagine::{
    check_output_dir, clip_similarities, write_ranked, GenerationConfig, Generator, RankedOutput,
};

/// Arguments of `clipkit imagine`.
#[derive(clap::Args)]
pub struct Args {
    /// What to draw ("two red circles on the left").
    pub prompt: String,
    /// Generator folder (from `clipkit train imagine`). Default: the installed generator
    /// under $CLIPKIT_HOME, else the user data directory.
    #[arg(long, value_name = "DIR")]
    pub generator: Option<PathBuf>,
    /// The VQ model folder to decode with (default: the one the generator names; it must
    /// hold the same weights).
    #[arg(long, value_name = "DIR")]
    pub vq: Option<PathBuf>,
    /// Output folder: 000.png (best) … and scores.json; replaced when it exists.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Images to sample; all are kept, best first.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Seed of the draws (same seed and --threads: same images).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature (positive; lower is greedier; default: the generator's
    /// `generation_config.json`, else 1).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep only the K most likely codes at each position (0: all codes; default: the
    /// generator's `generation_config.json`, else all).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Classifier-free guidance scale (1: none; default: the generator's
    /// `generation_config.json`, else 1).
    #[arg(long)]
    pub guidance: Option<f64>,
    #[command(flatten)]
    pub rerank: RerankArg,
}

/// The CLIP model that ranks the samples.
#[derive(clap::Args)]
pub struct RerankArg {
    /// CLIP model folder or Hub name that ranks the samples (default: the default model).
    #[arg(long = "rerank-model", value_name = "DIR|ORG/NAME")]
    pub rerank_model: Option<String>,
}

/// Runs `clipkit imagine`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let generator_dir = args
        .generator
        .clone()
        .unwrap_or_else(clipkit::paths::default_generator_dir);
    let recommended = GenerationConfig::read(&generator_dir)?;
    let generation = GenerationConfig {
        temperature: args.temperature.unwrap_or(recommended.temperature),
        top_k: args.top_k.map_or(recommended.top_k, super::codes_top_k),
        guidance: args.guidance.unwrap_or(recommended.guidance),
    };
    let options = generation.options(args.samples, args.seed);
    options.validate()?;
    if args.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty; describe the image to draw");
    }
    check_output_dir(&args.out)?;
    if !generator_dir.is_dir() {
        anyhow::bail!(
            "no generator at {}; run `clipkit quickstart --imagine` to train and install \
             one, or train one with `clipkit train imagine --vq DIR --out DIR` and pass \
             --generator DIR/model",
            generator_dir.display()
        );
    }
    let generator = Generator::load(&generator_dir, args.vq.as_deref())
        .with_context(|| format!("cannot load the generator {}", generator_dir.display()))?;
    let unknown = generator.unknown_words(&args.prompt)?;
    if !unknown.is_empty() {
        eprintln!(
            "warning: the generator's tokenizer does not know {}; it never saw them in \
             training, so the images will not follow them",
            unknown
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rerank_dir = match &args.rerank.rerank_model {
        Some(spec) => super::models::resolve(spec)?,
        None => super::ModelArg::default_dir()?,
    };
    let clip = super::load_model(
        &rerank_dir,
        clipkit::DEFAULT_BATCH_SIZE,
        clipkit::model::Precision::Fp32,
    )?;
    let started = Instant::now();
    let images = generator.generate(&args.prompt, &options)?;
    let sampled = started.elapsed().as_secs_f64();
    let scores = clip_similarities(&clip, &args.prompt, &images)?;
    let output = write_ranked(
        &args.out,
        &images,
        &scores,
        RankedOutput {
            prompt: args.prompt.clone(),
            generator: generator_dir,
            rerank_model: rerank_dir,
            seed: args.seed,
            temperature: generation.temperature,
            top_k: generation.top_k,
            guidance: generation.guidance,
            images: Vec::new(),
        },
    )?;
    eprintln!(
        "{} images in {:.2} s ({:.2} images/s); best first in {}",
        images.len(),
        sampled,
        images.len() as f64 / sampled,
        args.out.display()
    );
    for ranked in &output.images {
        println!(
            "{}\t{:.4}\tsample {}",
            ranked.file, ranked.score, ranked.sample
        );
    }
    Ok(())
}
