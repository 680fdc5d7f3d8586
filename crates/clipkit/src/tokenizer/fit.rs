//! Fitting a CLIP-style tokenizer to a caption corpus, so that a small model trained on it
//! needs a small embedding table instead of CLIP's 49,408 rows.
//!
//! The result is CLIP's tokenizer in every respect but its vocabulary: same normaliser,
//! word pattern, byte-level mapping, `</w>` word ends and start/end tokens. The vocabulary
//! holds each character of an alphabet twice (inside a word and ending one, `a` and
//! `a</w>`), the merges that byte-pair encoding learns from the corpus, run until every word
//! of the corpus is one token (or a size limit is reached), and the two special tokens
//! last, as in CLIP. Words outside the corpus fall back to smaller pieces, down to single
//! characters.
//!
//! The merges are learned here rather than by the `tokenizers` crate's trainer, which
//! numbers tokens in hash-map order: the same corpus would give different tokenizers from
//! run to run. Here ties between equally frequent pairs go to the pair of lower ids, so a
//! corpus always gives the same files.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::path::PathBuf;

use serde::Serialize;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

use super::pipeline::{self, END_OF_WORD, END_TOKEN, START_TOKEN};
use super::ClipTokenizer;
use crate::config::TextConfig;
use crate::error::{Error, Result};
use crate::model_folder::{
    FolderFile, MERGES_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, VOCAB_FILE,
};

/// Which characters the vocabulary holds as single tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alphabet {
    /// The characters of the corpus (as bytes: an accented letter is two): the smallest
    /// vocabulary. Any other character becomes the unknown token, `<|endoftext|>` as in
    /// CLIP, where the text tower then pools: the text reads as ending there, which is
    /// harmless for a trailing full stop the corpus lacks and cuts off the rest elsewhere
    /// (a model trained on the corpus has learned nothing for such characters either way).
    #[default]
    Corpus,
    /// All 256 bytes, as in CLIP's own vocabulary (512 ids before merges): no text ever
    /// needs the unknown token.
    AllBytes,
}

/// How [`fit`] builds the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitOptions {
    /// The single-character tokens. Default [`Alphabet::Corpus`].
    pub alphabet: Alphabet,
    /// The most ids the vocabulary may hold, special tokens included; merging stops there.
    /// Default `None`: merge until every word of the corpus is one token.
    pub max_vocab_size: Option<usize>,
    /// Context length of the returned tokenizer, written as `model_max_length` to
    /// `tokenizer_config.json`. Default 77; at least 2.
    pub context_length: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            alphabet: Alphabet::Corpus,
            max_vocab_size: None,
            context_length: 77,
        }
    }
}

/// A tokenizer fitted to a corpus: usable at once, and as the files of a model folder.
#[derive(Clone)]
pub struct FittedTokenizer {
    /// The tokenizer, as [`crate::model_folder::read_tokenizer`] would load it from
    /// `files`.
    pub tokenizer: ClipTokenizer,
    /// `tokenizer.json`, `vocab.json`, `merges.txt` and `tokenizer_config.json`, which
    /// transformers' `CLIPTokenizer` loads with or without `tokenizer.json`.
    pub files: Vec<FolderFile>,
    /// Number of ids, special tokens included: the text tower's `vocab_size`.
    pub vocab_size: usize,
    /// Id of `<|startoftext|>`, next to last.
    pub bos_token_id: u32,
    /// Id of `<|endoftext|>`, the last one; the text tower pools at its first occurrence.
    pub eos_token_id: u32,
    /// Id used for padding: `<|endoftext|>`, as in CLIP.
    pub pad_token_id: u32,
}

impl FittedTokenizer {
    /// Sets a text tower's `vocab_size` and token ids to this tokenizer's.
    pub fn configure(&self, text: &mut TextConfig) {
        text.vocab_size = self.vocab_size;
        text.bos_token_id = self.bos_token_id;
        text.eos_token_id = self.eos_token_id;
        text.pad_token_id = self.pad_token_id;
    }
}

