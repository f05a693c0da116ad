//! Bindings of `prefcurate_core::tokenize` and `unicode`: the reference
//! tokeniser and the Unicode tables it follows.

use std::sync::Arc;

use prefcurate_core::UnicodeTables;
use pyo3::prelude::*;

use crate::errors::Error;

/// The reference tokens of `text`: `re.findall(r"(?u)\b\w\w+\b", text.lower())`.
#[pyfunction]
pub fn tokenize(text: &str) -> Vec<String> {
    prefcurate_core::tokenize::tokens_as_strings(&UnicodeTables::current(), text)
}

/// `text.lower()` as the tokeniser computes it.
#[pyfunction]
pub fn lower(text: &str) -> String {
    let mut out = String::new();
    UnicodeTables::current().lower_into(text, &mut out);
    out
}

/// The Unicode version of the tables in force.
#[pyfunction]
pub fn unicode_version() -> String {
    UnicodeTables::current().version().to_string()
}

/// Install tables derived from the running interpreter (see `prefcurate._unicode`).
#[pyfunction]
pub fn install_unicode_tables(
    version: String,
    word: Vec<(u32, u32)>,
    lower: Vec<(u32, String)>,
    case_ignorable: Vec<(u32, u32)>,
    cased: Vec<(u32, u32)>,
) -> PyResult<()> {
    let t = UnicodeTables::from_parts(version, &word, lower, &case_ignorable, &cased)
        .map_err(Error::from)?;
    prefcurate_core::unicode::install(Arc::new(t));
    Ok(())
}
