//! The benchmark n-gram index and the scan of training texts against it.
//!
//! # Exactness
//!
//! The reference score of a (benchmark `i`, training `j`) pair is sklearn's
//! `CountVectorizer(ngram_range=(lo, hi))` dot product
//! `S[i, j] = sum over n-gram strings g of count_i(g) * count_j(g)`.
//! An n-gram string is its tokens joined by one space; tokens never contain a
//! space, so two n-gram strings are equal exactly when their token sequences
//! are.  The index interns every distinct benchmark n-gram as a *gram* with a
//! posting list `(benchmark doc, count)`.  The scan finds, for each training
//! position and length, the gram equal to the training n-gram there if the
//! benchmark has it, counts `count_j(g)`, and accumulates
//! `count_j(g) * count_i(g)` over the postings: the dot product, exactly.
//!
//! Lookups go through 64-bit hashes, but no hash collision can change a
//! result: every lookup compares the candidate's tokens byte for byte with the
//! training tokens, and distinct n-grams that share a hash are chained in the
//! index and tried in turn.  A collision can only cost a comparison.
//!
//! # Layout
//!
//! The shortest grams (*roots*, length `lo`) are interned when the index is
//! built, with the positions where they occur.  For the reference method,
//! every longer benchmark n-gram extends a root (its first `lo` tokens), so
//! the longer grams of a root form a trie (its *subtree*) keyed by next
//! token.  A subtree is built from the root's occurrences the first time a
//! training text hits that root, under a `OnceLock`: the index stays
//! immutable and shareable, most roots are never hit, and a subtree's
//! content does not depend on which thread builds it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::exec::Ctx;
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
    /// The method named `name`: `"reference"` (every n-gram size in
    /// `ngram_range`) or `"precise"` (size `n`, texts under `min_tokens`
    /// tokens not indexed).
    pub fn from_name(
        name: &str,
        ngram_range: (usize, usize),
        n: usize,
        min_tokens: usize,
    ) -> Result<Self> {
        match name {
            "reference" => Ok(Method::Reference {
                min_n: ngram_range.0,
                max_n: ngram_range.1,
            }),
            "precise" => Ok(Method::Precise { n, min_tokens }),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown method {other:?}: use 'reference' or 'precise'"
            ))),
        }
    }

    /// The method's name (see [`Method::from_name`]).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Reference { .. } => "reference",
            Method::Precise { .. } => "precise",
        }
    }

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

    /// The root length of a document of `t` tokens, if it has roots.
    fn root_len(&self, t: usize) -> Option<usize> {
        match *self {
            Method::Reference { min_n, .. } => (t >= min_n).then_some(min_n),
            Method::Precise { n, min_tokens } => (t >= min_tokens).then_some(n.min(t)),
        }
    }
}

const NONE: u32 = u32::MAX;

/// A doc's (token hash, position) pairs, sorted.
type SortedTokens = Box<[(u64, u32)]>;

/// A distinct shortest n-gram of the benchmark.
#[derive(Debug, Clone, Copy, Default)]
struct Root {
    /// the global number of the first token of one occurrence
    tok: u64,
    len: u32,
    /// next root with the same table key, or `NONE`
    next: u32,
    post_start: u32,
    post_len: u32,
    occ_start: u32,
    occ_len: u32,
}

/// A longer n-gram in a root's subtree.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// global number of the first token of one occurrence
    tok: u64,
    last_hash: u64,
    first_child: u32,
    next_sibling: u32,
    post_start: u32,
    post_len: u32,
}

/// The longer n-grams extending one root: a trie over next tokens.
#[derive(Debug, Default)]
struct Subtree {
    /// first child of the root itself
    first: u32,
    nodes: Vec<Node>,
    postings: Vec<Posting>,
}

/// One benchmark document's share of a gram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// A gram found in a text: a root, or node `local - 1` of the root's subtree.
/// Packed in a `u64` (root in the high half) so that hits sort and count fast.
#[inline]
fn hit(root: u32, local: u32) -> u64 {
    ((root as u64) << 32) | local as u64
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
    /// the doc of each token
    tok_doc: Vec<u32>,
    roots: Vec<Root>,
    /// key -> first root of its chain, one table per shard of the key space
    root_tables: Vec<HashMap<u64, u32, IdentityBuild>>,
    postings: Vec<Posting>,
    /// global first-token numbers of every root's occurrences, in order
    occurrences: Vec<u64>,
    subtrees: Vec<OnceLock<Subtree>>,
    /// root lengths present, ascending (one for the reference method)
    lengths: Vec<usize>,
    /// longest gram (the reference method's `max_n`)
    max_len: usize,
    filter: Vec<u64>,
    filter_shift: u32,
    /// distinct roots per doc
    doc_grams: Vec<u32>,
    /// per doc: (token hash, position) sorted, to find where a training
    /// token occurs in a benchmark doc (built when first needed)
    doc_sorted: Vec<OnceLock<SortedTokens>>,
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
    hits: Vec<u64>,
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
            return Err(CoreError::TextTooLarge {
                row: row_offset + k as u64,
                bytes: t.len(),
            });
        }
    }
    Ok(())
}

