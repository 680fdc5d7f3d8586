//! The vqgan drawer: the latent of a VQ decoder ([`VqModel`], diffusers `VQModel` or a
//! taming VQGAN), quantised to its nearest codes with a straight-through gradient and
//! decoded, as VQGAN+CLIP optimises it.
//!
//! Shapes: D = code width, h × w = latent size = image size / the model's downscale factor.

use candle_core::{Tensor, Var};
use rand::Rng;

use super::Drawer;
use crate::error::Result;
use crate::model::vq::VqModel;
use crate::train::TrainableVar;

/// The Adam step VQGAN+CLIP takes on the latent.
const DEFAULT_LR: f64 = 0.1;

/// `(decode(quantise(latent)) + 1) / 2`, clamped to [0, 1]; latent (1, D, h, w).
pub struct VqganDrawer {
    model: VqModel,
    latent: Var,
}

impl VqganDrawer {
    /// A latent of random codes (each position an independent uniform draw from the
    /// codebook, as VQGAN+CLIP starts) for (height, width) images, which must be multiples
    /// of the model's downscale factor.
    pub fn random(model: VqModel, height: usize, width: usize, rng: &mut impl Rng) -> Result<Self> {
        let (_, h, w) = model.latent_shape(height, width)?;
        let codes = model.config().num_vq_embeddings as u32;
        let indices: Vec<u32> = (0..h * w).map(|_| rng.random_range(0..codes)).collect();
        let indices = Tensor::from_vec(indices, (1, h, w), &candle_core::Device::Cpu)?;
        let latent = Var::from_tensor(&model.quantizer().lookup(&indices)?)?;
        Ok(VqganDrawer { model, latent })
    }
}

impl Drawer for VqganDrawer {
    fn name(&self) -> &'static str {
        "vqgan"
    }

    fn variables(&self) -> Vec<TrainableVar> {
        vec![TrainableVar {
            name: "vqgan.latent".into(),
            var: self.latent.clone(),
            decays: false,
        }]
    }

    fn render(&self) -> Result<Tensor> {
        let image = self.model.decode(self.latent.as_tensor())?; // (1, 3, H, W) in [-1, 1]
        Ok(((image + 1.0)? / 2.0)?.clamp(0f32, 1f32)?)
    }

    fn default_lr(&self) -> f64 {
        DEFAULT_LR
    }

    /// The encoder inverts the decoder: the latent becomes the encoding of `image`.
    fn init_from_image(&mut self, image: &Tensor, _steps: usize) -> Result<()> {
        let latent = self.model.encode(&((image * 2.0)? - 1.0)?)?;
        self.latent.set(&latent)?;
        Ok(())
    }
}
