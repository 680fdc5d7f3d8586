//! Sampling code grids from the text-to-image transformer, one code at a time with each
//! block's keys and values cached: temperature, top-k and classifier-free guidance
//! (`uncond + g · (cond − uncond)` on the code logits, the unconditional stream starting from
//! the empty caption).
//!
//! Every sample draws from its own generator, seeded by the seed and its index, so sample
//! `i` is the same whatever the number of samples (for the same threads: the matrix
//! products' summation order depends on them).
//!
//! Shapes: N = samples, R = rows fed (N, or 2N with guidance), T = caption tokens,
//! n = codes per image, K = codebook size.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::model::imagine::ImagineModel;

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingOptions {
    /// Images to sample (at least 1).
    pub samples: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Divides the logits before the softmax (positive; 1 samples the model's own
    /// distribution, smaller is greedier).
    pub temperature: f64,
    /// Keeps only the `k` most likely codes at each position (`None`: all).
    pub top_k: Option<usize>,
    /// Classifier-free guidance scale (1: none, the conditional model alone).
    pub guidance: f64,
}

impl SamplingOptions {
    /// An error naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::InvalidArgument(
                "at least one sample is needed (--samples 1 or more)".into(),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "temperature {} is not a positive number",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidArgument(
                "top-k 0 keeps no code; use 1 or more".into(),
            ));
        }
        if !self.guidance.is_finite() || self.guidance < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "guidance {} is not a non-negative number",
                self.guidance
            )));
        }
        Ok(())
    }

    fn guided(&self) -> bool {
        self.guidance != 1.0
    }
}

/// Samples `options.samples` code grids (each `n` codes, row by row) after `caption` (T ids,
/// padded as in training); `empty` is the empty caption, used with guidance.
pub fn sample_codes(
    model: &ImagineModel,
    caption: &[u32],
    empty: &[u32],
    options: &SamplingOptions,
) -> Result<Vec<Vec<u32>>> {
    options.validate()?;
    let config = model.config();
    let (t, n, k, tv) = (
        config.text_length,
        config.image_tokens(),
        config.codebook_size,
        config.text_vocab,
    );
    if caption.len() != t || empty.len() != t {
        return Err(Error::InvalidArgument(format!(
            "captions of {} and {} ids given to a model of {t} caption tokens",
            caption.len(),
            empty.len()
        )));
    }
    let samples = options.samples;
    let mut rows: Vec<u32> = caption.repeat(samples);
    if options.guided() {
        rows.extend(empty.repeat(samples));
    }
    let r = rows.len() / t;
    let mut caches = model.new_caches();
    let prompt = Tensor::from_vec(rows, (r, t), &Device::Cpu)?;
    let mut logits = model
        .forward(&prompt, Some(&mut caches))?
        .narrow(1, t - 1, 1)?; // (R, 1, V)
    let mut rngs: Vec<ChaCha8Rng> = (0..samples)
        .map(|i| {
            ChaCha8Rng::seed_from_u64(options.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        })
        .collect();
    let mut grids = vec![Vec::with_capacity(n); samples];
    for position in 0..n {
        let code_logits = logits.squeeze(1)?.narrow(1, tv, k)?.to_vec2::<f32>()?; // (R, K)
        let mut next = Vec::with_capacity(r);
        for (i, rng) in rngs.iter_mut().enumerate() {
            let row: Vec<f32> = if options.guided() {
                let (c, u) = (&code_logits[i], &code_logits[samples + i]);
                let g = options.guidance as f32;
                c.iter().zip(u).map(|(c, u)| u + g * (c - u)).collect()
            } else {
                code_logits[i].clone()
            };
            let code = draw(&row, options, rng);
            grids[i].push(code);
            next.push(tv as u32 + code);
        }
        if position + 1 == n {
            break;
        }
        if options.guided() {
            next.extend_from_within(..samples);
        }
        let ids = Tensor::from_vec(next, (r, 1), &Device::Cpu)?;
        logits = model.forward(&ids, Some(&mut caches))?;
    }
    Ok(grids)
}

/// Draws one code from `logits` (K) as `options` say.
fn draw(logits: &[f32], options: &SamplingOptions, rng: &mut ChaCha8Rng) -> u32 {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / options.temperature)
        .collect();
    let threshold = match options.top_k {
        Some(k) if k < scaled.len() => {
            let mut sorted = scaled.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted[k - 1]
        }
        _ => f64::NEG_INFINITY,
    };
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scaled
        .iter()
        .map(|&l| if l >= threshold { (l - max).exp() } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (code, w) in weights.iter().enumerate() {
        if target < *w {
            return code as u32;
        }
        target -= w;
    }
    // Rounding left the target past the last positive weight: take that code.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(top_k: Option<usize>, temperature: f64) -> SamplingOptions {
        SamplingOptions {
            samples: 1,
            seed: 0,
            temperature,
            top_k,
            guidance: 1.0,
        }
    }

    #[test]
    fn top_one_is_the_argmax() {
        let logits = [0.1, 2.0, -1.0, 1.9];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            assert_eq!(draw(&logits, &options(Some(1), 1.0), &mut rng), 1);
        }
    }

    #[test]
    fn draws_follow_the_softmax() {
        // Probabilities 0.5, 0.25, 0.25 at temperature 1.
        let logits = [0.0, -(2f32.ln()), -(2f32.ln())];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[draw(&logits, &options(None, 1.0), &mut rng) as usize] += 1;
        }
        let first = counts[0] as f64 / 20_000.0;
        assert!((first - 0.5).abs() < 0.02, "{counts:?}");
        // Top-2 never draws the third of three tied-below codes more than the others allow.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let top2: Vec<u32> = (0..200)
            .map(|_| draw(&[3.0, 2.0, -5.0], &options(Some(2), 1.0), &mut rng))
            .collect();
        assert!(top2.iter().all(|&c| c < 2));
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = options(None, 1.0);
        o.samples = 0;
        assert!(o.validate().is_err());
        assert!(options(None, 0.0).validate().is_err());
        assert!(options(Some(0), 1.0).validate().is_err());
    }
}
