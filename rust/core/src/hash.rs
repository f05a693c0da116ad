//! Stable 64-bit hashes for tokens and n-grams.
//!
//! These hashes only route lookups: every candidate match found through them
//! is verified on the token strings (see `index.rs`), and distinct n-grams
//! whose hashes collide are chained, so a collision can cost time but never
//! change a result.

/// MurmurHash3's 64-bit finaliser.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Multiply two words into 128 bits and fold the halves: a cheap, strong mixer.
#[inline]
pub fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

const K2: u64 = 0xa076_1d64_78bd_642f;
const K3: u64 = 0xe703_7ed1_a0b4_28db;

/// Hash of a byte string (a token).
#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    hash_span(b, 0, b.len())
}

/// A 128-bit hash of a byte string: two independent 64-bit halves.
pub fn hash128(b: &[u8]) -> u128 {
    let mut h1 = (b.len() as u64) ^ K3;
    let mut h2 = (b.len() as u64) ^ 0x2d35_8dcc_aa6c_78a5;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h1 = fold_mul(h1 ^ w, K2);
        h2 = fold_mul(h2 ^ w, 0x8bb8_4b93_962e_acc9);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let w = tail_word(rest);
        h1 = fold_mul(h1 ^ w, K2);
        h2 = fold_mul(h2 ^ w, 0x8bb8_4b93_962e_acc9);
    }
    ((fold_mul(h1, 0x4b33_a62e_d433_d4a3) as u128) << 64)
        | fold_mul(h2, 0x4d23_9c87_ab9b_6a0b) as u128
}

/// Hash of `buf[start..end]`, equal to `hash_bytes(&buf[start..end])`, that
/// reads whole words past `end` (masked off) when `buf` has room: no copy.
#[inline]
pub fn hash_span(buf: &[u8], start: usize, end: usize) -> u64 {
    #[cfg(feature = "degenerate-hash")]
    if DEGENERATE.load(std::sync::atomic::Ordering::Relaxed) {
        return 7;
    }
    let len = end - start;
    let mut h = (len as u64) ^ K3;
    let mut at = start;
    while at + 8 <= end {
        let w = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        h = fold_mul(h ^ w, K2);
        at += 8;
    }
    if at < end {
        let w = if at + 8 <= buf.len() {
            let shift = 8 * (8 - (end - at));
            u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes")) << shift >> shift
        } else {
            tail_word(&buf[at..end])
        };
        h = fold_mul(h ^ w, K2);
    }
    h
}

/// [`hash_span`] without bounds checks, for buffers padded past the token.
///
/// # Safety
/// `start <= end` and `buf.len() >= end + 8`.
#[inline]
pub unsafe fn hash_padded(buf: &[u8], start: usize, end: usize) -> u64 {
    debug_assert!(start <= end && buf.len() >= end + 8);
    #[cfg(feature = "degenerate-hash")]
    if DEGENERATE.load(std::sync::atomic::Ordering::Relaxed) {
        return 7;
    }
    let len = end - start;
    let mut h = (len as u64) ^ K3;
    let mut at = start;
    let p = buf.as_ptr();
    while at + 8 <= end {
        h = fold_mul(
            h ^ std::ptr::read_unaligned(p.add(at) as *const u64).to_le(),
            K2,
        );
        at += 8;
    }
    if at < end {
        let shift = 8 * (8 - (end - at));
        let w = std::ptr::read_unaligned(p.add(at) as *const u64).to_le() << shift >> shift;
        h = fold_mul(h ^ w, K2);
    }
    h
}

#[inline]
fn tail_word(rest: &[u8]) -> u64 {
    let mut w = 0u64;
    for (i, &b) in rest.iter().enumerate() {
        w |= (b as u64) << (8 * i);
    }
    w
}

/// Multiplier of the polynomial n-gram hash.
pub const B: u64 = 0x9e37_79b9_7f4a_7c15;

/// Append one token hash to a running n-gram hash:
/// `R(t_0..t_n) = sum t_k * B^(n-1-k)`, so that a window can also be rolled.
#[inline]
pub fn extend(h: u64, token: u64) -> u64 {
    h.wrapping_mul(B).wrapping_add(token)
}

/// Start value of a running n-gram hash.
pub const SEED: u64 = 0;

/// `B^k` (wrapping), to roll a window of `k + 1` tokens.
pub const fn pow_b(k: usize) -> u64 {
    let mut r = 1u64;
    let mut i = 0;
    while i < k {
        r = r.wrapping_mul(B);
        i += 1;
    }
    r
}

/// Table key of an n-gram from its running hash and length.
#[inline]
pub fn key(running: u64, n: usize) -> u64 {
    #[cfg(feature = "degenerate-hash")]
    if DEGENERATE.load(std::sync::atomic::Ordering::Relaxed) {
        return 42;
    }
    (running ^ (n as u64).wrapping_mul(0xd6e8_feb8_6659_fd93)).wrapping_mul(0xa076_1d64_78bd_642f)
}

/// Testing only (feature `degenerate-hash`): make every token hash and
/// n-gram key collide, to show that collisions cannot change a result.
#[cfg(feature = "degenerate-hash")]
pub static DEGENERATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_hash_equals_slice_hash() {
        let buf = b"hello wonderful world of tokens\0\0\0\0\0\0\0\0";
        for (a, b) in [(0, 5), (6, 15), (16, 21), (25, 31), (0, 31), (30, 31)] {
            assert_eq!(hash_span(buf, a, b), hash_bytes(&buf[a..b]), "{a}..{b}");
            assert_eq!(
                unsafe { hash_padded(buf, a, b) },
                hash_bytes(&buf[a..b]),
                "{a}..{b} padded"
            );
            assert_eq!(
                hash_span(&buf[..b], a, b),
                hash_bytes(&buf[a..b]),
                "{a}..{b} unpadded"
            );
        }
    }
}

/// A `Hasher` for keys that are already well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type IdentityBuild = std::hash::BuildHasherDefault<IdentityHasher>;
