//! Shared set-up for the PNG charts clipkit draws with plotters: one embedded font, so
//! charts render the same on machines without system fonts.

use std::sync::Once;

use plotters::style::FontStyle;

/// The font family name charts ask plotters for.
pub const FONT: &str = "sans-serif";

/// Registers the embedded DejaVu Sans as [`FONT`] (once per process).
pub fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Registration fails only for a malformed font; the bundled one is well-formed,
        // and without it charts still draw, just without text.
        if plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_err()
        {
            tracing::warn!("could not register the embedded chart font");
        }
    });
}
