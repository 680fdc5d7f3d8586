//! Reading a model folder: each part on its own (what [`crate::Clip::load`] and the trainer
//! need), or all of it into memory ([`ModelFolder::read`], for merging).

use std::path::{Path, PathBuf};

use super::{
    FolderFile, ModelFolder, CONFIG_FILE, MERGES_FILE, PREPROCESSOR_FILE, TOKENIZER_FILE,
    TOKENIZER_FILES, VOCAB_FILE,
};
use crate::checkpoint::Checkpoint;
use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::image::preprocess::ResizeTarget;
use crate::image::PreprocessConfig;
use crate::tokenizer::ClipTokenizer;

impl ModelFolder {
    /// Reads a model folder into memory: config, every tensor as f32, preprocessing and
    /// tokenizer files (`extra` is left empty).
    pub fn read(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        Ok(ModelFolder {
            preprocess: read_preprocess(dir, &config)?,
            tensors: Checkpoint::open_dir(dir)?.into_tensors()?,
            tokenizer: read_tokenizer_files(dir)?,
            config,
            extra: Vec::new(),
        })
    }
}

/// The model's configuration, `config.json`; an error naming the folder when it is not a
/// folder or lacks the file.
pub fn read_config(dir: &Path) -> Result<ClipConfig> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            hint: "not a model folder".into(),
        });
    }
    ClipConfig::from_file(&require(dir, CONFIG_FILE, "the model's configuration")?)
}

/// The image preprocessing, `preprocessor_config.json`, checked to produce the image size
/// `config`'s vision tower takes.
pub fn read_preprocess(dir: &Path, config: &ClipConfig) -> Result<PreprocessConfig> {
    let path = require(
        dir,
        PREPROCESSOR_FILE,
        "how images are resized and normalised",
    )?;
    let preprocess = PreprocessConfig::from_file(&path)?;
    check_input_size(&preprocess, config, &path)?;
    Ok(preprocess)
}

/// The tokenizer, bound to `context_length` (the text tower's `max_position_embeddings`):
/// `tokenizer.json`, or else `vocab.json` + `merges.txt`.
pub fn read_tokenizer(dir: &Path, context_length: usize) -> Result<ClipTokenizer> {
    let json = dir.join(TOKENIZER_FILE);
    if json.is_file() {
        return ClipTokenizer::from_json_file(&json, context_length);
    }
    let hint = "the model folder needs tokenizer.json, or vocab.json and merges.txt";
    let vocab = require(dir, VOCAB_FILE, hint)?;
    let merges = require(dir, MERGES_FILE, hint)?;
    ClipTokenizer::from_vocab_and_merges(&vocab, &merges, context_length)
}

/// The tokenizer files of a model folder (those of [`TOKENIZER_FILES`] present); an error
/// naming the folder when it has neither `tokenizer.json` nor `vocab.json` + `merges.txt`.
pub fn read_tokenizer_files(dir: &Path) -> Result<Vec<FolderFile>> {
    let mut files = Vec::new();
    for name in TOKENIZER_FILES {
        let path = dir.join(name);
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            files.push(FolderFile {
                name: name.to_string(),
                bytes,
            });
        }
    }
    check_tokenizer_complete(&files, dir)?;
    Ok(files)
}

/// An error unless `files` hold `tokenizer.json`, or `vocab.json` and `merges.txt`.
pub(super) fn check_tokenizer_complete(files: &[FolderFile], dir: &Path) -> Result<()> {
    let has = |name: &str| files.iter().any(|f| f.name == name);
    if has(TOKENIZER_FILE) || (has(VOCAB_FILE) && has(MERGES_FILE)) {
        return Ok(());
    }
    Err(Error::MissingFile {
        path: dir.join(TOKENIZER_FILE),
        hint: "a model folder needs tokenizer.json, or vocab.json and merges.txt".into(),
    })
}

fn require(dir: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingFile {
            path,
            hint: what.into(),
        })
    }
}

/// The preprocessor must produce exactly the image size the vision tower was built for.
fn check_input_size(preprocess: &PreprocessConfig, config: &ClipConfig, path: &Path) -> Result<()> {
    let s = config.vision_config.image_size as u32;
    let produced = match (preprocess.crop, preprocess.resize) {
        (Some(crop), _) => Some(crop),
        (None, Some(ResizeTarget::Exact { height, width })) => Some((height, width)),
        _ => None,
    };
    match produced {
        Some(hw) if hw == (s, s) => Ok(()),
        other => Err(Error::Config {
            path: path.to_path_buf(),
            field: "crop_size".into(),
            message: format!(
                "produces {other:?} pixels but {CONFIG_FILE}'s vision_config.image_size is {s}"
            ),
        }),
    }
}
