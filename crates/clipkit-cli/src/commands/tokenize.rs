//! `clipkit tokenize`: token ids of texts, with start and end tokens.

use anyhow::Context;
use clipkit::model_folder;
use serde::Serialize;

use super::{unknown_words, warn_truncated, ModelArg};

/// Arguments of `clipkit tokenize`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Text to tokenize (repeatable; may be empty or begin with '-').
    #[arg(
        long = "text",
        value_name = "TEXT",
        required = true,
        allow_hyphen_values = true
    )]
    texts: Vec<String>,
    /// Print JSON: {"texts": [{"text", "ids", "truncated", "unknown_words"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    texts: Vec<Tokens>,
}

#[derive(Serialize)]
struct Tokens {
    text: String,
    ids: Vec<u32>,
    truncated: bool,
    /// Words the tokenizer cannot represent (they add no tokens of their own).
    unknown_words: Vec<String>,
}

/// Runs `clipkit tokenize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model_dir = args.model.dir()?;
    let tokenizer = match model_folder::probe_layout(&model_dir) {
        // Checkpoints that carry no tokenizer files: the architecture sets the context.
        Some(model_folder::Layout::OpenClipFolder | model_folder::Layout::TorchCheckpoint) => {
            model_folder::read_model(&model_dir)
                .with_context(|| format!("cannot load model from {}", model_dir.display()))?
                .tokenizer
                .read()?
        }
        _ => {
            let config = model_folder::read_config(&model_dir)
                .with_context(|| format!("cannot load model from {}", model_dir.display()))?;
            model_folder::read_tokenizer(&model_dir, config.text_config.max_position_embeddings)?
        }
    };
    let context = tokenizer.context_length();
    let mut texts = Vec::with_capacity(args.texts.len());
    for text in args.texts {
        let t = tokenizer.encode(&text)?;
        if t.truncated {
            warn_truncated(&text, context);
        }
        let unknown_words = unknown_words(&tokenizer, &[&text])?;
        texts.push(Tokens {
            text,
            ids: t.ids,
            truncated: t.truncated,
            unknown_words,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string(&Output { texts })?);
    } else {
        for t in texts {
            let ids: Vec<String> = t.ids.iter().map(u32::to_string).collect();
            println!(
                "{:?}: {}{}",
                t.text,
                ids.join(" "),
                if t.truncated { " (truncated)" } else { "" }
            );
        }
    }
    Ok(())
}
