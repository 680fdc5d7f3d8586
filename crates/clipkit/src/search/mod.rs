//! Image search: a [`VectorStore`] of image embeddings, exact and approximate nearest
//! neighbours, model identities that keep embeddings of different models apart.
//!
//! Legend: N = stored vectors, E = embedding dimension, k = results wanted.
//!
//! # Stores
//! [`VectorStore`] is the interface indexing and searching use; its documentation states the
//! contract every backend keeps, and `tests/vector_store.rs` runs one suite against each.
//! [`EmbeddedStore`] is the default: one folder holding a SQLite database (items, failures,
//! metadata) and a flat f32 vector file, searched exactly by parallel dot products below
//! [`embedded::DEFAULT_ANN_THRESHOLD`] items and through an HNSW index (usearch) above it.
//!
//! # Plugging in Qdrant
//! A distributed backend implements the same trait over Qdrant's API (the `qdrant-client`
//! crate, gRPC), one collection per store:
//! - the collection is created with `size = dim` and `Distance::Dot` (vectors are unit
//!   length, so dot = cosine), and its collection metadata — or a reserved point with id 0 —
//!   carries [`model_identity`]; opening compares it as [`EmbeddedStore`] does;
//! - an item is a point whose id is the [`ItemId`] and whose payload is the
//!   [`FileRecord`] (`path`, `size`, `mtime_ns`, `hash`, with a keyword index on `path`),
//!   failures are points with a `failure` payload and no vector in a second collection;
//! - `commit` sends one `upsert_points` with `wait = true` (deletions by filter on `path`
//!   for re-added paths, then the new points) — Qdrant applies a request atomically per
//!   shard and acknowledges after its write-ahead log, which is the durability the contract
//!   asks; ids come from the caller (the indexer allocates them) since Qdrant has no
//!   sequence;
//! - `search` is `search_points` with `limit = k` and `with_payload = ["path"]`;
//!   `optimize` is a no-op (Qdrant maintains its HNSW itself).
//!
//! The CLI picks the backend from the `--index` value (a folder, or later a
//! `qdrant://host:port/collection` URL) and holds it as `Box<dyn VectorStore>`.

mod ask;
pub mod dupes;
pub mod embedded;
mod error;
pub mod exact;
mod identity;
pub mod indexer;
pub mod quality;
pub mod query;
mod store;
pub mod synthetic;

pub use ask::query_vector;
pub use embedded::EmbeddedStore;
pub use error::{Result, SearchError};
pub use identity::model_identity;
pub use store::{Batch, Failure, FileRecord, Hit, Item, ItemId, VectorStore};
