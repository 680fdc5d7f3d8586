//! The text-to-image quickstart recipe (`clipkit quickstart --imagine`): a VQ autoencoder
//! and a DALL·E-style generator over its codes, both trained from scratch on shapes-world
//! images (32 pixels by default) in a bounded time on two cores, then judged on the
//! shapes-world prompt set against fixed targets. The numbers live here, so the CLI only
//! parses its flags, trains, installs and prints.

use std::path::Path;

use crate::error::{Error, Result};
use crate::eval::generated::prompts::UNSEEN_PAIR;
use crate::eval::generated::{CategoryRow, GeneratedReport};
use crate::imagine::{GenerationConfig, SamplingOptions};
use crate::model::imagine::{ImagineConfig, ImagineSizes};
use crate::model::vq::VqConfig;
use crate::train::imagine::ImagineRunSettings;
use crate::train::quickstart::TargetCheck;
use crate::train::vq::{
    three_level_vq_config, PerceptualSettings, VqRunSettings, SHAPES_OBJECT_WEIGHT,
};

/// Accuracy (0..1) of the first sample each measure of [`CategoryRow::measures`] should
/// reach over the prompts of seen colour–shape pairs (issue 14, point 5).
pub const IMAGINE_QUICKSTART_TARGETS: [(&str, f64); 3] =
    [("colour", 0.90), ("count", 0.80), ("shape", 0.80)];

/// What a text-to-image quickstart run may change; everything else is the recipe's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagineQuickstartRecipe {
    /// Optimiser steps of the VQ autoencoder.
    pub vq_steps: usize,
    /// Optimiser steps of the generator.
    pub generator_steps: usize,
    /// Images (VQ) and caption–image pairs (generator) per batch.
    pub batch_size: usize,
    /// Training images the VQ model encodes once for the generator.
    pub images: usize,
    /// Samples per prompt in the evaluation; the best after reranking is judged beside
    /// the first.
    pub samples: usize,
    /// How many background pixels one object pixel weighs in the VQ model's reconstruction
    /// loss ([`VqRunSettings::object_weight`]; 1: plain mean squared error).
    pub vq_object_weight: u32,
    /// Codes in the VQ model's codebook (the generator's image vocabulary).
    pub vq_codes: usize,
    /// Weight of the VQ model's CLIP perceptual term, measured by the reranker
    /// ([`VqRunSettings::perceptual`]; 0: none).
    pub vq_perceptual_weight: f32,
    /// Side of the images in pixels (a multiple of the VQ model's downscale factor, 4):
    /// 32 gives an 8 × 8 code grid, 64 a 16 × 16 one.
    pub image_size: u32,
    /// How the evaluation samples, written into the generator folder so that
    /// `clipkit imagine` samples the same way.
    pub generation: GenerationConfig,
}

impl Default for ImagineQuickstartRecipe {
    fn default() -> Self {
        ImagineQuickstartRecipe {
            vq_steps: 600,
            generator_steps: 1500,
            batch_size: 32,
            images: 4096,
            samples: 16,
            vq_object_weight: SHAPES_OBJECT_WEIGHT,
            vq_codes: 128,
            vq_perceptual_weight: 0.1,
            image_size: 32,
            generation: GenerationConfig {
                temperature: 1.0,
                top_k: Some(8),
                guidance: 3.0,
            },
        }
    }
}

impl ImagineQuickstartRecipe {
    /// The VQ architecture: the diffusers `VQModel` layout at three levels of 16, 32 and 32
    /// channels (f = 4), one residual block per level, 16-wide codes, a codebook of
    /// `vq_codes`.
    pub fn vq_config(&self) -> VqConfig {
        three_level_vq_config([16, 32, 32], 8, self.vq_codes)
    }

    /// The VQ model's training: AdamW at 2e-3 after 20 warm-up steps, seed 0, dead codes
    /// restarted every 50 steps, a checkpoint every 50 steps, object pixels weighed
    /// `vq_object_weight` times the background in the reconstruction loss, and the
    /// perceptual term of `vq_perceptual_weight` measured by the CLIP in `perceptual_model`.
    pub fn vq_settings(&self, perceptual_model: &Path) -> VqRunSettings {
        VqRunSettings {
            config: self.vq_config(),
            steps: self.vq_steps,
            batch_size: self.batch_size,
            image_size: self.image_size,
            learning_rate: 2e-3,
            warmup_steps: 20.min(self.vq_steps.saturating_sub(1)),
            seed: 0,
            checkpoint_every: 50,
            restart_every: 50,
            object_weight: self.vq_object_weight as f32,
            perceptual: (self.vq_perceptual_weight > 0.0).then(|| PerceptualSettings {
                model: perceptual_model.to_path_buf(),
                weight: self.vq_perceptual_weight,
            }),
        }
    }

    /// The generator's transformer: 4 blocks of width 128 and 4 heads over 24 caption
    /// tokens and the codes of an image (64 at 32 pixels).
    pub fn generator_sizes(&self) -> ImagineSizes {
        ImagineSizes {
            text_length: 24,
            hidden_size: 128,
            num_layers: 4,
            num_heads: 4,
        }
    }

