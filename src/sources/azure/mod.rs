//! `type = "azure-keyvault"`: secrets from Azure Key Vault, over its REST API
//! (api-version 7.5), authenticated by the standard Azure credential chain
//! ([`credential`]).
//!
//! Locators: `SECRET-NAME` (the latest version), `SECRET-NAME/VERSION`, or
//! `*` (every enabled secret of the vault; names map `-` → `_`). Bare
//! references: `azure-keyvault:https://NAME.vault.azure.net/SECRET[/VERSION]`
//! with any vault domain (sovereign clouds, private endpoints).
//!
//! Why our own client and not Microsoft's Rust SDK: see docs/azure.md (it
//! needs tokio and reqwest; this launcher is blocking and small).
//!
//! Protocol, as Microsoft's SDKs speak it: the first request goes without a
//! token; the vault answers 401 with a `WWW-Authenticate: Bearer
//! authorization=…, resource=…` challenge, from which the token's audience
//! comes. The challenge's resource must be the vault's own domain (or a parent
//! of it), so a vault URL cannot be used to make secretexec send a token
//! elsewhere. Reads then run on a bounded pool of threads sharing one token;
//! a 401 on a token (it expired mid-resolve) gets one new token and a retry;
//! 429/503 are retried honouring `Retry-After`, within the deadline.

mod credential;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use zeroize::Zeroizing;

pub use credential::CredentialKind;
use credential::{Audience, Chain, Token, origin_of, transport_error};

use super::{Backend, Context, FailKind, FetchError, Fetched};
use crate::http;
use crate::secret::Secret;

/// The Key Vault data-plane API version we speak.
pub const API_VERSION: &str = "7.5";
const DEFAULT_CONCURRENCY: usize = 8;
const MAX_CONCURRENCY: usize = 64;
/// Page size of the list call (the service's maximum is 25).
const PAGE_SIZE: u32 = 25;
/// A secret is at most 25 KiB; responses larger than this are refused.
const MAX_BODY: u64 = 1024 * 1024;
/// A runaway `nextLink` chain stops here.
const MAX_PAGES: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    /// `https://NAME.vault.azure.net` (any domain: sovereign clouds, private endpoints).
    pub vault_url: String,
    /// Which credential to use; `default` tries the chain.
    #[serde(default)]
    pub credential: CredentialKind,
    /// Entra ID tenant (default: `AZURE_TENANT_ID`).
    pub tenant_id: Option<String>,
    /// Application (client) id; for managed identity, a user-assigned
    /// identity's client id (default: `AZURE_CLIENT_ID`, except for managed identity).
    pub client_id: Option<String>,
    /// A file holding the client secret (strict permission check), instead of `AZURE_CLIENT_SECRET`.
    pub client_secret_file: Option<PathBuf>,
    /// The federated token (default: `AZURE_FEDERATED_TOKEN_FILE`).
    pub federated_token_file: Option<PathBuf>,
    /// Entra ID authority (default: `AZURE_AUTHORITY_HOST`, else the public cloud).
    pub authority_host: Option<String>,
    /// CA bundle (PEM) trusted for the vault and the token endpoints.
    pub ca_cert: Option<PathBuf>,
    /// Accept a symlink at `client_secret_file`.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Reads in flight at once (default 8, at most 64).
    pub concurrency: Option<usize>,
    /// Upper bound for one HTTP request, e.g. `10s` (default 30s; never past the deadline).
    pub request_timeout: Option<String>,
    /// Refuse a challenge whose resource is not the vault's domain (default true).
    #[serde(default = "yes")]
    pub verify_challenge_resource: bool,
}

fn yes() -> bool {
    true
}

impl Config {
    fn new(vault_url: String) -> Self {
        Config {
            vault_url,
            credential: CredentialKind::Default,
            tenant_id: None,
            client_id: None,
            client_secret_file: None,
            federated_token_file: None,
            authority_host: None,
            ca_cert: None,
            follow_symlinks: false,
            concurrency: None,
            request_timeout: None,
            verify_challenge_resource: true,
        }
    }

