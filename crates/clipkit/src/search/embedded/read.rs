//! Reading: items, vectors, failures, and search (exact, or approximate with an exact tail).

use rusqlite::{OptionalExtension, Row};

use super::schema::sql_error;
use super::EmbeddedStore;
use crate::search::error::{Result, SearchError};
use crate::search::exact::{self, Scored, TopK};
use crate::search::store::{Failure, FileRecord, Hit, Item, ItemId};

/// How many approximate candidates are fetched per wanted hit before exact re-scoring.
const ANN_OVERFETCH: usize = 4;

impl EmbeddedStore {
    pub(super) fn all_items(&self) -> Result<Vec<Item>> {
        let conn = self.conn();
        let err = |e| sql_error(&self.db_path, e);
        let mut stmt = conn
            .prepare("SELECT id, path, size, mtime_ns, hash FROM items ORDER BY id")
            .map_err(err)?;
        let rows = stmt.query_map([], item_from_row).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    pub(super) fn one_item(&self, id: ItemId) -> Result<Option<Item>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT id, path, size, mtime_ns, hash FROM items WHERE id = ?1",
            [id as i64],
            item_from_row,
        )
        .optional()
        .map_err(|e| sql_error(&self.db_path, e))
    }

    pub(super) fn one_vector(&self, id: ItemId) -> Option<Vec<f32>> {
        let slot = *self.slot_of.get(&id)?;
        self.vectors.row(slot).map(<[f32]>::to_vec)
    }

    pub(super) fn all_failures(&self) -> Result<Vec<Failure>> {
        let conn = self.conn();
        let err = |e| sql_error(&self.db_path, e);
        let mut stmt = conn
            .prepare("SELECT path, size, mtime_ns, message FROM failures ORDER BY path")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Failure {
                    path: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    pub(super) fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(SearchError::Dimension {
                expected: self.dim,
                given: query.len(),
            });
        }
        let best = match &self.ann {
            Some(ann) => {
                let mut best = TopK::new(k);
                for id in ann.search(query, k * ANN_OVERFETCH)? {
                    if let Some(row) = self.slot_of.get(&id).and_then(|s| self.vectors.row(*s)) {
                        best.push(Scored {
                            score: exact::dot(row, query),
                            key: id,
                        });
                    }
                }
                // Items added after the approximate index was built are searched exactly.
                let tail = self.tail_start(ann.max_id());
                let rows = &self.vectors.data()[tail * self.dim..];
                for s in exact::top_k(rows, query, k, |r| self.live(tail + r)) {
                    best.push(s);
                }
                best.into_sorted()
            }
            None => exact::top_k(self.vectors.data(), query, k, |r| self.live(r)),
        };
        self.hits(best)
    }

    /// Exact search over every item, whether or not an approximate index exists: the
    /// ground truth approximate results are measured against.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(SearchError::Dimension {
                expected: self.dim,
                given: query.len(),
            });
        }
        self.hits(exact::top_k(self.vectors.data(), query, k, |r| {
            self.live(r)
        }))
    }

    fn live(&self, slot: usize) -> Option<ItemId> {
        self.slots.get(slot).copied().filter(|id| *id != 0)
    }

    /// The first slot after which every live item has an id above `max_id`. Ids and slots
    /// grow together (both are assigned in order, and compaction keeps the order).
    fn tail_start(&self, max_id: ItemId) -> usize {
        let mut start = self.slots.len();
        while start > 0 && (self.slots[start - 1] == 0 || self.slots[start - 1] > max_id) {
            start -= 1;
        }
        start
    }

    fn hits(&self, best: Vec<Scored>) -> Result<Vec<Hit>> {
        let conn = self.conn();
        let err = |e| sql_error(&self.db_path, e);
        let mut stmt = conn
            .prepare_cached("SELECT path FROM items WHERE id = ?1")
            .map_err(err)?;
        let mut hits = Vec::with_capacity(best.len());
        for s in best {
            let path: Option<String> = stmt
                .query_row([s.key as i64], |r| r.get(0))
                .optional()
                .map_err(err)?;
            if let Some(path) = path {
                hits.push(Hit {
                    id: s.key,
                    path,
                    score: s.score,
                });
            }
        }
        Ok(hits)
    }
}

fn item_from_row(r: &Row) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get::<_, i64>(0)? as ItemId,
        file: FileRecord {
            path: r.get(1)?,
            size: r.get::<_, i64>(2)? as u64,
            mtime_ns: r.get(3)?,
            hash: r.get(4)?,
        },
    })
}
