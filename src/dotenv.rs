//! Our own dotenv parser and writer. No `$` interpolation, ever: a password
//! with `$` in it survives as written.
//!
//! Accepted syntax (see docs/envfile.md for how it compares with systemd,
//! docker and docker compose):
//! - `KEY=value`, optional `export ` prefix, spaces around `=` ignored;
//! - blank lines and `#` comment lines; ` #` after an unquoted value starts a comment;
//! - unquoted values end at the end of the line, surrounding blanks trimmed;
//! - `'single'` quotes are literal and may span lines;
//! - `"double"` quotes understand `\n \r \t \" \\ \$`, keep any other
//!   backslash as written, and may span lines;
//! - CRLF line endings and a leading UTF-8 BOM.
//!
//! Keys are returned as written (letters, digits, `_`, `.`, `-`); whether a
//! key is a valid environment name is decided later, when it is imported.
//! Errors carry a line number and never any part of a value.

use std::fmt;

use crate::secret::Secret;

/// A syntax error: where, and what was expected. Never any file content
/// beyond a key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a dotenv document. Later duplicates of a key replace earlier ones
/// in place (the first position is kept).
pub fn parse(input: &[u8]) -> Result<Vec<(String, Secret)>, ParseError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    // CRLF -> LF everywhere, into a buffer that is zeroized on drop.
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(input.len()));
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        text.push(input[i]);
        i += 1;
    }
    let mut p = Parser { s: &text, pos: 0, line: 1 };
    let mut out: Vec<(String, Secret)> = Vec::new();
    // Key -> position in `out`: large files stay linear.
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    while let Some((key, value)) = p.entry()? {
        match index.get(&key) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.bump() {
            if b == b'\n' {
                break;
            }
        }
    }

    fn err(&self, what: impl Into<String>) -> ParseError {
        ParseError { line: self.line, what: what.into() }
    }

    /// After a value: only blanks, then a comment or the end of the line.
    fn end_of_entry(&mut self, key: &str) -> Result<(), ParseError> {
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.bump();
                Ok(())
            }
            Some(b'#') => {
                self.skip_line();
                Ok(())
            }
            Some(_) => Err(self.err(format!("unexpected characters after the closing quote of {key}"))),
        }
    }

    /// Reads a quoted value after its opening quote `q` into `value`:
    /// single quotes are literal, double quotes understand the escapes.
    fn quoted(&mut self, q: u8, key: &str, value: &mut Vec<u8>) -> Result<(), ParseError> {
        let open = self.line;
        self.bump();
        loop {
            match self.bump() {
                None => {
                    let kind = if q == b'"' { "double" } else { "single" };
                    return Err(ParseError {
                        line: open,
                        what: format!("unterminated {kind} quote in {key}"),
                    });
                }
                Some(b) if b == q => return Ok(()),
                Some(b'\\') if q == b'"' => match self.peek() {
                    Some(c @ (b'n' | b'r' | b't' | b'"' | b'\\' | b'$')) => {
                        self.bump();
                        value.push(match c {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                    }
                    _ => value.push(b'\\'),
                },
                Some(b) => value.push(b),
            }
        }
    }

    fn entry(&mut self) -> Result<Option<(String, Secret)>, ParseError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(None),
                Some(b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                Some(_) => break,
            }
        }
        if self.s[self.pos..].starts_with(b"export") && self.s.get(self.pos + 6).is_some_and(|&b| is_blank(b))
        {
            self.pos += 6;
            self.skip_blanks();
        }
        let start = self.pos;
        while self.peek().is_some_and(is_key_byte) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("expected a variable name (letters, digits, _ . -)"));
        }
        let key =
            String::from_utf8(self.s[start..self.pos].to_vec()).expect("key bytes are ASCII by is_key_byte");
        self.skip_blanks();
        if self.peek() != Some(b'=') {
            return Err(self.err(format!("expected '=' after {key}")));
        }
        self.pos += 1;
        self.skip_blanks();
        let mut value = zeroize::Zeroizing::new(Vec::new());
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.quoted(q, &key, &mut value)?;
                self.end_of_entry(&key)?;
            }
            _ => {
                let start = self.pos;
                let mut end = start;
                while let Some(b) = self.peek() {
                    if b == b'\n' {
                        break;
                    }
                    if b == b'#' && (self.pos == start || is_blank(self.s[self.pos - 1])) {
                        self.skip_line();
                        break;
                    }
                    self.pos += 1;
                    if !is_blank(b) {
                        end = self.pos;
                    }
                }
                if self.peek() == Some(b'\n') {
                    self.bump();
                }
                value.extend_from_slice(&self.s[start..end]);
            }
        }
        if value.contains(&0) {
            return Err(self.err(format!(
                "the value of {key} contains a NUL byte, which no environment variable can hold"
            )));
        }
        Ok(Some((key, Secret::new(std::mem::take(&mut *value)))))
    }
}