    /// The generator's training over `config` ([`ImagineConfig::over`] the trained VQ
    /// model with [`Self::generator_sizes`]): AdamW at 1e-3 after 100 warm-up steps,
    /// weight decay 0.01, caption loss weighed 1/8, 10% of captions dropped (for guidance),
    /// seed 0, a checkpoint every 100 steps.
    pub fn generator_settings(&self, config: ImagineConfig) -> ImagineRunSettings {
        ImagineRunSettings {
            config,
            steps: self.generator_steps,
            batch_size: self.batch_size,
            images: self.images,
            image_size: self.image_size,
            learning_rate: 1e-3,
            warmup_steps: 100.min(self.generator_steps.saturating_sub(1)),
            weight_decay: 0.01,
            text_weight: 0.125,
            drop_caption: 0.1,
            seed: 0,
            checkpoint_every: 100,
        }
    }

    /// How the evaluation samples: `samples` per prompt, seed 0, as `generation` says.
    pub fn sampling(&self) -> SamplingOptions {
        self.generation.options(self.samples, 0)
    }

    /// An error naming the first count that is zero, a perceptual weight that is not a
    /// number ≥ 0, an image size the VQ model cannot divide into codes, or a sampling
    /// option out of range.
    pub fn validate(&self) -> Result<()> {
        let factor = self.vq_config().downscale_factor();
        if self.image_size == 0 || !(self.image_size as usize).is_multiple_of(factor) {
            return Err(Error::InvalidArgument(format!(
                "the image size must be a positive multiple of the VQ model's downscale \
                 factor {factor}, not {}",
                self.image_size
            )));
        }
        if !(self.vq_perceptual_weight.is_finite() && self.vq_perceptual_weight >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the VQ perceptual weight must be a number ≥ 0, not {}",
                self.vq_perceptual_weight
            )));
        }
        let counts = [
            ("VQ steps", self.vq_steps),
            ("generator steps", self.generator_steps),
            ("batch size", self.batch_size),
            ("images", self.images),
            ("samples", self.samples),
            ("VQ codes", self.vq_codes),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(Error::InvalidArgument(format!(
                "the {name} must be at least 1"
            )));
        }
        self.sampling().validate()
    }
}

/// The row the targets are checked on: every prompt but those of held-out colour–shape
/// pairs, which are reported apart.
pub fn seen_pairs_row(report: &GeneratedReport) -> CategoryRow {
    let seen: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.category != UNSEEN_PAIR)
        .collect();
    CategoryRow::of("seen pairs", &seen)
}

/// Each target of [`IMAGINE_QUICKSTART_TARGETS`] beside what `row` reached (NaN where the
/// measure was not taken, e.g. shape without a judge: never met).
pub fn check_imagine_targets(row: &CategoryRow) -> Vec<TargetCheck> {
    IMAGINE_QUICKSTART_TARGETS
        .iter()
        .map(|&(name, target)| TargetCheck {
            name,
            accuracy: row
                .measures()
                .iter()
                .find(|(m, _)| *m == name)
                .and_then(|(_, v)| *v)
                .unwrap_or(f64::NAN),
            target: Some(target),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_names_a_measure_and_the_settings_fit_together() {
        let row = CategoryRow::of("none", &[]);
        let names = row.measures().map(|(name, _)| name);
        for (name, _) in IMAGINE_QUICKSTART_TARGETS {
            assert!(names.contains(&name), "{name} is not a measure");
        }
        let recipe = ImagineQuickstartRecipe::default();
        recipe.validate().unwrap();
        let clip = Path::new("clip");
        let vq = recipe.vq_settings(clip);
        assert_eq!(vq.perceptual.is_some(), recipe.vq_perceptual_weight > 0.0);
        assert_eq!(recipe.image_size as usize % vq.config.downscale_factor(), 0);
        for image_size in [0, 30] {
            let odd = ImagineQuickstartRecipe {
                image_size,
                ..recipe
            };
            let message = odd.validate().unwrap_err().to_string();
            assert!(message.contains("downscale factor 4"), "{message}");
        }
        let tiny = ImagineQuickstartRecipe {
            vq_steps: 1,
            generator_steps: 1,
            ..recipe
        };
        assert_eq!(tiny.vq_settings(clip).warmup_steps, 0);
        let perceptual = ImagineQuickstartRecipe {
            vq_perceptual_weight: 0.25,
            ..recipe
        };
        let settings = perceptual.vq_settings(clip).perceptual.unwrap();
        assert_eq!((settings.model.as_path(), settings.weight), (clip, 0.25));
        let negative = ImagineQuickstartRecipe {
            vq_perceptual_weight: -1.0,
            ..recipe
        };
        assert!(negative.validate().is_err());
        let zero = ImagineQuickstartRecipe {
            samples: 0,
            ..recipe
        };
        assert!(zero.validate().is_err());
        let greedy = ImagineQuickstartRecipe {
            generation: GenerationConfig {
                temperature: 0.5,
                top_k: Some(8),
                guidance: 3.0,
            },
            ..recipe
        };
        let sampling = greedy.sampling();
        assert_eq!(
            (sampling.temperature, sampling.top_k, sampling.guidance),
            (0.5, Some(8), 3.0)
        );
        for (temperature, top_k, guidance) in
            [(0.0, None, 1.0), (1.0, Some(0), 1.0), (1.0, None, f64::NAN)]
        {
            let bad = ImagineQuickstartRecipe {
                generation: GenerationConfig {
                    temperature,
                    top_k,
                    guidance,
                },
                ..recipe
            };
            assert!(bad.validate().is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn an_unmeasured_target_is_missed_not_met() {
        let checks = check_imagine_targets(&CategoryRow::of("none", &[]));
        assert_eq!(checks.len(), IMAGINE_QUICKSTART_TARGETS.len());
        assert!(checks.iter().all(|c| c.met() == Some(false)));
    }
}
