//! The `SOURCE:LOCATOR` reference grammar.
//!
//! SOURCE is a name from `[sources]` or, if no source has that name, a
//! backend type used with its defaults (`vault:secret/app#key`,
//! `envfile:/etc/app.env#KEY`). The locator's syntax belongs to the backend
//! and is checked here, before any I/O. Errors carry the byte range of the
//! bad part so the caller can point at it.

use std::ops::Range;

use crate::sources::{Kind, Sources};

/// A reference bound to a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Key into the plan's sources.
    pub source: String,
    /// What the backend is asked for.
    pub locator: String,
    /// The reference as written, for messages.
    pub raw: String,
}

/// A reference that does not parse: what is wrong and where in `raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefError {
    pub raw: String,
    pub span: Range<usize>,
    pub message: String,
}

impl RefError {
    fn new(raw: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self { raw: raw.to_owned(), span, message: message.into() }
    }

    /// Two lines: the reference, and a caret under the bad part with the message.
    pub fn pointed(&self) -> String {
        let pad = self.raw[..self.span.start.min(self.raw.len())].chars().count();
        let width = self.raw.get(self.span.clone()).map_or(1, |s| s.chars().count().max(1));
        format!("  {}\n  {}{} {}", self.raw, " ".repeat(pad), "^".repeat(width), self.message)
    }
}

fn is_source_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `raw` against the named sources; a bare backend type adds (or
/// reuses) an ad-hoc source in `adhoc`, its relative paths taken from `base`
/// (the mapping's directory) when given, else from the current directory.
pub fn parse(
    raw: &str,
    named: &Sources,
    adhoc: &mut Sources,
    base: Option<&std::path::Path>,
) -> Result<SecretRef, RefError> {
    let Some((source, rest)) = raw.split_once(':') else {
        let span = 0..raw.len();
        return Err(RefError::new(raw, span, "expected SOURCE:LOCATOR, e.g. vault:secret/app#key"));
    };
    let rest_at = source.len() + 1;
    if !is_source_name(source) {
        return Err(RefError::new(raw, 0..source.len(), "a source name is letters, digits, _ and -"));
    }
    if let Some(config) = named.get(source) {
        let kind = config.kind();
        return match kind.check_locator(rest) {
            Ok(()) => {
                Ok(SecretRef { source: source.to_owned(), locator: rest.to_owned(), raw: raw.to_owned() })
            }
            Err(m) => Err(RefError::new(raw, rest_at..raw.len(), format!("{} locator: {m}", kind.name()))),
        };
    }
    let Some(kind) = Kind::from_name(source) else {
        let mut names: Vec<&str> = named.keys().map(String::as_str).collect();
        names.extend(Kind::ALL.iter().map(|k| k.name()));
        let hint = match names.iter().find(|n| close(n, source)) {
            Some(n) => format!("; did you mean {n:?}?"),
            None => format!(" (known: {})", names.join(", ")),
        };
        return Err(RefError::new(raw, 0..source.len(), format!("unknown source {source:?}{hint}")));
    };
    let (mut config, locator) = kind.adhoc(rest).map_err(|m| RefError::new(raw, rest_at..raw.len(), m))?;
    if let Some(base) = base {
        config.rebase(base);
    }
    let id = match adhoc.iter().find(|(_, c)| **c == config) {
        Some((id, _)) => id.clone(),
        None => {
            let id = if adhoc.contains_key(kind.name()) {
                format!("{}#{}", kind.name(), adhoc.len() + 1)
            } else {
                kind.name().to_owned()
            };
            adhoc.insert(id.clone(), config);
            id
        }
    };
    Ok(SecretRef { source: id, locator, raw: raw.to_owned() })
}

/// Edit distance ≤ 2, for "did you mean".
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{SourceConfig, envfile};

    fn named() -> Sources {
        let mut s = Sources::new();
        s.insert(
            "local".into(),
            SourceConfig::Envfile(envfile::Config { path: "/etc/app.env".into(), follow_symlinks: false }),
        );
        s
    }

    #[test]
    fn named_and_bare() {
        let mut adhoc = Sources::new();
        let r = parse("local:DB_URL", &named(), &mut adhoc, None).unwrap();
        assert_eq!((r.source.as_str(), r.locator.as_str()), ("local", "DB_URL"));
        let r = parse("envfile:/x/y.env#K", &named(), &mut adhoc, None).unwrap();
        assert_eq!((r.source.as_str(), r.locator.as_str()), ("envfile", "K"));
        let r2 = parse("envfile:/x/y.env#L", &named(), &mut adhoc, None).unwrap();
        assert_eq!(r2.source, "envfile", "same file, same source");
        let r3 = parse("envfile:/other.env#L", &named(), &mut adhoc, None).unwrap();
        assert_ne!(r3.source, "envfile");
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let mut adhoc = Sources::new();
        let e = parse("locl:DB", &named(), &mut adhoc, None).unwrap_err();
        assert_eq!(e.span, 0..4);
        assert!(e.message.contains("did you mean \"local\""), "{}", e.message);
        assert!(e.pointed().contains("\n  ^^^^ unknown source"), "{}", e.pointed());
        let e = parse("local:", &named(), &mut adhoc, None).unwrap_err();
        assert_eq!(e.span, 6..6);
        let e = parse("no-colon", &named(), &mut adhoc, None).unwrap_err();
        assert!(e.message.contains("SOURCE:LOCATOR"));
    }
}
