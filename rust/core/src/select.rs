//! Score-based selection: keep the top `k` (or a fraction) of each group.
//!
//! One pass buckets the rows by group (a counting sort, parallel over row
//! chunks, rows ascending within each group); then each group, in parallel,
//! either partitions its rows around the cut (`select_nth_unstable`, O(n))
//! when only the kept set is wanted, or sorts them when every row's rank is
//! wanted.  Rows are ordered by score (descending), then by the caller's
//! tie-break, then by row number, a total order: the result does not depend
//! on the thread count.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::exec::Ctx;
use crate::rows::StrColumn;

/// How many rows of a group to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quota {
    /// every row
    All,
    /// the best `k` (all of them if the group is smaller)
    K(u64),
    /// the best `floor(num / den * rows with a score)`, in exact integer
    /// arithmetic (a fraction such as 0.29 is passed as 29 / 100, so that
    /// 0.29 of 100 rows is 29, not the 28 that float rounding gives)
    Ratio(u64, u64),
}

impl Quota {
    /// The quota `(kind, a, b)`: `("all", _, _)`, `("k", k, _)` or
    /// `("ratio", num, den)`.
    pub fn from_parts(kind: &str, a: u64, b: u64) -> Result<Self> {
        match kind {
            "all" => Ok(Quota::All),
            "k" => Ok(Quota::K(a)),
            "ratio" => Ok(Quota::Ratio(a, b)),
            _ => Err(CoreError::InvalidArgument(format!(
                "bad quota ({kind:?}, {a}, {b})"
            ))),
        }
    }

    fn take(&self, n: usize) -> usize {
        match *self {
            Quota::All => n,
            Quota::K(k) => (k as usize).min(n),
            Quota::Ratio(num, den) => {
                ((num as u128 * n as u128) / den as u128).min(n as u128) as usize
            }
        }
    }
}

/// Why a row was kept or removed.
pub mod reason {
    pub const KEPT: u8 = 0;
    /// ranked below the group's cut
    pub const BELOW_CUTOFF: u8 = 1;
    /// the score is NaN or null: it cannot be ranked
    pub const MISSING_SCORE: u8 = 2;
    /// the group is null
    pub const MISSING_GROUP: u8 = 3;
}

/// The result of a selection.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// per row: one of [`reason`]
    pub reason: Vec<u8>,
    /// per row: 1-based rank within its group (0: not ranked; only when ranks were asked for)
    pub rank: Vec<u32>,
    /// per group: the score of the last kept row (NaN when none is kept)
    pub cutoff: Vec<f64>,
    /// per group: rows with a score, and rows kept
    pub ranked: Vec<u64>,
    pub kept: Vec<u64>,
}

/// Rows per parallel chunk of the bucketing pass.
const CHUNK: usize = 1 << 16;

