//! The pieces of CLIP's tokenizer around its BPE model, built the way transformers 5's
//! `CLIPTokenizer` builds them: NFC, runs of whitespace to one space, lower-casing, CLIP's
//! word-splitting pattern, byte-level mapping, `</w>` word ends, start/end tokens around
//! the text. Shared by folders with only `vocab.json` + `merges.txt` and fitted tokenizers.

use tokenizers::models::bpe::{BpeBuilder, BPE};
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{
    AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// The start-of-text token.
pub const START_TOKEN: &str = "<|startoftext|>";
/// The end-of-text token, also CLIP's padding and unknown token.
pub const END_TOKEN: &str = "<|endoftext|>";
/// The suffix marking a token that ends a word.
pub const END_OF_WORD: &str = "</w>";
/// CLIP's word pattern, as transformers 5 writes it: the special tokens, contractions,
/// letter runs, single digits, runs of other symbols.
const WORD_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A BPE builder with CLIP's options: `</w>` word ends, no sub-word prefix, the end token
/// standing for unknown characters.
pub fn bpe_builder() -> BpeBuilder {
    BPE::builder()
        .unk_token(END_TOKEN.into())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(END_OF_WORD.into())
}

/// NFC, whitespace runs to one space, lower case.
pub fn normalizer() -> tokenizers::Result<NormalizerWrapper> {
    Ok(NormalizerSequence::new(vec![
        NFC.into(),
        Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")?.into(),
        Lowercase.into(),
    ])
    .into())
}

/// CLIP's word pattern, then bytes mapped to printable characters.
pub fn pre_tokenizer() -> tokenizers::Result<PreTokenizerWrapper> {
    let words = Split::new(
        SplitPattern::Regex(WORD_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )?;
    Ok(
        PreTokenizerSequence::new(vec![words.into(), ByteLevel::new(false, true, true).into()])
            .into(),
    )
}

/// The whole tokenizer around `bpe`, whose vocabulary gives the start and end tokens the
/// ids `start` and `end`.
pub fn clip_tokenizer(bpe: BPE, start: u32, end: u32) -> tokenizers::Result<Tokenizer> {
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(normalizer()?))
        .with_pre_tokenizer(Some(pre_tokenizer()?))
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
