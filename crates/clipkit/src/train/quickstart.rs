//! The quickstart recipe: a small CLIP trained from scratch on the shapes world in about
//! ten minutes on two cores, then judged on held-out shapes against fixed targets. The
//! numbers live here, so the CLI's `clipkit quickstart` only parses its flags and prints.

use crate::clip::Clip;
use crate::config::ClipConfig;
use crate::data::shapes::{ShapesConfig, Split};
use crate::error::{Error, Result};
use crate::eval::shapes::{evaluate_shapes, ShapesEvalConfig, ShapesReport};

use super::presets::preset;
use super::run::RunSettings;

/// The model preset trained (see [`super::preset`]).
pub const QUICKSTART_PRESET: &str = "quickstart";

/// Zero-shot accuracy (0..1) the quickstart model is expected to reach on each held-out
/// question, by the row names of [`ShapesReport::rows`].
pub const QUICKSTART_TARGETS: [(&str, f64); 4] = [
    ("colour", 0.95),
    ("shape", 0.90),
    ("unseen_combinations", 0.80),
    ("count", 0.70),
];

/// What a quickstart run may change; everything else is the recipe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuickstartRecipe {
    /// Optimiser steps (default 4500: about ten minutes on two quiet cores).
    pub steps: usize,
    /// Pairs per batch (default 126; a multiple of six keeps every family of variants in
    /// one batch).
    pub batch_size: usize,
    /// Held-out images per evaluation question (default 500).
    pub eval_count: usize,
}

impl Default for QuickstartRecipe {
    fn default() -> Self {
        QuickstartRecipe {
            steps: 4500,
            batch_size: 126,
            eval_count: 500,
        }
    }
}

impl QuickstartRecipe {
    /// The model trained: the [`QUICKSTART_PRESET`] preset.
    pub fn model_config(&self) -> Result<ClipConfig> {
        preset(QUICKSTART_PRESET)
            .ok_or_else(|| Error::InvalidArgument(format!("no preset named {QUICKSTART_PRESET:?}")))
    }

    /// The training data: training-split shapes scenes, seed 0, in families of six
    /// variants, 80% of captions naming one group, fills spread ±60 levels around their
    /// colours (with three training seeds: held-out pairs 0.785 → 0.835, 0.699 → 0.819 and
    /// 0.719 → 0.833, README "Search benchmarks"). The image size is left at its default:
    /// the trainer draws images at the model's input size.
    pub fn shapes(&self) -> ShapesConfig {
        ShapesConfig {
            seed: 0,
            family: 6,
            one_group: 0.8,
            colour_spread: 60,
            split: Split::Train,
            ..ShapesConfig::default()
        }
    }

    /// The optimiser's settings: AdamW at 2e-3 with 100 warm-up steps and a cosine decay to
    /// 1e-5, weight decay 0.1, gradients clipped at norm 1, a checkpoint every 250 steps.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: 2e-3,
            warmup_steps: 100.min(self.steps.saturating_sub(1)),
            min_learning_rate: 1e-5,
            weight_decay: 0.1,
            max_grad_norm: Some(1.0),
            seed: 0,
            checkpoint_every: 250,
        }
    }

    /// Zero-shot accuracies of `clip` on `eval_count` held-out images per question, drawn
    /// at the model's input size; `progress(done, total)` hears images embedded.
    pub fn evaluate(
        &self,
        clip: &Clip,
        progress: impl FnMut(usize, usize),
    ) -> Result<ShapesReport> {
        let image_size = u32::try_from(clip.image_size())
            .map_err(|_| Error::InvalidArgument("model image size out of range".into()))?;
        let config = ShapesEvalConfig {
            count: self.eval_count,
            image_size,
            ..ShapesEvalConfig::default()
        };
        evaluate_shapes(clip, &config, progress)
    }
}

/// One reported accuracy beside its target, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// The row's name ([`ShapesReport::rows`]).
    pub name: &'static str,
    /// The accuracy reached (0..1).
    pub accuracy: f64,
    /// The target of [`QUICKSTART_TARGETS`], when the row has one.
    pub target: Option<f64>,
}

impl TargetCheck {
    /// Whether the target is met (`None` for a row without target). NaN never meets one.
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| self.accuracy >= t)
    }
}

/// Every row of `report` beside its quickstart target.
pub fn check_targets(report: &ShapesReport) -> Vec<TargetCheck> {
    report
        .rows()
        .into_iter()
        .map(|(name, accuracy)| TargetCheck {
            name,
            accuracy,
            target: QUICKSTART_TARGETS
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, v)| *v),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::HELD_OUT_COUNT;
    use crate::eval::shapes::{HeldOutPairs, PairParts};

    #[test]
    fn the_recipe_names_a_real_preset_and_every_target_a_real_row() {
        let recipe = QuickstartRecipe::default();
        assert!(recipe.model_config().is_ok());
        let report = ShapesReport {
            colour: 0.0,
            shape: 0.0,
            count: 0.0,
            position: 0.0,
            unseen_combinations: 0.0,
            top1: 0.0,
            unseen_parts: PairParts {
                colour: 0.0,
                shape: 0.0,
                colour_alone: 0.0,
                shape_alone: 0.0,
                pairs: HeldOutPairs([None; HELD_OUT_COUNT]),
            },
        };
        let rows = report.rows().map(|(name, _)| name);
        for (name, _) in QUICKSTART_TARGETS {
            assert!(rows.contains(&name), "{name} is not a report row");
        }
        assert_eq!(recipe.settings().warmup_steps, 100);
        let short = QuickstartRecipe {
            steps: 10,
            ..recipe
        };
        assert_eq!(short.settings().warmup_steps, 9);
    }

    #[test]
    fn targets_are_met_at_or_above_and_never_by_nan() {
        let check = |accuracy| TargetCheck {
            name: "colour",
            accuracy,
            target: Some(0.95),
        };
        assert_eq!(check(0.95).met(), Some(true));
        assert_eq!(check(0.9).met(), Some(false));
        assert_eq!(check(f64::NAN).met(), Some(false));
    }
}
