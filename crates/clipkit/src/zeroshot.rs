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

/// Fills a template's `{}` with a label; a template without `{}` gets the label appended.
pub fn fill_template(template: &str, label: &str) -> String {
    if template.contains("{}") {
        template.replacen("{}", label, 1)
    } else {
        format!("{template} {label}")
    }
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
    /// (L, E), unit rows.
    class_embeds: Tensor,
    logit_scale: f32,
}

impl ZeroShotClassifier {
    /// Embeds every label through every template and ensembles per label.
    pub fn new(clip: &Clip, labels: &[String], templates: &[String]) -> Result<Self> {
        if labels.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one label is needed".into(),
            ));
        }
        if templates.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one template is needed".into(),
            ));
        }
        let prompts: Vec<String> = labels
            .iter()
            .flat_map(|label| templates.iter().map(move |t| fill_template(t, label)))
            .collect();
        let embeds = clip.embed_texts(&prompts)?; // (L·T, E)
        let t = templates.len() as u32;
        let rows: Vec<Vec<u32>> = (0..labels.len() as u32)
            .map(|l| (l * t..(l + 1) * t).collect())
            .collect();
        let class_embeds = ensemble_prompts(&embeds, &rows)?; // (L, E)
        Ok(ZeroShotClassifier {
            labels: labels.to_vec(),
            class_embeds,
            logit_scale: clip.logit_scale()?,
        })
    }

    /// The labels, in the order scores refer to them.
    pub fn labels(&self) -> &[String] {
        &self.labels
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
        assert_eq!(fill_template("cat photo:", "cat"), "cat photo: cat");
    }
}
