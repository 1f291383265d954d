//! Real OpenBao servers for the vault tests.
//!
//! [`shared()`] is one `bao server -dev` per test binary, started on first
//! use on a free loopback port with a known root token. It is spawned from a
//! thread that lives as long as the process, with `PR_SET_PDEATHSIG`, so the
//! kernel kills it when the test binary exits (however it exits): the signal
//! follows the thread that forked, and libtest's worker threads end after
//! each test. Tests isolate themselves by mount/path prefix ([`unique`]).
//!
//! [`OwnedBao::start`] is a server of its own with raft storage (it survives
//! a restart), for tests that seal, stop or restart it; it is killed by PID
//! on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::{TestDir, tool};

pub const ROOT_TOKEN: &str = "root-7Yq2-test-token";

/// A running OpenBao server.
pub struct Bao {
    pub addr: String,
    pub root: String,
    pub pid: u32,
    port: u16,
}

/// The process-wide dev server.
pub fn shared() -> &'static Bao {
    static SHARED: OnceLock<Bao> = OnceLock::new();
    SHARED.get_or_init(|| {
        let port = free_port();
        let (tx, rx) = mpsc::channel();
        // The server's parent thread must outlive every test: it waits on
        // the child for the whole life of the process.
        std::thread::Builder::new()
            .name("openbao-dev".into())
            .spawn(move || {
                let mut child = spawn_dying_with_parent(&[
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={ROOT_TOKEN}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                    "-dev-no-store-token",
                ]);
                let out = child.stdout.take().expect("stdout is piped");
                LogWatch::follow(out).wait_for("Root Token:", 0);
                tx.send(child.id()).expect("test thread waits for the pid");
                let _ = child.wait();
            })
            .expect("spawn the openbao thread");
        let pid = rx.recv().expect("the dev server started");
        Bao { addr: format!("http://127.0.0.1:{port}"), root: ROOT_TOKEN.into(), pid, port }
    })
}

/// A prefix no other test uses (mount names, paths, policy names).
pub fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}{}", N.fetch_add(1, Ordering::Relaxed))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// Starts `bao ARGS` with stderr merged into a stdout pipe (the banner goes
/// to stdout, the log lines to stderr), killed when the spawning thread ends.
fn spawn_dying_with_parent(args: &[&str]) -> Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("exec \"$0\" \"$@\" 2>&1").arg(tool("bao")).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd.env("HOME", std::env::temp_dir());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("start bao server")
}

/// Lines so far, and whether the output has ended.
type Lines = (Vec<String>, bool);

/// The server's output lines, collected in the background (so the server
/// never blocks on a full pipe), for handshakes on log lines.
#[derive(Clone, Default)]
pub struct LogWatch {
    lines: Arc<(Mutex<Lines>, Condvar)>,
}

impl LogWatch {
    fn follow(out: impl Read + Send + 'static) -> LogWatch {
        let watch = LogWatch::default();
        let w = watch.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            loop {
                let mut line = String::new();
                let n = reader.read_line(&mut line).unwrap_or(0);
                let (lock, cv) = &*w.lines;
                let mut g = lock.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.push(line);
                cv.notify_all();
            }
        });
        watch
    }

    pub fn count(&self) -> usize {
        self.lines.0.lock().unwrap().0.len()
    }

    /// Blocks until a line after the first `from` lines contains `marker`.
    pub fn wait_for(&self, marker: &str, from: usize) {
        let (lock, cv) = &*self.lines;
        let mut g = lock.lock().unwrap();
        loop {
            if g.0.iter().skip(from).any(|l| l.contains(marker)) {
                return;
            }
            if g.1 {
                panic!("bao server exited before logging {marker:?}; output:\n{}", g.0.join(""));
            }
            g = cv.wait(g).unwrap();
        }
    }
}

impl Bao {
    /// Runs the bao CLI against this server with `token`; panics on failure.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> String {
        let out = self.cli_output(token, args);
        assert!(
            out.status.success(),
            "bao {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_as(&self.root, args)
    }

    /// Runs the bao CLI and returns its output whatever the status.
    pub fn cli_output(&self, token: &str, args: &[&str]) -> std::process::Output {
        bao_command(&self.addr, token, None).args(args).stdin(Stdio::null()).output().expect("run bao")
    }

