//! The benchmark n-gram index and the scan of training texts against it.
//!
//! # Exactness
//!
//! The reference score of a (benchmark `i`, training `j`) pair is sklearn's
//! `CountVectorizer(ngram_range=(lo, hi))` dot product
//! `S[i, j] = sum over n-gram strings g of count_i(g) * count_j(g)`.
//! An n-gram string is its tokens joined by one space; tokens never contain a
//! space, so two n-gram strings are equal exactly when their token sequences
//! are.  The index interns every distinct benchmark n-gram (per length) as a
//! *gram id* with a posting list `(benchmark doc, count)`.  The scan finds,
//! for each training position and length, the gram id of the training n-gram
//! if the benchmark has it, counts `count_j(g)`, and accumulates
//! `count_j(g) * count_i(g)` over the postings: the dot product, exactly.
//!
//! Lookups go through 64-bit hashes, but no hash collision can change a
//! result: every lookup compares the candidate's tokens byte for byte with the
//! training tokens, and distinct n-grams that share a hash are chained in the
//! index and tried in turn.  A collision can only cost a comparison.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::hash::{extend, key, pow_b, IdentityBuild, B, SEED};
use crate::tokenize::{tokenize, tokenize_with, Masks, Tokens, MAX_TEXT_BYTES};
use crate::unicode::UnicodeTables;

/// How benchmark texts are cut into n-grams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every n-gram with `min_n <= n <= max_n` (sklearn's `ngram_range`).
    Reference { min_n: usize, max_n: usize },
    /// One n-gram size per benchmark text: `min(n, tokens)`; texts with fewer
    /// than `min_tokens` tokens are not indexed.
    Precise { n: usize, min_tokens: usize },
}

impl Method {
    fn validate(&self) -> Result<()> {
        match *self {
            Method::Reference { min_n, max_n } => {
                if min_n == 0 || min_n > max_n || max_n > 64 {
                    return Err(CoreError::InvalidArgument(format!(
                        "ngram_range must satisfy 1 <= min_n <= max_n <= 64, got ({min_n}, {max_n})"
                    )));
                }
            }
            Method::Precise { n, min_tokens } => {
                if n == 0 || n > 64 || min_tokens == 0 || min_tokens > n {
                    return Err(CoreError::InvalidArgument(format!(
                        "precise method needs 1 <= min_tokens <= n <= 64, got n={n}, min_tokens={min_tokens}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The gram lengths a document of `t` tokens contributes to the index.
    fn lengths_for(&self, t: usize) -> std::ops::RangeInclusive<usize> {
        match *self {
            Method::Reference { min_n, max_n } => min_n..=max_n,
            Method::Precise { n, min_tokens } => {
                if t < min_tokens {
                    #[allow(clippy::reversed_empty_ranges)]
                    {
                        1..=0
                    }
                } else {
                    let l = n.min(t);
                    l..=l
                }
            }
        }
    }
}

/// A distinct benchmark n-gram.
///
/// In a prefix-closed index (the reference method) only the shortest grams
/// (*roots*) are in the key table; a longer gram hangs off the gram of its
/// first `len - 1` tokens (its parent) and is found by its last token.  In
/// the precise index every gram is a root.
#[derive(Debug, Clone, Copy)]
struct Gram {
    /// one occurrence: the global number of its first token
    tok: u64,
    len: u32,
    /// next root with the same table key, or `NONE`
    next: u32,
    first_child: u32,
    next_sibling: u32,
    /// hash of the last token
    last_hash: u64,
    post_start: u32,
    post_len: u32,
}

const NONE: u32 = u32::MAX;

/// One benchmark document's share of a gram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub doc: u32,
    pub count: u32,
}

/// A sequence of tokens: each has a hash and its (lower-cased) bytes.
trait Seq {
    fn hash(&self, k: usize) -> u64;
    fn bytes(&self, k: usize) -> &[u8];
}

/// A lower-cased, tokenised training text.
struct DocView<'a> {
    low: &'a str,
    spans: &'a [(u32, u32)],
    hashes: &'a [u64],
}

impl Seq for DocView<'_> {
    #[inline]
    fn hash(&self, k: usize) -> u64 {
        self.hashes[k]
    }
    #[inline]
    fn bytes(&self, k: usize) -> &[u8] {
        let (a, b) = self.spans[k];
        &self.low.as_bytes()[a as usize..b as usize]
    }
}

/// The index's own tokens, by global token number.
struct Own<'a>(&'a BenchmarkIndex);

impl Seq for Own<'_> {
    #[inline]
    fn hash(&self, k: usize) -> u64 {
        self.0.tok_hash[k]
    }
    #[inline]
    fn bytes(&self, k: usize) -> &[u8] {
        self.0.token(k)
    }
}

/// An immutable index of benchmark texts, shared freely across threads.
#[derive(Debug)]
pub struct BenchmarkIndex {
    tables: Arc<UnicodeTables>,
    method: Method,
    texts: Vec<String>,
    ids: Vec<String>,
    subsets: Vec<String>,
    // lower-cased texts, concatenated
    low: String,
    // tokens of all docs, concatenated: doc d has tokens tok_start[d]..tok_start[d + 1]
    tok_start: Vec<usize>,
    /// byte offset of each token in `low`, and its length
    tok_off: Vec<u64>,
    tok_len: Vec<u32>,
    tok_hash: Vec<u64>,
    grams: Vec<Gram>,
    table: HashMap<u64, u32, IdentityBuild>,
    postings: Vec<Posting>,
    /// distinct gram lengths present, ascending
    lengths: Vec<usize>,
    /// every indexed (n+1)-gram has its n-gram prefix indexed (reference method)
    prefix_closed: bool,
    filter: Vec<u64>,
    filter_shift: u32,
    /// distinct grams per doc
    doc_grams: Vec<u32>,
    /// per doc (ranges of `tok_start`): (token hash, position) sorted, to find
    /// where a training token occurs in a benchmark doc
    doc_sorted: Vec<(u64, u32)>,
}

/// A (training row, benchmark doc) pair with a positive reference score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub train: u64,
    pub bench: u32,
    pub score: i64,
}

/// A training row with a positive reference score against some benchmark doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flagged {
    pub train: u64,
    /// the best-scoring benchmark doc (the lowest index among ties)
    pub bench: u32,
    pub score: i64,
    /// benchmark docs with a positive score
    pub n_matches: u32,
    /// the longest run of tokens shared with `bench`
    pub span: Option<Span>,
}

