//! Image search: a [`VectorStore`] of image embeddings, exact and approximate nearest
//! neighbours, model identities that keep embeddings of different models apart.
//!
//! Legend: N = stored vectors, E = embedding dimension, k = results wanted.
//!
//! # Stores
//! [`VectorStore`] is the interface indexing and searching use; its documentation states the
//! contract every backend keeps, and `tests/vector_store.rs` runs one suite against each.
//! A store is opened from a [`StoreLocation`] with [`open`] or [`open_or_create`], which
//! return `Box<dyn VectorStore>`: code that indexes or searches never names a backend.
//! [`embedded::EmbeddedStore`] is the default, at a location that is a folder: a SQLite
//! database (items, failures, metadata) and a flat f32 vector file, searched exactly by parallel dot products below
//! [`embedded::DEFAULT_ANN_THRESHOLD`] items and through an HNSW index (usearch) above it.
//!
//! # Plugging in Qdrant
//! A distributed backend implements the same trait over Qdrant's API (the `qdrant-client`
//! crate, gRPC), one collection per store:
//! - the collection is created with `size = dim` and `Distance::Dot` (vectors are unit
//!   length, so dot = cosine), and its collection metadata — or a reserved point with id 0 —
//!   carries [`model_identity`]; [`VectorStore::check_model`] compares it;
//! - an item is a point whose id is the [`ItemId`] and whose payload is the
//!   [`FileRecord`] (`path`, `size`, `mtime_ns`, `hash`, with a keyword index on `path`),
//!   failures are points with a `failure` payload and no vector in a second collection;
//! - `commit` sends one `upsert_points` with `wait = true` (deletions by filter on `path`
//!   for re-added paths, then the new points) — Qdrant applies a request atomically per
//!   shard and acknowledges after its write-ahead log, which is the durability the contract
//!   asks; Qdrant has no sequence, so the backend keeps a counter point (incremented in the
//!   same request) to assign the ids `commit` returns;
//! - `search` is `search_points` with `limit = k` and `with_payload = ["path"]`;
//!   `optimize` is a no-op (Qdrant maintains its HNSW itself).
//!
//! It becomes a variant of [`StoreLocation`] (`qdrant://host:port/collection`) with an arm
//! in [`open`] and [`open_or_create`]; the CLI's `--index` value and the server take it
//! from there unchanged.

mod ask;
pub mod dupes;
pub mod embedded;
mod error;
pub mod exact;
mod identity;
pub mod indexer;
mod location;
mod named_roots;
pub mod postgres;
pub mod query;
mod store;
pub mod synthetic;

pub use ask::{nearest, query_vector};
pub use error::{Result, SearchError};
pub use identity::{embedding_identity, model_identity};
pub use location::{open, open_or_create, open_writable, StoreLocation};
pub use named_roots::{NamedRoot, NamedRoots};
pub use store::{Batch, Failure, FileRecord, Hit, Item, ItemId, VectorStore};
