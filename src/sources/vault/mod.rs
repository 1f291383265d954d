//! `type = "vault"`: KV v1 and v2 secrets from HashiCorp Vault or OpenBao.
//!
//! Locators: `MOUNT/PATH#FIELD`, `MOUNT/PATH` (the secret's only field),
//! `MOUNT/PATH#*` (every field, for `[[import]]`), each optionally with
//! `?version=N` (KV v2) after the path or at the end. Bare references
//! (`vault:secret/app#key`) use the standard environment: `VAULT_ADDR`,
//! `VAULT_TOKEN`, `VAULT_NAMESPACE`, `VAULT_CACERT`, … (`BAO_*` too).
//!
//! Promises: one login at most and one read per distinct (path, version),
//! reads concurrent up to `concurrency`; the KV version is looked up once
//! per mount per fetch; a token obtained by login is revoked in `finish`
//! unless `pass_token = true`, and a given token never is; every token and
//! credential is registered with the redactor before any request.
//! See docs/vault.md.

mod auth;
mod client;
mod kv;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use auth::{AuthConfig, AuthMethod};
use client::{Client, Method};
use kv::{Fields, Mount, Session};

use super::{Backend, Context, FailKind, FetchError, Fetched};
use crate::http::HttpSettings;

const DEFAULT_CONCURRENCY: usize = 16;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Config {
    /// Server address, or addresses tried in order on connection failure.
    /// Default: `$VAULT_ADDR` (or `$BAO_ADDR`).
    pub address: Option<Addresses>,
    /// Enterprise / OpenBao namespace. Default: `$VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// PEM CA bundle to trust. Default: `$VAULT_CACERT`.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key (mutual TLS, `cert` auth). Default:
    /// `$VAULT_CLIENT_CERT` / `$VAULT_CLIENT_KEY`.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Disable TLS verification. Default: `$VAULT_SKIP_VERIFY`. Warned about loudly.
    pub skip_verify: Option<bool>,
    /// Upper bound for one HTTP request (default 10s).
    #[serde(default, with = "crate::duration::option")]
    pub request_timeout: Option<Duration>,
    /// Upper bound for this source's whole fetch (never beyond the global timeout).
    #[serde(default, with = "crate::duration::option")]
    pub timeout: Option<Duration>,
    /// Skip the mount lookup: every MOUNT is the first path segment, of this KV version.
    #[serde(default, deserialize_with = "kv_version")]
    pub kv_version: Option<u8>,
    /// At most this many requests in flight (default 16).
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Keep a token obtained by login alive after the fetch (no revoke).
    #[serde(default)]
    pub pass_token: bool,
    /// Accept symlinks for credential files.
    #[serde(default)]
    pub follow_symlinks: bool,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    One(String),
    Many(Vec<String>),
}

fn kv_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let v: Option<i64> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(1) => Ok(Some(1)),
        Some(2) => Ok(Some(2)),
        Some(n) => Err(serde::de::Error::custom(format!("kv_version must be 1 or 2, not {n}"))),
    }
}

impl Config {
    pub fn rebase(&mut self, base: &std::path::Path) {
        for p in [&mut self.ca_cert, &mut self.client_cert, &mut self.client_key].into_iter().flatten() {
            *p = base.join(&*p);
        }
        self.auth.rebase(base);
    }
}

/// What a locator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Locator {
    path: String,
    version: Option<u64>,
    field: Field,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    /// No `#FIELD`: the secret's only field.
    Only,
    Named(String),
    /// `#*`: every field.
    All,
}

fn parse_locator(raw: &str) -> Result<Locator, String> {
    let (mut path, mut field) = match raw.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (raw, None),
    };
    let mut version = None;
    let mut take_version = |s: &mut &str| -> Result<(), String> {
        if let Some((head, q)) = s.split_once('?') {
            let n = q
                .strip_prefix("version=")
                .ok_or_else(|| format!("unknown query {q:?}; only ?version=N is accepted"))?;
            let n: u64 = n.parse().map_err(|_| format!("?version= needs a positive number, not {n:?}"))?;
            if n == 0 {
                return Err("?version=0 is not a version; leave it out for the latest".into());
            }
            if version.replace(n).is_some() {
                return Err("?version= is given twice".into());
            }
            *s = head;
        }
        Ok(())
    };
    take_version(&mut path)?;
    if let Some(f) = field.as_mut() {
        take_version(f)?;
    }
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err("expected MOUNT/PATH, e.g. secret/app#key".into());
    }
    if !path.contains('/') {
        return Err(format!("expected MOUNT/PATH: {path:?} names only a mount"));
    }
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("a path has no empty, . or .. segments".into());
    }
    if let Some(c) =
        path.chars().find(|c| c.is_whitespace() || c.is_control() || "%?#\"<>\\^`{}|".contains(*c))
    {
        return Err(format!("{c:?} cannot appear in a Vault path"));
    }
    let field = match field {
        None => Field::Only,
        Some("") => return Err("empty field after #; name a field, or * for every field".into()),
        Some("*") => Field::All,
        Some(f) => Field::Named(f.to_owned()),
    };
    Ok(Locator { path: path.to_owned(), version, field })
}