    /// Makes relative file paths relative to `base` (the mapping's directory).
    pub fn rebase(&mut self, base: &std::path::Path) {
        for p in [&mut self.client_secret_file, &mut self.federated_token_file, &mut self.ca_cert]
            .into_iter()
            .flatten()
        {
            *p = base.join(&*p);
        }
    }
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 127 {
        return Err("a Key Vault secret name is 1 to 127 characters".into());
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(format!("{bad:?} cannot appear in a Key Vault secret name (letters, digits and - only)"));
    }
    Ok(())
}

pub fn check_locator(locator: &str) -> Result<(), String> {
    if locator == "*" {
        return Ok(());
    }
    let (name, version) = match locator.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (locator, None),
    };
    valid_name(name)?;
    if let Some(v) = version
        && (v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err("a secret version is the 32-character id shown by the vault (letters and digits)".into());
    }
    Ok(())
}

/// `https://NAME.vault.azure.net/SECRET[/VERSION]` → the vault, `SECRET[/VERSION]`.
pub fn adhoc(rest: &str) -> Result<(Config, String), String> {
    let usage = "expected azure-keyvault:https://NAME.vault.azure.net/SECRET[/VERSION]";
    let Some(after) = rest.strip_prefix("https://") else {
        return Err(format!("{usage} (an https:// vault URL)"));
    };
    let Some(slash) = after.find('/') else {
        return Err(usage.into());
    };
    let vault = &rest[..8 + slash];
    let locator = &after[slash + 1..];
    if locator.is_empty() {
        return Err(format!("{usage}: no secret name after the vault URL"));
    }
    check_locator(locator)?;
    Ok((Config::new(vault.to_owned()), locator.to_owned()))
}

/// A vault URL, checked.
#[derive(Clone, Debug)]
struct Vault {
    /// `https://host[:port]`, no trailing slash.
    origin: String,
    /// Lower-case host, no port.
    host: String,
}

fn host_of(url: &str) -> Option<String> {
    let origin = origin_of(url);
    let hostport = &origin[origin.find("://")? + 3..];
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl Vault {
    fn parse(url: &str) -> Result<Vault, FetchError> {
        let bad = |why: &str| {
            FetchError::new(FailKind::Local, format!("vault_url {url:?} {why}"))
                .with_hint("write it as https://NAME.vault.azure.net (the vault's DNS name)")
        };
        if !url.starts_with("https://") {
            return Err(bad("is not an https:// URL"));
        }
        let origin = origin_of(url).to_owned();
        let rest = &url[origin.len()..];
        if !(rest.is_empty() || rest == "/") {
            return Err(bad("has a path or query; give only the vault's address"));
        }
        let host = host_of(&origin).ok_or_else(|| bad("has no host"))?;
        Ok(Vault { origin, host })
    }

    fn secret_url(&self, name: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{}/secrets/{name}/{v}?api-version={API_VERSION}", self.origin),
            None => format!("{}/secrets/{name}?api-version={API_VERSION}", self.origin),
        }
    }

    fn list_url(&self) -> String {
        format!("{}/secrets?api-version={API_VERSION}&maxresults={PAGE_SIZE}", self.origin)
    }
}

/// One read the backend must make.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Read {
    name: String,
    version: Option<String>,
}

impl Read {
    fn parse(locator: &str) -> Read {
        match locator.split_once('/') {
            Some((n, v)) => Read { name: n.to_owned(), version: Some(v.to_owned()) },
            None => Read { name: locator.to_owned(), version: None },
        }
    }

    fn what(&self) -> String {
        match &self.version {
            Some(v) => format!("version {v} of secret {}", self.name),
            None => format!("secret {}", self.name),
        }
    }
}

/// The token and the audience it was requested for.
#[derive(Default)]
struct Auth {
    audience: Option<Audience>,
    token: Option<Arc<Token>>,
}

pub struct KeyVault {
    vault: Vault,
    agent: ureq::Agent,
    chain: Chain,
    concurrency: usize,
    verify_resource: bool,
    auth: Mutex<Auth>,
}

