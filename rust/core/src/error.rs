//! The core's one error type; the Python binding maps each variant to an exception.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum CoreError {
    /// A parameter or input the caller passed is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// A text too large for 32-bit offsets.
    #[error("row {row}: text of {bytes} bytes is too large (the limit is 2.8 GB per text); split it first")]
    TextTooLarge { row: u64, bytes: usize },
    /// An index file that cannot be read back.
    #[error("{path}: not a valid prefcurate index file: {reason}")]
    IndexFormat { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, CoreError>;
