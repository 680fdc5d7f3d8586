//! `clipkit serve` as a process: binds loopback by default, answers, and on SIGTERM stops
//! cleanly (exit status 0), even when the signal comes the moment it starts listening;
//! answers only loopback and allowed host names; warns when it listens beyond loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Indexes three fixture photos into `tmp/index` with the fixture model; returns the index.
fn indexed_photos(tmp: &std::path::Path) -> PathBuf {
    let photos = tmp.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["photo.webp", "tall_rgb.jpg", "wide_rgb.png"] {
        std::fs::copy(fixtures().join("images").join(name), photos.join(name)).unwrap();
    }
    let model = fixtures().join("models/clip-a");
    let index = tmp.join("index");
    let status = Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .args([
            "index",
            photos.to_str().unwrap(),
            "--index",
            index.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    index
}

/// Starts `clipkit serve` on `index` and a free port, with `extra` arguments; returns it and
/// the address from its first line, once it is listening.
fn start_server(index: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let model = fixtures().join("models/clip-a");
    let mut server = Command::new(env!("CARGO_BIN_EXE_clipkit"))
        .args([
            "serve",
            "--port",
            "0",
            "--index",
            index.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (server, addr)
}

/// `GET path` on `addr` naming `host` in the Host header: the whole response.
fn get_as(addr: &str, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Sends SIGTERM to `server` and asserts it stops cleanly, saying so; returns its stderr.
fn stop_cleanly(mut server: Child) -> String {
    // SAFETY: sending a signal to the child we started.
    let sent = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = server.wait().unwrap();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    stderr
}

#[test]
fn serve_binds_loopback_answers_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_photos(tmp.path());
    let (server, addr) = start_server(&index, &[]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"images\":3"), "{response}");

    stop_cleanly(server);
}

#[test]
fn sigterm_the_moment_serve_listens_still_stops_it_cleanly() {
    // The shutdown handlers are installed before the port is announced; installed lazily,
    // a signal this early killed the process in about half of the runs.
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_photos(tmp.path());
    for _ in 0..5 {
        let (server, _) = start_server(&index, &[]);
        stop_cleanly(server);
    }
}

#[test]
fn serve_answers_loopback_and_allowed_hosts_only() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_photos(tmp.path());
    let (server, addr) = start_server(&index, &["--allow-host", "Photos.LAN"]);
    for host in [addr.as_str(), "localhost:8765", "photos.lan:8765"] {
        let response = get_as(&addr, host, "/api/health");
        assert!(response.starts_with("HTTP/1.1 200"), "{host}: {response}");
    }
    let response = get_as(&addr, "rebind.evil.example", "/api/health");
    assert!(response.starts_with("HTTP/1.1 421"), "{response}");
    assert!(response.contains("{\"error\":"), "{response}");
    assert!(!response.contains("\"images\""), "{response}");
    let stderr = stop_cleanly(server);
    assert!(!stderr.contains("no authentication"), "{stderr}");
}

#[test]
fn serve_beyond_loopback_warns_that_the_library_is_exposed() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_photos(tmp.path());
    let (server, addr) = start_server(&index, &["--host", "0.0.0.0"]);
    let port = addr
        .strip_prefix("0.0.0.0:")
        .unwrap_or_else(|| panic!("{addr}"));
    let local = format!("127.0.0.1:{port}");
    let response = get_as(&local, &local, "/api/health");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let stderr = stop_cleanly(server);
    assert!(
        stderr.to_lowercase().contains("warn") && stderr.contains("no authentication"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_malformed_allow_host_and_a_zero_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_clipkit"))
            .args([
                "serve",
                "--index",
                tmp.path().join("none").to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--allow-host", "http://photos.lan:8080"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--allow-host") && stderr.contains("not a host name"),
        "{stderr}"
    );
    let out = run(&["--header-timeout", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
