//! Deduplication: exact (normalised keys) and near-duplicate (MinHash + LSH,
//! every candidate verified by exact Jaccard), with union-find clusters.
//!
//! A row is a list of *parts* `(marker, text)`: a plain text is one part with
//! no marker; a conversation is one part per message, marked by its role, so
//! that the same words under another role do not match.  Both methods see the
//! parts through the same normalisation (NFKC, Python's lower case, collapsed
//! whitespace; each optional).
//!
//! Nothing here trusts a hash for a decision: exact groups are formed by
//! 128-bit keys and then checked by comparing the normalised rows; LSH only
//! proposes candidate pairs, and a pair is linked only if the Jaccard
//! similarity of the two rows' shingle *sets of strings* reaches the
//! threshold.
//!
//! The entry points ([`exact`], [`exact_two`], [`degenerate`], [`near`],
//! [`band_keys_of`], [`signatures_of`], [`jaccard`], [`union_clusters`])
//! take [`Rows`](crate::rows::Rows) at a [`Level`](crate::rows::Level),
//! check them, and run the kernels below (which read rows through a
//! [`PartsFn`]); every kernel stops between chunks once its
//! [`Ctx`] is cancelled.

use std::cmp::Ordering;

use rayon::prelude::*;
use unicode_normalization::{IsNormalized, UnicodeNormalization};

use crate::error::{CoreError, Result};
use crate::exec::Ctx;
use crate::hash::{fold_mul, hash128, hash_bytes, B};

use crate::tokenize::{tokenize_with, Masks, Tokens};
use crate::unicode::UnicodeTables;

mod ops;
pub use ops::{
    band_keys_of, degenerate, exact, exact_two, jaccard, near, signatures_of, union_clusters, Lsh,
    NearDuplicates,
};

/// Reads the parts of row `i` into the vector (cleared by the caller).
pub type PartsFn<'a> = dyn Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a;

/// Normalisation applied before keys and shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Norm {
    pub nfkc: bool,
    pub lowercase: bool,
    pub whitespace: bool,
}

/// Whitespace as Rust's `char::is_whitespace` sees it, among ASCII bytes.
#[inline]
const fn ascii_space(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Bytes with ASCII whitespace mapped to `' '` (and ASCII letters
/// lower-cased); 256 entries so that no index is checked.
static ASCII_MAP: [u8; 256] = ascii_map(false);
static ASCII_MAP_LOWER: [u8; 256] = ascii_map(true);

const fn ascii_map(lower: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if ascii_space(c) {
            b' '
        } else if lower {
            c.to_ascii_lowercase()
        } else {
            c
        };
        i += 1;
    }
    t
}

/// Append the normalised `text` to `out`.
pub fn normalize_into(
    tables: &UnicodeTables,
    norm: Norm,
    text: &str,
    out: &mut String,
    tmp: &mut String,
) {
    if !text.is_ascii() {
        normalize_general(tables, norm, text, out, tmp);
        return;
    }
    // ASCII: NFKC is the identity and Python's lower case is byte-wise, so
    // one pass, with no allocation (equal to the general path, tested)
    // SAFETY: only ASCII bytes are appended, so `out` stays UTF-8.
    let buf = unsafe { out.as_mut_vec() };
    if !norm.whitespace {
        if norm.lowercase {
            buf.extend(text.bytes().map(|c| c.to_ascii_lowercase()));
        } else {
            buf.extend_from_slice(text.as_bytes());
        }
        return;
    }
    let start = buf.len();
    buf.reserve(text.len());
    let dst = &mut buf.spare_capacity_mut()[..text.len()];
    let pos = collapse_ascii(text.as_bytes(), dst, norm.lowercase);
    // SAFETY: the first `pos` bytes of the spare capacity were written
    unsafe { buf.set_len(start + pos) };
}

/// Copy ASCII `src` to `dst` (as long) with whitespace runs collapsed to one
/// space, none at either end, letters lower-cased if `lower`; returns the
/// bytes written.  Every byte is written (whitespace as `' '`) and the write
/// position advances unless the byte is whitespace after whitespace or at
/// the start; a trailing space is dropped at the end.  Blocks of 16 bytes
/// without two whitespace bytes in a row are done in SSE2 at once.
fn collapse_ascii(src: &[u8], dst: &mut [std::mem::MaybeUninit<u8>], lower: bool) -> usize {
    assert!(dst.len() >= src.len());
    let table = if lower { &ASCII_MAP_LOWER } else { &ASCII_MAP };
    let mut pos = 0usize;
    let mut prev_space = true;
    let mut i = 0usize;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= src.len() {
        // SAFETY: SSE2 is part of the x86_64 baseline; 16 bytes are read
        // at src[i..] and written at dst[pos..], pos <= i (asserted lengths).
        let spaces = unsafe {
            sse2_collapse_block(
                src.as_ptr().add(i),
                dst.as_mut_ptr().add(pos) as *mut u8,
                lower,
            )
        };
        let prev = (spaces << 1) | prev_space as u32;
        if spaces & prev == 0 {
            pos += 16;
            prev_space = spaces >> 15 != 0;
        } else {
            for &c in &src[i..i + 16] {
                let m = table[c as usize];
                let space = m == b' ';
                dst[pos].write(m);
                pos += (!(space & prev_space)) as usize;
                prev_space = space;
            }
        }
        i += 16;
    }
    for &c in &src[i..] {
        let m = table[c as usize];
        let space = m == b' ';
        dst[pos].write(m);
        pos += (!(space & prev_space)) as usize;
        prev_space = space;
    }
    if prev_space && pos > 0 {
        pos -= 1;
    }
    pos
}

/// Map 16 bytes (whitespace to `' '`, letters lower-cased if `lower`) from
/// `p` to `q`; returns the mask of whitespace bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn sse2_collapse_block(p: *const u8, q: *mut u8, lower: bool) -> u32 {
    use std::arch::x86_64::*;
    let v = _mm_loadu_si128(p as *const __m128i);
    // bytes 9..=13 and ' '
    let ctl = _mm_and_si128(
        _mm_cmpgt_epi8(v, _mm_set1_epi8(8)),
        _mm_cmplt_epi8(v, _mm_set1_epi8(14)),
    );
    let sp = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)));
    let mut w = v;
    if lower {
        let upper = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'A' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'Z' as i8 + 1)),
        );
        w = _mm_or_si128(w, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
    }
    // whitespace becomes ' '
    w = _mm_or_si128(
        _mm_andnot_si128(sp, w),
        _mm_and_si128(sp, _mm_set1_epi8(b' ' as i8)),
    );
    _mm_storeu_si128(q as *mut __m128i, w);
    _mm_movemask_epi8(sp) as u32
}

