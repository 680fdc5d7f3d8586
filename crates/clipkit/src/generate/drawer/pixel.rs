//! The pixel drawer: one logit per pixel and channel, rendered through a sigmoid.
//!
//! ```
//! use clipkit::generate::{Drawer, PixelDrawer};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let drawer = PixelDrawer::random(4, 6, &mut rng)?;
//! let image = drawer.render()?; // (1, 3, 4, 6)
//! assert_eq!(image.dims(), &[1, 3, 4, 6]);
//! let values = image.flatten_all()?.to_vec1::<f32>()?;
//! assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
//! # Ok::<(), clipkit::Error>(())
//! ```

use candle_core::{Tensor, Var};
use rand::Rng;

use super::{normal_var, Drawer};
use crate::error::Result;
use crate::train::TrainableVar;

/// Spread of the starting logits: pixels start as noise around mid-grey, mostly in
/// [0.27, 0.73].
const INIT_SCALE: f32 = 0.5;

/// RGB pixels `sigmoid(logits)`, logits (1, 3, H, W).
pub struct PixelDrawer {
    logits: Var,
}

impl PixelDrawer {
    /// Random logits N(0, 0.5²) for (height, width) images, drawn from `rng`.
    pub fn random(height: usize, width: usize, rng: &mut impl Rng) -> Result<Self> {
        Ok(PixelDrawer {
            logits: normal_var(&[1, 3, height, width], INIT_SCALE, rng)?,
        })
    }
}

impl PixelDrawer {
    /// A drawer around given logits (1, 3, H, W).
    pub fn from_logits(logits: Var) -> Result<Self> {
        match logits.dims() {
            [1, 3, h, w] if *h > 0 && *w > 0 => Ok(PixelDrawer { logits }),
            dims => Err(crate::Error::InvalidArgument(format!(
                "pixel logits must be (1, 3, H, W), not {dims:?}"
            ))),
        }
    }
}

impl Drawer for PixelDrawer {
    fn name(&self) -> &'static str {
        "pixel"
    }

    fn variables(&self) -> Vec<TrainableVar> {
        vec![TrainableVar {
            name: "pixel.logits".into(),
            var: self.logits.clone(),
            decays: false,
        }]
    }

    fn render(&self) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(self.logits.as_tensor())?)
    }

    fn default_lr(&self) -> f64 {
        0.05
    }

    /// Exact: the logits become logit(image), the image clamped to [0.001, 0.999].
    fn init_from_image(&mut self, image: &Tensor, _steps: usize) -> Result<()> {
        let p = image.clamp(1e-3f32, 1.0 - 1e-3)?;
        let logits = (p.log()? - p.affine(-1.0, 1.0)?.log()?)?;
        self.logits.set(&logits)?;
        Ok(())
    }
}
