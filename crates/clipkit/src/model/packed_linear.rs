//! [`PackedWeight`]'s product as candle ops, so the kernel reads the input tensor's storage
//! in place: x (M, K) → (M, N). [`PackedLinearOp`] is the inference op (no backward);
//! [`DifferentiablePackedLinear`] adds the backward pass to the input, for gradients through
//! frozen weights.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::ops::contiguous_f32;
use super::packed::PackedWeight;

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
    let x = contiguous_f32(storage, layout, "packed linear")?;
    let (m, k) = layout.shape().dims2()?;
    if k != weight.in_dim() {
        candle_core::bail!(
            "packed linear: input width {k}, weight expects {}",
            weight.in_dim()
        );
    }
    let y = weight.matmul(x, bias);
    Ok((CpuStorage::F32(y), (m, weight.out_dim()).into()))
}
