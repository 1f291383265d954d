//! How a vault source gets its token: a token it is given ($VAULT_TOKEN,
//! `token_file`, `~/.vault-token`), or a login (AppRole, Kubernetes, JWT,
//! userpass, TLS certificate).
//!
//! Promises: every credential file passes the strict permission check;
//! every token, secret ID, password and JWT is registered with the redactor
//! as soon as it is read; a token obtained by login is marked so that the
//! backend revokes it after the fetch, and a given token never is.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Client, Method, clean_token};
use crate::fsperm;
use crate::secret::Secret;
use crate::sources::{FailKind, FetchError};

/// `auth = { method = "...", ... }` of a vault source.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub method: AuthMethod,
    /// Where the auth method is mounted (default: the method's name).
    pub mount: Option<String>,
    /// token: a file holding the token.
    pub token_file: Option<PathBuf>,
    /// approle: the role ID itself (not a secret), or a file holding it.
    pub role_id: Option<String>,
    pub role_id_file: Option<PathBuf>,
    /// approle: a file holding the secret ID.
    pub secret_id_file: Option<PathBuf>,
    /// kubernetes, jwt: the role to log in as; cert: the certificate role name.
    pub role: Option<String>,
    /// kubernetes, jwt: a file holding the JWT.
    pub jwt_file: Option<PathBuf>,
    /// userpass: the user name, and a file holding the password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    #[default]
    Token,
    Approle,
    Kubernetes,
    Jwt,
    Userpass,
    Cert,
}

impl<'de> Deserialize<'de> for AuthMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AuthMethod::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| {
            // No quotes: the config layer hides quoted text, and this list is no secret.
            let names: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
            serde::de::Error::custom(format!("unknown auth method; use one of: {}", names.join(", ")))
        })
    }
}

impl AuthMethod {
    const ALL: &'static [AuthMethod] = &[
        AuthMethod::Token,
        AuthMethod::Approle,
        AuthMethod::Kubernetes,
        AuthMethod::Jwt,
        AuthMethod::Userpass,
        AuthMethod::Cert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Approle => "approle",
            AuthMethod::Kubernetes => "kubernetes",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Userpass => "userpass",
            AuthMethod::Cert => "cert",
        }
    }
}

impl AuthConfig {
    pub fn rebase(&mut self, base: &Path) {
        for p in [
            &mut self.token_file,
            &mut self.role_id_file,
            &mut self.secret_id_file,
            &mut self.jwt_file,
            &mut self.password_file,
        ]
        .into_iter()
        .flatten()
        {
            *p = base.join(&*p);
        }
    }
}

/// A token and where it came from.
pub struct Token {
    pub secret: Secret,
    /// Obtained by our own login: revoke it when done (unless pass_token).
    pub login: bool,
    /// Environment variable it was read from, to scrub from the child.
    pub env_var: Option<String>,
    /// For `describe`: "token from $VAULT_TOKEN", "approle login".
    pub origin: String,
}

const K8S_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Reads a credential file with the strict checks; errors name the setting.
fn read_cred(path: &Path, follow: bool, what: &str) -> Result<Secret, FetchError> {
    let s = fsperm::read_secret_file(path, follow)
        .map_err(|e| FetchError::new(FailKind::Local, format!("{what}: {e}")))?;
    crate::redact::register_bytes(trimmed(s.expose()));
    Ok(s)
}

fn trimmed(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

fn text(secret: &Secret, what: &str) -> Result<String, FetchError> {
    std::str::from_utf8(trimmed(secret.expose()))
        .map(str::to_owned)
        .map_err(|_| FetchError::new(FailKind::Local, format!("{what} is not UTF-8 text")))
}

/// `$CREDENTIALS_DIRECTORY/NAME`, when systemd provides the directory.
fn credentials_dir_file(name: &str) -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()).map(|d| PathBuf::from(d).join(name))
}

