//! `clipkit index`: bring the search index up to date with folders of images, or show its
//! state with `--status`.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{model_identity, EmbeddedStore, VectorStore};
use indicatif::ProgressBar;

use super::store_arg::IndexArg;
use super::{load_model, ModelArg};
use crate::progress;

/// Test hook: abort the process (as `kill -9` would, no clean-up) after this many batches.
const ABORT_ENV: &str = "CLIPKIT_TEST_ABORT_AFTER_BATCHES";

/// Arguments of `clipkit index`.
#[derive(clap::Args)]
pub struct Args {
    /// Folders to index, recursively (JPEG, PNG, WebP, BMP, GIF by extension).
    #[arg(value_name = "DIR", required_unless_present = "status")]
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    index: IndexArg,
    /// Images per forward pass and per commit.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Show what the index holds and the files that failed, instead of indexing.
    #[arg(long, conflicts_with = "dirs")]
    status: bool,
}

/// Runs `clipkit index`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.status {
        return status(&args.index);
    }
    let model_dir = args.model.dir()?;
    let clip = load_model(&model_dir, args.batch_size)?;
    let identity = model_identity(&model_dir)?;
    let dir = args.index.dir();
    let mut store = EmbeddedStore::open_or_create(&dir, &identity, clip.embedding_dim())
        .with_context(|| format!("cannot open index {}", dir.display()))?;
    let mut bar = Bar {
        bar: ProgressBar::hidden(),
        batches: 0,
        abort_after: None,
    };
    let report = indexer::index_folders(&clip, &mut store, &args.dirs, args.batch_size, &mut bar)?;
    bar.bar.finish_and_clear();
    let rate = report.embedded as f64 / report.embed_seconds.max(1e-9);
    eprintln!(
        "{} images found: {} new or changed embedded ({rate:.1} images/s), {} unchanged, \
         {} moved, {} removed, {} failed ({} earlier failures unchanged); {} in the index",
        report.found,
        report.embedded,
        report.unchanged,
        report.moved,
        report.removed,
        report.failed.len(),
        report.still_failing,
        store.len()
    );
    for f in &report.failed {
        eprintln!("  failed: {}", f.message);
    }
    if !report.failed.is_empty() {
        eprintln!("`clipkit index --status` lists every file that failed");
    }
    Ok(())
}

fn status(index: &IndexArg) -> anyhow::Result<()> {
    let store = index.open()?;
    println!("index:   {}", store.dir().display());
    println!("model:   {}", store.model());
    println!("images:  {} ({} dimensions)", store.len(), store.dim());
    let search = if store.has_ann() {
        "approximate (HNSW) + exact tail"
    } else {
        "exact"
    };
    println!("search:  {search}");
    let failures = store.failures()?;
    println!("failed:  {}", failures.len());
    for f in failures {
        println!("  {}\t{}", f.path, f.message);
    }
    Ok(())
}

/// The progress bar, and the test hook that simulates a crash between batches.
struct Bar {
    bar: ProgressBar,
    batches: usize,
    abort_after: Option<usize>,
}

impl Progress for Bar {
    fn start(&mut self, total: usize) {
        self.bar = progress::bar(total, "indexing");
        self.abort_after = std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok());
    }

    fn advance(&mut self, done: usize) {
        self.bar.set_position(done as u64);
        self.batches += 1;
        if self.abort_after == Some(self.batches) {
            std::process::abort();
        }
    }
}