/// Select the top rows of every group.
///
/// * `scores`: per row, the score to rank by (NaN: cannot be ranked);
/// * `groups`: per row, a group number below `quotas.len()`, or `u32::MAX` for none;
/// * `tie`: orders rows with equal scores (before row order), e.g. by id;
/// * `ranks`: compute every row's rank (sorts each group) or only the kept set.
pub fn select_top(
    scores: &[f64],
    groups: &[u32],
    quotas: &[Quota],
    tie: Option<&(dyn Fn(u32, u32) -> Ordering + Sync)>,
    ranks: bool,
    ctx: &Ctx,
) -> Result<Selection> {
    let n = scores.len();
    if groups.len() != n {
        return Err(CoreError::InvalidArgument(format!(
            "{n} scores but {} group labels",
            groups.len()
        )));
    }
    if n >= u32::MAX as usize {
        return Err(CoreError::InvalidArgument("more than 2^32 - 1 rows".into()));
    }
    for q in quotas {
        if let Quota::Ratio(num, den) = *q {
            if den == 0 || num > den {
                return Err(CoreError::InvalidArgument(format!(
                    "fractions must be in [0, 1], got {num}/{den}"
                )));
            }
        }
    }
    let n_groups = quotas.len();
    if let Some(&g) = groups
        .iter()
        .find(|&&g| g != u32::MAX && g as usize >= n_groups)
    {
        return Err(CoreError::InvalidArgument(format!(
            "group {g} has no quota ({n_groups} quotas)"
        )));
    }
    let mut reason = vec![reason::BELOW_CUTOFF; n];
    // rows per group (parallel over chunks)
    let chunk_counts: Vec<Vec<u32>> = groups
        .par_chunks(CHUNK)
        .zip(scores.par_chunks(CHUNK))
        .map(|(gs, ss)| {
            let mut c = vec![0u32; n_groups];
            if ctx.stopped() {
                return c;
            }
            for (&g, &s) in gs.iter().zip(ss) {
                if g != u32::MAX && !s.is_nan() {
                    c[g as usize] += 1;
                }
            }
            c
        })
        .collect();
    ctx.check()?;
    let mut group_start = vec![0usize; n_groups + 1];
    for c in &chunk_counts {
        for (g, &k) in c.iter().enumerate() {
            group_start[g + 1] += k as usize;
        }
    }
    for g in 0..n_groups {
        group_start[g + 1] += group_start[g];
    }
    // one pass: rows into their group's range (ascending), reasons for the rest
    let total = group_start[n_groups];
    let mut bucket: Vec<(f64, u32)> = vec![(0.0, 0); total];
    let mut next = group_start[..n_groups].to_vec();
    for (i, (&g, &s)) in groups.iter().zip(scores).enumerate() {
        if g == u32::MAX {
            reason[i] = reason::MISSING_GROUP;
        } else if s.is_nan() {
            reason[i] = reason::MISSING_SCORE;
        } else {
            let at = &mut next[g as usize];
            bucket[*at] = (s, i as u32);
            *at += 1;
        }
    }
    let cmp = |a: &(f64, u32), b: &(f64, u32)| -> Ordering {
        // descending score (scores are not NaN here), then tie-break, then row
        b.0.partial_cmp(&a.0)
            .unwrap_or(Ordering::Equal)
            .then_with(|| tie.map_or(Ordering::Equal, |t| t(a.1, b.1)))
            .then(a.1.cmp(&b.1))
    };
    // split the bucket into one mutable slice per group
    let mut slices: Vec<&mut [(f64, u32)]> = Vec::with_capacity(n_groups);
    let mut rest: &mut [(f64, u32)] = &mut bucket;
    for g in 0..n_groups {
        let (a, b) = rest.split_at_mut(group_start[g + 1] - group_start[g]);
        slices.push(a);
        rest = b;
    }
    let per_group: Vec<(usize, f64)> = slices
        .into_par_iter()
        .enumerate()
        .map(|(g, rows)| {
            if ctx.stopped() {
                return (0, f64::NAN);
            }
            let q = quotas[g].take(rows.len());
            if q == 0 {
                if ranks {
                    rows.par_sort_unstable_by(cmp);
                }
                return (0, f64::NAN);
            }
            if ranks || q == rows.len() {
                rows.par_sort_unstable_by(cmp);
            } else {
                rows.select_nth_unstable_by(q - 1, cmp);
            }
            (q, rows[q - 1].0)
        })
        .collect();
    ctx.check()?;
    let mut rank = if ranks { vec![0u32; n] } else { Vec::new() };
    let mut sel = Selection {
        cutoff: per_group.iter().map(|p| p.1).collect(),
        kept: per_group.iter().map(|p| p.0 as u64).collect(),
        ranked: (0..n_groups)
            .map(|g| (group_start[g + 1] - group_start[g]) as u64)
            .collect(),
        ..Selection::default()
    };
    for g in 0..n_groups {
        let rows = &bucket[group_start[g]..group_start[g + 1]];
        for (k, &(_, row)) in rows.iter().enumerate() {
            if k < per_group[g].0 {
                reason[row as usize] = reason::KEPT;
            }
            if ranks {
                rank[row as usize] = k as u32 + 1;
            }
        }
    }
    sel.reason = reason;
    sel.rank = rank;
    Ok(sel)
}

