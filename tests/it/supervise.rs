//! Supervise mode against real processes: a Python helper (support/sigecho.py)
//! prints `ready <pid> <pgid>` and then every signal it receives; tests wait
//! for those lines (handshakes), never sleep.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use crate::support::*;

/// Guards against a hang: a handshake that never comes fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

fn sigecho() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/sigecho.py").to_owned()
}

/// A running `secretexec supervise` (possibly under `unshare`), with its
/// stdout and stderr read line by line on threads.
struct Supervised {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    seen_out: Vec<String>,
    seen_err: Vec<String>,
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(mut line) = line else { break };
            // A terminal (tests under `script`) ends lines with \r\n.
            if line.ends_with('\r') {
                line.pop();
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Supervised {
    fn spawn(mut cmd: Command) -> Supervised {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start secretexec");
        let out = lines(child.stdout.take().expect("piped"));
        let err = lines(child.stderr.take().expect("piped"));
        Supervised { child, out, err, seen_out: Vec::new(), seen_err: Vec::new() }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn next_matching(&mut self, stderr: bool, pred: impl Fn(&str) -> bool, what: &str) -> String {
        loop {
            let (rx, seen) =
                if stderr { (&self.err, &mut self.seen_err) } else { (&self.out, &mut self.seen_out) };
            match rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => format!("no {what:?} within {PATIENCE:?}"),
                        RecvTimeoutError::Disconnected => format!("stream ended before {what:?}"),
                    };
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.seen_out.extend(self.out.try_iter());
                    self.seen_err.extend(self.err.try_iter());
                    panic!("{why}\nstdout: {:#?}\nstderr: {:#?}", self.seen_out, self.seen_err);
                }
            }
        }
    }

    /// The next stdout line, which must equal `expected`.
    #[track_caller]
    fn expect(&mut self, expected: &str) {
        let line = self.next_matching(false, |_| true, expected);
        assert_eq!(line, expected, "stdout so far: {:#?}", self.seen_out);
    }

    /// Skips stdout lines until one contains `prefix`; returns what follows
    /// it. (Contains, not starts with: a terminal echoes ^C before a line.)
    fn until(&mut self, prefix: &str) -> String {
        let line = self.next_matching(false, |l| l.contains(prefix), prefix);
        let at = line.find(prefix).expect("matched") + prefix.len();
        line[at..].to_owned()
    }

    /// `ready <pid> <pgid>` -> (pid, pgid).
    fn ready(&mut self) -> (i32, i32) {
        let rest = self.until("ready ");
        let mut it = rest.split(' ').map(|n| n.parse::<i32>().expect("numbers"));
        (it.next().expect("pid"), it.next().expect("pgid"))
    }

    /// Skips stderr lines until one contains `needle`.
    fn log_line(&mut self, needle: &str) -> String {
        self.next_matching(true, |l| l.contains(needle), needle)
    }

    fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits for exit; returns the code and everything printed since.
    fn finish(mut self) -> (i32, Vec<String>, Vec<String>) {
        let status = self.child.wait().expect("wait");
        let mut out = self.seen_out;
        out.extend(self.out.iter());
        let mut err = self.seen_err;
        err.extend(self.err.iter());
        let code = status.code().unwrap_or_else(|| panic!("killed by a signal: {status:?}; stderr {err:#?}"));
        (code, out, err)
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A mapping with one env-file source `local` holding `content`.
fn mapping(t: &TestDir, content: &str, extra: &str) -> PathBuf {
    t.secret_file("app.env", content);
    t.file("secretexec.toml", format!("[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n{extra}"))
}

/// Replaces the env file atomically (write, then rename), as operators do.
fn rewrite(t: &TestDir, content: &str) {
    rewrite_file(t, "app.env", content);
}

fn rewrite_file(t: &TestDir, name: &str, content: &str) {
    let tmp = t.secret_file(&format!("{name}.new"), content);
    std::fs::rename(tmp, t.join(name)).unwrap();
}

fn supervise(config: &Path, opts: &[&str], helper: &[&str]) -> Supervised {
    let mut cmd = secretexec().arg("-c").arg(config).arg("supervise").args(opts).arg("--").command();
    cmd.arg("python3").arg(sigecho()).args(helper);
    Supervised::spawn(cmd)
}

const FORWARDED: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGCONT, "SIGCONT"),
];

