//! `clipkit models pull|list`, `--model ORG/NAME` through the Hub cache, against the
//! loopback Hub; and the warnings of a model that knows only the shapes world.

mod common;
#[path = "../../clipkit/tests/common/hub_server.rs"]
mod hub_server;

use std::path::Path;
use std::process::Command;

use common::{model, Run};
use hub_server::{HubServer, COMMIT, REPO};

/// Runs `clipkit ARGS...` with the Hub at `endpoint` and its cache under `hf_home`.
fn clipkit_hub(args: &[&str], endpoint: &str, hf_home: &Path, offline: bool) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipkit"));
    cmd.args(args)
        .env("CLIPKIT_HOME", hf_home.join("clipkit-home"))
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGINGFACE_HUB_CACHE");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    } else {
        cmd.env_remove("HF_HUB_OFFLINE");
    }
    let output = cmd.output().expect("clipkit runs");
    Run {
        command: format!("HF_HOME={} clipkit {}", hf_home.display(), args.join(" ")),
        output,
    }
}

#[test]
fn pull_list_and_use_a_model_by_name_offline() {
    let server = HubServer::start(&model("quickstart"));
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str], offline| clipkit_hub(args, &server.endpoint, home.path(), offline);

    let pulled = run(&["models", "pull", REPO], false);
    pulled.ok();
    let snapshot = home
        .path()
        .join("hub/models--clipkit-test--quickstart/snapshots")
        .join(COMMIT);
    assert_eq!(
        pulled.stdout().trim(),
        snapshot.display().to_string(),
        "{}",
        pulled.explain()
    );

    let listed = run(&["models", "list", "--json"], true).json();
    assert_eq!(listed["models"][0]["repo"], REPO);
    assert_eq!(listed["models"][0]["revisions"][0]["layout"], "huggingface");
    assert_eq!(listed["models"][0]["revisions"][0]["refs"][0], "main");
    let table = run(&["models", "list"], true);
    assert!(
        table.ok().stdout().contains("yes (huggingface)"),
        "{}",
        table.explain()
    );

    // By name, offline: the same numbers as the folder itself, and a warning naming the
    // words the quickstart model cannot represent.
    let quickstart = model("quickstart");
    let embed = |model: &str| {
        let texts = ["--text", "a red circle", "--text", "a dog on a beach"];
        run(
            &[&["embed", "--model", model, "--json"][..], &texts].concat(),
            true,
        )
    };
    let (by_name, by_path) = (embed(REPO), embed(quickstart.to_str().unwrap()));
    let (by_name_json, by_path_json) = (by_name.json(), by_path.json());
    assert_eq!(by_name_json["texts"], by_path_json["texts"]);
    assert_eq!(
        by_name_json["texts"][0]["unknown_words"],
        serde_json::json!([])
    );
    assert_eq!(
        by_name_json["texts"][1]["unknown_words"],
        serde_json::json!(["dog", "beach"])
    );
    assert!(
        by_name.stderr().contains("\"dog\", \"beach\"")
            && by_name.stderr().contains("clipkit models pull"),
        "{}",
        by_name.explain()
    );
}

#[test]
fn a_name_not_in_the_cache_is_pulled_on_first_use_unless_offline() {
    let server = HubServer::start(&model("quickstart"));
    let home = tempfile::tempdir().unwrap();
    let args = [
        "tokenize",
        "--model",
        REPO,
        "--text",
        "a red circle",
        "--json",
    ];
    let offline = clipkit_hub(&args, &server.endpoint, home.path(), true);
    offline.assert_fails_naming(REPO);
    assert!(
        offline.stderr().contains("HF_HUB_OFFLINE"),
        "{}",
        offline.explain()
    );
    assert!(server.requests().is_empty());

    let first = clipkit_hub(&args, &server.endpoint, home.path(), false);
    first.json();
    assert!(
        first.stderr().contains("not in the Hub cache") && first.stderr().contains("downloading"),
        "{}",
        first.explain()
    );
}

#[test]
fn hub_failures_exit_non_zero_naming_the_repository() {
    let server = HubServer::start(&model("quickstart"));
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| clipkit_hub(args, &server.endpoint, home.path(), false);

    run(&["models", "pull", "clipkit-test/missing"]).assert_fails_naming("clipkit-test/missing");
    run(&["models", "pull", "not a name"]).assert_fails_naming("not a name");
    server.knobs.lock().unwrap().status = Some(500);
    let failed = run(&["models", "pull", REPO]);
    failed.assert_fails_naming(REPO);
    assert!(failed.stderr().contains("500"), "{}", failed.explain());
    server.knobs.lock().unwrap().status = None;
    server.knobs.lock().unwrap().cut_next = 1;
    let cut = run(&["models", "pull", REPO]);
    cut.assert_fails_naming("model.safetensors");
    assert!(cut.stderr().contains("resume"), "{}", cut.explain());
    // Nothing usable was left: the name does not resolve offline.
    clipkit_hub(
        &["tokenize", "--model", REPO, "--text", "x"],
        &server.endpoint,
        home.path(),
        true,
    )
    .assert_fails_naming("HF_HUB_OFFLINE");
    run(&["models", "pull", REPO]).ok();
}

#[test]
fn a_shapes_only_model_says_what_it_cannot_read() {
    let home = tempfile::tempdir().unwrap();
    let quickstart = model("quickstart");
    let quickstart = quickstart.to_str().unwrap();
    let images = home.path().join("pictures");
    std::fs::create_dir(&images).unwrap();
    for name in ["a_input_0.png", "b_input_1.png"] {
        std::fs::copy(
            common::fixtures().join("images").join(name),
            images.join(name),
        )
        .unwrap();
    }
    let index = home.path().join("index");
    let (images, index) = (images.to_str().unwrap(), index.to_str().unwrap());
    let run = |args: &[&str]| clipkit_hub(args, "http://127.0.0.1:9", home.path(), true);

    let indexed = run(&["index", images, "--model", quickstart, "--index", index]);
    let note = "knows only the shapes world";
    assert_eq!(
        indexed.ok().stderr().matches(note).count(),
        1,
        "{}",
        indexed.explain()
    );
    assert!(
        indexed.stderr().contains("clipkit models pull"),
        "{}",
        indexed.explain()
    );

    let search = run(&[
        "search", "a", "dog", "--model", quickstart, "--index", index, "--json",
    ]);
    assert_eq!(
        search.json()["unknown_words"],
        serde_json::json!(["dog"]),
        "{}",
        search.explain()
    );
    assert!(search.stderr().contains("\"dog\""), "{}", search.explain());

    let image = common::fixtures().join("images/a_input_0.png");
    let classify = run(&[
        "classify",
        "--model",
        quickstart,
        "--image",
        image.to_str().unwrap(),
        "--label",
        "red circle",
        "--label",
        "zebra",
        "--json",
    ]);
    assert_eq!(
        classify.json()["unknown_words"],
        serde_json::json!(["zebra"]),
        "{}",
        classify.explain()
    );
    let known = run(&[
        "classify",
        "--model",
        quickstart,
        "--image",
        image.to_str().unwrap(),
        "--label",
        "red circle",
        "--json",
    ]);
    assert_eq!(known.json()["unknown_words"], serde_json::json!([]));
    assert!(!known.stderr().contains("warning"), "{}", known.explain());
}
