//! `clipkit data shapes`: the shapes world as PNG files and a `captions.jsonl`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::data::shapes::{Layout, Sample, ShapesConfig, ShapesWorld, Split};
use clipkit::search::quality::Captioned;
use rayon::prelude::*;

use crate::progress;

/// Arguments of `clipkit data shapes`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder to write into (created if missing): `images/NNNNNNNN.png` and `captions.jsonl`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many samples (indices 0..N).
    #[arg(long, value_name = "N")]
    count: u64,
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

/// Samples rendered and written per round; lines are appended in index order after each.
const CHUNK: u64 = 1024;

/// Runs `clipkit data shapes`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let world = ShapesWorld::new(ShapesConfig {
        image_size: args.size,
        seed: args.seed,
        split: Split::from_name(&args.split).context("unknown split")?,
        layout: Layout::from_name(&args.layout).context("unknown layout")?,
        ..ShapesConfig::default()
    })?;
    let images = args.out.join("images");
    std::fs::create_dir_all(&images)
        .with_context(|| format!("{}: cannot create folder", images.display()))?;
    let captions_path = args.out.join("captions.jsonl");
    let file = File::create(&captions_path)
        .with_context(|| format!("{}: cannot create", captions_path.display()))?;
    let mut captions = BufWriter::new(file);
    let digits = args.count.saturating_sub(1).max(1).to_string().len().max(6);

    let bar = progress::bar(
        usize::try_from(args.count).unwrap_or(usize::MAX),
        "generating",
    );
    let mut start = 0;
    while start < args.count {
        let end = (start + CHUNK).min(args.count);
        let lines: Vec<String> = (start..end)
            .into_par_iter()
            .map(|index| write_sample(&args.out, index, digits, &world.sample(index)))
            .collect::<anyhow::Result<_>>()?;
        for line in lines {
            writeln!(captions, "{line}")
                .with_context(|| format!("{}: cannot write", captions_path.display()))?;
        }
        bar.set_position(end);
        start = end;
    }
    captions
        .flush()
        .with_context(|| format!("{}: cannot write", captions_path.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} images and {}",
        args.count,
        captions_path.display()
    );
    Ok(())
}

/// Writes one PNG and returns its JSON line.
fn write_sample(out: &Path, index: u64, digits: usize, sample: &Sample) -> anyhow::Result<String> {
    let relative = format!("images/{index:0digits$}.png");
    let path = out.join(&relative);
    sample
        .image
        .save_with_format(&path, image::ImageFormat::Png)
        .with_context(|| format!("{}: cannot write image", path.display()))?;
    let line = Captioned::of_sample(relative, sample);
    Ok(serde_json::to_string(&line)?)
}
