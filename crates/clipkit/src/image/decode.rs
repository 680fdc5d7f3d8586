//! Reading image files into 8-bit RGB, the way a user expects and transformers does.
//!
//! - The format is read from the content, not the file name.
//! - Transparent pixels are composited onto white with Pillow's integer arithmetic (as
//!   transformers 5 does before converting to RGB); grayscale is replicated to three channels;
//!   palettes are expanded; 16-bit samples are scaled to 8 bits.
//! - Animated GIF and WebP files give their first frame.
//! - The EXIF orientation tag is applied, so a portrait phone photo is embedded upright.
//!   transformers (through PIL) ignores the tag; for files without one the two agree.
//! - Images declaring more than [`DEFAULT_MAX_PIXELS`] pixels are refused before decoding.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// File-name extensions taken as images wherever files are found by name (folders to index
/// or evaluate, WebDataset members), compared without case; the content decides when decoding.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "jfif"];

/// True when `ext` (without its dot) is one of [`IMAGE_EXTENSIONS`], in any case.
pub fn is_image_extension(ext: &str) -> bool {
    IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(ext))
}

/// True when `path`'s extension is one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(is_image_extension)
}

/// The largest image, in pixels, clipkit decodes unless told otherwise (100 megapixels).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Reads `path` into an upright 8-bit RGB image.
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    Ok(to_rgb_on_white(decode(path, max_pixels)?))
}

/// Decodes `path` (first frame, EXIF orientation applied) without changing its pixel format.
pub fn decode(path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    if path.is_dir() {
        return Err(Error::Image {
            path: path.into(),
            message: "is a directory".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes, path, max_pixels)
}

/// Reads an encoded image held in memory (an archive member, say) into upright 8-bit RGB;
/// `name` is what errors call it.
pub fn load_rgb_from_bytes(bytes: &[u8], name: &Path, max_pixels: u64) -> Result<RgbImage> {
    Ok(to_rgb_on_white(decode_bytes(bytes, name, max_pixels)?))
}

/// [`decode`] for bytes already in memory; `path` names them in errors.
pub fn decode_bytes(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    let bad = |e: image::ImageError| Error::Image {
        path: path.into(),
        message: e.to_string().trim().to_string(),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The decoder would fill the missing part with grey; a user wants to hear about it.
        return Err(Error::Image {
            path: path.into(),
            message: "truncated JPEG (no end-of-image marker after the last scan)".into(),
        });
    }
    if reader.format().is_none() {
        let message = if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            "unrecognised format (JPEG, PNG, WebP, BMP and GIF are supported)".to_string()
        };
        return Err(Error::Image {
            path: path.into(),
            message,
        });
    }
    let mut limits = Limits::default();
    // Room for the largest allowed image at 16 bits per channel with alpha.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 26));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Error::ImageTooLarge {
            path: path.into(),
            width,
            height,
            limit: max_pixels,
        });
    }
    let orientation = decoder.orientation().map_err(bad)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(bad)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Whether a JPEG stream ends its last scan with an end-of-image marker (FF D9).
///
/// Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so the last
/// start-of-scan marker (FF DA) belongs to the main image's last scan, even when an EXIF
/// thumbnail (a whole JPEG of its own) comes earlier in the file.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Converts any pixel format to 8-bit RGB, compositing transparency onto white.
pub fn to_rgb_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = composite_on_white(u32::from(src[c]), a);
        }
    }
    out
}

/// One channel of Pillow's `alpha_composite` of (value, alpha) over opaque white, in its
/// fixed-point arithmetic (7 extra bits, rounded division by 255).
fn composite_on_white(value: u32, alpha: u32) -> u8 {
    const PRECISION_BITS: u32 = 7;
    let coef1 = alpha << PRECISION_BITS;
    let coef2 = (255 - alpha) << PRECISION_BITS;
    let tmp = value * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
    let div255 = ((tmp >> 8) + tmp) >> 8;
    (div255 >> PRECISION_BITS) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_extensions_are_recognised_in_any_case() {
        assert!(has_image_extension(Path::new("/a/B.JPG")));
        assert!(has_image_extension(Path::new("photo.Jfif")));
        assert!(is_image_extension("webp") && is_image_extension("GIF"));
        assert!(!has_image_extension(Path::new("notes.txt")));
        assert!(!has_image_extension(Path::new("jpg")));
        assert!(!is_image_extension(""));
    }

    #[test]
    fn jpeg_completeness_looks_after_the_last_scan() {
        assert!(jpeg_is_complete(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 0xFF, 0xD9
        ]));
        assert!(!jpeg_is_complete(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00
        ]));
        // A complete thumbnail before a cut main image does not count.
        assert!(!jpeg_is_complete(&[
            0xFF, 0xDA, 0xFF, 0xD9, 0xFF, 0xDA, 7, 7
        ]));
    }

    #[test]
    fn compositing_matches_the_ends_and_rounds_in_between() {
        assert_eq!(composite_on_white(0, 0), 255);
        assert_eq!(composite_on_white(17, 255), 17);
        assert_eq!(composite_on_white(0, 128), 127);
        for v in 0..=255 {
            for a in 0..=255 {
                let exact = (v as f64 * a as f64 + 255.0 * (255.0 - a as f64)) / 255.0;
                let got = composite_on_white(v, a) as f64;
                assert!((got - exact).abs() <= 1.0, "v={v} a={a}: {got} vs {exact}");
            }
        }
    }
}