#[test]
fn forwards_every_signal_and_never_sigchld() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let mut s = supervise(&config, &[], &[]);
    let (child, pgid) = s.ready();
    assert_eq!(pgid, child, "the child leads its own process group by default");
    for &(sig, name) in FORWARDED {
        s.signal(sig);
        s.expect(&format!("got {name}"));
    }
    // SIGCHLD sorts before SIGWINCH: had it been forwarded, its echo would come first.
    s.signal(libc::SIGCHLD);
    s.signal(libc::SIGWINCH);
    s.expect("got SIGWINCH");
    signal(child, libc::SIGKILL);
    let (code, _, err) = s.finish();
    assert_eq!(code, 128 + libc::SIGKILL, "{err:#?}");
}

#[test]
fn terminal_stop_signals_are_forwarded_then_secretexec_stops() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let mut s = supervise(&config, &[], &[]);
    let (child, _) = s.ready();
    for (sig, name) in [(libc::SIGTSTP, "SIGTSTP"), (libc::SIGTTIN, "SIGTTIN"), (libc::SIGTTOU, "SIGTTOU")] {
        s.signal(sig);
        s.expect(&format!("got {name}"));
        let mut status = 0;
        // SAFETY: waits for our own child to stop.
        let r = unsafe { libc::waitpid(s.pid(), &mut status, libc::WUNTRACED) };
        assert_eq!(r, s.pid());
        assert!(libc::WIFSTOPPED(status), "secretexec should stop itself after {name}");
        s.signal(libc::SIGCONT);
        s.expect("got SIGCONT");
    }
    signal(child, libc::SIGKILL);
    assert_eq!(s.finish().0, 137);
}

#[test]
fn no_process_group_keeps_the_child_in_ours() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let mut s = supervise(&config, &["--no-process-group"], &["--exit-on", "TERM", "9"]);
    let (child, pgid) = s.ready();
    assert_ne!(pgid, child);
    // SAFETY: getpgrp has no side effects.
    assert_eq!(pgid, unsafe { libc::getpgrp() }, "child stays in secretexec's group (ours)");
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    assert_eq!(s.finish().0, 9);
}

#[test]
fn exit_codes_pass_through() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    for code in 0..=255 {
        let r = secretexec()
            .arg("-c")
            .arg(&config)
            .args(["supervise", "--", "sh", "-c", &format!("exit {code}")])
            .run();
        r.assert_code(code);
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    // Every signal whose default action terminates the process (SIGPIPE too:
    // the child must not inherit the Rust runtime's SIG_IGN for it).
    let killing =
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31, 34, 50, 64];
    for n in killing {
        let r = secretexec()
            .arg("-c")
            .arg(&config)
            .current_dir(t.path())
            .args(["supervise", "--", "sh", "-c", &format!("ulimit -c 0; kill -{n} $$")])
            .run();
        assert_eq!(r.code, Some(128 + n), "signal {n}: {}", r.stderr);
    }
}

#[test]
fn missing_required_secret_means_no_start() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\nB = \"local:B\"\n");
    let marker = t.join("started");
    let r = secretexec().arg("-c").arg(&config).args(["supervise", "--", "touch"]).arg(&marker).run();
    r.assert_code(125).assert_stderr_contains("B (local:B");
    assert!(!marker.exists(), "the command must not start");
}

#[test]
fn command_not_found_and_not_executable() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let script = t.file("not-exec.sh", "#!/bin/sh\n");
    secretexec()
        .arg("-c")
        .arg(&config)
        .args(["supervise", "--", "no-such-command-xyz"])
        .run()
        .assert_code(127);
    secretexec().arg("-c").arg(&config).args(["supervise", "--"]).arg(&script).run().assert_code(126);
}

#[test]
fn group_leftovers_get_stop_signal_then_sigkill() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n[supervise]\nstop_timeout = \"200ms\"\n");
    let mut s = supervise(&config, &["-v"], &["--stubborn"]);
    let stubborn: i32 = s.until("stubborn ").parse().unwrap();
    s.log_line("sending SIGKILL");
    let (code, _, err) = s.finish();
    assert_eq!(code, 5, "the main child's code: {err:#?}");
    assert!(!alive(stubborn), "the SIGTERM-ignoring group member was killed and reaped");
}

