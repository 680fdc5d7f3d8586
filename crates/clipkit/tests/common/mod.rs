//! Helpers shared by the parity tests: fixture paths, reference tensors, comparisons.
#![allow(dead_code)]

pub mod compare;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The committed fixtures written by `tools/make_fixtures.py`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

pub fn image(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

/// Reference tensors of one model, by name.
pub fn reference(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures()
        .join("reference")
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).expect("reference tensors load")
}

/// The reference metadata of one model.
pub fn reference_json(name: &str) -> serde_json::Value {
    let path = fixtures().join("reference").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference json")).expect("json")
}

/// Largest absolute difference between two tensors of one shape; infinite when either holds
/// a NaN or an infinity (see [`compare`]).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    compare::max_abs_diff_slices(&a, &b)
}

/// Fails with the first mismatching values when `a` and `b` differ by more than `tol`.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let diff = max_abs_diff(got, want);
    // Never NaN: a non-finite element makes `diff` infinite.
    if diff > tol {
        let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let first: Vec<String> = g
            .iter()
            .zip(&w)
            .enumerate()
            .filter(|(_, (x, y))| !compare::all_close(&[**x], &[**y], tol))
            .take(5)
            .map(|(i, (x, y))| format!("[{i}] got {x} want {y}"))
            .collect();
        panic!(
            "{what}: max abs diff {diff} > {tol}; first mismatches: {}",
            first.join(", ")
        );
    }
    eprintln!("{what}: max abs diff {diff:.2e} (tolerance {tol:.0e})");
}
