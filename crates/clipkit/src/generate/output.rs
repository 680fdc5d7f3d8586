//! Images in and out of a generation: tensors ↔ 8-bit RGB, PNG files written atomically,
//! and a contact sheet of a run's frames.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{imageops, RgbImage};

use crate::error::{Error, Result};

/// An image (1, 3, H, W) in [0, 1] as 8-bit RGB (values clamped, rounded to nearest).
pub fn to_rgb_image(image: &Tensor) -> Result<RgbImage> {
    let (_, _, h, w) = image.dims4()?;
    let planes = image.get(0)?.to_vec3::<f32>()?; // (3, H, W)
    let mut out = RgbImage::new(w as u32, h as u32);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let (x, y) = (x as usize, y as usize);
        pixel.0 = std::array::from_fn(|c| (planes[c][y][x].clamp(0.0, 1.0) * 255.0).round() as u8);
    }
    Ok(out)
}

/// An RGB image resized (Catmull–Rom) to (height, width), as (1, 3, height, width) in [0, 1].
pub fn from_rgb_image(image: &RgbImage, (height, width): (usize, usize)) -> Result<Tensor> {
    let resized = imageops::resize(
        image,
        width as u32,
        height as u32,
        imageops::FilterType::CatmullRom,
    );
    let mut planes = vec![0f32; 3 * height * width];
    for (x, y, pixel) in resized.enumerate_pixels() {
        for (c, value) in pixel.0.iter().enumerate() {
            planes[(c * height + y as usize) * width + x as usize] = f32::from(*value) / 255.0;
        }
    }
    Ok(Tensor::from_vec(
        planes,
        (1, 3, height, width),
        &Device::Cpu,
    )?)
}

/// Writes `image` as a PNG at `path` atomically: to a hidden sibling first, renamed over
/// `path` once complete, so an error or a kill never leaves a partial file.
pub fn save_png_atomic(image: &RgbImage, path: &Path) -> Result<()> {
    let io = |cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a file name", path.display())))?;
    let staging = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let written = image
        .save_with_format(&staging, image::ImageFormat::Png)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
        .and_then(|()| {
            std::fs::File::open(&staging)
                .and_then(|f| f.sync_all())
                .map_err(io)
        })
        .and_then(|()| std::fs::rename(&staging, path).map_err(io));
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    written
}

/// Frames side by side in rows of `columns`, each shrunk to fit `cell` pixels wide, with a
/// 2-pixel white gutter.
pub fn contact_sheet(frames: &[RgbImage], columns: usize, cell: u32) -> RgbImage {
    const GUTTER: u32 = 2;
    let columns = columns.max(1);
    let rows = frames.len().div_ceil(columns).max(1);
    let cell_h = frames
        .first()
        .map_or(cell, |f| {
            (u64::from(cell) * u64::from(f.height()) / u64::from(f.width().max(1))) as u32
        })
        .max(1);
    let width = columns as u32 * (cell + GUTTER) + GUTTER;
    let height = rows as u32 * (cell_h + GUTTER) + GUTTER;
    let mut sheet = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (i, frame) in frames.iter().enumerate() {
        let thumb = imageops::resize(frame, cell, cell_h, imageops::FilterType::Triangle);
        let x = GUTTER + (i % columns) as u32 * (cell + GUTTER);
        let y = GUTTER + (i / columns) as u32 * (cell_h + GUTTER);
        imageops::replace(&mut sheet, &thumb, i64::from(x), i64::from(y));
    }
    sheet
}
