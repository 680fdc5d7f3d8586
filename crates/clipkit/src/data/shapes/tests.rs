use std::collections::BTreeSet;

use super::*;

fn world(split: Split, layout: Layout, seed: u64) -> ShapesWorld {
    ShapesWorld::new(ShapesConfig {
        image_size: 64,
        seed,
        split,
        layout,
        ..ShapesConfig::default()
    })
    .unwrap()
}

fn words(caption: &str) -> Vec<&str> {
    caption
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn same_seed_and_index_give_identical_pixels_and_captions() {
    let a = world(Split::Train, Layout::Mixed, 7);
    let b = world(Split::Train, Layout::Mixed, 7);
    for index in [0, 1, 2, 1000, u64::MAX] {
        let (x, y) = (a.sample(index), b.sample(index));
        assert_eq!(x.image, y.image, "index {index}");
        assert_eq!(x.caption, y.caption);
        assert_eq!(x.captions, y.captions);
        assert_eq!(x.scene, a.scene(index), "scene() agrees with sample()");
    }
    // Out-of-order access gives the same sample as in-order access.
    let late = a.sample(5);
    for i in 0..5 {
        a.sample(i);
    }
    assert_eq!(late.image, a.sample(5).image);
}

#[test]
fn seeds_splits_and_indices_give_different_streams() {
    let base = world(Split::Train, Layout::Mixed, 1);
    let other_seed = world(Split::Train, Layout::Mixed, 2);
    let test = world(Split::Test, Layout::Mixed, 1);
    let differ = |a: &ShapesWorld, b: &ShapesWorld| {
        (0..50)
            .filter(|&i| a.sample(i).image != b.sample(i).image)
            .count()
    };
    assert!(differ(&base, &other_seed) >= 48);
    assert!(differ(&base, &test) >= 48);
    let distinct: BTreeSet<Vec<u8>> = (0..50).map(|i| base.sample(i).image.into_raw()).collect();
    assert!(distinct.len() >= 48);
}

#[test]
fn train_and_test_never_show_a_held_out_combination() {
    for split in [Split::Train, Split::Test] {
        let w = world(split, Layout::Mixed, 3);
        for i in 0..3000 {
            for o in w.scene(i).objects {
                assert!(
                    !is_held_out(o.colour, o.shape),
                    "{split:?} sample {i} shows a held-out {} {}",
                    o.colour,
                    o.shape
                );
            }
        }
    }
}

#[test]
fn unseen_shows_only_and_every_held_out_combination() {
    let w = world(Split::Unseen, Layout::Mixed, 3);
    let mut seen = BTreeSet::new();
    for i in 0..500 {
        for o in w.scene(i).objects {
            assert!(is_held_out(o.colour, o.shape));
            seen.insert((o.colour, o.shape));
        }
    }
    assert_eq!(seen.len(), held_out_combinations().len());
}

#[test]
fn held_out_combinations_cover_every_colour_once_and_every_shape() {
    let held = held_out_combinations();
    let colours: BTreeSet<Colour> = held.iter().map(|c| c.0).collect();
    let shapes: BTreeSet<Shape> = held.iter().map(|c| c.1).collect();
    assert_eq!(colours.len(), Colour::ALL.len());
    assert_eq!(held.len(), Colour::ALL.len());
    assert_eq!(shapes.len(), Shape::ALL.len());
}

#[test]
fn layouts_keep_their_promises() {
    let mut counts = BTreeSet::new();
    let mut group_numbers = BTreeSet::new();
    let single_group = world(Split::Test, Layout::SingleGroup, 4);
    let single_object = world(Split::Test, Layout::SingleObject, 4);
    let mixed = world(Split::Train, Layout::Mixed, 4);
    for i in 0..300 {
        let groups = single_group.scene(i).groups();
        assert_eq!(groups.len(), 1);
        counts.insert(groups[0].count);
        assert_eq!(single_object.scene(i).objects.len(), 1);
        let scene = mixed.scene(i);
        assert!((1..=MAX_COUNT).contains(&scene.objects.len()));
        group_numbers.insert(scene.groups().len());
        let positions: BTreeSet<Position> = scene.objects.iter().map(|o| o.position).collect();
        assert_eq!(positions.len(), scene.objects.len(), "distinct positions");
        for g in scene.groups() {
            let sizes: BTreeSet<Size> = scene
                .objects
                .iter()
                .filter(|o| o.colour == g.colour && o.shape == g.shape)
                .map(|o| o.size)
                .collect();
            assert_eq!(sizes.len(), 1, "a group shares one size");
        }
    }
    assert_eq!(counts, BTreeSet::from([1, 2, 3]));
    assert_eq!(group_numbers, BTreeSet::from([1, 2, 3]));
}

#[test]
fn captions_name_exactly_the_scene_colours_shapes_and_counts() {
    let w = world(Split::Train, Layout::Mixed, 5);
    for i in 0..300 {
        let sample = w.sample(i);
        let groups = sample.scene.groups();
        assert!(sample.captions.contains(&sample.caption));
        assert!(sample.captions.len() >= 8, "several phrasings");
        for caption in &sample.captions {
            let ws = words(caption);
            let colours: BTreeSet<Colour> =
                ws.iter().filter_map(|w| Colour::from_name(w)).collect();
            let want: BTreeSet<Colour> = groups.iter().map(|g| g.colour).collect();
            assert_eq!(colours, want, "{caption:?} vs {groups:?}");
            for g in &groups {
                let noun = if g.count == 1 {
                    g.shape.name()
                } else {
                    g.shape.plural()
                };
                let phrase = format!("{} {noun}", g.colour);
                assert!(caption.contains(&phrase), "{caption:?} lacks {phrase:?}");
                if g.count > 1 {
                    let counted = ws.iter().any(|w| *w == COUNT_WORDS[g.count - 1]);
                    assert!(counted, "{caption:?} lacks the count {}", g.count);
                }
            }
            for (count, word) in COUNT_WORDS.iter().enumerate().skip(1) {
                if ws.contains(word) {
                    assert!(groups.iter().any(|g| g.count == count + 1), "{caption:?}");
                }
            }
            for p in Position::ALL {
                if caption.contains(p.phrase()) {
                    assert!(
                        groups.iter().any(|g| g.position == Some(*p)),
                        "{caption:?}: nothing alone {}",
                        p.phrase()
                    );
                }
            }
            for s in Size::ALL {
                if ws.contains(&s.name()) {
                    assert!(groups.iter().any(|g| g.size == *s), "{caption:?}");
                }
            }
            assert!(!caption.contains("a orange"), "{caption:?}");
        }
    }
}

#[test]
fn grammar_examples_read_as_intended() {
    let object = |shape, colour, size, position| Object {
        shape,
        colour,
        size,
        position,
        centre: position.anchor(),
        angle: 0.0,
        rgb: colour.rgb(),
    };
    let scene = Scene {
        background: BACKGROUNDS[0],
        objects: vec![
            object(Shape::Circle, Colour::Red, Size::Small, Position::Left),
            object(Shape::Star, Colour::Orange, Size::Large, Position::Top),
            object(Shape::Circle, Colour::Red, Size::Small, Position::Right),
        ],
    };
    let all = captions(&scene);
    for want in [
        "two red circles and an orange star",
        "a photo of two small red circles and a large orange star",
        "an orange star and two red circles",
        "two red circles and an orange star at the top",
        "there are two red circles and an orange star",
        "there is an orange star and two red circles",
    ] {
        assert!(
            all.iter().any(|c| c == want),
            "missing {want:?} in {all:#?}"
        );
    }
    assert_eq!(
        canonical_caption(&scene),
        "two red circles and an orange star"
    );
    let single = Scene {
        background: BACKGROUNDS[0],
        objects: vec![object(
            Shape::Square,
            Colour::Blue,
            Size::Small,
            Position::Left,
        )],
    };
    let all = captions(&single);
    for want in [
        "a blue square",
        "a small blue square on the left",
        "one blue square",
        "a photo of a blue square",
    ] {
        assert!(
            all.iter().any(|c| c == want),
            "missing {want:?} in {all:#?}"
        );
    }
}

#[test]
fn each_object_is_drawn_in_its_colour_at_its_position_on_the_background() {
    let w = world(Split::Train, Layout::Mixed, 6);
    for i in 0..200 {
        let sample = w.sample(i);
        let near = |p: &image::Rgb<u8>, rgb: [u8; 3]| {
            p.0.iter()
                .zip(rgb)
                .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 2)
        };
        for o in &sample.scene.objects {
            let (x, y) = ((o.centre.0 * 64.0) as u32, (o.centre.1 * 64.0) as u32);
            let pixel = sample.image.get_pixel(x, y);
            assert!(
                near(pixel, o.rgb),
                "sample {i}: {pixel:?} at ({x},{y}) vs {o:?}"
            );
            let (ax, ay) = o.position.anchor();
            assert!((o.centre.0 - ax).abs() < 0.03 && (o.centre.1 - ay).abs() < 0.03);
        }
        for (x, y) in [(0, 0), (63, 0), (0, 63), (63, 63)] {
            let pixel = sample.image.get_pixel(x, y);
            assert!(near(pixel, sample.scene.background), "corner of sample {i}");
        }
    }
}

