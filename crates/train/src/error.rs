//! The train crate's error type.

use std::path::PathBuf;

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Lm(#[from] fairrec_lm::LmError),
    #[error(transparent)]
    Data(#[from] fairrec_data::DataError),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file of the run directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is missing, damaged, or belongs to another configuration.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// The loss or the gradient norm became NaN or infinite.
    #[error(
        "non-finite {what} ({value}) at step {step} (epoch {epoch}); training stopped. {kept}"
    )]
    NonFinite {
        what: &'static str,
        value: f64,
        step: u64,
        epoch: usize,
        kept: String,
    },
    /// A file of the run directory is not the JSON it should be.
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The run's data or flags do not fit the method (the message names the flag).
    #[error("{0}")]
    Input(String),
    /// A run's cache (an audit's `generations.jsonl`) could not be read or written.
    #[error(transparent)]
    Cache(#[from] fairrec_core::cache::CacheError),
    /// A configuration value out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
}

/// Result alias of the train crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
