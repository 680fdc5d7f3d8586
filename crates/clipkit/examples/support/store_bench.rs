//! What the store benchmarks (`search_bench`, `pg_bench`) share: filling a store with
//! synthetic vectors, timing queries, printing latency percentiles and recall.

use std::error::Error;
use std::time::Instant;

use clipkit::search::synthetic::Clustered;
use clipkit::search::{Batch, FileRecord, Hit, VectorStore};

/// Adds `n` synthetic items to `store`, `batch` to a commit.
pub fn fill(
    store: &mut dyn VectorStore,
    gen: &mut Clustered,
    n: usize,
    batch: usize,
) -> Result<(), Box<dyn Error>> {
    let mut done = 0;
    while done < n {
        let size = batch.min(n - done);
        let added = (done..done + size)
            .map(|i| {
                let file = FileRecord {
                    path: format!("synthetic/{i:07}.jpg"),
                    size: 0,
                    mtime_ns: 0,
                    hash: String::new(),
                };
                (file, gen.next_vector())
            })
            .collect();
        store.commit(Batch {
            added,
            ..Batch::default()
        })?;
        done += size;
    }
    Ok(())
}

/// Each query's hits, and each query's latency in milliseconds.
pub type Timed = (Vec<Vec<Hit>>, Vec<f64>);

/// Runs `search` for every query, timing each.
pub fn timed(
    qs: &[Vec<f32>],
    mut search: impl FnMut(&[f32]) -> Result<Vec<Hit>, Box<dyn Error>>,
) -> Result<Timed, Box<dyn Error>> {
    let mut results = Vec::new();
    let mut ms = Vec::new();
    for q in qs {
        let t = Instant::now();
        results.push(search(q)?);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((results, ms))
}

/// Prints the mean, median and 99th percentile of per-query latencies `ms`.
pub fn report(what: &str, ms: &[f64]) {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    let at = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    println!(
        "{what} search: mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms per query",
        at(0.5),
        at(0.99)
    );
}

/// The share of each query's exact top 10 that `approx` found.
pub fn recall(exact: &[Vec<Hit>], approx: &[Vec<Hit>]) -> f64 {
    let found: usize = exact
        .iter()
        .zip(approx)
        .map(|(e, a)| a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count())
        .sum();
    found as f64 / (10 * exact.len()) as f64
}
