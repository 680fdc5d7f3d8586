//! One suite for every `VectorStore` backend (the trait's contract), run on what
//! `search::open_or_create` returns for each kind of location (a folder, a `postgres://`
//! URL), the same exact top-10 from both, then what only the embedded store promises:
//! persistence, crash leftovers, corrupt files, model identity, one writer at a time, and
//! the recall of its approximate index. The PostgreSQL store's own promises (many writers,
//! its HNSW recall, its errors) are in `tests/postgres_store.rs`.

use std::path::Path;

#[path = "../../../tests/support/pg.rs"]
mod pg;

use clipkit::search::embedded::EmbeddedStore;
use clipkit::search::synthetic::Clustered;
use clipkit::search::{
    exact, nearest, open, open_or_create, open_writable, Batch, Failure, FileRecord, ItemId,
    SearchError, StoreLocation, VectorStore,
};

const DIM: usize = 8;
const MODEL: &str = "0123456789abcdef";

fn record(path: &str, hash: &str) -> FileRecord {
    FileRecord {
        path: path.into(),
        size: 10,
        mtime_ns: 1,
        hash: hash.into(),
    }
}

fn basis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i % DIM] = 1.0;
    v
}

fn add(store: &mut dyn VectorStore, items: &[(&str, Vec<f32>)]) -> Vec<ItemId> {
    let batch = Batch {
        added: items
            .iter()
            .map(|(p, v)| (record(p, p), v.clone()))
            .collect(),
        ..Batch::default()
    };
    store.commit(batch).unwrap()
}

fn paths(store: &dyn VectorStore, query: &[f32], k: usize) -> Vec<String> {
    store
        .search(query, k)
        .unwrap()
        .into_iter()
        .map(|h| h.path)
        .collect()
}

