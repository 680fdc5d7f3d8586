//! `clipkit search`: the indexed images nearest to a text, an image, or a mix.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::search::{embedding_identity, nearest, query_vector};
use serde::Serialize;

use super::store_arg::IndexArg;
use super::{check_image_paths, load_model, unknown_words, ModelArg, PrecisionArg};

/// Arguments of `clipkit search`.
#[derive(clap::Args)]
pub struct Args {
    /// Text query; several words and quoted phrases with + / - and weights mix
    /// (`beach +sunset -people`, `'"red circle" +0.5"on the left"'`). Words may start
    /// with '-' and options may stand anywhere among them; after `--` every word is query.
    #[arg(value_name = "QUERY")]
    query: Vec<String>,
    /// Example image: find images like it (repeatable; mixes with the text query).
    #[arg(long = "image", value_name = "PATH")]
    images: Vec<PathBuf>,
    /// Weight of each example image when mixed with text.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true, value_parser = crate::commands::finite)]
    image_weight: f32,
    /// Results to show.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    top_k: usize,
    /// Drop results scoring below this cosine similarity.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::commands::cosine)]
    min_score: Option<f32>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    #[command(flatten)]
    index: IndexArg,
    /// Print JSON: {"query": [{"text", "weight"}], "results": [{"path", "score"}],
    /// "unknown_words": [words of the query the model's vocabulary cannot represent]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    /// The text query as parsed: one weighted term each.
    query: Vec<Term>,
    results: Vec<Result>,
    /// Words of the query the model cannot represent (warned on stderr too).
    unknown_words: Vec<String>,
}

#[derive(Serialize)]
struct Term {
    text: String,
    weight: f32,
}

#[derive(Serialize)]
struct Result {
    path: String,
    score: f32,
}

/// Runs `clipkit search`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = args.query.join(" ");
    let text = (!text.trim().is_empty()).then_some(text);
    if text.is_none() && args.images.is_empty() {
        anyhow::bail!("nothing to search for: give a text query or --image PATH");
    }
    check_image_paths(&args.images)?;
    let store = args.index.open()?;
    let named = args.index.named_roots()?;
    let model_dir = args.model.dir()?;
    store.check_model(&embedding_identity(&model_dir, args.precision.precision)?)?;
    let clip = load_model(
        &model_dir,
        clipkit::DEFAULT_BATCH_SIZE,
        args.precision.precision,
    )?;
    let terms = match &text {
        Some(text) => clipkit::search::query::parse(text)?,
        None => Vec::new(),
    };
    let unknown_words = unknown_words(
        clip.tokenizer(),
        &terms.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
    )?;
    let query = query_vector(&clip, text.as_deref(), &args.images, args.image_weight)?;
    let results: Vec<Result> = nearest(&*store, &query, args.top_k, args.min_score)?
        .into_iter()
        .map(|h| Result {
            path: named.display(&h.path),
            score: h.score,
        })
        .collect();
    if args.json {
        let query = terms
            .into_iter()
            .map(|t| Term {
                text: t.text,
                weight: t.weight,
            })
            .collect();
        let out = serde_json::to_string(&Output {
            query,
            results,
            unknown_words,
        })
        .context("serialising output")?;
        println!("{out}");
    } else if results.is_empty() {
        eprintln!("no results");
    } else {
        for r in results {
            println!("{:.4}  {}", r.score, r.path);
        }
    }
    Ok(())
}