#[test]
fn objects_never_touch() {
    let w = world(Split::Train, Layout::Mixed, 8);
    for i in 0..500 {
        let objects = w.scene(i).objects;
        for (k, a) in objects.iter().enumerate() {
            for b in &objects[k + 1..] {
                let d =
                    ((a.centre.0 - b.centre.0).powi(2) + (a.centre.1 - b.centre.1).powi(2)).sqrt();
                let reach = 1.05 * (a.size.radius() + b.size.radius());
                assert!(d > reach, "sample {i}: {a:?} touches {b:?}");
            }
        }
    }
}

#[test]
fn large_objects_cover_more_pixels_than_small_ones() {
    let w = world(Split::Test, Layout::SingleObject, 9);
    let mut small = Vec::new();
    let mut large = Vec::new();
    for i in 0..200 {
        let sample = w.sample(i);
        let o = &sample.scene.objects[0];
        let bg = sample.scene.background;
        let covered = sample
            .image
            .pixels()
            .filter(|p| p.0.iter().zip(bg).any(|(a, b)| a.abs_diff(b) > 24))
            .count();
        match o.size {
            Size::Small => small.push(covered),
            Size::Large => large.push(covered),
        }
    }
    let biggest_small = small.iter().max().copied().unwrap_or(0);
    let smallest_large = large.iter().min().copied().unwrap_or(0);
    assert!(
        smallest_large > biggest_small,
        "large {smallest_large} vs small {biggest_small}"
    );
}

