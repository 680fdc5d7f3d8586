//! Housekeeping after commits: compaction, and building the approximate index when the
//! store is large enough and the one it has is stale.

use super::ann::AnnIndex;
use super::schema::{self, sql_error};
use super::EmbeddedStore;
use crate::search::error::Result;
use crate::search::store::ItemId;

/// Removed rows reclaimed once they are this many and outnumber live ones.
const COMPACT_MIN_DEAD: usize = 1024;

impl EmbeddedStore {
    pub(super) fn tidy(&mut self) -> Result<()> {
        let live = self.slot_of.len();
        let dead = self.slots.len() - live;
        if dead >= COMPACT_MIN_DEAD && dead > live {
            self.compact()?;
        }
        if live < self.ann_threshold {
            return self.set_ann(None);
        }
        if self.ann_is_stale() {
            self.rebuild_ann()?;
        }
        Ok(())
    }

    /// Builds the approximate index over every item now, whatever its size or staleness
    /// (benchmarks use it; [`crate::search::VectorStore::optimize`] decides by itself).
    pub fn rebuild_ann(&mut self) -> Result<()> {
        let items: Vec<(ItemId, &[f32])> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, id)| **id != 0)
            .filter_map(|(slot, id)| self.vectors.row(slot).map(|row| (*id, row)))
            .collect();
        let max_id = items.last().map_or(0, |(id, _)| *id);
        let ann = AnnIndex::build(&self.dir, self.dim, self.ann_params, &items, max_id)?;
        self.set_ann(Some(ann))
    }

    /// Stale: missing, or a tenth of the items are newer than it, or a fifth of what it
    /// holds was removed since.
    fn ann_is_stale(&self) -> bool {
        let Some(ann) = &self.ann else {
            return true;
        };
        let live = self.slot_of.len();
        let newer = self.slot_of.keys().filter(|id| **id > ann.max_id()).count();
        let covered_removed = ann.count().saturating_sub(live - newer);
        newer * 10 > live || covered_removed * 5 > ann.count()
    }

    /// Records `ann` (or no index) in `meta`, then drops the previous index's file.
    fn set_ann(&mut self, ann: Option<AnnIndex>) -> Result<()> {
        if self.ann.is_none() && ann.is_none() {
            return Ok(());
        }
        let db_path = self.db_path.clone();
        let err = |e| sql_error(&db_path, e);
        {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(err)?;
            match &ann {
                Some(a) => {
                    let name = a
                        .path()
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned());
                    schema::set(&tx, &db_path, "ann_file", &name.unwrap_or_default())?;
                    schema::set(&tx, &db_path, "ann_max_id", &a.max_id().to_string())?;
                }
                None => {
                    tx.execute(
                        "DELETE FROM meta WHERE key IN ('ann_file', 'ann_max_id')",
                        [],
                    )
                    .map_err(err)?;
                }
            }
            tx.commit().map_err(err)?;
        }
        let old = std::mem::replace(&mut self.ann, ann);
        if let Some(old) = old {
            let stale = old.path().to_path_buf();
            drop(old);
            if self.ann.as_ref().map(AnnIndex::path) != Some(stale.as_path()) {
                if let Err(e) = std::fs::remove_file(&stale) {
                    tracing::warn!("{}: cannot remove old index: {e}", stale.display());
                }
            }
        }
        Ok(())
    }
}
