//! A test double of Azure Key Vault and of the token endpoints secretexec's
//! Azure credentials talk to, over HTTPS with a CA made at test time.
//!
//! One server plays every role, on its own paths:
//! - Key Vault secrets, data plane api-version 7.x:
//!   `GET /secrets/{name}[/{version}]` and `GET /secrets` (list, `maxresults`,
//!   `nextLink` paging). Every request needs `api-version`; a request without
//!   a valid bearer token gets `401` with the `WWW-Authenticate: Bearer
//!   authorization="…/{tenant}", resource="…"` challenge.
//! - Entra ID v2 token endpoint `POST /{tenant}/oauth2/v2.0/token`
//!   (client secret and federated `client_assertion`), plus the OpenID
//!   metadata document MSAL reads first.
//! - App Service managed identity endpoint `GET /msi/token` (api-version
//!   2019-08-01, `X-IDENTITY-HEADER`).
//! - VM IMDS `GET /metadata/identity/oauth2/token` (`Metadata: true`).
//!
//! It checks what the real services check: api-version present, bearer token
//! present, known, for this audience and unexpired; the identity header; the
//! client secret or assertion; the scope. Tokens are random and short-lived
//! on demand (`expire_tokens_after`), so a client that skips a step fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// The tenant every credential and challenge uses.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app registration of the client-secret and workload credentials.
pub const CLIENT_ID: &str = "0b0a8b4e-3a3b-4c1e-9d1e-5b2f7f2d9a11";

/// A CA and a `localhost` leaf certificate, made once per test process.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

static PKI: OnceLock<Pki> = OnceLock::new();

/// Statics are never dropped: remove the CA directory when the process exits.
extern "C" fn remove_pki() {
    if let Some(p) = PKI.get() {
        let _ = std::fs::remove_dir_all(p._dir.path());
    }
}

/// The test CA (PEM) that signs the server's certificate.
pub fn pki() -> &'static Pki {
    PKI.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function with no arguments.
        unsafe { libc::atexit(remove_pki) };
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        // Self-contained (no crate::support) so examples/azure_kv_server.rs can include this file.
        let openssl = std::env::var_os("SECRETEXEC_TEST_OPENSSL").unwrap_or_else(|| "openssl".into());
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is required for the Azure test server's CA; run scripts/test.sh");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=secretexec test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        run(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
        )
        .unwrap();
        run(&["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext"]);
        Pki { ca: d.join("ca.pem"), cert: d.join("leaf.pem"), key: d.join("leaf.key"), _dir: dir }
    })
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    while s.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(s.len());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s.truncate(n);
    s
}

/// One version of a secret.
#[derive(Clone, Debug)]
pub struct Version {
    pub id: String,
    pub value: String,
    pub enabled: bool,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

struct Issued {
    audience: String,
    expired: bool,
}

/// Which role a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Secret,
    List,
    Entra,
    AppService,
    Imds,
    Other,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub endpoint: Endpoint,
    pub path: String,
    pub status: u16,
    pub authorized: bool,
    pub at: Instant,
    /// Every header and the body, to check no secret is sent where it must not be.
    pub raw: String,
}

#[derive(Default)]
struct State {
    /// lower-case name -> (name as created, versions oldest first)
    secrets: BTreeMap<String, (String, Vec<Version>)>,
    tokens: BTreeMap<String, Issued>,
    clients: BTreeMap<String, String>,
    federated: BTreeMap<String, String>,
    /// Token files the server rotates after each federated grant, as kubelet does.
    rotate: BTreeMap<String, PathBuf>,
    identity_header: String,
    /// Client ids of managed identities; "" is the system-assigned one.
    identities: BTreeSet<String>,
    /// The resource the challenge names.
    resource: String,
    denied: BTreeSet<String>,
    throttle: u32,
    retry_after: u64,
    expire_after_reads: Option<u32>,
    page_size: usize,
    hits: Vec<Hit>,
    /// Connections open now, and the most ever open at once.
    open: usize,
    max_open: usize,
}

