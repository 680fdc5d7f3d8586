//! Judging generated images against their prompts, by models and checks that did not guide
//! the generator.
//!
//! For each prompt of a prompt file ([`prompts`]) and its image (named by the prompt's
//! index, [`image_files`]):
//!
//! | measure | how | asked of |
//! | --- | --- | --- |
//! | `clipscore` | CLIP-S ([`clip_score`](crate::eval::clip_score())) with the scoring model | every prompt |
//! | `colour` | pixels: the k colours with most object area are the prompt's k ([`pixels`]) | shapes prompts |
//! | `count` | pixels: objects (connected components) per prompted colour | shapes prompts |
//! | `position` | pixels: the centroid's nearest position word | prompts naming a position |
//! | `judge_colour`, `shape` | the judge CLIP, zero-shot, on the whole image ([`judge`]) | prompts of one kind of object |
//! | `shape` | the judge on each prompted colour's largest object, isolated | prompts of several kinds |
//! | `binding` | both objects found in their colours and each judged the right shape | two objects of two colours |
//!
//! `binding` is attribute binding as GenEval and T2I-CompBench measure it: "a red circle
//! and a blue square" answered with a blue circle and a red square gets the colours and
//! the shapes right but the binding wrong. Each measure is averaged per category over the
//! prompts it is asked of.

pub mod judge;
pub mod pixels;
pub mod prompts;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

pub use judge::{isolate, Judge};
pub use pixels::{check_pixels, find_blobs, Blob, PixelChecks};
pub use prompts::{
    read_prompts, shapes_prompts, truth_scene, write_prompts, GenPrompt, PromptObject,
};

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::image::{has_image_extension, load_rgb, DEFAULT_MAX_PIXELS};

/// The image of each of `count` prompts in `dir`: the file whose stem is the prompt's index
/// (`7.png`, `007.png`, `000007.jpg`). Errors name the folder and every prompt without an
/// image, an index given twice, or an index past the last prompt.
pub fn image_files(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: Vec<Option<PathBuf>> = vec![None; count];
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !path.is_file() || !has_image_extension(&path) {
            continue;
        }
        let Some(index) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let bad = |message: String| Error::Data {
            path: dir.to_path_buf(),
            message,
        };
        let slot = found.get_mut(index).ok_or_else(|| {
            bad(format!(
                "{} is named for prompt {index}, but there are {count} prompts (0..{})",
                path.display(),
                count.saturating_sub(1)
            ))
        })?;
        if let Some(other) = slot {
            return Err(bad(format!(
                "{} and {} are both named for prompt {index}",
                other.display(),
                path.display()
            )));
        }
        *slot = Some(path);
    }
    let missing: Vec<String> = found
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(i, _)| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            message: format!(
                "no image for prompt(s) {} (images are named by prompt index: 0.png, 000001.png…)",
                missing.join(", ")
            ),
        });
    }
    Ok(found.into_iter().flatten().collect())
}

/// One object the pixels found, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundObject {
    /// Its colour word.
    pub colour: &'static str,
    /// Its share of the image's pixels.
    pub area: f64,
    /// Its position word.
    pub position: &'static str,
}

/// Every measure of one prompt's image; `None` where a measure is not asked of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptResult {
    /// The prompt's index.
    pub index: usize,
    /// The prompt.
    pub prompt: String,
    /// Its category.
    pub category: String,
    /// The image judged.
    pub path: PathBuf,
    /// CLIP-S of the image and prompt.
    pub clipscore: Option<f64>,
    /// Pixel colour check.
    pub colour: Option<bool>,
    /// Pixel count check.
    pub count: Option<bool>,
    /// Pixel position check.
    pub position: Option<bool>,
    /// The judge's colour of a one-kind prompt's image.
    pub judge_colour: Option<bool>,
    /// The judge's shape(s).
    pub shape: Option<bool>,
    /// Attribute binding of a two-object, two-colour prompt.
    pub binding: Option<bool>,
    /// The objects the pixels found, largest first.
    pub found: Vec<FoundObject>,
}

/// Means of the measures over some prompts: each over the prompts it was asked of
/// (`None` when none), as fractions 0..1 except CLIPScore.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryRow {
    /// The category (`"all"` for every prompt).
    pub category: String,
    /// Prompts in it.
    pub prompts: usize,
    /// Mean CLIP-S.
    pub clipscore: Option<f64>,
    /// Pixel colour accuracy.
    pub colour: Option<f64>,
    /// Pixel count accuracy.
    pub count: Option<f64>,
    /// Pixel position accuracy.
    pub position: Option<f64>,
    /// Judge colour accuracy.
    pub judge_colour: Option<f64>,
    /// Judge shape accuracy.
    pub shape: Option<f64>,
    /// Binding accuracy.
    pub binding: Option<f64>,
}

impl CategoryRow {
    /// The row of `results`, named `category`.
    pub fn of(category: &str, results: &[&PromptResult]) -> Self {
        let rate = |get: fn(&PromptResult) -> Option<bool>| {
            mean(results.iter().filter_map(|r| get(r).map(f64::from)))
        };
        CategoryRow {
            category: category.to_string(),
            prompts: results.len(),
            clipscore: mean(results.iter().filter_map(|r| r.clipscore)),
            colour: rate(|r| r.colour),
            count: rate(|r| r.count),
            position: rate(|r| r.position),
            judge_colour: rate(|r| r.judge_colour),
            shape: rate(|r| r.shape),
            binding: rate(|r| r.binding),
        }
    }

