//! The shapes world as a [`PairSource`] of a fixed length.

use rayon::prelude::*;

use super::shapes::{Described, ShapesConfig, ShapesWorld};
use super::source::{out_of_range, Pair, PairSource};
use crate::error::Result;

/// The first `count` samples of a [`ShapesWorld`]; each index's caption is one phrasing
/// drawn deterministically from that sample's own random stream.
#[derive(Debug, Clone)]
pub struct ShapesSource {
    world: ShapesWorld,
    count: usize,
}

impl ShapesSource {
    /// Samples `0..count` of the world `config` describes.
    pub fn new(config: ShapesConfig, count: usize) -> Result<Self> {
        Ok(ShapesSource {
            world: ShapesWorld::new(config)?,
            count,
        })
    }
}

impl PairSource for ShapesSource {
    fn len(&self) -> usize {
        self.count
    }

    fn get(&self, index: usize) -> Result<Pair> {
        if index >= self.count {
            return Err(out_of_range(index, self.count));
        }
        let sample = self.world.sample(index as u64);
        Ok(Pair {
            image: sample.image,
            caption: sample.caption,
        })
    }

    fn describe(&self) -> String {
        let c = self.world.config();
        let families = match c.family {
            1 => String::new(),
            n => format!(", families of {n} colour/shape variants"),
        };
        let one_group = if c.one_group > 0.0 {
            let percent = 100.0 * c.one_group;
            format!(", {percent:.0}% of multi-object scenes captioned by one group")
        } else {
            String::new()
        };
        let mut levers = String::new();
        if c.attribute > 0.0 {
            let percent = 100.0 * c.attribute;
            levers.push_str(&format!(", {percent:.0}% of captions naming one attribute"));
        }
        if c.swap > 0.0 {
            let percent = 100.0 * c.swap;
            levers.push_str(&format!(", {percent:.0}% of families binding swaps"));
        }
        if c.colour_spread > 0 {
            let spread = c.colour_spread;
            levers.push_str(&format!(", fills spread ±{spread} levels"));
        }
        format!(
            "shapes world: {} samples, {} split, {} scenes{families}{one_group}{levers}, {}x{} px, seed {}",
            self.count,
            c.split.name(),
            c.layout.name(),
            c.image_size,
            c.image_size,
            c.seed
        )
    }

    fn family_len(&self) -> usize {
        self.world.config().family
    }

    fn also_true(&self, indices: &[usize]) -> Vec<(usize, usize)> {
        let described: Vec<Described> = indices
            .par_iter()
            .map(|&i| self.world.described(i as u64))
            .collect();
        let mut pairs = Vec::new();
        for (caption, of_caption) in described.iter().enumerate() {
            for (image, of_image) in described.iter().enumerate() {
                if caption != image && of_caption.claim.holds_for(&of_image.scene) {
                    pairs.push((caption, image));
                }
            }
        }
        pairs
    }
}
