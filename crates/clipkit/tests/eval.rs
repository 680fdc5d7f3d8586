//! Evaluation mechanics on the random fixture model: every score is a fraction, reports
//! have their documented shape, and files come out readable. (The model is untrained, so
//! the values themselves mean nothing here; `eval::metrics`, `eval::retrieval` and
//! `eval::linear_probe` test the arithmetic on synthetic embeddings.)

mod common;

use std::path::Path;

use clipkit::data::shapes::{Colour, Layout, ShapesConfig, ShapesWorld, Split};
use clipkit::data::{CaptionsFile, ShapesSource};
use clipkit::eval::{self, ImageFolder, ProbeConfig, ShapesEvalConfig};
use clipkit::Clip;

fn fixture_model() -> Clip {
    Clip::load(&common::model_dir("clip-a")).unwrap()
}

fn fraction(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// An ImageFolder of shapes scenes sorted by colour: `red/` and `blue/`, `n` images each.
fn colour_folder(root: &Path, n: usize) {
    let world = ShapesWorld::new(ShapesConfig {
        layout: Layout::SingleObject,
        ..Default::default()
    })
    .unwrap();
    let mut written = [0usize; 2];
    for i in 0.. {
        let sample = world.sample(i);
        let class = match sample.scene.objects[0].colour {
            Colour::Red => 0,
            Colour::Blue => 1,
            _ => continue,
        };
        if written[class] < n {
            let dir = root.join(["red", "blue"][class]);
            std::fs::create_dir_all(&dir).unwrap();
            sample.image.save(dir.join(format!("{i:04}.png"))).unwrap();
            written[class] += 1;
        }
        if written == [n, n] {
            break;
        }
    }
}

#[test]
fn shapes_report_has_its_fractions_under_their_json_keys() {
    let clip = fixture_model();
    let config = ShapesEvalConfig {
        count: 12,
        ..Default::default()
    };
    let mut last = (0, 0);
    let report = eval::evaluate_shapes(&clip, &config, |done, total| last = (done, total)).unwrap();
    assert_eq!(last, (48, 48));
    let json = serde_json::to_value(report).unwrap();
    let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    keys.sort();
    let want = [
        "colour",
        "count",
        "position",
        "shape",
        "top1",
        "unseen_combinations",
        "unseen_parts",
    ];
    assert_eq!(keys, want, "exact keys");
    for (name, value) in report.rows() {
        assert!(fraction(value), "{name} = {value}");
        assert_eq!(json[name].as_f64(), Some(value));
    }
    // A pair is right only where both of its halves are.
    let parts = report.unseen_parts;
    for part in [parts.colour, parts.shape] {
        assert!(
            fraction(part) && part >= report.unseen_combinations,
            "{parts:?}"
        );
    }
    assert!(fraction(parts.colour_alone) && fraction(parts.shape_alone));
    assert!(parts.colour + parts.shape - 1.0 <= report.unseen_combinations + 1e-9);
    assert_eq!(json["unseen_parts"]["shape"].as_f64(), Some(parts.shape));
    // Each held-out pair's own accuracy, and the pairs between them make up the whole.
    let by_pair = json["unseen_parts"]["pairs"].as_object().unwrap();
    assert_eq!(by_pair.len(), 8, "{by_pair:?}");
    let fractions: Vec<f64> = parts.pairs.0.iter().flatten().copied().collect();
    assert!(!fractions.is_empty() && fractions.iter().all(|&f| fraction(f)));
    let (lowest, highest) = fractions
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), &f| (lo.min(f), hi.max(f)));
    assert!(
        lowest <= report.unseen_combinations && report.unseen_combinations <= highest,
        "{fractions:?} around {}",
        report.unseen_combinations
    );
}

#[test]
fn a_shapes_evaluation_of_no_images_is_refused() {
    let config = ShapesEvalConfig {
        count: 0,
        ..Default::default()
    };
    let err = eval::evaluate_shapes(&fixture_model(), &config, |_, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("at least one image"), "{err}");
}