/// A running server; stops when dropped.
pub struct KeyVaultServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl KeyVaultServer {
    pub fn start() -> Self {
        let pki = pki();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&pki.cert).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut st = State {
            identity_header: format!("idh-{}", random_hex(24)),
            resource: "https://localhost".into(),
            page_size: 25,
            retry_after: 1,
            ..State::default()
        };
        st.identities.insert(String::new());
        let state = Arc::new(Mutex::new(st));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                let (config, state) = (config.clone(), state2.clone());
                std::thread::spawn(move || serve_connection(tcp, config, state, port));
            }
        });
        KeyVaultServer { port, state, stop }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// `https://localhost:PORT`: the vault, the authority and the managed identity host.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url())
    }

    pub fn identity_header(&self) -> String {
        self.st().identity_header.clone()
    }

    /// Adds a new (latest) version of `name` and returns its version id.
    pub fn put(&self, name: &str, value: &str) -> String {
        self.put_version(
            name,
            Version { id: random_hex(32), value: value.into(), enabled: true, exp: None, nbf: None },
        )
    }

    pub fn put_version(&self, name: &str, v: Version) -> String {
        let id = v.id.clone();
        let mut st = self.st();
        let entry =
            st.secrets.entry(name.to_ascii_lowercase()).or_insert_with(|| (name.to_owned(), Vec::new()));
        entry.1.push(v);
        id
    }

    /// Changes the latest version of `name`.
    pub fn edit_latest(&self, name: &str, f: impl FnOnce(&mut Version)) {
        let mut st = self.st();
        f(st.secrets.get_mut(&name.to_ascii_lowercase()).unwrap().1.last_mut().unwrap());
    }

    pub fn add_client(&self, client_id: &str, secret: &str) {
        self.st().clients.insert(client_id.into(), secret.into());
    }

    pub fn add_federated(&self, client_id: &str, assertion: &str) {
        self.st().federated.insert(client_id.into(), assertion.into());
    }

    /// Like kubelet: after each successful federated grant for `client_id`,
    /// write a new assertion into `file` (atomically) and accept only that one.
    pub fn rotate_federated(&self, client_id: &str, file: &Path) {
        self.st().rotate.insert(client_id.into(), file.to_owned());
    }

    pub fn add_identity(&self, client_id: &str) {
        self.st().identities.insert(client_id.into());
    }

    /// The RBAC role is missing for `name`: 403 ForbiddenByRbac.
    pub fn deny(&self, name: &str) {
        self.st().denied.insert(name.to_ascii_lowercase());
    }

    /// The next `n` authorized vault requests get 429 with `Retry-After: secs`.
    pub fn throttle(&self, n: u32, retry_after_secs: u64) {
        let mut st = self.st();
        st.throttle = n;
        st.retry_after = retry_after_secs;
    }

    /// After `n` more successful secret reads every issued token expires.
    pub fn expire_tokens_after(&self, n: u32) {
        self.st().expire_after_reads = Some(n);
    }

    pub fn set_page_size(&self, n: usize) {
        self.st().page_size = n;
    }

    /// The resource the 401 challenge names (default `https://localhost`).
    pub fn set_challenge_resource(&self, r: &str) {
        self.st().resource = r.into();
    }

    /// A valid token, as `az account get-access-token` would print one.
    pub fn issue_token(&self) -> String {
        let mut st = self.st();
        let aud = st.resource.clone();
        issue(&mut st, &aud)
    }

    /// Every access token issued so far (to check none was printed).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.st().tokens.keys().cloned().collect()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.st().hits.clone()
    }

    /// The most connections that were ever open at once.
    pub fn max_connections(&self) -> usize {
        self.st().max_open
    }

    pub fn count(&self, e: Endpoint) -> usize {
        self.st().hits.iter().filter(|h| h.endpoint == e).count()
    }
}

impl Drop for KeyVaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn issue(st: &mut State, audience: &str) -> String {
    let tok = format!("eyJ0eXAiOiJKV1Qi.kv-{}", random_hex(40));
    st.tokens.insert(tok.clone(), Issued { audience: audience.into(), expired: false });
    tok
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    raw: String,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn resp(status: u16, body: Value) -> Response {
    Response { status, headers: Vec::new(), body }
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut raw = line.clone();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        raw.push_str(&h);
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    raw.push_str(&String::from_utf8_lossy(&body));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request { method, path: pct_decode(path), query: parse_pairs(query), headers, body, raw })
}

fn serve_connection(tcp: TcpStream, config: Arc<rustls::ServerConfig>, state: Arc<Mutex<State>>, port: u16) {
    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
    let _ = tcp.set_nodelay(true);
    {
        let mut st = state.lock().unwrap();
        st.open += 1;
        st.max_open = st.max_open.max(st.open);
    }
    serve_requests(conn, tcp, &state, port);
    state.lock().unwrap().open -= 1;
}

