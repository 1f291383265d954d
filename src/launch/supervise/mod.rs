//! Supervise mode: secretexec stays as the parent of COMMAND and does a
//! PID-1's job (after tini and dumb-init), plus secret rotation.
//!
//! Promises:
//! - every asynchronous signal is blocked before any thread exists and
//!   collected with `sigtimedwait`; the child gets the original mask and
//!   default dispositions back before `execve`;
//! - SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH and SIGCONT
//!   are forwarded to the child's process group (or the child alone with
//!   `--no-process-group`); SIGTSTP/SIGTTIN/SIGTTOU are forwarded and then
//!   the supervisor stops itself; SIGCHLD is never forwarded;
//! - as PID 1, or as a child subreaper otherwise, every orphan is reaped;
//! - when the child exits, what is left of its group gets `stop_signal`,
//!   then SIGKILL after `stop_timeout`; secretexec exits with the child's
//!   code, or 128+N when a signal N killed it;
//! - after the child starts, secretexec holds no secret plaintext: the
//!   resolution and the child's `envp` are dropped (zeroized), rotation
//!   compares keyed digests only (see [`rotation`]).

mod rotation;
mod runtime_dir;
mod signals;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub use signals::{block_signals, signal_by_name, signal_name};

use crate::config::{OnChange, OnError, ReloadOn, Supervise};
use crate::environment::{self, Envp};
use crate::error::{EXIT_FAILURE, Error};
use crate::hardening::SavedLimits;
use crate::launch::exec::{ExecFailure, Program};
use crate::plan::Plan;
use crate::resolve::{EnvVal, Resolution};

/// Command-line choices for supervise mode; `None` keeps the mapping's value.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run the child in its own process group and signal the group.
    pub process_group: bool,
    pub watch: Option<Duration>,
    pub reload_on: Option<ReloadOn>,
    pub on_change: Option<OnChange>,
    pub stop_signal: Option<i32>,
    pub stop_timeout: Option<Duration>,
    pub splay: Option<Duration>,
    pub on_error: Option<OnError>,
}

impl Options {
    fn apply(&self, mut s: Supervise) -> Supervise {
        s.watch = self.watch.or(s.watch);
        s.reload_on = self.reload_on.unwrap_or(s.reload_on);
        s.on_change = self.on_change.unwrap_or(s.on_change);
        s.stop_signal = self.stop_signal.unwrap_or(s.stop_signal);
        s.stop_timeout = self.stop_timeout.unwrap_or(s.stop_timeout);
        s.splay = self.splay.unwrap_or(s.splay);
        s.on_error = self.on_error.unwrap_or(s.on_error);
        s
    }
}

/// Starts `argv` with the environment of `res`, supervises it until it
/// exits, and returns secretexec's exit code. `res` is consumed: its values
/// are zeroized once the child runs. Errors: the command was not found (127)
/// or not executable (126), or a local failure before it started (125).
pub fn run(
    plan: &Plan,
    res: Resolution,
    argv: &[OsString],
    opts: &Options,
    limits: &SavedLimits,
) -> Result<i32, Error> {
    let mut plan = plan.clone();
    plan.supervise = opts.apply(plan.supervise.clone());
    if let Some(w) = opts.watch {
        // A --watch on the command line applies to every source.
        plan.source_watch.values_mut().for_each(|v| *v = w);
    }
    // SAFETY: getpid and prctl(PR_SET_CHILD_SUBREAPER) have no memory effects.
    unsafe {
        if libc::getpid() != 1 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }
    let has_files = res.values().any(|(_, v)| matches!(v, EnvVal::File(_)));
    let files = if has_files && matches!(plan.supervise.on_change, OnChange::Signal(_)) {
        Some(runtime_dir::RuntimeDir::create().map_err(|err| Error::Io {
            about: "cannot create a private directory for as = \"file\" secrets".into(),
            err,
        })?)
    } else {
        None
    };
    let now = Instant::now();
    let watch = rotation::Watch::new(&plan, &res, now);
    let mut sup = Supervisor {
        tty: if opts.process_group { foreground_tty() } else { None },
        plan,
        argv,
        process_group: opts.process_group,
        limits,
        files,
        child: None,
        stopping: None,
        watch,
        pending: None,
        job: None,
        handled: signals::handled(),
    };
    sup.child = Some(sup.start(res)?);
    Ok(sup.main_loop())
}