/// [`normalize_into`] for any text.
fn normalize_general(
    tables: &UnicodeTables,
    norm: Norm,
    text: &str,
    out: &mut String,
    tmp: &mut String,
) {
    // most text is already NFKC: the quick check spares the normaliser
    let src: &str = if norm.nfkc
        && !text.is_ascii()
        && unicode_normalization::is_nfkc_quick(text.chars()) != IsNormalized::Yes
    {
        tmp.clear();
        tmp.extend(text.nfkc());
        tmp
    } else {
        text
    };
    let start = out.len();
    if norm.lowercase {
        tables.lower_into(src, out);
    } else {
        out.push_str(src);
    }
    if norm.whitespace {
        let collapsed: String = out[start..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.truncate(start);
        out.push_str(&collapsed);
    }
}

/// The normalised key of a row: each part as `marker \x1f text \x1e`.
fn key_into(
    tables: &UnicodeTables,
    norm: Norm,
    parts: &[(&str, &str)],
    out: &mut String,
    tmp: &mut String,
) {
    out.clear();
    for (marker, text) in parts {
        out.push_str(marker);
        out.push('\u{1f}');
        normalize_into(tables, norm, text, out, tmp);
        out.push('\u{1e}');
    }
}

const CHUNK: usize = 1024;

/// Exact duplicates: per row, the smallest row index whose normalised parts
/// are identical (itself if none earlier).
pub fn exact_groups(
    tables: &UnicodeTables,
    norm: Norm,
    n: usize,
    parts: &PartsFn<'_>,
    ctx: &Ctx,
) -> Result<Vec<u32>> {
    if n >= u32::MAX as usize {
        return Err(CoreError::InvalidArgument("more than 2^32 - 1 rows".into()));
    }
    let mut keys: Vec<(u128, u32)> = vec![(0, 0); n];
    keys.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dst)| {
        if ctx.stopped() {
            return;
        }
        let (mut p, mut key, mut tmp) = (Vec::new(), String::new(), String::new());
        for (k, slot) in dst.iter_mut().enumerate() {
            let i = c * CHUNK + k;
            p.clear();
            parts(i, &mut p);
            key_into(tables, norm, &p, &mut key, &mut tmp);
            *slot = (hash128(key.as_bytes()), i as u32);
        }
    });
    ctx.check()?;
    keys.par_sort_unstable();
    let mut group: Vec<u32> = (0..n as u32).collect();
    // runs of equal keys: check by comparing the normalised rows
    let runs: Vec<&[(u128, u32)]> = keys
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|r| r.len() > 1)
        .collect();
    let resolved: Vec<Vec<(u32, u32)>> = runs
        .par_iter()
        .map(|run| {
            if ctx.stopped() {
                return Vec::new();
            }
            let (mut p, mut tmp) = (Vec::new(), String::new());
            let mut reps: Vec<(u32, String)> = Vec::new(); // (first row, its key)
            let mut out = Vec::with_capacity(run.len());
            for &(_, row) in run.iter() {
                p.clear();
                parts(row as usize, &mut p);
                let mut key = String::new();
                key_into(tables, norm, &p, &mut key, &mut tmp);
                match reps.iter().find(|(_, k)| *k == key) {
                    Some(&(first, _)) => out.push((row, first)),
                    None => {
                        out.push((row, row));
                        reps.push((row, key));
                    }
                }
            }
            out
        })
        .collect();
    ctx.check()?;
    for run in resolved {
        for (row, first) in run {
            group[row as usize] = first;
        }
    }
    Ok(group)
}

/// Per row: whether the normalised parts of `a` and `b` are identical.
pub fn same_parts(
    tables: &UnicodeTables,
    norm: Norm,
    n: usize,
    a: &PartsFn<'_>,
    b: &PartsFn<'_>,
    ctx: &Ctx,
) -> Result<Vec<bool>> {
    let rows: Vec<usize> = (0..n).collect();
    let same = rows
        .par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let stop = ctx.stopped();
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            let (mut ka, mut kb, mut tmp) = (String::new(), String::new(), String::new());
            chunk
                .iter()
                .map(|&i| {
                    if stop {
                        return false;
                    }
                    pa.clear();
                    pb.clear();
                    a(i, &mut pa);
                    b(i, &mut pb);
                    key_into(tables, norm, &pa, &mut ka, &mut tmp);
                    key_into(tables, norm, &pb, &mut kb, &mut tmp);
                    ka == kb
                })
                .collect::<Vec<_>>()
        })
        .collect();
    ctx.check()?;
    Ok(same)
}

