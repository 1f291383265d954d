//! The sops source against the real `sops`: an oracle suite (random
//! documents encrypted by sops, decrypted by secretexec and by `sops -d`,
//! compared value by value), committed fixtures, tamper tests, key types
//! we do not support, and the canary.

use std::path::{Path, PathBuf};

use crate::support::sops::*;
use crate::support::*;

/// How one oracle case encrypts.
#[derive(Clone, Copy, Debug)]
enum Variant {
    Plain,
    TwoRecipients,
    UnencryptedSuffix,
    EncryptedSuffix,
    EncryptedRegex,
    UnencryptedRegex,
    MacOnlyEncrypted,
    KeyGroupsShamir,
}

struct Keys {
    a: AgeKey,
    b: AgeKey,
    c: AgeKey,
}

fn keys(t: &TestDir) -> Keys {
    Keys { a: age_keygen(t, "a.key"), b: age_keygen(t, "b.key"), c: age_keygen(t, "c.key") }
}

/// Encrypts `plain` (named `name`, whose extension sets the format) with
/// the real sops; returns the encrypted file and the SOPS_AGE_KEY value
/// that both decrypters get.
fn encrypt(t: &TestDir, k: &Keys, name: &str, plain: &[u8], v: Variant) -> (PathBuf, String) {
    let src = t.file(name, plain);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let out = t.join(&format!("{stem}.enc.{ext}"));
    let mut args: Vec<String> = Vec::new();
    let mut config = None;
    let mut key = key_env(&[&k.a]);
    match v {
        Variant::Plain => {}
        Variant::TwoRecipients => {
            args.extend(["--age".into(), format!("{},{}", k.a.recipient, k.b.recipient)]);
            // Only the second recipient's key is given to the decrypters.
            key = key_env(&[&k.b]);
        }
        Variant::UnencryptedSuffix => args.extend(["--unencrypted-suffix".into(), "_pub".into()]),
        Variant::EncryptedSuffix => args.extend(["--encrypted-suffix".into(), "_secret".into()]),
        Variant::EncryptedRegex => {
            args.extend(["--encrypted-regex".into(), "^(password|user|k[0-9]+)$".into()])
        }
        Variant::UnencryptedRegex => {
            args.extend(["--unencrypted-regex".into(), "^(host|port|token_pub)$".into()])
        }
        Variant::MacOnlyEncrypted => {
            config = Some(format!(
                "creation_rules:\n  - age: {}\n    encrypted_regex: '^(password|k[0-9]+|ключ)$'\n    mac_only_encrypted: true\n",
                k.a.recipient
            ))
        }
        Variant::KeyGroupsShamir => {
            config = Some(format!(
                "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n      - age: [{}]\n",
                k.a.recipient, k.b.recipient, k.c.recipient
            ));
            // Two of the three groups.
            key = key_env(&[&k.a, &k.c]);
        }
    }
    if !matches!(v, Variant::MacOnlyEncrypted | Variant::KeyGroupsShamir | Variant::TwoRecipients) {
        args.extend(["--age".into(), k.a.recipient.clone()]);
    }
    let mut full: Vec<String> = Vec::new();
    if let Some(c) = config {
        let cfg = t.file("sops-config.yaml", c);
        full.extend(["--config".into(), cfg.display().to_string()]);
    }
    full.push("encrypt".into());
    full.extend(args);
    full.push(src.display().to_string());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let enc = sops(&refs, &[], t.path());
    std::fs::write(&out, enc).unwrap();
    (out, key)
}

/// `sops -d` of `file` as (locator, value) leaves.
fn oracle_leaves(t: &TestDir, file: &Path, key: &str) -> Vec<(String, String)> {
    let f = file.display().to_string();
    if f.ends_with(".yaml") {
        let out = sops(&["decrypt", &f], &[("SOPS_AGE_KEY", key)], t.path());
        yaml_leaves(&String::from_utf8(out).unwrap())
    } else {
        let out = sops(&["decrypt", "--output-type", "json", &f], &[("SOPS_AGE_KEY", key)], t.path());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut leaves = Vec::new();
        json_leaves(&v, "", &mut leaves);
        leaves
    }
}

