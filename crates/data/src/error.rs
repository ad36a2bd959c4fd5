//! The data crate's error type. Every variant that comes from a file names the file and,
//! where there is one, the 1-based line.

use std::path::PathBuf;

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the dataset needs is not there.
    #[error("{}: file not found ({what})", path.display())]
    MissingFile { path: PathBuf, what: String },
    /// A line does not have the number of fields the format has.
    #[error("{}:{line}: expected {expected} fields separated by `{sep}`, found {found}", path.display())]
    FieldCount {
        path: PathBuf,
        line: usize,
        sep: String,
        expected: usize,
        found: usize,
    },
    /// A field does not hold what the format says it holds.
    #[error("{}:{line}: field `{field}`: expected {expected}, found `{found}`", path.display())]
    BadField {
        path: PathBuf,
        line: usize,
        field: String,
        expected: String,
        found: String,
    },
    /// A line refers to a user or item the dataset does not define.
    #[error("{}:{line}: unknown {kind} id `{id}`", path.display())]
    UnknownId {
        path: PathBuf,
        line: usize,
        kind: String,
        id: String,
    },
    /// A file's bytes are not in an encoding the format allows.
    #[error("{}:{line}: encoding: {message}", path.display())]
    Encoding {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A prepared file whose bytes are not those its dataset's manifest records.
    #[error("{}: {message}", path.display())]
    Modified { path: PathBuf, message: String },
    /// Any other violation of a file format, with its place.
    #[error("{}:{line}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A prepared JSONL line that is not a valid sample.
    #[error("{}:{line}: invalid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Writing an output failed (outputs already in place are left untouched).
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration that cannot be carried out (names the option).
    #[error("invalid configuration: {option}: {message}")]
    Config { option: String, message: String },
}

/// Result alias of the data crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