pub fn check_locator(locator: &str) -> Result<(), String> {
    parse_locator(locator).map(|_| ())
}

/// `vault:MOUNT/PATH#FIELD`: the standard environment's settings.
pub fn adhoc(rest: &str) -> Result<(Config, String), String> {
    check_locator(rest)?;
    Ok((Config::default(), rest.to_owned()))
}

/// `VAULT_NAME`, else `BAO_NAME`, when set and not empty: (variable, value).
fn env_var(name: &str) -> Option<(String, String)> {
    for prefix in ["VAULT_", "BAO_"] {
        let var = format!("{prefix}{name}");
        if let Some(v) = std::env::var(&var).ok().filter(|v| !v.is_empty()) {
            return Some((var, v));
        }
    }
    None
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "t" | "true" | "yes" | "y" | "on")
}

pub struct Vault {
    name: String,
    config: Config,
    client: Client,
    namespace: Option<String>,
    request_timeout: Duration,
    /// The token of the last fetch, until `finish`.
    token: Mutex<Option<auth::Token>>,
    /// Where the last token came from: (`describe` text, environment variable).
    origin: Mutex<Option<(String, Option<String>)>>,
}

impl Vault {
    pub fn open(name: &str, config: &Config) -> Result<Self, FetchError> {
        let local = |m: String| FetchError::new(FailKind::Local, m);
        let raw: Vec<String> = match &config.address {
            Some(Addresses::One(a)) => vec![a.clone()],
            Some(Addresses::Many(list)) => list.clone(),
            None => {
                match env_var("ADDR") {
                    Some((_, a)) => vec![a],
                    None => {
                        return Err(local("no server address: the source sets no address and $VAULT_ADDR is unset".into())
                        .with_hint("set address = \"https://vault.example:8200\" on the source, or export VAULT_ADDR"));
                    }
                }
            }
        };
        if raw.is_empty() {
            return Err(local("address = [] lists no server".into()));
        }
        let addresses =
            raw.iter().map(|a| client::check_address(a)).collect::<Result<Vec<_>, _>>().map_err(local)?;
        let path_or_env =
            |p: &Option<PathBuf>, var: &str| p.clone().or_else(|| env_var(var).map(|(_, v)| v.into()));
        let skip_verify =
            config.skip_verify.unwrap_or_else(|| env_var("SKIP_VERIFY").is_some_and(|(_, v)| truthy(&v)));
        let request_timeout = config.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let settings = HttpSettings {
            ca_cert: path_or_env(&config.ca_cert, "CACERT"),
            client_cert: path_or_env(&config.client_cert, "CLIENT_CERT"),
            client_key: path_or_env(&config.client_key, "CLIENT_KEY"),
            skip_verify,
            request_timeout: Some(request_timeout),
            // One pooled connection per concurrent read, so none pays a new handshake.
            pool_per_host: Some(config.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1)),
        };
        if skip_verify && addresses.iter().any(|a| a.starts_with("https://")) {
            crate::warn!(
                "source {name}: TLS certificate verification is DISABLED (skip_verify / $VAULT_SKIP_VERIFY); \
                 anyone on the network path can impersonate the server and read the token and every secret"
            );
        }
        let agent = crate::http::agent(&settings).map_err(|e| {
            local(e).with_hint("fix ca_cert / client_cert / client_key (or $VAULT_CACERT, ...)")
        })?;
        let namespace = config.namespace.clone().or_else(|| env_var("NAMESPACE").map(|(_, v)| v));
        let namespace = namespace.map(|n| n.trim_matches('/').to_owned()).filter(|n| !n.is_empty());
        let client = Client::new(agent, addresses, namespace.clone(), request_timeout);
        Ok(Self {
            name: name.to_owned(),
            config: config.clone(),
            client,
            namespace,
            request_timeout,
            token: Mutex::new(None),
            origin: Mutex::new(None),
        })
    }

    /// A 403 explained: an invalid or expired token, or a policy without
    /// `capability` on `path`. Asks the server about the token once.
    fn denied(
        &self,
        deadline: Instant,
        token: &crate::secret::Secret,
        valid: &std::sync::OnceLock<bool>,
        path: &str,
        capability: &str,
    ) -> FetchError {
        let ok = *valid.get_or_init(|| {
            match self.client.request(deadline, &Method::Get, "auth/token/lookup-self", Some(token)) {
                Ok(r) => r.status != 403 && r.status != 401,
                Err(_) => true,
            }
        });
        if !ok {
            return FetchError::new(FailKind::Auth, "the Vault token is invalid or expired (HTTP 403 on lookup-self)")
                .with_hint("get a fresh token (bao login, or renew it before it expires); for a login method, check the role's \
                 token_ttl. (A token whose policies lack the default policy's auth/token/lookup-self also lands here.)");
        }
        FetchError::new(FailKind::Denied, format!("permission denied on {path}")).with_hint(format!(
            "the token's policies need the \"{capability}\" capability on path \"{path}\""
        ))
    }
}

