//! Writing: atomic commits of a [`Batch`] and compaction of the vector file.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension, Transaction};

use super::schema::{self, sql_error};
use super::vectors::VectorFile;
use super::{vector_path, EmbeddedStore};
use crate::search::error::{Result, SearchError};
use crate::search::store::{Batch, FileRecord, ItemId};

impl EmbeddedStore {
    /// See [`crate::search::VectorStore::commit`]: vectors are appended and synced first,
    /// then one transaction records the items, the moves, the removals and the new row
    /// count; only then do the new rows become visible. Returns the added items' ids.
    pub(super) fn commit_batch(&mut self, batch: Batch) -> Result<Vec<ItemId>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        for (_, v) in &batch.added {
            if v.len() != self.dim {
                return Err(SearchError::Dimension {
                    expected: self.dim,
                    given: v.len(),
                });
            }
        }
        let base = self.vectors.rows();
        let flat: Vec<f32> = batch
            .added
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        self.vectors.append(&flat)?;
        let rows = base + batch.added.len();
        let db_path = self.db_path.clone();
        let err = |e| sql_error(&db_path, e);
        let (removed, added) = {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(err)?;
            let removed = apply_removals(&tx, &db_path, &batch)?;
            apply_moves(&tx, &db_path, &batch.moved)?;
            let added = insert_items(&tx, &db_path, &batch.added, base)?;
            apply_failures(&tx, &db_path, &batch)?;
            schema::set(&tx, &db_path, "rows", &rows.to_string())?;
            schema::count_change(&tx, &db_path)?;
            tx.commit().map_err(err)?;
            (removed, added)
        };
        self.vectors.publish(rows)?;
        for id in removed {
            if let Some(slot) = self.slot_of.remove(&id) {
                self.slots[slot] = 0;
            }
        }
        for (offset, id) in added.iter().enumerate() {
            self.slots.push(*id);
            self.slot_of.insert(*id, base + offset);
        }
        Ok(added)
    }

    /// Rewrites the vector file without the rows of removed items, as a new generation.
    pub(super) fn compact(&mut self) -> Result<()> {
        let next = self.generation + 1;
        let path = vector_path(&self.dir, next);
        VectorFile::create(&path, self.dim)?;
        let mut fresh = VectorFile::open(&path, self.dim, 0, true)?;
        let live: Vec<(usize, ItemId)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, id)| **id != 0)
            .map(|(s, id)| (s, *id))
            .collect();
        for chunk in live.chunks(65536) {
            let rows: Vec<f32> = chunk
                .iter()
                .filter_map(|(slot, _)| self.vectors.row(*slot))
                .flatten()
                .copied()
                .collect();
            fresh.append(&rows)?;
            fresh.publish(fresh.rows() + chunk.len())?;
        }
        let db_path = self.db_path.clone();
        let err = |e| sql_error(&db_path, e);
        {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(err)?;
            // Slots are unique: park every item on a negative slot before renumbering.
            tx.execute("UPDATE items SET slot = -1 - slot", [])
                .map_err(err)?;
            {
                let mut stmt = tx
                    .prepare("UPDATE items SET slot = ?1 WHERE id = ?2")
                    .map_err(err)?;
                for (new_slot, (_, id)) in live.iter().enumerate() {
                    stmt.execute(params![new_slot as i64, *id as i64])
                        .map_err(err)?;
                }
            }
            schema::set(&tx, &db_path, "generation", &next.to_string())?;
            schema::set(&tx, &db_path, "rows", &live.len().to_string())?;
            schema::count_change(&tx, &db_path)?;
            tx.commit().map_err(err)?;
        }
        let old = vector_path(&self.dir, self.generation);
        self.vectors = fresh;
        self.generation = next;
        self.slots = live.iter().map(|(_, id)| *id).collect();
        self.slot_of = live
            .iter()
            .enumerate()
            .map(|(s, (_, id))| (*id, s))
            .collect();
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!("{}: cannot remove old vector file: {e}", old.display());
        }
        Ok(())
    }
}

/// Removes the batch's items and any item whose path the batch adds again or records as
/// failed; returns their ids.
fn apply_removals(tx: &Transaction, path: &std::path::Path, batch: &Batch) -> Result<Vec<ItemId>> {
    let err = |e| sql_error(path, e);
    let mut ids: HashSet<ItemId> = batch.removed.iter().copied().collect();
    {
        let mut find = tx
            .prepare("SELECT id FROM items WHERE path = ?1")
            .map_err(err)?;
        let replaced = batch.added.iter().map(|(file, _)| &file.path);
        let failed = batch.failed.iter().map(|f| &f.path);
        for path in replaced.chain(failed) {
            let id: Option<i64> = find
                .query_row([path], |r| r.get(0))
                .optional()
                .map_err(err)?;
            ids.extend(id.map(|id| id as ItemId));
        }
    }
    let mut delete = tx.prepare("DELETE FROM items WHERE id = ?1").map_err(err)?;
    for id in &ids {
        delete.execute([*id as i64]).map_err(err)?;
    }
    Ok(ids.into_iter().collect())
}

/// Gives moved items their new records; paths are parked first so swaps cannot collide.
fn apply_moves(
    tx: &Transaction,
    path: &std::path::Path,
    moved: &[(ItemId, FileRecord)],
) -> Result<()> {
    let err = |e| sql_error(path, e);
    let mut park = tx
        .prepare("UPDATE items SET path = char(0) || 'moving ' || id WHERE id = ?1")
        .map_err(err)?;
    for (id, _) in moved {
        park.execute([*id as i64]).map_err(err)?;
    }
    let mut update = tx
        .prepare("UPDATE items SET path = ?2, size = ?3, mtime_ns = ?4, hash = ?5 WHERE id = ?1")
        .map_err(err)?;
    for (id, f) in moved {
        update
            .execute(params![
                *id as i64,
                f.path,
                f.size as i64,
                f.mtime_ns,
                f.hash
            ])
            .map_err(err)?;
    }
    Ok(())
}

/// Inserts new items on slots `base..`; returns their ids in order.
fn insert_items(
    tx: &Transaction,
    path: &std::path::Path,
    added: &[(FileRecord, Vec<f32>)],
    base: usize,
) -> Result<Vec<ItemId>> {
    let err = |e| sql_error(path, e);
    let mut insert = tx
        .prepare("INSERT INTO items(path, size, mtime_ns, hash, slot) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(err)?;
    let mut forget = tx
        .prepare("DELETE FROM failures WHERE path = ?1")
        .map_err(err)?;
    let mut ids = Vec::with_capacity(added.len());
    for (i, (f, _)) in added.iter().enumerate() {
        insert
            .execute(params![
                f.path,
                f.size as i64,
                f.mtime_ns,
                f.hash,
                (base + i) as i64
            ])
            .map_err(err)?;
        forget.execute([&f.path]).map_err(err)?;
        ids.push(tx.last_insert_rowid() as ItemId);
    }
    Ok(ids)
}

fn apply_failures(tx: &Transaction, path: &std::path::Path, batch: &Batch) -> Result<()> {
    let err = |e| sql_error(path, e);
    let mut forget = tx
        .prepare("DELETE FROM failures WHERE path = ?1")
        .map_err(err)?;
    for p in &batch.forgotten {
        forget.execute([p]).map_err(err)?;
    }
    let mut record = tx
        .prepare(
            "INSERT OR REPLACE INTO failures(path, size, mtime_ns, message) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(err)?;
    for f in &batch.failed {
        record
            .execute(params![f.path, f.size as i64, f.mtime_ns, f.message])
            .map_err(err)?;
    }
    Ok(())
}
