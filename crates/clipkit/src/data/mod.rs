//! Training and evaluation data: the built-in shapes world, and (image, caption) pairs from
//! any of three sources behind one random-access trait, [`PairSource`]:
//!
//! - [`ShapesSource`]: the procedural shapes world, generated on demand;
//! - [`CaptionsFile`]: a folder of images listed in a JSON Lines or CSV captions file;
//! - [`WebDataset`]: tar shards of `key.jpg` + `key.txt` members.

mod captions_file;
pub mod shapes;
mod shapes_source;
mod source;
mod webdataset;

pub use captions_file::{Captioned, CaptionedObject, CaptionsFile, CaptionsFormat};
pub use shapes_source::ShapesSource;
pub use source::{Pair, PairSource};
pub use webdataset::{WebDataset, CAPTION_EXTENSION};

#[cfg(test)]
mod tests;
