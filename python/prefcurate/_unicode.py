"""Character tables that make the Rust tokeniser equal to Python's own.

The reference decontamination method tokenises with ``str.lower()`` followed by
``re.findall(r"(?u)\\b\\w\\w+\\b")``.  Both depend on the Unicode database of the
running interpreter (Python 3.11 ships Unicode 14.0.0, 3.12 ships 15.0.0, ...).
The Rust core embeds tables generated from one version
(``scripts/gen_unicode_tables.py``); when the interpreter's version differs,
:func:`ensure_tables` derives the same tables from the interpreter itself and
installs them in the core, so the tokeniser stays exact on any Python.

Everything here is derived from the interpreter's behaviour, never from
separate data files:

* word characters: what ``re`` matches with ``\\w``;
* lower-case mapping: ``c.lower()`` per code point (full mappings such as
  U+0130 -> "i\\u0307" included);
* the two properties behind the final-sigma rule of ``str.lower()``
  (``Cased`` and ``Case_Ignorable``), read off how ``lower()`` treats U+03A3 in
  three contexts (see :func:`_sigma_properties`).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

SIGMA = "\u03a3"
FINAL_SIGMA = "\u03c2"
_SEP = "\n"  # neither cased nor case-ignorable: isolates each probe


def _all_text() -> str:
    """Every code point but the surrogates, in order."""
    return "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))


def _codepoints(text: str) -> np.ndarray:
    """The code points of ``text`` (no surrogates) as uint32."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _parts(joined: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code points of ``joined`` (parts each followed by ``_SEP``), and the
    start and end (the separator's position) of every part."""
    cp = _codepoints(joined)
    ends = np.flatnonzero(cp == ord(_SEP))
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1] + 1])
    return cp, starts, ends


def _ranges(codepoints: Any) -> list[tuple[int, int]]:
    """Sorted code points -> inclusive ranges."""
    cp = np.asarray(codepoints, dtype=np.int64)
    if not len(cp):
        return []
    breaks = np.flatnonzero(np.diff(cp) != 1)
    lo = np.concatenate([cp[:1], cp[breaks + 1]])
    hi = np.concatenate([cp[breaks], cp[-1:]])
    return list(zip(lo.tolist(), hi.tolist()))


def _probe(chars: str, template: str) -> np.ndarray:
    """Whether U+03A3 becomes a final sigma in ``template.format(c)`` per
    char of ``chars``.

    All probes are lower-cased in one call, each followed by a newline, which
    is neither cased nor case-ignorable and so cuts every context.
    """
    pre, post = template.split("{c}")
    # pre + c + post + newline for every c: one join, no string per probe
    cp, starts, ends = _parts((pre + (post + _SEP + pre).join(chars) + post + _SEP).lower())
    assert len(ends) == len(chars)
    if SIGMA in post:
        # c, whose lower case may be longer, comes first: count from the end
        at = ends + (post.index(SIGMA) - len(post))
    else:
        # the text before U+03A3 is fixed ASCII: count from the start
        at = starts + pre.index(SIGMA)
    return cp[at] == ord(FINAL_SIGMA)


def _sigma_properties(chars: str) -> tuple[list[int], list[int]]:
    """(case_ignorable, cased-and-not-ignorable) code points.

    Python lower-cases U+03A3 to a final sigma when it is preceded by a cased
    character (skipping case-ignorable ones) and not followed by one.  With
    ``A`` cased and ``\\n`` neither:

    * ``c + Σ``   is final  <=> cased(c) and not ignorable(c)
    * ``AΣ + c``  is final  <=> ignorable(c) or not cased(c)
    * ``A + c + Σ`` is final <=> ignorable(c) or cased(c)

    so ``ignorable = f2 and f3 and not f1`` and ``cased (non-ignorable) = f1``.
    Whether an ignorable character is cased never matters: the rule skips it.
    """
    f1 = _probe(chars, "{c}" + SIGMA)
    f2 = _probe(chars, "A" + SIGMA + "{c}")
    f3 = _probe(chars, "A{c}" + SIGMA)
    cps = _codepoints(chars)
    return cps[~f1 & f2 & f3].tolist(), cps[f1].tolist()


def compute_tables() -> dict:
    """Derive the tokeniser's tables from the running interpreter (about a
    second: every code point is probed at once, in a few long strings)."""
    text = _all_text()
    word = _codepoints("".join(re.findall(r"\w", text)))
    chars = text.replace(_SEP, "")
    cps = _codepoints(chars)
    lowered = (_SEP.join(chars) + _SEP).lower()
    lcp, starts, ends = _parts(lowered)
    assert len(ends) == len(chars)
    changed = np.flatnonzero((ends - starts != 1) | (lcp[starts] != cps))
    lower = [(int(cps[i]), lowered[starts[i] : ends[i]]) for i in changed.tolist()]
    ignorable, cased = _sigma_properties(chars)
    return {
        "version": unicodedata.unidata_version,
        "word": _ranges(word),
        "lower": lower,
        "case_ignorable": _ranges(ignorable),
        "cased": _ranges(cased),
    }


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prefcurate"


_installed: str | None = None


def ensure_tables() -> str:
    """Make the core tokenise exactly as this interpreter's ``re`` and ``str.lower``.

    Returns the Unicode version in use.  Cheap after the first call.
    """
    global _installed
    from . import _core

    if _installed is not None:
        return _installed
    version = unicodedata.unidata_version
    if version == _core.BUILTIN_UNICODE_VERSION:
        _installed = version
        return version
    import json
    import sys

    key = hashlib.sha256(f"{sys.version}|{version}".encode()).hexdigest()[:16]
    path = _cache_dir() / f"unicode-{version}-{key}.json"
    tables = None
    if path.exists():
        try:
            tables = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tables = None
    if tables is None:
        tables = compute_tables()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(tables), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass
    _core.install_unicode_tables(
        tables["version"],
        [tuple(r) for r in tables["word"]],
        [(int(c), s) for c, s in tables["lower"]],
        [tuple(r) for r in tables["case_ignorable"]],
        [tuple(r) for r in tables["cased"]],
    )
    _installed = version
    return version
