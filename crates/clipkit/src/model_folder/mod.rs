//! A HuggingFace CLIP model folder: the names of its files, and the one reader and writer
//! of them; and the other layouts a model arrives in ([`read_model`] reads any of them:
//! [`open_clip`] folders, OpenAI checkpoints through [`openai_layout`]).
//!
//! A folder holds `config.json` (the architecture), the weights (`model.safetensors`, or
//! shards listed in `model.safetensors.index.json`), `preprocessor_config.json` (how images
//! become pixels) and the tokenizer (`tokenizer.json`, or `vocab.json` + `merges.txt`). A
//! trainer's checkpoint folder adds its optimiser and trainer state. Everything in clipkit
//! that reads or writes such a folder — [`crate::Clip::load`], the trainer, merging, the
//! CLI — goes through this module: [`read_config`], [`read_preprocess`], [`read_tokenizer`],
//! [`ModelFolder::read`] and [`write_model_folder`] (atomic, see [`atomic_dir`]).

pub mod atomic_dir;
mod layout;
mod load;
pub mod open_clip;
pub mod openai_layout;
mod read;
pub mod torch_checkpoint;
mod write;

pub use layout::{probe_layout, Layout};
pub use load::{read_model, ModelParts, PendingTokenizer};
pub use read::{read_config, read_preprocess, read_tokenizer, read_tokenizer_files};
pub use write::write_model_folder;

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::config::ClipConfig;
use crate::image::PreprocessConfig;

/// The model configuration.
pub const CONFIG_FILE: &str = "config.json";
/// The image preprocessing configuration.
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
/// A single-file checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint, naming the shard files.
pub const SHARD_INDEX_FILE: &str = "model.safetensors.index.json";
/// The fast tokenizer, complete in one file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The BPE vocabulary of the slow-tokenizer form.
pub const VOCAB_FILE: &str = "vocab.json";
/// The BPE merges of the slow-tokenizer form.
pub const MERGES_FILE: &str = "merges.txt";
/// transformers' tokenizer settings (special tokens, context length).
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// transformers' special-token map.
pub const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";
/// The tokenizer files a model folder may carry; [`read_tokenizer_files`] copies those present.
pub const TOKENIZER_FILES: [&str; 5] = [
    TOKENIZER_FILE,
    VOCAB_FILE,
    MERGES_FILE,
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_MAP_FILE,
];
/// A trainer checkpoint's AdamW moments (an extra file of the checkpoint's model folder).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// A trainer checkpoint's step, data position and settings (an extra file, JSON).
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";

/// One file of a model folder, by name, with its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// File name inside the folder: no path separators.
    pub name: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

/// Everything a model folder holds, in memory.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// Written as `config.json`.
    pub config: ClipConfig,
    /// Weights by HF name (`vision_model.embeddings.class_embedding`, ...); any float dtype,
    /// written as f32 to `model.safetensors`.
    pub tensors: BTreeMap<String, Tensor>,
    /// Written as `preprocessor_config.json`.
    pub preprocess: PreprocessConfig,
    /// Tokenizer files, written as they are: `tokenizer.json`, or `vocab.json` and
    /// `merges.txt`, at least (see [`crate::tokenizer::fit`] and [`read_tokenizer_files`]).
    pub tokenizer: Vec<FolderFile>,
    /// Further files written in the same atomic step (a trainer's optimizer state, say).
    pub extra: Vec<FolderFile>,
}