/// The result of a reference scan.
#[derive(Debug, Clone, Default)]
pub struct ReferenceScan {
    /// every pair with a positive score, by row then doc
    pub matches: Vec<Match>,
    /// one entry per row with any match, by row
    pub flagged: Vec<Flagged>,
}

/// A (training row, benchmark doc) pair found by the precise method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreciseMatch {
    pub train: u64,
    pub bench: u32,
    /// distinct non-stop grams shared (all grams, for a doc that is all stop-grams)
    pub shared: u32,
    /// `shared` / the benchmark doc's distinct non-stop grams (1.0 for a doc
    /// that is all stop-grams, which matches only when contained whole)
    pub coverage: f64,
}

/// Options of the precise method's second pass.
#[derive(Debug, Clone, Copy)]
pub struct PreciseParams {
    /// grams found in more training texts than this are stop-grams
    pub max_train_df: u64,
    /// grams found in more benchmark texts than this are stop-grams
    pub max_bench_df: u64,
    /// minimum fraction of the benchmark text's grams that must be shared
    pub min_coverage: f64,
}

/// The longest run of tokens a training text shares with a benchmark text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// byte range in the original training text
    pub start: usize,
    pub end: usize,
    /// tokens in the run
    pub tokens: usize,
}

/// Per-thread buffers of a scan.
struct Scratch {
    low: String,
    toks: Tokens,
    masks: Masks,
    hits: Vec<u32>,
    acc: Vec<i64>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(n_docs: usize) -> Self {
        Scratch {
            low: String::new(),
            toks: Tokens::default(),
            masks: Masks::default(),
            hits: Vec::new(),
            acc: vec![0; n_docs],
            touched: Vec::new(),
        }
    }
}

/// Rows per parallel work item.
const CHUNK: usize = 256;

/// Check that every text can be tokenised (lower-casing grows UTF-8 by at most 3/2).
pub fn check_text_sizes(texts: &[&str], row_offset: u64) -> Result<()> {
    for (k, t) in texts.iter().enumerate() {
        if t.len() > MAX_TEXT_BYTES / 3 * 2 {
            return Err(CoreError::TextTooLarge { row: row_offset + k as u64, bytes: t.len() });
        }
    }
    Ok(())
}

