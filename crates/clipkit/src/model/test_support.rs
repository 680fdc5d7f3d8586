//! What the unit tests of the model's ops share: deterministic inputs and a NaN-proof
//! comparison.

use candle_core::{Device, Tensor};

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
