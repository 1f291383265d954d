//! `type = "sops"`: SOPS-encrypted files, decrypted natively (no `sops`
//! binary at run time), with the MAC always verified.
//!
//! Formats: YAML (every document), JSON, dotenv, INI and binary, chosen by
//! the file's extension (`.yaml`/`.yml`, `.json`, `.env`, `.ini`, anything
//! else binary) or `format = "…"`. The data key comes from the file's age
//! recipients (key groups with a Shamir threshold included); other key types
//! (PGP, cloud KMS, Vault transit) are reported, not used.
//!
//! Locators (see docs/sops.md):
//! - `a.b.c` — a path of map keys; `list[2]` indexes a list; `\` makes the
//!   next character literal (`a\.b` is the key `a.b`, `\*`, `\[`, `\\`);
//! - `[N].a.b` — the same in YAML document N (documents count from 0;
//!   without it, document 0);
//! - `*` — every value of the document, `a.b.*` every value below `a.b`:
//!   nested keys and list indices joined by `__` (`db__host`, `hosts__0`);
//! - empty — the whole plaintext of a binary file.
//!
//! Bare references: `sops:/path/file.enc.yaml#a.b` (the first `#` ends the path).

mod cipher;
mod metadata;
mod shamir;
mod tree;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::age::{OneOrMany, load_identities};
use super::{Backend, Context, FailKind, FetchError, Fetched};
use crate::secret::Secret;
use cipher::{CipherError, Plain};
pub use tree::Format;

/// The separator between nested keys when `*` flattens a subtree.
pub const FLATTEN_SEPARATOR: &str = "__";

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    /// The encrypted file. Relative paths are relative to the mapping file.
    pub path: PathBuf,
    /// The file's format when its extension does not say it.
    pub format: Option<Format>,
    /// age identity files. When set, only these are used.
    pub identity_file: Option<OneOrMany>,
    /// Accept symlinks for identity files.
    #[serde(default)]
    pub follow_symlinks: bool,
}

impl Config {
    pub fn rebase(&mut self, base: &Path) {
        self.path = base.join(&self.path);
        if let Some(ids) = &mut self.identity_file {
            ids.rebase(base);
        }
    }

    fn format(&self) -> Format {
        self.format.unwrap_or_else(|| Format::from_path(&self.path))
    }
}

/// One step of a locator path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A parsed locator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locator {
    pub doc: usize,
    pub steps: Vec<Step>,
    /// Ends in `*`: every value below the path.
    pub all: bool,
    /// Empty: the whole plaintext (binary files).
    pub whole: bool,
}

