//! `clipkit quickstart`: generate the shapes world, train a small CLIP on it in about ten
//! minutes, evaluate it on held-out data, make it the default model, and write a report.
//! The recipe (model, data, settings, targets) is the library's
//! [`clipkit::train::QuickstartRecipe`]; this command parses flags, installs and prints.
//! With `--imagine` it runs the text-to-image quickstart instead ([`super::quickstart_imagine`]).

use std::path::PathBuf;

use anyhow::Context;
use clipkit::eval::shapes::ShapesReport;
use clipkit::model_folder::{write_model_folder, ModelFolder};
use clipkit::train::{check_targets, QuickstartRecipe, QUICKSTART_PRESET, QUICKSTART_TARGETS};
use clipkit::Clip;
use serde::Serialize;

use super::train::{train, DataArgs, ModelChoice};
use crate::report;

/// Arguments of `clipkit quickstart`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder for the run, its report and metrics (default: `quickstart` in the clipkit data
    /// directory). Running the command again resumes an interrupted run.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Optimiser steps (the default takes about ten minutes on two quiet cores).
    #[arg(long, default_value_t = QuickstartRecipe::default().steps, conflicts_with = "imagine", allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    steps: usize,
    /// Pairs per batch (default 126, a multiple of six keeps every family of variants in one
    /// batch; with --imagine default 32, for both trainers).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: Option<usize>,
    /// Held-out images per evaluation question.
    #[arg(long, default_value_t = QuickstartRecipe::default().eval_count, conflicts_with = "imagine", allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    eval_count: usize,
    /// Train the text-to-image generator instead: a VQ autoencoder and a transformer over
    /// its codes, judged on the shapes-world prompt set and installed as the default
    /// generator of `clipkit imagine` (needs the default model or --rerank-model).
    #[arg(long)]
    imagine: bool,
    #[command(flatten)]
    imagine_args: super::quickstart_imagine::Args,
    /// Leave the default model as it is (only write the run folder).
    #[arg(long)]
    no_install: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    model: String,
    report: String,
    results: &'a ShapesReport,
}

/// Runs `clipkit quickstart`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.imagine {
        return super::quickstart_imagine::run(
            args.imagine_args,
            args.out,
            args.batch_size,
            args.no_install,
            args.json,
        );
    }
    let out = args
        .out
        .unwrap_or_else(|| clipkit::paths::data_dir().join("quickstart"));
    let recipe = QuickstartRecipe {
        steps: args.steps,
        batch_size: args
            .batch_size
            .unwrap_or(QuickstartRecipe::default().batch_size),
        eval_count: args.eval_count,
    };
    let model = ModelChoice {
        preset: QUICKSTART_PRESET.into(),
        config: None,
        init_from: None,
    };
    let shapes = recipe.shapes();
    let data = DataArgs {
        captions: None,
        webdataset: Vec::new(),
        shapes_seed: shapes.seed,
        shapes_family: u8::try_from(shapes.family).context("shapes family out of range")?,
        shapes_one_group: shapes.one_group,
        shapes_attribute: shapes.attribute,
        shapes_swap: shapes.swap,
        shapes_colour_spread: shapes.colour_spread,
    };
    let summary = train(&out, &model, &data, &recipe.settings())?;

    let clip = Clip::load(&summary.model)?;
    let bar = crate::progress::bar(4 * args.eval_count, "evaluating on held-out shapes");
    let results = recipe.evaluate(&clip, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let installed = if args.no_install {
        summary.model.clone()
    } else {
        let target = clipkit::paths::default_model_dir();
        let folder = ModelFolder::read(&summary.model)?;
        write_model_folder(&target, &folder)
            .with_context(|| format!("cannot install the model in {}", target.display()))?;
        target
    };
    let report_path = out.join("report.html");
    report::write_quickstart(
        &report_path,
        &clip,
        &out.join("curves.png"),
        &results,
        &QUICKSTART_TARGETS,
    )?;

    if args.json {
        let output = Output {
            model: installed.display().to_string(),
            report: report_path.display().to_string(),
            results: &results,
        };
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!("held-out shapes, zero-shot top-1 accuracy");
        for check in check_targets(&results) {
            let verdict = match (check.target, check.met()) {
                (Some(t), Some(true)) => format!("target {t:.2} met"),
                (Some(t), _) => format!("target {t:.2} missed"),
                (None, _) => String::new(),
            };
            println!("  {:<20} {:>6.3}  {verdict}", check.name, check.accuracy);
        }
        println!("model: {}", installed.display());
        println!("report: {}", report_path.display());
    }
    Ok(())
}
