//! The `azure-keyvault` source against the Key Vault / Entra ID / managed
//! identity test server (support/azure_kv.rs): every credential, versions,
//! bulk import, errors, throttling, token expiry, the private CA, canaries.

use crate::support::azure_kv::{CLIENT_ID, Endpoint, KeyVaultServer, TENANT, Version, fake_az, pki};
use crate::support::*;

/// A client secret that must never be printed or reach the child.
const CLIENT_SECRET: &str = "cl1ent-S3cret~canary.Qx7";

/// A test server, a directory and a mapping for one scenario.
struct Kv {
    server: KeyVaultServer,
    dir: TestDir,
}

impl Kv {
    fn new() -> Self {
        let server = KeyVaultServer::start();
        server.add_client(CLIENT_ID, CLIENT_SECRET);
        Kv { server, dir: TestDir::new() }
    }

    /// Writes `secretexec.toml` with source `kv` (plus `source_extra` lines) and `[env]` lines.
    fn mapping(&self, source_extra: &str, rest: &str) {
        let toml = format!(
            "[sources.kv]\ntype = \"azure-keyvault\"\nvault_url = \"{}\"\nca_cert = \"{}\"\n{source_extra}\n{rest}",
            self.server.url(),
            pki().ca.display()
        );
        self.dir.file("secretexec.toml", toml);
    }

    /// secretexec in the mapping's directory with the client-secret variables set.
    fn with_client_secret(&self) -> Secretexec {
        self.bare()
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    }

    /// secretexec in the mapping's directory, authority pointing at the server, no credential.
    fn bare(&self) -> Secretexec {
        secretexec()
            .current_dir(self.dir.path())
            .env("AZURE_AUTHORITY_HOST", self.server.url())
            // The default chain must never reach a real IMDS from a test.
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1")
    }

    /// Asserts no secret, credential or token appears in what secretexec
    /// itself printed: stderr, and stdout unless the child wrote it.
    #[track_caller]
    fn assert_nothing_leaked(&self, r: &Run, child_wrote_stdout: bool) {
        let ours = if child_wrote_stdout { r.stderr.clone() } else { r.all() };
        let mut needles = vec![CANARY.to_owned(), CLIENT_SECRET.to_owned(), self.server.identity_header()];
        needles.extend(self.server.issued_tokens());
        for n in needles {
            assert!(!ours.contains(&n), "a secret leaked into secretexec's output:\n{ours}");
        }
    }
}

const PRINT: &str = "printf '%s|' \"$A\" \"$B\" \"${AZURE_CLIENT_SECRET-unset}\"";

#[test]
fn client_secret_from_environment_reads_latest_and_pinned_versions() {
    let kv = Kv::new();
    let old = kv.server.put("db-password", "old-value");
    kv.server.put("db-password", CANARY);
    kv.mapping("", &format!("[env]\nA = \"kv:db-password\"\nB = \"kv:db-password/{old}\"\n"));
    let r = kv.with_client_secret().args(["-vvv", "--", "sh", "-c", PRINT]).run();
    r.assert_code(0);
    // The client secret is removed from the child's environment.
    assert_eq!(r.stdout, format!("{CANARY}|old-value|unset|"));
    kv.assert_nothing_leaked(&r, true);
    let hits = kv.server.hits();
    // The protocol: an unauthenticated request, its challenge, one token, then reads with it.
    assert_eq!((hits[0].endpoint, hits[0].status, hits[0].authorized), (Endpoint::Secret, 401, false));
    assert_eq!(kv.server.count(Endpoint::Entra), 1);
    assert_eq!(hits.iter().filter(|h| h.endpoint == Endpoint::Secret && h.status == 200).count(), 2);
    // The client secret goes to the token endpoint only; tokens go to the vault only.
    for h in &hits {
        if h.endpoint != Endpoint::Entra {
            assert!(!h.raw.contains("cl1ent-S3cret"), "client secret sent to {}", h.path);
        }
    }
}

