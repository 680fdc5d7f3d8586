//! CLIP's byte-level BPE tokenizer, read from a model folder.
//!
//! `tokenizer.json` is loaded by the `tokenizers` crate exactly as transformers' fast
//! tokenizer loads it. Folders that carry only `vocab.json` and `merges.txt` get the same
//! pipeline transformers builds when it converts the slow CLIP tokenizer: NFC, runs of
//! whitespace to one space, lower-casing, CLIP's word-splitting pattern, byte-level BPE with
//! `</w>` word ends, and start/end tokens around the text.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

const START_TOKEN: &str = "<|startoftext|>";
const END_TOKEN: &str = "<|endoftext|>";
/// CLIP's word pattern: contractions, letter runs, single digits, runs of other symbols.
const WORD_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

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
    /// Loads `tokenizer.json` from `dir`, or else `vocab.json` + `merges.txt`.
    pub fn from_dir(dir: &Path, context_length: usize) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let (inner, source) = if json.is_file() {
            let inner = Tokenizer::from_file(&json).map_err(|e| Error::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?;
            (inner, json)
        } else {
            (from_vocab_and_merges(dir)?, dir.join("vocab.json"))
        };
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
fn from_vocab_and_merges(dir: &Path) -> Result<Tokenizer> {
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    for path in [&vocab, &merges] {
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.clone(),
                hint: "the model folder needs tokenizer.json, or vocab.json and merges.txt".into(),
            });
        }
    }
    let fail = |path: &Path, e: tokenizers::Error| Error::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let (Some(vocab_str), Some(merges_str)) = (vocab.to_str(), merges.to_str()) else {
        return Err(Error::InvalidArgument(format!(
            "non-UTF-8 path {}",
            dir.display()
        )));
    };
    let bpe = BPE::from_file(vocab_str, merges_str)
        .unk_token(END_TOKEN.into())
        .end_of_word_suffix("</w>".into())
        .build()
        .map_err(|e| fail(&vocab, e))?;
    let token_id = |token: &str| {
        bpe_token_id(&bpe, token).ok_or_else(|| Error::Tokenizer {
            path: vocab.clone(),
            message: format!("vocabulary lacks {token}"),
        })
    };
    let start = token_id(START_TOKEN)?;
    let end = token_id(END_TOKEN)?;

    let mut tokenizer = Tokenizer::new(bpe);
    let normalizer = NormalizerSequence::new(vec![
        NFC.into(),
        Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )
        .map_err(|e| fail(&vocab, e))?
        .into(),
        Lowercase.into(),
    ]);
    let words = Split::new(
        SplitPattern::Regex(WORD_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| fail(&vocab, e))?;
    let pre =
        PreTokenizerSequence::new(vec![words.into(), ByteLevel::new(false, true, true).into()]);
    tokenizer
        .with_normalizer(Some(normalizer))
        .with_pre_tokenizer(Some(pre))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(
            RobertaProcessing::new((END_TOKEN.into(), end), (START_TOKEN.into(), start))
                .trim_offsets(false)
                .add_prefix_space(false),
        ));
    tokenizer.add_special_tokens(&[
        AddedToken::from(START_TOKEN, true),
        AddedToken::from(END_TOKEN, true),
    ]);
    Ok(tokenizer)
}

fn bpe_token_id(bpe: &BPE, token: &str) -> Option<u32> {
    use tokenizers::Model;
    bpe.token_to_id(token)
}
