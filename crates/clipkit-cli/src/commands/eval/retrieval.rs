//! `clipkit eval retrieval`: recall@1/5/10 in both directions.

use std::path::PathBuf;

use clipkit::data::shapes::{Layout, ShapesConfig, Split};
use clipkit::data::{CaptionsFile, PairSource, ShapesSource, WebDataset};
use clipkit::eval::retrieval::evaluate_source;

use super::{percent, ShapesArgs};
use crate::commands::{load_model, ModelArg};
use crate::progress;

/// Arguments of `clipkit eval retrieval`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("data").required(true).args(["captions", "shards", "shapes"])))]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Captions file: JSON Lines `{"path", "caption"}` or CSV with `path,caption`; image
    /// paths relative to the file.
    #[arg(long, value_name = "FILE")]
    captions: Option<PathBuf>,
    /// WebDataset shards (.tar files or folders of them; repeatable).
    #[arg(long = "shards", value_name = "PATH", num_args = 1..)]
    shards: Vec<PathBuf>,
    /// Mixed scenes of the shapes world's Test split, with their sampled captions.
    #[arg(long)]
    shapes: bool,
    #[command(flatten)]
    shapes_args: ShapesArgs,
    /// Images or texts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `clipkit eval retrieval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        clipkit::model::Precision::Fp32,
    )?;
    let source: Box<dyn PairSource> = if let Some(file) = &args.captions {
        Box::new(CaptionsFile::open(file)?)
    } else if !args.shards.is_empty() {
        Box::new(WebDataset::open(&args.shards)?)
    } else {
        let c = args.shapes_args.config(&clip);
        let config = ShapesConfig {
            image_size: c.image_size,
            seed: c.seed,
            split: Split::Test,
            layout: Layout::Mixed,
            ..ShapesConfig::default()
        };
        Box::new(ShapesSource::new(config, c.count)?)
    };
    let bar = progress::bar(source.len(), "embedding");
    let report = evaluate_source(&clip, source.as_ref(), |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if report.skipped > 0 {
        eprintln!(
            "warning: skipped {} bad samples (each named above)",
            report.skipped
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{} ({} pairs)", source.describe(), report.count);
        println!("                 R@1     R@5     R@10");
        for (name, r) in [
            ("image → text", report.image_to_text),
            ("text → image", report.text_to_image),
        ] {
            println!(
                "  {name}  {}  {}  {}",
                percent(r.r1),
                percent(r.r5),
                percent(r.r10)
            );
        }
    }
    Ok(())
}
