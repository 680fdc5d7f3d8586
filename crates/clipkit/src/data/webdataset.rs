//! WebDataset tar shards, the format LAION-style data comes in: members that share a key
//! (the member path up to the first `.` of its file name) form one sample, e.g.
//! `000123.jpg` + `000123.txt`. Images may be `jpg`, `jpeg`, `png` or `webp`; the caption is
//! the UTF-8 text of `txt`; other members (`json`, `cls`, …) are ignored.
//!
//! Shards are indexed once by reading their headers only (seeking over member data); a
//! sample is then read at its recorded offsets, so access is random and parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::source::{out_of_range, Pair, PairSource};
use crate::error::{Error, Result};
use crate::image::decode::{load_rgb_from_bytes, DEFAULT_MAX_PIXELS};
use crate::image::is_image_extension;

/// The member extension read as the caption.
pub const CAPTION_EXTENSION: &str = "txt";

/// Where one member's data lies in its shard.
#[derive(Debug, Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
}

/// One key's members.
#[derive(Debug, Clone)]
struct Sample {
    shard: usize,
    key: String,
    image: Option<(Member, String)>,
    caption: Option<Member>,
}

/// Samples of one or more WebDataset shards, as a [`PairSource`].
#[derive(Debug, Clone)]
pub struct WebDataset {
    shards: Vec<PathBuf>,
    samples: Vec<Sample>,
    max_pixels: u64,
}

impl WebDataset {
    /// Indexes the shards: each input is a `.tar` file or a folder whose `.tar` files are
    /// taken in name order. Fails when an input is missing, a folder holds no shard, a
    /// shard is not a tar archive at all, or no sample is found. A shard cut short keeps
    /// the samples indexed before the damage (with a warning).
    pub fn open<P: AsRef<Path>>(inputs: &[P]) -> Result<Self> {
        let shards = expand_inputs(inputs)?;
        let mut samples = Vec::new();
        for (index, shard) in shards.iter().enumerate() {
            index_shard(index, shard, &mut samples)?;
        }
        if samples.is_empty() {
            return Err(Error::Data {
                path: shards.first().cloned().unwrap_or_default(),
                message: "no WebDataset sample (key.jpg|png|webp + key.txt) in the shards".into(),
            });
        }
        Ok(WebDataset {
            shards,
            samples,
            max_pixels: DEFAULT_MAX_PIXELS,
        })
    }

    /// Sets the largest image, in pixels, that is decoded (default 100 M).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The shard files, in the order samples are numbered.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// The key of sample `index` (`None` out of range).
    pub fn key(&self, index: usize) -> Option<&str> {
        self.samples.get(index).map(|s| s.key.as_str())
    }

    fn read(&self, shard: &Path, member: Member) -> Result<Vec<u8>> {
        let io = |e| Error::io(shard, e);
        let mut file = File::open(shard).map_err(io)?;
        file.seek(SeekFrom::Start(member.offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(member.size).read_to_end(&mut bytes).map_err(io)?;
        if (bytes.len() as u64) < member.size {
            return Err(Error::Data {
                path: shard.into(),
                message: format!("member at byte {} is cut short", member.offset),
            });
        }
        Ok(bytes)
    }
}

fn expand_inputs<P: AsRef<Path>>(inputs: &[P]) -> Result<Vec<PathBuf>> {
    let mut shards = Vec::new();
    for input in inputs {
        let input = input.as_ref();
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| Error::io(input, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tar"))
                .collect();
            if found.is_empty() {
                return Err(Error::Data {
                    path: input.into(),
                    message: "folder holds no .tar shard".into(),
                });
            }
            found.sort();
            shards.extend(found);
        } else if input.is_file() {
            shards.push(input.to_path_buf());
        } else {
            return Err(Error::io(
                input,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such shard or folder"),
            ));
        }
    }
    Ok(shards)
}

/// Appends the samples of one shard, reading headers only.
fn index_shard(shard_index: usize, shard: &Path, samples: &mut Vec<Sample>) -> Result<()> {
    let file = File::open(shard).map_err(|e| Error::io(shard, e))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| Error::io(shard, e))?;
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (members, entry) in entries.enumerate() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if members == 0 => {
                return Err(Error::Data {
                    path: shard.into(),
                    message: format!("not a readable tar archive: {e}"),
                })
            }
            Err(e) => {
                tracing::warn!(
                    "{}: damaged after {members} members ({e}); keeping the samples before it",
                    shard.display()
                );
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Ok(path) = entry.path() else { continue };
        let Some((key, ext)) = split_key(&path.to_string_lossy()) else {
            continue;
        };
        let member = Member {
            offset: entry.raw_file_position(),
            size: entry.size(),
        };
        let is_image = is_image_extension(&ext);
        if !is_image && ext != CAPTION_EXTENSION {
            continue;
        }
        let slot = *by_key.entry(key.clone()).or_insert_with(|| {
            samples.push(Sample {
                shard: shard_index,
                key,
                image: None,
                caption: None,
            });
            samples.len() - 1
        });
        let sample = &mut samples[slot];
        if is_image {
            sample.image = Some((member, ext));
        } else {
            sample.caption = Some(member);
        }
    }
    Ok(())
}

/// `dir/000123.jpg` → (`dir/000123`, `jpg`); the extension is everything after the first
/// dot of the file name, lower-cased. Hidden files and names without a dot give `None`.
fn split_key(path: &str) -> Option<(String, String)> {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let dot = path[name_start..].find('.')?;
    if dot == 0 {
        return None;
    }
    let (key, ext) = path.split_at(name_start + dot);
    Some((key.to_string(), ext[1..].to_ascii_lowercase()))
}

impl PairSource for WebDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<Pair> {
        let sample = self
            .samples
            .get(index)
            .ok_or_else(|| out_of_range(index, self.samples.len()))?;
        let shard = &self.shards[sample.shard];
        let missing = |what: &str| Error::Data {
            path: shard.clone(),
            message: format!("sample {:?} has no {what}", sample.key),
        };
        let (image_member, ext) = sample.image.as_ref().ok_or_else(|| missing("image"))?;
        let caption_member = sample.caption.ok_or_else(|| missing("caption (.txt)"))?;
        let caption_bytes = self.read(shard, caption_member)?;
        let caption = String::from_utf8(caption_bytes)
            .map_err(|_| Error::Data {
                path: shard.clone(),
                message: format!("{}.txt is not UTF-8 text", sample.key),
            })?
            .trim()
            .to_string();
        if caption.is_empty() {
            return Err(Error::Data {
                path: shard.clone(),
                message: format!("{}.txt is empty", sample.key),
            });
        }
        let bytes = self.read(shard, *image_member)?;
        let name = PathBuf::from(format!("{}:{}.{ext}", shard.display(), sample.key));
        Ok(Pair {
            image: load_rgb_from_bytes(&bytes, &name, self.max_pixels)?,
            caption,
        })
    }

    fn describe(&self) -> String {
        format!(
            "WebDataset: {} samples in {} shards",
            self.samples.len(),
            self.shards.len()
        )
    }
}
