//! The embedded store, clipkit's default: one folder, no server.
//!
//! ```text
//! STORE/
//!   index.sqlite        items (id, path, size, mtime, hash, slot), failures, meta
//!   vectors.<G>.f32     flat rows of E f32, slot s at byte 64 + 4·E·s (see `vectors`)
//!   ann.<N>.usearch     approximate index over the items with id ≤ N (derived, optional)
//!   lock                held by the one process that writes
//! ```
//!
//! Crash safety: a commit appends its vectors and syncs them, then records the items and the
//! new row count in one SQLite transaction. A crash before that transaction leaves an
//! ignored tail in the vector file; a crash after it loses nothing. Compaction writes a new
//! generation `G + 1` of the vector file and switches to it in one transaction.

mod ann;

pub use ann::AnnParams;
mod commit;
mod optimize;
mod read;
mod schema;
mod vectors;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use super::error::{Result, SearchError};
use super::location::StoreLocation;
use super::store::ItemId;
use ann::AnnIndex;
use schema::sql_error;
use vectors::VectorFile;

/// Number of items from which [`super::VectorStore::optimize`] builds an approximate index.
pub const DEFAULT_ANN_THRESHOLD: usize = 20_000;

/// The embedded [`super::VectorStore`]: SQLite metadata and a flat vector file in one folder.
pub struct EmbeddedStore {
    location: StoreLocation,
    dir: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
    model: String,
    dim: usize,
    generation: u64,
    vectors: VectorFile,
    /// slot → item id; 0 marks the slot of a removed item.
    slots: Vec<ItemId>,
    /// item id → slot.
    slot_of: HashMap<ItemId, usize>,
    ann: Option<AnnIndex>,
    ann_threshold: usize,
    ann_params: AnnParams,
    _lock: Option<File>,
}

impl EmbeddedStore {
    /// Opens the store in `dir` for writing, creating it for `model` (an identity from
    /// [`super::model_identity`]) and `dim`-component vectors when absent. Refuses a store
    /// made by another model, and a store another process is writing.
    pub fn open_or_create(dir: &Path, model: &str, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        let lock = take_lock(dir)?;
        let db_path = dir.join("index.sqlite");
        let mut conn = schema::connect(&db_path, true)?;
        let is_new = !has_tables(&conn, &db_path)?;
        if is_new {
            // The vector file first: a crash before the tables exist just starts over.
            VectorFile::create(&vector_path(dir, 0), dim)?;
            schema::initialise(&mut conn, &db_path, model, dim)?;
        }
        let store = Self::load(dir, conn, true, Some(lock))?;
        super::VectorStore::check_model(&store, model)?;
        if store.dim != dim {
            return Err(SearchError::Dimension {
                expected: store.dim,
                given: dim,
            });
        }
        Ok(store)
    }

    /// Opens an existing store for reading (searching, listing). Other processes may write
    /// meanwhile; this handle sees the state at opening.
    pub fn open(dir: &Path) -> Result<Self> {
        let db_path = existing_db(dir)?;
        let conn = schema::connect(&db_path, false)?;
        Self::load(dir, conn, false, None)
    }

    /// Opens an existing store for writing, whichever model made it (to remove items).
    /// Refuses a store another process is writing.
    pub fn open_writable(dir: &Path) -> Result<Self> {
        let db_path = existing_db(dir)?;
        let lock = take_lock(dir)?;
        let conn = schema::connect(&db_path, false)?;
        Self::load(dir, conn, true, Some(lock))
    }

    /// Sets the number of items from which [`super::VectorStore::optimize`] builds an
    /// approximate index (default [`DEFAULT_ANN_THRESHOLD`]; `usize::MAX` never builds one).
    pub fn with_ann_threshold(mut self, threshold: usize) -> Self {
        self.ann_threshold = threshold;
        self
    }

    /// Sets how widely the approximate index searches (its candidate list length, default
    /// 256): a trade of latency for recall. No effect on exact search.
    pub fn set_search_expansion(&self, n: usize) {
        if let Some(ann) = &self.ann {
            ann.set_expansion_search(n);
        }
    }

