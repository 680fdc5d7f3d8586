//! Writing a model folder.
//!
//! A written folder holds `config.json`, `model.safetensors` (f32, HF tensor names),
//! `preprocessor_config.json` and the tokenizer files, and loads both in
//! [`crate::Clip::load`] and in transformers' `CLIPModel.from_pretrained`. The write is
//! atomic (see [`super::atomic_dir`]): a folder being replaced stays whole until the new
//! one has taken its place.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Storage, Tensor};
use safetensors::tensor::{Dtype, View};

use super::read::check_tokenizer_complete;
use super::{atomic_dir, ModelFolder, CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE};
use crate::error::{Error, Result};

/// Writes `parts` as a model folder at `dir`, atomically: into a hidden sibling folder,
/// flushed to disk, then renamed over `dir`. An existing `dir` is replaced only if it is
/// empty or a model folder (has a `config.json`), so a mistyped path cannot wipe out
/// unrelated files.
pub fn write_model_folder(dir: &Path, parts: &ModelFolder) -> Result<()> {
    parts.config.validate(&dir.join(CONFIG_FILE))?;
    check_file_names(parts, dir)?;
    check_tokenizer_complete(&parts.tokenizer, dir)?;
    check_replaceable(dir)?;
    let config = parts.config.to_json()?;
    let preprocess = parts.preprocess.to_json()?;
    let views = parts
        .tensors
        .iter()
        .map(|(name, t)| F32View::new(t).map(|v| (name.as_str(), v)))
        .collect::<Result<Vec<_>>>()?;
    atomic_dir::replace_dir(dir, |staging| {
        atomic_dir::write_synced(&staging.join(CONFIG_FILE), config.as_bytes())?;
        atomic_dir::write_synced(&staging.join(PREPROCESSOR_FILE), preprocess.as_bytes())?;
        write_safetensors(
            &staging.join(WEIGHTS_FILE),
            &views,
            &staging.join(CONFIG_FILE),
        )?;
        for file in parts.tokenizer.iter().chain(&parts.extra) {
            atomic_dir::write_synced(&staging.join(&file.name), &file.bytes)?;
        }
        Ok(())
    })
}

fn check_file_names(parts: &ModelFolder, dir: &Path) -> Result<()> {
    let mut seen: BTreeSet<&str> = [CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE].into();
    for file in parts.tokenizer.iter().chain(&parts.extra) {
        let plain = Path::new(&file.name)
            .file_name()
            .is_some_and(|n| n == file.name.as_str());
        if !plain {
            return Err(Error::InvalidArgument(format!(
                "{}: file name {:?} must be a plain name inside the folder",
                dir.display(),
                file.name
            )));
        }
        if !seen.insert(&file.name) {
            return Err(Error::InvalidArgument(format!(
                "{}: file {} would be written twice",
                dir.display(),
                file.name
            )));
        }
    }
    Ok(())
}

fn check_replaceable(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(_) => Ok(()),
        Ok(meta) if !meta.is_dir() => Err(Error::InvalidArgument(format!(
            "{}: exists and is not a folder; refusing to replace it",
            dir.display()
        ))),
        Ok(_) => {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_none();
            if empty || dir.join(CONFIG_FILE).is_file() {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "{}: exists and is not a model folder (no {CONFIG_FILE}); refusing to \
                     replace it — choose an empty or new folder",
                    dir.display()
                )))
            }
        }
    }
}

/// Writes the checkpoint with the permissions of `permissions_of` (the safetensors crate
/// writes through a private 0600 temporary file; the other files got theirs from the umask).
fn write_safetensors(path: &Path, views: &[(&str, F32View)], permissions_of: &Path) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views.iter().map(|(n, v)| (*n, v)), Some(metadata), path)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let permissions = std::fs::metadata(permissions_of)
        .map_err(|e| Error::io(permissions_of, e))?
        .permissions();
    std::fs::set_permissions(path, permissions).map_err(|e| Error::io(path, e))?;
    atomic_dir::sync_file(path)?;
    // The views read tensor storage without an error path; the header read back against
    // the file's length proves every tensor's bytes arrived in full.
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only mapping of a file this process just wrote and nobody else knows of.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        message: format!("written file does not read back: {e}"),
    })?;
    Ok(())
}

/// A tensor made f32, contiguous and CPU-resident, whose bytes are produced only while the
/// file is written, one tensor at a time.
struct F32View(Tensor);

impl F32View {
    fn new(tensor: &Tensor) -> Result<Self> {
        Ok(F32View(
            tensor
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .contiguous()?,
        ))
    }
}

impl View for &F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.0.dims()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let (storage, layout) = self.0.storage_and_layout();
        let values = match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(cpu), Some((start, end))) => cpu
                .as_slice::<f32>()
                .ok()
                .and_then(|s| s.get(start..end))
                .unwrap_or_default(),
            // Unreachable after `F32View::new`; a short write is caught on reading back.
            _ => &[],
        };
        Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.0.elem_count() * 4
    }
}