impl KeyVault {
    pub fn open(_name: &str, config: &Config) -> Result<KeyVault, FetchError> {
        let vault = Vault::parse(&config.vault_url)?;
        let request_timeout = match &config.request_timeout {
            Some(s) => Some(
                crate::duration::parse(s)
                    .map_err(|e| FetchError::new(FailKind::Local, format!("request_timeout: {e}")))?,
            ),
            None => None,
        };
        // SSL_CERT_FILE (the variable OpenSSL, Python and Go honour) lets a bare
        // `azure-keyvault:` reference trust a private CA too.
        let ca_cert = config.ca_cert.clone().or_else(|| std::env::var_os("SSL_CERT_FILE").map(PathBuf::from));
        let concurrency = config.concurrency.unwrap_or(DEFAULT_CONCURRENCY).clamp(1, MAX_CONCURRENCY);
        let settings = http::HttpSettings {
            ca_cert,
            request_timeout,
            pool_per_host: Some(concurrency),
            ..Default::default()
        };
        let agent = http::agent(&settings).map_err(|e| {
            FetchError::new(FailKind::Local, e).with_hint("ca_cert must be a PEM file of CA certificates")
        })?;
        let chain = Chain::from_config(config)?;
        Ok(KeyVault {
            vault,
            agent,
            chain,
            concurrency,
            verify_resource: config.verify_challenge_resource,
            auth: Mutex::new(Auth::default()),
        })
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current token, or a new one. Holding the lock while a token is
    /// requested makes concurrent readers wait for that one request.
    fn bearer(&self, deadline: Instant) -> Result<Arc<Token>, FetchError> {
        let mut auth = self.lock_auth();
        if let Some(t) = &auth.token
            && t.fresh()
        {
            return Ok(t.clone());
        }
        let aud = auth.audience.clone().expect("bearer() is only called after the challenge was read");
        let token = Arc::new(self.chain.token(&self.agent, &aud, deadline)?);
        auth.token = Some(token.clone());
        Ok(token)
    }

    /// Drops `used` unless another reader already replaced it.
    fn invalidate(&self, used: &Arc<Token>) {
        let mut auth = self.lock_auth();
        if auth.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, used)) {
            auth.token = None;
        }
    }

    fn who(&self) -> String {
        self.chain.describe().unwrap_or_else(|| "the credential".to_owned())
    }

    /// Sends `url` without a token and reads the 401 bearer challenge.
    fn discover(&self, url: &str, deadline: Instant) -> Result<(), FetchError> {
        let mut backoff = http::Backoff::new(deadline);
        let mut resp = loop {
            let req = self
                .agent
                .get(url)
                .config()
                .timeout_global(Some(http::request_limit(&self.agent, deadline)))
                .build();
            let mut resp = req.call().map_err(|e| transport_error(url, e))?;
            let status = resp.status().as_u16();
            if matches!(status, 429 | 503)
                && let Some(d) = backoff.next_delay(http::retry_after(&resp))
            {
                drain(&mut resp);
                std::thread::sleep(d);
                continue;
            }
            break resp;
        };
        let status = resp.status().as_u16();
        let challenge =
            resp.headers().get("www-authenticate").and_then(|h| h.to_str().ok()).map(str::to_owned);
        drain(&mut resp);
        let Some(challenge) = challenge.filter(|_| status == 401) else {
            return Err(FetchError::new(
                FailKind::Unavailable,
                format!(
                    "{} answered {status} without a bearer challenge; is this a Key Vault?",
                    self.vault.origin
                ),
            )
            .with_hint("check vault_url; a proxy in between must pass WWW-Authenticate through"));
        };
        let aud = parse_challenge(&challenge).ok_or_else(|| {
            FetchError::new(
                FailKind::Unavailable,
                format!(
                    "{} sent a WWW-Authenticate challenge without a resource or scope",
                    self.vault.origin
                ),
            )
        })?;
        if self.verify_resource {
            let rhost = host_of(&aud.resource).unwrap_or_default();
            if rhost.is_empty()
                || !(self.vault.host == rhost || self.vault.host.ends_with(&format!(".{rhost}")))
            {
                return Err(FetchError::new(
                    FailKind::Auth,
                    format!(
                        "{} asks for a token for {}, which is not the vault's domain; refusing to request a token for it",
                        self.vault.origin, aud.resource
                    ),
                )
                .with_hint("check vault_url; if this vault really uses that resource, set verify_challenge_resource = false"));
            }
        }
        crate::debug!(
            "azure: {} challenge: resource {}, tenant {:?}",
            self.vault.origin,
            aud.resource,
            aud.tenant
        );
        self.lock_auth().audience = Some(aud);
        Ok(())
    }

    /// GET with the bearer token: one new token on a 401, retries on 429/503
    /// and connection failures within the deadline. Returns the status and body.
    fn get(&self, url: &str, deadline: Instant) -> Result<(u16, Zeroizing<Vec<u8>>), FetchError> {
        let mut backoff = http::Backoff::new(deadline);
        let mut renewed = false;
        loop {
            let token = self.bearer(deadline)?;
            let header = {
                let raw = std::str::from_utf8(token.secret.expose()).unwrap_or_default();
                Zeroizing::new(format!("Bearer {raw}"))
            };
            let req = self
                .agent
                .get(url)
                .header("Authorization", header.as_str())
                .config()
                .timeout_global(Some(http::request_limit(&self.agent, deadline)))
                .build();
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e @ (ureq::Error::ConnectionFailed | ureq::Error::Io(_))) => {
                    match backoff.next_delay(None) {
                        Some(d) => {
                            crate::debug!("azure: {} unreachable ({e}), retrying in {d:?}", origin_of(url));
                            std::thread::sleep(d);
                            continue;
                        }
                        None => return Err(transport_error(url, e)),
                    }
                }
                Err(e) => return Err(transport_error(url, e)),
            };
            let status = resp.status().as_u16();
            match status {
                401 if !renewed => {
                    crate::debug!("azure: token refused by the vault (expired?); requesting a new one");
                    self.invalidate(&token);
                    drain(&mut resp);
                    renewed = true;
                    continue;
                }
                401 => {
                    return Err(FetchError::new(
                        FailKind::Auth,
                        format!("{} refused a fresh access token from {} (401)", self.vault.origin, self.who()),
                    )
                    .with_hint("the token's tenant or audience does not match the vault; check tenant_id and vault_url"));
                }
                429 | 503 => {
                    let after = http::retry_after(&resp);
                    match backoff.next_delay(after) {
                        Some(d) => {
                            crate::debug!(
                                "azure: {} answered {status}, retrying in {d:?}",
                                self.vault.origin
                            );
                            drain(&mut resp);
                            std::thread::sleep(d);
                            continue;
                        }
                        None => {
                            let why = if status == 429 { "throttled (429)" } else { "unavailable (503)" };
                            let after =
                                after.map(|d| format!(", Retry-After {}s", d.as_secs())).unwrap_or_default();
                            return Err(FetchError::new(
                                FailKind::Unavailable,
                                format!(
                                    "{} {why}; gave up after {} attempt(s) within the deadline{after}",
                                    self.vault.origin,
                                    backoff.attempts()
                                ),
                            )
                            .with_hint("raise --timeout / timeout, lower concurrency, or see Key Vault service limits"));
                        }
                    }
                }
                _ => {
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(MAX_BODY)
                        .read_to_vec()
                        .map_err(|e| transport_error(url, e))?;
                    return Ok((status, Zeroizing::new(body)));
                }
            }
        }
    }

    fn read_secret(&self, read: &Read, deadline: Instant) -> Result<Secret, FetchError> {
        let url = self.vault.secret_url(&read.name, read.version.as_deref());
        let (status, body) = self.get(&url, deadline)?;
        if status != 200 {
            return Err(self.service_error(status, &body, &read.what()));
        }
        let bundle: SecretBundle = serde_json::from_slice(&body).map_err(|e| {
            FetchError::new(
                FailKind::Corrupt,
                format!("{}: unreadable response: {}", read.what(), e.classify_text()),
            )
        })?;
        if let Some(why) = bundle.attributes.unusable() {
            return Err(FetchError::new(FailKind::Denied, format!("{} {why}", read.what()))
                .with_hint("rotate the secret or update its expiry/activation date in the vault"));
        }
        match bundle.value {
            Some(v) => Ok(Secret::from_string(v)),
            None => {
                Err(FetchError::new(FailKind::Corrupt, format!("{}: the response has no value", read.what())))
            }
        }
    }

    /// Names of every enabled, usable secret, following `nextLink`.
    fn list(&self, deadline: Instant) -> Result<Vec<String>, FetchError> {
        let mut url = self.vault.list_url();
        let mut names = Vec::new();
        for _ in 0..MAX_PAGES {
            let (status, body) = self.get(&url, deadline)?;
            if status != 200 {
                return Err(self.service_error(status, &body, "listing secrets"));
            }
            let page: SecretList = serde_json::from_slice(&body).map_err(|e| {
                FetchError::new(FailKind::Corrupt, format!("listing secrets: unreadable response: {e}"))
            })?;
            for item in page.value {
                let Some(name) = item.id.split("/secrets/").nth(1).and_then(|s| s.split('/').next()) else {
                    continue;
                };
                if !item.attributes.enabled.unwrap_or(true) {
                    crate::debug!("azure: secret {name} is disabled; not imported");
                } else if item.managed == Some(true) {
                    crate::debug!("azure: secret {name} backs a Key Vault certificate; not imported");
                } else if let Some(why) = item.attributes.unusable() {
                    crate::warn!("azure: secret {name} {why}; not imported");
                } else {
                    names.push(name.to_owned());
                }
            }
            match page.next_link.filter(|l| !l.is_empty()) {
                None => return Ok(names),
                Some(next) => {
                    if !next.starts_with(&format!("{}/", self.vault.origin)) {
                        return Err(FetchError::new(
                            FailKind::Corrupt,
                            format!(
                                "listing secrets: nextLink leaves {}; refusing to follow it",
                                self.vault.origin
                            ),
                        ));
                    }
                    url = if next.contains("api-version=") {
                        next
                    } else {
                        format!(
                            "{next}{}api-version={API_VERSION}",
                            if next.contains('?') { '&' } else { '?' }
                        )
                    };
                }
            }
        }
        Err(FetchError::new(FailKind::Corrupt, format!("listing secrets: more than {MAX_PAGES} pages")))
    }

    /// A non-200 answer from the vault, as an error naming what failed.
    fn service_error(&self, status: u16, body: &[u8], what: &str) -> FetchError {
        let err = serde_json::from_slice::<ServiceError>(body).ok().map(|e| e.error).unwrap_or_default();
        let code = err.code.unwrap_or_default();
        let inner = err.innererror.and_then(|i| i.code).unwrap_or_default();
        let detail = err
            .message
            .as_deref()
            .map(|m| m.lines().next().unwrap_or("").chars().take(200).collect::<String>());
        let tag = [code.as_str(), inner.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let at = &self.vault.origin;
        match (status, inner.as_str()) {
            (404, _) => FetchError::new(FailKind::NotFound, format!("{what} not found in {at} ({tag})")).with_hint(
                "check the name (letters, digits and -, case-insensitive) and, if pinned, the version; a deleted secret must be recovered first",
            ),
            (403, "SecretDisabled") => FetchError::new(FailKind::Denied, format!("{what} is disabled in {at}"))
                .with_hint("enable it (az keyvault secret set-attributes --enabled true) or pin an enabled version"),
            (403, "ForbiddenByFirewall" | "ForbiddenByConnection") => {
                FetchError::new(FailKind::Denied, format!("{at} refused this client's network ({tag})"))
                    .with_hint("allow this network in the vault's firewall, or reach it through its private endpoint")
            }
            (403, _) => FetchError::new(
                FailKind::Denied,
                format!("access to {what} denied by {at} for {} ({tag})", self.who()),
            )
            .with_hint(
                "grant the identity the \"Key Vault Secrets User\" role on the vault (RBAC), or get and list secret permissions in its access policy",
            ),
            (400, _) => FetchError::new(
                FailKind::Local,
                format!("{at} rejected the request for {what}: {tag}{}", detail.map(|d| format!(": {d}")).unwrap_or_default()),
            ),
            _ => FetchError::new(FailKind::Unavailable, format!("{at} answered {status} for {what} ({tag})")),
        }
    }
}

