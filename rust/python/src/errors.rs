//! Core errors as Python exceptions.
//!
//! The exception classes live in `prefcurate.errors` (so that they can also
//! derive from `ValueError` / `OSError`); they are looked up when an error is
//! raised, which is never on a hot path.

use prefcurate_core::CoreError;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;

fn raise(name: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("prefcurate.errors")
            .and_then(|m| m.getattr(name))
            .and_then(|cls| cls.call1((msg.clone(),)));
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => PyRuntimeError::new_err(msg),
        }
    })
}

/// `prefcurate.errors.InvalidInputError(msg)` (a `ValueError`).
pub fn input_error(msg: String) -> PyErr {
    raise("InvalidInputError", msg)
}

/// Convert a core error into the matching Python exception.
pub fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::InvalidArgument(_) | CoreError::TextTooLarge { .. } => {
            input_error(e.to_string())
        }
        CoreError::IndexFormat { .. } => raise("IndexFileError", e.to_string()),
        CoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        CoreError::Io { .. } => PyOSError::new_err(e.to_string()),
    }
}
