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

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
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

/// What a tokenizer's vocabulary can spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// It holds all 256 byte-level characters, as CLIP's own does: any text is spelled, a
    /// rare word as several pieces.
    Open,
    /// It lacks some byte-level characters: a vocabulary fitted to a caption corpus
    /// ([`fit`], as the quickstart model's), whose whole-word tokens are the only words the
    /// model met in training; other characters become the unknown token.
    Closed,
}

/// A CLIP tokenizer bound to a context length.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    context_length: usize,
    source: PathBuf,
    vocabulary: Vocabulary,
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

    /// CLIP's own tokenizer from the vocabulary clipkit carries (OpenAI's
    /// `bpe_simple_vocab_16e6.txt.gz`, 49408 tokens), as OpenAI's `clip.tokenize` and
    /// open_clip tokenize: for checkpoints without tokenizer files (OpenAI `.pt`, open_clip
    /// folders).
    pub fn clip_vocabulary(context_length: usize) -> Result<Self> {
        let source = PathBuf::from("data/bpe_simple_vocab_16e6.txt.gz");
        let bpe = clip_vocab::clip_bpe()?;
        let fail = |message: String| Error::Tokenizer {
            path: source.clone(),
            message,
        };
        let id = |token: &str| {
            bpe.token_to_id(token)
                .ok_or_else(|| fail(format!("vocabulary lacks {token}")))
        };
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        let inner = pipeline::clip_tokenizer(bpe, start, end).map_err(|e| fail(e.to_string()))?;
        Self::new(inner, context_length, source)
    }

    fn new(inner: Tokenizer, context_length: usize, source: PathBuf) -> Result<Self> {
        if context_length < 2 {
            return Err(Error::InvalidArgument(format!(
                "context length {context_length} leaves no room for start and end tokens"
            )));
        }
        let open = ByteLevel::alphabet()
            .iter()
            .all(|c| inner.token_to_id(&c.to_string()).is_some());
        Ok(ClipTokenizer {
            inner,
            context_length,
            source,
            vocabulary: if open {
                Vocabulary::Open
            } else {
                Vocabulary::Closed
            },
        })
    }

    /// Whether the vocabulary spells any text or only its corpus's words.
    pub fn vocabulary(&self) -> Vocabulary {
        self.vocabulary
    }

    /// The words of `text` this tokenizer cannot represent, once each, in order: words with
    /// a character that becomes the unknown token and, for a [`Vocabulary::Closed`]
    /// vocabulary, every word that is not one whole-word token (a word its corpus never
    /// had). Words made only of ASCII punctuation are not reported (a closed vocabulary
    /// maps a trailing full stop to the end token, where the text ends anyway). Empty for
    /// CLIP's own vocabulary, which spells every text.
    pub fn unknown_words(&self, text: &str) -> Result<Vec<String>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: self.source.clone(),
                message: format!("cannot encode {text:?}: {e}"),
            })?;
        let unknown_id = self.inner.token_to_id(END_TOKEN);
        let mut words: Vec<WordTokens> = Vec::new();
        for ((id, word), &(start, end)) in encoding
            .get_ids()
            .iter()
            .zip(encoding.get_word_ids())
            .zip(encoding.get_offsets())
        {
            let Some(word) = *word else { continue };
            let unknown = Some(*id) == unknown_id;
            match words.last_mut() {
                Some(last) if last.word == word => {
                    last.tokens += 1;
                    last.unknown |= unknown;
                    last.span = last.span.start.min(start)..last.span.end.max(end);
                }
                _ => words.push(WordTokens {
                    word,
                    tokens: 1,
                    unknown,
                    span: start..end,
                }),
            }
        }
        let mut found: Vec<String> = Vec::new();
        for tokens in words {
            let closed_miss = self.vocabulary == Vocabulary::Closed && tokens.tokens > 1;
            let Some(word) = text.get(tokens.span) else {
                continue;
            };
            if (tokens.unknown || closed_miss)
                && !word.chars().all(|c| c.is_ascii_punctuation())
                && !found.iter().any(|w| w == word)
            {
                found.push(word.to_string());
            }
        }
        Ok(found)
    }

    /// [`ClipTokenizer::unknown_words`] of several texts, once each, in order of first
    /// appearance.
    pub fn unknown_words_in<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<String>> {
        let mut found: Vec<String> = Vec::new();
        for text in texts {
            for word in self.unknown_words(text.as_ref())? {
                if !found.contains(&word) {
                    found.push(word);
                }
            }
        }
        Ok(found)
    }

    /// Ids the tokenizer can produce (vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
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

/// The tokens one word of a text became.
struct WordTokens {
    /// The word's index in the text.
    word: u32,
    /// How many tokens.
    tokens: usize,
    /// Whether one is the unknown token.
    unknown: bool,
    /// Where the word is in the text, in bytes.
    span: std::ops::Range<usize>,
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