fn serve_requests(conn: rustls::ServerConnection, tcp: TcpStream, state: &Arc<Mutex<State>>, port: u16) {
    let stream = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let (endpoint, mut response, authorized) = {
            let mut st = state.lock().unwrap();
            route(&mut st, &req, port)
        };
        let body = response.body.to_string();
        let reason = match response.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Other",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            response.status,
            body.len()
        );
        response.headers.push(("x-ms-keyvault-service-version".into(), "1.9.0.0".into()));
        for (k, v) in &response.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        {
            let mut st = state.lock().unwrap();
            st.hits.push(Hit {
                endpoint,
                path: req.path.clone(),
                status: response.status,
                authorized,
                at: Instant::now(),
                raw: req.raw.clone(),
            });
        }
        // One write: head and body in one TLS record (no Nagle/delayed-ACK stall).
        head.push_str(&body);
        let stream = reader.get_mut();
        if stream.write_all(head.as_bytes()).and_then(|_| stream.flush()).is_err() {
            return;
        }
    }
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut err = json!({ "code": code, "message": message });
    if let Some(i) = inner {
        err["innererror"] = json!({ "code": i });
    }
    resp(status, json!({ "error": err }))
}

fn route(st: &mut State, req: &Request, port: u16) -> (Endpoint, Response, bool) {
    let origin = format!("https://localhost:{port}");
    let p = req.path.as_str();
    if p == "/secrets" || p == "/secrets/" || p.starts_with("/secrets/") {
        let endpoint = if p.trim_end_matches('/') == "/secrets" { Endpoint::List } else { Endpoint::Secret };
        let (r, ok) = vault(st, req, &origin, endpoint);
        return (endpoint, r, ok);
    }
    if p == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
        // MSAL (Microsoft's Python SDK) reads the authority's metadata first:
        // https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
        return (
            Endpoint::Other,
            resp(
                200,
                json!({
                    "token_endpoint": format!("{origin}/{TENANT}/oauth2/v2.0/token"),
                    "authorization_endpoint": format!("{origin}/{TENANT}/oauth2/v2.0/authorize"),
                    "issuer": format!("{origin}/{TENANT}/v2.0"),
                    "device_authorization_endpoint": format!("{origin}/{TENANT}/oauth2/v2.0/devicecode"),
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "jwks_uri": format!("{origin}/{TENANT}/discovery/v2.0/keys"),
                }),
            ),
            false,
        );
    }
    if p.ends_with("/oauth2/v2.0/token") {
        return (Endpoint::Entra, entra(st, req), false);
    }
    if p == "/msi/token" {
        return (Endpoint::AppService, app_service(st, req), false);
    }
    if p == "/metadata/identity/oauth2/token" {
        return (Endpoint::Imds, imds(st, req), false);
    }
    (Endpoint::Other, resp(404, json!({ "error": "no such endpoint" })), false)
}

