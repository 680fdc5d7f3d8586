//! `clipkit data shapes`: the shapes world as PNG files and a `captions.jsonl`.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::data::shapes::{write_shapes_folder, Layout, ShapesConfig, ShapesWorld, Split};

use crate::progress;

/// Arguments of `clipkit data shapes`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder to write into (created if missing): `images/000000.png`… (the sample index,
    /// six digits or as many as the largest index needs) and `captions.jsonl`, one line per
    /// image: {"path", "caption", "objects": [{"shape", "colour", "size", "position"}]}.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many samples (indices 0..N).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    count: usize,
    /// Seed of the random stream.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Image side in pixels (16 to 4096).
    #[arg(long, value_name = "PIXELS", default_value_t = 64)]
    size: u32,
    /// Which split: train (no held-out colour–shape combination), test, or unseen (only
    /// held-out combinations).
    #[arg(long, default_value = "train", value_parser = clap::builder::PossibleValuesParser::new(["train", "test", "unseen"]))]
    split: String,
    /// Which scenes: mixed (one to three groups), single-group, single-object.
    #[arg(long, default_value = "mixed", value_parser = clap::builder::PossibleValuesParser::new(["mixed", "single-group", "single-object"]))]
    layout: String,
}

/// Runs `clipkit data shapes`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let world = ShapesWorld::new(ShapesConfig {
        image_size: args.size,
        seed: args.seed,
        split: Split::from_name(&args.split).context("unknown split")?,
        layout: Layout::from_name(&args.layout).context("unknown layout")?,
        ..ShapesConfig::default()
    })?;
    let bar = progress::bar(args.count, "generating");
    let captions = write_shapes_folder(&world, &args.out, args.count as u64, |done| {
        bar.set_position(done)
    })?;
    bar.finish_and_clear();
    eprintln!("wrote {} images and {}", args.count, captions.display());
    Ok(())
}