/// The name fitting errors carry in place of a file.
fn origin() -> PathBuf {
    PathBuf::from("(fitted tokenizer)")
}

fn fail(e: tokenizers::Error) -> Error {
    Error::Tokenizer {
        path: origin(),
        message: e.to_string(),
    }
}

/// Fits a CLIP-style byte-level BPE tokenizer to `captions` (see the module docs).
/// The same captions and options always give the same tokenizer.
pub fn fit<S: AsRef<str>>(captions: &[S], options: &FitOptions) -> Result<FittedTokenizer> {
    let words = count_words(captions)?;
    let mut alphabet: BTreeSet<char> = match options.alphabet {
        Alphabet::Corpus => BTreeSet::new(),
        Alphabet::AllBytes => ByteLevel::alphabet().into_iter().collect(),
    };
    alphabet.extend(words.keys().flat_map(|w| w.chars()));
    let mut symbols = Symbols::default();
    for &c in &alphabet {
        symbols.intern(c.to_string());
    }
    for &c in &alphabet {
        symbols.intern(format!("{c}{END_OF_WORD}"));
    }
    let base = symbols.names.len() + 2;
    if let Some(max) = options.max_vocab_size {
        if max < base {
            return Err(Error::InvalidArgument(format!(
                "max_vocab_size {max} cannot hold the alphabet and special tokens ({base} ids)"
            )));
        }
    }
    let merges = learn_merges(&words, &mut symbols, options.max_vocab_size);
    build(symbols, merges, options.context_length)
}

/// Words of the corpus after CLIP's normaliser and pre-tokeniser (byte-level characters),
/// with their counts.
fn count_words<S: AsRef<str>>(captions: &[S]) -> Result<BTreeMap<String, u64>> {
    let normalizer = pipeline::normalizer().map_err(fail)?;
    let pre_tokenizer = pipeline::pre_tokenizer().map_err(fail)?;
    let mut words = BTreeMap::new();
    for caption in captions {
        let mut normalized = NormalizedString::from(caption.as_ref());
        normalizer.normalize(&mut normalized).map_err(fail)?;
        let mut pieces = PreTokenizedString::from(normalized);
        pre_tokenizer.pre_tokenize(&mut pieces).map_err(fail)?;
        for (word, _, _) in pieces.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            if !word.is_empty() && word != START_TOKEN && word != END_TOKEN {
                *words.entry(word.to_string()).or_insert(0) += 1;
            }
        }
    }
    Ok(words)
}

