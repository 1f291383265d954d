//! `type = "age"`: an age-encrypted file (binary or ASCII-armored) whose
//! plaintext is a dotenv document, or one opaque value.
//!
//! Locators: `KEY` (one key of the decrypted dotenv), `*` (every key, in
//! file order), or empty (the whole plaintext as one value, not parsed).
//! Bare references: `age:/path/file.env.age#KEY`, `age:/path/file.age#` (the
//! whole plaintext), `age:/path/file.env.age` (every key).
//!
//! Identities come from `identity_file` (one path or a list; X25519 key
//! files or unencrypted SSH ed25519/RSA private keys), else from the same
//! places sops looks ([`load_identities`]); a passphrase-encrypted file needs
//! `passphrase_file` or `passphrase_env`. This module also holds the
//! identity loader that the `sops` source shares.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Backend, Context, FailKind, FetchError, Fetched};
use crate::secret::Secret;
use crate::{dotenv, fsperm, redact};

/// `identity_file = "a"` or `identity_file = ["a", "b"]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            OneOrMany::One(p) => std::slice::from_ref(p),
            OneOrMany::Many(v) => v,
        }
    }

    /// Makes relative paths relative to `base` (the mapping's directory).
    pub fn rebase(&mut self, base: &Path) {
        let paths = match self {
            OneOrMany::One(p) => std::slice::from_mut(p),
            OneOrMany::Many(v) => v,
        };
        for p in paths {
            *p = base.join(&*p);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Config {
    /// The encrypted file. Relative paths are relative to the mapping file.
    pub path: PathBuf,
    /// Identity files. When set, only these are used (not `$SOPS_AGE_KEY…`).
    pub identity_file: Option<OneOrMany>,
    /// A file whose content (one trailing newline removed) is the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// An environment variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// Accept symlinks for the identity and passphrase files.
    #[serde(default)]
    pub follow_symlinks: bool,
}

impl Config {
    pub fn rebase(&mut self, base: &Path) {
        self.path = base.join(&self.path);
        if let Some(ids) = &mut self.identity_file {
            ids.rebase(base);
        }
        if let Some(p) = &mut self.passphrase_file {
            *p = base.join(&*p);
        }
    }
}

pub fn check_locator(locator: &str) -> Result<(), String> {
    match locator {
        "" | "*" => Ok(()),
        key => super::check_dotenv_key(key).map_err(|e| format!("{e} (use KEY, * or nothing)")),
    }
}

pub fn adhoc(rest: &str) -> Result<(Config, String), String> {
    let (path, key) = super::split_file_reference(rest, false, "age:/path/to/file.age#KEY")?;
    check_locator(&key)?;
    let config = Config {
        path,
        identity_file: None,
        passphrase_file: None,
        passphrase_env: None,
        follow_symlinks: false,
    };
    Ok((config, key))
}

/// Identities ready for decryption, and where they came from.
pub struct Identities {
    pub keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Environment variables that held key material (`SOPS_AGE_KEY`).
    pub credential_vars: Vec<String>,
    /// Where the keys were read from, for messages (paths and variable names).
    pub places: Vec<String>,
}

/// The default key file, as sops finds it: `$XDG_CONFIG_HOME/sops/age/keys.txt`,
/// else `~/.config/sops/age/keys.txt`.
fn default_key_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("sops/age/keys.txt"))
}

