//! The metrics crate's error type.

use std::path::PathBuf;

/// Errors of the metrics crate.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A predictions line that is not valid.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A file whose content as a whole is wrong (no one line is at fault).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A variant every report needs is absent.
    #[error("no predictions for variant `{variant}`: {why}")]
    MissingVariant { variant: String, why: String },
    /// A prepared dataset that cannot be read.
    #[error(transparent)]
    Data(#[from] fairrec_data::DataError),
    /// Anything else that makes the input unusable, said plainly.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the metrics crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
