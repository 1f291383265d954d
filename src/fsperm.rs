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
    if access_mode(&file, meta.mode(), euid) & forbidden != 0 {
        return Err(PermError::Mode { path: path.to_owned(), mode: meta.mode(), owner: meta.uid() });
    }
    Ok(file)
}

/// The permission bits that matter for "who else can access this file".
///
/// With a POSIX access ACL, the group bits of `st_mode` are the ACL *mask*,
/// not the owning group's permissions. systemd writes `LoadCredential=`
/// files root-owned, mode 0400, plus one ACL entry granting read to the
/// service's user: `st_mode` then shows 0440 although only root and that
/// user can read the file. So the group bits are replaced by what the
/// group-class entries other than our own user actually grant (each masked),
/// and a file readable by the owning group or any other user or group is
/// still refused. Without an ACL (or where the filesystem has none) the mode
/// is returned unchanged.
fn access_mode(file: &File, mode: u32, euid: u32) -> u32 {
    use std::os::fd::AsRawFd;
    // Version 2 header (4 bytes) + 8-byte entries; 32 entries is far more
    // than a credential file carries, a larger ACL is judged by st_mode.
    let mut buf = [0u8; 4 + 8 * 32];
    // SAFETY: the descriptor is open for the duration of the call and buf is
    // valid for buf.len() bytes.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            c"system.posix_acl_access".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let Ok(n) = usize::try_from(n) else { return mode };
    acl_group_class(&buf[..n], euid).map_or(mode, |group| (mode & !0o070) | (group << 3))
}

/// From a raw `system.posix_acl_access` value: the union of the rwx bits
/// that the owning group, named groups and named users other than `euid`
/// hold after the mask. `None` if the value is not a well-formed ACL.
fn acl_group_class(raw: &[u8], euid: u32) -> Option<u32> {
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    let (version, entries) = raw.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let entries: Vec<(u16, u32, u32)> = entries
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 0o7);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            (tag, perm, id)
        })
        .collect();
    let mask = entries.iter().find(|e| e.0 == MASK).map_or(0o7, |e| e.1);
    let others = entries
        .iter()
        .filter(|(tag, _, id)| *tag == GROUP_OBJ || *tag == GROUP || (*tag == USER && *id != euid))
        .fold(0, |acc, (_, perm, _)| acc | perm);
    Some(others & mask)
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

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    const NO_ID: u32 = u32::MAX;

    #[test]
    fn acl_granting_only_us_is_private() {
        // What systemd writes for LoadCredential=: owner r, user:<service>:r, group ---, mask r, other ---.
        let systemd =
            acl(&[(0x01, 4, NO_ID), (0x02, 4, 1000), (0x04, 0, NO_ID), (0x10, 4, NO_ID), (0x20, 0, NO_ID)]);
        assert_eq!(acl_group_class(&systemd, 1000), Some(0));
        // The same file seen by another user: that user's grant is someone else's.
        assert_eq!(acl_group_class(&systemd, 1001), Some(4));
    }

    #[test]
    fn acl_grants_to_groups_or_other_users_count_after_the_mask() {
        let group_readable = acl(&[(0x01, 6, NO_ID), (0x04, 4, NO_ID), (0x10, 4, NO_ID), (0x20, 0, NO_ID)]);
        assert_eq!(acl_group_class(&group_readable, 0), Some(4));
        let named_group =
            acl(&[(0x01, 6, NO_ID), (0x04, 0, NO_ID), (0x08, 6, 50), (0x10, 6, NO_ID), (0x20, 0, NO_ID)]);
        assert_eq!(acl_group_class(&named_group, 0), Some(6));
        let masked_out =
            acl(&[(0x01, 6, NO_ID), (0x02, 4, 7), (0x04, 4, NO_ID), (0x10, 0, NO_ID), (0x20, 0, NO_ID)]);
        assert_eq!(acl_group_class(&masked_out, 0), Some(0));
        assert_eq!(acl_group_class(b"\x01\0\0\0", 0), None, "unknown version");
        assert_eq!(acl_group_class(&[2, 0, 0, 0, 1], 0), None, "truncated entry");
    }

    #[test]
    fn a_systemd_credential_with_an_acl_for_us_is_accepted() {
        // A file exactly as systemd leaves it (0400 + user ACL entry, which
        // makes st_mode show 0440); needs a filesystem with POSIX ACLs.
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vault-role-id");
        std::fs::write(&p, "role\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        let set = |entries: &[(u16, u16, u32)]| {
            let value = acl(entries);
            let f = File::open(&p).unwrap();
            // SAFETY: valid descriptor, name and buffer for the call.
            let rc = unsafe {
                libc::fsetxattr(
                    f.as_raw_fd(),
                    c"system.posix_acl_access".as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            assert_eq!(
                rc,
                0,
                "set an ACL (the test directory's filesystem must support POSIX ACLs): {}",
                std::io::Error::last_os_error()
            );
        };
        let me = euid();
        set(&[(0x01, 4, NO_ID), (0x02, 4, me), (0x04, 0, NO_ID), (0x10, 4, NO_ID), (0x20, 0, NO_ID)]);
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o440, "the mask shows as group bits");
        assert_eq!(read_secret_file(&p, false).unwrap().expose(), b"role\n");
        // Readable by the owning group as well: refused.
        set(&[(0x01, 4, NO_ID), (0x02, 4, me), (0x04, 4, NO_ID), (0x10, 4, NO_ID), (0x20, 0, NO_ID)]);
        assert!(matches!(read_secret_file(&p, false), Err(PermError::Mode { .. })));
        // Readable by another user: refused.
        set(&[
            (0x01, 4, NO_ID),
            (0x02, 4, me.wrapping_add(1)),
            (0x04, 0, NO_ID),
            (0x10, 4, NO_ID),
            (0x20, 0, NO_ID),
        ]);
        assert!(matches!(read_secret_file(&p, false), Err(PermError::Mode { .. })));
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
