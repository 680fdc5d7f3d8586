//! Writes a model folder with random weights and a tokenizer fitted to a caption file, the
//! way a trainer saves its model: for `tools/check_hf_load.py` and
//! `tools/check_fitted_tokenizer.py`, which load the folder in transformers.
//!
//! ```text
//! cargo build --release --example write_random_model
//! target/release/examples/write_random_model --captions CAPTIONS.txt --out DIR \
//!     [--config config.json] [--alphabet corpus|bytes]
//! ```
//!
//! `CAPTIONS.txt` holds one caption per line. Sizes come from `--config` (a `config.json`
//! whose vocabulary size and token ids are replaced by the fitted tokenizer's) or else a
//! small built-in configuration. Prints `{"vocab_size", "bos_token_id", "eos_token_id"}`.

use std::error::Error;
use std::path::{Path, PathBuf};

use clipkit::config::ClipConfig;
use clipkit::image::PreprocessConfig;
use clipkit::model::random_weights;
use clipkit::model_folder::{write_model_folder, ModelFolder};
use clipkit::tokenizer::{fit, Alphabet, FitOptions};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// A small CLIP unlike the fixtures: 32-pixel images, gelu in the image tower, 32 tokens.
const DEFAULT_CONFIG: &str = r#"{
  "projection_dim": 48,
  "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "max_position_embeddings": 32},
  "vision_config": {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                    "hidden_act": "gelu"}
}"#;

struct Args {
    captions: PathBuf,
    out: PathBuf,
    config: Option<PathBuf>,
    alphabet: Alphabet,
}

fn parse_args() -> BoxResult<Args> {
    let mut captions = None;
    let mut out = None;
    let mut config = None;
    let mut alphabet = Alphabet::Corpus;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--captions" => captions = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--alphabet" => {
                alphabet = match value()?.as_str() {
                    "corpus" => Alphabet::Corpus,
                    "bytes" => Alphabet::AllBytes,
                    other => return Err(format!("--alphabet corpus|bytes, not {other}").into()),
                }
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(Args {
        captions: captions.ok_or("--captions FILE is required")?,
        out: out.ok_or("--out DIR is required")?,
        config,
        alphabet,
    })
}

fn main() -> BoxResult<()> {
    let args = parse_args()?;
    let mut config = match &args.config {
        Some(path) => ClipConfig::from_file(path)?,
        None => ClipConfig::from_json(DEFAULT_CONFIG, Path::new("(built-in config)"))?,
    };
    let text = std::fs::read_to_string(&args.captions)
        .map_err(|e| format!("{}: {e}", args.captions.display()))?;
    let captions: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let fitted = fit(
        &captions,
        &FitOptions {
            alphabet: args.alphabet,
            context_length: config.text_config.max_position_embeddings,
            ..FitOptions::default()
        },
    )?;
    fitted.configure(&mut config.text_config);
    let folder = ModelFolder {
        tensors: random_weights(&config)?,
        preprocess: PreprocessConfig::openai(config.vision_config.image_size as u32),
        tokenizer: fitted.files.clone(),
        extra: Vec::new(),
        config,
    };
    write_model_folder(&args.out, &folder)?;
    println!(
        "{}",
        serde_json::json!({
            "vocab_size": fitted.vocab_size,
            "bos_token_id": fitted.bos_token_id,
            "eos_token_id": fitted.eos_token_id,
        })
    );
    Ok(())
}
