//! `clipkit score`: CLIPScore (and RefCLIPScore, torchmetrics' CLIPScore) of image–caption
//! pairs; the formulas live in [`clipkit::eval::clip_score`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clipkit::eval::clip_score::clip_score;
use serde::{Deserialize, Serialize};

use super::{check_image_paths, load_model, ModelArg};

/// Arguments of `clipkit score`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Image file (repeatable, or several after one --image); image i is scored with text i.
    #[arg(long = "image", value_name = "PATH", num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Caption of the image at the same position (repeatable; may be empty or begin with '-').
    #[arg(
        long = "text",
        value_name = "TEXT",
        allow_hyphen_values = true,
        required = true
    )]
    texts: Vec<String>,
    /// JSON Lines file of reference captions, one line per image:
    /// {"path": "...", "references": ["...", ...]}; adds RefCLIPScore. Relative paths are
    /// taken from the file's folder.
    #[arg(long, value_name = "FILE.jsonl")]
    references: Option<PathBuf>,
    /// Images or texts per forward pass.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Print JSON: {"pairs": [{"path", "text", "clipscore", "refclipscore"?}], "clipscore",
    /// "torchmetrics_clip_score", "refclipscore"?}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    pairs: Vec<Pair>,
    clipscore: f32,
    torchmetrics_clip_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    refclipscore: Option<f32>,
}

#[derive(Serialize)]
struct Pair {
    path: String,
    text: String,
    clipscore: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    refclipscore: Option<f32>,
}

/// One line of the references file; other fields (a caption, objects) are ignored.
#[derive(Deserialize)]
struct ReferenceLine {
    path: PathBuf,
    references: Vec<String>,
}

/// Runs `clipkit score`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.images.len() != args.texts.len() {
        bail!(
            "{} --image but {} --text: image i is scored with text i, so give as many of each",
            args.images.len(),
            args.texts.len()
        );
    }
    check_image_paths(&args.images)?;
    let references = match &args.references {
        Some(file) => Some(references_for(file, &args.images)?),
        None => None,
    };
    let clip = load_model(
        &args.model.dir()?,
        args.batch_size,
        clipkit::model::Precision::Fp32,
    )?;
    let report =
        clip_score(&clip, &args.images, &args.texts, references.as_deref()).context("scoring")?;
    let pairs: Vec<Pair> = args
        .images
        .iter()
        .zip(&args.texts)
        .zip(&report.pairs)
        .map(|((path, text), score)| Pair {
            path: path.display().to_string(),
            text: text.clone(),
            clipscore: score.clipscore,
            refclipscore: score.refclipscore,
        })
        .collect();
    if args.json {
        let out = Output {
            pairs,
            clipscore: report.clipscore,
            torchmetrics_clip_score: report.torchmetrics_clip_score,
            refclipscore: report.refclipscore,
        };
        println!(
            "{}",
            serde_json::to_string(&out).context("serialising output")?
        );
        return Ok(());
    }
    print_table(&pairs);
    println!("CLIPScore (mean)          {:.4}", report.clipscore);
    if let Some(r) = report.refclipscore {
        println!("RefCLIPScore (mean)       {r:.4}");
    }
    println!(
        "torchmetrics CLIPScore    {:.4}",
        report.torchmetrics_clip_score
    );
    Ok(())
}

fn print_table(pairs: &[Pair]) {
    let with_refs = pairs.iter().any(|p| p.refclipscore.is_some());
    if with_refs {
        println!("{:>9}  {:>9}  image  text", "CLIP-S", "RefCLIP-S");
    } else {
        println!("{:>9}  image  text", "CLIP-S");
    }
    for p in pairs {
        match p.refclipscore {
            Some(r) => println!("{:>9.4}  {r:>9.4}  {}  {:?}", p.clipscore, p.path, p.text),
            None => println!("{:>9.4}  {}  {:?}", p.clipscore, p.path, p.text),
        }
    }
}

/// Reads the references file and returns, for each image, its references; a malformed line,
/// a line without references, or an image the file does not list is an error naming it.
fn references_for(file: &Path, images: &[PathBuf]) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read references file {}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut by_path: HashMap<PathBuf, Vec<String>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ReferenceLine = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: expected {{\"path\": \"...\", \"references\": [\"...\"]}}",
                file.display(),
                i + 1
            )
        })?;
        if parsed.references.is_empty() {
            bail!("{} line {}: no references", file.display(), i + 1);
        }
        let key = canonical(&base.join(&parsed.path));
        if by_path.insert(key, parsed.references).is_some() {
            bail!(
                "{} line {}: {} is listed twice",
                file.display(),
                i + 1,
                parsed.path.display()
            );
        }
    }
    images
        .iter()
        .map(|image| {
            by_path.get(&canonical(image)).cloned().with_context(|| {
                format!(
                    "{} has no references for {}",
                    file.display(),
                    image.display()
                )
            })
        })
        .collect()
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}