/// Group `(key, doc, value)` triples by key (a counting sort; the order within
/// a key is kept): returns per-key `(start, len)` and the values in order.
fn group_by_key<T: Copy + Default>(n_keys: usize, items: &[(u32, T)]) -> (Vec<(u32, u32)>, Vec<T>) {
    let mut starts = vec![0u32; n_keys + 1];
    for &(k, _) in items {
        starts[k as usize + 1] += 1;
    }
    let mut ranges = Vec::with_capacity(n_keys);
    for k in 0..n_keys {
        starts[k + 1] += starts[k];
        ranges.push((starts[k], starts[k + 1] - starts[k]));
    }
    let mut out = vec![T::default(); items.len()];
    for &(k, v) in items {
        let at = &mut starts[k as usize];
        out[*at as usize] = v;
        *at += 1;
    }
    (ranges, out)
}

/// Shards of the root key space, interned in parallel.
const N_SHARDS: usize = 16;

#[inline]
fn shard_of(k: u64) -> usize {
    (k >> (64 - N_SHARDS.trailing_zeros())) as usize
}

/// One shard's roots while the index is built.
#[derive(Default)]
struct Shard {
    table: HashMap<u64, u32, IdentityBuild>,
    roots: Vec<Root>,
    counts: Vec<(u32, Posting)>,
    occ: Vec<(u32, u64)>,
}