/// Loads age identities. With `explicit` paths, exactly those; otherwise the
/// union of `$SOPS_AGE_KEY_FILE`, `$SOPS_AGE_KEY` (keys separated by any
/// whitespace), `$SOPS_AGE_SSH_PRIVATE_KEY_FILE` and the default key file if
/// it exists — the places sops reads. Every file gets the strict permission
/// check. Lines that are not X25519 identities (plugin or post-quantum keys)
/// are skipped with a warning naming the file and line, never the content.
/// Err when no identity at all could be loaded.
pub fn load_identities(explicit: &[PathBuf], follow_symlinks: bool) -> Result<Identities, FetchError> {
    let mut ids = Identities { keys: Vec::new(), credential_vars: Vec::new(), places: Vec::new() };
    if !explicit.is_empty() {
        for p in explicit {
            let bytes = fsperm::read_secret_file(p, follow_symlinks)?;
            parse_identity_file(bytes.expose(), &p.display().to_string(), &mut ids.keys)?;
            ids.places.push(p.display().to_string());
        }
    } else {
        let mut tried = Vec::new();
        if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            let bytes = fsperm::read_secret_file(&p, follow_symlinks)?;
            parse_identity_file(
                bytes.expose(),
                &format!("{} ($SOPS_AGE_KEY_FILE)", p.display()),
                &mut ids.keys,
            )?;
            ids.places.push(format!("$SOPS_AGE_KEY_FILE ({})", p.display()));
        } else {
            tried.push("$SOPS_AGE_KEY_FILE".to_owned());
        }
        if let Some(v) = std::env::var_os("SOPS_AGE_KEY") {
            let value = Secret::new(v.into_encoded_bytes());
            redact::register(&value);
            let text = String::from_utf8_lossy(value.expose());
            for (n, word) in text.split_whitespace().enumerate() {
                if word.starts_with('#') {
                    continue;
                }
                push_key_line(word, &format!("$SOPS_AGE_KEY word {}", n + 1), &mut ids.keys)?;
            }
            ids.credential_vars.push("SOPS_AGE_KEY".to_owned());
            ids.places.push("$SOPS_AGE_KEY".to_owned());
        } else {
            tried.push("$SOPS_AGE_KEY".to_owned());
        }
        if let Some(p) = std::env::var_os("SOPS_AGE_SSH_PRIVATE_KEY_FILE").filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            let bytes = fsperm::read_secret_file(&p, follow_symlinks)?;
            parse_identity_file(bytes.expose(), &p.display().to_string(), &mut ids.keys)?;
            ids.places.push(format!("$SOPS_AGE_SSH_PRIVATE_KEY_FILE ({})", p.display()));
        }
        match default_key_file() {
            Some(p) if p.exists() || std::fs::symlink_metadata(&p).is_ok() => {
                let bytes = fsperm::read_secret_file(&p, follow_symlinks)?;
                parse_identity_file(bytes.expose(), &p.display().to_string(), &mut ids.keys)?;
                ids.places.push(p.display().to_string());
            }
            Some(p) => tried.push(p.display().to_string()),
            None => tried.push("$XDG_CONFIG_HOME/sops/age/keys.txt".to_owned()),
        }
        if ids.places.is_empty() {
            return Err(FetchError::new(
                FailKind::Auth,
                format!("no age identity found (looked at {})", tried.join(", ")),
            )
            .with_hint("set identity_file on the source, or $SOPS_AGE_KEY_FILE / $SOPS_AGE_KEY"));
        }
    }
    if ids.keys.is_empty() {
        return Err(FetchError::new(
            FailKind::Auth,
            format!("no usable age identity in {}", ids.places.join(", ")),
        )
        .with_hint("only X25519 (AGE-SECRET-KEY-1…) and unencrypted SSH ed25519/RSA keys are supported"));
    }
    Ok(ids)
}

/// One identity file: an SSH private key (PEM), or age key lines.
fn parse_identity_file(
    bytes: &[u8],
    place: &str,
    out: &mut Vec<Box<dyn age::Identity + Send + Sync>>,
) -> Result<(), FetchError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || trimmed.starts_with(b"age-encryption.org/")
    {
        return Err(FetchError::new(
            FailKind::Local,
            format!("{place}: a passphrase-encrypted age identity file, which secretexec cannot prompt for"),
        )
        .with_hint(
            "keep the identity unencrypted at mode 0600 (e.g. in /run/credentials), or use passphrase_file",
        ));
    }
    if trimmed.starts_with(b"-----BEGIN") {
        return parse_ssh_identity(trimmed, place, out);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(FetchError::new(
            FailKind::Local,
            format!("{place}: an identity file must be UTF-8 text"),
        ));
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        push_key_line(line, &format!("{place} line {}", n + 1), out)?;
    }
    Ok(())
}

