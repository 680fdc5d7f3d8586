//! The number format of the linear maps' weights at inference: [`Precision`].
//!
//! `fp32` keeps the checkpoint's values; `bf16` rounds weights and each product's input to
//! bfloat16 (8 bits of mantissa) and accumulates in f32; `int8` stores each weight as an
//! 8-bit integer times a scale per output channel (symmetric, `scale = max |w| / 127`) and
//! multiplies f32 inputs by it (weight-only quantisation); `w8a8` quantises the weights the
//! same way and each product's input per row (token) too, and multiplies integers (AVX-512
//! VNNI `vpdpbusd`). Only the matrix products change:
//! layer norms, attention scores, softmax and activations stay f32.

use std::fmt;
use std::str::FromStr;

use super::kernel_bf16::to_bf16_and_back;
use super::kernel_int8::{dequantize_rows, quantize_rows};

/// How the weights of the linear maps are held for inference (default [`Precision::Fp32`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// The checkpoint's values as f32 (the default).
    #[default]
    Fp32,
    /// bfloat16 weights and inputs, f32 accumulation (AVX-512 BF16 `vdpbf16ps`).
    Bf16,
    /// 8-bit weights with one f32 scale per output channel; f32 inputs.
    Int8,
    /// 8-bit weights as [`Precision::Int8`] and 8-bit inputs with one scale per row,
    /// integer products (AVX-512 VNNI `vpdpbusd`).
    W8a8,
}

/// A precision's name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a precision: use fp32, bf16, int8 or w8a8")]
pub struct UnknownPrecision(pub String);

impl Precision {
    /// Every precision, widest first.
    pub const ALL: [Precision; 4] = [
        Precision::Fp32,
        Precision::Bf16,
        Precision::Int8,
        Precision::W8a8,
    ];

    /// The name `--precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::W8a8 => "w8a8",
        }
    }

    /// A row-major (rows, k) matrix as this precision holds it, in f32: unchanged, rounded
    /// to bf16, or quantised per row to int8 (`int8`, `w8a8`) and scaled back.
    pub(crate) fn round_rows(self, values: &[f32], rows: usize, k: usize) -> Vec<f32> {
        match self {
            Precision::Fp32 => values.to_vec(),
            Precision::Bf16 => values.iter().map(|&v| to_bf16_and_back(v)).collect(),
            Precision::Int8 | Precision::W8a8 => {
                let (q, scales) = quantize_rows(values, rows, k);
                dequantize_rows(&q, &scales, k)
            }
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPrecision(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert_eq!(" INT8 ".parse::<Precision>(), Ok(Precision::Int8));
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert_eq!(err, UnknownPrecision("fp16".into()));
        assert!(err.to_string().contains("fp32, bf16, int8 or w8a8"));
    }
}
