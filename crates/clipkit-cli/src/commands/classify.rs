//! `clipkit classify`: zero-shot classification of images against labels.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::zeroshot::ZeroShotClassifier;
use serde::Serialize;

use super::templates::TemplateArgs;
use super::{check_image_paths, load_model, warn_unknown_words, ModelArg, PrecisionArg};
use crate::progress;

/// Arguments of `clipkit classify`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    /// Image file to classify (repeatable).
    #[arg(long = "image", value_name = "PATH", required = true)]
    images: Vec<PathBuf>,
    /// Candidate label (repeatable).
    #[arg(long = "label", value_name = "LABEL", allow_hyphen_values = true)]
    labels: Vec<String>,
    /// File with one label per line (blank lines and lines starting with '#' are skipped).
    #[arg(long, value_name = "FILE")]
    labels_file: Option<PathBuf>,
    #[command(flatten)]
    templates: TemplateArgs,
    /// Labels shown per image (JSON: all labels unless given).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    top_k: Option<usize>,
    /// Images or prompts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    results: Vec<ImageResult>,
    /// Words of the labels and templates the model cannot represent (warned on stderr too).
    unknown_words: Vec<String>,
}

#[derive(Serialize)]
struct ImageResult {
    path: String,
    labels: Vec<LabelProb>,
}

#[derive(Serialize)]
struct LabelProb {
    label: String,
    prob: f32,
}

/// Runs `clipkit classify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let labels = collect_labels(&args)?;
    let templates = args.templates.templates();
    check_image_paths(&args.images)?;
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        args.precision.precision,
    )?;
    let classifier = ZeroShotClassifier::new(&clip, &labels, &templates)?;
    let unknown_words = classifier.unknown_words().to_vec();
    warn_unknown_words(clip.tokenizer(), &unknown_words);

    let bar = progress::bar(args.images.len(), "classifying");
    let embeds = clip.embed_image_files(&args.images, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let top_k = args
        .top_k
        .unwrap_or(if args.json { labels.len() } else { 5 });
    let results: Vec<ImageResult> = args
        .images
        .iter()
        .zip(classifier.classify(&embeds)?)
        .map(|(path, scores)| ImageResult {
            path: path.display().to_string(),
            labels: scores
                .into_iter()
                .take(top_k)
                .map(|s| LabelProb {
                    label: s.label,
                    prob: s.prob,
                })
                .collect(),
        })
        .collect();
    if args.json {
        let output = Output {
            results,
            unknown_words,
        };
        println!("{}", serde_json::to_string(&output)?);
    } else {
        for result in results {
            println!("{}", result.path);
            for l in result.labels {
                println!("  {:6.2}%  {}", 100.0 * l.prob, l.label);
            }
        }
    }
    Ok(())
}

fn collect_labels(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut labels = args.labels.clone();
    if let Some(file) = &args.labels_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read labels", file.display()))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if labels.is_empty() {
        anyhow::bail!("no labels: give --label (repeatable) or --labels-file");
    }
    Ok(labels)
}
