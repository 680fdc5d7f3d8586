//! The procedural checks validated on the shapes world's own renders (ground truth known),
//! the prompt set's coverage, and prompt-file and image-folder errors.

use super::pixels::{check_pixels, find_blobs};
use super::prompts::{
    self, read_prompts, shapes_prompts, truth_scene, write_prompts, PromptObject,
};
use super::*;
use crate::data::shapes::{
    held_out_combinations, is_held_out, render, Colour, Layout, Position, Scene, Shape,
    ShapesConfig, ShapesWorld, Split,
};

/// The prompt objects a rendered scene shows (its groups; a lone object keeps its
/// position when its colour is the only one of its kind, so "its colour's largest object"
/// is that object).
fn truth_objects(scene: &Scene) -> Vec<PromptObject> {
    let groups = scene.groups();
    groups
        .iter()
        .map(|g| {
            let alone = groups.iter().filter(|o| o.colour == g.colour).count() == 1;
            PromptObject {
                colour: g.colour,
                shape: g.shape,
                count: g.count,
                position: if alone { g.position } else { None },
            }
        })
        .collect()
}

/// Accuracy of each pixel check over `n` mixed scenes of `split` drawn at `side` pixels:
/// (colour, count, position) with position over the scenes that name one.
fn pixel_accuracy(split: Split, side: u32, n: u64) -> (f64, f64, f64) {
    let world = ShapesWorld::new(ShapesConfig {
        image_size: side,
        split,
        seed: 11,
        layout: Layout::Mixed,
        ..ShapesConfig::default()
    })
    .unwrap();
    let (mut colour, mut count, mut position, mut positioned) = (0, 0, 0, 0);
    for i in 0..n {
        let sample = world.sample(i);
        let checks = check_pixels(&find_blobs(&sample.image), &truth_objects(&sample.scene));
        colour += usize::from(checks.colour);
        count += usize::from(checks.count);
        if let Some(p) = checks.position {
            positioned += 1;
            position += usize::from(p);
        }
    }
    assert!(
        positioned > n as usize / 3,
        "too few scenes with a position"
    );
    let n = n as f64;
    (
        colour as f64 / n,
        count as f64 / n,
        position as f64 / positioned as f64,
    )
}

#[test]
fn pixel_checks_read_the_shapes_worlds_own_images_right() {
    // 400 mixed test scenes at the quickstart model's 72 px, 200 unseen-pair scenes at
    // 224 px (the generator's size) and 200 at 32 px (coarse pixels): the checks must
    // agree with the scenes' truth nearly always, or they cannot judge generated images.
    for (split, side, n) in [
        (Split::Test, 72, 400),
        (Split::Unseen, 224, 200),
        (Split::Test, 32, 200),
    ] {
        let (colour, count, position) = pixel_accuracy(split, side, n);
        eprintln!(
            "{side} px {split:?}: colour {colour:.3}  count {count:.3}  position {position:.3}"
        );
        assert!(colour >= 0.99, "{side} px: colour accuracy {colour}");
        assert!(count >= 0.99, "{side} px: count accuracy {count}");
        assert!(position >= 0.99, "{side} px: position accuracy {position}");
    }
}

#[test]
fn pixel_checks_fail_the_wrong_scene() {
    let red_circle = [PromptObject {
        colour: Colour::Red,
        shape: Shape::Circle,
        count: 1,
        position: Some(Position::Left),
    }];
    let image = |objects: &[PromptObject]| render(&truth_scene(objects).unwrap(), 72);
    let right = check_pixels(&find_blobs(&image(&red_circle)), &red_circle);
    assert_eq!(
        right,
        PixelChecks {
            colour: true,
            count: true,
            position: Some(true)
        }
    );
    let blue_on_the_right = [PromptObject {
        colour: Colour::Blue,
        position: Some(Position::Right),
        ..red_circle[0]
    }];
    let wrong = check_pixels(&find_blobs(&image(&blue_on_the_right)), &red_circle);
    assert_eq!(
        wrong,
        PixelChecks {
            colour: false,
            count: false,
            position: Some(false)
        }
    );
    let two_reds = [PromptObject {
        count: 2,
        position: None,
        ..red_circle[0]
    }];
    let miscounted = check_pixels(&find_blobs(&image(&two_reds)), &red_circle);
    assert!(miscounted.colour && !miscounted.count);
    // A blank image has no object at all.
    let blank = image::RgbImage::from_pixel(72, 72, image::Rgb([128, 128, 128]));
    assert!(find_blobs(&blank).is_empty());
    assert!(!check_pixels(&[], &red_circle).colour);
}

#[test]
fn the_prompt_set_covers_the_world() {
    let set = shapes_prompts();
    assert!(set.len() >= 48, "{} prompts", set.len());
    let objects: Vec<&PromptObject> = set.iter().flat_map(|p| &p.objects).collect();
    for &c in Colour::ALL {
        assert!(objects.iter().any(|o| o.colour == c), "no {c} prompt");
    }
    for &s in Shape::ALL {
        assert!(objects.iter().any(|o| o.shape == s), "no {s} prompt");
    }
    for &p in Position::ALL {
        assert!(
            objects.iter().any(|o| o.position == Some(p)),
            "no prompt {}",
            p.phrase()
        );
    }
    for &(c, s) in held_out_combinations() {
        assert!(set.iter().any(|p| p.category == prompts::UNSEEN_PAIR
            && p.objects.iter().any(|o| (o.colour, o.shape) == (c, s))));
    }
    for n in 1..=3 {
        assert!(set
            .iter()
            .any(|p| p.objects.iter().map(|o| o.count).sum::<usize>() == n));
    }
    let mut texts: Vec<&str> = set.iter().map(|p| p.prompt.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), set.len(), "a prompt is listed twice");
    for p in &set {
        let held = p.objects.iter().any(|o| is_held_out(o.colour, o.shape));
        assert_eq!(held, p.category == prompts::UNSEEN_PAIR, "{}", p.prompt);
        assert!(
            truth_scene(&p.objects).is_some(),
            "{} cannot be drawn",
            p.prompt
        );
        if p.category == prompts::BINDING {
            assert!(p.objects.len() == 2 && p.objects[0].colour != p.objects[1].colour);
            assert!(p.objects[0].shape != p.objects[1].shape);
        }
    }
    let binding = set.iter().find(|p| p.category == prompts::BINDING).unwrap();
    assert_eq!(binding.prompt, "a red circle and a yellow star");
}

