//! KV v1 and v2 reads: the mount lookup the `vault kv` CLI makes
//! (`sys/internal/ui/mounts/<path>`), the read itself, and the errors an
//! operator can act on.
//!
//! Promises: a secret's fields are returned in the server's order, strings
//! as their bytes and every other JSON value as its JSON text; errors name
//! paths, versions and field names, never a value.

use std::time::Instant;

use serde_json::Value;

use super::client::{Client, Method, Reply};
use crate::secret::Secret;
use crate::sources::{FailKind, FetchError};

/// What every request of one fetch shares.
pub struct Session<'a> {
    pub client: &'a Client,
    pub deadline: Instant,
    pub token: &'a Secret,
    /// Explains a 403 on a path needing a capability.
    pub denied: &'a (dyn Fn(&str, &str) -> FetchError + Sync),
}

/// A KV mount: its path with a trailing slash (`secret/`) and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub path: String,
    pub version: u8,
}

impl Mount {
    pub fn covers(&self, path: &str) -> bool {
        !self.path.is_empty() && path.starts_with(&self.path)
    }

    /// The mount named by the first segment of `path` (used with `kv_version`).
    pub fn first_segment(path: &str, version: u8) -> Mount {
        let seg = path.split('/').next().unwrap_or(path);
        Mount { path: format!("{seg}/"), version }
    }
}

/// The fields of one secret, in the server's order.
pub struct Fields {
    pub items: Vec<(String, Secret)>,
    /// KV v2: the version read.
    pub version: Option<u64>,
}

