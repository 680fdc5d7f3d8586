//! Evaluating a model on the shapes world's held-out streams.
//!
//! Every question is zero-shot: each class is a set of prompts phrased as the captions
//! grammar phrases them (every [`PREFIXES`] prefix × every phrase naming the class),
//! embedded and averaged (prompt ensembling), and an image takes the class whose averaged
//! embedding is most similar to it. With `count` = N:
//!
//! | score | images | classes |
//! | --- | --- | --- |
//! | `colour`, `shape`, `count` | N [`Layout::SingleGroup`] Test scenes (one group, 1–3 identical objects) | 8 colours / 7 shapes / 3 counts, each phrase naming the class with every value of the other two ("two red circles") |
//! | `position` | N [`Layout::SingleObject`] Test scenes | 5 positions ("a red circle on the left", every colour and shape) |
//! | `unseen_combinations` | N SingleGroup [`Split::Unseen`] scenes (held-out colour–shape pairs only) | all 56 colour × shape pairs, over counts |
//! | `unseen_parts` | the same scenes | the chosen pair's colour and shape right apart; colour and shape asked alone, as `colour` and `shape`; the pair accuracy of each held-out pair's scenes (`pairs`) |
//! | `top1` | N [`Layout::Mixed`] Test scenes (1–3 groups) | the distinct canonical captions of those N scenes ("two red circles and a blue star") |
//!
//! `top1` is full-caption classification: right when the chosen caption is the scene's own
//! canonical caption (colours, shapes and counts of every group; sizes and positions are
//! not part of it).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use super::linear_probe::{LinearProbe, ProbeConfig};
use super::metrics;
use crate::clip::Clip;
use crate::data::shapes::{
    canonical_caption, group_phrase, held_out_combinations, Colour, Group, Layout, Position, Scene,
    Shape, ShapesConfig, ShapesWorld, Size, Split, COUNT_WORDS, HELD_OUT_COUNT, MAX_COUNT,
    PREFIXES,
};
use crate::error::{Error, Result};
use crate::zeroshot::ensemble_prompts;

/// What to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapesEvalConfig {
    /// Images per question (default 500).
    pub count: usize,
    /// Seed of the evaluation streams (default 0). Test and Unseen are other streams than
    /// Train whatever the seeds, so any seed gives held-out images.
    pub seed: u64,
    /// Side of the generated images (default 64; the model's preprocessing resizes them).
    pub image_size: u32,
}

impl Default for ShapesEvalConfig {
    fn default() -> Self {
        ShapesEvalConfig {
            count: 500,
            seed: 0,
            image_size: 64,
        }
    }
}

/// Zero-shot accuracies on the held-out shapes streams, fractions in 0..1 (see the module
/// docs for what each one asks). Serialises to these six keys and `unseen_parts`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShapesReport {
    /// Colour of single-group Test scenes, among 8.
    pub colour: f64,
    /// Shape of single-group Test scenes, among 7.
    pub shape: f64,
    /// Count (1–3) of single-group Test scenes.
    pub count: f64,
    /// Position of single-object Test scenes, among 5.
    pub position: f64,
    /// Colour–shape pair of Unseen scenes, among all 56 pairs.
    pub unseen_combinations: f64,
    /// Full-caption classification of mixed Test scenes.
    pub top1: f64,
    /// Which half of the pair chosen for Unseen scenes is right: where composition fails.
    pub unseen_parts: PairParts,
}

/// How often the colour and the shape of a chosen colour–shape pair are right, apart, and
/// how often each is right when asked alone (as `colour` and `shape` ask it of Test scenes):
/// a shape misread even alone is the image side's failure, not only the pair prompt's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairParts {
    /// Fraction of chosen pairs with the scene's colour.
    pub colour: f64,
    /// Fraction of chosen pairs with the scene's shape.
    pub shape: f64,
    /// Colour asked alone, among 8.
    pub colour_alone: f64,
    /// Shape asked alone, among 7.
    pub shape_alone: f64,
    /// Pair accuracy of each held-out pair's scenes apart: composition rarely fails
    /// evenly, one pair can be read every time while another's shape is taken for a
    /// seen partner's.
    pub pairs: HeldOutPairs,
}

/// A fraction for each held-out colour–shape pair, in [`held_out_combinations`] order;
/// `None` for a pair none of the scenes showed. Serialises as a map from the pair's words
/// ("red star") to the fraction, or null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldOutPairs(pub [Option<f64>; HELD_OUT_COUNT]);