#[test]
fn image_size_is_checked_and_honoured() {
    assert!(ShapesWorld::new(ShapesConfig {
        image_size: 0,
        ..Default::default()
    })
    .is_err());
    let w = ShapesWorld::new(ShapesConfig {
        image_size: 96,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(w.sample(0).image.dimensions(), (96, 96));
}

#[test]
fn a_family_varies_the_first_colour_and_shape_on_a_grid() {
    let config = |layout| ShapesConfig {
        layout,
        family: 4,
        ..Default::default()
    };
    let mixed = ShapesWorld::new(config(Layout::Mixed)).unwrap();
    let single = ShapesWorld::new(config(Layout::SingleGroup)).unwrap();
    let held_out = held_out_combinations();
    for k in 0..40u64 {
        let pairs: Vec<_> = (0..4)
            .map(|m| {
                let o = &single.scene(4 * k + m).objects[0];
                (o.colour, o.shape)
            })
            .collect();
        // Members 0/1 and 2/3 differ in colour only, 0/2 and 1/3 in shape only.
        assert!(
            pairs[0].0 != pairs[1].0 && pairs[0].1 == pairs[1].1,
            "{pairs:?}"
        );
        assert!(
            pairs[0].0 == pairs[2].0 && pairs[0].1 != pairs[2].1,
            "{pairs:?}"
        );
        assert_eq!(pairs[3], (pairs[1].0, pairs[2].1), "{pairs:?}");

        let members: Vec<Scene> = (0..4).map(|m| mixed.scene(4 * k + m)).collect();
        for scene in &members {
            let reference = &members[0];
            assert_eq!(scene.background, reference.background, "family {k}");
            assert_eq!(scene.objects.len(), reference.objects.len(), "family {k}");
            for (o, r) in scene.objects.iter().zip(&reference.objects) {
                assert_eq!(
                    (o.size, o.position, o.centre),
                    (r.size, r.position, r.centre),
                    "family {k}"
                );
                assert!(!held_out.contains(&(o.colour, o.shape)), "train split only");
            }
            assert_eq!(scene.groups().len(), reference.groups().len(), "family {k}");
        }
    }
    // The next family is another layout; the Unseen split, which has no grid, still works.
    assert_ne!(mixed.scene(0).background, mixed.scene(4).background);
    let unseen = ShapesWorld::new(ShapesConfig {
        split: Split::Unseen,
        ..config(Layout::Mixed)
    })
    .unwrap();
    for i in 0..40 {
        for o in unseen.scene(i).objects {
            assert!(held_out.contains(&(o.colour, o.shape)));
        }
    }
    assert!(ShapesWorld::new(ShapesConfig {
        family: MAX_FAMILY + 1,
        ..Default::default()
    })
    .is_err());
}

#[test]
fn one_group_captions_name_the_varied_group_so_family_members_stay_apart() {
    let world = ShapesWorld::new(ShapesConfig {
        family: 6,
        one_group: 1.0,
        ..Default::default()
    })
    .unwrap();
    let mut multi = 0;
    for k in 0..40u64 {
        let mut named = Vec::new();
        for m in 0..6 {
            let sample = world.sample(6 * k + m);
            let groups = sample.scene.groups();
            if groups.len() == 1 {
                assert!(sample.captions.contains(&sample.caption));
                continue;
            }
            multi += 1;
            assert!(
                !sample.captions.contains(&sample.caption),
                "{}",
                sample.caption
            );
            let ws = words(&sample.caption);
            let colours: Vec<Colour> = ws.iter().filter_map(|w| Colour::from_name(w)).collect();
            let [colour] = colours[..] else {
                panic!("{:?} names {colours:?}", sample.caption);
            };
            let shapes: Vec<Shape> = ws
                .iter()
                .filter_map(|w| {
                    Shape::ALL
                        .iter()
                        .find(|s| s.name() == *w || s.plural() == *w)
                })
                .copied()
                .collect();
            let g = groups
                .iter()
                .find(|g| g.colour == colour && shapes == [g.shape])
                .unwrap_or_else(|| panic!("{:?} vs {groups:?}", sample.caption));
            let phrasings = one_group_captions(g);
            assert!(phrasings.contains(&sample.caption));
            named.push((g.colour, g.shape));
        }
        // The grid gives every member its own first group, and that is the one named.
        let distinct: BTreeSet<_> = named.iter().collect();
        assert_eq!(distinct.len(), named.len(), "family {k}: {named:?}");
    }
    assert!(multi > 100, "{multi} scenes of several groups");
    assert!(ShapesWorld::new(ShapesConfig {
        one_group: 1.5,
        ..Default::default()
    })
    .is_err());
}

/// The shape a caption word names, singular or plural.
fn shape_word(word: &str) -> Option<Shape> {
    Shape::ALL
        .iter()
        .copied()
        .find(|s| s.name() == word || s.plural() == word)
}

#[test]
fn attribute_captions_name_one_attribute_and_count_every_object_with_it() {
    let world = ShapesWorld::new(ShapesConfig {
        attribute: 1.0,
        ..Default::default()
    })
    .unwrap();
    let count_of = |word: &str| match word {
        "a" | "an" => 1,
        w => COUNT_WORDS
            .iter()
            .position(|c| *c == w)
            .map_or(0, |i| i + 1),
    };
    for index in 0..300 {
        let sample = world.sample(index);
        let scene = &sample.scene;
        assert!(
            !sample.captions.contains(&sample.caption),
            "{}",
            sample.caption
        );
        let ws = words(&sample.caption);
        let colours: Vec<Colour> = ws.iter().filter_map(|w| Colour::from_name(w)).collect();
        let shapes: Vec<Shape> = ws.iter().filter_map(|w| shape_word(w)).collect();
        // The last count word: "a photo of two stars" counts two.
        let count = ws.iter().rev().map(|w| count_of(w)).find(|&c| c > 0);
        let (expected, named) = match (&colours[..], &shapes[..]) {
            ([colour], []) => {
                assert!(ws.contains(&"shape") || ws.contains(&"shapes"), "{ws:?}");
                let n = scene.objects.iter().filter(|o| o.colour == *colour).count();
                (n, format!("{colour}"))
            }
            ([], [shape]) => {
                let n = scene.objects.iter().filter(|o| o.shape == *shape).count();
                (n, format!("{shape}"))
            }
            _ => panic!("{:?} names {colours:?} and {shapes:?}", sample.caption),
        };
        assert!(expected >= 1, "{:?} names {named}, absent", sample.caption);
        assert_eq!(count, Some(expected), "{:?} of {scene:?}", sample.caption);
        let focus = scene.groups();
        assert!(focus
            .iter()
            .any(|g| attribute_captions(scene, g).contains(&sample.caption)));
    }
    assert!(ShapesWorld::new(ShapesConfig {
        attribute: -0.1,
        ..Default::default()
    })
    .is_err());
}

#[test]
fn binding_swaps_trade_two_groups_shapes_and_leave_other_members_alone() {
    let plain = ShapesWorld::new(ShapesConfig {
        family: 6,
        ..Default::default()
    })
    .unwrap();
    let swapping = ShapesWorld::new(ShapesConfig {
        family: 6,
        swap: 1.0,
        ..Default::default()
    })
    .unwrap();
    let mut swaps = 0;
    for index in 0..600u64 {
        let (before, after) = (plain.scene(index), swapping.scene(index));
        if index % 2 == 0 {
            assert_eq!(before, after, "even member {index} untouched");
            continue;
        }
        if after == before {
            continue; // No swap possible: the member keeps its own scene.
        }
        swaps += 1;
        let partner = plain.scene(index - 1);
        assert_eq!(after.background, partner.background);
        assert_eq!(after.objects.len(), partner.objects.len());
        let mut changed = BTreeSet::new();
        for (a, p) in after.objects.iter().zip(&partner.objects) {
            assert_eq!(
                (a.colour, a.position, a.size),
                (p.colour, p.position, p.size)
            );
            assert!(!is_held_out(a.colour, a.shape), "{a:?} is held out");
            if a.shape != p.shape {
                changed.insert((p.colour, p.shape, a.shape));
            }
        }
        // Exactly two groups traded shapes: (c0, s0, s1) and (c1, s1, s0).
        let changed: Vec<_> = changed.into_iter().collect();
        let [(c0, s0, s1), (c1, t0, t1)] = changed[..] else {
            panic!("member {index}: {changed:?}");
        };
        assert!(c0 != c1 && s0 == t1 && s1 == t0, "{changed:?}");
        let mut pairs: Vec<_> = after.groups().iter().map(|g| (g.colour, g.shape)).collect();
        let n = pairs.len();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), n, "groups stay distinct pairs");
    }
    assert!(swaps > 50, "{swaps} swaps");
}

