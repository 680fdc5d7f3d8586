//! Training curves as PNG: loss and in-batch accuracy against the step.

use std::path::Path;

use plotters::prelude::*;

use super::run::MetricsLine;
use crate::error::{Error, Result};
use crate::plot::{ensure_font, FONT};

/// Draws loss and in-batch accuracy against the step, side by side, into a PNG at `path`.
pub fn write_training_curves(metrics: &[MetricsLine], path: &Path) -> Result<()> {
    if metrics.is_empty() {
        return Err(Error::InvalidArgument("no metrics to plot".into()));
    }
    ensure_font();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
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
    )
    .map_err(|e| chart_error(path, e))?;
    draw_series(
        &right,
        "in-batch accuracy",
        &steps,
        &accuracy,
        last,
        0.0..1.0,
        BLUE,
    )
    .map_err(|e| chart_error(path, e))?;
    root.present().map_err(|e| chart_error(path, e))
}

pub(super) fn chart_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

pub(super) fn draw_series(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    steps: &[f64],
    values: &[f64],
    last_step: f64,
    range: std::ops::Range<f64>,
    colour: RGBColor,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1f64..last_step, range)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, 13))
        .draw()?;
    chart.draw_series(LineSeries::new(
        steps.iter().copied().zip(values.iter().copied()),
        colour.stroke_width(2),
    ))?;
    Ok(())
}

/// Exponential moving average, so the curve shows the trend through batch-to-batch noise.
pub(super) fn smoothed(values: impl Iterator<Item = f64>) -> Vec<f64> {
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
