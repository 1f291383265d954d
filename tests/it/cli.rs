//! The core launcher: exit codes, permissions, config errors, precedence,
//! the environment, check and render — against the built binary.

use crate::support::*;

#[test]
fn runs_command_with_env_file_secret() {
    let t = TestDir::new();
    t.secret_file("app.env", format!("DB_PASSWORD={CANARY}\n"));
    t.file("secretexec.toml", "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n[env]\nDB_PASSWORD = \"local:DB_PASSWORD\"\n");
    let r = secretexec().current_dir(t.path()).args(["--", "sh", "-c", "printf %s \"$DB_PASSWORD\""]).run();
    r.assert_code(0);
    assert_eq!(r.stdout, CANARY);
}
