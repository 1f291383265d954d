//! The promises of docs/security.md, one test each, against the built
//! binary: no secret in argv, logs, errors or `check` output; strict
//! permissions on secret files; `render --output` 0600; `as = "file"` kept
//! out of the environment. (The core limit handed back to the child is
//! `cli::child_gets_the_original_core_limit_back`.)

use std::os::unix::fs::PermissionsExt;

use crate::support::*;

/// A directory with a 0600 env file holding the canary and a mapping for it.
fn fixture() -> TestDir {
    let t = TestDir::new();
    t.secret_file("app.env", format!("TOKEN={CANARY}\n"));
    t.file(
        "secretexec.toml",
        "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n\n[env]\nTOKEN = \"local:TOKEN\"\nMISSING = \"local:MISSING\"\n",
    );
    t
}

#[test]
fn no_secret_in_the_childs_argv() {
    let t = fixture();
    let r = secretexec()
        .current_dir(t.path())
        .args(["-e", "MISSING=local:TOKEN", "--", "sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"])
        .run();
    r.assert_code(0).assert_no_canary(CANARY);
    assert!(r.stdout.contains("sh -c"), "{}", r.stdout);
}

#[test]
fn no_secret_in_logs_at_any_verbosity_or_format() {
    let t = fixture();
    for format in ["text", "json"] {
        // Success: everything resolves, the child runs.
        let ok = secretexec()
            .current_dir(t.path())
            .args(["-vvv", "--log-format", format, "-e", "MISSING=local:TOKEN", "--", "true"])
            .run();
        ok.assert_code(0).assert_no_canary(CANARY);
        assert!(!ok.stderr.is_empty(), "-vvv logs something");
        // Failure: one required secret is missing.
        let failed =
            secretexec().current_dir(t.path()).args(["-vvv", "--log-format", format, "--", "true"]).run();
        failed.assert_code(125).assert_no_canary(CANARY).assert_stderr_contains("MISSING");
    }
}

#[test]
fn no_secret_in_check_output() {
    let t = fixture();
    for json in [false, true] {
        let r =
            secretexec().current_dir(t.path()).args(["-vvv", "check"]).args(json.then_some("--json")).run();
        r.assert_code(1).assert_no_canary(CANARY);
        assert!(r.stdout.contains("TOKEN"), "{}", r.stdout);
    }
}

#[test]
fn a_secret_pasted_into_the_mapping_is_not_echoed_in_errors() {
    let t = TestDir::new();
    // A token where a duration belongs, and one where a table belongs.
    t.file(
        "secretexec.toml",
        format!("timeout = \"{CANARY}\"\n[env]\nA = {{ ref = 1, value = \"{CANARY}\" }}\n"),
    );
    let r = secretexec().current_dir(t.path()).args(["check"]).run();
    r.assert_code(125).assert_no_canary(CANARY).assert_stderr_contains("invalid duration");
}

#[test]
fn a_secret_value_that_ends_up_in_a_message_is_redacted() {
    // The canary is TOKEN's value and, here, also the name of a key that
    // does not exist: the "not found" error would name it. Every value a
    // source returned is scrubbed from what secretexec prints.
    let t = fixture();
    let missing_key = format!("X=local:{CANARY}");
    for format in ["text", "json"] {
        let r = secretexec()
            .current_dir(t.path())
            .args(["--log-format", format, "-e", "MISSING=local:TOKEN", "-e", &missing_key, "--", "true"])
            .run();
        r.assert_code(125).assert_no_canary(CANARY).assert_stderr_contains("[REDACTED]");
    }
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_fix() {
    let t = fixture();
    for mode in [0o640, 0o604, 0o620] {
        std::fs::set_permissions(t.join("app.env"), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = secretexec().current_dir(t.path()).args(["-e", "MISSING=local:TOKEN", "--", "true"]).run();
        r.assert_code(125).assert_no_canary(CANARY).assert_stderr_contains("chmod 600");
    }
}

#[test]
fn a_symlinked_secret_file_is_refused_unless_allowed() {
    let t = TestDir::new();
    t.secret_file("real.env", format!("TOKEN={CANARY}\n"));
    std::os::unix::fs::symlink(t.join("real.env"), t.join("app.env")).unwrap();
    let mapping = |follow: bool| {
        format!(
            "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\nfollow_symlinks = {follow}\n[env]\nTOKEN = \"local:TOKEN\"\n"
        )
    };
    t.file("secretexec.toml", mapping(false));
    secretexec()
        .current_dir(t.path())
        .args(["--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("symlink");
    t.file("secretexec.toml", mapping(true));
    secretexec().current_dir(t.path()).args(["--", "true"]).run().assert_code(0);
}

#[test]
fn render_output_is_0600_even_over_a_world_readable_file() {
    let t = fixture();
    let out = t.file("out.env", "old, world-readable\n");
    let r = secretexec()
        .current_dir(t.path())
        .args(["-e", "MISSING=local:TOKEN", "render", "--format", "dotenv", "--output"])
        .arg(&out)
        .run();
    r.assert_code(0).assert_no_canary(CANARY);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&out).unwrap().contains(CANARY));
}

#[test]
fn as_file_keeps_the_value_out_of_the_environment() {
    let t = fixture();
    t.file(
        "secretexec.toml",
        "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n[env]\nTOKEN_FILE = { ref = \"local:TOKEN\", as = \"file\" }\n",
    );
    // The child shows its own environ, the file's mode, its content, and
    // whether it can write to it (sealed: it cannot).
    let script = r#"tr '\0' '\n' < /proc/$$/environ | grep '^TOKEN_FILE='
stat -L -c 'mode=%a' "$TOKEN_FILE"
printf 'content=%s\n' "$(cat "$TOKEN_FILE")"
if (printf x >> "$TOKEN_FILE") 2>/dev/null; then echo writable; else echo sealed; fi"#;
    let r = secretexec().current_dir(t.path()).args(["--", "sh", "-c", script]).run();
    r.assert_code(0);
    let environ_line = r.stdout.lines().next().unwrap_or_default();
    assert!(environ_line.starts_with("TOKEN_FILE=/proc/self/fd/"), "{}", r.stdout);
    assert!(!environ_line.contains(CANARY));
    assert!(r.stdout.contains("mode=400"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("content={CANARY}")), "{}", r.stdout);
    assert!(r.stdout.contains("sealed"), "{}", r.stdout);
}
