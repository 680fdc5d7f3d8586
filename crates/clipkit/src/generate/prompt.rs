//! Prompts as VQGAN+CLIP and Pixray write them: `"text:weight:stop | text2:weight"`.
//!
//! Prompts are separated by `|`. Each is split on its last two colons, from the right: the
//! text, then an optional weight (default 1; negative weights push the image away from the
//! text), then an optional stop (default −∞: the distance below which the prompt stops
//! pulling). A colon inside the text therefore needs an explicit weight after it
//! (`"ratio 1:2:1"` reads as text `ratio 1`, weight 2, stop 1).
//!
//! ```
//! use clipkit::generate::parse_prompts;
//!
//! let prompts = parse_prompts("a red circle:2 | a blue square:-0.5:0.1")?;
//! assert_eq!(prompts[0].text, "a red circle");
//! assert_eq!((prompts[0].weight, prompts[0].stop), (2.0, f32::NEG_INFINITY));
//! assert_eq!((prompts[1].weight, prompts[1].stop), (-0.5, 0.1));
//! # Ok::<(), clipkit::Error>(())
//! ```

use crate::error::{Error, Result};

/// One weighted text the image is pulled towards (or pushed from, when the weight is < 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The caption, trimmed; never empty.
    pub text: String,
    /// Its share of the loss; finite and non-zero. Negative: the image moves away from it.
    pub weight: f32,
    /// The spherical distance (signed by the weight) below which the prompt no longer
    /// pulls; −∞ when not given.
    pub stop: f32,
}

/// Parses `"text:weight:stop | text2:weight | …"` into prompts; an error naming the part
/// at fault when a part is empty or a weight or stop is not a finite number.
pub fn parse_prompts(spec: &str) -> Result<Vec<Prompt>> {
    if spec.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "the prompt is empty: give a text such as \"a red circle\"".into(),
        ));
    }
    spec.split('|')
        .enumerate()
        .map(|(i, part)| parse_one(part).map_err(|why| prompt_error(spec, i, part, &why)))
        .collect()
}

fn prompt_error(spec: &str, index: usize, part: &str, why: &str) -> Error {
    let which = if spec.contains('|') {
        format!("prompt {} ({:?})", index + 1, part.trim())
    } else {
        format!("prompt {:?}", part.trim())
    };
    Error::InvalidArgument(format!(
        "{which}: {why} (prompts read \"text:weight:stop | text2:weight\")"
    ))
}

fn parse_one(part: &str) -> std::result::Result<Prompt, String> {
    // Split from the right: "a:b:c:d" is text "a:b", weight c, stop d.
    let mut fields: Vec<&str> = part.rsplitn(3, ':').collect();
    fields.reverse();
    let text = fields[0].trim();
    if text.is_empty() {
        return Err("empty text".into());
    }
    let number = |field: &str, what: &str| -> std::result::Result<f32, String> {
        match field.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("{what} {:?} is not a finite number", field.trim())),
        }
    };
    let weight = match fields.get(1) {
        Some(w) => number(w, "weight")?,
        None => 1.0,
    };
    if weight == 0.0 {
        return Err("weight 0 would make the prompt do nothing".into());
    }
    let stop = match fields.get(2) {
        Some(s) => number(s, "stop")?,
        None => f32::NEG_INFINITY,
    };
    Ok(Prompt {
        text: text.to_string(),
        weight,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_the_right() {
        let p = parse_prompts("ratio 1:2:1").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].text, "ratio 1");
        assert_eq!((p[0].weight, p[0].stop), (2.0, 1.0));
        let p = parse_prompts("  a red circle  |a cat:-1 ").unwrap();
        assert_eq!(p[0].text, "a red circle");
        assert_eq!(p[0].weight, 1.0);
        assert_eq!((p[1].text.as_str(), p[1].weight), ("a cat", -1.0));
    }

    #[test]
    fn empty_parts_and_bad_numbers_are_refused_by_name() {
        for (spec, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("a cat | ", "prompt 2"),
            (":2", "empty text"),
            ("a cat:heavy", "weight \"heavy\""),
            ("a cat:1:soon", "stop \"soon\""),
            ("a cat:nan", "weight \"nan\""),
            ("a cat:0", "weight 0"),
        ] {
            let err = parse_prompts(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }
}