/// The root of `roots` (chained from `table`) equal to the `len` tokens of
/// `seq` at `p`, whose key is `k`, verified token by token.
#[inline]
fn find_in(
    idx: &BenchmarkIndex,
    table: &HashMap<u64, u32, IdentityBuild>,
    roots: &[Root],
    k: u64,
    seq: &impl Seq,
    p: usize,
    len: usize,
) -> Option<u32> {
    let mut g = *table.get(&k)?;
    while g != NONE {
        let r = &roots[g as usize];
        if r.len as usize == len && idx.same_tokens(r.tok as usize, seq, p, len) {
            return Some(g);
        }
        g = r.next;
    }
    None
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
        Self::build_with(tables, method, texts, ids, subsets, &Ctx::new())
    }

    /// [`BenchmarkIndex::build`], cancellable through `ctx`.
    pub fn build_with(
        tables: Arc<UnicodeTables>,
        method: Method,
        texts: Vec<String>,
        ids: Vec<String>,
        subsets: Vec<String>,
        ctx: &Ctx,
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
            return Err(CoreError::InvalidArgument(
                "benchmark: more than 2^32 - 1 texts".into(),
            ));
        }
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        check_text_sizes(&refs, 0)?;
        let n_docs = texts.len();
        // tokenise in parallel, a chunk of docs into one set of buffers
        struct Part {
            low: String,
            doc_low: Vec<usize>,
            doc_toks: Vec<usize>,
            spans: Vec<(u32, u32)>,
            hashes: Vec<u64>,
        }
        let parts: Vec<Part> = refs
            .par_chunks(64)
            .map(|chunk| {
                let mut part = Part {
                    low: String::new(),
                    doc_low: Vec::with_capacity(chunk.len()),
                    doc_toks: Vec::with_capacity(chunk.len()),
                    spans: Vec::new(),
                    hashes: Vec::new(),
                };
                if ctx.stopped() {
                    return part;
                }
                let (mut low, mut toks, mut masks) =
                    (String::new(), Tokens::default(), Masks::default());
                for t in chunk {
                    tokenize_with(&tables, t, &mut low, &mut toks, &mut masks);
                    part.doc_low.push(part.low.len());
                    part.doc_toks.push(part.hashes.len());
                    part.low.push_str(&low);
                    part.spans.extend_from_slice(&toks.spans);
                    part.hashes.extend_from_slice(&toks.hashes);
                }
                part
            })
            .collect();
        ctx.check()?;
        let n_toks: usize = parts.iter().map(|p| p.hashes.len()).sum();
        let mut low = String::with_capacity(parts.iter().map(|p| p.low.len()).sum());
        let mut tok_start = Vec::with_capacity(n_docs + 1);
        let mut tok_off = Vec::with_capacity(n_toks);
        let mut tok_len = Vec::with_capacity(n_toks);
        let mut tok_hash = Vec::with_capacity(n_toks);
        let mut tok_doc = Vec::with_capacity(n_toks);
        for part in &parts {
            let base = low.len() as u64;
            let first_doc = tok_start.len();
            for (k, &start) in part.doc_toks.iter().enumerate() {
                tok_start.push(tok_hash.len() + start);
                let end = part
                    .doc_toks
                    .get(k + 1)
                    .copied()
                    .unwrap_or(part.hashes.len());
                tok_doc.extend(std::iter::repeat_n((first_doc + k) as u32, end - start));
                // spans are relative to each doc's lower-cased text
                let doc_base = base + part.doc_low[k] as u64;
                tok_off.extend(
                    part.spans[start..end]
                        .iter()
                        .map(|&(a, _)| doc_base + a as u64),
                );
            }
            low.push_str(&part.low);
            tok_len.extend(part.spans.iter().map(|&(a, b)| b - a));
            tok_hash.extend_from_slice(&part.hashes);
        }
        tok_start.push(tok_hash.len());
        drop(parts);
        let doc_sorted = (0..n_docs).map(|_| OnceLock::new()).collect();

        let max_len = match method {
            Method::Reference { max_n, .. } => max_n,
            Method::Precise { n, .. } => n,
        };
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
            tok_doc,
            roots: Vec::new(),
            root_tables: Vec::new(),
            postings: Vec::new(),
            occurrences: Vec::new(),
            subtrees: Vec::new(),
            lengths: Vec::new(),
            max_len,
            filter: Vec::new(),
            filter_shift: 63,
            doc_grams: vec![0; n_docs],
            doc_sorted,
        };
        idx.intern_roots(ctx)?;
        Ok(idx)
    }

    /// Bytes of global token `t`.
    #[inline]
    fn token(&self, t: usize) -> &[u8] {
        let a = self.tok_off[t] as usize;
        &self.low.as_bytes()[a..a + self.tok_len[t] as usize]
    }

    /// Whether the `len` tokens at global token `q` equal those of `seq` at `p`.
    #[inline]
    fn same_tokens(&self, q: usize, seq: &impl Seq, p: usize, len: usize) -> bool {
        (0..len).all(|k| self.tok_hash[q + k] == seq.hash(p + k))
            && (0..len).all(|k| self.token(q + k) == seq.bytes(p + k))
    }

    /// The root equal to the `len` tokens of `seq` at `p`, whose key is `k`,
    /// verified token by token.
    #[inline]
    fn find(&self, k: u64, seq: &impl Seq, p: usize, len: usize) -> Option<u32> {
        find_in(
            self,
            &self.root_tables[shard_of(k)],
            &self.roots,
            k,
            seq,
            p,
            len,
        )
    }

    #[inline]
    fn maybe_present(&self, k: u64) -> bool {
        let word = self.filter[(k >> self.filter_shift) as usize];
        let mask = (1u64 << ((k >> 20) & 63)) | (1u64 << ((k >> 26) & 63));
        word & mask == mask
    }

    fn intern_roots(&mut self, ctx: &Ctx) -> Result<()> {
        let n_docs = self.texts.len();
        // every root position, in document order: (key, first token, doc, length)
        let doc_ids: Vec<usize> = (0..n_docs).collect();
        let positions: Vec<(u64, u64, u32, u32)> = doc_ids
            .par_chunks(64)
            .flat_map_iter(|docs| {
                let mut out = Vec::new();
                if ctx.stopped() {
                    return out;
                }
                for &d in docs {
                    let base = self.tok_start[d];
                    let t = self.tok_start[d + 1] - base;
                    let Some(lo) = self.method.root_len(t) else {
                        continue;
                    };
                    let drop = pow_b(lo - 1);
                    let h = &self.tok_hash[base..base + t];
                    let mut run = h[..lo].iter().fold(SEED, |r, &x| extend(r, x));
                    out.push((key(run, lo), base as u64, d as u32, lo as u32));
                    for (p, (&o, &i)) in h.iter().zip(&h[lo..]).enumerate() {
                        run = run
                            .wrapping_sub(o.wrapping_mul(drop))
                            .wrapping_mul(B)
                            .wrapping_add(i);
                        out.push((key(run, lo), (base + p + 1) as u64, d as u32, lo as u32));
                    }
                }
                out
            })
            .collect();
        ctx.check()?;
        if positions.len() >= u32::MAX as usize {
            return Err(CoreError::InvalidArgument(
                "benchmark: more than 2^32 - 1 n-gram occurrences".into(),
            ));
        }
        // intern in shards by key, in parallel; within a shard in document
        // order, so ids and postings do not depend on the thread count
        let shards: Vec<Shard> = (0..N_SHARDS)
            .into_par_iter()
            .map(|s| {
                let mut sh = Shard::default();
                if ctx.stopped() {
                    return sh;
                }
                let mut seen: Vec<(u32, u32)> = Vec::new();
                for block in positions.chunks(1 << 16) {
                    if ctx.stopped() {
                        return sh;
                    }
                    for &(k, at, d, lo) in block.iter().filter(|p| shard_of(p.0) == s) {
                        let (at, lo) = (at as usize, lo as usize);
                        let found = find_in(self, &sh.table, &sh.roots, k, &Own(self), at, lo);
                        let g = found.unwrap_or_else(|| {
                            let id = sh.roots.len() as u32;
                            // new roots go to the head of their key's chain
                            let next = sh.table.insert(k, id).unwrap_or(NONE);
                            sh.roots.push(Root {
                                tok: at as u64,
                                len: lo as u32,
                                next,
                                ..Root::default()
                            });
                            seen.push((NONE, 0));
                            id
                        });
                        sh.occ.push((g, at as u64));
                        let (last_doc, slot) = seen[g as usize];
                        if last_doc == d {
                            sh.counts[slot as usize].1.count += 1;
                        } else {
                            seen[g as usize] = (d, sh.counts.len() as u32);
                            sh.counts.push((g, Posting { doc: d, count: 1 }));
                        }
                    }
                }
                sh
            })
            .collect();
        ctx.check()?;
        let n_roots: usize = shards.iter().map(|s| s.roots.len()).sum();
        if n_roots >= NONE as usize - 1 {
            return Err(CoreError::InvalidArgument(
                "benchmark: more than 2^32 - 2 distinct n-grams".into(),
            ));
        }
        let mut counts: Vec<(u32, Posting)> =
            Vec::with_capacity(shards.iter().map(|s| s.counts.len()).sum());
        let mut occ: Vec<(u32, u64)> = Vec::with_capacity(positions.len());
        self.roots = Vec::with_capacity(n_roots);
        self.root_tables = Vec::with_capacity(N_SHARDS);
        for sh in shards {
            let offset = self.roots.len() as u32;
            let remap = |g: u32| if g == NONE { NONE } else { g + offset };
            self.roots.extend(sh.roots.into_iter().map(|r| Root {
                next: remap(r.next),
                ..r
            }));
            let mut table = sh.table;
            table.values_mut().for_each(|g| *g += offset);
            self.root_tables.push(table);
            counts.extend(sh.counts.into_iter().map(|(g, p)| (g + offset, p)));
            occ.extend(sh.occ.into_iter().map(|(g, at)| (g + offset, at)));
        }
        for (_, p) in &counts {
            self.doc_grams[p.doc as usize] += 1;
        }
        let (post_ranges, postings) = group_by_key(n_roots, &counts);
        let (occ_ranges, occurrences) = group_by_key(n_roots, &occ);
        for (r, (&(ps, pl), &(os, ol))) in self
            .roots
            .iter_mut()
            .zip(post_ranges.iter().zip(&occ_ranges))
        {
            (r.post_start, r.post_len, r.occ_start, r.occ_len) = (ps, pl, os, ol);
        }
        self.postings = postings;
        self.occurrences = occurrences;
        let lengths: std::collections::BTreeSet<usize> =
            self.roots.iter().map(|r| r.len as usize).collect();
        self.lengths = lengths.into_iter().collect();
        if self.has_subtrees() {
            self.subtrees = (0..n_roots).map(|_| OnceLock::new()).collect();
        }
        // A blocked Bloom filter over the roots' keys (two bits in one word,
        // ~32 bits per key) keeps the test of a text position in cache.
        let words = (n_roots.max(1) / 2).next_power_of_two().max(64);
        self.filter_shift = 64 - words.trailing_zeros();
        self.filter = vec![0u64; words];
        for table in &self.root_tables {
            for &k in table.keys() {
                self.filter[(k >> self.filter_shift) as usize] |=
                    (1u64 << ((k >> 20) & 63)) | (1u64 << ((k >> 26) & 63));
            }
        }
        Ok(())
    }

    /// Whether grams longer than the roots exist (the reference method with
    /// `max_n > min_n`).
    fn has_subtrees(&self) -> bool {
        matches!(self.method, Method::Reference { min_n, max_n } if max_n > min_n)
    }

    /// The subtree of root `g`, built on first use from its occurrences.
    fn subtree(&self, g: u32) -> &Subtree {
        self.subtrees[g as usize].get_or_init(|| self.build_subtree(g))
    }

    fn build_subtree(&self, g: u32) -> Subtree {
        let root = self.roots[g as usize];
        let lo = root.len as usize;
        let occ =
            &self.occurrences[root.occ_start as usize..(root.occ_start + root.occ_len) as usize];
        let mut st = Subtree {
            first: NONE,
            nodes: Vec::new(),
            postings: Vec::new(),
        };
        // (node, posting) in occurrence order; docs ascend, so counting by
        // "last doc seen" per node is exact
        let mut counts: Vec<(u32, Posting)> = Vec::new();
        let mut seen: Vec<(u32, u32)> = Vec::new();
        for &at in occ {
            let at = at as usize;
            let doc = self.tok_doc[at];
            let doc_end = self.tok_start[doc as usize + 1];
            let mut parent = NONE; // NONE: the root
            for len in lo + 1..=self.max_len {
                let last = at + len - 1;
                if last >= doc_end {
                    break;
                }
                let (h, bytes) = (self.tok_hash[last], self.token(last));
                let mut c = if parent == NONE {
                    st.first
                } else {
                    st.nodes[parent as usize].first_child
                };
                while c != NONE {
                    let n = &st.nodes[c as usize];
                    if n.last_hash == h && self.token(n.tok as usize + len - 1) == bytes {
                        break;
                    }
                    c = n.next_sibling;
                }
                if c == NONE {
                    c = st.nodes.len() as u32;
                    let head = if parent == NONE {
                        &mut st.first
                    } else {
                        &mut st.nodes[parent as usize].first_child
                    };
                    let next_sibling = std::mem::replace(head, c);
                    st.nodes.push(Node {
                        tok: at as u64,
                        last_hash: h,
                        first_child: NONE,
                        next_sibling,
                        post_start: 0,
                        post_len: 0,
                    });
                    seen.push((NONE, 0));
                }
                let (last_doc, slot) = seen[c as usize];
                if last_doc == doc {
                    counts[slot as usize].1.count += 1;
                } else {
                    seen[c as usize] = (doc, counts.len() as u32);
                    counts.push((c, Posting { doc, count: 1 }));
                }
                parent = c;
            }
        }
        let (ranges, postings) = group_by_key(st.nodes.len(), &counts);
        for (n, &(s, l)) in st.nodes.iter_mut().zip(&ranges) {
            (n.post_start, n.post_len) = (s, l);
        }
        st.postings = postings;
        st
    }

    /// The child of `parent` in subtree `st` (`NONE`: the root) whose last
    /// token is token `p + len - 1` of `seq`.  The parent equals the first
    /// `len - 1` tokens of `seq` at `p`, so the child equals all `len`.
    #[inline]
    fn find_child(
        &self,
        st: &Subtree,
        parent: u32,
        seq: &impl Seq,
        p: usize,
        len: usize,
    ) -> Option<u32> {
        let last = p + len - 1;
        let h = seq.hash(last);
        let mut c = if parent == NONE {
            st.first
        } else {
            st.nodes[parent as usize].first_child
        };
        while c != NONE {
            let n = &st.nodes[c as usize];
            if n.last_hash == h && self.token(n.tok as usize + len - 1) == seq.bytes(last) {
                return Some(c);
            }
            c = n.next_sibling;
        }
        None
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
    /// Distinct n-grams of the shortest length (longer ones are interned on demand).
    pub fn n_grams(&self) -> usize {
        self.roots.len()
    }
    /// Tokens of benchmark doc `d`.
    pub fn doc_tokens(&self, d: usize) -> usize {
        self.tok_start[d + 1] - self.tok_start[d]
    }
    /// Distinct shortest n-grams of benchmark doc `d`.
    pub fn doc_gram_count(&self, d: usize) -> u32 {
        self.doc_grams[d]
    }
    /// Approximate heap bytes held (subtrees built so far included).
    pub fn heap_bytes(&self) -> usize {
        let subtrees: usize = self
            .subtrees
            .iter()
            .filter_map(|s| s.get())
            .map(|s| s.nodes.capacity() * std::mem::size_of::<Node>() + s.postings.capacity() * 8)
            .sum();
        self.texts.iter().map(|s| s.capacity()).sum::<usize>()
            + self.low.capacity()
            + self.tok_off.capacity() * 24
            + self.roots.capacity() * std::mem::size_of::<Root>()
            + self
                .root_tables
                .iter()
                .map(|t| t.capacity() * 16)
                .sum::<usize>()
            + self.postings.capacity() * 8
            + self.occurrences.capacity() * 8
            + self.subtrees.capacity() * std::mem::size_of::<OnceLock<Subtree>>()
            + self.filter.capacity() * 8
            + self
                .doc_sorted
                .iter()
                .filter_map(|d| d.get())
                .map(|d| d.len() * 16)
                .sum::<usize>()
            + subtrees
    }

    /// The postings of hit `h` (a root, or a node of its subtree).
    fn postings_of(&self, h: u64) -> &[Posting] {
        let (g, local) = ((h >> 32) as u32, h as u32);
        if local == 0 {
            let r = &self.roots[g as usize];
            &self.postings[r.post_start as usize..(r.post_start + r.post_len) as usize]
        } else {
            let st = self.subtrees[g as usize]
                .get()
                .expect("a hit's subtree is built");
            let n = &st.nodes[local as usize - 1];
            &st.postings[n.post_start as usize..(n.post_start + n.post_len) as usize]
        }
    }

    /// Push onto `hits` every indexed n-gram occurrence of `view`.
    fn collect_hits(&self, view: &DocView<'_>, hits: &mut Vec<u64>) {
        let h = view.hashes;
        let t = h.len();
        let Some(&lo) = self.lengths.first() else {
            return;
        };
        if t < lo {
            return;
        }
        if self.lengths.len() > 1 {
            // the precise method: roots of several lengths, no subtrees
            for p in 0..=(t - lo) {
                let mut run = SEED;
                for len in 1..=self.max_len.min(t - p) {
                    run = extend(run, h[p + len - 1]);
                    if len < lo || self.lengths.binary_search(&len).is_err() {
                        continue;
                    }
                    let k = key(run, len);
                    if self.maybe_present(k) {
                        if let Some(g) = self.find(k, view, p, len) {
                            hits.push(hit(g, 0));
                        }
                    }
                }
            }
            return;
        }
        // Roll the root hash along the text; where a root is found, walk its
        // subtree for the longer n-grams.
        let drop = pow_b(lo - 1);
        let mut run = h[..lo].iter().fold(SEED, |r, &x| extend(r, x));
        if self.maybe_present(key(run, lo)) {
            self.hits_at(view, 0, run, hits);
        }
        for (p, (&out, &inc)) in h.iter().zip(&h[lo..]).enumerate() {
            run = run
                .wrapping_sub(out.wrapping_mul(drop))
                .wrapping_mul(B)
                .wrapping_add(inc);
            if self.maybe_present(key(run, lo)) {
                self.hits_at(view, p + 1, run, hits);
            }
        }
    }

    /// The roots and longer grams at position `p` of `view`, whose root hash is `run`.
    #[inline(never)]
    fn hits_at(&self, view: &DocView<'_>, p: usize, run: u64, hits: &mut Vec<u64>) {
        let lo = self.lengths[0];
        let t = view.hashes.len();
        let Some(g) = self.find(key(run, lo), view, p, lo) else {
            return;
        };
        hits.push(hit(g, 0));
        if !self.has_subtrees() || p + lo >= t {
            return;
        }
        let st = self.subtree(g);
        let mut node = NONE;
        for len in lo + 1..=self.max_len.min(t - p) {
            match self.find_child(st, node, view, p, len) {
                Some(c) => {
                    hits.push(hit(g, c + 1));
                    node = c;
                }
                None => break,
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
        let view = DocView {
            low: &s.low,
            spans: &s.toks.spans,
            hashes: &s.toks.hashes,
        };
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
    pub fn scan_reference(
        &self,
        texts: &[&str],
        row_offset: u64,
        spans: bool,
    ) -> Result<ReferenceScan> {
        self.scan_reference_with(texts, row_offset, spans, &Ctx::new())
    }

    /// The reference scan of all of `texts` (rows numbered from 0), with
    /// progress in rows through `ctx` (see [`BenchmarkIndex::scan_reference`]).
    pub fn scan(&self, texts: &[&str], spans: bool, ctx: &Ctx) -> Result<ReferenceScan> {
        ctx.set_total(texts.len() as u64);
        self.scan_reference_with(texts, 0, spans, ctx)
    }

    /// [`BenchmarkIndex::scan_reference`], cancellable through `ctx`, which
    /// counts the rows done.
    pub fn scan_reference_with(
        &self,
        texts: &[&str],
        row_offset: u64,
        spans: bool,
        ctx: &Ctx,
    ) -> Result<ReferenceScan> {
        check_text_sizes(texts, row_offset)?;
        let n_docs = self.len();
        let parts: Vec<ReferenceScan> = texts
            .par_chunks(CHUNK)
            .enumerate()
            .map_init(
                || (Scratch::new(n_docs), Vec::new()),
                |(s, pairs), (c, chunk)| {
                    let mut out = ReferenceScan::default();
                    if ctx.stopped() {
                        return out;
                    }
                    for (k, text) in chunk.iter().enumerate() {
                        pairs.clear();
                        self.score_one(text, s, pairs);
                        if pairs.is_empty() {
                            continue;
                        }
                        let row = row_offset + (c * CHUNK + k) as u64;
                        out.matches
                            .extend(pairs.iter().map(|&(bench, score)| Match {
                                train: row,
                                bench,
                                score,
                            }));
                        // best: highest score, then lowest doc (pairs ascend by doc)
                        let &(bench, score) = pairs
                            .iter()
                            .rev()
                            .max_by_key(|&&(_, sc)| sc)
                            .expect("non-empty");
                        let span = if spans {
                            let view = DocView {
                                low: &s.low,
                                spans: &s.toks.spans,
                                hashes: &s.toks.hashes,
                            };
                            self.longest_run(&view, bench as usize)
                                .map(|(p, len)| self.span_in_text(text, &s.toks.spans, p, len))
                        } else {
                            None
                        };
                        out.flagged.push(Flagged {
                            train: row,
                            bench,
                            score,
                            n_matches: pairs.len() as u32,
                            span,
                        });
                    }
                    ctx.advance(chunk.len() as u64);
                    out
                },
            )
            .collect();
        ctx.check()?;
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
        self.precise_hits_with(texts, row_offset, &Ctx::new())
    }

    /// [`BenchmarkIndex::precise_hits`], cancellable through `ctx`, which
    /// counts the rows done.
    pub fn precise_hits_with(
        &self,
        texts: &[&str],
        row_offset: u64,
        ctx: &Ctx,
    ) -> Result<(Vec<u64>, Vec<u32>)> {
        if self.has_subtrees() {
            return Err(CoreError::InvalidArgument(
                "precise scan of an index built for the reference method".into(),
            ));
        }
        check_text_sizes(texts, row_offset)?;
        let parts: Vec<(Vec<u32>, Vec<u32>)> = texts
            .par_chunks(CHUNK)
            .map_init(
                || Scratch::new(0),
                |s, chunk| {
                    let mut lens = Vec::with_capacity(chunk.len());
                    let mut ids = Vec::new();
                    if ctx.stopped() {
                        return (lens, ids);
                    }
                    for text in chunk {
                        self.tokenize_into(text, s);
                        s.hits.clear();
                        let view = DocView {
                            low: &s.low,
                            spans: &s.toks.spans,
                            hashes: &s.toks.hashes,
                        };
                        self.collect_hits(&view, &mut s.hits);
                        s.hits.sort_unstable();
                        s.hits.dedup();
                        lens.push(s.hits.len() as u32);
                        ids.extend(s.hits.iter().map(|&h| (h >> 32) as u32));
                    }
                    ctx.advance(chunk.len() as u64);
                    (lens, ids)
                },
            )
            .collect();
        ctx.check()?;
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
        df.resize(self.roots.len(), 0);
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
        self.precise_matches_with(offsets, hit_ids, df, params, row_offset, &Ctx::new())
            .expect("not cancelled")
    }

    /// The precise scan of all of `texts` (rows numbered from 0): both
    /// passes, with progress through `ctx` (two units per row: one per pass).
    pub fn scan_precise(
        &self,
        texts: &[&str],
        params: PreciseParams,
        ctx: &Ctx,
    ) -> Result<Vec<PreciseMatch>> {
        if !(0.0..=1.0).contains(&params.min_coverage) {
            return Err(CoreError::InvalidArgument(format!(
                "min_coverage must be in [0, 1], got {}",
                params.min_coverage
            )));
        }
        ctx.set_total(2 * texts.len() as u64);
        let (offsets, ids) = self.precise_hits_with(texts, 0, ctx)?;
        let mut df = Vec::new();
        self.gram_df(&ids, &mut df);
        self.precise_matches_with(&offsets, &ids, &df, params, 0, ctx)
    }

    /// [`BenchmarkIndex::precise_matches`], cancellable through `ctx`, which
    /// counts the rows done.
    pub fn precise_matches_with(
        &self,
        offsets: &[u64],
        hit_ids: &[u32],
        df: &[u64],
        params: PreciseParams,
        row_offset: u64,
        ctx: &Ctx,
    ) -> Result<Vec<PreciseMatch>> {
        let n_rows = offsets.len().saturating_sub(1);
        let rows: Vec<usize> = (0..n_rows).collect();
        let n_docs = self.len();
        let is_stop = |g: usize| {
            df.get(g).copied().unwrap_or(0) > params.max_train_df
                || self.roots[g].post_len as u64 > params.max_bench_df
        };
        // stop-grams of each benchmark doc: left out of its coverage
        let mut doc_stops = vec![0u32; n_docs];
        for g in (0..self.roots.len()).filter(|&g| is_stop(g)) {
            for p in self.postings_of(hit(g as u32, 0)) {
                doc_stops[p.doc as usize] += 1;
            }
        }
        let parts: Vec<Vec<PreciseMatch>> = rows
            .par_chunks(CHUNK)
            .map_init(
                || (vec![(0u32, 0u32); n_docs], Vec::<u32>::new()),
                |(shared, touched), chunk| {
                    let mut out = Vec::new();
                    if ctx.stopped() {
                        return out;
                    }
                    for &r in chunk {
                        let ids = &hit_ids[offsets[r] as usize..offsets[r + 1] as usize];
                        for &g in ids {
                            let stop = is_stop(g as usize);
                            for p in self.postings_of(hit(g, 0)) {
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
                                (specific > 0 && coverage >= params.min_coverage)
                                    .then_some((specific, coverage))
                            } else {
                                // a prompt that is all template: only a whole copy counts
                                (all == total).then_some((all, 1.0))
                            };
                            if let Some((n, coverage)) = found {
                                out.push(PreciseMatch {
                                    train: row_offset + r as u64,
                                    bench: d,
                                    shared: n,
                                    coverage,
                                });
                            }
                            shared[d as usize] = (0, 0);
                        }
                        touched.clear();
                    }
                    ctx.advance(chunk.len() as u64);
                    out
                },
            )
            .collect();
        ctx.check()?;
        Ok(parts.concat())
    }

    /// The longest run of consecutive tokens `view` shares with benchmark
    /// doc `doc`: (position in `view`, tokens); the first among equals.
    fn longest_run(&self, view: &DocView<'_>, doc: usize) -> Option<(usize, usize)> {
        let base = self.tok_start[doc];
        let t = self.tok_start[doc + 1] - base;
        // built on first use: only docs that a flagged row matches need it
        let sorted = self.doc_sorted[doc].get_or_init(|| {
            let mut v: Vec<(u64, u32)> = self.tok_hash[base..base + t]
                .iter()
                .enumerate()
                .map(|(q, &h)| (h, q as u32))
                .collect();
            v.sort_unstable();
            v.into_boxed_slice()
        });
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
            return Span {
                start: a,
                end: b,
                tokens: len,
            };
        }
        let mut relow = String::new();
        let mut sources = Vec::new();
        self.tables
            .lower_with_sources(text, &mut relow, &mut sources);
        Span {
            start: sources[a].0,
            end: sources[b - 1].1,
            tokens: len,
        }
    }

    /// For each `k`: [`BenchmarkIndex::longest_span`] of `texts[rows[k]]`
    /// and benchmark doc `docs[k]`, in parallel.
    pub fn longest_spans(
        &self,
        texts: &[&str],
        rows: &[u64],
        docs: &[u32],
        ctx: &Ctx,
    ) -> Result<Vec<Option<Span>>> {
        if rows.len() != docs.len() {
            return Err(CoreError::InvalidArgument(
                "rows and docs must have the same length".into(),
            ));
        }
        for (&r, &d) in rows.iter().zip(docs) {
            if r as usize >= texts.len() || d as usize >= self.len() {
                return Err(CoreError::InvalidArgument(format!(
                    "row {r} / benchmark text {d} out of range"
                )));
            }
        }
        let spans = rows
            .par_iter()
            .zip(docs.par_iter())
            .map(|(&r, &d)| {
                if ctx.stopped() {
                    return None;
                }
                self.longest_span(texts[r as usize], d as usize)
            })
            .collect();
        ctx.check()?;
        Ok(spans)
    }

    /// The longest run of consecutive tokens `text` shares with benchmark doc
    /// `doc`, located in `text` (original bytes).  `None` when they share no token.
    pub fn longest_span(&self, text: &str, doc: usize) -> Option<Span> {
        let mut low = String::new();
        let mut toks = Tokens::default();
        tokenize(&self.tables, text, &mut low, &mut toks);
        let view = DocView {
            low: &low,
            spans: &toks.spans,
            hashes: &toks.hashes,
        };
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
        a.iter()
            .map(|(g, c)| c * b.get(g).copied().unwrap_or(0))
            .sum()
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
        let idx = build(
            &bench,
            Method::Reference {
                min_n: 7,
                max_n: 13,
            },
        );
        let scan = idx.scan_reference(&train, 0, true).unwrap();
        let m = &scan.matches;
        for (j, t) in train.iter().enumerate() {
            for (i, b) in bench.iter().enumerate() {
                let want = naive(b, t, 7, 13);
                let got = m
                    .iter()
                    .find(|x| x.train == j as u64 && x.bench == i as u32)
                    .map_or(0, |x| x.score);
                assert_eq!(got, want, "train {j} bench {i}");
            }
        }
        assert!(m.iter().all(|x| x.score > 0));
    }

    #[test]
    fn span_points_at_original_text() {
        let idx = build(
            &["alpha beta gamma delta epsilon zeta eta theta"],
            Method::Reference { min_n: 3, max_n: 5 },
        );
        let text = "xx ALPHA Beta GAMMA delta yy";
        let s = idx.longest_span(text, 0).unwrap();
        assert_eq!(&text[s.start..s.end], "ALPHA Beta GAMMA delta");
        assert_eq!(s.tokens, 4);
    }

    #[test]
    fn precise_requires_coverage() {
        let idx = build(
            &[
                "please write a poem about the sea and the sky tonight",
                "hi there",
            ],
            Method::Precise {
                n: 4,
                min_tokens: 2,
            },
        );
        let texts = [
            "please write a poem about the sea and the sky tonight my friend",
            "hi there you",
            "poem about the sea",
        ];
        let (off, ids) = idx.precise_hits(&texts, 0).unwrap();
        let mut df = Vec::new();
        idx.gram_df(&ids, &mut df);
        let params = PreciseParams {
            max_train_df: 10,
            max_bench_df: 10,
            min_coverage: 0.5,
        };
        let m = idx.precise_matches(&off, &ids, &df, params, 0);
        let pairs: Vec<(u64, u32)> = m.iter().map(|x| (x.train, x.bench)).collect();
        assert_eq!(pairs, vec![(0, 0), (1, 1)]);
        assert_eq!(m[0].coverage, 1.0);
    }
}
