//! Search quality held to the line: a folder of shapes-world test images indexed with the
//! committed quickstart model (`tests/fixtures/models/quickstart`, see its `README.md`),
//! then one query "a {colour} {shape}" per colour–shape pair; precision@10 averaged over 40
//! queries must reach 0.9. `examples/search_quality.rs` prints the same figure for any model
//! and folder, beside indexing speed.

use std::path::PathBuf;

use clipkit::data::shapes::{write_shapes_folder, ShapesConfig, ShapesWorld, Split};
use clipkit::eval::search_quality::{colour_shape_queries, evaluate, read_captions};
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{model_identity, open_or_create, StoreLocation};
use clipkit::Clip;

/// Images indexed; queries asked; results looked at per query; mean precision required.
const IMAGES: u64 = 1000;
const QUERIES: usize = 40;
const K: usize = 10;
const MIN_PRECISION: f64 = 0.9;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

#[test]
fn quickstart_model_finds_colour_shape_pairs_at_precision_0_9() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("shapes");
    let world = ShapesWorld::new(ShapesConfig {
        image_size: 72,
        seed: 3,
        split: Split::Test,
        ..ShapesConfig::default()
    })
    .unwrap();
    write_shapes_folder(&world, &folder, IMAGES, |_| {}).unwrap();

    let model_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/quickstart");
    let clip = Clip::load(&model_dir).unwrap();
    let captioned = read_captions(&folder).unwrap();
    assert_eq!(captioned.objects_by_image().count() as u64, IMAGES);
    let queries = colour_shape_queries(&captioned, K, QUERIES);
    assert_eq!(queries.len(), QUERIES);
    let mut store = open_or_create(
        &StoreLocation::Folder(tmp.path().join("index")),
        &model_identity(&model_dir).unwrap(),
        clip.embedding_dim(),
    )
    .unwrap();
    let report = indexer::index_folders(
        &clip,
        &mut *store,
        &[folder],
        &clipkit::search::NamedRoots::default(),
        clipkit::DEFAULT_BATCH_SIZE,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(report.embedded as u64, IMAGES);

    let precisions = evaluate(&clip, &*store, &queries, K).unwrap();
    let mean = precisions.iter().sum::<f64>() / precisions.len() as f64;
    let worst: Vec<String> = queries
        .iter()
        .zip(&precisions)
        .filter(|(_, p)| **p < MIN_PRECISION)
        .map(|(q, p)| format!("{:?} {p:.1}", q.text))
        .collect();
    eprintln!(
        "mean precision@{K} over {QUERIES} queries: {mean:.3}; below {MIN_PRECISION}: {worst:?}"
    );
    assert!(
        mean >= MIN_PRECISION,
        "mean precision@{K} {mean:.3} < {MIN_PRECISION}; below: {worst:?}"
    );
}
