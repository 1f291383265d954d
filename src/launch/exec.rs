//! `execve` with a PATH lookup like `execvp`, arguments passed byte-for-byte
//! and an explicit environment. On success this never returns: secretexec
//! *is* the child from then on, and its exit code is the child's.
//!
//! [`Program`] prepares every C string before the first `execve`, so the
//! search itself allocates nothing: supervise mode runs it in a forked child.

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
    let mut program = match Program::new(argv, envp.get("PATH")) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let envp_ptrs = envp.pointers();
    limits.restore();
    let failure = program.exec(&envp_ptrs);
    program.error(failure)
}

/// Why no candidate could be executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecFailure {
    /// No candidate exists: exit 127.
    NotFound,
    /// Candidate `index` exists but `execve` failed with `errno`: exit 126.
    Denied { index: usize, errno: i32 },
}

/// A command ready for `execve`: argv and every PATH candidate as C strings.
pub(crate) struct Program {
    name: OsString,
    /// Keeps the strings `argp` points into alive.
    _args: Vec<CString>,
    argp: Vec<*const libc::c_char>,
    candidates: Vec<CString>,
    /// `/bin/sh CANDIDATE ARGS...` for files without a `#!` line; slot 1 is
    /// filled per candidate.
    sh_argp: Vec<*const libc::c_char>,
}

impl Program {
    /// Prepares `argv` for a lookup on `path` (the child's PATH).
    pub(crate) fn new(argv: &[OsString], path: Option<&[u8]>) -> Result<Program, Error> {
        let Some(name) = argv.first() else {
            return Err(Error::Usage("no command given".into()));
        };
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.clone().into_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| Error::Usage("an argument contains a NUL byte".into()))?;
        let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argp.push(std::ptr::null());
        let candidates: Vec<CString> =
            candidates(name.as_bytes(), path).into_iter().filter_map(|c| CString::new(c).ok()).collect();
        let mut sh_argp: Vec<*const libc::c_char> = vec![c"/bin/sh".as_ptr(), std::ptr::null()];
        sh_argp.extend_from_slice(&argp[1..]);
        Ok(Program { name: name.clone(), _args: args, argp, candidates, sh_argp })
    }

    /// Tries every candidate like `execvp`. Returns only on failure. Does
    /// not allocate, so it may run between `fork` and `execve`.
    pub(crate) fn exec(&mut self, envp: &[*const libc::c_char]) -> ExecFailure {
        // The Rust runtime ignores SIGPIPE; an ignored disposition survives
        // execve, and the child would get EPIPE instead of dying like a
        // program started by a shell. SAFETY: signal is async-signal-safe.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let mut denied: Option<(usize, i32)> = None;
        let explicit_path = self.name.as_bytes().contains(&b'/');
        for (index, cpath) in self.candidates.iter().enumerate() {
            // SAFETY: cpath, argp and envp are NUL-terminated arrays of valid C
            // strings that outlive the call; execve only returns on failure.
            unsafe { libc::execve(cpath.as_ptr(), self.argp.as_ptr(), envp.as_ptr()) };
            let err = errno();
            match err {
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ELOOP | libc::ENAMETOOLONG => continue,
                libc::ENOEXEC => {
                    // Like execvp: a file without a #! line is run by the shell.
                    self.sh_argp[1] = cpath.as_ptr();
                    // SAFETY: as above.
                    unsafe { libc::execve(c"/bin/sh".as_ptr(), self.sh_argp.as_ptr(), envp.as_ptr()) };
                    denied = Some((index, errno()));
                    break;
                }
                _ => {
                    // EACCES and the rest: found but not executable. execvp keeps
                    // searching after EACCES and reports it if nothing else runs.
                    if denied.is_none() {
                        denied = Some((index, err));
                    }
                    if explicit_path {
                        break;
                    }
                }
            }
        }
        match denied {
            Some((index, errno)) => ExecFailure::Denied { index, errno },
            None => ExecFailure::NotFound,
        }
    }

    /// The error (127 or 126) for a failure of [`Program::exec`].
    pub(crate) fn error(&self, failure: ExecFailure) -> Error {
        match failure {
            ExecFailure::NotFound => Error::CommandNotFound { program: self.name.clone() },
            ExecFailure::Denied { index, errno } => Error::NotExecutable {
                path: self
                    .candidates
                    .get(index)
                    .map_or_else(|| self.name.clone(), |c| OsString::from_vec(c.as_bytes().to_vec())),
                err: std::io::Error::from_raw_os_error(errno),
            },
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
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
