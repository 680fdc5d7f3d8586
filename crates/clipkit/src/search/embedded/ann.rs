//! The approximate index: an HNSW graph from the `usearch` crate, over half-precision
//! vectors, whose candidates the store re-scores exactly with the f32 rows.
//!
//! Why usearch: on 20 000 clustered 512-d unit vectors (2 busy cores) it built 3× faster
//! than hnsw_rs and answered 8× faster at equal recall, and it saves to one file that is
//! memory-mapped back. Why f16: on those 20 000 vectors it built faster than f32 at the same
//! recall (0.999); i8 builds faster still but reached only 0.945, a unit vector's 512
//! components (about ±0.04 each) falling on a dozen i8 levels. At 1M vectors of the same
//! kind (`examples/search_bench.rs`) a graph of 16 links built at width 64 levelled off
//! near recall@10 0.92 however wide the search, with i8 or f16 alike: the graph, not the
//! precision, was the limit; 32 links built at width 128 reach 1.00 (see [`AnnParams`]).
//!
//! The index is derived data: it covers the items with id ≤ its `max_id` when built, is
//! recorded in the store's `meta` (`ann_file`, `ann_max_id`), and when its file is missing
//! or unreadable the store warns and searches exactly.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rusqlite::Connection;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::schema;
use crate::search::error::{Result, SearchError};
use crate::search::store::ItemId;

/// How densely the graph is built: denser finds more true neighbours in large collections
/// and takes longer to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnParams {
    /// Links per graph node (default 32).
    pub connectivity: usize,
    /// Candidate list length while inserting (default 128).
    pub expansion_add: usize,
}

impl Default for AnnParams {
    /// 32 links, width 128: at 1M clustered 512-d vectors, recall@10 1.00 at search width
    /// 256, where 16 links and width 64 reached 0.84 (0.92 at width 4096).
    fn default() -> Self {
        AnnParams {
            connectivity: 32,
            expansion_add: 128,
        }
    }
}

/// Candidate list length while searching (at least the number of candidates asked for).
const EXPANSION_SEARCH: usize = 256;

/// A loaded approximate index.
pub struct AnnIndex {
    index: Index,
    path: PathBuf,
    max_id: ItemId,
}

impl AnnIndex {
    /// Builds an index of `items` (id, unit vector), saves it in `dir` and returns it.
    /// `max_id` is the largest id the store had when building.
    pub fn build(
        dir: &Path,
        dim: usize,
        params: AnnParams,
        items: &[(ItemId, &[f32])],
        max_id: ItemId,
    ) -> Result<Self> {
        let path = dir.join(format!("ann.{max_id}.usearch"));
        let fail = |e: &dyn std::fmt::Display| SearchError::Ann {
            path: path.clone(),
            message: e.to_string(),
        };
        let index = Index::new(&options(dim, params)).map_err(|e| fail(&e))?;
        index
            .reserve_capacity_and_threads(items.len(), rayon::current_num_threads())
            .map_err(|e| fail(&e))?;
        items
            .par_iter()
            .try_for_each(|(id, v)| index.add(*id, v))
            .map_err(|e| fail(&e))?;
        let tmp = path.with_extension("tmp");
        index.save(&path_str(&tmp)?).map_err(|e| fail(&e))?;
        sync(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| SearchError::io(&path, e))?;
        index.change_expansion_search(EXPANSION_SEARCH);
        Ok(AnnIndex {
            index,
            path,
            max_id,
        })
    }

    /// Opens a saved index (memory-mapped).
    pub fn open(path: &Path, dim: usize, max_id: ItemId) -> Result<Self> {
        let fail = |message: String| SearchError::Ann {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(fail("file missing".into()));
        }
        let index = Index::restore_view(&path_str(path)?).map_err(|e| fail(e.to_string()))?;
        if index.dimensions() != dim {
            return Err(fail(format!(
                "{} dimensions, the store has {dim}",
                index.dimensions()
            )));
        }
        index.change_expansion_search(EXPANSION_SEARCH);
        Ok(AnnIndex {
            index,
            path: path.to_path_buf(),
            max_id,
        })
    }

    /// Sets the candidate list length of searches (default 256; at least the number of
    /// candidates asked for is always used). Wider is slower and finds more true neighbours.
    pub fn set_expansion_search(&self, n: usize) {
        self.index.change_expansion_search(n);
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Items with ids up to this were in the store when the index was built.
    pub fn max_id(&self) -> ItemId {
        self.max_id
    }

    /// Number of vectors in the index.
    pub fn count(&self) -> usize {
        self.index.size()
    }

    /// Ids of about the `n` nearest vectors to `query`, roughly best first.
    pub fn search(&self, query: &[f32], n: usize) -> Result<Vec<ItemId>> {
        self.index
            .search(query, n)
            .map(|m| m.keys)
            .map_err(|e| SearchError::Ann {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

/// The index recorded in the store's `meta`, or `None` when there is none or it cannot be
/// read (then the store searches exactly, and says so in the log).
pub fn load_recorded(
    conn: &Connection,
    db_path: &Path,
    dir: &Path,
    dim: usize,
) -> Result<Option<AnnIndex>> {
    let (Some(file), Some(max_id)) = (
        schema::get(conn, db_path, "ann_file")?,
        schema::get(conn, db_path, "ann_max_id")?.and_then(|v| v.parse().ok()),
    ) else {
        return Ok(None);
    };
    match AnnIndex::open(&dir.join(file), dim, max_id) {
        Ok(ann) => Ok(Some(ann)),
        Err(e) => {
            tracing::warn!("{e}; searching exactly until `clipkit index` rebuilds it");
            Ok(None)
        }
    }
}

fn options(dim: usize, params: AnnParams) -> IndexOptions {
    IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F16,
        connectivity: params.connectivity,
        expansion_add: params.expansion_add,
        expansion_search: EXPANSION_SEARCH,
        multi: false,
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| SearchError::Ann {
            path: path.to_path_buf(),
            message: "path is not valid UTF-8".into(),
        })
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| SearchError::io(path, e))
}
