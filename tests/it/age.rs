//! The age source, with interop both ways against Go `age`: files made by
//! `age` (X25519, armored, SSH keys, passphrases) decrypted by secretexec,
//! and files made by the `age` crate (what secretexec links) decrypted by `age`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::support::sops::*;
use crate::support::*;

fn plaintext() -> String {
    format!("API_KEY={CANARY}\nUSER=app\nQUOTED=\"two words\"\n")
}

/// Runs Go `age` with `args`; panics on failure.
fn go_age(args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool("age")).args(args).output().expect("run age");
    assert!(out.status.success(), "age {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Go `age` reads passphrases from the terminal only: drive it through a pty.
fn go_age_with_passphrase(passphrase: &str, args: &[&str]) {
    const DRIVER: &str = r#"
import os, pty, sys
pw = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen, answered = b"", 0
while True:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    seen += data
    while seen.count(b"passphrase") > answered:
        os.write(fd, pw)
        answered += 1
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let status = Command::new("python3")
        .args(["-c", DRIVER, passphrase])
        .arg(tool("age"))
        .args(args)
        .status()
        .expect("run python3");
    assert!(status.success(), "age {args:?} under a pty failed");
}

/// Renders `[env]` of a mapping with one age source as a JSON object.
fn render(t: &TestDir, source: &str, env: &[(&str, &str)]) -> Run {
    let mapping = format!(
        "[sources.s]\ntype = \"age\"\n{source}\n[env]\nAPI_KEY = \"s:API_KEY\"\nUSER = \"s:USER\"\nQUOTED = \"s:QUOTED\"\n"
    );
    t.file("secretexec.toml", mapping);
    let mut run = secretexec().current_dir(t.path()).args(["render", "--format", "json"]);
    for (k, v) in env {
        run = run.env(k, v);
    }
    run.run()
}

#[track_caller]
fn assert_values(r: &Run) {
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["API_KEY"], CANARY);
    assert_eq!(v["USER"], "app");
    assert_eq!(v["QUOTED"], "two words");
}

#[test]
fn go_age_x25519_binary_and_armored() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    let plain = t.secret_file("plain.env", plaintext());
    for (name, armor) in [("s.env.age", false), ("s.env.asc", true)] {
        let out = t.join(name).display().to_string();
        let mut args = vec!["-r", &k.recipient, "-o", &out];
        if armor {
            args.insert(0, "-a");
        }
        let p = plain.display().to_string();
        args.push(&p);
        go_age(&args);
        let r = render(&t, &format!("path = \"{name}\"\nidentity_file = \"key.txt\""), &[]);
        assert_values(&r);
        r.assert_no_canary(&k.secret);
    }
    // The whole plaintext with an empty locator, and every key with `*`.
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .args(["render", "--format", "json", "-e"])
        .arg(format!("W=age:{}#", t.join("s.env.age").display()))
        .run();
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["W"], plaintext());
    t.file(
        "all.toml",
        format!("[[import]]\nref = \"age:{}#*\"\nprefix = \"X_\"\n", t.join("s.env.age").display()),
    );
    let r = secretexec()
        .env("SOPS_AGE_KEY", &k.secret)
        .args(["render", "--format", "json", "-c"])
        .arg(t.join("all.toml"))
        .run();
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(names, ["X_API_KEY", "X_USER", "X_QUOTED"]);
}

