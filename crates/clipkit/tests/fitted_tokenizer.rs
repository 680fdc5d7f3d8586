//! Tokenizers fitted to a caption corpus: transformers reads them as clipkit does (ids
//! recorded by `tools/check_fitted_tokenizer.py`), every corpus word is one token, unknown
//! words still encode, and the written files load back.

mod common;

use clipkit::model_folder::read_tokenizer;
use clipkit::tokenizer::{fit, Alphabet, ClipTokenizer, FitOptions, FittedTokenizer, Vocabulary};
use common::*;

fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("fitted/captions.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

fn reference() -> serde_json::Value {
    let path = fixtures().join("reference/fitted_tokenizer_cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fitted(options: &FitOptions) -> FittedTokenizer {
    fit(&corpus(), options).unwrap()
}

fn fitted_as_in_reference() -> FittedTokenizer {
    let context_length = reference()["context_length"].as_u64().unwrap() as usize;
    fitted(&FitOptions {
        context_length,
        ..FitOptions::default()
    })
}

fn check_against_reference(tokenizer: &ClipTokenizer, what: &str) {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tokenizer.encode(text).unwrap().ids;
        if got != want {
            failures.push(format!("{text:?}: got {got:?} want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: {} of {} differ from transformers:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn fitted_tokenizer_matches_transformers_ids() {
    let fitted = fitted_as_in_reference();
    let reference = reference();
    assert_eq!(
        fitted.vocab_size as u64,
        reference["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        fitted.eos_token_id as u64,
        reference["eos_token_id"].as_u64().unwrap()
    );
    check_against_reference(&fitted.tokenizer, "in memory");
}

#[test]
fn written_files_load_with_and_without_tokenizer_json() {
    let fitted = fitted_as_in_reference();
    let dir = tempfile::tempdir().unwrap();
    for file in &fitted.files {
        std::fs::write(dir.path().join(&file.name), &file.bytes).unwrap();
    }
    let context = fitted.tokenizer.context_length();
    let from_json = read_tokenizer(dir.path(), context).unwrap();
    check_against_reference(&from_json, "tokenizer.json");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let from_files = read_tokenizer(dir.path(), context).unwrap();
    check_against_reference(&from_files, "vocab.json + merges.txt");
}

#[test]
fn every_corpus_word_is_one_token() {
    let fitted = fitted(&FitOptions::default());
    let mut words: Vec<&str> = Vec::new();
    let corpus = corpus();
    for line in &corpus {
        words.extend(line.split_whitespace());
    }
    words.sort_unstable();
    words.dedup();
    let mut split = Vec::new();
    for word in &words {
        // Only letter runs: "3" and "o'clock" are several words to CLIP's pattern.
        if word.chars().all(char::is_alphabetic) {
            let ids = fitted.tokenizer.encode(word).unwrap().ids;
            if ids.len() != 3 {
                split.push(format!("{word}: {ids:?}"));
            }
        }
    }
    assert!(split.is_empty(), "split words: {split:?}");
    assert!(words.len() > 300, "a corpus of a few hundred words");
    eprintln!(
        "{} distinct words -> vocab_size {}",
        words.len(),
        fitted.vocab_size
    );
    assert!(fitted.vocab_size < 1000, "vocab_size {}", fitted.vocab_size);
    assert_eq!(
        (
            fitted.bos_token_id,
            fitted.eos_token_id,
            fitted.pad_token_id
        ),
        (
            fitted.vocab_size as u32 - 2,
            fitted.vocab_size as u32 - 1,
            fitted.vocab_size as u32 - 1
        )
    );
}

#[test]
fn unknown_words_fall_back_to_smaller_pieces() {
    let fitted = fitted(&FitOptions::default());
    let eos = fitted.eos_token_id;
    for word in ["zebra", "quokka", "squarecircle", "reddish"] {
        let ids = fitted.tokenizer.encode(word).unwrap().ids;
        assert!(ids.len() > 3, "{word} should need several pieces: {ids:?}");
        assert!(
            !ids[1..ids.len() - 1].contains(&eos),
            "{word} is made of corpus characters: {ids:?}"
        );
    }
    // A character the corpus lacks is the unknown token, <|endoftext|>, as in CLIP.
    let ids = fitted.tokenizer.encode("a red # circle").unwrap().ids;
    assert!(ids[1..ids.len() - 1].contains(&eos), "{ids:?}");
}

#[test]
fn byte_alphabet_never_needs_the_unknown_token() {
    let fitted = fitted(&FitOptions {
        alphabet: Alphabet::AllBytes,
        ..FitOptions::default()
    });
    let eos = fitted.eos_token_id;
    for text in ["a red ß circle", "🦄 北京", "\u{7}bell", "ẞ~"] {
        let ids = fitted.tokenizer.encode(text).unwrap().ids;
        assert!(!ids[1..ids.len() - 1].contains(&eos), "{text:?}: {ids:?}");
    }
    assert!(fitted.vocab_size > 512);
}

#[test]
fn same_corpus_gives_the_same_files() {
    let a = fitted(&FitOptions::default());
    let b = fitted(&FitOptions::default());
    assert_eq!(a.files, b.files);
}

#[test]
fn vocabulary_limit_stops_merging() {
    let fitted = fitted(&FitOptions {
        max_vocab_size: Some(300),
        ..FitOptions::default()
    });
    assert_eq!(fitted.vocab_size, 300);
    let ids = fitted
        .tokenizer
        .encode("a photo of two yellow hearts")
        .unwrap()
        .ids;
    assert_eq!(ids[ids.len() - 1], 299);
    let err = fit(
        &corpus(),
        &FitOptions {
            max_vocab_size: Some(20),
            ..FitOptions::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("max_vocab_size 20"), "{err}");
}

#[test]
fn the_quickstart_vocabulary_is_closed_and_names_the_words_it_cannot_represent() {
    let quickstart = read_tokenizer(&model_dir("quickstart"), 24).unwrap();
    assert_eq!(quickstart.vocabulary(), Vocabulary::Closed);
    // Words of the shapes world are whole tokens; a trailing full stop is not reported.
    assert_eq!(
        quickstart
            .unknown_words("a red circle and two blue squares.")
            .unwrap(),
        Vec::<String>::new()
    );
    // English words it never met, an emoji and a digit-free mix, once each, as written.
    assert_eq!(
        quickstart
            .unknown_words("a Dog on a beach 🐶 dog, red circle")
            .unwrap(),
        vec!["Dog", "beach", "🐶", "dog"]
    );
    // A fitted tokenizer with every byte spells any text as CLIP's does, so it reads as
    // open (nothing else marks a fitted vocabulary; `clipkit train` fits the corpus alphabet).
    let all_bytes = fitted(&FitOptions {
        alphabet: Alphabet::AllBytes,
        ..FitOptions::default()
    });
    assert_eq!(all_bytes.tokenizer.vocabulary(), Vocabulary::Open);

    // CLIP's own vocabulary spells everything.
    let clip = read_tokenizer(&model_dir("clip-a"), 77).unwrap();
    assert_eq!(clip.vocabulary(), Vocabulary::Open);
    assert_eq!(
        clip.unknown_words("a dog on a beach 🐶").unwrap(),
        Vec::<String>::new()
    );
}
