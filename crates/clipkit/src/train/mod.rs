//! Contrastive training: CLIP's symmetric InfoNCE objective, the AdamW optimiser with a
//! warm-up + cosine schedule, and the trainable parameter set.
//!
//! Training runs the same [`ClipNetwork`](crate::model::ClipNetwork) as inference. Its
//! weights are candle variables, so every layer takes the differentiable composite path
//! instead of the fused inference kernels, and the network is rebuilt from the variables at
//! each step (the query/key/value concatenation is then part of the graph).

mod curves;
pub mod imagine;
mod init;
mod loader;
mod loss;
mod metrics_log;
mod optimizer;
mod parameters;
mod presets;
mod quickstart;
mod quickstart_imagine;
mod resume_files;
mod run;
mod schedule;
mod setup;
mod step;
mod varmap;
pub mod vq;

pub use curves::write_training_curves;
pub use loader::{BatchLoader, LoadedBatch, Preparation, SampleOrder};
pub use loss::{contrastive_loss, pair_accuracy, ContrastiveOutput};
pub use metrics_log::read_metrics_file;
pub use optimizer::{AdamW, AdamWConfig, StepReport, TrainableVar};
pub use parameters::{decays, Parameters, LOGIT_SCALE, MAX_LOGIT_SCALE};
pub use presets::{preset, PRESET_NAMES};
pub use quickstart::{
    check_targets, QuickstartRecipe, TargetCheck, QUICKSTART_PRESET, QUICKSTART_TARGETS,
};
pub use quickstart_imagine::{
    check_imagine_targets, seen_pairs_row, ImagineQuickstartRecipe, IMAGINE_QUICKSTART_TARGETS,
};
pub use run::{run, MetricsLine, ModelAssets, Progress, RunFolder, RunSettings, RunSummary};
pub use schedule::LrSchedule;
pub use setup::Start;
pub use step::{gradients, train_step, Batch, StepMetrics};
