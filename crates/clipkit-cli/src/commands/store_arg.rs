//! The `--index STORE` and `--root NAME=DIR` options shared by index, search, dupes and
//! serve.

use clipkit::search::{NamedRoot, NamedRoots, StoreLocation, VectorStore};

/// Where the search index lives, and the named roots its keys are relative to.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArg {
    /// Index location: a folder, or a PostgreSQL database with pgvector as
    /// `postgres://user[:password]@host[:port]/db[?schema=NAME]`. Default: `index` under
    /// $CLIPKIT_HOME, else the user data directory.
    #[arg(long = "index", value_name = "STORE")]
    index: Option<StoreLocation>,
    /// A named root, NAME=DIR (repeatable): files under DIR are indexed as `NAME:path/in/DIR`
    /// instead of by absolute path, so hosts that mount one share at different places index
    /// and search it as one collection; give each host its own DIR for the same NAME.
    #[arg(long = "root", value_name = "NAME=DIR")]
    roots: Vec<NamedRoot>,
}

impl IndexArg {
    /// The location given, or the default folder.
    pub fn location(&self) -> StoreLocation {
        self.index
            .clone()
            .unwrap_or_else(|| StoreLocation::Folder(clipkit::paths::default_index_dir()))
    }

    /// The named roots given.
    pub fn named_roots(&self) -> anyhow::Result<NamedRoots> {
        Ok(NamedRoots::new(self.roots.clone())?)
    }

    /// Opens the index for reading.
    pub fn open(&self) -> anyhow::Result<Box<dyn VectorStore>> {
        Ok(clipkit::search::open(&self.location())?)
    }
}