fn parse_ssh_identity(
    pem: &[u8],
    place: &str,
    out: &mut Vec<Box<dyn age::Identity + Send + Sync>>,
) -> Result<(), FetchError> {
    let id = age::ssh::Identity::from_buffer(pem, Some(place.to_owned())).map_err(|_| {
        FetchError::new(FailKind::Local, format!("{place}: not a valid SSH private key or age identity file"))
    })?;
    match id {
        age::ssh::Identity::Unencrypted(_) => {
            out.push(Box::new(id));
            Ok(())
        }
        age::ssh::Identity::Encrypted(_) => Err(FetchError::new(
            FailKind::Local,
            format!("{place}: the SSH key is passphrase-protected, which secretexec cannot prompt for"),
        )
        .with_hint("use an age X25519 identity, or an SSH key without a passphrase kept at mode 0600")),
        age::ssh::Identity::Unsupported(_) => Err(FetchError::new(
            FailKind::Local,
            format!("{place}: unsupported SSH key type (only ed25519 and RSA keys work with age)"),
        )),
    }
}

/// One key: an X25519 identity is used; anything else is skipped with a
/// warning that names its kind, never its content.
fn push_key_line(
    line: &str,
    place: &str,
    out: &mut Vec<Box<dyn age::Identity + Send + Sync>>,
) -> Result<(), FetchError> {
    // Key material: scrubbed from anything we print, whatever its type.
    redact::register_bytes(line.as_bytes());
    if line.starts_with("AGE-SECRET-KEY-1") {
        match line.parse::<age::x25519::Identity>() {
            Ok(id) => out.push(Box::new(id)),
            Err(_) => crate::warn!("{place}: not a valid age X25519 identity; skipped"),
        }
        return Ok(());
    }
    let kind = if line.starts_with("AGE-PLUGIN-") {
        "a plugin identity (age plugins are not supported)"
    } else if line.starts_with("AGE-SECRET-KEY-") {
        "a post-quantum or unknown age identity type"
    } else {
        "not an age identity"
    };
    crate::warn!("{place}: {kind}; skipped");
    Ok(())
}

/// What went wrong decrypting an age payload, for messages about `what`.
pub fn decrypt_error(what: &str, e: &age::DecryptError, places: &[String]) -> FetchError {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys => FetchError::new(
            FailKind::Auth,
            format!("{what}: none of the age identities ({}) can decrypt it", places.join(", ")),
        )
        .with_hint("check that the file was encrypted to the public key of one of these identities"),
        D::ExcessiveWork { required, .. } => FetchError::new(
            FailKind::Corrupt,
            format!("{what}: the passphrase work factor 2^{required} is above the accepted maximum 2^22"),
        ),
        D::DecryptionFailed | D::InvalidMac => FetchError::new(
            FailKind::Corrupt,
            format!("{what}: decryption failed (wrong passphrase, or the file was modified or corrupted)"),
        ),
        D::KeyDecryptionFailed => {
            FetchError::new(FailKind::Auth, format!("{what}: the identity could not be decrypted"))
        }
        D::InvalidHeader | D::UnknownFormat => {
            FetchError::new(FailKind::Corrupt, format!("{what}: not a valid age file (bad header)"))
        }
        D::Io(err) => FetchError::new(FailKind::Corrupt, format!("{what}: {err}")),
    }
}

/// Decrypts an age file (binary or armored) with `identities`.
pub fn decrypt(
    ciphertext: &[u8],
    identities: &[&dyn age::Identity],
    what: &str,
    places: &[String],
) -> Result<Secret, FetchError> {
    let reader = age::armor::ArmoredReader::new(ciphertext);
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(reader))
        .map_err(|e| decrypt_error(what, &e, places))?;
    let mut stream =
        decryptor.decrypt(identities.iter().copied()).map_err(|e| decrypt_error(what, &e, places))?;
    let mut plain = zeroize::Zeroizing::new(Vec::new());
    stream.read_to_end(&mut plain).map_err(|e| {
        FetchError::new(
            FailKind::Corrupt,
            format!("{what}: decryption failed ({}): the file was modified or corrupted", e.kind()),
        )
    })?;
    Ok(Secret::new(std::mem::take(&mut *plain)))
}

