//! The one type that holds secret bytes, from the source that fetched them to
//! the `execve` that hands them to the child.
//!
//! Promises: a [`Secret`] cannot be printed (its `Debug` shows only a length,
//! it has no `Display`, no `Serialize`), and its bytes are overwritten with
//! zeros when it is dropped. Code that needs the bytes calls
//! [`Secret::expose`] and keeps the borrow short.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes. Values need not be UTF-8 (a SOPS binary file, a key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// Takes ownership of `bytes`; they are zeroized when the Secret drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes: Zeroizing::new(bytes) }
    }

    /// Copies `bytes` into a new Secret. The caller remains responsible for
    /// zeroizing its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// Takes ownership of a String's buffer without copying it.
    pub fn from_string(s: String) -> Self {
        Self::new(s.into_bytes())
    }

    /// The secret bytes. Never pass them to a formatter, a log line or an error.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// True if the value contains a NUL byte, which no environment variable
    /// can carry.
    pub fn contains_nul(&self) -> bool {
        self.bytes.contains(&0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {} bytes])", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::copy_from(b"hunter2-canary");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("14 bytes"));
    }
}