impl Backend for Vault {
    fn fetch(&self, ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>> {
        let deadline = match self.config.timeout {
            Some(t) => ctx.deadline.min(Instant::now() + t),
            None => ctx.deadline,
        };
        let parsed: Vec<Result<Locator, FetchError>> = locators
            .iter()
            .map(|l| parse_locator(l).map_err(|m| FetchError::new(FailKind::Local, m)))
            .collect();
        let token = match auth::obtain(
            &self.config.auth,
            self.config.follow_symlinks,
            &self.client,
            deadline,
            &env_var,
        ) {
            Ok(t) => t,
            Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
        };
        let secret = token.secret.clone();
        crate::debug!("vault source {}: authenticated ({})", self.name, token.origin);
        *self.origin.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((token.origin.clone(), token.env_var.clone()));
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);

        let valid = std::sync::OnceLock::new();
        let denied = |path: &str, cap: &str| self.denied(deadline, &secret, &valid, path, cap);
        let session = Session { client: &self.client, deadline, token: &secret, denied: &denied };
        let limit = self.config.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);

        // One read per (path, version).
        let mut wanted: Vec<(String, Option<u64>)> =
            parsed.iter().filter_map(|r| r.as_ref().ok()).map(|l| (l.path.clone(), l.version)).collect();
        wanted.sort();
        wanted.dedup();

        // The mount (and KV version) of every path.
        let mut paths: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
        paths.dedup();
        let mounts = match self.config.kv_version {
            Some(v) => paths.iter().map(|p| (p.to_string(), Ok(Mount::first_segment(p, v)))).collect(),
            None => self.find_mounts(&session, &paths, limit),
        };

        let reads: Vec<Result<Fields, FetchError>> =
            crate::pool::bounded(&wanted, limit, |(path, version)| match &mounts[path] {
                Ok(m) => kv::read(&session, m, path, *version, self.config.kv_version.is_some()),
                Err(e) => Err(e.clone()),
            });
        let reads: BTreeMap<&(String, Option<u64>), Result<Fields, FetchError>> =
            wanted.iter().zip(reads).collect();

        parsed
            .into_iter()
            .map(|l| {
                let l = l?;
                let fields = reads[&(l.path.clone(), l.version)].as_ref().map_err(Clone::clone)?;
                pick(&l, fields)
            })
            .collect()
    }

    fn credential_vars(&self) -> Vec<String> {
        let guard = self.origin.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().and_then(|(_, var)| var.clone()).into_iter().collect()
    }

    fn finish(&self) {
        let Some(token) = self.token.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        if !token.login {
            return;
        }
        if self.config.pass_token {
            crate::debug!("vault source {}: pass_token = true, the login token is not revoked", self.name);
            return;
        }
        let deadline = Instant::now() + self.request_timeout.min(Duration::from_secs(5));
        match auth::revoke(&self.client, deadline, &token.secret) {
            Ok(()) => crate::debug!("vault source {}: revoked the login token", self.name),
            Err(e) => crate::warn!(
                "vault source {}: could not revoke the login token: {e}; it expires with its TTL",
                self.name
            ),
        }
    }

    fn describe(&self) -> Option<String> {
        let guard = self.origin.lock().unwrap_or_else(|e| e.into_inner());
        let how = guard.as_ref().map_or_else(|| "not authenticated".to_owned(), |(o, _)| o.clone());
        let ns = self.namespace.as_ref().map_or(String::new(), |n| format!(", namespace {n}"));
        Some(format!("{how} at {}{ns}", self.client.address()))
    }
}