#[test]
fn pass_credentials_keeps_the_client_secret_for_the_child() {
    let kv = Kv::new();
    kv.server.put("a", "x");
    kv.mapping("", "pass_credentials = true\n[env]\nA = \"kv:a\"\n");
    let mapping = std::fs::read_to_string(kv.dir.join("secretexec.toml")).unwrap();
    // pass_credentials is a top-level key: move it above the tables.
    let mapping = format!("pass_credentials = true\n{}", mapping.replace("pass_credentials = true\n", ""));
    kv.dir.file("secretexec.toml", mapping);
    let r = kv.with_client_secret().args(["--", "sh", "-c", "printf %s \"$AZURE_CLIENT_SECRET\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CLIENT_SECRET);
}

#[test]
fn client_secret_file_gets_the_strict_permission_check() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    let file = kv.dir.file_with_mode("client-secret", format!("{CLIENT_SECRET}\n"), 0o644);
    let src = format!(
        "credential = \"client-secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client-secret\"\n"
    );
    kv.mapping(&src, "[env]\nA = \"kv:a\"\n");
    let r = kv.bare().args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    r.assert_code(125).assert_stderr_contains("mode 0644").assert_stderr_contains("chmod 600");
    kv.assert_nothing_leaked(&r, false);
    assert_eq!(kv.server.count(Endpoint::Entra), 0, "no token request with a refused file");

    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let r = kv.bare().args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
}

#[test]
fn rejected_client_secret_names_the_credential_and_what_to_check() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    let r = kv
        .bare()
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", "wrong-secret-canary-77")
        .args(["-vvv", "--", "true"])
        .run();
    r.assert_code(125)
        .assert_stderr_contains("A")
        .assert_stderr_contains("client secret")
        .assert_stderr_contains("401")
        .assert_stderr_contains("invalid_client")
        .assert_stderr_contains("expired client secret");
    r.assert_no_canary("wrong-secret-canary-77");
    kv.assert_nothing_leaked(&r, false);
}

#[test]
fn workload_identity_reads_a_kubernetes_style_projected_token() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    let assertion = "eyJhbGciOiJSUzI1NiJ9.federated-canary-token.sig";
    kv.server.add_federated(CLIENT_ID, assertion);
    // kubelet's layout: a 0644 file behind a `..data` symlink.
    let real = kv.dir.file_with_mode("tokens/..2026_11_23/azure-identity-token", assertion, 0o644);
    std::os::unix::fs::symlink(real.parent().unwrap(), kv.dir.join("tokens/..data")).unwrap();
    std::os::unix::fs::symlink("..data/azure-identity-token", kv.dir.join("tokens/azure-identity-token"))
        .unwrap();
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    let run = || {
        kv.bare()
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_FEDERATED_TOKEN_FILE", kv.dir.join("tokens/azure-identity-token"))
            .args(["-vv", "--", "sh", "-c", "printf '%s|%s' \"$A\" \"$AZURE_FEDERATED_TOKEN_FILE\""])
            .run()
    };
    let r = run();
    r.assert_code(0);
    // The token file's path (not a secret) stays for the child's own SDK.
    assert_eq!(r.stdout, format!("{CANARY}|{}", kv.dir.join("tokens/azure-identity-token").display()));
    r.assert_no_canary(assertion);
    kv.assert_nothing_leaked(&r, true);

    // A token file others could rewrite is refused.
    std::fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let r = run();
    r.assert_code(125).assert_stderr_contains("writable by group or others");
}

