//! The core launcher: exit codes, permissions, config errors, precedence,
//! the environment, check and render — against the built binary.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;

const LOCAL: &str = "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n";

/// A dir with `app.env` (0600) holding `env` and a mapping `LOCAL + extra`.
fn setup(env: &str, extra: &str) -> TestDir {
    let t = TestDir::new();
    t.secret_file("app.env", env);
    // Top-level keys in `extra` must precede every table header.
    t.file("secretexec.toml", format!("{extra}\n{LOCAL}"));
    t
}

fn in_dir(t: &TestDir) -> Secretexec {
    secretexec().current_dir(t.path())
}

#[test]
fn runs_command_with_env_file_secret() {
    let t = setup(&format!("DB_PASSWORD={CANARY}\n"), "[env]\nDB_PASSWORD = \"local:DB_PASSWORD\"\n");
    let r = in_dir(&t).args(["--", "sh", "-c", "printf %s \"$DB_PASSWORD\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
}

#[test]
fn exit_codes() {
    let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
    in_dir(&t).args(["--", "sh", "-c", "exit 7"]).run().assert_code(7);
    in_dir(&t).args(["--", "sh", "-c", "exit 0"]).run().assert_code(0);
    let r = in_dir(&t).args(["--", "no-such-command-xyz"]).run();
    r.assert_code(127).assert_stderr_contains("no-such-command-xyz: command not found");
    let noexec = t.file("noexec.sh", "#!/bin/sh\necho hi\n");
    in_dir(&t).arg("--").arg(&noexec).run().assert_code(126);
    in_dir(&t).args(["--", "/"]).run().assert_code(126);
    // A required secret that is missing: 125, and the command never runs.
    let marker = t.join("ran");
    let t2 = setup("A=1\n", "[env]\nB = \"local:B\"\n");
    let r = in_dir(&t2).args(["--", "touch"]).arg(&marker).run();
    r.assert_code(125).assert_stderr_contains("B (local:B) from source local: key B not found");
    assert!(!marker.exists(), "the command must not start when a required secret is missing");
    // No mapping at all.
    let empty = TestDir::new();
    in_dir(&empty).args(["--", "true"]).run().assert_code(125).assert_stderr_contains("no mapping");
    // Usage error.
    in_dir(&t).args(["--no-such-flag"]).run().assert_code(125);
    secretexec().arg("--version").run().assert_code(0);
    let help = secretexec().arg("--help").run();
    help.assert_code(0);
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("Exit codes"), "{}", help.stdout);
}

#[test]
fn script_without_shebang_runs_through_sh_like_execvp() {
    let t = setup("A=from-env-file\n", "[env]\nA = \"local:A\"\n");
    let script = t.file_with_mode("plain-script", "printf %s \"$A\"\n", 0o755);
    let r = in_dir(&t).arg("--").arg(&script).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "from-env-file");
}

#[test]
fn permission_failures_name_the_file_and_the_fix() {
    for (mode, word) in
        [(0o644, "mode 0644"), (0o640, "mode 0640"), (0o604, "mode 0604"), (0o620, "mode 0620")]
    {
        let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
        std::fs::set_permissions(t.join("app.env"), std::fs::Permissions::from_mode(mode)).unwrap();
        let r = in_dir(&t).args(["--", "true"]).run();
        r.assert_code(125).assert_stderr_contains(word).assert_stderr_contains("Fix: chmod 600");
        assert!(r.stderr.contains(&t.join("app.env").display().to_string()) || r.stderr.contains("app.env"));
    }
    // Symlink refused unless follow_symlinks = true.
    let t = TestDir::new();
    t.secret_file("real.env", "A=1\n");
    std::os::unix::fs::symlink(t.join("real.env"), t.join("app.env")).unwrap();
    t.file("secretexec.toml", format!("{LOCAL}[env]\nA = \"local:A\"\n"));
    in_dir(&t).args(["--", "true"]).run().assert_code(125).assert_stderr_contains("is a symlink");
    t.file(
        "secretexec.toml",
        "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\nfollow_symlinks = true\n[env]\nA = \"local:A\"\n",
    );
    in_dir(&t).args(["--", "true"]).run().assert_code(0);
}

