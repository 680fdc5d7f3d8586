//! What the PostgreSQL store promises beyond the shared contract (`tests/vector_store.rs`):
//! many writers at once, the recall of its HNSW index, and errors on bad input that name the
//! location, never the password, and write nothing.

#[path = "../../../tests/support/pg.rs"]
mod pg;

use clipkit::search::postgres::PgStore;
use clipkit::search::synthetic::Clustered;
use clipkit::search::{
    exact, open, open_or_create, Batch, FileRecord, SearchError, StoreLocation, VectorStore,
};

const MODEL: &str = "0123456789abcdef";

fn record(path: &str) -> FileRecord {
    FileRecord {
        path: path.into(),
        size: 1,
        mtime_ns: 1,
        hash: path.into(),
    }
}

fn pg_location(location: &StoreLocation) -> &clipkit::search::postgres::PgLocation {
    match location {
        StoreLocation::Postgres(pg) => pg,
        other => panic!("{other} is not a postgres location"),
    }
}

#[test]
fn hnsw_search_recall_at_10_is_at_least_095() {
    let dim = 64;
    let location: StoreLocation = pg::fresh_location().parse().unwrap();
    let mut store = PgStore::open_or_create(pg_location(&location), MODEL, dim)
        .unwrap()
        .with_ann_threshold(1000);
    let mut gen = Clustered::new(dim, 50, 3);
    let vectors: Vec<Vec<f32>> = (0..4000).map(|_| gen.next_vector()).collect();
    store
        .commit(Batch {
            added: vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (record(&format!("{i}")), v.clone()))
                .collect(),
            ..Batch::default()
        })
        .unwrap();
    assert!(!store.is_approximate());
    store.optimize().unwrap();
    assert!(store.is_approximate());
    let flat: Vec<f32> = vectors.concat();
    let (mut found, queries) = (0, 100);
    for _ in 0..queries {
        let q = gen.next_vector();
        let truth: Vec<String> = exact::top_k(&flat, &q, 10, |r| Some(r as u64))
            .iter()
            .map(|s| s.key.to_string())
            .collect();
        let hits = store.search(&q, 10).unwrap();
        assert_eq!(hits.len(), 10);
        found += hits.iter().filter(|h| truth.contains(&h.path)).count();
    }
    let recall = found as f64 / (10 * queries) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    // Another handle sees the index.
    assert!(open(&location).unwrap().is_approximate());
}

#[test]
fn several_writers_at_once_lose_nothing_and_duplicate_nothing() {
    let location: StoreLocation = pg::fresh_location().parse().unwrap();
    drop(open_or_create(&location, MODEL, 4).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let location = location.clone();
            std::thread::spawn(move || {
                let mut store = open_or_create(&location, MODEL, 4).unwrap();
                let mut ids = Vec::new();
                for batch in 0..10 {
                    let added = (0..25)
                        .map(|i| (record(&format!("w{w}/{batch}/{i}")), vec![0.5; 4]))
                        .collect();
                    ids.extend(
                        store
                            .commit(Batch {
                                added,
                                ..Batch::default()
                            })
                            .unwrap(),
                    );
                }
                // A batch applied twice (a rerun) duplicates nothing.
                let again = (0..25)
                    .map(|i| (record(&format!("w{w}/0/{i}")), vec![0.5; 4]))
                    .collect();
                store
                    .commit(Batch {
                        added: again,
                        ..Batch::default()
                    })
                    .unwrap();
                ids
            })
        })
        .collect();
    let mut ids: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4 * 10 * 25, "ids given twice");
    let store = open(&location).unwrap();
    let items = store.items().unwrap();
    assert_eq!(items.len(), 4 * 10 * 25);
    let mut paths: Vec<&str> = items.iter().map(|i| i.file.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 4 * 10 * 25);
}

#[test]
fn the_schema_is_versioned_and_records_model_and_dimension() {
    let text = pg::fresh_location();
    let location: StoreLocation = text.parse().unwrap();
    drop(open_or_create(&location, MODEL, 4).unwrap());
    let pg = pg_location(&location);
    let mut client = postgres::Client::connect(pg::server_url(), postgres::NoTls).unwrap();
    let row = client
        .query_one(
            &format!("SELECT max(version) FROM {}.migrations", pg.schema()),
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(1));
    let column_type: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attname = 'embedding'",
            &[&format!("{}.items", pg.schema())],
        )
        .unwrap()
        .get(0);
    assert_eq!(column_type, "vector(4)");

    // Another model or dimension is refused.
    let err = open_or_create(&location, "fedcba9876543210", 4)
        .err()
        .unwrap();
    assert!(matches!(err, SearchError::ModelMismatch { .. }), "{err}");
    let err = open_or_create(&location, MODEL, 8).err().unwrap();
    assert!(matches!(err, SearchError::Dimension { .. }), "{err}");
    assert_eq!(open(&location).unwrap().dim(), 4);
}

#[test]
fn bad_servers_give_errors_naming_the_location_without_password() {
    // Nothing listens on this port: the listener is dropped before connecting.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable: StoreLocation = format!("postgres://me:sesame@127.0.0.1:{port}/db")
        .parse()
        .unwrap();
    let err = open_or_create(&unreachable, MODEL, 4).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, SearchError::Database { .. }), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}/db")), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains("sesame"), "{text}");

    // A user the server does not know.
    let url = pg::server_url().replacen("postgres@", "nosuchuser:sesame@", 1);
    let stranger: StoreLocation = format!("{url}?schema=never_made").parse().unwrap();
    let err = open_or_create(&stranger, MODEL, 4).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("nosuchuser"), "{text}");
    assert!(!text.contains("sesame"), "{text}");

    // No store in the schema: reading says so and creates nothing.
    let empty: StoreLocation = pg::fresh_location().parse().unwrap();
    let err = open(&empty).err().unwrap();
    assert!(matches!(err, SearchError::NoIndex { .. }), "{err}");
    let mut client = postgres::Client::connect(pg::server_url(), postgres::NoTls).unwrap();
    let schema = pg_location(&empty).schema().to_string();
    let made: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert!(!made);
}
