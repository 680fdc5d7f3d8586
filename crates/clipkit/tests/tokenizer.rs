//! Token ids against transformers' CLIP tokenizer on 338 strings: plain text, punctuation,
//! HTML entities, emoji, CJK, control characters, empty and 10,000-character inputs.

mod common;

use clipkit::model_folder::read_tokenizer;
use common::*;

fn check(model: &str) {
    check_tokenizer(&read_tokenizer(&model_dir(model), 77).unwrap(), model);
}

fn check_tokenizer(tokenizer: &clipkit::tokenizer::ClipTokenizer, model: &str) {
    let path = fixtures().join("reference/tokenizer_cases.json");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 200);
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tokenizer.encode(text).unwrap();
        if got.ids != want || got.truncated != case["truncated"].as_bool().unwrap() {
            failures.push(format!("{text:?}: got {:?} want {want:?}", got.ids));
        }
    }
    assert!(
        failures.is_empty(),
        "{model}: {} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn tokenizer_json_matches_transformers() {
    check("clip-a");
}

#[test]
fn vocab_and_merges_fallback_matches_transformers() {
    check("clip-b");
}

/// The vocabulary carried in the library (built from OpenAI's BPE merges file) gives
/// transformers' ids: the tokenizer for checkpoints without tokenizer files.
#[test]
fn carried_clip_vocabulary_matches_transformers() {
    let dir = tempfile::tempdir().unwrap();
    for file in clipkit::tokenizer::clip_vocab_files().unwrap() {
        std::fs::write(dir.path().join(&file.name), &file.bytes).unwrap();
    }
    let tokenizer = clipkit::tokenizer::ClipTokenizer::from_vocab_and_merges(
        &dir.path().join("vocab.json"),
        &dir.path().join("merges.txt"),
        77,
    )
    .unwrap();
    check_tokenizer(&tokenizer, "carried vocabulary");
}

#[test]
fn truncation_keeps_start_and_end_tokens() {
    let tokenizer = read_tokenizer(&model_dir("clip-a"), 77).unwrap();
    let long = "cat ".repeat(200);
    let t = tokenizer.encode(&long).unwrap();
    assert!(t.truncated);
    assert_eq!(t.ids.len(), 77);
    assert_eq!((t.ids[0], t.ids[76]), (49406, 49407));
    let short = tokenizer.encode(&"cat ".repeat(75)).unwrap();
    assert_eq!((short.ids.len(), short.truncated), (77, false));
}
