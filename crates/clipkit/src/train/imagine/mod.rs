//! Training the DALL·E-style text-to-image transformer (`clipkit train imagine`) on the
//! shapes world: captions followed by the codes a frozen VQ model gives their images.
//!
//! Layout of a run folder:
//! - `codes.safetensors`: the code pool (written once, reused on resume);
//! - `checkpoint/`: the latest checkpoint, a generator folder plus `optimizer.safetensors`
//!   and `trainer_state.json`, replaced atomically;
//! - `model/`: the final generator folder, written when the run completes;
//! - `metrics.jsonl`: one line per step.

mod data;
mod init;
mod run;

pub use data::{caption_ids, CodePool};
pub use run::{
    run_imagine, ImagineInputs, ImagineMetricsLine, ImagineProgress, ImagineRunSettings,
    ImagineRunSummary,
};
