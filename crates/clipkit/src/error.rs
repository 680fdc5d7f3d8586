//! The library's error type: one enum, each variant naming the file or field at fault.

use std::path::PathBuf;

/// Everything that can go wrong in the clipkit library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error. Part of the message, so not also the error's
        /// `source()`: a reporter printing the chain (`{:#}`) would say it twice.
        cause: std::io::Error,
    },
    /// A model folder lacks a file it needs.
    #[error("{path}: missing from the model folder ({hint})")]
    MissingFile {
        /// The file that should exist.
        path: PathBuf,
        /// What the file is for, or what to do instead.
        hint: String,
    },
    /// A configuration file is malformed, lacks a field or is inconsistent.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The dotted path of the offending field (`vision_config.patch_size`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Checkpoint tensors do not match what the configuration asks for.
    #[error("{path}: checkpoint does not match config.json:\n{problems}")]
    Weights {
        /// The checkpoint file or folder.
        path: PathBuf,
        /// One line per missing, unexpected or mis-shaped tensor.
        problems: String,
    },
    /// A checkpoint file is corrupt, truncated or not in the format it claims (safetensors,
    /// a PyTorch pickle or TorchScript archive).
    #[error("{path}: corrupt checkpoint: {message}")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What the reader reported, naming the member or byte where it can.
        message: String,
    },
    /// A PyTorch pickle names a Python global that is not part of a state dict: loading it
    /// with PyTorch would run that code. clipkit never does; it refuses the file.
    #[error(
        "{path}: refused: the pickle calls `{global}` (in {at}), which is not a tensor or \
         state-dict global; clipkit reads only tensors from PyTorch checkpoints and never runs \
         pickled code (if you trust the file, re-save its state dict with safetensors)"
    )]
    UnsafePickle {
        /// The checkpoint file.
        path: PathBuf,
        /// The global, `module.name` (`posix.system`).
        global: String,
        /// Where it sits: the pickle member, or the dotted name where the tensor walk met it.
        at: String,
    },
    /// An image could not be decoded.
    #[error("{path}: not a readable image: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// An image declares more pixels than clipkit agrees to decode.
    #[error("{path}: image of {width}x{height} pixels exceeds the limit of {limit} pixels (possible decompression bomb)")]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit in force.
        limit: u64,
    },
    /// The tokenizer files could not be loaded or used.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file (or model folder).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A training run cannot go on (no readable samples, a diverging loss).
    #[error("training: {0}")]
    Training(String),
    /// Two model folders that must match (to be merged) differ.
    #[error("{left} and {right} cannot be merged: {message}")]
    Incompatible {
        /// The first folder.
        left: PathBuf,
        /// The second folder.
        right: PathBuf,
        /// The first field or tensor that differs, with both values.
        message: String,
    },
    /// A data set file, or one sample in it, is malformed or incomplete (a bad line, a
    /// sample without a caption).
    #[error("{path}: {message}")]
    Data {
        /// The data set file (captions file, tar shard) at fault.
        path: PathBuf,
        /// What is wrong, naming the line or member.
        message: String,
    },
    /// A caller passed an argument the library cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error of the search index or its store.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// An error from the tensor engine.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}
