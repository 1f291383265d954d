//! Secret backends, and the one interface they all implement.
//!
//! A backend is configured from a `[sources.NAME]` table (or, for a bare
//! reference like `envfile:/path#KEY`, from the standard environment), is
//! asked for **every locator it must serve at once** and answers each one.
//! Batching lets a backend read a Vault path or decrypt a SOPS file once,
//! however many variables come from it.
//!
//! Adding a backend: a module with a `Config` (serde; no `deny_unknown_fields`:
//! unknown keys are collected through serde_ignored and all reported at once),
//! `check_locator` (pure, no I/O), `adhoc` (split a bare reference into a
//! config and a locator) and a type implementing [`Backend`]; then one variant
//! in [`Kind`] and its arms below. Keys common to every source (`type`,
//! `watch`) are read by `config.rs`; a backend's `Config` must not declare them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use crate::secret::Secret;

pub mod age;
pub mod azure;
pub mod envfile;
pub mod sops;
pub mod vault;

/// What a backend returns for one locator.
pub enum Fetched {
    /// A single value (`vault:secret/app#key`).
    One(Secret),
    /// Every key of a bulk locator (`local:*`), in the source's order.
    Many(Vec<(String, Secret)>),
}

/// The broad class of a fetch failure; drives exit status and retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// The path, key or field does not exist.
    NotFound,
    /// Authenticated, but not allowed.
    Denied,
    /// Authentication failed (bad or expired credential).
    Auth,
    /// Store unreachable, timed out, sealed, throttled past the deadline.
    Unavailable,
    /// Decryption, MAC or integrity failure; malformed data.
    Corrupt,
    /// Refused before any I/O: a file permission check, a bad setting.
    Local,
}

/// A fetch failure. `message` and `hint` never contain a secret value: they
/// name paths, keys, fields and status codes only.
#[derive(Clone, Debug)]
pub struct FetchError {
    pub kind: FailKind,
    pub message: String,
    /// What the operator should do next, when there is something specific.
    pub hint: Option<String>,
}

impl FetchError {
    pub fn new(kind: FailKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl From<crate::fsperm::PermError> for FetchError {
    fn from(e: crate::fsperm::PermError) -> Self {
        FetchError::new(FailKind::Local, e.to_string())
    }
}

/// What every fetch may rely on.
#[derive(Clone, Debug)]
pub struct Context {
    /// No request may outlive this instant.
    pub deadline: Instant,
}

/// One configured secret store.
pub trait Backend: Send + Sync {
    /// Answers every locator; `result[i]` answers `locators[i]`. A failure
    /// shared by all (authentication) is repeated for each. Must return by
    /// `ctx.deadline`.
    fn fetch(&self, ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>>;

    /// Names of the environment variables this backend used as bootstrap
    /// credentials (`VAULT_TOKEN`, `AZURE_CLIENT_SECRET`, …). They are removed
    /// from the child's environment unless `pass_credentials = true`.
    fn credential_vars(&self) -> Vec<String> {
        Vec::new()
    }

    /// Called once after every fetch, before exec: release what the backend
    /// obtained (revoke a login token). Errors are logged, not fatal.
    fn finish(&self) {}

    /// One line for `check` and `-v` logs: how the backend authenticated or
    /// what it read ("token from VAULT_TOKEN", "managed identity"). Never a secret.
    fn describe(&self) -> Option<String> {
        None
    }
}

/// Checks that `key` only holds characters a dotenv key may have (letters,
/// digits, `_`, `.`, `-`); `*` and empty locators are the caller's to allow.
pub(crate) fn check_dotenv_key(key: &str) -> Result<(), String> {
    match key.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')) {
        Some(bad) => Err(format!("{bad:?} cannot appear in a dotenv key")),
        None => Ok(()),
    }
}

/// Splits the bare reference of a file backend, `PATH#LOCATOR`, at the
/// first `#` (sops paths may hold `#` in escaped keys) or the last one (a
/// dotenv key never holds `#`). Without `#`, the locator is `*`. `example`
/// shows the expected form in the error.
pub(crate) fn split_file_reference(
    rest: &str,
    at_first_hash: bool,
    example: &str,
) -> Result<(std::path::PathBuf, String), String> {
    let split = if at_first_hash { rest.split_once('#') } else { rest.rsplit_once('#') };
    let (path, locator) = split.unwrap_or((rest, "*"));
    if path.is_empty() {
        return Err(format!("expected a file path: {example}"));
    }
    Ok((std::path::PathBuf::from(path), locator.to_owned()))
}

/// Answers one locator from the entries of a dotenv document read from
/// `path`: `*` is every entry, anything else one key.
pub(crate) fn answer_from_dotenv(
    entries: &[(String, Secret)],
    locator: &str,
    path: &std::path::Path,
) -> Result<Fetched, FetchError> {
    if locator == "*" {
        return Ok(Fetched::Many(entries.to_vec()));
    }
    match entries.iter().find(|(k, _)| k == locator) {
        Some((_, v)) => Ok(Fetched::One(v.clone())),
        None => Err(FetchError::new(
            FailKind::NotFound,
            format!("key {locator} not found in {} ({} keys)", path.display(), entries.len()),
        )),
    }
}

/// The backend types, as written in `type = "..."` and bare references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Envfile,
    Age,
    Sops,
    AzureKeyVault,
    Vault,
}

impl Kind {
    pub const ALL: &'static [Kind] =
        &[Kind::Envfile, Kind::Age, Kind::Sops, Kind::AzureKeyVault, Kind::Vault];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Envfile => "envfile",
            Kind::Age => "age",
            Kind::Sops => "sops",
            Kind::AzureKeyVault => "azure-keyvault",
            Kind::Vault => "vault",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Checks a locator's syntax for this backend; no I/O.
    pub fn check_locator(self, locator: &str) -> Result<(), String> {
        match self {
            Kind::Envfile => envfile::check_locator(locator),
            Kind::Age => age::check_locator(locator),
            Kind::Sops => sops::check_locator(locator),
            Kind::AzureKeyVault => azure::check_locator(locator),
            Kind::Vault => vault::check_locator(locator),
        }
    }

