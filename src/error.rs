//! The top-level error and its exit code, a documented API:
//! 125 secretexec itself failed, 126 COMMAND not executable, 127 COMMAND not
//! found. No variant ever holds a secret value.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::plan::Problem;
use crate::sources::FetchError;

pub const EXIT_FAILURE: i32 = 125;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// A required variable that could not be resolved.
#[derive(Debug)]
pub struct Unresolved {
    pub name: String,
    pub source: String,
    pub reference: String,
    pub error: FetchError,
}

#[derive(Debug)]
pub enum Error {
    /// Bad command line.
    Usage(String),
    /// The mapping or the flags do not make a plan.
    Plan {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
    /// Required secrets could not be fetched; COMMAND was not started.
    Resolve(Vec<Unresolved>),
    /// I/O of our own (writing `render --output`, making a memfd).
    Io {
        about: String,
        err: std::io::Error,
    },
    CommandNotFound {
        program: OsString,
    },
    NotExecutable {
        path: OsString,
        err: std::io::Error,
    },
    /// `check` found unresolved secrets (exit 1); already reported.
    CheckFailed,
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound { .. } => EXIT_NOT_FOUND,
            Error::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
            Error::CheckFailed => 1,
            Error::Usage(_) | Error::Plan { .. } | Error::Resolve(_) | Error::Io { .. } => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => f.write_str(m),
            Error::Plan { path, problems } => {
                let n = problems.len();
                match path {
                    Some(p) => {
                        write!(f, "{} has {n} problem{}:", p.display(), if n == 1 { "" } else { "s" })?
                    }
                    None => {
                        write!(f, "{n} problem{} with the mapping flags:", if n == 1 { "" } else { "s" })?
                    }
                }
                for p in problems {
                    write!(f, "\n  {}", p.to_string().replace('\n', "\n  "))?;
                }
                Ok(())
            }
            Error::Resolve(failures) => {
                let n = failures.len();
                let s = if n == 1 { "" } else { "s" };
                write!(f, "{n} required secret{s} could not be resolved; the command was not started:")?;
                // One line per distinct failure: a source that is down fails
                // every variable it serves with the same error.
                let mut groups: Vec<(&str, String, Vec<String>)> = Vec::new();
                for u in failures {
                    let what = u.error.to_string();
                    let who = format!("{} ({})", u.name, u.reference);
                    match groups.iter_mut().find(|(src, e, _)| *src == u.source && *e == what) {
                        Some(g) => g.2.push(who),
                        None => groups.push((&u.source, what, vec![who])),
                    }
                }
                for (source, what, who) in groups {
                    if who.len() == 1 {
                        write!(f, "\n  {} from source {source}: {what}", who[0])?;
                    } else {
                        write!(f, "\n  source {source}: {what}\n    affects: {}", who.join(", "))?;
                    }
                }
                Ok(())
            }
            Error::Io { about, err } => write!(f, "{about}: {err}"),
            Error::CommandNotFound { program } => {
                write!(f, "{}: command not found (looked up on the child's PATH)", program.to_string_lossy())
            }
            Error::NotExecutable { path, err } => {
                write!(f, "{}: cannot execute: {err}", path.to_string_lossy())
            }
            Error::CheckFailed => f.write_str("some required secrets did not resolve"),
        }
    }
}

impl std::error::Error for Error {}