/// Decrypts with both and compares every leaf; returns how many.
fn compare(t: &TestDir, file: &Path, key: &str) -> usize {
    let leaves = oracle_leaves(t, file, key);
    assert!(!leaves.is_empty(), "the document has no values");
    let got = secretexec_leaves(file, &leaves, &[("SOPS_AGE_KEY", key)]);
    for (i, (loc, want)) in leaves.iter().enumerate() {
        let have = got.get(&format!("V{i}")).and_then(|v| v.as_str());
        assert_eq!(have, Some(want.as_str()), "{} at {loc}", file.display());
    }
    leaves.len()
}

fn yaml_doc(rng: &mut Rng, docs: usize) -> String {
    (0..docs).map(|_| Gen::document(rng, 3).to_json()).collect::<Vec<_>>().join("\n---\n") + "\n"
}

#[test]
fn oracle_yaml_and_json_every_variant() {
    let t = TestDir::new();
    let k = keys(&t);
    let mut compared = 0;
    let variants = [
        Variant::Plain,
        Variant::TwoRecipients,
        Variant::UnencryptedSuffix,
        Variant::EncryptedSuffix,
        Variant::EncryptedRegex,
        Variant::UnencryptedRegex,
        Variant::MacOnlyEncrypted,
        Variant::KeyGroupsShamir,
    ];
    for (n, v) in variants.iter().enumerate() {
        for seed in 0..2u64 {
            let mut rng = Rng::new(1000 * n as u64 + seed);
            let docs = if seed == 1 { 1 + rng.below(3) } else { 1 };
            let (file, key) =
                encrypt(&t, &k, &format!("y{n}s{seed}.yaml"), yaml_doc(&mut rng, docs).as_bytes(), *v);
            compared += compare(&t, &file, &key);
            let json = Gen::document(&mut rng, 3).to_json();
            let (file, key) = encrypt(&t, &k, &format!("j{n}s{seed}.json"), json.as_bytes(), *v);
            compared += compare(&t, &file, &key);
        }
    }
    assert!(compared > 50, "only {compared} values compared");
}

#[test]
fn oracle_yaml_multi_document() {
    let t = TestDir::new();
    let k = keys(&t);
    let mut rng = Rng::new(77);
    let (file, key) = encrypt(&t, &k, "multi.yaml", yaml_doc(&mut rng, 3).as_bytes(), Variant::Plain);
    let leaves = oracle_leaves(&t, &file, &key);
    assert!(leaves.iter().any(|(l, _)| l.starts_with("[2].")), "the third document is compared too");
    compare(&t, &file, &key);
}

const ENV_KEYS: &[&str] = &[
    "DB_PASSWORD",
    "API_KEY",
    "user",
    "k1",
    "k2",
    "ключ",
    "token_pub",
    "name_unencrypted",
    "api_secret",
    "password",
];
const INI_KEYS: &[&str] = &["password", "user", "host", "port", "k1", "token_pub", "api_secret"];

fn ini_value(rng: &mut Rng) -> String {
    // Values go-ini reads back as written: no comment or quote characters,
    // no surrounding blanks, one line.
    let v = Gen::string(rng);
    let v: String = v.chars().filter(|c| !"#;\"'`\\\n\r\t".contains(*c)).collect();
    v.trim().to_owned()
}

