//! Measuring search quality on a captioned folder: queries naming a colour and a shape,
//! relevance read from the captions file, precision@k averaged over queries.
//!
//! The folder holds images and `captions.jsonl`, one JSON object per line:
//! `{"path", "caption", "objects": [{"shape", "colour", "size", "position"}]}`, `path`
//! relative to the folder. [`write_shapes_folder`] writes the shapes world in this format.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::ImageFormat;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ask::query_vector;
use super::error::{Result, SearchError};
use super::store::VectorStore;
use crate::clip::Clip;
use crate::data::shapes::{with_article, Sample, ShapesWorld};

/// One captioned image: a line of `captions.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Captioned {
    /// Path relative to the folder.
    pub path: String,
    /// Its caption.
    #[serde(default)]
    pub caption: String,
    /// The objects it shows.
    #[serde(default)]
    pub objects: Vec<Object>,
}

impl Captioned {
    /// The line for a shapes-world sample stored at `path` (relative to the folder).
    pub fn of_sample(path: String, sample: &Sample) -> Captioned {
        Captioned {
            path,
            caption: sample.caption.clone(),
            objects: sample
                .scene
                .objects
                .iter()
                .map(|o| Object {
                    shape: o.shape.name().to_string(),
                    colour: o.colour.name().to_string(),
                    size: o.size.name().to_string(),
                    position: o.position.name().to_string(),
                })
                .collect(),
        }
    }
}

/// One object in a captioned image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    /// Shape name ("circle").
    pub shape: String,
    /// Colour name ("red").
    pub colour: String,
    /// Size name ("small"; empty when the file does not say).
    #[serde(default)]
    pub size: String,
    /// Position name ("left"; empty when the file does not say).
    #[serde(default)]
    pub position: String,
}

/// A query with the images (absolute paths) that answer it.
#[derive(Debug, Clone)]
pub struct LabelledQuery {
    /// The text searched for.
    pub text: String,
    /// Paths of the relevant images.
    pub relevant: HashSet<String>,
}

/// Samples rendered in parallel per round of [`write_shapes_folder`]; their lines are
/// appended in index order after each round.
const WRITE_ROUND: u64 = 1024;

/// Writes samples `0..count` of `world` into `folder` (created if missing) as
/// `images/NNNNNN.png` (six digits or more) and `captions.jsonl`, rendering in parallel;
/// `progress` hears how many are written after each round. Returns the captions file.
pub fn write_shapes_folder(
    world: &ShapesWorld,
    folder: &Path,
    count: u64,
    mut progress: impl FnMut(u64),
) -> Result<PathBuf> {
    let images = folder.join("images");
    std::fs::create_dir_all(&images).map_err(|e| SearchError::io(&images, e))?;
    let captions_path = folder.join("captions.jsonl");
    let write_error = |e: std::io::Error| SearchError::io(&captions_path, e);
    let mut captions = BufWriter::new(File::create(&captions_path).map_err(write_error)?);
    let digits = count.saturating_sub(1).max(1).to_string().len().max(6);
    let mut start = 0;
    while start < count {
        let end = (start + WRITE_ROUND).min(count);
        let lines: Vec<String> = (start..end)
            .into_par_iter()
            .map(|index| {
                let sample = world.sample(index);
                let relative = format!("images/{index:0digits$}.png");
                let path = folder.join(&relative);
                sample
                    .image
                    .save_with_format(&path, ImageFormat::Png)
                    .map_err(|e| SearchError::io(&path, std::io::Error::other(e)))?;
                let line = Captioned::of_sample(relative, &sample);
                serde_json::to_string(&line).map_err(|e| write_error(e.into()))
            })
            .collect::<Result<_>>()?;
        for line in lines {
            writeln!(captions, "{line}").map_err(write_error)?;
        }
        progress(end);
        start = end;
    }
    captions.flush().map_err(write_error)?;
    Ok(captions_path)
}

