//! Access tokens for Key Vault from the standard Azure credential chain.
//!
//! Credentials, in the order the `default` chain tries them (the order of
//! Microsoft's `DefaultAzureCredential`):
//!
//! 1. client secret: `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`
//!    (or `client_secret_file`), Entra ID v2 client-credentials grant;
//! 2. workload identity: `AZURE_FEDERATED_TOKEN_FILE` (re-read on every token
//!    request: the platform rotates it) as a `client_assertion`;
//! 3. managed identity: App Service / Functions / Container Apps
//!    (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), else the VM/IMDS endpoint;
//! 4. Azure CLI: `az account get-access-token`.
//!
//! A credential whose settings are absent is *unavailable* and the chain moves
//! on; a credential that is configured but fails (a rejected secret, a 401
//! from the token endpoint) stops the chain with an error naming it: silently
//! falling through to another identity would make failures hard to read.
//! IMDS and the CLI are unavailable when unreachable / not installed.
//!
//! Promises: every token and client secret is registered with the redactor as
//! soon as it is read and kept in a [`Secret`]; nothing secret is ever put on
//! a command line; error messages name the credential, the endpoint and the
//! service's error code, never a token.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::Config;
use crate::http;
use crate::redact;
use crate::secret::Secret;
use crate::sources::{FailKind, FetchError};

/// Default Entra ID authority (public cloud). Sovereign clouds set
/// `AZURE_AUTHORITY_HOST` or `authority_host`.
const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The VM Instance Metadata Service; `AZURE_POD_IDENTITY_AUTHORITY_HOST`
/// replaces this origin, as in Microsoft's SDKs.
const IMDS_ORIGIN: &str = "http://169.254.169.254";
/// How long the default chain waits for IMDS before calling it unavailable
/// (off Azure, 169.254.169.254 usually does not answer at all).
const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Upper bound for `az account get-access-token` (the SDKs use 10 s).
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Token responses are small; anything larger is refused.
const MAX_TOKEN_RESPONSE: u64 = 64 * 1024;

/// `credential = "..."` in the source's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    #[default]
    Default,
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

/// Where a client secret comes from.
#[derive(Clone, Debug)]
enum SecretFrom {
    File { path: PathBuf, follow_symlinks: bool },
    Env,
}

/// One concrete credential, with everything it needs read from the
/// environment and the settings (no I/O yet).
#[derive(Clone, Debug)]
enum Credential {
    ClientSecret { authority: String, tenant: String, client_id: String, secret: SecretFrom },
    Workload { authority: String, tenant: String, client_id: String, token_file: PathBuf },
    AppService { endpoint: String, header: Secret, client_id: Option<String> },
    Imds { origin: String, client_id: Option<String>, probe: bool },
    Cli { tenant: Option<String> },
}

impl Credential {
    fn label(&self) -> String {
        match self {
            Credential::ClientSecret { client_id, tenant, secret, .. } => {
                let from = match secret {
                    SecretFrom::Env => "AZURE_CLIENT_SECRET".to_owned(),
                    SecretFrom::File { path, .. } => path.display().to_string(),
                };
                format!("client secret (client {client_id}, tenant {tenant}, secret from {from})")
            }
            Credential::Workload { client_id, tenant, token_file, .. } => format!(
                "workload identity (client {client_id}, tenant {tenant}, token {})",
                token_file.display()
            ),
            Credential::AppService { client_id, .. } => match client_id {
                Some(id) => format!("managed identity, user-assigned {id} (App Service endpoint)"),
                None => "managed identity, system-assigned (App Service endpoint)".to_owned(),
            },
            Credential::Imds { client_id, .. } => match client_id {
                Some(id) => format!("managed identity, user-assigned {id} (IMDS)"),
                None => "managed identity, system-assigned (IMDS)".to_owned(),
            },
            Credential::Cli { .. } => "Azure CLI (az account get-access-token)".to_owned(),
        }
    }
}

/// An access token and when to stop using it.
pub struct Token {
    pub secret: Secret,
    refresh_at: Instant,
}

impl Token {
    fn new(secret: Secret, lifetime: Duration) -> Self {
        redact::register(&secret);
        Token { secret, refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN) }
    }

    pub fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

