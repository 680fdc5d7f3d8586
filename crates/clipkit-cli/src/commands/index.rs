//! `clipkit index`: bring the search index up to date with folders (or files) of images,
//! remove folders that are gone with `--prune`, or show its state with `--status`.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{embedding_identity, open_or_create, open_writable};
use indicatif::ProgressBar;

use super::store_arg::IndexArg;
use super::{load_model, note_fitted_vocabulary, ModelArg, PrecisionArg};
use crate::progress;

/// Test hook: abort the process (as `kill -9` would, no clean-up) after this many batches.
const ABORT_ENV: &str = "CLIPKIT_TEST_ABORT_AFTER_BATCHES";

/// Arguments of `clipkit index`.
#[derive(clap::Args)]
pub struct Args {
    /// Folders to index, recursively (JPEG, PNG, WebP, BMP, GIF by extension), or single
    /// image files. Symbolic links inside a folder are not followed; they are counted and
    /// listed.
    #[arg(value_name = "DIR", required_unless_present_any = ["status", "prune"])]
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    #[command(flatten)]
    index: IndexArg,
    /// Images per forward pass and per commit.
    #[arg(long, default_value_t = clipkit::DEFAULT_BATCH_SIZE, allow_negative_numbers = true, value_parser = crate::commands::positive_count)]
    batch_size: usize,
    /// Show what the index holds and the files that failed, instead of indexing.
    #[arg(long, conflicts_with = "dirs")]
    status: bool,
    /// Remove from the index everything under this folder, which must no longer exist
    /// (repeatable). A folder that still exists is brought up to date by indexing it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dirs", "status"])]
    prune: Vec<PathBuf>,
}

/// Runs `clipkit index`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.status {
        return status(&args.index);
    }
    if !args.prune.is_empty() {
        return prune(&args.index, &args.prune);
    }
    let model_dir = args.model.dir()?;
    let clip = load_model(&model_dir, args.batch_size, args.precision.precision)?;
    note_fitted_vocabulary(&clip);
    let identity = embedding_identity(&model_dir, args.precision.precision)?;
    let location = args.index.location();
    let mut store = open_or_create(&location, &identity, clip.embedding_dim())
        .with_context(|| format!("cannot open index {location}"))?;
    let mut bar = Bar {
        bar: ProgressBar::hidden(),
        batches: 0,
        abort_after: None,
    };
    let named = args.index.named_roots()?;
    let report = indexer::index_folders(
        &clip,
        &mut *store,
        &args.dirs,
        &named,
        args.batch_size,
        &mut bar,
    )?;
    bar.bar.finish_and_clear();
    let rate = report.embedded as f64 / report.embed_seconds.max(1e-9);
    eprintln!(
        "{} images found: {} new or changed embedded ({rate:.1} images/s), {} unchanged, \
         {} touched (same content), {} moved, {} removed, {} failed ({} earlier failures \
         unchanged); {} in the index",
        report.found,
        report.embedded,
        report.unchanged,
        report.refreshed,
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
    if !report.skipped_links.is_empty() {
        eprintln!(
            "{} symbolic links not followed (index the folders they point to instead):",
            report.skipped_links.len()
        );
        for link in &report.skipped_links {
            eprintln!("  link: {link}");
        }
    }
    Ok(())
}

fn prune(index: &IndexArg, folders: &[PathBuf]) -> anyhow::Result<()> {
    let location = index.location();
    let mut store =
        open_writable(&location).with_context(|| format!("cannot open index {location}"))?;
    let pruned = indexer::prune_vanished(&mut *store, folders, &index.named_roots()?)?;
    eprintln!(
        "pruned: {} items removed, {} failures forgotten; {} in the index",
        pruned.removed,
        pruned.forgotten,
        store.len()
    );
    Ok(())
}

fn status(index: &IndexArg) -> anyhow::Result<()> {
    let store = index.open()?;
    println!("index:   {}", store.location());
    println!("model:   {}", store.model());
    println!("images:  {} ({} dimensions)", store.len(), store.dim());
    let search = if store.is_approximate() {
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