/// The contract of `VectorStore`, run against a fresh store made by `make`.
fn contract_suite(make: &dyn Fn(&Path) -> Box<dyn VectorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = make(dir.path());
    assert_eq!((store.dim(), store.model(), store.len()), (DIM, MODEL, 0));
    assert!(store.search(&basis(0), 5).unwrap().is_empty());

    let ids = add(
        &mut *store,
        &[("a", basis(0)), ("b", basis(1)), ("c", basis(2))],
    );
    assert_eq!(store.len(), 3);
    // The store assigns the ids, distinct and never 0, and returns them in batch order.
    let listed: Vec<(ItemId, String)> = store
        .items()
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.file.path))
        .collect();
    let returned: Vec<(ItemId, String)> = ids
        .iter()
        .copied()
        .zip(["a", "b", "c"].map(String::from))
        .collect();
    assert_eq!(listed, returned);
    assert!(!ids.contains(&0));
    assert!(store.check_model(MODEL).is_ok());
    let err = store.check_model("fedcba9876543210").unwrap_err();
    assert!(matches!(err, SearchError::ModelMismatch { .. }), "{err}");
    let hits = store.search(&basis(1), 2).unwrap();
    assert_eq!(hits[0].path, "b");
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert_eq!(hits.len(), 2);
    // Ties (score 0) go to the smaller id: "a" was added first.
    assert_eq!(hits[1].path, "a");

    // Re-adding a path replaces it: no duplicate, new vector, a new id never used before.
    let again = add(&mut *store, &[("a", basis(3))]);
    assert_eq!(again.len(), 1);
    assert!(!ids.contains(&again[0]), "{again:?} reuses one of {ids:?}");
    assert_eq!(store.len(), 3);
    assert_eq!(paths(&*store, &basis(3), 1), vec!["a"]);
    assert_eq!(
        store
            .items()
            .unwrap()
            .iter()
            .filter(|i| i.file.path == "a")
            .count(),
        1
    );

    // Moves keep the vector; removals disappear from results; swaps do not collide.
    let items = store.items().unwrap();
    let id = |p: &str| items.iter().find(|i| i.file.path == p).unwrap().id;
    store
        .commit(Batch {
            moved: vec![(id("b"), record("c", "b")), (id("c"), record("b", "c"))],
            removed: vec![id("a"), 999_999],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(paths(&*store, &basis(1), 1), vec!["c"]);
    assert_eq!(store.vector(id("b")).unwrap(), Some(basis(1)));
    assert!(store.vector(id("a")).unwrap().is_none());
    assert!(!paths(&*store, &basis(3), 5).contains(&"a".to_string()));

    // Failures are kept until forgotten, and forgotten when the path gets indexed.
    let failure = |p: &str| Failure {
        path: p.into(),
        size: 3,
        mtime_ns: 2,
        message: "broken".into(),
    };
    store
        .commit(Batch {
            failed: vec![failure("x"), failure("y")],
            ..Batch::default()
        })
        .unwrap();
    add(&mut *store, &[("x", basis(4))]);
    // A file that turns unreadable loses its item.
    add(&mut *store, &[("w", basis(6))]);
    store
        .commit(Batch {
            failed: vec![failure("w")],
            ..Batch::default()
        })
        .unwrap();
    assert!(!paths(&*store, &basis(6), 5).contains(&"w".to_string()));
    store
        .commit(Batch {
            forgotten: vec!["nothing".into()],
            ..Batch::default()
        })
        .unwrap();
    let failed: Vec<String> = store
        .failures()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(failed, vec!["w", "y"]);

    // Vectors of another length are refused and change nothing.
    let err = store
        .commit(Batch {
            added: vec![(record("z", "z"), vec![1.0; DIM + 1])],
            ..Batch::default()
        })
        .unwrap_err();
    assert!(matches!(err, SearchError::Dimension { .. }), "{err}");
    assert_eq!(store.len(), 3);

    // The score floor drops what scores below it, and only that.
    let all = nearest(&*store, &basis(4), 5, None).unwrap();
    assert_eq!(all.len(), 3);
    let above = nearest(&*store, &basis(4), 5, Some(0.5)).unwrap();
    assert_eq!(
        above.iter().map(|h| h.path.as_str()).collect::<Vec<_>>(),
        vec!["x"]
    );
}

/// A folder location: what `open_or_create` gives is the embedded store.
fn at_folder(dir: &Path) -> Box<dyn VectorStore> {
    open_or_create(&StoreLocation::Folder(dir.join("store")), MODEL, DIM).unwrap()
}

#[test]
fn a_folder_store_keeps_the_vector_store_contract() {
    contract_suite(&at_folder);
}

/// A `postgres://` location: what `open_or_create` gives is the PostgreSQL store.
fn at_postgres(_: &Path) -> Box<dyn VectorStore> {
    let location: StoreLocation = pg::fresh_location().parse().unwrap();
    assert!(matches!(location, StoreLocation::Postgres(_)));
    open_or_create(&location, MODEL, DIM).unwrap()
}

#[test]
fn a_postgres_store_keeps_the_vector_store_contract() {
    contract_suite(&at_postgres);
}

#[test]
fn both_backends_give_the_same_exact_top_10() {
    let dim = 32;
    let dir = tempfile::tempdir().unwrap();
    let folder = StoreLocation::Folder(dir.path().join("store"));
    let database: StoreLocation = pg::fresh_location().parse().unwrap();
    let mut gen = Clustered::new(dim, 20, 11);
    let batch = Batch {
        added: (0..2000)
            .map(|i| (record(&format!("{i}"), "h"), gen.next_vector()))
            .collect(),
        ..Batch::default()
    };
    let mut stores = [folder, database].map(|l| open_or_create(&l, MODEL, dim).unwrap());
    for store in &mut stores {
        store.commit(batch.clone()).unwrap();
        assert!(!store.is_approximate());
    }
    for _ in 0..20 {
        let q = gen.next_vector();
        let [a, b] = [&stores[0], &stores[1]].map(|s| s.search(&q, 10).unwrap());
        let names = |hits: &[clipkit::search::Hit]| -> Vec<String> {
            hits.iter().map(|h| h.path.clone()).collect()
        };
        assert_eq!(names(&a), names(&b));
        for (x, y) in a.iter().zip(&b) {
            assert!((x.score - y.score).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn opening_a_folder_store_reads_writes_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let location: StoreLocation = dir.path().join("store").to_str().unwrap().parse().unwrap();
    let err = open(&location).err().unwrap();
    assert!(matches!(err, SearchError::NoIndex { .. }), "{err}");
    assert!(err.to_string().contains("store"), "{err}");
    assert!(open_writable(&location).is_err());
    add(&mut *at_folder(dir.path()), &[("a", basis(0))]);
    let reader = open(&location).unwrap();
    assert_eq!((reader.len(), reader.location()), (1, &location));
    let mut writer = open_writable(&location).unwrap();
    let id = writer.items().unwrap()[0].id;
    writer
        .commit(Batch {
            removed: vec![id],
            ..Batch::default()
        })
        .unwrap();
    drop(writer);
    assert!(open(&location).unwrap().is_empty());
}

#[test]
fn embedded_store_keeps_the_contract_with_an_approximate_index() {
    contract_suite(&|dir| {
        let mut store = EmbeddedStore::open_or_create(&dir.join("store"), MODEL, DIM)
            .unwrap()
            .with_ann_threshold(1);
        // Some items first so the index exists, the suite's items then form the exact tail.
        add(&mut store, &[("seed", basis(5))]);
        store.optimize().unwrap();
        assert!(store.is_approximate());
        store
            .commit(Batch {
                removed: vec![1],
                ..Batch::default()
            })
            .unwrap();
        Box::new(store)
    });
}

#[test]
fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let mut store = EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap();
        add(&mut store, &[("a", basis(0)), ("b", basis(1))]);
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(paths(&store, &basis(1), 1), vec!["b"]);
}

#[test]
fn torn_vector_tail_from_a_crash_is_ignored_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let mut store = EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap();
        add(&mut store, &[("a", basis(0))]);
    }
    // A process that died after writing vectors but before its transaction committed.
    let vectors = path.join("vectors.0.f32");
    let committed = std::fs::metadata(&vectors).unwrap().len();
    let mut bytes = std::fs::read(&vectors).unwrap();
    bytes.extend_from_slice(&[0xAB; 13]);
    std::fs::write(&vectors, bytes).unwrap();
    assert_eq!(EmbeddedStore::open(&path).unwrap().len(), 1);
    let mut store = EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap();
    assert_eq!(std::fs::metadata(&vectors).unwrap().len(), committed);
    add(&mut store, &[("b", basis(1))]);
    assert_eq!(paths(&store, &basis(1), 1), vec!["b"]);
    assert_eq!(paths(&store, &basis(0), 1), vec!["a"]);
}

#[test]
fn corrupt_store_files_give_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let mut store = EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap();
        add(&mut store, &[("a", basis(0)), ("b", basis(1))]);
    }
    let vectors = path.join("vectors.0.f32");
    let full = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &full[..full.len() - 4]).unwrap();
    let err = EmbeddedStore::open(&path).err().unwrap();
    assert!(matches!(err, SearchError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("vectors.0.f32"), "{err}");

    std::fs::write(&vectors, [b'x'; 100]).unwrap();
    let err = EmbeddedStore::open(&path).err().unwrap();
    assert!(
        err.to_string().contains("not a clipkit vector file"),
        "{err}"
    );

    let db = path.join("index.sqlite");
    for leftover in ["index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(path.join(leftover));
    }
    std::fs::write(&db, vec![0x5A; 4096]).unwrap();
    let err = EmbeddedStore::open(&path).err().unwrap();
    assert!(matches!(err, SearchError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("index.sqlite"), "{err}");
}

#[test]
fn a_store_refuses_another_models_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    drop(EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap());
    let err = EmbeddedStore::open_or_create(&path, "fedcba9876543210", DIM)
        .err()
        .unwrap();
    assert!(matches!(err, SearchError::ModelMismatch { .. }), "{err}");
    let store = open(&StoreLocation::Folder(path)).unwrap();
    assert!(store.check_model("fedcba9876543210").is_err());
    assert!(store.check_model(MODEL).is_ok());
}

