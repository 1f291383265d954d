//! Which signals the supervisor handles, and how: every one of them is
//! blocked before any thread exists and collected synchronously with
//! `sigtimedwait`, so there are no signal handlers and no races with them.
//! The child gets the original mask back before `execve`.

use std::sync::OnceLock;
use std::time::Duration;

/// Passed on to the child (its process group by default).
pub(crate) const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// Terminal stop signals: passed on, then the supervisor stops itself so
/// the shell sees the whole job stopped (as dumb-init does).
pub(crate) const TTY_STOP: &[i32] = &[libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Faults raised by our own code: never blocked, so a crash stays a crash.
const SYNCHRONOUS: &[i32] =
    &[libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGABRT, libc::SIGSYS];

/// The mask secretexec started with, restored in the child.
static ORIGINAL_MASK: OnceLock<libc::sigset_t> = OnceLock::new();

fn empty_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set we pass; zeroed is a valid start.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// Blocks every asynchronous signal in this (still single-threaded) process
/// and remembers the previous mask. Threads started later (the resolver's)
/// inherit the mask, so no signal is ever delivered to them. Idempotent.
pub fn block_signals() {
    // SAFETY: sigset functions on sets we own; pthread_sigmask with valid pointers.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        for &s in SYNCHRONOUS {
            libc::sigdelset(&mut all, s);
        }
        let mut old = empty_set();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let _ = ORIGINAL_MASK.set(old);
    }
}

/// In the forked child, before `execve`: the original mask. (We install no
/// handlers; the one disposition the Rust runtime changes, SIGPIPE, is reset
/// by `Program::exec`.) Async-signal-safe.
pub(crate) fn restore_in_child() {
    // SAFETY: sigprocmask is async-signal-safe; the set is valid.
    unsafe {
        let mask = ORIGINAL_MASK.get().copied().unwrap_or_else(empty_set);
        libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
    }
}

/// A real-time signal (never sent by anything else we know of) with which
/// a worker thread wakes the main loop.
fn wake_signal() -> i32 {
    libc::SIGRTMIN() + 1
}

/// Wakes the main loop (called by a worker thread when its result is ready).
pub(crate) fn wake() {
    // SAFETY: sends a blocked signal to our own process; no memory effects.
    unsafe { libc::kill(libc::getpid(), wake_signal()) };
}

/// The set the main loop waits for.
pub(crate) fn handled() -> libc::sigset_t {
    let mut set = empty_set();
    for &s in FORWARDED.iter().chain(TTY_STOP).chain(&[libc::SIGCHLD, wake_signal()]) {
        // SAFETY: adds a valid signal number to a set we own.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// Waits for a signal of `set` for at most `timeout` (forever when `None`).
/// Returns the signal, or `None` on timeout or interruption.
pub(crate) fn wait(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<i32> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: set and tsp are valid for the call; siginfo is not needed (null).
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), tsp) };
    (sig > 0).then_some(sig)
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// `SIGTERM`, `TERM`, `term` or `15` -> 15.
pub fn signal_by_name(s: &str) -> Result<i32, String> {
    let upper = s.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = bare.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    } else if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Ok(n);
    }
    Err(format!("unknown signal {s:?}: use a name like SIGTERM, SIGHUP, SIGINT, or a number"))
}

/// `15` -> `SIGTERM`, for log lines.
pub fn signal_name(n: i32) -> String {
    NAMES
        .iter()
        .find(|(_, v)| *v == n)
        .map_or_else(|| format!("signal {n}"), |(name, _)| format!("SIG{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(signal_by_name("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(signal_by_name("term"), Ok(libc::SIGTERM));
        assert_eq!(signal_by_name("9"), Ok(9));
        assert!(signal_by_name("SIGNOPE").is_err());
        assert!(signal_by_name("0").is_err());
        assert_eq!(signal_name(libc::SIGUSR2), "SIGUSR2");
    }
}
