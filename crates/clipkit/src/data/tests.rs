//! One contract suite run against every [`PairSource`], then each source's own cases.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::shapes::{Layout, ShapesConfig, ShapesWorld, Split};
use super::*;
use crate::Error;

/// Checks the trait's written contract; returns how many samples were good.
fn check_contract(source: &dyn PairSource) -> usize {
    let n = source.len();
    assert!(!source.is_empty());
    assert!(matches!(source.get(n), Err(Error::InvalidArgument(_))));
    assert!(!source.describe().is_empty());
    let first: Vec<Option<(Vec<u8>, String)>> = (0..n)
        .map(|i| source.get(i).ok().map(|p| (p.image.into_raw(), p.caption)))
        .collect();
    let parallel: Vec<Option<(Vec<u8>, String)>> = (0..n)
        .into_par_iter()
        .rev()
        .map(|i| source.get(i).ok().map(|p| (p.image.into_raw(), p.caption)))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        first, parallel,
        "get is deterministic in any order, on any thread"
    );
    for (i, pair) in first.iter().enumerate() {
        match pair {
            Some((_, caption)) => assert!(!caption.trim().is_empty()),
            None => {
                let err = source
                    .get(i)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(!err.is_empty());
            }
        }
    }
    assert_eq!(source.len(), n);
    first.iter().filter(|p| p.is_some()).count()
}

/// Writes `n` shapes images as PNG into `dir`; returns their file names and captions.
fn write_images(dir: &Path, n: u64) -> Vec<(String, String)> {
    let world = ShapesWorld::new(ShapesConfig::default()).unwrap();
    (0..n)
        .map(|i| {
            let sample = world.sample(i);
            let name = format!("img{i}.png");
            sample.image.save(dir.join(&name)).unwrap();
            (name, sample.caption)
        })
        .collect()
}

fn png_bytes(index: u64) -> Vec<u8> {
    let world = ShapesWorld::new(ShapesConfig::default()).unwrap();
    let mut bytes = Vec::new();
    world
        .sample(index)
        .image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn error_text(source: &dyn PairSource, index: usize) -> String {
    match source.get(index) {
        Ok(_) => panic!("sample {index} should be bad"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shapes_source_keeps_the_contract_and_matches_the_world() {
    let config = ShapesConfig {
        split: Split::Test,
        layout: Layout::Mixed,
        seed: 4,
        ..Default::default()
    };
    let source = ShapesSource::new(config, 12).unwrap();
    assert_eq!(check_contract(&source), 12);
    let sample = ShapesWorld::new(config).unwrap().sample(5);
    let pair = source.get(5).unwrap();
    assert_eq!(pair.image, sample.image);
    assert!(sample.captions.contains(&pair.caption));
    assert!(source.describe().contains("12 samples"));
}

#[test]
fn shapes_source_names_captions_true_of_other_images_of_a_batch() {
    // Whole-scene captions are true of another scene exactly when both show the same
    // groups, which the canonical caption spells out.
    let config = ShapesConfig {
        layout: Layout::SingleGroup,
        ..Default::default()
    };
    let world = ShapesWorld::new(config).unwrap();
    let source = ShapesSource::new(config, 400).unwrap();
    let indices: Vec<usize> = (0..400).step_by(3).collect();
    let canonical: Vec<String> = indices
        .iter()
        .map(|&i| shapes::canonical_caption(&world.scene(i as u64)))
        .collect();
    let mut expected = Vec::new();
    for (c, caption) in canonical.iter().enumerate() {
        for (i, image) in canonical.iter().enumerate() {
            if c != i && caption == image {
                expected.push((c, i));
            }
        }
    }
    assert!(!expected.is_empty(), "single groups repeat in 134 scenes");
    assert_eq!(source.also_true(&indices), expected);

    // Attribute captions ("a red shape") are true of family members that share the
    // attribute, never of the caption's own row.
    let config = ShapesConfig {
        family: 6,
        attribute: 1.0,
        ..Default::default()
    };
    let source = ShapesSource::new(config, 60).unwrap();
    let indices: Vec<usize> = (0..60).collect();
    let pairs = source.also_true(&indices);
    assert!(pairs.len() >= 10, "{pairs:?}");
    let world = ShapesWorld::new(config).unwrap();
    for &(caption, image) in &pairs {
        assert_ne!(caption, image);
        let claim = world.described(caption as u64).claim;
        assert!(claim.holds_for(&world.scene(image as u64)));
    }
}

#[test]
fn sources_that_cannot_tell_name_no_false_negatives() {
    let dir = tempfile::tempdir().unwrap();
    let lines = write_images(dir.path(), 4);
    let jsonl: String = lines
        .iter()
        .map(|(path, caption)| format!("{{\"path\": \"{path}\", \"caption\": \"{caption}\"}}\n"))
        .collect();
    let file = dir.path().join("captions.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    let source = CaptionsFile::open(&file).unwrap();
    assert!(source.also_true(&[0, 1, 2, 3]).is_empty());
}

#[test]
fn captions_jsonl_reads_good_lines_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path(), 3);
    std::fs::write(dir.path().join("broken.png"), b"not a png at all").unwrap();
    let mut text = String::new();
    for (name, caption) in &images {
        text += &serde_json::json!({"path": name, "caption": caption, "extra": 1}).to_string();
        text += "\n";
    }
    text += "{\"path\": \"broken.png\", \"caption\": \"a broken image\"}\n";
    text += "{\"path\": \"img0.png\"}\n";
    text += "this is not json\n\n";
    text += "{\"path\": \"missing.png\", \"caption\": \"gone\"}\n";
    let file = dir.path().join("captions.jsonl");
    std::fs::write(&file, text).unwrap();
    let source = CaptionsFile::open(&file).unwrap();
    assert_eq!(source.len(), 7);
    assert_eq!(check_contract(&source), 3);
    let pair = source.get(1).unwrap();
    assert_eq!(pair.caption, images[1].1);
    assert_eq!(pair.image.dimensions(), (64, 64));
    assert!(error_text(&source, 3).contains("broken.png"));
    assert!(error_text(&source, 4).contains("line 5: no caption"));
    assert!(error_text(&source, 5).contains("line 6"));
    assert!(error_text(&source, 6).contains("missing.png"));
    assert_eq!(source.caption(0), Some(images[0].1.as_str()));
    assert_eq!(source.caption(4), None);
}

#[test]
fn captions_csv_handles_quotes_column_order_and_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("pics");
    std::fs::create_dir(&sub).unwrap();
    write_images(&sub, 2);
    let text = "caption,path\n\
                \"a red circle, and a star\",pics/img0.png\n\
                plain caption,pics/img1.png\n\
                ,pics/img1.png\n\
                only-one-field\n";
    let file = dir.path().join("list.csv");
    std::fs::write(&file, text).unwrap();
    let source = CaptionsFile::open(&file).unwrap();
    assert_eq!(source.len(), 4);
    assert_eq!(check_contract(&source), 2);
    assert_eq!(source.get(0).unwrap().caption, "a red circle, and a star");
    assert!(error_text(&source, 2).contains("empty caption"));
    assert!(error_text(&source, 3).contains("line 5"));
}

#[test]
fn captions_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let no_column = dir.path().join("bad.csv");
    std::fs::write(&no_column, "file,text\na.png,hello\n").unwrap();
    let err = CaptionsFile::open(&no_column).unwrap_err().to_string();
    assert!(err.contains("bad.csv") && err.contains("`path`"), "{err}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    assert!(CaptionsFile::open(&empty)
        .unwrap_err()
        .to_string()
        .contains("empty.jsonl"));
    let missing = dir.path().join("nope.jsonl");
    assert!(CaptionsFile::open(&missing)
        .unwrap_err()
        .to_string()
        .contains("nope.jsonl"));
    assert_eq!(
        CaptionsFormat::detect(Path::new("x.txt"), "  {\"path\": 1}"),
        CaptionsFormat::JsonLines
    );
    assert_eq!(
        CaptionsFormat::detect(Path::new("x.txt"), "path,caption"),
        CaptionsFormat::Csv
    );
}

/// Builds a tar shard from (member path, bytes).
fn write_tar(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.finish().unwrap();
}

fn shard_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("shard-000.tar");
    let b = dir.path().join("shard-001.tar");
    write_tar(
        &a,
        &[
            ("s/000.png", png_bytes(0)),
            ("s/000.txt", b"a first caption\n".to_vec()),
            ("s/000.json", b"{}".to_vec()),
            ("s/001.txt", b"caption of a corrupt image".to_vec()),
            ("s/001.jpg", b"\xFF\xD8garbage".to_vec()),
            ("s/002.png", png_bytes(2)),
        ],
    );
    write_tar(
        &b,
        &[
            ("003.png", png_bytes(3)),
            ("003.txt", b"third".to_vec()),
            ("004.txt", vec![0xFF, 0xFE, 0x00]),
            ("004.webp", png_bytes(4)),
            ("005.TXT", b"only text".to_vec()),
        ],
    );
    (dir, a, b)
}