impl Vault {
    /// Looks up the mount of every path: one lookup per first segment, then
    /// more only for paths the found mounts do not cover (`team/kv/` and
    /// `team/db/` share a first segment; Vault forbids nested mounts).
    fn find_mounts(
        &self,
        session: &Session<'_>,
        paths: &[&str],
        limit: usize,
    ) -> BTreeMap<String, Result<Mount, FetchError>> {
        let mut found: Vec<Mount> = Vec::new();
        let mut out: BTreeMap<String, Result<Mount, FetchError>> = BTreeMap::new();
        let mut first_round = true;
        loop {
            let open: Vec<&str> = paths
                .iter()
                .copied()
                .filter(|p| !out.contains_key(*p) && !found.iter().any(|m| m.covers(p)))
                .collect();
            if open.is_empty() {
                break;
            }
            // First round: one path per first segment. Later rounds (paths in
            // other multi-segment mounts, or whose first lookup was refused):
            // every path still open, concurrently.
            let mut reps: Vec<&str> = Vec::new();
            for p in &open {
                let seg = p.split('/').next().unwrap_or(p);
                if !first_round || !reps.iter().any(|r| r.split('/').next() == Some(seg)) {
                    reps.push(p);
                }
            }
            first_round = false;
            let results = crate::pool::bounded(&reps, limit, |p| kv::lookup_mount(session, p));
            for (p, r) in reps.iter().zip(results) {
                match r {
                    Ok(m) => {
                        crate::debug!(
                            "vault source {}: {p} is in KV v{} mount {}",
                            self.name,
                            m.version,
                            m.path
                        );
                        found.push(m);
                    }
                    Err(e) if matches!(e.kind, FailKind::Unavailable | FailKind::Auth) => {
                        // The server or the token is the problem: the same for every path.
                        for q in &open {
                            out.insert(q.to_string(), Err(e.clone()));
                        }
                    }
                    Err(e) => {
                        out.insert(p.to_string(), Err(e));
                    }
                }
            }
        }
        for p in paths {
            if !out.contains_key(*p) {
                let m = found.iter().find(|m| m.covers(p)).cloned();
                out.insert(
                    p.to_string(),
                    Ok(m.expect("loop ends only when every path is covered or failed")),
                );
            }
        }
        out
    }
}

/// The answer for one locator from its secret's fields.
fn pick(l: &Locator, fields: &Fields) -> Result<Fetched, FetchError> {
    let at = match fields.version {
        Some(v) => format!("{} (version {v})", l.path),
        None => l.path.clone(),
    };
    match &l.field {
        Field::All => Ok(Fetched::Many(fields.items.clone())),
        Field::Named(name) => match fields.items.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Ok(Fetched::One(v.clone())),
            None => Err(FetchError::new(
                FailKind::NotFound,
                format!("{at} has no field {name:?}; its fields: {}", fields.names()),
            )),
        },
        Field::Only => match fields.items.as_slice() {
            [(_, v)] => Ok(Fetched::One(v.clone())),
            [] => Err(FetchError::new(FailKind::NotFound, format!("{at} has no fields"))),
            _ => Err(FetchError::new(
                FailKind::Local,
                format!("{at} has {} fields ({}); name one with #FIELD", fields.items.len(), fields.names()),
            )
            .with_hint(format!("e.g. {}#{}, or {}#* in an [[import]]", l.path, fields.items[0].0, l.path))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators() {
        let l = parse_locator("secret/app#key").unwrap();
        assert_eq!((l.path.as_str(), l.version, l.field), ("secret/app", None, Field::Named("key".into())));
        let l = parse_locator("secret/app?version=3#key").unwrap();
        assert_eq!(l.version, Some(3));
        let l = parse_locator("secret/app#key?version=4").unwrap();
        assert_eq!((l.version, l.field), (Some(4), Field::Named("key".into())));
        assert_eq!(parse_locator("secret/a/b").unwrap().field, Field::Only);
        assert_eq!(parse_locator("secret/a#*").unwrap().field, Field::All);
        assert!(parse_locator("secret").is_err());
        assert!(parse_locator("secret/../x").is_err());
        assert!(parse_locator("secret/a#").is_err());
        assert!(parse_locator("secret/a?version=x").is_err());
        assert!(parse_locator("secret/a?v=1").is_err());
        assert!(parse_locator("secret/a b#k").is_err());
    }

    #[test]
    fn addresses_and_tokens() {
        assert_eq!(client::check_address("http://127.0.0.1:8200/").unwrap(), "http://127.0.0.1:8200");
        assert!(client::check_address("127.0.0.1:8200").is_err());
        assert!(client::check_address("https://").is_err());
        assert!(client::check_address("https://v:8200/ui").is_err());
        assert!(client::check_address("https://v :8200").is_err());
        let t = client::clean_token(b"  s.abc\n", "test").unwrap();
        assert_eq!(t.expose(), b"s.abc");
        assert!(client::clean_token(b"\n", "test").is_err());
        assert!(client::clean_token(b"a b", "test").is_err());
    }
}