    /// (name, value) of each measure, in column order, for tables.
    pub fn measures(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("clipscore", self.clipscore),
            ("colour", self.colour),
            ("count", self.count),
            ("position", self.position),
            ("judge_colour", self.judge_colour),
            ("shape", self.shape),
            ("binding", self.binding),
        ]
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Results per prompt and per category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedReport {
    /// One row per category, in order of first appearance, then `"all"`.
    pub categories: Vec<CategoryRow>,
    /// One entry per prompt, in prompt order.
    pub results: Vec<PromptResult>,
}

impl GeneratedReport {
    /// Groups `results` by category.
    pub fn new(results: Vec<PromptResult>) -> Self {
        let mut names: Vec<&str> = Vec::new();
        for r in &results {
            if !names.contains(&r.category.as_str()) {
                names.push(&r.category);
            }
        }
        let mut categories: Vec<CategoryRow> = names
            .iter()
            .map(|name| {
                let members: Vec<&PromptResult> =
                    results.iter().filter(|r| r.category == *name).collect();
                CategoryRow::of(name, &members)
            })
            .collect();
        categories.push(CategoryRow::of("all", &results.iter().collect::<Vec<_>>()));
        GeneratedReport {
            categories,
            results,
        }
    }
}

/// Judges `images[i]` against `prompts[i]`: CLIPScore with `scorer`, shapes checks from the
/// pixels, colour, shape and binding with `judge` (skipped where `None`). `progress(done,
/// total)` hears images judged.
pub fn evaluate_generated(
    prompts: &[GenPrompt],
    images: &[PathBuf],
    scorer: Option<&Clip>,
    judge: Option<&Clip>,
    mut progress: impl FnMut(usize, usize),
) -> Result<GeneratedReport> {
    if prompts.len() != images.len() {
        return Err(Error::InvalidArgument(format!(
            "{} prompts but {} images",
            prompts.len(),
            images.len()
        )));
    }
    let clipscores: Vec<Option<f64>> = match scorer {
        Some(clip) => {
            let texts: Vec<&str> = prompts.iter().map(|p| p.prompt.as_str()).collect();
            crate::eval::clip_score(clip, images, &texts, None)?
                .pairs
                .iter()
                .map(|p| Some(f64::from(p.clipscore)))
                .collect()
        }
        None => vec![None; prompts.len()],
    };
    let judge = judge.map(Judge::new).transpose()?;
    let mut results = Vec::with_capacity(prompts.len());
    for (index, ((prompt, path), clipscore)) in
        prompts.iter().zip(images).zip(clipscores).enumerate()
    {
        let image = load_rgb(path, DEFAULT_MAX_PIXELS)?;
        results.push(judge_one(
            index,
            prompt,
            path,
            &image,
            clipscore,
            judge.as_ref(),
        )?);
        progress(index + 1, prompts.len());
    }
    Ok(GeneratedReport::new(results))
}

/// Every measure of one image.
fn judge_one(
    index: usize,
    prompt: &GenPrompt,
    path: &Path,
    image: &RgbImage,
    clipscore: Option<f64>,
    judge: Option<&Judge>,
) -> Result<PromptResult> {
    let blobs = find_blobs(image);
    let pixel_count = f64::from(image.width()) * f64::from(image.height());
    let mut result = PromptResult {
        index,
        prompt: prompt.prompt.clone(),
        category: prompt.category.clone(),
        path: path.to_path_buf(),
        clipscore,
        colour: None,
        count: None,
        position: None,
        judge_colour: None,
        shape: None,
        binding: None,
        found: blobs
            .iter()
            .map(|b| FoundObject {
                colour: b.colour.name(),
                area: b.area as f64 / pixel_count,
                position: b.position().name(),
            })
            .collect(),
    };
    let objects = &prompt.objects;
    if objects.is_empty() {
        return Ok(result);
    }
    let checks = check_pixels(&blobs, objects);
    result.colour = Some(checks.colour);
    result.count = Some(checks.count);
    result.position = checks.position;
    let Some(judge) = judge else {
        return Ok(result);
    };
    if let [only] = objects.as_slice() {
        let [(colour, shape)] = judge.classify(std::slice::from_ref(image))?[..] else {
            return Err(Error::InvalidArgument("the judge gave no answer".into()));
        };
        result.judge_colour = Some(colour == only.colour);
        result.shape = Some(shape == only.shape);
        return Ok(result);
    }
    // Each prompted object alone: the largest object of its colour, if any.
    let mut right = Vec::with_capacity(objects.len());
    for o in objects {
        right.push(match pixels::largest(&blobs, o.colour) {
            Some(blob) => judge
                .classify(&[isolate(image, blob)])?
                .first()
                .is_some_and(|&(_, shape)| shape == o.shape),
            None => false,
        });
    }
    let all_right = right.iter().all(|&r| r);
    result.shape = Some(all_right);
    let two_colours = objects.len() == 2
        && objects[0].colour != objects[1].colour
        && objects.iter().all(|o| o.count == 1);
    result.binding = two_colours.then_some(all_right);
    Ok(result)
}
