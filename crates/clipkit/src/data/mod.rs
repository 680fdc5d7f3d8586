//! Training data: the built-in shapes world and sources of (image, caption) pairs.

pub mod shapes;

/// One training example.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The image, any size (the loader preprocesses it).
    pub image: image::RgbImage,
    /// Its caption.
    pub caption: String,
}

/// A random-access collection of pairs.
pub trait PairSource: Send + Sync {
    /// Number of pairs.
    fn len(&self) -> usize;
    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The pair at `index`; an error for a bad sample (unreadable image, missing caption).
    fn get(&self, index: usize) -> crate::Result<Pair>;
    /// A short description for logs.
    fn describe(&self) -> String;
}
