//! Writing the shapes world as a captioned folder: `images/NNNNNN.png` and a
//! `captions.jsonl` that [`crate::data::CaptionsFile`] reads (with each image's objects, so
//! search quality can be judged from it).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::ImageFormat;
use rayon::prelude::*;

use super::{Sample, ShapesWorld};
use crate::data::{Captioned, CaptionedObject};
use crate::error::{Error, Result};

/// Samples rendered in parallel per round of [`write_shapes_folder`]; their lines are
/// appended in index order after each round.
const WRITE_ROUND: u64 = 1024;

/// Writes samples `0..count` of `world` into `folder` (created if missing) as
/// `images/NNNNNN.png` (six digits, more when `count` needs them) and `captions.jsonl`,
/// rendering in parallel; `progress` hears how many are written after each round.
/// Returns the captions file.
pub fn write_shapes_folder(
    world: &ShapesWorld,
    folder: &Path,
    count: u64,
    mut progress: impl FnMut(u64),
) -> Result<PathBuf> {
    let images = folder.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let captions_path = folder.join("captions.jsonl");
    let write_error = |e: std::io::Error| Error::io(&captions_path, e);
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
                    .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
                let line = captioned(relative, &sample);
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

/// The captions line of `sample` stored at `path` (relative to the folder).
fn captioned(path: String, sample: &Sample) -> Captioned {
    Captioned {
        path,
        caption: sample.caption.clone(),
        objects: sample
            .scene
            .objects
            .iter()
            .map(|o| CaptionedObject {
                shape: o.shape.name().to_string(),
                colour: o.colour.name().to_string(),
                size: o.size.name().to_string(),
                position: o.position.name().to_string(),
            })
            .collect(),
    }
}
