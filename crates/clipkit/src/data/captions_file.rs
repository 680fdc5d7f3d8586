//! A folder of images described by a captions file: the one reader of `captions.jsonl`.
//!
//! JSON Lines: one [`Captioned`] object per line (`{"path", "caption", "objects"}`; the
//! objects are optional, other fields ignored), as `clipkit data shapes` writes it. Or CSV
//! with a header naming `path` and `caption` columns. Image paths are relative to the
//! captions file's folder unless absolute.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::{out_of_range, Pair, PairSource};
use crate::error::{Error, Result};
use crate::image::{load_rgb, DEFAULT_MAX_PIXELS};

/// How a captions file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionsFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header row.
    Csv,
}

impl CaptionsFormat {
    /// The format by extension (`.jsonl`, `.ndjson`, `.json` / `.csv`), else by content: a
    /// first non-blank character `{` means JSON Lines.
    pub fn detect(path: &Path, text: &str) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl" | "ndjson" | "json") => CaptionsFormat::JsonLines,
            Some("csv") => CaptionsFormat::Csv,
            _ if text.trim_start().starts_with('{') => CaptionsFormat::JsonLines,
            _ => CaptionsFormat::Csv,
        }
    }
}

/// One line of a JSON Lines captions file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Captioned {
    /// Image path, relative to the captions file's folder unless absolute.
    pub path: String,
    /// Its caption.
    pub caption: String,
    /// The objects it shows (empty when the file does not say).
    #[serde(default)]
    pub objects: Vec<CaptionedObject>,
}

/// One object in a captioned image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionedObject {
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

/// One indexed sample: its image path, caption and objects, or why its line is unusable.
#[derive(Debug, Clone)]
enum Entry {
    Good {
        image: PathBuf,
        caption: String,
        objects: Vec<CaptionedObject>,
    },
    Bad {
        message: String,
    },
}

/// Images listed in a captions file, as a [`PairSource`].
#[derive(Debug, Clone)]
pub struct CaptionsFile {
    file: PathBuf,
    entries: Vec<Entry>,
    max_pixels: u64,
}

/// A line as read: every field optional, so a missing one is reported by name.
#[derive(Deserialize)]
struct JsonLine {
    path: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    objects: Vec<CaptionedObject>,
}

impl CaptionsFile {
    /// Reads and indexes `file`. Fails when the file cannot be read, when a CSV header
    /// lacks `path` or `caption`, or when the file lists no sample; a malformed line
    /// becomes a bad sample that [`PairSource::get`] reports.
    pub fn open(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let root = file.parent().unwrap_or(Path::new("")).to_path_buf();
        let rows = match CaptionsFormat::detect(file, &text) {
            CaptionsFormat::JsonLines => json_rows(&text),
            CaptionsFormat::Csv => csv_rows(file, &text)?,
        };
        if rows.is_empty() {
            return Err(Error::Data {
                path: file.into(),
                message: "lists no samples".into(),
            });
        }
        let entries = rows
            .into_iter()
            .map(|(line, row)| entry(&root, line, row))
            .collect();
        Ok(CaptionsFile {
            file: file.to_path_buf(),
            entries,
            max_pixels: DEFAULT_MAX_PIXELS,
        })
    }

    /// Sets the largest image, in pixels, that is decoded (default 100 M).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The captions file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The caption of sample `index` without decoding its image (`None` for a bad line or
    /// an index out of range).
    pub fn caption(&self, index: usize) -> Option<&str> {
        match self.entries.get(index)? {
            Entry::Good { caption, .. } => Some(caption),
            Entry::Bad { .. } => None,
        }
    }

    /// Each usable line's image path (joined to the captions file's folder) and the
    /// objects the line lists, in file order; malformed lines are left out.
    pub fn objects_by_image(&self) -> impl Iterator<Item = (&Path, &[CaptionedObject])> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Good { image, objects, .. } => Some((image.as_path(), objects.as_slice())),
            Entry::Bad { .. } => None,
        })
    }

    /// The message of the first malformed line, if any.
    pub fn first_malformed(&self) -> Option<&str> {
        self.entries.iter().find_map(|e| match e {
            Entry::Bad { message } => Some(message.as_str()),
            Entry::Good { .. } => None,
        })
    }
}

/// A row's path, caption and objects, or what is wrong with the row.
type Fields = std::result::Result<(Option<String>, Option<String>, Vec<CaptionedObject>), String>;
/// A row tagged with its line number.
type Row = (usize, Fields);

fn json_rows(text: &str) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let row = serde_json::from_str::<JsonLine>(line)
                .map(|j| (j.path, j.caption, j.objects))
                .map_err(|e| format!("not a JSON object with \"path\" and \"caption\": {e}"));
            (i + 1, row)
        })
        .collect()
}

fn csv_rows(file: &Path, text: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| Error::Data {
        path: file.into(),
        message: format!("unreadable CSV header: {e}"),
    })?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| Error::Data {
                path: file.into(),
                message: format!("the CSV header has no `{name}` column (it needs `path,caption`)"),
            })
    };
    let (path_col, caption_col) = (column("path")?, column("caption")?);
    Ok(reader
        .records()
        .enumerate()
        .map(|(i, record)| match record {
            Ok(r) => {
                let line = r.position().map_or(i + 2, |p| p.line() as usize);
                let field = |c: usize| r.get(c).map(str::to_string);
                (line, Ok((field(path_col), field(caption_col), Vec::new())))
            }
            Err(e) => (i + 2, Err(format!("malformed CSV record: {e}"))),
        })
        .collect())
}

fn entry(root: &Path, line: usize, row: Fields) -> Entry {
    let bad = |message: String| Entry::Bad {
        message: format!("line {line}: {message}"),
    };
    match row {
        Err(message) => bad(message),
        Ok((None, _, _)) => bad("no image path".into()),
        Ok((Some(path), _, _)) if path.trim().is_empty() => bad("empty image path".into()),
        Ok((_, None, _)) => bad("no caption".into()),
        Ok((_, Some(caption), _)) if caption.trim().is_empty() => bad("empty caption".into()),
        Ok((Some(path), Some(caption), objects)) => Entry::Good {
            image: root.join(path.trim()),
            caption: caption.trim().to_string(),
            objects,
        },
    }
}

impl PairSource for CaptionsFile {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, index: usize) -> Result<Pair> {
        match self.entries.get(index) {
            None => Err(out_of_range(index, self.entries.len())),
            Some(Entry::Bad { message }) => Err(Error::Data {
                path: self.file.clone(),
                message: message.clone(),
            }),
            Some(Entry::Good { image, caption, .. }) => Ok(Pair {
                image: load_rgb(image, self.max_pixels)?,
                caption: caption.clone(),
            }),
        }
    }

    fn describe(&self) -> String {
        let bad = self
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Bad { .. }))
            .count();
        format!(
            "captions file {}: {} samples ({} malformed lines)",
            self.file.display(),
            self.entries.len(),
            bad
        )
    }
}