    /// Sets how densely the next approximate index is built (default [`AnnParams::default`]).
    pub fn with_ann_params(mut self, params: AnnParams) -> Self {
        self.ann_params = params;
        self
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn load(dir: &Path, conn: Connection, writable: bool, lock: Option<File>) -> Result<Self> {
        let db_path = dir.join("index.sqlite");
        schema::check_format(&conn, &db_path)?;
        let model: String = schema::require(&conn, &db_path, "model")?;
        let dim: usize = schema::require(&conn, &db_path, "dim")?;
        let generation: u64 = schema::require(&conn, &db_path, "generation")?;
        let rows: usize = schema::require(&conn, &db_path, "rows")?;
        let vectors = VectorFile::open(&vector_path(dir, generation), dim, rows, writable)?;
        let mut slots = vec![0; rows];
        let mut slot_of = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, slot FROM items")
                .map_err(|e| sql_error(&db_path, e))?;
            let pairs = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(|e| sql_error(&db_path, e))?;
            for pair in pairs {
                let (id, slot) = pair.map_err(|e| sql_error(&db_path, e))?;
                let in_range = usize::try_from(slot).ok().filter(|s| *s < rows);
                let (Some(slot), Ok(id)) = (in_range, ItemId::try_from(id)) else {
                    return Err(SearchError::corrupt(
                        &db_path,
                        format!("item {id} points at slot {slot} of {rows}"),
                    ));
                };
                slots[slot] = id;
                slot_of.insert(id, slot);
            }
        }
        let ann = ann::load_recorded(&conn, &db_path, dir, dim)?;
        if writable {
            remove_stale_files(dir, generation, ann.as_ref().map(AnnIndex::path));
        }
        Ok(EmbeddedStore {
            location: StoreLocation::Folder(dir.to_path_buf()),
            dir: dir.to_path_buf(),
            db_path,
            db: Mutex::new(conn),
            model,
            dim,
            generation,
            vectors,
            slots,
            slot_of,
            ann,
            ann_threshold: DEFAULT_ANN_THRESHOLD,
            ann_params: AnnParams::default(),
            _lock: lock,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-changed (SQLite
        // rolls back an unfinished transaction), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The database of the store in `dir`, or [`SearchError::NoIndex`].
fn existing_db(dir: &Path) -> Result<PathBuf> {
    let db_path = dir.join("index.sqlite");
    if db_path.is_file() {
        Ok(db_path)
    } else {
        Err(SearchError::NoIndex {
            location: StoreLocation::Folder(dir.to_path_buf()),
        })
    }
}

fn vector_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("vectors.{generation}.f32"))
}

fn has_tables(conn: &Connection, path: &Path) -> Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(|e| sql_error(path, e))
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = File::create(&path).map_err(|e| SearchError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SearchError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(SearchError::io(&path, e)),
    }
}

/// Deletes vector files of other generations and approximate indexes not in use (left by a
/// crash between writing a new file and recording it).
fn remove_stale_files(dir: &Path, generation: u64, ann: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let current = vector_path(dir, generation);
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stale_vectors = name.starts_with("vectors.") && path != current;
        let stale_ann = name.starts_with("ann.") && Some(path.as_path()) != ann;
        if stale_vectors || stale_ann {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("{}: cannot remove stale file: {e}", path.display());
            }
        }
    }
}

impl super::VectorStore for EmbeddedStore {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn len(&self) -> usize {
        self.slot_of.len()
    }

    fn items(&self) -> Result<Vec<super::Item>> {
        self.all_items()
    }

    fn item(&self, id: ItemId) -> Result<Option<super::Item>> {
        self.one_item(id)
    }

    fn vector(&self, id: ItemId) -> Result<Option<Vec<f32>>> {
        Ok(self.one_vector(id))
    }

    fn failures(&self) -> Result<Vec<super::Failure>> {
        self.all_failures()
    }

    fn commit(&mut self, batch: super::Batch) -> Result<Vec<ItemId>> {
        self.commit_batch(batch)
    }

    fn search(&self, query: &[f32], k: usize) -> Result<Vec<super::Hit>> {
        self.nearest(query, k)
    }

    fn optimize(&mut self) -> Result<()> {
        self.tidy()
    }

    fn changes(&self) -> Result<u64> {
        let value = schema::get(&self.conn(), &self.db_path, schema::CHANGES)?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn is_approximate(&self) -> bool {
        self.ann.is_some()
    }
}
