//! A confusion matrix drawn as a PNG heat map: true classes down, predicted across, each
//! cell shaded by the fraction of its row and labelled with its count when there is room.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics::Confusion;
use crate::error::{Error, Result};
use crate::plot::{ensure_font, FONT};

/// Most classes whose names and counts are written out; above it only the shading shows.
const MAX_LABELLED: usize = 40;

/// Writes `confusion` to `path` as a PNG.
pub fn write_confusion_png(confusion: &Confusion, path: &Path) -> Result<()> {
    ensure_font();
    let n = confusion.labels.len().max(1) as u32;
    let labelled = n as usize <= MAX_LABELLED;
    let cell: u32 = if n <= 12 {
        64
    } else if labelled {
        28
    } else {
        (1200 / n).max(2)
    };
    let longest = confusion
        .labels
        .iter()
        .map(|l| l.chars().count().min(MAX_CHARS))
        .max()
        .unwrap_or(1) as u32;
    // DejaVu Sans at 13 px is about 7.5 px a character.
    let text = longest * 15 / 2 + 16;
    let rotate = text > cell;
    let layout = Layout {
        cell,
        y_room: if labelled { text } else { 20 },
        x_room: if labelled && rotate { text } else { 30 },
        rotate,
        labelled,
    };
    let size = (cell * n + layout.y_room + 60, cell * n + layout.x_room + 70);
    draw(confusion, path, size, &layout).map_err(|e| Error::Io {
        path: path.into(),
        cause: std::io::Error::other(e.to_string()),
    })
}

/// Longest class name drawn, in characters.
const MAX_CHARS: usize = 28;

struct Layout {
    cell: u32,
    y_room: u32,
    x_room: u32,
    rotate: bool,
    labelled: bool,
}

fn draw(
    confusion: &Confusion,
    path: &Path,
    size: (u32, u32),
    layout: &Layout,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let n = confusion.labels.len();
    if n == 0 {
        return Err("no classes to draw".into());
    }
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confusion matrix: true (rows) vs predicted (columns)",
            (FONT, 15),
        )
        .margin(12)
        .x_label_area_size(layout.x_room + 20)
        .y_label_area_size(layout.y_room + 20)
        // Discrete ranges include their end: 0..n-1 gives n cells.
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())?;
    // Row t is drawn at y = n - 1 - t, so the first class is at the top.
    // Tick labels are names when there is room; (plotters loops forever when asked for
    // zero labels, so unlabelled ticks get empty strings instead).
    let name = |v: &SegmentValue<usize>, flip: bool| -> String {
        match v {
            SegmentValue::CenterOf(i) if *i < n && layout.labelled => {
                let index = if flip { n - 1 - i } else { *i };
                confusion.labels[index].chars().take(MAX_CHARS).collect()
            }
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&|v| {
            if layout.rotate {
                String::new()
            } else {
                name(v, false)
            }
        })
        .y_label_formatter(&|v| name(v, true))
        .x_label_style((FONT, 13))
        .y_label_style((FONT, 13))
        .x_desc("predicted")
        .y_desc("true")
        .axis_desc_style((FONT, 14))
        .draw()?;
    let per_class = confusion.per_class();
    for (t, row) in confusion.counts.iter().enumerate() {
        let total = per_class[t].0.max(1) as f64;
        let y = n - 1 - t;
        for (p, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let shade = (255.0 * (1.0 - share)) as u8;
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ],
                RGBColor(shade, shade, 255).filled(),
            )))?;
            if layout.labelled && count > 0 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let size = if layout.cell >= 64 { 15 } else { 11 };
                let style = (FONT, size)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                    style,
                )))?;
            }
        }
    }
    if layout.rotate && layout.labelled {
        // plotters centres rotated tick labels on the axis; write them downwards below it.
        let style = (FONT, 13).into_font().transform(FontTransform::Rotate90);
        for p in 0..n {
            let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(p), SegmentValue::Exact(0)));
            let label: String = confusion.labels[p].chars().take(MAX_CHARS).collect();
            root.draw(&Text::new(label, (x + 7, y + 8), style.clone()))?;
        }
    }
    root.present()?;
    Ok(())
}
