//! PostgreSQL + pgvector store benchmark, beside `search_bench` (the embedded store):
//! insert throughput, exact and HNSW query latency and recall@10 on the same synthetic
//! clustered unit vectors; then, with `vector` as the last argument, an HNSW index over the
//! full-precision `vector` beside the store's own over `halfvec` (half the memory).
//!
//! ```text
//! cargo run --release --example pg_bench -- URL [N] [E] [QUERIES] [EF,...] [M,EFC] [vector]
//! # defaults: N 1000000, E 512, QUERIES 100, EF 40,100,200, M,EFC the store's HnswParams
//! ```
//!
//! The store lives in schema `bench_NxE` of URL's database and is reused by later runs with
//! the same N and E; its HNSW index too when built with the same M and EFC (otherwise it is
//! rebuilt). `DROP SCHEMA bench_NxE CASCADE` starts over.

#[path = "support/store_bench.rs"]
mod store_bench;

use std::error::Error;
use std::time::Instant;

use clipkit::search::postgres::{HnswParams, PgLocation, PgStore};
use clipkit::search::synthetic::Clustered;
use clipkit::search::{Hit, VectorStore};
use store_bench::{fill, recall, report, timed};

const MODEL: &str = "synthetic-bench0";
const FILL_BATCH: usize = 5_000;

fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize| std::env::args().nth(i);
    let url = arg(1).ok_or("usage: pg_bench URL [N] [E] [QUERIES] [EF,...] [M,EFC] [vector]")?;
    let number = |i: usize, default: usize| -> Result<usize, Box<dyn Error>> {
        Ok(arg(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    let (n, dim, queries) = (number(2, 1_000_000)?, number(3, 512)?, number(4, 100)?);
    let list = |i: usize, default: &str| -> Result<Vec<usize>, Box<dyn Error>> {
        let text = arg(i).unwrap_or(default.to_string());
        Ok(text.split(',').map(str::parse).collect::<Result<_, _>>()?)
    };
    let efs = list(5, "40,100,200")?;
    let hnsw = match list(6, "")?.as_slice() {
        [] => HnswParams::default(),
        [m, ef_construction] => HnswParams {
            m: *m,
            ef_construction: *ef_construction,
        },
        _ => return Err("M,EFC: two numbers, e.g. 24,128".into()),
    };
    let with_full_precision = arg(7).as_deref() == Some("vector");
    let schema = format!("bench_{n}x{dim}");
    let sep = if url.contains('?') { '&' } else { '?' };
    let location = PgLocation::parse(&format!("{url}{sep}schema={schema}"))?;
    let mut sql = postgres::Client::connect(location.connect_url(), postgres::NoTls)?;

    let mut gen = Clustered::new(dim, (n / 1000).max(10), 42);
    let open = || -> Result<PgStore, Box<dyn Error>> {
        Ok(PgStore::open_or_create(&location, MODEL, dim)?
            .with_ann_threshold(0)
            .with_hnsw_params(hnsw))
    };
    let mut store = open()?;
    if store.len() != n {
        drop(store);
        sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))?;
        store = open()?;
        let t = Instant::now();
        fill(&mut store, &mut gen, n, FILL_BATCH)?;
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
    let (exact, exact_ms) = timed(&qs, |q| Ok(store.search_exact(q, 10)?))?;
    report("exact", &exact_ms);

    let built_with = format!("m='{}', ef_construction='{}'", hnsw.m, hnsw.ef_construction);
    let index = format!("{schema}.items_embedding_hnsw");
    let definition: Option<String> = sql
        .query_one("SELECT pg_get_indexdef(to_regclass($1))", &[&index])?
        .get(0);
    if definition.is_some_and(|d| !d.contains(&built_with)) {
        drop(store);
        sql.batch_execute(&format!("DROP INDEX {index}"))?;
        store = open()?;
    }
    if !store.is_approximate() {
        let t = Instant::now();
        store.optimize()?;
        let s = t.elapsed().as_secs_f64();
        println!("HNSW build (halfvec, {built_with}): {s:.1} s");
    }
    for ef in &efs {
        store.set_search_expansion(*ef);
        let (approx, ms) = timed(&qs, |q| Ok(store.search(q, 10)?))?;
        report(&format!("HNSW halfvec (ef_search {ef})"), &ms);
        println!("recall@10 (ef_search {ef}): {:.4}", recall(&exact, &approx));
    }
    drop(store);
    if with_full_precision {
        full_precision_index(&mut sql, &location, hnsw, &qs, &exact, &efs)?;
    }
    Ok(())
}

/// The same HNSW index over the full-precision vectors, its size beside the store's one
/// over `halfvec`, and its latency and recall.
fn full_precision_index(
    sql: &mut postgres::Client,
    location: &PgLocation,
    hnsw: HnswParams,
    qs: &[Vec<f32>],
    exact: &[Vec<Hit>],
    efs: &[usize],
) -> Result<(), Box<dyn Error>> {
    let s = location.schema();
    let t = Instant::now();
    sql.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS items_embedding_full ON {s}.items
         USING hnsw (embedding vector_cosine_ops) WITH (m = {}, ef_construction = {})",
        hnsw.m, hnsw.ef_construction
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
        let (hits, ms) = timed(qs, |q| {
            let v = pgvector::Vector::from(q.to_vec());
            Ok(sql
                .query(&query, &[&v])?
                .iter()
                .map(|r| Hit {
                    id: r.get::<_, i64>(0) as u64,
                    path: String::new(),
                    score: 0.0,
                })
                .collect())
        })?;
        report(&format!("HNSW vector (ef_search {ef})"), &ms);
        println!(
            "recall@10 vector (ef_search {ef}): {:.4}",
            recall(exact, &hits)
        );
    }
    Ok(())
}
