//! Every long core function stops with `CoreError::Cancelled` once its
//! `Ctx` is cancelled, and runs to the end otherwise.

use prefcurate_core::dedup::{self, Family, Lsh, Norm, Shingle};
use prefcurate_core::rows::{Level, Rows};
use prefcurate_core::select::{self, Quota};
use prefcurate_core::{
    pairid, persist, BenchmarkIndex, CoreError, Ctx, Method, PreciseParams, UnicodeTables,
};

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "row {} says the words {} and {} again",
                i % 97,
                i % 13,
                i % 7
            )
        })
        .collect()
}

fn cancelled() -> Ctx {
    let ctx = Ctx::new();
    ctx.cancel();
    ctx
}

fn stopped<T: std::fmt::Debug>(r: prefcurate_core::Result<T>) -> bool {
    matches!(r, Err(CoreError::Cancelled))
}

#[test]
fn index_build_load_and_scans_stop() {
    let t = UnicodeTables::builtin();
    let bench = texts(300);
    let method = Method::Reference { min_n: 3, max_n: 5 };
    let ids: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let subsets = vec![String::new(); 300];
    let build = |ctx: &Ctx| {
        BenchmarkIndex::build_with(
            t.clone(),
            method,
            bench.clone(),
            ids.clone(),
            subsets.clone(),
            ctx,
        )
    };
    assert!(stopped(build(&cancelled())));
    let idx = build(&Ctx::new()).unwrap();
    let bytes = persist::to_bytes(&idx);
    let path = std::path::Path::new("mem");
    assert!(stopped(persist::from_bytes_with(
        &bytes,
        path,
        t.clone(),
        &cancelled()
    )));
    let train = texts(1000);
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    assert!(stopped(idx.scan(&train, true, &cancelled())));
    let ctx = Ctx::new();
    let all = idx.scan(&train, true, &ctx).unwrap();
    assert_eq!(ctx.progress(), (1000, 1000));
    // one call over all rows equals calls over parts with row offsets
    let first = idx.scan_reference(&train[..300], 0, true).unwrap();
    let rest = idx.scan_reference(&train[300..], 300, true).unwrap();
    let mut parts = first.matches.clone();
    parts.extend(rest.matches);
    assert_eq!(all.matches, parts);
    assert!(stopped(idx.longest_spans(
        &train,
        &[0, 1],
        &[0, 1],
        &cancelled()
    )));
    let precise = BenchmarkIndex::build(
        t,
        Method::Precise {
            n: 4,
            min_tokens: 2,
        },
        bench.clone(),
        ids,
        subsets,
    )
    .unwrap();
    let params = PreciseParams {
        max_train_df: 100,
        max_bench_df: 100,
        min_coverage: 0.5,
    };
    assert!(stopped(precise.scan_precise(&train, params, &cancelled())));
    let ctx = Ctx::new();
    assert!(!precise
        .scan_precise(&train, params, &ctx)
        .unwrap()
        .is_empty());
    assert_eq!(ctx.progress(), (2000, 2000));
}

#[test]
fn dedup_select_and_pair_ids_stop() {
    let t = UnicodeTables::builtin();
    let rows_text = texts(2000);
    let rows = Rows::texts(&rows_text);
    let norm = Norm {
        nfkc: true,
        lowercase: true,
        whitespace: true,
    };
    let lsh = Lsh {
        norm,
        shingle: Shingle::Word(3),
        family: Family::new(
            "fast",
            (0..64).map(|i| 2 * i + 1).collect(),
            (0..64).collect(),
        )
        .unwrap(),
        bands: 8,
        rows: 8,
    };
    let c = cancelled;
    assert!(stopped(dedup::exact(&t, rows, Level::Prompt, norm, &c())));
    assert!(stopped(dedup::near(
        &t,
        rows,
        Level::Prompt,
        &lsh,
        0.8,
        64,
        &[],
        &c()
    )));
    assert!(stopped(dedup::band_keys_of(
        &t,
        rows,
        Level::Prompt,
        &lsh,
        &c()
    )));
    assert!(stopped(dedup::signatures_of(
        &t,
        rows,
        Level::Prompt,
        norm,
        Shingle::Char(5),
        &lsh.family,
        &c()
    )));
    assert!(stopped(dedup::jaccard(
        &t,
        rows,
        Level::Prompt,
        norm,
        Shingle::Word(3),
        &[0, 1],
        &[2, 3],
        &c()
    )));
    let found = dedup::near(&t, rows, Level::Prompt, &lsh, 0.8, 64, &[], &Ctx::new()).unwrap();
    assert!(!found.edges.is_empty());
    let chosen: Vec<Vec<(&str, &str)>> = rows_text
        .iter()
        .map(|s| vec![("user", "q"), ("assistant", s.as_str())])
        .collect();
    let pairs = Rows::pairs(&chosen, &chosen).unwrap();
    assert!(stopped(dedup::degenerate(&t, pairs, norm, &c())));
    assert!(stopped(dedup::exact_two(
        &t,
        pairs,
        Level::Pair,
        Level::PairSwapped,
        norm,
        &c()
    )));
    let source = vec!["s"; chosen.len()];
    assert!(stopped(pairid::pair_ids(&source, &chosen, &chosen, &c())));
    let scores: Vec<f64> = (0..2000).map(|i| (i % 101) as f64).collect();
    let groups = vec![0u32; 2000];
    assert!(stopped(select::select_top(
        &scores,
        &groups,
        &[Quota::K(10)],
        None,
        true,
        &c()
    )));
    assert!(stopped(select::encode(&rows_text, &c())));
}
