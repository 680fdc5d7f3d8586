//! `clipkit embed`: unit-length embeddings of images and texts, and their logits.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Tensor;
use serde::Serialize;

use super::{check_image_paths, load_model, unknown_words, warn_truncated, ModelArg, PrecisionArg};
use crate::progress;

/// Arguments of `clipkit embed`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    /// Image file to embed (repeatable).
    #[arg(long = "image", value_name = "PATH")]
    images: Vec<PathBuf>,
    /// Text to embed (repeatable; may be empty or begin with '-').
    #[arg(long = "text", value_name = "TEXT", allow_hyphen_values = true)]
    texts: Vec<String>,
    /// Images or texts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON (the default output is a short summary).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    dim: usize,
    logit_scale: f32,
    images: Vec<ImageEmbedding>,
    texts: Vec<TextEmbedding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logits_per_image: Option<Vec<Vec<f32>>>,
}

#[derive(Serialize)]
struct ImageEmbedding {
    path: String,
    embedding: Vec<f32>,
}

#[derive(Serialize)]
struct TextEmbedding {
    text: String,
    embedding: Vec<f32>,
    truncated: bool,
    /// Words of the text the model cannot represent (warned on stderr too).
    unknown_words: Vec<String>,
}

/// Runs `clipkit embed`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.images.is_empty() && args.texts.is_empty() {
        anyhow::bail!("nothing to embed: give at least one --image or --text");
    }
    check_image_paths(&args.images)?;
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        args.precision.precision,
    )?;

    let bar = progress::bar(args.images.len(), "embedding images");
    let image_embeds =
        clip.embed_image_files(&args.images, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();

    let tokens = clip
        .tokenizer()
        .encode_batch(&args.texts.iter().map(String::as_str).collect::<Vec<_>>())?;
    for (text, t) in args.texts.iter().zip(&tokens) {
        if t.truncated {
            warn_truncated(text, clip.tokenizer().context_length());
        }
    }
    let unknown: Vec<Vec<String>> = args
        .texts
        .iter()
        .map(|t| clip.tokenizer().unknown_words(t))
        .collect::<Result<_, _>>()?;
    unknown_words(clip.tokenizer(), &args.texts)?;
    let ids: Vec<Vec<u32>> = tokens.iter().map(|t| t.ids.clone()).collect();
    let text_embeds = clip.embed_token_ids(&ids)?;

    let logits_per_image = if !args.images.is_empty() && !args.texts.is_empty() {
        Some(
            clip.logits(&image_embeds, &text_embeds)?
                .logits_per_image
                .to_vec2::<f32>()?,
        )
    } else {
        None
    };
    let output = Output {
        dim: clip.embedding_dim(),
        logit_scale: clip.logit_scale()?,
        images: args
            .images
            .iter()
            .zip(rows(&image_embeds)?)
            .map(|(path, embedding)| ImageEmbedding {
                path: path.display().to_string(),
                embedding,
            })
            .collect(),
        texts: args
            .texts
            .iter()
            .zip(rows(&text_embeds)?)
            .zip(&tokens)
            .zip(unknown)
            .map(|(((text, embedding), t), unknown_words)| TextEmbedding {
                text: text.clone(),
                embedding,
                truncated: t.truncated,
                unknown_words,
            })
            .collect(),
        logits_per_image,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&output).context("serialising output")?
        );
    } else {
        print_summary(&output);
    }
    Ok(())
}

fn rows(t: &Tensor) -> anyhow::Result<Vec<Vec<f32>>> {
    Ok(t.to_vec2::<f32>()?)
}

fn print_summary(output: &Output) {
    println!(
        "embedding dim {}, logit scale {:.4}",
        output.dim, output.logit_scale
    );
    let head = |e: &[f32]| {
        e.iter()
            .take(4)
            .map(|v| format!("{v:+.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for image in &output.images {
        println!("image {}: [{} …]", image.path, head(&image.embedding));
    }
    for text in &output.texts {
        println!("text {:?}: [{} …]", text.text, head(&text.embedding));
    }
    if let Some(logits) = &output.logits_per_image {
        println!("logits_per_image (rows: images, columns: texts):");
        for (image, row) in output.images.iter().zip(logits) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:8.3}")).collect();
            println!("  {} {}", cells.join(" "), image.path);
        }
    }
}
