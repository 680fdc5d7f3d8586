//! Image preprocessing as transformers' `CLIPImageProcessor` does it, configured by the model
//! folder's `preprocessor_config.json` (its nested current form and the legacy flat form).
//!
//! Steps: resize (the shortest edge to `size`, Pillow-style convolution resampling), centre
//! crop to `crop_size` (zero padding where the image is smaller), rescale by
//! `rescale_factor`, normalise with `image_mean` / `image_std`. Output is (3, H, W) f32.
//! Resizing reproduces Pillow bit for bit (see [`super::resample`]).

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::resample::{self, Filter};
use crate::error::{Error, Result};

/// How `size` asks the image to be resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// Scale so the shorter side has this length, keeping the aspect ratio.
    ShortestEdge(u32),
    /// Scale so the longer side has this length, keeping the aspect ratio (each side
    /// rounded half to even, as open_clip's `ResizeKeepRatio(longest=1)` rounds it).
    LongestEdge(u32),
    /// Scale to exactly this height and width.
    Exact {
        /// Output height.
        height: u32,
        /// Output width.
        width: u32,
    },
}

/// Where a centre crop starts when the margin to cut is odd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CropCorner {
    /// ⌊margin / 2⌋, as transformers' `CLIPImageProcessor` computes it (the default).
    #[default]
    Floor,
    /// margin / 2 rounded half to even (Python's `round`), as torchvision's `CenterCrop`
    /// computes it: OpenAI's `clip.load` and open_clip preprocess with it.
    RoundHalfEven,
    /// open_clip's `CenterCropOrPad`: a side shorter than the output gets ⌊(out − size) / 2⌋
    /// of fill before it (the rest after); a longer one is cut as [`CropCorner::RoundHalfEven`].
    PadFloorOrRoundHalfEven,
}

impl CropCorner {
    /// The first row or column kept when cutting `size` down to `out`.
    fn start(self, size: u32, out: u32) -> i64 {
        let margin = i64::from(size) - i64::from(out);
        match self {
            CropCorner::Floor => margin.div_euclid(2),
            // margin / 2 is either whole or k + 0.5, which rounds to the even one of k, k + 1.
            CropCorner::PadFloorOrRoundHalfEven if margin < 0 => -((-margin).div_euclid(2)),
            CropCorner::RoundHalfEven | CropCorner::PadFloorOrRoundHalfEven => {
                let k = margin.div_euclid(2);
                if margin.rem_euclid(2) == 1 && k.rem_euclid(2) == 1 {
                    k + 1
                } else {
                    k
                }
            }
        }
    }
}

/// The preprocessing a model folder asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    /// Resize step, if enabled.
    pub resize: Option<ResizeTarget>,
    /// Resampling filter of the resize step.
    pub filter: Filter,
    /// Centre-crop (height, width), if enabled.
    pub crop: Option<(u32, u32)>,
    /// Where the centre crop starts when the margin is odd.
    pub crop_corner: CropCorner,
    /// Multiplier applied to 0..255 values, if enabled (normally 1/255).
    pub rescale: Option<f32>,
    /// Per-channel (mean, std), if normalisation is enabled.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// `preprocessor_config.json` as written by transformers, old and new.
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<RawSize>,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<RawSize>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "one_255th")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default = "openai_mean")]
    image_mean: Vec<f32>,
    #[serde(default = "openai_std")]
    image_std: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Square(u32),
    Map {
        shortest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
    },
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn one_255th() -> f64 {
    1.0 / 255.0
}
// OpenAI's published CLIP statistics, digit for digit as transformers carries them.
#[allow(clippy::excessive_precision)]
fn openai_mean() -> Vec<f32> {
    vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
}
#[allow(clippy::excessive_precision)]
fn openai_std() -> Vec<f32> {
    vec![0.268_629_54, 0.261_302_58, 0.275_777_11]
}

/// `preprocessor_config.json` in the form transformers 5 writes for `CLIPImageProcessor`.
#[derive(Serialize)]
struct WrittenConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    crop_size: Option<HeightWidth>,
    do_center_crop: bool,
    do_convert_rgb: bool,
    do_normalize: bool,
    do_rescale: bool,
    do_resize: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_mean: Option<[f32; 3]>,
    image_processor_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_std: Option<[f32; 3]>,
    resample: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rescale_factor: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<WrittenSize>,
}

