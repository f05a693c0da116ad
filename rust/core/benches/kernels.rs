//! Criterion benchmarks of the hot kernels: `cargo bench -p prefcurate-core`
//! (one thread each, so that the numbers compare across machines and runs;
//! `cargo bench -p prefcurate-core -- minhash` runs one group).
//!
//! * `tokenize`: the reference tokeniser with token hashes (ASCII and
//!   non-ASCII text), per byte;
//! * `minhash`: a signature update from shingle hashes, per shingle;
//! * `band_keys`: LSH band keys from signatures, and from texts (shingles,
//!   signature and keys), per row;
//! * `select_top`: top-k per group, with and without every row's rank, per row.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prefcurate_core::dedup::{
    band_keys, row_band_keys, signature_of_hashes, Family, Norm, Shingle,
};
use prefcurate_core::rows::{Level, Rows};
use prefcurate_core::select::{select_top, Quota};
use prefcurate_core::tokenize::{tokenize_with, Masks, Tokens};
use prefcurate_core::{make_pool, Ctx, UnicodeTables};

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` texts of 20 to 80 words from a vocabulary of 20 000 (`é` in some
/// words when `unicode`), with punctuation.
fn texts(n: usize, unicode: bool) -> Vec<String> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|_| {
            let k = 20 + (r.next() % 60) as usize;
            let mut s = String::new();
            for i in 0..k {
                let w = r.next() % 20_000;
                if i > 0 {
                    s.push_str(if w % 11 == 0 { ", " } else { " " });
                }
                if unicode && w % 3 == 0 {
                    s.push_str(&format!("Ré{w}"));
                } else {
                    s.push_str(&format!("Word{w}"));
                }
            }
            s.push('.');
            s
        })
        .collect()
}

fn family(num_perm: u32) -> Family {
    Family::new(
        "fast",
        (0..num_perm).map(|i| 2 * i + 1).collect(),
        (0..num_perm).map(|i| i.wrapping_mul(0x9e37_79b9)).collect(),
    )
    .expect("family")
}

const NORM: Norm = Norm {
    nfkc: true,
    lowercase: true,
    whitespace: true,
};

fn tokenize(c: &mut Criterion) {
    let tables = UnicodeTables::builtin();
    let mut g = c.benchmark_group("tokenize");
    for (name, unicode) in [("ascii", false), ("unicode", true)] {
        let t = texts(1000, unicode);
        g.throughput(Throughput::Bytes(t.iter().map(|s| s.len() as u64).sum()));
        g.bench_function(name, |b| {
            let (mut low, mut toks, mut masks) =
                (String::new(), Tokens::default(), Masks::default());
            b.iter(|| {
                let mut n = 0;
                for s in &t {
                    tokenize_with(&tables, s, &mut low, &mut toks, &mut masks);
                    n += toks.hashes.len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn minhash(c: &mut Criterion) {
    let mut g = c.benchmark_group("minhash");
    let mut r = Rng(7);
    let hashes: Vec<u32> = (0..200).map(|_| r.next() as u32).collect();
    g.throughput(Throughput::Elements(hashes.len() as u64));
    for num_perm in [128u32, 256] {
        let fam = family(num_perm);
        let mut sig = Vec::new();
        g.bench_function(BenchmarkId::new("update", num_perm), |b| {
            b.iter(|| {
                signature_of_hashes(&fam, black_box(&hashes), &mut sig);
                black_box(sig[0])
            })
        });
    }
    g.finish();
}

fn lsh_band_keys(c: &mut Criterion) {
    let pool = make_pool(Some(1)).expect("pool").expect("a pool");
    let mut g = c.benchmark_group("band_keys");
    let (bands, rows, num_perm) = (16, 8, 128);
    let mut r = Rng(11);
    let n = 10_000;
    let sigs: Vec<u32> = (0..n * num_perm).map(|_| r.next() as u32).collect();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("from_signatures", |b| {
        pool.install(|| {
            b.iter(|| black_box(band_keys(&sigs, num_perm, bands, rows).expect("keys")))
        })
    });
    let t = texts(2000, false);
    let fam = family(num_perm as u32);
    let tables = UnicodeTables::builtin();
    let parts = Rows::texts(&t).reader(Level::Prompt, 0);
    g.throughput(Throughput::Elements(t.len() as u64));
    g.bench_function("from_texts_word5", |b| {
        pool.install(|| {
            b.iter(|| {
                let ctx = Ctx::new();
                black_box(
                    row_band_keys(
                        &tables,
                        NORM,
                        Shingle::Word(5),
                        &fam,
                        t.len(),
                        &parts,
                        bands,
                        rows,
                        &ctx,
                    )
                    .expect("keys"),
                )
            })
        })
    });
    g.finish();
}

fn top_k(c: &mut Criterion) {
    let pool = make_pool(Some(1)).expect("pool").expect("a pool");
    let mut g = c.benchmark_group("select_top");
    let n = 200_000;
    let mut r = Rng(3);
    let scores: Vec<f64> = (0..n).map(|_| (r.next() % 10_000) as f64 / 7.0).collect();
    let groups: Vec<u32> = (0..n).map(|_| (r.next() % 8) as u32).collect();
    let quotas = vec![Quota::Ratio(3, 10); 8];
    g.throughput(Throughput::Elements(n as u64));
    for ranks in [false, true] {
        let name = if ranks { "ranks" } else { "kept" };
        g.bench_function(name, |b| {
            pool.install(|| {
                b.iter(|| {
                    let ctx = Ctx::new();
                    black_box(
                        select_top(&scores, &groups, &quotas, None, ranks, &ctx).expect("top"),
                    )
                })
            })
        });
    }
    g.finish();
}

criterion_group!(kernels, tokenize, minhash, lsh_band_keys, top_k);
criterion_main!(kernels);
