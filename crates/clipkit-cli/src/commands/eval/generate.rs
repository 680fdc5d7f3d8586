//! `clipkit eval generate`: generated images judged against their prompts; the measures live
//! in [`clipkit::eval::generated`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::eval::generated::{self, GeneratedReport};

use super::generate_report;
use crate::commands::{load_model, ModelArg};
use crate::progress;

/// Arguments of `clipkit eval generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Prompt file, JSON Lines: {"prompt", "category"} per line, plus "objects": [{"colour",
    /// "shape", "count", "position"}] for shapes-world prompts (`clipkit data prompts`
    /// writes the shapes-world set).
    #[arg(long, value_name = "FILE")]
    prompts: PathBuf,
    /// Folder of the generated images, named by prompt index (0.png or 000.png for the
    /// first line).
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// The model CLIPScore is computed with.
    #[command(flatten)]
    model: ModelArg,
    /// Judge CLIP for colour, shape and binding: a model trained with other seeds, never
    /// the one that guided the generator. Without it only CLIPScore and the pixel checks
    /// are reported.
    #[arg(long, value_name = "DIR")]
    judge: Option<PathBuf>,
    /// Write DIR/report.html: the table and a contact sheet of every category.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Images or texts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON: {"categories": [{"category", "prompts", "clipscore", "colour", "count",
    /// "position", "judge_colour", "shape", "binding"}], "results": [one per prompt]};
    /// a measure not asked of any prompt is null.
    #[arg(long)]
    json: bool,
}

/// Runs `clipkit eval generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let prompts = generated::read_prompts(&args.prompts)?;
    let images = generated::image_files(&args.images, prompts.len())?;
    let model_dir = args.model.dir()?;
    if let Some(judge) = &args.judge {
        if same_folder(judge, &model_dir) {
            eprintln!(
                "warning: the judge {} is also the CLIPScore model; a judge must be a model \
                 that did not guide the generator",
                judge.display()
            );
        }
    }
    let scorer = load_model(&model_dir, args.batch_size, clipkit::model::Precision::Fp32)?;
    let judge = match &args.judge {
        Some(dir) => Some(load_model(
            dir,
            args.batch_size,
            clipkit::model::Precision::Fp32,
        )?),
        None => None,
    };
    let bar = progress::bar(prompts.len(), "judging");
    let report = generated::evaluate_generated(
        &prompts,
        &images,
        Some(&scorer),
        judge.as_ref(),
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    if let Some(dir) = &args.report {
        let path = generate_report::write(dir, &report, judge.is_some())
            .with_context(|| format!("cannot write the report into {}", dir.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn print_table(report: &GeneratedReport) {
    let Some(first) = report.categories.first() else {
        return;
    };
    print!("{:<16} {:>7}", "category", "prompts");
    for (name, _) in first.measures() {
        print!(" {name:>12}");
    }
    println!();
    for row in &report.categories {
        print!("{:<16} {:>7}", row.category, row.prompts);
        for (name, value) in row.measures() {
            print!(" {:>12}", generate_report::cell(name, value));
        }
        println!();
    }
}
