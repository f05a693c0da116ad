//! Saving and loading a [`BenchmarkIndex`].
//!
//! The file holds what defines the index (method, benchmark texts, ids,
//! subsets, the Unicode version of the tokeniser) and a checksum; loading
//! re-derives the hash tables.  That keeps the format small and independent of
//! in-memory layout, and lets an index saved under one Unicode version be
//! loaded under another (it is then re-tokenised under the tables in force).
//!
//! Layout (little-endian): magic `PCFIDX\r\n`, `u32` format version, then
//! length-prefixed fields, then an 8-byte checksum of everything before it.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::exec::Ctx;
use crate::hash::hash_bytes;
use crate::index::{BenchmarkIndex, Method};
use crate::unicode::UnicodeTables;

const MAGIC: &[u8; 8] = b"PCFIDX\r\n";
const FORMAT: u32 = 1;

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Serialise `index` to bytes.
pub fn to_bytes(index: &BenchmarkIndex) -> Vec<u8> {
    let mut buf =
        Vec::with_capacity(index.texts().iter().map(|t| t.len() + 64).sum::<usize>() + 64);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    put_str(&mut buf, index.unicode_version());
    match index.method() {
        Method::Reference { min_n, max_n } => {
            buf.push(0);
            put_u64(&mut buf, min_n as u64);
            put_u64(&mut buf, max_n as u64);
        }
        Method::Precise { n, min_tokens } => {
            buf.push(1);
            put_u64(&mut buf, n as u64);
            put_u64(&mut buf, min_tokens as u64);
        }
    }
    put_u64(&mut buf, index.len() as u64);
    for i in 0..index.len() {
        put_str(&mut buf, &index.texts()[i]);
        put_str(&mut buf, &index.ids()[i]);
        put_str(&mut buf, &index.subsets()[i]);
    }
    let sum = hash_bytes(&buf);
    put_u64(&mut buf, sum);
    buf
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.buf.len() - self.at < n {
            return Err(format!("truncated at byte {}", self.at));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str(&mut self) -> std::result::Result<String, String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| "length out of range".to_string())?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|e| format!("invalid UTF-8 at byte {}: {e}", self.at - n))
    }
}

/// Parse bytes written by [`to_bytes`]; `path` only names the source in errors.
pub fn from_bytes(buf: &[u8], path: &Path, tables: Arc<UnicodeTables>) -> Result<BenchmarkIndex> {
    from_bytes_with(buf, path, tables, &Ctx::new())
}

/// [`from_bytes`], cancellable through `ctx`.
pub fn from_bytes_with(
    buf: &[u8],
    path: &Path,
    tables: Arc<UnicodeTables>,
    ctx: &Ctx,
) -> Result<BenchmarkIndex> {
    let bad = |reason: String| CoreError::IndexFormat {
        path: path.to_path_buf(),
        reason,
    };
    if buf.len() < MAGIC.len() + 4 + 8 || &buf[..8] != MAGIC {
        return Err(bad(
            "missing header (was it written by BenchmarkIndex.save?)".into(),
        ));
    }
    let body = &buf[..buf.len() - 8];
    let sum = u64::from_le_bytes(buf[buf.len() - 8..].try_into().expect("8 bytes"));
    if hash_bytes(body) != sum {
        return Err(bad(
            "checksum mismatch: the file is corrupt or truncated".into()
        ));
    }
    let mut r = Reader { buf: body, at: 8 };
    let format = u32::from_le_bytes(r.take(4).map_err(bad)?.try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(bad(format!(
            "format version {format}, this build reads {FORMAT}"
        )));
    }
    let _saved_unicode = r.str().map_err(bad)?;
    let tag = r.take(1).map_err(bad)?[0];
    let a = r.u64().map_err(bad)? as usize;
    let b = r.u64().map_err(bad)? as usize;
    let method = match tag {
        0 => Method::Reference { min_n: a, max_n: b },
        1 => Method::Precise {
            n: a,
            min_tokens: b,
        },
        t => return Err(bad(format!("unknown method tag {t}"))),
    };
    let n = r.u64().map_err(bad)?;
    let n = usize::try_from(n).map_err(|_| bad("document count out of range".into()))?;
    let cap = n.min(body.len() / 24);
    let (mut texts, mut ids, mut subsets) = (
        Vec::with_capacity(cap),
        Vec::with_capacity(cap),
        Vec::with_capacity(cap),
    );
    for _ in 0..n {
        texts.push(r.str().map_err(bad)?);
        ids.push(r.str().map_err(bad)?);
        subsets.push(r.str().map_err(bad)?);
    }
    if r.at != body.len() {
        return Err(bad(format!("{} trailing bytes", body.len() - r.at)));
    }
    BenchmarkIndex::build_with(tables, method, texts, ids, subsets, ctx)
}

/// Write `index` to `path` (atomically: a temporary file, then a rename).
pub fn save(index: &BenchmarkIndex, path: &Path) -> Result<()> {
    let io = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp-prefcurate");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&to_bytes(index)).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Read an index written by [`save`], tokenising with `tables`.
pub fn load(path: &Path, tables: Arc<UnicodeTables>) -> Result<BenchmarkIndex> {
    load_with(path, tables, &Ctx::new())
}

/// [`load`], cancellable through `ctx`.
pub fn load_with(path: &Path, tables: Arc<UnicodeTables>, ctx: &Ctx) -> Result<BenchmarkIndex> {
    let io = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .read_to_end(&mut buf)
        .map_err(io)?;
    from_bytes_with(&buf, path, tables, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let t = UnicodeTables::builtin();
        let idx = BenchmarkIndex::build(
            t.clone(),
            Method::Reference { min_n: 2, max_n: 3 },
            vec!["Hello big world of text".into(), "Another ÉTÉ text".into()],
            vec!["a".into(), "b".into()],
            vec!["x".into(), "y".into()],
        )
        .unwrap();
        let bytes = to_bytes(&idx);
        let back = from_bytes(&bytes, Path::new("mem"), t.clone()).unwrap();
        assert_eq!(back.texts(), idx.texts());
        assert_eq!(back.ids(), idx.ids());
        assert_eq!(back.subsets(), idx.subsets());
        assert_eq!(back.method(), idx.method());
        assert_eq!(back.n_grams(), idx.n_grams());
        let mut broken = bytes.clone();
        broken[20] ^= 1;
        assert!(matches!(
            from_bytes(&broken, Path::new("f"), t.clone()),
            Err(CoreError::IndexFormat { .. })
        ));
        assert!(from_bytes(&bytes[..bytes.len() - 3], Path::new("f"), t.clone()).is_err());
        assert!(from_bytes(b"garbage", Path::new("f"), t).is_err());
    }
}
