//! Initial weights of a text-to-image transformer trained from scratch, GPT-2's: normal
//! with standard deviation 0.02 for embeddings and linear maps (the maps into the residual
//! stream, `out_proj` and `mlp.proj`, scaled by 1/√(2·layers)), unit gains and zero biases
//! for layer norms, zero biases elsewhere. Each variable draws from a generator seeded by
//! the run's seed and its name, so the order of creation does not matter.

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::train::vq::name_seed;

/// Sets every variable of `varmap` (checkpoint names) to its initial value.
pub fn initialise(varmap: &candle_nn::VarMap, seed: u64, layers: usize) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let residual_std = 0.02 / ((2 * layers.max(1)) as f64).sqrt();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let filled = |v: f32| Tensor::full(v, dims.as_slice(), &Device::Cpu);
        let value = if name.contains("ln_") {
            filled(if name.ends_with("weight") { 1.0 } else { 0.0 })?
        } else if name.ends_with("bias") {
            filled(0.0)?
        } else {
            let std = if name.ends_with("out_proj.weight") || name.ends_with("mlp.proj.weight") {
                residual_std
            } else {
                0.02
            };
            let normal = Normal::new(0.0, std as f32)
                .map_err(|e| candle_core::Error::Msg(format!("initial weights: {e}")))?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_seed(name));
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| normal.sample(&mut rng))
                .collect();
            Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?
        };
        var.set(&value)?;
    }
    Ok(())
}
