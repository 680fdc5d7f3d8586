//! The generation loop: render the drawer, cut it up, embed the cut-outs with every guiding
//! model, and take an Adam step on the weighted spherical distances to the prompts (plus
//! total variation and closeness to an init image).
//!
//! Shapes: K = cut-outs, E = a model's embedding width, S = its input side.

use candle_core::{Tensor, D};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cutouts::{apply_cutouts, sample_cutouts, sample_noise, Cutout, CutoutConfig};
use super::drawer::Drawer;
use super::loss::{mean_squared_error, prompt_loss, spherical_distance, total_variation};
use super::prompt::Prompt;
use crate::error::{Error, Result};
use crate::image::tensor::normalize;
use crate::train::{AdamW, AdamWConfig};
use crate::{l2_normalize, Clip};

/// Settings of a generation run.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Adam learning rate; `None`: the drawer's [`Drawer::default_lr`].
    pub lr: Option<f64>,
    /// How cut-outs are drawn.
    pub cutouts: CutoutConfig,
    /// Weight of the total-variation term (default 1: smooths the noise textures the
    /// quickstart model otherwise rewards).
    pub tv_weight: f64,
    /// Weight of the mean squared distance to the init image, when there is one (default 0).
    pub init_weight: f64,
    /// Seeds the cut-outs and noise (the drawer is seeded by its builder).
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            lr: None,
            cutouts: CutoutConfig::default(),
            tv_weight: 1.0,
            init_weight: 0.0,
            seed: 0,
        }
    }
}

/// What one step measured, before its update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The total loss.
    pub loss: f32,
    /// Its prompt part (sum over models and prompts).
    pub prompt_loss: f32,
}

/// One guiding model and the unit text embeddings (1, E) of every prompt.
struct Guide<'a> {
    clip: &'a Clip,
    texts: Vec<Tensor>,
}

/// A generation in progress: the drawer, the guides and the optimiser's state.
pub struct Generation<'a> {
    drawer: Box<dyn Drawer>,
    guides: Vec<Guide<'a>>,
    prompts: Vec<Prompt>,
    init: Option<Tensor>,
    config: GenerateConfig,
    lr: f64,
    adam: AdamW,
    rng: ChaCha8Rng,
}

impl<'a> Generation<'a> {
    /// A run of `drawer` towards `prompts`, guided by `models` (each loaded with
    /// [`LoadOptions::input_gradients`](crate::LoadOptions::input_gradients)); `init` is the
    /// init image (1, 3, H, W) for the init-image term.
    pub fn new(
        drawer: Box<dyn Drawer>,
        models: &[&'a Clip],
        prompts: Vec<Prompt>,
        init: Option<Tensor>,
        config: GenerateConfig,
    ) -> Result<Self> {
        config.cutouts.validate()?;
        if models.is_empty() {
            return Err(Error::InvalidArgument("no guiding model given".into()));
        }
        if prompts.is_empty() {
            return Err(Error::InvalidArgument("no prompt given".into()));
        }
        let lr = config.lr.unwrap_or_else(|| drawer.default_lr());
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "the learning rate must be a number > 0, not {lr}"
            )));
        }
        let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
        let guides = models
            .iter()
            .map(|clip| {
                let embeds = clip.embed_texts(&texts)?; // (P, E)
                let texts = (0..prompts.len())
                    .map(|i| Ok(embeds.narrow(0, i, 1)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Guide { clip, texts })
            })
            .collect::<Result<Vec<_>>>()?;
        let adam = AdamW::new(drawer.variables(), adam_config())?;
        Ok(Generation {
            drawer,
            guides,
            prompts,
            init,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            lr,
            adam,
        })
    }

    /// The current image (1, 3, H, W) in [0, 1].
    pub fn image(&self) -> Result<Tensor> {
        self.drawer.render()
    }

    /// The drawer being optimised.
    pub fn drawer(&self) -> &dyn Drawer {
        self.drawer.as_ref()
    }

    /// Renders, measures the loss on fresh cut-outs, and updates the drawer once.
    pub fn step(&mut self) -> Result<StepReport> {
        let (_, _, h, w) = self.drawer.render()?.dims4()?;
        let cuts = sample_cutouts(&self.config.cutouts, (h, w), &mut self.rng);
        let noise = self
            .guides
            .iter()
            .map(|g| sample_noise(cuts.len(), input_side(g.clip), &mut self.rng))
            .collect::<Result<Vec<_>>>()?;
        self.step_with(&cuts, &noise)
    }

    /// [`Generation::step`] with given cut-outs and, per guiding model, standard normal
    /// noise (K, 3, S, S) at its input side S: for tests against a reference.
    pub fn step_with(&mut self, cuts: &[Cutout], noise: &[Tensor]) -> Result<StepReport> {
        if noise.len() != self.guides.len() {
            return Err(Error::InvalidArgument(format!(
                "{} noise tensors for {} guiding models",
                noise.len(),
                self.guides.len()
            )));
        }
        let image = self.drawer.render()?; // (1, 3, H, W)
        let mut prompt_total = Tensor::zeros((), candle_core::DType::F32, image.device())?;
        for (guide, noise) in self.guides.iter().zip(noise) {
            let side = input_side(guide.clip);
            let views = apply_cutouts(&image, cuts, side, noise)?; // (K, 3, S, S)
            let pixels = normalize(&views, guide.clip.preprocess_config())?;
            let embeds = l2_normalize(&guide.clip.image_features(&pixels)?)?; // (K, E)
            for (prompt, text) in self.prompts.iter().zip(&guide.texts) {
                let dists = spherical_distance(&embeds, text)?; // (K)
                prompt_total = (prompt_total + prompt_loss(&dists, prompt)?)?;
            }
        }
        let mut total = prompt_total.clone();
        if self.config.tv_weight != 0.0 {
            total = (total + (total_variation(&image)? * self.config.tv_weight)?)?;
        }
        if let (Some(init), true) = (&self.init, self.config.init_weight != 0.0) {
            total = (total + (mean_squared_error(&image, init)? * self.config.init_weight)?)?;
        }
        let loss = total.to_scalar::<f32>()?;
        if !loss.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "the loss became {loss}; try a smaller --lr"
            )));
        }
        let grads = total.backward()?;
        self.adam.step(&grads, self.lr)?;
        Ok(StepReport {
            loss,
            prompt_loss: prompt_total.to_scalar::<f32>()?,
        })
    }
}

fn input_side(clip: &Clip) -> usize {
    clip.image_size()
}

/// torch.optim.Adam's defaults: β = (0.9, 0.999), ε = 1e-8, no decay, no clipping.
fn adam_config() -> AdamWConfig {
    AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        max_grad_norm: None,
    }
}

/// Mean cosine similarity between the unit embeddings of the image's full view (resized to
/// each model's input) and each prompt's text, per model then prompt: a quick read of how
/// far a run got, not an evaluation (the guiding models are the judges here).
pub fn prompt_similarity(image: &Tensor, models: &[&Clip], prompts: &[Prompt]) -> Result<Vec<f32>> {
    let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    let mut out = Vec::new();
    for clip in models {
        let side = input_side(clip);
        let view = crate::image::tensor::resize(
            &image.detach(),
            (side, side),
            crate::image::tensor::Interpolation::Area,
        )?;
        let embed = clip.embed_pixels(&normalize(&view, clip.preprocess_config())?)?; // (1, E)
        let text = clip.embed_texts(&texts)?; // (P, E)
        let cos = embed.broadcast_mul(&text)?.sum(D::Minus1)?;
        out.extend(cos.to_vec1::<f32>()?);
    }
    Ok(out)
}
