//! Writing: one transaction per [`Batch`], so a process killed mid-batch leaves none of it.

use pgvector::Vector;
use postgres::Transaction;

use super::PgStore;
use crate::search::error::{Result, SearchError};
use crate::search::store::{Batch, ItemId};

impl PgStore {
    /// See [`crate::search::VectorStore::commit`]: removals (with the items of paths added
    /// again or failed), moves, insertions, failures and the change counter in one
    /// transaction. Returns the added items' ids, taken from the store's sequence.
    pub(super) fn commit_batch(&mut self, batch: Batch) -> Result<Vec<ItemId>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Some((_, v)) = batch.added.iter().find(|(_, v)| v.len() != self.dim) {
            return Err(SearchError::Dimension {
                expected: self.dim,
                given: v.len(),
            });
        }
        let s = self.schema.clone();
        let ids = {
            let mut client = self.client();
            let mut tx = client.transaction().map_err(|e| self.err(e))?;
            let ids = apply(&mut tx, &s, &batch).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            ids
        };
        self.refresh_counts()?;
        Ok(ids)
    }
}

fn apply(tx: &mut Transaction, s: &str, batch: &Batch) -> Result<Vec<ItemId>, postgres::Error> {
    // Removed ids, and the items of paths added again or now failing.
    let removed: Vec<i64> = batch.removed.iter().map(|id| *id as i64).collect();
    let replaced: Vec<&str> = batch
        .added
        .iter()
        .map(|(f, _)| f.path.as_str())
        .chain(batch.failed.iter().map(|f| f.path.as_str()))
        .collect();
    tx.execute(
        &format!("DELETE FROM {s}.items WHERE id = ANY($1) OR path = ANY($2)"),
        &[&removed, &replaced],
    )?;

    // Moves: park the paths first so that swaps cannot collide on the unique path.
    if !batch.moved.is_empty() {
        let ids: Vec<i64> = batch.moved.iter().map(|(id, _)| *id as i64).collect();
        tx.execute(
            &format!("UPDATE {s}.items SET path = chr(1) || 'moving ' || id WHERE id = ANY($1)"),
            &[&ids],
        )?;
        let update = tx.prepare(&format!(
            "UPDATE {s}.items SET path = $2, size = $3, mtime_ns = $4, hash = $5 WHERE id = $1"
        ))?;
        for (id, f) in &batch.moved {
            tx.execute(
                &update,
                &[
                    &(*id as i64),
                    &f.path,
                    &(f.size as i64),
                    &f.mtime_ns,
                    &f.hash,
                ],
            )?;
        }
    }

    // Insertions: ids drawn from the sequence in batch order, rows sent as arrays.
    let n = batch.added.len() as i64;
    let ids: Vec<i64> = tx
        .query(
            &format!("SELECT nextval('{s}.item_ids') FROM generate_series(1, $1::bigint)"),
            &[&n],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !batch.added.is_empty() {
        let paths: Vec<&str> = batch.added.iter().map(|(f, _)| f.path.as_str()).collect();
        let sizes: Vec<i64> = batch.added.iter().map(|(f, _)| f.size as i64).collect();
        let mtimes: Vec<i64> = batch.added.iter().map(|(f, _)| f.mtime_ns).collect();
        let hashes: Vec<&str> = batch.added.iter().map(|(f, _)| f.hash.as_str()).collect();
        let vectors: Vec<Vector> = batch
            .added
            .iter()
            .map(|(_, v)| Vector::from(v.clone()))
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO {s}.items(id, path, size, mtime_ns, hash, embedding)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                                      $5::text[], $6::vector[])"
            ),
            &[&ids, &paths, &sizes, &mtimes, &hashes, &vectors],
        )?;
    }

    // Failures: forgotten ones and indexed paths leave; new ones replace old ones.
    let forgotten: Vec<&str> = batch
        .forgotten
        .iter()
        .map(String::as_str)
        .chain(batch.added.iter().map(|(f, _)| f.path.as_str()))
        .collect();
    tx.execute(
        &format!("DELETE FROM {s}.failures WHERE path = ANY($1)"),
        &[&forgotten],
    )?;
    if !batch.failed.is_empty() {
        let record = tx.prepare(&format!(
            "INSERT INTO {s}.failures(path, size, mtime_ns, message) VALUES ($1, $2, $3, $4)
             ON CONFLICT (path) DO UPDATE SET size = excluded.size,
                 mtime_ns = excluded.mtime_ns, message = excluded.message"
        ))?;
        for f in &batch.failed {
            tx.execute(
                &record,
                &[&f.path, &(f.size as i64), &f.mtime_ns, &f.message],
            )?;
        }
    }

    tx.execute(
        &format!("UPDATE {s}.meta SET value = (value::bigint + 1)::text WHERE key = 'changes'"),
        &[],
    )?;
    Ok(ids.into_iter().map(|id| id as ItemId).collect())
}