/// The running child: its pid, and where signals go (`-pgid` or `pid`).
#[derive(Clone, Copy)]
struct Child {
    pid: libc::pid_t,
    target: libc::pid_t,
}

/// What to do once the child (and its group) are gone.
enum After {
    /// Exit with this code, or with the child's when `None`.
    Exit(Option<i32>),
    /// Start the child again with this resolution.
    Restart(Resolution),
}

struct Stopping {
    deadline: Instant,
    killed: bool,
    /// The main child's exit code, once reaped.
    code: Option<i32>,
    /// Where the signals went, for SIGKILL and the "group gone" check.
    target: libc::pid_t,
    after: After,
}

struct Supervisor<'a> {
    plan: Plan,
    argv: &'a [OsString],
    process_group: bool,
    /// The controlling terminal, when secretexec runs in its foreground.
    tty: Option<RawFd>,
    limits: &'a SavedLimits,
    files: Option<runtime_dir::RuntimeDir>,
    child: Option<Child>,
    stopping: Option<Stopping>,
    watch: rotation::Watch,
    /// When to act on a detected change (after the splay).
    pending: Option<Instant>,
    /// A resolve running on a worker thread.
    job: Option<Job>,
    handled: libc::sigset_t,
}

/// Resolving can take up to the plan's deadline (a store that hangs); it
/// runs on a worker thread so that signals are forwarded and orphans reaped
/// meanwhile. The worker wakes the main loop with [`signals::wake`].
struct Job {
    kind: JobKind,
    rx: Receiver<Resolution>,
}

enum JobKind {
    /// Re-resolving these sources to compare digests.
    Poll(BTreeSet<String>),
    /// A full resolve to apply `on_change` with.
    Act,
}

