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

use std::cmp::Ordering;

use rayon::prelude::*;
use unicode_normalization::UnicodeNormalization;

use crate::error::{CoreError, Result};
use crate::hash::{fold_mul, hash128, hash_bytes};

use crate::tokenize::{tokenize_with, Masks, Tokens};
use crate::unicode::UnicodeTables;

/// Reads the parts of row `i` into the vector (cleared by the caller).
pub type PartsFn<'a> = dyn Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a;

/// Normalisation applied before keys and shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Norm {
    pub nfkc: bool,
    pub lowercase: bool,
    pub whitespace: bool,
}

/// Append the normalised `text` to `out`.
pub fn normalize_into(
    tables: &UnicodeTables,
    norm: Norm,
    text: &str,
    out: &mut String,
    tmp: &mut String,
) {
    let src: &str = if norm.nfkc && !text.is_ascii() {
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
) -> Result<Vec<u32>> {
    if n >= u32::MAX as usize {
        return Err(CoreError::InvalidArgument("more than 2^32 - 1 rows".into()));
    }
    let mut keys: Vec<(u128, u32)> = vec![(0, 0); n];
    keys.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dst)| {
        let (mut p, mut key, mut tmp) = (Vec::new(), String::new(), String::new());
        for (k, slot) in dst.iter_mut().enumerate() {
            let i = c * CHUNK + k;
            p.clear();
            parts(i, &mut p);
            key_into(tables, norm, &p, &mut key, &mut tmp);
            *slot = (hash128(key.as_bytes()), i as u32);
        }
    });
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
) -> Vec<bool> {
    let rows: Vec<usize> = (0..n).collect();
    rows.par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            let (mut ka, mut kb, mut tmp) = (String::new(), String::new(), String::new());
            chunk
                .iter()
                .map(|&i| {
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
        .collect()
}

/// How rows are cut into shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shingle {
    /// `n` consecutive word tokens (the reference tokeniser's tokens of the
    /// normalised text, a role marker token before each marked part)
    Word(usize),
    /// `n` consecutive characters of the normalised key
    Char(usize),
}

/// The shingles of one row, as strings (sorted, distinct) and as 64-bit
/// hashes for MinHash.
struct Shingler<'t> {
    tables: &'t UnicodeTables,
    norm: Norm,
    kind: Shingle,
    key: String,
    tmp: String,
    low: String,
    toks: Tokens,
    masks: Masks,
    words: Vec<Vec<u8>>,
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
            words: Vec::new(),
        }
    }

    /// Fill `out` with the row's shingle strings (unsorted, may repeat).
    fn strings(&mut self, parts: &[(&str, &str)], out: &mut Vec<Vec<u8>>) {
        out.clear();
        match self.kind {
            Shingle::Word(n) => {
                self.words.clear();
                for (marker, text) in parts {
                    if !marker.is_empty() {
                        let mut m = vec![0x01];
                        m.extend_from_slice(marker.as_bytes());
                        self.words.push(m);
                    }
                    self.key.clear();
                    normalize_into(self.tables, self.norm, text, &mut self.key, &mut self.tmp);
                    tokenize_with(
                        self.tables,
                        &self.key,
                        &mut self.low,
                        &mut self.toks,
                        &mut self.masks,
                    );
                    for &(a, b) in &self.toks.spans {
                        self.words
                            .push(self.low.as_bytes()[a as usize..b as usize].to_vec());
                    }
                }
                if self.words.is_empty() {
                    return;
                }
                let n = n.min(self.words.len());
                for w in self.words.windows(n) {
                    out.push(w.join(&b' '));
                }
            }
            Shingle::Char(n) => {
                key_into(self.tables, self.norm, parts, &mut self.key, &mut self.tmp);
                let idx: Vec<usize> = self
                    .key
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([self.key.len()])
                    .collect();
                let chars = idx.len() - 1;
                if chars == 0 {
                    return;
                }
                let n = n.min(chars);
                for s in 0..=(chars - n) {
                    out.push(self.key.as_bytes()[idx[s]..idx[s + n]].to_vec());
                }
            }
        }
    }
}

