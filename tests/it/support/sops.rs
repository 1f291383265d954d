//! Helpers for the age and SOPS suites: age keys made by the real
//! `age-keygen`, files encrypted and decrypted by the real `sops`, a small
//! seeded PRNG and a random-document generator.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{TestDir, tool};

/// An age key pair made by `age-keygen`, its identity file at mode 0600.
pub struct AgeKey {
    pub identity: PathBuf,
    pub recipient: String,
    /// The `AGE-SECRET-KEY-1…` line.
    pub secret: String,
}

pub fn age_keygen(dir: &TestDir, name: &str) -> AgeKey {
    let identity = dir.join(name);
    let out = Command::new(tool("age-keygen")).arg("-o").arg(&identity).output().expect("run age-keygen");
    assert!(out.status.success(), "age-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(
        &identity,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let text = std::fs::read_to_string(&identity).unwrap();
    let secret =
        text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).expect("a secret key line").to_owned();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key as a comment")
        .to_owned();
    AgeKey { identity, recipient, secret }
}

/// Runs the real sops with a clean environment plus `env`; panics on failure.
pub fn sops(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Vec<u8> {
    // Finding the bundled binary asks python; once per test process is enough.
    static SOPS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let mut cmd = Command::new(SOPS.get_or_init(|| tool("sops")));
    cmd.env_clear().current_dir(cwd).args(args);
    cmd.env("HOME", cwd).env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sops");
    assert!(out.status.success(), "sops {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `SOPS_AGE_KEY` holding several keys, as sops and secretexec both read it.
pub fn key_env(keys: &[&AgeKey]) -> String {
    keys.iter().map(|k| k.secret.as_str()).collect::<Vec<_>>().join("\n")
}

/// xorshift64*: small, seeded, good enough to vary test documents.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A generated document value.
#[derive(Clone, Debug)]
pub enum Gen {
    Map(Vec<(String, Gen)>),
    List(Vec<Gen>),
    Str(String),
    Int(i64),
    /// Written as this text (kept to a range where Go and Rust print alike).
    Float(String),
    Bool(bool),
    Null,
}

const KEY_POOL: &[&str] = &[
    "password",
    "user",
    "host",
    "port",
    "ключ",
    "日本語",
    "emoji🙂",
    "with space",
    "a.b",
    "x[1]",
    "*",
    "back\\slash",
    "UPPER",
    "mixed_Case-1",
    "123",
    "true",
    "tab\tkey",
    "quote\"d",
    "sops_not_meta",
];

const STR_POOL: &[&str] = &[
    "",
    "plain",
    "ünïcødé ✓",
    "multi\nline\nvalue",
    "trailing newline\n",
    "  spaced  ",
    "123",
    "true",
    "null",
    "quote\" and 'apos'",
    "back\\slash",
    "ENC[not really]",
    "$HOME and ${VAR}",
    "tab\there",
    "日本語のテキスト",
    "🙂🙃",
    "# not a comment",
    "key: value",
    super::CANARY,
];

impl Gen {
    fn scalar(rng: &mut Rng, strings_only: bool) -> Gen {
        if strings_only {
            return Gen::Str(Self::string(rng));
        }
        match rng.below(11) {
            10 => Gen::Null,
            0 => Gen::Int(rng.next() as i64 >> rng.below(60)),
            1 => Gen::Float(format!("{}.{}{}", rng.below(100_000), rng.below(10), 1 + rng.below(9))),
            2 => Gen::Bool(rng.chance(50)),
            _ => Gen::Str(Self::string(rng)),
        }
    }

    pub fn string(rng: &mut Rng) -> String {
        if rng.chance(30) {
            let n = rng.below(40);
            (0..n).map(|_| char::from(b' ' + rng.below(95) as u8)).collect()
        } else {
            (*rng.pick(STR_POOL)).to_owned()
        }
    }

    fn key(rng: &mut Rng, taken: &[(String, Gen)]) -> String {
        loop {
            let k = if rng.chance(25) {
                format!("k{}", rng.below(1000))
            } else {
                (*rng.pick(KEY_POOL)).to_owned()
            };
            if !taken.iter().any(|(t, _)| *t == k) {
                return k;
            }
        }
    }

    /// A random mapping with nested maps and lists, `depth` levels deep.
    pub fn document(rng: &mut Rng, depth: usize) -> Gen {
        let n = 1 + rng.below(6);
        let mut items = Vec::new();
        for _ in 0..n {
            let k = Self::key(rng, &items);
            let v = Self::value(rng, depth);
            items.push((k, v));
        }
        Gen::Map(items)
    }

    fn value(rng: &mut Rng, depth: usize) -> Gen {
        if depth == 0 {
            return Self::scalar(rng, false);
        }
        match rng.below(6) {
            0 => Self::document(rng, depth - 1),
            1 => Gen::List((0..rng.below(4)).map(|_| Self::value(rng, depth - 1)).collect()),
            _ => Self::scalar(rng, false),
        }
    }

    /// A flat mapping of strings, with keys from `keys`.
    pub fn flat(rng: &mut Rng, keys: &[&str], value: impl Fn(&mut Rng) -> String) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let k = (*rng.pick(keys)).to_owned();
            if !out.iter().any(|(t, _)| *t == k) {
                let v = value(rng);
                out.push((k, v));
            }
        }
        out
    }

    /// JSON text (also valid YAML).
    pub fn to_json(&self) -> String {
        match self {
            Gen::Map(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|(k, v)| format!("{}: {}", serde_json::Value::String(k.clone()), v.to_json()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Gen::List(items) => {
                format!("[{}]", items.iter().map(Gen::to_json).collect::<Vec<_>>().join(", "))
            }
            Gen::Str(s) => serde_json::Value::String(s.clone()).to_string(),
            Gen::Int(i) => i.to_string(),
            Gen::Float(f) => f.clone(),
            Gen::Bool(b) => b.to_string(),
            Gen::Null => "null".into(),
        }
    }
}

/// Escapes a key for a secretexec sops locator.
pub fn escape_key(k: &str) -> String {
    let mut s = String::new();
    for c in k.chars() {
        if matches!(c, '.' | '[' | '\\' | '*') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// Every leaf of a parsed `sops -d` output (a serde_json tree): the
/// secretexec locator that names it and its value as a string.
pub fn json_leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    use serde_json::Value as V;
    match v {
        V::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() || prefix.ends_with('.') {
                    format!("{prefix}{}", escape_key(k))
                } else {
                    format!("{prefix}.{}", escape_key(k))
                };
                json_leaves(v, &p, out);
            }
        }
        V::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                json_leaves(v, &format!("{prefix}[{i}]"), out);
            }
        }
        V::String(s) => out.push((prefix.to_owned(), s.clone())),
        V::Number(n) => out.push((prefix.to_owned(), n.to_string())),
        V::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
        V::Null => out.push((prefix.to_owned(), String::new())),
    }
}

