//! The quickstart's HTML report: results against targets, training curves, and a few
//! text→image retrievals over held-out shapes images shown as thumbnails.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use clipkit::data::shapes::{ShapesConfig, ShapesWorld, Split};
use clipkit::eval::shapes::ShapesReport;
use clipkit::Clip;

/// Queries shown in the report, each answered from the same gallery.
const QUERIES: [&str; 6] = [
    "a red circle",
    "two blue squares",
    "a photo of three yellow stars",
    "a small green triangle on the left",
    "a purple hexagon",
    "an orange heart",
];
/// Held-out images the queries search.
const GALLERY: u64 = 300;
/// Thumbnails per query.
const SHOWN: usize = 6;

/// Writes the report to `path`; the curves PNG and thumbnails are embedded, so the file
/// stands alone.
pub fn write_quickstart(
    path: &Path,
    clip: &Clip,
    curves: &Path,
    results: &ShapesReport,
    targets: &[(&str, f64)],
) -> anyhow::Result<()> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>clipkit quickstart</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:1100px}\
         td,th{padding:4px 12px;text-align:left}.miss{color:#b00}.met{color:#070}\
         img.t{width:96px;height:96px;image-rendering:pixelated;margin:2px;border:1px solid #ccc}\
         </style></head><body><h1>clipkit quickstart</h1>",
    );
    html.push_str("<h2>Held-out shapes, zero-shot top-1 accuracy</h2><table>");
    html.push_str("<tr><th>question</th><th>accuracy</th><th>target</th></tr>");
    for (name, accuracy) in results.rows() {
        let target = targets.iter().find(|(t, _)| *t == name).map(|(_, v)| *v);
        let (class, target) = match target {
            Some(t) if accuracy >= t => ("met", format!("{t:.2}")),
            Some(t) => ("miss", format!("{t:.2}")),
            None => ("", "—".into()),
        };
        let _ = write!(
            html,
            "<tr><td>{name}</td><td class=\"{class}\">{accuracy:.3}</td><td>{target}</td></tr>"
        );
    }
    html.push_str("</table>");
    if let Ok(png) = std::fs::read(curves) {
        let _ = write!(
            html,
            "<h2>Training</h2><img src=\"data:image/png;base64,{}\" alt=\"training curves\">",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
    }
    html.push_str("<h2>Text → image search over held-out images</h2>");
    retrievals(&mut html, clip)?;
    html.push_str("</body></html>\n");
    std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))
}

fn retrievals(html: &mut String, clip: &Clip) -> anyhow::Result<()> {
    let world = ShapesWorld::new(ShapesConfig {
        split: Split::Test,
        seed: 7,
        image_size: crate::commands::eval::clip_image_size(clip),
        ..ShapesConfig::default()
    })?;
    let samples: Vec<_> = (0..GALLERY).map(|i| world.sample(i)).collect();
    let images: Vec<_> = samples.iter().map(|s| s.image.clone()).collect();
    let image_embeds = clip.embed_images(&images)?;
    let text_embeds = clip.embed_texts(&QUERIES)?;
    let scores = text_embeds.matmul(&image_embeds.t()?)?.to_vec2::<f32>()?;
    for (query, row) in QUERIES.iter().zip(scores) {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let _ = write!(html, "<h3>“{query}”</h3><div>");
        for &i in order.iter().take(SHOWN) {
            let mut png = Vec::new();
            samples[i]
                .image
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
            let _ = write!(
                html,
                "<img class=\"t\" title=\"{} ({:.3})\" src=\"data:image/png;base64,{}\">",
                samples[i].caption,
                row[i],
                base64::engine::general_purpose::STANDARD.encode(png)
            );
        }
        html.push_str("</div>");
    }
    Ok(())
}
