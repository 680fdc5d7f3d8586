//! `clipkit quickstart --imagine`: train a VQ autoencoder and a DALL·E-style generator over
//! its codes on the shapes world, judge them on the shapes-world prompt set (first sample
//! and best of N), install the generator that `clipkit imagine` uses by default, and write
//! a report with a contact sheet per prompt category. The recipe is the library's
//! [`clipkit::train::ImagineQuickstartRecipe`]; this command parses flags, trains with
//! progress bars, installs and prints. Every stage resumes or is redone, so running the
//! command again continues an interrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clipkit::data::shapes::render;
use clipkit::eval::generated::{self, CategoryRow, GeneratedReport};
use clipkit::imagine::{
    draw_prompt_set, install_generator, write_numbered, GenerationConfig, Generator,
};
use clipkit::model::imagine::ImagineConfig;
use clipkit::model::vq::VqModel;
use clipkit::model::Precision;
use clipkit::model_folder::{read_tokenizer, TOKENIZER_FILE};
use clipkit::train::imagine::ImagineInputs;
use clipkit::train::vq::{reconstruct, VqEvaluation};
use clipkit::train::{check_imagine_targets, seen_pairs_row, ImagineQuickstartRecipe};
use clipkit::Clip;
use serde::Serialize;

use super::eval::generate_report;
use super::{load_model, models, train_imagine, train_vq, ModelArg};
use crate::progress;

/// Held-out images of the VQ model's PSNR and codebook evaluation.
const VQ_EVAL_IMAGES: usize = 256;

/// The flags of `clipkit quickstart` that only `--imagine` reads.
#[derive(clap::Args)]
pub struct Args {
    /// Optimiser steps of the VQ autoencoder (with --imagine).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().vq_steps, value_parser = super::positive_count)]
    vq_steps: usize,
    /// Optimiser steps of the generator (with --imagine).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().generator_steps, value_parser = super::positive_count)]
    generator_steps: usize,
    /// Training images the generator learns from, encoded once (with --imagine).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().images, value_parser = super::positive_count)]
    images: usize,
    /// Samples per evaluation prompt; the best after reranking is judged beside the first
    /// (with --imagine).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().samples, value_parser = super::positive_count)]
    samples: usize,
    /// How many background pixels one object pixel weighs in the VQ model's reconstruction
    /// loss (with --imagine; 1: plain mean squared error).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().vq_object_weight, value_parser = clap::value_parser!(u32).range(1..))]
    vq_object_weight: u32,
    /// Codes in the VQ model's codebook, the generator's image vocabulary (with --imagine).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().vq_codes, value_parser = super::positive_count)]
    vq_codes: usize,
    /// Weight of the VQ model's perceptual term: 1 − cosine between the reranker's
    /// embeddings of each reconstruction and its original (with --imagine; 0: none).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().vq_perceptual_weight)]
    vq_perceptual_weight: f32,
    /// Side of the training and evaluation images in pixels, a multiple of 4 (with
    /// --imagine): 32 gives each image an 8 × 8 grid of codes, 64 a 16 × 16 one (four times
    /// the codes per object, about four times the generator's time per step).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().image_size)]
    image_size: u32,
    /// Sampling temperature of the evaluation (with --imagine; positive, lower is greedier).
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().generation.temperature)]
    temperature: f64,
    /// Keep only the K most likely codes at each position when sampling the evaluation
    /// (with --imagine; 0: all codes).
    #[arg(long, value_name = "K", default_value_t = ImagineQuickstartRecipe::default().generation.top_k.unwrap_or(0))]
    top_k: usize,
    /// Classifier-free guidance scale of the evaluation's sampling (with --imagine; 1:
    /// none). Running the command again over a finished run only redraws and rejudges.
    /// The generator keeps these three as its `generation_config.json`.
    #[arg(long, default_value_t = ImagineQuickstartRecipe::default().generation.guidance)]
    guidance: f64,
    /// CLIP model folder or Hub name that ranks the samples and whose tokenizer reads the
    /// captions (with --imagine; default: the default model of `clipkit quickstart`).
    #[arg(long = "rerank-model", value_name = "DIR|ORG/NAME")]
    rerank_model: Option<String>,
    /// Judge CLIP for shape and binding: a model trained with other seeds, never the
    /// reranker (with --imagine; without it only the pixel checks are reported).
    #[arg(long, value_name = "DIR")]
    judge: Option<PathBuf>,
}

