//! The generation loss: spherical distance between unit embeddings, per prompt, plus
//! total variation and closeness to an init image.
//!
//! Shapes: K = cut-outs, E = embedding width, (B, 3, H, W) images in [0, 1].

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::prompt::Prompt;
use crate::error::Result;

/// Squared great-circle distance over two, as VQGAN+CLIP and Pixray compute it:
/// `2 · arcsin(‖a − b‖ / 2)²` between unit rows of `a` (K, E) and the unit vector `b` (1, E)
/// or (E): half the squared angle between them, 0 for equal vectors, π²/2 for opposite ones.
pub fn spherical_distance(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let b = b.reshape((1, ()))?;
    let chord = a.broadcast_sub(&b)?.sqr()?.sum(1)?.sqrt()?; // (K)
    let half = (chord * 0.5)?.contiguous()?;
    Ok((half.apply_op1(Arcsin)?.sqr()? * 2.0)?)
}

/// One prompt's loss over the cut-outs' distances `dists` (K): `|w| · mean(max(sign(w) ·
/// d, stop))`. A negative weight rewards distance; below `stop` a prompt pulls no more.
pub fn prompt_loss(dists: &Tensor, prompt: &Prompt) -> Result<Tensor> {
    let signed = (dists * f64::from(prompt.weight.signum()))?;
    let floored = if prompt.stop.is_finite() {
        signed.maximum(f64::from(prompt.stop))?
    } else {
        signed
    };
    Ok((floored.mean_all()? * f64::from(prompt.weight.abs()))?)
}

/// Total variation of images (B, 3, H, W): the mean squared difference between vertical
/// neighbours plus that between horizontal neighbours (0 for an image of one colour).
pub fn total_variation(images: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = images.dims4()?;
    let mut total = Tensor::zeros((), images.dtype(), images.device())?;
    if h > 1 {
        let dy = (images.narrow(2, 1, h - 1)? - images.narrow(2, 0, h - 1)?)?;
        total = (total + dy.sqr()?.mean_all()?)?;
    }
    if w > 1 {
        let dx = (images.narrow(3, 1, w - 1)? - images.narrow(3, 0, w - 1)?)?;
        total = (total + dx.sqr()?.mean_all()?)?;
    }
    Ok(total)
}

/// Mean squared difference between two equally shaped tensors.
pub fn mean_squared_error(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.mean_all()?)
}

/// Element-wise arcsin of f32 values in [−1, 1], with derivative 1 / √(1 − x²) (candle
/// has no arcsin of its own).
struct Arcsin;

impl CustomOp1 for Arcsin {
    fn name(&self) -> &'static str {
        "clipkit-arcsin"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("arcsin: expected f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("arcsin: expected a contiguous tensor");
        };
        let out = data[start..end]
            .iter()
            .map(|x| x.clamp(-1.0, 1.0).asin())
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // 1 − x², kept away from 0 so a distance at its maximum does not give ∞.
        let room = x.sqr()?.affine(-1.0, 1.0)?.maximum(1e-12)?;
        Ok(Some((grad / room.sqrt()?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn distances_of_known_angles() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [-1.0, 0.0]], &dev).unwrap();
        let b = Tensor::new(&[1f32, 0.0], &dev).unwrap();
        let d = spherical_distance(&a, &b)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let pi = std::f32::consts::PI;
        // θ²/2 for θ = 0, π/2, π.
        for (got, theta) in d.iter().zip([0.0, pi / 2.0, pi]) {
            assert!((got - theta * theta / 2.0).abs() < 1e-5, "{d:?}");
        }
    }

    #[test]
    fn arcsin_gradient_is_one_over_the_cosine() {
        let x = Var::new(&[0.0f32, 0.5, -0.8], &Device::Cpu).unwrap();
        let y = x.as_tensor().apply_op1(Arcsin).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (got, x) in g.iter().zip([0.0f32, 0.5, -0.8]) {
            assert!((got - 1.0 / (1.0 - x * x).sqrt()).abs() < 1e-5, "{g:?}");
        }
    }

    #[test]
    fn a_stop_floors_the_distance_and_negative_weights_reward_it() {
        let d = Tensor::new(&[0.1f32, 0.5], &Device::Cpu).unwrap();
        let prompt = |weight, stop| Prompt {
            text: "x".into(),
            weight,
            stop,
        };
        let loss = |p: &Prompt| prompt_loss(&d, p).unwrap().to_scalar::<f32>().unwrap();
        assert!((loss(&prompt(2.0, f32::NEG_INFINITY)) - 0.6).abs() < 1e-6);
        assert!((loss(&prompt(1.0, 0.3)) - 0.4).abs() < 1e-6);
        assert!((loss(&prompt(-1.0, f32::NEG_INFINITY)) + 0.3).abs() < 1e-6);
    }
}
