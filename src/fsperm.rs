//! Strict permission checks for every file secretexec reads secrets or
//! credentials from, in the spirit of ssh's `StrictModes`.
//!
//! A secret file must be a regular file, not a symlink (unless the caller
//! allows it), owned by the effective user or root, and carry no group or
//! other permission bits. The check is made on the opened descriptor
//! (`fstat`), so the file cannot be swapped between check and read.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// Why a secret file was refused. Display gives the file, what is wrong and
/// the exact command that fixes it.
#[derive(Debug)]
pub enum PermError {
    Io { path: PathBuf, err: std::io::Error },
    Symlink { path: PathBuf },
    NotRegular { path: PathBuf, what: &'static str },
    Owner { path: PathBuf, uid: u32, euid: u32 },
    Mode { path: PathBuf, mode: u32, owner: u32 },
}

impl fmt::Display for PermError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermError::Io { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            PermError::Symlink { path } => write!(
                f,
                "{} is a symlink; secret files must be regular files. Point the mapping at the real file, \
                 or set follow_symlinks = true on the source if the link is trusted",
                path.display()
            ),
            PermError::NotRegular { path, what } => {
                write!(f, "{} is a {what}, not a regular file", path.display())
            }
            PermError::Owner { path, uid, euid } => write!(
                f,
                "{} is owned by {} but secretexec runs as {}; a secret file must be owned by the effective user or root. \
                 Fix: chown {} {}",
                path.display(),
                user_label(*uid),
                user_label(*euid),
                user_name(*euid).unwrap_or_else(|| euid.to_string()),
                shell_path(path),
            ),
            PermError::Mode { path, mode, owner } => write!(
                f,
                "{} has mode {:04o} (owner {}): it is {} by group or others. Fix: chmod {:o} {}",
                path.display(),
                mode & 0o7777,
                user_label(*owner),
                access_words(*mode),
                mode & 0o700,
                shell_path(path),
            ),
        }
    }
}

impl std::error::Error for PermError {}

fn access_words(mode: u32) -> &'static str {
    let r = mode & 0o044 != 0;
    let w = mode & 0o022 != 0;
    match (r, w) {
        (true, true) => "readable and writable",
        (true, false) => "readable",
        (false, true) => "writable",
        (false, false) => "accessible",
    }
}

fn shell_path(path: &Path) -> String {
    let s = path.display().to_string();
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `name (uid)` when the uid has a passwd entry, else the number.
pub fn user_label(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe {
        // SAFETY: passwd is a plain C struct; all-zero is a valid (empty) value.
        std::mem::zeroed()
    };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of pwd's fields.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `path` for reading after the strict checks.
pub fn open_secret_file(path: &Path, follow_symlinks: bool) -> Result<File, PermError> {
    open_checked(path, follow_symlinks, 0o077)
}

/// Reads a short-lived token file that a platform agent writes world-readable
/// (a Kubernetes projected service-account token: kubelet writes it 0644,
/// owned by root, behind `..data` symlinks). Symlinks are followed; the file
/// must still be a regular file owned by the effective user or root and not
/// writable by group or others. Only for tokens that are bound to an audience
/// and expire within hours; never for long-lived secrets.
pub fn read_projected_token(path: &Path) -> Result<Secret, PermError> {
    let file = open_checked(path, true, 0o022)?;
    read_all(path, file)
}

/// Opens `path` and refuses it unless it is a regular file owned by the
/// effective user or root with none of the `forbidden` mode bits.
fn open_checked(path: &Path, follow_symlinks: bool, forbidden: u32) -> Result<File, PermError> {
    let io = |err| PermError::Io { path: path.to_owned(), err };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    if !follow_symlinks {
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    } else {
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(PermError::Symlink { path: path.to_owned() });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "directory"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            "special file (fifo, socket or device)"
        };
        return Err(PermError::NotRegular { path: path.to_owned(), what });
    }
    let euid = euid();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(PermError::Owner { path: path.to_owned(), uid: meta.uid(), euid });
    }
    if meta.mode() & forbidden != 0 {
        return Err(PermError::Mode { path: path.to_owned(), mode: meta.mode(), owner: meta.uid() });
    }
    Ok(file)
}

/// Reads a whole secret file after the strict checks.
pub fn read_secret_file(path: &Path, follow_symlinks: bool) -> Result<Secret, PermError> {
    let file = open_secret_file(path, follow_symlinks)?;
    read_all(path, file)
}

fn read_all(path: &Path, mut file: File) -> Result<Secret, PermError> {
    let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    // Read into a buffer sized up front so no reallocation leaves copies behind.
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(len + 1));
    file.read_to_end(&mut buf).map_err(|err| PermError::Io { path: path.to_owned(), err })?;
    Ok(Secret::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn refuses_group_readable_with_chmod_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.env");
        std::fs::write(&p, "A=1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_secret_file(&p, false).unwrap_err().to_string();
        assert!(err.contains("mode 0640"), "{err}");
        assert!(err.contains(&format!("chmod 600 {}", p.display())), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p, false).unwrap().expose(), b"A=1\n");
    }

    #[test]
    fn projected_token_may_be_world_readable_but_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "jwt").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert_eq!(read_projected_token(&l).unwrap().expose(), b"jwt");
        assert!(read_secret_file(&p, false).is_err(), "the strict check still refuses 0644");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(read_projected_token(&l), Err(PermError::Mode { .. })));
    }

    #[test]
    fn refuses_symlink_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("real");
        std::fs::write(&p, "A=1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(read_secret_file(&l, false), Err(PermError::Symlink { .. })));
        assert!(read_secret_file(&l, true).is_ok());
    }
}