/// What the command prints with `--json`.
#[derive(Serialize)]
struct Output {
    generator: String,
    report: String,
    vq: VqEvaluation,
    vq_truth: CategoryRows,
    first: CategoryRows,
    best: CategoryRows,
    sampling_images_per_s: f64,
    seconds: Seconds,
}

/// A report's rows: per category, the seen pairs together, and all prompts.
#[derive(Serialize)]
struct CategoryRows {
    seen_pairs: CategoryRow,
    categories: Vec<CategoryRow>,
}

/// Wall time of each stage in this call (a resumed stage counts only what it did now).
#[derive(Serialize)]
struct Seconds {
    vq: f64,
    generator: f64,
    evaluation: f64,
}

/// Runs `clipkit quickstart --imagine` into `out` (default: `quickstart-imagine` in the
/// clipkit data directory) with `batch_size` (default: the recipe's).
pub fn run(
    args: Args,
    out: Option<PathBuf>,
    batch_size: Option<usize>,
    no_install: bool,
    json: bool,
) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| clipkit::paths::data_dir().join("quickstart-imagine"));
    let defaults = ImagineQuickstartRecipe::default();
    let recipe = ImagineQuickstartRecipe {
        vq_steps: args.vq_steps,
        generator_steps: args.generator_steps,
        batch_size: batch_size.unwrap_or(defaults.batch_size),
        images: args.images,
        samples: args.samples,
        vq_object_weight: args.vq_object_weight,
        vq_codes: args.vq_codes,
        vq_perceptual_weight: args.vq_perceptual_weight,
        image_size: args.image_size,
        generation: GenerationConfig {
            temperature: args.temperature,
            top_k: super::codes_top_k(args.top_k),
            guidance: args.guidance,
        },
    };
    recipe.validate()?;
    let rerank_dir = match &args.rerank_model {
        Some(spec) => models::resolve(spec)?,
        None => ModelArg::default_dir().context(
            "the imagine quickstart reranks samples with a CLIP and reads captions with its \
             tokenizer: run `clipkit quickstart` first, or pass --rerank-model",
        )?,
    };
    if let Some(judge) = &args.judge {
        if same_folder(judge, &rerank_dir) {
            anyhow::bail!(
                "the judge {} is the reranker; a judge must be a CLIP that did not choose the \
                 samples (one trained with other seeds)",
                judge.display()
            );
        }
    }
    let reranker = load_model(&rerank_dir, clipkit::DEFAULT_BATCH_SIZE, Precision::Fp32)?;
    let judge = match &args.judge {
        Some(dir) => Some(load_model(
            dir,
            clipkit::DEFAULT_BATCH_SIZE,
            Precision::Fp32,
        )?),
        None => None,
    };

    let started = Instant::now();
    let (vq_dir, vq_eval) = train_vq_stage(&out, &recipe, &rerank_dir)?;
    let vq_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let generator_dir = train_generator_stage(&out, &recipe, &vq_dir, &rerank_dir)?;
    recipe.generation.write(&generator_dir)?;
    let generator_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let evaluation = evaluate(
        &out,
        &recipe,
        (&vq_dir, &generator_dir),
        &reranker,
        judge.as_ref(),
    )?;
    let seconds = Seconds {
        vq: vq_seconds,
        generator: generator_seconds,
        evaluation: started.elapsed().as_secs_f64(),
    };

    let installed = if no_install {
        generator_dir.clone()
    } else {
        let target = clipkit::paths::default_generator_dir();
        install_generator(&generator_dir, &target)
            .with_context(|| format!("cannot install the generator in {}", target.display()))?;
        target
    };
    let report_path = write_report(&out, &recipe, &vq_eval, &evaluation, judge.is_some())?;
    let output = Output {
        generator: installed.display().to_string(),
        report: report_path.display().to_string(),
        vq: vq_eval,
        vq_truth: rows(&evaluation.vq_truth),
        first: rows(&evaluation.first),
        best: rows(&evaluation.best),
        sampling_images_per_s: evaluation.images_per_s,
        seconds,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print_summary(&output, recipe.samples);
    }
    Ok(())
}

/// Trains (or resumes) the VQ model in `out/vq` (its perceptual term measured by the CLIP
/// in `perceptual_model`) and evaluates it; returns its folder.
fn train_vq_stage(
    out: &Path,
    recipe: &ImagineQuickstartRecipe,
    perceptual_model: &Path,
) -> anyhow::Result<(PathBuf, VqEvaluation)> {
    let root = out.join("vq");
    let settings = recipe.vq_settings(perceptual_model);
    let summary = train_vq::train_with_progress(&root, &settings)?;
    let evaluation = train_vq::finish_run(
        &root,
        &summary.model,
        settings.image_size,
        settings.seed,
        VQ_EVAL_IMAGES,
    )?;
    Ok((summary.model, evaluation))
}