/// Every leaf of a `sops -d` YAML output (all documents; document N > 0 is
/// addressed with a `[N].` prefix).
pub fn yaml_leaves(text: &str) -> Vec<(String, String)> {
    use yaml_rust2::Yaml;
    fn walk(y: &Yaml, prefix: &str, out: &mut Vec<(String, String)>) {
        match y {
            Yaml::Hash(h) => {
                for (k, v) in h {
                    let k = k.as_str().expect("string keys");
                    let p = if prefix.is_empty() || prefix.ends_with('.') {
                        format!("{prefix}{}", escape_key(k))
                    } else {
                        format!("{prefix}.{}", escape_key(k))
                    };
                    walk(v, &p, out);
                }
            }
            Yaml::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{prefix}[{i}]"), out);
                }
            }
            Yaml::String(s) => out.push((prefix.to_owned(), s.clone())),
            Yaml::Integer(i) => out.push((prefix.to_owned(), i.to_string())),
            Yaml::Real(r) => out.push((prefix.to_owned(), r.clone())),
            Yaml::Boolean(b) => out.push((prefix.to_owned(), b.to_string())),
            Yaml::Null => out.push((prefix.to_owned(), String::new())),
            other => panic!("unexpected YAML node {other:?}"),
        }
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).expect("sops -d output is YAML");
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let prefix = if i == 0 { String::new() } else { format!("[{i}].") };
        walk(d, &prefix, &mut out);
    }
    out
}

/// Decrypts `file` with secretexec, one `-e V<i>=sops:FILE#LOCATOR` per
/// leaf, and returns the rendered JSON object.
pub fn secretexec_leaves(
    file: &Path,
    leaves: &[(String, String)],
    env: &[(&str, &str)],
) -> serde_json::Map<String, serde_json::Value> {
    let mut run = super::secretexec().args(["render", "--format", "json"]);
    for (k, v) in env {
        run = run.env(k, v);
    }
    for (i, (loc, _)) in leaves.iter().enumerate() {
        run = run.arg("-e").arg(format!("V{i}=sops:{}#{loc}", file.display()));
    }
    let r = run.run();
    r.assert_code(0);
    match serde_json::from_str(&r.stdout).expect("render --format json prints JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}
