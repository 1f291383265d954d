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
