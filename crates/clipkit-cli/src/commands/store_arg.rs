//! The `--index STORE` option shared by index, search, dupes and serve.

use clipkit::search::{StoreLocation, VectorStore};

/// Where the search index lives.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArg {
    /// Index location: a folder, or a PostgreSQL database with pgvector as
    /// `postgres://user[:password]@host[:port]/db[?schema=NAME]`. Default: `index` under
    /// $CLIPKIT_HOME, else the user data directory.
    #[arg(long = "index", value_name = "STORE")]
    index: Option<StoreLocation>,
}

impl IndexArg {
    /// The location given, or the default folder.
    pub fn location(&self) -> StoreLocation {
        self.index
            .clone()
            .unwrap_or_else(|| StoreLocation::Folder(clipkit::paths::default_index_dir()))
    }

    /// Opens the index for reading.
    pub fn open(&self) -> anyhow::Result<Box<dyn VectorStore>> {
        Ok(clipkit::search::open(&self.location())?)
    }
}
