//! Measuring search quality on a captioned folder: queries naming a colour and a shape,
//! relevance read from the captions file's objects, precision@k averaged over queries.
//!
//! The folder holds images and a `captions.jsonl` listing each image's objects (see
//! [`crate::data::Captioned`]); [`crate::data::shapes::write_shapes_folder`] writes the
//! shapes world in this format. A collection may span several such folders (a folder of
//! the shapes world's test split beside one of its unseen split): queries and relevance
//! are read over all of them, and [`mean_by_group`] reports the queries of pairs seen in
//! training apart from those of the held-out pairs.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::clip::Clip;
use crate::data::shapes::{is_held_out, with_article, Colour, Shape};
use crate::data::CaptionsFile;
use crate::error::{Error, Result};
use crate::search::{query_vector, VectorStore};

/// A query with the images (absolute paths) that answer it.
#[derive(Debug, Clone)]
pub struct LabelledQuery {
    /// The text searched for.
    pub text: String,
    /// Paths of the relevant images.
    pub relevant: HashSet<String>,
    /// Whether the query names a shapes-world (colour, shape) pair held out of training
    /// ([`is_held_out`]); false for words outside the shapes world.
    pub held_out: bool,
}

/// Mean precision of a collection's queries in two groups: pairs seen in training and
/// pairs held out of it (`None` for a group without queries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupMeans {
    /// Mean over the queries of pairs seen in training.
    pub seen: Option<f64>,
    /// Mean over the queries of held-out pairs.
    pub held_out: Option<f64>,
}

/// Each group's mean of `precisions` (one per query, in the order of `queries`).
pub fn mean_by_group(queries: &[LabelledQuery], precisions: &[f64]) -> GroupMeans {
    let mean = |held_out: bool| {
        let values: Vec<f64> = queries
            .iter()
            .zip(precisions)
            .filter(|(q, _)| q.held_out == held_out)
            .map(|(_, p)| *p)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    GroupMeans {
        seen: mean(false),
        held_out: mean(true),
    }
}

/// Reads `captions.jsonl` in `folder`; image paths become absolute (the folder is
/// canonicalised) so they compare with the paths an index records. A malformed line is an
/// error naming it: a quality figure over part of the folder would mislead.
pub fn read_captions(folder: &Path) -> Result<CaptionsFile> {
    let root = folder.canonicalize().map_err(|e| Error::io(folder, e))?;
    let captions = CaptionsFile::open(&root.join("captions.jsonl"))?;
    if let Some(message) = captions.first_malformed() {
        return Err(Error::Data {
            path: captions.file().to_path_buf(),
            message: message.to_string(),
        });
    }
    Ok(captions)
}

/// One query "a {colour} {shape}" ("an" before a vowel) per colour–shape pair seen in any
/// of `collection`'s captions files, with at least `min_relevant` images showing such an
/// object, most frequent first, at most `max_queries`.
pub fn colour_shape_queries(
    collection: &[CaptionsFile],
    min_relevant: usize,
    max_queries: usize,
) -> Vec<LabelledQuery> {
    let images: Vec<_> = collection
        .iter()
        .flat_map(CaptionsFile::objects_by_image)
        .collect();
    let pairs: BTreeSet<(String, String)> = images
        .iter()
        .flat_map(|(_, objects)| objects.iter().map(|o| (o.colour.clone(), o.shape.clone())))
        .collect();
    let mut queries: Vec<LabelledQuery> = pairs
        .into_iter()
        .map(|(colour, shape)| LabelledQuery {
            text: with_article(&format!("{colour} {shape}")),
            relevant: images
                .iter()
                .filter(|(_, objects)| {
                    objects
                        .iter()
                        .any(|o| o.colour == colour && o.shape == shape)
                })
                .map(|(p, _)| p.to_string_lossy().into_owned())
                .collect(),
            held_out: match (Colour::from_name(&colour), Shape::from_name(&shape)) {
                (Some(c), Some(s)) => is_held_out(c, s),
                _ => false,
            },
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
) -> Result<Vec<f64>> {
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

    #[test]
    fn queries_pair_colours_with_shapes_and_list_relevant_images() {
        let dir = tempfile::tempdir().unwrap();
        let line = |path: &str, objects: &[(&str, &str)]| {
            let objects: Vec<String> = objects
                .iter()
                .map(|(c, s)| format!(r#"{{"colour": "{c}", "shape": "{s}"}}"#))
                .collect();
            format!(
                r#"{{"path": "{path}", "caption": "x", "objects": [{}]}}"#,
                objects.join(", ")
            )
        };
        let lines = [
            line("a.png", &[("red", "circle"), ("blue", "square")]),
            line("b.png", &[("red", "circle")]),
            line("c.png", &[("blue", "square")]),
            line("d.png", &[("green", "star")]),
        ];
        std::fs::write(dir.path().join("captions.jsonl"), lines.join("\n")).unwrap();
        let captions = read_captions(dir.path()).unwrap();
        let qs = colour_shape_queries(&[captions], 2, 10);
        let texts: Vec<&str> = qs.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(texts, vec!["a blue square", "a red circle"]);
        let root = dir.path().canonicalize().unwrap();
        let relevant = |name: &str| root.join(name).to_string_lossy().into_owned();
        assert!(qs[1].relevant.contains(&relevant("a.png")));
        assert!(qs[1].relevant.contains(&relevant("b.png")));
        assert_eq!(qs[1].relevant.len(), 2);
        assert!(!qs[0].held_out && !qs[1].held_out);
    }

    #[test]
    fn queries_span_folders_and_group_means_split_held_out_pairs() {
        let write = |lines: &[(&str, &str, &str)]| {
            let dir = tempfile::tempdir().unwrap();
            let text: Vec<String> = lines
                .iter()
                .map(|(path, c, s)| {
                    format!(
                        r#"{{"path": "{path}", "caption": "x", "objects": [{{"colour": "{c}", "shape": "{s}"}}]}}"#
                    )
                })
                .collect();
            std::fs::write(dir.path().join("captions.jsonl"), text.join("\n")).unwrap();
            dir
        };
        // Red star is held out of training; red circle is not.
        let seen = write(&[("a.png", "red", "circle"), ("b.png", "red", "star")]);
        let unseen = write(&[("c.png", "red", "star")]);
        let collection = [
            read_captions(seen.path()).unwrap(),
            read_captions(unseen.path()).unwrap(),
        ];
        let qs = colour_shape_queries(&collection, 1, 10);
        let texts: Vec<(&str, usize, bool)> = qs
            .iter()
            .map(|q| (q.text.as_str(), q.relevant.len(), q.held_out))
            .collect();
        assert_eq!(texts, [("a red star", 2, true), ("a red circle", 1, false)]);
        let means = mean_by_group(&qs, &[0.25, 0.75]);
        assert_eq!(means.held_out, Some(0.25));
        assert_eq!(means.seen, Some(0.75));
        assert_eq!(mean_by_group(&qs[1..], &[0.5]).held_out, None);
    }

    #[test]
    fn a_malformed_captions_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"path\": \"a.png\", \"caption\": \"x\"}\n{\"path\": \"b.png\"}\n";
        std::fs::write(dir.path().join("captions.jsonl"), text).unwrap();
        let err = read_captions(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("no caption"),
            "{err}"
        );
    }

    #[test]
    fn precision_counts_missing_places_as_misses() {
        let relevant: HashSet<String> = ["x".to_string()].into();
        assert_eq!(precision_at(2, &["x".into(), "y".into()], &relevant), 0.5);
        assert_eq!(precision_at(4, &["x".into()], &relevant), 0.25);
    }
}
