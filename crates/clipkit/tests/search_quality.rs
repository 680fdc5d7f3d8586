//! Search quality held to the line: a folder of shapes-world test images indexed with the
//! committed quickstart model (`tests/fixtures/models/quickstart`, see its `README.md`),
//! then one query "a {colour} {shape}" per colour–shape pair; precision@10 averaged over 40
//! queries must reach 0.9, at every precision (fp32, bf16, int8, w8a8; each its own index).
//! `examples/search_quality.rs` prints the same figure for any model and folder, beside
//! indexing speed.

use std::path::PathBuf;

use clipkit::data::shapes::{write_shapes_folder, ShapesConfig, ShapesWorld, Split};
use clipkit::eval::search_quality::{colour_shape_queries, evaluate, read_captions};
use clipkit::model::{LoadOptions, Precision};
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{embedding_identity, open_or_create, StoreLocation};
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
    let captioned = read_captions(&folder).unwrap();
    assert_eq!(captioned.objects_by_image().count() as u64, IMAGES);
    let queries = colour_shape_queries(&captioned, K, QUERIES);
    assert_eq!(queries.len(), QUERIES);
    for precision in Precision::ALL {
        let options = LoadOptions {
            precision,
            ..LoadOptions::default()
        };
        let clip = Clip::load_with(&model_dir, options).unwrap();
        let mean = mean_precision(&clip, &model_dir, &folder, &queries, tmp.path(), precision);
        eprintln!("{precision}: mean precision@{K} over {QUERIES} queries: {mean:.3}");
    }
}

/// Indexes `folder` into a fresh store for `precision` and returns the queries' mean
/// precision@K, failing below [`MIN_PRECISION`].
fn mean_precision(
    clip: &Clip,
    model_dir: &std::path::Path,
    folder: &std::path::Path,
    queries: &[clipkit::eval::search_quality::LabelledQuery],
    tmp: &std::path::Path,
    precision: Precision,
) -> f64 {
    let mut store = open_or_create(
        &StoreLocation::Folder(tmp.join(format!("index-{precision}"))),
        &embedding_identity(model_dir, precision).unwrap(),
        clip.embedding_dim(),
    )
    .unwrap();
    let report = indexer::index_folders(
        clip,
        &mut *store,
        &[folder.to_path_buf()],
        &clipkit::search::NamedRoots::default(),
        clipkit::DEFAULT_BATCH_SIZE,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(report.embedded as u64, IMAGES);

    let precisions = evaluate(clip, &*store, queries, K).unwrap();
    let mean = precisions.iter().sum::<f64>() / precisions.len() as f64;
    let worst: Vec<String> = queries
        .iter()
        .zip(&precisions)
        .filter(|(_, p)| **p < MIN_PRECISION)
        .map(|(q, p)| format!("{:?} {p:.1}", q.text))
        .collect();
    eprintln!("{precision}: below {MIN_PRECISION}: {worst:?}");
    assert!(
        mean >= MIN_PRECISION,
        "{precision}: mean precision@{K} {mean:.3} < {MIN_PRECISION}; below: {worst:?}"
    );
    mean
}