/// How rows are cut into shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shingle {
    /// `n` consecutive word tokens (the reference tokeniser's tokens of the
    /// normalised text, a role marker token before each marked part)
    Word(usize),
    /// `n` consecutive tokens of every kind that carries meaning: runs of
    /// letters and digits of any length (numbers and one-letter words
    /// included), each other non-space character (operators, symbols,
    /// punctuation) on its own, and each Han / kana character on its own
    /// (scripts written without spaces); a role marker token before each
    /// marked part.  `"What is 2 + 3?"` and `"What is 4 + 5?"` differ.
    Token(usize),
    /// `n` consecutive characters of the normalised key
    Char(usize),
}

impl Shingle {
    /// Shingles of kind `kind` (`"word"` or `"char"`) and size `n` (at least 1).
    pub fn new(kind: &str, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(CoreError::InvalidArgument(
                "shingle size must be at least 1".into(),
            ));
        }
        match kind {
            "token" => Ok(Shingle::Token(n)),
            "word" => Ok(Shingle::Word(n)),
            "char" => Ok(Shingle::Char(n)),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown shingle kind {other:?}: use 'token', 'word' or 'char'"
            ))),
        }
    }
}

/// A row's shingles.  Word shingles are windows of the row's words (kept
/// in `buf`, spans in `words`); char shingles are byte ranges of the
/// normalised key (kept in `buf`).  Each shingle has a 64-bit hash.  Once
/// made a set ([`ShingleSet::make_set`]) the shingles are ordered by
/// `(hash, string)`, so that two sets intersect by merging and strings are
/// compared whenever hashes tie: the Jaccard similarity is exact whatever the
/// hashes do.  A word shingle's string is its words joined by `' '`.
#[derive(Default, Debug, Clone)]
struct ShingleSet {
    words_kind: bool,
    buf: Vec<u8>,
    words: Vec<(u32, u32)>,
    /// `(hash, a, b)`: words `a..b`, or bytes `a..b` of `buf`
    items: Vec<(u64, u32, u32)>,
}

impl ShingleSet {
    fn clear(&mut self, words_kind: bool) {
        self.words_kind = words_kind;
        self.buf.clear();
        self.words.clear();
        self.items.clear();
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    /// The string of shingle `k`, byte by byte.
    fn bytes(&self, k: usize) -> impl Iterator<Item = u8> + '_ {
        self.bytes_of(&self.items[k])
    }

    /// The string of a shingle `(hash, a, b)`, byte by byte.
    fn bytes_of(&self, item: &(u64, u32, u32)) -> impl Iterator<Item = u8> + '_ {
        let (a, b) = (item.1 as usize, item.2 as usize);
        let (words, plain): (&[(u32, u32)], &[u8]) = if self.words_kind {
            (&self.words[a..b], &[])
        } else {
            (&[], &self.buf[a..b])
        };
        let joined = words.iter().enumerate().flat_map(move |(i, &(x, y))| {
            let sep: &[u8] = if i > 0 { b" " } else { b"" };
            sep.iter().chain(&self.buf[x as usize..y as usize]).copied()
        });
        plain.iter().copied().chain(joined)
    }

    fn cmp_at(&self, i: usize, other: &ShingleSet, j: usize) -> Ordering {
        Self::cmp_items(self, &self.items[i], other, &other.items[j])
    }

    /// The order of `(hash, string)`.  Strings are compared only when the
    /// hashes tie, and equal shingles (the usual tie) are recognised
    /// without joining their words.
    fn cmp_items(
        sa: &ShingleSet,
        x: &(u64, u32, u32),
        sb: &ShingleSet,
        y: &(u64, u32, u32),
    ) -> Ordering {
        x.0.cmp(&y.0).then_with(|| {
            let (xa, xb, ya, yb) = (x.1 as usize, x.2 as usize, y.1 as usize, y.2 as usize);
            if !sa.words_kind {
                return sa.buf[xa..xb].cmp(&sb.buf[ya..yb]);
            }
            let (wx, wy) = (&sa.words[xa..xb], &sb.words[ya..yb]);
            let same_words = wx.len() == wy.len()
                && wx.iter().zip(wy).all(|(&(p, q), &(r, t))| {
                    sa.buf[p as usize..q as usize] == sb.buf[r as usize..t as usize]
                });
            if same_words {
                Ordering::Equal
            } else {
                sa.bytes_of(x).cmp(sb.bytes_of(y))
            }
        })
    }

    /// Sort by `(hash, string)` and drop repeats.
    fn make_set(&mut self) {
        let mut items = std::mem::take(&mut self.items);
        let me = &*self;
        items.sort_unstable_by(|x, y| Self::cmp_items(me, x, me, y));
        items.dedup_by(|x, y| Self::cmp_items(me, x, me, y) == Ordering::Equal);
        self.items = items;
    }
}

/// Exact Jaccard similarity of two sets made by [`ShingleSet::make_set`].
fn jaccard_sets(a: &ShingleSet, b: &ShingleSet) -> f64 {
    if a.len() == 0 && b.len() == 0 {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a.cmp_at(i, b, j) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// The shingles of one row, as strings (for the exact Jaccard) and as
/// 32-bit hashes (for MinHash).
struct Shingler<'t> {
    tables: &'t UnicodeTables,
    norm: Norm,
    kind: Shingle,
    key: String,
    tmp: String,
    low: String,
    toks: Tokens,
    masks: Masks,
    word_hashes: Vec<u64>,
    set: ShingleSet,
    hashes: Vec<u32>,
    /// Units (words and role markers, or characters) of the last row filled.
    units: usize,
}

/// Han ideographs and kana: scripts written without spaces, one token a
/// character.
fn spaceless_script(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF | 0xFF66..=0xFF9F | 0x20000..=0x2FA1F)
}

