//! Evaluation: zero-shot accuracy (ImageFolder or the shapes world), retrieval recall, and
//! linear probes on frozen embeddings.
//!
//! - [`zeroshot`]: top-1/top-5, per-class accuracy and a confusion matrix on an
//!   [`ImageFolder`], with prompt templates ensembled by [`crate::zeroshot::ZeroShotClassifier`].
//! - [`shapes`]: the held-out shapes streams per attribute, on unseen colour–shape pairs and
//!   by full caption ([`evaluate_shapes`] → [`ShapesReport`]), and probes beside them.
//! - [`retrieval`]: image→text and text→image recall@1/5/10 over any [`crate::data::PairSource`].
//! - [`linear_probe`]: softmax regression with L2 on embeddings.
//! - [`search_quality`]: precision@k of image search on a captioned folder.
//! - [`clip_score`](mod@clip_score): CLIPScore, RefCLIPScore and torchmetrics' CLIPScore of
//!   image–caption pairs.
//! - [`generated`]: generated images judged against their prompts (CLIPScore, pixel checks
//!   of colour, count and position, a judge CLIP for shape and binding).

pub mod clip_score;
mod confusion_png;
pub mod folder_probe;
pub mod generated;
pub mod image_folder;
pub mod linear_probe;
pub mod metrics;
pub mod retrieval;
pub mod search_quality;
pub mod shapes;
pub mod zeroshot;

pub use clip_score::{clip_score, ClipScoreReport, PairScore};
pub use confusion_png::write_confusion_png;
pub use folder_probe::{probe_image_folder, FolderProbeReport};
pub use image_folder::ImageFolder;
pub use linear_probe::{LinearProbe, ProbeConfig};
pub use metrics::{Confusion, Recall};
pub use retrieval::RetrievalReport;
pub use shapes::{
    evaluate_shapes, probe_shapes, PairParts, ShapesEvalConfig, ShapesProbeReport, ShapesReport,
};
pub use zeroshot::ZeroShotReport;