fn parse_index(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<usize, String> {
    let mut digits = String::new();
    loop {
        match chars.next() {
            Some(c) if c.is_ascii_digit() => digits.push(c),
            Some(']') if !digits.is_empty() => break,
            _ => return Err("a list index is [digits], e.g. hosts[0]".into()),
        }
    }
    digits.parse().map_err(|_| "list index too large".into())
}

/// Parses a locator (no I/O). Err says what is wrong.
pub fn parse_locator(loc: &str) -> Result<Locator, String> {
    let mut out = Locator { doc: 0, steps: Vec::new(), all: false, whole: false };
    if loc.is_empty() {
        out.whole = true;
        return Ok(out);
    }
    let mut chars = loc.chars().peekable();
    if chars.peek() == Some(&'[') {
        chars.next();
        out.doc = parse_index(&mut chars)?;
        match chars.next() {
            None => return Err("after a document selector [N], give a path or *: [1].a.b, [1].*".into()),
            Some('.') => {}
            Some(_) => return Err("a document selector [N] is followed by a dot: [1].a.b".into()),
        }
    }
    loop {
        // One segment: a key, then any [N] indices.
        let mut key = String::new();
        let mut literal = false;
        while let Some(&c) = chars.peek() {
            match c {
                '\\' => {
                    chars.next();
                    key.push(chars.next().ok_or("a trailing \\ escapes nothing")?);
                    literal = true;
                }
                '.' | '[' => break,
                _ => {
                    chars.next();
                    key.push(c);
                }
            }
        }
        if key == "*" && !literal {
            if chars.peek().is_some() {
                return Err("* must be the last part of the path".into());
            }
            out.all = true;
            return Ok(out);
        }
        if key.is_empty() {
            return Err("empty key in the path (use \\. for a dot inside a key)".into());
        }
        out.steps.push(Step::Key(key));
        while chars.peek() == Some(&'[') {
            chars.next();
            out.steps.push(Step::Index(parse_index(&mut chars)?));
        }
        match chars.next() {
            None => return Ok(out),
            Some('.') => {}
            Some(_) => return Err("expected . or [ after a list index".into()),
        }
    }
}

pub fn check_locator(locator: &str) -> Result<(), String> {
    parse_locator(locator).map(|_| ())
}

pub fn adhoc(rest: &str) -> Result<(Config, String), String> {
    let (path, loc) = super::split_file_reference(rest, true, "sops:/path/to/file.enc.yaml#a.b")?;
    check_locator(&loc)?;
    Ok((Config { path, format: None, identity_file: None, follow_symlinks: false }, loc))
}

fn describe_path(loc: &Locator, upto: usize) -> String {
    let mut s = if loc.doc > 0 { format!("[{}]", loc.doc) } else { String::new() };
    for step in &loc.steps[..upto] {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                for c in k.chars() {
                    if matches!(c, '.' | '[' | '\\' | '*') {
                        s.push('\\');
                    }
                    s.push(c);
                }
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// INI sections that appear more than once (sops always writes an empty
/// `DEFAULT` first) become one: keys in file order, a later key wins.
fn merge_sections(doc: Plain) -> Plain {
    let Plain::Map(sections) = doc else { return doc };
    let mut out: Vec<(String, Plain)> = Vec::new();
    for (name, section) in sections {
        let Plain::Map(items) = section else {
            out.push((name, section));
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, Plain::Map(existing))) => {
                for (k, v) in items {
                    match existing.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(slot) => slot.1 = v,
                        None => existing.push((k, v)),
                    }
                }
            }
            _ => out.push((name, Plain::Map(items))),
        }
    }
    Plain::Map(out)
}

fn flatten(node: &Plain, prefix: &str, out: &mut Vec<(String, Secret)>) {
    let join =
        |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}{FLATTEN_SEPARATOR}{k}") };
    match node {
        Plain::Leaf(v) => out.push((prefix.to_owned(), v.clone())),
        Plain::Map(items) => items.iter().for_each(|(k, v)| flatten(v, &join(k), out)),
        Plain::List(items) => {
            items.iter().enumerate().for_each(|(i, v)| flatten(v, &join(&i.to_string()), out))
        }
    }
}

pub struct SopsFile {
    config: Config,
    used_vars: std::sync::Mutex<Vec<String>>,
}

impl SopsFile {
    pub fn new(_name: &str, config: Config) -> Self {
        Self { config, used_vars: std::sync::Mutex::new(Vec::new()) }
    }

    /// Reads, decrypts and MAC-checks every document of the file.
    fn decrypt(&self) -> Result<Vec<Plain>, FetchError> {
        let path = &self.config.path;
        let shown = path.display().to_string();
        let format = self.config.format();
        let bytes = std::fs::read(path)
            .map_err(|e| FetchError::new(FailKind::NotFound, format!("cannot read {shown}: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            FetchError::new(
                FailKind::Corrupt,
                format!("{shown}: not UTF-8 text, so not a SOPS {} file", format.name()),
            )
        })?;
        let corrupt = |m: String| {
            FetchError::new(FailKind::Corrupt, format!("{shown} ({} format): {m}", format.name())).with_hint(
                "check the file is SOPS-encrypted in this format; set format = \"yaml|json|dotenv|ini|binary\" if its extension misleads",
            )
        };
        let mut docs = tree::read(format, text).map_err(|e| corrupt(e.0))?;
        let md = metadata::extract(format, &mut docs).map_err(corrupt)?;
        let key = self.data_key(&md, &shown)?;
        let plain = cipher::decrypt_documents(
            &docs,
            &key,
            &md.rule,
            md.mac_only_encrypted,
            &md.mac,
            &md.lastmodified,
        )
        .map_err(|e| {
            let detail = match e {
                CipherError::Value { path, what } => format!("value at {path}: {what}"),
                CipherError::Mac(m) => m,
            };
            FetchError::new(FailKind::Corrupt, format!("{shown}: file modified or corrupted: {detail}"))
                .with_hint("restore the file from version control, or re-encrypt it with sops")
        })?;
        Ok(if format == Format::Ini { plain.into_iter().map(merge_sections).collect() } else { plain })
    }