/// The tokens of [`Shingle::Token`] of the normalised `text`: copied into
/// `out_text`, with their spans and `hash_bytes` hashes in `out`.
fn meaning_tokens(text: &str, out_text: &mut String, out: &mut Tokens) {
    out.clear();
    out_text.clear();
    out_text.push_str(text);
    let bytes = text.as_bytes();
    let mut run: Option<usize> = None;
    let push = |a: usize, b: usize, out: &mut Tokens| {
        out.spans.push((a as u32, b as u32));
        out.hashes.push(hash_bytes(&bytes[a..b]));
    };
    for (i, c) in text.char_indices() {
        let word = (c.is_alphanumeric() || c == '_') && !spaceless_script(c);
        if word {
            run.get_or_insert(i);
            continue;
        }
        if let Some(a) = run.take() {
            push(a, i, out);
        }
        if !c.is_whitespace() && !c.is_control() {
            push(i, i + c.len_utf8(), out);
        }
    }
    if let Some(a) = run {
        push(a, text.len(), out);
    }
}

/// Marks a role marker's hash apart from a token's.
const MARKER_SEED: u64 = 0x243f_6a88_85a3_08d3;

#[inline]
fn fold32(x: u64) -> u32 {
    (x ^ (x >> 32)) as u32
}

impl<'t> Shingler<'t> {
    fn new(tables: &'t UnicodeTables, norm: Norm, kind: Shingle) -> Self {
        Shingler {
            tables,
            norm,
            kind,
            key: String::new(),
            tmp: String::new(),
            low: String::new(),
            toks: Tokens::default(),
            masks: Masks::default(),
            word_hashes: Vec::new(),
            set: ShingleSet::default(),
            hashes: Vec::new(),
            units: 0,
        }
    }

    /// Tokenise one part's text into `self.toks` (spans into `self.low`).
    /// An ASCII text is tokenised as it is: NFKC, lower case and collapsed
    /// whitespace cannot change its tokens (the tokeniser lower-cases, and a
    /// token is a run of word characters).
    fn tokenize_part(&mut self, text: &str) {
        if matches!(self.kind, Shingle::Token(_)) {
            self.key.clear();
            normalize_into(self.tables, self.norm, text, &mut self.key, &mut self.tmp);
            meaning_tokens(&self.key, &mut self.low, &mut self.toks);
            return;
        }
        let src: &str = if text.is_ascii() {
            text
        } else {
            self.key.clear();
            normalize_into(self.tables, self.norm, text, &mut self.key, &mut self.tmp);
            &self.key
        };
        tokenize_with(
            self.tables,
            src,
            &mut self.low,
            &mut self.toks,
            &mut self.masks,
        );
    }

    /// Fill `set` with the row's shingles (in row order, repeats kept), with
    /// their strings when `strings` (else only their hashes).
    fn fill(&mut self, parts: &[(&str, &str)], set: &mut ShingleSet, strings: bool) {
        set.clear(matches!(self.kind, Shingle::Word(_) | Shingle::Token(_)));
        match self.kind {
            Shingle::Word(n) | Shingle::Token(n) => {
                // the words (a marker word "\x01role" before each marked part)
                self.word_hashes.clear();
                let mut tokens = 0usize;
                for (marker, text) in parts {
                    if !marker.is_empty() {
                        self.word_hashes
                            .push(fold_mul(hash_bytes(marker.as_bytes()) ^ MARKER_SEED, K_MIX));
                        if strings {
                            let at = set.buf.len() as u32;
                            set.buf.push(0x01);
                            set.buf.extend_from_slice(marker.as_bytes());
                            set.words.push((at, set.buf.len() as u32));
                        }
                    }
                    self.tokenize_part(text);
                    tokens += self.toks.hashes.len();
                    self.word_hashes.extend_from_slice(&self.toks.hashes);
                    if strings {
                        for &(a, b) in &self.toks.spans {
                            let at = set.buf.len() as u32;
                            set.buf
                                .extend_from_slice(&self.low.as_bytes()[a as usize..b as usize]);
                            set.words.push((at, set.buf.len() as u32));
                        }
                    }
                }
                // a polynomial hash of each window of n words, rolled along;
                // a row without any token has no shingle (role markers alone
                // would make every empty prompt a copy of every other)
                let w = &self.word_hashes;
                self.units = if tokens == 0 { 0 } else { w.len() };
                if tokens == 0 {
                    return;
                }
                let n = n.min(w.len());
                let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(B));
                let mut r = w[..n]
                    .iter()
                    .fold(0u64, |r, &x| r.wrapping_mul(B).wrapping_add(x));
                set.items.reserve(w.len() - n + 1);
                set.items.push((r, 0, n as u32));
                for k in n..w.len() {
                    r = r
                        .wrapping_sub(w[k - n].wrapping_mul(top))
                        .wrapping_mul(B)
                        .wrapping_add(w[k]);
                    set.items.push((r, (k + 1 - n) as u32, (k + 1) as u32));
                }
            }
            Shingle::Char(n) => {
                key_into(self.tables, self.norm, parts, &mut self.key, &mut self.tmp);
                set.buf.extend_from_slice(self.key.as_bytes());
                let key = &set.buf;
                let idx: Vec<usize> = self
                    .key
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([key.len()])
                    .collect();
                let chars = idx.len() - 1;
                self.units = chars;
                if chars == 0 {
                    return;
                }
                let n = n.min(chars);
                set.items.extend((0..=(chars - n)).map(|s| {
                    let (a, b) = (idx[s], idx[s + n]);
                    (hash_bytes(&key[a..b]), a as u32, b as u32)
                }));
            }
        }
    }

    /// Fill `out` with the row's shingle strings (in row order, repeats kept).
    fn strings(&mut self, parts: &[(&str, &str)], out: &mut Vec<Vec<u8>>) {
        let mut set = std::mem::take(&mut self.set);
        self.fill(parts, &mut set, true);
        out.clear();
        out.extend((0..set.len()).map(|k| set.bytes(k).collect::<Vec<u8>>()));
        self.set = set;
    }

    /// The row's shingle set, ordered for [`jaccard_sets`].
    fn shingle_set(&mut self, parts: &[(&str, &str)], set: &mut ShingleSet) {
        self.fill(parts, set, true);
        set.make_set();
    }

    /// Fill `self.hashes` with the row's shingle hashes for `family` (one per
    /// shingle, repeats kept), through `fmix32` (the first step of every
    /// permutation).  `Fast`: from the shingle's 64-bit hash (for a word
    /// shingle, a polynomial of its words' hashes: no string is built).
    /// `Datasketch`: the SHA-1 of the shingle's string, as datasketch.
    fn shingle_hashes(&mut self, family: &Family, parts: &[(&str, &str)]) {
        let mut set = std::mem::take(&mut self.set);
        let datasketch = matches!(family, Family::Datasketch { .. });
        self.fill(parts, &mut set, datasketch);
        self.hashes.clear();
        if datasketch {
            let mut s = Vec::new();
            self.hashes.extend((0..set.len()).map(|k| {
                s.clear();
                s.extend(set.bytes(k));
                fmix32(sha1_32(&s))
            }));
        } else {
            self.hashes.extend(
                set.items
                    .iter()
                    .map(|&(h, _, _)| fmix32(fold32(fold_mul(h ^ SHINGLE_SEED, K_MIX)))),
            );
        }
        self.set = set;
    }

    /// The row's MinHash signature.
    fn signature(&mut self, family: &Family, parts: &[(&str, &str)], sig: &mut Vec<u32>) {
        self.shingle_hashes(family, parts);
        signature_of_hashes(family, &self.hashes, sig);
    }
}

