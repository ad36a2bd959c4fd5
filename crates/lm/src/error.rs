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
    /// Prompt `index` of a batch cannot be fed to the model (empty, or longer than its
    /// context); callers name the sample behind the index.
    #[error("prompt {index}: {message}")]
    Prompt { index: usize, message: String },
    /// The device ran out of memory with a batch of `batch` prompts, and no smaller batch
    /// was left to try.
    #[error("out of device memory with a batch of {batch} prompt(s): {message}")]
    OutOfMemory { batch: usize, message: String },
}

impl LmError {
    /// This error with the prompt behind a [`LmError::Prompt`] index named by `name`
    /// (a sample id, a variant): an [`LmError::Invalid`] saying which; others as they are.
    pub fn name_prompt(self, name: impl Fn(usize) -> String) -> LmError {
        match self {
            LmError::Prompt { index, message } => {
                LmError::Invalid(format!("{}: {message}", name(index)))
            }
            e => e,
        }
    }
}

/// Result alias of the LM crate.
pub type Result<T, E = LmError> = std::result::Result<T, E>;
