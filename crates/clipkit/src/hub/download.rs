//! `pull`: a model repository at a revision into the cache, verified, resumable.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::cache::{is_commit, RepoCache};
use super::error::HubError;
use super::http::{encode, HubClient};
use super::repo_id::{RepoId, DEFAULT_REVISION};
use super::settings::HubSettings;

/// What a pull reports as it goes; every method does nothing unless implemented.
pub trait PullProgress {
    /// The files to fetch and their total size in bytes (files already cached included).
    fn start(&mut self, _files: usize, _total_bytes: u64) {}
    /// `bytes` more are in the cache (downloaded, or found there).
    fn advance(&mut self, _bytes: u64) {}
}

/// No progress report.
impl PullProgress for () {}

/// Which files of a repository [`pull`] fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Every file of the repository, like `huggingface_hub.snapshot_download`. Default
    /// `false`: skip weights for other frameworks (TensorFlow `.h5`, Flax `.msgpack`, ONNX,
    /// `.ot`, GGUF) and pickled PyTorch weights (`.bin`, `.pt`, `.pth`, `.ckpt`) in a folder
    /// that also has `.safetensors` — the duplicates clipkit never reads.
    pub all_files: bool,
}

/// `GET /api/models/{repo}/revision/{rev}`: the fields used.
#[derive(Deserialize)]
struct RevisionInfo {
    sha: Option<String>,
}

/// One entry of `GET /api/models/{repo}/tree/{commit}?recursive=true`.
#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    oid: Option<String>,
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    oid: String,
    size: u64,
}

/// A file to fetch: its ETag is its blob's name and the hash its contents must have.
struct RemoteFile {
    path: String,
    size: u64,
    etag: String,
    lfs: bool,
}

/// Downloads `id` (all the files clipkit may read, see [`PullOptions`]) into the cache and
/// returns its snapshot folder. Files already cached are not downloaded again; an
/// interrupted download resumes. The snapshot links and the ref are written last, so a
/// pull that fails leaves no usable snapshot, only verified blobs and resumable parts.
pub fn pull(
    settings: &HubSettings,
    id: &RepoId,
    options: &PullOptions,
    progress: &mut dyn PullProgress,
) -> Result<PathBuf, HubError> {
    if settings.offline {
        return Err(HubError::Offline {
            repo: id.to_string(),
            cache: settings.cache_dir.clone(),
        });
    }
    let client = HubClient::new(settings, &id.repo, id.revision != DEFAULT_REVISION);
    let url = client.url(&format!(
        "api/models/{}/revision/{}",
        id.repo,
        encode(&id.revision, false)
    ));
    let info: RevisionInfo = client.get_json(&url)?;
    let commit = info
        .sha
        .filter(|sha| is_commit(sha))
        .ok_or_else(|| HubError::Protocol {
            repo: id.repo.clone(),
            url: url.clone(),
            message: "no commit hash (`sha`) in the revision's information".into(),
        })?;
    let url = client.url(&format!(
        "api/models/{}/tree/{commit}?recursive=true",
        id.repo
    ));
    let tree: Vec<TreeEntry> = client.get_json(&url)?;
    let mut files = Vec::new();
    for entry in tree.into_iter().filter(|e| e.kind == "file") {
        files.push(remote_file(entry, &id.repo, &url)?);
    }
    if !options.all_files {
        files = clipkit_files(files);
    }

    let cache = RepoCache::new(&settings.cache_dir, &id.repo);
    progress.start(files.len(), files.iter().map(|f| f.size).sum());
    for file in &files {
        fetch(&client, &cache, &id.repo, &commit, file, progress)?;
    }
    let snapshot = cache.snapshot(&commit);
    std::fs::create_dir_all(&snapshot).map_err(|e| HubError::io(&snapshot, e))?;
    for file in &files {
        cache.link(&commit, &file.path, &file.etag)?;
    }
    if id.revision != commit {
        cache.write_ref(&id.revision, &commit)?;
    }
    Ok(snapshot)
}

/// A tree entry as a file to fetch, refusing paths that would leave the snapshot.
fn remote_file(entry: TreeEntry, repo: &str, url: &str) -> Result<RemoteFile, HubError> {
    let path = Path::new(&entry.path);
    let safe =
        !entry.path.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    let protocol = |message: String| HubError::Protocol {
        repo: repo.to_string(),
        url: url.to_string(),
        message,
    };
    if !safe {
        return Err(protocol(format!(
            "file path {:?} leaves the repository",
            entry.path
        )));
    }
    let (etag, size, lfs) = match (entry.lfs, entry.oid) {
        (Some(lfs), _) => (lfs.oid, lfs.size, true),
        (None, Some(oid)) => (oid, entry.size, false),
        (None, None) => return Err(protocol(format!("{}: no oid", entry.path))),
    };
    if !etag.bytes().all(|b| b.is_ascii_hexdigit()) || etag.is_empty() {
        return Err(protocol(format!(
            "{}: oid {etag:?} is not a hash",
            entry.path
        )));
    }
    Ok(RemoteFile {
        path: entry.path,
        size,
        etag: etag.to_ascii_lowercase(),
        lfs,
    })
}

/// Drops the files clipkit never reads (see [`PullOptions::all_files`]).
fn clipkit_files(files: Vec<RemoteFile>) -> Vec<RemoteFile> {
    const OTHER_FRAMEWORKS: [&str; 7] = [
        ".h5",
        ".msgpack",
        ".onnx",
        ".onnx_data",
        ".ot",
        ".tflite",
        ".gguf",
    ];
    const PICKLES: [&str; 4] = [".bin", ".pt", ".pth", ".ckpt"];
    let folder = |path: &str| path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
    let with_safetensors: Vec<String> = files
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
        .map(|f| folder(&f.path))
        .collect();
    files
        .into_iter()
        .filter(|f| {
            let other = OTHER_FRAMEWORKS.iter().any(|ext| f.path.ends_with(ext));
            let duplicate = PICKLES.iter().any(|ext| f.path.ends_with(ext))
                && with_safetensors.contains(&folder(&f.path));
            !other && !duplicate
        })
        .collect()
}

