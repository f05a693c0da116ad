//! Core errors as Python exceptions.
//!
//! The exception classes are declared once, here, and typed at compile
//! time; they are defined in `prefcurate.errors` (where they also derive from
//! `ValueError` / `OSError`) and imported on first use.
//!
//! `impl From<CoreError> for PyErr` cannot be written in this crate (both
//! types are foreign to it), so, as polars does, the binding's [`Error`]
//! wraps either kind: `?` turns a [`CoreError`] or a [`PyErr`] into an
//! [`Error`], and an [`Error`] into the matching Python exception.

use prefcurate_core::CoreError;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;

pyo3::import_exception!(prefcurate.errors, InvalidInputError);
pyo3::import_exception!(prefcurate.errors, IndexFileError);

/// An error of the binding: from the core, or already a Python exception.
#[derive(Debug)]
pub enum Error {
    Core(CoreError),
    Py(PyErr),
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error::Core(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Py(e) => e,
            Error::Core(e) => core_to_py(e),
        }
    }
}

/// The Python exception for a core error: bad arguments and rows are
/// `InvalidInputError` (a `ValueError`), a bad index file `IndexFileError`
/// (an `OSError`), I/O errors `OSError` / `FileNotFoundError`, a cancelled
/// computation `KeyboardInterrupt`.
fn core_to_py(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidArgument(_) | CoreError::Row { .. } | CoreError::TextTooLarge { .. } => {
            InvalidInputError::new_err(msg)
        }
        CoreError::IndexFormat { .. } => IndexFileError::new_err(msg),
        CoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        CoreError::Io { .. } => PyOSError::new_err(msg),
        CoreError::Cancelled => PyKeyboardInterrupt::new_err(msg),
    }
}

/// `prefcurate.errors.InvalidInputError(msg)` (a `ValueError`), for inputs
/// the binding cannot convert.
pub fn input_error(msg: impl Into<String>) -> PyErr {
    InvalidInputError::new_err(msg.into())
}
