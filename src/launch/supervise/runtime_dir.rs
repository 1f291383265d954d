//! A private directory for `as = "file"` secrets that supervise mode must
//! rewrite for a running child (`on_change = "signal:..."`): memfds cannot
//! be replaced under a path the child already holds.
//!
//! Where: `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else
//! `$XDG_RUNTIME_DIR`, else `/dev/shm` (tmpfs: never on disk), else the temp
//! directory. The directory is `secretexec-PID-RANDOM`, mode 0700; files are
//! 0400 and replaced by rename. It is removed when secretexec exits.

use std::path::{Path, PathBuf};

pub(crate) struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    pub(crate) fn create() -> std::io::Result<RuntimeDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = ["RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"]
            .iter()
            .filter_map(std::env::var_os)
            .filter_map(|v| {
                // RUNTIME_DIRECTORY may list several, colon-separated.
                let first = v.to_string_lossy().split(':').next().map(PathBuf::from)?;
                first.is_absolute().then_some(first)
            })
            .find(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        // SAFETY: getpid has no memory effects.
        let pid = unsafe { libc::getpid() };
        let path = base.join(format!("secretexec-{pid}-{:016x}", crate::random_u64()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        crate::debug!("as = \"file\" secrets in {}", path.display());
        Ok(RuntimeDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            crate::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}
