"""The tokeniser equals sklearn's default analyzer: str.lower() then
re.findall(r"(?u)\\b\\w\\w+\\b"), on every code point and on random text."""

from __future__ import annotations

import re
import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

import prefcurate
from prefcurate import _core
from prefcurate._unicode import compute_tables

TOKEN = re.compile(r"(?u)\b\w\w+\b")

# characters that break naive tokenisers: case expansion (U+0130), final
# sigma, combining marks (not \w in Python), digits of other scripts, numeric
# letters, underscore, joiners, whitespace of all kinds
TRICKY = "\u0130\u03a3\u03c3\u03c2A\u0301\u0307\u0345_\u0663\u00bd\u2167\u200d\u200c\u00a0\u2028\t\n '.-\u00df\u1e9e\ufb01\u01c5\u2126\u212a"
words = st.text(
    alphabet=st.sampled_from(list("abcXYZ09") + list(TRICKY) + ["\u4e2d", "\u0915", "\u093f"]), max_size=12
)
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)


def ref_tokens(s: str) -> list[str]:
    return TOKEN.findall(s.lower())


@given(st.lists(words, max_size=10).map(" ".join))
@settings(max_examples=400, deadline=None)
def test_tricky_text(s):
    assert prefcurate.tokenize(s) == ref_tokens(s)
    assert _core.lower(s) == s.lower()


@given(unicode_text)
@settings(max_examples=400, deadline=None)
def test_any_unicode_text(s):
    assert prefcurate.tokenize(s) == ref_tokens(s)
    assert _core.lower(s) == s.lower()


def _all_chars() -> list[str]:
    return [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def test_every_code_point_in_context():
    """Each code point between word characters and between spaces, in one
    string: word-ness, lower-casing (full mappings) and token boundaries of all
    of Unicode at once."""
    chars = _all_chars()
    text = "".join(f"ab{c}cd {c}{c} " for c in chars)
    assert _core.lower(text) == text.lower()
    assert prefcurate.tokenize(text) == ref_tokens(text)


def test_final_sigma_contexts():
    for s in ["ΑΣ", "Σ", "ΑΣΑ", "Α'Σ", "ΑΣ'", "ΑΣ'Α", "Α\u0345Σ", "ΣΑ", "ΑΣ Α", "1Σ", "ΑΣ.", "ΑΣΣ"]:
        assert _core.lower(s) == s.lower(), s
        assert prefcurate.tokenize(s) == ref_tokens(s), s


def test_builtin_tables_match_this_interpreter():
    """The generated Rust tables are this interpreter's (else ensure_tables
    installs tables derived at run time; test that path too)."""
    t = compute_tables()
    assert t["version"] == unicodedata.unidata_version
    if unicodedata.unidata_version == _core.BUILTIN_UNICODE_VERSION:
        # installing the interpreter's own tables changes nothing
        _core.install_unicode_tables(
            t["version"],
            [tuple(r) for r in t["word"]],
            t["lower"],
            [tuple(r) for r in t["case_ignorable"]],
            [tuple(r) for r in t["cased"]],
        )
        s = "İstanbul ΑΣ ﬁne café_1 ٣٤"
        assert prefcurate.tokenize(s) == ref_tokens(s)
    assert _core.unicode_version() == unicodedata.unidata_version, sys.version


def test_empty_and_whitespace():
    assert prefcurate.tokenize("") == []
    assert prefcurate.tokenize(" \n\t ") == []
    assert prefcurate.tokenize("a b c") == []