impl HeldOutPairs {
    /// Accuracy of `chosen` against `truth` (as [`pair_index`] numbers pairs) over the
    /// scenes of each held-out pair.
    fn measure(chosen: &[usize], truth: &[usize]) -> Self {
        let mut fractions = [None; HELD_OUT_COUNT];
        for (fraction, &(colour, shape)) in fractions.iter_mut().zip(held_out_combinations()) {
            let pair = pair_index(colour.index(), shape.index());
            let (right, seen) = chosen
                .iter()
                .zip(truth)
                .filter(|(_, &t)| t == pair)
                .fold((0usize, 0usize), |(r, n), (&c, _)| {
                    (r + usize::from(c == pair), n + 1)
                });
            *fraction = (seen > 0).then(|| right as f64 / seen as f64);
        }
        HeldOutPairs(fractions)
    }

    /// Each pair's words ("red star") with its fraction, in [`held_out_combinations`] order.
    pub fn named(&self) -> impl Iterator<Item = (String, Option<f64>)> + '_ {
        held_out_combinations()
            .iter()
            .zip(self.0)
            .map(|((colour, shape), fraction)| (format!("{colour} {shape}"), fraction))
    }
}

impl Serialize for HeldOutPairs {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.named())
    }
}

impl ShapesReport {
    /// (name, accuracy) in the order of the JSON keys, for tables.
    pub fn rows(&self) -> [(&'static str, f64); 6] {
        [
            ("colour", self.colour),
            ("shape", self.shape),
            ("count", self.count),
            ("position", self.position),
            ("unseen_combinations", self.unseen_combinations),
            ("top1", self.top1),
        ]
    }
}

/// One attribute a single-group scene has exactly one value of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// The group's colour.
    Colour,
    /// The group's shape.
    Shape,
    /// How many objects (1–3).
    Count,
    /// Where the single object is.
    Position,
}

impl Attribute {
    /// Every attribute.
    pub const ALL: [Attribute; 4] = [
        Attribute::Colour,
        Attribute::Shape,
        Attribute::Count,
        Attribute::Position,
    ];

    /// The attribute's name (a JSON key).
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Colour => "colour",
            Attribute::Shape => "shape",
            Attribute::Count => "count",
            Attribute::Position => "position",
        }
    }

    /// The class names, in index order.
    pub fn classes(self) -> Vec<String> {
        let names: Vec<&str> = match self {
            Attribute::Colour => Colour::ALL.iter().map(|c| c.name()).collect(),
            Attribute::Shape => Shape::ALL.iter().map(|s| s.name()).collect(),
            Attribute::Count => COUNT_WORDS.to_vec(),
            Attribute::Position => Position::ALL.iter().map(|p| p.name()).collect(),
        };
        names.into_iter().map(str::to_string).collect()
    }

    /// The scenes the attribute is asked of: one value per scene.
    pub fn layout(self) -> Layout {
        match self {
            Attribute::Position => Layout::SingleObject,
            _ => Layout::SingleGroup,
        }
    }

    /// The class index of a scene of [`Attribute::layout`]: its first group's value;
    /// `None` for a scene without objects, or a position asked of a group of several.
    pub fn label(self, scene: &Scene) -> Option<usize> {
        let g = scene.groups().first().copied()?;
        match self {
            Attribute::Colour => Some(g.colour.index()),
            Attribute::Shape => Some(g.shape.index()),
            Attribute::Count => Some(g.count - 1),
            Attribute::Position => g.position.map(Position::index),
        }
    }

    /// Labels of generated scenes, which always have one (`usize::MAX`, never right,
    /// otherwise).
    fn labels(self, scenes: &[Scene]) -> Vec<usize> {
        scenes
            .iter()
            .map(|s| self.label(s).unwrap_or(usize::MAX))
            .collect()
    }

    /// The prompts that stand for class `class`: every phrase naming it, under every prefix
    /// (averaged into one class embedding by [`ensemble_prompts`]).
    pub fn prompts(self, class: usize) -> Vec<String> {
        let phrases: Vec<String> = match self {
            Attribute::Colour => every_group(|g| g.colour.index() == class),
            Attribute::Shape => every_group(|g| g.shape.index() == class),
            Attribute::Count => every_group(|g| g.count == class + 1),
            Attribute::Position => Colour::ALL
                .iter()
                .flat_map(|&colour| {
                    Shape::ALL.iter().map(move |&shape| Group {
                        shape,
                        colour,
                        size: Size::Small,
                        count: 1,
                        position: Some(Position::ALL[class]),
                    })
                })
                .map(|g| group_phrase(&g, false, true))
                .collect(),
        };
        with_prefixes(&phrases)
    }
}