impl BenchmarkIndex {
    /// Index `texts` (with their ids and subsets) under `method`.
    pub fn build(
        tables: Arc<UnicodeTables>,
        method: Method,
        texts: Vec<String>,
        ids: Vec<String>,
        subsets: Vec<String>,
    ) -> Result<Self> {
        method.validate()?;
        if ids.len() != texts.len() || subsets.len() != texts.len() {
            return Err(CoreError::InvalidArgument(format!(
                "benchmark: {} texts but {} ids and {} subsets",
                texts.len(),
                ids.len(),
                subsets.len()
            )));
        }
        if texts.len() >= u32::MAX as usize {
            return Err(CoreError::InvalidArgument("benchmark: more than 2^32 - 1 texts".into()));
        }
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        check_text_sizes(&refs, 0)?;
        // tokenise in parallel, keep document order
        let per_doc: Vec<(String, Tokens)> = refs
            .par_iter()
            .map(|t| {
                let mut low = String::new();
                let mut toks = Tokens::default();
                tokenize(&tables, t, &mut low, &mut toks);
                (low, toks)
            })
            .collect();
        let n_docs = texts.len();
        let mut low = String::with_capacity(per_doc.iter().map(|d| d.0.len()).sum());
        let mut tok_start = Vec::with_capacity(n_docs + 1);
        let n_toks: usize = per_doc.iter().map(|d| d.1.len()).sum();
        let mut tok_off = Vec::with_capacity(n_toks);
        let mut tok_len = Vec::with_capacity(n_toks);
        let mut tok_hash = Vec::with_capacity(n_toks);
        for (l, t) in &per_doc {
            let base = low.len() as u64;
            tok_start.push(tok_hash.len());
            low.push_str(l);
            tok_off.extend(t.spans.iter().map(|&(a, _)| base + a as u64));
            tok_len.extend(t.spans.iter().map(|&(a, b)| b - a));
            tok_hash.extend_from_slice(&t.hashes);
        }
        tok_start.push(tok_hash.len());
        drop(per_doc);

        let mut idx = BenchmarkIndex {
            tables,
            method,
            texts,
            ids,
            subsets,
            low,
            tok_start,
            tok_off,
            tok_len,
            tok_hash,
            grams: Vec::new(),
            table: HashMap::default(),
            postings: Vec::new(),
            lengths: Vec::new(),
            prefix_closed: matches!(method, Method::Reference { .. }),
            filter: Vec::new(),
            filter_shift: 63,
            doc_grams: vec![0; n_docs],
            doc_sorted: Vec::new(),
        };
        idx.doc_sorted = (0..n_docs)
            .flat_map(|d| {
                let (a, b) = (idx.tok_start[d], idx.tok_start[d + 1]);
                let mut v: Vec<(u64, u32)> =
                    idx.tok_hash[a..b].iter().enumerate().map(|(q, &h)| (h, q as u32)).collect();
                v.sort_unstable();
                v
            })
            .collect();
        idx.intern_grams()?;
        Ok(idx)
    }

    /// Bytes of global token `t`.
    #[inline]
    fn token(&self, t: usize) -> &[u8] {
        let a = self.tok_off[t] as usize;
        &self.low.as_bytes()[a..a + self.tok_len[t] as usize]
    }

    /// Whether gram `g` equals the `len` tokens of `seq` at `p`.
    #[inline]
    fn gram_equals(&self, g: &Gram, seq: &impl Seq, p: usize, len: usize) -> bool {
        if g.len as usize != len {
            return false;
        }
        let q = g.tok as usize;
        (0..len).all(|k| self.tok_hash[q + k] == seq.hash(p + k)) && (0..len).all(|k| self.token(q + k) == seq.bytes(p + k))
    }

    /// The root gram equal to the `len` tokens of `seq` at `p`, whose key is
    /// `k`, verified token by token.
    #[inline]
    fn find(&self, k: u64, seq: &impl Seq, p: usize, len: usize) -> Option<u32> {
        let mut g = *self.table.get(&k)?;
        while g != NONE {
            let gram = &self.grams[g as usize];
            if self.gram_equals(gram, seq, p, len) {
                return Some(g);
            }
            g = gram.next;
        }
        None
    }

    /// The child of `parent` (verified equal to the `len - 1` tokens of `seq`
    /// at `p`) whose last token is token `p + len - 1` of `seq`: then it
    /// equals the `len` tokens at `p`.
    #[inline]
    fn find_child(&self, parent: u32, seq: &impl Seq, p: usize, len: usize) -> Option<u32> {
        let last = p + len - 1;
        let h = seq.hash(last);
        let mut g = self.grams[parent as usize].first_child;
        while g != NONE {
            let c = &self.grams[g as usize];
            if c.last_hash == h && self.token(c.tok as usize + len - 1) == seq.bytes(last) {
                return Some(g);
            }
            g = c.next_sibling;
        }
        None
    }