#[test]
fn secret_reaches_the_child_and_no_value_in_logs() {
    let t = TestDir::new();
    let config = mapping(&t, &format!("A={CANARY}\n"), "[env]\nA = \"local:A\"\n");
    let mut s = supervise(&config, &["-vvv"], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.expect(&format!("env A={CANARY}"));
    s.ready();
    s.signal(libc::SIGTERM);
    let (code, _, err) = s.finish();
    assert_eq!(code, 0);
    assert!(!err.join("\n").contains(CANARY), "{err:#?}");
}

// --- interactive terminal ---------------------------------------------------

/// State letter of a process (`R`, `S`, `T`, `Z`, …) from /proc.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (bounded) until `pid` is stopped: a condition wait on /proc, as a
/// stopped process cannot tell us itself.
fn wait_stopped(pid: i32) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while proc_state(pid) != Some('T') {
        assert!(std::time::Instant::now() < deadline, "process {pid} did not stop");
        std::thread::yield_now();
    }
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn interactive_terminal_job_control() {
    use std::io::Write;
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    // `script` runs secretexec on a new pseudo-terminal, as a session leader
    // in the foreground; what we write to its stdin is typed on that terminal.
    let inner = format!(
        "{} -c {} supervise -- python3 {} --print-fg --default TSTP --exit-on INT 4",
        bin(),
        config.display(),
        sigecho()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &inner, "/dev/null"]).stdin(Stdio::piped());
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("TERM", "dumb");
    let mut s = Supervised::spawn(cmd);
    let mut typing = s.child.stdin.take().expect("piped");
    let fg: i32 = s.until("fg ").parse().unwrap();
    let (child, pgid) = s.ready();
    assert_eq!(fg, pgid, "the child's group owns the terminal");
    assert_eq!(pgid, child);
    let supervisor = parent_of(child);

    // Ctrl-Z stops the child (default action); secretexec takes the
    // terminal back and stops too, so a shell would see the job stopped.
    typing.write_all(b"\x1a").unwrap();
    wait_stopped(child);
    wait_stopped(supervisor);
    // `fg`: the shell continues secretexec, which gives the terminal back
    // to the child and continues it.
    signal(supervisor, libc::SIGCONT);
    s.until("got SIGCONT");
    assert_eq!(s.until("fg ").parse::<i32>().unwrap(), pgid);

    // Ctrl-C reaches the child once (the terminal signals its group; secretexec
    // is not in it, so nothing is forwarded twice).
    typing.write_all(b"\x03").unwrap();
    s.until("got SIGINT");
    let (code, out, _) = s.finish();
    assert_eq!(code, 4);
    assert_eq!(out.iter().filter(|l| l.contains("got SIGINT")).count(), 1, "{out:#?}");
}

// --- PID 1 ------------------------------------------------------------------

fn unshare(config: &Path, helper: &[&str]) -> Supervised {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"]).arg(bin()).arg("-c").arg(config);
    cmd.args(["supervise", "--", "python3"]).arg(sigecho()).args(helper);
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).stdin(Stdio::null());
    Supervised::spawn(cmd)
}

/// The pid (outside the namespace) of unshare's only child: secretexec as PID 1.
fn pid1_of(unshare: &Supervised) -> i32 {
    let u = unshare.pid();
    let children = std::fs::read_to_string(format!("/proc/{u}/task/{u}/children")).unwrap();
    let pids: VecDeque<i32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 1, "{children}");
    pids[0]
}

#[test]
fn pid1_reaps_orphans() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let mut s = unshare(&config, &["--orphans", "20", "--exit-on", "TERM", "0"]);
    assert_eq!(s.until("zombies "), "0", "no zombie left in the namespace");
    let (pid, _) = s.ready();
    assert_eq!(pid, 2, "the helper is PID 1's first child");
    signal(pid1_of(&s), libc::SIGTERM);
    assert_eq!(s.finish().0, 0);
}

#[test]
fn pid1_docker_stop_semantics() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let mut s = unshare(&config, &["--exit-on", "TERM", "42"]);
    s.ready();
    signal(pid1_of(&s), libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, _, err) = s.finish();
    assert_eq!(code, 42, "{err:#?}");
}

// --- rotation ---------------------------------------------------------------