#[test]
fn workload_identity_rereads_the_rotated_token_file() {
    let kv = Kv::new();
    let mut env = String::from("[env]\n");
    for i in 0..6 {
        kv.server.put(&format!("s{i}"), &format!("{CANARY}-{i}"));
        env.push_str(&format!("V{i} = \"kv:s{i}\"\n"));
    }
    let token = kv.dir.secret_file("token", "eyJhbGciOiJSUzI1NiJ9.first.sig");
    kv.server.add_federated(CLIENT_ID, "eyJhbGciOiJSUzI1NiJ9.first.sig");
    kv.server.rotate_federated(CLIENT_ID, &token);
    kv.server.expire_tokens_after(3);
    kv.mapping("credential = \"workload-identity\"\nconcurrency = 1", &env);
    let r = kv
        .bare()
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token)
        .args(["--", "sh", "-c", "printf '%s ' \"$V0\" \"$V5\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, format!("{CANARY}-0 {CANARY}-5 "));
    let grants: Vec<u16> =
        kv.server.hits().iter().filter(|h| h.endpoint == Endpoint::Entra).map(|h| h.status).collect();
    assert_eq!(grants, vec![200, 200], "the second grant used the rotated assertion");
}

#[test]
fn workload_identity_with_a_wrong_assertion_fails_closed() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.server.add_federated(CLIENT_ID, "the-right-assertion");
    let token = kv.dir.secret_file("token", "a-stale-assertion");
    kv.mapping("credential = \"workload-identity\"", "[env]\nA = \"kv:a\"\n");
    let r = kv
        .bare()
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token)
        .args(["--", "true"])
        .run();
    r.assert_code(125).assert_stderr_contains("workload identity").assert_stderr_contains("invalid_client");
    r.assert_no_canary("a-stale-assertion");
}

#[test]
fn app_service_managed_identity_system_and_user_assigned() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.server.add_identity("5e1f0c2a-user-assigned");
    for (extra, header_ok) in [
        ("credential = \"managed-identity\"", true),
        ("credential = \"managed-identity\"\nclient_id = \"5e1f0c2a-user-assigned\"", true),
        ("", true),
        ("credential = \"managed-identity\"", false),
    ] {
        kv.mapping(extra, "[env]\nA = \"kv:a\"\n");
        let header = if header_ok { kv.server.identity_header() } else { "wrong-header".into() };
        let r = kv
            .bare()
            .env("IDENTITY_ENDPOINT", kv.server.identity_endpoint())
            .env("IDENTITY_HEADER", &header)
            .args(["-vvv", "--", "sh", "-c", "printf %s \"$A\""])
            .run();
        kv.assert_nothing_leaked(&r, true);
        if header_ok {
            r.assert_code(0);
            assert_eq!(r.stdout, CANARY, "{extra}");
        } else {
            r.assert_code(125).assert_stderr_contains("managed identity").assert_stderr_contains("401");
        }
    }
    let user: Vec<_> =
        kv.server.hits().into_iter().filter(|h| h.raw.contains("client_id=5e1f0c2a-user-assigned")).collect();
    assert_eq!(user.len(), 1, "the user-assigned identity is asked for by client_id");
}

#[test]
fn imds_managed_identity() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.mapping("credential = \"managed-identity\"", "[env]\nA = \"kv:a\"\n");
    let r = kv
        .bare()
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", kv.server.url())
        .args(["--", "sh", "-c", "printf %s \"$A\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
    assert_eq!(kv.server.count(Endpoint::Imds), 1);
    // check names the credential that answered.
    let r = kv.bare().env("AZURE_POD_IDENTITY_AUTHORITY_HOST", kv.server.url()).arg("check").run();
    r.assert_code(0);
    assert!(r.stdout.contains("managed identity, system-assigned (IMDS)"), "{}", r.stdout);
    kv.assert_nothing_leaked(&r, false);
}

#[test]
fn azure_cli_credential_and_the_default_chain_falling_through_to_it() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    let token = kv.server.issue_token();
    let bin = fake_az(kv.dir.path(), &token);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for extra in ["credential = \"azure-cli\"", ""] {
        kv.mapping(extra, "[env]\nA = \"kv:a\"\n");
        let r = kv.bare().env("PATH", &path).args(["-vvv", "--", "sh", "-c", "printf %s \"$A\""]).run();
        r.assert_code(0);
        assert_eq!(r.stdout, CANARY);
        kv.assert_nothing_leaked(&r, true);
    }
    let argv = std::fs::read_to_string(bin.join("argv.log")).unwrap();
    assert!(argv.contains("account get-access-token --output json --resource https://localhost"), "{argv}");
    assert!(!argv.contains(&token), "the token is never on a command line");
    // With nothing configured at all, the error lists what the chain tried.
    let r = kv.bare().env("PATH", "/usr/bin:/bin").args(["--", "true"]).run();
    r.assert_code(125)
        .assert_stderr_contains("no credential of the default chain")
        .assert_stderr_contains("AZURE_CLIENT_SECRET not set")
        .assert_stderr_contains("IMDS not reachable")
        .assert_stderr_contains("az is not installed");
}

