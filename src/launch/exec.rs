//! `execve` with a PATH lookup like `execvp`, arguments passed byte-for-byte
//! and an explicit environment. On success this never returns: secretexec
//! *is* the child from then on, and its exit code is the child's.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::environment::Envp;
use crate::error::Error;
use crate::hardening::SavedLimits;

/// PATH used when the child's environment has none (glibc's default).
const DEFAULT_PATH: &[u8] = b"/usr/local/bin:/usr/bin:/bin";

/// Replaces this process with `argv[0]`. Returns only on failure, with an
/// error whose exit code is 127 (not found) or 126 (found, not executable).
pub fn exec(argv: &[OsString], envp: &Envp, limits: &SavedLimits) -> Error {
    let Some(program) = argv.first() else {
        return Error::Usage("no command given".into());
    };
    let args: Vec<CString> = match argv.iter().map(|a| CString::new(a.clone().into_vec())).collect() {
        Ok(a) => a,
        Err(_) => return Error::Usage("an argument contains a NUL byte".into()),
    };
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let envp_ptrs = envp.pointers();

    let candidates = candidates(program.as_bytes(), envp.get("PATH"));
    limits.restore();
    let mut denied: Option<(Vec<u8>, std::io::Error)> = None;
    for path in &candidates {
        let Ok(cpath) = CString::new(path.clone()) else {
            continue;
        };
        // SAFETY: cpath, argp and envp are NUL-terminated arrays of valid C
        // strings that outlive the call; execve only returns on failure.
        unsafe { libc::execve(cpath.as_ptr(), argp.as_ptr(), envp_ptrs.as_ptr()) };
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ELOOP | libc::ENAMETOOLONG) => continue,
            Some(libc::ENOEXEC) => {
                // Like execvp: a file without a #! line is run by the shell.
                let mut sh_args: Vec<*const libc::c_char> = vec![c"/bin/sh".as_ptr(), cpath.as_ptr()];
                sh_args.extend_from_slice(&argp[1..]);
                // SAFETY: as above.
                unsafe { libc::execve(c"/bin/sh".as_ptr(), sh_args.as_ptr(), envp_ptrs.as_ptr()) };
                denied = Some((path.clone(), std::io::Error::last_os_error()));
                break;
            }
            _ => {
                // EACCES and the rest: found but not executable. execvp keeps
                // searching after EACCES and reports it if nothing else runs.
                if denied.is_none() {
                    denied = Some((path.clone(), err));
                }
                if program.as_bytes().contains(&b'/') {
                    break;
                }
            }
        }
    }
    match denied {
        Some((path, err)) => Error::NotExecutable { path: OsString::from_vec(path), err },
        None => Error::CommandNotFound { program: program.clone() },
    }
}

/// Full paths to try, in order.
fn candidates(program: &[u8], path: Option<&[u8]>) -> Vec<Vec<u8>> {
    if program.contains(&b'/') {
        return vec![program.to_vec()];
    }
    if program.is_empty() {
        return Vec::new();
    }
    path.unwrap_or(DEFAULT_PATH)
        .split(|&b| b == b':')
        .map(|dir| {
            // An empty PATH element means the current directory.
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut p = dir.to_vec();
            p.push(b'/');
            p.extend_from_slice(program);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_order() {
        assert_eq!(
            candidates(b"ls", Some(b"/a::/b")),
            vec![b"/a/ls".to_vec(), b"./ls".to_vec(), b"/b/ls".to_vec()]
        );
        assert_eq!(candidates(b"./x", Some(b"/a")), vec![b"./x".to_vec()]);
        assert!(candidates(b"", None).is_empty());
    }
}