#[test]
fn file_owned_by_another_user_is_refused_with_chown_fix() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root to chown a file to nobody (CI runs as root)");
    }
    let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
    let st = std::process::Command::new("chown").arg("nobody").arg(t.join("app.env")).status().unwrap();
    assert!(st.success());
    let r = in_dir(&t).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("is owned by nobody").assert_stderr_contains("Fix: chown root");
}

#[test]
fn every_config_problem_is_reported_at_once_with_lines() {
    let t = TestDir::new();
    t.secret_file("app.env", "A=1\n");
    t.file(
        "secretexec.toml",
        "clear_envv = true\n[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\npaht = \"x\"\n\
         [sources.other]\ntype = \"consul\"\n[env]\nA = \"locl:A\"\nB = { ref = \"local:B\", optinal = true }\n\
         C = \"no-colon\"\n",
    );
    let r = in_dir(&t).args(["--", "true"]).run();
    r.assert_code(125);
    let e = &r.stderr;
    assert!(e.contains("has 6 problems"), "{e}");
    assert!(e.contains("line 1, column 1: unknown key \"clear_envv\""), "{e}");
    assert!(e.contains("line 5, column 1: unknown key \"sources.local.paht\""), "{e}");
    assert!(e.contains("line 7") && e.contains("unknown source type \"consul\""), "{e}");
    assert!(e.contains("line 10") && e.contains("env.B.optinal"), "{e}");
    assert!(e.contains("^^^^ unknown source \"locl\"; did you mean \"local\"?"), "{e}");
    assert!(e.contains("expected SOURCE:LOCATOR"), "{e}");
    // check: 125 on a config error too.
    in_dir(&t).arg("check").run().assert_code(125);
}

#[test]
fn bad_references_point_at_the_bad_part() {
    let t = setup("A=1\n", "");
    let r =
        in_dir(&t).args(["-e", "X=local:", "-e", "Y=envfile:#K", "-e", "Z=local:a b", "--", "true"]).run();
    r.assert_code(125);
    assert!(r.stderr.contains("local:\n          ^ envfile locator: expected a key name"), "{}", r.stderr);
    assert!(r.stderr.contains("expected a file path"), "{}", r.stderr);
    assert!(r.stderr.contains("' ' cannot appear in a dotenv key"), "{}", r.stderr);
}

#[test]
fn precedence_inherited_import_env_profile_flag() {
    let t = setup(
        "V_IMPORT=import\nV_ENV=env\nV_PROFILE=profile\nV_FLAG=flag\n",
        "[[import]]\nref = \"local:*\"\nprefix = \"P_\"\n\
         [env]\nP_V_ENV = \"local:V_ENV\"\nP_V_PROFILE = \"local:V_ENV\"\nP_V_FLAG = \"local:V_ENV\"\n\
         [profiles.one]\nenv.P_V_PROFILE = \"local:V_IMPORT\"\n\
         [profiles.two]\nenv.P_V_PROFILE = \"local:V_PROFILE\"\nenv.P_V_FLAG = \"local:V_PROFILE\"\n",
    );
    let r = in_dir(&t)
        .env("P_V_IMPORT", "inherited")
        .env("P_INHERITED", "inherited")
        .args(["-p", "one", "-p", "two", "-e", "P_V_FLAG=local:V_FLAG", "--", "env"])
        .run();
    r.assert_code(0);
    for want in
        ["P_INHERITED=inherited", "P_V_IMPORT=import", "P_V_ENV=env", "P_V_PROFILE=profile", "P_V_FLAG=flag"]
    {
        assert!(r.stdout.lines().any(|l| l == want), "missing {want} in:\n{}", r.stdout);
    }
    // check shows what was overridden and by what.
    let c = in_dir(&t).args(["-p", "one", "-p", "two", "check", "--json"]).run();
    c.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&c.stdout).unwrap();
    let overridden: Vec<&serde_json::Value> =
        doc["variables"].as_array().unwrap().iter().filter(|v| v["status"] == "overridden").collect();
    assert!(
        overridden.iter().any(|v| v["name"] == "P_V_PROFILE" && v["overridden_by"] == "profiles.two.env"),
        "{}",
        c.stdout
    );
    // An unknown profile is a config error.
    in_dir(&t)
        .args(["-p", "nope", "--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("profile \"nope\"");
}