impl Supervisor<'_> {
    fn main_loop(&mut self) -> i32 {
        loop {
            self.reap();
            if let Some(code) = self.progress_stop() {
                self.give_back_tty();
                return code;
            }
            self.collect_job();
            let now = Instant::now();
            if self.stopping.is_none() && self.job.is_none() {
                if self.pending.is_some_and(|t| t <= now) {
                    self.pending = None;
                    self.start_job(JobKind::Act, self.plan.clone());
                } else if self.pending.is_none()
                    && let Some((due, sub)) = self.watch.begin_poll(&self.plan, now)
                {
                    crate::debug!("re-resolving {}", due.iter().cloned().collect::<Vec<_>>().join(", "));
                    self.start_job(JobKind::Poll(due), sub);
                }
            }
            let idle = self.stopping.is_none() && self.job.is_none();
            let wake = [
                self.stopping.as_ref().filter(|s| !s.killed || s.code.is_some()).map(|s| s.deadline),
                self.pending.filter(|_| idle),
                if idle && self.pending.is_none() { self.watch.next_due() } else { None },
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()));
            if let Some(sig) = signals::wait(&self.handled, timeout) {
                self.on_signal(sig);
            }
        }
    }

    /// Resolves `plan` on a worker thread.
    fn start_job(&mut self, kind: JobKind, plan: Plan) {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new().name("resolve".into()).spawn(move || {
            let res = crate::resolve::resolve(&plan);
            let _ = tx.send(res);
            signals::wake();
        });
        match spawned {
            Ok(_) => self.job = Some(Job { kind, rx }),
            Err(e) => {
                // Retried at the next interval; the child keeps running.
                crate::warn!("cannot start a thread to re-resolve: {e}");
                if let JobKind::Poll(due) = kind {
                    self.watch.abort_poll(&due);
                }
            }
        }
    }

    /// Takes the result of a finished worker, if any, and acts on it.
    fn collect_job(&mut self) {
        let Some(job) = &self.job else { return };
        let res = match job.rx.try_recv() {
            Ok(res) => res,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                crate::warn!("the re-resolve worker ended without an answer; retrying later");
                if let Some(Job { kind: JobKind::Poll(due), .. }) = self.job.take() {
                    self.watch.abort_poll(&due);
                }
                return;
            }
        };
        let job = self.job.take().expect("checked above");
        if self.stopping.is_some() {
            return;
        }
        match job.kind {
            JobKind::Poll(due) => self.polled(&due, &res),
            JobKind::Act => self.act(res),
        }
    }

    /// Reaps every child that has exited (orphans included).
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into our variable.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::WUNTRACED) };
            if pid <= 0 {
                return;
            }
            let Some(child) = self.child.filter(|c| c.pid == pid) else {
                crate::trace!("reaped process {pid}");
                continue;
            };
            if libc::WIFSTOPPED(status) {
                self.child_stopped();
                continue;
            }
            let code = if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            };
            crate::info!("child {pid} exited with {}", describe_status(status));
            self.child = None;
            match &mut self.stopping {
                Some(s) => s.code = Some(code),
                None => {
                    // The child ended on its own: what is left of its group
                    // gets stop_signal now.
                    self.pending = None;
                    let target = child.target;
                    if self.process_group && group_alive(target) {
                        crate::info!(
                            "stopping the rest of the child's process group with {}",
                            signal_name(self.plan.supervise.stop_signal)
                        );
                        send(target, self.plan.supervise.stop_signal);
                        send(target, libc::SIGCONT);
                    }
                    self.stopping = Some(Stopping {
                        deadline: Instant::now() + self.plan.supervise.stop_timeout,
                        killed: false,
                        code: Some(code),
                        target,
                        after: After::Exit(None),
                    });
                }
            }
        }
    }

    /// Moves a stop along: SIGKILL at the deadline; once the child and its
    /// group are gone, exits (returns the code) or restarts.
    fn progress_stop(&mut self) -> Option<i32> {
        let s = self.stopping.as_mut()?;
        let now = Instant::now();
        let mut gone = s.code.is_some() && !(self.process_group && group_alive(s.target));
        if !gone && s.code.is_some() && s.killed && now >= s.deadline {
            // A group member we may not signal (it changed its user) or
            // cannot reap (not our descendant): do not wait forever.
            crate::warn!("the child's process group outlived SIGKILL; leaving it behind");
            gone = true;
        }
        if !gone {
            if !s.killed && now >= s.deadline {
                crate::warn!(
                    "still running {:?} after {}: sending SIGKILL",
                    self.plan.supervise.stop_timeout,
                    signal_name(self.plan.supervise.stop_signal)
                );
                send(s.target, libc::SIGKILL);
                s.killed = true;
                s.deadline = now + self.plan.supervise.stop_timeout;
            }
            return None;
        }
        let s = self.stopping.take().expect("checked above");
        match s.after {
            After::Exit(code) => Some(code.or(s.code).expect("gone implies the child was reaped")),
            After::Restart(res) => match self.start(res) {
                Ok(child) => {
                    self.child = Some(child);
                    None
                }
                Err(e) => {
                    crate::error!("{e}");
                    Some(e.exit_code())
                }
            },
        }
    }

    fn on_signal(&mut self, sig: i32) {
        match sig {
            libc::SIGCHLD => {}
            libc::SIGHUP if self.plan.supervise.reload_on == ReloadOn::Sighup => {
                crate::info!("SIGHUP: re-resolving every source");
                self.watch.all_due(Instant::now());
            }
            _ if signals::TTY_STOP.contains(&sig) => {
                if let Some(c) = self.child {
                    send(c.target, sig);
                }
                crate::debug!("{}: stopping secretexec too", signal_name(sig));
                // SAFETY: stops this process; SIGSTOP cannot be blocked or caught.
                unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
            }
            _ if signals::FORWARDED.contains(&sig) => {
                if let Some(s) = &mut self.stopping {
                    // A stop request during a restart: stop for good.
                    if matches!(s.after, After::Restart(_))
                        && [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, self.plan.supervise.stop_signal]
                            .contains(&sig)
                    {
                        crate::info!("{}: not restarting", signal_name(sig));
                        s.after = After::Exit(None);
                    }
                }
                let target = self.child.map(|c| c.target).or(self.stopping.as_ref().map(|s| s.target));
                if let Some(target) = target {
                    if sig == libc::SIGCONT {
                        self.take_tty_for_child();
                    }
                    crate::debug!("forwarding {}", signal_name(sig));
                    send(target, sig);
                }
            }
            // The worker's wake-up, and anything else we never forward.
            _ => {}
        }
    }

    /// The child stopped (Ctrl-Z on the terminal): take the terminal back
    /// and stop ourselves, so the shell sees the job stopped. SIGCONT from
    /// `fg` resumes us and is forwarded.
    fn child_stopped(&mut self) {
        let Some(tty) = self.tty else { return };
        // SAFETY: tcsetpgrp on a descriptor we hold open; SIGTTOU is blocked.
        unsafe {
            libc::tcsetpgrp(tty, libc::getpgrp());
            libc::kill(libc::getpid(), libc::SIGSTOP);
        }
    }

    /// Gives the terminal to the child's group if we are in the foreground.
    fn take_tty_for_child(&self) {
        if let (Some(tty), Some(c)) = (self.tty, self.child) {
            // SAFETY: plain terminal ioctls on a descriptor we hold open.
            unsafe {
                if libc::tcgetpgrp(tty) == libc::getpgrp() {
                    libc::tcsetpgrp(tty, c.pid);
                }
            }
        }
    }

    fn give_back_tty(&self) {
        if let Some(tty) = self.tty {
            // SAFETY: as above; SIGTTOU is blocked, so this cannot stop us.
            unsafe { libc::tcsetpgrp(tty, libc::getpgrp()) };
        }
    }

    /// A poll's resolution came back: schedules an action when something changed.
    fn polled(&mut self, due: &BTreeSet<String>, res: &Resolution) {
        match self.watch.finish_poll(due, res) {
            rotation::Poll::Unchanged => crate::debug!("no value changed"),
            rotation::Poll::Changed(ids) => {
                let delay = rotation::splay(self.plan.supervise.splay);
                crate::info!(
                    "values changed in source(s) {}; acting in {:?} (on_change = {})",
                    ids.join(", "),
                    delay,
                    describe_on_change(self.plan.supervise.on_change)
                );
                self.pending = Some(Instant::now() + delay);
            }
            rotation::Poll::Failed(lines) => self.resolve_failed(&lines),
        }
    }

    fn resolve_failed(&mut self, lines: &[String]) {
        let text = lines.join("; ");
        match self.plan.supervise.on_error {
            OnError::Keep => {
                crate::warn!("re-resolve failed, the child keeps running with its values: {text}")
            }
            OnError::Stop => {
                crate::error!("re-resolve failed; on_error = \"stop\": stopping the child: {text}");
                self.stop(After::Exit(Some(EXIT_FAILURE)));
            }
        }
    }

    /// Applies `on_change` with a fresh full resolution.
    fn act(&mut self, res: Resolution) {
        let failures = rotation::failure_lines(&res);
        if !failures.is_empty() {
            self.resolve_failed(&failures);
            return;
        }
        if !self.watch.differs(&res) {
            crate::info!("values are back to what the child has; nothing to do");
            return;
        }
        match self.plan.supervise.on_change {
            OnChange::None => {
                crate::info!("values changed; on_change = \"none\": the child keeps its values");
                self.watch.refresh(&res);
            }
            OnChange::Signal(sig) => {
                if let Some(dir) = &self.files {
                    let vars = environment::assemble(&self.plan, &res, std::env::vars_os());
                    if let Err(err) = environment::materialize_in(&vars, dir.path()) {
                        crate::error!(
                            "cannot rewrite the as = \"file\" secrets: {err}; not signalling the child"
                        );
                        return;
                    }
                }
                self.watch.refresh(&res);
                if let Some(c) = self.child {
                    crate::info!("values changed: sending {} to the child", signal_name(sig));
                    send(c.target, sig);
                }
            }
            OnChange::Restart => {
                crate::info!("values changed: restarting the child");
                self.watch.refresh(&res);
                self.stop(After::Restart(res));
            }
        }
    }

    /// Sends stop_signal to the child and arms the SIGKILL deadline.
    fn stop(&mut self, after: After) {
        let Some(c) = self.child else { return };
        send(c.target, self.plan.supervise.stop_signal);
        send(c.target, libc::SIGCONT);
        self.pending = None;
        self.stopping = Some(Stopping {
            deadline: Instant::now() + self.plan.supervise.stop_timeout,
            killed: false,
            code: None,
            target: c.target,
            after,
        });
    }

    /// Forks and execs the child with the environment of `res`, then drops
    /// every secret this process held for it.
    fn start(&mut self, res: Resolution) -> Result<Child, Error> {
        let vars = environment::assemble(&self.plan, &res, std::env::vars_os());
        let envp = match &self.files {
            Some(dir) => environment::materialize_in(&vars, dir.path()),
            None => environment::materialize(&vars),
        }
        .map_err(|err| Error::Io {
            about: "cannot create the files for as = \"file\" secrets".into(),
            err,
        })?;
        drop(vars);
        drop(res);
        let child = spawn(self.argv, &envp, self.process_group, self.tty, self.limits)?;
        drop(envp);
        crate::info!("started {} as process {}", self.argv[0].to_string_lossy(), child.pid);
        Ok(child)
    }
}

