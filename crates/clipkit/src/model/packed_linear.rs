//! [`PackedWeight`]'s product as candle ops, so the kernel reads the input tensor's storage
//! in place: x (M, K) → (M, N). [`PackedLinearOp`] is the inference op (no backward),
//! [`PackedResidualLinearOp`] the same with a residual connection added in the product's
//! epilogue; [`DifferentiablePackedLinear`] adds the backward pass to the input, for
//! gradients through frozen weights.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::ops::contiguous_f32;
use super::packed::{Epilogue, Matrix, PackedWeight};

/// Y = X Wᵀ (+ bias) with a packed W, for inputs that track no gradient.
pub struct PackedLinearOp<'a> {
    /// W (N, K), packed.
    pub weight: &'a PackedWeight,
    /// (N), when the product adds one.
    pub bias: Option<&'a [f32]>,
}

impl CustomOp1 for PackedLinearOp<'_> {
    fn name(&self) -> &'static str {
        "clipkit-packed-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        packed_product(self.weight, self.bias, storage, layout)
    }
}

/// Y = X Wᵀ (+ bias) + R with a packed W, for inputs that track no gradient: (x (M, K),
/// r (M, N)) → (M, N). The residual R is added to each block of the product while it is in
/// cache, instead of in a separate pass that reads both (M, N) tensors and writes a third.
pub struct PackedResidualLinearOp<'a> {
    /// W (N, K), packed.
    pub weight: &'a PackedWeight,
    /// (N), when the product adds one.
    pub bias: Option<&'a [f32]>,
}

impl CustomOp2 for PackedResidualLinearOp<'_> {
    fn name(&self) -> &'static str {
        "clipkit-packed-residual-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = input_rows(self.weight, xs, xl)?;
        let residual = contiguous_f32(rs, rl, "packed linear residual")?;
        let (m, n) = (xl.shape().dims2()?.0, self.weight.out_dim());
        if rl.shape().dims2()? != (m, n) {
            candle_core::bail!(
                "packed linear: a residual of shape {:?} for an output of ({m}, {n})",
                rl.shape().dims()
            );
        }
        let epilogue = Epilogue {
            residual: Some(residual),
            relu: false,
        };
        let y = self
            .weight
            .product(&Matrix::new(x, self.weight.in_dim()), self.bias, epilogue);
        Ok((CpuStorage::F32(y), (m, n).into()))
    }
}

/// Y = X Wᵀ (+ bias) with a packed W and a backward pass to X only: dX = dY W, itself
/// computed by the packed kernel from Wᵀ packed at load time. W and the bias are constants.
pub struct DifferentiablePackedLinear {
    /// W (N, K), packed.
    pub weight: Arc<PackedWeight>,
    /// Wᵀ (K, N), packed.
    pub transposed: Arc<PackedWeight>,
    /// (N), when the product adds one.
    pub bias: Option<Vec<f32>>,
}

impl CustomOp1 for DifferentiablePackedLinear {
    fn name(&self) -> &'static str {
        "clipkit-packed-linear-differentiable"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        packed_product(&self.weight, self.bias.as_deref(), storage, layout)
    }

    /// grad (M, N) → dX (M, K).
    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad.contiguous()?.apply_op1_no_bwd(&PackedLinearOp {
            weight: &self.transposed,
            bias: None,
        })?;
        Ok(Some(dx))
    }
}

fn packed_product(
    weight: &PackedWeight,
    bias: Option<&[f32]>,
    storage: &CpuStorage,
    layout: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let x = input_rows(weight, storage, layout)?;
    let m = layout.shape().dims2()?.0;
    let y = weight.matmul(x, bias);
    Ok((CpuStorage::F32(y), (m, weight.out_dim()).into()))
}

/// The contiguous rows of a packed product's input x (M, K), its width checked against W.
fn input_rows<'a>(
    weight: &PackedWeight,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    let x = contiguous_f32(storage, layout, "packed linear")?;
    let k = layout.shape().dims2()?.1;
    if k != weight.in_dim() {
        candle_core::bail!(
            "packed linear: input width {k}, weight expects {}",
            weight.in_dim()
        );
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::test_support::packed_kernels;

    /// The residual op is the plain packed product plus the residual, bit for bit (the same
    /// sums in the same order), on every packed kernel this CPU runs; a residual of another
    /// shape is an error.
    #[test]
    fn the_residual_is_added_exactly_and_its_shape_checked() {
        let (m, n, k) = (37, 45, 70);
        let values = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * seed % 97) as f32 - 48.0) / 48.0)
                .collect()
        };
        let (x, w, r) = (values(m * k, 37), values(n * k, 53), values(m * n, 29));
        let bias = values(n, 11);
        let device = Device::Cpu;
        let xt = Tensor::from_slice(&x, (m, k), &device).unwrap();
        let rt = Tensor::from_slice(&r, (m, n), &device).unwrap();
        for kernel in packed_kernels() {
            let packed = PackedWeight::pack_for(kernel, &w, n, k).expect("supported");
            let op = PackedResidualLinearOp {
                weight: &packed,
                bias: Some(&bias),
            };
            let got: Vec<f32> = xt
                .apply_op2_no_bwd(&rt, &op)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let plain = packed.matmul(&x, Some(&bias));
            let want: Vec<f32> = plain.iter().zip(&r).map(|(y, r)| y + r).collect();
            assert_eq!(got, want, "{kernel}");
            let short = rt.narrow(0, 0, m - 1).unwrap();
            let err = xt.apply_op2_no_bwd(&short, &op).unwrap_err().to_string();
            assert!(err.contains("a residual of shape [36, 45]"), "{err}");
        }
    }
}