#[derive(Serialize)]
struct HeightWidth {
    height: u32,
    width: u32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WrittenSize {
    ShortestEdge { shortest_edge: u32 },
    Exact(HeightWidth),
}

impl PreprocessConfig {
    /// OpenAI CLIP's preprocessing for a square input of `image_size` pixels: shortest edge
    /// to `image_size` (bicubic), centre crop, rescale by 1/255, OpenAI's mean and std.
    pub fn openai(image_size: u32) -> Self {
        let (mean, std) = (openai_mean(), openai_std());
        PreprocessConfig {
            resize: Some(ResizeTarget::ShortestEdge(image_size)),
            filter: Filter::Bicubic,
            crop: Some((image_size, image_size)),
            crop_corner: CropCorner::Floor,
            rescale: Some(one_255th() as f32),
            normalize: Some(([mean[0], mean[1], mean[2]], [std[0], std[1], std[2]])),
        }
    }

    /// OpenAI CLIP's preprocessing exactly as `clip.load` builds it with torchvision:
    /// [`PreprocessConfig::openai`] with torchvision's centre-crop rounding
    /// ([`CropCorner::RoundHalfEven`]).
    pub fn openai_torchvision(image_size: u32) -> Self {
        PreprocessConfig {
            crop_corner: CropCorner::RoundHalfEven,
            ..Self::openai(image_size)
        }
    }

    /// `preprocessor_config.json` in the nested form transformers 5 writes for
    /// `CLIPImageProcessor`; [`PreprocessConfig::from_json`] reads it back unchanged.
    /// A longest-edge resize (open_clip's `resize_mode: longest`) has no
    /// `CLIPImageProcessor` form and is refused.
    pub fn to_json(&self) -> Result<String> {
        let size = match self.resize {
            None => None,
            Some(ResizeTarget::ShortestEdge(shortest_edge)) => {
                Some(WrittenSize::ShortestEdge { shortest_edge })
            }
            Some(ResizeTarget::Exact { height, width }) => {
                Some(WrittenSize::Exact(HeightWidth { height, width }))
            }
            Some(ResizeTarget::LongestEdge(_)) => {
                return Err(Error::InvalidArgument(
                    "a longest-edge resize (open_clip's resize_mode \"longest\") has no \
                     preprocessor_config.json form: transformers' CLIPImageProcessor resizes \
                     the shortest edge or to an exact size"
                        .into(),
                ))
            }
        };
        let written = WrittenConfig {
            crop_size: self
                .crop
                .map(|(height, width)| HeightWidth { height, width }),
            do_center_crop: self.crop.is_some(),
            do_convert_rgb: true,
            do_normalize: self.normalize.is_some(),
            do_rescale: self.rescale.is_some(),
            do_resize: self.resize.is_some(),
            image_mean: self.normalize.map(|(mean, _)| mean),
            image_processor_type: "CLIPImageProcessor",
            image_std: self.normalize.map(|(_, std)| std),
            resample: self.filter.pil_code(),
            rescale_factor: self.rescale,
            size,
        };
        serde_json::to_string_pretty(&written).map_err(|e| {
            Error::InvalidArgument(format!("cannot serialise preprocessor_config.json: {e}"))
        })
    }

