//! Deduplication of [`Rows`] at a [`Level`]: one function per operation,
//! each checking its rows and arguments, then running the kernels of
//! [`crate::dedup`] (cancellable through its [`Ctx`]).

use super::{
    candidates, clusters, exact_groups, jaccard_pairs, row_band_keys, same_parts, signatures,
    Family, Norm, Shingle,
};
use crate::error::{CoreError, Result};
use crate::exec::Ctx;
use crate::rows::{Level, Rows};
use crate::unicode::UnicodeTables;

/// MinHash + LSH settings of near-duplicate detection.
#[derive(Debug, Clone)]
pub struct Lsh {
    pub norm: Norm,
    pub shingle: Shingle,
    pub family: Family,
    /// bands of `rows` signature values each (`bands * rows <= num_perm`)
    pub bands: usize,
    pub rows: usize,
}

/// The rows, which must be pairs (for operations on both answers).
fn need_pairs(rows: Rows<'_>) -> Result<()> {
    if rows.is_pairs() {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument(
            "give chosen and rejected (this operation compares pairs)".into(),
        ))
    }
}

/// Exact groups: per row the first row with identical normalised parts at `level`.
pub fn exact(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    norm: Norm,
    ctx: &Ctx,
) -> Result<Vec<u32>> {
    rows.check(ctx)?;
    exact_groups(tables, norm, rows.len(), &rows.reader(level, 0), ctx)
}

/// Exact groups over two keys of every pair: rows `0..n` at `level`, rows
/// `n..2n` (row `i - n`) at `other` (e.g. [`Level::PairSwapped`], to find
/// contradictory pairs).
pub fn exact_two(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    other: Level,
    norm: Norm,
    ctx: &Ctx,
) -> Result<Vec<u32>> {
    need_pairs(rows)?;
    rows.check(ctx)?;
    let n = rows.len();
    let both: &super::PartsFn<'_> = &|i, out| {
        if i < n {
            rows.parts(i, level, out)
        } else {
            rows.parts(i - n, other, out)
        }
    };
    exact_groups(tables, norm, 2 * n, both, ctx)
}

/// Per pair: whether the chosen and rejected answers are the same text once normalised.
pub fn degenerate(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    norm: Norm,
    ctx: &Ctx,
) -> Result<Vec<bool>> {
    need_pairs(rows)?;
    rows.check(ctx)?;
    let (a, b) = (
        rows.reader(Level::ChosenAnswer, 0),
        rows.reader(Level::RejectedAnswer, 0),
    );
    same_parts(tables, norm, rows.len(), &a, &b, ctx)
}

/// LSH band keys of every row (`lsh.bands` per row, `u64::MAX` for a row
/// without shingles) and per row whether it is shorter than one shingle.
pub fn band_keys_of(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    lsh: &Lsh,
    ctx: &Ctx,
) -> Result<(Vec<u64>, Vec<bool>)> {
    rows.check(ctx)?;
    row_band_keys(
        tables,
        lsh.norm,
        lsh.shingle,
        &lsh.family,
        rows.len(),
        &rows.reader(level, 0),
        lsh.bands,
        lsh.rows,
        ctx,
    )
}

/// MinHash signatures of every row (`num_perm` per row, row-major).
pub fn signatures_of(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    norm: Norm,
    shingle: Shingle,
    family: &Family,
    ctx: &Ctx,
) -> Result<Vec<u32>> {
    rows.check(ctx)?;
    signatures(
        tables,
        norm,
        shingle,
        family,
        rows.len(),
        &rows.reader(level, 0),
        ctx,
    )
}

/// Exact Jaccard similarity of the shingle sets of row pairs `(i[k], j[k])`.
#[allow(clippy::too_many_arguments)]
pub fn jaccard(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    norm: Norm,
    shingle: Shingle,
    i: &[u32],
    j: &[u32],
    ctx: &Ctx,
) -> Result<Vec<f64>> {
    if i.len() != j.len() || i.iter().chain(j).any(|&x| x as usize >= rows.len()) {
        return Err(CoreError::InvalidArgument(
            "pair indices out of range".into(),
        ));
    }
    rows.check(ctx)?;
    // jaccard_pairs wants pairs grouped by first row: sort, then restore order
    let mut order: Vec<usize> = (0..i.len()).collect();
    order.sort_by_key(|&k| (i[k], j[k]));
    let pairs: Vec<(u32, u32)> = order.iter().map(|&k| (i[k], j[k])).collect();
    let f = rows.reader(level, 0);
    let sims = jaccard_pairs(tables, norm, shingle, &pairs, &f, &f, ctx)?;
    let mut out = vec![0.0; i.len()];
    for (pos, &k) in order.iter().enumerate() {
        out[k] = sims[pos];
    }
    Ok(out)
}

