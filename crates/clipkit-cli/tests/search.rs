//! `clipkit index`, `search` and `dupes` driven as a user drives them, on the random
//! fixture model clip-a and generated images: incremental runs, crashes mid-index, the JSON
//! contract, mixed queries, refusals. On failure each test prints command, stdout, stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn fixture_image(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images")
        .join(name)
}

struct Run {
    command: String,
    output: Output,
}

impl Run {
    fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
    fn ok(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "command failed\n{}",
            self.explain()
        );
        self
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("bad JSON ({e})\n{}", self.explain()))
    }
    fn fails_naming(&self, culprit: &str) {
        assert!(
            !self.output.status.success(),
            "should fail\n{}",
            self.explain()
        );
        assert!(
            self.stderr().contains(culprit),
            "should name {culprit}\n{}",
            self.explain()
        );
        assert!(
            !self.stderr().contains("panicked"),
            "panicked\n{}",
            self.explain()
        );
    }
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
    cmd.args(args).args(["--threads", "2"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn clipkit(args: &[&str]) -> Run {
    clipkit_env(args, &[])
}

fn clipkit_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = command(args, env).output().expect("clipkit runs");
    Run {
        command: format!("clipkit {}", args.join(" ")),
        output,
    }
}

/// Writes `n` small PNGs of distinct colours and patterns into `dir`, in nested folders.
fn make_images(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("set{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        let img = image::RgbImage::from_fn(40, 40, |x, y| {
            let band = ((x + y * (i as u32 % 5 + 1)) / 8) % 2;
            image::Rgb([
                (i * 37 % 256) as u8,
                (band * 200) as u8,
                (i * 91 % 256) as u8,
            ])
        });
        img.save(sub.join(format!("img{i:03}.png"))).unwrap();
    }
}

fn index_args<'a>(
    folder: &'a str,
    store: &'a str,
    model_dir: &'a str,
    batch: &'a str,
) -> Vec<&'a str> {
    vec![
        "index",
        folder,
        "--index",
        store,
        "--model",
        model_dir,
        "--batch-size",
        batch,
    ]
}

/// Every indexed path with its score for one query: what two indexes are compared by.
fn snapshot(store: &str, model_dir: &str) -> BTreeMap<String, String> {
    let out = clipkit(&[
        "search", "a photo", "--index", store, "--model", model_dir, "--top-k", "1000", "--json",
    ])
    .json();
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                format!("{:.5}", r["score"].as_f64().unwrap()),
            )
        })
        .collect()
}

struct Setup {
    _tmp: tempfile::TempDir,
    images: String,
    store: String,
    model: String,
}

fn setup(n: usize) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("photos");
    make_images(&images, n);
    Setup {
        images: images.display().to_string(),
        store: tmp.path().join("index").display().to_string(),
        model: model("clip-a").display().to_string(),
        _tmp: tmp,
    }
}

