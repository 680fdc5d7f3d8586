//! Preprocessing against transformers' PIL-based `CLIPImageProcessor`, image by image.
//!
//! Tolerances, in 0..1 units before normalisation (|Δ| · std):
//! - lossless formats: exact up to f32 rounding (1e-5), since decoding, compositing and
//!   Pillow's fixed-point resampling are reproduced bit for bit;
//! - JPEG: 3/255, because our decoder's IDCT rounds differently from libjpeg-turbo's
//!   (≤ 2 levels on ~2% of decoded values, see `decoded_images_match_pil_before_resizing`).

mod common;

use clipkit::Clip;
use common::*;

/// One level of an 8-bit channel.
const LEVEL: f32 = 1.0 / 255.0;
/// Tolerance for lossless formats: f32 rounding only.
const EXACT: f32 = 1e-5;
/// Tolerance for JPEG files: decoder rounding.
const JPEG: f32 = 3.0 * LEVEL;

/// Images whose reference clipkit deliberately does not follow (see `image::decode` docs).
const DELIBERATE_DIFFERENCES: [&str; 1] = [
    // Pillow clamps 16-bit samples to 0..255 (most of the image turns white); clipkit scales
    // them to 8 bits. Covered by `sixteen_bit_png_is_scaled_not_clamped` below.
    "gray16.png",
];

fn check_pixels(model: &str) {
    let clip = Clip::load(&model_dir(model)).unwrap();
    let want = reference(model);
    let meta = reference_json(model);
    let std: Vec<f32> = meta["image_processor"]["effective_config"]["image_std"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let mut worst = 0f32;
    for name in meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
    {
        if DELIBERATE_DIFFERENCES.contains(&name) {
            continue;
        }
        let got = clip
            .preprocess(&clip.load_image(&image(name)).unwrap())
            .unwrap();
        let reference = &want[&format!("pixel_values/{name}")];
        assert_eq!(got.dims(), reference.dims(), "{model} {name}: shape");
        // Back to 0..1 units before comparing: Δ · std.
        for (c, s) in std.iter().enumerate() {
            let g = got.get(c).unwrap();
            let r = reference.get(c).unwrap();
            let diff = max_abs_diff(&g, &r) * s;
            let tol = if name.ends_with(".jpg") { JPEG } else { EXACT };
            assert!(
                diff <= tol,
                "{model} {name} channel {c}: {:.2} levels apart",
                diff / LEVEL
            );
            worst = worst.max(diff);
        }
    }
    eprintln!(
        "{model}: worst pixel difference {:.3} levels",
        worst / LEVEL
    );
}

#[test]
fn clip_a_nested_config_pixels_match_pil_processor() {
    check_pixels("clip-a");
}

#[test]
fn clip_b_legacy_config_pixels_match_pil_processor() {
    check_pixels("clip-b");
}

#[test]
fn sixteen_bit_png_is_scaled_not_clamped() {
    let rgb = clipkit::image::load_rgb(&image("gray16.png"), u64::MAX).unwrap();
    let raw = image::open(image("gray16.png")).unwrap().to_luma16();
    let mut seen_mid = false;
    for (a, b) in rgb.pixels().zip(raw.pixels()) {
        let expected = (f32::from(b[0]) / 257.0).round();
        assert!((f32::from(a[0]) - expected).abs() <= 1.0);
        assert_eq!((a[0], a[0]), (a[1], a[2]));
        seen_mid |= (64..192).contains(&a[0]);
    }
    assert!(seen_mid, "the fixture should span mid-grey values");
}

#[test]
fn decoded_images_match_pil_before_resizing() {
    let decoded = candle_core::safetensors::load(
        fixtures().join("reference/decoded_images.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    for (key, want) in decoded {
        let name = key.trim_start_matches("decoded_rgb/");
        if DELIBERATE_DIFFERENCES.contains(&name) {
            continue;
        }
        let got = clipkit::image::load_rgb(&image(name), u64::MAX).unwrap();
        let want: Vec<u8> = want.flatten_all().unwrap().to_vec1().unwrap();
        // JPEG decoders may round IDCT output differently by a level; lossless formats are exact.
        let tol = if name.ends_with(".jpg") { 2 } else { 0 };
        let worst = got
            .as_raw()
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert_eq!(got.as_raw().len(), want.len(), "{name}: size");
        assert!(
            worst <= tol,
            "{name}: decoded pixels differ by {worst} levels"
        );
    }
}

#[test]
fn images_over_the_pixel_limit_are_refused_before_decoding() {
    // 97 × 61 = 5917 pixels declared in the header.
    let err = clipkit::image::load_rgb(&image("wide_rgb.png"), 5000).unwrap_err();
    assert!(
        matches!(
            err,
            clipkit::Error::ImageTooLarge {
                width: 97,
                height: 61,
                limit: 5000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wide_rgb.png"));
    assert!(clipkit::image::load_rgb(&image("wide_rgb.png"), 5917).is_ok());
}
