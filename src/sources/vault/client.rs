//! A small blocking client for the Vault / OpenBao HTTP API, on the shared
//! ureq agent (`crate::http`).
//!
//! Promises: every request is bounded by the source's request timeout and
//! never outlives the deadline; connection failures move on to the next
//! configured address; connection errors, 5xx, 429 and 412 are retried with
//! jittered exponential backoff until the deadline; 4xx other than 412/429
//! and TLS failures are answered at once. Response bodies are wiped when
//! dropped. No token or value ever reaches a message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroize;

use crate::http::{self, Backoff};
use crate::secret::Secret;
use crate::sources::{FailKind, FetchError};

/// A parsed JSON body whose strings are overwritten with zeros on drop.
pub struct Json(pub Value);

impl Drop for Json {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// One HTTP answer from the server (any status).
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    /// The server's `errors` array, joined; never holds a value (Vault's
    /// error texts name paths and reasons only).
    pub fn errors(&self) -> String {
        let list: Vec<&str> = self
            .body
            .0
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        list.join("; ")
    }

    pub fn warnings(&self) -> String {
        let list: Vec<&str> = self
            .body
            .0
            .get("warnings")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        list.join("; ")
    }

    pub fn data(&self) -> Option<&Value> {
        self.body.0.get("data").filter(|d| !d.is_null())
    }
}

/// Checks an address the way an operator writes it (`https://vault:8200`,
/// trailing slash allowed) and returns it without the trailing slash.
pub fn check_address(raw: &str) -> Result<String, String> {
    let a = raw.trim();
    let rest = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .ok_or_else(|| format!("address {a:?} must start with http:// or https://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() {
        return Err(format!("address {a:?} has no host"));
    }
    if host.contains('/') {
        return Err(format!("address {a:?} must not contain a path (the API lives under /v1)"));
    }
    if let Some(c) = host.chars().find(|c| c.is_whitespace() || c.is_control() || "?#@\\".contains(*c)) {
        return Err(format!("address {a:?} contains {c:?}, which cannot appear in a host:port"));
    }
    Ok(a.trim_end_matches('/').to_owned())
}

/// Checks a token for use in a header, after trimming surrounding
/// whitespace (token files usually end with a newline).
pub fn clean_token(raw: &[u8], from: &str) -> Result<Secret, FetchError> {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    let t = &raw[start..end];
    if t.is_empty() {
        return Err(FetchError::new(FailKind::Auth, format!("the token in {from} is empty")));
    }
    if t.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(FetchError::new(
            FailKind::Auth,
            format!("the token in {from} contains spaces or non-ASCII bytes, which no Vault token has"),
        )
        .with_hint("check that the file or variable holds only the token"));
    }
    let token = Secret::copy_from(t);
    crate::redact::register_bytes(token.expose());
    Ok(token)
}

pub struct Client {
    agent: ureq::Agent,
    addresses: Vec<String>,
    /// Index of the address that answered last.
    current: AtomicUsize,
    namespace: Option<String>,
    request_timeout: Duration,
}

pub enum Method {
    Get,
    Post(zeroize::Zeroizing<Vec<u8>>),
}

impl Client {
    pub fn new(
        agent: ureq::Agent,
        addresses: Vec<String>,
        namespace: Option<String>,
        request_timeout: Duration,
    ) -> Self {
        Self { agent, addresses, current: AtomicUsize::new(0), namespace, request_timeout }
    }

    /// The address in use (for messages).
    pub fn address(&self) -> &str {
        &self.addresses[self.current.load(Ordering::Relaxed) % self.addresses.len()]
    }

