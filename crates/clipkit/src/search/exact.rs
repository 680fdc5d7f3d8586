//! Exact nearest neighbours: a dot product with every row, in parallel chunks, each chunk
//! keeping its best `k` in a min-heap, the heaps merged at the end.
//!
//! Legend: N = rows, E = embedding dimension.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

/// Rows per parallel task: large enough to amortise the heap, small enough to balance.
const CHUNK_ROWS: usize = 8192;

/// A candidate: score and the caller's key. Ordered so that the *worst* candidate is the
/// greatest, which puts it on top of a [`BinaryHeap`] ready to be evicted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Dot product with the query.
    pub score: f32,
    /// The caller's key for the row (an item id).
    pub key: u64,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score is better; on ties the smaller key is better. "Worse" is "greater".
        other
            .score
            .total_cmp(&self.score)
            .then(self.key.cmp(&other.key))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the best `k` of the candidates it is offered.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl TopK {
    /// An empty selection of at most `k`.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers a candidate; kept when it beats the current worst of a full selection.
    pub fn push(&mut self, candidate: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if candidate < *worst {
                *worst = candidate;
            }
        }
    }

    /// Merges another selection into this one.
    pub fn merge(mut self, other: TopK) -> TopK {
        for candidate in other.heap {
            self.push(candidate);
        }
        self
    }

    /// The selection, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        self.heap.into_sorted_vec()
    }
}

/// Dot product of two equal-length slices, in 16 independent lanes the compiler vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The best `k` rows of `rows` (N × E, row-major) for `query` (E), best first. `key_of`
/// maps a row number to its key, or `None` for a row to skip (a removed item).
pub fn top_k(
    rows: &[f32],
    query: &[f32],
    k: usize,
    key_of: impl Fn(usize) -> Option<u64> + Sync,
) -> Vec<Scored> {
    let dim = query.len();
    if k == 0 || dim == 0 {
        return Vec::new();
    }
    rows.par_chunks(CHUNK_ROWS * dim)
        .enumerate()
        .map(|(chunk, block)| {
            let mut best = TopK::new(k);
            for (i, row) in block.chunks_exact(dim).enumerate() {
                if let Some(key) = key_of(chunk * CHUNK_ROWS + i) {
                    best.push(Scored {
                        score: dot(row, query),
                        key,
                    });
                }
            }
            best
        })
        .reduce(|| TopK::new(k), TopK::merge)
        .into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_sorted_best_first_and_skips_removed_rows() {
        // Four 2-d rows; row 1 is removed.
        let rows = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, 0.8, 0.6];
        let hits = top_k(&rows, &[1.0, 0.0], 2, |r| (r != 1).then_some(r as u64 + 10));
        let keys: Vec<u64> = hits.iter().map(|h| h.key).collect();
        assert_eq!(keys, vec![10, 13]);
        assert!((hits[1].score - 0.8).abs() < 1e-6);
    }

    #[test]
    fn ties_prefer_the_smaller_key() {
        let rows = [1.0, 1.0, 1.0];
        let hits = top_k(&rows, &[1.0], 2, |r| Some(5 - r as u64));
        assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn dot_matches_the_plain_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }
}