    /// Recovers the 32-byte data key from the age recipients.
    fn data_key(
        &self,
        md: &metadata::Metadata,
        shown: &str,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, FetchError> {
        let explicit = self.config.identity_file.as_ref().map_or(&[][..], |i| i.paths());
        let has_age = md.groups.iter().any(|g| !g.age.is_empty());
        let mut others: Vec<&str> = md.groups.iter().flat_map(|g| g.other.iter().copied()).collect();
        others.sort_unstable();
        others.dedup();
        let only_age = || {
            FetchError::new(
                FailKind::Auth,
                format!(
                    "{shown}: its data key is encrypted only to {} key(s); secretexec supports only age",
                    others.join(", ")
                ),
            )
            .with_hint(
                "add an age recipient to the file: sops updatekeys, or sops -r -i --add-age RECIPIENT FILE",
            )
        };
        if !has_age {
            return Err(only_age());
        }
        let ids = load_identities(explicit, self.config.follow_symlinks)?;
        self.used_vars
            .lock()
            .expect("no panics while holding the lock")
            .extend(ids.credential_vars.iter().cloned());
        let refs: Vec<&dyn age::Identity> =
            ids.keys.iter().map(|k| k.as_ref() as &dyn age::Identity).collect();
        let mut parts: Vec<Secret> = Vec::new();
        let mut last_err = None;
        for g in &md.groups {
            for k in &g.age {
                match super::age::decrypt(
                    k.enc.as_bytes(),
                    &refs,
                    &format!("{shown}: data key for {}", k.recipient),
                    &ids.places,
                ) {
                    Ok(part) => {
                        parts.push(part);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
        }
        let threshold = if md.groups.len() > 1 { md.shamir_threshold.max(1) } else { 1 };
        let key = if md.groups.len() > 1 {
            if parts.len() < threshold {
                let recipients: Vec<&str> =
                    md.groups.iter().flat_map(|g| g.age.iter().map(|k| k.recipient.as_str())).collect();
                return Err(FetchError::new(
                    FailKind::Auth,
                    format!(
                        "{shown}: the age identities ({}) open {} of {} key groups, {threshold} needed (recipients: {}){}",
                        ids.places.join(", "),
                        parts.len(),
                        md.groups.len(),
                        recipients.join(", "),
                        if others.is_empty() {
                            String::new()
                        } else {
                            format!("; other key types, not supported: {}", others.join(", "))
                        },
                    ),
                ));
            }
            let shares: Vec<&[u8]> = parts.iter().map(|p| p.expose()).collect();
            let k = shamir::combine(&shares).map_err(|m| {
                FetchError::new(FailKind::Corrupt, format!("{shown}: the data key shares: {m}"))
            })?;
            Secret::copy_from(&k)
        } else {
            match parts.pop() {
                Some(k) => k,
                None => {
                    let recipients: Vec<&str> =
                        md.groups[0].age.iter().map(|k| k.recipient.as_str()).collect();
                    let mut e = last_err.unwrap_or_else(only_age);
                    if e.kind == FailKind::Auth {
                        e.message = format!(
                            "{shown}: none of the age identities ({}) is a recipient of this file (recipients: {}){}",
                            ids.places.join(", "),
                            recipients.join(", "),
                            if others.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "; it also has {} keys, which secretexec does not support (only age)",
                                    others.join(", ")
                                )
                            },
                        );
                    }
                    return Err(e);
                }
            }
        };
        let key: [u8; 32] = key.expose().try_into().map_err(|_| {
            FetchError::new(
                FailKind::Corrupt,
                format!("{shown}: the data key is {} bytes, expected 32", key.len()),
            )
        })?;
        Ok(zeroize::Zeroizing::new(key))
    }
}

fn answer(docs: &[Plain], loc: &str, format: Format, shown: &str) -> Result<Fetched, FetchError> {
    let loc = parse_locator(loc).map_err(|m| FetchError::new(FailKind::Local, m))?;
    let not_found = |m: String| FetchError::new(FailKind::NotFound, format!("{shown}: {m}"));
    if loc.whole {
        if format != Format::Binary {
            return Err(FetchError::new(
                FailKind::Local,
                format!(
                    "{shown}: an empty locator means the whole plaintext, which only binary SOPS files have; name a key or use *"
                ),
            ));
        }
        return answer(docs, "data", format, shown);
    }
    let Some(mut node) = docs.get(loc.doc) else {
        return Err(not_found(format!("has {} document(s), no document {}", docs.len(), loc.doc)));
    };
    for (i, step) in loc.steps.iter().enumerate() {
        node = match (node, step) {
            (Plain::Map(items), Step::Key(k)) => match items.iter().find(|(ik, _)| ik == k) {
                Some((_, v)) => v,
                None => return Err(not_found(format!("{} not found", describe_path(&loc, i + 1)))),
            },
            (Plain::List(items), Step::Index(n)) => match items.get(*n) {
                Some(v) => v,
                None => {
                    return Err(not_found(format!(
                        "{} not found ({} has {} items)",
                        describe_path(&loc, i + 1),
                        if i == 0 { "the document".to_owned() } else { describe_path(&loc, i) },
                        items.len()
                    )));
                }
            },
            (Plain::List(_), Step::Key(_)) => {
                return Err(not_found(format!("{} is a list; index it with [N]", describe_path(&loc, i))));
            }
            (_, _) => return Err(not_found(format!("{} is not a list or map", describe_path(&loc, i)))),
        };
    }
    if loc.all {
        let mut out = Vec::new();
        match node {
            Plain::Leaf(_) => {
                return Err(not_found(format!(
                    "{} is a single value; drop the .*",
                    describe_path(&loc, loc.steps.len())
                )));
            }
            _ => flatten(node, "", &mut out),
        }
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &out {
            if !seen.insert(k.as_str()) {
                return Err(FetchError::new(
                    FailKind::Local,
                    format!(
                        "{shown}: two values flatten to the name {k} (nested keys are joined with {FLATTEN_SEPARATOR})"
                    ),
                ));
            }
        }
        return Ok(Fetched::Many(out));
    }
    match node {
        Plain::Leaf(v) => Ok(Fetched::One(v.clone())),
        Plain::Map(_) | Plain::List(_) => Err(FetchError::new(
            FailKind::Local,
            format!(
                "{shown}: {} is a {}, not a single value; name a key below it, or import it with {}.*",
                describe_path(&loc, loc.steps.len()),
                if matches!(node, Plain::Map(_)) { "map" } else { "list" },
                describe_path(&loc, loc.steps.len())
            ),
        )),
    }
}

impl Backend for SopsFile {
    fn fetch(&self, _ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>> {
        let docs = match self.decrypt() {
            Ok(d) => d,
            Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
        };
        let shown = self.config.path.display().to_string();
        locators.iter().map(|loc| answer(&docs, loc, self.config.format(), &shown)).collect()
    }

    fn credential_vars(&self) -> Vec<String> {
        self.used_vars.lock().expect("no panics while holding the lock").clone()
    }

    fn describe(&self) -> Option<String> {
        Some(format!("sops {} file {}", self.config.format().name(), self.config.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(loc: &str) -> Vec<Step> {
        parse_locator(loc).unwrap().steps
    }

    #[test]
    fn locator_grammar() {
        let k = |s: &str| Step::Key(s.into());
        assert_eq!(keys("a.b"), [k("a"), k("b")]);
        assert_eq!(keys("a\\.b.c"), [k("a.b"), k("c")]);
        assert_eq!(keys("hosts[1].name"), [k("hosts"), Step::Index(1), k("name")]);
        assert_eq!(keys("m[0][2]"), [k("m"), Step::Index(0), Step::Index(2)]);
        assert_eq!(keys("\\*"), [k("*")]);
        assert_eq!(keys("a\\\\"), [k("a\\")]);
        let l = parse_locator("[2].db.*").unwrap();
        assert_eq!((l.doc, l.all, l.steps), (2, true, vec![k("db")]));
        assert!(parse_locator("*").unwrap().all);
        assert!(parse_locator("").unwrap().whole);
        for bad in ["a..b", ".a", "a.", "a[x]", "a[1]b", "*.a", "[1]", "a\\"] {
            assert!(parse_locator(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn describe_round_trips() {
        for loc in ["a\\.b.c", "[1].x[0].y", "k\\*"] {
            let l = parse_locator(loc).unwrap();
            assert_eq!(describe_path(&l, l.steps.len()), loc);
        }
    }
}