    /// Sends one API request (`path` without `/v1/`), with retries, and
    /// returns the first answer that is final: 2xx, or a 4xx other than 412
    /// and 429. Err means the server could not give a final answer before
    /// the deadline (or TLS failed).
    pub fn request(
        &self,
        deadline: Instant,
        method: &Method,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<Reply, FetchError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(deadline);
        let n = self.addresses.len();
        loop {
            let mut retry_after = None;
            let mut last: Option<String> = None;
            let first = self.current.load(Ordering::Relaxed);
            for k in 0..n {
                let idx = (first + k) % n;
                let addr = &self.addresses[idx];
                if Instant::now() >= deadline {
                    break;
                }
                match self.once(deadline, addr, method, path, token) {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let ra = http::retry_after(&resp);
                        let reply = read_reply(resp, status)?;
                        crate::trace!("vault: {} {addr}/v1/{path} -> {status}", method_name(method));
                        let transient = status >= 500 || status == 429 || status == 412;
                        if !transient {
                            self.current.store(idx, Ordering::Relaxed);
                            return Ok(reply);
                        }
                        let errs = reply.errors();
                        let sealed = errs.contains("sealed");
                        last = Some(if sealed {
                            format!("{addr} is sealed")
                        } else if errs.is_empty() {
                            format!("{addr} answered HTTP {status}")
                        } else {
                            format!("{addr} answered HTTP {status} ({errs})")
                        });
                        retry_after = ra;
                        // A sealed or standby node: another address may serve.
                        if status == 503 {
                            continue;
                        }
                        break;
                    }
                    Err(e) => {
                        crate::trace!("vault: {} {addr}/v1/{path} -> {e}", method_name(method));
                        if is_tls_failure(&e) {
                            return Err(FetchError::new(
                                FailKind::Unavailable,
                                format!("TLS with {addr} failed: {}", tls_words(&e)),
                            )
                            .with_hint(
                                "set ca_cert (or $VAULT_CACERT) to the PEM CA that signed the server's \
                                 certificate; check that the address's host name matches the certificate",
                            ));
                        }
                        last = Some(format!("{addr}: {}", transport_words(&e)));
                        self.current.store((idx + 1) % n, Ordering::Relaxed);
                    }
                }
            }
            let what = last.unwrap_or_else(|| "no answer".to_owned());
            match backoff.next_delay(retry_after) {
                Some(d) => {
                    crate::debug!("vault: {what}; retrying in {} ms", d.as_millis());
                    std::thread::sleep(d);
                }
                None => {
                    let attempts = backoff.attempts();
                    let secs = started.elapsed().as_secs_f64();
                    let hint = if what.contains("sealed") {
                        "unseal the server (bao operator unseal), or list a standby address in address = [...]"
                    } else {
                        "check that the server is running and reachable at address (or $VAULT_ADDR); \
                         a longer timeout gives it more time"
                    };
                    return Err(FetchError::new(
                        FailKind::Unavailable,
                        format!("{what}; gave up after {attempts} attempt(s) over {secs:.1}s (deadline)"),
                    )
                    .with_hint(hint));
                }
            }
        }
    }

    fn once(
        &self,
        deadline: Instant,
        addr: &str,
        method: &Method,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let url = format!("{addr}/v1/{path}");
        let timeout = self.request_timeout.min(http::remaining(deadline));
        let mut headers: Vec<(&str, &[u8])> = vec![("X-Vault-Request", b"true")];
        if let Some(t) = token {
            headers.push(("X-Vault-Token", t.expose()));
        }
        if let Some(ns) = &self.namespace {
            headers.push(("X-Vault-Namespace", ns.as_bytes()));
        }
        match method {
            Method::Get => {
                let mut rb = self.agent.get(&url).config().timeout_global(Some(timeout)).build();
                for (k, v) in headers {
                    rb = rb.header_raw(k, v);
                }
                rb.call()
            }
            Method::Post(body) => {
                let mut rb = self.agent.post(&url).config().timeout_global(Some(timeout)).build();
                for (k, v) in headers {
                    rb = rb.header_raw(k, v);
                }
                rb.content_type("application/json").send(&body[..])
            }
        }
    }
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post(_) => "POST",
    }
}

fn read_reply(mut resp: ureq::http::Response<ureq::Body>, status: u16) -> Result<Reply, FetchError> {
    let mut bytes = zeroize::Zeroizing::new(match resp.body_mut().read_to_vec() {
        Ok(b) => b,
        Err(e) => {
            return Err(FetchError::new(
                FailKind::Unavailable,
                format!("reading the answer (HTTP {status}) failed: {}", transport_words(&e)),
            ));
        }
    });
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                // Not JSON: a proxy's error page, or not a Vault server at all.
                bytes.zeroize();
                return Ok(Reply { status, body: Json(Value::Null) });
            }
        }
    };
    Ok(Reply { status, body: Json(value) })
}

/// A certificate or handshake failure: permanent, not worth a retry.
/// rustls errors reach us wrapped in an `InvalidData` I/O error.
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// A transport failure in operator words (never a header or body).
fn transport_words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            std::io::ErrorKind::UnexpectedEof => "connection closed before an answer".into(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".into(),
            _ => format!("I/O error: {io}"),
        },
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found (DNS)".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}

fn tls_words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
