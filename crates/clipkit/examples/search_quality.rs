//! Search quality and indexing speed on a captioned image folder (see
//! `clipkit::eval::search_quality` for the `captions.jsonl` it needs).
//!
//! ```text
//! cargo run --release --example search_quality -- MODEL_DIR IMAGE_DIR[:IMAGE_DIR…] [QUERIES] [MIN_PRECISION]
//! # QUERIES defaults to 40 (at least 30 are asked for), MIN_PRECISION to none
//! ```
//!
//! IMAGE_DIR may list several captioned folders, joined as `PATH` joins them (`:` on Unix):
//! a collection of the shapes world's test split beside its unseen split measures whether
//! held-out colour–shape pairs disturb the search (means printed per group of queries).
//! Indexes the folders into a fresh temporary store, timing the whole pipeline (decode →
//! preprocess → embed → commit) and, separately, the bare embedding of the same images
//! already preprocessed, so the pipeline's overhead shows. Then runs one query
//! "a {colour} {shape}" per colour–shape pair seen in the captions and prints each query's
//! precision@10, their mean, and the means over pairs seen in training and over held-out
//! pairs. With MIN_PRECISION, exits with status 1 when the mean is
//! lower. `tests/search_quality.rs` holds the committed quickstart model to 0.9 this way.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use clipkit::eval::search_quality::{colour_shape_queries, evaluate, mean_by_group, read_captions};
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{model_identity, open_or_create, StoreLocation};
use clipkit::Clip;

const K: usize = 10;
const MIN_QUERIES: usize = 30;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _total: usize) {}
    fn advance(&mut self, _done: usize) {}
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model_dir), Some(images)) = (args.first(), args.get(1)) else {
        return Err(
            "usage: search_quality MODEL_DIR IMAGE_DIR[:IMAGE_DIR…] [QUERIES] [MIN_PRECISION]"
                .into(),
        );
    };
    let max_queries: usize = args.get(2).map_or(Ok(40), |s| s.parse())?;
    let min_precision: Option<f64> = args.get(3).map(|s| s.parse()).transpose()?;
    let model_dir = PathBuf::from(model_dir);
    let folders: Vec<PathBuf> = std::env::split_paths(images).collect();

    let clip = Clip::load(&model_dir)?;
    let collection = folders
        .iter()
        .map(|f| read_captions(f))
        .collect::<Result<Vec<_>, _>>()?;
    let store_dir = tempfile::tempdir()?;
    let mut store = open_or_create(
        &StoreLocation::Folder(store_dir.path().to_path_buf()),
        &model_identity(&model_dir)?,
        clip.embedding_dim(),
    )?;
    let report = indexer::index_folders(
        &clip,
        &mut *store,
        &folders,
        &clipkit::search::NamedRoots::default(),
        clipkit::DEFAULT_BATCH_SIZE,
        &mut Quiet,
    )?;
    let pipeline_rate = report.embedded as f64 / report.embed_seconds;
    let bare_rate = bare_embedding_rate(
        &clip,
        &collection
            .iter()
            .flat_map(|c| c.objects_by_image().map(|(p, _)| p.to_path_buf()))
            .collect::<Vec<_>>(),
    )?;
    println!("threads {}", rayon::current_num_threads());
    println!(
        "indexing: {} images, {:.1} images/s decode → stored; bare embedding {:.1} images/s ({:.0}% of the time is outside the model)",
        report.embedded,
        pipeline_rate,
        bare_rate,
        100.0 * (1.0 - pipeline_rate / bare_rate).max(0.0)
    );
    if !report.failed.is_empty() {
        println!("{} images failed to index", report.failed.len());
    }

    let queries = colour_shape_queries(&collection, K, max_queries);
    if queries.len() < MIN_QUERIES {
        println!(
            "warning: only {} colour–shape pairs have at least {K} images; {MIN_QUERIES} queries are asked for",
            queries.len()
        );
    }
    let precisions = evaluate(&clip, &*store, &queries, K)?;
    for (q, p) in queries.iter().zip(&precisions) {
        println!(
            "  p@{K} {p:.2}  {:?} ({} relevant){}",
            q.text,
            q.relevant.len(),
            if q.held_out { ", held out" } else { "" }
        );
    }
    let total: f64 = precisions.iter().sum();
    let mean = total / queries.len().max(1) as f64;
    println!(
        "mean precision@{K} over {} queries: {mean:.3}",
        queries.len()
    );
    let groups = mean_by_group(&queries, &precisions);
    for (name, value, held_out) in [
        ("pairs seen in training", groups.seen, false),
        ("held-out pairs", groups.held_out, true),
    ] {
        let count = queries.iter().filter(|q| q.held_out == held_out).count();
        if let Some(value) = value {
            println!("  {name}: {value:.3} over {count} queries");
        }
    }
    if let Some(min) = min_precision.filter(|m| mean < *m) {
        println!("FAIL: below {min}");
        std::process::exit(1);
    }
    Ok(())
}

/// Images per second through the model alone: the images are decoded and preprocessed
/// first (untimed), then embedded in batches (timed).
fn bare_embedding_rate(clip: &Clip, paths: &[PathBuf]) -> Result<f64, Box<dyn Error>> {
    let pixels: Vec<Tensor> = paths
        .iter()
        .map(|p| clip.load_image(p).and_then(|i| clip.preprocess(&i)))
        .filter_map(Result::ok)
        .collect();
    let started = Instant::now();
    clip.embed_pixel_list(&pixels)?;
    Ok(pixels.len() as f64 / started.elapsed().as_secs_f64())
}