#[test]
fn rotation_restarts_with_the_new_value() {
    let t = TestDir::new();
    let config =
        mapping(&t, &format!("A={CANARY}-one\n"), "[env]\nA = \"local:A\"\n[supervise]\nwatch = \"100ms\"\n");
    let mut s = supervise(&config, &["-vvv"], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.expect(&format!("env A={CANARY}-one"));
    let (first, _) = s.ready();
    rewrite(&t, &format!("A={CANARY}-two\n"));
    s.expect("got SIGTERM");
    assert_eq!(s.until("env A="), format!("{CANARY}-two"));
    let (second, _) = s.ready();
    assert_ne!(first, second);
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, _, err) = s.finish();
    assert_eq!(code, 0);
    assert!(!err.join("\n").contains(CANARY), "a value leaked into secretexec's log: {err:#?}");
}

#[test]
fn unchanged_values_never_restart() {
    let t = TestDir::new();
    let config = mapping(&t, "A=one\n", "[env]\nA = \"local:A\"\n");
    let mut s =
        supervise(&config, &["-vv", "--watch", "20ms"], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.ready();
    for i in 0..10 {
        s.log_line("no value changed");
        if i == 3 {
            // Same content, new file and mtime: still unchanged.
            rewrite(&t, "A=one\n");
        }
    }
    s.signal(libc::SIGTERM);
    let (code, out, err) = s.finish();
    assert_eq!(code, 0);
    assert_eq!(out.iter().filter(|l| l.starts_with("ready")).count(), 1, "{out:#?}\n{err:#?}");
    assert!(!err.iter().any(|l| l.contains("changed in source")), "{err:#?}");
}

#[test]
fn shadowed_value_change_does_not_restart() {
    let t = TestDir::new();
    t.secret_file("b.env", "A=winner\n");
    let config = mapping(
        &t,
        "A=one\n",
        "[sources.b]\ntype = \"envfile\"\npath = \"b.env\"\n[[import]]\nref = \"local:*\"\n[env]\nA = \"b:A\"\n[supervise]\nwatch = \"20ms\"\n",
    );
    let mut s = supervise(&config, &["-vv"], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.expect("env A=winner");
    s.ready();
    s.log_line("no value changed");
    rewrite(&t, "A=two\n");
    for _ in 0..5 {
        s.log_line("no value changed");
    }
    s.signal(libc::SIGTERM);
    let (code, out, _) = s.finish();
    assert_eq!(code, 0);
    assert_eq!(out.iter().filter(|l| l.starts_with("ready")).count(), 1, "{out:#?}");
}

#[test]
fn restart_kills_a_child_that_ignores_the_stop_signal() {
    let t = TestDir::new();
    let config = mapping(
        &t,
        "A=one\n",
        "[env]\nA = \"local:A\"\n[supervise]\nwatch = \"50ms\"\nstop_timeout = \"100ms\"\n",
    );
    let mut s =
        supervise(&config, &["-v"], &["--print-env", "A", "--ignore", "TERM", "--exit-on", "INT", "3"]);
    s.expect("env A=one");
    s.ready();
    rewrite(&t, "A=two\n");
    s.log_line("sending SIGKILL");
    assert_eq!(s.until("env A="), "two");
    s.ready();
    s.signal(libc::SIGINT);
    s.expect("got SIGINT");
    assert_eq!(s.finish().0, 3);
}

#[test]
fn signal_mode_rewrites_file_secrets_atomically() {
    let t = TestDir::new();
    let run_dir = t.join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let config = mapping(
        &t,
        "F=one\n",
        "[env]\nF = { ref = \"local:F\", as = \"file\" }\n[supervise]\nwatch = \"50ms\"\non_change = \"signal:SIGHUP\"\n",
    );
    let mut cmd = secretexec()
        .arg("-c")
        .arg(&config)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .args(["supervise", "-v", "--"])
        .command();
    cmd.arg("python3").arg(sigecho()).args(["--print-file", "F", "--exit-on", "TERM", "0"]);
    let mut s = Supervised::spawn(cmd);
    let path = PathBuf::from(s.until("path F="));
    assert!(path.starts_with(&run_dir), "{path:?}");
    s.expect("file F=one");
    s.expect("mode F=400");
    let (first, _) = s.ready();
    let dir_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path.parent().unwrap()).unwrap().permissions(),
    );
    assert_eq!(dir_mode & 0o777, 0o700);
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&path);
    rewrite(&t, "F=two\n");
    s.expect("got SIGHUP");
    s.expect("file F=two");
    s.expect("mode F=400");
    assert_ne!(inode(&path), before, "replaced by rename (a new file), not rewritten in place");
    assert!(alive(first), "signal mode keeps the same child");
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, out, _) = s.finish();
    assert_eq!(code, 0);
    assert_eq!(out.iter().filter(|l| l.starts_with("ready")).count(), 1);
    assert!(!path.parent().unwrap().exists(), "the private directory is removed on exit");
}

