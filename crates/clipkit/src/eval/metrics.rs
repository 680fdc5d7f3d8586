//! Scores to numbers: ranks, top-k accuracy, per-class accuracy, recall@k.
//!
//! Scores are row-major (N, C) matrices as `Vec<Vec<f32>>`: row = query (an image), column
//! = candidate (a class or a text). Ties rank the true candidate after the others, so a
//! constant score never looks accurate.

use candle_core::Tensor;

use crate::error::Result;

/// A tensor's rows as vectors: (N, C) → N rows of C.
pub fn rows(scores: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(scores.to_dtype(candle_core::DType::F32)?.to_vec2()?)
}

/// How many candidates score at least as high as the best relevant one, minus one: 0 when
/// a relevant candidate is strictly best. `relevant` says which columns are right.
pub fn rank_of_best(row: &[f32], relevant: impl Fn(usize) -> bool) -> usize {
    let best = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| relevant(j))
        .map(|(_, &s)| s)
        .fold(f32::NEG_INFINITY, f32::max);
    row.iter()
        .enumerate()
        .filter(|&(j, &s)| !relevant(j) && s >= best)
        .count()
}

/// The rank (0 = top) of the true class of each row.
pub fn ranks(scores: &[Vec<f32>], truth: &[usize]) -> Vec<usize> {
    scores
        .iter()
        .zip(truth)
        .map(|(row, &t)| rank_of_best(row, |j| j == t))
        .collect()
}

/// The fraction of ranks below `k` (top-k accuracy); 0 for no rows.
pub fn top_k(ranks: &[usize], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks.iter().filter(|&&r| r < k).count() as f64 / ranks.len() as f64
}

/// The index of each row's highest score (the first on ties).
pub fn argmax(scores: &[Vec<f32>]) -> Vec<usize> {
    scores
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (j, &s)| {
                    if s > best.1 {
                        (j, s)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// The fraction of predictions equal to the truth; 0 for none.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let right = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    right as f64 / truth.len() as f64
}

/// Counts of (true class, predicted class): `counts[t][p]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    /// The class names, in index order.
    pub labels: Vec<String>,
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// Tallies predictions against the truth; indices must be below `labels.len()`.
    pub fn new(labels: &[String], predicted: &[usize], truth: &[usize]) -> Self {
        let n = labels.len();
        let mut counts = vec![vec![0; n]; n];
        for (&p, &t) in predicted.iter().zip(truth) {
            counts[t][p] += 1;
        }
        Confusion {
            labels: labels.to_vec(),
            counts,
        }
    }

    /// Per class: how many examples it has and the fraction predicted right (0 when none).
    pub fn per_class(&self) -> Vec<(usize, f64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(t, row)| {
                let total: usize = row.iter().sum();
                let acc = if total == 0 {
                    0.0
                } else {
                    row[t] as f64 / total as f64
                };
                (total, acc)
            })
            .collect()
    }
}

/// Recall@k of one retrieval direction: the fraction of queries whose best relevant
/// candidate ranks within the top k.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Recall {
    /// Recall@1.
    pub r1: f64,
    /// Recall@5.
    pub r5: f64,
    /// Recall@10.
    pub r10: f64,
}

impl Recall {
    /// Recall@1/5/10 from the ranks of the best relevant candidate of each query.
    pub fn from_ranks(ranks: &[usize]) -> Self {
        Recall {
            r1: top_k(ranks, 1),
            r5: top_k(ranks, 5),
            r10: top_k(ranks, 10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_rank_the_truth_last() {
        assert_eq!(rank_of_best(&[1.0, 1.0, 1.0], |j| j == 0), 2);
        assert_eq!(rank_of_best(&[0.1, 0.9, 0.5], |j| j == 1), 0);
        assert_eq!(rank_of_best(&[0.1, 0.9, 0.5], |j| j == 0), 2);
        // Any relevant candidate counts: the best of them is ranked.
        assert_eq!(rank_of_best(&[0.3, 0.9, 0.5], |j| j != 1), 1);
    }

    #[test]
    fn top_k_and_accuracy_count_fractions() {
        let scores = vec![
            vec![0.9, 0.1, 0.0],
            vec![0.2, 0.3, 0.5],
            vec![0.0, 1.0, 0.5],
        ];
        let truth = [0, 1, 1];
        let r = ranks(&scores, &truth);
        assert_eq!(r, vec![0, 1, 0]);
        assert!((top_k(&r, 1) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_k(&r, 2), 1.0);
        assert_eq!(argmax(&scores), vec![0, 2, 1]);
        assert!((accuracy(&argmax(&scores), &truth) - 2.0 / 3.0).abs() < 1e-12);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let confusion = Confusion::new(&labels, &argmax(&scores), &truth);
        assert_eq!(confusion.counts[1], vec![0, 1, 1]);
        assert_eq!(confusion.per_class(), vec![(1, 1.0), (2, 0.5), (0, 0.0)]);
    }
}
