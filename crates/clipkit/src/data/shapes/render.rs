//! Drawing scenes with tiny-skia: anti-aliased fills of unit-sized outlines, scaled,
//! rotated and moved into place.

use std::sync::OnceLock;

use image::RgbImage;
use tiny_skia::{FillRule, Paint, Path, PathBuilder, Pixmap, Rect, Transform};

use super::scene::Scene;
use super::vocab::Shape;

/// Draws `scene` as a `side`×`side` image. `side` must be at least 1 (the world checks).
pub fn render(scene: &Scene, side: u32) -> RgbImage {
    let [r, g, b] = scene.background;
    let mut pixmap = Pixmap::new(side, side).expect("image size checked by ShapesWorld::new");
    pixmap.fill(tiny_skia::Color::from_rgba8(r, g, b, 255));
    let s = side as f32;
    for object in &scene.objects {
        let [r, g, b] = object.rgb;
        let mut paint = Paint::default();
        paint.set_color_rgba8(r, g, b, 255);
        paint.anti_alias = true;
        let radius = object.size.radius() * s;
        let transform = Transform::from_translate(object.centre.0 * s, object.centre.1 * s)
            .pre_rotate(object.angle)
            .pre_scale(radius, radius);
        pixmap.fill_path(
            outline(object.shape),
            &paint,
            FillRule::Winding,
            transform,
            None,
        );
    }
    // Every pixel is opaque, so the premultiplied RGBA bytes are plain RGB plus 255.
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(side, side, rgb).expect("a side×side RGB buffer")
}

/// The outline of `shape` inside the unit circle, centred on the origin, y down. Every
/// outline contains the origin.
fn outline(shape: Shape) -> &'static Path {
    static OUTLINES: OnceLock<Vec<Path>> = OnceLock::new();
    let outlines = OUTLINES.get_or_init(|| Shape::ALL.iter().map(|&s| build(s)).collect());
    &outlines[shape.index()]
}

fn build(shape: Shape) -> Path {
    let path = match shape {
        Shape::Circle => PathBuilder::from_circle(0.0, 0.0, 0.95),
        Shape::Square => Rect::from_ltrb(-0.8, -0.8, 0.8, 0.8).map(PathBuilder::from_rect),
        // Circumradius 1.05 centred on the centroid: about as much area as the others.
        Shape::Triangle => polygon(&regular(3, 1.05, -90.0)),
        Shape::Star => polygon(&star(1.0, 0.45)),
        Shape::Hexagon => polygon(&regular(6, 0.95, 0.0)),
        Shape::Cross => polygon(&cross(0.95, 0.32)),
        Shape::Heart => heart(),
    };
    path.expect("built-in outlines are valid paths")
}

/// `n` vertices on a circle of `radius`, the first at `start` degrees.
fn regular(n: usize, radius: f32, start: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let a = (start + 360.0 * i as f32 / n as f32).to_radians();
            (radius * a.cos(), radius * a.sin())
        })
        .collect()
}

/// A five-pointed star, one point up, alternating outer and inner radii.
fn star(outer: f32, inner: f32) -> Vec<(f32, f32)> {
    (0..10)
        .map(|i| {
            let a = (-90.0 + 36.0 * i as f32).to_radians();
            let r = if i % 2 == 0 { outer } else { inner };
            (r * a.cos(), r * a.sin())
        })
        .collect()
}

/// A plus sign reaching `reach` from the centre, arms `half_width` wide on each side.
fn cross(reach: f32, half_width: f32) -> Vec<(f32, f32)> {
    let (r, w) = (reach, half_width);
    vec![
        (-w, -r),
        (w, -r),
        (w, -w),
        (r, -w),
        (r, w),
        (w, w),
        (w, r),
        (-w, r),
        (-w, w),
        (-r, w),
        (-r, -w),
        (-w, -w),
    ]
}

fn polygon(points: &[(f32, f32)]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    let (&(x0, y0), rest) = points.split_first()?;
    pb.move_to(x0, y0);
    for &(x, y) in rest {
        pb.line_to(x, y);
    }
    pb.close();
    pb.finish()
}

/// Two lobes on top, a point at the bottom, symmetric about the vertical axis.
fn heart() -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(0.0, 0.85);
    pb.cubic_to(-0.5, 0.45, -0.95, 0.1, -0.95, -0.3);
    pb.cubic_to(-0.95, -0.85, -0.25, -1.0, 0.0, -0.55);
    pb.cubic_to(0.25, -1.0, 0.95, -0.85, 0.95, -0.3);
    pb.cubic_to(0.95, 0.1, 0.5, 0.45, 0.0, 0.85);
    pb.close();
    pb.finish()
}
