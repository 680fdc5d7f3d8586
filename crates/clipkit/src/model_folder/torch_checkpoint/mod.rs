//! PyTorch checkpoints read without Python and without running pickled code: `torch.save`
//! files (`.bin`, `.pth`, `.ckpt`), TorchScript archives (`.pt`, as OpenAI's `clip.load`
//! downloads them) and the legacy pre-1.6 `torch.save` format.
//!
//! A PyTorch checkpoint is a pickle: a program for Python's unpickler that may name any
//! Python function. clipkit's unpickler understands only the opcodes and
//! globals a state dict uses (`torch._utils._rebuild_tensor_v2`, the storage classes,
//! `collections.OrderedDict`, `torch._utils._rebuild_parameter`, TorchScript's typed-list
//! helpers and its `__torch__.*` module classes, read as attribute dictionaries) and never
//! calls anything; a pickle naming any other global (`posix.system`, `builtins.eval`, a
//! training library's class) is refused with [`Error::UnsafePickle`], which names it.
//!
//! The containers: a zip archive holding `PREFIX/data.pkl` and the raw little-endian
//! storages `PREFIX/data/KEY` (torch.save since PyTorch 1.6; a TorchScript archive adds
//! `code/` and `constants.pkl`, which are ignored), or the legacy stream of pickles followed
//! by the storages.
//!
//! [`read_tensors`] returns every tensor with its dotted name (`visual.conv1.weight` for a
//! TorchScript module's attribute path or a state dict's key); [`read_tensors_under`] reads
//! the dict under one top-level key (`state_dict` of a Lightning `.ckpt`), where globals
//! outside it (a trainer's callbacks) are parsed as inert data and not refused.
//!
//! ```
//! # let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
//! # let path = std::path::PathBuf::from(format!("{fixtures}/torch/state_dict.bin"));
//! use clipkit::model_folder::torch_checkpoint::read_tensors;
//! let tensors = read_tensors(&path)?; // Vec<(String, candle_core::Tensor)>, pickle order
//! let (name, weight) = &tensors[0];
//! assert_eq!(name, "linear.weight");
//! assert_eq!(weight.dims(), &[2, 3]);
//! # Ok::<(), clipkit::Error>(())
//! ```

mod tensors;
mod unpickle;

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};
use tensors::{materialize, member, named_tensors, WalkError};
use unpickle::{unpickle, Strictness, TensorRef, UnpickleError, Unpickled, Value};

/// The first pickle of the legacy format: `0x1950a86a20f9469cfc6c`, the magic number.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// How a zip archive starts.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// Every tensor of the PyTorch checkpoint at `path`, named by its dotted path, in pickle
/// order; CPU tensors of the stored dtype (booleans as `U8`).
///
/// Any global outside the allowed set anywhere in the pickle refuses the file
/// ([`Error::UnsafePickle`]); a file that is not a PyTorch checkpoint, or is truncated, is
/// [`Error::CorruptCheckpoint`]. Non-tensor values (ints, strings, `training` flags) are
/// skipped. A TorchScript module yields every tensor attribute, including buffers and plain
/// tensor attributes that `state_dict()` would leave out (OpenAI's `attn_mask`).
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    read(path, None)
}

/// The tensors of the dict under top-level key `key` of the checkpoint at `path`
/// (`state_dict` of a PyTorch Lightning `.ckpt`), named relative to it.
///
/// Globals outside the allowed set are refused where they sit inside that dict; elsewhere
/// (a Lightning checkpoint's callbacks and loop state) they are parsed as inert data and
/// skipped, since nothing is ever called. A missing key, or a top level that is not a dict,
/// is [`Error::CorruptCheckpoint`] naming the key.
pub fn read_tensors_under(path: &Path, key: &str) -> Result<Vec<(String, Tensor)>> {
    read(path, Some(key))
}

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn unpickle_error(path: &Path, member: &str, e: UnpickleError) -> Error {
    match e {
        UnpickleError::Refused(global) => Error::UnsafePickle {
            path: path.to_path_buf(),
            global,
            at: member.to_string(),
        },
        UnpickleError::Malformed { at, message } => {
            corrupt(path, format!("{member}, byte {at}: {message}"))
        }
    }
}

/// Where the storages' bytes live.
enum Storages {
    /// A zip archive; storage KEY is member `PREFIX/data/KEY`.
    Zip {
        archive: zip::ZipArchive<std::fs::File>,
        prefix: String,
        loaded: HashMap<String, Vec<u8>>,
    },
    /// The legacy format: the whole file and each storage's byte range in it.
    Legacy {
        bytes: Vec<u8>,
        ranges: HashMap<String, Range<usize>>,
    },
}

impl Storages {
    fn bytes(&mut self, path: &Path, key: &str) -> Result<&[u8]> {
        match self {
            Storages::Zip {
                archive,
                prefix,
                loaded,
            } => {
                if !loaded.contains_key(key) {
                    let name = format!("{prefix}/data/{key}");
                    let mut file = archive
                        .by_name(&name)
                        .map_err(|e| corrupt(path, format!("storage `{name}`: {e}")))?;
                    let mut buf = Vec::with_capacity(file.size() as usize);
                    file.read_to_end(&mut buf)
                        .map_err(|e| corrupt(path, format!("storage `{name}`: {e}")))?;
                    loaded.insert(key.to_string(), buf);
                }
                Ok(&loaded[key])
            }
            Storages::Legacy { bytes, ranges } => match ranges.get(key) {
                Some(range) => Ok(&bytes[range.clone()]),
                None => Err(corrupt(path, format!("storage `{key}` is not in the file"))),
            },
        }
    }
}