#[test]
fn oracle_dotenv_ini_binary() {
    let t = TestDir::new();
    let k = keys(&t);
    let mut compared = 0;
    for (n, v) in
        [Variant::Plain, Variant::TwoRecipients, Variant::UnencryptedSuffix, Variant::KeyGroupsShamir]
            .iter()
            .enumerate()
    {
        for seed in 0..2u64 {
            let mut rng = Rng::new(5000 + 10 * n as u64 + seed);
            let entries = Gen::flat(&mut rng, ENV_KEYS, |r| Gen::string(r).replace('\\', "/"));
            let doc: String =
                entries.iter().map(|(k, v)| format!("{k}={}\n", v.replace('\n', "\\n"))).collect();
            let (file, key) = encrypt(&t, &k, &format!("e{n}s{seed}.env"), doc.as_bytes(), *v);
            compared += compare(&t, &file, &key);

            let mut ini = String::new();
            for s in 0..1 + rng.below(3) {
                ini.push_str(&format!("[section{s}]\n"));
                for (k, v) in Gen::flat(&mut rng, INI_KEYS, ini_value) {
                    ini.push_str(&format!("{k} = {v}\n"));
                }
            }
            let (file, key) = encrypt(&t, &k, &format!("i{n}s{seed}.ini"), ini.as_bytes(), *v);
            compared += compare(&t, &file, &key);

            // Binary: the whole plaintext, compared byte for byte through the child.
            let blob: String = (0..3).map(|_| Gen::string(&mut rng)).collect::<Vec<_>>().join("\n");
            let (file, key) = encrypt(&t, &k, &format!("b{n}s{seed}.bin"), blob.as_bytes(), *v);
            let want = sops(&["decrypt", &file.display().to_string()], &[("SOPS_AGE_KEY", &key)], t.path());
            let r = secretexec()
                .env("SOPS_AGE_KEY", &key)
                .arg("-e")
                .arg(format!("BLOB=sops:{}#", file.display()))
                .args(["--", "sh", "-c", "printf %s \"$BLOB\""])
                .run();
            r.assert_code(0);
            assert_eq!(r.stdout.as_bytes(), &want[..], "binary {}", file.display());
            compared += 1;
        }
    }
    assert!(compared > 20, "only {compared} values compared");
}

/// A fixed document for the tests that need known values.
fn known_yaml(t: &TestDir, k: &AgeKey) -> PathBuf {
    let plain = format!(
        "db:\n  password: {CANARY}\n  user: admin\n  port: 5432\nlist: [one, two]\nflag: true\nplain_unencrypted: visible\n"
    );
    let src = t.file("known.yaml", plain);
    let enc = sops(&["encrypt", "--age", &k.recipient, &src.display().to_string()], &[], t.path());
    t.file("known.enc.yaml", enc)
}

#[test]
fn star_import_flattens_nested_maps_and_lists() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let file = known_yaml(&t, &k);
    t.file("secretexec.toml", format!("[[import]]\nref = \"sops:{}#*\"\n", file.display()));
    let r = secretexec()
        .current_dir(t.path())
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .args(["render", "--format", "json"])
        .run();
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["db__password", "db__user", "db__port", "list__0", "list__1", "flag", "plain_unencrypted"]
    );
    assert_eq!(v["db__port"], "5432");
    assert_eq!(v["flag"], "true");
    // A subtree with `.*`.
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .args(["render", "--format", "json", "-c"])
        .arg(t.file(
            "sub.toml",
            format!("[[import]]\nref = \"sops:{}#db.*\"\nprefix = \"DB_\"\n", file.display()),
        ))
        .run();
    r.assert_code(0);
    assert!(r.stdout.contains("\"DB_user\": \"admin\""), "{}", r.stdout);
}

#[test]
fn missing_path_and_non_scalar_are_clear_errors() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let file = known_yaml(&t, &k);
    let f = file.display();
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .args([
            "check",
            "-e",
            &format!("A=sops:{f}#db.nope"),
            "-e",
            &format!("B=sops:{f}#db"),
            "-e",
            &format!("C=sops:{f}#list[5]"),
        ])
        .run();
    r.assert_code(1).assert_no_canary(CANARY);
    assert!(r.all().contains("db.nope not found"), "{}", r.all());
    assert!(r.all().contains("db is a map"), "{}", r.all());
    assert!(r.all().contains("list[5] not found"), "{}", r.all());
}