/// What the vault's 401 challenge asked for.
#[derive(Clone, Debug)]
pub struct Audience {
    /// `https://vault.azure.net` (managed identity and the CLI take a resource).
    pub resource: String,
    /// `https://vault.azure.net/.default` (Entra ID v2 takes a scope).
    pub scope: String,
    /// The tenant named in the challenge's `authorization` URL, for hints.
    pub tenant: Option<String>,
}

/// The credentials to try, in order, and which one answered.
pub struct Chain {
    selected: CredentialKind,
    candidates: Vec<Credential>,
    /// Why a credential of the chain was not configured, for the final error.
    absent: Vec<String>,
    /// Index into `candidates` of the one that produced a token.
    used: std::sync::Mutex<Option<usize>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Chain {
    /// Reads the settings and the standard environment variables; no I/O.
    pub fn from_config(config: &Config) -> Result<Chain, FetchError> {
        let authority = config
            .authority_host
            .clone()
            .or_else(|| env("AZURE_AUTHORITY_HOST"))
            .unwrap_or_else(|| PUBLIC_AUTHORITY.to_owned());
        let authority = authority.trim_end_matches('/').to_owned();
        if !authority.starts_with("https://") {
            return Err(FetchError::new(
                FailKind::Local,
                format!("authority host {authority} is not an https:// URL"),
            )
            .with_hint(
                "set authority_host (or AZURE_AUTHORITY_HOST) to e.g. https://login.microsoftonline.us",
            ));
        }
        let tenant = config.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"));
        let client_id = config.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"));
        let mut absent = Vec::new();

        let client_secret = || -> Result<Option<Credential>, String> {
            let secret = match &config.client_secret_file {
                Some(path) => {
                    SecretFrom::File { path: path.clone(), follow_symlinks: config.follow_symlinks }
                }
                None if env("AZURE_CLIENT_SECRET").is_some() => SecretFrom::Env,
                None => return Ok(None),
            };
            match (&tenant, &client_id) {
                (Some(t), Some(c)) => Ok(Some(Credential::ClientSecret {
                    authority: authority.clone(),
                    tenant: t.clone(),
                    client_id: c.clone(),
                    secret,
                })),
                _ => Err("a client secret is set but tenant_id/AZURE_TENANT_ID or client_id/AZURE_CLIENT_ID is not".into()),
            }
        };
        let workload = || -> Result<Option<Credential>, String> {
            let Some(file) = config
                .federated_token_file
                .clone()
                .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
            else {
                return Ok(None);
            };
            match (&tenant, &client_id) {
                (Some(t), Some(c)) => Ok(Some(Credential::Workload {
                    authority: authority.clone(),
                    tenant: t.clone(),
                    client_id: c.clone(),
                    token_file: file,
                })),
                _ => Err("a federated token file is set but tenant_id/AZURE_TENANT_ID or client_id/AZURE_CLIENT_ID is not".into()),
            }
        };
        // Managed identity: only an explicit `client_id` selects a
        // user-assigned identity (AZURE_CLIENT_ID belongs to the app
        // registration of the other credentials), as in the SDKs' MI credential.
        let mi_client = config.client_id.clone();
        let managed = |probe: bool| -> Credential {
            match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
                (Some(endpoint), Some(header)) => {
                    let header = Secret::from_string(header);
                    redact::register(&header);
                    Credential::AppService { endpoint, header, client_id: mi_client.clone() }
                }
                _ => Credential::Imds {
                    origin: env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                        .unwrap_or_else(|| IMDS_ORIGIN.to_owned())
                        .trim_end_matches('/')
                        .to_owned(),
                    client_id: mi_client.clone(),
                    probe,
                },
            }
        };
        let cli = Credential::Cli { tenant: config.tenant_id.clone() };

        let local = |m: String| {
            FetchError::new(FailKind::Local, m).with_hint(
                "set the missing values in the source's settings or the environment; see docs/azure.md",
            )
        };
        let required = |c: Result<Option<Credential>, String>, what: &str| match c {
            Ok(Some(c)) => Ok(vec![c]),
            Ok(None) => Err(local(format!("credential = {what:?} but {}", missing_text(what)))),
            Err(m) => Err(local(m)),
        };
        let candidates = match config.credential {
            CredentialKind::ClientSecret => required(client_secret(), "client-secret")?,
            CredentialKind::WorkloadIdentity => required(workload(), "workload-identity")?,
            CredentialKind::ManagedIdentity => vec![managed(false)],
            CredentialKind::AzureCli => vec![cli],
            CredentialKind::Default => {
                let mut c = Vec::new();
                match client_secret().map_err(local)? {
                    Some(x) => c.push(x),
                    None => absent.push("client secret: AZURE_CLIENT_SECRET not set".to_owned()),
                }
                match workload().map_err(local)? {
                    Some(x) => c.push(x),
                    None => absent.push("workload identity: AZURE_FEDERATED_TOKEN_FILE not set".to_owned()),
                }
                c.push(managed(true));
                c.push(cli);
                c
            }
        };
        Ok(Chain { selected: config.credential, candidates, absent, used: std::sync::Mutex::new(None) })
    }

