//! CLIP's byte-level BPE tokenizer, read from a model folder (see
//! [`crate::model_folder::read_tokenizer`]) or fitted to a caption corpus
//! ([`fit`]).
//!
//! `tokenizer.json` is loaded by the `tokenizers` crate exactly as transformers' fast
//! tokenizer loads it. Folders that carry only `vocab.json` and `merges.txt` get the same
//! pipeline transformers builds when it converts the slow CLIP tokenizer: NFC, runs of
//! whitespace to one space, lower-casing, CLIP's word-splitting pattern, byte-level BPE with
//! `</w>` word ends, and start/end tokens around the text.

mod clip_vocab;
mod fit;
mod pipeline;

use std::path::{Path, PathBuf};

use tokenizers::{Model, Tokenizer};

use crate::error::{Error, Result};

pub use clip_vocab::clip_vocab_files;
pub use fit::{fit, Alphabet, FitOptions, FittedTokenizer};
pub use pipeline::{END_OF_WORD, END_TOKEN, START_TOKEN};

/// One text turned into token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Start token, the text's tokens, end token; at most the context length.
    pub ids: Vec<u32>,
    /// Whether tokens were dropped to fit the context length.
    pub truncated: bool,
}

/// A CLIP tokenizer bound to a context length.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    context_length: usize,
    source: PathBuf,
}

impl ClipTokenizer {
    /// Loads a fast tokenizer file (`tokenizer.json`), see
    /// [`crate::model_folder::read_tokenizer`].
    pub fn from_json_file(path: &Path, context_length: usize) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::new(inner, context_length, path.to_path_buf())
    }

    /// Builds the fast tokenizer transformers derives from CLIP's BPE `vocab` (JSON) and
    /// `merges` (text) files.
    pub fn from_vocab_and_merges(
        vocab: &Path,
        merges: &Path,
        context_length: usize,
    ) -> Result<Self> {
        let inner = from_vocab_and_merges(vocab, merges)?;
        Self::new(inner, context_length, vocab.to_path_buf())
    }

    fn new(inner: Tokenizer, context_length: usize, source: PathBuf) -> Result<Self> {
        if context_length < 2 {
            return Err(Error::InvalidArgument(format!(
                "context length {context_length} leaves no room for start and end tokens"
            )));
        }
        Ok(ClipTokenizer {
            inner,
            context_length,
            source,
        })
    }

    /// The most ids a text may have, start and end tokens included.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Tokenizes one text. Too long a text keeps its start token, its first
    /// `context_length - 2` tokens and its end token, and is marked `truncated`.
    pub fn encode(&self, text: &str) -> Result<Tokenized> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: self.source.clone(),
                message: format!("cannot encode {text:?}: {e}"),
            })?;
        let mut ids = encoding.get_ids().to_vec();
        let truncated = ids.len() > self.context_length;
        if truncated {
            let end = ids[ids.len() - 1];
            ids.truncate(self.context_length - 1);
            ids.push(end);
        }
        Ok(Tokenized { ids, truncated })
    }

    /// Tokenizes many texts.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Tokenized>> {
        texts.iter().map(|t| self.encode(t)).collect()
    }
}

/// The fast tokenizer transformers derives from CLIP's `vocab.json` and `merges.txt`.
fn from_vocab_and_merges(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
    let fail = |path: &Path, e: tokenizers::Error| Error::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let (Some(vocab_str), Some(merges_str)) = (vocab.to_str(), merges.to_str()) else {
        return Err(Error::InvalidArgument(format!(
            "non-UTF-8 path {}",
            vocab.display()
        )));
    };
    let bpe = pipeline::bpe_builder()
        .files(vocab_str.into(), merges_str.into())
        .build()
        .map_err(|e| fail(vocab, e))?;
    let token_id = |token: &str| {
        bpe.token_to_id(token).ok_or_else(|| Error::Tokenizer {
            path: vocab.to_path_buf(),
            message: format!("vocabulary lacks {token}"),
        })
    };
    let start = token_id(START_TOKEN)?;
    let end = token_id(END_TOKEN)?;
    pipeline::clip_tokenizer(bpe, start, end).map_err(|e| fail(vocab, e))
}