/// Plain phrases of every (colour, shape, count) group that `keep` accepts.
fn every_group(keep: impl Fn(&Group) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for &colour in Colour::ALL {
        for &shape in Shape::ALL {
            for count in 1..=MAX_COUNT {
                let g = Group {
                    shape,
                    colour,
                    size: Size::Small,
                    count,
                    position: None,
                };
                if keep(&g) {
                    out.push(group_phrase(&g, false, false));
                }
            }
        }
    }
    out
}

fn with_prefixes(phrases: &[String]) -> Vec<String> {
    PREFIXES
        .iter()
        .flat_map(|p| phrases.iter().map(move |phrase| format!("{p}{phrase}")))
        .collect()
}

/// Texts embedded once and shared by every question.
struct PromptBank {
    index: HashMap<String, usize>,
    texts: Vec<String>,
}

impl PromptBank {
    fn new() -> Self {
        PromptBank {
            index: HashMap::new(),
            texts: Vec::new(),
        }
    }

    /// Registers each class's prompts; returns their rows, class by class.
    fn add(&mut self, classes: Vec<Vec<String>>) -> Vec<Vec<u32>> {
        classes
            .into_iter()
            .map(|prompts| {
                prompts
                    .into_iter()
                    .map(|p| {
                        let next = self.texts.len();
                        let row = *self.index.entry(p.clone()).or_insert(next);
                        if row == next {
                            self.texts.push(p);
                        }
                        row as u32
                    })
                    .collect()
            })
            .collect()
    }
}

/// The class number of a colour–shape pair among all 56, from the colour's and the
/// shape's (`usize::MAX` stays out of range).
fn pair_index(colour: usize, shape: usize) -> usize {
    colour
        .saturating_mul(Shape::ALL.len())
        .saturating_add(shape)
}

/// The nearest class of each unit image embedding (N, E) among class embeddings (C, E).
fn zero_shot_choices(images: &Tensor, classes: &Tensor) -> Result<Vec<usize>> {
    let scores = metrics::rows(&images.matmul(&classes.t()?)?)?;
    Ok(metrics::argmax(&scores))
}

/// Accuracy of [`zero_shot_choices`] against `truth`.
fn zero_shot_accuracy(images: &Tensor, classes: &Tensor, truth: &[usize]) -> Result<f64> {
    Ok(metrics::accuracy(
        &zero_shot_choices(images, classes)?,
        truth,
    ))
}

/// Scenes of one stream and their unit image embeddings (N, E).
struct Embedded {
    scenes: Vec<Scene>,
    embeds: Tensor,
}

/// Generates and embeds samples `0..count` of one stream, reporting images done.
fn embed_stream(
    clip: &Clip,
    config: &ShapesEvalConfig,
    split: Split,
    layout: Layout,
    progress: &mut dyn FnMut(usize),
) -> Result<Embedded> {
    const CHUNK: usize = 256;
    let world = ShapesWorld::new(ShapesConfig {
        image_size: config.image_size,
        seed: config.seed,
        split,
        layout,
        ..ShapesConfig::default()
    })?;
    let mut scenes = Vec::with_capacity(config.count);
    let mut parts = Vec::new();
    for start in (0..config.count).step_by(CHUNK) {
        let end = (start + CHUNK).min(config.count);
        let samples: Vec<_> = (start..end)
            .into_par_iter()
            .map(|i| world.sample(i as u64))
            .collect();
        let images: Vec<_> = samples.iter().map(|s| s.image.clone()).collect();
        parts.push(clip.embed_images(&images)?);
        scenes.extend(samples.into_iter().map(|s| s.scene));
        progress(end - start);
    }
    let embeds = if parts.is_empty() {
        Tensor::zeros(
            (0, clip.embedding_dim()),
            candle_core::DType::F32,
            &Device::Cpu,
        )?
    } else {
        Tensor::cat(&parts, 0)?
    };
    Ok(Embedded { scenes, embeds })
}

