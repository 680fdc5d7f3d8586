//! Images: decoding files into upright 8-bit RGB ([`decode`]), Pillow-exact resampling
//! ([`resample`]), the model's preprocessing into pixel tensors ([`preprocess`]), and a
//! differentiable path on tensors that carry gradients ([`tensor`]), for generation.

pub mod decode;
pub mod preprocess;
pub mod resample;
pub mod tensor;

pub use decode::{
    has_image_extension, is_image_extension, load_rgb, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS,
};
pub use preprocess::{CropCorner, PreprocessConfig};
