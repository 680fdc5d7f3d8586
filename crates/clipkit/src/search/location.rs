//! Where a [`VectorStore`] lives, and opening one from there: the one place that knows
//! which backend serves which kind of location.
//!
//! A location is written as a folder path (the embedded store) or as a URL:
//! `postgres://user@host:port/db[?schema=NAME]` for the PostgreSQL store (see
//! [`super::postgres`]). A new backend (`qdrant://host:port/collection`) adds a variant here
//! and an arm to [`open`] and [`open_or_create`]; nothing that uses a store changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::embedded::EmbeddedStore;
use super::error::{Result, SearchError};
use super::postgres::{PgLocation, PgStore};
use super::store::VectorStore;

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A folder holding an embedded store (SQLite records and a vector file; see
    /// [`super::embedded`]). Written as a path, or as a `file://` URL.
    Folder(PathBuf),
    /// A schema of a PostgreSQL database with pgvector (see [`super::postgres`]). Written
    /// as `postgres://user[:password]@host[:port]/db[?schema=NAME]`; printed without the
    /// password.
    Postgres(PgLocation),
}

impl StoreLocation {
    /// A local folder where files derived from the store's images (thumbnails) may be
    /// cached: the store's own folder for an embedded store; for a database, a folder
    /// under the user cache directory named after the location (without password).
    pub fn cache_dir(&self) -> PathBuf {
        match self {
            StoreLocation::Folder(dir) => dir.clone(),
            StoreLocation::Postgres(pg) => {
                let name = blake3::hash(pg.to_string().as_bytes()).to_hex();
                dirs::cache_dir()
                    .unwrap_or_else(std::env::temp_dir)
                    .join("clipkit")
                    .join(format!("postgres-{}", &name[..16]))
            }
        }
    }
}

impl FromStr for StoreLocation {
    type Err = SearchError;

    /// A path is a folder; `file:///path` is the same folder; any other `scheme://` is
    /// refused with an error naming the scheme. An empty string is refused.
    fn from_str(text: &str) -> Result<Self> {
        let refuse = |message: String| SearchError::Location {
            location: text.to_string(),
            message,
        };
        if text.is_empty() {
            return Err(refuse("empty; give a folder".into()));
        }
        match url_scheme(text) {
            None => Ok(StoreLocation::Folder(PathBuf::from(text))),
            Some(("file", rest)) if rest.starts_with('/') => {
                Ok(StoreLocation::Folder(PathBuf::from(rest)))
            }
            Some(("file", _)) => Err(refuse("a file:// URL needs an absolute path".into())),
            Some(("postgres" | "postgresql", _)) => PgLocation::parse(text)
                .map(StoreLocation::Postgres)
                .map_err(|message| SearchError::Location {
                    location: redacted_for_error(text),
                    message,
                }),
            Some((scheme, _)) => Err(refuse(format!(
                "{scheme}:// stores are not supported by this build; give a folder \
                 (the embedded store) or a postgres:// URL"
            ))),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Folder(dir) => write!(f, "{}", dir.display()),
            StoreLocation::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

impl From<&Path> for StoreLocation {
    fn from(dir: &Path) -> Self {
        StoreLocation::Folder(dir.to_path_buf())
    }
}

/// A URL that failed to parse, its user part (which may hold a password) left out.
fn redacted_for_error(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://…@{host}")
        }
        None => text.to_string(),
    }
}

/// `Some((scheme, rest))` when `text` starts with `scheme://` (a letter, then letters,
/// digits, `+`, `-` or `.`, as URLs have it).
fn url_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (starts_with_letter && rest_ok).then_some((scheme, rest))
}

/// Opens the existing store at `location` for reading (searching, listing). Fails with
/// [`SearchError::NoIndex`] when there is none.
pub fn open(location: &StoreLocation) -> Result<Box<dyn VectorStore>> {
    match location {
        StoreLocation::Folder(dir) => Ok(Box::new(EmbeddedStore::open(dir)?)),
        StoreLocation::Postgres(pg) => Ok(Box::new(PgStore::open(pg)?)),
    }
}

/// Opens the existing store at `location` for writing without naming a model (pruning
/// removes items, whoever made them). Fails with [`SearchError::NoIndex`] when there is
/// none and [`SearchError::Locked`] while another process writes to it.
pub fn open_writable(location: &StoreLocation) -> Result<Box<dyn VectorStore>> {
    match location {
        StoreLocation::Folder(dir) => Ok(Box::new(EmbeddedStore::open_writable(dir)?)),
        StoreLocation::Postgres(pg) => Ok(Box::new(PgStore::open(pg)?)),
    }
}

/// Opens the store at `location` for writing, creating it for `model` (an identity from
/// [`super::model_identity`]) and `dim`-component vectors when absent. Refuses a store made
/// by another model ([`SearchError::ModelMismatch`]) or holding vectors of another length.
pub fn open_or_create(
    location: &StoreLocation,
    model: &str,
    dim: usize,
) -> Result<Box<dyn VectorStore>> {
    match location {
        StoreLocation::Folder(dir) => Ok(Box::new(EmbeddedStore::open_or_create(dir, model, dim)?)),
        StoreLocation::Postgres(pg) => Ok(Box::new(PgStore::open_or_create(pg, model, dim)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_a_folder_and_a_file_url_too() {
        let folder = |p: &str| StoreLocation::Folder(PathBuf::from(p));
        assert_eq!("index".parse::<StoreLocation>().unwrap(), folder("index"));
        assert_eq!("/a/b".parse::<StoreLocation>().unwrap(), folder("/a/b"));
        assert_eq!(
            "file:///a/b".parse::<StoreLocation>().unwrap(),
            folder("/a/b")
        );
        // Not a scheme: "://" after something that is not one.
        assert_eq!(
            "a b://c".parse::<StoreLocation>().unwrap(),
            folder("a b://c")
        );
    }

    #[test]
    fn an_unknown_scheme_is_refused_naming_it() {
        let err = "qdrant://db.example/clips"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(matches!(err, SearchError::Location { .. }), "{err}");
        assert!(err.to_string().contains("qdrant://"), "{err}");
        assert!("".parse::<StoreLocation>().is_err());
        assert!("file://relative".parse::<StoreLocation>().is_err());
    }

    #[test]
    fn a_postgres_url_is_a_database_store_and_its_password_stays_hidden() {
        let loc: StoreLocation = "postgres://me:hunter2@h:5/db?schema=x".parse().unwrap();
        assert!(matches!(loc, StoreLocation::Postgres(_)));
        assert_eq!(loc.to_string(), "postgres://me@h:5/db?schema=x");
        assert!(!format!("{loc:?}").contains("hunter2"));
        let err = "postgres://me:hunter2@h/db?schema=A;B"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
