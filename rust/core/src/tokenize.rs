//! The reference tokeniser: sklearn's default `CountVectorizer` analyzer.
//!
//! `re.findall(r"(?u)\b\w\w+\b", text.lower())` returns exactly the maximal runs
//! of two or more word characters of the lower-cased text: `\b` cannot hold
//! inside a run, and the greedy `\w+` always reaches the run's end, where `\b`
//! holds.  So a token is a maximal run of `\w` characters, at least two code
//! points long, taken from the lower-cased text.

use crate::hash::hash_padded;
use crate::unicode::UnicodeTables;

/// Tokens of one lower-cased text: byte spans into that text and their hashes.
#[derive(Default, Debug, Clone)]
pub struct Tokens {
    /// `(start, end)` byte offsets in the lower-cased text.
    pub spans: Vec<(u32, u32)>,
    /// `hash_bytes` of each token.
    pub hashes: Vec<u64>,
}

impl Tokens {
    pub fn clear(&mut self) {
        self.spans.clear();
        self.hashes.clear();
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The longest text (in bytes, after lower-casing) a token span can address.
pub const MAX_TEXT_BYTES: usize = u32::MAX as usize;

/// ASCII word bytes `[0-9A-Za-z_]`; bytes >= 0x80 are looked up as chars.
static ASCII_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_';
        i += 1;
    }
    t
};

/// Word-byte and high-byte masks of 64 bytes (`block` may be shorter: the
/// missing bytes count as neither).
#[inline]
fn block_masks(block: &[u8]) -> (u64, u64) {
    if block.len() == 64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of the x86_64 baseline; the loads read
            // exactly the 64 bytes of `block`.
            return unsafe { sse2_masks(block.as_ptr()) };
        }
    }
    let (mut word, mut high) = (0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        word |= (ASCII_WORD[b as usize] as u64) << i;
        high |= ((b >> 7) as u64) << i;
    }
    (word, high)
}

#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn sse2_masks(p: *const u8) -> (u64, u64) {
    use std::arch::x86_64::*;
    let (mut word, mut high) = (0u64, 0u64);
    for k in 0..4 {
        let v = _mm_loadu_si128(p.add(16 * k) as *const __m128i);
        // bytes >= 0x80 are negative as i8, so they fall out of every range
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
        let alpha = _mm_and_si128(
            _mm_cmpgt_epi8(folded, _mm_set1_epi8(b'a' as i8 - 1)),
            _mm_cmplt_epi8(folded, _mm_set1_epi8(b'z' as i8 + 1)),
        );
        let under = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8));
        let w = _mm_or_si128(_mm_or_si128(digit, alpha), under);
        word |= ((_mm_movemask_epi8(w) as u32 & 0xffff) as u64) << (16 * k);
        high |= ((_mm_movemask_epi8(v) as u32 & 0xffff) as u64) << (16 * k);
    }
    (word, high)
}

/// Scratch masks of one text: bit `i` of `word` says byte `i` belongs to a
/// word character.
#[derive(Default, Debug)]
pub struct Masks {
    word: Vec<u64>,
}

/// Tokenise an already lower-cased text, appending to `out`.
///
/// The caller guarantees `lowered.len() <= MAX_TEXT_BYTES`.
pub fn tokenize_lowered(tables: &UnicodeTables, lowered: &str, out: &mut Tokens) {
    let mut masks = Masks::default();
    tokenize_lowered_with(tables, lowered, out, &mut masks);
}

/// [`tokenize_lowered`] with reusable scratch masks.
pub fn tokenize_lowered_with(
    tables: &UnicodeTables,
    lowered: &str,
    out: &mut Tokens,
    masks: &mut Masks,
) {
    debug_assert!(lowered.len() <= MAX_TEXT_BYTES);
    let has_high = masks_for(tables, lowered, &mut masks.word);
    let mut padded = Vec::with_capacity(lowered.len() + 8);
    padded.extend_from_slice(lowered.as_bytes());
    padded.extend_from_slice(&[0; 8]);
    runs(&padded, lowered.len(), &masks.word, has_high, out);
}

/// Emit the tokens of `bytes[..n]` from its word-byte masks: maximal runs of
/// word bytes that hold at least two chars (`count_chars`: the run may hold
/// multi-byte chars, so count them; else bytes are chars).  `bytes` must hold
/// 8 bytes of padding past `n`.
#[inline]
fn runs(bytes: &[u8], n: usize, words: &[u64], count_chars: bool, out: &mut Tokens) {
    if count_chars {
        runs_impl::<true>(bytes, n, words, out)
    } else {
        runs_impl::<false>(bytes, n, words, out)
    }
}