/// Reads and drops a response body so its connection goes back to the pool.
fn drain(resp: &mut ureq::http::Response<ureq::Body>) {
    let _ = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec();
}

/// Parses `Bearer authorization="…", resource="…"` (or `scope="…"`).
fn parse_challenge(header: &str) -> Option<Audience> {
    let rest = header.trim();
    let rest = rest.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| &rest[7..])?;
    let mut params = std::collections::BTreeMap::new();
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = s[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(q) = s.strip_prefix('"') {
            let end = q.find('"')?;
            value = q[..end].to_owned();
            s = &q[end + 1..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_owned();
            s = &s[end..];
        }
        s = s.trim_start().trim_start_matches(',').trim_start();
        params.insert(key, value);
    }
    let (resource, scope) = match (params.get("resource"), params.get("scope")) {
        (Some(r), _) => (r.trim_end_matches('/').to_owned(), format!("{}/.default", r.trim_end_matches('/'))),
        (None, Some(sc)) => (sc.trim_end_matches("/.default").to_owned(), sc.clone()),
        (None, None) => return None,
    };
    let tenant = params
        .get("authorization")
        .or_else(|| params.get("authorization_uri"))
        .and_then(|a| a.trim_end_matches('/').rsplit('/').next().map(str::to_owned))
        .filter(|t| !t.is_empty() && !t.contains(':'));
    Some(Audience { resource, scope, tenant })
}