    /// The credential that produced the last token, for `check` and logs.
    pub fn describe(&self) -> Option<String> {
        let used = *self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.map(|i| self.candidates[i].label())
    }

    /// True if the client secret came from `AZURE_CLIENT_SECRET` and a token was obtained with it.
    pub fn used_env_secret(&self) -> bool {
        let used = *self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.is_some_and(|i| {
            matches!(self.candidates[i], Credential::ClientSecret { secret: SecretFrom::Env, .. })
        })
    }

    /// Gets a new token for `aud`, trying the chain in order (or the
    /// credential that answered before).
    pub fn token(&self, agent: &ureq::Agent, aud: &Audience, deadline: Instant) -> Result<Token, FetchError> {
        let used = *self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = used {
            let label = self.candidates[i].label();
            return match self.candidates[i].token(agent, aud, deadline) {
                Ok(t) => Ok(t),
                Err(Attempt::Unavailable(m)) => Err(FetchError::new(FailKind::Auth, format!("{label}: {m}"))),
                Err(Attempt::Failed(mut e)) => {
                    e.message = format!("{label}: {}", e.message);
                    Err(e)
                }
            };
        }
        let mut tried = self.absent.clone();
        for (i, cred) in self.candidates.iter().enumerate() {
            match cred.token(agent, aud, deadline) {
                Ok(t) => {
                    crate::debug!("azure: access token from {}", cred.label());
                    *self.used.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    return Ok(t);
                }
                Err(Attempt::Unavailable(m)) => {
                    crate::debug!("azure: {} unavailable: {m}", cred.label());
                    tried.push(format!("{}: {m}", cred.label()));
                }
                Err(Attempt::Failed(mut e)) => {
                    e.message = format!("{}: {}", cred.label(), e.message);
                    return Err(e);
                }
            }
        }
        let what = if self.selected == CredentialKind::Default {
            "no credential of the default chain"
        } else {
            "the credential"
        };
        Err(FetchError::new(FailKind::Auth, format!("{what} could provide a token ({})", tried.join("; ")))
            .with_hint("configure one of: AZURE_TENANT_ID+AZURE_CLIENT_ID+AZURE_CLIENT_SECRET, workload identity, a managed identity, or `az login`; see docs/azure.md"))
    }
}

fn missing_text(what: &str) -> &'static str {
    match what {
        "client-secret" => "no client secret is set (client_secret_file, or AZURE_CLIENT_SECRET)",
        _ => "no federated token file is set (federated_token_file, or AZURE_FEDERATED_TOKEN_FILE)",
    }
}

/// Outcome of one credential's attempt.
enum Attempt {
    /// Not configured or not reachable here: the chain may try the next one.
    Unavailable(String),
    /// Configured, and it failed: stop.
    Failed(FetchError),
}

impl From<FetchError> for Attempt {
    fn from(e: FetchError) -> Self {
        Attempt::Failed(e)
    }
}

