//! The document tree of a SOPS file, as sops itself sees it, and the readers
//! that build it from each on-disk format.
//!
//! Keys stay in file order. Scalars keep sops's typing (str, int, float,
//! bool, null) because the MAC hashes each value in sops's own canonical
//! text (`True`/`False`, shortest float digits). Comments are not part of
//! the tree: the MAC never covers them.

use std::fmt;

/// A node of one document.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Scalar(Scalar),
}

/// A leaf as sops types it. Int and Float hold sops's canonical text.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(String),
    Float(String),
    Bool(bool),
    Null,
}

/// The on-disk formats sops writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// As sops chooses: by the file's last extension, binary otherwise.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

/// A file that does not parse in its format. Never carries a value.
#[derive(Debug)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// sops's canonical text of a float (Go `strconv.FormatFloat(v, 'f', -1, 64)`):
/// shortest round-trip digits, never an exponent.
pub fn canonical_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Reads the documents of `text` in `format`. Binary files are JSON.
pub fn read(format: Format, text: &str) -> Result<Vec<Node>, ParseError> {
    match format {
        Format::Yaml => read_yaml(text),
        Format::Json | Format::Binary => read_json(text).map(|n| vec![n]),
        Format::Dotenv => Ok(vec![read_dotenv(text)]),
        Format::Ini => read_ini(text).map(|n| vec![n]),
    }
}

fn read_yaml(text: &str) -> Result<Vec<Node>, ParseError> {
    use yaml_rust2::Yaml;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| {
        let m = e.marker();
        ParseError(format!("invalid YAML at line {} column {}: {}", m.line(), m.col() + 1, e.info()))
    })?;
    fn convert(y: Yaml) -> Result<Node, ParseError> {
        Ok(match y {
            Yaml::Hash(h) => {
                let mut out = Vec::with_capacity(h.len());
                for (k, v) in h {
                    let Yaml::String(k) = k else {
                        return Err(ParseError(format!(
                            "non-string key {}: sops supports only string keys",
                            key_label(&k)
                        )));
                    };
                    out.push((k, convert(v)?));
                }
                Node::Map(out)
            }
            Yaml::Array(a) => Node::List(a.into_iter().map(convert).collect::<Result<_, _>>()?),
            Yaml::String(s) => Node::Scalar(Scalar::Str(s)),
            Yaml::Integer(i) => Node::Scalar(Scalar::Int(i.to_string())),
            Yaml::Real(r) => {
                let v = parse_yaml_float(&r).ok_or_else(|| ParseError("unreadable float".into()))?;
                Node::Scalar(Scalar::Float(canonical_float(v)))
            }
            Yaml::Boolean(b) => Node::Scalar(Scalar::Bool(b)),
            Yaml::Null => Node::Scalar(Scalar::Null),
            Yaml::Alias(_) | Yaml::BadValue => {
                return Err(ParseError("unresolvable YAML alias or tagged value".into()));
            }
        })
    }
    docs.into_iter()
        .map(|d| match d {
            // An empty document, or one holding only `null`, is an empty mapping to sops.
            Yaml::BadValue | Yaml::Null => Ok(Node::Map(Vec::new())),
            Yaml::Hash(_) => convert(d),
            _ => Err(ParseError("a YAML document must be a mapping".into())),
        })
        .collect()
}

fn key_label(k: &yaml_rust2::Yaml) -> String {
    use yaml_rust2::Yaml;
    match k {
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Null => "null".into(),
        _ => "(complex key)".into(),
    }
}

fn parse_yaml_float(r: &str) -> Option<f64> {
    match r {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => r.replace('_', "").parse().ok(),
    }
}

fn read_json(text: &str) -> Result<Node, ParseError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ParseError(format!("invalid JSON at line {} column {} ({:?})", e.line(), e.column(), e.classify()))
    })?;
    fn convert(v: serde_json::Value) -> Result<Node, ParseError> {
        use serde_json::Value as V;
        Ok(match v {
            V::Object(m) => {
                Node::Map(m.into_iter().map(|(k, v)| Ok((k, convert(v)?))).collect::<Result<_, _>>()?)
            }
            V::Array(a) => Node::List(a.into_iter().map(convert).collect::<Result<_, _>>()?),
            V::String(s) => Node::Scalar(Scalar::Str(s)),
            V::Bool(b) => Node::Scalar(Scalar::Bool(b)),
            V::Null => Node::Scalar(Scalar::Null),
            // As sops: an integer when it fits in int64, else a float64.
            V::Number(n) => {
                let text = n.to_string();
                if let Ok(i) = text.parse::<i64>() {
                    Node::Scalar(Scalar::Int(i.to_string()))
                } else {
                    let f: f64 = text.parse().map_err(|_| ParseError("unreadable JSON number".into()))?;
                    Node::Scalar(Scalar::Float(canonical_float(f)))
                }
            }
        })
    }
    match v {
        serde_json::Value::Object(_) => convert(v),
        _ => Err(ParseError("a SOPS JSON file must hold an object at the top level".into())),
    }
}