const SHINGLE_SEED: u64 = 0x1319_8a2e_0370_7344;
const K_MIX: u64 = 0xa076_1d64_78bd_642f;

/// The first 4 bytes of the SHA-1 of `s`, little-endian (datasketch's
/// `sha1_hash32`).
fn sha1_32(s: &[u8]) -> u32 {
    use sha1::{Digest, Sha1};
    let d = Sha1::digest(s);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// The MinHash permutations: datasketch's "affine32" scheme,
/// `h -> a * fmix32(h) + b (mod 2^32)` with odd `a` (a bijection on 32 bits),
/// over a 32-bit hash `h` of each shingle.
#[derive(Debug, Clone)]
pub enum Family {
    /// `h` from fast 64-bit hashes (of a word shingle's words, or of a char
    /// shingle's bytes), folded to 32 bits
    Fast { a: Vec<u32>, b: Vec<u32> },
    /// `h` = the first 4 bytes of the shingle's SHA-1 (datasketch's
    /// `sha1_hash32`): with datasketch's `a`, `b` for a seed, the signatures
    /// are identical to `datasketch.MinHash(num_perm, seed)`'s
    Datasketch { a: Vec<u32>, b: Vec<u32> },
}

impl Family {
    /// The family `kind` (`"fast"` or `"datasketch"`) with multipliers `a`
    /// (odd) and offsets `b`, one of each per permutation.
    pub fn new(kind: &str, a: Vec<u32>, b: Vec<u32>) -> Result<Self> {
        if a.len() != b.len() || a.is_empty() {
            return Err(CoreError::InvalidArgument(
                "permutation parameters a and b must be non-empty and of equal length".into(),
            ));
        }
        if a.iter().any(|&x| x % 2 == 0) {
            return Err(CoreError::InvalidArgument(
                "permutation multipliers a must be odd".into(),
            ));
        }
        match kind {
            "fast" => Ok(Family::Fast { a, b }),
            "datasketch" => Ok(Family::Datasketch { a, b }),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown permutation family {other:?}"
            ))),
        }
    }

    pub fn num_perm(&self) -> usize {
        self.ab().0.len()
    }

    fn ab(&self) -> (&[u32], &[u32]) {
        match self {
            Family::Fast { a, b } | Family::Datasketch { a, b } => (a, b),
        }
    }
}

/// MurmurHash3's 32-bit finaliser (datasketch's `_fmix(hv, 32)`).
#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(2_246_822_507);
    h ^= h >> 13;
    h = h.wrapping_mul(3_266_489_909);
    h ^ (h >> 16)
}

/// The MinHash signature from the shingles' 32-bit hashes, already through
/// `fmix32` (`u32::MAX` everywhere when there are none, as datasketch).
pub fn signature_of_hashes(family: &Family, hashes: &[u32], sig: &mut Vec<u32>) {
    let (a, b) = family.ab();
    sig.clear();
    sig.resize(a.len(), u32::MAX);
    minhash_update(sig, a, b, hashes);
}

