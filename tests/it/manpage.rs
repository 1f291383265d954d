//! The man pages (docs/man/) and shell completions (contrib/completions/)
//! are generated from the clap definitions. This test regenerates them and
//! fails when the committed files are stale; run it with
//! `SECRETEXEC_REGENERATE=1` to rewrite them after changing the CLI:
//!
//! ```sh
//! SECRETEXEC_REGENERATE=1 cargo test --test it manpage::
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use secretexec::cli::Cli;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn regenerate() -> bool {
    std::env::var_os("SECRETEXEC_REGENERATE").is_some_and(|v| v == "1")
}

/// File name -> content of every man page: secretexec.1 and one per subcommand.
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    let tmp = tempfile::tempdir().expect("temp dir");
    clap_mangen::generate_to(Cli::command(), tmp.path()).expect("render the man pages");
    let mut pages = read_dir(tmp.path());
    let main = pages.get_mut("secretexec.1").expect("the main page is generated");
    main.extend_from_slice(extra_sections().as_bytes());
    pages
}

/// What clap does not know: the environment, the files, where the docs are.
fn extra_sections() -> String {
    use roff::{Roff, bold, roman};
    let mut r = Roff::new();
    let item = |r: &mut Roff, term: &str, text: &str| {
        r.control("TP", []).text([bold(term)]).text([roman(text)]);
    };
    r.control("SH", ["ENVIRONMENT"]);
    item(&mut r, "SECRETEXEC_CONFIG", "The mapping file when --config is not given.");
    item(
        &mut r,
        "VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY",
        "Defaults of vault sources (BAO_* equivalents too; VAULT_* wins). See docs/vault.md.",
    );
    item(
        &mut r,
        "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, IDENTITY_ENDPOINT, IDENTITY_HEADER",
        "The Azure credential chain of azure-keyvault sources. See docs/azure.md.",
    );
    item(
        &mut r,
        "SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        "age identities of sops and age sources without identity_file. See docs/sops.md and docs/age.md.",
    );
    item(
        &mut r,
        "CREDENTIALS_DIRECTORY",
        "Set by systemd's LoadCredential=; Vault AppRole reads role_id and secret_id from it by default.",
    );
    item(
        &mut r,
        "RUNTIME_DIRECTORY, XDG_RUNTIME_DIR",
        "Where supervise keeps replaceable as = \"file\" secrets for on_change = \"signal:...\".",
    );
    r.control("PP", []).text([roman(
        "Bootstrap credentials a source used (VAULT_TOKEN, AZURE_CLIENT_SECRET, SOPS_AGE_KEY, ...) are removed \
         from the child's environment unless the mapping sets pass_credentials = true.",
    )]);
    r.control("SH", ["FILES"]);
    item(&mut r, "./secretexec.toml", "The mapping, if --config and SECRETEXEC_CONFIG are not given.");
    item(&mut r, "/etc/secretexec/secretexec.toml", "The mapping, if none of the above exists.");
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "docs/README.md in the source distribution: getting started, the mapping reference, \
         one page per backend, the security model, operations, logging and the check --json schema.",
    )]);
    r.to_roff()
}

fn completions() -> BTreeMap<String, Vec<u8>> {
    [(Shell::Bash, "secretexec.bash"), (Shell::Zsh, "_secretexec"), (Shell::Fish, "secretexec.fish")]
        .into_iter()
        .map(|(shell, file)| {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "secretexec", &mut buf);
            (file.to_owned(), buf)
        })
        .collect()
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("readable directory entry"))
            .filter(|e| e.path().is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Compares (or, with SECRETEXEC_REGENERATE=1, rewrites) `dir` against `want`.
fn check_current(dir: &str, want: BTreeMap<String, Vec<u8>>) {
    let dir = repo().join(dir);
    let have = read_dir(&dir);
    if regenerate() {
        std::fs::create_dir_all(&dir).unwrap();
        for name in have.keys().filter(|n| !want.contains_key(*n)) {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        for (name, content) in &want {
            std::fs::write(dir.join(name), content).unwrap();
        }
        return;
    }
    let stale: Vec<&String> =
        want.keys().chain(have.keys()).filter(|n| want.get(*n) != have.get(*n)).collect();
    assert!(
        stale.is_empty(),
        "{} is out of date with the CLI ({stale:?} differ, are missing or are extra); \
         regenerate with: SECRETEXEC_REGENERATE=1 cargo test --test it manpage::",
        dir.display()
    );
}

#[test]
fn man_pages_are_current() {
    let pages = man_pages();
    assert!(pages.contains_key("secretexec.1"), "{:?}", pages.keys());
    assert!(pages.contains_key("secretexec-check.1"), "{:?}", pages.keys());
    check_current("docs/man", pages);
}

#[test]
fn shell_completions_are_current() {
    check_current("contrib/completions", completions());
}

#[test]
fn man_page_documents_exit_codes_and_every_subcommand() {
    let page = String::from_utf8(man_pages().remove("secretexec.1").unwrap()).unwrap();
    for needle in ["125", "126", "127", "check", "render", "\\-\\-config"] {
        assert!(page.contains(needle), "secretexec.1 lacks {needle:?}");
    }
}
