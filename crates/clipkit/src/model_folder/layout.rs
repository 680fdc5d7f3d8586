//! Which checkpoint layouts clipkit can use, decided from a path without reading weights:
//! the one probe that `clipkit models list` and model resolution ask.

use std::io::Read;
use std::path::Path;

use super::{CONFIG_FILE, SHARD_INDEX_FILE, WEIGHTS_FILE};

/// A checkpoint layout clipkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A HuggingFace CLIP model folder (`config.json` and `model.safetensors` or its shard
    /// index): [`crate::Clip::load`] loads it.
    HfFolder,
    /// A PyTorch checkpoint file (a TorchScript `.pt` archive, a `torch.save` zip or legacy
    /// file): [`super::torch_checkpoint`] reads its tensors; an OpenAI-layout ViT converts with
    /// [`super::openai_layout::read_openai_checkpoint`] (`clipkit models convert`).
    TorchCheckpoint,
}

/// The layout at `path`, from its file names or its first bytes; `None` for anything clipkit
/// cannot use (including open_clip folders, not supported yet).
pub fn probe_layout(path: &Path) -> Option<Layout> {
    if path.is_dir() {
        let has_weights =
            path.join(WEIGHTS_FILE).is_file() || path.join(SHARD_INDEX_FILE).is_file();
        return (path.join(CONFIG_FILE).is_file() && has_weights).then_some(Layout::HfFolder);
    }
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).ok()?;
    file.read_exact(&mut head).ok()?;
    // A zip archive (torch.save since 1.6, TorchScript) or the legacy format's first pickle
    // (protocol 2, then the magic number as a 10-byte long).
    (head == *b"PK\x03\x04" || head == [0x80, 0x02, 0x8a, 0x0a]).then_some(Layout::TorchCheckpoint)
}
