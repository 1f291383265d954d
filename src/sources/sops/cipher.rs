//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` values and the MAC.
//!
//! Each value is AES-256-GCM with a 32-byte IV and, as additional data, the
//! value's key path joined by `:` plus a trailing `:` (list items add no
//! path component). The MAC is SHA-512 over every hashed value in sops's
//! canonical text, in document order, upper-case hex, stored encrypted with
//! the `lastmodified` time as additional data.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::Engine;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::metadata::Rule;
use super::tree::{Node, Scalar, canonical_float};
use crate::secret::Secret;

type Aes256Gcm32 = AesGcm<Aes256, U32>;

/// The MAC's hash starts with these bytes when `mac_only_encrypted` is set,
/// so that such a MAC can never equal one over every value.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b,
    0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A decrypted document: the tree's shape, every leaf as the value a
/// variable gets.
pub enum Plain {
    Map(Vec<(String, Plain)>),
    List(Vec<Plain>),
    Leaf(Secret),
}

/// Why a document could not be decrypted. Names a key path, never a value.
#[derive(Debug)]
pub enum CipherError {
    /// A value that should be encrypted is malformed or fails authentication.
    Value { path: String, what: String },
    /// The MAC does not match or cannot be decrypted.
    Mac(String),
}

/// Decrypts one `ENC[…]` string: the plaintext bytes and the type tag.
fn open(value: &str, key: &[u8; 32], aad: &str) -> Result<(Zeroizing<Vec<u8>>, String), String> {
    let body = value
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("not in sops' ENC[AES256_GCM,…] format")?;
    let (data, rest) = body.split_once(",iv:").ok_or("no iv")?;
    let (iv, rest) = rest.split_once(",tag:").ok_or("no tag")?;
    let (tag, kind) = rest.split_once(",type:").ok_or("no type")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut buf = Zeroizing::new(b64.decode(data).map_err(|_| "data is not base64")?);
    let iv = b64.decode(iv).map_err(|_| "iv is not base64")?;
    let tag = b64.decode(tag).map_err(|_| "tag is not base64")?;
    if iv.len() != 32 {
        return Err(format!("iv is {} bytes, expected 32", iv.len()));
    }
    if tag.len() != 16 {
        return Err(format!("tag is {} bytes, expected 16", tag.len()));
    }
    let cipher = Aes256Gcm32::new(key.into());
    cipher
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&iv),
            aad.as_bytes(),
            &mut buf,
            Tag::from_slice(&tag),
        )
        .map_err(|_| "authentication failed: the value, its IV or tag, or its key path was modified")?;
    Ok((buf, kind.to_owned()))
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &[u8]) -> Option<bool> {
    match s {
        b"1" | b"t" | b"T" | b"TRUE" | b"true" | b"True" => Some(true),
        b"0" | b"f" | b"F" | b"FALSE" | b"false" | b"False" => Some(false),
        _ => None,
    }
}

/// How sops (and the Python sops before it) writes a boolean into the MAC.
fn go_bool(v: bool) -> &'static [u8] {
    if v { b"True" } else { b"False" }
}

/// A decrypted value: what the variable gets, and what the MAC hashes.
/// The MAC text differs from the value only for booleans (`True`/`False`).
fn typed(plain: Zeroizing<Vec<u8>>, kind: &str) -> Result<(Secret, Option<&'static [u8]>), String> {
    match kind {
        "str" | "bytes" | "time" => Ok((Secret::copy_from(&plain), None)),
        "int" => {
            let text = std::str::from_utf8(&plain).map_err(|_| "int value is not text")?;
            let v: i64 = text.parse().map_err(|_| "int value does not parse")?;
            Ok((Secret::from_string(v.to_string()), None))
        }
        "float" => {
            let text = std::str::from_utf8(&plain).map_err(|_| "float value is not text")?;
            let v: f64 = text.parse().map_err(|_| "float value does not parse")?;
            Ok((Secret::from_string(canonical_float(v)), None))
        }
        "bool" => {
            let v = parse_bool(&plain).ok_or("bool value does not parse")?;
            Ok((Secret::copy_from(if v { b"true" } else { b"false" }), Some(go_bool(v))))
        }
        // Comments are never values; an encrypted comment where a value should be is tampering.
        other => Err(format!("unknown value type {other:?}")),
    }
}

struct Walk<'a> {
    key: &'a [u8; 32],
    rule: &'a Rule,
    mac_only_encrypted: bool,
    hash: Sha512,
    path: Vec<String>,
}