    /// Reads `preprocessor_config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses a `preprocessor_config.json` text; `path` is used in error messages only.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let fail = |field: &str, message: String| Error::Config {
            path: path.to_path_buf(),
            field: field.into(),
            message,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| fail(&e.path().to_string(), e.into_inner().to_string()))?;
        let resize = if raw.do_resize {
            Some(match raw.size {
                Some(RawSize::Square(s)) => ResizeTarget::ShortestEdge(s),
                Some(RawSize::Map {
                    shortest_edge: Some(s),
                    ..
                }) => ResizeTarget::ShortestEdge(s),
                Some(RawSize::Map {
                    height: Some(height),
                    width: Some(width),
                    ..
                }) => ResizeTarget::Exact { height, width },
                _ => {
                    return Err(fail(
                        "size",
                        "needs `shortest_edge`, or `height` and `width`".into(),
                    ))
                }
            })
        } else {
            None
        };
        let crop = if raw.do_center_crop {
            Some(match raw.crop_size {
                Some(RawSize::Square(s)) => (s, s),
                Some(RawSize::Map {
                    height: Some(h),
                    width: Some(w),
                    ..
                }) => (h, w),
                _ => return Err(fail("crop_size", "needs `height` and `width`".into())),
            })
        } else {
            None
        };
        if matches!(
            resize,
            Some(ResizeTarget::ShortestEdge(0))
                | Some(ResizeTarget::Exact { height: 0, .. })
                | Some(ResizeTarget::Exact { width: 0, .. })
        ) {
            return Err(fail("size", "must be at least 1".into()));
        }
        if matches!(crop, Some((0, _)) | Some((_, 0))) {
            return Err(fail("crop_size", "must be at least 1".into()));
        }
        let filter = Filter::from_pil(raw.resample).ok_or_else(|| {
            fail(
                "resample",
                format!("unknown PIL resampling filter {}", raw.resample),
            )
        })?;
        let normalize = if raw.do_normalize {
            let three = |v: &[f32], field: &str| -> Result<[f32; 3]> {
                <[f32; 3]>::try_from(v)
                    .map_err(|_| fail(field, format!("needs 3 values, got {}", v.len())))
            };
            let mean = three(&raw.image_mean, "image_mean")?;
            let std = three(&raw.image_std, "image_std")?;
            if std.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
                return Err(fail(
                    "image_std",
                    "values must be finite and non-zero".into(),
                ));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(PreprocessConfig {
            resize,
            filter,
            crop,
            crop_corner: CropCorner::Floor,
            rescale: raw.do_rescale.then_some(raw.rescale_factor as f32),
            normalize,
        })
    }

    /// Turns an RGB image into the model's (3, H, W) input, channel-major.
    pub fn apply(&self, image: &RgbImage) -> Result<(Vec<f32>, usize, usize)> {
        let resized;
        let image = match self.resize {
            Some(target) => {
                let (w, h) = image.dimensions();
                let (new_h, new_w) = resized_size(h, w, target);
                resized = resample::resize(image, new_w, new_h, self.filter);
                &resized
            }
            None => image,
        };
        let (w, h) = image.dimensions();
        let (out_h, out_w) = self.crop.unwrap_or((h, w));
        let top = self.crop_corner.start(h, out_h);
        let left = self.crop_corner.start(w, out_w);
        let (out_h, out_w) = (out_h as usize, out_w as usize);
        let scale = self.rescale.unwrap_or(1.0);
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        let mut out = vec![0f32; 3 * out_h * out_w];
        let plane = out_h * out_w;
        for y in 0..out_h {
            for x in 0..out_w {
                let (sy, sx) = (y as i64 + top, x as i64 + left);
                let inside = sy >= 0 && sx >= 0 && sy < i64::from(h) && sx < i64::from(w);
                let px = if inside {
                    image.get_pixel(sx as u32, sy as u32).0
                } else {
                    [0; 3]
                };
                for c in 0..3 {
                    out[c * plane + y * out_w + x] = (f32::from(px[c]) * scale - mean[c]) / std[c];
                }
            }
        }
        Ok((out, out_h, out_w))
    }
}

