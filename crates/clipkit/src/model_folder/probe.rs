//! Which layout a folder has, if clipkit can load it: the one question `clipkit models
//! list` asks of every cached snapshot. A new layout adds a variant and a test here.

use std::path::Path;

use super::{CONFIG_FILE, MERGES_FILE, SHARD_INDEX_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE};

/// A model layout clipkit loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLayout {
    /// transformers' CLIP folder: `config.json` with `"model_type": "clip"`, safetensors
    /// weights (one file or shards), a tokenizer.
    HuggingFace,
}

impl FolderLayout {
    /// A short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            FolderLayout::HuggingFace => "huggingface",
        }
    }
}

/// The layout of `dir` when clipkit can load it, judged from file names and the model
/// type in `config.json` (weights are not read); `None` otherwise.
pub fn probe(dir: &Path) -> Option<FolderLayout> {
    let has = |name: &str| dir.join(name).is_file();
    let clip_config = std::fs::read(dir.join(CONFIG_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|config| config["model_type"] == "clip");
    let weights = has(WEIGHTS_FILE) || has(SHARD_INDEX_FILE);
    let tokenizer = has(TOKENIZER_FILE) || (has(VOCAB_FILE) && has(MERGES_FILE));
    (clip_config && weights && tokenizer).then_some(FolderLayout::HuggingFace)
}