#[test]
fn a_colour_spread_moves_fills_only_and_keeps_each_nearest_its_own_colour() {
    let config = ShapesConfig {
        family: 6,
        one_group: 0.8,
        ..Default::default()
    };
    let plain = ShapesWorld::new(config).unwrap();
    let spread = ShapesWorld::new(ShapesConfig {
        colour_spread: 60,
        ..config
    })
    .unwrap();
    let (mut objects, mut beyond_jitter) = (0, 0);
    for index in 0..300u64 {
        let (before, after) = (plain.described(index), spread.described(index));
        assert_eq!(before.caption, after.caption, "sample {index}");
        assert_eq!(before.scene.background, after.scene.background);
        assert_eq!(before.scene.objects.len(), after.scene.objects.len());
        for (b, a) in before.scene.objects.iter().zip(&after.scene.objects) {
            assert_eq!((b.shape, b.colour, b.size), (a.shape, a.colour, a.size));
            assert_eq!((b.centre, b.angle), (a.centre, a.angle));
            for object in [b, a] {
                assert_eq!(Colour::nearest(object.rgb).0, object.colour, "{object:?}");
            }
            let nominal = a.colour.rgb();
            let moved = (0..3)
                .map(|c| (i16::from(a.rgb[c]) - i16::from(nominal[c])).abs())
                .max()
                .unwrap_or(0);
            assert!(moved <= 60, "{a:?} moved {moved} levels");
            let contrast = rgb_distance(a.rgb, after.scene.background);
            assert!(contrast >= 80.0, "{a:?} on {:?}", after.scene.background);
            objects += 1;
            beyond_jitter += usize::from(moved > 10);
        }
    }
    assert!(
        beyond_jitter * 2 > objects,
        "{beyond_jitter} of {objects} spread"
    );
}