/// The JSON of a token response; the fields differ per endpoint.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    /// Entra ID: a number; IMDS: a string of digits.
    expires_in: Option<serde_json::Value>,
    /// App Service and IMDS: seconds since the epoch, as a string or number.
    expires_on: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
    /// App Service errors: `{"statusCode":..,"message":..}`
    message: Option<String>,
}

/// The JSON printed by `az account get-access-token`.
#[derive(Deserialize)]
struct CliToken {
    #[serde(rename = "accessToken")]
    access_token: String,
    /// Seconds since the epoch (Azure CLI ≥ 2.54).
    expires_on: Option<serde_json::Value>,
}

fn number(v: &Option<serde_json::Value>) -> Option<u64> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lifetime_until(epoch_secs: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    Duration::from_secs(epoch_secs.saturating_sub(now))
}

/// Appends `k=v` to a form body, percent-encoding both.
fn form_pair(body: &mut Zeroizing<Vec<u8>>, k: &str, v: &[u8]) {
    if !body.is_empty() {
        body.push(b'&');
    }
    pct_encode_into(body, k.as_bytes());
    body.push(b'=');
    pct_encode_into(body, v);
}

fn pct_encode_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

/// Percent-encodes a query value.
pub fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut cut: String = line.chars().take(300).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}

impl Credential {
    fn token(&self, agent: &ureq::Agent, aud: &Audience, deadline: Instant) -> Result<Token, Attempt> {
        match self {
            Credential::ClientSecret { authority, tenant, client_id, secret } => {
                let secret = match secret {
                    SecretFrom::Env => {
                        let s = Secret::from_string(env("AZURE_CLIENT_SECRET").unwrap_or_default());
                        redact::register(&s);
                        s
                    }
                    SecretFrom::File { path, follow_symlinks } => {
                        let s = crate::fsperm::read_secret_file(path, *follow_symlinks)
                            .map_err(FetchError::from)?;
                        redact::register(&s);
                        trim_secret(s)
                    }
                };
                // Sized up front: a reallocation would leave an unzeroed copy behind.
                let mut body = Zeroizing::new(Vec::with_capacity(1024 + 3 * secret.len()));
                form_pair(&mut body, "grant_type", b"client_credentials");
                form_pair(&mut body, "client_id", client_id.as_bytes());
                form_pair(&mut body, "client_secret", secret.expose());
                form_pair(&mut body, "scope", aud.scope.as_bytes());
                entra_token(agent, authority, tenant, &body, aud, deadline).map_err(Attempt::Failed)
            }
            Credential::Workload { authority, tenant, client_id, token_file } => {
                // Re-read on every request: the platform rotates the file.
                let assertion = crate::fsperm::read_projected_token(token_file).map_err(FetchError::from)?;
                redact::register(&assertion);
                let assertion = trim_secret(assertion);
                let mut body = Zeroizing::new(Vec::with_capacity(1024 + 3 * assertion.len()));
                form_pair(&mut body, "grant_type", b"client_credentials");
                form_pair(&mut body, "client_id", client_id.as_bytes());
                form_pair(
                    &mut body,
                    "client_assertion_type",
                    b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form_pair(&mut body, "client_assertion", assertion.expose());
                form_pair(&mut body, "scope", aud.scope.as_bytes());
                entra_token(agent, authority, tenant, &body, aud, deadline).map_err(Attempt::Failed)
            }
            Credential::AppService { endpoint, header, client_id } => {
                let mut url = format!(
                    "{endpoint}{}api-version=2019-08-01&resource={}",
                    if endpoint.contains('?') { '&' } else { '?' },
                    query_escape(&aud.resource)
                );
                if let Some(id) = client_id {
                    url.push_str(&format!("&client_id={}", query_escape(id)));
                }
                let header = std::str::from_utf8(header.expose()).unwrap_or_default();
                let req = agent.get(&url).header("X-IDENTITY-HEADER", header);
                let resp = call(
                    req.config().timeout_global(Some(http::request_limit(agent, deadline))).build().call(),
                    &url,
                )
                .map_err(Attempt::Failed)?;
                parse_token(resp, &url, "managed identity endpoint").map_err(Attempt::Failed)
            }
            Credential::Imds { origin, client_id, probe } => {
                let mut url = format!(
                    "{origin}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
                    query_escape(&aud.resource)
                );
                if let Some(id) = client_id {
                    url.push_str(&format!("&client_id={}", query_escape(id)));
                }
                let mut limit = http::request_limit(agent, deadline);
                if *probe {
                    limit = limit.min(IMDS_PROBE_TIMEOUT);
                }
                let req = agent.get(&url).header("Metadata", "true");
                match req.config().timeout_global(Some(limit)).build().call() {
                    Ok(resp) => {
                        // In the chain, IMDS answering "no identity here" means
                        // unavailable, as in the SDKs.
                        if *probe && matches!(resp.status().as_u16(), 400 | 404) {
                            return Err(Attempt::Unavailable(format!(
                                "IMDS answered {} (no managed identity assigned)",
                                resp.status().as_u16()
                            )));
                        }
                        parse_token(resp, &url, "IMDS").map_err(Attempt::Failed)
                    }
                    Err(e) if *probe => {
                        Err(Attempt::Unavailable(format!("IMDS not reachable at {origin}: {e}")))
                    }
                    Err(e) => Err(Attempt::Failed(transport_error(&url, e))),
                }
            }
            Credential::Cli { tenant } => cli_token(aud, tenant.as_deref(), deadline),
        }
    }
}

/// A secret read from a file, without the trailing newline editors add.
fn trim_secret(s: Secret) -> Secret {
    let b = s.expose();
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1);
    if end == b.len() { s } else { Secret::copy_from(&b[..end]) }
}

