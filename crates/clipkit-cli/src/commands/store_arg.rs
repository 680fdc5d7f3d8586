//! The `--index STORE` option shared by index, search, dupes and serve.

use std::path::PathBuf;

use clipkit::search::EmbeddedStore;

/// Where the search index lives.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArg {
    /// Index folder. Default: `index` under $CLIPKIT_HOME, else the user data directory.
    #[arg(long = "index", value_name = "STORE")]
    index: Option<PathBuf>,
}

impl IndexArg {
    /// The folder given, or the default one.
    pub fn dir(&self) -> PathBuf {
        self.index
            .clone()
            .unwrap_or_else(clipkit::paths::default_index_dir)
    }

    /// Opens the index for reading.
    pub fn open(&self) -> anyhow::Result<EmbeddedStore> {
        Ok(EmbeddedStore::open(&self.dir())?)
    }
}