#[test]
fn only_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let _writer = EmbeddedStore::open_or_create(&path, MODEL, DIM).unwrap();
    let err = EmbeddedStore::open_or_create(&path, MODEL, DIM)
        .err()
        .unwrap();
    assert!(matches!(err, SearchError::Locked { .. }), "{err}");
    // Readers are welcome.
    assert!(EmbeddedStore::open(&path).is_ok());
}

#[test]
fn approximate_search_recall_at_10_is_at_least_095() {
    let dim = 64;
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open_or_create(dir.path(), MODEL, dim)
        .unwrap()
        .with_ann_threshold(1000);
    let mut gen = Clustered::new(dim, 50, 3);
    let vectors: Vec<Vec<f32>> = (0..4000).map(|_| gen.next_vector()).collect();
    let batch = Batch {
        added: vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (record(&format!("{i}"), "h"), v.clone()))
            .collect(),
        ..Batch::default()
    };
    store.commit(batch).unwrap();
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
        let got = paths(&store, &q, 10);
        found += got.iter().filter(|p| truth.contains(p)).count();
    }
    let recall = found as f64 / (10 * queries) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    // The index survives reopening.
    drop(store);
    assert!(EmbeddedStore::open(dir.path()).unwrap().is_approximate());
}

#[test]
fn compaction_reclaims_removed_rows_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open_or_create(dir.path(), MODEL, DIM).unwrap();
    let items: Vec<(String, Vec<f32>)> = (0..3000).map(|i| (format!("{i}"), basis(i))).collect();
    let refs: Vec<(&str, Vec<f32>)> = items.iter().map(|(p, v)| (p.as_str(), v.clone())).collect();
    add(&mut store, &refs);
    let removed = store
        .items()
        .unwrap()
        .iter()
        .skip(3)
        .map(|i| i.id)
        .collect();
    store
        .commit(Batch {
            removed,
            ..Batch::default()
        })
        .unwrap();
    store.optimize().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("vectors.1.f32"))
            .unwrap()
            .len(),
        64 + 3 * DIM as u64 * 4
    );
    assert!(!dir.path().join("vectors.0.f32").exists());
    assert_eq!(paths(&store, &basis(2), 1), vec!["2"]);
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(paths(&store, &basis(1), 1), vec!["1"]);
}

#[test]
fn a_damaged_approximate_index_falls_back_to_exact_search() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = EmbeddedStore::open_or_create(dir.path(), MODEL, DIM)
            .unwrap()
            .with_ann_threshold(1);
        add(&mut store, &[("a", basis(0)), ("b", basis(1))]);
        store.optimize().unwrap();
        assert!(store.is_approximate());
    }
    let ann: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "usearch"))
        .collect();
    assert_eq!(ann.len(), 1);
    std::fs::write(&ann[0], vec![0x42; 300]).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(!store.is_approximate());
    assert_eq!(paths(&store, &basis(1), 1), vec!["b"]);
    std::fs::remove_file(&ann[0]).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(paths(&store, &basis(0), 1), vec!["a"]);
}
