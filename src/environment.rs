//! The child's environment, assembled in the order SPEC fixes:
//! 1. secretexec's own environment (or only the keep-list under `clear_env`);
//! 2. minus the bootstrap credentials the backends used, unless
//!    `pass_credentials = true`;
//! 3. plus every resolved variable, later assignments winning;
//!
//! Steps 4–5 (valid and protected names) were checked by the plan and the resolver.
//!
//! The result is a NUL-terminated `envp` whose buffers are zeroized on drop.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use zeroize::Zeroizing;

use crate::plan::Plan;
use crate::resolve::{EnvVal, Resolution};

/// The child's environment, ready for `execve`.
pub struct Envp {
    /// `NAME=VALUE\0` strings; zeroized on drop.
    entries: Vec<Zeroizing<Vec<u8>>>,
    /// In-memory files for `as = "file"`; inherited by the child.
    files: Vec<OwnedFd>,
}

impl Envp {
    /// Pointers for `execve`, valid while `self` lives.
    pub fn pointers(&self) -> Vec<*const libc::c_char> {
        let mut v: Vec<*const libc::c_char> = self.entries.iter().map(|e| e.as_ptr().cast()).collect();
        v.push(std::ptr::null());
        v
    }

    /// The memfds the child must inherit (their close-on-exec flag is off).
    pub fn inherited_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.files.iter().map(AsRawFd::as_raw_fd)
    }

    /// The value of `name` (for PATH lookup), if set.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries.iter().find_map(|e| {
            let e = &e[..e.len() - 1];
            e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a variable of the child's environment holds.
pub enum Item<'a> {
    Inherited(OsString),
    Resolved(&'a EnvVal),
}

/// Steps 1–3: the child's variables, by name, in a stable order.
pub fn assemble<'a>(
    plan: &Plan,
    res: &'a Resolution,
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, Item<'a>)> {
    let mut vars: Vec<(OsString, Item<'a>)> = Vec::new();
    for (k, v) in parent {
        let name = k.to_string_lossy();
        if plan.clear_env && !plan.keep.iter().any(|keep| *keep == name) {
            continue;
        }
        if !plan.pass_credentials && res.credential_vars.contains(name.as_ref()) {
            continue;
        }
        vars.push((k, Item::Inherited(v)));
    }
    // Name -> position in `vars`: a thousand variables stay linear.
    let mut index: std::collections::HashMap<OsString, usize> =
        vars.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
    for (name, value) in res.values() {
        match index.get(std::ffi::OsStr::new(name)) {
            Some(&i) => vars[i].1 = Item::Resolved(value),
            None => {
                index.insert(OsString::from(name), vars.len());
                vars.push((OsString::from(name), Item::Resolved(value)));
            }
        }
    }
    vars
}

/// Builds the `envp`; `as = "file"` values become sealed memfds whose path
/// (`/proc/self/fd/N`) is the variable's value.
pub fn materialize(vars: &[(OsString, Item<'_>)]) -> std::io::Result<Envp> {
    materialize_files(vars, None)
}

/// Like [`materialize`], but `as = "file"` values become 0400 files
/// `dir/NAME`, each replaced atomically (written under a temporary name,
/// then renamed): a reader sees the old content or the new, never a mix.
/// Supervise mode uses this when it must rewrite files for a running child.
pub fn materialize_in(vars: &[(OsString, Item<'_>)], dir: &std::path::Path) -> std::io::Result<Envp> {
    materialize_files(vars, Some(dir))
}

fn materialize_files(vars: &[(OsString, Item<'_>)], dir: Option<&std::path::Path>) -> std::io::Result<Envp> {
    let mut envp = Envp { entries: Vec::with_capacity(vars.len()), files: Vec::new() };
    for (name, item) in vars {
        let mut e = Zeroizing::new(Vec::new());
        e.extend_from_slice(name.as_bytes());
        e.push(b'=');
        match item {
            Item::Inherited(v) => e.extend_from_slice(v.as_bytes()),
            Item::Resolved(EnvVal::File(secret)) if dir.is_some() => {
                let dir = dir.expect("guarded by is_some");
                let path = replace_file(dir, name.as_bytes(), secret.expose())?;
                e.extend_from_slice(path.as_os_str().as_bytes());
            }
            Item::Resolved(EnvVal::File(secret)) => {
                let fd = memfd_with(name.as_bytes(), secret.expose())?;
                e.extend_from_slice(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes());
                envp.files.push(fd);
            }
            Item::Resolved(v) => e.extend_from_slice(v.bytes()),
        }
        if e.contains(&0) {
            // Inherited values cannot hold NUL; resolved ones were refused earlier.
            continue;
        }
        e.push(0);
        envp.entries.push(e);
    }
    Ok(envp)
}

/// Writes `dir/.NAME.tmp` (0400, created exclusively) and renames it to `dir/NAME`.
fn replace_file(dir: &std::path::Path, name: &[u8], content: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = std::ffi::OsStr::from_bytes(name);
    let target = dir.join(name);
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    std::io::Write::write_all(&mut file, content)?;
    drop(file);
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}

/// A sealed, read-only in-memory file holding `content`, inherited across exec.
fn memfd_with(name: &[u8], content: &[u8]) -> std::io::Result<OwnedFd> {
    let cname =
        CString::new([b"secretexec:", name].concat()).map_err(|_| std::io::Error::other("NUL in name"))?;
    // SAFETY: cname is a valid C string; flags are valid memfd flags.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh descriptor that we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    std::io::Write::write_all(&mut file, content)?;
    let owned = OwnedFd::from(file);
    // SAFETY: plain fcntl/fchmod on a descriptor we own.
    unsafe {
        if libc::fchmod(owned.as_raw_fd(), 0o400) != 0
            || libc::fcntl(
                owned.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(owned)
}
