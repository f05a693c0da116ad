//! Python-exact lower-casing and word characters.
//!
//! The reference tokeniser is `re.findall(r"(?u)\b\w\w+\b", text.lower())`.
//! Both halves depend on the interpreter's Unicode database, so the tables here
//! are generated from CPython (see `scripts/gen_unicode_tables.py`) rather than
//! taken from Rust's own `char` methods, whose Unicode version and property
//! definitions differ (Rust's `is_alphanumeric` admits combining marks that
//! Python's `\w` rejects, for instance).
//!
//! A different table set can be installed at run time ([`install`]) so that the
//! tokeniser follows whichever Python version drives it.

use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{CoreError, Result};
use crate::unicode_data;

const N_CODEPOINTS: usize = 0x110000;
const SIGMA: char = '\u{03A3}';

/// Lower-casing and word-character tables for one Unicode version.
#[derive(Debug)]
pub struct UnicodeTables {
    version: String,
    word_bits: Vec<u64>,
    lower_bits: Vec<u64>,
    lower: Vec<(u32, Box<str>)>,
    case_ignorable: Vec<(u32, u32)>,
    cased: Vec<(u32, u32)>,
}

/// ASCII word bytes: `[0-9A-Za-z_]`.
static ASCII_WORD: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_';
        i += 1;
    }
    t
};

fn bits_from_ranges(ranges: &[(u32, u32)]) -> Vec<u64> {
    let mut bits = vec![0u64; N_CODEPOINTS / 64];
    for &(a, b) in ranges {
        for cp in a..=b.min(N_CODEPOINTS as u32 - 1) {
            bits[(cp / 64) as usize] |= 1 << (cp % 64);
        }
    }
    bits
}

fn in_ranges(ranges: &[(u32, u32)], cp: u32) -> bool {
    ranges
        .binary_search_by(|&(a, b)| {
            if b < cp {
                std::cmp::Ordering::Less
            } else if a > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn check_ranges(name: &str, ranges: &[(u32, u32)]) -> Result<()> {
    let mut prev: Option<u32> = None;
    for &(a, b) in ranges {
        if a > b || b >= N_CODEPOINTS as u32 || prev.is_some_and(|p| a <= p) {
            return Err(CoreError::InvalidArgument(format!(
                "unicode table {name}: ranges must be sorted, disjoint and within U+10FFFF (bad range {a:#x}..={b:#x})"
            )));
        }
        prev = Some(b);
    }
    Ok(())
}

impl UnicodeTables {
    /// Build tables from their parts (as produced by `prefcurate._unicode.compute_tables`).
    pub fn from_parts(
        version: impl Into<String>,
        word: &[(u32, u32)],
        lower: Vec<(u32, String)>,
        case_ignorable: &[(u32, u32)],
        cased: &[(u32, u32)],
    ) -> Result<Self> {
        check_ranges("word", word)?;
        check_ranges("case_ignorable", case_ignorable)?;
        check_ranges("cased", cased)?;
        let mut lower: Vec<(u32, Box<str>)> = lower
            .into_iter()
            .map(|(c, s)| (c, s.into_boxed_str()))
            .collect();
        lower.sort_by_key(|&(c, _)| c);
        lower.dedup_by_key(|(c, _)| *c);
        let mut lower_bits = vec![0u64; N_CODEPOINTS / 64];
        for (c, _) in &lower {
            if *c as usize >= N_CODEPOINTS || char::from_u32(*c).is_none() {
                return Err(CoreError::InvalidArgument(format!(
                    "unicode table lower: {c:#x} is not a Unicode scalar value"
                )));
            }
            lower_bits[(*c / 64) as usize] |= 1 << (*c % 64);
        }
        Ok(UnicodeTables {
            version: version.into(),
            word_bits: bits_from_ranges(word),
            lower_bits,
            lower,
            case_ignorable: case_ignorable.to_vec(),
            cased: cased.to_vec(),
        })
    }

    /// The tables generated into this crate (see [`unicode_data::UNICODE_VERSION`]).
    pub fn builtin() -> Arc<UnicodeTables> {
        static BUILTIN: OnceLock<Arc<UnicodeTables>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let lower = unicode_data::LOWER
                    .iter()
                    .map(|&(c, s)| (c, s.to_string()))
                    .collect();
                Arc::new(
                    UnicodeTables::from_parts(
                        unicode_data::UNICODE_VERSION,
                        unicode_data::WORD,
                        lower,
                        unicode_data::CASE_IGNORABLE,
                        unicode_data::CASED,
                    )
                    .expect("generated unicode tables are valid"),
                )
            })
            .clone()
    }

    /// The tables in force: the installed ones, else the built-in ones.
    pub fn current() -> Arc<UnicodeTables> {
        if let Some(t) = OVERRIDE.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return t.clone();
        }
        Self::builtin()
    }

    /// The Unicode version these tables follow.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Python's `\w` (`str.isalnum() or c == "_"`).
    #[inline]
    pub fn is_word(&self, c: char) -> bool {
        let cp = c as u32;
        if cp < 128 {
            return ASCII_WORD[cp as usize];
        }
        self.word_bits[(cp / 64) as usize] >> (cp % 64) & 1 == 1
    }

    #[inline]
    fn lower_of(&self, c: char) -> Option<&str> {
        let cp = c as u32;
        if self.lower_bits[(cp / 64) as usize] >> (cp % 64) & 1 == 0 {
            return None;
        }
        self.lower
            .binary_search_by_key(&cp, |&(k, _)| k)
            .ok()
            .map(|i| &*self.lower[i].1)
    }

    fn is_case_ignorable(&self, c: char) -> bool {
        in_ranges(&self.case_ignorable, c as u32)
    }

    fn is_cased(&self, c: char) -> bool {
        in_ranges(&self.cased, c as u32)
    }

    /// CPython's `handle_capital_sigma`: U+03A3 at byte `at` of `text` becomes
    /// U+03C2 when a cased letter precedes it and none follows (case-ignorable
    /// characters skipped both ways).
    fn is_final_sigma(&self, text: &str, at: usize) -> bool {
        let before = text[..at]
            .chars()
            .rev()
            .find(|&c| !self.is_case_ignorable(c));
        if !before.is_some_and(|c| self.is_cased(c)) {
            return false;
        }
        let after = text[at + SIGMA.len_utf8()..]
            .chars()
            .find(|&c| !self.is_case_ignorable(c));
        !after.is_some_and(|c| self.is_cased(c))
    }

    /// Append `text.lower()` (Python semantics) to `out`.
    pub fn lower_into(&self, text: &str, out: &mut String) {
        if text.is_ascii() {
            let start = out.len();
            out.push_str(text);
            out[start..].make_ascii_lowercase();
            return;
        }
        self.lower_impl(text, out, |_, _| {});
    }

    /// Like [`lower_into`](Self::lower_into), also recording for every byte
    /// appended the byte range of the source char it came from.
    pub fn lower_with_sources(
        &self,
        text: &str,
        out: &mut String,
        sources: &mut Vec<(usize, usize)>,
    ) {
        self.lower_impl(text, out, |n_bytes, src| {
            for _ in 0..n_bytes {
                sources.push(src);
            }
        });
    }

    #[inline]
    fn lower_impl(
        &self,
        text: &str,
        out: &mut String,
        mut record: impl FnMut(usize, (usize, usize)),
    ) {
        let bytes = text.as_bytes();
        out.reserve(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            // ASCII run
            let start = i;
            while i < bytes.len() && bytes[i] < 128 {
                i += 1;
            }
            if i > start {
                let run = &text[start..i];
                // SAFETY: ASCII lower-casing maps ASCII bytes to ASCII bytes,
                // so the buffer stays valid UTF-8.
                unsafe { out.as_mut_vec() }.extend(run.bytes().map(|b| b.to_ascii_lowercase()));
                for k in start..i {
                    record(1, (k, k + 1));
                }
            }
            if i >= bytes.len() {
                break;
            }
            let c = text[i..].chars().next().expect("non-empty");
            let w = c.len_utf8();
            if c == SIGMA {
                out.push(if self.is_final_sigma(text, i) {
                    '\u{03C2}'
                } else {
                    '\u{03C3}'
                });
                record(2, (i, i + w));
            } else if let Some(l) = self.lower_of(c) {
                out.push_str(l);
                record(l.len(), (i, i + w));
            } else {
                out.push(c);
                record(w, (i, i + w));
            }
            i += w;
        }
    }
}

