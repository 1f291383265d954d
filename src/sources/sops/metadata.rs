//! The `sops` metadata block: where the data key is, the MAC, and the rule
//! that says which values are encrypted. Nested under a `sops` key in
//! YAML/JSON/binary files, flattened (`sops_age__list_0__map_enc`) in dotenv
//! files, flattened below a `[sops]` section in INI files.

use super::tree::{Format, Node, Scalar};

/// One age recipient's copy of the data key (or of a Shamir share).
#[derive(Debug)]
pub struct AgeKey {
    pub recipient: String,
    pub enc: String,
}

/// The master keys of one key group.
#[derive(Debug, Default)]
pub struct KeyGroup {
    pub age: Vec<AgeKey>,
    /// Master keys of other types (`pgp`, `kms`, …), by type name.
    pub other: Vec<&'static str>,
}

/// Which values of the tree are encrypted (exactly one rule applies).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    /// A regex rule (`unencrypted_regex`, `encrypted_regex`, or one of the
    /// comment regexes): a value is taken as encrypted when it has the
    /// `ENC[AES256_GCM,…]` form. The MAC still covers every value, so a
    /// value moved between forms fails the check (see docs/sops.md).
    ByForm(&'static str),
}

#[derive(Debug)]
pub struct Metadata {
    pub groups: Vec<KeyGroup>,
    pub shamir_threshold: usize,
    pub lastmodified: String,
    pub mac: String,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
}

const OTHER_KEY_TYPES: &[&str] = &["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

/// Removes the metadata from `docs` and parses it. Err is a message naming
/// the missing or malformed field.
pub fn extract(format: Format, docs: &mut [Node]) -> Result<Metadata, String> {
    let tree = match format {
        Format::Dotenv => {
            let Some(Node::Map(first)) = docs.first_mut() else {
                return Err("the sops metadata (sops_* keys) is missing".into());
            };
            let mut flat = Vec::new();
            first.retain(|(k, v)| match k.strip_prefix("sops_") {
                Some(rest) => {
                    flat.push((rest.to_owned(), v.clone()));
                    false
                }
                None => true,
            });
            if flat.is_empty() {
                return Err("the sops metadata (sops_* keys) is missing: not a SOPS-encrypted file".into());
            }
            unflatten(flat)?
        }
        _ => {
            let mut found = None;
            for (i, doc) in docs.iter_mut().enumerate() {
                if let Node::Map(m) = doc {
                    while let Some(pos) = m.iter().position(|(k, _)| k == "sops") {
                        let (_, v) = m.remove(pos);
                        if i == 0 {
                            if found.is_some() {
                                return Err("duplicate sops metadata entry".into());
                            }
                            found = Some(v);
                        }
                    }
                }
            }
            let Some(tree) = found else {
                return Err("the sops metadata key is missing: not a SOPS-encrypted file".into());
            };
            if format == Format::Ini {
                let Node::Map(items) = tree else {
                    return Err("the [sops] section is malformed".into());
                };
                let items = items
                    .into_iter()
                    .map(|(k, v)| match v {
                        Node::Scalar(Scalar::Str(s)) => {
                            (k, Node::Scalar(Scalar::Str(s.replace("\\n", "\n"))))
                        }
                        other => (k, other),
                    })
                    .collect();
                unflatten(items)?
            } else {
                tree
            }
        }
    };
    parse(&tree)
}

enum Tok {
    Key(String),
    Index(usize),
}

/// sops's flattened keys: `a__map_b__list_0` is `a` → `b` → `[0]`.
fn tokenize(key: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut rest = key;
    let mut kind_is_list = false;
    loop {
        let next_map = rest.find("__map_");
        let next_list = rest.find("__list_");
        let (end, sep_len, next_is_list) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, 7, true),
            (Some(m), _) => (m, 6, false),
            (None, Some(l)) => (l, 7, true),
            (None, None) => (rest.len(), 0, false),
        };
        let part = &rest[..end];
        toks.push(if kind_is_list {
            Tok::Index(part.parse().map_err(|_| format!("bad list index in metadata key {key:?}"))?)
        } else {
            Tok::Key(part.to_owned())
        });
        if sep_len == 0 {
            return Ok(toks);
        }
        kind_is_list = next_is_list;
        rest = &rest[end + sep_len..];
    }
}

