//! What the unit tests of the model's ops share: deterministic inputs, a NaN-proof
//! comparison and the packed kernels to test.

use candle_core::{Device, Tensor};

use super::kernel::Kernel;

/// The kernels with packed products that this CPU runs; an x86-64 CPU with AVX2 must have
/// one, so the packed paths are never left untested there.
pub(crate) fn packed_kernels() -> Vec<Kernel> {
    let kernels: Vec<Kernel> = [Kernel::Amx, Kernel::Avx512, Kernel::Avx2]
        .into_iter()
        .filter(|kernel| kernel.is_supported())
        .collect();
    #[cfg(target_arch = "x86_64")]
    assert!(
        !kernels.is_empty() || !Kernel::Avx2.is_supported(),
        "an AVX2 CPU must test a packed kernel"
    );
    kernels
}

/// A tensor of `shape` with values uniform in [offset − 0.5, offset + 0.5) from `seed`
/// (xorshift), the same on every run.
pub(crate) fn random(shape: &[usize], seed: u64, offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5 + offset
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// The largest absolute difference of two tensors of the same size; NaN counts as the
/// largest difference, so it cannot pass a tolerance.
pub(crate) fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}
