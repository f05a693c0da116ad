//! With every token hash and every n-gram key equal, all lookups go through
//! collision chains and byte comparisons: the scores must not change.
//! (Its own test binary, hence its own process: the switch is global.)

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use prefcurate_core::hash::DEGENERATE;
use prefcurate_core::tokenize::tokens_as_strings;
use prefcurate_core::{BenchmarkIndex, Method, UnicodeTables};

fn naive(bench: &str, train: &str, lo: usize, hi: usize) -> i64 {
    let t = UnicodeTables::builtin();
    let grams = |s: &str| {
        let toks = tokens_as_strings(&t, s);
        let mut m: HashMap<String, i64> = HashMap::new();
        for n in lo..=hi {
            for w in toks.windows(n) {
                *m.entry(w.join(" ")).or_default() += 1;
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
fn hash_collisions_do_not_change_scores() {
    let bench = [
        "one two three four five six seven eight nine ten one two three four five six seven",
        "alpha beta gamma delta epsilon zeta eta theta alpha beta gamma delta epsilon zeta eta",
        "Ünïcödé wörds and ΣΟΦΙΑΣ words one two three",
    ];
    let train = [
        "zero one two three four five six seven eight nine ten eleven",
        "x alpha beta gamma delta epsilon zeta eta theta y alpha beta gamma delta epsilon zeta eta",
        "one two three four five six eight seven",
        "ünïcödé WÖRDS and σοφιας words one two",
    ];
    let want: Vec<Vec<i64>> = train
        .iter()
        .map(|t| bench.iter().map(|b| naive(b, t, 3, 6)).collect())
        .collect();
    assert!(want.iter().flatten().filter(|&&w| w > 0).count() >= 4);
    DEGENERATE.store(true, Ordering::Relaxed);
    let n = bench.len();
    let idx = BenchmarkIndex::build(
        UnicodeTables::builtin(),
        Method::Reference { min_n: 3, max_n: 6 },
        bench.iter().map(|s| s.to_string()).collect(),
        (0..n).map(|i| i.to_string()).collect(),
        vec![String::new(); n],
    )
    .unwrap();
    let scan = idx.scan_reference(&train, 0, true).unwrap();
    DEGENERATE.store(false, Ordering::Relaxed);
    for (j, row) in want.iter().enumerate() {
        for (i, &w) in row.iter().enumerate() {
            let got = scan
                .matches
                .iter()
                .find(|m| m.train == j as u64 && m.bench == i as u32)
                .map_or(0, |m| m.score);
            assert_eq!(got, w, "train {j} bench {i}");
        }
    }
}
