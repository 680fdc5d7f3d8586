//! Pulling models from the Hub into its standard cache and reading them back, against a
//! loopback server that answers as the Hub does (`common/hub_server.rs`): the cache
//! layout, offline resolution, resume, integrity, the Hub's error statuses, and a cache
//! laid out by python's `huggingface_hub`.

#[path = "common/hub_server.rs"]
mod hub_server;

use std::path::{Path, PathBuf};

use clipkit::hub::{self, HubError, HubSettings, PullOptions, RepoId, ResolvedModel};
use clipkit::model_folder::{probe_layout, Layout};
use clipkit::Clip;
use hub_server::{HubServer, COMMIT, REPO};

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/quickstart")
}

fn settings(server: &HubServer, cache: &Path, offline: bool) -> HubSettings {
    HubSettings {
        endpoint: server.endpoint.clone(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
    }
}

fn repo() -> RepoId {
    RepoId::parse(REPO).unwrap()
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join(hub::repo_folder_name(REPO))
}

/// Files and folders under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

fn text_embedding(dir: &Path) -> Vec<f32> {
    let clip = Clip::load(dir).expect("model loads");
    let e = clip.embed_texts(&["a red circle"]).expect("embeds");
    e.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn pull_writes_the_hub_cache_layout_and_the_name_then_resolves_offline() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    let snapshot = hub::pull(
        &settings(&server, cache.path(), false),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .expect("pull");
    let repo_dir = repo_dir(cache.path());
    assert_eq!(snapshot, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );

    // Every file is a relative symlink into blobs/, named by its ETag; other frameworks'
    // weights and the pickled duplicate of the safetensors are skipped.
    for file in server.files.values() {
        let link = snapshot.join(&file.path);
        let skipped = file.path == "tf_model.h5" || file.path == "pytorch_model.bin";
        assert_eq!(link.exists(), !skipped, "{}", file.path);
        if skipped {
            continue;
        }
        let depth = 2 + file.path.matches('/').count();
        let expected = format!("{}blobs/{}", "../".repeat(depth), file.etag());
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(expected),
            "{}",
            file.path
        );
        assert_eq!(std::fs::read(&link).unwrap(), file.bytes, "{}", file.path);
    }
    assert!(!listing(&repo_dir.join("blobs"))
        .iter()
        .any(|b| b.ends_with(".incomplete")));

    // The pulled folder is the fixture model, bit for bit in what it computes.
    assert_eq!(probe_layout(&snapshot), Some(Layout::HfFolder));
    assert_eq!(text_embedding(&snapshot), text_embedding(&quickstart()));

    // Offline, the name resolves through the cache without a request.
    let before = server.requests().len();
    let resolved = hub::resolve_model(
        REPO,
        &settings(&server, cache.path(), true),
        &mut |_| panic!("no pull"),
        &mut (),
    )
    .expect("resolves offline");
    assert_eq!(resolved, ResolvedModel::Cached(snapshot.clone()));
    let by_commit = format!("{REPO}@{COMMIT}");
    let resolved = hub::resolve_model(
        &by_commit,
        &settings(&server, cache.path(), true),
        &mut |_| panic!("no pull"),
        &mut (),
    )
    .expect("resolves a commit offline");
    assert_eq!(resolved.path(), snapshot);
    assert_eq!(
        server.requests().len(),
        before,
        "offline resolution made requests"
    );

    // A second pull downloads nothing again.
    hub::pull(
        &settings(&server, cache.path(), false),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .unwrap();
    let again: Vec<_> = server.requests()[before..].to_vec();
    assert!(
        again
            .iter()
            .all(|r| !r.starts_with("resolve/") && !r.starts_with("cdn/")),
        "{again:?}"
    );

    let listed = hub::list_cached(cache.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repo, REPO);
    assert_eq!(listed[0].revisions[0].commit, COMMIT);
    assert_eq!(listed[0].revisions[0].refs, vec!["main".to_string()]);
    assert_eq!(listed[0].incomplete, 0);
}

#[test]
fn a_name_missing_from_the_cache_is_pulled_on_first_use_and_announced() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    let mut announced = Vec::new();
    let resolved = hub::resolve_model(
        REPO,
        &settings(&server, cache.path(), false),
        &mut |id| announced.push(id.to_string()),
        &mut (),
    )
    .expect("pulled");
    assert_eq!(announced, vec![REPO.to_string()]);
    assert!(matches!(resolved, ResolvedModel::Pulled(_)));
    assert_eq!(probe_layout(resolved.path()), Some(Layout::HfFolder));
}

#[test]
fn an_interrupted_download_leaves_no_snapshot_and_resumes_with_a_range_request() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    server.knobs.lock().unwrap().cut_next = 1;
    let err = hub::pull(
        &settings(&server, cache.path(), false),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .expect_err("the cut download fails");
    let message = err.to_string();
    assert!(matches!(err, HubError::Truncated { .. }), "{message}");
    assert!(
        message.contains(REPO)
            && message.contains("model.safetensors")
            && message.contains("resume"),
        "{message}"
    );

    // Nothing usable: no snapshot, no ref, the part kept for resuming.
    let repo_dir = repo_dir(cache.path());
    assert!(!repo_dir.join("snapshots").exists() && !repo_dir.join("refs").exists());
    let weights = &server.files["model.safetensors"];
    let part = repo_dir
        .join("blobs")
        .join(format!("{}.incomplete", weights.etag()));
    let have = std::fs::metadata(&part).expect("part kept").len();
    assert!(have > 0 && have < weights.bytes.len() as u64, "{have}");
    let offline = hub::resolve_model(
        REPO,
        &settings(&server, cache.path(), true),
        &mut |_| {},
        &mut (),
    );
    assert!(
        matches!(offline, Err(HubError::Offline { .. })),
        "{offline:?}"
    );

    let snapshot = hub::pull(
        &settings(&server, cache.path(), false),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .expect("resumed");
    let range = format!("range=Some(\"bytes={have}-\")");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with(&format!("cdn/{}", weights.etag())) && r.contains(&range)),
        "no resuming request: {:?}",
        server.requests()
    );
    assert_eq!(
        std::fs::read(snapshot.join("model.safetensors")).unwrap(),
        weights.bytes
    );
    assert!(!part.exists());
}

