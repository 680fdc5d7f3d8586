//! Which checkpoint layouts clipkit can use, decided from a path without reading weights:
//! the one probe that `clipkit models list` and model resolution ask. A new layout adds a
//! variant and a test here.

use std::io::Read;
use std::path::Path;

use super::open_clip::{OPEN_CLIP_BIN_FILE, OPEN_CLIP_CONFIG_FILE, OPEN_CLIP_SAFETENSORS_FILE};
use super::{CONFIG_FILE, MERGES_FILE, SHARD_INDEX_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE};

/// A checkpoint layout clipkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A HuggingFace CLIP model folder (`config.json` with `"model_type": "clip"`,
    /// `model.safetensors` or its shard index, a tokenizer): [`crate::Clip::load`] loads it.
    HfFolder,
    /// An open_clip folder (`open_clip_config.json` and `open_clip_model.safetensors` or
    /// `open_clip_pytorch_model.bin`): [`super::open_clip`] reads it.
    OpenClipFolder,
    /// A PyTorch checkpoint file (a TorchScript `.pt` archive, a `torch.save` zip or legacy
    /// file): [`super::torch_checkpoint`] reads its tensors; an OpenAI-layout checkpoint
    /// loads as a model ([`super::openai_layout::read_openai_model`]) and a ViT converts with
    /// [`super::openai_layout::read_openai_checkpoint`] (`clipkit models convert`).
    TorchCheckpoint,
}

impl Layout {
    /// A short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Layout::HfFolder => "huggingface",
            Layout::OpenClipFolder => "open_clip",
            Layout::TorchCheckpoint => "pytorch checkpoint",
        }
    }
}

/// The layout at `path`, from its file names, the model type in `config.json` or a file's
/// first bytes; `None` for anything clipkit cannot use. A folder in both layouts (a Hub
/// repository may carry both) is read as HuggingFace's.
pub fn probe_layout(path: &Path) -> Option<Layout> {
    if path.is_dir() {
        if is_hf_clip_folder(path) {
            return Some(Layout::HfFolder);
        }
        return is_open_clip_folder(path).then_some(Layout::OpenClipFolder);
    }
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).ok()?;
    file.read_exact(&mut head).ok()?;
    // A zip archive (torch.save since 1.6, TorchScript) or the legacy format's first pickle
    // (protocol 2, then the magic number as a 10-byte long).
    (head == *b"PK\x03\x04" || head == [0x80, 0x02, 0x8a, 0x0a]).then_some(Layout::TorchCheckpoint)
}

fn is_hf_clip_folder(dir: &Path) -> bool {
    let has = |name: &str| dir.join(name).is_file();
    let clip_config = std::fs::read(dir.join(CONFIG_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|config| config["model_type"] == "clip");
    let weights = has(WEIGHTS_FILE) || has(SHARD_INDEX_FILE);
    let tokenizer = has(TOKENIZER_FILE) || (has(VOCAB_FILE) && has(MERGES_FILE));
    clip_config && weights && tokenizer
}

fn is_open_clip_folder(dir: &Path) -> bool {
    let has = |name: &str| dir.join(name).is_file();
    has(OPEN_CLIP_CONFIG_FILE) && (has(OPEN_CLIP_SAFETENSORS_FILE) || has(OPEN_CLIP_BIN_FILE))
}