/// True if `value` can be written unquoted and read back unchanged.
fn is_plain(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|&b| b.is_ascii_alphanumeric() || b"_-./:@+,=%^~".contains(&b))
}

/// Appends `KEY=value` in the form [`parse`] reads back byte-for-byte:
/// unquoted when safe, single-quoted when that suffices, else double-quoted
/// with escapes. `value` must not contain NUL.
pub fn write_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    if value.is_empty() {
    } else if is_plain(value) {
        out.extend_from_slice(value);
    } else if !value.iter().any(|&b| b == b'\'' || b == b'\n' || b == b'\r') {
        out.push(b'\'');
        out.extend_from_slice(value);
        out.push(b'\'');
    } else {
        out.push(b'"');
        for &b in value {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'"' => out.extend_from_slice(b"\\\""),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'$' => out.extend_from_slice(b"\\$"),
                _ => out.push(b),
            }
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> Vec<(String, String)> {
        parse(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect()
    }

    fn one(input: &str) -> String {
        let v = parsed(input);
        assert_eq!(v.len(), 1, "{input:?}");
        v[0].1.clone()
    }

    #[test]
    fn cases() {
        let table: &[(&str, &str)] = &[
            ("A=b", "b"),
            ("A = b  ", "b"),
            ("export A=b", "b"),
            ("A=", ""),
            ("A=p@$$w0rd$HOME", "p@$$w0rd$HOME"),
            ("A=value # comment", "value"),
            ("A=value#not-a-comment", "value#not-a-comment"),
            ("A='single $X \\n literal'", "single $X \\n literal"),
            ("A=\"dq \\n \\\" \\\\ \\$X $Y\"", "dq \n \" \\ $X $Y"),
            ("A=\"keeps \\q unknown\"", "keeps \\q unknown"),
            ("A=\"multi\nline\"", "multi\nline"),
            ("A='multi\nline'", "multi\nline"),
            ("A=\"x\" # trailing comment", "x"),
            ("A=crlf\r\n", "crlf"),
            ("A=\"crlf\r\nin quotes\"\r\n", "crlf\nin quotes"),
            ("\u{feff}A=bom", "bom"),
            ("# c\n\n  \nA=after-blank", "after-blank"),
            ("A=ünïcødé ✓", "ünïcødé ✓"),
            ("A==starts-with-equals", "=starts-with-equals"),
        ];
        for (input, want) in table {
            assert_eq!(one(input), *want, "input {input:?}");
        }
        // `export` is only a prefix when a blank follows it.
        assert_eq!(parsed("exportA=x"), vec![("exportA".into(), "x".into())]);
    }

    #[test]
    fn order_and_duplicates() {
        let v = parsed("B=1\nA=2\nB=3\n");
        assert_eq!(v, vec![("B".into(), "3".into()), ("A".into(), "2".into())]);
    }

    #[test]
    fn errors_carry_line_and_no_value() {
        let e = parse(b"A=1\nthis-has-no-equals hunter2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("hunter2"));
        let e = parse(b"A=1\nB=\"never closed hunter2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse(b"A='x' hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn write_then_parse_is_identity(
            values in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 1..6)
        ) {
            let mut doc = Vec::new();
            for (i, v) in values.iter().enumerate() {
                write_entry(&mut doc, &format!("K{i}"), v);
            }
            let back = parse(&doc).unwrap();
            proptest::prop_assert_eq!(back.len(), values.len());
            for (i, v) in values.iter().enumerate() {
                proptest::prop_assert_eq!(&back[i].0, &format!("K{i}"));
                proptest::prop_assert_eq!(back[i].1.expose(), &v[..]);
            }
        }
    }
}