/// Trains (or resumes) the generator in `out/generator` over the VQ model `vq_dir`, with
/// the tokenizer of the CLIP folder `tokenizer_dir`; returns the generator folder.
fn train_generator_stage(
    out: &Path,
    recipe: &ImagineQuickstartRecipe,
    vq_dir: &Path,
    tokenizer_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let vq = VqModel::load(vq_dir)
        .with_context(|| format!("cannot load the VQ model {}", vq_dir.display()))?;
    let sizes = recipe.generator_sizes();
    let tokenizer_json = std::fs::read(tokenizer_dir.join(TOKENIZER_FILE))
        .with_context(|| format!("{}: no tokenizer.json", tokenizer_dir.display()))?;
    let tokenizer = read_tokenizer(tokenizer_dir, sizes.text_length)?;
    let config = ImagineConfig::over(&sizes, &vq, vq_dir, &tokenizer, recipe.image_size)?;
    let inputs = ImagineInputs {
        vq: &vq,
        tokenizer: &tokenizer,
        tokenizer_json: &tokenizer_json,
    };
    let settings = recipe.generator_settings(config);
    let summary = train_imagine::train_with_progress(&out.join("generator"), &settings, &inputs)?;
    Ok(summary.model)
}

/// The judged prompt set: the VQ model's reconstructions of the truth scenes (the ceiling),
/// the first sample's report and the best of N's.
struct Evaluation {
    vq_truth: GeneratedReport,
    first: GeneratedReport,
    best: GeneratedReport,
    images_per_s: f64,
}

