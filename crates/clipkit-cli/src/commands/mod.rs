//! One module per subcommand: its arguments and what it prints.

pub mod classify;
pub mod data;
pub mod dupes;
pub mod embed;
pub mod eval;
pub mod generate;
pub mod imagine;
pub mod index;
pub mod merge;
pub mod models;
pub mod preprocess;
pub mod quickstart;
pub mod quickstart_imagine;
pub mod score;
pub mod search;
pub mod serve;
pub mod store_arg;
pub mod templates;
pub mod tokenize;
pub mod train;
pub mod train_imagine;
pub mod train_vq;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::model::{LoadOptions, PackedCache, Precision};
use clipkit::tokenizer::{ClipTokenizer, Vocabulary};
use clipkit::Clip;

/// Loads a model folder with the given batch size and weight precision, naming the folder
/// on failure. A large model's packed weights are kept in clipkit's cache folder
/// ([`clipkit::paths::packed_cache_dir`]), so that later loads map them instead of packing.
pub fn load_model(dir: &Path, batch_size: usize, precision: Precision) -> anyhow::Result<Clip> {
    let cache = PackedCache::new(clipkit::paths::packed_cache_dir());
    let options = LoadOptions {
        precision,
        packed_cache: Some(&cache),
        ..LoadOptions::default()
    };
    let clip = Clip::load_with(dir, options)
        .with_context(|| format!("cannot load model from {}", dir.display()))?;
    Ok(clip.with_batch_size(batch_size))
}

/// Parses a number in 0..=1 (a merge weight, a chance), for clap's `value_parser`.
pub fn unit_interval(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is outside 0..1"))
    }
}

/// Parses a cosine similarity (`--threshold`, `--min-score`): a number from -1 to 1, for
/// clap's `value_parser` (with `allow_negative_numbers`); NaN and infinities are refused, as
/// no similarity compares with them.
pub fn cosine(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (-1.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!(
            "{v} is not a cosine similarity: give a number from -1 to 1"
        )),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

/// Parses a finite number > 0 (a learning rate, a step size), for clap's `value_parser`.
pub fn positive_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a number > 0")),
    }
}

/// Parses a finite number ≥ 0 (a weight, a decay), for clap's `value_parser`.
pub fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a number ≥ 0")),
    }
}

/// Parses a weight that may be negative (`--image-weight`): any finite number.
pub fn finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a finite number")),
    }
}

/// Parses a count that must be at least 1 (`--top-k`, `--batch-size`), for clap's
/// `value_parser`; negative numbers reach it (`allow_negative_numbers`) so `--top-k -1` is
/// answered with this message rather than clap's "unexpected argument".
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!(
            "{n} is not allowed: give a whole number of at least 1"
        )),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// The top-k of a code-sampling `--top-k K` flag, where 0 means every code.
pub fn codes_top_k(k: usize) -> Option<usize> {
    (k > 0).then_some(k)
}

/// Warns on stderr about a text cut to the context length.
pub fn warn_truncated(text: &str, context_length: usize) {
    let preview: String = text.chars().take(40).collect();
    eprintln!(
        "warning: text {preview:?}… is longer than {context_length} tokens and was truncated"
    );
}

/// The words of `texts` the model's tokenizer cannot represent (see
/// [`clipkit::tokenizer::ClipTokenizer::unknown_words`]), once each; warns on stderr naming
/// them when there are any.
pub fn unknown_words<S: AsRef<str>>(
    tokenizer: &ClipTokenizer,
    texts: &[S],
) -> anyhow::Result<Vec<String>> {
    let words = tokenizer.unknown_words_in(texts)?;
    warn_unknown_words(tokenizer, &words);
    Ok(words)
}

/// Warns on stderr naming `words`, which `tokenizer` cannot represent, and why that matters
/// for its kind of vocabulary; nothing when there are none.
pub fn warn_unknown_words(tokenizer: &ClipTokenizer, words: &[String]) {
    if words.is_empty() {
        return;
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    let why = match tokenizer.vocabulary() {
        Vocabulary::Closed => {
            "its vocabulary was fitted to its training captions (the quickstart model \
             knows only the shapes world), so these words read as nothing and results \
             for them are meaningless; for a real CLIP run `clipkit models pull \
             openai/clip-vit-base-patch32` and pass --model openai/clip-vit-base-patch32"
        }
        Vocabulary::Open => "they hold characters outside its vocabulary",
    };
    eprintln!(
        "warning: the model does not know {}: {why}",
        quoted.join(", ")
    );
}

/// Says once, on stderr, that a model with a fitted vocabulary knows only the world it was
/// trained on, pointing to a real CLIP.
pub fn note_fitted_vocabulary(clip: &Clip) {
    if clip.tokenizer().vocabulary() == Vocabulary::Closed {
        eprintln!(
            "note: the model at {} has a vocabulary fitted to its training captions: like the \
             quickstart model, which knows only the shapes world, it cannot describe photos; \
             for real images run `clipkit models pull openai/clip-vit-base-patch32` and index \
             with --model openai/clip-vit-base-patch32",
            clip.dir().display()
        );
    }
}

/// Checks image paths exist and are files before any work starts.
pub fn check_image_paths(paths: &[PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        if path.is_dir() {
            anyhow::bail!("{}: is a directory, not an image", path.display());
        }
        if !path.exists() {
            anyhow::bail!("{}: no such file", path.display());
        }
    }
    Ok(())
}

/// The `--precision` option of the commands that embed for inference.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct PrecisionArg {
    /// Number format of the model's matrix weights: fp32 (the checkpoint's), bf16, int8
    /// (weights only) or w8a8 (int8 weights and inputs). Lower precisions are faster with
    /// AVX-512 (BF16, VNNI) and cost some accuracy (README "Precision"); an index records
    /// the precision and refuses queries of another.
    #[arg(long, default_value_t = Precision::Fp32, value_name = "fp32|bf16|int8|w8a8")]
    pub precision: Precision,
}

/// The `--model` option shared by every command that runs a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArg {
    /// Model folder (HuggingFace CLIP layout), or a Hub name ORG/NAME[@REVISION] read from
    /// the Hub cache (pulled on first use unless HF_HUB_OFFLINE is set). Default: the model
    /// `clipkit quickstart` saved (under $CLIPKIT_HOME, else the user data directory).
    #[arg(long, value_name = "DIR|ORG/NAME")]
    model: Option<String>,
}

impl ModelArg {
    /// The folder to load: the one given (a Hub name resolved through the cache, see
    /// [`clipkit::hub::resolve_model`]), or the default model when it exists.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(spec) = &self.model {
            return models::resolve(spec);
        }
        Self::default_dir()
    }

    /// The default model folder, or an error saying how to make one.
    pub fn default_dir() -> anyhow::Result<PathBuf> {
        let default = clipkit::paths::default_model_dir();
        if !default.join(clipkit::model_folder::CONFIG_FILE).is_file() {
            anyhow::bail!(
                "no --model given and no default model at {}; run `clipkit quickstart` to train \
                 one, pass --model DIR, or use a real CLIP: `clipkit models pull \
                 openai/clip-vit-base-patch32` then --model openai/clip-vit-base-patch32",
                default.display()
            );
        }
        Ok(default)
    }
}
