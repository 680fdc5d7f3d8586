//! Drawing a whole prompt set for evaluation: every prompt gets N samples, and two image
//! sets come out, the first sample in draw order (what one draw gives) and the best of N
//! after CLIP reranking (what `clipkit imagine` shows first), each named by prompt index as
//! `clipkit eval generate` reads them.

use std::path::Path;
use std::time::Instant;

use image::RgbImage;

use super::{clip_similarities, Generator, SamplingOptions};
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::eval::generated::GenPrompt;
use crate::model_folder::atomic_dir::replace_dir;

/// What [`draw_prompt_set`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnSet {
    /// Images sampled in all (prompts × samples).
    pub images: usize,
    /// Seconds spent sampling and decoding (reranking excluded).
    pub sampling_seconds: f64,
}

impl DrawnSet {
    /// Images sampled per second (sampling and decoding only).
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.sampling_seconds.max(f64::MIN_POSITIVE)
    }
}

/// Samples `options.samples` images for every prompt with `generator`, ranks them by
/// `reranker`'s similarity to the prompt, and writes prompt `i`'s first sample as
/// `first_dir/NNN.png` and its best as `best_dir/NNN.png` (NNN = i, three digits). Each
/// folder is replaced whole once every image is drawn. `progress(done, total)` hears
/// prompts drawn.
pub fn draw_prompt_set(
    generator: &Generator,
    reranker: &Clip,
    prompts: &[GenPrompt],
    options: &SamplingOptions,
    first_dir: &Path,
    best_dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<DrawnSet> {
    options.validate()?;
    let mut first = Vec::with_capacity(prompts.len());
    let mut best = Vec::with_capacity(prompts.len());
    let mut sampling_seconds = 0.0;
    for (index, prompt) in prompts.iter().enumerate() {
        let started = Instant::now();
        let mut images = generator.generate(&prompt.prompt, options)?;
        sampling_seconds += started.elapsed().as_secs_f64();
        let scores = clip_similarities(reranker, &prompt.prompt, &images)?;
        let top = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
            .ok_or_else(|| Error::InvalidArgument("no samples were drawn".into()))?;
        best.push(images[top].clone());
        first.push(images.swap_remove(0));
        progress(index + 1, prompts.len());
    }
    write_numbered(first_dir, &first)?;
    write_numbered(best_dir, &best)?;
    Ok(DrawnSet {
        images: prompts.len() * options.samples,
        sampling_seconds,
    })
}

/// Writes `images` as `dir/000.png`, `dir/001.png`, …, replacing `dir` whole.
pub fn write_numbered(dir: &Path, images: &[RgbImage]) -> Result<()> {
    replace_dir(dir, |staging| {
        for (index, image) in images.iter().enumerate() {
            let path = staging.join(format!("{index:03}.png"));
            image
                .save_with_format(&path, image::ImageFormat::Png)
                .map_err(|e| Error::Image {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    })
}