/// The hash a file's ETag is: sha256 of an LFS file, git's blob sha1 of another.
enum Hasher {
    Sha256(Sha256),
    GitSha1(Sha1),
}

impl Hasher {
    fn new(file: &RemoteFile) -> Hasher {
        if file.lfs {
            Hasher::Sha256(Sha256::new())
        } else {
            let mut sha1 = Sha1::new();
            sha1.update(format!("blob {}\0", file.size).as_bytes());
            Hasher::GitSha1(sha1)
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitSha1(h) => h.update(bytes),
        }
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Hasher::Sha256(_) => "sha256",
            Hasher::GitSha1(_) => "git blob sha1",
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("{:x}", h.finalize()),
            Hasher::GitSha1(h) => format!("{:x}", h.finalize()),
        }
    }
}

/// Brings one file into `blobs/`, resuming `ETAG.incomplete` if there is one.
fn fetch(
    client: &HubClient,
    cache: &RepoCache,
    repo: &str,
    commit: &str,
    file: &RemoteFile,
    progress: &mut dyn PullProgress,
) -> Result<(), HubError> {
    let blob = cache.blob(&file.etag);
    if blob.is_file() {
        progress.advance(file.size);
        return Ok(());
    }
    let part = cache.incomplete(&file.etag);
    let blobs = part.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(blobs).map_err(|e| HubError::io(blobs, e))?;
    let have = match std::fs::metadata(&part) {
        Ok(meta) if meta.len() <= file.size => meta.len(),
        Ok(_) => 0,
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(HubError::io(part, e)),
    };
    let url = client.url(&format!(
        "{repo}/resolve/{commit}/{}",
        encode(&file.path, true)
    ));
    let (response, headers) = client.get(&url, Some(have))?;
    let protocol = |message: String| HubError::Protocol {
        repo: repo.to_string(),
        url: url.clone(),
        message,
    };
    match &headers.etag {
        Some(etag) if etag.eq_ignore_ascii_case(&file.etag) => {}
        Some(etag) => {
            return Err(protocol(format!(
                "{}: ETag {etag} is not the tree's {}",
                file.path, file.etag
            )))
        }
        None => return Err(protocol(format!("{}: no ETag", file.path))),
    }
    if let Some(other) = headers.commit.as_deref().filter(|c| *c != commit) {
        return Err(protocol(format!("served commit {other}, not {commit}")));
    }
    let resumed = have > 0 && response.status().as_u16() == 206;
    if resumed {
        let range = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !range.starts_with(&format!("bytes {have}-")) {
            return Err(protocol(format!(
                "asked for bytes from {have} on, got range {range:?}"
            )));
        }
    }

    let mut hasher = Hasher::new(file);
    let mut out = if resumed {
        let mut existing = File::open(&part).map_err(|e| HubError::io(&part, e))?;
        let read = copy_hashing(&mut existing, None, &mut hasher, &mut |n| {
            progress.advance(n)
        });
        if let Err(CopyError::Read(_, e) | CopyError::Write(e)) = read {
            return Err(HubError::io(&part, e));
        }
        OpenOptions::new().append(true).open(&part)
    } else {
        File::create(&part)
    }
    .map_err(|e| HubError::io(&part, e))?;
    let start = if resumed { have } else { 0 };

    let mut body = response.into_body().into_reader();
    let copied = copy_hashing(&mut body, Some(&mut out), &mut hasher, &mut |n| {
        progress.advance(n)
    });
    out.sync_all().map_err(|e| HubError::io(&part, e))?;
    let received = start
        + match copied {
            Ok(n) => n,
            Err(CopyError::Read(n, e)) if start + n < file.size => {
                tracing::debug!("{url}: {e}");
                n
            }
            Err(CopyError::Read(_, e)) => return Err(client.transport(&url, e)),
            Err(CopyError::Write(e)) => return Err(HubError::io(&part, e)),
        };
    if received < file.size {
        return Err(HubError::Truncated {
            repo: repo.to_string(),
            file: file.path.clone(),
            received,
            expected: file.size,
        });
    }
    let algorithm = hasher.algorithm();
    let actual = (received == file.size).then(|| hasher.hex());
    match actual {
        Some(hex) if hex == file.etag => {
            std::fs::rename(&part, &blob).map_err(|e| HubError::io(blob, e))
        }
        Some(hex) => {
            remove_quietly(&part);
            Err(HubError::Integrity {
                repo: repo.to_string(),
                file: file.path.clone(),
                algorithm,
                expected: file.etag.clone(),
                actual: hex,
            })
        }
        None => {
            remove_quietly(&part);
            Err(protocol(format!(
                "{}: {received} bytes arrived, the tree says {}",
                file.path, file.size
            )))
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!("{}: cannot remove: {e}", path.display());
    }
}

/// Why a copy stopped early.
enum CopyError {
    /// Reading failed after this many bytes (a download cut off).
    Read(u64, std::io::Error),
    /// Writing the part file failed.
    Write(std::io::Error),
}

/// Reads `from` to its end, hashing and (when `to` is given) writing every byte; the bytes
/// copied.
fn copy_hashing(
    from: &mut dyn Read,
    mut to: Option<&mut File>,
    hasher: &mut Hasher,
    advance: &mut dyn FnMut(u64),
) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(total, e)),
        };
        if let Some(to) = to.as_deref_mut() {
            to.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
        advance(n as u64);
    }
}
