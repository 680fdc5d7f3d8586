//! `x Wᵀ + b` as one op with its own backward pass, for the linear maps that train.
//!
//! candle takes a biased linear map as four graph nodes (the weight's transpose, the product,
//! the bias add, and a reshape or two), and its backward pass gives every node's output a
//! zeroed gradient buffer that the node's gradient is then added to. Here the product writes
//! over rows that already hold the bias, and the backward pass yields dx, dW and db directly.
//!
//! Shapes: M = rows, K = input width, N = output width.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::grad_ops::add_columns;
use super::ops::{contiguous_f32, fused_ok, rows_per_task};

/// `x Wᵀ + b` for x (M, K), W (N, K) and b (N), through one op with its own backward
/// (`LinearOp`) where the tensors allow (f32 on the CPU), candle's ops otherwise.
pub fn linear_with_bias(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if fused_ok(&[x, weight, bias]) {
        x.contiguous()?
            .apply_op3(&weight.contiguous()?, &bias.contiguous()?, LinearOp)
    } else {
        x.matmul(&weight.t()?)?.broadcast_add(bias)
    }
}

/// The op behind [`linear_with_bias`]: (x, W, b) → x Wᵀ + b.
struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "clipkit-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, [m, k, n]) = input_and_weight(s1, l1, s2, l2)?;
        let b = contiguous_f32(s3, l3, "linear bias")?;
        if b.len() != n {
            candle_core::bail!("linear: weight {n}×{k}, bias {}", b.len());
        }
        let mut y = Vec::with_capacity(m * n);
        for _ in 0..m {
            y.extend_from_slice(b);
        }
        // SAFETY: y is M×N row-major, x M×K row-major, W N×K row-major read as Wᵀ (K×N)
        // through strides; the regions do not overlap.
        unsafe {
            product(
                true,
                [m, n, k],
                (y.as_mut_ptr(), 1, n as isize),
                (x.as_ptr(), 1, k as isize),
                (w.as_ptr(), k as isize, 1),
            );
        }
        Ok((CpuStorage::F32(y), Shape::from_dims(&[m, n])))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let n = weight.dim(0)?;
        let flat = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &LinearBackward)?;
        let dx = flat.narrow(0, 0, m * k)?.reshape((m, k))?;
        let dw = flat.narrow(0, m * k, n * k)?.reshape((n, k))?;
        let db = flat.narrow(0, (m + n) * k, n)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// (x, W, dY) → dx = dY W (M×K), dW = dYᵀ x (N×K) and db = Σ_rows dY (N), one after the
/// other in one flat buffer.
struct LinearBackward;

impl CustomOp3 for LinearBackward {
    fn name(&self) -> &'static str {
        "clipkit-linear-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, [m, k, n]) = input_and_weight(s1, l1, s2, l2)?;
        let dy = contiguous_f32(s3, l3, "linear gradient")?;
        if dy.len() != m * n {
            candle_core::bail!("linear backward: gradient size mismatch");
        }
        let mut out = vec![0f32; (m + n) * k + n];
        let (dx, rest) = out.split_at_mut(m * k);
        let (dw, db) = rest.split_at_mut(n * k);
        // SAFETY: dx is M×K and dW N×K row-major, disjoint parts of `out`; dY is M×N, x
        // M×K and W N×K row-major, dYᵀ read through strides.
        unsafe {
            product(
                false,
                [m, k, n],
                (dx.as_mut_ptr(), 1, k as isize),
                (dy.as_ptr(), 1, n as isize),
                (w.as_ptr(), 1, k as isize),
            );
            product(
                false,
                [n, k, m],
                (dw.as_mut_ptr(), 1, k as isize),
                (dy.as_ptr(), n as isize, 1),
                (x.as_ptr(), 1, k as isize),
            );
        }
        if n == 0 {
            return Ok((CpuStorage::F32(out), Shape::from(m * k)));
        }
        let rows = rows_per_task(m, n);
        let sums = dy
            .par_chunks(rows * n)
            .map(|chunk| {
                let mut sums = vec![0f32; n];
                for row in chunk.chunks_exact(n) {
                    for (s, &g) in sums.iter_mut().zip(row) {
                        *s += g;
                    }
                }
                sums
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold(vec![0f32; n], add_columns);
        db.copy_from_slice(&sums);
        Ok((CpuStorage::F32(out), Shape::from((m + n) * k + n)))
    }
}

/// The contiguous x (M, K) and W (N, K) of a linear map's first two operands, with
/// [M, K, N]; widths checked.
fn input_and_weight<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [f32], [usize; 3])> {
    let x = contiguous_f32(s1, l1, "linear input")?;
    let w = contiguous_f32(s2, l2, "linear weight")?;
    let (m, k) = l1.shape().dims2()?;
    let (n, wk) = l2.shape().dims2()?;
    if wk != k {
        candle_core::bail!("linear: input width {k}, weight {n}×{wk}");
    }
    Ok((x, w, [m, k, n]))
}

/// A pointer with its (column, row) strides.
type Strided<P> = (P, isize, isize);

/// dst (rows×cols) = [dst +] lhs (rows×depth) · rhs (depth×cols), on every rayon thread.
///
/// # Safety
/// The pointers and strides must describe valid regions of those sizes, dst not
/// overlapping the others.
unsafe fn product(
    accumulate: bool,
    [rows, cols, depth]: [usize; 3],
    dst: Strided<*mut f32>,
    lhs: Strided<*const f32>,
    rhs: Strided<*const f32>,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    // gemm: dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
    gemm::gemm(
        rows,
        cols,
        depth,
        dst.0,
        dst.1,
        dst.2,
        accumulate,
        lhs.0,
        lhs.1,
        lhs.2,
        rhs.0,
        rhs.1,
        rhs.2,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::Rayon(rayon::current_num_threads()),
    );
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::model::test_support::{max_difference, random};

    /// Output and the three gradients against candle's matmul + broadcast add, with more
    /// rows than columns and a width that fills no register evenly.
    #[test]
    fn matches_candle_forward_and_backward() {
        let (m, k, n) = (37, 19, 23);
        let x = Var::from_tensor(&random(&[m, k], 1, 0.0)).unwrap();
        let w = Var::from_tensor(&random(&[n, k], 2, 0.0)).unwrap();
        let b = Var::from_tensor(&random(&[n], 3, 0.5)).unwrap();
        let ours = linear_with_bias(&x, &w, &b).unwrap();
        let theirs = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert_eq!(ours.dims(), &[m, n]);
        assert!(max_difference(&ours, &theirs) < 1e-6);
        let probe = random(&[m, n], 4, 0.0);
        let grads = |y: Tensor| {
            let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            [&x, &w, &b].map(|v| g.get(v).unwrap().clone())
        };
        for (g_ours, g_theirs) in grads(ours).iter().zip(grads(theirs)) {
            assert_eq!(g_ours.dims(), g_theirs.dims());
            assert!(max_difference(g_ours, &g_theirs) < 1e-5);
        }
    }

    #[test]
    fn a_weight_of_another_width_is_an_error() {
        let err = linear_with_bias(
            &random(&[2, 3], 1, 0.0),
            &random(&[4, 5], 2, 0.0),
            &random(&[4], 3, 0.0),
        )
        .unwrap_err();
        assert!(err.to_string().contains("input width 3"), "{err}");
    }
}