#[test]
fn webdataset_indexes_shards_and_reports_bad_samples() {
    let (dir, a, b) = shard_dir();
    let source = WebDataset::open(&[dir.path()]).unwrap();
    assert_eq!(source.shards(), &[a.clone(), b.clone()]);
    assert_eq!(source.len(), 6);
    assert_eq!(check_contract(&source), 2);
    let first = source.get(0).unwrap();
    assert_eq!(first.caption, "a first caption");
    let world = ShapesWorld::new(ShapesConfig::default()).unwrap();
    assert_eq!(first.image, world.sample(0).image);
    assert_eq!(source.get(3).unwrap().image, world.sample(3).image);
    assert_eq!(source.key(1), Some("s/001"));
    assert!(
        error_text(&source, 1).contains("s/001.jpg"),
        "corrupt image named"
    );
    assert!(
        error_text(&source, 2).contains("caption"),
        "missing caption"
    );
    assert!(error_text(&source, 4).contains("not UTF-8"));
    assert!(error_text(&source, 5).contains("no image"));
    // Shards given one by one index the same samples.
    assert_eq!(WebDataset::open(&[&a, &b]).unwrap().len(), 6);
}

#[test]
fn webdataset_keeps_samples_before_a_cut_and_refuses_non_tar_files() {
    let (dir, a, _) = shard_dir();
    let bytes = std::fs::read(&a).unwrap();
    let cut = dir.path().join("cut.tar");
    // Drop the two closing blocks and the end of the last member (s/002.png).
    std::fs::write(&cut, &bytes[..bytes.len() - 1024 - 200]).unwrap();
    let source = WebDataset::open(&[&cut]).unwrap();
    assert_eq!(source.get(0).unwrap().caption, "a first caption");
    assert!(source.get(source.len() - 1).is_err());
    let not_tar = dir.path().join("notes.tar");
    std::fs::write(&not_tar, vec![b'x'; 2048]).unwrap();
    let err = WebDataset::open(&[&not_tar]).unwrap_err().to_string();
    assert!(err.contains("notes.tar"), "{err}");
    let err = WebDataset::open(&[dir.path().join("absent.tar")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.tar"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(WebDataset::open(&[empty.path()]).is_err());
}
