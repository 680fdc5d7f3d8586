//! Checkpoint tensors read from safetensors files: one `model.safetensors`, or shards listed
//! in `model.safetensors.index.json`; f32, f16 or bf16 on disk, f32 in memory.
//!
//! Files are memory-mapped and each tensor's pages are released as soon as it has been copied
//! out, so loading holds little more than the model's own size in memory.
//!
//! The model's constructors are the one list of expected tensors: [`Checkpoint::var_builder`]
//! serves them, notes every missing or mis-shaped request instead of failing at the first,
//! and [`Checkpoint::finish`] reports them all at once, together with unexpected tensors.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::tensor::{Metadata, TensorView};

use crate::error::{Error, Result};
use crate::model_folder::{SHARD_INDEX_FILE, WEIGHTS_FILE};

/// Buffers that some transformers versions save beside the weights; they carry no weights.
const IGNORED_SUFFIXES: [&str; 1] = ["embeddings.position_ids"];

struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// An open checkpoint: headers parsed, data mapped but not yet read.
pub struct Checkpoint {
    origin: PathBuf,
    files: Vec<MappedFile>,
    /// Tensor name → index into `files`.
    locations: BTreeMap<String, usize>,
    /// Tensors already in memory (read from a layout that is not safetensors), by name.
    in_memory: BTreeMap<String, Tensor>,
    report: Mutex<LoadReport>,
}

#[derive(Default)]
struct LoadReport {
    served: BTreeSet<String>,
    problems: Vec<String>,
}

impl Checkpoint {
    /// Opens the checkpoint of a model folder (single file or shard index).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(WEIGHTS_FILE);
        let index = dir.join(SHARD_INDEX_FILE);
        if single.is_file() {
            Self::open_files(dir, &[single])
        } else if index.is_file() {
            let shards = read_shard_index(&index)?;
            Self::open_files(&index, &shards)
        } else {
            Err(Error::MissingFile {
                path: single,
                hint: format!(
                    "expected {WEIGHTS_FILE} or {SHARD_INDEX_FILE}; convert a PyTorch .bin checkpoint to safetensors first"
                ),
            })
        }
    }

    /// Opens one safetensors file under any name (diffusers' `diffusion_pytorch_model.safetensors`).
    pub fn open_file(path: &Path) -> Result<Self> {
        Self::open_files(path, &[path.to_path_buf()])
    }

    fn open_files(origin: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut locations = BTreeMap::new();
        for path in paths {
            let file = map_file(path)?;
            for name in file.metadata.tensors().keys() {
                locations.insert(name.clone(), files.len());
            }
            files.push(file);
        }
        Ok(Checkpoint {
            origin: origin.to_path_buf(),
            files,
            locations,
            in_memory: BTreeMap::new(),
            report: Mutex::new(LoadReport::default()),
        })
    }

    /// A checkpoint of tensors already in memory (renamed from another layout), read from
    /// the file `origin` and reported as it in errors.
    pub fn from_tensors(origin: &Path, tensors: BTreeMap<String, Tensor>) -> Self {
        Checkpoint {
            origin: origin.to_path_buf(),
            files: Vec::new(),
            locations: BTreeMap::new(),
            in_memory: tensors,
            report: Mutex::new(LoadReport::default()),
        }
    }

    /// The files the tensors come from: the safetensors files they are read from, or for
    /// tensors already in memory ([`Self::from_tensors`]), the one file they were read from.
    pub fn weight_files(&self) -> Vec<&Path> {
        if self.in_memory.is_empty() {
            self.files.iter().map(|f| f.path.as_path()).collect()
        } else {
            vec![self.origin.as_path()]
        }
    }

    /// Counts tensors as read although the network took them from elsewhere (packed
    /// weights mapped from a [`crate::model::PackedCache`] file), so that [`Self::finish`]
    /// does not report them as unexpected.
    pub fn mark_served(&self, names: impl IntoIterator<Item = String>) {
        self.note(|r| r.served.extend(names));
    }

    /// A `VarBuilder` whose tensors come from this checkpoint, converted to f32.
    pub fn var_builder(&self) -> VarBuilder<'_> {
        VarBuilder::from_backend(Box::new(Served(self)), DType::F32, Device::Cpu)
    }

    /// Every tensor of the checkpoint by name, converted to f32, leaving out the buffers that
    /// carry no weights (`embeddings.position_ids`).
    pub fn into_tensors(self) -> Result<BTreeMap<String, Tensor>> {
        let mut tensors = BTreeMap::new();
        for (name, tensor) in &self.in_memory {
            let tensor = tensor
                .to_dtype(DType::F32)
                .map_err(|e| Error::CorruptCheckpoint {
                    path: self.origin.clone(),
                    message: format!("{name}: {e}"),
                })?;
            tensors.insert(name.clone(), tensor);
        }
        for (name, &file) in &self.locations {
            if IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let corrupt = |message: String| Error::CorruptCheckpoint {
                path: self.files[file].path.clone(),
                message,
            };
            let tensor = self
                .read(name)
                .ok_or_else(|| corrupt(format!("{name}: data outside the file")))?
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|e| corrupt(format!("{name}: {e}")))?;
            tensors.insert(name.clone(), tensor);
        }
        Ok(tensors)
    }

    /// Ends loading: an error listing every missing, mis-shaped or unexpected tensor, if any.
    pub fn finish(self) -> Result<()> {
        let report = self
            .report
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut problems = report.problems;
        for (name, &file) in &self.locations {
            let ignored = IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s));
            if !ignored && !report.served.contains(name) {
                let shape = self.files[file]
                    .metadata
                    .info(name)
                    .map(|i| i.shape.clone());
                problems.push(format!("  unexpected tensor {name} {shape:?}"));
            }
        }
        for (name, tensor) in &self.in_memory {
            if !report.served.contains(name) {
                problems.push(format!("  unexpected tensor {name} {:?}", tensor.dims()));
            }
        }
        // Towers and layers load in parallel: sort, so the report reads the same every run.
        problems.sort();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Weights {
                path: self.origin,
                problems: problems.join("\n"),
            })
        }
    }

    fn note(&self, f: impl FnOnce(&mut LoadReport)) {
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut report);
    }

    /// Reads one tensor out of its file and releases the pages it occupied.
    fn read(&self, name: &str) -> Option<candle_core::Result<Tensor>> {
        if let Some(tensor) = self.in_memory.get(name) {
            return Some(Ok(tensor.clone()));
        }
        let file = &self.files[*self.locations.get(name)?];
        let info = file.metadata.info(name)?;
        let (start, end) = info.data_offsets;
        let offset = 8 + file.header_len + start;
        let bytes = file.mmap.get(offset..8 + file.header_len + end)?;
        let tensor = TensorView::new(info.dtype, info.shape.clone(), bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {name}: {e}", file.path.display())))
            .and_then(|view| view.load(&Device::Cpu));
        // SAFETY: the mapping is read-only and private; dropped pages are re-read from the
        // file if touched again, so no reader can observe changed contents.
        unsafe {
            let _ =
                file.mmap
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, end - start);
        }
        Some(tensor)
    }
}

