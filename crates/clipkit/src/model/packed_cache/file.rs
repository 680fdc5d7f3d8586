//! The cache file: its name, its header, and how it is read and written.
//!
//! Layout: 16 bytes of [`MAGIC`], the header's length (u64, little-endian), the header (JSON:
//! the [`Identity`] and an [`Entry`] per weight), zeros to the next 4 KiB, then each entry's
//! f32 values in the machine's byte order (the identity names the kernel, so a file is only
//! read where it was written), each starting at a multiple of 64 bytes from the data start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::Tensor;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::architecture::Architecture;
use super::super::kernel::Kernel;
use super::super::packed::PackedWeight;
use super::MappedF32;

/// The first bytes of every cache file; the digit is the format's version.
const MAGIC: &[u8; 16] = b"clipkit-packed-1";
/// Where the data starts: the header is padded to a page.
const DATA_ALIGN: usize = 4096;
/// Each weight's panels start at a multiple of this many bytes (a cache line).
const ENTRY_ALIGN: usize = 64;
/// The cache file's extension.
const EXTENSION: &str = "packed";

/// Everything a cache file's panels depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Identity {
    format: u32,
    clipkit: String,
    kernel: String,
    architecture: String,
    files: Vec<FileStamp>,
}

/// A weight file as it was when its weights were packed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct FileStamp {
    path: PathBuf,
    len: u64,
    modified_s: u64,
    modified_ns: u32,
    inode: u64,
}

impl Identity {
    pub(super) fn new(
        kernel: Kernel,
        architecture: &Architecture,
        files: &[&Path],
    ) -> std::io::Result<Self> {
        let files = files
            .iter()
            .map(|path| FileStamp::of(path))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Identity {
            format: 1,
            clipkit: env!("CARGO_PKG_VERSION").to_string(),
            kernel: kernel.name().to_string(),
            architecture: format!("{architecture:?}"),
            files,
        })
    }

    /// The cache file's name: a hash of the whole identity.
    pub(super) fn file_name(&self) -> String {
        let whole = serde_json::to_vec(self).unwrap_or_default();
        format!("{}.{EXTENSION}", short_hash(&whole))
    }

    /// Whether every weight file is still as it was: if not, the panels can never be used.
    fn is_current(&self) -> bool {
        self.files
            .iter()
            .all(|file| FileStamp::of(&file.path).is_ok_and(|now| now == *file))
    }
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let path = path.canonicalize()?;
        let metadata = std::fs::metadata(&path)?;
        let modified = metadata
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            path,
            len: metadata.len(),
            modified_s: modified.as_secs(),
            modified_ns: modified.subsec_nanos(),
            inode,
        })
    }
}

fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cache file's header: what it was made from, and where each weight's panels lie.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    identity: Identity,
    entries: Vec<Entry>,
}

/// How an entry's values are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum EntryLayout {
    /// A [`PackedWeight`]'s f32 panels for the file's kernel.
    Panels,
    /// A row-major (N, K) tensor.
    Rows,
}

impl EntryLayout {
    /// How many values an (N, K) weight has in this layout for `kernel`; `None` when the
    /// kernel has no packed f32 product.
    fn len(self, kernel: Kernel, n: usize, k: usize) -> Option<usize> {
        match self {
            EntryLayout::Panels => PackedWeight::f32_panel_len(kernel, n, k),
            EntryLayout::Rows => n.checked_mul(k),
        }
    }
}

/// One weight in a cache file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The name the network asks for it by.
    key: String,
    layout: EntryLayout,
    /// The checkpoint tensors it was made from.
    sources: Vec<String>,
    n: usize,
    k: usize,
    /// Bytes from the start of the data.
    offset: u64,
    /// Values.
    len: u64,
}

/// A weight recorded for the cache file.
pub(super) enum Recorded {
    Panels(Arc<PackedWeight>),
    /// An f32 tensor kept as rows.
    Rows(Tensor),
}

impl Recorded {
    fn layout(&self) -> EntryLayout {
        match self {
            Recorded::Panels(_) => EntryLayout::Panels,
            Recorded::Rows(_) => EntryLayout::Rows,
        }
    }

    /// Number of values (0 for panels in another precision, which are not kept).
    pub(super) fn len(&self) -> usize {
        match self {
            Recorded::Panels(weight) => weight.f32_panels().map_or(0, <[f32]>::len),
            Recorded::Rows(tensor) => tensor.elem_count(),
        }
    }

    fn shape(&self) -> (usize, usize) {
        match self {
            Recorded::Panels(weight) => (weight.out_dim(), weight.in_dim()),
            Recorded::Rows(tensor) => tensor.dims2().unwrap_or((tensor.elem_count(), 1)),
        }
    }

    /// Writes the values as the file holds them, read in place (a tensor's values are not
    /// copied: the token embedding alone is 100 MB).
    fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let tensor = match self {
            Recorded::Panels(weight) => {
                let values = weight.f32_panels().unwrap_or_default();
                return out.write_all(bytemuck::cast_slice(values));
            }
            Recorded::Rows(tensor) => tensor,
        };
        let (storage, layout) = tensor.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)), Some((start, end))) => {
                out.write_all(bytemuck::cast_slice(&data[start..end]))
            }
            _ => Err(std::io::Error::other("not a contiguous f32 CPU tensor")),
        }
    }
}

/// A cache file that matched the load's identity, mapped, with its entries by key.
pub(super) struct Hit {
    map: Arc<Mmap>,
    data_start: usize,
    entries: BTreeMap<String, Entry>,
}