#[test]
fn every_truth_render_passes_the_pixel_checks() {
    for p in shapes_prompts() {
        for side in [72, 224] {
            let image = render(&truth_scene(&p.objects).unwrap(), side);
            let checks = check_pixels(&find_blobs(&image), &p.objects);
            assert!(
                checks.colour && checks.count,
                "{} at {side} px: {checks:?}",
                p.prompt
            );
            assert_ne!(checks.position, Some(false), "{} at {side} px", p.prompt);
        }
    }
}

#[test]
fn prompt_files_round_trip_and_bad_lines_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.jsonl");
    let set = shapes_prompts();
    write_prompts(&path, &set).unwrap();
    assert_eq!(read_prompts(&path).unwrap(), set);

    std::fs::write(
        &path,
        "{\"prompt\": \"a cat\", \"category\": \"animals\"}\n\n",
    )
    .unwrap();
    let plain = read_prompts(&path).unwrap();
    assert_eq!(plain.len(), 1);
    assert!(plain[0].objects.is_empty());

    for (line, says) in [
        ("{\"prompt\": \"a\"}", "line 2: not a prompt line"),
        ("{\"prompt\": \" \", \"category\": \"x\"}", "line 2: empty prompt"),
        (
            "{\"prompt\": \"a\", \"category\": \"x\", \"objects\": [{\"colour\": \"teal\", \"shape\": \"circle\", \"count\": 1}]}",
            "line 2: unknown colour \"teal\"",
        ),
        (
            "{\"prompt\": \"a\", \"category\": \"x\", \"objects\": [{\"colour\": \"red\", \"shape\": \"circle\", \"count\": 4}]}",
            "line 2: count 4 is outside 1..=3",
        ),
        (
            "{\"prompt\": \"a\", \"category\": \"x\", \"objects\": [{\"colour\": \"red\", \"shape\": \"circle\", \"count\": 2, \"position\": \"left\"}]}",
            "line 2: a position is only said of a lone object",
        ),
    ] {
        std::fs::write(&path, format!("{{\"prompt\": \"ok\", \"category\": \"x\"}}\n{line}\n")).unwrap();
        let message = read_prompts(&path).unwrap_err().to_string();
        assert!(message.contains("prompts.jsonl") && message.contains(says), "{message}");
    }
    std::fs::write(&path, "\n").unwrap();
    assert!(read_prompts(&path)
        .unwrap_err()
        .to_string()
        .contains("no prompts"));
}

#[test]
fn images_are_found_by_prompt_index() {
    let dir = tempfile::tempdir().unwrap();
    let blank = image::RgbImage::from_pixel(16, 16, image::Rgb([0, 0, 0]));
    for name in ["0.png", "001.png", "notes.txt", "cover.png"] {
        blank
            .save_with_format(dir.path().join(name), image::ImageFormat::Png)
            .unwrap();
    }
    let found = image_files(dir.path(), 2).unwrap();
    assert_eq!(
        found,
        vec![dir.path().join("0.png"), dir.path().join("001.png")]
    );

    let message = image_files(dir.path(), 3).unwrap_err().to_string();
    assert!(message.contains("no image for prompt(s) 2"), "{message}");
    let message = image_files(dir.path(), 1).unwrap_err().to_string();
    assert!(
        message.contains("named for prompt 1, but there are 1 prompts"),
        "{message}"
    );
    blank
        .save_with_format(dir.path().join("00.png"), image::ImageFormat::Png)
        .unwrap();
    let message = image_files(dir.path(), 2).unwrap_err().to_string();
    assert!(message.contains("both named for prompt 0"), "{message}");
}

#[test]
fn category_rows_average_what_was_asked() {
    let result = |category: &str, colour: Option<bool>, binding: Option<bool>| PromptResult {
        index: 0,
        prompt: String::new(),
        category: category.into(),
        path: PathBuf::new(),
        clipscore: Some(0.5),
        colour,
        count: None,
        position: None,
        judge_colour: None,
        shape: None,
        binding,
        found: Vec::new(),
    };
    let report = GeneratedReport::new(vec![
        result("a", Some(true), None),
        result("b", Some(false), Some(true)),
        result("a", Some(false), None),
    ]);
    let names: Vec<&str> = report
        .categories
        .iter()
        .map(|c| c.category.as_str())
        .collect();
    assert_eq!(names, ["a", "b", "all"]);
    assert_eq!(report.categories[0].colour, Some(0.5));
    assert_eq!(report.categories[0].binding, None);
    assert_eq!(report.categories[1].binding, Some(1.0));
    assert_eq!(report.categories[2].prompts, 3);
    assert_eq!(report.categories[2].colour, Some(1.0 / 3.0));
    assert_eq!(report.categories[2].clipscore, Some(0.5));
}
