//! The core's one error type; the Python binding maps each variant to an exception.

use std::fmt;
use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum CoreError {
    /// A parameter or input the caller passed is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// A row of an input column that cannot be used: which column, which
    /// row, what is wrong with it.
    #[error("{}", RowMessage { field, row: *row, problem })]
    Row {
        field: String,
        row: u64,
        problem: RowProblem,
    },
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
    /// The caller asked the computation to stop (see [`crate::exec::Ctx`]).
    #[error("interrupted")]
    Cancelled,
}

/// What is wrong with one row of an input column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// the value is null
    Null,
    /// the row's message list is null
    NullMessages,
    /// message `message` of the row has a null role
    NullRole { message: usize },
    /// message `message` of the row has null content
    NullContent { message: usize },
    /// a pair whose chosen or rejected conversation lacks the prompt turns
    /// or the answer (message counts of both)
    TooFewMessages { chosen: usize, rejected: usize },
}

impl CoreError {
    /// A [`CoreError::Row`] error.
    pub fn row(field: &str, row: usize, problem: RowProblem) -> Self {
        CoreError::Row {
            field: field.to_string(),
            row: row as u64,
            problem,
        }
    }
}

struct RowMessage<'a> {
    field: &'a str,
    row: u64,
    problem: &'a RowProblem,
}

impl fmt::Display for RowMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, row) = (self.field, self.row);
        if !field.is_empty() {
            write!(f, "{field}: ")?;
        }
        match *self.problem {
            RowProblem::Null => write!(f, "row {row} is null"),
            RowProblem::NullMessages => write!(f, "row {row}: the message list is null"),
            RowProblem::NullRole { message } => {
                write!(f, "row {row}: message {message} has a null role")
            }
            RowProblem::NullContent { message } => {
                write!(f, "row {row}: message {message} has null content")
            }
            RowProblem::TooFewMessages { chosen, rejected } => write!(
                f,
                "row {row}: chosen and rejected need the prompt turns and an answer \
                 (got {chosen} and {rejected} messages)"
            ),
        }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_messages_name_field_and_row() {
        let e = CoreError::row("chosen", 3, RowProblem::NullContent { message: 1 });
        assert_eq!(e.to_string(), "chosen: row 3: message 1 has null content");
        let e = CoreError::row("text", 1, RowProblem::Null);
        assert_eq!(e.to_string(), "text: row 1 is null");
        let e = CoreError::row(
            "",
            0,
            RowProblem::TooFewMessages {
                chosen: 1,
                rejected: 2,
            },
        );
        assert!(e
            .to_string()
            .starts_with("row 0: chosen and rejected need the prompt turns"));
    }
}
