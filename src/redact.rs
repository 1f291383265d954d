//! Scrubs every known secret value out of text that secretexec prints.
//!
//! Every value a source returns is registered here, together with the common
//! encodings it could appear in (base64 standard and URL-safe, percent-encoded,
//! JSON-escaped). [`scrub`] replaces any occurrence with `[REDACTED]`.
//!
//! The redactor keeps no plaintext: it stores, per length, a keyed rolling hash
//! of each form (a random base chosen per process) and finds matches with
//! Rabin–Karp. A collision can only over-redact, never leak. This lets the
//! supervisor keep redacting for hours while holding no secret bytes.
//!
//! Forms shorter than [`MIN_LEN`] bytes are not matched: a one- or two-byte
//! value (`1`, `on`) would match everywhere and carries no secrecy worth the
//! unreadable output. secretexec never formats a value in the first place;
//! the redactor is the second line of defence.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::secret::Secret;

const MARK: &str = "[REDACTED]";

/// Shortest form that is redacted.
pub const MIN_LEN: usize = 4;

struct Table {
    base: u64,
    /// length -> hashes of registered forms of that length
    by_len: BTreeMap<usize, HashSet<u64>>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn random_odd_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5ec2e7e7ec);
    h.finish() | 1
}

fn hash(base: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| acc.wrapping_mul(base).wrapping_add(u64::from(b) + 1))
}

fn pow(base: u64, mut exp: usize) -> u64 {
    let (mut result, mut b) = (1u64, base);
    while exp > 0 {
        if exp & 1 == 1 {
            result = result.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        exp >>= 1;
    }
    result
}

/// The forms a value may take in text we print.
fn forms(value: &[u8]) -> Vec<zeroize::Zeroizing<Vec<u8>>> {
    use zeroize::Zeroizing;
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(value.to_vec())];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(value).into_bytes()));
    }
    let mut pct = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            pct.push(b);
        } else {
            pct.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.push(pct);
    if let Ok(s) = std::str::from_utf8(value) {
        let json = Zeroizing::new(serde_json::to_string(s).unwrap_or_default());
        if json.len() >= 2 {
            out.push(Zeroizing::new(json.as_bytes()[1..json.len() - 1].to_vec()));
        }
        // Debug formatting of a str escapes like Rust source: `{:?}` of an
        // error that wraps a value would show this form.
        let dbg = Zeroizing::new(format!("{s:?}"));
        out.push(Zeroizing::new(dbg.as_bytes()[1..dbg.len() - 1].to_vec()));
    }
    out.retain(|f| f.len() >= MIN_LEN);
    out
}

/// Registers a secret value (and its encodings) for redaction.
pub fn register(secret: &Secret) {
    register_bytes(secret.expose());
}

/// Registers raw bytes that must never be printed (tokens, client secrets).
pub fn register_bytes(value: &[u8]) {
    if value.is_empty() {
        return;
    }
    let mut guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = guard.get_or_insert_with(|| Table { base: random_odd_u64(), by_len: BTreeMap::new() });
    for form in forms(value) {
        let h = hash(table.base, &form);
        table.by_len.entry(form.len()).or_default().insert(h);
    }
}

/// Returns `text` with every registered value replaced by `[REDACTED]`.
pub fn scrub(text: &str) -> String {
    let guard = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(table) = guard.as_ref() else {
        return text.to_owned();
    };
    let bytes = text.as_bytes();
    // hit[i] = end of the longest match starting at i
    let mut hit: Vec<usize> = vec![0; bytes.len()];
    let mut any = false;
    for (&len, hashes) in &table.by_len {
        if len > bytes.len() {
            break;
        }
        let top = pow(table.base, len - 1);
        let mut h = hash(table.base, &bytes[..len]);
        for start in 0..=bytes.len() - len {
            if start > 0 {
                let out = u64::from(bytes[start - 1]) + 1;
                let inn = u64::from(bytes[start + len - 1]) + 1;
                h = h.wrapping_sub(out.wrapping_mul(top)).wrapping_mul(table.base).wrapping_add(inn);
            }
            if hashes.contains(&h) {
                hit[start] = hit[start].max(start + len);
                any = true;
            }
        }
    }
    if !any {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if hit[i] > i {
            // Extend over overlapping matches so no fragment survives.
            let mut end = hit[i];
            let mut j = i;
            while j < end {
                end = end.max(hit[j]);
                j += 1;
            }
            out.extend_from_slice(MARK.as_bytes());
            i = end;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_raw_and_encoded_forms() {
        register(&Secret::copy_from(b"s3cr3t/val+ue=?"));
        let b64 = STANDARD.encode(b"s3cr3t/val+ue=?");
        let text = format!("a s3cr3t/val+ue=? b {b64} c s3cr3t%2Fval%2Bue%3D%3F d");
        let out = scrub(&text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains(&b64), "{out}");
        assert_eq!(out, "a [REDACTED] b [REDACTED] c [REDACTED] d");
    }

    #[test]
    fn overlapping_matches_leave_no_fragment() {
        register(&Secret::copy_from(b"abcabc-overlap"));
        register(&Secret::copy_from(b"c-overlapXYZ"));
        let out = scrub("..abcabc-overlapXYZ..");
        assert_eq!(out, "..[REDACTED]..");
    }

    #[test]
    fn very_short_values_are_not_matched() {
        register(&Secret::copy_from(b"1"));
        assert_eq!(scrub("schema 1"), "schema 1");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        register(&Secret::copy_from(b"zzq-never-here"));
        assert_eq!(scrub("plain text, ünïcode"), "plain text, ünïcode");
    }
}