/// Union-find clusters of `n` rows over the links `(i[k], j[k])`: per row,
/// the smallest row of its cluster.
pub fn union_clusters(n: usize, i: &[u32], j: &[u32]) -> Result<Vec<u32>> {
    if i.len() != j.len() || i.iter().chain(j).any(|&x| x as usize >= n) {
        return Err(CoreError::InvalidArgument(
            "edge indices out of range".into(),
        ));
    }
    let edges: Vec<(u32, u32)> = i.iter().copied().zip(j.iter().copied()).collect();
    Ok(clusters(n, &edges))
}

/// Near-duplicate links found by [`near`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NearDuplicates {
    /// verified links `(i, j)`, `i < j`, ascending
    pub edges: Vec<(u32, u32)>,
    /// the Jaccard similarity of each link (at least the threshold)
    pub jaccard: Vec<f64>,
    /// pairs LSH proposed
    pub candidates: usize,
    /// rows (after the prefix) without any shingle
    pub no_shingles: usize,
    /// rows (after the prefix) shorter than one shingle
    pub short: usize,
}

impl NearDuplicates {
    /// Union-find clusters of `n` rows over the links: per row, the
    /// smallest row of its cluster.
    pub fn clusters(&self, n: usize) -> Vec<u32> {
        clusters(n, &self.edges)
    }
}

