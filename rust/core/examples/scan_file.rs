//! Time the reference scan on NUL-separated text files:
//! `cargo run --release --example scan_file -- BENCH TRAIN [THREADS]`
use std::time::Instant;

use prefcurate_core::{BenchmarkIndex, Method, UnicodeTables};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = std::fs::read_to_string(&args[1]).expect("bench file");
    let train = std::fs::read_to_string(&args[2]).expect("train file");
    let threads = args.get(3).map(|s| s.parse().expect("threads"));
    let bench: Vec<String> = bench.split('\0').map(str::to_owned).collect();
    let train: Vec<&str> = train.split('\0').collect();
    let n = bench.len();
    let build = || {
        BenchmarkIndex::build(
            UnicodeTables::builtin(),
            Method::Reference {
                min_n: 7,
                max_n: 13,
            },
            bench.clone(),
            (0..n).map(|i| i.to_string()).collect(),
            vec![String::new(); n],
        )
        .expect("index")
    };
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t = Instant::now();
        std::hint::black_box(build());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("index build: best of 10 {:.1} ms", best * 1e3);
    let t = Instant::now();
    let idx = BenchmarkIndex::build(
        UnicodeTables::builtin(),
        Method::Reference {
            min_n: 7,
            max_n: 13,
        },
        bench,
        (0..n).map(|i| i.to_string()).collect(),
        vec![String::new(); n],
    )
    .expect("index");
    println!("index: {:?}, {} grams", t.elapsed(), idx.n_grams());
    let pool = prefcurate_core::make_pool(threads).expect("pool");
    let iters: usize = args.get(4).map_or(3, |s| s.parse().expect("iterations"));
    let mut best = f64::MAX;
    for _ in 0..iters {
        let t = Instant::now();
        let m = prefcurate_core::run_in(pool.as_ref(), || idx.scan_reference(&train, 0, true))
            .expect("scan");
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(m);
    }
    println!("scan: best of {iters} {:.1} ms", best * 1e3);
}
