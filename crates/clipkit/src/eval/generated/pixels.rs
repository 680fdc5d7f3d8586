//! Procedural checks that read pixels: what objects of which palette colours an image shows,
//! how many and where.
//!
//! Each pixel takes the nearest colour of the shapes-world palette ([`Colour::rgb`]) when
//! it lies within [`MAX_COLOUR_DISTANCE`] of it (Euclidean, in sRGB levels) and is nearer
//! to it than to every background colour; other pixels are background. An object is a
//! 4-connected component of one colour covering at least [`MIN_AREA_FRACTION`] of the
//! image (smaller specks are noise, not objects); its position is the position word whose
//! anchor is nearest its centroid. Shape is not read from pixels: it is asked of the judge
//! CLIP (see [`super::judge`]).

use image::RgbImage;

use crate::data::shapes::{rgb_distance, Colour, Position, BACKGROUNDS};

use super::prompts::PromptObject;

/// Largest distance in sRGB levels from a palette colour for a pixel to count as that
/// colour. Rendering jitters object colours by at most 10 levels a channel (17 in all);
/// the nearest two palette colours (orange and yellow, red and orange) are about 85 apart.
pub const MAX_COLOUR_DISTANCE: f32 = 64.0;

/// Smallest object, as a fraction of the image's pixels: a third of the smallest object
/// the shapes world draws (a small star, about 0.74 %).
pub const MIN_AREA_FRACTION: f64 = 0.0025;

/// One object found in an image: a connected component of one palette colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// Its colour.
    pub colour: Colour,
    /// Its pixels.
    pub area: usize,
    /// Its centroid (x, y) as fractions of the image's width and height (y down).
    pub centre: (f32, f32),
    /// Its bounding box in pixels, `[x0, y0, x1, y1]`, inclusive.
    pub bbox: [u32; 4],
}

impl Blob {
    /// The position word whose anchor is nearest the centroid.
    pub fn position(&self) -> Position {
        let distance = |p: &Position| {
            let (x, y) = p.anchor();
            (x - self.centre.0).powi(2) + (y - self.centre.1).powi(2)
        };
        Position::ALL
            .iter()
            .copied()
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            .unwrap_or(Position::Centre)
    }
}

/// The palette colour of one pixel, `None` for background.
pub fn pixel_colour(rgb: [u8; 3]) -> Option<Colour> {
    let (colour, d) = Colour::nearest(rgb);
    let background = BACKGROUNDS
        .iter()
        .map(|&b| rgb_distance(b, rgb))
        .fold(f32::INFINITY, f32::min);
    (d <= MAX_COLOUR_DISTANCE && d < background).then_some(colour)
}

/// Every object of `image`, largest first.
pub fn find_blobs(image: &RgbImage) -> Vec<Blob> {
    let (w, h) = image.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let labels: Vec<Option<Colour>> = image.pixels().map(|p| pixel_colour(p.0)).collect();
    let min_area = ((MIN_AREA_FRACTION * (wu * hu) as f64).ceil() as usize).max(1);
    let mut seen = vec![false; labels.len()];
    let mut blobs = Vec::new();
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        let Some(colour) = labels[start] else {
            continue;
        };
        if seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut area, mut sx, mut sy) = (0usize, 0f64, 0f64);
        let mut bbox = [u32::MAX, u32::MAX, 0, 0];
        while let Some(i) = stack.pop() {
            let (x, y) = (i % wu, i / wu);
            area += 1;
            sx += x as f64 + 0.5;
            sy += y as f64 + 0.5;
            bbox = [
                bbox[0].min(x as u32),
                bbox[1].min(y as u32),
                bbox[2].max(x as u32),
                bbox[3].max(y as u32),
            ];
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < wu).then(|| i + 1),
                (y > 0).then(|| i - wu),
                (y + 1 < hu).then(|| i + wu),
            ];
            for n in neighbours.into_iter().flatten() {
                if !seen[n] && labels[n] == Some(colour) {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        if area >= min_area {
            blobs.push(Blob {
                colour,
                area,
                centre: (
                    (sx / area as f64 / w as f64) as f32,
                    (sy / area as f64 / h as f64) as f32,
                ),
                bbox,
            });
        }
    }
    blobs.sort_by_key(|b| std::cmp::Reverse(b.area));
    blobs
}

/// What the pixels say of one image against its prompt's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelChecks {
    /// The k colours covering the most object area are exactly the prompt's k colours.
    pub colour: bool,
    /// Each colour the prompt names has as many objects as the prompt asks of it.
    pub count: bool,
    /// Each positioned object's colour has its largest object at that position; `None`
    /// when the prompt names no position.
    pub position: Option<bool>,
}

/// Checks `blobs` (from [`find_blobs`]) against `objects` (not empty).
pub fn check_pixels(blobs: &[Blob], objects: &[PromptObject]) -> PixelChecks {
    let mut wanted: Vec<Colour> = objects.iter().map(|o| o.colour).collect();
    wanted.sort();
    wanted.dedup();
    let mut areas: Vec<(Colour, usize)> = Vec::new();
    for b in blobs {
        match areas.iter_mut().find(|(c, _)| *c == b.colour) {
            Some((_, a)) => *a += b.area,
            None => areas.push((b.colour, b.area)),
        }
    }
    areas.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut top: Vec<Colour> = areas.iter().take(wanted.len()).map(|(c, _)| *c).collect();
    top.sort();
    let count = wanted.iter().all(|&c| {
        let asked: usize = objects
            .iter()
            .filter(|o| o.colour == c)
            .map(|o| o.count)
            .sum();
        blobs.iter().filter(|b| b.colour == c).count() == asked
    });
    let positioned: Vec<(Colour, Position)> = objects
        .iter()
        .filter_map(|o| o.position.map(|p| (o.colour, p)))
        .collect();
    let position = (!positioned.is_empty()).then(|| {
        positioned
            .iter()
            .all(|&(c, p)| largest(blobs, c).is_some_and(|b| b.position() == p))
    });
    PixelChecks {
        colour: top == wanted,
        count,
        position,
    }
}

/// The largest object of `colour`.
pub fn largest(blobs: &[Blob], colour: Colour) -> Option<&Blob> {
    // Blobs are sorted largest first.
    blobs.iter().find(|b| b.colour == colour)
}
