//! Decode → preprocess → embed → store, with decoding of the next batch running (on the
//! rayon pool, in parallel over its images) while the current batch is embedded, so both
//! stages keep the cores busy. Every batch is committed on its own: a run that is killed
//! loses at most the batch in flight, and the next run finds the rest still to do.
//!
//! Legend: B = images per batch, S = image side, E = embedding dimension.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::clip::Clip;
use crate::error::Result;
use crate::search::named_roots::NamedRoots;
use crate::search::store::{Batch, Failure, FileRecord, VectorStore};

/// One batch after decoding: each file with its pixels (3, S, S) or why it failed.
type Decoded = Vec<(FileRecord, Result<Tensor, String>)>;

/// Embeds `files` (keyed under `named`) in batches of `batch_size` and commits each batch to
/// `store`; failures are committed as such. `after_commit(done)` is called after each commit with the number
/// of files handled so far. Returns the failures.
pub fn embed_and_store(
    clip: &Clip,
    store: &mut dyn VectorStore,
    files: &[FileRecord],
    named: &NamedRoots,
    batch_size: usize,
    mut after_commit: impl FnMut(usize),
) -> Result<Vec<Failure>> {
    let batch_size = batch_size.max(1);
    let mut failures = Vec::new();
    let mut done = 0;
    crate::prefetch::prefetched(
        files.chunks(batch_size),
        |chunk| decode(clip, chunk, named),
        |decoded| {
            done += decoded.len();
            let batch = embed(clip, decoded)?;
            failures.extend(batch.failed.iter().cloned());
            store.commit(batch)?;
            after_commit(done);
            Ok(())
        },
    )?;
    Ok(failures)
}

fn decode(clip: &Clip, files: &[FileRecord], named: &NamedRoots) -> Decoded {
    files
        .par_iter()
        .map(|f| {
            let pixels = match named.local(&f.path) {
                Some(path) => clip
                    .load_image(&path)
                    .and_then(|image| clip.preprocess(&image))
                    .map_err(|e| e.to_string()),
                None => Err(format!("{}: not under a named root of this host", f.path)),
            };
            (f.clone(), pixels)
        })
        .collect()
}

/// Embeds the decoded images of one batch; the undecodable ones become failures.
fn embed(clip: &Clip, decoded: Decoded) -> Result<Batch> {
    let mut batch = Batch::default();
    let mut records = Vec::new();
    let mut pixels = Vec::new();
    for (record, result) in decoded {
        match result {
            Ok(p) => {
                records.push(record);
                pixels.push(p);
            }
            Err(message) => batch.failed.push(Failure {
                path: record.path,
                size: record.size,
                mtime_ns: record.mtime_ns,
                message,
            }),
        }
    }
    if !pixels.is_empty() {
        let embeddings = clip.embed_pixel_list(&pixels)?; // (B, E)
        for (record, vector) in records.into_iter().zip(embeddings.to_vec2::<f32>()?) {
            batch.added.push((record, vector));
        }
    }
    Ok(batch)
}
