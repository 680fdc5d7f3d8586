//! The [`VectorStore`] trait: what indexing and searching need from a place that keeps
//! embeddings, and the plain types that cross it.

use super::error::{Result, SearchError};
use super::location::StoreLocation;

/// A store's name for one indexed image, assigned by the store when the image is added
/// (never 0) and returned by [`VectorStore::commit`]. Ids are never reused: a changed file
/// gets a new id.
pub type ItemId = u64;

/// What the indexer knows about one file: enough to tell, on the next run, whether it
/// changed (size, mtime) and, when it did or moved, whether its content did (hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The path as it was indexed (absolute for folders given on the command line).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Content hash (BLAKE3, hexadecimal).
    pub hash: String,
}

/// An indexed image: its id and its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The store's id for it.
    pub id: ItemId,
    /// The file it was made from.
    pub file: FileRecord,
}

/// A file that could not be indexed, kept so `clipkit index --status` can list it and the
/// next run retries it only when it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The path as found.
    pub path: String,
    /// Size in bytes when it failed.
    pub size: u64,
    /// Modification time (ns since the epoch) when it failed.
    pub mtime_ns: i64,
    /// Why it failed.
    pub message: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The item's id.
    pub id: ItemId,
    /// The file's path as indexed.
    pub path: String,
    /// Cosine similarity to the query (vectors are unit length), higher is closer.
    pub score: f32,
}

/// Changes a store applies all together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// New items with their unit-length embeddings. A path that is already indexed is
    /// replaced (its old item removed) in the same commit, so a batch applied twice leaves
    /// no duplicate.
    pub added: Vec<(FileRecord, Vec<f32>)>,
    /// Items to remove; unknown ids are ignored.
    pub removed: Vec<ItemId>,
    /// Items whose file moved or was touched without changing content: same vector, new
    /// record.
    pub moved: Vec<(ItemId, FileRecord)>,
    /// Files that failed; replaces an earlier failure of the same path, and removes the
    /// item of the same path (its file changed into something unreadable).
    pub failed: Vec<Failure>,
    /// Paths whose earlier failure is forgotten (deleted, or indexed now).
    pub forgotten: Vec<String>,
}

impl Batch {
    /// True when the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.moved.is_empty()
            && self.failed.is_empty()
            && self.forgotten.is_empty()
    }
}

/// A place that keeps unit-length image embeddings with their file records and finds the
/// nearest ones to a query.
///
/// Contract, which every implementation keeps and the shared test suite
/// (`tests/vector_store.rs`) checks:
/// - Ids are the store's: [`VectorStore::commit`] assigns each added item a new id, never
///   used before and never 0, and returns them in the order of [`Batch::added`].
/// - All vectors have [`VectorStore::dim`] components and were made by the one model named
///   by [`VectorStore::model`]; a store refuses vectors of another length.
/// - [`VectorStore::commit`] is atomic and durable: after it returns the batch survives a
///   crash; if the process dies during it, the store reopens as it was before the batch.
/// - A path is indexed at most once: adding a path that is already present replaces it;
///   recording a path as failed removes its item.
/// - [`VectorStore::search`] returns at most `k` hits, best first, scores being dot products
///   (cosine similarities of unit vectors); ties are broken by smaller id. An approximate
///   index may miss some of the true top `k`, but never returns removed items.
/// - Reads see the state of the last commit made through this handle (other processes'
///   commits are seen after reopening, or sooner where the backend allows).
/// - [`VectorStore::changes`] counts every commit (and compaction) made by any process:
///   when it differs from the value read earlier, reopening shows something new.
pub trait VectorStore: Send + Sync {
    /// Where the store lives.
    fn location(&self) -> &StoreLocation;
    /// Number of components of every vector.
    fn dim(&self) -> usize;
    /// Identity of the model whose embeddings the store holds (see
    /// [`super::identity::model_identity`]).
    fn model(&self) -> &str;
    /// Checks that `model` (an identity) made this store's vectors: a query embedded by
    /// another model would be compared with vectors of a different space.
    fn check_model(&self, model: &str) -> Result<()> {
        if self.model() == model {
            Ok(())
        } else {
            Err(SearchError::ModelMismatch {
                location: self.location().clone(),
                stored: self.model().to_string(),
                given: model.to_string(),
            })
        }
    }
    /// Number of indexed items.
    fn len(&self) -> usize;
    /// True when nothing is indexed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every indexed item, in id order.
    fn items(&self) -> Result<Vec<Item>>;
    /// One item, or `None` when the id is unknown.
    fn item(&self, id: ItemId) -> Result<Option<Item>>;
    /// One item's vector, or `None` when the id is unknown.
    fn vector(&self, id: ItemId) -> Result<Option<Vec<f32>>>;
    /// Files that failed to index, in path order.
    fn failures(&self) -> Result<Vec<Failure>>;
    /// Applies a batch atomically and durably; returns the ids given to `batch.added`, in
    /// its order.
    fn commit(&mut self, batch: Batch) -> Result<Vec<ItemId>>;
    /// The `k` items nearest to a unit-length `query`, best first.
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>>;
    /// Housekeeping after a run of commits (the embedded store reclaims removed vectors'
    /// space and builds or refreshes its approximate index here). Never changes results
    /// beyond the approximation the contract allows.
    fn optimize(&mut self) -> Result<()>;
    /// The store's change counter, read from the store itself (not from this handle):
    /// it grows with every commit or compaction by any process. A long-lived reader (the
    /// server) polls it and reopens the store when it moved.
    fn changes(&self) -> Result<u64>;
    /// Whether searches now go through an approximate index (see the contract on
    /// [`VectorStore::search`]) rather than comparing with every vector.
    fn is_approximate(&self) -> bool;
}