/// A scene of (shape, colour) objects, small and at successive positions.
fn scene_of(objects: &[(Shape, Colour)]) -> Scene {
    let positions = [Position::Left, Position::Right, Position::Top];
    Scene {
        background: BACKGROUNDS[0],
        objects: objects
            .iter()
            .zip(positions)
            .map(|(&(shape, colour), position)| Object {
                shape,
                colour,
                size: Size::Small,
                position,
                centre: position.anchor(),
                angle: 0.0,
                rgb: colour.rgb(),
            })
            .collect(),
    }
}

#[test]
fn claims_hold_for_exactly_the_scenes_their_captions_describe() {
    use Colour::{Blue, Red};
    use Shape::{Circle, Star};
    let circle_and_star = scene_of(&[(Circle, Red), (Star, Blue)]);
    let circle = scene_of(&[(Circle, Red)]);
    let two_stars = scene_of(&[(Star, Red), (Star, Blue)]);
    let two_circles = scene_of(&[(Circle, Red), (Circle, Red)]);
    let scenes = [&circle_and_star, &circle, &two_stars, &two_circles];
    let red_circle = circle_and_star.groups()[0];
    // (claim, which of `scenes` it is true of)
    let cases = [
        // "a red circle and a blue star"
        (Claim::scene(&circle_and_star), [true, false, false, false]),
        // "a red circle", whatever else is there
        (Claim::group(&red_circle), [true, true, false, false]),
        // "a red shape": exactly one red object
        (
            Claim::colour(&circle_and_star, Red),
            [true, true, true, false],
        ),
        // "a star": exactly one star
        (
            Claim::shape(&circle_and_star, Star),
            [true, false, false, false],
        ),
        // "two circles"
        (
            Claim::shape(&two_circles, Circle),
            [false, false, false, true],
        ),
    ];
    for (claim, expected) in cases {
        let got: Vec<bool> = scenes.iter().map(|s| claim.holds_for(s)).collect();
        assert_eq!(got, expected, "{claim:?}");
    }
}

#[test]
fn every_caption_drawn_is_claimed_true_of_its_own_scene() {
    let configs = [
        ShapesConfig::default(),
        ShapesConfig {
            family: 6,
            one_group: 1.0,
            ..Default::default()
        },
        ShapesConfig {
            family: 6,
            one_group: 0.8,
            attribute: 1.0,
            swap: 0.5,
            ..Default::default()
        },
    ];
    for config in configs {
        let world = ShapesWorld::new(config).unwrap();
        for index in 0..300 {
            let described = world.described(index);
            let sample = world.sample(index);
            assert_eq!(described.caption, sample.caption);
            assert_eq!(described.scene, sample.scene);
            assert!(
                described.claim.holds_for(&described.scene),
                "{:?} vs {:?}",
                described.caption,
                described.scene
            );
        }
    }
}