/// Runs every question of the module docs. `progress(done, total)` follows the images
/// generated and embedded (4 × `count` in all). A `count` of 0 is refused: no accuracy
/// can be measured on no images.
pub fn evaluate_shapes(
    clip: &Clip,
    config: &ShapesEvalConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<ShapesReport> {
    if config.count == 0 {
        return Err(Error::InvalidArgument(
            "the shapes evaluation needs at least one image per question".into(),
        ));
    }
    let total = 4 * config.count;
    let mut done = 0;
    let mut step = |n: usize| {
        done += n;
        progress(done, total);
    };
    let group = embed_stream(clip, config, Split::Test, Layout::SingleGroup, &mut step)?;
    let object = embed_stream(clip, config, Split::Test, Layout::SingleObject, &mut step)?;
    let unseen = embed_stream(clip, config, Split::Unseen, Layout::SingleGroup, &mut step)?;
    let mixed = embed_stream(clip, config, Split::Test, Layout::Mixed, &mut step)?;

    let mut bank = PromptBank::new();
    let attribute_rows: Vec<Vec<Vec<u32>>> = Attribute::ALL
        .iter()
        .map(|&a| bank.add((0..a.classes().len()).map(|c| a.prompts(c)).collect()))
        .collect();
    let pairs: Vec<(Colour, Shape)> = Colour::ALL
        .iter()
        .flat_map(|&c| Shape::ALL.iter().map(move |&s| (c, s)))
        .collect();
    let pair_rows = bank.add(
        pairs
            .iter()
            .map(|&(c, s)| with_prefixes(&every_group(|g| g.colour == c && g.shape == s)))
            .collect(),
    );
    let mixed_captions: Vec<String> = mixed.scenes.iter().map(canonical_caption).collect();
    let mut candidates = mixed_captions.clone();
    candidates.sort();
    candidates.dedup();
    let caption_rows = bank.add(
        candidates
            .iter()
            .map(|c| with_prefixes(std::slice::from_ref(c)))
            .collect(),
    );
    let text_embeds = clip.embed_texts(&bank.texts)?;

    let attribute_classes: Vec<Tensor> = attribute_rows
        .iter()
        .map(|rows| ensemble_prompts(&text_embeds, rows))
        .collect::<Result<_>>()?;
    // `Attribute::ALL` lists the attributes in declaration order.
    let classes_of = |attribute: Attribute| &attribute_classes[attribute as usize];
    let mut scores = [0.0; 4];
    for (score, attribute) in scores.iter_mut().zip(Attribute::ALL) {
        let data = if attribute == Attribute::Position {
            &object
        } else {
            &group
        };
        let truth = attribute.labels(&data.scenes);
        *score = zero_shot_accuracy(&data.embeds, classes_of(attribute), &truth)?;
    }
    let unseen_truth: Vec<usize> = Attribute::Colour
        .labels(&unseen.scenes)
        .into_iter()
        .zip(Attribute::Shape.labels(&unseen.scenes))
        .map(|(c, s)| pair_index(c, s))
        .collect();
    let pair_classes = ensemble_prompts(&text_embeds, &pair_rows)?;
    let chosen = zero_shot_choices(&unseen.embeds, &pair_classes)?;
    let unseen_combinations = metrics::accuracy(&chosen, &unseen_truth);
    let part = |of: fn(usize) -> usize| {
        let chosen: Vec<usize> = chosen.iter().map(|&p| of(p)).collect();
        let truth: Vec<usize> = unseen_truth.iter().map(|&p| of(p)).collect();
        metrics::accuracy(&chosen, &truth)
    };
    let alone = |attribute: Attribute| {
        let truth = attribute.labels(&unseen.scenes);
        zero_shot_accuracy(&unseen.embeds, classes_of(attribute), &truth)
    };
    let unseen_parts = PairParts {
        colour: part(|pair| pair / Shape::ALL.len()),
        shape: part(|pair| pair % Shape::ALL.len()),
        colour_alone: alone(Attribute::Colour)?,
        shape_alone: alone(Attribute::Shape)?,
        pairs: HeldOutPairs::measure(&chosen, &unseen_truth),
    };
    let caption_truth: Vec<usize> = mixed_captions
        .iter()
        .map(|c| candidates.binary_search(c).unwrap_or(0))
        .collect();
    let top1 = zero_shot_accuracy(
        &mixed.embeds,
        &ensemble_prompts(&text_embeds, &caption_rows)?,
        &caption_truth,
    )?;
    let [colour, shape, count, position] = scores;
    Ok(ShapesReport {
        colour,
        shape,
        count,
        position,
        unseen_combinations,
        top1,
        unseen_parts,
    })
}

/// Accuracy per attribute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AttributeScores {
    /// Colour, among 8.
    pub colour: f64,
    /// Shape, among 7.
    pub shape: f64,
    /// Count, among 3.
    pub count: f64,
    /// Position, among 5.
    pub position: f64,
}