#[test]
fn store_down_keeps_the_child_running() {
    let t = TestDir::new();
    let config = mapping(&t, "A=one\n", "[env]\nA = \"local:A\"\n[supervise]\nwatch = \"50ms\"\n");
    let mut s = supervise(&config, &[], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.ready();
    std::fs::remove_file(t.join("app.env")).unwrap();
    s.log_line("re-resolve failed, the child keeps running");
    s.signal(libc::SIGUSR1);
    s.expect("got SIGUSR1");
    // Back up with the same value: still no restart.
    rewrite(&t, "A=one\n");
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, out, _) = s.finish();
    assert_eq!(code, 0);
    assert_eq!(out.iter().filter(|l| l.starts_with("ready")).count(), 1);
}

#[test]
fn store_down_with_on_error_stop_stops_the_child() {
    let t = TestDir::new();
    let config = mapping(
        &t,
        "A=one\n",
        "[env]\nA = \"local:A\"\n[supervise]\nwatch = \"50ms\"\non_error = \"stop\"\n",
    );
    let mut s = supervise(&config, &[], &["--exit-on", "TERM", "0"]);
    s.ready();
    std::fs::set_permissions(t.join("app.env"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    s.expect("got SIGTERM");
    let (code, _, err) = s.finish();
    assert_eq!(code, 125, "{err:#?}");
    assert!(err.iter().any(|l| l.contains("on_error = \"stop\"")), "{err:#?}");
}

#[test]
fn sighup_reloads_when_asked_instead_of_forwarding() {
    let t = TestDir::new();
    let config = mapping(&t, "A=one\n", "[env]\nA = \"local:A\"\n[supervise]\nreload_on = \"sighup\"\n");
    let mut s = supervise(&config, &[], &["--print-env", "A", "--exit-on", "TERM", "0"]);
    s.expect("env A=one");
    s.ready();
    rewrite(&t, "A=two\n");
    s.signal(libc::SIGHUP);
    s.expect("got SIGTERM");
    assert_eq!(s.until("env A="), "two");
    s.ready();
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, out, _) = s.finish();
    assert_eq!(code, 0);
    assert!(!out.iter().any(|l| l == "got SIGHUP"), "{out:#?}");
}

#[test]
fn per_source_watch_polls_only_that_source() {
    let t = TestDir::new();
    t.secret_file("other.env", "B=one\n");
    let config = mapping(
        &t,
        "A=one\n",
        "watch = \"20ms\"\n[sources.other]\ntype = \"envfile\"\npath = \"other.env\"\n\
         [env]\nA = \"local:A\"\nB = \"other:B\"\n",
    );
    let mut s =
        supervise(&config, &["-vv"], &["--print-env", "A", "--print-env", "B", "--exit-on", "TERM", "0"]);
    s.expect("env A=one");
    s.expect("env B=one");
    s.ready();
    // `other` has no watch interval: a change there is not seen by polls…
    rewrite_file(&t, "other.env", "B=two\n");
    for _ in 0..3 {
        assert_eq!(s.log_line("re-resolving").trim_end(), "secretexec: debug: re-resolving local");
        s.log_line("no value changed");
    }
    // …but a restart caused by `local` resolves every source afresh.
    rewrite(&t, "A=two\n");
    s.expect("got SIGTERM");
    assert_eq!(s.until("env A="), "two");
    s.expect("env B=two");
    s.ready();
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, _, err) = s.finish();
    assert_eq!(code, 0);
    assert!(!err.iter().any(|l| l.contains("re-resolving") && l.contains("other")), "{err:#?}");
}