impl Fields {
    pub fn names(&self) -> String {
        if self.items.is_empty() {
            return "none".into();
        }
        self.items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Asks the server which mount holds `path` and its KV version, as
/// `vault kv get` does. A server without the endpoint (HTTP 404) is taken
/// as KV v1 on the first path segment, as the CLI does.
pub fn lookup_mount(s: &Session<'_>, path: &str) -> Result<Mount, FetchError> {
    let reply = s.client.request(
        s.deadline,
        &Method::Get,
        &format!("sys/internal/ui/mounts/{path}"),
        Some(s.token),
    )?;
    match reply.status {
        200..=299 => {}
        404 => return Ok(Mount::first_segment(path, 1)),
        403 => {
            let e = (s.denied)(path, "read");
            if e.kind != FailKind::Denied {
                return Err(e);
            }
            // The token may do nothing at all under this path.
            return Err(FetchError::new(
                FailKind::Denied,
                format!("permission denied on {path} (mount lookup)"),
            )
            .with_hint(format!(
                "the token's policies grant nothing under {path}; reading needs the \"read\" capability on \
                     MOUNT/data/PATH for KV v2, or on MOUNT/PATH for KV v1"
            )));
        }
        s => {
            return Err(FetchError::new(
                FailKind::Unavailable,
                format!("looking up the mount of {path} failed (HTTP {s}): {}", reply.errors()),
            ));
        }
    }
    let data = reply.data().cloned().unwrap_or(Value::Null);
    let mut mount_path = data.get("path").and_then(Value::as_str).unwrap_or("").to_owned();
    if !mount_path.is_empty() && !mount_path.ends_with('/') {
        mount_path.push('/');
    }
    let version = match data.get("options").and_then(|o| o.get("version")).and_then(Value::as_str) {
        Some("2") => 2,
        _ => 1,
    };
    let mount = Mount { path: mount_path, version };
    if !mount.covers(path) {
        // An answer without a usable path: fall back to the first segment.
        return Ok(Mount::first_segment(path, version));
    }
    Ok(mount)
}

/// Reads the secret at `path` (mount prefix included) from `mount`.
/// `forced`: the KV version comes from `kv_version`, not a lookup.
pub fn read(
    s: &Session<'_>,
    mount: &Mount,
    path: &str,
    version: Option<u64>,
    forced: bool,
) -> Result<Fields, FetchError> {
    let rel = &path[mount.path.len().min(path.len())..];
    let api_path = match (mount.version, version) {
        (2, Some(v)) => format!("{}data/{rel}?version={v}", mount.path),
        (2, None) => format!("{}data/{rel}", mount.path),
        (_, Some(_)) => {
            return Err(FetchError::new(
                FailKind::Local,
                format!("{path}: ?version needs a KV v2 mount, and {} is KV v1", mount.path),
            )
            .with_hint("remove ?version=N from the reference"));
        }
        (_, None) => path.to_owned(),
    };
    let reply = s.client.request(s.deadline, &Method::Get, &api_path, Some(s.token))?;
    let at = |v: Option<u64>| match v {
        Some(v) => format!("{path} (version {v})"),
        None => path.to_owned(),
    };
    match reply.status {
        200..=299 => {}
        404 => return Err(not_found(&reply, mount, path, version, forced)),
        403 => {
            let cap_path = api_path.split('?').next().unwrap_or(&api_path).to_owned();
            return Err((s.denied)(&cap_path, "read"));
        }
        s => {
            return Err(FetchError::new(
                FailKind::Unavailable,
                format!("reading {} failed (HTTP {s}): {}", at(version), reply.errors()),
            ));
        }
    }
    let data = reply.data();
    let (fields, read_version) = if mount.version == 2 {
        let meta_version =
            data.and_then(|d| d.get("metadata")).and_then(|m| m.get("version")).and_then(Value::as_u64);
        match data.and_then(|d| d.get("data")) {
            Some(Value::Object(m)) => (m, meta_version),
            Some(Value::Null) | None => {
                return Err(FetchError::new(
                    FailKind::NotFound,
                    format!(
                        "{} has no data: the version was deleted or destroyed",
                        at(meta_version.or(version))
                    ),
                )
                .with_hint("read an earlier version with ?version=N, or undelete it (bao kv undelete)"));
            }
            Some(_) => {
                return Err(FetchError::new(
                    FailKind::Corrupt,
                    format!("{}: the answer's data is not an object", at(version)),
                ));
            }
        }
    } else {
        match data {
            Some(Value::Object(m)) => (m, None),
            _ => {
                return Err(FetchError::new(FailKind::NotFound, format!("{path}: the answer holds no data")));
            }
        }
    };
    let items = fields.iter().map(|(k, v)| (k.clone(), render(v))).collect();
    Ok(Fields { items, version: read_version })
}

/// A field value as the child sees it: a string's bytes, else JSON text.
fn render(v: &Value) -> Secret {
    match v {
        Value::String(s) => Secret::copy_from(s.as_bytes()),
        other => Secret::from_string(serde_json::to_string(other).expect("a JSON value always serializes")),
    }
}

fn not_found(reply: &Reply, mount: &Mount, path: &str, version: Option<u64>, forced: bool) -> FetchError {
    let meta = reply.data().and_then(|d| d.get("metadata"));
    if let Some(meta) = meta {
        let v = meta.get("version").and_then(Value::as_u64).or(version);
        let destroyed = meta.get("destroyed").and_then(Value::as_bool).unwrap_or(false);
        let deleted = meta.get("deletion_time").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        if destroyed || deleted {
            let what = if destroyed { "destroyed" } else { "deleted" };
            let at = v.map_or(String::new(), |v| format!(" version {v}"));
            return FetchError::new(FailKind::NotFound, format!("{path}{at} was {what}"))
                .with_hint("read another version with ?version=N, or restore it (bao kv undelete / kv put)");
        }
    }
    let warnings = reply.warnings();
    if mount.version == 1 && warnings.contains("versioned K/V") {
        let e = FetchError::new(
            FailKind::Local,
            format!("{path}: {} is a KV v2 mount, but the source reads it as KV v1", mount.path),
        );
        return if forced {
            e.with_hint("set kv_version = 2 on the source, or remove kv_version to detect it")
        } else {
            e.with_hint("the mount lookup said v1; check the mount with bao secrets list -detailed")
        };
    }
    let what = match version {
        Some(v) => format!("{path}: version {v} not found"),
        None => format!("{path}: no secret at this path"),
    };
    let e =
        FetchError::new(FailKind::NotFound, format!("{what} (KV v{} mount {})", mount.version, mount.path));
    if forced && mount.version == 2 {
        e.with_hint("kv_version = 2 is set: if the mount is KV v1, set kv_version = 1 or remove it")
    } else {
        e.with_hint(format!("check the path: bao kv list {}", parent(path)))
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => path,
    }
}