/// Key Vault data plane.
/// - Authentication and the 401 challenge:
///   https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses
/// - Get Secret: https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret
/// - Get Secrets (list, maxresults ≤ 25, nextLink):
///   https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secrets/get-secrets
/// - Error codes (SecretNotFound, Forbidden/SecretDisabled, ForbiddenByRbac):
///   https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes
/// - Throttling (429 + Retry-After): https://learn.microsoft.com/en-us/azure/key-vault/general/overview-throttling
fn vault(st: &mut State, req: &Request, origin: &str, endpoint: Endpoint) -> (Response, bool) {
    if req.method != "GET" {
        return (kv_error(405, "BadParameter", "method not supported by this test server", None), false);
    }
    let Some(api) = req.query.get("api-version") else {
        return (
            kv_error(
                400,
                "BadParameter",
                "The request URI contains an invalid or missing api-version.",
                None,
            ),
            false,
        );
    };
    // 7.x, and the date versions newer SDKs send (2025-07-01, 2026-04-01, …).
    let dated = api.len() >= 10
        && api[..10]
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !(api.starts_with("7.") || dated) {
        return (
            kv_error(400, "BadParameter", &format!("The specified version ({api}) is not recognized."), None),
            false,
        );
    }
    let challenge = format!(r#"Bearer authorization="{origin}/{TENANT}", resource="{}""#, st.resource);
    let unauthorized = |msg: &str| {
        let mut r = kv_error(401, "Unauthorized", msg, None);
        r.headers.push(("WWW-Authenticate".into(), challenge.clone()));
        r
    };
    let token = req.headers.get("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::to_owned);
    let Some(token) = token else {
        return (unauthorized("AKV10000: Request is missing a Bearer or PoP token."), false);
    };
    match st.tokens.get(&token) {
        None => return (unauthorized("AKV10032: Invalid issuer or token."), false),
        Some(t) if t.expired => return (unauthorized("AKV10022: Token expired."), false),
        Some(t) if t.audience != st.resource => return (unauthorized("AKV10022: Invalid audience."), false),
        Some(_) => {}
    }
    if req.path == "/secrets/echo-token" {
        // A misbehaving proxy or service echoing the credential in an error:
        // secretexec must print the error and still never the token.
        return (
            kv_error(400, "BadParameter", &format!("rejected Authorization: Bearer {token}"), None),
            true,
        );
    }
    if st.throttle > 0 {
        st.throttle -= 1;
        let mut r = kv_error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received.",
            None,
        );
        r.headers.push(("Retry-After".into(), st.retry_after.to_string()));
        return (r, true);
    }
    if endpoint == Endpoint::List {
        let max: usize = req.query.get("maxresults").and_then(|m| m.parse().ok()).unwrap_or(25);
        if !(1..=25).contains(&max) {
            return (kv_error(400, "BadParameter", "maxresults must be between 1 and 25.", None), true);
        }
        let size = max.min(st.page_size);
        let skip: usize = req.query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        let all: Vec<&(String, Vec<Version>)> = st.secrets.values().collect();
        let page: Vec<Value> = all
            .iter()
            .skip(skip)
            .take(size)
            .map(|(name, versions)| {
                let v = versions.last().unwrap();
                let mut attrs = json!({ "enabled": v.enabled, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable" });
                if let Some(e) = v.exp {
                    attrs["exp"] = json!(e);
                }
                if let Some(n) = v.nbf {
                    attrs["nbf"] = json!(n);
                }
                json!({ "id": format!("{origin}/secrets/{name}"), "attributes": attrs, "tags": {} })
            })
            .collect();
        let next = (skip + size < all.len()).then(|| {
            format!("{origin}/secrets?api-version={api}&$skiptoken={}&maxresults={max}", skip + size)
        });
        return (resp(200, json!({ "value": page, "nextLink": next })), true);
    }
    let rest = req.path.trim_start_matches("/secrets/").trim_end_matches('/');
    let (name, version) = match rest.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    let Some((stored, versions)) = st.secrets.get(&name.to_ascii_lowercase()) else {
        let msg = format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
        );
        return (kv_error(404, "SecretNotFound", &msg, None), true);
    };
    let found = match version {
        Some(v) => versions.iter().find(|x| x.id == v),
        None => versions.last(),
    };
    let Some(v) = found.cloned() else {
        let msg = format!(
            "A secret with (name/id) {name}/{} was not found in this key vault.",
            version.unwrap_or("")
        );
        return (kv_error(404, "SecretNotFound", &msg, None), true);
    };
    if st.denied.contains(&name.to_ascii_lowercase()) {
        let msg = "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'";
        return (kv_error(403, "Forbidden", msg, Some("ForbiddenByRbac")), true);
    }
    if !v.enabled {
        return (
            kv_error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                Some("SecretDisabled"),
            ),
            true,
        );
    }
    let stored = stored.clone();
    let mut attrs = json!({ "enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90 });
    if let Some(e) = v.exp {
        attrs["exp"] = json!(e);
    }
    if let Some(n) = v.nbf {
        attrs["nbf"] = json!(n);
    }
    if let Some(n) = st.expire_after_reads.as_mut() {
        if *n <= 1 {
            st.tokens.values_mut().for_each(|t| t.expired = true);
            st.expire_after_reads = None;
        } else {
            *n -= 1;
        }
    }
    let body = json!({
        "value": v.value,
        "id": format!("{origin}/secrets/{stored}/{}", v.id),
        "attributes": attrs,
        "tags": {},
    });
    (resp(200, body), true)
}

fn token_error(status: u16, error: &str, description: &str) -> Response {
    resp(
        status,
        json!({ "error": error, "error_description": description, "error_codes": [], "timestamp": "" }),
    )
}

/// Entra ID v2 client-credentials grant, with a shared secret or a federated assertion:
/// https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
/// (sections "First case: Access token request with a shared secret" and
/// "Third case: Access token request with a federated credential").
fn entra(st: &mut State, req: &Request) -> Response {
    if req.method != "POST"
        || !req
            .headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return token_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        );
    }
    let tenant = req.path.trim_start_matches('/').split('/').next().unwrap_or("");
    if tenant != TENANT {
        return token_error(400, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found."));
    }
    let form = parse_pairs(&String::from_utf8_lossy(&req.body));
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return token_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let client = form.get("client_id").cloned().unwrap_or_default();
    let scope = form.get("scope").cloned().unwrap_or_default();
    let expected_scope = format!("{}/.default", st.resource);
    if scope != expected_scope {
        return token_error(
            400,
            "invalid_scope",
            &format!("AADSTS70011: The provided value for scope {scope} is not valid."),
        );
    }
    let ok = if let Some(secret) = form.get("client_secret") {
        st.clients.get(&client).is_some_and(|s| s == secret)
    } else if form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        let a = form.get("client_assertion").cloned().unwrap_or_default();
        let ok = st.federated.get(&client).is_some_and(|x| *x == a);
        if let (true, Some(file)) = (ok, st.rotate.get(&client).cloned()) {
            let next = format!("eyJhbGciOiJSUzI1NiJ9.rotated-{}.sig", random_hex(16));
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, &next).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
            st.federated.insert(client.clone(), next);
        }
        ok
    } else {
        false
    };
    if !ok {
        return token_error(
            401,
            "invalid_client",
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client}'."
            ),
        );
    }
    let aud = st.resource.clone();
    let tok = issue(st, &aud);
    resp(
        200,
        json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok }),
    )
}

