//! Initial weights of a VQ autoencoder trained from scratch, drawn from a generator seeded
//! by the run's seed and each parameter's name (so the order of creation does not matter):
//! PyTorch's default uniform ±1/√fan_in for convolutions and linear maps, unit gains and zero
//! biases for group norms, zero biases elsewhere, and the codebook uniform in ±1/N as
//! taming and diffusers start it.

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sets every variable of `varmap` (diffusers names) to its initial value.
pub fn initialise(varmap: &candle_nn::VarMap, seed: u64) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let filled = |v: f32| Tensor::full(v, dims.as_slice(), &Device::Cpu);
        let value = if name.contains("norm") {
            filled(if name.ends_with("weight") { 1.0 } else { 0.0 })?
        } else if name.ends_with("bias") {
            filled(0.0)?
        } else {
            let bound = if name == "quantize.embedding.weight" {
                1.0 / dims[0] as f32
            } else {
                1.0 / (dims[1..].iter().product::<usize>() as f32).sqrt()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_seed(name));
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?
        };
        var.set(&value)?;
    }
    Ok(())
}

/// The FNV-1a hash of a variable's name, mixed into the run's seed so that each variable
/// draws its own stream.
pub(crate) fn name_seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