/// Every change to an encrypted file is refused with exit 125.
#[test]
fn tampering_is_refused() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let file = known_yaml(&t, &k);
    let good = std::fs::read_to_string(&file).unwrap();
    let run = |text: &str| {
        let f = t.file("tampered.enc.yaml", text);
        secretexec()
            .env("SOPS_AGE_KEY_FILE", &k.identity)
            .arg("-e")
            .arg(format!("U=sops:{}#db.user", f.display()))
            .args(["--", "true"])
            .run()
    };
    run(&good).assert_code(0);

    /// Changes the first character after `marker` on the line containing `line`.
    fn flip(text: &str, line: &str, marker: &str) -> String {
        let start = text.find(line).unwrap_or_else(|| panic!("no {line:?}"));
        let at = start + text[start..].find(marker).unwrap() + marker.len();
        let old = text.as_bytes()[at];
        let new = if old == b'A' { "B" } else { "A" };
        format!("{}{new}{}", &text[..at], &text[at + 1..])
    }
    let line_of = |key: &str| good.lines().find(|l| l.trim_start().starts_with(key)).unwrap().to_owned();
    let enc_of = |key: &str| line_of(key).split_once(": ").unwrap().1.to_owned();
    let cases: Vec<(&str, String)> = vec![
        ("value byte", flip(&good, "password: ENC", "data:")),
        ("iv", flip(&good, "password: ENC", ",iv:")),
        ("tag", flip(&good, "password: ENC", ",tag:")),
        ("mac", flip(&good, "mac: ENC", "data:")),
        ("lastmodified", {
            let l = line_of("lastmodified:");
            // One second later or earlier: the last digit before the Z.
            let z = l.rfind('Z').unwrap();
            let digit = if &l[z - 1..z] == "0" { "1" } else { "0" };
            let changed = format!("{}{digit}{}", &l[..z - 1], &l[z..]);
            assert_ne!(l, changed);
            good.replace(&l, &changed)
        }),
        ("added key", good.replace("flag:", "added_unencrypted: x\nflag:")),
        ("added encrypted key", good.replace("flag:", &format!("added: {}\nflag:", enc_of("user:")))),
        ("removed key", good.replace(&format!("{}\n", line_of("port:")), "")),
        ("swapped values", {
            let (p, u) = (enc_of("password:"), enc_of("user:"));
            good.replace(&p, "@P@").replace(&u, &p).replace("@P@", &u)
        }),
        ("plaintext instead of ENC", good.replace(&enc_of("user:"), "admin")),
        (
            "unencrypted value changed",
            good.replace("plain_unencrypted: visible", "plain_unencrypted: changed"),
        ),
    ];
    for (what, text) in cases {
        assert_ne!(text, good, "{what}: the tamper changed nothing");
        let r = run(&text);
        assert_eq!(r.code, Some(125), "{what} was accepted:\n{}", r.stderr);
        r.assert_no_canary(CANARY);
        assert!(r.stderr.contains("modified or corrupted"), "{what}: {}", r.stderr);
    }
}

#[test]
fn other_key_types_are_named() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let file = t.file(
        "kms.enc.yaml",
        "a: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n\
         sops:\n    kms:\n        - arn: arn:aws:kms:eu-west-1:111122223333:key/x\n          created_at: \"2024-01-01T00:00:00Z\"\n          enc: AQICAHg\n          aws_profile: \"\"\n    pgp:\n        - created_at: \"2024-01-01T00:00:00Z\"\n          enc: x\n          fp: 0123456789ABCDEF\n    lastmodified: \"2024-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n    version: 3.11.0\n",
    );
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &k.identity)
        .arg("-e")
        .arg(format!("A=sops:{}#a", file.display()))
        .args(["--", "true"])
        .run();
    r.assert_code(125);
    r.assert_stderr_contains("kms, pgp").assert_stderr_contains("supports only age");
}

#[test]
fn wrong_identity_names_the_recipients() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let other = age_keygen(&t, "other.key");
    let file = known_yaml(&t, &k);
    let r = secretexec()
        .env("SOPS_AGE_KEY_FILE", &other.identity)
        .arg("-e")
        .arg(format!("U=sops:{}#db.user", file.display()))
        .args(["--", "true"])
        .run();
    r.assert_code(125).assert_no_canary(CANARY);
    r.assert_stderr_contains(&k.recipient).assert_stderr_contains("SOPS_AGE_KEY_FILE");
}

