//! Comparing numbers in tests so that nothing non-finite can pass: a NaN or an infinity on
//! either side counts as an infinite difference, and tolerances are checked with `<=`, which
//! NaN never satisfies. Shared by every test crate (`#[path]`-included by the CLI's tests).

/// Largest absolute difference between two equally long slices; `f32::INFINITY` when any
/// element of either is NaN or infinite.
pub fn max_abs_diff_slices(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

/// True when every pair of elements is finite and within `tol`.
pub fn all_close(a: &[f32], b: &[f32], tol: f32) -> bool {
    max_abs_diff_slices(a, b) <= tol
}

#[cfg(test)]
mod guards {
    use super::*;

    #[test]
    fn nan_and_infinity_fail_every_comparison() {
        let want = [0.5_f32, -1.0, 2.0];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut got = want;
            got[1] = bad;
            assert_eq!(max_abs_diff_slices(&got, &want), f32::INFINITY);
            assert_eq!(max_abs_diff_slices(&want, &got), f32::INFINITY);
            assert!(!all_close(&got, &want, f32::MAX));
            assert!(!all_close(&[f32::NAN; 3], &[f32::NAN; 3], f32::MAX));
        }
        assert!(all_close(&want, &want, 0.0));
        assert!(!all_close(&[0.5, -1.0, 2.001], &want, 1e-4));
    }
}