#[derive(Deserialize, Default)]
struct Attributes {
    enabled: Option<bool>,
    /// Not before, seconds since the epoch.
    nbf: Option<i64>,
    /// Expiry, seconds since the epoch.
    exp: Option<i64>,
}

impl Attributes {
    /// Why the secret must not be used now, if so. Key Vault returns expired
    /// secrets; using one silently would hide a missed rotation.
    fn unusable(&self) -> Option<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        if self.enabled == Some(false) {
            return Some("is disabled".into());
        }
        if let Some(exp) = self.exp.filter(|&e| e <= now) {
            return Some(format!("expired {} ago (attributes.exp)", human_secs(now - exp)));
        }
        if let Some(nbf) = self.nbf.filter(|&n| n > now) {
            return Some(format!("is not valid for another {} (attributes.nbf)", human_secs(nbf - now)));
        }
        None
    }
}

fn human_secs(s: i64) -> String {
    let d = Duration::from_secs(s.max(0) as u64);
    match d.as_secs() {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[derive(Deserialize)]
struct SecretBundle {
    value: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Deserialize)]
struct SecretItem {
    id: String,
    #[serde(default)]
    attributes: Attributes,
    managed: Option<bool>,
}

#[derive(Deserialize)]
struct SecretList {
    #[serde(default)]
    value: Vec<SecretItem>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize, Default)]
