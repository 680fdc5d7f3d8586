//! [`read_model`]: a model in any layout clipkit reads, as the parts [`crate::Clip`] is
//! built from.

use std::path::Path;

use super::layout::{probe_layout, Layout};
use super::open_clip::read_open_clip_folder;
use super::openai_layout::read_openai_model;
use super::{read_config, read_preprocess, read_tokenizer};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::image::PreprocessConfig;
use crate::model::Architecture;
use crate::tokenizer::ClipTokenizer;

/// A model's parts, read from any layout: what [`crate::Clip::load_with`] builds on.
pub struct ModelParts {
    /// The network's shape (either image tower).
    pub architecture: Architecture,
    /// How images become pixels.
    pub preprocess: PreprocessConfig,
    /// The tokenizer, bound to the text tower's context length, read when asked.
    pub tokenizer: PendingTokenizer,
    /// The weights under clipkit's names (HF names; a ModifiedResNet's under `visual.`).
    pub weights: Checkpoint,
}

/// A model's tokenizer, read on [`PendingTokenizer::read`] rather than with the rest of the
/// model: parsing CLIP's 49,408-token `tokenizer.json` takes about 0.1 s, which
/// [`crate::Clip::load_with`] spends on another core while the weights are packed.
pub struct PendingTokenizer(Box<dyn FnOnce() -> Result<ClipTokenizer> + Send>);

impl PendingTokenizer {
    /// A tokenizer that `read` will produce.
    pub fn new(read: impl FnOnce() -> Result<ClipTokenizer> + Send + 'static) -> Self {
        PendingTokenizer(Box::new(read))
    }

    /// CLIP's own vocabulary ([`ClipTokenizer::clip_vocabulary`]) at `context_length`.
    pub fn clip_vocabulary(context_length: usize) -> Self {
        Self::new(move || ClipTokenizer::clip_vocabulary(context_length))
    }

    /// Reads the tokenizer (an unreadable or invalid tokenizer file is an error here).
    pub fn read(self) -> Result<ClipTokenizer> {
        (self.0)()
    }
}

/// Reads the model at `path`: a HuggingFace folder, an open_clip folder
/// (`open_clip_config.json`) or an OpenAI / PyTorch checkpoint file (`.pt`, `.bin`,
/// `.pth`). A folder of neither kind gets the HuggingFace reader's error naming the file it
/// lacks; a file that is not a PyTorch checkpoint is [`Error::CorruptCheckpoint`].
pub fn read_model(path: &Path) -> Result<ModelParts> {
    match probe_layout(path) {
        Some(Layout::OpenClipFolder) => read_open_clip_folder(path),
        Some(Layout::TorchCheckpoint) => read_openai_model(path),
        Some(Layout::HfFolder) => read_hf_folder(path),
        None if path.is_file() => Err(Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            message: "neither a model folder nor a PyTorch checkpoint (.pt, .bin, .pth)".into(),
        }),
        None => read_hf_folder(path),
    }
}

fn read_hf_folder(dir: &Path) -> Result<ModelParts> {
    let config = read_config(dir)?;
    let preprocess = read_preprocess(dir, &config)?;
    let tokenizer = {
        let (dir, context_length) = (
            dir.to_path_buf(),
            config.text_config.max_position_embeddings,
        );
        PendingTokenizer::new(move || read_tokenizer(&dir, context_length))
    };
    let weights = Checkpoint::open_dir(dir)?;
    Ok(ModelParts {
        architecture: Architecture::from(&config),
        preprocess,
        tokenizer,
        weights,
    })
}
