//! The LM crate's error type.

use std::path::PathBuf;

/// Errors of the LM engine.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// A tensor operation failed (candle names the tensor and the shapes where it can).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file lacks what the architecture needs or holds something unexpected.
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    /// A tokenizer could not be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A request the model cannot serve (e.g. an empty prompt).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the LM crate.
pub type Result<T, E = LmError> = std::result::Result<T, E>;
