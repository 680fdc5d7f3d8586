//! Mixed queries: several texts (and images), each with a weight, become one query vector.
//!
//! # Grammar
//! ```text
//! query  := term (whitespace term)*
//! term   := sign? weight? text
//! sign   := '+' | '-'                 '-' negates the weight
//! weight := digits ('.' digits)?      only directly before a quoted text: +0.5"sunset"
//! text   := '"' anything but '"' '"'  | word (word)*
//! ```
//! A run of bare words without a sign is one text (`red circle` is one phrase); a sign
//! starts a new term and binds to the next quoted text or the next single word. The weight
//! defaults to 1. Examples: `beach +sunset -people`, `"beach" +"sunset" -"people"`,
//! `"a red circle" +0.5"on the left" -0.3"blue"`.
//!
//! The query vector is Σ wᵢ·tᵢ over the terms' unit embeddings tᵢ, normalised to unit length,
//! so positive terms pull results toward them and negative terms push them away.
//!
//! ```
//! let terms = clipkit::search::query::parse(r#"red circle +0.5"on the left" -blue"#)?;
//! let parsed: Vec<(&str, f32)> = terms.iter().map(|t| (t.text.as_str(), t.weight)).collect();
//! assert_eq!(parsed, [("red circle", 1.0), ("on the left", 0.5), ("blue", -1.0)]);
//! # Ok::<(), clipkit::search::SearchError>(())
//! ```

use super::error::{Result, SearchError};

/// One weighted text of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The text to embed.
    pub text: String,
    /// Its weight; negative pushes away.
    pub weight: f32,
}

/// Parses a query (see the module documentation for the grammar).
pub fn parse(query: &str) -> Result<Vec<Term>> {
    let fail = |message: String| SearchError::Query {
        query: query.to_string(),
        message,
    };
    let chars: Vec<char> = query.chars().collect();
    let mut terms: Vec<Term> = Vec::new();
    let mut i = 0;
    // Whether the previous term was bare words that a following bare word extends.
    let mut open_phrase = false;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut weight = 1.0f32;
        let signed = matches!(chars[i], '+' | '-');
        if signed {
            if chars[i] == '-' {
                weight = -1.0;
            }
            i += 1;
            let digits_end = scan_number(&chars, i);
            if digits_end > i && chars.get(digits_end) == Some(&'"') {
                let number: String = chars[i..digits_end].iter().collect();
                let w: f32 = number
                    .parse()
                    .map_err(|_| fail(format!("bad weight {number:?} at {start}")))?;
                weight *= w;
                i = digits_end;
            }
        }
        if chars.get(i) == Some(&'"') {
            let close = chars[i + 1..]
                .iter()
                .position(|c| *c == '"')
                .ok_or_else(|| fail(format!("quote opened at {i} is never closed")))?;
            let text: String = chars[i + 1..i + 1 + close].iter().collect();
            i += close + 2;
            terms.push(Term { text, weight });
            open_phrase = false;
            continue;
        }
        let end = (i..chars.len())
            .find(|&j| chars[j].is_whitespace() || chars[j] == '"')
            .unwrap_or(chars.len());
        let word: String = chars[i..end].iter().collect();
        if word.is_empty() {
            return Err(fail(format!("sign at {start} is not followed by a text")));
        }
        i = end;
        match terms.last_mut() {
            Some(last) if open_phrase && !signed => {
                last.text.push(' ');
                last.text.push_str(&word);
            }
            _ => {
                terms.push(Term { text: word, weight });
                open_phrase = !signed;
            }
        }
    }
    if terms.is_empty() {
        return Err(fail("the query is empty".into()));
    }
    if let Some(t) = terms.iter().find(|t| t.text.trim().is_empty()) {
        return Err(fail(format!("empty text with weight {}", t.weight)));
    }
    Ok(terms)
}

fn scan_number(chars: &[char], from: usize) -> usize {
    let mut j = from;
    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
        j += 1;
    }
    j
}

/// Σ wᵢ·vᵢ normalised: the query vector of weighted unit embeddings. Fails when the sum
/// vanishes (for instance `cat -cat`).
pub fn combine(weighted: &[(f32, Vec<f32>)]) -> Result<Vec<f32>> {
    let dim = weighted.first().map_or(0, |(_, v)| v.len());
    let mut sum = vec![0f32; dim];
    for (w, v) in weighted {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += w * x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    // NaN or (near) zero: no direction to search in.
    if norm.is_nan() || norm <= 1e-6 {
        return Err(SearchError::Query {
            query: String::new(),
            message: "the weighted terms cancel out; nothing is left to search for".into(),
        });
    }
    Ok(sum.into_iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(q: &str) -> Vec<(String, f32)> {
        parse(q)
            .unwrap()
            .into_iter()
            .map(|t| (t.text, t.weight))
            .collect()
    }

    #[test]
    fn quoted_terms_with_signs_and_weights() {
        assert_eq!(
            terms(r#""beach" +"sunset" -"people" +0.5"golden hour" -0.25"dog""#),
            vec![
                ("beach".into(), 1.0),
                ("sunset".into(), 1.0),
                ("people".into(), -1.0),
                ("golden hour".into(), 0.5),
                ("dog".into(), -0.25)
            ]
        );
    }

    #[test]
    fn bare_words_form_phrases_and_signs_bind_one_word() {
        assert_eq!(
            terms("red circle +blue square -green"),
            vec![
                ("red circle".into(), 1.0),
                ("blue".into(), 1.0),
                ("square".into(), 1.0),
                ("green".into(), -1.0)
            ]
        );
        assert_eq!(
            terms("+2022 photos"),
            vec![("2022".into(), 1.0), ("photos".into(), 1.0)]
        );
    }

    #[test]
    fn malformed_queries_are_refused_with_a_reason() {
        for (q, why) in [
            ("", "empty"),
            ("\"open", "never closed"),
            ("+ cat", "not followed"),
            ("\"\"", "empty text"),
        ] {
            let err = parse(q).unwrap_err().to_string();
            assert!(err.contains(why), "{q:?}: {err}");
        }
    }

    #[test]
    fn combine_normalises_and_refuses_cancelling_terms() {
        let v = combine(&[(1.0, vec![1.0, 0.0]), (-1.0, vec![0.0, 1.0])]).unwrap();
        assert!((v[0] - 0.70710677).abs() < 1e-6 && (v[1] + 0.70710677).abs() < 1e-6);
        assert!(combine(&[(1.0, vec![1.0, 0.0]), (-1.0, vec![1.0, 0.0])]).is_err());
    }
}
