//! clipkit: CLIP — contrastive language–image pre-training — and the systems built on it.
//!
//! Load a HuggingFace CLIP model folder with [`Clip::load`], embed images and texts into one
//! space, compare them with [`Clip::logits`], and classify images zero-shot with
//! [`zeroshot::ZeroShotClassifier`].
#![warn(missing_docs)]

pub mod allocator;
pub mod checkpoint;
mod clip;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod image;
pub mod merge;
pub mod model;
pub mod model_folder;
pub mod paths;
pub mod plot;
pub mod search;
pub mod tokenizer;
pub mod train;
pub mod zeroshot;

pub use clip::{l2_normalize, Clip, Logits, DEFAULT_BATCH_SIZE};
pub use error::{Error, Result};
pub use model::{LoadOptions, WeightFormat};