/// Reads `captions.jsonl` in `folder`; paths become absolute (canonical) so they compare
/// with the paths an index records.
pub fn read_captions(folder: &Path) -> Result<Vec<(PathBuf, Captioned)>> {
    let file = folder.join("captions.jsonl");
    let text = std::fs::read_to_string(&file).map_err(|e| SearchError::io(&file, e))?;
    let root = folder
        .canonicalize()
        .map_err(|e| SearchError::io(folder, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let c: Captioned = serde_json::from_str(line)
                .map_err(|e| SearchError::corrupt(&file, format!("line {}: {e}", i + 1)))?;
            Ok((root.join(&c.path), c))
        })
        .collect()
}

/// One query "a {colour} {shape}" ("an" before a vowel) per colour–shape pair seen, with at
/// least `min_relevant` images showing such an object, most frequent first, at most
/// `max_queries`.
pub fn colour_shape_queries(
    captions: &[(PathBuf, Captioned)],
    min_relevant: usize,
    max_queries: usize,
) -> Vec<LabelledQuery> {
    let pairs: BTreeSet<(String, String)> = captions
        .iter()
        .flat_map(|(_, c)| {
            c.objects
                .iter()
                .map(|o| (o.colour.clone(), o.shape.clone()))
        })
        .collect();
    let mut queries: Vec<LabelledQuery> = pairs
        .into_iter()
        .map(|(colour, shape)| LabelledQuery {
            text: with_article(&format!("{colour} {shape}")),
            relevant: captions
                .iter()
                .filter(|(_, c)| {
                    c.objects
                        .iter()
                        .any(|o| o.colour == colour && o.shape == shape)
                })
                .map(|(p, _)| p.to_string_lossy().into_owned())
                .collect(),
        })
        .filter(|q| q.relevant.len() >= min_relevant)
        .collect();
    queries.sort_by(|a, b| {
        b.relevant
            .len()
            .cmp(&a.relevant.len())
            .then(a.text.cmp(&b.text))
    });
    queries.truncate(max_queries);
    queries
}

/// Fraction of the first `k` results that are relevant (a short list counts its missing
/// places as misses).
pub fn precision_at(k: usize, results: &[String], relevant: &HashSet<String>) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let hits = results
        .iter()
        .take(k)
        .filter(|p| relevant.contains(*p))
        .count();
    hits as f64 / k as f64
}

/// Each query's precision@`k` when searched as one phrase in `store` with `clip`.
pub fn evaluate(
    clip: &Clip,
    store: &dyn VectorStore,
    queries: &[LabelledQuery],
    k: usize,
) -> crate::Result<Vec<f64>> {
    queries
        .iter()
        .map(|q| {
            let phrase = format!("\"{}\"", q.text);
            let vector = query_vector(clip, Some(&phrase), &[] as &[PathBuf], 1.0)?;
            let results: Vec<String> = store
                .search(&vector, k)?
                .into_iter()
                .map(|h| h.path)
                .collect();
            Ok(precision_at(k, &results, &q.relevant))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captioned(path: &str, objects: &[(&str, &str)]) -> (PathBuf, Captioned) {
        let objects = objects
            .iter()
            .map(|(c, s)| Object {
                colour: c.to_string(),
                shape: s.to_string(),
                size: String::new(),
                position: String::new(),
            })
            .collect();
        (
            PathBuf::from(path),
            Captioned {
                path: path.into(),
                caption: String::new(),
                objects,
            },
        )
    }

    #[test]
    fn queries_pair_colours_with_shapes_and_list_relevant_images() {
        let caps = vec![
            captioned("/a.png", &[("red", "circle"), ("blue", "square")]),
            captioned("/b.png", &[("red", "circle")]),
            captioned("/c.png", &[("blue", "square")]),
            captioned("/d.png", &[("green", "star")]),
        ];
        let qs = colour_shape_queries(&caps, 2, 10);
        let texts: Vec<&str> = qs.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(texts, vec!["a blue square", "a red circle"]);
        assert!(qs[1].relevant.contains("/a.png") && qs[1].relevant.contains("/b.png"));
    }

    #[test]
    fn precision_counts_missing_places_as_misses() {
        let relevant: HashSet<String> = ["x".to_string()].into();
        assert_eq!(precision_at(2, &["x".into(), "y".into()], &relevant), 0.5);
        assert_eq!(precision_at(4, &["x".into()], &relevant), 0.25);
    }
}
