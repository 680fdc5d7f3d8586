//! `clipkit quickstart`: generate the shapes world, train a small CLIP on it in about ten
//! minutes, evaluate it on held-out data, make it the default model, and write a report.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::eval::shapes::{evaluate_shapes, ShapesEvalConfig, ShapesReport};
use clipkit::model_folder::{write_model_folder, ModelFolder};
use clipkit::Clip;
use serde::Serialize;

use super::train::{train, DataArgs, ModelChoice, SettingsArgs};
use crate::report;

/// The targets the quickstart model is expected to reach on the held-out split.
const TARGETS: [(&str, f64); 4] = [
    ("colour", 0.95),
    ("shape", 0.90),
    ("unseen_combinations", 0.80),
    ("count", 0.70),
];

/// Arguments of `clipkit quickstart`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder for the run, its report and metrics (default: `quickstart` in the clipkit data
    /// directory). Running the command again resumes an interrupted run.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Optimiser steps (the default takes about ten minutes on two quiet cores).
    #[arg(long, default_value_t = 4500)]
    steps: usize,
    /// Pairs per batch (a multiple of six keeps every family of variants in one batch).
    #[arg(long, default_value_t = 126, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Held-out images per evaluation question.
    #[arg(long, default_value_t = 500)]
    eval_count: usize,
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
    let out = args
        .out
        .unwrap_or_else(|| clipkit::paths::data_dir().join("quickstart"));
    let settings = SettingsArgs {
        steps: args.steps,
        batch_size: args.batch_size,
        lr: 2e-3,
        warmup: 100,
        min_lr: 1e-5,
        weight_decay: 0.1,
        max_grad_norm: 1.0,
        seed: 0,
        checkpoint_every: 250,
    }
    .settings();
    let model = ModelChoice {
        preset: "quickstart".into(),
        config: None,
        init_from: None,
    };
    let data = DataArgs {
        captions: None,
        webdataset: Vec::new(),
        shapes_seed: 0,
        shapes_family: 6,
        shapes_one_group: 0.8,
    };
    let summary = train(&out, &model, &data, &settings)?;

    let clip = Clip::load(&summary.model)?;
    let bar = crate::progress::bar(4 * args.eval_count, "evaluating on held-out shapes");
    let results = evaluate_shapes(
        &clip,
        &ShapesEvalConfig {
            count: args.eval_count,
            image_size: super::eval::model_image_size(clip.config()),
            ..ShapesEvalConfig::default()
        },
        |done, _| bar.set_position(done as u64),
    )?;
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
        &TARGETS,
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
        for (name, accuracy) in results.rows() {
            let target = TARGETS.iter().find(|(t, _)| *t == name).map(|(_, v)| *v);
            let verdict = match target {
                Some(t) if accuracy >= t => format!("target {t:.2} met"),
                Some(t) => format!("target {t:.2} missed"),
                None => String::new(),
            };
            println!("  {name:<20} {accuracy:>6.3}  {verdict}");
        }
        println!("model: {}", installed.display());
        println!("report: {}", report_path.display());
    }
    Ok(())
}