#[test]
fn a_download_whose_sha256_is_not_the_etag_is_refused_and_deleted() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    server.knobs.lock().unwrap().corrupt = true;
    let err = hub::pull(
        &settings(&server, cache.path(), false),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .expect_err("corrupt download refused");
    let message = err.to_string();
    let weights = &server.files["model.safetensors"];
    assert!(matches!(err, HubError::Integrity { .. }), "{message}");
    assert!(
        message.contains("model.safetensors")
            && message.contains("sha256")
            && message.contains(&weights.etag()),
        "{message}"
    );
    let repo_dir = repo_dir(cache.path());
    let blobs = listing(&repo_dir.join("blobs"));
    assert!(
        blobs.iter().all(|b| !b.starts_with(&weights.etag())),
        "{blobs:?}"
    );
    assert!(!repo_dir.join("snapshots").exists());
}

#[test]
fn hub_error_statuses_name_the_repository_and_write_nothing() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    let pull = |id: &RepoId| {
        hub::pull(
            &settings(&server, cache.path(), false),
            id,
            &PullOptions::default(),
            &mut (),
        )
    };

    let missing = RepoId::parse("clipkit-test/no-such-model").unwrap();
    let err = pull(&missing).unwrap_err();
    assert!(
        matches!(err, HubError::NotFound { .. })
            && err.to_string().contains("clipkit-test/no-such-model"),
        "{err}"
    );
    let err = pull(&RepoId::parse(&format!("{REPO}@no-such-branch")).unwrap()).unwrap_err();
    assert!(err.to_string().contains("revision"), "{err}");

    server.knobs.lock().unwrap().status = Some(500);
    let err = pull(&repo()).unwrap_err();
    assert!(
        matches!(err, HubError::Status { status: 500, .. }) && err.to_string().contains(REPO),
        "{err}"
    );

    server.knobs.lock().unwrap().status = None;
    server.knobs.lock().unwrap().token = Some("secret".into());
    let err = pull(&repo()).unwrap_err();
    assert!(
        matches!(err, HubError::Unauthorized { status: 401, .. })
            && err.to_string().contains("HF_TOKEN"),
        "{err}"
    );
    assert!(
        !repo_dir(cache.path()).exists(),
        "a refused pull wrote to the cache"
    );

    // With the token, the Hub gets it and the storage the redirect leads to does not.
    let with_token = HubSettings {
        token: Some("secret".into()),
        ..settings(&server, cache.path(), false)
    };
    hub::pull(&with_token, &repo(), &PullOptions::default(), &mut ()).expect("pull with token");
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.starts_with("cdn/"))
            .all(|r| r.ends_with("auth=false")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.starts_with("tree/"))
            .any(|r| r.ends_with("auth=true")),
        "{requests:?}"
    );
}