fn call(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
    r.map_err(|e| transport_error(url, e))
}

pub fn transport_error(url: &str, e: ureq::Error) -> FetchError {
    let origin = origin_of(url);
    match e {
        ureq::Error::Timeout(_) => FetchError::new(
            FailKind::Unavailable,
            format!(
                "request to {origin} failed: timed out (no answer within the deadline or request_timeout)"
            ),
        )
        .with_hint("check that the host is reachable from here (firewall, private endpoint DNS, proxy)"),
        e => FetchError::new(FailKind::Unavailable, format!("request to {origin} failed: {e}"))
            .with_hint("check the network path and, for a private CA or TLS inspection, ca_cert"),
    }
}

/// `https://host:port` of a URL, for messages (no path or query).
pub fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find(['/', '?']).map_or(url.len(), |i| after + i);
    &url[..end]
}

fn entra_token(
    agent: &ureq::Agent,
    authority: &str,
    tenant: &str,
    body: &[u8],
    aud: &Audience,
    deadline: Instant,
) -> Result<Token, FetchError> {
    let url = format!("{authority}/{}/oauth2/v2.0/token", query_escape(tenant));
    let mut backoff = http::Backoff::new(deadline);
    loop {
        let req = agent.post(&url).header("Content-Type", "application/x-www-form-urlencoded");
        let resp = call(
            req.config().timeout_global(Some(http::request_limit(agent, deadline))).build().send(body),
            &url,
        )?;
        let status = resp.status().as_u16();
        if matches!(status, 429 | 500 | 502 | 503 | 504)
            && let Some(d) = backoff.next_delay(http::retry_after(&resp))
        {
            crate::debug!("azure: token endpoint answered {status}, retrying in {d:?}");
            std::thread::sleep(d);
            continue;
        }
        return parse_token(resp, &url, "Entra ID token endpoint").map_err(|mut e| {
            if let Some(t) = aud.tenant.as_deref().filter(|t| *t != tenant) {
                e.message.push_str(&format!(
                    " (the vault's challenge names tenant {t}, the credential uses {tenant})"
                ));
            }
            e
        });
    }
}

