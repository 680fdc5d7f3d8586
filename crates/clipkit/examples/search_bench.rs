//! Vector-store benchmark: exact and approximate query latency and recall@10 on synthetic
//! clustered unit vectors (see `clipkit::search::synthetic`).
//!
//! ```text
//! cargo run --release --example search_bench -- [N] [E] [QUERIES] [STORE_DIR] [EF,...] [M] [EA]
//! # defaults: 1000000 512 100 target/search-bench 256 32 128 (M links, EA build width)
//! ```
//!
//! The store and its approximate index are made once and reused by later runs with the same
//! N and E (delete `STORE_DIR/NxE/ann.*` to rebuild the index). Prints the time to fill the
//! store and to build the index, then per-query latency (mean, p50, p99) of exact search,
//! and for each search width EF the approximate latency and recall@10 against exact.

#[path = "support/store_bench.rs"]
mod store_bench;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use clipkit::search::embedded::AnnParams;
use clipkit::search::embedded::EmbeddedStore;
use clipkit::search::synthetic::Clustered;
use clipkit::search::VectorStore;
use store_bench::{fill, recall, report, timed};

const MODEL: &str = "synthetic-bench0";
const FILL_BATCH: usize = 50_000;

fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or(default.to_string());
    let n: usize = arg(1, "1000000").parse()?;
    let dim: usize = arg(2, "512").parse()?;
    let queries: usize = arg(3, "100").parse()?;
    let dir = PathBuf::from(arg(4, "target/search-bench")).join(format!("{n}x{dim}"));
    let expansions: Vec<usize> = arg(5, "256")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let params = AnnParams {
        connectivity: arg(6, "32").parse()?,
        expansion_add: arg(7, "128").parse()?,
    };
    println!("threads {}", rayon::current_num_threads());

    let mut gen = Clustered::new(dim, (n / 1000).max(10), 42);
    let mut store = EmbeddedStore::open_or_create(&dir, MODEL, dim)?.with_ann_threshold(usize::MAX);
    if store.len() != n {
        drop(store);
        std::fs::remove_dir_all(&dir)?;
        store = EmbeddedStore::open_or_create(&dir, MODEL, dim)?.with_ann_threshold(usize::MAX);
        let t = Instant::now();
        fill(&mut store, &mut gen, n, FILL_BATCH)?;
        println!("fill: {n} x {dim} in {:.1} s", t.elapsed().as_secs_f64());
    } else {
        println!("fill: reusing {}", dir.display());
        for _ in 0..n {
            gen.next_vector();
        }
    }
    let qs: Vec<Vec<f32>> = (0..queries).map(|_| gen.next_vector()).collect();

    drop(store);
    let store = EmbeddedStore::open(&dir)?;
    // Warm the page cache so the first query does not pay for reading the file.
    store.search_exact(&qs[0], 10)?;
    let (exact, exact_ms) = timed(&qs, |q| Ok(store.search_exact(q, 10)?))?;
    report("exact", &exact_ms);
    drop(store);

    let mut store = EmbeddedStore::open_or_create(&dir, MODEL, dim)?.with_ann_params(params);
    if !store.is_approximate() {
        let t = Instant::now();
        store.rebuild_ann()?;
        println!(
            "approximate index build: {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    for ef in &expansions {
        store.set_search_expansion(*ef);
        let (approx, approx_ms) = timed(&qs, |q| Ok(store.search(q, 10)?))?;
        report(&format!("approximate (ef {ef})"), &approx_ms);
        println!("recall@10 (ef {ef}): {:.4}", recall(&exact, &approx));
    }
    Ok(())
}
