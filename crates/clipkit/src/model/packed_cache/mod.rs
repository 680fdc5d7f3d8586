//! Packed weights kept between loads: a large model loads in the time it takes to map a
//! file, not to re-lay every weight.
//!
//! Packing re-lays each linear map's weights for the kernel in use ([`PackedWeight`]). For
//! ViT-B/32 that is 123 M values copied into 490 MB of fresh memory at every load: about
//! 0.55 s on two cores, most of it the kernel handing out and zeroing new pages. A
//! [`PackedCache`] is a folder that keeps each model's packed f32 panels in one file, written
//! once after a load that packed them. Later loads map that file read-only: the products read
//! their panels straight from the page cache, shared by every process that loads the model.
//!
//! A cache file's name is a hash of everything its panels depend on: the file format,
//! clipkit's version, the kernel, the network's architecture, and each weight file's path,
//! size, modification time and inode. Its header repeats all of that and lists where each
//! weight's panels lie. A file that does not match in every respect (a changed checkpoint,
//! another kernel, a truncated or foreign file) is not used: the load packs as usual and
//! replaces it. Files are written under a temporary name, synced and renamed, so no reader
//! sees half a file; writing one removes the files no load can use again (their weight files
//! changed or are gone), so the folder holds one file per model in use.
//!
//! The text tower's token embedding (25 M values for CLIP's vocabulary) is kept beside the
//! panels as plain rows, so it is mapped rather than copied too.
//!
//! Only fp32 weights of models with at least [`MIN_CACHED_BYTES`] of them are kept (small
//! models pack in milliseconds). Models of every layout are: a HuggingFace folder's
//! safetensors are then never read, while an open_clip folder or an OpenAI checkpoint is
//! still read and renamed whole (their tensors are converted in memory) and only packing is
//! saved. A ModifiedResNet's convolutions are kept with their batch norm folded in.

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::Tensor;
use memmap2::Mmap;

use super::architecture::Architecture;
use super::kernel::Kernel;
use super::load_options::{LoadOptions, WeightFormat};
use super::packed::PackedWeight;
use super::precision::Precision;
use crate::checkpoint::Checkpoint;
use file::{read_cache_file, write_cache_file, EntryLayout, Hit, Identity, Recorded};

/// The smallest total of packed weights (bytes) a model needs for its panels to be kept.
pub const MIN_CACHED_BYTES: usize = 32 << 20;

/// A folder of packed-weight files, passed to loads in [`LoadOptions::packed_cache`].
///
/// Loads through one `PackedCache` run one at a time (a second waits for the first to
/// finish building its network); give concurrent loads a `PackedCache` each, on the same
/// folder if need be.
pub struct PackedCache {
    dir: PathBuf,
    min_bytes: usize,
    /// Held for the whole of a load.
    loading: Mutex<()>,
    /// The load in progress, if it uses the cache.
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for PackedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedCache")
            .field("dir", &self.dir)
            .finish()
    }
}

/// Two caches are equal when they are the same object (a load's options compare equal only
/// when they would use the same one).
impl PartialEq for PackedCache {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for PackedCache {}

impl PackedCache {
    /// A cache keeping its files in `dir` (created when the first file is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_min_bytes(dir, MIN_CACHED_BYTES)
    }

    /// A cache that keeps the panels of models with at least `min_bytes` of them.
    pub(crate) fn with_min_bytes(dir: impl Into<PathBuf>, min_bytes: usize) -> Self {
        PackedCache {
            dir: dir.into(),
            min_bytes,
            loading: Mutex::new(()),
            session: Mutex::new(None),
        }
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts loading the network whose weights are `weights`, shaped as `architecture` and
    /// held as `options` say: its packed weights come from the cache file when one matches,
    /// and are recorded for one otherwise. Loads the cache cannot serve (another precision,
    /// unpacked weights, weights that train) go on without it.
    pub(crate) fn begin(
        &self,
        weights: &Checkpoint,
        architecture: &Architecture,
        options: LoadOptions,
    ) -> LoadSession<'_> {
        let guard = lock(&self.loading);
        let kernel = Kernel::active();
        let usable = options.weight_format == WeightFormat::Packed
            && !options.input_gradients
            && options.precision == Precision::Fp32
            && PackedWeight::f32_panel_len(kernel, 1, 1).is_some();
        let files = weights.weight_files();
        let session = match usable.then(|| Identity::new(kernel, architecture, &files)) {
            Some(Ok(identity)) => Some(Session::open(&self.dir, identity, kernel)),
            Some(Err(e)) => {
                tracing::debug!("packed-weight cache not used: {e}");
                None
            }
            None => None,
        };
        *lock(&self.session) = session;
        LoadSession {
            cache: self,
            _loading: guard,
        }
    }

    /// The packed weight `key` of the load in progress, (N, K) = (`n`, `k`), when its cache
    /// file holds it; the checkpoint tensors it was made from count as read.
    pub(super) fn lookup(&self, key: &str, n: usize, k: usize) -> Option<Arc<PackedWeight>> {
        let mut session = lock(&self.session);
        let session = session.as_mut()?;
        let kernel = session.kernel;
        let values = session.take(key, EntryLayout::Panels, n, k)?;
        PackedWeight::from_mapped(kernel, values, n, k).map(Arc::new)
    }

