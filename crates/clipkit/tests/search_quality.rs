//! The quality harness end to end on a tiny captioned folder: captions read, colour–shape
//! queries derived, the folder indexed and each query's precision@k measured. The fixture
//! model is random, so only the plumbing is checked here; the quickstart model's precision
//! is what `examples/search_quality.rs` reports.

use std::io::Write;
use std::path::PathBuf;

use clipkit::search::indexer::{self, Progress};
use clipkit::search::quality::{colour_shape_queries, evaluate, read_captions};
use clipkit::search::{model_identity, EmbeddedStore};
use clipkit::Clip;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

#[test]
fn quality_harness_runs_on_a_captioned_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("shapes");
    std::fs::create_dir_all(&folder).unwrap();
    let colours = [("red", [220u8, 30, 30]), ("blue", [30, 30, 220])];
    let mut captions = std::fs::File::create(folder.join("captions.jsonl")).unwrap();
    for i in 0..24 {
        let (name, rgb) = colours[i % 2];
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let inside = (8..24).contains(&x) && (8..24).contains(&y);
            image::Rgb(if inside { rgb } else { [255, 255, 255] })
        });
        let file = format!("{i:02}.png");
        img.save(folder.join(&file)).unwrap();
        let line = serde_json::json!({
            "path": file,
            "caption": format!("a {name} square"),
            "objects": [{"shape": "square", "colour": name, "size": "large", "position": "centre"}],
        });
        writeln!(captions, "{line}").unwrap();
    }
    drop(captions);

    let model_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-a");
    let clip = Clip::load(&model_dir).unwrap();
    let captioned = read_captions(&folder).unwrap();
    assert_eq!(captioned.len(), 24);
    let queries = colour_shape_queries(&captioned, 10, 40);
    assert_eq!(queries.len(), 2);
    let store_dir = tmp.path().join("index");
    let mut store = EmbeddedStore::open_or_create(
        &store_dir,
        &model_identity(&model_dir).unwrap(),
        clip.embedding_dim(),
    )
    .unwrap();
    indexer::index_folders(&clip, &mut store, &[folder], 8, &mut Quiet).unwrap();
    let precisions = evaluate(&clip, &store, &queries, 10).unwrap();
    assert_eq!(precisions.len(), 2);
    assert!(
        precisions.iter().all(|p| (0.0..=1.0).contains(p)),
        "{precisions:?}"
    );
}