/// A linear probe beside zero-shot, on the same Test images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShapesProbeReport {
    /// Logistic regression trained on `count` Train images per attribute.
    pub linear_probe: AttributeScores,
    /// Zero-shot prompts, as in [`evaluate_shapes`].
    pub zero_shot: AttributeScores,
}

/// For each attribute, trains a [`LinearProbe`] on the embeddings of `count` Train scenes
/// of the attribute's layout and tests it, and the zero-shot prompts, on `count` Test
/// scenes. `progress(done, total)` follows the images embedded (4 × `count`).
pub fn probe_shapes(
    clip: &Clip,
    config: &ShapesEvalConfig,
    probe: &ProbeConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<ShapesProbeReport> {
    let total = 4 * config.count;
    let mut done = 0;
    let mut step = |n: usize| {
        done += n;
        progress(done, total);
    };
    let mut streams = Vec::new();
    for layout in [Layout::SingleGroup, Layout::SingleObject] {
        let train = embed_stream(clip, config, Split::Train, layout, &mut step)?;
        let test = embed_stream(clip, config, Split::Test, layout, &mut step)?;
        streams.push((layout, train, test));
    }
    let mut bank = PromptBank::new();
    let rows: Vec<Vec<Vec<u32>>> = Attribute::ALL
        .iter()
        .map(|&a| bank.add((0..a.classes().len()).map(|c| a.prompts(c)).collect()))
        .collect();
    let text_embeds = clip.embed_texts(&bank.texts)?;
    let mut probed = [0.0; 4];
    let mut zero = [0.0; 4];
    for (i, attribute) in Attribute::ALL.into_iter().enumerate() {
        let Some((_, train, test)) = streams.iter().find(|s| s.0 == attribute.layout()) else {
            continue;
        };
        let labels = |e: &Embedded| attribute.labels(&e.scenes);
        let classes = attribute.classes().len();
        let fitted = LinearProbe::fit(&train.embeds, &labels(train), classes, probe)?;
        probed[i] = fitted.accuracy(&test.embeds, &labels(test))?;
        zero[i] = zero_shot_accuracy(
            &test.embeds,
            &ensemble_prompts(&text_embeds, &rows[i])?,
            &labels(test),
        )?;
    }
    let scores = |a: [f64; 4]| AttributeScores {
        colour: a[0],
        shape: a[1],
        count: a[2],
        position: a[3],
    };
    Ok(ShapesProbeReport {
        linear_probe: scores(probed),
        zero_shot: scores(zero),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(colour: Colour, shape: Shape) -> usize {
        pair_index(colour.index(), shape.index())
    }

    #[test]
    fn held_out_pairs_are_scored_apart_and_named_in_order() {
        let red_star = pair(Colour::Red, Shape::Star);
        let red_circle = pair(Colour::Red, Shape::Circle);
        let blue_triangle = pair(Colour::Blue, Shape::Triangle);
        let truth = [red_star, red_star, red_star, red_star, blue_triangle];
        let chosen = [red_star, red_circle, red_star, red_star, blue_triangle];
        let pairs = HeldOutPairs::measure(&chosen, &truth);
        let named: Vec<(String, Option<f64>)> = pairs.named().collect();
        assert_eq!(named.len(), HELD_OUT_COUNT);
        assert_eq!(named[0], ("red star".to_owned(), Some(0.75)));
        assert_eq!(named[2], ("blue triangle".to_owned(), Some(1.0)));
        assert_eq!(named[1], ("green heart".to_owned(), None));
        let json = serde_json::to_value(pairs).unwrap();
        assert_eq!(json["red star"].as_f64(), Some(0.75));
        assert!(json["green heart"].is_null());
        assert_eq!(json.as_object().map(|m| m.len()), Some(HELD_OUT_COUNT));
    }
}