    #[inline]
    fn maybe_present(&self, k: u64) -> bool {
        let word = self.filter[(k >> self.filter_shift) as usize];
        let mask = (1u64 << ((k >> 20) & 63)) | (1u64 << ((k >> 26) & 63));
        word & mask == mask
    }

    /// Add the `len`-gram starting at global token `tok`: a root under key
    /// `k`, or a child of `parent`.
    fn add_gram(&mut self, k: u64, tok: usize, len: usize, parent: u32) -> Result<u32> {
        if self.grams.len() >= NONE as usize - 1 {
            return Err(CoreError::InvalidArgument("benchmark: more than 2^32 - 2 distinct n-grams".into()));
        }
        let id = self.grams.len() as u32;
        let (mut next, mut next_sibling) = (NONE, NONE);
        if parent == NONE {
            // new roots go to the head of their key's chain
            next = self.table.insert(k, id).unwrap_or(NONE);
        } else {
            let pg = &mut self.grams[parent as usize];
            next_sibling = pg.first_child;
            pg.first_child = id;
        }
        self.grams.push(Gram {
            tok: tok as u64,
            len: len as u32,
            next,
            first_child: NONE,
            next_sibling,
            last_hash: self.tok_hash[tok + len - 1],
            post_start: 0,
            post_len: 0,
        });
        Ok(id)
    }

    fn intern_grams(&mut self) -> Result<()> {
        let n_docs = self.texts.len();
        // (gram, doc, count) per distinct gram of each doc; `seen[g]` is the
        // last doc that saw gram g and where its triple is
        let mut triples: Vec<(u32, u32, u32)> = Vec::new();
        let mut seen: Vec<(u32, u32)> = Vec::new();
        let mut lengths = std::collections::BTreeSet::new();
        let positions: usize = (0..n_docs).map(|d| self.tok_start[d + 1] - self.tok_start[d]).sum();
        self.table.reserve(positions);
        for d in 0..n_docs {
            let base = self.tok_start[d];
            let t = self.tok_start[d + 1] - base;
            let range = self.method.lengths_for(t);
            let (lo, hi) = (*range.start(), *range.end());
            if lo > hi || t < lo {
                continue;
            }
            lengths.extend(lo..=hi.min(t));
            let before = triples.len();
            let mut count = |g: u32, triples: &mut Vec<(u32, u32, u32)>| {
                if seen.len() <= g as usize {
                    seen.resize(g as usize + 1, (NONE, 0));
                }
                let (last_doc, at) = seen[g as usize];
                if last_doc == d as u32 {
                    triples[at as usize].2 += 1;
                } else {
                    seen[g as usize] = (d as u32, triples.len() as u32);
                    triples.push((g, d as u32, 1));
                }
            };
            for p in 0..=(t - lo) {
                let at = base + p;
                let run = self.tok_hash[at..at + lo].iter().fold(SEED, |r, &x| extend(r, x));
                let k = key(run, lo);
                let found = self.find(k, &Own(self), at, lo);
                let mut g = match found {
                    Some(g) => g,
                    None => self.add_gram(k, at, lo, NONE)?,
                };
                count(g, &mut triples);
                for len in lo + 1..=hi.min(t - p) {
                    let found = self.find_child(g, &Own(self), at, len);
                    g = match found {
                        Some(c) => c,
                        None => self.add_gram(0, at, len, g)?,
                    };
                    count(g, &mut triples);
                }
            }
            self.doc_grams[d] = (triples.len() - before) as u32;
        }
        if triples.len() >= u32::MAX as usize {
            return Err(CoreError::InvalidArgument("benchmark: more than 2^32 - 1 postings".into()));
        }
        // group postings by gram (counting sort: docs stay ascending per gram)
        let mut starts = vec![0u32; self.grams.len() + 1];
        for &(g, _, _) in &triples {
            starts[g as usize + 1] += 1;
        }
        for g in 0..self.grams.len() {
            starts[g + 1] += starts[g];
            self.grams[g].post_start = starts[g];
            self.grams[g].post_len = starts[g + 1] - starts[g];
        }
        let mut postings = vec![Posting { doc: 0, count: 0 }; triples.len()];
        for &(g, d, c) in &triples {
            let at = &mut starts[g as usize];
            postings[*at as usize] = Posting { doc: d, count: c };
            *at += 1;
        }
        self.postings = postings;
        self.lengths = lengths.into_iter().collect();
        // A blocked Bloom filter over the roots' keys (two bits in one word,
        // ~32 bits per key) keeps the test of a text position in cache.
        let words = (self.table.len().max(1) / 2).next_power_of_two().max(64);
        self.filter_shift = 64 - words.trailing_zeros();
        self.filter = vec![0u64; words];
        for &k in self.table.keys() {
            self.filter[(k >> self.filter_shift) as usize] |= (1u64 << ((k >> 20) & 63)) | (1u64 << ((k >> 26) & 63));
        }
        Ok(())
    }