/// Finds the token the configuration asks for, logging in if needed.
pub fn obtain(
    cfg: &AuthConfig,
    follow: bool,
    client: &Client,
    deadline: Instant,
    env: &dyn Fn(&str) -> Option<(String, String)>,
) -> Result<Token, FetchError> {
    let mount = cfg.mount.clone().unwrap_or_else(|| cfg.method.name().to_owned());
    let mount = mount.trim_matches('/').to_owned();
    let need = |field: &str| {
        FetchError::new(
            FailKind::Local,
            format!("auth method {} needs {field} in the source's auth = {{ ... }}", cfg.method.name()),
        )
    };
    let body = match cfg.method {
        AuthMethod::Token => return given_token(cfg, follow, env),
        AuthMethod::Approle => {
            let role_id = match (&cfg.role_id, &cfg.role_id_file) {
                (Some(r), _) => r.trim().to_owned(),
                (None, Some(f)) => text(&read_cred(f, follow, "role_id_file")?, "role_id_file")?,
                (None, None) => match credentials_dir_file("role_id") {
                    Some(f) => text(&read_cred(&f, follow, "$CREDENTIALS_DIRECTORY/role_id")?, "role_id")?,
                    None => return Err(need("role_id or role_id_file")),
                },
            };
            let secret_id = match &cfg.secret_id_file {
                Some(f) => read_cred(f, follow, "secret_id_file")?,
                None => match credentials_dir_file("secret_id") {
                    Some(f) => read_cred(&f, follow, "$CREDENTIALS_DIRECTORY/secret_id")?,
                    None => return Err(need("secret_id_file")),
                },
            };
            let secret_id = Secret::from_string(text(&secret_id, "secret_id_file")?);
            Body::new(&mount, "login", json!({"role_id": role_id, "secret_id": as_str(&secret_id)}))
        }
        AuthMethod::Kubernetes | AuthMethod::Jwt => {
            let role = cfg.role.clone().ok_or_else(|| need("role"))?;
            let file = match (&cfg.jwt_file, cfg.method) {
                (Some(f), _) => f.clone(),
                (None, AuthMethod::Kubernetes) => PathBuf::from(K8S_JWT),
                (None, _) => return Err(need("jwt_file")),
            };
            let raw = if cfg.method == AuthMethod::Kubernetes {
                // kubelet writes projected service-account tokens 0644, root-owned,
                // behind symlinks; they are audience-bound and expire within hours.
                // Same relaxed check as Azure workload identity.
                let s = fsperm::read_projected_token(&file)
                    .map_err(|e| FetchError::new(FailKind::Local, format!("jwt_file: {e}")))?;
                crate::redact::register_bytes(trimmed(s.expose()));
                s
            } else {
                read_cred(&file, follow, "jwt_file")?
            };
            let jwt = Secret::from_string(text(&raw, "jwt_file")?);
            Body::new(&mount, "login", json!({"role": role, "jwt": as_str(&jwt)}))
        }
        AuthMethod::Userpass => {
            let user = cfg.username.clone().ok_or_else(|| need("username"))?;
            let file = cfg.password_file.as_ref().ok_or_else(|| need("password_file"))?;
            let pw = Secret::from_string(text(&read_cred(file, follow, "password_file")?, "password_file")?);
            Body::new(&mount, &format!("login/{user}"), json!({"password": as_str(&pw)}))
        }
        AuthMethod::Cert => {
            let body = match &cfg.role {
                Some(r) => json!({"name": r}),
                None => json!({}),
            };
            Body::new(&mount, "login", body)
        }
    };
    login(client, deadline, cfg.method, &mount, body)
}

fn as_str(s: &Secret) -> &str {
    // Built from a String just above.
    std::str::from_utf8(s.expose()).unwrap_or_default()
}

/// A login request: path and a JSON body that is wiped on drop.
struct Body {
    path: String,
    json: super::client::Json,
}

impl Body {
    fn new(mount: &str, tail: &str, v: Value) -> Body {
        Body { path: format!("auth/{mount}/{tail}"), json: super::client::Json(v) }
    }
}

