//! CLIP-guided image generation, as in VQGAN+CLIP and Pixray: start from a parametrised
//! image (a [`Drawer`]), render it, embed augmented cut-outs of it with one or more frozen
//! CLIPs, and follow the gradient of the weighted spherical distance to the prompts.
//!
//! The pieces are separate and one loop ([`Generation`]) composes them:
//! [`prompt`](parse_prompts) (`"text:weight:stop | …"`), [`cutouts`] (the augmentation
//! scheme), [`drawer`] (pixel, Fourier; the VQ decoder's latent next), [`loss`] (spherical
//! distance, total variation), [`output`] (PNG files, contact sheets).
//!
//! ```no_run
//! use clipkit::generate::{new_drawer, parse_prompts, DrawerKind, GenerateConfig, Generation};
//! use clipkit::{Clip, LoadOptions};
//!
//! let options = LoadOptions { input_gradients: true, ..LoadOptions::default() };
//! let clip = Clip::load_with(std::path::Path::new("my-model"), options)?;
//! let drawer = new_drawer(DrawerKind::Pixel, (144, 144), 1.0, 0)?; // seed 0
//! let prompts = parse_prompts("a red circle | a blue square:-0.5")?;
//! let mut run = Generation::new(drawer, &[&clip], prompts, None, GenerateConfig::default())?;
//! for _ in 0..100 {
//!     run.step()?;
//! }
//! let image = clipkit::generate::output::to_rgb_image(&run.image()?)?;
//! # Ok::<(), clipkit::Error>(())
//! ```

pub mod cutouts;
pub mod drawer;
pub mod loss;
pub mod output;
mod prompt;
mod run;

pub use cutouts::CutoutConfig;
pub use drawer::{
    new_drawer, vqgan_drawer, Drawer, DrawerKind, FourierDrawer, PixelDrawer, VqganDrawer,
    DEFAULT_FOURIER_DECAY,
};
pub use prompt::{parse_prompts, Prompt};
pub use run::{prompt_similarity, GenerateConfig, Generation, StepReport};