/// App Service / Functions managed identity endpoint (api-version 2019-08-01):
/// https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference
fn app_service(st: &mut State, req: &Request) -> Response {
    if req.headers.get("x-identity-header") != Some(&st.identity_header) {
        return resp(
            401,
            json!({ "statusCode": 401, "message": "Unauthorized request: missing or wrong X-IDENTITY-HEADER" }),
        );
    }
    if req.query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return resp(400, json!({ "statusCode": 400, "message": "api-version must be 2019-08-01" }));
    }
    let Some(resource) = req.query.get("resource").cloned() else {
        return resp(400, json!({ "statusCode": 400, "message": "resource is required" }));
    };
    let client = req.query.get("client_id").cloned().unwrap_or_default();
    if !st.identities.contains(&client) {
        return resp(
            400,
            json!({ "statusCode": 400, "message": format!("Unable to load the proper Managed Identity. client_id {client}") }),
        );
    }
    let tok = issue(st, resource.trim_end_matches('/'));
    resp(
        200,
        json!({
            "access_token": tok,
            "expires_on": (now_secs() + 3600).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": if client.is_empty() { "system-assigned-client-id".to_owned() } else { client },
        }),
    )
}

/// Azure VM Instance Metadata Service token endpoint:
/// https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#get-a-token-using-http
fn imds(st: &mut State, req: &Request) -> Response {
    if req.headers.get("metadata").map(String::as_str) != Some("true") {
        return token_error(400, "invalid_request", "Required metadata header not specified");
    }
    if !req.query.contains_key("api-version") {
        return token_error(400, "invalid_request", "Required query variable 'api-version' is missing");
    }
    let Some(resource) = req.query.get("resource").cloned() else {
        return token_error(400, "invalid_request", "Required query variable 'resource' is missing");
    };
    let client = req.query.get("client_id").cloned().unwrap_or_default();
    if !st.identities.contains(&client) {
        return token_error(400, "invalid_request", "Identity not found");
    }
    let tok = issue(st, resource.trim_end_matches('/'));
    let now = now_secs();
    resp(
        200,
        json!({
            "access_token": tok,
            "refresh_token": "",
            "expires_in": "3599",
            "expires_on": (now + 3599).to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// A fake `az` first on PATH: prints what `az account get-access-token
/// --output json` prints, with `token`, and records its argv in `argv.log`.
/// The real Azure CLI is not installable on these machines.
pub fn fake_az(dir: &Path, token: &str) -> PathBuf {
    let bin = dir.join("az-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\ncase \"$*\" in\n  *'account get-access-token'*'--resource https://localhost'*) ;;\n  *) echo 'ERROR: unexpected arguments' >&2; exit 2 ;;\nesac\nexp=$(( $(date +%s) + 3600 ))\nprintf '{{\"accessToken\": \"%s\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", \"expires_on\": %s, \"subscription\": \"sub\", \"tenant\": \"{TENANT}\", \"tokenType\": \"Bearer\"}}\\n' '{token}' \"$exp\"\n",
        log = bin.join("argv.log").display()
    );
    let p = bin.join("az");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}