#[test]
fn canary_never_printed_and_sops_age_key_scrubbed() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let file = known_yaml(&t, &k);
    let r = secretexec()
        .env("SOPS_AGE_KEY", &k.secret)
        .args(["-vvv", "-e"])
        .arg(format!("P=sops:{}#db.password", file.display()))
        .args([
            "--",
            "sh",
            "-c",
            "test \"$P\" = \"$0\" && echo same; echo \"key:${SOPS_AGE_KEY:-unset}\"",
            CANARY,
        ])
        .run();
    r.assert_code(0);
    assert!(r.stdout.contains("same"), "{}", r.stdout);
    assert!(r.stdout.contains("key:unset"), "SOPS_AGE_KEY reached the child: {}", r.stdout);
    assert!(!r.stderr.contains(CANARY) && !r.stderr.contains(&k.secret), "{}", r.stderr);
    let r = secretexec()
        .env("SOPS_AGE_KEY", &k.secret)
        .args(["check", "-vvv", "-e"])
        .arg(format!("P=sops:{}#db.password", file.display()))
        .run();
    r.assert_code(0).assert_no_canary(CANARY);
    assert!(!r.all().contains(&k.secret));
}

/// The committed fixtures decrypt to the committed plaintexts, and the real
/// sops agrees.
#[test]
fn committed_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops");
    let key = std::fs::read_to_string(dir.join("test-key.txt")).unwrap();
    let key = key.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).unwrap().to_owned();
    let t = TestDir::new();
    for (enc, plain_json) in [
        ("secrets.enc.yaml", "secrets.yaml.json"),
        ("secrets.enc.json", "secrets.json.json"),
        ("secrets.enc.env", "secrets.env.json"),
        ("secrets.enc.ini", "secrets.ini.json"),
    ] {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(plain_json)).unwrap()).unwrap();
        let mut leaves = Vec::new();
        json_leaves(&expected, "", &mut leaves);
        let got = secretexec_leaves(&dir.join(enc), &leaves, &[("SOPS_AGE_KEY", &key)]);
        for (i, (loc, want)) in leaves.iter().enumerate() {
            assert_eq!(got[&format!("V{i}")].as_str(), Some(want.as_str()), "{enc} at {loc}");
        }
        assert_eq!(oracle_leaves(&t, &dir.join(enc), &key), leaves, "sops disagrees with {plain_json}");
    }
    let blob = std::fs::read(dir.join("blob.bin")).unwrap();
    let r = secretexec()
        .env("SOPS_AGE_KEY", &key)
        .arg("-e")
        .arg(format!("B=sops:{}#", dir.join("blob.enc").display()))
        .args(["--", "sh", "-c", "printf %s \"$B\""])
        .run();
    r.assert_code(0);
    assert_eq!(r.stdout.as_bytes(), &blob[..]);
}

/// The comment rules decide by comments, which secretexec does not keep: it
/// goes by each value's form, and must still agree with sops.
#[test]
fn comment_regex_rules() {
    let t = TestDir::new();
    let k = age_keygen(&t, "k.key");
    let doc = format!(
        "# sops:enc\nsecret: {CANARY}\nplain: p1\nnested:\n  # sops:enc\n  inner: s2\n  other: 42\nlist:\n  # sops:enc\n  - a\n  - b\n"
    );
    let src = t.file("c.yaml", &doc);
    for rule in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
        let cfg = t
            .file("cfg.yaml", format!("creation_rules:\n  - age: {}\n    {rule}: 'sops:enc'\n", k.recipient));
        let enc = sops(
            &["--config", &cfg.display().to_string(), "encrypt", &src.display().to_string()],
            &[],
            t.path(),
        );
        let text = String::from_utf8(enc).unwrap();
        assert!(
            text.contains("ENC[AES256_GCM") && !text.contains(CANARY) || rule.starts_with("un"),
            "{text}"
        );
        let file = t.file(&format!("{rule}.enc.yaml"), text);
        assert_eq!(compare(&t, &file, &k.secret), 6);
    }
}
