//! Search quality held to the line: folders of shapes-world images indexed with the
//! committed quickstart model (`tests/fixtures/models/quickstart`, see its `README.md`),
//! then one query "a {colour} {shape}" per colour–shape pair, precision@10 per query.
//! On 1,000 test-split images the mean over 40 queries must reach 0.9 at every precision
//! (fp32, bf16, int8, w8a8; each its own index). On a mixed
//! collection (600 test-split images beside 300 of the unseen split, whose colour–shape
//! pairs training never showed) the queries of seen pairs and of held-out pairs are held
//! apart, each to the floor the fixture measures. `examples/search_quality.rs` prints the
//! same figures for any model and folders, beside indexing speed.

use std::path::{Path, PathBuf};

use clipkit::data::shapes::{write_shapes_folder, ShapesConfig, ShapesWorld, Split};
use clipkit::eval::search_quality::{
    colour_shape_queries, evaluate, mean_by_group, read_captions, LabelledQuery,
};
use clipkit::model::{LoadOptions, Precision};
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{embedding_identity, open_or_create, StoreLocation};
use clipkit::Clip;

/// Results looked at per query.
const K: usize = 10;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/quickstart")
}

/// Writes `count` images of `split` (72 px, the model's size) into `root/name`.
fn shapes_folder(root: &Path, name: &str, split: Split, seed: u64, count: u64) -> PathBuf {
    let folder = root.join(name);
    let world = ShapesWorld::new(ShapesConfig {
        image_size: 72,
        seed,
        split,
        ..ShapesConfig::default()
    })
    .unwrap();
    write_shapes_folder(&world, &folder, count, |_| {}).unwrap();
    folder
}

/// Indexes `folders` with the quickstart model at `precision` (an index of its own) and
/// returns the queries (at least `K` relevant images each, at most `max_queries`) with
/// their precision@K.
fn search(
    root: &Path,
    folders: &[PathBuf],
    max_queries: usize,
    precision: Precision,
) -> (Vec<LabelledQuery>, Vec<f64>) {
    let options = LoadOptions {
        precision,
        ..LoadOptions::default()
    };
    let clip = Clip::load_with(&model_dir(), options).unwrap();
    let collection: Vec<_> = folders.iter().map(|f| read_captions(f).unwrap()).collect();
    let queries = colour_shape_queries(&collection, K, max_queries);
    let mut store = open_or_create(
        &StoreLocation::Folder(root.join(format!("index-{precision}"))),
        &embedding_identity(&model_dir(), precision).unwrap(),
        clip.embedding_dim(),
    )
    .unwrap();
    let report = indexer::index_folders(
        &clip,
        &mut *store,
        folders,
        &clipkit::search::NamedRoots::default(),
        clipkit::DEFAULT_BATCH_SIZE,
        &mut Quiet,
    )
    .unwrap();
    let images: usize = collection
        .iter()
        .map(|c| c.objects_by_image().count())
        .sum();
    assert_eq!(report.embedded, images);
    let precisions = evaluate(&clip, &*store, &queries, K).unwrap();
    (queries, precisions)
}

/// The queries below `min`, for failure messages.
fn below(queries: &[LabelledQuery], precisions: &[f64], min: f64) -> Vec<String> {
    queries
        .iter()
        .zip(precisions)
        .filter(|(_, p)| **p < min)
        .map(|(q, p)| format!("{:?} {p:.1}", q.text))
        .collect()
}

#[test]
fn quickstart_model_finds_colour_shape_pairs_at_precision_0_9() {
    const QUERIES: usize = 40;
    const MIN_PRECISION: f64 = 0.9;
    let tmp = tempfile::tempdir().unwrap();
    let folders = [shapes_folder(tmp.path(), "shapes", Split::Test, 3, 1000)];
    for precision in Precision::ALL {
        let (queries, precisions) = search(tmp.path(), &folders, QUERIES, precision);
        assert_eq!(queries.len(), QUERIES);
        let mean = precisions.iter().sum::<f64>() / precisions.len() as f64;
        let worst = below(&queries, &precisions, MIN_PRECISION);
        eprintln!(
            "{precision}: mean precision@{K} over {QUERIES} queries: {mean:.3}; below \
             {MIN_PRECISION}: {worst:?}"
        );
        assert!(
            mean >= MIN_PRECISION,
            "{precision}: mean precision@{K} {mean:.3} < {MIN_PRECISION}; below: {worst:?}"
        );
    }
}

#[test]
fn held_out_pairs_in_the_collection_are_measured_apart_from_seen_ones() {
    // The fixture measures 0.785 (seen) and 0.787 (held out; README of the fixture): a
    // drop below either floor is a regression of composition. The target is 0.9.
    const MIN_SEEN: f64 = 0.75;
    const MIN_HELD_OUT: f64 = 0.75;
    let tmp = tempfile::tempdir().unwrap();
    let folders = [
        shapes_folder(tmp.path(), "test", Split::Test, 0, 600),
        shapes_folder(tmp.path(), "unseen", Split::Unseen, 0, 300),
    ];
    let (queries, precisions) = search(tmp.path(), &folders, usize::MAX, Precision::Fp32);
    let held_out = queries.iter().filter(|q| q.held_out).count();
    // Every held-out pair of the unseen split and most seen pairs have ten images.
    assert_eq!(held_out, 8, "{queries:?}");
    assert!(
        queries.len() - held_out >= 40,
        "{} seen queries",
        queries.len() - held_out
    );
    let means = mean_by_group(&queries, &precisions);
    let (seen, unseen) = (means.seen.unwrap(), means.held_out.unwrap());
    eprintln!(
        "mixed collection precision@{K}: seen pairs {seen:.3} over {} queries, held-out pairs \
         {unseen:.3} over {held_out}; below 0.9: {:?}",
        queries.len() - held_out,
        below(&queries, &precisions, 0.9)
    );
    assert!(seen >= MIN_SEEN, "seen pairs: {seen:.3} < {MIN_SEEN}");
    assert!(
        unseen >= MIN_HELD_OUT,
        "held-out pairs: {unseen:.3} < {MIN_HELD_OUT}"
    );
}