/// The MinHash permutations: datasketch's "affine32" scheme,
/// `h -> a * fmix32(h) + b (mod 2^32)` with odd `a` (a bijection on 32 bits),
/// over a 32-bit hash `h` of each shingle.
#[derive(Debug, Clone)]
pub enum Family {
    /// `h` = a fast 64-bit hash of the shingle, folded to 32 bits
    Fast { a: Vec<u32>, b: Vec<u32> },
    /// `h` = the first 4 bytes of the shingle's SHA-1 (datasketch's
    /// `sha1_hash32`): with datasketch's `a`, `b` for a seed, the signatures
    /// are identical to `datasketch.MinHash(num_perm, seed)`'s
    Datasketch { a: Vec<u32>, b: Vec<u32> },
}

impl Family {
    pub fn num_perm(&self) -> usize {
        match self {
            Family::Fast { a, .. } | Family::Datasketch { a, .. } => a.len(),
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

/// The MinHash signature of a set of shingle strings (`u32::MAX` everywhere
/// when it is empty, as datasketch).
pub fn signature(family: &Family, shingles: &[Vec<u8>], sig: &mut Vec<u32>) {
    sig.clear();
    sig.resize(family.num_perm(), u32::MAX);
    let (a, b) = match family {
        Family::Fast { a, b } | Family::Datasketch { a, b } => (a, b),
    };
    for s in shingles {
        let h = match family {
            Family::Fast { .. } => {
                let x = hash_bytes(s);
                (x ^ (x >> 32)) as u32
            }
            Family::Datasketch { .. } => {
                use sha1::{Digest, Sha1};
                let d = Sha1::digest(s);
                u32::from_le_bytes([d[0], d[1], d[2], d[3]])
            }
        };
        let h = fmix32(h);
        for ((m, &ai), &bi) in sig.iter_mut().zip(a).zip(b) {
            *m = (*m).min(ai.wrapping_mul(h).wrapping_add(bi));
        }
    }
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

/// Signatures of every row (`num_perm` per row, row-major).
pub fn signatures(
    tables: &UnicodeTables,
    norm: Norm,
    kind: Shingle,
    family: &Family,
    n: usize,
    parts: &PartsFn<'_>,
) -> Vec<u32> {
    let rows: Vec<usize> = (0..n).collect();
    rows.par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let mut sh = Shingler::new(tables, norm, kind);
            let (mut p, mut s, mut sig) = (Vec::new(), Vec::new(), Vec::new());
            let mut out = Vec::with_capacity(chunk.len() * family.num_perm());
            for &i in chunk {
                p.clear();
                parts(i, &mut p);
                sh.strings(&p, &mut s);
                signature(family, &s, &mut sig);
                out.extend_from_slice(&sig);
            }
            out
        })
        .collect()
}

/// LSH band keys of every row, straight from its shingles: the signatures
/// are made chunk by chunk and never held for all rows (memory: `bands`
/// keys of 8 bytes per row).
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
) -> Result<Vec<u64>> {
    let num_perm = family.num_perm();
    band_keys(&[], num_perm, bands, rows)?; // checks the banding
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(CHUNK)
        .map(|a| (a, (a + CHUNK).min(n)))
        .collect();
    let parts_out: Vec<Vec<u64>> = chunks
        .par_iter()
        .map(|&(a, b)| {
            let mut sh = Shingler::new(tables, norm, kind);
            let (mut p, mut s, mut sig) = (Vec::new(), Vec::new(), Vec::new());
            let mut sigs = Vec::with_capacity((b - a) * num_perm);
            for i in a..b {
                p.clear();
                parts(i, &mut p);
                sh.strings(&p, &mut s);
                signature(family, &s, &mut sig);
                sigs.extend_from_slice(&sig);
            }
            band_keys(&sigs, num_perm, bands, rows).expect("banding checked")
        })
        .collect();
    Ok(parts_out.concat())
}

/// LSH band keys: `bands` keys per row from its signature (`rows` values
/// each); rows without shingles (an all-`u32::MAX` signature) get none.
pub fn band_keys(sigs: &[u32], num_perm: usize, bands: usize, rows: usize) -> Result<Vec<u64>> {
    if bands == 0 || rows == 0 || bands * rows > num_perm {
        return Err(CoreError::InvalidArgument(format!(
            "LSH needs bands * rows <= num_perm, got {bands} * {rows} > {num_perm}"
        )));
    }
    Ok(sigs
        .par_chunks(num_perm)
        .flat_map_iter(|sig| {
            let empty = sig.iter().all(|&v| v == u32::MAX);
            (0..bands).map(move |b| {
                if empty {
                    return u64::MAX;
                }
                let mut h = (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
                for &v in &sig[b * rows..(b + 1) * rows] {
                    h = fold_mul(h ^ v as u64, 0xa076_1d64_78bd_642f);
                }
                // u64::MAX marks "no key"
                h.min(u64::MAX - 1)
            })
        })
        .collect())
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
) -> Vec<(u32, u32)> {
    let n = keys.len() / bands;
    let per_band: Vec<Vec<(u32, u32)>> = (0..bands)
        .into_par_iter()
        .map(|b| {
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
    let mut all: Vec<(u32, u32)> = per_band.into_iter().flatten().collect();
    all.par_sort_unstable();
    all.dedup();
    all
}

/// Exact Jaccard similarity of two sorted, distinct string sets.
fn jaccard_sorted(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
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
) -> Vec<f64> {
    // runs of pairs with the same first row, in parallel
    let runs: Vec<&[(u32, u32)]> = pairs.chunk_by(|a, b| a.0 == b.0).collect();
    fn sets<'a>(
        sh: &mut Shingler<'_>,
        p: &mut Vec<(&'a str, &'a str)>,
        row: u32,
        f: &PartsFn<'a>,
    ) -> Vec<Vec<u8>> {
        p.clear();
        f(row as usize, p);
        let mut s = Vec::new();
        sh.strings(p, &mut s);
        s.sort_unstable();
        s.dedup();
        s
    }
    runs.par_iter()
        .map_init(
            || Shingler::new(tables, norm, kind),
            |sh, run| {
                let mut p = Vec::new();
                let a = sets(sh, &mut p, run[0].0, parts);
                run.iter()
                    .map(|&(_, j)| {
                        let b = sets(sh, &mut p, j, parts_j);
                        jaccard_sorted(&a, &b)
                    })
                    .collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect()
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
    fn exact_groups_verify_and_name_by_first_row() {
        let rows = [
            "Hello  World",
            "hello world",
            "other",
            "HELLO WORLD",
            "other ",
        ];
        let f = |i: usize, p: &mut Vec<(&str, &str)>| p.push(("", rows[i]));
        let g = exact_groups(&tables(), NORM, rows.len(), &f).unwrap();
        assert_eq!(g, vec![0, 0, 2, 0, 2]);
        let strict = Norm {
            nfkc: false,
            lowercase: false,
            whitespace: false,
        };
        assert_eq!(
            exact_groups(&tables(), strict, rows.len(), &f).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn roles_matter() {
        let f = |i: usize, p: &mut Vec<(&str, &str)>| {
            p.push((if i == 0 { "user" } else { "assistant" }, "same words"))
        };
        assert_eq!(exact_groups(&tables(), NORM, 2, &f).unwrap(), vec![0, 1]);
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
        let j = jaccard_pairs(&t, NORM, Shingle::Word(2), &[(0, 1), (0, 2)], &f, &f);
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
        let sigs = signatures(&t, NORM, Shingle::Word(3), &fam, rows.len(), &f);
        let keys = band_keys(&sigs, 16, 4, 4).unwrap();
        let c = candidates(&keys, 4, 64, &|_, _| true);
        assert_eq!(c, vec![(0, 1)]);
        assert_eq!(clusters(4, &c), vec![0, 0, 2, 3]);
    }
}
