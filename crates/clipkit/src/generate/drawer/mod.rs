//! Drawers: parametrised images that render to (1, 3, H, W) in [0, 1], differentiably with
//! respect to their variables, so the generation loop can optimise them. A new drawer is a
//! new file implementing [`Drawer`], not a branch in the loop.
//!
//! - [`PixelDrawer`]: every pixel's RGB through a sigmoid.
//! - [`FourierDrawer`]: a decorrelated-colour Fourier spectrum scaled by 1/f^decay.
//! - [`VqganDrawer`]: the latent of a VQ decoder, quantised with a straight-through
//!   gradient (built by [`vqgan_drawer`] from a loaded decoder).

mod fourier;
mod pixel;
mod vqgan;

use candle_core::{Tensor, Var};
use rand::{Rng, SeedableRng};

pub use fourier::{FourierDrawer, DEFAULT_DECAY as DEFAULT_FOURIER_DECAY};
pub use pixel::PixelDrawer;
pub use vqgan::VqganDrawer;

use super::loss::mean_squared_error;
use crate::error::Result;
use crate::train::{AdamW, AdamWConfig, TrainableVar};

/// A parametrised image.
///
/// Contract: [`Drawer::render`] returns an f32 tensor (1, 3, H, W) with values in [0, 1]
/// of the size the drawer was built with, computed from [`Drawer::variables`] with candle
/// ops (or ops with a backward pass), so that a loss on it has gradients with respect to
/// every variable; it is deterministic (the same variables give the same pixels).
pub trait Drawer {
    /// The drawer's name as `--drawer` spells it.
    fn name(&self) -> &'static str;
    /// The variables the optimiser updates, with unique names.
    fn variables(&self) -> Vec<TrainableVar>;
    /// The image (1, 3, H, W) in [0, 1].
    fn render(&self) -> Result<Tensor>;
    /// The Adam learning rate that suits this parametrisation.
    fn default_lr(&self) -> f64;

    /// Moves the variables so that the render approximates `image` (1, 3, H, W) in [0, 1]:
    /// by default `steps` Adam steps (learning rate [`Drawer::default_lr`]) on the mean
    /// squared error; a drawer that can invert its render exactly overrides it.
    fn init_from_image(&mut self, image: &Tensor, steps: usize) -> Result<()> {
        fit_to_image(self, image, steps)
    }
}

/// The drawers `--drawer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawerKind {
    /// [`PixelDrawer`].
    Pixel,
    /// [`FourierDrawer`].
    Fourier,
    /// The latent of a VQ decoder (VQGAN / diffusers `VQModel`), quantised with a
    /// straight-through gradient. It needs a loaded decoder, so it is built by
    /// [`vqgan_drawer`], not by [`new_drawer`].
    Vqgan,
}

impl DrawerKind {
    /// The name `--drawer` uses.
    pub fn name(self) -> &'static str {
        match self {
            DrawerKind::Pixel => "pixel",
            DrawerKind::Fourier => "fourier",
            DrawerKind::Vqgan => "vqgan",
        }
    }
}

/// A drawer of `kind` for (height, width) images, its variables drawn from a ChaCha8
/// stream of `seed` (stream 1; the loop's cut-outs use stream 0) (`fourier_decay`: the Fourier drawer's amplitude exponent, [`DEFAULT_FOURIER_DECAY`]
/// unless chosen); an error for [`DrawerKind::Vqgan`], which needs a decoder.
pub fn new_drawer(
    kind: DrawerKind,
    (height, width): (usize, usize),
    fourier_decay: f64,
    seed: u64,
) -> Result<Box<dyn Drawer>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    let rng = &mut rng;
    Ok(match kind {
        DrawerKind::Pixel => Box::new(PixelDrawer::random(height, width, rng)?),
        DrawerKind::Fourier => Box::new(FourierDrawer::random(height, width, fourier_decay, rng)?),
        DrawerKind::Vqgan => {
            return Err(crate::Error::InvalidArgument(
                "the vqgan drawer needs a VQ decoder (--vq DIR); build it with vqgan_drawer".into(),
            ))
        }
    })
}

/// A [`VqganDrawer`] around `model` for (height, width) images, its random codes drawn from
/// the same seeded stream as [`new_drawer`]'s variables.
pub fn vqgan_drawer(
    model: crate::model::vq::VqModel,
    (height, width): (usize, usize),
    seed: u64,
) -> Result<Box<dyn Drawer>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    Ok(Box::new(VqganDrawer::random(
        model, height, width, &mut rng,
    )?))
}

/// Adam on the mean squared error between the drawer's render and `image`.
fn fit_to_image<D: Drawer + ?Sized>(drawer: &mut D, image: &Tensor, steps: usize) -> Result<()> {
    let config = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        max_grad_norm: None,
    };
    let mut adam = AdamW::new(drawer.variables(), config)?;
    let lr = drawer.default_lr();
    for _ in 0..steps {
        let loss = mean_squared_error(&drawer.render()?, image)?;
        adam.step(&loss.backward()?, lr)?;
    }
    Ok(())
}

/// Standard normal values × `scale` as a variable of `shape`, drawn from `rng` in order.
fn normal_var(shape: &[usize], scale: f32, rng: &mut impl Rng) -> Result<Var> {
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal) * scale)
        .collect();
    Ok(Var::from_vec(values, shape, &candle_core::Device::Cpu)?)
}