    pub fn method(&self) -> Method {
        self.method
    }
    pub fn len(&self) -> usize {
        self.texts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
    pub fn texts(&self) -> &[String] {
        &self.texts
    }
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
    pub fn subsets(&self) -> &[String] {
        &self.subsets
    }
    pub fn unicode_version(&self) -> &str {
        self.tables.version()
    }
    pub fn tables(&self) -> &Arc<UnicodeTables> {
        &self.tables
    }
    /// Distinct n-grams indexed (over all lengths).
    pub fn n_grams(&self) -> usize {
        self.grams.len()
    }
    /// Tokens of benchmark doc `d`.
    pub fn doc_tokens(&self, d: usize) -> usize {
        self.tok_start[d + 1] - self.tok_start[d]
    }
    /// Distinct grams of benchmark doc `d`.
    pub fn doc_gram_count(&self, d: usize) -> u32 {
        self.doc_grams[d]
    }
    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.texts.iter().map(|s| s.capacity()).sum::<usize>()
            + self.low.capacity()
            + self.tok_off.capacity() * 12
            + self.tok_hash.capacity() * 8
            + self.grams.capacity() * std::mem::size_of::<Gram>()
            + self.table.capacity() * 16
            + self.postings.capacity() * 8
            + self.filter.capacity() * 8
    }

    fn postings_of(&self, g: u32) -> &[Posting] {
        let gram = &self.grams[g as usize];
        &self.postings[gram.post_start as usize..(gram.post_start + gram.post_len) as usize]
    }

    /// Push onto `hits` the gram id of every indexed n-gram occurrence of `view`.
    fn collect_hits(&self, view: &DocView<'_>, hits: &mut Vec<u32>) {
        let h = view.hashes;
        let t = h.len();
        let Some(&lo) = self.lengths.first() else { return };
        let hi = *self.lengths.last().expect("non-empty");
        if t < lo {
            return;
        }
        if !self.prefix_closed {
            for p in 0..=(t - lo) {
                let mut run = SEED;
                for len in 1..=hi.min(t - p) {
                    run = extend(run, h[p + len - 1]);
                    if len < lo || self.lengths.binary_search(&len).is_err() {
                        continue;
                    }
                    let k = key(run, len);
                    if self.maybe_present(k) {
                        if let Some(g) = self.find(k, view, p, len) {
                            hits.push(g);
                        }
                    }
                }
            }
            return;
        }
        // Every indexed n-gram has its lo-gram prefix indexed: roll the
        // lo-gram hash along the text, extend only where it is found.
        let drop = pow_b(lo - 1);
        let first = h[..lo].iter().fold(SEED, |r, &x| extend(r, x));
        // (position, hash of the lo-gram there) for every position
        let windows = std::iter::once((0, first)).chain(
            h.iter().zip(&h[lo..]).enumerate().scan(first, |run, (p, (&out, &inc))| {
                *run = run.wrapping_sub(out.wrapping_mul(drop)).wrapping_mul(B).wrapping_add(inc);
                Some((p + 1, *run))
            }),
        );
        for (p, run) in windows {
            let k = key(run, lo);
            if !self.maybe_present(k) {
                continue;
            }
            let Some(mut g) = self.find(k, view, p, lo) else { continue };
            hits.push(g);
            for len in lo + 1..=hi.min(t - p) {
                match self.find_child(g, view, p, len) {
                    Some(c) => {
                        hits.push(c);
                        g = c;
                    }
                    None => break,
                }
            }
        }
    }

    fn tokenize_into(&self, text: &str, s: &mut Scratch) {
        tokenize_with(&self.tables, text, &mut s.low, &mut s.toks, &mut s.masks);
    }