struct ServiceError {
    #[serde(default)]
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(alias = "innerError")]
    innererror: Option<Box<ErrorBody>>,
}

/// Describes a JSON error without quoting the input (it may hold a value).
trait Classify {
    fn classify_text(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_text(&self) -> String {
        format!("{:?} JSON error at line {} column {}", self.classify(), self.line(), self.column())
    }
}

impl Backend for KeyVault {
    fn fetch(&self, ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>> {
        let deadline = ctx.deadline;
        let all = |e: FetchError| locators.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
        let Some(first) = locators.first() else {
            return Vec::new();
        };
        let probe = if *first == "*" {
            self.vault.list_url()
        } else {
            let r = Read::parse(first);
            self.vault.secret_url(&r.name, r.version.as_deref())
        };
        if let Err(e) = self.discover(&probe, deadline).and_then(|()| self.bearer(deadline).map(drop)) {
            return all(e);
        }

        let listed = if locators.contains(&"*") { Some(self.list(deadline)) } else { None };
        let mut reads: Vec<Read> = locators.iter().filter(|l| **l != "*").map(|l| Read::parse(l)).collect();
        if let Some(Ok(names)) = &listed {
            for n in names {
                let r = Read { name: n.clone(), version: None };
                if !reads.contains(&r) {
                    reads.push(r);
                }
            }
        }
        crate::debug!(
            "azure: {} read(s) from {}, {} at a time",
            reads.len(),
            self.vault.origin,
            self.concurrency
        );
        let values = crate::pool::bounded(&reads, self.concurrency, |r| self.read_secret(r, deadline));
        let value_of = |r: &Read| -> Result<Secret, FetchError> {
            let i = reads.iter().position(|x| x == r).expect("every read was queued");
            values[i].clone()
        };

        locators
            .iter()
            .map(|&loc| {
                if loc != "*" {
                    return value_of(&Read::parse(loc)).map(Fetched::One);
                }
                let names = match listed.as_ref().expect("listed when * is asked") {
                    Ok(n) => n,
                    Err(e) => return Err(e.clone()),
                };
                let mut out = Vec::with_capacity(names.len());
                for n in names {
                    let v = value_of(&Read { name: n.clone(), version: None }).map_err(|mut e| {
                        e.message = format!("importing every secret: {}", e.message);
                        e
                    })?;
                    out.push((env_name(n), v));
                }
                Ok(Fetched::Many(out))
            })
            .collect()
    }

    fn credential_vars(&self) -> Vec<String> {
        if self.chain.used_env_secret() { vec!["AZURE_CLIENT_SECRET".to_owned()] } else { Vec::new() }
    }

    fn describe(&self) -> Option<String> {
        self.chain.describe().map(|c| format!("{} via {c}", self.vault.host))
    }
}

/// A Key Vault secret name as an environment name: `-` → `_`. Key Vault
/// names hold only letters, digits and `-`, and are unique ignoring case,
/// so two secrets of one vault never map to the same name.
pub fn env_name(secret: &str) -> String {
    secret.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_gives_scope_resource_and_tenant() {
        let a = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(a.resource, "https://vault.azure.net");
        assert_eq!(a.scope, "https://vault.azure.net/.default");
        assert_eq!(a.tenant.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        let b = parse_challenge(r#"Bearer authorization="https://login.microsoftonline.us/t1", scope="https://vault.usgovcloudapi.net/.default""#)
            .unwrap();
        assert_eq!(b.resource, "https://vault.usgovcloudapi.net");
        assert!(parse_challenge("Basic realm=x").is_none());
        assert!(parse_challenge(r#"Bearer authorization="https://x/t""#).is_none());
    }

    #[test]
    fn locators_and_bare_references() {
        assert!(check_locator("db-password").is_ok());
        assert!(check_locator("db-password/0123456789abcdef0123456789abcdef").is_ok());
        assert!(check_locator("*").is_ok());
        assert!(check_locator("db_password").unwrap_err().contains("'_'"));
        assert!(check_locator("a/").is_err());
        let (c, l) = adhoc("https://app.vault.usgovcloudapi.net/db-password/abc123").unwrap();
        assert_eq!(
            (c.vault_url.as_str(), l.as_str()),
            ("https://app.vault.usgovcloudapi.net", "db-password/abc123")
        );
        assert!(adhoc("http://app.vault.azure.net/x").is_err());
        assert!(adhoc("https://app.vault.azure.net/").is_err());
    }

    #[test]
    fn vault_host_without_port() {
        let v = Vault::parse("https://App.Vault.Azure.net:443/").unwrap();
        assert_eq!(
            (v.origin.as_str(), v.host.as_str()),
            ("https://App.Vault.Azure.net:443", "app.vault.azure.net")
        );
        assert!(Vault::parse("https://x.vault.azure.net/secrets").is_err());
    }

    #[test]
    fn names_map_dashes() {
        assert_eq!(env_name("DB-PASSWORD"), "DB_PASSWORD");
    }
}
