"""Exceptions raised by prefcurate.

Every message names what was wrong (file, row, column or field) and, where
there is one, what to do about it.
"""

from __future__ import annotations


class PrefcurateError(Exception):
    """Base class of prefcurate's own exceptions."""


class InvalidInputError(PrefcurateError, ValueError):
    """Input data or an argument that cannot be used: a missing column, a null
    or non-string text, invalid UTF-8, an empty benchmark, a malformed file."""


class IndexFileError(PrefcurateError, OSError):
    """A file that is not a valid prefcurate index (corrupt, truncated, or of
    another format version)."""