impl Walk<'_> {
    fn encrypted(&self, scalar: &Scalar) -> bool {
        match self.rule {
            Rule::UnencryptedSuffix(s) => !self.path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => self.path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::ByForm(_) => matches!(scalar, Scalar::Str(v) if v.starts_with("ENC[AES256_GCM,")),
        }
    }

    fn node(&mut self, node: &Node) -> Result<Plain, CipherError> {
        Ok(match node {
            Node::Map(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (k, v) in items {
                    self.path.push(k.clone());
                    let p = self.node(v);
                    self.path.pop();
                    out.push((k.clone(), p?));
                }
                Plain::Map(out)
            }
            Node::List(items) => Plain::List(items.iter().map(|v| self.node(v)).collect::<Result<_, _>>()?),
            // sops skips nulls entirely: not encrypted, not hashed.
            Node::Scalar(Scalar::Null) => Plain::Leaf(Secret::new(Vec::new())),
            Node::Scalar(s) => Plain::Leaf(self.leaf(s)?),
        })
    }

    fn leaf(&mut self, s: &Scalar) -> Result<Secret, CipherError> {
        let encrypted = self.encrypted(s);
        let err = |what: String| CipherError::Value { path: self.path.join("."), what };
        let (value, mac_text) = if encrypted {
            let Scalar::Str(enc) = s else {
                return Err(err("expected an encrypted value, found a plain number or boolean".into()));
            };
            if enc.is_empty() {
                // sops stores empty strings as they are.
                (Secret::new(Vec::new()), None)
            } else {
                let aad = format!("{}:", self.path.join(":"));
                let (plain, kind) = open(enc, self.key, &aad).map_err(err)?;
                typed(plain, &kind).map_err(err)?
            }
        } else {
            match s {
                Scalar::Str(v) | Scalar::Int(v) | Scalar::Float(v) => (Secret::copy_from(v.as_bytes()), None),
                Scalar::Bool(b) => {
                    (Secret::copy_from(if *b { b"true" } else { b"false" }), Some(go_bool(*b)))
                }
                Scalar::Null => (Secret::new(Vec::new()), None),
            }
        };
        if !self.mac_only_encrypted || encrypted {
            match &mac_text {
                Some(t) => self.hash.update(t),
                None => self.hash.update(value.expose()),
            }
        }
        Ok(value)
    }
}

/// Go's `time.Parse(RFC3339)` then `Format(RFC3339)`: fractional seconds
/// dropped, a zero offset written `Z`. None when `t` is not RFC 3339.
fn canonical_time(t: &str) -> Option<String> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..13) && digits(14..16) && digits(17..19))
    {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let zone =
        match rest {
            "Z" => "Z".to_owned(),
            z if z.len() == 6
                && (z.starts_with('+') || z.starts_with('-'))
                && z.as_bytes()[3] == b':'
                && z[1..3].bytes().chain(z[4..6].bytes()).all(|c| c.is_ascii_digit()) =>
            {
                if &z[1..] == "00:00" { "Z".to_owned() } else { z.to_owned() }
            }
            _ => return None,
        };
    Some(format!("{}{zone}", &t[..19]))
}

/// Decrypts every document and checks the MAC. Ok only when the MAC over
/// the decrypted values equals the stored one.
pub fn decrypt_documents(
    docs: &[Node],
    key: &[u8; 32],
    rule: &Rule,
    mac_only_encrypted: bool,
    stored_mac: &str,
    lastmodified: &str,
) -> Result<Vec<Plain>, CipherError> {
    let mut walk = Walk { key, rule, mac_only_encrypted, hash: Sha512::new(), path: Vec::new() };
    if mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let plain = docs.iter().map(|d| walk.node(d)).collect::<Result<Vec<_>, _>>()?;
    let computed: String = walk.hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
    let aad = canonical_time(lastmodified)
        .ok_or_else(|| CipherError::Mac("lastmodified is not an RFC 3339 time".into()))?;
    if stored_mac.is_empty() {
        return Err(CipherError::Mac("the file has no MAC".into()));
    }
    let (mac, kind) = open(stored_mac, key, &aad)
        .map_err(|e| CipherError::Mac(format!("the MAC cannot be decrypted ({e})")))?;
    if kind != "str" || mac.as_slice() != computed.as_bytes() {
        return Err(CipherError::Mac("the MAC does not match the file's values".into()));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_reformats_them() {
        assert_eq!(canonical_time("2024-05-01T10:20:30Z").unwrap(), "2024-05-01T10:20:30Z");
        assert_eq!(canonical_time("2024-05-01T10:20:30.123Z").unwrap(), "2024-05-01T10:20:30Z");
        assert_eq!(canonical_time("2024-05-01T10:20:30+00:00").unwrap(), "2024-05-01T10:20:30Z");
        assert_eq!(canonical_time("2024-05-01T10:20:30+02:00").unwrap(), "2024-05-01T10:20:30+02:00");
        assert!(canonical_time("yesterday").is_none());
    }

    #[test]
    fn seals_and_opens_like_sops() {
        // Seal with the same construction, then open through `open`.
        let key = [7u8; 32];
        let iv = [9u8; 32];
        let mut buf = b"hello".to_vec();
        let tag = Aes256Gcm32::new((&key).into())
            .encrypt_in_place_detached(Nonce::<U32>::from_slice(&iv), b"a:b:", &mut buf)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
            b64.encode(&buf),
            b64.encode(iv),
            b64.encode(tag)
        );
        let (plain, kind) = open(&v, &key, "a:b:").unwrap();
        assert_eq!((&plain[..], kind.as_str()), (&b"hello"[..], "str"));
        assert!(open(&v, &key, "a:c:").is_err(), "another key path must not decrypt");
    }
}