fn runs_impl<const COUNT_CHARS: bool>(bytes: &[u8], n: usize, words: &[u64], out: &mut Tokens) {
    assert!(
        bytes.len() >= n + 8,
        "token buffer needs 8 bytes of padding"
    );
    // at most one token per two bytes (a token is two chars, then a separator)
    let cap = n / 2 + 1;
    out.spans.reserve(cap);
    out.hashes.reserve(cap);
    let base_len = out.spans.len();
    let spans = &mut out.spans.spare_capacity_mut()[..cap];
    let hashes = &mut out.hashes.spare_capacity_mut()[..cap];
    let mut k = 0usize;
    // every run is written at slot k; k advances only if the run is a token
    let mut emit = |start: usize, end: usize| {
        let keep = if COUNT_CHARS {
            bytes[start..end]
                .iter()
                .filter(|&&b| (b as i8) >= -0x40)
                .count()
                >= 2
        } else {
            end - start >= 2
        };
        spans[k].write((start as u32, end as u32));
        // SAFETY: end <= n and bytes.len() >= n + 8 (asserted above)
        hashes[k].write(unsafe { hash_padded(bytes, start, end) });
        k += keep as usize;
    };
    let mut open = usize::MAX;
    let mut carry = 0u64;
    for (bi, &w) in words.iter().enumerate() {
        let prev = (w << 1) | carry;
        carry = w >> 63;
        let mut starts = w & !prev;
        // the first non-word byte after each run
        let mut ends = !w & prev;
        let base = bi * 64;
        if open != usize::MAX {
            if ends == 0 {
                continue; // the run goes on through this block
            }
            emit(open, base + ends.trailing_zeros() as usize);
            ends &= ends - 1;
            open = usize::MAX;
        }
        // starts and ends now alternate, a start first
        while starts != 0 {
            let s = base + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if ends == 0 {
                open = s;
                break;
            }
            emit(s, base + ends.trailing_zeros() as usize);
            ends &= ends - 1;
        }
    }
    if open != usize::MAX {
        emit(open, n);
    }
    // SAFETY: slots base_len..base_len + k were written above (k <= cap)
    unsafe {
        out.spans.set_len(base_len + k);
        out.hashes.set_len(base_len + k);
    }
}

/// Lower-case a text into `lowered` and fill `word` with its word-byte
/// masks in one pass, if the text is ASCII; `lowered` gets 8 bytes of NUL
/// padding past the text (so token hashing reads whole words).  Returns
/// `false` (leaving the buffers to be cleared) at the first non-ASCII byte.
fn ascii_lower_and_mask(text: &[u8], lowered: &mut Vec<u8>, word: &mut Vec<u64>) -> bool {
    word.clear();
    lowered.clear();
    lowered.reserve(text.len() + 72);
    let mut chunks = text.chunks_exact(64);
    for block in &mut chunks {
        #[cfg(target_arch = "x86_64")]
        let (w, high) = {
            // SAFETY: SSE2 is part of the x86_64 baseline; 64 bytes are read
            // from `block` and written to capacity reserved above.
            unsafe { sse2_lower_masks(block.as_ptr(), lowered) }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (w, high) = {
            lowered.extend(block.iter().map(|b| b.to_ascii_lowercase()));
            block_masks(block)
        };
        if high != 0 {
            return false;
        }
        word.push(w);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (w, high) = block_masks(rest);
        if high != 0 {
            return false;
        }
        lowered.extend(rest.iter().map(|b| b.to_ascii_lowercase()));
        word.push(w);
    }
    lowered.extend_from_slice(&[0u8; 8]);
    true
}

#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn sse2_lower_masks(p: *const u8, out: &mut Vec<u8>) -> (u64, u64) {
    use std::arch::x86_64::*;
    debug_assert!(out.capacity() - out.len() >= 64);
    let (mut word, mut high) = (0u64, 0u64);
    let dst = out.as_mut_ptr().add(out.len());
    for k in 0..4 {
        let v = _mm_loadu_si128(p.add(16 * k) as *const __m128i);
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
        let alpha = _mm_and_si128(
            _mm_cmpgt_epi8(folded, _mm_set1_epi8(b'a' as i8 - 1)),
            _mm_cmplt_epi8(folded, _mm_set1_epi8(b'z' as i8 + 1)),
        );
        let under = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8));
        // letters get bit 0x20: ASCII lower case
        let lower = _mm_or_si128(v, _mm_and_si128(alpha, _mm_set1_epi8(0x20)));
        _mm_storeu_si128(dst.add(16 * k) as *mut __m128i, lower);
        let w = _mm_or_si128(_mm_or_si128(digit, alpha), under);
        word |= ((_mm_movemask_epi8(w) as u32 & 0xffff) as u64) << (16 * k);
        high |= ((_mm_movemask_epi8(v) as u32 & 0xffff) as u64) << (16 * k);
    }
    out.set_len(out.len() + 64);
    (word, high)
}