    /// `bao <args>` with stdin (policies, JSON).
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        run_with_stdin(bao_command(&self.addr, &self.root, None), args, stdin)
    }

    /// Enables a KV mount of `version` at a fresh path and returns its name.
    pub fn kv_mount(&self, prefix: &str, version: u8) -> String {
        let mount = unique(prefix);
        self.cli(&["secrets", "enable", &format!("-path={mount}"), &format!("-version={version}"), "kv"]);
        mount
    }

    /// `bao kv put MOUNT/PATH k=v ...`; values via JSON on stdin so they never sit in argv.
    pub fn put(&self, path: &str, fields: &[(&str, &str)]) {
        let obj: serde_json::Map<String, serde_json::Value> =
            fields.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
        self.put_json(path, &serde_json::Value::Object(obj));
    }

    pub fn put_json(&self, path: &str, value: &serde_json::Value) {
        self.cli_stdin(&["kv", "put", path, "-"], &value.to_string());
    }

    /// Writes a policy and creates a token with it; returns the token.
    pub fn token_with_policy(&self, policy_hcl: &str, extra: &[&str]) -> String {
        let name = unique("pol");
        self.cli_stdin(&["policy", "write", &name, "-"], policy_hcl);
        let mut args = vec!["token", "create", "-field=token", "-policy", name.as_str()];
        args.extend_from_slice(extra);
        self.cli(&args).trim().to_owned()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A server of its own with file storage: survives restarts, can be sealed.
pub struct OwnedBao {
    pub bao: Bao,
    pub unseal_key: String,
    dir: TestDir,
    child: Option<Child>,
    pub log: LogWatch,
}

impl OwnedBao {
    /// Starts, initialises (one key share) and unseals a server.
    pub fn start() -> OwnedBao {
        let dir = TestDir::new();
        let port = free_port();
        let cluster = free_port();
        std::fs::create_dir(dir.join("data")).unwrap();
        let config = dir.file(
            "bao.hcl",
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 disable_mlock = true\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n\
                 audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                dir.join("data").display(),
                dir.join("audit.log").display()
            ),
        );
        let (child, log) = Self::spawn(&config);
        let mut me = OwnedBao {
            bao: Bao { addr: format!("http://127.0.0.1:{port}"), root: String::new(), pid: child.id(), port },
            unseal_key: String::new(),
            dir,
            child: Some(child),
            log,
        };
        let init =
            me.bao.cli_as("", &["operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"]);
        let v: serde_json::Value = serde_json::from_str(&init).unwrap();
        me.unseal_key = v["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        me.bao.root = v["root_token"].as_str().unwrap().to_owned();
        me.unseal();
        me
    }

    fn spawn(config: &Path) -> (Child, LogWatch) {
        let mut child = spawn_dying_with_parent(&["server", &format!("-config={}", config.display())]);
        let log = LogWatch::follow(child.stdout.take().expect("stdout is piped"));
        log.wait_for("server started", 0);
        (child, log)
    }

    /// Unseals and waits until the node is active (raft elected it).
    pub fn unseal(&self) {
        let from = self.log.count();
        self.bao.cli_as("", &["operator", "unseal", &self.unseal_key]);
        self.log.wait_for("post-unseal setup complete", from);
    }

    /// Unseals without waiting for the node to become active.
    pub fn unseal_no_wait(&self) {
        self.bao.cli_as("", &["operator", "unseal", &self.unseal_key]);
    }

    /// Stops the server (SIGKILL by PID) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on a PID we spawned and have not yet reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same port and storage; it is sealed.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop() the server first");
        let (child, log) = Self::spawn(&self.dir.join("bao.hcl"));
        self.bao.pid = child.id();
        self.child = Some(child);
        self.log = log;
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// The file audit log (JSON lines, one per request and response).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }
}

impl Drop for OwnedBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A dev server with TLS (`-dev-tls`): its own CA in `ca`, killed by PID on drop.
pub struct TlsBao {
    pub bao: Bao,
    pub ca: PathBuf,
    _dir: TestDir,
    child: Child,
}

impl TlsBao {
    pub fn start() -> TlsBao {
        let dir = TestDir::new();
        let port = free_port();
        let mut child = spawn_dying_with_parent(&[
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-tls-cert-dir={}", dir.path().display()),
            &format!("-dev-root-token-id={ROOT_TOKEN}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token",
        ]);
        LogWatch::follow(child.stdout.take().expect("stdout is piped")).wait_for("Root Token:", 0);
        let bao =
            Bao { addr: format!("https://127.0.0.1:{port}"), root: ROOT_TOKEN.into(), pid: child.id(), port };
        TlsBao { bao, ca: dir.join("vault-ca.pem"), _dir: dir, child }
    }

    /// The CLI against this server, trusting its CA.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        run_with_stdin(bao_command(&self.bao.addr, &self.bao.root, Some(&self.ca)), args, stdin)
    }
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        // SAFETY: kill on a PID we spawned and have not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The bao CLI aimed at `addr` with `token`, in a clean environment.
fn bao_command(addr: &str, token: &str, ca: Option<&Path>) -> Command {
    let mut cmd = Command::new(tool("bao"));
    cmd.env_clear().env("BAO_ADDR", addr).env("BAO_TOKEN", token).env("HOME", std::env::temp_dir());
    if let Some(ca) = ca {
        cmd.env("BAO_CACERT", ca);
    }
    cmd
}

/// Runs `cmd args` with `stdin` piped in; panics on failure, returns stdout.
fn run_with_stdin(mut cmd: Command, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bao");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bao {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