#[test]
fn go_age_ssh_ed25519_and_rsa() {
    let t = TestDir::new();
    let plain = t.secret_file("plain.env", plaintext());
    for (kind, extra) in [("ed25519", &[][..]), ("rsa", &["-b", "2048"][..])] {
        let id = t.join(&format!("id_{kind}"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
            .arg(&id)
            .args(extra)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let out = t.join(&format!("{kind}.age"));
        go_age(&[
            "-R",
            &format!("{}.pub", id.display()),
            "-o",
            &out.display().to_string(),
            &plain.display().to_string(),
        ]);
        let r = render(&t, &format!("path = \"{kind}.age\"\nidentity_file = \"id_{kind}\""), &[]);
        assert_values(&r);
    }
}

#[test]
fn go_age_passphrase_via_file_and_env() {
    let t = TestDir::new();
    let plain = t.secret_file("plain.env", plaintext());
    let out = t.join("p.env.age");
    go_age_with_passphrase(
        "correct horse",
        &["-p", "-o", &out.display().to_string(), &plain.display().to_string()],
    );
    t.secret_file("pass.txt", "correct horse\n");
    assert_values(&render(&t, "path = \"p.env.age\"\npassphrase_file = \"pass.txt\"", &[]));
    let r =
        render(&t, "path = \"p.env.age\"\npassphrase_env = \"AGE_PASS\"", &[("AGE_PASS", "correct horse")]);
    assert_values(&r);
    r.assert_no_canary("correct horse");
    let r = render(
        &t,
        "path = \"p.env.age\"\npassphrase_env = \"AGE_PASS\"",
        &[("AGE_PASS", "not-the-passphrase-42")],
    );
    r.assert_code(125).assert_no_canary(CANARY).assert_stderr_contains("wrong passphrase");
    // The passphrase variable is a bootstrap credential: the child does not get it.
    let r = secretexec()
        .current_dir(t.path())
        .env("AGE_PASS", "correct horse")
        .args(["--", "sh", "-c", "printf '%s|%s' \"$USER\" \"${AGE_PASS:-unset}\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "app|unset");
}

/// Encrypts with the age crate, as secretexec's own fixtures are written.
fn crate_encrypt(recipient: &dyn age::Recipient, plain: &[u8], armor: bool) -> Vec<u8> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient)).expect("one recipient");
    let format = if armor { age::armor::Format::AsciiArmor } else { age::armor::Format::Binary };
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format).unwrap();
    let mut w = enc.wrap_output(armored).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap().finish().unwrap();
    out
}

#[test]
fn crate_written_files_decrypt_with_go_age() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    let recipient: age::x25519::Recipient = k.recipient.parse().unwrap();
    for armor in [false, true] {
        let f =
            t.file(&format!("crate-{armor}.age"), crate_encrypt(&recipient, plaintext().as_bytes(), armor));
        let out = go_age(&["-d", "-i", &k.identity.display().to_string(), &f.display().to_string()]);
        assert_eq!(String::from_utf8(out).unwrap(), plaintext());
        // And secretexec reads the same file.
        assert_values(&render(
            &t,
            &format!("path = \"crate-{armor}.age\"\nidentity_file = \"key.txt\""),
            &[],
        ));
    }
    // Passphrase files written by the crate open with Go age's passphrase prompt.
    let mut scrypt = age::scrypt::Recipient::new(age::secrecy::SecretString::from("pw for go".to_owned()));
    scrypt.set_work_factor(12);
    let f = t.file("crate-scrypt.age", crate_encrypt(&scrypt, plaintext().as_bytes(), false));
    let out = t.join("go-decrypted.env");
    go_age_with_passphrase("pw for go", &["-d", "-o", &out.display().to_string(), &f.display().to_string()]);
    assert_eq!(std::fs::read_to_string(out).unwrap(), plaintext());
}

fn encrypt_to(t: &TestDir, k: &AgeKey, name: &str) -> PathBuf {
    let recipient: age::x25519::Recipient = k.recipient.parse().unwrap();
    t.file(name, crate_encrypt(&recipient, plaintext().as_bytes(), true))
}

#[test]
fn unsupported_key_lines_are_skipped_with_a_warning() {
    let t = TestDir::new();
    let k = age_keygen(&t, "real.txt");
    encrypt_to(&t, &k, "s.env.age");
    t.secret_file(
        "keys.txt",
        format!(
            "# several keys\nAGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\nAGE-SECRET-KEY-PQ-1ZZZZ{CANARY}\n{}\n",
            k.secret
        ),
    );
    let r = render(&t, "path = \"s.env.age\"\nidentity_file = \"keys.txt\"", &[]);
    assert_values(&r);
    r.assert_stderr_contains("keys.txt line 2: a plugin identity").assert_stderr_contains("line 3");
    assert!(!r.stderr.contains(CANARY) && !r.stderr.contains("QQQQ"), "{}", r.stderr);
}