pub struct AgeFile {
    config: Config,
    used_vars: std::sync::Mutex<Vec<String>>,
}

impl AgeFile {
    pub fn new(_name: &str, config: Config) -> Self {
        Self { config, used_vars: std::sync::Mutex::new(Vec::new()) }
    }

    fn passphrase(&self) -> Result<Option<Secret>, FetchError> {
        if let Some(p) = &self.config.passphrase_file {
            let s = fsperm::read_secret_file(p, self.config.follow_symlinks)?;
            let mut bytes = s.expose();
            if let Some(b) = bytes.strip_suffix(b"\n") {
                bytes = b.strip_suffix(b"\r").unwrap_or(b);
            }
            let s = Secret::copy_from(bytes);
            redact::register(&s);
            return Ok(Some(s));
        }
        if let Some(var) = &self.config.passphrase_env {
            let Some(v) = std::env::var_os(var) else {
                return Err(FetchError::new(
                    FailKind::Auth,
                    format!("passphrase_env names ${var}, which is not set"),
                ));
            };
            let s = Secret::new(v.into_encoded_bytes());
            redact::register(&s);
            self.used_vars.lock().expect("no panics while holding the lock").push(var.clone());
            return Ok(Some(s));
        }
        Ok(None)
    }

    fn plaintext(&self) -> Result<Secret, FetchError> {
        let path = &self.config.path;
        let what = path.display().to_string();
        let ciphertext = std::fs::read(path)
            .map_err(|e| FetchError::new(FailKind::NotFound, format!("cannot read {what}: {e}")))?;
        let passphrase = self.passphrase()?;
        let explicit = self.config.identity_file.as_ref().map_or(&[][..], |i| i.paths());
        let mut places = Vec::new();
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        if let Some(pass) = passphrase {
            let text = String::from_utf8(pass.expose().to_vec()).map_err(|_| {
                FetchError::new(FailKind::Local, "the passphrase is not UTF-8 text".to_owned())
            })?;
            let mut id = age::scrypt::Identity::new(age::secrecy::SecretString::from(text));
            // Bounds the work an attacker-supplied file can demand (2^22: ~4 GiB·s).
            id.set_max_work_factor(22);
            keys.push(Box::new(id));
            places.push("the passphrase".to_owned());
        }
        if !explicit.is_empty() || places.is_empty() {
            let ids = load_identities(explicit, self.config.follow_symlinks)?;
            keys.extend(ids.keys);
            places.extend(ids.places);
            self.used_vars.lock().expect("no panics while holding the lock").extend(ids.credential_vars);
        }
        let refs: Vec<&dyn age::Identity> = keys.iter().map(|k| k.as_ref() as &dyn age::Identity).collect();
        decrypt(&ciphertext, &refs, &what, &places)
    }
}

impl Backend for AgeFile {
    fn fetch(&self, _ctx: &Context, locators: &[&str]) -> Vec<Result<Fetched, FetchError>> {
        let path = &self.config.path;
        let plain = match self.plaintext() {
            Ok(p) => p,
            Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
        };
        let needs_parse = locators.iter().any(|l| !l.is_empty());
        let entries = if needs_parse {
            Some(dotenv::parse(plain.expose()).map_err(|e| {
                FetchError::new(FailKind::Corrupt, format!("{} (decrypted): {e}", path.display()))
                    .with_hint("the plaintext of an age source must be a dotenv document to name keys; use an empty locator for the whole plaintext")
            }))
        } else {
            None
        };
        locators
            .iter()
            .map(|&loc| {
                if loc.is_empty() {
                    return Ok(Fetched::One(plain.clone()));
                }
                let entries = match entries.as_ref().expect("parsed when a locator names keys") {
                    Ok(e) => e,
                    Err(e) => return Err(e.clone()),
                };
                super::answer_from_dotenv(entries, loc, path)
            })
            .collect()
    }

    fn credential_vars(&self) -> Vec<String> {
        self.used_vars.lock().expect("no panics while holding the lock").clone()
    }

    fn describe(&self) -> Option<String> {
        Some(format!("age file {}", self.config.path.display()))
    }
}