#[test]
fn offline_mode_never_touches_the_network() {
    let server = HubServer::start(&quickstart());
    let cache = tempfile::tempdir().unwrap();
    let err = hub::resolve_model(
        REPO,
        &settings(&server, cache.path(), true),
        &mut |_| panic!("no pull offline"),
        &mut (),
    )
    .unwrap_err();
    assert!(
        matches!(err, HubError::Offline { .. }) && err.to_string().contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    let err = hub::pull(
        &settings(&server, cache.path(), true),
        &repo(),
        &PullOptions::default(),
        &mut (),
    )
    .unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }), "{err}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn a_cache_laid_out_by_huggingface_hub_is_read() {
    // As huggingface_hub.hf_hub_download writes it: blobs named by ETag, refs/main holding
    // the commit without a newline, snapshot entries as relative symlinks to the blobs.
    let cache = tempfile::tempdir().unwrap();
    let repo_dir = cache.path().join("models--openai--clip-vit-base-patch32");
    let commit = "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268";
    std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::create_dir_all(repo_dir.join("snapshots").join(commit)).unwrap();
    std::fs::create_dir_all(repo_dir.join(".no_exist").join(commit)).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    for entry in std::fs::read_dir(quickstart()).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let file = hub_server::HubFile {
            path: String::new(),
            lfs: entry.file_name() == "model.safetensors",
            bytes,
        };
        std::fs::write(repo_dir.join("blobs").join(file.etag()), &file.bytes).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(file.etag()),
            repo_dir
                .join("snapshots")
                .join(commit)
                .join(entry.file_name()),
        )
        .unwrap();
    }
    let settings = HubSettings {
        endpoint: "http://127.0.0.1:9".into(),
        cache_dir: cache.path().to_path_buf(),
        token: None,
        offline: false,
    };
    let resolved = hub::resolve_model(
        "openai/clip-vit-base-patch32",
        &settings,
        &mut |_| panic!("cached"),
        &mut (),
    )
    .expect("read from the cache");
    assert_eq!(
        resolved,
        ResolvedModel::Cached(repo_dir.join("snapshots").join(commit))
    );
    assert_eq!(
        text_embedding(resolved.path()),
        text_embedding(&quickstart())
    );
    let listed = hub::list_cached(cache.path()).unwrap();
    assert_eq!(listed[0].repo, "openai/clip-vit-base-patch32");
    assert_eq!(
        probe_layout(&listed[0].revisions[0].path),
        Some(Layout::HfFolder)
    );
}

#[test]
fn an_existing_path_wins_and_a_bad_spec_is_named() {
    let settings = HubSettings {
        endpoint: "http://127.0.0.1:9".into(),
        cache_dir: PathBuf::from("/nonexistent"),
        token: None,
        offline: true,
    };
    let q = quickstart();
    let resolved =
        hub::resolve_model(q.to_str().unwrap(), &settings, &mut |_| {}, &mut ()).unwrap();
    assert_eq!(resolved, ResolvedModel::Path(q));
    let err = hub::resolve_model("no/such/folder", &settings, &mut |_| {}, &mut ()).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"no/such/folder\": no such file or folder"),
        "{err}"
    );
}