#[test]
fn index_is_incremental_over_new_changed_moved_and_deleted_files() {
    let s = setup(12);
    std::fs::write(Path::new(&s.images).join("broken.jpg"), b"not an image").unwrap();
    let first = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    first.ok();
    assert!(
        first
            .stderr()
            .contains("13 images found: 12 new or changed embedded"),
        "{}",
        first.explain()
    );
    let status = clipkit(&["index", "--status", "--index", &s.store]);
    assert!(
        status.ok().stdout().contains("images:  12"),
        "{}",
        status.explain()
    );
    assert!(
        status.stdout().contains("broken.jpg"),
        "{}",
        status.explain()
    );

    let again = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    assert!(
        again.ok().stderr().contains("0 new or changed embedded"),
        "{}",
        again.explain()
    );
    assert!(
        again.stderr().contains("12 unchanged"),
        "{}",
        again.explain()
    );
    assert!(
        again.stderr().contains("1 earlier failures unchanged"),
        "{}",
        again.explain()
    );

    let root = Path::new(&s.images);
    std::fs::rename(root.join("set0/img000.png"), root.join("set1/moved.png")).unwrap();
    std::fs::remove_file(root.join("set1/img001.png")).unwrap();
    std::fs::copy(fixture_image("a_input_0.png"), root.join("set2/img002.png")).unwrap();
    std::fs::remove_file(root.join("broken.jpg")).unwrap();
    // An indexed file that turns unreadable leaves the index and is listed as failed.
    std::fs::write(root.join("set2/img005.png"), b"truncated").unwrap();
    let third = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    assert!(
        third.ok().stderr().contains("1 new or changed embedded"),
        "{}",
        third.explain()
    );
    assert!(
        third.stderr().contains("1 moved, 1 removed"),
        "{}",
        third.explain()
    );
    assert!(
        third
            .stderr()
            .contains("1 failed (0 earlier failures unchanged); 10 in the index"),
        "{}",
        third.explain()
    );

    let paths: Vec<String> = snapshot(&s.store, &s.model).into_keys().collect();
    assert_eq!(paths.len(), 10);
    assert!(paths.iter().any(|p| p.ends_with("set1/moved.png")));
    assert!(!paths
        .iter()
        .any(|p| ["img000.png", "img001.png", "img005.png"]
            .iter()
            .any(|gone| p.ends_with(gone))));
    // The moved file kept its vector: same scores as a clean index of the same folder.
    let clean = format!("{}-clean", s.store);
    clipkit(&index_args(&s.images, &clean, &s.model, "4")).ok();
    assert_eq!(snapshot(&s.store, &s.model), snapshot(&clean, &s.model));
    let status = clipkit(&["index", "--status", "--index", &s.store]);
    assert!(
        status.ok().stdout().contains("failed:  1"),
        "{}",
        status.explain()
    );
}

#[test]
fn abort_after_some_batches_then_rerun_equals_a_clean_run() {
    let s = setup(30);
    let crashed = clipkit_env(
        &index_args(&s.images, &s.store, &s.model, "4"),
        &[("CLIPKIT_TEST_ABORT_AFTER_BATCHES", "3")],
    );
    assert!(
        !crashed.output.status.success(),
        "should have aborted\n{}",
        crashed.explain()
    );
    let status = clipkit(&["index", "--status", "--index", &s.store]);
    assert!(
        status.ok().stdout().contains("images:  12"),
        "3 batches of 4 kept\n{}",
        status.explain()
    );
    let rerun = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    assert!(
        rerun.ok().stderr().contains("18 new or changed embedded"),
        "{}",
        rerun.explain()
    );
    assert!(
        rerun.stderr().contains("12 unchanged"),
        "{}",
        rerun.explain()
    );
    let clean = format!("{}-clean", s.store);
    clipkit(&index_args(&s.images, &clean, &s.model, "4")).ok();
    assert_eq!(snapshot(&s.store, &s.model), snapshot(&clean, &s.model));
}

#[test]
fn sigkill_at_any_moment_then_rerun_equals_a_clean_run() {
    let s = setup(150);
    // A clean index first; its duration scales the kill times, so the kills land inside the
    // runs however fast this machine is (fixed delays let quick machines finish first).
    let clean = format!("{}-clean", s.store);
    let started = Instant::now();
    clipkit(&index_args(&s.images, &clean, &s.model, "1")).ok();
    let full_run = started.elapsed();
    // Kill real processes at growing moments, each time resuming the same index.
    let mut interrupted = 0;
    for fraction in [0.05, 0.1, 0.15, 0.2, 0.25] {
        let mut child = command(&index_args(&s.images, &s.store, &s.model, "1"), &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} runs were still going when killed (a full run took {full_run:?})"
    );
    clipkit(&index_args(&s.images, &s.store, &s.model, "1")).ok();
    let (resumed, fresh) = (snapshot(&s.store, &s.model), snapshot(&clean, &s.model));
    assert_eq!(resumed.len(), 150);
    assert_eq!(resumed, fresh);
}

