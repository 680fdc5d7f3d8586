//! clipkit: CLIP — contrastive language–image pre-training — and the systems built on it.
//!
//! Load a HuggingFace CLIP model folder with [`Clip::load`] (or [`Clip::load_with`] and
//! [`LoadOptions`], for gradients through the frozen model), embed images and texts into one
//! space, compare them with [`Clip::logits`], and classify images zero-shot with
//! [`ZeroShotClassifier`]:
//!
//! ```
//! use clipkit::{Clip, ZeroShotClassifier};
//! # let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
//! # let model_dir = format!("{fixtures}/models/clip-a");
//! # let photo = format!("{fixtures}/images/rgba.png");
//! let clip = Clip::load(std::path::Path::new(&model_dir))?;
//! let texts = clip.embed_texts(&["a photo of a cat", "a photo of a dog"])?; // (2, E), unit rows
//! let images = clip.embed_image_files(&[&photo], |_| {})?; // (1, E)
//! let probs: Vec<f32> = clip.logits(&images, &texts)?.probs()?.get(0)?.to_vec1()?;
//! assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//!
//! let labels = ["cat".to_string(), "dog".to_string()];
//! let templates = ["a photo of a {}.".to_string(), "a drawing of a {}.".to_string()];
//! let classifier = ZeroShotClassifier::new(&clip, &labels, &templates)?;
//! let ranked = &classifier.classify(&images)?[0]; // every label, most probable first
//! assert_eq!(ranked.len(), 2);
//! assert!(ranked[0].prob >= ranked[1].prob);
//! # Ok::<(), clipkit::Error>(())
//! ```
//!
//! Beyond one model: [`search`] (index a folder, find images by text, image or a mix, in a
//! store opened from a location), [`train`] (contrastive training and fine-tuning, resumable),
//! [`eval`] (zero-shot accuracy, retrieval, linear probes, search precision), [`data`] (the
//! procedural shapes world and caption files), [`merge`] (WiSE-FT), [`image`] (decoding,
//! Pillow-exact preprocessing and its differentiable twin on tensors), [`model_folder`]
//! (reading and writing HuggingFace model folders).
#![warn(missing_docs)]

pub mod allocator;
pub(crate) mod checkpoint;
mod clip;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod generate;
pub mod hub;
pub mod image;
pub mod imagine;
pub mod merge;
pub mod model;
pub mod model_folder;
pub mod paths;
pub(crate) mod plot;
mod prefetch;
pub mod search;
pub mod tokenizer;
pub mod train;
pub mod zeroshot;

pub use clip::{l2_normalize, Clip, Logits, DEFAULT_BATCH_SIZE};
pub use config::ClipConfig;
pub use error::{Error, Result};
pub use model::{Kernel, LoadOptions, WeightFormat};
pub use zeroshot::ZeroShotClassifier;
