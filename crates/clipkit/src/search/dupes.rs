//! Near-duplicate groups: items whose embeddings are at least `threshold` similar, joined
//! transitively (if a ≈ b and b ≈ c, then a, b and c form one group).

use std::collections::HashMap;

use super::error::Result;
use super::store::{Hit, ItemId, VectorStore};

/// Neighbours looked at per item; a group larger than this is still found through chains.
const NEIGHBOURS: usize = 16;

/// One group of near-duplicates, best-connected first.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The members: their paths, and the highest similarity each has to another member.
    pub members: Vec<Hit>,
}

/// Groups of at least two items whose similarity reaches `threshold`, largest first (none
/// for a NaN threshold).
pub fn near_duplicates(store: &dyn VectorStore, threshold: f32) -> Result<Vec<Group>> {
    let items = store.items()?;
    let mut parent: HashMap<ItemId, ItemId> = items.iter().map(|i| (i.id, i.id)).collect();
    let mut best: HashMap<ItemId, f32> = HashMap::new();
    for item in &items {
        let Some(vector) = store.vector(item.id)? else {
            continue;
        };
        for hit in store.search(&vector, NEIGHBOURS)? {
            // False for a NaN threshold or score, so NaN joins nothing.
            let similar = hit.score >= threshold;
            if hit.id == item.id || !similar {
                continue;
            }
            union(&mut parent, item.id, hit.id);
            for id in [item.id, hit.id] {
                let b = best.entry(id).or_insert(hit.score);
                *b = b.max(hit.score);
            }
        }
    }
    let mut groups: HashMap<ItemId, Vec<Hit>> = HashMap::new();
    for item in items {
        if let Some(score) = best.get(&item.id) {
            let root = find(&mut parent, item.id);
            groups.entry(root).or_default().push(Hit {
                id: item.id,
                path: item.file.path,
                score: *score,
            });
        }
    }
    let mut groups: Vec<Group> = groups
        .into_values()
        .map(|mut members| {
            members.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.path.cmp(&b.path)));
            Group { members }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.members[0].path.cmp(&b.members[0].path))
    });
    Ok(groups)
}

fn find(parent: &mut HashMap<ItemId, ItemId>, id: ItemId) -> ItemId {
    let mut root = id;
    while let Some(&p) = parent.get(&root).filter(|p| **p != root) {
        root = p;
    }
    let mut node = id;
    while node != root {
        let next = parent.get(&node).copied().unwrap_or(root);
        parent.insert(node, root);
        node = next;
    }
    root
}

fn union(parent: &mut HashMap<ItemId, ItemId>, a: ItemId, b: ItemId) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent.insert(ra.max(rb), ra.min(rb));
    }
}
