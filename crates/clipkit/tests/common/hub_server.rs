//! A loopback HTTP server that answers as the HuggingFace Hub does, serving one model
//! repository built from a fixture folder: the revision and tree APIs, `resolve` with
//! `ETag` / `X-Linked-Etag` / `X-Repo-Commit` / `X-Linked-Size`, LFS files redirected to a
//! storage route as the Hub redirects them to its CDN, and `Range` requests. Knobs make it
//! cut a download mid-way, corrupt one, refuse a token-less client, or answer every API
//! call with one status. Shared by the library's and the CLI's tests (`#[path]`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The repository the server holds.
pub const REPO: &str = "clipkit-test/quickstart";
/// Its only commit, which `main` points at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// One file of the repository.
#[derive(Clone)]
pub struct HubFile {
    /// Path in the repository.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
    /// Stored in LFS (ETag = sha256) or in git (ETag = git blob sha1).
    pub lfs: bool,
}

impl HubFile {
    /// The ETag the Hub gives: sha256 for LFS files, git's blob sha1 otherwise.
    pub fn etag(&self) -> String {
        if self.lfs {
            format!("{:x}", Sha256::digest(&self.bytes))
        } else {
            let mut h = Sha1::new();
            h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
            h.update(&self.bytes);
            format!("{:x}", h.finalize())
        }
    }
}

/// How the server misbehaves; all off by default.
#[derive(Default)]
pub struct Knobs {
    /// This many coming LFS downloads stop after half the bytes (Content-Length promised).
    pub cut_next: usize,
    /// LFS downloads have one byte changed.
    pub corrupt: bool,
    /// Every API call answers this status.
    pub status: Option<u16>,
    /// When set, requests without `Authorization: Bearer TOKEN` get 401.
    pub token: Option<String>,
}