#[test]
fn bulk_import_maps_names_pages_and_skips_disabled_and_expired() {
    let kv = Kv::new();
    kv.server.set_page_size(2);
    kv.server.put("DB-PASSWORD", CANARY);
    kv.server.put("api-key", "k1");
    kv.server.put("Plain", "p");
    kv.server.put("old-token", "x");
    kv.server.edit_latest("old-token", |v| v.enabled = false);
    kv.server.put("stale", "y");
    kv.server.edit_latest("stale", |v| v.exp = Some(1_600_000_000));
    kv.mapping("", "[[import]]\nref = \"kv:*\"\nprefix = \"APP_\"\n");
    let r = kv
        .with_client_secret()
        .args(["--", "sh", "-c", "printf '%s|%s|%s|%s|%s' \"$APP_DB_PASSWORD\" \"$APP_api_key\" \"$APP_Plain\" \"${APP_old_token-none}\" \"${APP_stale-none}\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, format!("{CANARY}|k1|p|none|none"));
    r.assert_stderr_contains("stale expired");
    kv.assert_nothing_leaked(&r, true);
    assert_eq!(kv.server.count(Endpoint::List), 3 + 1, "5 secrets in pages of 2, plus the challenge");
}

#[test]
fn not_found_denied_disabled_and_expired_are_all_reported() {
    let kv = Kv::new();
    kv.server.put("ok", CANARY);
    kv.server.put("locked", "l");
    kv.server.deny("locked");
    kv.server.put("off", "o");
    kv.server.edit_latest("off", |v| v.enabled = false);
    kv.server.put("late", "z");
    kv.server.edit_latest("late", |v| v.exp = Some(1_600_000_000));
    let v = kv.server.put_version(
        "future",
        Version {
            id: "0123456789abcdef0123456789abcdef".into(),
            value: "f".into(),
            enabled: true,
            exp: None,
            nbf: Some(4_000_000_000),
        },
    );
    kv.mapping(
        "",
        &format!("[env]\nOK = \"kv:ok\"\nMISSING = \"kv:nope\"\nLOCKED = \"kv:locked\"\nOFF = \"kv:off\"\nLATE = \"kv:late\"\nFUT = \"kv:future/{v}\"\nOPT = {{ ref = \"kv:gone\", optional = true }}\n"),
    );
    let r = kv.with_client_secret().args(["--", "true"]).run();
    r.assert_code(125)
        .assert_stderr_contains("secret nope not found")
        .assert_stderr_contains("SecretNotFound")
        .assert_stderr_contains("Key Vault Secrets User")
        .assert_stderr_contains("ForbiddenByRbac")
        .assert_stderr_contains("secret off is disabled")
        .assert_stderr_contains("secret late expired")
        .assert_stderr_contains("is not valid for another");
    assert!(!r.stderr.contains("OPT"), "an optional missing secret is not an error:\n{}", r.stderr);
    kv.assert_nothing_leaked(&r, false);
    let r = kv.with_client_secret().arg("check").run();
    r.assert_code(1);
    kv.assert_nothing_leaked(&r, false);
}

#[test]
fn throttling_is_retried_honouring_retry_after() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.server.throttle(2, 1);
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    let r = kv.with_client_secret().args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
    let hits: Vec<_> =
        kv.server.hits().into_iter().filter(|h| h.endpoint == Endpoint::Secret && h.authorized).collect();
    assert_eq!(hits.iter().map(|h| h.status).collect::<Vec<_>>(), vec![429, 429, 200]);
    // Retry-After: 1 was honoured (a lower bound only: slow machines cannot fail it).
    assert!(hits[1].at.duration_since(hits[0].at).as_millis() >= 1000);
    assert!(hits[2].at.duration_since(hits[1].at).as_millis() >= 1000);
}

#[test]
fn throttling_past_the_deadline_fails_closed() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.server.throttle(1000, 60);
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    let r = kv.with_client_secret().args(["--timeout", "5s", "--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("throttled (429)").assert_stderr_contains("Retry-After 60s");
}

#[test]
fn token_expiring_mid_resolve_is_renewed_once() {
    let kv = Kv::new();
    let mut env = String::from("[env]\n");
    for i in 0..24 {
        kv.server.put(&format!("s{i}"), &format!("{CANARY}-{i}"));
        env.push_str(&format!("V{i} = \"kv:s{i}\"\n"));
    }
    kv.server.expire_tokens_after(6);
    kv.mapping("concurrency = 4", &env);
    let r = kv.with_client_secret().args(["--", "sh", "-c", "printf '%s ' \"$V0\" \"$V11\" \"$V23\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, format!("{CANARY}-0 {CANARY}-11 {CANARY}-23 "));
    assert_eq!(kv.server.count(Endpoint::Entra), 2, "one token, then one more after it expired");
    // Bounded concurrency: never more connections than readers.
    assert!(kv.server.max_connections() <= 4, "{} connections at once", kv.server.max_connections());
    assert_eq!(
        kv.server.hits().iter().filter(|h| h.endpoint == Endpoint::Secret && h.status == 200).count(),
        24
    );
}

#[test]
fn a_challenge_for_another_domain_gets_no_token() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.server.set_challenge_resource("https://vault.azure.net");
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    let r = kv.with_client_secret().args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("not the vault's domain");
    assert_eq!(kv.server.count(Endpoint::Entra), 0);
    // The operator can turn the check off for a vault that really uses another resource.
    kv.mapping("verify_challenge_resource = false", "[env]\nA = \"kv:a\"\n");
    let r = kv.with_client_secret().args(["--", "sh", "-c", "printf %s \"$A\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
}

#[test]
fn private_ca_is_needed_and_bare_references_use_ssl_cert_file() {
    let kv = Kv::new();
    kv.server.put("db-password", CANARY);
    // No ca_cert: the test CA is unknown, the TLS handshake fails, nothing is sent.
    kv.dir.file(
        "secretexec.toml",
        format!(
            "[sources.kv]\ntype = \"azure-keyvault\"\nvault_url = \"{}\"\n[env]\nA = \"kv:db-password\"\n",
            kv.server.url()
        ),
    );
    let r = kv.with_client_secret().args(["--", "true"]).run();
    r.assert_code(125).assert_stderr_contains("ca_cert");
    assert!(kv.server.hits().is_empty());
    // A bare reference with the CA from SSL_CERT_FILE.
    let reference = format!("A=azure-keyvault:{}/db-password", kv.server.url());
    let elsewhere = TestDir::new();
    let r = kv
        .with_client_secret()
        .current_dir(elsewhere.path())
        .env("SSL_CERT_FILE", &pki().ca)
        .args(["-e", &reference, "--", "sh", "-c", "printf %s \"$A\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
}

/// The canary suite for Azure: values, the client secret, the identity header
/// and every access token stay out of the child's argv, logs at -vvv (text
/// and JSON), errors and check output.
#[test]
fn canary_never_leaks_with_azure() {
    let kv = Kv::new();
    kv.server.put("secret", CANARY);
    kv.mapping("", "[env]\nS = \"kv:secret\"\n");
    let r = kv
        .with_client_secret()
        .args(["-vvv", "--", "sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline; echo"])
        .run();
    r.assert_code(0);
    assert!(r.stdout.starts_with("sh -c"), "{}", r.stdout);
    kv.assert_nothing_leaked(&r, false);
    // Errors, including one whose server message echoes the bearer token.
    kv.mapping("", "[env]\nS = \"kv:secret\"\nE = \"kv:echo-token\"\nM = \"kv:missing\"\n");
    for fmt in ["text", "json"] {
        let r = kv.with_client_secret().args(["-vvv", "--log-format", fmt, "--", "true"]).run();
        r.assert_code(125).assert_stderr_contains("rejected Authorization: Bearer [REDACTED]");
        kv.assert_nothing_leaked(&r, false);
    }
    for args in [&["check"][..], &["check", "--json"], &["-vvv", "check"]] {
        let r = kv.with_client_secret().args(args).run();
        r.assert_code(1);
        kv.assert_nothing_leaked(&r, false);
    }
    // App Service managed identity: the identity header is a credential too.
    kv.mapping("credential = \"managed-identity\"", "[env]\nS = \"kv:secret\"\nM = \"kv:missing\"\n");
    let r = kv
        .bare()
        .env("IDENTITY_ENDPOINT", kv.server.identity_endpoint())
        .env("IDENTITY_HEADER", kv.server.identity_header())
        .args(["-vvv", "--log-format", "json", "check", "--json"])
        .run();
    r.assert_code(1);
    kv.assert_nothing_leaked(&r, false);
}

#[test]
fn check_names_the_credential_and_never_a_value() {
    let kv = Kv::new();
    kv.server.put("a", CANARY);
    kv.mapping("", "[env]\nA = \"kv:a\"\n");
    for args in [&["check"][..], &["check", "--json"][..], &["-vvv", "--log-format", "json", "check"][..]] {
        let r = kv.with_client_secret().args(args).run();
        r.assert_code(0);
        assert!(r.stdout.contains("client secret (client 0b0a8b4e"), "{}", r.stdout);
        kv.assert_nothing_leaked(&r, false);
    }
}

/// Microsoft's own Python SDK (azure-identity + azure-keyvault-secrets) reads
/// from the test server: proof that it speaks the protocol real clients expect.
#[test]
fn microsoft_python_sdk_reads_from_the_test_server() {
    let kv = Kv::new();
    kv.server.set_page_size(1);
    kv.server.put("db-password", CANARY);
    kv.server.put("api-key", "k1");
    let script = r#"
import os, sys
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
cred = ClientSecretCredential(os.environ["T"], os.environ["C"], os.environ["S"],
                              authority=os.environ["URL"], disable_instance_discovery=True)
client = SecretClient(os.environ["URL"], cred, verify_challenge_resource=False)
names = sorted(p.name for p in client.list_properties_of_secrets())
value = client.get_secret("db-password").value
sys.stdout.write(",".join(names) + "|" + str(value == os.environ["CANARY"]))
"#;
    let python = tool("python3");
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .env("T", TENANT)
        .env("C", CLIENT_ID)
        .env("S", CLIENT_SECRET)
        .env("URL", kv.server.url())
        .env("CANARY", CANARY)
        .env("REQUESTS_CA_BUNDLE", &pki().ca)
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "azure-identity / azure-keyvault-secrets are not installed; run scripts/test.sh:\n{stderr}"
    );
    assert!(out.status.success(), "the Python SDK failed against the test server:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "api-key,db-password|True");
    assert!(kv.server.count(Endpoint::List) >= 2, "the SDK followed nextLink");
}

#[test]
fn a_vault_that_never_answers_times_out_within_the_deadline() {
    let t = TestDir::new();
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    t.file(
        "secretexec.toml",
        format!(
            "[sources.kv]\ntype = \"azure-keyvault\"\nvault_url = \"https://localhost:{port}\"\nca_cert = \"{}\"\n[env]\nA = \"kv:a\"\n",
            pki().ca.display()
        ),
    );
    let r = secretexec().current_dir(t.path()).args(["--timeout", "2s", "--", "true"]).run();
    r.assert_code(125)
        .assert_stderr_contains(&format!("request to https://localhost:{port} failed"))
        .assert_stderr_contains("timed out");
    drop(silent);
}