fn unflatten(items: Vec<(String, Node)>) -> Result<Node, String> {
    let mut root = Node::Map(Vec::new());
    for (key, value) in items {
        let toks = tokenize(&key)?;
        let mut cur = &mut root;
        for (i, t) in toks.iter().enumerate() {
            let last = i + 1 == toks.len();
            let fresh = || -> Node {
                if last {
                    value.clone()
                } else {
                    match toks[i + 1] {
                        Tok::Key(_) => Node::Map(Vec::new()),
                        Tok::Index(_) => Node::List(Vec::new()),
                    }
                }
            };
            cur = match (cur, t) {
                (Node::Map(m), Tok::Key(k)) => {
                    let pos = match m.iter().position(|(mk, _)| mk == k) {
                        Some(p) => p,
                        None => {
                            m.push((k.clone(), fresh()));
                            m.len() - 1
                        }
                    };
                    &mut m[pos].1
                }
                (Node::List(l), Tok::Index(n)) => {
                    while l.len() <= *n {
                        l.push(Node::Scalar(Scalar::Null));
                    }
                    if l[*n] == Node::Scalar(Scalar::Null) {
                        l[*n] = fresh();
                    }
                    &mut l[*n]
                }
                _ => return Err(format!("metadata key {key:?} mixes maps and lists")),
            };
        }
    }
    Ok(root)
}

fn get<'a>(map: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn text(map: &[(String, Node)], key: &str) -> Option<String> {
    match get(map, key)? {
        Node::Scalar(Scalar::Str(s)) => Some(s.clone()),
        Node::Scalar(Scalar::Int(s) | Scalar::Float(s)) => Some(s.clone()),
        Node::Scalar(Scalar::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn group_from(map: &[(String, Node)]) -> Result<KeyGroup, String> {
    let mut g = KeyGroup::default();
    if let Some(Node::List(ages)) = get(map, "age") {
        for a in ages {
            let Node::Map(a) = a else { return Err("an age entry is not a mapping".into()) };
            g.age.push(AgeKey {
                recipient: text(a, "recipient").unwrap_or_default(),
                enc: text(a, "enc").ok_or("an age entry has no enc field")?,
            });
        }
    }
    for t in OTHER_KEY_TYPES {
        if let Some(Node::List(l)) = get(map, t)
            && !l.is_empty()
        {
            g.other.push(t);
        }
    }
    Ok(g)
}

fn parse(tree: &Node) -> Result<Metadata, String> {
    let Node::Map(m) = tree else { return Err("the sops metadata is not a mapping".into()) };
    let mut groups = Vec::new();
    let top = group_from(m)?;
    if !top.age.is_empty() || !top.other.is_empty() {
        groups.push(top);
    } else if let Some(Node::List(kg)) = get(m, "key_groups") {
        for g in kg {
            let Node::Map(g) = g else { return Err("a key group is not a mapping".into()) };
            groups.push(group_from(g)?);
        }
    }
    if groups.is_empty() {
        return Err("the sops metadata lists no keys".into());
    }
    let shamir_threshold = match text(m, "shamir_threshold") {
        Some(t) => t.parse().map_err(|_| "shamir_threshold is not a number")?,
        None => 0,
    };
    let lastmodified = text(m, "lastmodified").ok_or("the sops metadata has no lastmodified")?;
    let mac = text(m, "mac").unwrap_or_default();
    let mac_only_encrypted = matches!(text(m, "mac_only_encrypted").as_deref(), Some("true" | "True" | "1"));
    let mut rules = Vec::new();
    for (field, make) in [
        ("unencrypted_suffix", Rule::UnencryptedSuffix as fn(String) -> Rule),
        ("encrypted_suffix", Rule::EncryptedSuffix),
    ] {
        if let Some(v) = text(m, field).filter(|v| !v.is_empty()) {
            rules.push(make(v));
        }
    }
    for field in
        ["unencrypted_regex", "encrypted_regex", "unencrypted_comment_regex", "encrypted_comment_regex"]
    {
        if text(m, field).is_some_and(|v| !v.is_empty()) {
            rules.push(Rule::ByForm(field));
        }
    }
    if rules.len() > 1 {
        return Err("the sops metadata sets more than one encryption rule".into());
    }
    let rule = rules.pop().unwrap_or_else(|| Rule::UnencryptedSuffix("_unencrypted".into()));
    Ok(Metadata { groups, shamir_threshold, lastmodified, mac, rule, mac_only_encrypted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unflattens_dotenv_metadata() {
        let s = |v: &str| Node::Scalar(Scalar::Str(v.into()));
        let items = vec![
            ("age__list_0__map_recipient".into(), s("age1a")),
            ("age__list_0__map_enc".into(), s("E0")),
            ("age__list_1__map_recipient".into(), s("age1b")),
            ("age__list_1__map_enc".into(), s("E1")),
            ("lastmodified".into(), s("2024-01-01T00:00:00Z")),
            ("mac".into(), s("M")),
        ];
        let md = parse(&unflatten(items).unwrap()).unwrap();
        assert_eq!(md.groups.len(), 1);
        assert_eq!(md.groups[0].age[1].enc, "E1");
        assert_eq!(md.rule, Rule::UnencryptedSuffix("_unencrypted".into()));
    }
}