#[test]
fn identity_file_permissions_are_checked() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    encrypt_to(&t, &k, "s.env.age");
    std::fs::set_permissions(
        &k.identity,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )
    .unwrap();
    let r = render(&t, "path = \"s.env.age\"\nidentity_file = \"key.txt\"", &[]);
    r.assert_code(125).assert_stderr_contains("chmod 600").assert_no_canary(CANARY);
}

#[test]
fn wrong_identity_and_tampering_fail_closed() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    let other = age_keygen(&t, "other.txt");
    let f = encrypt_to(&t, &k, "s.env.age");
    let r = render(&t, "path = \"s.env.age\"\nidentity_file = \"other.txt\"", &[]);
    r.assert_code(125).assert_stderr_contains("none of the age identities").assert_no_canary(&other.secret);
    // One changed byte in the armored payload.
    let mut bytes = std::fs::read(&f).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let last_line_start = text.trim_end().rfind('\n').unwrap();
    let at = text[..last_line_start].rfind('\n').unwrap() + 3;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&f, bytes).unwrap();
    let r = render(&t, "path = \"s.env.age\"\nidentity_file = \"key.txt\"", &[]);
    r.assert_code(125).assert_no_canary(CANARY);
}

#[test]
fn sops_age_key_is_a_scrubbed_credential_and_values_never_leak() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    let f = encrypt_to(&t, &k, "s.env.age");
    let r = secretexec()
        .env("SOPS_AGE_KEY", format!("  {}  ", k.secret))
        .args(["-vvv", "-e"])
        .arg(format!("A=age:{}#API_KEY", f.display()))
        .args([
            "--",
            "sh",
            "-c",
            "test \"$A\" = \"$0\" && echo same; echo \"key:${SOPS_AGE_KEY:-unset}\"",
            CANARY,
        ])
        .run();
    r.assert_code(0);
    assert!(r.stdout.contains("same") && r.stdout.contains("key:unset"), "{}", r.stdout);
    assert!(!r.stderr.contains(CANARY) && !r.stderr.contains(&k.secret), "{}", r.stderr);
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .args(["check", "-vvv", "-e"])
        .arg(format!("A=age:{}#MISSING", f.display()))
        .run();
    r.assert_code(1).assert_no_canary(CANARY);
    assert!(r.all().contains("key MISSING not found"), "{}", r.all());
}

#[test]
fn no_identity_anywhere_says_where_it_looked() {
    let t = TestDir::new();
    let k = age_keygen(&t, "key.txt");
    let f = encrypt_to(&t, &k, "s.env.age");
    let r = secretexec()
        .env("HOME", t.path())
        .env("XDG_CONFIG_HOME", t.join("xdg"))
        .arg("-e")
        .arg(format!("A=age:{}#API_KEY", f.display()))
        .args(["--", "true"])
        .run();
    r.assert_code(125)
        .assert_stderr_contains("$SOPS_AGE_KEY_FILE")
        .assert_stderr_contains("xdg/sops/age/keys.txt");
    // The default key file is found under $XDG_CONFIG_HOME.
    let dir = t.join("xdg/sops/age");
    std::fs::create_dir_all(&dir).unwrap();
    t.secret_file("xdg/sops/age/keys.txt", std::fs::read(&k.identity).unwrap());
    let r = secretexec()
        .env("XDG_CONFIG_HOME", t.join("xdg"))
        .arg("-e")
        .arg(format!("A=age:{}#USER", f.display()))
        .args(["--", "sh", "-c", "printf %s \"$A\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "app");
}