    /// Reference scores of one text against every benchmark doc: `(doc, score)`
    /// for each doc with a positive score, ascending by doc.
    fn score_one(&self, text: &str, s: &mut Scratch, out: &mut Vec<(u32, i64)>) {
        self.tokenize_into(text, s);
        s.hits.clear();
        let view = DocView { low: &s.low, spans: &s.toks.spans, hashes: &s.toks.hashes };
        self.collect_hits(&view, &mut s.hits);
        if s.hits.is_empty() {
            return;
        }
        s.hits.sort_unstable();
        let mut i = 0;
        while i < s.hits.len() {
            let g = s.hits[i];
            let mut j = i;
            while j < s.hits.len() && s.hits[j] == g {
                j += 1;
            }
            let cj = (j - i) as i64;
            for p in self.postings_of(g) {
                let a = &mut s.acc[p.doc as usize];
                if *a == 0 {
                    s.touched.push(p.doc);
                }
                *a += cj * p.count as i64;
            }
            i = j;
        }
        s.touched.sort_unstable();
        for &d in &s.touched {
            out.push((d, s.acc[d as usize]));
            s.acc[d as usize] = 0;
        }
        s.touched.clear();
    }

    /// Every (training row, benchmark doc) pair with a positive reference
    /// score, ordered by row then doc, and for every flagged row its best
    /// match and longest matched span.  Rows are numbered from `row_offset`.
    ///
    /// Runs on the current rayon pool; the result does not depend on its size.
    pub fn scan_reference(&self, texts: &[&str], row_offset: u64, spans: bool) -> Result<ReferenceScan> {
        check_text_sizes(texts, row_offset)?;
        let n_docs = self.len();
        let parts: Vec<ReferenceScan> = texts
            .par_chunks(CHUNK)
            .enumerate()
            .map_init(
                || (Scratch::new(n_docs), Vec::new()),
                |(s, pairs), (c, chunk)| {
                    let mut out = ReferenceScan::default();
                    for (k, text) in chunk.iter().enumerate() {
                        pairs.clear();
                        self.score_one(text, s, pairs);
                        if pairs.is_empty() {
                            continue;
                        }
                        let row = row_offset + (c * CHUNK + k) as u64;
                        out.matches.extend(pairs.iter().map(|&(bench, score)| Match { train: row, bench, score }));
                        // best: highest score, then lowest doc (pairs ascend by doc)
                        let &(bench, score) = pairs.iter().rev().max_by_key(|&&(_, sc)| sc).expect("non-empty");
                        let span = if spans {
                            let view = DocView { low: &s.low, spans: &s.toks.spans, hashes: &s.toks.hashes };
                            self.longest_run(&view, bench as usize)
                                .map(|(p, len)| self.span_in_text(text, &s.toks.spans, p, len))
                        } else {
                            None
                        };
                        out.flagged.push(Flagged { train: row, bench, score, n_matches: pairs.len() as u32, span });
                    }
                    out
                },
            )
            .collect();
        let mut all = ReferenceScan::default();
        for p in parts {
            all.matches.extend(p.matches);
            all.flagged.extend(p.flagged);
        }
        Ok(all)
    }

