//! Where clipkit keeps its per-user files: the default model and the default search index.
//!
//! Everything lives under one data directory: `$CLIPKIT_HOME` when set, otherwise the
//! platform's user data directory (`$XDG_DATA_HOME/clipkit`, usually
//! `~/.local/share/clipkit`, on Linux).

use std::path::PathBuf;

/// The environment variable that moves clipkit's data directory.
pub const HOME_ENV: &str = "CLIPKIT_HOME";

/// The root of clipkit's per-user files.
pub fn data_dir() -> PathBuf {
    match std::env::var_os(HOME_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("clipkit"),
    }
}

/// The model folder used when a command is given no `--model`; `clipkit quickstart` saves
/// the model it trains here.
pub fn default_model_dir() -> PathBuf {
    data_dir().join("models").join("default")
}

/// The search index used when a command is given no `--index`.
pub fn default_index_dir() -> PathBuf {
    data_dir().join("index")
}

/// The text-to-image generator folder `clipkit imagine` uses when given no `--generator`.
pub fn default_generator_dir() -> PathBuf {
    data_dir().join("generators").join("default")
}

/// The folder where the `clipkit` binary keeps models' packed weights between loads (see
/// [`crate::model::PackedCache`]); safe to delete at any time.
pub fn packed_cache_dir() -> PathBuf {
    data_dir().join("cache").join("packed")
}
