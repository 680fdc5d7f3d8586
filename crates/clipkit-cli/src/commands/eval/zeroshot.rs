//! `clipkit eval zeroshot`: accuracy on an ImageFolder or the held-out shapes streams.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::eval::{self, ImageFolder, ZeroShotReport};
use serde::Serialize;

use super::{percent, ShapesArgs};
use crate::commands::templates::TemplateArgs;
use crate::commands::{load_model, ModelArg, PrecisionArg};
use crate::progress;

/// Arguments of `clipkit eval zeroshot`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("data").required(true).args(["images", "shapes"])))]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    /// ImageFolder: one sub-folder of images per class, named after the class.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// The shapes world's held-out streams: colour, shape, count, position, unseen
    /// colour–shape pairs and full captions.
    #[arg(long)]
    shapes: bool,
    #[command(flatten)]
    shapes_args: ShapesArgs,
    #[command(flatten)]
    templates: TemplateArgs,
    /// Write the confusion matrix as a PNG (with --images).
    #[arg(long, value_name = "PNG", requires = "images")]
    confusion: Option<PathBuf>,
    /// Images or prompts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct FolderOutput<'a> {
    top1: f64,
    top5: f64,
    count: usize,
    classes: &'a [eval::zeroshot::ClassResult],
}

/// Runs `clipkit eval zeroshot`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        args.precision.precision,
    )?;
    if args.shapes {
        let config = args.shapes_args.config(&clip);
        let bar = progress::bar(4 * config.count, "evaluating");
        let report =
            eval::evaluate_shapes(&clip, &config, |done, _| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "shapes world, {} images per question (seed {})",
                config.count, config.seed
            );
            for (name, acc) in report.rows() {
                println!("  {name:<20} {}", percent(acc));
            }
            println!("  unseen combinations pair by pair:");
            for (pair, fraction) in report.unseen_parts.pairs.named() {
                let shown = fraction.map_or_else(|| "no images".to_owned(), percent);
                println!("    {pair:<18} {shown}");
            }
        }
        return Ok(());
    }
    let Some(root) = &args.images else {
        anyhow::bail!("give --images DIR or --shapes");
    };
    let folder = ImageFolder::open(root)?;
    let templates = args.templates.templates();
    let bar = progress::bar(folder.items().len(), "embedding");
    let report = eval::zeroshot::evaluate_image_folder(&clip, &folder, &templates, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if let Some(png) = &args.confusion {
        eval::write_confusion_png(&report.confusion, png)
            .with_context(|| format!("{}: cannot write the confusion matrix", png.display()))?;
    }
    if args.json {
        let out = FolderOutput {
            top1: report.top1,
            top5: report.top5,
            count: report.count,
            classes: &report.classes,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(report: &ZeroShotReport) {
    println!(
        "{} images: top-1 {}  top-5 {}",
        report.count,
        percent(report.top1),
        percent(report.top5)
    );
    for class in &report.classes {
        println!(
            "  {}  {:>6}  {}",
            percent(class.accuracy),
            class.count,
            class.label
        );
    }
}
