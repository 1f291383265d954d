//! The deployment files we ship are checked by the tools that will read
//! them: `systemd-analyze verify` for every unit in systemd/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file in `dir` (relative to the repository) whose name ends in one of `exts`, sorted.
fn shipped(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| exts.iter().any(|x| n.ends_with(x)))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {exts:?} files in {dir}");
    out
}

fn executable(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("an absolute path has a parent")).unwrap();
    std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The absolute programs a unit's Exec*= lines start, without systemd's
/// prefixes (`-`, `@`, `:`, `+`, `!`).
fn exec_programs(unit: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.trim().starts_with("Exec"))
        .filter_map(|(_, v)| v.trim().trim_start_matches(['-', '@', ':', '+', '!']).split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_systemd_unit_passes_systemd_analyze_verify() {
    let analyze = tool("systemd-analyze");
    let units = shipped("systemd", &[".service", ".socket", ".timer", ".path"]);
    // A throw-away root: the units, the host's own unit directory (targets
    // the units order against) and stand-ins for every program they start,
    // because verify checks that ExecStart= binaries exist.
    let root = TestDir::new();
    let unit_dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("the systemd package's unit directory (scripts/install-test-tools.sh installs it)");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp").arg("-r").arg(host_units).arg(root.join("usr/lib/systemd/")).status();
    assert!(copied.is_ok_and(|s| s.success()), "copy {} into the test root", host_units.display());
    let mut names = Vec::new();
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        for program in exec_programs(&text) {
            executable(&root.join(program.trim_start_matches('/')));
        }
        let name = unit.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::write(unit_dir.join(&name), &text).unwrap();
        // A template is verified through an instance of it.
        names.push(if name.contains("@.") { name.replace("@.", "@example.") } else { name });
    }
    assert!(names.iter().any(|n| n.starts_with("secretexec@")), "the template unit is shipped");
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("--man=no")
        .args(names.iter().map(|n| unit_dir.join(n)))
        .current_dir(root.path())
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on warnings such as an unknown key ("ignoring"): any output is a finding.
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {names:?}: {}\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn systemd_verify_catches_a_broken_unit() {
    // The check above can fail: an unknown key and a missing binary are reported.
    let analyze = tool("systemd-analyze");
    let root = TestDir::new();
    let unit = root
        .file("etc/systemd/system/broken.service", "[Service]\nExecStart=/usr/bin/nonexistent\nBogusKey=1\n");
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("--man=no")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BogusKey"), "{stderr}");
    assert!(stderr.contains("nonexistent"), "{stderr}");
}

#[test]
fn systemd_units_keep_the_promised_hardening() {
    for unit in shipped("systemd", &[".service"]) {
        let text = std::fs::read_to_string(&unit).unwrap();
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        let name = unit.display();
        for line in
            ["ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "LimitCORE=0", "UMask=0077"]
        {
            assert!(has(line), "{name} lacks {line}");
        }
        assert!(text.contains("LoadCredential="), "{name}: bootstrap credentials come from LoadCredential=");
        assert!(
            text.lines().any(|l| l.starts_with("ExecStart=/usr/bin/secretexec ")),
            "{name}: secretexec is the ExecStart"
        );
        // Bootstrap credentials never travel in the environment of the unit.
        for var in ["VAULT_TOKEN", "AZURE_CLIENT_SECRET", "SOPS_AGE_KEY="] {
            assert!(
                !text.lines().any(|l| l.starts_with("Environment") && l.contains(var)),
                "{name} sets {var}"
            );
        }
    }
}

fn yaml_docs(path: &Path) -> Vec<yaml_rust2::Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Kubernetes manifests: deploy/kubernetes/ and the Argo CD hook.
fn kubernetes_manifests() -> Vec<PathBuf> {
    let mut files = shipped("deploy/kubernetes", &[".yaml"]);
    files.extend(shipped("deploy/gitops", &[".yaml"]));
    files
}

#[test]
fn kubernetes_manifests_validate_against_the_bundled_schemas() {
    // kubernetes-validate ships the OpenAPI schemas of every Kubernetes
    // release: no network at test time. --strict rejects unknown fields.
    let validator = tool("kubernetes-validate");
    for file in kubernetes_manifests() {
        let out = Command::new(&validator)
            .args(["--strict", "--quiet"])
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn kubernetes_validation_catches_a_broken_manifest() {
    let validator = tool("kubernetes-validate");
    let t = TestDir::new();
    let bad = t.file(
        "bad.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: c\n          image: x\n          comand: [secretexec]\n",
    );
    let out = Command::new(&validator)
        .args(["--strict", "--quiet"])
        .arg(&bad)
        .output()
        .expect("run kubernetes-validate");
    assert!(!out.status.success(), "a misspelt field must fail strict validation");
}

/// Every container of every workload in `doc` (Deployment, Job, Pod…).
fn containers(doc: &yaml_rust2::Yaml) -> Vec<&yaml_rust2::Yaml> {
    let spec = match doc["kind"].as_str() {
        Some("Pod") => &doc["spec"],
        _ => &doc["spec"]["template"]["spec"],
    };
    spec["containers"].as_vec().map(|v| v.iter().collect()).unwrap_or_default()
}

#[test]
fn kubernetes_workloads_start_through_secretexec_with_their_own_identity() {
    let mut workloads = 0;
    for file in kubernetes_manifests() {
        for doc in yaml_docs(&file) {
            for c in containers(&doc) {
                workloads += 1;
                let command: Vec<&str> = c["command"]
                    .as_vec()
                    .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                assert_eq!(
                    command.first(),
                    Some(&"secretexec"),
                    "{}: secretexec is the entrypoint",
                    file.display()
                );
                assert!(command.contains(&"--config"), "{}: the mapping is named explicitly", file.display());
                assert_eq!(
                    c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{}",
                    file.display()
                );
                assert_eq!(
                    c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
                    Some(true),
                    "{}",
                    file.display()
                );
                // No secret values and no bootstrap credentials in the manifests.
                assert!(
                    c["env"].is_badvalue() && c["envFrom"].is_badvalue(),
                    "{}: no env in the pod spec",
                    file.display()
                );
            }
        }
    }
    assert!(workloads >= 3, "the Vault, Azure and Argo CD workloads are checked");
}

#[test]
fn dockerfile_passes_hadolint_and_builds_the_promised_stages() {
    let dockerfile = repo().join("deploy/docker/Dockerfile");
    let out = Command::new(tool("hadolint")).arg(&dockerfile).output().expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Instructions with continuation lines joined, comments dropped.
    let text = std::fs::read_to_string(&dockerfile).unwrap().replace("\\\n", " ");
    let instructions: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let stages: Vec<&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .map(|l| {
            l.rsplit_once(" AS ").map(|(_, name)| name.trim()).unwrap_or_else(|| panic!("unnamed stage: {l}"))
        })
        .collect();
    assert_eq!(stages, ["build", "secretexec", "example"]);
    let last_stage = &instructions[instructions.iter().rposition(|l| l.starts_with("FROM ")).unwrap()..];
    assert!(last_stage.contains(&r#"ENTRYPOINT ["secretexec", "supervise", "--"]"#), "{last_stage:#?}");
    assert!(
        last_stage.iter().any(|l| l.starts_with("USER ") && !l.contains("root")),
        "the example runs as a user"
    );
    assert!(instructions.iter().any(|l| l.contains("cargo build --release --locked")));
    // Every file the build copies from the context exists (paths relative to the repository root).
    for l in instructions.iter().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let words: Vec<&str> = l.split_whitespace().skip(1).filter(|w| !w.starts_with("--")).collect();
        for src in &words[..words.len() - 1] {
            assert!(repo().join(src).exists(), "Dockerfile copies {src}, which does not exist");
        }
    }
}

#[test]
fn compose_file_parses_and_builds_the_example_stage() {
    let compose = repo().join("deploy/docker/compose.yaml");
    let docs = yaml_docs(&compose);
    let app = &docs[0]["services"]["app"];
    assert!(!app.is_badvalue(), "services.app");
    let dockerfile = app["build"]["dockerfile"].as_str().expect("build.dockerfile");
    let context = compose.parent().unwrap().join(app["build"]["context"].as_str().expect("build.context"));
    assert!(context.join(dockerfile).exists(), "{dockerfile} relative to the build context");
    let target = app["build"]["target"].as_str().expect("build.target");
    let text = std::fs::read_to_string(context.join(dockerfile)).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {target}"))),
        "stage {target}"
    );
    for secret in app["secrets"].as_vec().expect("secrets") {
        let source = secret["source"].as_str().expect("secrets[].source");
        assert!(!docs[0]["secrets"][source]["file"].is_badvalue(), "secret {source} is declared");
    }
}

/// A fixture for the GitOps scripts: a mapping with one secret present and,
/// if `missing`, one required secret that is not.
fn gitops_fixture(missing: bool) -> TestDir {
    let t = TestDir::new();
    t.secret_file("app.env", format!("TOKEN={CANARY}\n"));
    let mut mapping = String::from("[env]\nTOKEN = \"envfile:app.env#TOKEN\"\n");
    if missing {
        mapping.push_str("STRIPE_KEY = \"envfile:app.env#STRIPE_KEY\"\n");
    }
    t.file("prod.toml", mapping);
    t
}

fn gitops_script(name: &str, dir: &Path, args: &[&str]) -> Run {
    let bin_dir = Path::new(bin()).parent().unwrap().to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut cmd = Command::new(repo().join("deploy/gitops").join(name));
    cmd.args(args).current_dir(dir).env_clear().env("PATH", path).env("HOME", dir);
    let out = cmd.output().expect("run the script");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn ci_check_step_fails_the_pipeline_on_a_missing_secret() {
    let t = gitops_fixture(true);
    let r = gitops_script("secretexec-ci-check.sh", t.path(), &["--config", "prod.toml"]);
    r.assert_code(1).assert_no_canary(CANARY).assert_stderr_contains("STRIPE_KEY");
    assert!(!r.stderr.contains("  TOKEN"), "only the missing secret is listed:\n{}", r.stderr);
    let report = std::fs::read_to_string(t.join("secretexec-check.json")).unwrap();
    assert!(report.contains("\"ok\": false") && !report.contains(CANARY), "{report}");

    let t = gitops_fixture(false);
    gitops_script("secretexec-ci-check.sh", t.path(), &["--config", "prod.toml"]).assert_code(0);
    // A broken mapping is not "a secret is missing": 125 passes through.
    t.file("prod.toml", "[env]\nTOKEN = 1\n");
    gitops_script("secretexec-ci-check.sh", t.path(), &["--config", "prod.toml"]).assert_code(125);
}

#[test]
fn render_step_writes_a_0600_env_file_or_nothing() {
    let t = gitops_fixture(false);
    let r = gitops_script("secretexec-render-env.sh", t.path(), &["out/app.env", "--config", "prod.toml"]);
    // The directory does not exist: secretexec does not create it.
    assert_ne!(r.code, Some(0), "{}", r.all());
    std::fs::create_dir(t.join("out")).unwrap();
    gitops_script("secretexec-render-env.sh", t.path(), &["out/app.env", "--config", "prod.toml"])
        .assert_code(0);
    let meta = std::fs::metadata(t.join("out/app.env")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    assert!(std::fs::read_to_string(t.join("out/app.env")).unwrap().contains(CANARY));

    let t = gitops_fixture(true);
    std::fs::create_dir(t.join("out")).unwrap();
    let r = gitops_script("secretexec-render-env.sh", t.path(), &["out/app.env", "--config", "prod.toml"]);
    r.assert_code(125).assert_no_canary(CANARY);
    assert!(!t.join("out/app.env").exists(), "nothing is written when a secret is missing");
}

#[test]
fn ci_example_runs_the_shipped_check_script() {
    let workflow = repo().join("deploy/gitops/github-actions.yml");
    let text = std::fs::read_to_string(&workflow).unwrap();
    yaml_docs(&workflow);
    let script = "deploy/gitops/secretexec-ci-check.sh";
    assert!(text.contains(script) && repo().join(script).exists());
}

/// Every mapping shipped with the deployment files: standalone
/// `*.toml` files and `secretexec.toml` keys of Kubernetes ConfigMaps.
fn shipped_mappings() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["systemd", "deploy/docker"] {
        for file in shipped(dir, &[".toml"]) {
            out.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
        }
    }
    for file in kubernetes_manifests() {
        for doc in yaml_docs(&file) {
            if doc["kind"].as_str() == Some("ConfigMap")
                && let Some(text) = doc["data"]["secretexec.toml"].as_str()
            {
                out.push((
                    format!(
                        "{} (ConfigMap {})",
                        file.display(),
                        doc["metadata"]["name"].as_str().unwrap_or("?")
                    ),
                    text.to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_shipped_mapping_loads() {
    let mappings = shipped_mappings();
    assert!(mappings.len() >= 4, "{:?}", mappings.iter().map(|m| &m.0).collect::<Vec<_>>());
    for (name, text) in mappings {
        let config = secretexec::config::parse(&text).unwrap_or_else(|ps| {
            panic!("{name}:\n{}", ps.iter().map(|p| format!("  {p}\n")).collect::<String>())
        });
        secretexec::plan::build(Some(config), &Default::default()).unwrap_or_else(|ps| {
            panic!("{name}:\n{}", ps.iter().map(|p| format!("  {p}\n")).collect::<String>())
        });
    }
}