    /// First pass of the precise method: the distinct gram ids each text hits,
    /// as CSR (`offsets.len() == texts.len() + 1`).
    pub fn precise_hits(&self, texts: &[&str], row_offset: u64) -> Result<(Vec<u64>, Vec<u32>)> {
        check_text_sizes(texts, row_offset)?;
        let parts: Vec<(Vec<u32>, Vec<u32>)> = texts
            .par_chunks(CHUNK)
            .map_init(
                || Scratch::new(0),
                |s, chunk| {
                    let mut lens = Vec::with_capacity(chunk.len());
                    let mut ids = Vec::new();
                    for text in chunk {
                        self.tokenize_into(text, s);
                        s.hits.clear();
                        let view = DocView { low: &s.low, spans: &s.toks.spans, hashes: &s.toks.hashes };
                        self.collect_hits(&view, &mut s.hits);
                        s.hits.sort_unstable();
                        s.hits.dedup();
                        lens.push(s.hits.len() as u32);
                        ids.extend_from_slice(&s.hits);
                    }
                    (lens, ids)
                },
            )
            .collect();
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0u64);
        let mut ids = Vec::new();
        for (lens, part) in parts {
            for l in lens {
                let last = *offsets.last().expect("non-empty");
                offsets.push(last + l as u64);
            }
            ids.extend_from_slice(&part);
        }
        Ok((offsets, ids))
    }

    /// Training document frequency of every gram from precise hits.
    pub fn gram_df(&self, hit_ids: &[u32], df: &mut Vec<u64>) {
        df.resize(self.grams.len(), 0);
        for &g in hit_ids {
            df[g as usize] += 1;
        }
    }

    /// Second pass of the precise method over hits of rows numbered from `row_offset`.
    pub fn precise_matches(
        &self,
        offsets: &[u64],
        hit_ids: &[u32],
        df: &[u64],
        params: PreciseParams,
        row_offset: u64,
    ) -> Vec<PreciseMatch> {
        let n_rows = offsets.len().saturating_sub(1);
        let rows: Vec<usize> = (0..n_rows).collect();
        let n_docs = self.len();
        let is_stop = |g: usize| {
            df.get(g).copied().unwrap_or(0) > params.max_train_df || self.grams[g].post_len as u64 > params.max_bench_df
        };
        // stop-grams of each benchmark doc: left out of its coverage
        let mut doc_stops = vec![0u32; n_docs];
        for g in (0..self.grams.len()).filter(|&g| is_stop(g)) {
            for p in self.postings_of(g as u32) {
                doc_stops[p.doc as usize] += 1;
            }
        }
        let parts: Vec<Vec<PreciseMatch>> = rows
            .par_chunks(CHUNK)
            .map_init(
                || (vec![(0u32, 0u32); n_docs], Vec::<u32>::new()),
                |(shared, touched), chunk| {
                    let mut out = Vec::new();
                    for &r in chunk {
                        let ids = &hit_ids[offsets[r] as usize..offsets[r + 1] as usize];
                        for &g in ids {
                            let stop = is_stop(g as usize);
                            for p in self.postings_of(g) {
                                let sh = &mut shared[p.doc as usize];
                                if *sh == (0, 0) {
                                    touched.push(p.doc);
                                }
                                sh.0 += u32::from(!stop);
                                sh.1 += 1;
                            }
                        }
                        touched.sort_unstable();
                        for &d in touched.iter() {
                            let (specific, all) = shared[d as usize];
                            let total = self.doc_grams[d as usize];
                            let content = total - doc_stops[d as usize];
                            let found = if content > 0 {
                                // coverage of the prompt's own (non-template) n-grams
                                let coverage = specific as f64 / content as f64;
                                (specific > 0 && coverage >= params.min_coverage).then_some((specific, coverage))
                            } else {
                                // a prompt that is all template: only a whole copy counts
                                (all == total).then_some((all, 1.0))
                            };
                            if let Some((n, coverage)) = found {
                                out.push(PreciseMatch { train: row_offset + r as u64, bench: d, shared: n, coverage });
                            }
                            shared[d as usize] = (0, 0);
                        }
                        touched.clear();
                    }
                    out
                },
            )
            .collect();
        parts.concat()
    }

    /// The longest run of consecutive tokens `view` shares with benchmark
    /// doc `doc`: (position in `view`, tokens); the first among equals.
    fn longest_run(&self, view: &DocView<'_>, doc: usize) -> Option<(usize, usize)> {
        let base = self.tok_start[doc];
        let t = self.tok_start[doc + 1] - base;
        let sorted = &self.doc_sorted[base..base + t];
        let same = |p: usize, q: usize| {
            view.hashes[p] == self.tok_hash[base + q] && view.bytes(p) == self.token(base + q)
        };
        let mut best: Option<(usize, usize)> = None;
        for p in 0..view.hashes.len() {
            let h = view.hashes[p];
            let first = sorted.partition_point(|&(x, _)| x < h);
            for &(x, q) in &sorted[first..] {
                if x != h {
                    break;
                }
                let q = q as usize;
                // only from the beginning of a maximal run
                if p > 0 && q > 0 && same(p - 1, q - 1) {
                    continue;
                }
                let mut len = 0;
                while p + len < view.hashes.len() && q + len < t && same(p + len, q + len) {
                    len += 1;
                }
                if len > 0 && best.is_none_or(|(_, l)| len > l) {
                    best = Some((p, len));
                }
            }
        }
        best
    }

    /// Map tokens `p..p + len` of `text` (tokenised into `spans` of its
    /// lower-cased form) back to a byte range of `text`.
    fn span_in_text(&self, text: &str, spans: &[(u32, u32)], p: usize, len: usize) -> Span {
        let (a, b) = (spans[p].0 as usize, spans[p + len - 1].1 as usize);
        if text.is_ascii() {
            // ASCII lower-casing keeps every byte in place
            return Span { start: a, end: b, tokens: len };
        }
        let mut relow = String::new();
        let mut sources = Vec::new();
        self.tables.lower_with_sources(text, &mut relow, &mut sources);
        Span { start: sources[a].0, end: sources[b - 1].1, tokens: len }
    }

    /// The longest run of consecutive tokens `text` shares with benchmark doc
    /// `doc`, located in `text` (original bytes).  `None` when they share no token.
    pub fn longest_span(&self, text: &str, doc: usize) -> Option<Span> {
        let mut low = String::new();
        let mut toks = Tokens::default();
        tokenize(&self.tables, text, &mut low, &mut toks);
        let view = DocView { low: &low, spans: &toks.spans, hashes: &toks.hashes };
        let (p, len) = self.longest_run(&view, doc)?;
        Some(self.span_in_text(text, &toks.spans, p, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(texts: &[&str], method: Method) -> BenchmarkIndex {
        let n = texts.len();
        BenchmarkIndex::build(
            UnicodeTables::builtin(),
            method,
            texts.iter().map(|s| s.to_string()).collect(),
            (0..n).map(|i| format!("b{i}")).collect(),
            vec!["s".to_string(); n],
        )
        .unwrap()
    }

    /// sklearn's dot product, computed the slow and obvious way.
    fn naive(bench: &str, train: &str, lo: usize, hi: usize) -> i64 {
        let t = UnicodeTables::builtin();
        let grams = |s: &str| {
            let toks = crate::tokenize::tokens_as_strings(&t, s);
            let mut m: HashMap<String, i64> = HashMap::new();
            for n in lo..=hi {
                if toks.len() >= n {
                    for w in toks.windows(n) {
                        *m.entry(w.join(" ")).or_default() += 1;
                    }
                }
            }
            m
        };
        let (a, b) = (grams(bench), grams(train));
        a.iter().map(|(g, c)| c * b.get(g).copied().unwrap_or(0)).sum()
    }

    #[test]
    fn scores_equal_naive_dot_product() {
        let bench = [
            "the quick brown fox jumps over the lazy dog again and again",
            "one two three four five six seven eight nine ten",
            "aa bb cc dd ee ff gg aa bb cc dd ee ff gg aa bb cc dd ee ff gg",
            "short text",
        ];
        let train = [
            "I saw the quick brown fox jumps over the lazy dog again today",
            "Count: one two three four five six seven eight nine ten eleven; one two three four five six seven",
            "aa bb cc dd ee ff gg aa bb cc dd ee ff gg",
            "nothing shared here at all, not one thing whatsoever",
            "",
        ];
        let idx = build(&bench, Method::Reference { min_n: 7, max_n: 13 });
        let scan = idx.scan_reference(&train, 0, true).unwrap();
        let m = &scan.matches;
        for (j, t) in train.iter().enumerate() {
            for (i, b) in bench.iter().enumerate() {
                let want = naive(b, t, 7, 13);
                let got = m.iter().find(|x| x.train == j as u64 && x.bench == i as u32).map_or(0, |x| x.score);
                assert_eq!(got, want, "train {j} bench {i}");
            }
        }
        assert!(m.iter().all(|x| x.score > 0));
    }

    #[test]
    fn span_points_at_original_text() {
        let idx = build(&["alpha beta gamma delta epsilon zeta eta theta"], Method::Reference { min_n: 3, max_n: 5 });
        let text = "xx ALPHA Beta GAMMA delta yy";
        let s = idx.longest_span(text, 0).unwrap();
        assert_eq!(&text[s.start..s.end], "ALPHA Beta GAMMA delta");
        assert_eq!(s.tokens, 4);
    }

    #[test]
    fn precise_requires_coverage() {
        let idx = build(
            &["please write a poem about the sea and the sky tonight", "hi there"],
            Method::Precise { n: 4, min_tokens: 2 },
        );
        let texts = ["please write a poem about the sea and the sky tonight my friend", "hi there you", "poem about the sea"];
        let (off, ids) = idx.precise_hits(&texts, 0).unwrap();
        let mut df = Vec::new();
        idx.gram_df(&ids, &mut df);
        let params = PreciseParams { max_train_df: 10, max_bench_df: 10, min_coverage: 0.5 };
        let m = idx.precise_matches(&off, &ids, &df, params, 0);
        let pairs: Vec<(u64, u32)> = m.iter().map(|x| (x.train, x.bench)).collect();
        assert_eq!(pairs, vec![(0, 0), (1, 1)]);
        assert_eq!(m[0].coverage, 1.0);
    }
}
