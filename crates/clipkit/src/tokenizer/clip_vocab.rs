//! OpenAI's CLIP vocabulary, carried in the library (`data/bpe_simple_vocab_16e6.txt.gz`,
//! MIT, see `data/README.md`), turned into the `vocab.json` and `merges.txt` that
//! transformers' CLIP tokenizer reads, for checkpoints that carry no tokenizer files (OpenAI
//! `.pt` archives, open_clip folders).
//!
//! The vocabulary is built as OpenAI's `simple_tokenizer.py` builds it: the 256 byte
//! characters (printable bytes as themselves, the rest mapped to U+0100 onwards), the same
//! with `</w>`, one token per merge (the first 48 894 merges of the file), then
//! `<|startoftext|>` (49406) and `<|endoftext|>` (49407).

use std::io::Read;

use crate::error::{Error, Result};
use crate::model_folder::{FolderFile, MERGES_FILE, VOCAB_FILE};

use super::pipeline::{END_OF_WORD, END_TOKEN, START_TOKEN};

/// The merges file, gzip-compressed, as OpenAI ships it.
const BPE_GZ: &[u8] = include_bytes!("../../data/bpe_simple_vocab_16e6.txt.gz");
/// Merges used: CLIP's vocabulary size 49408 less 256 bytes, 256 word ends and 2 specials.
const MERGES: usize = 49408 - 256 - 256 - 2;

/// The byte → character table of GPT-2 and CLIP, in vocabulary order.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut chars: Vec<char> = (0u32..256)
        .filter(|&b| printable(b))
        .filter_map(char::from_u32)
        .collect();
    chars.extend(
        (0u32..256)
            .filter(|&b| !printable(b))
            .enumerate()
            .filter_map(|(n, _)| char::from_u32(256 + n as u32)),
    );
    chars
}

/// CLIP's vocabulary: tokens in id order and the merges, as OpenAI's tokenizer builds them.
struct ClipVocabulary {
    tokens: Vec<String>,
    merges: Vec<(String, String)>,
}

fn corrupt(message: String) -> Error {
    Error::Tokenizer {
        path: "data/bpe_simple_vocab_16e6.txt.gz".into(),
        message,
    }
}

fn clip_vocabulary() -> Result<ClipVocabulary> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(BPE_GZ)
        .read_to_string(&mut text)
        .map_err(|e| corrupt(e.to_string()))?;
    // The first line is a version comment.
    let lines: Vec<&str> = text.split('\n').skip(1).take(MERGES).collect();
    if lines.len() != MERGES {
        return Err(corrupt(format!(
            "{} merges, expected {MERGES}",
            lines.len()
        )));
    }
    let bytes = byte_chars();
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    tokens.extend(bytes.iter().map(|c| format!("{c}{END_OF_WORD}")));
    let mut merges = Vec::with_capacity(MERGES);
    for line in &lines {
        let (a, b) = line
            .split_once(' ')
            .ok_or_else(|| corrupt(format!("merge line {line:?} is not two tokens")))?;
        tokens.push(format!("{a}{b}"));
        merges.push((a.to_string(), b.to_string()));
    }
    tokens.push(START_TOKEN.into());
    tokens.push(END_TOKEN.into());
    Ok(ClipVocabulary { tokens, merges })
}

/// CLIP's byte-pair model (49408 tokens) with the options of [`super::pipeline::bpe_builder`].
pub(super) fn clip_bpe() -> Result<tokenizers::models::bpe::BPE> {
    let vocabulary = clip_vocabulary()?;
    let vocab: tokenizers::models::bpe::Vocab = vocabulary
        .tokens
        .into_iter()
        .enumerate()
        .map(|(id, token)| (token, id as u32))
        .collect();
    super::pipeline::bpe_builder()
        .vocab_and_merges(vocab, vocabulary.merges)
        .build()
        .map_err(|e| corrupt(e.to_string()))
}

/// CLIP's `vocab.json` and `merges.txt` (49408 tokens), as model-folder files.
pub fn clip_vocab_files() -> Result<Vec<FolderFile>> {
    let ClipVocabulary { tokens, merges } = clip_vocabulary()?;
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(id, token)| (token, serde_json::Value::from(id)))
        .collect();
    let vocab = serde_json::to_vec(&vocab).map_err(|e| corrupt(e.to_string()))?;
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let merges = format!("#version: 0.2\n{}\n", merges.join("\n"));
    Ok(vec![
        FolderFile {
            name: VOCAB_FILE.into(),
            bytes: vocab,
        },
        FolderFile {
            name: MERGES_FILE.into(),
            bytes: merges.into_bytes(),
        },
    ])
}
