//! Memory check of `dedup::row_band_keys`: `cargo run --release --example band_keys_mem -- N`
use prefcurate_core::dedup::{row_band_keys, Family, Norm, Shingle};
use prefcurate_core::UnicodeTables;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().expect("n"));
    let mut state = 12345u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let k = 20 + (next() % 40) as usize;
            (0..k)
                .map(|_| format!("w{}", next() % 20000))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let t = UnicodeTables::builtin();
    let norm = Norm {
        nfkc: true,
        lowercase: true,
        whitespace: true,
    };
    let fam = Family::Fast {
        a: (0..128).map(|i| 2 * i + 1).collect(),
        b: (0..128).collect(),
    };
    fn reader<'a>(texts: &'a [String]) -> impl Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a {
        move |i, out| out.push(("", texts[i].as_str()))
    }
    let f = reader(&texts);
    let ctx = prefcurate_core::Ctx::new();
    let (keys, _short) =
        row_band_keys(&t, norm, Shingle::Word(5), &fam, n, &f, 14, 9, &ctx).expect("keys");
    println!("{} keys", keys.len());
}
