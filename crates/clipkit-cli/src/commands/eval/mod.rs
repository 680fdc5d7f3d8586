//! `clipkit eval`: zero-shot accuracy, retrieval recall, linear probes and generated images.

pub mod generate;
pub mod generate_report;
pub mod linear_probe;
pub mod retrieval;
pub mod zeroshot;

use clipkit::config::ClipConfig;
use clipkit::eval::ShapesEvalConfig;
use clipkit::Clip;

/// What `clipkit eval` measures.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Zero-shot accuracy on an ImageFolder (class-named sub-folders) or the shapes world.
    Zeroshot(zeroshot::Args),
    /// Image→text and text→image recall@1/5/10 on a captions file, shards or the shapes world.
    Retrieval(retrieval::Args),
    /// Logistic regression on frozen image embeddings, beside zero-shot.
    LinearProbe(linear_probe::Args),
    /// Generated images judged against their prompts: CLIPScore per category, pixel checks
    /// of colour, count and position, and a judge CLIP's shape and attribute binding.
    Generate(generate::Args),
}

/// Runs `clipkit eval`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Zeroshot(args) => zeroshot::run(args),
        Command::Retrieval(args) => retrieval::run(args),
        Command::LinearProbe(args) => linear_probe::run(args),
        Command::Generate(args) => generate::run(args),
    }
}

/// Options of the shapes-world evaluation streams.
#[derive(clap::Args, Debug, Clone)]
pub struct ShapesArgs {
    /// Shapes images per question.
    #[arg(long, value_name = "N", default_value_t = 500, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    count: usize,
    /// Seed of the evaluation streams.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Side of the generated shapes images in pixels (default: the model's input size).
    #[arg(long, value_name = "PIXELS")]
    size: Option<u32>,
}

impl ShapesArgs {
    /// The library's configuration for evaluating `clip`.
    pub fn config(&self, clip: &Clip) -> ShapesEvalConfig {
        ShapesEvalConfig {
            count: self.count,
            seed: self.seed,
            image_size: self.size.unwrap_or_else(|| clip_image_size(clip)),
        }
    }
}

/// The side of a model's input images, where shapes are drawn unless told otherwise.
pub fn model_image_size(config: &ClipConfig) -> u32 {
    u32::try_from(config.vision_config.image_size).unwrap_or(u32::MAX)
}

/// The side of a loaded model's input images (either image tower).
pub fn clip_image_size(clip: &Clip) -> u32 {
    u32::try_from(clip.image_size()).unwrap_or(u32::MAX)
}

/// A percentage with one decimal, for tables.
pub fn percent(fraction: f64) -> String {
    format!("{:5.1}%", 100.0 * fraction)
}