/// sops's own dotenv reading, which is not the usual dotenv syntax: lines
/// split at `\n`, `#` lines are comments, the key is everything before the
/// first `=`, the value everything after it with `\n` (backslash, n) turned
/// into a newline. No quotes, no trimming.
fn read_dotenv(text: &str) -> Node {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.push((k.to_owned(), Node::Scalar(Scalar::Str(v.replace("\\n", "\n"))))),
            // sops refuses such a line; keep the key so the MAC check fails loudly.
            None => out.push((line.to_owned(), Node::Scalar(Scalar::Null))),
        }
    }
    Node::Map(out)
}

/// The INI files sops writes (go-ini): `[section]` headers, `key = value`
/// (or `key: value`), `;`/`#` comment lines, values optionally wrapped in
/// `"""…"""` (may span lines), backticks, or double quotes. Keys before any
/// header belong to the `DEFAULT` section, which always comes first.
fn read_ini(text: &str) -> Result<Node, ParseError> {
    let mut sections: Vec<(String, Vec<(String, Node)>)> = vec![("DEFAULT".into(), Vec::new())];
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(ParseError(format!("line {}: unclosed section header", n + 1)));
            };
            // Repeated sections stay separate, as go-ini keeps them for sops (the MAC
            // follows this order); lookups merge them (see `merge_sections`).
            sections.push((rest[..end].trim().to_owned(), Vec::new()));
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else {
            return Err(ParseError(format!("line {}: expected key = value", n + 1)));
        };
        let key = line[..pos].trim().to_owned();
        let rest = line[pos + 1..].trim_start();
        let value = if let Some(body) = rest.strip_prefix("\"\"\"") {
            match body.find("\"\"\"") {
                Some(end) => body[..end].to_owned(),
                None => {
                    let mut v = body.to_owned();
                    loop {
                        let Some((_, next)) = lines.next() else {
                            return Err(ParseError(format!("line {}: unterminated \"\"\" value", n + 1)));
                        };
                        v.push('\n');
                        if let Some(end) = next.find("\"\"\"") {
                            v.push_str(&next[..end]);
                            break;
                        }
                        v.push_str(next);
                    }
                    v
                }
            }
        } else if let Some(body) = rest.strip_prefix('`') {
            match body.rfind('`') {
                Some(end) => body[..end].to_owned(),
                None => return Err(ParseError(format!("line {}: unterminated ` value", n + 1))),
            }
        } else {
            let mut v = rest.trim();
            if let Some(i) = v.find(['#', ';']) {
                v = v[..i].trim();
            }
            if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
            {
                v = &v[1..v.len() - 1];
            }
            v.to_owned()
        };
        let section = &mut sections.last_mut().expect("DEFAULT is always present").1;
        match section.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = Node::Scalar(Scalar::Str(value)),
            None => section.push((key, Node::Scalar(Scalar::Str(value)))),
        }
    }
    Ok(Node::Map(sections.into_iter().map(|(name, items)| (name, Node::Map(items))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_formats_them() {
        for (v, want) in
            [(1.5, "1.5"), (1.0, "1"), (1e21, "1000000000000000000000"), (0.1, "0.1"), (-2.25, "-2.25")]
        {
            assert_eq!(canonical_float(v), want);
        }
    }

    #[test]
    fn sops_dotenv_is_not_shell_dotenv() {
        let n = read_dotenv("#c\nA=\"q\" x\nB=a\\nb\n\nC==\n");
        let Node::Map(m) = n else { panic!() };
        let vals: Vec<_> = m
            .iter()
            .map(|(k, v)| match v {
                Node::Scalar(Scalar::Str(s)) => (k.as_str(), s.as_str()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(vals, [("A", "\"q\" x"), ("B", "a\nb"), ("C", "=")]);
    }

    #[test]
    fn yaml_keeps_order_and_types() {
        let docs = read_yaml("b: 1\na: [x, 2.50, true, null]\n---\nc: ''\n").unwrap();
        assert_eq!(docs.len(), 2);
        let Node::Map(m) = &docs[0] else { panic!() };
        assert_eq!(m[0].0, "b");
        assert_eq!(m[0].1, Node::Scalar(Scalar::Int("1".into())));
        let Node::List(l) = &m[1].1 else { panic!() };
        assert_eq!(l[1], Node::Scalar(Scalar::Float("2.5".into())));
        assert_eq!(l[2], Node::Scalar(Scalar::Bool(true)));
        assert_eq!(l[3], Node::Scalar(Scalar::Null));
    }
}