/// (height, width) after resizing, as transformers' `get_resize_output_image_size` computes it.
fn resized_size(height: u32, width: u32, target: ResizeTarget) -> (u32, u32) {
    match target {
        ResizeTarget::Exact { height, width } => (height, width),
        ResizeTarget::ShortestEdge(size) => {
            let (short, long) = if width <= height {
                (width, height)
            } else {
                (height, width)
            };
            let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
            if width <= height {
                (new_long, size)
            } else {
                (size, new_long)
            }
        }
        ResizeTarget::LongestEdge(size) => {
            let target = f64::from(size);
            let ratio = (f64::from(height) / target).max(f64::from(width) / target);
            let side = |x: u32| ((f64::from(x) / ratio).round_ties_even() as u32).max(1);
            (side(height), side(width))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_follows_transformers_rounding() {
        assert_eq!(
            resized_size(61, 97, ResizeTarget::ShortestEdge(32)),
            (32, 50)
        );
        assert_eq!(
            resized_size(130, 45, ResizeTarget::ShortestEdge(48)),
            (138, 48)
        );
        assert_eq!(resized_size(5, 7, ResizeTarget::ShortestEdge(32)), (32, 44));
    }

    #[test]
    fn longest_edge_rounds_half_to_even_as_open_clip() {
        assert_eq!(
            resized_size(61, 97, ResizeTarget::LongestEdge(32)),
            (20, 32)
        );
        assert_eq!(
            resized_size(130, 45, ResizeTarget::LongestEdge(32)),
            (32, 11)
        );
        // 10 / (20 / 5) = 2.5 rounds to 2, as Python's round does.
        assert_eq!(resized_size(20, 10, ResizeTarget::LongestEdge(5)), (5, 2));
    }

    #[test]
    fn padding_puts_the_smaller_half_first() {
        let pad = CropCorner::PadFloorOrRoundHalfEven;
        assert_eq!(pad.start(11, 32), -10);
        assert_eq!(pad.start(20, 32), -6);
        assert_eq!(pad.start(35, 32), CropCorner::RoundHalfEven.start(35, 32));
    }

    #[test]
    fn nested_and_legacy_forms_agree() {
        let nested =
            r#"{"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}"#;
        let legacy = r#"{"size": 224, "crop_size": 224}"#;
        let a = PreprocessConfig::from_json(nested, Path::new("p.json")).unwrap();
        let b = PreprocessConfig::from_json(legacy, Path::new("p.json")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.resize, Some(ResizeTarget::ShortestEdge(224)));
    }

    #[test]
    fn written_json_reads_back_identical() {
        let p = Path::new("p.json");
        let mut configs = vec![PreprocessConfig::openai(64)];
        configs.push(PreprocessConfig {
            resize: Some(ResizeTarget::Exact {
                height: 30,
                width: 40,
            }),
            filter: Filter::Lanczos,
            crop: None,
            crop_corner: CropCorner::Floor,
            rescale: Some(0.5),
            normalize: Some(([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])),
        });
        configs.push(PreprocessConfig {
            resize: None,
            filter: Filter::Nearest,
            crop: Some((5, 7)),
            crop_corner: CropCorner::Floor,
            rescale: None,
            normalize: None,
        });
        for config in configs {
            let written = config.to_json().unwrap();
            assert_eq!(PreprocessConfig::from_json(&written, p).unwrap(), config);
        }
        let openai = PreprocessConfig::openai(224).to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&openai).unwrap();
        assert_eq!(v["image_processor_type"], "CLIPImageProcessor");
        assert_eq!(v["size"]["shortest_edge"], 224);
        assert_eq!(v["crop_size"]["height"], 224);
        assert_eq!(v["resample"], 3);
    }

    #[test]
    fn torchvision_crop_rounds_half_to_even() {
        // Margins 35 (17.5 → 18), 33 (16.5 → 16), 34 (17) and -1 (-0.5 → 0) against floor.
        for (size, out, floor, even) in [
            (259, 224, 17, 18),
            (257, 224, 16, 16),
            (258, 224, 17, 17),
            (223, 224, -1, 0),
        ] {
            assert_eq!(CropCorner::Floor.start(size, out), floor);
            assert_eq!(CropCorner::RoundHalfEven.start(size, out), even, "{size}");
        }
    }

    #[test]
    fn crop_pads_small_images_with_zeros() {
        let cfg = PreprocessConfig {
            resize: None,
            filter: Filter::Nearest,
            crop: Some((3, 3)),
            crop_corner: CropCorner::Floor,
            rescale: None,
            normalize: None,
        };
        let img = RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]));
        let (out, h, w) = cfg.apply(&img).unwrap();
        assert_eq!((h, w), (3, 3));
        assert_eq!(out[4], 9.0);
        assert_eq!(out.iter().filter(|v| **v == 0.0).count(), 3 * 9 - 3);
    }
}