/// [`select_top`] with equal scores ordered by a string column `tie`
/// (ascending by bytes, nulls last), which must have a row per score.
pub fn select_top_by(
    scores: &[f64],
    groups: &[u32],
    quotas: &[Quota],
    tie: Option<&dyn StrColumn>,
    ranks: bool,
    ctx: &Ctx,
) -> Result<Selection> {
    let Some(col) = tie else {
        return select_top(scores, groups, quotas, None, ranks, ctx);
    };
    if col.len() != scores.len() {
        return Err(CoreError::InvalidArgument(format!(
            "tie_break column has {} rows, scores {}",
            col.len(),
            scores.len()
        )));
    }
    let cmp = |a: u32, b: u32| -> Ordering {
        match (col.get(a as usize), col.get(b as usize)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    };
    select_top(scores, groups, quotas, Some(&cmp), ranks, ctx)
}

/// Dictionary-encode a column of nullable strings: per row the number of
/// its distinct value (in order of first appearance), `u32::MAX` for null,
/// and the distinct values.  Parallel over row ranges, deterministic.
pub fn encode(col: &dyn StrColumn, ctx: &Ctx) -> Result<(Vec<u32>, Vec<String>)> {
    use std::collections::HashMap;
    let n = col.len();
    let ranges: Vec<(usize, usize)> = (0..n)
        .step_by(CHUNK)
        .map(|a| (a, (a + CHUNK).min(n)))
        .collect();
    let parts: Vec<(Vec<u32>, Vec<&str>)> = ranges
        .par_iter()
        .map(|&(a, b)| {
            let mut map: HashMap<&str, u32> = HashMap::new();
            let mut names = Vec::new();
            if ctx.stopped() {
                return (Vec::new(), names);
            }
            let ids = (a..b)
                .map(|i| match col.get(i) {
                    None => u32::MAX,
                    Some(s) => *map.entry(s).or_insert_with(|| {
                        names.push(s);
                        names.len() as u32 - 1
                    }),
                })
                .collect();
            (ids, names)
        })
        .collect();
    ctx.check()?;
    let mut global: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for (ids, local) in parts {
        let remap: Vec<u32> = local
            .iter()
            .map(|&s| {
                *global.entry(s).or_insert_with(|| {
                    names.push(s.to_string());
                    names.len() as u32 - 1
                })
            })
            .collect();
        out.extend(
            ids.into_iter()
                .map(|i| if i == u32::MAX { i } else { remap[i as usize] }),
        );
    }
    Ok((out, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_fraction_per_group_with_ties_and_nan() {
        let scores = [1.0, 5.0, 3.0, f64::NAN, 5.0, 2.0, 9.0, 0.5, 7.0, 7.0];
        let groups = [0, 0, 0, 0, 0, 1, 1, 1, 1, u32::MAX];
        let ctx = Ctx::new();
        let sel = select_top(
            &scores,
            &groups,
            &[Quota::Ratio(1, 2), Quota::K(2)],
            None,
            true,
            &ctx,
        )
        .unwrap();
        use reason::*;
        // group 0 ranks: rows 1 (5.0), 4 (5.0, tie -> row order), 2, 0; half of 4 = 2
        assert_eq!(
            sel.reason,
            vec![
                BELOW_CUTOFF,
                KEPT,
                BELOW_CUTOFF,
                MISSING_SCORE,
                KEPT,
                BELOW_CUTOFF,
                KEPT,
                BELOW_CUTOFF,
                KEPT,
                MISSING_GROUP
            ]
        );
        assert_eq!(sel.rank, vec![4, 1, 3, 0, 2, 3, 1, 4, 2, 0]);
        assert_eq!(sel.cutoff, vec![5.0, 7.0]);
        assert_eq!(sel.kept, vec![2, 2]);
        // without ranks: the same kept set
        let fast = select_top(
            &scores,
            &groups,
            &[Quota::Ratio(1, 2), Quota::K(2)],
            None,
            false,
            &ctx,
        )
        .unwrap();
        assert_eq!(fast.reason, sel.reason);
    }

    #[test]
    fn tie_break_and_bad_arguments() {
        let scores = [1.0, 1.0, 1.0];
        let groups = [0, 0, 0];
        let ids = ["c", "a", "b"];
        let ctx = Ctx::new();
        let tie = |a: u32, b: u32| ids[a as usize].cmp(ids[b as usize]);
        let sel = select_top(&scores, &groups, &[Quota::K(1)], Some(&tie), true, &ctx).unwrap();
        assert_eq!(sel.rank, vec![3, 1, 2]);
        // the same by a column, nulls last
        let col = [Some("c"), None, Some("b")];
        let sel = select_top_by(&scores, &groups, &[Quota::K(1)], Some(&col), true, &ctx).unwrap();
        assert_eq!(sel.rank, vec![2, 3, 1]);
        let short = &col[..2];
        assert!(select_top_by(&scores, &groups, &[Quota::K(1)], Some(&short), true, &ctx).is_err());
        assert!(select_top(&scores, &groups, &[Quota::Ratio(3, 2)], None, false, &ctx).is_err());
        assert_eq!(Quota::Ratio(29, 100).take(100), 29);
        assert!(select_top(&scores, &[0, 1, 0], &[Quota::All], None, false, &ctx).is_err());
        assert!(Quota::from_parts("nope", 1, 1).is_err());
        assert_eq!(
            Quota::from_parts("ratio", 1, 3).unwrap(),
            Quota::Ratio(1, 3)
        );
    }

    #[test]
    fn encode_in_order_of_first_appearance() {
        let v = [Some("b"), Some("a"), None, Some("b")];
        let (ids, names) = encode(&v, &Ctx::new()).unwrap();
        assert_eq!(ids, vec![0, 1, u32::MAX, 0]);
        assert_eq!(names, vec!["b", "a"]);
    }
}