/// fork + execve. In the child, before `execve`: its own process group (and
/// the terminal's foreground), the original signal mask and dispositions,
/// the original core limit. A failed `execve` is reported through a
/// close-on-exec pipe, so the parent can answer 126/127 like exec mode.
fn spawn(
    argv: &[OsString],
    envp: &Envp,
    process_group: bool,
    tty: Option<RawFd>,
    limits: &SavedLimits,
) -> Result<Child, Error> {
    let mut program = Program::new(argv, envp.get("PATH"))?;
    let envp_ptrs = envp.pointers();
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::Io { about: "cannot create a pipe to start the command".into(), err });
    }
    let [rd, wr] = fds;
    // SAFETY: fork in a process whose other threads (if any) hold no locks
    // the child needs: the child only makes async-signal-safe calls and
    // execve's with buffers prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: closing descriptors we created.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(Error::Io { about: "cannot fork to start the command".into(), err });
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, then execve or _exit.
        unsafe {
            libc::close(rd);
            if process_group {
                libc::setpgid(0, 0);
                if let Some(fd) = tty {
                    libc::tcsetpgrp(fd, libc::getpid());
                }
            }
            limits.restore();
            signals::restore_in_child();
            let failure = program.exec(&envp_ptrs);
            let report: [i32; 3] = match failure {
                ExecFailure::NotFound => [1, 0, 0],
                ExecFailure::Denied { index, errno } => [2, index as i32, errno],
            };
            libc::write(wr, report.as_ptr().cast(), std::mem::size_of_val(&report));
            libc::_exit(if report[0] == 1 { 127 } else { 126 });
        }
    }
    // SAFETY: closing our copy of the write end; setpgid/tcsetpgrp repeat
    // the child's own calls so neither side races the other.
    unsafe {
        libc::close(wr);
        if process_group {
            libc::setpgid(pid, pid);
            if let Some(fd) = tty {
                libc::tcsetpgrp(fd, pid);
            }
        }
    }
    let mut report = [0i32; 3];
    let n = loop {
        // SAFETY: reads into our buffer of exactly that size.
        let n = unsafe { libc::read(rd, report.as_mut_ptr().cast(), std::mem::size_of_val(&report)) };
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break n;
        }
    };
    // SAFETY: closing the read end we own.
    unsafe { libc::close(rd) };
    if n == std::mem::size_of_val(&report) as isize {
        let mut status = 0;
        // SAFETY: reaps the child that failed to exec.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let failure = match report {
            [1, ..] => ExecFailure::NotFound,
            [_, index, errno] => ExecFailure::Denied { index: index as usize, errno },
        };
        return Err(program.error(failure));
    }
    Ok(Child { pid, target: if process_group { -pid } else { pid } })
}

fn send(target: libc::pid_t, sig: i32) {
    // SAFETY: kill has no memory effects; errors (ESRCH) are expected.
    unsafe { libc::kill(target, sig) };
}

/// Whether any process of the group `-target` is left (a zombie of ours
/// counts until reaped; EPERM means someone is there).
fn group_alive(target: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(target, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Standard input, if it is a terminal whose foreground group is ours:
/// interactive use, where the child must become the foreground group.
fn foreground_tty() -> Option<RawFd> {
    // SAFETY: isatty/tcgetpgrp on fd 0 only query.
    unsafe { (libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp()).then_some(0) }
}

fn describe_status(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("{} (exit code {})", signal_name(libc::WTERMSIG(status)), 128 + libc::WTERMSIG(status))
    } else {
        format!("code {}", libc::WEXITSTATUS(status))
    }
}

fn describe_on_change(c: OnChange) -> String {
    match c {
        OnChange::Restart => "restart".into(),
        OnChange::None => "none".into(),
        OnChange::Signal(s) => format!("signal:{}", signal_name(s)),
    }
}
