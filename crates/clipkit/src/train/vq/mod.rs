//! Training a VQ autoencoder (`clipkit train vq`): encoder, codebook and decoder together
//! on the shapes world, resumable like contrastive training, written as a diffusers
//! `VQModel` folder.
//!
//! Layout of a run folder:
//! - `checkpoint/`: the latest checkpoint, a diffusers `VQModel` folder plus
//!   `optimizer.safetensors` and `trainer_state.json`, replaced atomically;
//! - `model/`: the final model (a diffusers `VQModel` folder), written when the run completes;
//! - `metrics.jsonl`: one line per step; `eval.json`: PSNR and codebook usage on held-out
//!   images; `check.safetensors`: latents and their decoding, for
//!   `tools/make_vq_reference.py check`.

mod curves;
mod evaluate;
mod init;
mod perceptual;
mod run;

pub use curves::write_vq_curves;
pub use evaluate::{evaluate, images_tensor, reconstruct, VqEvaluation};
pub(crate) use init::name_seed;
pub use perceptual::{PerceptualSettings, PerceptualTerm};
pub use run::{
    run_vq, shapes_vq_config, three_level_vq_config, VqMetricsLine, VqProgress, VqRunSettings,
    VqRunSummary, SHAPES_OBJECT_WEIGHT,
};