/// Draws the shapes-world prompt set into `out/eval/{first,best}`, the VQ model's
/// reconstructions of each prompt's truth scene into `out/eval/vq_truth`, and judges all
/// three sets.
fn evaluate(
    out: &Path,
    recipe: &ImagineQuickstartRecipe,
    (vq_dir, generator_dir): (&Path, &Path),
    reranker: &Clip,
    judge: Option<&Clip>,
) -> anyhow::Result<Evaluation> {
    let generator = Generator::load(generator_dir, None)
        .with_context(|| format!("cannot load the generator {}", generator_dir.display()))?;
    let prompts = generated::shapes_prompts();
    let eval_dir = out.join("eval");
    std::fs::create_dir_all(&eval_dir)
        .with_context(|| format!("cannot create {}", eval_dir.display()))?;
    generated::write_prompts(&eval_dir.join("prompts.jsonl"), &prompts)?;
    let (first_dir, best_dir) = (eval_dir.join("first"), eval_dir.join("best"));
    let bar = progress::bar(
        prompts.len(),
        &format!("drawing {} samples per prompt", recipe.samples),
    );
    let drawn = draw_prompt_set(
        &generator,
        reranker,
        &prompts,
        &recipe.sampling(),
        &first_dir,
        &best_dir,
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let judge_set = |dir: &Path, name: &str| -> anyhow::Result<GeneratedReport> {
        let images = generated::image_files(dir, prompts.len())?;
        let bar = progress::bar(prompts.len(), &format!("judging the {name}"));
        let report =
            generated::evaluate_generated(&prompts, &images, Some(reranker), judge, |done, _| {
                bar.set_position(done as u64)
            })?;
        bar.finish_and_clear();
        let path = eval_dir.join(format!("eval_{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(report)
    };
    let vq = VqModel::load(vq_dir)
        .with_context(|| format!("cannot load the VQ model {}", vq_dir.display()))?;
    let truths = prompts
        .iter()
        .map(|p| {
            let scene = generated::truth_scene(&p.objects)
                .with_context(|| format!("prompt {:?} cannot be drawn", p.prompt))?;
            Ok(render(&scene, recipe.image_size))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let vq_truth_dir = eval_dir.join("vq_truth");
    write_numbered(&vq_truth_dir, &reconstruct(&vq, &truths)?)?;
    let vq_truth = judge_set(&vq_truth_dir, "vq_truth")?;
    let first = judge_set(&first_dir, "first")?;
    let best = judge_set(&best_dir, "best")?;
    Ok(Evaluation {
        vq_truth,
        first,
        best,
        images_per_s: drawn.images_per_second(),
    })
}

fn rows(report: &GeneratedReport) -> CategoryRows {
    CategoryRows {
        seen_pairs: seen_pairs_row(report),
        categories: report.categories.clone(),
    }
}

/// Writes `out/report.html`: targets, the VQ model's quality, training curves, and the
/// table and contact sheets of the first samples and of the best of N.
fn write_report(
    out: &Path,
    recipe: &ImagineQuickstartRecipe,
    vq: &VqEvaluation,
    evaluation: &Evaluation,
    judged: bool,
) -> anyhow::Result<PathBuf> {
    use std::fmt::Write as _;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>clipkit quickstart \
         --imagine</title>{}</head><body><h1>clipkit quickstart --imagine</h1>",
        generate_report::STYLE
    );
    html.push_str(
        "<h2>Targets: first sample, prompts of seen colour–shape pairs</h2><table>\
         <tr><th>measure</th><th>first sample</th><th>best of N</th><th>target</th></tr>",
    );
    let best = check_imagine_targets(&seen_pairs_row(&evaluation.best));
    for (check, best) in check_imagine_targets(&seen_pairs_row(&evaluation.first))
        .iter()
        .zip(&best)
    {
        let class = if check.met() == Some(true) {
            "met"
        } else {
            "miss"
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{:.2}</td></tr>",
            check.name,
            percent(check.accuracy),
            percent(best.accuracy),
            check.target.unwrap_or(f64::NAN)
        );
    }
    let _ = write!(
        html,
        "</table><p>Held-out colour–shape pairs are the <em>unseen_pair</em> rows below. \
         Best of N: {} samples per prompt reranked by the reranker CLIP. Sampling: \
         temperature {}, top-k {}, guidance {}.</p>\
         <h2>VQ autoencoder</h2><p>{} held-out images: PSNR {:.2} dB, codebook perplexity \
         {:.1}, {} codes used, {} dead.</p>",
        recipe.samples,
        recipe.generation.temperature,
        recipe
            .generation
            .top_k
            .map_or("all".into(), |k| k.to_string()),
        recipe.generation.guidance,
        vq.images,
        vq.psnr_db,
        vq.perplexity,
        vq.used_codes,
        vq.dead_codes
    );
    if let Ok(png) = std::fs::read(out.join("vq").join("curves.png")) {
        use base64::Engine;
        let _ = write!(
            html,
            "<img src=\"data:image/png;base64,{}\" alt=\"VQ training curves\">",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
    }
    html.push_str(
        "<h2>The VQ model's reconstructions of each prompt's truth scene</h2><p>What the \
         generator could reach at best: the scene each prompt describes, drawn at 32 pixels, \
         encoded to codes and decoded.</p>",
    );
    generate_report::sections(&mut html, &evaluation.vq_truth, judged)?;
    html.push_str("<h2>First sample of each prompt</h2>");
    generate_report::sections(&mut html, &evaluation.first, judged)?;
    let _ = write!(html, "<h2>Best of {} after reranking</h2>", recipe.samples);
    generate_report::sections(&mut html, &evaluation.best, judged)?;
    html.push_str("</body></html>\n");
    generate_report::write_page(out, "report.html", &html)
}

fn percent(value: f64) -> String {
    if value.is_nan() {
        "—".into()
    } else {
        format!("{:.1}%", 100.0 * value)
    }
}

fn print_summary(output: &Output, samples: usize) {
    println!(
        "VQ: PSNR {:.2} dB, perplexity {:.1}, {} codes used",
        output.vq.psnr_db, output.vq.perplexity, output.vq.used_codes
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "prompts", "colour", "count", "position", "judge col", "shape", "binding"
    );
    let line = |label: &str, row: &CategoryRow| {
        let cell = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
        println!(
            "{label:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            cell(row.colour),
            cell(row.count),
            cell(row.position),
            cell(row.judge_colour),
            cell(row.shape),
            cell(row.binding)
        );
    };
    let best = format!("best of {samples}");
    for (name, rows) in [
        ("VQ of truth", &output.vq_truth),
        ("first", &output.first),
        (best.as_str(), &output.best),
    ] {
        line(&format!("{name}: seen"), &rows.seen_pairs);
        if let Some(unseen) = rows
            .categories
            .iter()
            .find(|r| r.category == generated::prompts::UNSEEN_PAIR)
        {
            line(&format!("{name}: held-out"), unseen);
        }
    }
    println!(
        "sampling {:.1} images/s; wall time: VQ {:.0} s, generator {:.0} s, evaluation {:.0} s",
        output.sampling_images_per_s,
        output.seconds.vq,
        output.seconds.generator,
        output.seconds.evaluation
    );
    println!("generator: {}", output.generator);
    println!("report: {}", output.report);
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
