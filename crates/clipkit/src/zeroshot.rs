//! Zero-shot classification: labels become captions through prompt templates, and an image
//! takes the label whose captions it is most similar to.
//!
//! A label with several templates is represented by the mean of its captions' unit-length
//! text embeddings, normalised again (the CLIP paper's prompt ensembling).

use candle_core::{Device, IndexOp, Tensor};

use crate::clip::{l2_normalize, Clip};
use crate::error::{Error, Result};

/// The CLIP paper's 80 ImageNet prompt templates (see `data/README.md`).
const IMAGENET80: &str = include_str!("../data/imagenet80_templates.txt");

/// A named, built-in set of prompt templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSet {
    /// One template: "a photo of a {}."
    Simple,
    /// The CLIP paper's 80 ImageNet templates.
    Imagenet80,
}

impl TemplateSet {
    /// Names accepted by [`TemplateSet::from_name`].
    pub const NAMES: [&'static str; 2] = ["simple", "imagenet80"];

    /// Looks a set up by name (`simple`, `imagenet80`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "simple" => Some(TemplateSet::Simple),
            "imagenet80" => Some(TemplateSet::Imagenet80),
            _ => None,
        }
    }

    /// The set's templates; `{}` marks where the label goes.
    pub fn templates(self) -> Vec<String> {
        match self {
            TemplateSet::Simple => vec!["a photo of a {}.".to_string()],
            TemplateSet::Imagenet80 => IMAGENET80.lines().map(str::to_string).collect(),
        }
    }
}

/// Fills a template's `{}` with a label (templates are checked by [`check_prompts`]).
pub fn fill_template(template: &str, label: &str) -> String {
    template.replacen("{}", label, 1)
}

/// Refuses what would silently skew a classification: no labels or templates, a label given
/// twice (CLIP's tokenizer ignores case and repeated spaces, so `Cat` and `cat ` are the
/// same caption and would split one probability between them), a template given twice, or
/// a template without exactly one `{}` for the label.
pub fn check_prompts(labels: &[String], templates: &[String]) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidArgument(message));
    if labels.is_empty() {
        return invalid("at least one label is needed".into());
    }
    if templates.is_empty() {
        return invalid("at least one template is needed".into());
    }
    let caption_key = |text: &str| {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let mut seen = std::collections::HashMap::new();
    for label in labels {
        if caption_key(label).is_empty() {
            return invalid("a label is empty".into());
        }
        if let Some(first) = seen.insert(caption_key(label), label) {
            return invalid(format!(
                "label {label:?} is given twice (also as {first:?}); duplicate labels would split one probability"
            ));
        }
    }
    let mut seen_templates = std::collections::HashSet::new();
    for template in templates {
        if template.matches("{}").count() != 1 {
            return invalid(format!(
                "template {template:?} needs exactly one {{}} where the label goes, as in \"a photo of a {{}}.\""
            ));
        }
        if !seen_templates.insert(template) {
            return invalid(format!("template {template:?} is given twice"));
        }
    }
    Ok(())
}