fn parse_token(
    mut resp: ureq::http::Response<ureq::Body>,
    url: &str,
    what: &str,
) -> Result<Token, FetchError> {
    let status = resp.status().as_u16();
    let origin = origin_of(url).to_owned();
    let body = Zeroizing::new(
        resp.body_mut()
            .with_config()
            .limit(MAX_TOKEN_RESPONSE)
            .read_to_vec()
            .map_err(|e| transport_error(url, e))?,
    );
    let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
    if status != 200 {
        let detail = parsed
            .as_ref()
            .map(|p| {
                let code = p.error.clone().unwrap_or_default();
                let desc = p
                    .error_description
                    .as_deref()
                    .or(p.message.as_deref())
                    .map(first_line)
                    .unwrap_or_default();
                [code, desc].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(": ")
            })
            .unwrap_or_default();
        let kind = if matches!(status, 400 | 401 | 403) { FailKind::Auth } else { FailKind::Unavailable };
        let hint = match status {
            400 | 401 => {
                "check the tenant, client id and credential (an expired client secret or a federated credential whose subject/audience does not match are common causes)"
            }
            403 => {
                "the identity may not be allowed to request this token; check the managed identity assignment"
            }
            _ => "the token endpoint is unavailable; try again later",
        };
        return Err(FetchError::new(
            kind,
            format!(
                "{what} {origin} answered {status}{}",
                if detail.is_empty() { String::new() } else { format!(" ({detail})") }
            ),
        )
        .with_hint(hint));
    }
    let Some(TokenResponse { access_token: Some(tok), expires_in, expires_on, .. }) = parsed else {
        return Err(FetchError::new(FailKind::Auth, format!("{what} {origin} sent no access_token")));
    };
    let secret = Secret::from_string(tok);
    let lifetime = number(&expires_in)
        .map(Duration::from_secs)
        .or_else(|| number(&expires_on).map(lifetime_until))
        .unwrap_or(Duration::from_secs(300));
    Ok(Token::new(secret, lifetime))
}

/// Runs `az account get-access-token`; the token comes back on stdout, so
/// nothing secret is on the command line.
fn cli_token(aud: &Audience, tenant: Option<&str>, deadline: Instant) -> Result<Token, Attempt> {
    let mut cmd = Command::new("az");
    cmd.args(["account", "get-access-token", "--output", "json", "--resource", &aud.resource]);
    if let Some(t) = tenant {
        cmd.args(["--tenant", t]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Attempt::Unavailable("az is not installed (not found on PATH)".into()));
        }
        Err(e) => return Err(Attempt::Unavailable(format!("cannot run az: {e}"))),
    };
    let limit = Instant::now() + CLI_TIMEOUT.min(http::remaining(deadline));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // Read both pipes on threads so a chatty az cannot block on a full pipe.
    let out = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.take(16 * 1024).read_to_end(&mut buf);
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < limit => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Attempt::Failed(FetchError::new(
                    FailKind::Unavailable,
                    format!("az account get-access-token did not finish within {CLI_TIMEOUT:?}"),
                )));
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if !status.success() {
        let msg = first_line(err.lines().find(|l| l.contains("ERROR")).unwrap_or(&err));
        return Err(Attempt::Failed(
            FetchError::new(FailKind::Auth, format!("az account get-access-token failed ({status}): {msg}"))
                .with_hint("run `az login` (or `az login --identity`) as the user secretexec runs as"),
        ));
    }
    let tok: CliToken = serde_json::from_slice(&out).map_err(|e| {
        Attempt::Failed(FetchError::new(FailKind::Auth, format!("az printed no usable token JSON: {e}")))
    })?;
    let secret = Secret::from_string(tok.access_token);
    // Older CLIs print only a local-time expiresOn; assume a short life.
    let lifetime = number(&tok.expires_on).map(lifetime_until).unwrap_or(Duration::from_secs(300));
    Ok(Token::new(secret, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_body_is_percent_encoded() {
        let mut b = Zeroizing::new(Vec::new());
        form_pair(&mut b, "scope", b"https://vault.azure.net/.default");
        form_pair(&mut b, "client_secret", b"a+b&c=d~");
        assert_eq!(&b[..], b"scope=https%3A%2F%2Fvault.azure.net%2F.default&client_secret=a%2Bb%26c%3Dd~");
    }

    #[test]
    fn origin_drops_path_and_query() {
        assert_eq!(
            origin_of("https://login.microsoftonline.com/t/oauth2/v2.0/token"),
            "https://login.microsoftonline.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:9/x?y"), "http://127.0.0.1:9");
    }
}