    /// The (N, K) = (`n`, `k`) row-major tensor `key` of the load in progress, when its
    /// cache file holds it; the checkpoint tensor counts as read.
    pub(super) fn lookup_rows(&self, key: &str, n: usize, k: usize) -> Option<MappedF32> {
        lock(&self.session)
            .as_mut()?
            .take(key, EntryLayout::Rows, n, k)
    }

    /// Notes `weight`, packed for the load in progress from the checkpoint tensors
    /// `sources`, under `key`, for the cache file written when the load succeeds.
    pub(super) fn record(&self, key: &str, sources: &[String], weight: &Arc<PackedWeight>) {
        let mut session = lock(&self.session);
        if let Some(session) = session.as_mut().filter(|s| s.hit.is_none()) {
            let values = Recorded::Panels(weight.clone());
            session
                .recorded
                .insert(key.to_string(), (sources.to_vec(), values));
        }
    }

    /// Notes the f32 tensor `key` (a checkpoint tensor of that name) for the cache file
    /// written when the load succeeds, to be mapped as plain rows by [`Self::lookup_rows`].
    pub(super) fn record_rows(&self, key: &str, tensor: &Tensor) {
        let mut session = lock(&self.session);
        if let Some(session) = session.as_mut().filter(|s| s.hit.is_none()) {
            let values = Recorded::Rows(tensor.clone());
            session
                .recorded
                .insert(key.to_string(), (vec![key.to_string()], values));
        }
    }
}

/// One load through a [`PackedCache`]; the next load through the same cache waits until it
/// is dropped.
pub(crate) struct LoadSession<'c> {
    cache: &'c PackedCache,
    _loading: MutexGuard<'c, ()>,
}

impl LoadSession<'_> {
    /// The checkpoint tensors whose packed weights came from the cache file.
    pub(crate) fn served(&self) -> Vec<String> {
        lock(&self.cache.session)
            .as_ref()
            .map(|s| s.served.clone())
            .unwrap_or_default()
    }

    /// Ends a load that succeeded: writes the cache file if the load packed weights it
    /// could keep. A file that cannot be written is a warning, not an error: the model is
    /// loaded, and the next load packs again.
    pub(crate) fn finish(self) {
        let Some(session) = lock(&self.cache.session).take() else {
            return;
        };
        let bytes: usize = session.recorded.values().map(|(_, r)| r.len() * 4).sum();
        if session.hit.is_some() || bytes < self.cache.min_bytes {
            return;
        }
        if let Err(e) = write_cache_file(&session.file, &session.identity, &session.recorded) {
            tracing::warn!(
                "cannot keep packed weights in {}: {e}",
                session.file.display()
            );
        }
    }
}

impl Drop for LoadSession<'_> {
    fn drop(&mut self) {
        *lock(&self.cache.session) = None;
    }
}

/// Locks a mutex, taking over a poisoned one (its data is replaced before each use).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// f32 panel values inside a mapped cache file.
#[derive(Debug, Clone)]
pub(super) struct MappedF32 {
    map: Arc<Mmap>,
    /// Bytes from the start of the file, a multiple of 64.
    offset: usize,
    /// Values.
    len: usize,
}

impl MappedF32 {
    /// Number of values.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The values.
    pub(super) fn values(&self) -> &[f32] {
        // The offset and length were checked against the file when it was opened, and the
        // offset is a multiple of 64 in a page-aligned mapping.
        bytemuck::cast_slice(&self.map[self.offset..self.offset + self.len * 4])
    }
}

/// The cache's side of one load.
struct Session {
    file: PathBuf,
    identity: Identity,
    kernel: Kernel,
    /// The matching cache file, when there is one.
    hit: Option<Hit>,
    /// Checkpoint tensors served from `hit`.
    served: Vec<String>,
    /// Without a hit: the weights made, by key, with their source tensors.
    recorded: BTreeMap<String, (Vec<String>, Recorded)>,
}

impl Session {
    fn open(dir: &Path, identity: Identity, kernel: Kernel) -> Self {
        let file = dir.join(identity.file_name());
        let hit = match read_cache_file(&file, &identity, kernel) {
            Ok(hit) => Some(hit),
            Err(why) => {
                if file.exists() {
                    tracing::warn!("ignoring packed-weight cache {}: {why}", file.display());
                }
                None
            }
        };
        Session {
            file,
            identity,
            kernel,
            hit,
            served: Vec::new(),
            recorded: BTreeMap::new(),
        }
    }

    /// The mapped values of entry `key`, when the hit has it in `layout` with shape (N, K);
    /// its source tensors count as served.
    fn take(&mut self, key: &str, layout: EntryLayout, n: usize, k: usize) -> Option<MappedF32> {
        let (values, sources) = self.hit.as_ref()?.entry(key, layout, n, k)?;
        self.served.extend(sources.iter().cloned());
        Some(values)
    }
}

#[cfg(test)]
mod tests;
