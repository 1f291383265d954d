//! The HTTP client shared by the network backends (Vault, Azure Key Vault):
//! one pooled agent per source, TLS settings, and retry timing.
//!
//! Promises: TLS roots are only built when an agent is made (so a mapping with
//! only local sources never pays for them); every request is bounded by the
//! source's request timeout and never outlives the resolve deadline; retries
//! back off exponentially with full jitter and honour `Retry-After`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// TLS and timeout settings of one source.
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// Extra CA bundle (PEM) to trust instead of the bundled Mozilla roots.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Disable certificate verification (`VAULT_SKIP_VERIFY`); callers warn loudly.
    pub skip_verify: bool,
    /// Upper bound for one request, connect included.
    pub request_timeout: Option<Duration>,
    /// Idle connections kept per host (default: ureq's 3). A source that
    /// reads with N threads sets N, or every read beyond the third pays a
    /// new TLS handshake.
    pub pool_per_host: Option<usize>,
}

/// Builds an agent for one source. Errors name the file that could not be used.
pub fn agent(settings: &HttpSettings) -> Result<ureq::Agent, String> {
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &settings.ca_cert {
        let certs = read_certs(ca)?;
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
    } else {
        tls = tls.root_certs(RootCerts::WebPki);
    }
    match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = read_key(key)?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => return Err("client_cert and client_key must be set together".into()),
    }
    if settings.skip_verify {
        tls = tls.disable_verification(true);
    }
    let timeout = settings.request_timeout.unwrap_or(Duration::from_secs(30));
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
        .max_redirects(0)
        .max_idle_connections(settings.pool_per_host.unwrap_or(3).max(10))
        .max_idle_connections_per_host(settings.pool_per_host.unwrap_or(3))
        .user_agent(concat!("secretexec/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ureq::unversioned::transport::DefaultConnector::default();
    Ok(ureq::Agent::with_parts(config, connector, CachingResolver::default()))
}

/// Looks each `host:port` up once per agent. ureq's default resolver runs
/// for every request, before the connection pool is consulted, and on a new
/// thread whenever a timeout is set: 100 Vault reads cost 100 lookups and
/// 100 thread starts. A resolve is bounded by its deadline anyway, and a
/// source lives for one resolve, so a per-agent cache cannot go stale.
#[derive(Debug, Default)]
struct CachingResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    cache:
        std::sync::Mutex<std::collections::HashMap<String, ureq::unversioned::resolver::ResolvedSocketAddrs>>,
}

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key =
            format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |a| a.as_str()));
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(hit.clone());
        }
        let found = self.inner.resolve(uri, config, timeout)?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, found.clone());
        Ok(found)
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = read_pem(path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{} is not valid PEM: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKey<'static>, String> {
    // A private key is a credential: same checks as any secret file.
    let bytes = crate::fsperm::read_secret_file(path, false).map_err(|e| e.to_string())?;
    PrivateKey::from_pem(bytes.expose())
        .map_err(|e| format!("{} holds no usable PEM private key: {e}", path.display()))
}

/// Exponential backoff with full jitter, bounded by a deadline.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
    deadline: Instant,
}

impl Backoff {
    pub fn new(deadline: Instant) -> Self {
        Self { attempt: 0, base: Duration::from_millis(100), cap: Duration::from_secs(5), deadline }
    }

    /// How long to wait before the next attempt, or `None` when the next
    /// attempt could not start before the deadline. `retry_after` (from the
    /// server) replaces the computed delay when given.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.cap);
        self.attempt += 1;
        let delay = retry_after.unwrap_or_else(|| jitter(exp));
        let now = Instant::now();
        (now + delay < self.deadline).then_some(delay)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A uniformly random duration in [d/2, d].
fn jitter(d: Duration) -> Duration {
    let r = crate::random_u64() % 1_000_000;
    let half = d / 2;
    half + half.mul_f64(r as f64 / 1_000_000.0)
}

/// Parses a `Retry-After` header: delay-seconds only (the HTTP-date form is
/// not sent by Vault or Azure Key Vault).
pub fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The timeout for one request of `agent`: its own request timeout, cut to
/// the time left until `deadline`. (A per-request timeout replaces the
/// agent's, so callers that bound requests by the deadline use this.)
pub fn request_limit(agent: &ureq::Agent, deadline: Instant) -> Duration {
    let own = agent.config().timeouts().global.unwrap_or(Duration::MAX);
    remaining(deadline).min(own)
}

/// Time left until `deadline`, at least 1 ms so a request can still fail fast.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
}