fn read(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let mut head = [0u8; LEGACY_MAGIC.len()];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| Error::io(path, e))?;
    let strictness = match key {
        None => Strictness::RefuseAll,
        Some(_) => Strictness::RefuseReached,
    };
    let (root, mut storages) = if head[..n].starts_with(&ZIP_MAGIC) {
        open_zip(path, strictness)?
    } else if head[..n] == LEGACY_MAGIC {
        open_legacy(path, strictness)?
    } else {
        return Err(corrupt(
            path,
            "not a PyTorch checkpoint: neither a zip archive (torch.save since PyTorch 1.6, \
             TorchScript) nor the legacy torch.save format",
        ));
    };
    let root = match key {
        None => root,
        Some(key) => member(&root, key).ok_or_else(|| {
            corrupt(
                path,
                format!("no top-level key `{key}` in the checkpoint's dict"),
            )
        })?,
    };
    let named = named_tensors(&root).map_err(|e| match e {
        WalkError::Refused { global, at } => Error::UnsafePickle {
            path: path.to_path_buf(),
            global,
            at,
        },
        WalkError::TooLarge(message) => corrupt(path, message),
    })?;
    let mut out = Vec::with_capacity(named.len());
    for (name, t) in named {
        let t: &TensorRef = &t;
        let bytes = storages.bytes(path, &t.storage.key)?;
        let tensor = materialize(t, bytes).map_err(|e| corrupt(path, format!("`{name}`: {e}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open_zip(path: &Path, strictness: Strictness) -> Result<(Value, Storages)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        corrupt(
            path,
            format!("not a readable zip archive (truncated?): {e}"),
        )
    })?;
    let pickle_name = archive
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(|n| n.into_owned())
        .ok_or_else(|| {
            corrupt(
                path,
                "a zip archive without `PREFIX/data.pkl`: not a PyTorch checkpoint",
            )
        })?;
    let prefix = pickle_name.trim_end_matches("/data.pkl").to_string();
    let member_text =
        |archive: &mut zip::ZipArchive<std::fs::File>, name: &str| -> Result<Option<Vec<u8>>> {
            let mut file = match archive.by_name(name) {
                Ok(file) => file,
                Err(zip::result::ZipError::FileNotFound) => return Ok(None),
                Err(e) => return Err(corrupt(path, format!("`{name}`: {e}"))),
            };
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)
                .map_err(|e| corrupt(path, format!("`{name}`: {e}")))?;
            Ok(Some(buf))
        };
    let byteorder_name = format!("{prefix}/byteorder");
    if let Some(order) = member_text(&mut archive, &byteorder_name)? {
        if order.trim_ascii() != b"little" {
            return Err(corrupt(
                path,
                format!(
                    "`{byteorder_name}` says {:?}; clipkit reads little-endian checkpoints",
                    String::from_utf8_lossy(&order)
                ),
            ));
        }
    }
    let pickle = member_text(&mut archive, &pickle_name)?
        .ok_or_else(|| corrupt(path, format!("`{pickle_name}` is listed but unreadable")))?;
    let mut pos = 0;
    let Unpickled { value, .. } = unpickle(&pickle, &mut pos, strictness)
        .map_err(|e| unpickle_error(path, &pickle_name, e))?;
    Ok((
        value,
        Storages::Zip {
            archive,
            prefix,
            loaded: HashMap::new(),
        },
    ))
}

fn open_legacy(path: &Path, strictness: Strictness) -> Result<(Value, Storages)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut pos = LEGACY_MAGIC.len();
    let what = "the legacy checkpoint's pickles";
    let next = |pos: &mut usize, strictness| {
        unpickle(&bytes, pos, strictness).map_err(|e| unpickle_error(path, what, e))
    };
    let _protocol = next(&mut pos, Strictness::RefuseAll)?;
    let sys_info = next(&mut pos, Strictness::RefuseAll)?;
    if let Some(Value::Bool(false)) = member(&sys_info.value, "little_endian") {
        return Err(corrupt(
            path,
            "a big-endian checkpoint; clipkit reads little-endian ones",
        ));
    }
    let main = next(&mut pos, strictness)?;
    let keys = next(&mut pos, Strictness::RefuseAll)?;
    let Value::List(keys) = keys.value else {
        return Err(corrupt(path, "the legacy storage-key list is not a list"));
    };
    let elem_sizes: HashMap<&str, usize> = main
        .storages
        .iter()
        .map(|s| (s.key.as_str(), s.dtype.size_in_bytes()))
        .collect();
    let mut ranges = HashMap::new();
    for key in keys.borrow().iter() {
        let Value::Str(key) = key else {
            return Err(corrupt(path, "a legacy storage key that is not a string"));
        };
        let elem = *elem_sizes.get(&**key).ok_or_else(|| {
            corrupt(
                path,
                format!("legacy storage `{key}` is not named by the pickle"),
            )
        })?;
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            corrupt(
                path,
                format!("legacy storage `{key}`: the file ends (truncated?)"),
            )
        })?;
        let numel = u64::from_le_bytes(header.try_into().expect("8 bytes"));
        let start = pos + 8;
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!("legacy storage `{key}`: the file ends (truncated?)"),
                )
            })?;
        ranges.insert(key.to_string(), start..end);
        pos = end;
    }
    Ok((main.value, Storages::Legacy { bytes, ranges }))
}