/// Fill `word` with the word-byte masks of `text`; returns whether any byte
/// is non-ASCII.
fn masks_for(tables: &UnicodeTables, text: &str, word: &mut Vec<u64>) -> bool {
    let bytes = text.as_bytes();
    word.clear();
    let mut any_high = false;
    for block in bytes.chunks(64) {
        let (w, h) = block_masks(block);
        word.push(w);
        any_high |= h != 0;
    }
    if any_high {
        // non-ASCII chars: mark every byte of those that are word chars
        for (i, c) in text.char_indices() {
            if (c as u32) >= 128 && tables.is_word(c) {
                for k in i..i + c.len_utf8() {
                    word[k / 64] |= 1 << (k % 64);
                }
            }
        }
    }
    any_high
}

/// Lower-case `text` into `lowered` (cleared first) and tokenise it into `out` (cleared first).
///
/// `lowered` ends with 8 NUL bytes of padding past the lower-cased text.
pub fn tokenize(tables: &UnicodeTables, text: &str, lowered: &mut String, out: &mut Tokens) {
    tokenize_with(tables, text, lowered, out, &mut Masks::default());
}

/// [`tokenize`] with reusable scratch masks.
///
/// `lowered` ends with 8 NUL bytes of padding past the lower-cased text
/// (NUL is not a word character, so no token reaches into it).
pub fn tokenize_with(
    tables: &UnicodeTables,
    text: &str,
    lowered: &mut String,
    out: &mut Tokens,
    masks: &mut Masks,
) {
    out.clear();
    let mut buf = std::mem::take(lowered).into_bytes();
    if ascii_lower_and_mask(text.as_bytes(), &mut buf, &mut masks.word) {
        // SAFETY: ASCII input lower-cased byte-wise, plus NUL padding: valid UTF-8.
        *lowered = unsafe { String::from_utf8_unchecked(buf) };
        runs(lowered.as_bytes(), text.len(), &masks.word, false, out);
        return;
    }
    buf.clear();
    // SAFETY: an empty buffer is valid UTF-8.
    *lowered = unsafe { String::from_utf8_unchecked(buf) };
    tables.lower_into(text, lowered);
    let n = lowered.len();
    let has_high = masks_for(tables, lowered, &mut masks.word);
    lowered.push_str("\0\0\0\0\0\0\0\0");
    runs(lowered.as_bytes(), n, &masks.word, has_high, out);
}

/// The tokens as strings (for tests and for Python's `prefcurate.tokenize`).
pub fn tokens_as_strings(tables: &UnicodeTables, text: &str) -> Vec<String> {
    let mut lowered = String::new();
    let mut toks = Tokens::default();
    tokenize(tables, text, &mut lowered, &mut toks);
    toks.spans
        .iter()
        .map(|&(a, b)| lowered[a as usize..b as usize].to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        tokens_as_strings(&UnicodeTables::builtin(), s)
    }

    #[test]
    fn like_sklearn() {
        assert_eq!(
            toks("Hello, World! a b cd_e 12 x"),
            vec!["hello", "world", "cd_e", "12"]
        );
        assert_eq!(toks(""), Vec::<String>::new());
        assert_eq!(toks("  \n\t "), Vec::<String>::new());
        // combining marks split words in Python's \w
        assert_eq!(toks("cafe\u{0301}s"), vec!["cafe"]);
        // U+0130 lower-cases to i + U+0307, which is not \w
        assert_eq!(toks("\u{0130}stanbul"), vec!["stanbul"]);
        assert_eq!(
            toks("\u{00C9}t\u{00C9} \u{4E2D}\u{6587}"),
            vec!["\u{00E9}t\u{00E9}", "\u{4E2D}\u{6587}"]
        );
    }
}