static OVERRIDE: RwLock<Option<Arc<UnicodeTables>>> = RwLock::new(None);

/// Make `tables` the ones [`UnicodeTables::current`] returns from now on.
pub fn install(tables: Arc<UnicodeTables>) {
    *OVERRIDE.write().unwrap_or_else(|e| e.into_inner()) = Some(tables);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(s: &str) -> String {
        let mut out = String::new();
        UnicodeTables::builtin().lower_into(s, &mut out);
        out
    }

    #[test]
    fn ascii_and_expanding() {
        assert_eq!(lower("Hello WORLD_1"), "hello world_1");
        assert_eq!(lower("\u{0130}stanbul"), "i\u{0307}stanbul");
    }

    #[test]
    fn final_sigma_follows_python() {
        // 'ΑΣ'.lower() == 'ας', 'Σ'.lower() == 'σ', 'ΑΣΑ'.lower() == 'ασα'
        assert_eq!(lower("\u{0391}\u{03A3}"), "\u{03B1}\u{03C2}");
        assert_eq!(lower("\u{03A3}"), "\u{03C3}");
        assert_eq!(
            lower("\u{0391}\u{03A3}\u{0391}"),
            "\u{03B1}\u{03C3}\u{03B1}"
        );
        // case-ignorable apostrophe is skipped: "AΣ'" -> final
        assert_eq!(lower("A\u{03A3}'"), "a\u{03C2}'");
        assert_eq!(lower("A\u{03A3}'b"), "a\u{03C3}'b");
    }

    #[test]
    fn word_chars_follow_python_re() {
        let t = UnicodeTables::builtin();
        assert!(t.is_word('a') && t.is_word('_') && t.is_word('9'));
        assert!(t.is_word('\u{00E9}')); // é
        assert!(t.is_word('\u{0663}')); // ARABIC-INDIC DIGIT THREE
        assert!(t.is_word('\u{00BD}')); // ½ is numeric
        assert!(!t.is_word('\u{0301}')); // combining acute: not \w in Python
        assert!(!t.is_word('\u{0307}'));
        assert!(!t.is_word('-') && !t.is_word(' '));
    }

    #[test]
    fn sources_track_expansion() {
        let mut out = String::new();
        let mut src = Vec::new();
        UnicodeTables::builtin().lower_with_sources("A\u{0130}b", &mut out, &mut src);
        assert_eq!(out.len(), src.len());
        // "a" + "i" + U+0307 (2 bytes) + "b"
        assert_eq!(src, vec![(0, 1), (1, 3), (1, 3), (1, 3), (3, 4)]);
    }
}
