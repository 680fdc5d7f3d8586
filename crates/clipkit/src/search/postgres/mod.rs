//! The PostgreSQL + pgvector store: items in a table of one schema, embeddings as pgvector
//! `vector(dim)`, searched exactly (`ORDER BY embedding <#> q`, a parallel scan) or through
//! an HNSW index once [`VectorStore::optimize`] has built one. The index is over the
//! vectors cast to `halfvec` (`halfvec_cosine_ops`): half the memory of one over `vector`
//! at the same recall (measured by `examples/pg_bench.rs`: 130 MB against 260 MB at
//! 100,000 × 512, recall@10 0.987 against 0.979 at ef_search 200); scores are computed
//! from the full-precision vectors.
//!
//! Many processes may write one store at once: ids come from a sequence, each commit is one
//! transaction (a process killed mid-batch leaves nothing of that batch), and a path is
//! unique. Reads always see the latest commit of every process.
//!
//! The HNSW index is built with [`HnswParams`] and searched with `hnsw.ef_search` = [`DEFAULT_EF_SEARCH`] (at least `k`); see
//! [`PgStore::set_search_expansion`]. Vectors are unit length, so cosine order is dot order
//! and scores are dot products as in every store.

mod commit;
mod schema;
mod url;

use std::sync::Mutex;
use std::time::Duration;

use pgvector::Vector;
use postgres::{Client, NoTls};

use super::error::{Result, SearchError};
use super::location::StoreLocation;
use super::store::{Failure, FileRecord, Hit, Item, ItemId, VectorStore};
pub use url::{PgLocation, DEFAULT_SCHEMA};

/// Number of items from which [`VectorStore::optimize`] builds the HNSW index.
pub const DEFAULT_ANN_THRESHOLD: usize = 20_000;

/// `hnsw.ef_search` used by approximate searches unless set otherwise.
pub const DEFAULT_EF_SEARCH: usize = 200;

/// How the HNSW graph is built (pgvector's `m` and `ef_construction`): denser graphs find
/// more true neighbours in large collections and take longer to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per graph node (`m`; default 24, pgvector's own 16).
    pub m: usize,
    /// Candidate list length while inserting (`ef_construction`; default 128, pgvector's own
    /// 64).
    pub ef_construction: usize,
}

impl Default for HnswParams {
    /// m 24, ef_construction 128: at 1M clustered 512-d vectors (`examples/pg_bench.rs`)
    /// recall@10 0.979 at ef_search 200 and 0.999 at 400, where pgvector's defaults (16, 64)
    /// reached 0.854 and 0.920 and stopped at 0.936 (ef_search 1000); the build took about
    /// twice as long (1,594 s against 801 s on two busy cores, maintenance_work_mem 4 GB).
    fn default() -> Self {
        HnswParams {
            m: 24,
            ef_construction: 128,
        }
    }
}

/// How long connecting may take before the store reports the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL [`VectorStore`]. One connection, shared by the handle's callers.
pub struct PgStore {
    location: StoreLocation,
    schema: String,
    client: Mutex<Client>,
    model: String,
    dim: usize,
    len: usize,
    approximate: bool,
    ann_threshold: usize,
    hnsw: HnswParams,
    ef_search: std::sync::atomic::AtomicUsize,
}

impl PgStore {
    /// Opens the store at `pg` for writing, creating its schema for `model` and
    /// `dim`-component vectors when absent (and the `vector` extension when the server has
    /// it). Refuses a store of another model or dimension; other writers are welcome.
    pub fn open_or_create(pg: &PgLocation, model: &str, dim: usize) -> Result<Self> {
        let location = StoreLocation::Postgres(pg.clone());
        let mut client = connect(&location, pg)?;
        if !schema::exists(&mut client, &location, pg.schema())? {
            schema::ensure_vector_extension(&mut client, &location)?;
            schema::create(&mut client, &location, pg.schema(), model, dim)?;
        }
        let store = Self::load(location, pg, client)?;
        store.check_model(model)?;
        if store.dim != dim {
            return Err(SearchError::Dimension {
                expected: store.dim,
                given: dim,
            });
        }
        Ok(store)
    }

