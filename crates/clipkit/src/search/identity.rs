//! Which model made a store's embeddings: a short hash of the model folder's content.
//!
//! The identity hashes, with BLAKE3, every small file that shapes an embedding in full
//! (`config.json`, `preprocessor_config.json`, the tokenizer files) and each weight file's
//! length, its first MiB (the safetensors header: every tensor's name, dtype and shape) and
//! 64 KiB at 32 evenly spaced places. Any retraining changes every weight, so samples catch
//! it; copying, renaming or touching the folder does not change the identity.
//!
//! Embeddings computed at another [`Precision`] are other vectors: [`embedding_identity`]
//! appends the precision to the model's identity (fp32 adds nothing, so stores made before
//! precisions existed keep theirs), and a store's model check then refuses the mix.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{Result, SearchError};
use crate::model::Precision;
use crate::model_folder::{
    CONFIG_FILE, MERGES_FILE, PREPROCESSOR_FILE, SHARD_INDEX_FILE, TOKENIZER_FILE, VOCAB_FILE,
};

const SMALL_FILES: [&str; 6] = [
    CONFIG_FILE,
    PREPROCESSOR_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    MERGES_FILE,
    SHARD_INDEX_FILE,
];
const HEAD: u64 = 1 << 20;
const SAMPLE: u64 = 1 << 16;
const SAMPLES: u64 = 32;

/// The identity of the model folder `dir`: 16 hexadecimal digits.
pub fn model_identity(dir: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for name in SMALL_FILES {
        let path = dir.join(name);
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| SearchError::io(&path, e))?;
            hasher.update(name.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    let mut weights: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| SearchError::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    weights.sort();
    for path in &weights {
        hash_sampled(&mut hasher, path)?;
    }
    Ok(hasher.finalize().to_hex()[..16].to_string())
}

/// The identity of the embeddings `dir`'s model makes at `precision`: [`model_identity`] for
/// fp32, followed by `@bf16`, `@int8` or `@w8a8` otherwise.
pub fn embedding_identity(dir: &Path, precision: Precision) -> Result<String> {
    let model = model_identity(dir)?;
    Ok(match precision {
        Precision::Fp32 => model,
        other => format!("{model}@{other}"),
    })
}

fn hash_sampled(hasher: &mut blake3::Hasher, path: &Path) -> Result<()> {
    let io = |e| SearchError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    hasher.update(&len.to_le_bytes());
    let mut buf = vec![0u8; HEAD as usize];
    let head = read_at(&mut file, 0, &mut buf).map_err(io)?;
    hasher.update(&buf[..head]);
    if len > HEAD {
        let stride = (len - HEAD) / SAMPLES;
        for i in 0..SAMPLES {
            let n =
                read_at(&mut file, HEAD + i * stride, &mut buf[..SAMPLE as usize]).map_err(io)?;
            hasher.update(&buf[..n]);
        }
    }
    Ok(())
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{open_or_create, SearchError, StoreLocation};

    /// fp32 keeps the model's identity (older indexes stay valid); every other precision
    /// has its own, and a store made at one precision refuses a query at another.
    #[test]
    fn each_precision_has_its_own_identity_and_stores_refuse_the_mix() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-a");
        let model = model_identity(&dir).unwrap();
        let ids: Vec<String> = Precision::ALL
            .iter()
            .map(|&p| embedding_identity(&dir, p).unwrap())
            .collect();
        assert_eq!(ids[0], model);
        for (i, a) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|b| a != b), "{ids:?}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let location = StoreLocation::Folder(tmp.path().join("index"));
        let int8 = embedding_identity(&dir, Precision::Int8).unwrap();
        let store = open_or_create(&location, &int8, 4).unwrap();
        store.check_model(&int8).unwrap();
        let err = store.check_model(&model).unwrap_err();
        assert!(matches!(err, SearchError::ModelMismatch { .. }), "{err}");
        assert!(err.to_string().contains("--precision"), "{err}");
        drop(store);
        let reopened = open_or_create(&location, &model, 4);
        assert!(matches!(reopened, Err(SearchError::ModelMismatch { .. })));
    }
}