/// Near-duplicates: band keys of every row, candidate pairs sharing a band
/// key (buckets over `max_bucket` rows are chained, see [`candidates`]),
/// each verified by the exact Jaccard similarity of the two rows' shingle
/// sets against `threshold`.
///
/// The first `prefix_keys.len() / bands` rows already have their band keys
/// (`prefix_keys`, from a saved index): their signatures are not made again
/// and pairs among them are not proposed.
#[allow(clippy::too_many_arguments)]
pub fn near(
    tables: &UnicodeTables,
    rows: Rows<'_>,
    level: Level,
    lsh: &Lsh,
    threshold: f64,
    max_bucket: usize,
    prefix_keys: &[u64],
    ctx: &Ctx,
) -> Result<NearDuplicates> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CoreError::InvalidArgument(format!(
            "threshold must be in [0, 1], got {threshold}"
        )));
    }
    let bands = lsh.bands;
    super::band_keys(&[], lsh.family.num_perm(), bands, lsh.rows)?; // checks the banding
    let n = rows.len();
    if prefix_keys.len() % bands != 0 || prefix_keys.len() / bands > n {
        return Err(CoreError::InvalidArgument(
            "prefix_keys must hold `bands` keys for each of the first rows".into(),
        ));
    }
    rows.check(ctx)?;
    let n_prefix = prefix_keys.len() / bands;
    let (new_keys, short) = row_band_keys(
        tables,
        lsh.norm,
        lsh.shingle,
        &lsh.family,
        n - n_prefix,
        &rows.reader(level, n_prefix),
        bands,
        lsh.rows,
        ctx,
    )?;
    let n_short = short.iter().filter(|&&s| s).count();
    let n_none = new_keys.chunks(bands).filter(|k| k[0] == u64::MAX).count();
    let mut keys = Vec::with_capacity(prefix_keys.len() + new_keys.len());
    keys.extend_from_slice(prefix_keys);
    keys.extend(new_keys);
    let np = n_prefix as u32;
    let cand = candidates(&keys, bands, max_bucket, &|x, y| x >= np || y >= np, ctx)?;
    drop(keys);
    let f = rows.reader(level, 0);
    let sims = jaccard_pairs(tables, lsh.norm, lsh.shingle, &cand, &f, &f, ctx)?;
    let mut out = NearDuplicates {
        candidates: cand.len(),
        no_shingles: n_none,
        short: n_short,
        ..NearDuplicates::default()
    };
    for (&p, &s) in cand.iter().zip(&sims) {
        if s >= threshold {
            out.edges.push(p);
            out.jaccard.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORM: Norm = Norm {
        nfkc: true,
        lowercase: true,
        whitespace: true,
    };

    fn lsh() -> Lsh {
        Lsh {
            norm: NORM,
            shingle: Shingle::Word(3),
            family: Family::new(
                "fast",
                (0..32).map(|i| 2 * i + 1).collect(),
                (0..32).collect(),
            )
            .unwrap(),
            bands: 8,
            rows: 4,
        }
    }

    #[test]
    fn near_links_verified_copies_and_clusters_them() {
        let t = UnicodeTables::builtin();
        let texts = [
            "the quick brown fox jumps over the lazy dog today",
            "nothing in common with the others at all here",
            "The quick  brown fox jumps over the lazy dog today",
            "",
            "the quick brown fox jumps over the lazy dog today",
        ];
        let rows = Rows::texts(&texts);
        let ctx = Ctx::new();
        let found = near(&t, rows, Level::Prompt, &lsh(), 0.8, 64, &[], &ctx).unwrap();
        assert_eq!(found.edges, vec![(0, 2), (0, 4), (2, 4)]);
        assert!(found.jaccard.iter().all(|&j| j == 1.0));
        assert_eq!(found.no_shingles, 1);
        assert_eq!(found.clusters(5), vec![0, 1, 0, 3, 0]);
        assert_eq!(
            union_clusters(5, &[2, 0], &[4, 2]).unwrap(),
            vec![0, 1, 0, 3, 0]
        );
        assert!(union_clusters(5, &[5], &[0]).is_err());
        // with the first three rows' keys given, pairs among them are not proposed
        let (keys, _) = band_keys_of(&t, rows, Level::Prompt, &lsh(), &ctx).unwrap();
        let with_prefix = near(
            &t,
            rows,
            Level::Prompt,
            &lsh(),
            0.8,
            64,
            &keys[..3 * 8],
            &ctx,
        )
        .unwrap();
        assert_eq!(with_prefix.edges, vec![(0, 4), (2, 4)]);
        assert!(near(&t, rows, Level::Prompt, &lsh(), 1.5, 64, &[], &ctx).is_err());
        assert!(near(&t, rows, Level::Prompt, &lsh(), 0.5, 64, &keys[..5], &ctx).is_err());
        // the Jaccard of given pairs, in the order given
        let j = jaccard(
            &t,
            rows,
            Level::Prompt,
            NORM,
            Shingle::Word(3),
            &[2, 0],
            &[4, 1],
            &ctx,
        )
        .unwrap();
        assert_eq!(j, vec![1.0, 0.0]);
        assert!(jaccard(
            &t,
            rows,
            Level::Prompt,
            NORM,
            Shingle::Word(3),
            &[9],
            &[0],
            &ctx
        )
        .is_err());
    }

    #[test]
    fn pairs_exact_swapped_and_degenerate() {
        let t = UnicodeTables::builtin();
        let q = ("user", "Question?");
        let chosen = vec![
            vec![q, ("assistant", "A")],
            vec![q, ("assistant", "B")],
            vec![q, ("assistant", "same")],
        ];
        let rejected = vec![
            vec![q, ("assistant", "B")],
            vec![q, ("assistant", "A")],
            vec![q, ("assistant", "SAME")],
        ];
        let rows = Rows::pairs(&chosen, &rejected).unwrap();
        let ctx = Ctx::new();
        assert_eq!(
            exact(&t, rows, Level::Prompt, NORM, &ctx).unwrap(),
            vec![0, 0, 0]
        );
        assert_eq!(
            exact(&t, rows, Level::Pair, NORM, &ctx).unwrap(),
            vec![0, 1, 2]
        );
        // row 1 swapped is row 0
        let g = exact_two(&t, rows, Level::Pair, Level::PairSwapped, NORM, &ctx).unwrap();
        assert_eq!(g[4], 0);
        assert_eq!(
            degenerate(&t, rows, NORM, &ctx).unwrap(),
            vec![false, false, true]
        );
        let texts = ["a"];
        assert!(degenerate(&t, Rows::texts(&texts), NORM, &ctx).is_err());
        let stop = Ctx::new();
        stop.cancel();
        assert!(matches!(
            exact(&t, rows, Level::Pair, NORM, &stop),
            Err(CoreError::Cancelled)
        ));
    }
}