/// Prompt ensembling, the one implementation: class `c`'s embedding is the mean of the unit
/// prompt embeddings (rows of `prompt_embeds` (P, E)) listed in `classes[c]`, normalised
/// again. (C, E). A class with no prompt, or a row out of range, is an error.
pub fn ensemble_prompts(prompt_embeds: &Tensor, classes: &[Vec<u32>]) -> Result<Tensor> {
    let prompts = prompt_embeds.dim(0)?;
    let means = classes
        .iter()
        .enumerate()
        .map(|(class, rows)| {
            if rows.is_empty() || rows.iter().any(|&r| r as usize >= prompts) {
                return Err(Error::InvalidArgument(format!(
                    "class {class}: prompt rows {rows:?} do not name rows of {prompts} prompts"
                )));
            }
            let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
            Ok(prompt_embeds.index_select(&rows, 0)?.mean(0)?) // (E)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(l2_normalize(&Tensor::stack(&means, 0)?)?)
}

/// One label's probability for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Its softmax probability over all labels.
    pub prob: f32,
}

/// Labels embedded once, ready to classify any number of images.
pub struct ZeroShotClassifier {
    labels: Vec<String>,
    /// Words of the prompts the model's tokenizer cannot represent.
    unknown_words: Vec<String>,
    /// (L, E), unit rows.
    class_embeds: Tensor,
    logit_scale: f32,
}

impl ZeroShotClassifier {
    /// Embeds every label through every template and ensembles per label.
    /// Labels and templates are checked first (see [`check_prompts`]).
    pub fn new(clip: &Clip, labels: &[String], templates: &[String]) -> Result<Self> {
        check_prompts(labels, templates)?;
        let prompts: Vec<String> = labels
            .iter()
            .flat_map(|label| templates.iter().map(move |t| fill_template(t, label)))
            .collect();
        let unknown_words = clip.tokenizer().unknown_words_in(&prompts)?;
        let embeds = clip.embed_texts(&prompts)?; // (L·T, E)
        let t = templates.len() as u32;
        let rows: Vec<Vec<u32>> = (0..labels.len() as u32)
            .map(|l| (l * t..(l + 1) * t).collect())
            .collect();
        let class_embeds = ensemble_prompts(&embeds, &rows)?; // (L, E)
        Ok(ZeroShotClassifier {
            labels: labels.to_vec(),
            unknown_words,
            class_embeds,
            logit_scale: clip.logit_scale()?,
        })
    }

    /// The labels, in the order scores refer to them.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The words of the prompts (every label in every template) the model's tokenizer cannot
    /// represent, once each: they read as nothing, so labels made of them mean little.
    pub fn unknown_words(&self) -> &[String] {
        &self.unknown_words
    }

    /// The ensembled class embeddings (L, E).
    pub fn class_embeds(&self) -> &Tensor {
        &self.class_embeds
    }

    /// Probabilities (N, L) for unit-length image embeddings (N, E).
    pub fn probs(&self, image_embeds: &Tensor) -> Result<Tensor> {
        let logits = (image_embeds.matmul(&self.class_embeds.t()?)? * f64::from(self.logit_scale))?;
        Ok(candle_nn::ops::softmax_last_dim(&logits)?)
    }

    /// For each image, every label with its probability, most probable first.
    pub fn classify(&self, image_embeds: &Tensor) -> Result<Vec<Vec<LabelScore>>> {
        let probs = self.probs(image_embeds)?;
        (0..probs.dim(0)?)
            .map(|i| {
                let row: Vec<f32> = probs.i(i)?.to_vec1()?;
                let mut scores: Vec<LabelScore> = self
                    .labels
                    .iter()
                    .zip(row)
                    .map(|(label, prob)| LabelScore {
                        label: label.clone(),
                        prob,
                    })
                    .collect();
                scores.sort_by(|a, b| b.prob.total_cmp(&a.prob));
                Ok(scores)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet80_has_80_distinct_templates_with_a_slot() {
        let t = TemplateSet::Imagenet80.templates();
        assert_eq!(t.len(), 80);
        assert!(t.iter().all(|t| t.matches("{}").count() == 1));
        let distinct: std::collections::BTreeSet<_> = t.iter().collect();
        assert_eq!(distinct.len(), 80);
    }

    #[test]
    fn ensembling_averages_each_class_prompts_and_renormalises() {
        let prompts = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [0.6, 0.8]], &Device::Cpu).unwrap();
        let classes = ensemble_prompts(&prompts, &[vec![0, 1], vec![2]]).unwrap();
        let got: Vec<Vec<f32>> = classes.to_vec2().unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let want = [[h, h], [0.6, 0.8]];
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        assert!(ensemble_prompts(&prompts, &[vec![]]).is_err());
        assert!(ensemble_prompts(&prompts, &[vec![3]]).is_err());
    }

    #[test]
    fn templates_are_filled_once() {
        assert_eq!(
            fill_template("a photo of a {}.", "cat"),
            "a photo of a cat."
        );
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn refusal(labels: &[&str], templates: &[&str]) -> String {
        match check_prompts(&strings(labels), &strings(templates)) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{labels:?} with {templates:?} should be refused"),
        }
    }

    #[test]
    fn duplicate_labels_and_templates_without_a_slot_are_refused() {
        let simple = ["a photo of a {}."];
        assert!(refusal(&["cat", "dog", "Cat "], &simple).contains("\"Cat \" is given twice"));
        assert!(refusal(&["cat", "  "], &simple).contains("empty"));
        assert!(refusal(&["cat"], &["cat photo:"]).contains("exactly one {}"));
        assert!(refusal(&["cat"], &["{} and {}"]).contains("exactly one {}"));
        assert!(refusal(&["cat"], &["a {}.", "a {}."]).contains("given twice"));
        assert!(refusal(&[], &simple).contains("label"));
        assert!(refusal(&["cat"], &[]).contains("template"));
        check_prompts(&strings(&["cat", "dog"]), &strings(&["a {}.", "the {}"])).unwrap();
    }
}
