//! `clipkit index`, `search` and `dupes` on a `postgres://` store: two index processes
//! writing one database at once, one of them killed with -9 and rerun, end with the same
//! index as one clean run into the embedded store; bad locations fail naming the location,
//! never the password. The server comes from `tests/support/pg.rs`.

#[path = "../../../tests/support/pg.rs"]
mod pg;

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{clipkit, model};

/// `n` small PNGs of distinct colours, numbered from `first`.
fn make_images(dir: &Path, first: usize, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in first..first + n {
        let img = image::RgbImage::from_fn(40, 40, |x, y| {
            let band = ((x + y * (i as u32 % 5 + 1)) / 8) % 2;
            image::Rgb([
                (i * 37 % 256) as u8,
                (band * 200) as u8,
                (i * 91 % 256) as u8,
            ])
        });
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
    }
}

fn index_command(folder: &Path, store: &str, model_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
    cmd.arg("index")
        .arg(folder)
        .args(["--index", store, "--model"])
        .arg(model_dir)
        .args(["--batch-size", "2", "--threads", "1"]);
    cmd
}

/// Every indexed path with its score for one query.
fn snapshot(store: &str, model_dir: &Path) -> BTreeMap<String, String> {
    let model_dir = model_dir.display().to_string();
    let out = clipkit(&[
        "search", "a photo", "--index", store, "--model", &model_dir, "--top-k", "1000", "--json",
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

#[test]
fn two_indexers_at_once_and_a_sigkill_lose_nothing_and_duplicate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    make_images(&a, 0, 40);
    make_images(&b, 40, 40);
    let clip = model("clip-a");
    let clean = tmp.path().join("clean").display().to_string();
    let started = Instant::now();
    for folder in [&a, &b] {
        let status = index_command(folder, &clean, &clip).status().unwrap();
        assert!(status.success());
    }
    let one_run = started.elapsed() / 2;

    let store = pg::fresh_location();
    let mut first = index_command(&a, &store, &clip)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let second = index_command(&b, &store, &clip)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both run at once; the first is killed a third of the way through (scaled by a clean
    // run's duration, so that the kill lands inside the run however fast this machine is).
    std::thread::sleep(one_run.mul_f64(0.35));
    let was_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap(); // SIGKILL on Unix
    first.wait().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(was_running, "the first indexer ended before the kill");
    let rerun: [&std::ffi::OsStr; 6] = [
        "index".as_ref(),
        a.as_os_str(),
        "--index".as_ref(),
        store.as_ref(),
        "--model".as_ref(),
        clip.as_os_str(),
    ];
    let rerun = clipkit(&rerun);
    rerun.ok();
    let resumed = snapshot(&store, &clip);
    assert_eq!(resumed.len(), 80);
    assert_eq!(resumed, snapshot(&clean, &clip));

    let dupes = clipkit(&["dupes", "--index", &store, "--json"]).json();
    assert!(dupes["groups"].is_array(), "{dupes}");
}

#[test]
fn an_unreachable_server_fails_naming_the_location_without_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = format!("postgres://me:sesame@127.0.0.1:{port}/photos");
    let clip = model("clip-a").display().to_string();
    let run = clipkit(&["search", "cat", "--index", &store, "--model", &clip]);
    run.assert_fails_naming(&format!("postgres://me@127.0.0.1:{port}/photos"));
    assert!(!run.stderr().contains("sesame"), "{}", run.explain());

    // Another model than the store's is refused, naming the store.
    let store = pg::fresh_location();
    let tmp = tempfile::tempdir().unwrap();
    make_images(tmp.path(), 0, 2);
    let status = index_command(tmp.path(), &store, &model("clip-a"))
        .status()
        .unwrap();
    assert!(status.success());
    let other = model("clip-b").display().to_string();
    clipkit(&["search", "cat", "--index", &store, "--model", &other])
        .assert_fails_naming("schema=");
}