    /// Splits the part after `TYPE:` of a bare reference into the source's
    /// settings and the locator within it (`/etc/app.env#KEY` → path, `KEY`).
    pub fn adhoc(self, rest: &str) -> Result<(SourceConfig, String), String> {
        match self {
            Kind::Envfile => envfile::adhoc(rest).map(|(c, l)| (SourceConfig::Envfile(c), l)),
            Kind::Age => age::adhoc(rest).map(|(c, l)| (SourceConfig::Age(c), l)),
            Kind::Sops => sops::adhoc(rest).map(|(c, l)| (SourceConfig::Sops(c), l)),
            Kind::AzureKeyVault => azure::adhoc(rest).map(|(c, l)| (SourceConfig::AzureKeyVault(c), l)),
            Kind::Vault => vault::adhoc(rest).map(|(c, l)| (SourceConfig::Vault(Box::new(c)), l)),
        }
    }
}

/// A source's settings, checked, before any I/O.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    Envfile(envfile::Config),
    Age(age::Config),
    Sops(sops::Config),
    AzureKeyVault(azure::Config),
    /// Boxed: far larger than the other variants.
    Vault(Box<vault::Config>),
}

/// A key of a `[sources.NAME]` table that the backend does not know.
#[derive(Debug)]
pub struct UnknownKey(pub String);

impl SourceConfig {
    /// Builds a backend's settings from its TOML table. Unknown keys
    /// (including `type`, which the caller has read) are collected, not fatal
    /// here, so that every one of them is reported at once.
    pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: Kind,
        d: D,
        unknown: &mut Vec<UnknownKey>,
    ) -> Result<Self, D::Error> {
        let mut cb = |p: serde_ignored::Path<'_>| unknown.push(UnknownKey(p.to_string()));
        Ok(match kind {
            Kind::Envfile => SourceConfig::Envfile(serde_ignored::deserialize(d, &mut cb)?),
            Kind::Age => SourceConfig::Age(serde_ignored::deserialize(d, &mut cb)?),
            Kind::Sops => SourceConfig::Sops(serde_ignored::deserialize(d, &mut cb)?),
            Kind::AzureKeyVault => SourceConfig::AzureKeyVault(serde_ignored::deserialize(d, &mut cb)?),
            Kind::Vault => SourceConfig::Vault(Box::new(serde_ignored::deserialize(d, &mut cb)?)),
        })
    }

    /// Makes relative file paths relative to the mapping file's directory.
    pub fn rebase(&mut self, base: &std::path::Path) {
        match self {
            SourceConfig::Envfile(c) => c.path = base.join(&c.path),
            SourceConfig::Age(c) => c.rebase(base),
            SourceConfig::Sops(c) => c.rebase(base),
            SourceConfig::AzureKeyVault(c) => c.rebase(base),
            SourceConfig::Vault(c) => c.rebase(base),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            SourceConfig::Envfile(_) => Kind::Envfile,
            SourceConfig::Age(_) => Kind::Age,
            SourceConfig::Sops(_) => Kind::Sops,
            SourceConfig::AzureKeyVault(_) => Kind::AzureKeyVault,
            SourceConfig::Vault(_) => Kind::Vault,
        }
    }

    /// True if the mapping file itself holds a credential for this source
    /// (an inline token): the mapping then gets the strict permission check.
    pub fn holds_inline_credential(&self) -> bool {
        match self {
            SourceConfig::Envfile(_)
            | SourceConfig::Age(_)
            | SourceConfig::Sops(_)
            | SourceConfig::Vault(_) => false,
            // Only file paths and ids: a client secret inline is not accepted.
            SourceConfig::AzureKeyVault(_) => false,
        }
    }

    /// Opens the backend. I/O that every fetch needs (login) may happen here
    /// or lazily in `fetch`.
    pub fn open(&self, name: &str) -> Result<Box<dyn Backend>, FetchError> {
        match self {
            SourceConfig::Envfile(c) => Ok(Box::new(envfile::EnvFile::new(name, c.clone()))),
            SourceConfig::Age(c) => Ok(Box::new(age::AgeFile::new(name, c.clone()))),
            SourceConfig::Sops(c) => Ok(Box::new(sops::SopsFile::new(name, c.clone()))),
            SourceConfig::AzureKeyVault(c) => Ok(Box::new(azure::KeyVault::open(name, c)?)),
            SourceConfig::Vault(c) => Ok(Box::new(vault::Vault::open(name, c)?)),
        }
    }
}

/// Sources by id: a `[sources]` name, or a synthetic id for a bare reference
/// (`envfile:/etc/app.env`).
pub type Sources = BTreeMap<String, SourceConfig>;