/// Token strings numbered in order of creation.
#[derive(Default)]
struct Symbols {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Symbols {
    fn intern(&mut self, name: String) -> u32 {
        if let Some(&id) = self.ids.get(&name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.clone(), id);
        self.names.push(name);
        id
    }
}

type Pair = (u32, u32);

/// Byte-pair merges, most frequent pair first, until every word is one symbol or the
/// vocabulary (with the two special tokens) reaches `max_vocab_size`.
fn learn_merges(
    words: &BTreeMap<String, u64>,
    symbols: &mut Symbols,
    max_vocab_size: Option<usize>,
) -> Vec<Pair> {
    let mut pieces: Vec<Vec<u32>> = Vec::with_capacity(words.len());
    let mut counts: Vec<u64> = Vec::with_capacity(words.len());
    for (word, &count) in words {
        let chars: Vec<char> = word.chars().collect();
        let last = chars.len() - 1;
        let ids = chars.iter().enumerate().map(|(i, c)| {
            let name = if i == last {
                format!("{c}{END_OF_WORD}")
            } else {
                c.to_string()
            };
            symbols.ids[&name]
        });
        pieces.push(ids.collect());
        counts.push(count);
    }
    let mut pair_counts: HashMap<Pair, u64> = HashMap::new();
    let mut holders: HashMap<Pair, BTreeSet<usize>> = HashMap::new();
    for (w, word) in pieces.iter().enumerate() {
        for pair in word.windows(2) {
            *pair_counts.entry((pair[0], pair[1])).or_insert(0) += counts[w];
            holders.entry((pair[0], pair[1])).or_default().insert(w);
        }
    }
    // Highest count first; among equal counts, the pair of lower ids.
    let mut queue: BinaryHeap<(u64, Reverse<Pair>)> = pair_counts
        .iter()
        .map(|(&pair, &count)| (count, Reverse(pair)))
        .collect();
    let mut merges = Vec::new();
    while let Some((count, Reverse(pair))) = queue.pop() {
        if max_vocab_size.is_some_and(|max| symbols.names.len() + 2 >= max) {
            break;
        }
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if current != count {
            // A stale entry: counts changed since it was queued.
            if current > 0 {
                queue.push((current, Reverse(pair)));
            }
            continue;
        }
        let merged = format!(
            "{}{}",
            symbols.names[pair.0 as usize], symbols.names[pair.1 as usize]
        );
        let new_id = symbols.intern(merged);
        merges.push(pair);
        let mut touched = BTreeSet::new();
        for w in holders.remove(&pair).unwrap_or_default() {
            let word = &mut pieces[w];
            for p in word.windows(2) {
                if let Some(c) = pair_counts.get_mut(&(p[0], p[1])) {
                    *c -= counts[w];
                }
            }
            merge_pair(word, pair, new_id);
            for p in word.windows(2) {
                let p = (p[0], p[1]);
                *pair_counts.entry(p).or_insert(0) += counts[w];
                holders.entry(p).or_default().insert(w);
                touched.insert(p);
            }
        }
        for p in touched {
            queue.push((pair_counts[&p], Reverse(p)));
        }
    }
    merges
}

/// Replaces each occurrence of `pair` in `word`, left to right, by `merged`.
fn merge_pair(word: &mut Vec<u32>, pair: Pair, merged: u32) {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    *word = out;
}

/// The vocabulary in id order, as `vocab.json` lists it.
struct OrderedVocab<'a>(&'a [String]);

impl Serialize for OrderedVocab<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().enumerate().map(|(id, name)| (name, id)))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Tokenizer {
        path: origin(),
        message: e.to_string(),
    })
}

/// The tokenizer and its files from the learned vocabulary and merges.
fn build(symbols: Symbols, merges: Vec<Pair>, context_length: usize) -> Result<FittedTokenizer> {
    let name = |id: u32| symbols.names[id as usize].clone();
    let merges: Vec<(String, String)> = merges.iter().map(|&(a, b)| (name(a), name(b))).collect();
    let mut names = symbols.names;
    let bos = names.len() as u32;
    names.push(START_TOKEN.into());
    names.push(END_TOKEN.into());
    let eos = bos + 1;
    let vocab: tokenizers::models::bpe::Vocab = names
        .iter()
        .enumerate()
        .map(|(id, n)| (n.clone(), id as u32))
        .collect();
    let bpe = pipeline::bpe_builder()
        .vocab_and_merges(vocab, merges.clone())
        .build()
        .map_err(fail)?;
    let inner = pipeline::clip_tokenizer(bpe, bos, eos).map_err(fail)?;

    let tokenizer_json = inner.to_string(true).map_err(fail)?;
    let vocab_json = to_json(&OrderedVocab(&names))?;
    let mut merges_txt = String::from("#version: 0.2\n");
    for (a, b) in &merges {
        merges_txt.push_str(&format!("{a} {b}\n"));
    }
    let config_json = to_json(&serde_json::json!({
        "backend": "tokenizers",
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "model_max_length": context_length,
        "pad_token": END_TOKEN,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": END_TOKEN,
    }))?;
    let file = |name: &str, text: String| FolderFile {
        name: name.into(),
        bytes: text.into_bytes(),
    };
    Ok(FittedTokenizer {
        tokenizer: ClipTokenizer::new(inner, context_length, origin())?,
        files: vec![
            file(TOKENIZER_FILE, tokenizer_json),
            file(VOCAB_FILE, vocab_json),
            file(MERGES_FILE, merges_txt),
            file(TOKENIZER_CONFIG_FILE, config_json),
        ],
        vocab_size: names.len(),
        bos_token_id: bos,
        eos_token_id: eos,
        pad_token_id: eos,
    })
}