#[derive(Clone)]
struct Hub {
    files: Arc<BTreeMap<String, HubFile>>,
    knobs: Arc<Mutex<Knobs>>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The running server; it stops when dropped.
pub struct HubServer {
    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub endpoint: String,
    /// The repository's files by path.
    pub files: Arc<BTreeMap<String, HubFile>>,
    /// What to get wrong.
    pub knobs: Arc<Mutex<Knobs>>,
    /// One line per request: `PATH range=RANGE auth=BOOL`.
    pub log: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl HubServer {
    /// Serves `model_dir`'s files as the repository (`model.safetensors` in LFS), plus a
    /// TensorFlow and a pickled duplicate of the weights (LFS, which clipkit skips) and a
    /// nested text file.
    pub fn start(model_dir: &Path) -> HubServer {
        let mut files = BTreeMap::new();
        let mut add = |path: &str, bytes: Vec<u8>, lfs: bool| {
            files.insert(
                path.to_string(),
                HubFile {
                    path: path.into(),
                    bytes,
                    lfs,
                },
            );
        };
        for entry in std::fs::read_dir(model_dir).expect("fixture folder") {
            let entry = entry.expect("fixture entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let lfs = name.ends_with(".safetensors");
            add(
                &name,
                std::fs::read(entry.path()).expect("fixture file"),
                lfs,
            );
        }
        add("tf_model.h5", vec![7; 1000], true);
        add("pytorch_model.bin", vec![8; 1000], true);
        add("notes/about.txt", b"a nested file\n".to_vec(), false);
        let hub = Hub {
            files: Arc::new(files),
            knobs: Arc::default(),
            log: Arc::default(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/api/models/{org}/{name}/revision/{rev}", get(revision))
            .route("/api/models/{org}/{name}/tree/{rev}", get(tree))
            .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
            .route("/cdn/{sha}", get(cdn))
            .with_state(hub.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        HubServer {
            endpoint,
            files: hub.files,
            knobs: hub.knobs,
            log: hub.log,
            _runtime: runtime,
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Hub {
    /// Logs the request; an error response when the knobs say so.
    fn gate(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let range = headers.get("range").and_then(|v| v.to_str().ok());
        self.log
            .lock()
            .unwrap()
            .push(format!("{path} range={range:?} auth={}", auth.is_some()));
        let knobs = self.knobs.lock().unwrap();
        if let Some(token) = &knobs.token {
            if auth != Some(format!("Bearer {token}").as_str()) {
                return Some(StatusCode::UNAUTHORIZED.into_response());
            }
        }
        None
    }

    fn api_status(&self) -> Option<Response> {
        let status = self.knobs.lock().unwrap().status?;
        Some((StatusCode::from_u16(status).unwrap(), "{\"error\":\"no\"}").into_response())
    }

    fn known(&self, org: &str, name: &str, rev: &str) -> bool {
        format!("{org}/{name}") == REPO && (rev == "main" || rev == COMMIT)
    }
}

async fn revision(
    State(hub): State<Hub>,
    UrlPath((org, name, rev)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = hub
        .gate(&format!("revision/{rev}"), &headers)
        .or_else(|| hub.api_status())
    {
        return r;
    }
    if !hub.known(&org, &name, &rev) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let siblings: Vec<_> = hub
        .files
        .keys()
        .map(|p| serde_json::json!({"rfilename": p}))
        .collect();
    axum::Json(serde_json::json!({"id": REPO, "sha": COMMIT, "siblings": siblings})).into_response()
}

async fn tree(
    State(hub): State<Hub>,
    UrlPath((org, name, rev)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = hub
        .gate(&format!("tree/{rev}"), &headers)
        .or_else(|| hub.api_status())
    {
        return r;
    }
    if !hub.known(&org, &name, &rev) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut entries = vec![
        serde_json::json!({"type": "directory", "oid": "0".repeat(40), "size": 0, "path": "notes"}),
    ];
    for file in hub.files.values() {
        let git = HubFile {
            lfs: false,
            ..file.clone()
        };
        let mut entry = serde_json::json!({
            "type": "file", "oid": git.etag(), "size": file.bytes.len(), "path": file.path,
        });
        if file.lfs {
            entry["oid"] = serde_json::json!("f".repeat(40));
            entry["size"] = serde_json::json!(134);
            entry["lfs"] = serde_json::json!({"oid": file.etag(), "size": file.bytes.len(), "pointerSize": 134});
        }
        entries.push(entry);
    }
    axum::Json(entries).into_response()
}

async fn resolve(
    State(hub): State<Hub>,
    UrlPath((org, name, rev, file)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = hub.gate(&format!("resolve/{file}"), &headers) {
        return r;
    }
    let Some(entry) = hub
        .files
        .get(&file)
        .filter(|_| hub.known(&org, &name, &rev))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if entry.lfs {
        // As the Hub: a redirect to storage on another host (here `localhost` for
        // 127.0.0.1), carrying the LFS file's sha256 and size.
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let storage = host.replace("127.0.0.1", "localhost");
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("http://{storage}/cdn/{}", entry.etag()))
            .header("x-linked-etag", format!("\"{}\"", entry.etag()))
            .header("x-linked-size", entry.bytes.len())
            .header("x-repo-commit", COMMIT)
            .header("etag", "\"pointer-etag\"")
            .body(axum::body::Body::empty())
            .unwrap();
    }
    ranged(
        &entry.bytes,
        &headers,
        &[
            ("etag", format!("\"{}\"", entry.etag())),
            ("x-repo-commit", COMMIT.into()),
        ],
        false,
    )
}

async fn cdn(
    State(hub): State<Hub>,
    UrlPath(sha): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = hub.gate(&format!("cdn/{sha}"), &headers) {
        // Storage does not want the Hub's token; the gate's 401 only applies to the Hub.
        if headers.get("authorization").is_some() {
            return r;
        }
    }
    let Some(file) = hub.files.values().find(|f| f.lfs && f.etag() == sha) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (cut, corrupt) = {
        let mut knobs = hub.knobs.lock().unwrap();
        let cut = knobs.cut_next > 0;
        knobs.cut_next = knobs.cut_next.saturating_sub(1);
        (cut, knobs.corrupt)
    };
    let mut bytes = file.bytes.clone();
    if corrupt {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    ranged(
        &bytes,
        &headers,
        &[("etag", "\"storage-etag\"".into())],
        cut,
    )
}

/// 200 with the bytes, or 206 with those from a `Range: bytes=N-`; when `cut`, half the
/// body is sent under a Content-Length promising all of it, then the connection drops.
fn ranged(bytes: &[u8], headers: &HeaderMap, extra: &[(&str, String)], cut: bool) -> Response {
    let from = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let mut builder = Response::builder();
    for (name, value) in extra {
        builder = builder.header(*name, value);
    }
    let body = match from {
        Some(from) if from < bytes.len() => {
            builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
                "content-range",
                format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len()),
            );
            &bytes[from..]
        }
        _ => bytes,
    };
    builder = builder.header("content-length", body.len());
    if !cut {
        return builder.body(axum::body::Body::from(body.to_vec())).unwrap();
    }
    // Half the body, then an error: hyper drops the connection mid-body.
    let half = bytes::Bytes::copy_from_slice(&body[..body.len() / 2]);
    let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
    let chunks = futures_util::stream::iter(vec![Ok(half), Err(broken)]);
    builder.body(axum::body::Body::from_stream(chunks)).unwrap()
}