    /// Opens an existing store (for reading or writing, whichever model made it). Fails
    /// with [`SearchError::NoIndex`] when the schema holds none.
    pub fn open(pg: &PgLocation) -> Result<Self> {
        let location = StoreLocation::Postgres(pg.clone());
        let mut client = connect(&location, pg)?;
        if !schema::exists(&mut client, &location, pg.schema())? {
            return Err(SearchError::NoIndex { location });
        }
        Self::load(location, pg, client)
    }

    fn load(location: StoreLocation, pg: &PgLocation, mut client: Client) -> Result<Self> {
        let schema = pg.schema().to_string();
        schema::check_version(&mut client, &location, &schema)?;
        let model = schema::meta(&mut client, &location, &schema, "model")?;
        let dim_text = schema::meta(&mut client, &location, &schema, "dim")?;
        let dim = dim_text.parse().map_err(|_| SearchError::Database {
            location: location.clone(),
            message: format!("the store's meta table has dim {dim_text:?}, not a number"),
        })?;
        let mut store = PgStore {
            location,
            schema,
            client: Mutex::new(client),
            model,
            dim,
            len: 0,
            approximate: false,
            ann_threshold: DEFAULT_ANN_THRESHOLD,
            hnsw: HnswParams::default(),
            ef_search: DEFAULT_EF_SEARCH.into(),
        };
        store.refresh_counts()?;
        Ok(store)
    }

    /// Sets the number of items from which [`VectorStore::optimize`] builds the HNSW index
    /// (default [`DEFAULT_ANN_THRESHOLD`]; `usize::MAX` never builds one).
    pub fn with_ann_threshold(mut self, threshold: usize) -> Self {
        self.ann_threshold = threshold;
        self
    }

    /// Sets how [`VectorStore::optimize`] builds the HNSW index (default
    /// [`HnswParams::default`]); an index built earlier is kept as it is.
    pub fn with_hnsw_params(mut self, params: HnswParams) -> Self {
        self.hnsw = params;
        self
    }

    /// Sets `hnsw.ef_search`, the candidate list length of approximate searches (default
    /// [`DEFAULT_EF_SEARCH`]; a search for `k` results uses at least `k`).
    pub fn set_search_expansion(&self, n: usize) {
        self.ef_search
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The `k` items nearest to `query` by comparing with every vector, whether or not an
    /// HNSW index exists (benchmarks compare the two).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.nearest(query, k, false)
    }

    fn nearest(&self, query: &[f32], k: usize, approximate: bool) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(SearchError::Dimension {
                expected: self.dim,
                given: query.len(),
            });
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let q = Vector::from(query.to_vec());
        let limit = k as i64;
        let mut client = self.client();
        let rows = if approximate {
            // The HNSW index serves this `ORDER BY … <=> q LIMIT k` only; ties are then
            // put in id order here.
            let ef = self
                .ef_search
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(k)
                .min(1000);
            let mut tx = client.transaction().map_err(|e| self.err(e))?;
            tx.batch_execute(&format!("SET LOCAL hnsw.ef_search = {ef}"))
                .map_err(|e| self.err(e))?;
            let sql = format!(
                "SELECT id, path, -(embedding <#> $1)::real FROM {}.items
                 ORDER BY embedding::halfvec({dim}) <=> ($1::vector)::halfvec({dim}) LIMIT $2",
                self.schema,
                dim = self.dim
            );
            let rows = tx.query(&sql, &[&q, &limit]).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            rows
        } else {
            let sql = format!(
                "SELECT id, path, -(embedding <#> $1)::real FROM {}.items
                 ORDER BY embedding <#> $1, id LIMIT $2",
                self.schema
            );
            client.query(&sql, &[&q, &limit]).map_err(|e| self.err(e))?
        };
        let mut hits: Vec<Hit> = rows
            .iter()
            .map(|r| Hit {
                id: r.get::<_, i64>(0) as ItemId,
                path: r.get(1),
                score: r.get(2),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        Ok(hits)
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        // A panic while holding the lock leaves at worst an open transaction, which the
        // server rolls back when the next statement fails; the connection stays usable.
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the item count and whether the HNSW index exists.
    fn refresh_counts(&mut self) -> Result<()> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {0}.items),
                            to_regclass('{0}.items_embedding_hnsw') IS NOT NULL",
                    self.schema
                ),
                &[],
            )
            .map_err(|e| self.err(e))?;
        self.len = row.get::<_, i64>(0) as usize;
        self.approximate = row.get(1);
        Ok(())
    }

    fn err(&self, e: postgres::Error) -> SearchError {
        Self::db_error(&self.location, e)
    }

    /// A client error as a [`SearchError::Database`] naming `location` (without password).
    fn db_error(location: &StoreLocation, e: postgres::Error) -> SearchError {
        SearchError::Database {
            location: location.clone(),
            message: Self::cause(&e),
        }
    }

    /// The server's or the connection's own words: the client's `Display` only says
    /// "db error" for what the server reported.
    fn cause(e: &postgres::Error) -> String {
        match (e.as_db_error(), std::error::Error::source(e)) {
            (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
            (None, Some(source)) if !e.to_string().contains(&source.to_string()) => {
                format!("{e}: {source}")
            }
            (None, _) => e.to_string(),
        }
    }

    fn record_of(row: &postgres::Row, first: usize) -> FileRecord {
        FileRecord {
            path: row.get(first),
            size: row.get::<_, i64>(first + 1) as u64,
            mtime_ns: row.get(first + 2),
            hash: row.get(first + 3),
        }
    }
}

