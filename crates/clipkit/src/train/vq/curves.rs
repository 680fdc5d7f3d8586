//! Training curves of a VQ run as PNG: reconstruction loss and codebook perplexity.

use std::path::Path;

use plotters::prelude::*;

use super::run::VqMetricsLine;
use crate::error::{Error, Result};
use crate::plot::ensure_font;
use crate::train::curves::{chart_error, draw_series, smoothed};

/// Draws the reconstruction loss and the batch codebook perplexity against the step, side by
/// side, into a PNG at `path`.
pub fn write_vq_curves(metrics: &[VqMetricsLine], path: &Path) -> Result<()> {
    if metrics.is_empty() {
        return Err(Error::InvalidArgument("no metrics to plot".into()));
    }
    ensure_font();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let (left, right) = root.split_horizontally(500);
    let last = metrics.last().map_or(1, |m| m.step).max(2) as f64;
    let steps: Vec<f64> = metrics.iter().map(|m| m.step as f64).collect();
    let recon = smoothed(metrics.iter().map(|m| m.reconstruction as f64));
    let perplexity = smoothed(metrics.iter().map(|m| m.perplexity));
    let max_recon = recon.iter().copied().fold(0.0, f64::max).max(1e-4) * 1.05;
    let max_perplexity = perplexity.iter().copied().fold(0.0, f64::max).max(1.0) * 1.05;
    draw_series(
        &left,
        "reconstruction MSE",
        &steps,
        &recon,
        last,
        0.0..max_recon,
        RED,
    )
    .map_err(|e| chart_error(path, e))?;
    draw_series(
        &right,
        "codebook perplexity (batch)",
        &steps,
        &perplexity,
        last,
        0.0..max_perplexity,
        BLUE,
    )
    .map_err(|e| chart_error(path, e))?;
    root.present().map_err(|e| chart_error(path, e))
}
