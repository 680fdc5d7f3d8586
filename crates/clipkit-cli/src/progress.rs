//! Progress bars on stderr for long runs; silent when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` items, hidden for small jobs and non-interactive runs.
pub fn bar(total: usize, what: &str) -> ProgressBar {
    if total < 64 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template(
        "{msg} {wide_bar} {pos}/{len} [{elapsed_precise}, eta {eta}, {per_sec}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A bar over `total` bytes (downloads), hidden when stderr is not a terminal.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} [{elapsed_precise}, eta {eta}, {bytes_per_sec}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