/// `sig[k] = min(sig[k], min over h of a[k] * h + b[k])` (`h` already
/// through `fmix32`), with AVX2
/// where the CPU has it (the same arithmetic, so the same result).
fn minhash_update(sig: &mut [u32], a: &[u32], b: &[u32], hashes: &[u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            unsafe { minhash_update_avx2(sig, a, b, hashes) };
            return;
        }
    }
    minhash_update_generic(sig, a, b, hashes);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn minhash_update_avx2(sig: &mut [u32], a: &[u32], b: &[u32], hashes: &[u32]) {
    minhash_update_generic(sig, a, b, hashes);
}

/// Permutations in blocks of `LANES` held in registers while every shingle
/// goes by (the compiler vectorises the fixed-size inner loops).
#[inline(always)]
fn minhash_update_generic(sig: &mut [u32], a: &[u32], b: &[u32], hashes: &[u32]) {
    const LANES: usize = 32;
    let full = sig.len() / LANES * LANES;
    let hs = hashes;
    for blk in (0..full).step_by(LANES) {
        let aa: [u32; LANES] = a[blk..blk + LANES].try_into().expect("block");
        let bb: [u32; LANES] = b[blk..blk + LANES].try_into().expect("block");
        let mut acc: [u32; LANES] = sig[blk..blk + LANES].try_into().expect("block");
        for &h in hs {
            for k in 0..LANES {
                acc[k] = acc[k].min(aa[k].wrapping_mul(h).wrapping_add(bb[k]));
            }
        }
        sig[blk..blk + LANES].copy_from_slice(&acc);
    }
    for k in full..sig.len() {
        for &h in hs {
            sig[k] = sig[k].min(a[k].wrapping_mul(h).wrapping_add(b[k]));
        }
    }
}

/// The MinHash signature of a set of shingle strings (`u32::MAX` everywhere
/// when it is empty, as datasketch); `Datasketch` family only (the fast
/// family hashes a word shingle from its words, not from its string).
pub fn signature(family: &Family, shingles: &[Vec<u8>], sig: &mut Vec<u32>) -> Result<()> {
    if !matches!(family, Family::Datasketch { .. }) {
        return Err(CoreError::InvalidArgument(
            "signatures of shingle strings use the datasketch family".into(),
        ));
    }
    let hashes: Vec<u32> = shingles.iter().map(|s| fmix32(sha1_32(s))).collect();
    signature_of_hashes(family, &hashes, sig);
    Ok(())
}

/// Shingle strings of a row (for tests and for Python's `shingles`).
pub fn shingle_strings(
    tables: &UnicodeTables,
    norm: Norm,
    kind: Shingle,
    parts: &[(&str, &str)],
) -> Vec<Vec<u8>> {
    let mut sh = Shingler::new(tables, norm, kind);
    let mut out = Vec::new();
    sh.strings(parts, &mut out);
    out
}

/// Signatures of every row (`num_perm` per row, row-major), as the LSH
/// stage makes them (for tests and inspection).
pub fn signatures(
    tables: &UnicodeTables,
    norm: Norm,
    kind: Shingle,
    family: &Family,
    n: usize,
    parts: &PartsFn<'_>,
    ctx: &Ctx,
) -> Result<Vec<u32>> {
    let rows: Vec<usize> = (0..n).collect();
    let sigs = rows
        .par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let mut sh = Shingler::new(tables, norm, kind);
            let (mut p, mut sig) = (Vec::new(), Vec::new());
            let mut out = Vec::with_capacity(chunk.len() * family.num_perm());
            if ctx.stopped() {
                return out;
            }
            for &i in chunk {
                p.clear();
                parts(i, &mut p);
                sh.signature(family, &p, &mut sig);
                out.extend_from_slice(&sig);
            }
            out
        })
        .collect();
    ctx.check()?;
    Ok(sigs)
}

/// LSH band keys of every row, straight from its shingles: the signatures
/// are made chunk by chunk and never held for all rows (memory: `bands`
/// keys of 8 bytes per row).  Also, per row, whether it is *short*: fewer
/// units (words and role markers, or characters) than one shingle but at
/// least one, so that its only shingle is the whole text.  A row with no
/// unit at all has no shingle and no band key (`u64::MAX`).
#[allow(clippy::too_many_arguments)]
pub fn row_band_keys(
    tables: &UnicodeTables,
    norm: Norm,
    kind: Shingle,
    family: &Family,
    n: usize,
    parts: &PartsFn<'_>,
    bands: usize,
    rows: usize,
    ctx: &Ctx,
) -> Result<(Vec<u64>, Vec<bool>)> {
    let num_perm = family.num_perm();
    band_keys(&[], num_perm, bands, rows)?; // checks the banding
    let width = match kind {
        Shingle::Word(w) | Shingle::Token(w) | Shingle::Char(w) => w,
    };
    let mut keys = vec![0u64; n * bands];
    let mut short = vec![false; n];
    keys.par_chunks_mut(CHUNK * bands)
        .zip(short.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (dst, sh_out))| {
            if ctx.stopped() {
                return;
            }
            let mut sh = Shingler::new(tables, norm, kind);
            let (mut p, mut sig) = (Vec::new(), Vec::new());
            for (k, (out, is_short)) in dst.chunks_mut(bands).zip(sh_out.iter_mut()).enumerate() {
                p.clear();
                parts(c * CHUNK + k, &mut p);
                sh.signature(family, &p, &mut sig);
                *is_short = sh.units > 0 && sh.units < width;
                row_keys(&sig, bands, rows, out);
            }
        });
    ctx.check()?;
    Ok((keys, short))
}

