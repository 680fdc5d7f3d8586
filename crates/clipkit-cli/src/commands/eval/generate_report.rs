//! The HTML report of `clipkit eval generate`: the table per category, then a contact sheet
//! of every category, each image under its prompt with the checks it passed and failed.
//! Thumbnails are embedded, so the file stands alone.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clipkit::eval::generated::{GeneratedReport, PromptResult};

/// Longest side of a thumbnail in pixels.
const THUMBNAIL: u32 = 128;

/// The style sheet of the pages that show judged images (this report and the imagine
/// quickstart's).
pub const STYLE: &str = "<style>body{font-family:sans-serif;margin:2em}\
    td,th{padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}\
    .sheet{display:flex;flex-wrap:wrap}figure{margin:4px;width:140px;font-size:11px}\
    figure img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc}\
    .ok{color:#070}.no{color:#b00}.met{color:#070}.miss{color:#b00}</style>";

/// Writes `dir/report.html` (creating `dir`) through a temporary file renamed into place,
/// so an interrupted run leaves no half-written report. Returns its path.
pub fn write(dir: &Path, report: &GeneratedReport, judged: bool) -> anyhow::Result<PathBuf> {
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>clipkit eval generate\
         </title>{STYLE}</head><body><h1>Generated images judged against their prompts</h1>"
    );
    sections(&mut html, report, judged)?;
    html.push_str("</body></html>\n");
    write_page(dir, "report.html", &html)
}

/// Appends the table per category and a contact sheet of every category (`<h3>` each,
/// every image under its prompt with the checks it passed and failed) to `html`.
pub fn sections(html: &mut String, report: &GeneratedReport, judged: bool) -> anyhow::Result<()> {
    if !judged {
        html.push_str("<p>No judge model was given: shape and binding are not measured.</p>");
    }
    table(html, report);
    for row in &report.categories {
        if row.category == "all" {
            continue;
        }
        let _ = write!(
            html,
            "<h3>{}</h3><div class=\"sheet\">",
            escape(&row.category)
        );
        for result in report.results.iter().filter(|r| r.category == row.category) {
            figure(html, result)?;
        }
        html.push_str("</div>");
    }
    Ok(())
}

/// Writes `html` to `dir/name` (creating `dir`) through a temporary file renamed into
/// place, so an interrupted run leaves no half-written page. Returns its path.
pub fn write_page(dir: &Path, name: &str, html: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, html)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("cannot move the page to {}", path.display()))?;
    Ok(path)
}

fn table(html: &mut String, report: &GeneratedReport) {
    html.push_str("<table><tr><th>category</th><th>prompts</th>");
    let Some(first) = report.categories.first() else {
        return;
    };
    for (name, _) in first.measures() {
        let _ = write!(html, "<th>{name}</th>");
    }
    html.push_str("</tr>");
    for row in &report.categories {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>",
            escape(&row.category),
            row.prompts
        );
        for (name, value) in row.measures() {
            let _ = write!(html, "<td>{}</td>", cell(name, value));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

fn figure(html: &mut String, result: &PromptResult) -> anyhow::Result<()> {
    let image = clipkit::image::load_rgb(&result.path, clipkit::image::DEFAULT_MAX_PIXELS)?;
    let image = if image.width().max(image.height()) > THUMBNAIL {
        image::imageops::thumbnail(&image, THUMBNAIL, THUMBNAIL)
    } else {
        image
    };
    let mut png = Vec::new();
    image.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
    let _ = write!(
        html,
        "<figure><img title=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}. {}<br>",
        escape(&result.path.display().to_string()),
        base64::engine::general_purpose::STANDARD.encode(png),
        result.index,
        escape(&result.prompt)
    );
    let checks = [
        ("colour", result.colour),
        ("count", result.count),
        ("position", result.position),
        ("judge colour", result.judge_colour),
        ("shape", result.shape),
        ("binding", result.binding),
    ];
    for (name, value) in checks {
        if let Some(ok) = value {
            let (class, mark) = if ok { ("ok", "✓") } else { ("no", "✗") };
            let _ = write!(html, "<span class=\"{class}\">{name} {mark}</span> ");
        }
    }
    if let Some(score) = result.clipscore {
        let _ = write!(html, "<br>CLIP-S {score:.3}");
    }
    html.push_str("</figcaption></figure>");
    Ok(())
}

/// A table cell: CLIPScore with three decimals, accuracies as percentages, "—" where a
/// measure was not asked.
pub fn cell(name: &str, value: Option<f64>) -> String {
    match value {
        None => "—".to_string(),
        Some(v) if name == "clipscore" => format!("{v:.3}"),
        Some(v) => format!("{:.1}%", 100.0 * v),
    }
}

/// `text` with the HTML special characters escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
