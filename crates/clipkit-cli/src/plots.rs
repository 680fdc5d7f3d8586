//! Pictures of results: training curves as PNG.

use std::path::Path;
use std::sync::Once;

use anyhow::Context;
use clipkit::train::MetricsLine;
use plotters::prelude::*;

/// Labels are drawn with DejaVu Sans, carried in the binary (licence beside the font file).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers the label font with plotters once per process.
pub fn register_font() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // The font is valid (carried with the binary), so registration cannot fail.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws loss and in-batch accuracy against the step, side by side, into a PNG at `path`.
pub fn training_curves(metrics: &[MetricsLine], path: &Path) -> anyhow::Result<()> {
    if metrics.is_empty() {
        anyhow::bail!("no metrics to plot");
    }
    register_font();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let last = metrics.last().map_or(1, |m| m.step).max(2) as f64;
    let loss = smoothed(metrics.iter().map(|m| m.loss as f64));
    let accuracy = smoothed(metrics.iter().map(|m| m.accuracy as f64));
    let steps: Vec<f64> = metrics.iter().map(|m| m.step as f64).collect();
    let max_loss = loss.iter().copied().fold(0.0, f64::max).max(1e-3) * 1.05;
    draw_series(
        &left,
        "contrastive loss",
        &steps,
        &loss,
        last,
        0.0..max_loss,
        RED,
    )?;
    draw_series(
        &right,
        "in-batch accuracy",
        &steps,
        &accuracy,
        last,
        0.0..1.0,
        BLUE,
    )?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn draw_series(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    steps: &[f64],
    values: &[f64],
    last_step: f64,
    range: std::ops::Range<f64>,
    colour: RGBColor,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1f64..last_step, range)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()?;
    chart.draw_series(LineSeries::new(
        steps.iter().copied().zip(values.iter().copied()),
        colour.stroke_width(2),
    ))?;
    Ok(())
}

/// Exponential moving average, so the curve shows the trend through batch-to-batch noise.
fn smoothed(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut average = None;
    values
        .map(|v| {
            let next = match average {
                Some(a) => 0.9 * a + 0.1 * v,
                None => v,
            };
            average = Some(next);
            next
        })
        .collect()
}
