//! Indexing folders (or single files) of images into a [`VectorStore`], incrementally:
//! new, changed, moved, touched and deleted files are found by path, size, mtime and content
//! hash (see [`plan`]), and only new content is decoded and embedded (see [`pipeline`]).
//! Items under a folder that no longer exists are removed by [`prune_vanished`].

pub mod pipeline;
pub mod plan;
mod prune;
pub mod scan;

pub use prune::{prune_vanished, Pruned};

use std::path::PathBuf;
use std::time::Instant;

use crate::clip::Clip;
use crate::error::Result;
use crate::search::named_roots::NamedRoots;
use crate::search::store::{Batch, Failure, VectorStore};

/// What an indexing run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Image files found under the folders.
    pub found: usize,
    /// Files already indexed and unchanged.
    pub unchanged: usize,
    /// Files decoded and embedded now.
    pub embedded: usize,
    /// Files whose vector was kept under a new path.
    pub moved: usize,
    /// Files touched without changing (same path and content, new mtime): record refreshed.
    pub refreshed: usize,
    /// Symbolic links inside the folders, not followed (see [`scan`]).
    pub skipped_links: Vec<String>,
    /// Items removed because their file is gone.
    pub removed: usize,
    /// Files that failed in this run.
    pub failed: Vec<Failure>,
    /// Files that failed before and did not change.
    pub still_failing: usize,
    /// Seconds spent decoding, embedding and storing (the pipeline only).
    pub embed_seconds: f64,
}

/// Progress of the embedding stage, for a progress bar.
pub trait Progress {
    /// Called once the work is known: `total` files to decode and embed.
    fn start(&mut self, total: usize);
    /// Called after each committed batch with the files handled so far.
    fn advance(&mut self, done: usize);
}

/// Brings `store` up to date with the image files under `roots` (folders, or image files
/// by name), keyed under `named` (see [`NamedRoots`]): embeds what is new, records moves,
/// removes what is gone, commits every `batch_size` images, and finally lets the store
/// optimise itself.
pub fn index_folders(
    clip: &Clip,
    store: &mut dyn VectorStore,
    roots: &[PathBuf],
    named: &NamedRoots,
    batch_size: usize,
    progress: &mut dyn Progress,
) -> Result<Report> {
    let scan = scan::scan(roots, named)?;
    let plan = plan::plan(
        &scan.found,
        &scan.roots,
        &store.items()?,
        &store.failures()?,
    );
    let mut report = Report {
        found: scan.found.len(),
        unchanged: plan.unchanged,
        moved: plan.moved.len(),
        refreshed: plan.refreshed.len(),
        skipped_links: scan.skipped_links,
        removed: plan.removed.len(),
        still_failing: plan.still_failing,
        failed: plan.unreadable.clone(),
        ..Report::default()
    };
    store.commit(Batch {
        moved: plan.moved.into_iter().chain(plan.refreshed).collect(),
        removed: plan.removed,
        forgotten: plan.forgotten,
        failed: plan.unreadable,
        ..Batch::default()
    })?;
    progress.start(plan.to_embed.len());
    let started = Instant::now();
    let failed =
        pipeline::embed_and_store(clip, store, &plan.to_embed, named, batch_size, |done| {
            progress.advance(done)
        })?;
    report.embed_seconds = started.elapsed().as_secs_f64();
    report.embedded = plan.to_embed.len() - failed.len();
    report.failed.extend(failed);
    store.optimize()?;
    Ok(report)
}
