//! The judge: a CLIP that did not guide the generator names the colour and shape of an image
//! zero-shot, with the same prompt ensembles as the held-out shapes evaluation
//! ([`Attribute::prompts`]). An object of a several-object image is judged alone: its
//! bounding box (with a small margin) is copied onto a plain shapes-world background at the
//! same place and scale, so the judge sees a one-object scene like those it was trained on.

use std::collections::HashMap;

use candle_core::Tensor;
use image::RgbImage;

use super::pixels::Blob;
use crate::clip::Clip;
use crate::data::shapes::{Colour, Shape, BACKGROUNDS};
use crate::error::Result;
use crate::eval::metrics;
use crate::eval::shapes::Attribute;
use crate::zeroshot::ensemble_prompts;

/// Pixels of margin kept around an object's bounding box when it is judged alone.
const MARGIN: u32 = 2;

/// A zero-shot colour and shape classifier over one CLIP.
pub struct Judge<'a> {
    clip: &'a Clip,
    /// Ensembled colour classes (8, E).
    colours: Tensor,
    /// Ensembled shape classes (7, E).
    shapes: Tensor,
}

impl<'a> Judge<'a> {
    /// Embeds the colour and shape prompt ensembles with `clip`.
    pub fn new(clip: &'a Clip) -> Result<Self> {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut texts: Vec<String> = Vec::new();
        let mut rows = |attribute: Attribute| -> Vec<Vec<u32>> {
            (0..attribute.classes().len())
                .map(|class| {
                    attribute
                        .prompts(class)
                        .into_iter()
                        .map(|p| {
                            let next = texts.len() as u32;
                            let row = *index.entry(p.clone()).or_insert(next);
                            if row == next {
                                texts.push(p);
                            }
                            row
                        })
                        .collect()
                })
                .collect()
        };
        let colour_rows = rows(Attribute::Colour);
        let shape_rows = rows(Attribute::Shape);
        let embeds = clip.embed_texts(&texts)?;
        Ok(Judge {
            clip,
            colours: ensemble_prompts(&embeds, &colour_rows)?,
            shapes: ensemble_prompts(&embeds, &shape_rows)?,
        })
    }

    /// The colour and shape the judge sees in each image.
    pub fn classify(&self, images: &[RgbImage]) -> Result<Vec<(Colour, Shape)>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let embeds = self.clip.embed_images(images)?;
        let best = |classes: &Tensor| -> Result<Vec<usize>> {
            Ok(metrics::argmax(&metrics::rows(
                &embeds.matmul(&classes.t()?)?,
            )?))
        };
        Ok(best(&self.colours)?
            .into_iter()
            .zip(best(&self.shapes)?)
            .map(|(c, s)| (Colour::ALL[c], Shape::ALL[s]))
            .collect())
    }
}

/// `blob` of `image` alone: its bounding box plus a 2-pixel margin copied onto the first
/// shapes-world background, everything else blank.
pub fn isolate(image: &RgbImage, blob: &Blob) -> RgbImage {
    let (w, h) = image.dimensions();
    let [x0, y0, x1, y1] = blob.bbox;
    let (x0, y0) = (x0.saturating_sub(MARGIN), y0.saturating_sub(MARGIN));
    let (x1, y1) = ((x1 + MARGIN).min(w - 1), (y1 + MARGIN).min(h - 1));
    RgbImage::from_fn(w, h, |x, y| {
        if (x0..=x1).contains(&x) && (y0..=y1).contains(&y) {
            *image.get_pixel(x, y)
        } else {
            image::Rgb(BACKGROUNDS[0])
        }
    })
}