fn connect(location: &StoreLocation, pg: &PgLocation) -> Result<Client> {
    let mut config: postgres::Config =
        pg.connect_url()
            .parse()
            .map_err(|e: postgres::Error| SearchError::Location {
                location: location.to_string(),
                message: e.to_string(),
            })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("clipkit");
    config.connect(NoTls).map_err(|e| SearchError::Database {
        location: location.clone(),
        message: format!("cannot connect: {}", PgStore::cause(&e)),
    })
}

impl VectorStore for PgStore {
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
        self.len
    }

    fn items(&self) -> Result<Vec<Item>> {
        let sql = format!(
            "SELECT id, path, size, mtime_ns, hash FROM {}.items ORDER BY id",
            self.schema
        );
        let rows = self.client().query(&sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Item {
                id: r.get::<_, i64>(0) as ItemId,
                file: Self::record_of(r, 1),
            })
            .collect())
    }

    fn item(&self, id: ItemId) -> Result<Option<Item>> {
        let sql = format!(
            "SELECT path, size, mtime_ns, hash FROM {}.items WHERE id = $1",
            self.schema
        );
        let row = self
            .client()
            .query_opt(&sql, &[&(id as i64)])
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| Item {
            id,
            file: Self::record_of(&r, 0),
        }))
    }

    fn vector(&self, id: ItemId) -> Result<Option<Vec<f32>>> {
        let sql = format!("SELECT embedding FROM {}.items WHERE id = $1", self.schema);
        let row = self
            .client()
            .query_opt(&sql, &[&(id as i64)])
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| r.get::<_, Vector>(0).to_vec()))
    }

    fn failures(&self) -> Result<Vec<Failure>> {
        let sql = format!(
            "SELECT path, size, mtime_ns, message FROM {}.failures ORDER BY path",
            self.schema
        );
        let rows = self.client().query(&sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Failure {
                path: r.get(0),
                size: r.get::<_, i64>(1) as u64,
                mtime_ns: r.get(2),
                message: r.get(3),
            })
            .collect())
    }

    fn commit(&mut self, batch: super::Batch) -> Result<Vec<ItemId>> {
        self.commit_batch(batch)
    }

    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.nearest(query, k, self.approximate)
    }

    fn optimize(&mut self) -> Result<()> {
        self.refresh_counts()?;
        if self.approximate || self.len < self.ann_threshold {
            return Ok(());
        }
        // The graph builds fastest in memory: at least 1 GB, more where the server gives more.
        let sql = format!(
            "SELECT set_config('maintenance_work_mem', '1GB', false)
             WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('1GB');
             CREATE INDEX IF NOT EXISTS items_embedding_hnsw ON {}.items
             USING hnsw ((embedding::halfvec({dim})) halfvec_cosine_ops)
             WITH (m = {m}, ef_construction = {ef_construction});
             RESET maintenance_work_mem",
            self.schema,
            dim = self.dim,
            m = self.hnsw.m,
            ef_construction = self.hnsw.ef_construction,
        );
        self.client().batch_execute(&sql).map_err(|e| self.err(e))?;
        self.approximate = true;
        Ok(())
    }

    fn changes(&self) -> Result<u64> {
        let text = schema::meta(&mut self.client(), &self.location, &self.schema, "changes")?;
        Ok(text.parse().unwrap_or(0))
    }

    fn is_approximate(&self) -> bool {
        self.approximate
    }
}
