//! The CLIP network: an image tower (a ViT or the ModifiedResNet, [`ImageTower`]), a causal
//! text transformer, their projections into one embedding space and the learned temperature.
//!
//! Shape legend used in comments: B = batch, T = tokens, C = channels of the residual stream,
//! H = heads, D = channels per head, I = MLP hidden width, P = patches, E = embedding size.

mod architecture;
mod conv;
mod cross_entropy;
mod encoder;
mod grad_ops;
mod image_tower;
pub mod imagine;
mod kernel;
mod kernel_amx;
mod kernel_bf16;
mod kernel_int8;
mod kernel_w8a8;
mod layers;
mod linear_op;
mod load_options;
mod network;
mod ops;
mod packed;
mod packed_cache;
mod packed_linear;
mod packed_tiles;
mod precision;
mod random;
mod resnet;
#[cfg(test)]
mod test_support;
mod text;
mod token_embedding;
mod vision;
pub mod vq;

pub use architecture::Architecture;
pub use cross_entropy::cross_entropy;
pub use image_tower::{ImageTower, ImageTowerConfig};
pub use kernel::{cpu_features, Kernel, KernelError, KERNEL_ENV};
pub use load_options::{LoadOptions, WeightFormat};
pub use network::ClipNetwork;
pub use packed_cache::{PackedCache, MIN_CACHED_BYTES};
pub use precision::{Precision, UnknownPrecision};
pub use random::random_weights;
pub use resnet::{ResNetConfig, ResNetTower};
pub use text::TextTower;
pub use vision::VisionTower;