#[test]
fn shapes_probe_and_zero_shot_are_fractions() {
    let clip = fixture_model();
    let config = ShapesEvalConfig {
        count: 10,
        ..Default::default()
    };
    let probe = ProbeConfig {
        iterations: 50,
        ..Default::default()
    };
    let report = eval::probe_shapes(&clip, &config, &probe, |_, _| {}).unwrap();
    for scores in [report.linear_probe, report.zero_shot] {
        for value in [scores.colour, scores.shape, scores.count, scores.position] {
            assert!(fraction(value));
        }
    }
}

#[test]
fn image_folder_zero_shot_counts_every_image_and_draws_a_confusion_png() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), 5);
    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.classes(), ["blue", "red"]);
    let clip = fixture_model();
    let templates = vec!["a photo of a {} shape.".to_string(), "{}".to_string()];
    let report = eval::zeroshot::evaluate_image_folder(&clip, &folder, &templates, |_| {}).unwrap();
    assert_eq!(report.count, 10);
    assert!(fraction(report.top1));
    assert_eq!(report.top5, 1.0, "two classes are always in the top five");
    assert_eq!(report.classes.iter().map(|c| c.count).sum::<usize>(), 10);
    let total: usize = report.confusion.counts.iter().flatten().sum();
    assert_eq!(total, 10);
    let right: usize = (0..2).map(|i| report.confusion.counts[i][i]).sum();
    assert!((right as f64 / 10.0 - report.top1).abs() < 1e-12);
    let png = dir.path().join("confusion.png");
    eval::write_confusion_png(&report.confusion, &png).unwrap();
    let image = image::open(&png).unwrap();
    assert!(image.width() > 100 && image.height() > 100);
}

#[test]
fn image_folder_probe_holds_out_every_fourth_image() {
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), 8);
    let folder = ImageFolder::open(dir.path()).unwrap();
    let clip = fixture_model();
    let templates = vec!["{}".to_string()];
    let report =
        eval::probe_image_folder(&clip, &folder, &templates, &ProbeConfig::default(), |_| {})
            .unwrap();
    assert_eq!((report.train, report.test), (12, 4));
    assert!(fraction(report.linear_probe) && fraction(report.zero_shot));
}

#[test]
fn retrieval_reads_sources_and_skips_bad_samples() {
    let clip = fixture_model();
    let config = ShapesConfig {
        split: Split::Test,
        ..Default::default()
    };
    let shapes = ShapesSource::new(config, 15).unwrap();
    let report = eval::retrieval::evaluate_source(&clip, &shapes, |_| {}).unwrap();
    assert_eq!((report.count, report.skipped), (15, 0));
    for r in [report.image_to_text, report.text_to_image] {
        assert!(fraction(r.r1) && fraction(r.r5) && fraction(r.r10));
        assert!(r.r1 <= r.r5 && r.r5 <= r.r10);
    }
    let dir = tempfile::tempdir().unwrap();
    colour_folder(dir.path(), 2);
    let file = dir.path().join("captions.csv");
    std::fs::write(
        &file,
        "path,caption\nred/missing.png,gone\n".to_string()
            + &ImageFolder::open(dir.path())
                .unwrap()
                .items()
                .iter()
                .map(|(p, c)| {
                    format!(
                        "{},class {c}\n",
                        p.strip_prefix(dir.path()).unwrap().display()
                    )
                })
                .collect::<String>(),
    )
    .unwrap();
    let source = CaptionsFile::open(&file).unwrap();
    let report = eval::retrieval::evaluate_source(&clip, &source, |_| {}).unwrap();
    assert_eq!((report.count, report.skipped), (4, 1));
}

#[test]
fn image_folder_errors_name_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    std::fs::create_dir(dir.path().join("empty_class")).unwrap();
    assert!(ImageFolder::open(dir.path()).is_err());
    assert!(ImageFolder::open(&dir.path().join("absent")).is_err());
}
