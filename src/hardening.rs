//! Process hardening while secretexec holds secrets: no core dumps, not
//! dumpable (which also keeps other processes of the same user from reading
//! our memory through ptrace or /proc/PID/mem). The child gets the original
//! core limit back; `execve` itself resets the dumpable flag.

/// The core-dump limit as it was when secretexec started.
#[derive(Clone, Copy, Debug)]
pub struct SavedLimits {
    core: libc::rlimit,
}

/// Disables core dumps for this process. Idempotent; failures are ignored
/// (a container may forbid prctl), the soft limit alone still applies.
pub fn lock_down() -> SavedLimits {
    let mut core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) };
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: core.rlim_max };
    // SAFETY: plain syscalls with valid arguments; only the soft limit is
    // lowered so it can be restored for the child without privileges.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    SavedLimits { core }
}

impl SavedLimits {
    /// Restores the original limits; call just before `execve` (or in the
    /// forked child).
    pub fn restore(&self) {
        // SAFETY: restores a limit previously read from the kernel.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &self.core) };
    }
}