impl Hit {
    /// The mapped values of entry `key`, when the file has it in `layout` with shape (N, K),
    /// and the checkpoint tensors it was made from.
    pub(super) fn entry(
        &self,
        key: &str,
        layout: EntryLayout,
        n: usize,
        k: usize,
    ) -> Option<(MappedF32, &[String])> {
        let entry = self
            .entries
            .get(key)
            .filter(|e| e.layout == layout && e.n == n && e.k == k)?;
        let values = MappedF32 {
            map: self.map.clone(),
            offset: self.data_start + usize::try_from(entry.offset).ok()?,
            len: usize::try_from(entry.len).ok()?,
        };
        Some((values, &entry.sources))
    }
}

/// Writes `recorded` to the cache file `path` made for `identity` (through a temporary
/// file, synced and renamed), then removes the files in its folder that can no longer be
/// used (see [`remove_stale_files`]).
pub(super) fn write_cache_file(
    path: &Path,
    identity: &Identity,
    recorded: &BTreeMap<String, (Vec<String>, Recorded)>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut entries = Vec::new();
    let mut offset = 0u64;
    let kept = recorded.iter().filter(|(_, (_, r))| r.len() > 0);
    for (key, (sources, recorded)) in kept.clone() {
        let (n, k) = recorded.shape();
        entries.push(Entry {
            key: key.clone(),
            layout: recorded.layout(),
            sources: sources.clone(),
            n,
            k,
            offset,
            len: recorded.len() as u64,
        });
        offset += align_up(recorded.len() * 4, ENTRY_ALIGN) as u64;
    }
    let header = serde_json::to_vec(&Header {
        identity: identity.clone(),
        entries,
    })?;
    // Unique to this write: two loads of one model may write at once (the last rename wins).
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("{EXTENSION}.tmp-{}-{write}", std::process::id()));
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        let start = MAGIC.len() + 8 + header.len();
        out.write_all(&vec![0u8; align_up(start, DATA_ALIGN) - start])?;
        for (_, (_, recorded)) in kept {
            recorded.write_to(&mut out)?;
            let bytes = recorded.len() * 4;
            out.write_all(&vec![0u8; align_up(bytes, ENTRY_ALIGN) - bytes])?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    remove_stale_files(dir, path);
    Ok(())
}

/// How old a temporary file must be before another writer takes it for one left by a
/// process that died while writing.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the files in `dir`, other than `keep`, that no load can use again: cache files
/// whose weight files changed or are gone (a model deleted, a checkpoint rewritten), files
/// that are not cache files of this format, and temporary files abandoned over an hour ago.
/// So the folder holds one file per model in use, not one per model ever loaded.
fn remove_stale_files(dir: &Path, keep: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if path == keep {
            false
        } else if name.ends_with(&format!(".{EXTENSION}")) {
            read_header(&path).map_or(true, |header| !header.identity.is_current())
        } else if name.contains(&format!(".{EXTENSION}.tmp-")) {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED_AFTER))
        } else {
            false
        };
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Reads a cache file's header only.
fn read_header(path: &Path) -> Result<Header, String> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut prefix = [0u8; MAGIC.len() + 8];
    file.read_exact(&mut prefix).map_err(|e| e.to_string())?;
    let (magic, len) = prefix.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err("not a clipkit packed-weight file of this version".into());
    }
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "short header")?);
    let mut header = Vec::new();
    file.take(len)
        .read_to_end(&mut header)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&header).map_err(|e| e.to_string())
}

fn align_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Maps the cache file at `path` and checks it was made for `identity`, with every entry's
/// panels inside the file, aligned, and as long as the kernel's panels are.
pub(super) fn read_cache_file(
    path: &Path,
    identity: &Identity,
    kernel: Kernel,
) -> Result<Hit, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: the mapping is read-only. Cache files are replaced by renaming, never written
    // in place, so a mapped file does not change under a reader.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let prefix = MAGIC.len() + 8;
    if map.len() < prefix || &map[..MAGIC.len()] != MAGIC {
        return Err("not a clipkit packed-weight file of this version".into());
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&map[MAGIC.len()..prefix]);
    let header_len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|e| e.to_string())?;
    let header_bytes = prefix
        .checked_add(header_len)
        .and_then(|end| map.get(prefix..end))
        .ok_or("header runs past the end of the file")?;
    let header: Header = serde_json::from_slice(header_bytes).map_err(|e| e.to_string())?;
    if header.identity != *identity {
        return Err("made from other weights, kernel or clipkit version".into());
    }
    let data_start = align_up(prefix + header_len, DATA_ALIGN);
    let mut entries = BTreeMap::new();
    for entry in header.entries {
        let fits = (|| {
            let offset = usize::try_from(entry.offset).ok()?;
            let len = usize::try_from(entry.len).ok()?;
            let end = data_start
                .checked_add(offset)?
                .checked_add(len.checked_mul(4)?)?;
            let expected = entry.layout.len(kernel, entry.n, entry.k)?;
            (offset % ENTRY_ALIGN == 0 && end <= map.len() && len == expected).then_some(())
        })();
        if fits.is_none() {
            return Err(format!("entry {} does not fit the file", entry.key));
        }
        entries.insert(entry.key.clone(), entry);
    }
    Ok(Hit {
        map: Arc::new(map),
        data_start,
        entries,
    })
}