struct Served<'a>(&'a Checkpoint);

impl SimpleBackend for Served<'_> {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let ckpt = self.0;
        let Some(tensor) = ckpt.read(name) else {
            ckpt.note(|r| {
                r.problems
                    .push(format!("  missing tensor {name} {:?}", shape.dims()))
            });
            return Tensor::zeros(shape, dtype, dev);
        };
        let tensor = tensor?;
        ckpt.note(|r| {
            r.served.insert(name.to_string());
        });
        if tensor.shape() != &shape {
            ckpt.note(|r| {
                r.problems.push(format!(
                    "  tensor {name} has shape {:?}, config.json implies {:?}",
                    tensor.dims(),
                    shape.dims()
                ))
            });
            return Tensor::zeros(shape, dtype, dev);
        }
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let ckpt = self.0;
        match ckpt.read(name) {
            Some(tensor) => {
                ckpt.note(|r| {
                    r.served.insert(name.to_string());
                });
                tensor?.to_dtype(dtype)?.to_device(dev)
            }
            None => Err(candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.locations.contains_key(name) || self.0.in_memory.contains_key(name)
    }
}

fn map_file(path: &Path) -> Result<MappedFile> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is read-only; a checkpoint changed on disk while clipkit reads it
    // can yield wrong numbers but not memory unsafety in safe code that copies the bytes out.
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (header_len, metadata) =
        safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(MappedFile {
        path: path.to_path_buf(),
        mmap,
        header_len,
        metadata,
    })
}

/// The distinct shard files named by a `model.safetensors.index.json`, in first-seen order.
fn read_shard_index(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct ShardIndex {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: ShardIndex = serde_json::from_str(&text).map_err(|e| Error::CorruptCheckpoint {
        path: index.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut seen = BTreeSet::new();
    let mut shards = Vec::new();
    for file in parsed.weight_map.values() {
        if seen.insert(file.clone()) {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(Error::MissingFile {
                    path,
                    hint: format!("a shard listed in {SHARD_INDEX_FILE}"),
                });
            }
            shards.push(path);
        }
    }
    Ok(shards)
}