/// Every readable mapping of `pid` searched for `needle` (we run as root in
/// CI, so /proc/PID/mem is readable although secretexec is not dumpable).
fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    use std::io::{Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("read /proc/PID/mem (needs root)");
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (range, perms) = (parts.next().unwrap(), parts.next().unwrap());
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

#[test]
fn no_secret_plaintext_in_the_supervisor_while_the_child_runs() {
    let t = TestDir::new();
    let config = mapping(
        &t,
        &format!("A={CANARY}-one\nF={CANARY}-file\n"),
        "[env]\nA = \"local:A\"\nF = { ref = \"local:F\", as = \"file\" }\n[supervise]\nwatch = \"20ms\"\n",
    );
    let mut s = supervise(&config, &["-vv"], &["--exit-on", "TERM", "0"]);
    s.ready();
    // After a few polls too: they re-read the values and must drop them.
    for _ in 0..3 {
        s.log_line("no value changed");
    }
    let found = memory_contains(s.pid(), CANARY.as_bytes());
    s.signal(libc::SIGTERM);
    assert_eq!(s.finish().0, 0);
    assert!(!found, "the supervisor's memory holds a secret value");
}

#[test]
fn child_gets_the_original_core_limit_and_signal_mask() {
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    // secretexec blocks every signal and lowers its core limit while it holds
    // secrets; the child must see what secretexec's parent gave it.
    let out = Command::new("sh")
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args([
            "-c",
            &format!(
                "ulimit -S -c 4096 && exec {} -c {} supervise -- sh -c 'ulimit -S -c; grep SigBlk /proc/self/status'",
                bin(),
                config.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("4096"));
    assert_eq!(
        lines.next().map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["SigBlk:", "0000000000000000"])
    );
}

#[test]
fn sigpipe_is_at_its_default_action_in_both_modes() {
    use std::os::unix::process::ExitStatusExt;
    // The Rust runtime ignores SIGPIPE; the command must not inherit that.
    let t = TestDir::new();
    let config = mapping(&t, "A=1\n", "[env]\nA = \"local:A\"\n");
    let script = ["--", "sh", "-c", "kill -PIPE $$; exit 3"];
    let exec = secretexec().arg("-c").arg(&config).args(script).command().output().unwrap();
    assert_eq!(exec.status.signal(), Some(libc::SIGPIPE), "exec mode: {exec:?}");
    let sup = secretexec().arg("-c").arg(&config).arg("supervise").args(script).run();
    sup.assert_code(128 + libc::SIGPIPE);
}

/// Rotation against the real OpenBao server: `bao kv put` changes the value,
/// the child is restarted with it; the bootstrap token never reaches the child.
#[test]
fn rotation_with_openbao_restarts_after_kv_put() {
    use crate::support::openbao::shared;
    let bao = shared();
    let m = bao.kv_mount("rotate", 2);
    bao.put(&format!("{m}/app"), &[("k", &format!("{CANARY}-one"))]);
    let t = TestDir::new();
    let config = t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\n[env]\nA = \"v:{m}/app#k\"\n[supervise]\nwatch = \"100ms\"\n",
            bao.addr
        ),
    );
    let mut cmd = secretexec()
        .env("VAULT_TOKEN", &bao.root)
        .env("HOME", t.path())
        .arg("-c")
        .arg(&config)
        .args(["-vvv", "supervise", "--"])
        .command();
    cmd.arg("python3").arg(sigecho()).args([
        "--print-env",
        "A",
        "--print-env",
        "VAULT_TOKEN",
        "--exit-on",
        "TERM",
        "0",
    ]);
    let mut s = Supervised::spawn(cmd);
    s.expect(&format!("env A={CANARY}-one"));
    assert_eq!(s.until("env VAULT_TOKEN="), "<unset>", "the bootstrap token is scrubbed from the child");
    let (first, _) = s.ready();
    // Several polls with nothing changed: no restart.
    for _ in 0..3 {
        s.log_line("no value changed");
    }
    bao.put(&format!("{m}/app"), &[("k", &format!("{CANARY}-two"))]);
    s.expect("got SIGTERM");
    assert_eq!(s.until("env A="), format!("{CANARY}-two"));
    let (second, _) = s.ready();
    assert_ne!(first, second);
    s.signal(libc::SIGTERM);
    s.expect("got SIGTERM");
    let (code, _, err) = s.finish();
    assert_eq!(code, 0);
    let log = err.join("\n");
    assert!(!log.contains(CANARY) && !log.contains(&bao.root), "a value or the token leaked: {log}");
}
