//! PostgreSQL + pgvector store benchmark, beside `search_bench` (the embedded store):
//! insert throughput, exact and HNSW query latency and recall@10 on the same synthetic
//! clustered unit vectors; then an HNSW index over the full-precision `vector` beside the
//! store's own over `halfvec` (half the memory): sizes, latency, recall.
//!
//! ```text
//! cargo run --release --example pg_bench -- URL [N] [E] [QUERIES] [EF,...]
//! # defaults: N 1000000, E 512, QUERIES 100, EF 40,100,200
//! ```
//!
//! The store lives in schema `bench_NxE` of URL's database and is reused by later runs with
//! the same N and E (its HNSW indexes too; `DROP SCHEMA bench_NxE CASCADE` starts over).

use std::error::Error;
use std::time::Instant;

use clipkit::search::postgres::{PgLocation, PgStore};
use clipkit::search::synthetic::Clustered;
use clipkit::search::{Batch, FileRecord, Hit, VectorStore};

const MODEL: &str = "synthetic-bench0";
const FILL_BATCH: usize = 5_000;

fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or(default.to_string());
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: pg_bench URL [N] [E] [QUERIES] [EF,...]")?;
    let n: usize = arg(2, "1000000").parse()?;
    let dim: usize = arg(3, "512").parse()?;
    let queries: usize = arg(4, "100").parse()?;
    let efs: Vec<usize> = arg(5, "40,100,200")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let schema = format!("bench_{n}x{dim}");
    let sep = if url.contains('?') { '&' } else { '?' };
    let location = PgLocation::parse(&format!("{url}{sep}schema={schema}"))?;

    let mut gen = Clustered::new(dim, (n / 1000).max(10), 42);
    let mut store = PgStore::open_or_create(&location, MODEL, dim)?.with_ann_threshold(0);
    if store.len() != n {
        let mut sql = postgres::Client::connect(location.connect_url(), postgres::NoTls)?;
        drop(store);
        sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
        store = PgStore::open_or_create(&location, MODEL, dim)?.with_ann_threshold(0);
        let t = Instant::now();
        fill(&mut store, &mut gen, n)?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "insert: {n} x {dim} in {s:.1} s ({:.0} vectors/s)",
            n as f64 / s
        );
    } else {
        println!("insert: reusing schema {schema}");
        for _ in 0..n {
            gen.next_vector();
        }
    }
    let qs: Vec<Vec<f32>> = (0..queries).map(|_| gen.next_vector()).collect();

    store.search_exact(&qs[0], 10)?;
    let (exact, exact_ms) = timed(&qs, |q| store.search_exact(q, 10))?;
    report("exact", &exact_ms);

    if !store.is_approximate() {
        let t = Instant::now();
        store.optimize()?;
        println!("HNSW build (halfvec): {:.1} s", t.elapsed().as_secs_f64());
    }
    for ef in &efs {
        store.set_search_expansion(*ef);
        let (approx, ms) = timed(&qs, |q| store.search(q, 10))?;
        report(&format!("HNSW halfvec (ef_search {ef})"), &ms);
        println!("recall@10 (ef_search {ef}): {:.4}", recall(&exact, &approx));
    }
    drop(store);
    full_precision_index(&location, &qs, &exact, &efs)
}

/// The same HNSW index over the full-precision vectors, its size beside the store's one
/// over `halfvec`, and its latency and recall.
fn full_precision_index(
    location: &PgLocation,
    qs: &[Vec<f32>],
    exact: &[Vec<Hit>],
    efs: &[usize],
) -> Result<(), Box<dyn Error>> {
    let s = location.schema();
    let mut sql = postgres::Client::connect(location.connect_url(), postgres::NoTls)?;
    let t = Instant::now();
    sql.batch_execute(&format!(
        "SET maintenance_work_mem = '1GB';
         CREATE INDEX IF NOT EXISTS items_embedding_full ON {s}.items
         USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    ))?;
    println!("HNSW build (vector): {:.1} s", t.elapsed().as_secs_f64());
    for index in ["items_embedding_hnsw", "items_embedding_full"] {
        let row = sql.query_one(
            "SELECT pg_size_pretty(pg_relation_size(to_regclass($1)))",
            &[&format!("{s}.{index}")],
        )?;
        println!("{index}: {}", row.get::<_, String>(0));
    }
    let query = format!("SELECT id FROM {s}.items ORDER BY embedding <=> $1 LIMIT 10");
    for ef in efs {
        sql.batch_execute(&format!("SET hnsw.ef_search = {ef}"))?;
        let mut ms = Vec::new();
        let mut found = 0;
        for (q, truth) in qs.iter().zip(exact) {
            let v = pgvector::Vector::from(q.clone());
            let t = Instant::now();
            let ids: Vec<i64> = sql.query(&query, &[&v])?.iter().map(|r| r.get(0)).collect();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            found += ids
                .iter()
                .filter(|id| truth.iter().any(|h| h.id == **id as u64))
                .count();
        }
        report(&format!("HNSW vector (ef_search {ef})"), &ms);
        println!(
            "recall@10 vector (ef_search {ef}): {:.4}",
            found as f64 / (10 * qs.len()) as f64
        );
    }
    Ok(())
}

fn fill(store: &mut PgStore, gen: &mut Clustered, n: usize) -> Result<(), Box<dyn Error>> {
    let mut done = 0;
    while done < n {
        let size = FILL_BATCH.min(n - done);
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

fn recall(exact: &[Vec<Hit>], approx: &[Vec<Hit>]) -> f64 {
    let found: usize = exact
        .iter()
        .zip(approx)
        .map(|(e, a)| a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count())
        .sum();
    found as f64 / (10 * exact.len()) as f64
}

/// Each query's hits, and each query's latency in milliseconds.
type Timed = (Vec<Vec<Hit>>, Vec<f64>);

fn timed(
    qs: &[Vec<f32>],
    search: impl Fn(&[f32]) -> clipkit::search::Result<Vec<Hit>>,
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

fn report(what: &str, ms: &[f64]) {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    println!(
        "{what} search: p50 {:.2} ms, p99 {:.2} ms per query",
        at(0.5),
        at(0.99)
    );
}
