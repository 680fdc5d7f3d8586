//! `clipkit eval linear-probe`: logistic regression on frozen embeddings, beside zero-shot.

use std::path::PathBuf;

use clipkit::eval::{self, ImageFolder, ProbeConfig};

use super::{percent, ShapesArgs};
use crate::commands::templates::TemplateArgs;
use crate::commands::{load_model, ModelArg};
use crate::progress;

/// Arguments of `clipkit eval linear-probe`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("data").required(true).args(["images", "shapes"])))]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// ImageFolder: every 4th image of each class (in name order) is a test image, the
    /// rest train the probe.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// The shapes attributes: probes trained on Train scenes, tested on Test scenes.
    #[arg(long)]
    shapes: bool,
    #[command(flatten)]
    shapes_args: ShapesArgs,
    #[command(flatten)]
    templates: TemplateArgs,
    /// L2 regularisation strength.
    #[arg(long, default_value_t = ProbeConfig::default().l2)]
    l2: f64,
    /// Full-batch gradient steps.
    #[arg(long, default_value_t = ProbeConfig::default().iterations)]
    iterations: usize,
    /// Images or prompts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `clipkit eval linear-probe`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.l2 >= 0.0 && args.l2.is_finite()) {
        anyhow::bail!("--l2 must be a finite number >= 0, not {}", args.l2);
    }
    let probe = ProbeConfig {
        l2: args.l2,
        iterations: args.iterations,
    };
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        clipkit::model::Precision::Fp32,
    )?;
    if args.shapes {
        let config = args.shapes_args.config(&clip);
        let bar = progress::bar(4 * config.count, "embedding");
        let report = eval::probe_shapes(&clip, &config, &probe, |done, _| {
            bar.set_position(done as u64)
        })?;
        bar.finish_and_clear();
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "shapes attributes, {} train and {} test images each",
                config.count, config.count
            );
            println!("  attribute   linear probe  zero-shot");
            let (p, z) = (report.linear_probe, report.zero_shot);
            for (name, a, b) in [
                ("colour", p.colour, z.colour),
                ("shape", p.shape, z.shape),
                ("count", p.count, z.count),
                ("position", p.position, z.position),
            ] {
                println!("  {name:<10}  {}        {}", percent(a), percent(b));
            }
        }
        return Ok(());
    }
    let Some(root) = &args.images else {
        anyhow::bail!("give --images DIR or --shapes");
    };
    let folder = ImageFolder::open(root)?;
    let bar = progress::bar(folder.items().len(), "embedding");
    let report = eval::probe_image_folder(
        &clip,
        &folder,
        &args.templates.templates(),
        &probe,
        |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} train / {} test images: linear probe {}  zero-shot {}",
            report.train,
            report.test,
            percent(report.linear_probe),
            percent(report.zero_shot)
        );
    }
    Ok(())
}
