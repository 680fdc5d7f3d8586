//! The store's SQLite database: schema, pragmas, the `meta` table, and mapping SQLite's
//! errors to [`SearchError`] (a damaged database is [`SearchError::Corrupt`]).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::search::error::{Result, SearchError};

/// The value of `meta.format`: tells a clipkit index from any other SQLite file.
pub const FORMAT: &str = "clipkit-index";
/// The schema version this code reads and writes.
pub const VERSION: u32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    slot INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS failures(
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    message TEXT NOT NULL
);
";

/// Maps a SQLite error on `path`; "not a database" and "malformed" become `Corrupt`.
pub fn sql_error(path: &Path, e: rusqlite::Error) -> SearchError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => SearchError::corrupt(path, e.to_string()),
        _ => SearchError::Records {
            path: path.to_path_buf(),
            message: format!("SQLite: {e}"),
        },
    }
}

/// Opens (creating when `create`) the database with durable, concurrent-reader settings.
pub fn connect(path: &Path, create: bool) -> Result<Connection> {
    use rusqlite::OpenFlags as F;
    let mut flags = F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= F::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_error(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sql_error(path, e))?;
    // WAL lets a server read while an indexer writes; FULL syncs the WAL at every commit.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| sql_error(path, e))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

/// Creates the tables of a new store and records what it holds, in one transaction.
pub fn initialise(conn: &mut Connection, path: &Path, model: &str, dim: usize) -> Result<()> {
    let err = |e| sql_error(path, e);
    let tx = conn.transaction().map_err(err)?;
    tx.execute_batch(SCHEMA).map_err(err)?;
    let version = VERSION.to_string();
    let dim = dim.to_string();
    let values = [
        ("format", FORMAT),
        ("version", version.as_str()),
        ("model", model),
        ("dim", dim.as_str()),
        ("generation", "0"),
        ("rows", "0"),
    ];
    for (key, value) in values {
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
            (key, value),
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// A `meta` value, `None` when absent.
pub fn get(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(|e| sql_error(path, e))
}

/// A `meta` value that must be present and parse as `T`.
pub fn require<T: std::str::FromStr>(conn: &Connection, path: &Path, key: &str) -> Result<T> {
    get(conn, path, key)?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| SearchError::corrupt(path, format!("meta `{key}` is missing or invalid")))
}

/// Sets a `meta` value.
pub fn set(conn: &Connection, path: &Path, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
    .map(|_| ())
    .map_err(|e| sql_error(path, e))
}

/// The `meta` key counting commits and compactions (absent in stores made before it: 0).
pub const CHANGES: &str = "changes";

/// Adds one to the change counter, inside the caller's transaction.
pub fn count_change(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [CHANGES],
    )
    .map(|_| ())
    .map_err(|e| sql_error(path, e))
}

/// Checks the database is a clipkit index of a version this code reads.
pub fn check_format(conn: &Connection, path: &Path) -> Result<()> {
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| sql_error(path, e))?
        > 0;
    if !has_meta || get(conn, path, "format")?.as_deref() != Some(FORMAT) {
        return Err(SearchError::corrupt(path, "not a clipkit index database"));
    }
    let version: u32 = require(conn, path, "version")?;
    if version != VERSION {
        return Err(SearchError::corrupt(
            path,
            format!("index format version {version} (this clipkit reads {VERSION})"),
        ));
    }
    Ok(())
}
