//! The store's tables in their schema, created on first use and versioned.
//!
//! ```text
//! SCHEMA.migrations  version, description, applied_at: one row per applied migration
//! SCHEMA.meta        key → value: model, dim, changes (counts commits)
//! SCHEMA.items       id (from SCHEMA.item_ids, never reused), path UNIQUE, size, mtime_ns,
//!                    hash, embedding vector(dim)
//! SCHEMA.failures    path → size, mtime_ns, message
//! SCHEMA.items_embedding_hnsw   HNSW index (vector_cosine_ops), built by optimize
//! ```
//!
//! Creation runs in one transaction under an advisory lock, so two processes creating the
//! same store at once make it once, and a failure leaves nothing behind.

use postgres::{Client, Transaction};

use super::PgStore;
use crate::search::error::{Result, SearchError};
use crate::search::location::StoreLocation;

/// The newest migration this build knows.
pub const VERSION: i32 = 1;

/// Largest dimension whose rows fit in one 8 KiB page with the vector inline (4 bytes a
/// component, plus the path and the row's overhead).
const MAX_INLINE_DIM: usize = 1800;

/// What the migrations table says, one description per version.
const MIGRATIONS: [&str; 1] = ["items, failures and meta; embeddings as vector(dim)"];

/// How `ensure_vector_extension` words a server without pgvector.
const INSTALL_PGVECTOR: &str = "the pgvector extension is not available on this server: \
    install it (https://github.com/pgvector/pgvector#installation, e.g. \
    `apt install postgresql-18-pgvector`), then run `CREATE EXTENSION vector;` in this \
    database as a user allowed to";

/// Whether the store's tables exist.
pub fn exists(client: &mut Client, location: &StoreLocation, schema: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.meta")],
        )
        .map_err(|e| PgStore::db_error(location, e))?;
    Ok(row.get(0))
}

/// Creates the `vector` extension when missing; a server without pgvector gets a message
/// that says how to install it.
pub fn ensure_vector_extension(client: &mut Client, location: &StoreLocation) -> Result<()> {
    let available: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
            &[],
        )
        .map_err(|e| PgStore::db_error(location, e))?
        .get(0);
    if !available {
        return Err(SearchError::Database {
            location: location.clone(),
            message: INSTALL_PGVECTOR.into(),
        });
    }
    // Two clients creating the extension at once both pass `IF NOT EXISTS` and one fails on
    // the catalog's unique index; an advisory lock held to the commit makes them take turns.
    let failed = |e: postgres::Error| SearchError::Database {
        location: location.clone(),
        message: format!("{INSTALL_PGVECTOR} ({})", PgStore::cause(&e)),
    };
    let mut tx = client.transaction().map_err(failed)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('clipkit: CREATE EXTENSION vector'));
         CREATE EXTENSION IF NOT EXISTS vector",
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)
}

/// Creates the tables for `model` and `dim`-component vectors unless another process did
/// meanwhile. One transaction: all of it or nothing.
pub fn create(
    client: &mut Client,
    location: &StoreLocation,
    schema: &str,
    model: &str,
    dim: usize,
) -> Result<()> {
    let err = |e| PgStore::db_error(location, e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('clipkit store ' || $1::text))",
        &[&schema],
    )
    .map_err(err)?;
    let made: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.meta")],
        )
        .map_err(err)?
        .get(0);
    if made {
        return Ok(());
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE {schema}.migrations (
             version integer PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE {schema}.meta (key text PRIMARY KEY, value text NOT NULL);
         CREATE SEQUENCE {schema}.item_ids;
         CREATE TABLE {schema}.items (
             id bigint PRIMARY KEY,
             path text NOT NULL UNIQUE,
             size bigint NOT NULL,
             mtime_ns bigint NOT NULL,
             hash text NOT NULL,
             embedding vector({dim}) NOT NULL);
         CREATE TABLE {schema}.failures (
             path text PRIMARY KEY,
             size bigint NOT NULL,
             mtime_ns bigint NOT NULL,
             message text NOT NULL);"
    ))
    .map_err(err)?;
    if dim <= MAX_INLINE_DIM {
        // Inline, uncompressed rows: PostgreSQL would otherwise move every vector of more
        // than ~500 components out of line (TOAST) and compress it, for nothing (floats do
        // not compress), and an exact search would fetch each one separately (10× slower).
        tx.batch_execute(&format!(
            "ALTER TABLE {schema}.items ALTER COLUMN embedding SET STORAGE PLAIN"
        ))
        .map_err(err)?;
    }
    tx.execute(
        &format!(
            "INSERT INTO {schema}.meta(key, value) VALUES
             ('model', $1), ('dim', $2), ('changes', '0')"
        ),
        &[&model, &dim.to_string()],
    )
    .map_err(err)?;
    record_migrations(&mut tx, location, schema, 1)?;
    tx.commit().map_err(err)
}

fn record_migrations(
    tx: &mut Transaction,
    location: &StoreLocation,
    schema: &str,
    from: i32,
) -> Result<()> {
    for version in from..=VERSION {
        let description = MIGRATIONS[(version - 1) as usize];
        tx.execute(
            &format!("INSERT INTO {schema}.migrations(version, description) VALUES ($1, $2)"),
            &[&version, &description],
        )
        .map_err(|e| PgStore::db_error(location, e))?;
    }
    Ok(())
}

/// Refuses a store written by a newer clipkit (a migration this build does not know).
pub fn check_version(client: &mut Client, location: &StoreLocation, schema: &str) -> Result<()> {
    let version: i32 = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.migrations"),
            &[],
        )
        .map_err(|e| PgStore::db_error(location, e))?
        .get(0);
    if version > VERSION {
        return Err(SearchError::Database {
            location: location.clone(),
            message: format!(
                "the store's schema is at version {version}, this clipkit knows up to \
                 {VERSION}: use a newer clipkit"
            ),
        });
    }
    Ok(())
}

/// One value of the meta table.
pub fn meta(
    client: &mut Client,
    location: &StoreLocation,
    schema: &str,
    key: &str,
) -> Result<String> {
    let row = client
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = $1"),
            &[&key],
        )
        .map_err(|e| PgStore::db_error(location, e))?;
    row.map(|r| r.get(0)).ok_or_else(|| SearchError::Database {
        location: location.clone(),
        message: format!("the store's meta table has no {key}"),
    })
}