fn login(
    client: &Client,
    deadline: Instant,
    method: AuthMethod,
    mount: &str,
    body: Body,
) -> Result<Token, FetchError> {
    let bytes =
        zeroize::Zeroizing::new(serde_json::to_vec(&body.json.0).expect("a JSON value always serializes"));
    let reply = client.request(deadline, &Method::Post(bytes), &body.path, None)?;
    let what = format!("{} login at {}/v1/{}", method.name(), client.address(), body.path);
    match reply.status {
        200..=299 => {}
        400 | 401 | 403 => {
            let errs = reply.errors();
            return Err(FetchError::new(
                FailKind::Auth,
                format!("{what} was refused (HTTP {}): {errs}", reply.status),
            )
            .with_hint(match method {
                AuthMethod::Approle => "check the role ID and that the secret ID is current (secret IDs expire and have use limits)",
                AuthMethod::Userpass => "check the user name and the password file",
                AuthMethod::Jwt | AuthMethod::Kubernetes => "check the role's bound claims/audiences and that the JWT is not expired",
                AuthMethod::Cert => "check client_cert/client_key and that a cert role trusts its CA",
                AuthMethod::Token => "",
            }));
        }
        404 => {
            return Err(FetchError::new(
                FailKind::Auth,
                format!("{what}: no auth method is mounted there (HTTP 404)"),
            )
            .with_hint(format!(
                "enable it (bao auth enable -path={mount} {}) or set auth.mount",
                method.name()
            )));
        }
        s => {
            return Err(FetchError::new(
                FailKind::Auth,
                format!("{what} failed (HTTP {s}): {}", reply.errors()),
            ));
        }
    }
    let token =
        reply.body.0.get("auth").and_then(|a| a.get("client_token")).and_then(Value::as_str).ok_or_else(
            || FetchError::new(FailKind::Auth, format!("{what}: the answer holds no client token")),
        )?;
    let secret = clean_token(token.as_bytes(), "the login answer")?;
    Ok(Token {
        secret,
        login: true,
        env_var: None,
        origin: format!("{} login (mount {mount})", method.name()),
    })
}

fn given_token(
    cfg: &AuthConfig,
    follow: bool,
    env: &dyn Fn(&str) -> Option<(String, String)>,
) -> Result<Token, FetchError> {
    if let Some(f) = &cfg.token_file {
        let raw = read_cred(f, follow, "token_file")?;
        let secret = clean_token(raw.expose(), &f.display().to_string())?;
        return Ok(Token {
            secret,
            login: false,
            env_var: None,
            origin: format!("token from {}", f.display()),
        });
    }
    if let Some((var, value)) = env("TOKEN") {
        let value = Secret::from_string(value);
        crate::redact::register_bytes(trimmed(value.expose()));
        let secret = clean_token(value.expose(), &format!("${var}"))?;
        return Ok(Token {
            secret,
            login: false,
            env_var: Some(var.clone()),
            origin: format!("token from ${var}"),
        });
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let f = PathBuf::from(home).join(".vault-token");
        if f.exists() {
            let raw = read_cred(&f, follow, "~/.vault-token")?;
            let secret = clean_token(raw.expose(), &f.display().to_string())?;
            return Ok(Token {
                secret,
                login: false,
                env_var: None,
                origin: format!("token from {}", f.display()),
            });
        }
    }
    Err(FetchError::new(
        FailKind::Auth,
        "no Vault token: $VAULT_TOKEN is unset and ~/.vault-token does not exist",
    )
    .with_hint(
        "set VAULT_TOKEN, auth.token_file, or a login method such as auth = { method = \"approle\", ... }",
    ))
}

/// Revokes a token obtained by login. Errors are returned for logging.
pub fn revoke(client: &Client, deadline: Instant, token: &Secret) -> Result<(), String> {
    let reply = client
        .request(
            deadline,
            &Method::Post(zeroize::Zeroizing::new(b"{}".to_vec())),
            "auth/token/revoke-self",
            Some(token),
        )
        .map_err(|e| e.to_string())?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(format!("HTTP {}: {}", reply.status, reply.errors()))
    }
}