#[test]
fn search_json_contract_top_k_min_score_and_mixed_queries() {
    let s = setup(9);
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    let base = [
        "--index",
        s.store.as_str(),
        "--model",
        s.model.as_str(),
        "--json",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["search"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&base);
        clipkit(&args).json()
    };
    let out = run(&["red square", "--top-k", "3"]);
    let obj = out.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        vec!["query", "results", "unknown_words"]
    );
    assert_eq!(out["unknown_words"], serde_json::json!([]));
    assert_eq!(
        out["query"],
        serde_json::json!([{"text": "red square", "weight": 1.0}])
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["path", "score"]);
        assert!(r["path"].as_str().unwrap().starts_with(&s.images));
    }
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    let floor = format!("{}", scores[1]);
    let filtered = run(&["red square", "--top-k", "3", "--min-score", &floor]);
    assert_eq!(filtered["results"].as_array().unwrap().len(), 2);

    // Mixed and weighted queries parse and differ from the plain one.
    let mixed = run(&[r#""red square" +0.5"blue" -"green""#, "--top-k", "9"]);
    let bare = run(&["beach +sunset -people", "--top-k", "9"]);
    assert_eq!(mixed["results"].as_array().unwrap().len(), 9);
    assert_ne!(mixed, bare);

    // An indexed image finds itself first.
    let me = format!("{}/set1/img004.png", s.images);
    let by_image = run(&["--image", &me, "--top-k", "1"]);
    assert_eq!(by_image["results"][0]["path"].as_str().unwrap(), me);
    assert!((by_image["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    let bad = clipkit(&[
        "search",
        "\"unclosed",
        "--index",
        &s.store,
        "--model",
        &s.model,
    ]);
    bad.fails_naming("never closed");
}

#[test]
fn dupes_groups_copies_of_one_image() {
    let s = setup(6);
    let root = Path::new(&s.images);
    std::fs::copy(root.join("set0/img003.png"), root.join("copy-of-3.png")).unwrap();
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    let out = clipkit(&[
        "dupes",
        "--index",
        &s.store,
        "--threshold",
        "0.9999",
        "--json",
    ])
    .json();
    let groups = out["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{out}");
    let mut members: Vec<&str> = groups[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    members.sort();
    assert!(
        members[0].ends_with("copy-of-3.png") && members[1].ends_with("set0/img003.png"),
        "{members:?}"
    );
}

/// A similarity floor or weight that is no number in range is refused before anything is
/// read: NaN once made `dupes` join every image into one group.
#[test]
fn similarity_flags_refuse_what_no_similarity_can_be() {
    let s = setup(2);
    for value in ["nan", "2", "-1.5", "inf"] {
        clipkit(&["dupes", "--index", &s.store, "--threshold", value]).fails_naming(value);
        let search = ["search", "cat", "--index", &s.store, "--model", &s.model];
        clipkit(&[&search[..], &["--min-score", value]].concat()).fails_naming(value);
    }
    for value in ["nan", "inf"] {
        let args = [
            "search",
            "cat",
            "--image",
            "x.png",
            "--image-weight",
            value,
            "--index",
            &s.store,
            "--model",
            &s.model,
        ];
        clipkit(&args).fails_naming("not a finite number");
    }
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    let everything = clipkit(&["dupes", "--index", &s.store, "--threshold", "-1", "--json"]).json();
    assert_eq!(
        everything["groups"].as_array().map(Vec::len),
        Some(1),
        "{everything}"
    );
}

#[test]
fn an_index_refuses_another_model_and_a_corrupt_store_names_its_file() {
    let s = setup(4);
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    let other = model("clip-b").display().to_string();
    clipkit(&["search", "cat", "--index", &s.store, "--model", &other])
        .fails_naming("was made with model");
    clipkit(&index_args(&s.images, &s.store, &other, "4")).fails_naming("was made with model");

    let vectors = Path::new(&s.store).join("vectors.0.f32");
    std::fs::write(&vectors, b"garbage").unwrap();
    clipkit(&["search", "cat", "--index", &s.store, "--model", &s.model])
        .fails_naming("vectors.0.f32");
    clipkit(&[
        "search",
        "cat",
        "--index",
        "/nonexistent/index",
        "--model",
        &s.model,
    ])
    .fails_naming("clipkit index");
}

#[test]
fn index_of_a_single_image_file_indexes_that_file_and_refuses_other_files() {
    let s = setup(3);
    let one = Path::new(&s.images).join("set1/img001.png");
    let run = clipkit(&index_args(one.to_str().unwrap(), &s.store, &s.model, "4"));
    assert!(
        run.ok()
            .stderr()
            .contains("1 images found: 1 new or changed embedded"),
        "{}",
        run.explain()
    );
    let paths: Vec<String> = snapshot(&s.store, &s.model).into_keys().collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("set1/img001.png"), "{paths:?}");
    // Indexing the folder afterwards keeps that item (unchanged) and adds the rest.
    let folder = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    assert!(
        folder.ok().stderr().contains("2 new or changed embedded"),
        "{}",
        folder.explain()
    );
    assert!(
        folder.stderr().contains("1 unchanged"),
        "{}",
        folder.explain()
    );
    // A file by name that is not an image is refused, saying why.
    std::fs::write(Path::new(&s.images).join("notes.txt"), b"hello").unwrap();
    let notes = Path::new(&s.images).join("notes.txt");
    clipkit(&index_args(
        notes.to_str().unwrap(),
        &s.store,
        &s.model,
        "4",
    ))
    .fails_naming("not an image file name");
}

#[test]
fn touching_a_file_is_not_a_move() {
    let s = setup(4);
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    let file = std::fs::File::options()
        .write(true)
        .open(Path::new(&s.images).join("set0/img000.png"))
        .unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    file.set_modified(later).unwrap();
    drop(file);
    let again = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    let stderr = again.ok().stderr();
    assert!(
        stderr.contains("0 new or changed embedded")
            && stderr.contains("3 unchanged, 1 touched (same content), 0 moved, 0 removed"),
        "{}",
        again.explain()
    );
    // The refreshed record makes the next run see it as unchanged.
    let third = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    assert!(
        third.ok().stderr().contains("4 unchanged, 0 touched"),
        "{}",
        third.explain()
    );
}

#[cfg(unix)]
#[test]
fn symbolic_links_inside_a_folder_are_reported_not_followed() {
    let s = setup(3);
    let outside = Path::new(&s.images).parent().unwrap().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(fixture_image("a_input_0.png"), outside.join("target.png")).unwrap();
    let root = Path::new(&s.images);
    std::os::unix::fs::symlink(outside.join("target.png"), root.join("link.png")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linked-folder")).unwrap();
    let run = clipkit(&index_args(&s.images, &s.store, &s.model, "4"));
    let stderr = run.ok().stderr();
    assert!(
        stderr.contains("3 images found")
            && stderr.contains("2 symbolic links not followed")
            && stderr.contains("link.png")
            && stderr.contains("linked-folder"),
        "{}",
        run.explain()
    );
    let paths: Vec<String> = snapshot(&s.store, &s.model).into_keys().collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("link")), "{paths:?}");
}

#[test]
fn a_vanished_folder_is_pruned_by_name_and_an_existing_one_is_refused() {
    let s = setup(6);
    let tmp = Path::new(&s.images).parent().unwrap().to_path_buf();
    let other = tmp.join("other");
    make_images(&other, 2);
    clipkit(&index_args(&s.images, &s.store, &s.model, "4")).ok();
    clipkit(&index_args(
        other.to_str().unwrap(),
        &s.store,
        &s.model,
        "4",
    ))
    .ok();
    clipkit(&["index", "--prune", &s.images, "--index", &s.store]).fails_naming("still exists");

    std::fs::remove_dir_all(&s.images).unwrap();
    // A relative spelling with `..` names the same folder.
    let relative = format!("{}/../photos", other.display());
    let run = clipkit(&["index", "--prune", &relative, "--index", &s.store]);
    assert!(
        run.ok()
            .stderr()
            .contains("pruned: 6 items removed, 0 failures forgotten; 2 in the index"),
        "{}",
        run.explain()
    );
    let paths: Vec<String> = snapshot(&s.store, &s.model).into_keys().collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.iter().all(|p| p.contains("/other/")), "{paths:?}");
}

