//! Content-hash ids of preference pairs.
//!
//! The id of a pair is `"{source}-{hex}"` where `hex` is the 16-digit
//! BLAKE2b digest (8-byte output) of the JSON document
//! `[source, chosen, rejected]` written as Python's
//! `json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`
//! writes it, each message an object `{"content": ..., "role": ...}`.  This
//! module builds that document byte for byte (the escaping rules below are
//! CPython's for `ensure_ascii=False`) and hashes it, so the ids equal
//! `prefcurate.schema.pair_id` exactly.

use blake2b_simd::Params;
use rayon::prelude::*;

use crate::error::{CoreError, Result, RowProblem};
use crate::exec::Ctx;
use crate::rows::{MsgColumn, StrColumn};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `s` as a JSON string literal (quotes included), escaped as
/// CPython's `json` does with `ensure_ascii=False`: `"` and `\` and the
/// controls `\b \f \n \r \t` get short escapes, every other character below
/// U+0020 becomes `\u00XX` (lower-case hex); everything else is copied.
pub fn json_string_into(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        // eight bytes at a time while none needs escaping
        if i + 8 <= b.len() {
            let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            if !needs_escape8(x) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        i += 1;
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        let at = i - 1;
        out.extend_from_slice(&b[start..at]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is below 0x20, `"` or `\` (exact: the classic
/// "has a byte less than n" test, n <= 128, and "has a zero byte" on `x`
/// xor the repeated character).
#[inline]
fn needs_escape8(x: u64) -> bool {
    let less = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGHS;
    (less | zero(x ^ (ONES * b'"' as u64)) | zero(x ^ (ONES * b'\\' as u64))) != 0
}

fn messages_into(msgs: &[(&str, &str)], out: &mut Vec<u8>) {
    out.push(b'[');
    for (k, (role, content)) in msgs.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"content\":");
        json_string_into(content, out);
        out.extend_from_slice(b",\"role\":");
        json_string_into(role, out);
        out.push(b'}');
    }
    out.push(b']');
}

/// The JSON document a pair's id hashes (see the module docs), into `out`.
pub fn pair_document_into(
    source: &str,
    chosen: &[(&str, &str)],
    rejected: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.push(b'[');
    json_string_into(source, out);
    out.push(b',');
    messages_into(chosen, out);
    out.push(b',');
    messages_into(rejected, out);
    out.push(b']');
}

/// The pair's id, `"{source}-{16 hex digits}"`, appended to `out`;
/// `buf` is scratch space for the JSON document.
pub fn pair_id_into(
    source: &str,
    chosen: &[(&str, &str)],
    rejected: &[(&str, &str)],
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    pair_document_into(source, chosen, rejected, buf);
    let d = Params::new().hash_length(8).hash(buf);
    out.extend_from_slice(source.as_bytes());
    out.push(b'-');
    for &x in d.as_bytes() {
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
}

/// Rows per parallel work item of [`pair_ids`].
const CHUNK: usize = 2048;

/// The ids of pairs `(source[i], chosen[i], rejected[i])` (see
/// [`pair_id_into`]): the UTF-8 bytes of all ids, and their offsets
/// (`n + 1`), as an Arrow string array holds them.  An error names the
/// first row with a null source, message list, role or content.
pub fn pair_ids(
    source: &dyn StrColumn,
    chosen: &dyn MsgColumn,
    rejected: &dyn MsgColumn,
    ctx: &Ctx,
) -> Result<(Vec<u8>, Vec<i64>)> {
    let n = source.len();
    if chosen.len() != n || rejected.len() != n {
        return Err(CoreError::InvalidArgument(format!(
            "source, chosen and rejected have {n}, {} and {} rows",
            chosen.len(),
            rejected.len()
        )));
    }
    let parts: Vec<Result<(Vec<u8>, Vec<usize>)>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let (mut buf, mut out, mut ends) = (Vec::new(), Vec::new(), Vec::new());
            ctx.check()?;
            let (mut m_c, mut m_r) = (Vec::new(), Vec::new());
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                let s = source
                    .get(i)
                    .ok_or_else(|| CoreError::row("source", i, RowProblem::Null))?;
                m_c.clear();
                m_r.clear();
                chosen
                    .messages(i, &mut m_c)
                    .map_err(|p| CoreError::row("chosen", i, p))?;
                rejected
                    .messages(i, &mut m_r)
                    .map_err(|p| CoreError::row("rejected", i, p))?;
                pair_id_into(s, &m_c, &m_r, &mut buf, &mut out);
                ends.push(out.len());
            }
            Ok((out, ends))
        })
        .collect();
    ctx.check()?;
    let mut data = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i64);
    for part in parts {
        // the first error in row order
        let (bytes, ends) = part?;
        let base = data.len() as i64;
        offsets.extend(ends.iter().map(|&e| base + e as i64));
        data.extend_from_slice(&bytes);
    }
    Ok((data, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(source: &str, c: &[(&str, &str)], r: &[(&str, &str)]) -> String {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        pair_id_into(source, c, r, &mut buf, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn document_is_pythons_json() {
        // json.dumps(["s", [{"role": "user", "content": "a\"b\\\n\x01é"}], []],
        //            ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        let mut out = Vec::new();
        pair_document_into("s", &[("user", "a\"b\\\n\u{1}é\u{7f}")], &[], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\"s\",[{\"content\":\"a\\\"b\\\\\\n\\u0001é\u{7f}\",\"role\":\"user\"}],[]]"
        );
    }

    /// Byte by byte, the rules in the docs of `json_string_into`.
    fn naive(s: &str) -> String {
        let mut o = String::from("\"");
        for ch in s.chars() {
            match ch {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\t' => o.push_str("\\t"),
                '\u{8}' => o.push_str("\\b"),
                '\u{c}' => o.push_str("\\f"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }

    #[test]
    fn word_at_a_time_scan_equals_byte_at_a_time() {
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '𝄞', '\u{7f}', '\u{80}'])
            .collect();
        for &c in &specials {
            for pos in 0..20 {
                for len in [pos + 1, pos + 3, pos + 9, 24] {
                    let s: String = (0..len).map(|k| if k == pos { c } else { 'a' }).collect();
                    let mut out = Vec::new();
                    json_string_into(&s, &mut out);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        naive(&s),
                        "{c:?} at {pos} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn ids_of_columns_and_first_bad_row() {
        let n = 5000;
        let sources: Vec<Option<&str>> = (0..n).map(|_| Some("s")).collect();
        let empty: Vec<Vec<(&str, &str)>> = vec![Vec::new(); n];
        let (data, offs) = pair_ids(&sources, &empty, &empty, &Ctx::new()).unwrap();
        assert_eq!(offs.len(), n + 1);
        assert_eq!(&data[..offs[1] as usize], b"s-9ab23223348d3591");
        let mut bad = sources.clone();
        bad[4500] = None;
        bad[2100] = None;
        let e = pair_ids(&bad, &empty, &empty, &Ctx::new()).unwrap_err();
        assert_eq!(e.to_string(), "source: row 2100 is null");
        assert!(pair_ids(&&bad[..3], &empty, &empty, &Ctx::new()).is_err());
    }

    #[test]
    fn id_matches_hashlib() {
        // python3 -c 'import hashlib; print(hashlib.blake2b(b"[\"s\",[],[]]", digest_size=8).hexdigest())'
        assert_eq!(id("s", &[], &[]), "s-9ab23223348d3591");
    }
}
