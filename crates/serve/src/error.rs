//! The serve crate's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    /// The request failed after every retry (connection, timeout, 429, 5xx, unreadable body).
    #[error("{url}: no answer after {attempts} attempts; last: {message}")]
    GaveUp {
        url: String,
        attempts: usize,
        message: String,
    },
    /// The server refused the request (a 4xx other than 408 and 429): not retried.
    #[error("{url}: the server answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    /// A response fairrec cannot use.
    #[error("{url}: {message}")]
    Response { url: String, message: String },
    /// The response cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] fairrec_core::cache::CacheError),
    /// An output that cannot be written.
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error("{flag}: {message}")]
    Invalid { flag: String, message: String },
    #[error("--api-key-env {var}: {message}")]
    ApiKey { var: String, message: String },
    #[error(transparent)]
    Data(#[from] fairrec_data::DataError),
    #[error(transparent)]
    Lm(#[from] fairrec_lm::LmError),
    #[error(transparent)]
    Train(#[from] fairrec_train::TrainError),
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;