#[test]
fn protected_names_are_refused_unless_allowed() {
    let t = setup("PRELOAD=/tmp/evil.so\nPATH=/evil\n", "[env]\nLD_PRELOAD = \"local:PRELOAD\"\n");
    in_dir(&t)
        .args(["--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("LD_PRELOAD is a protected name");
    // Through a bulk import, too.
    let t = setup("PATH=/evil\nOK=1\n", "[[import]]\nref = \"local:*\"\n");
    in_dir(&t).args(["--", "true"]).run().assert_code(125).assert_stderr_contains("PATH is a protected name");
    // A custom protected name, and allow_protected.
    let t = setup("X=1\n", "protected = [\"X\"]\n[env]\nX = \"local:X\"\n");
    in_dir(&t).args(["--", "true"]).run().assert_code(125);
    let t = TestDir::new();
    t.secret_file("app.env", "P=/opt/bin:/usr/bin:/bin\n");
    t.file("secretexec.toml", format!("allow_protected = [\"PATH\"]\n{LOCAL}[env]\nPATH = \"local:P\"\n"));
    let r = in_dir(&t).args(["--", "/bin/sh", "-c", "printf %s \"$PATH\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "/opt/bin:/usr/bin:/bin");
    // A plain value may set a protected name: it is not a secret source.
    let t = setup("A=1\n", "[env]\nENV = { value = \"/etc/shrc\" }\n");
    in_dir(&t).args(["--", "true"]).run().assert_code(0);
}

#[test]
fn invalid_import_names_need_sanitize_and_collisions_fail() {
    let t = setup("db-password=1\n9lives=2\n", "[[import]]\nref = \"local:*\"\n");
    in_dir(&t)
        .args(["--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("\"db-password\" is not a valid environment variable name");
    let t = setup("db-password=1\n9lives=2\n", "[[import]]\nref = \"local:*\"\nsanitize = true\n");
    let r = in_dir(&t).args(["--", "env"]).run();
    r.assert_code(0);
    assert!(r.stdout.contains("db_password=1\n") && r.stdout.contains("_9lives=2\n"), "{}", r.stdout);
    let t = setup("a-b=1\na.b=2\n", "[[import]]\nref = \"local:*\"\nsanitize = true\n");
    in_dir(&t).args(["--", "true"]).run().assert_code(125).assert_stderr_contains("both map to a_b");
    // only / exclude filters.
    let t = setup("A=1\nB=2\nC=3\n", "[[import]]\nref = \"local:*\"\nexclude = [\"B\"]\n");
    let r = in_dir(&t).args(["--clear-env", "--", "/usr/bin/env"]).run();
    assert!(
        r.stdout.contains("A=1") && !r.stdout.contains("B=2") && r.stdout.contains("C=3"),
        "{}",
        r.stdout
    );
}

#[test]
fn optional_missing_is_left_unset_but_other_failures_are_fatal() {
    let t = setup("A=1\n", "[env]\nB = { ref = \"local:B\", optional = true }\n");
    let r = in_dir(&t).env("B", "inherited").args(["--", "sh", "-c", "printf %s \"$B\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "inherited", "an optional missing secret leaves the inherited value alone");
    let c = in_dir(&t).arg("check").run();
    c.assert_code(0);
    assert!(c.stdout.contains("missing-optional"), "{}", c.stdout);
    // Optional does not cover a permission failure.
    std::fs::set_permissions(t.join("app.env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    in_dir(&t).args(["--", "true"]).run().assert_code(125);
}

#[test]
fn clear_env_keeps_only_the_keep_list() {
    let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
    let r =
        in_dir(&t).env("LANG", "C.UTF-8").env("JUNK", "x").args(["--clear-env", "--", "/usr/bin/env"]).run();
    r.assert_code(0);
    let mut names: Vec<&str> = r.stdout.lines().map(|l| l.split('=').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["A", "HOME", "LANG", "PATH"], "{}", r.stdout);
    let r = in_dir(&t).env("JUNK", "x").args(["--clear-env", "--keep", "JUNK", "--", "/usr/bin/env"]).run();
    let mut names: Vec<&str> = r.stdout.lines().map(|l| l.split('=').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["A", "JUNK"], "--keep replaces the default list: {}", r.stdout);
    // From the mapping.
    let t = setup("A=1\n", "clear_env = true\nkeep = [\"KEEPME\"]\n[env]\nA = \"local:A\"\n");
    let r = in_dir(&t).env("KEEPME", "y").env("JUNK", "x").args(["--", "/usr/bin/env"]).run();
    assert_eq!(r.stdout, "KEEPME=y\nA=1\n");
}

#[test]
fn arguments_pass_through_byte_for_byte() {
    use std::ffi::OsStr;
    let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
    let weird = OsStr::from_bytes(b"\xff\xfe-not-utf8 $HOME 'q' \"d\" \\");
    let out = in_dir(&t)
        .args(["--", "printf", "%s|%s|%s"])
        .arg(weird)
        .arg("--")
        .arg("-e")
        .command()
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut want = weird.as_bytes().to_vec();
    want.extend_from_slice(b"|--|-e");
    assert_eq!(out.stdout, want);
}

#[test]
fn file_delivery_gives_a_read_only_in_memory_file() {
    let t = setup(&format!("KEY={CANARY}\n"), "[env]\nTLS_KEY = { ref = \"local:KEY\", as = \"file\" }\n");
    let r = in_dir(&t)
        .args([
            "--",
            "sh",
            "-c",
            "printf '%s\\n' \"$TLS_KEY\"; cat \"$TLS_KEY\"; echo; stat -L -c %a \"$TLS_KEY\"",
        ])
        .run();
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("/proc/self/fd/"), "{}", r.stdout);
    assert_eq!(lines[1], CANARY);
    assert_eq!(lines[2], "400");
    assert!(!r.stderr.contains(CANARY));
}

/// The canary suite: a known secret never reaches argv, logs at -vvv, check
/// output, error messages; render writes it only where asked, 0600.
#[test]
fn canary_never_leaks() {
    let t = setup(
        &format!("SECRET={CANARY}\nOTHER=x\n"),
        "[env]\nSECRET = \"local:SECRET\"\nMISSING = \"local:NOPE\"\n",
    );
    // Failing run at -vvv (text and JSON logs): the error lists MISSING, never the value.
    for fmt in ["text", "json"] {
        let r = in_dir(&t).args(["-vvv", "--log-format", fmt, "--", "true"]).run();
        r.assert_code(125).assert_no_canary(CANARY);
    }
    for args in [&["check"][..], &["check", "--json"], &["-vvv", "check"]] {
        in_dir(&t).args(args).run().assert_code(1).assert_no_canary(CANARY);
    }
    // Successful run: the child sees the value in its environment only.
    let t = setup(&format!("SECRET={CANARY}\n"), "[env]\nSECRET = \"local:SECRET\"\n");
    let r = in_dir(&t).args(["-vvv", "--", "sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline; echo"]).run();
    r.assert_code(0);
    assert!(r.stdout.contains("sh -c"), "{}", r.stdout);
    assert!(!r.stdout.lines().next().unwrap().contains(CANARY), "argv of the child holds the secret");
    assert!(!r.stderr.contains(CANARY), "{}", r.stderr);
    in_dir(&t).args(["-vvv", "check", "--json"]).run().assert_code(0).assert_no_canary(CANARY);
    // A syntax error in the env file on the line holding the secret.
    let t = setup(&format!("SECRET=\"{CANARY}\n"), "[env]\nSECRET = \"local:SECRET\"\n");
    in_dir(&t)
        .args(["-vvv", "--", "true"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("unterminated double quote in SECRET")
        .assert_no_canary(CANARY);
    // A secret pasted into the wrong place in the mapping is not echoed back.
    let t = setup("A=1\n", &format!("[env]\nA = {{ ref = \"local:A\", optional = \"{CANARY}\" }}\n"));
    in_dir(&t).args(["-vvv", "--", "true"]).run().assert_code(125).assert_no_canary(CANARY);
    // render: only into the requested file, mode 0600.
    let t = setup(&format!("SECRET={CANARY}\n"), "[env]\nSECRET = \"local:SECRET\"\n");
    let out = t.join("out/rendered.env");
    std::fs::create_dir(t.join("out")).unwrap();
    let r = in_dir(&t).args(["-vvv", "render", "--format", "dotenv", "--output"]).arg(&out).run();
    r.assert_code(0).assert_no_canary(CANARY);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("SECRET={CANARY}\n"));
    let names: Vec<_> = std::fs::read_dir(t.join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
}

/// Values that exercise every quoting rule.
const HARD_VALUES: &[&str] = &[
    "plain",
    "",
    "with space",
    " lead and trail ",
    "p@$$w0rd$HOME${X}",
    "it's \"quoted\"",
    "back\\slash \\n literal",
    "multi\nline\nvalue",
    "tab\there",
    "#hash # inside",
    "`backtick` $(cmd)",
    "ünïcødé ✓",
    "=starts=with=equals",
];

fn hard_env_file() -> String {
    let mut s = String::new();
    for (i, v) in HARD_VALUES.iter().enumerate() {
        // Double-quoted with escapes: the parser's own format.
        let esc = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('$', "\\$");
        s.push_str(&format!("V{i}=\"{esc}\"\n"));
    }
    s
}

fn expected_json() -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (i, v) in HARD_VALUES.iter().enumerate() {
        m.insert(format!("V{i}"), serde_json::Value::String((*v).to_owned()));
    }
    serde_json::Value::Object(m)
}

#[test]
fn render_round_trips() {
    let t = setup(&hard_env_file(), "[[import]]\nref = \"local:*\"\n");
    // json is the reference.
    let r = in_dir(&t).args(["render", "--format", "json"]).run();
    r.assert_code(0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap(), expected_json());
    // dotenv: parses back identically through our own parser.
    let r = in_dir(&t).args(["render", "--format", "dotenv"]).run();
    r.assert_code(0);
    let t2 = TestDir::new();
    let again = t2.secret_file("again.env", &r.stdout);
    let r2 = secretexec().arg("--env-file").arg(&again).args(["render", "--format", "json"]).run();
    r2.assert_code(0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r2.stdout).unwrap(), expected_json());
    // shell: evaluated by sh, every variable holds the same bytes.
    let r = in_dir(&t).args(["render", "--format", "shell"]).run();
    r.assert_code(0);
    for (i, v) in HARD_VALUES.iter().enumerate() {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("{}\nprintf %s \"$V{i}\"", r.stdout)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), *v, "V{i}");
    }
    // systemd: valid EnvironmentFile= syntax, read back by a parser that
    // follows systemd's rules (env-file.c: double quotes, backslash escapes
    // of \" \\ ` $, literal newlines).
    let r = in_dir(&t).args(["render", "--format", "systemd"]).run();
    r.assert_code(0);
    let parsed = parse_systemd_env(&r.stdout);
    for (i, v) in HARD_VALUES.iter().enumerate() {
        assert_eq!(parsed[i], (format!("V{i}"), (*v).to_owned()));
    }
}

/// The subset of systemd's EnvironmentFile= grammar that our renderer emits:
/// `KEY="value"` with `\"`, `\\`, `` \` ``, `\$` escapes and literal newlines.
fn parse_systemd_env(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "systemd values are double-quoted");
        let mut v = String::new();
        loop {
            match chars.next().expect("unterminated") {
                '"' => break,
                '\\' => {
                    let c = chars.next().unwrap();
                    assert!("\"\\`$".contains(c), "unexpected escape \\{c}");
                    v.push(c);
                }
                c => v.push(c),
            }
        }
        assert_eq!(chars.next(), Some('\n'));
        out.push((key, v));
    }
    out
}

#[test]
fn render_refuses_what_a_format_cannot_hold_naming_the_variable() {
    let t = setup("BIN=\"\\r\"\n", "[env]\nBIN = \"local:BIN\"\n");
    in_dir(&t)
        .args(["render", "--format", "systemd"])
        .run()
        .assert_code(125)
        .assert_stderr_contains("BIN: the value holds a control character");
}

#[test]
fn config_discovery_order() {
    let t = setup("A=from-cwd\n", "[env]\nA = \"local:A\"\n");
    let other = TestDir::new();
    other.secret_file("app.env", "A=from-env-var\n");
    let mapping = other.file("m.toml", format!("{LOCAL}[env]\nA = \"local:A\"\n"));
    let r = in_dir(&t).env("SECRETEXEC_CONFIG", &mapping).args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    assert_eq!(r.stdout, "from-env-var");
    let r = in_dir(&t).args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    assert_eq!(r.stdout, "from-cwd");
    let r = in_dir(&t)
        .env("SECRETEXEC_CONFIG", "/nonexistent.toml")
        .arg("-c")
        .arg(&mapping)
        .args(["--", "sh", "-c", "printf %s \"$A\""])
        .run();
    assert_eq!(r.stdout, "from-env-var", "--config wins over $SECRETEXEC_CONFIG");
}

#[test]
fn ad_hoc_flags_without_a_mapping() {
    let t = TestDir::new();
    let f = t.secret_file("x.env", "A=1\nB=2\n");
    let r = secretexec()
        .current_dir(t.path())
        .arg("--env-file")
        .arg(&f)
        .arg("-e")
        .arg(format!("C=envfile:{}#A", f.display()))
        .args(["--", "sh", "-c", "printf %s-%s-%s \"$A\" \"$B\" \"$C\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "1-2-1");
}

#[test]
fn check_table_and_json_schema() {
    let t = setup(
        "A=1\n",
        "[env]\nA = \"local:A\"\nB = \"local:B\"\nC = { ref = \"local:C\", optional = true }\nD = { value = \"x\" }\n",
    );
    let r = in_dir(&t).arg("check").run();
    r.assert_code(1);
    let header = r.stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["VARIABLE", "SOURCE", "REFERENCE", "STATUS", "OPTIONAL"]
    );
    assert!(r.stdout.contains("-> key B not found"), "{}", r.stdout);
    let r = in_dir(&t).args(["check", "--json"]).run();
    r.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["ok"], false);
    let by_name =
        |n: &str| doc["variables"].as_array().unwrap().iter().find(|v| v["name"] == n).unwrap().clone();
    assert_eq!(by_name("A")["status"], "ok");
    assert_eq!(by_name("B")["status"], "error");
    assert_eq!(by_name("B")["source"], "local");
    assert_eq!(by_name("B")["reference"], "local:B");
    assert_eq!(by_name("C")["status"], "missing-optional");
    assert_eq!(by_name("C")["optional"], true);
    assert_eq!(by_name("D")["source"], serde_json::Value::Null);
    assert_eq!(doc["sources"][0]["type"], "envfile");
}

#[test]
fn child_gets_the_original_core_limit_back() {
    let t = setup("A=1\n", "[env]\nA = \"local:A\"\n");
    // secretexec lowers its own soft core limit to 0 while it holds secrets;
    // the child must see the limit its parent set.
    let out = std::process::Command::new("sh")
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["-c", &format!("ulimit -S -c 4096 && exec {} -- sh -c 'ulimit -S -c'", bin())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4096");
}

#[test]
fn bare_references_in_the_mapping_are_relative_to_it() {
    let t = TestDir::new();
    t.secret_file("conf/app.env", "A=next-to-the-mapping\n");
    t.secret_file("app.env", "A=in-the-current-directory\n");
    let mapping = t.file("conf/secretexec.toml", "[env]\nA = \"envfile:app.env#A\"\n");
    let r = in_dir(&t).arg("-c").arg(&mapping).args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "next-to-the-mapping");
    // On the command line, relative to the current directory.
    let r = in_dir(&t).args(["-e", "B=envfile:app.env#A", "--", "sh", "-c", "printf %s \"$B\""]).run();
    assert_eq!(r.stdout, "in-the-current-directory");
}