#[test]
fn an_index_location_with_an_unknown_scheme_is_refused_naming_it() {
    let s = setup(1);
    clipkit(&[
        "search",
        "cat",
        "--index",
        "qdrant://db.example/clips",
        "--model",
        &s.model,
    ])
    .fails_naming("qdrant://");
}

/// Copies the files of `from` into `to` (nested folders), keeping each file's mtime, as a
/// second host's mount of one share shows them.
fn mirror(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            mirror(&entry.path(), &target);
            continue;
        }
        std::fs::copy(entry.path(), &target).unwrap();
        let mtime = entry.metadata().unwrap().modified().unwrap();
        let file = std::fs::File::options().write(true).open(&target).unwrap();
        file.set_modified(mtime).unwrap();
    }
}

#[test]
fn a_share_mounted_at_two_places_is_one_collection_under_a_named_root() {
    let s = setup(6);
    let tmp = tempfile::tempdir().unwrap();
    let mount_b = tmp.path().join("mnt/photos");
    mirror(Path::new(&s.images), &mount_b);
    let root_a = format!("photos={}", s.images);
    let root_b = format!("photos={}", mount_b.display());
    let index = |root: &str, folder: &str| {
        let mut args = index_args(folder, &s.store, &s.model, "4");
        args.extend(["--root", root]);
        clipkit(&args).ok().stderr()
    };
    let first = index(&root_a, &s.images);
    assert!(first.contains("6 new or changed embedded"), "{first}");
    let second = index(&root_b, mount_b.to_str().unwrap());
    assert!(
        second.contains("0 new or changed embedded") && second.contains("6 in the index"),
        "host B re-embedded host A's files: {second}"
    );
    let search = |root: &str| {
        let out = clipkit(&[
            "search", "a photo", "--index", &s.store, "--model", &s.model, "--root", root, "--json",
        ])
        .json();
        let paths: Vec<String> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect();
        paths
    };
    let canonical_b = mount_b.canonicalize().unwrap();
    let from_b = search(&root_b);
    assert_eq!(from_b.len(), 6);
    assert!(from_b
        .iter()
        .all(|p| Path::new(p).starts_with(&canonical_b)));
    let from_a = search(&root_a);
    let canonical_a = Path::new(&s.images).canonicalize().unwrap();
    assert!(from_a
        .iter()
        .all(|p| Path::new(p).starts_with(&canonical_a)));
    let keys = clipkit(&[
        "search", "a photo", "--index", &s.store, "--model", &s.model, "--json",
    ])
    .json();
    assert!(keys["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["path"].as_str().unwrap().starts_with("photos:set")));

    // A folder of the share that is gone is pruned by its path on either host.
    std::fs::remove_dir_all(mount_b.join("set0")).unwrap();
    let gone = mount_b.join("set0");
    let pruned = clipkit(&[
        "index",
        "--prune",
        gone.to_str().unwrap(),
        "--index",
        &s.store,
        "--root",
        &root_b,
    ])
    .ok()
    .stderr();
    assert!(pruned.contains("2 items removed"), "{pruned}");

    for (bad, culprit) in [
        ("photos", "NAME=DIR"),
        ("a/b=/tmp", "root name"),
        ("photos=/no/such/folder", "/no/such/folder"),
    ] {
        clipkit(&[
            "search", "a photo", "--index", &s.store, "--model", &s.model, "--root", bad,
        ])
        .fails_naming(culprit);
    }
}
