//! The server sees images indexed after it started, without a restart, for both backends:
//! another handle commits, [`AppState::refresh`] (which `serve` polls) notices the store's
//! change counter and reopens it, and health and search answer with the new images.

#[path = "../../../tests/support/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clipkit::search::indexer::{self, Progress};
use clipkit::search::{model_identity, open, open_or_create, NamedRoots, StoreLocation};
use clipkit::Clip;
use clipkit_server::{app, AppState, HostPolicy, Limits};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: usize) {}
    fn advance(&mut self, _: usize) {}
}

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-a")
}

fn make_images(dir: &Path, first: u32, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in first..first + n {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let on = ((x / 4 + y / 4 + i) % 2) as u8;
            image::Rgb([(i * 30) as u8, on * 220, 255 - (i * 30) as u8])
        });
        img.save(dir.join(format!("img{i:02}.png"))).unwrap();
    }
}

/// GET `uri` through the router, on a runtime of its own (the store's client blocks, so the
/// test's own steps run outside any runtime, as the CLI's do).
fn get_json(state: &Arc<AppState>, uri: &str) -> Value {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let request = Request::get(uri)
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap();
        let response = app(Arc::clone(state)).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    })
}

fn sees_new_images(location: StoreLocation) {
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("before"), tmp.path().join("after"));
    make_images(&before, 0, 3);
    make_images(&after, 3, 2);
    let clip = Clip::load(&model_dir()).unwrap();
    let model = model_identity(&model_dir()).unwrap();
    let dim = clip.embedding_dim();
    let mut writer = open_or_create(&location, &model, dim).unwrap();
    indexer::index_folders(
        &clip,
        &mut *writer,
        &[before],
        &NamedRoots::default(),
        8,
        &mut Quiet,
    )
    .unwrap();
    let state = AppState::new(
        Clip::load(&model_dir()).unwrap(),
        open(&location).unwrap(),
        model,
        NamedRoots::default(),
        Limits::default(),
        HostPolicy::loopback(),
    );
    assert!(!state.refresh().unwrap(), "nothing changed yet");
    assert_eq!(get_json(&state, "/api/health")["images"], 3);

    indexer::index_folders(
        &clip,
        &mut *writer,
        std::slice::from_ref(&after),
        &NamedRoots::default(),
        8,
        &mut Quiet,
    )
    .unwrap();
    assert!(state.refresh().unwrap(), "the new commit is noticed");
    assert_eq!(get_json(&state, "/api/health")["images"], 5);
    let found = get_json(&state, "/api/search?q=a%20photo&top_k=10");
    let paths: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 5, "{found}");
    let new = after.display().to_string();
    assert_eq!(paths.iter().filter(|p| p.starts_with(&new)).count(), 2);
    assert!(!state.refresh().unwrap());
}

#[test]
fn a_folder_index_changed_by_another_process_is_seen_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    sees_new_images(StoreLocation::Folder(tmp.path().join("index")));
}

#[test]
fn a_postgres_index_changed_by_another_process_is_seen_without_restart() {
    sees_new_images(pg::fresh_location().parse().unwrap());
}
