//! [`PairSource`]: random access to (image, caption) pairs, the one interface the training
//! loop and the evaluation commands read data through.

use image::RgbImage;

use crate::error::Result;

/// One training or evaluation example.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The decoded image, upright 8-bit RGB.
    pub image: RgbImage,
    /// Its caption.
    pub caption: String,
}

/// A fixed-length, random-access collection of (image, caption) pairs.
///
/// Contract, which every implementation keeps and the shared tests check:
/// - `len` never changes; indices `0..len` are valid, anything else is an
///   [`Error::InvalidArgument`](crate::Error::InvalidArgument).
/// - `get` is deterministic: the same index gives the same pair every time, on any thread,
///   in any order, so loading can be parallel and a resumed run sees the same data.
/// - A bad sample (unreadable image, missing or empty caption, malformed line) is an
///   `Err` from `get` that names the file and the line or member, never a panic; callers
///   skip and count those. Sources that cannot be opened at all fail when they are built.
pub trait PairSource: Send + Sync {
    /// How many samples (good or bad) the source indexes.
    fn len(&self) -> usize;

    /// Whether the source indexes no sample at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pair at `index`.
    fn get(&self, index: usize) -> Result<Pair>;

    /// One line for logs and reports: what the data is and how much of it there is.
    fn describe(&self) -> String;

    /// How many consecutive indices form a family that belongs in one batch (hard
    /// negatives, like the shapes world's shape variants); 1 for independent samples.
    /// Training shuffles whole families, so a family stays together in every batch whose
    /// size is a multiple of it.
    fn family_len(&self) -> usize {
        1
    }

    /// Within a batch of the samples `indices`, every `(caption, image)` pair of positions
    /// (never equal) where the caption of one sample is also true of another's image, as
    /// "a red shape" is of every image with one red object: the contrastive loss must not
    /// count those as negatives. Sources that cannot tell return none (CLIP's own
    /// assumption: every other caption of a batch is a negative).
    fn also_true(&self, indices: &[usize]) -> Vec<(usize, usize)> {
        let _ = indices;
        Vec::new()
    }
}

/// The error for an index outside `0..len`.
pub(crate) fn out_of_range(index: usize, len: usize) -> crate::Error {
    crate::Error::InvalidArgument(format!(
        "sample index {index} is out of range (the source has {len} samples)"
    ))
}