/// LSH band keys: `bands` keys per row from its signature (`rows` values
/// each); rows without shingles (an all-`u32::MAX` signature) get none.
pub fn band_keys(sigs: &[u32], num_perm: usize, bands: usize, rows: usize) -> Result<Vec<u64>> {
    if bands == 0 || rows == 0 || bands * rows > num_perm {
        return Err(CoreError::InvalidArgument(format!(
            "LSH needs bands * rows <= num_perm, got {bands} * {rows} > {num_perm}"
        )));
    }
    let mut keys = vec![0u64; sigs.len() / num_perm * bands];
    keys.par_chunks_mut(bands)
        .zip(sigs.par_chunks(num_perm))
        .for_each(|(out, sig)| row_keys(sig, bands, rows, out));
    Ok(keys)
}

/// One row's band keys into `out` (`u64::MAX`, "no key", for a row without
/// shingles).
fn row_keys(sig: &[u32], bands: usize, rows: usize, out: &mut [u64]) {
    let empty = sig.iter().all(|&v| v == u32::MAX);
    for (b, key) in out.iter_mut().enumerate().take(bands) {
        if empty {
            *key = u64::MAX;
            continue;
        }
        let mut h = (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
        for &v in &sig[b * rows..(b + 1) * rows] {
            h = fold_mul(h ^ v as u64, 0xa076_1d64_78bd_642f);
        }
        *key = h.min(u64::MAX - 1);
    }
}

/// Candidate pairs `(i, j)`, `i < j`, sharing a band key.  Within a bucket of
/// at most `max_bucket` rows every pair is a candidate; in a larger bucket
/// each row is paired with the bucket's first row and with the row before it.
/// `keep(i, j)` filters pairs (e.g. only pairs across two datasets).
pub fn candidates(
    keys: &[u64],
    bands: usize,
    max_bucket: usize,
    keep: &(dyn Fn(u32, u32) -> bool + Sync),
    ctx: &Ctx,
) -> Result<Vec<(u32, u32)>> {
    let n = keys.len() / bands;
    let per_band: Vec<Vec<(u32, u32)>> = (0..bands)
        .into_par_iter()
        .map(|b| {
            if ctx.stopped() {
                return Vec::new();
            }
            let mut col: Vec<(u64, u32)> = (0..n)
                .filter(|&i| keys[i * bands + b] != u64::MAX)
                .map(|i| (keys[i * bands + b], i as u32))
                .collect();
            col.sort_unstable();
            let mut out = Vec::new();
            for run in col.chunk_by(|a, b| a.0 == b.0) {
                if run.len() < 2 {
                    continue;
                }
                if run.len() <= max_bucket {
                    for x in 0..run.len() {
                        for y in x + 1..run.len() {
                            if keep(run[x].1, run[y].1) {
                                out.push((run[x].1, run[y].1));
                            }
                        }
                    }
                } else {
                    for y in 1..run.len() {
                        for x in [0, y - 1] {
                            if keep(run[x].1, run[y].1) {
                                out.push((run[x].1, run[y].1));
                            }
                        }
                    }
                }
            }
            out
        })
        .collect();
    ctx.check()?;
    let mut all: Vec<(u32, u32)> = per_band.into_iter().flatten().collect();
    all.par_sort_unstable();
    all.dedup();
    Ok(all)
}

/// Exact Jaccard similarity of the shingle sets of each pair `(i, j)`, rows
/// read by `parts` (`i`) and `parts_j` (`j`).  Pairs sharing their first row
/// reuse its set.
pub fn jaccard_pairs<'a>(
    tables: &UnicodeTables,
    norm: Norm,
    kind: Shingle,
    pairs: &[(u32, u32)],
    parts: &PartsFn<'a>,
    parts_j: &PartsFn<'a>,
    ctx: &Ctx,
) -> Result<Vec<f64>> {
    // runs of pairs with the same first row, in parallel
    let runs: Vec<&[(u32, u32)]> = pairs.chunk_by(|a, b| a.0 == b.0).collect();
    fn make<'a>(
        sh: &mut Shingler<'_>,
        p: &mut Vec<(&'a str, &'a str)>,
        row: u32,
        f: &PartsFn<'a>,
        set: &mut ShingleSet,
    ) {
        p.clear();
        f(row as usize, p);
        sh.shingle_set(p, set);
    }
    let sims = runs
        .par_iter()
        .map_init(
            || {
                (
                    Shingler::new(tables, norm, kind),
                    ShingleSet::default(),
                    ShingleSet::default(),
                )
            },
            |(sh, a, b), run| {
                if ctx.stopped() {
                    return vec![0.0; run.len()];
                }
                let mut p = Vec::new();
                make(sh, &mut p, run[0].0, parts, a);
                run.iter()
                    .map(|&(_, j)| {
                        make(sh, &mut p, j, parts_j, b);
                        jaccard_sets(a, b)
                    })
                    .collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect();
    ctx.check()?;
    Ok(sims)
}

/// Union-find clusters over `edges` of `n` rows: per row, the smallest row
/// index of its cluster.
pub fn clusters(n: usize, edges: &[(u32, u32)]) -> Vec<u32> {
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    for &(a, b) in edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            // the smaller index becomes the root: clusters are named by their first row
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            parent[hi as usize] = lo;
        }
    }
    (0..n as u32).map(|x| find(&mut parent, x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> std::sync::Arc<UnicodeTables> {
        UnicodeTables::builtin()
    }

    const NORM: Norm = Norm {
        nfkc: true,
        lowercase: true,
        whitespace: true,
    };

    #[test]
    fn normalisation() {
        let mut out = String::new();
        let mut tmp = String::new();
        normalize_into(
            &tables(),
            NORM,
            "  Ｆｕｌｌ\u{3000}Width  ÉTÉ\n\n x ",
            &mut out,
            &mut tmp,
        );
        assert_eq!(out, "full width été x");
    }

    #[test]
    fn ascii_fast_path_equals_the_general_path() {
        let t = tables();
        let alphabet = b"aZ_9 \t\n\x0b\x0c\r\x1c\x1fQ.,-";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..4000 {
            let len = (next() % 90) as usize;
            // long runs of one byte now and then (whitespace runs across blocks)
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect::<String>()
                .repeat(1 + (case % 3));
            for lowercase in [true, false] {
                for whitespace in [true, false] {
                    let norm = Norm {
                        nfkc: case % 2 == 0,
                        lowercase,
                        whitespace,
                    };
                    let (mut fast, mut slow, mut tmp) =
                        ("x".to_string(), "x".to_string(), String::new());
                    normalize_into(&t, norm, &text, &mut fast, &mut tmp);
                    normalize_general(&t, norm, &text, &mut slow, &mut tmp);
                    assert_eq!(fast, slow, "{text:?} {norm:?}");
                }
            }
        }
    }

    #[test]
    fn exact_groups_verify_and_name_by_first_row() {
        let rows = [
            "Hello  World",
            "hello world",
            "other",
            "HELLO WORLD",
            "other ",
        ];
        let f = |i: usize, p: &mut Vec<(&str, &str)>| p.push(("", rows[i]));
        let g = exact_groups(&tables(), NORM, rows.len(), &f, &Ctx::new()).unwrap();
        assert_eq!(g, vec![0, 0, 2, 0, 2]);
        let strict = Norm {
            nfkc: false,
            lowercase: false,
            whitespace: false,
        };
        assert_eq!(
            exact_groups(&tables(), strict, rows.len(), &f, &Ctx::new()).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn roles_matter() {
        let f = |i: usize, p: &mut Vec<(&str, &str)>| {
            p.push((if i == 0 { "user" } else { "assistant" }, "same words"))
        };
        assert_eq!(
            exact_groups(&tables(), NORM, 2, &f, &Ctx::new()).unwrap(),
            vec![0, 1]
        );
    }

    #[test]
    fn token_shingles_keep_numbers_letters_operators_and_han() {
        let t = tables();
        let toks = |text: &str| shingle_strings(&t, NORM, Shingle::Token(1), &[("", text)]);
        let s = toks("What is 2 + 3?");
        let words: Vec<String> = s
            .iter()
            .map(|w| String::from_utf8(w.clone()).unwrap())
            .collect();
        assert_eq!(words, ["what", "is", "2", "+", "3", "?"]);
        let han = toks("東京は x=1");
        let han: Vec<String> = han
            .iter()
            .map(|w| String::from_utf8(w.clone()).unwrap())
            .collect();
        assert_eq!(han, ["東", "京", "は", "x", "=", "1"]);
        // math prompts that differ only in their numbers are not near copies
        let sets: Vec<Vec<Vec<u8>>> = ["What is 2 + 3?", "What is 4 + 5?", "What is 7 * 8?"]
            .iter()
            .map(|p| shingle_strings(&t, NORM, Shingle::Token(5), &[("", p)]))
            .collect();
        for a in 0..3 {
            for b in a + 1..3 {
                let common = sets[a].iter().filter(|x| sets[b].contains(x)).count();
                assert_eq!(common, 0, "{a} {b}");
            }
        }
        // the reference word tokens drop them all: the three are one text
        let w: Vec<Vec<Vec<u8>>> = ["What is 2 + 3?", "What is 4 + 5?"]
            .iter()
            .map(|p| shingle_strings(&t, NORM, Shingle::Word(5), &[("", p)]))
            .collect();
        assert_eq!(w[0], w[1]);
    }

    #[test]
    fn word_shingles_and_jaccard() {
        let t = tables();
        let s = shingle_strings(&t, NORM, Shingle::Word(2), &[("", "A b cc dd ee")]);
        assert_eq!(s, vec![b"cc dd".to_vec(), b"dd ee".to_vec()]);
        let rows = [
            "one two three four five six",
            "one two three four five seven",
            "nothing alike here at all",
        ];
        let f = |i: usize, p: &mut Vec<(&str, &str)>| p.push(("", rows[i]));
        let j = jaccard_pairs(
            &t,
            NORM,
            Shingle::Word(2),
            &[(0, 1), (0, 2)],
            &f,
            &f,
            &Ctx::new(),
        )
        .unwrap();
        assert!((j[0] - 4.0 / 6.0).abs() < 1e-12 && j[1] == 0.0);
    }

    #[test]
    fn lsh_finds_identical_and_clusters() {
        let t = tables();
        let rows = [
            "the cat sat on the mat today",
            "the cat sat on the mat today",
            "a dog ran",
            "",
        ];
        let f = |i: usize, p: &mut Vec<(&str, &str)>| p.push(("", rows[i]));
        let fam = Family::Fast {
            a: (0..16).map(|i| 2 * i as u32 + 1).collect(),
            b: (0..16).collect(),
        };
        let sigs = signatures(
            &t,
            NORM,
            Shingle::Word(3),
            &fam,
            rows.len(),
            &f,
            &Ctx::new(),
        )
        .unwrap();
        let keys = band_keys(&sigs, 16, 4, 4).unwrap();
        let c = candidates(&keys, 4, 64, &|_, _| true, &Ctx::new()).unwrap();
        assert_eq!(c, vec![(0, 1)]);
        assert_eq!(clusters(4, &c), vec![0, 0, 2, 3]);
    }
}
