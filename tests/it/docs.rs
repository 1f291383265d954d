//! Every example in README.md and docs/ is checked: TOML mappings load,
//! shell snippets run against the built binary. The conventions (how to mark
//! a partial TOML fragment or a snippet that cannot run here) are stated at
//! the top of docs/README.md; keep the two in step.
//!
//! Fenced blocks are selected by the first word of the info string; the
//! rest of it (words separated by spaces or commas) are attributes, and
//! everything after the first `:` is the reason:
//!
//! | info string                    | what the test does                                  |
//! |--------------------------------|-----------------------------------------------------|
//! | `toml`                         | loads: `config::parse`, then `plan::build` per profile |
//! | `toml partial`                 | valid TOML, but only a fragment of a mapping        |
//! | `toml invalid`                 | must not load (an example of an error)              |
//! | `toml ignore: REASON`          | skipped; the reason is required                     |
//! | `sh` / `bash` / `shell` / `console` | run with bash -eu -o pipefail, must exit 0     |
//! | `sh no-run: REASON`            | not run; the reason is required                     |
//! | page: `<!-- docs-test: shell no-run: REASON -->` | no shell block of the page runs (generated listings) |
//! | `sh needs-openbao`             | run with the suite's OpenBao dev server: `VAULT_ADDR`, `VAULT_TOKEN` (root) set, `bao` on PATH |
//!
//! The runnable snippets of one page share one fresh directory and run in
//! page order, like a terminal session following the page: HOME is that
//! directory, PATH starts with the built `secretexec`, `SECRETEXEC_REPO` is
//! the repository root (for scripts it ships); nothing else of the test's
//! environment is inherited.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const SHELLS: &[&str] = &["sh", "bash", "shell", "console", "shell-session", "zsh"];

/// One fenced code block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    attrs: Vec<String>,
    /// Text after the first `:` of the info string, trimmed.
    reason: Option<String>,
    body: String,
}

impl Block {
    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }
}

/// The fenced code blocks of a CommonMark text: ``` or ~~~ fences of three
/// or more, closed by the same character at least as long. Blocks nested in
/// a longer fence (a page showing the conventions) are part of its body.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize, Block)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches(' ');
        let indent = raw.len() - line.len();
        let fence_char = line.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| line.chars().take_while(|x| *x == c).count());
        match &mut open {
            Some((c, len, block)) => {
                if indent < 4 && fence_char == Some(*c) && run >= *len && line[run..].trim().is_empty() {
                    out.push(open.take().expect("matched Some above").2);
                } else {
                    block.body.push_str(raw);
                    block.body.push('\n');
                }
            }
            None if indent < 4 && run >= 3 => {
                let c = fence_char.expect("run > 0 means a fence character");
                let info = line[run..].trim();
                if c == '`' && info.contains('`') {
                    continue; // inline code spanning a line, not a fence
                }
                let (head, reason) = match info.split_once(':') {
                    Some((h, r)) => (h, Some(r.trim().to_owned()).filter(|r| !r.is_empty())),
                    None => (info, None),
                };
                let mut words =
                    head.split([' ', ',', '\t']).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase);
                let lang = words.next().unwrap_or_default();
                let block = Block { line: i + 1, lang, attrs: words.collect(), reason, body: String::new() };
                open = Some((c, run, block));
            }
            None => {}
        }
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/ (man pages excluded), sorted.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.expect("readable directory entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    let readme = repo().join("README.md");
    if readme.exists() {
        out.push(readme);
    }
    walk(&repo().join("docs"), &mut out);
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}

const MARKING: &str = "see the conventions at the top of docs/README.md";

/// Parses a mapping and binds it the way a run would, without I/O: once
/// plain and once per profile, so that every reference, source name and
/// protected name is checked. Returns the problems, one per line.
fn load(text: &str) -> Result<(), String> {
    let lines = |ps: Vec<String>| ps.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n");
    let config =
        secretexec::config::parse(text).map_err(|ps| lines(ps.iter().map(|p| p.to_string()).collect()))?;
    let layers = std::iter::once(Vec::new()).chain(config.profiles.keys().map(|p| vec![p.clone()]));
    for profiles in layers {
        let overrides = secretexec::plan::Overrides { profiles, ..Default::default() };
        secretexec::plan::build(Some(config.clone()), &overrides)
            .map_err(|ps| lines(ps.iter().map(|p| p.to_string()).collect()))?;
    }
    Ok(())
}

/// A page-level marker for generated pages whose shell blocks are listings
/// (a benchmark report): `<!-- docs-test: shell no-run: REASON -->` on a
/// line of its own. `None` without the marker; `Err` if it has no reason.
fn page_no_run(text: &str) -> Option<Result<(), String>> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("<!-- docs-test: shell no-run"))?;
    let reason = line
        .strip_prefix("<!-- docs-test: shell no-run")
        .and_then(|r| r.strip_suffix("-->"))
        .and_then(|r| r.trim().strip_prefix(':'))
        .map(str::trim)
        .filter(|r| !r.is_empty());
    Some(reason.map(|_| ()).ok_or_else(|| {
        format!("the page-level marker needs a reason: <!-- docs-test: shell no-run: REASON --> ({MARKING})")
    }))
}

/// Checks one TOML block; returns a problem description.
fn check_toml(block: &Block) -> Result<(), String> {
    if block.has("ignore") {
        return block
            .reason
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| format!("`toml ignore` needs a reason after ':' ({MARKING})"));
    }
    if block.has("partial") {
        return toml::from_str::<toml::Table>(&block.body)
            .map(|_| ())
            .map_err(|e| format!("a `toml partial` block must still be valid TOML: {e}"));
    }
    let parsed = load(&block.body);
    if block.has("invalid") {
        return match parsed {
            Err(_) => Ok(()),
            Ok(_) => Err("marked `toml invalid` but the mapping loads".into()),
        };
    }
    parsed.map_err(|problems| {
        format!(
            "the mapping does not load:\n{}\n(a fragment: mark it `toml partial`; an error example: `toml invalid`; {MARKING})",
            problems
        )
    })
}

/// Runs one page's runnable shell snippets in order in a shared directory.
fn run_shell(page: &Path, blocks: &[&Block], problems: &mut Vec<String>) {
    let dir = TestDir::new();
    let bin_dir = Path::new(bin()).parent().expect("the binary lives in a directory").to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("PATH entries never contain ':'");
    for block in blocks {
        let mut cmd = Command::new("bash");
        cmd.args(["-eu", "-o", "pipefail", "-c", &block.body])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .env("LANG", "C.UTF-8")
            .env("SECRETEXEC_REPO", repo())
            .stdin(std::process::Stdio::null());
        if block.has("needs-openbao") {
            // The test suite's OpenBao dev server (KV v2 at secret/), its
            // root token, and the bao CLI on PATH.
            let bao = crate::support::openbao::shared();
            let bao_dir = tool("bao").parent().expect("a tool path has a directory").to_owned();
            let with_bao = std::env::join_paths(std::iter::once(bao_dir).chain(std::env::split_paths(&path)))
                .expect("PATH entries never contain ':'");
            cmd.env("PATH", with_bao).env("VAULT_ADDR", &bao.addr).env("VAULT_TOKEN", &bao.root);
        }
        let out = cmd.output().expect("run bash");
        if !out.status.success() {
            problems.push(format!(
                "{}:{}: the snippet failed ({}); if it cannot run here, mark it `{} no-run: REASON` ({MARKING})\n--- snippet\n{}--- stdout\n{}--- stderr\n{}",
                rel(page),
                block.line,
                out.status,
                block.lang,
                block.body,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            return; // later snippets of the page build on this one
        }
    }
}

#[test]
fn every_example_in_the_docs_loads_or_runs() {
    let pages = pages();
    assert!(pages.iter().any(|p| p.ends_with("docs/README.md")), "docs/README.md states the conventions");
    let mut problems = Vec::new();
    let (mut tomls, mut ran, mut not_run) = (0, 0, 0);
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let blocks = blocks(&text);
        let page_no_run = page_no_run(&text);
        if let Some(Err(e)) = &page_no_run {
            problems.push(format!("{}: {e}", rel(page)));
        }
        let page_no_run = matches!(page_no_run, Some(Ok(())));
        let mut runnable = Vec::new();
        for b in &blocks {
            if b.lang == "toml" {
                tomls += 1;
                if let Err(e) = check_toml(b) {
                    problems.push(format!("{}:{}: {e}", rel(page), b.line));
                }
            } else if SHELLS.contains(&b.lang.as_str()) {
                if page_no_run && !b.has("needs-openbao") {
                    not_run += 1;
                } else if b.has("no-run") || b.has("ignore") {
                    not_run += 1;
                    if b.reason.is_none() {
                        problems.push(format!(
                            "{}:{}: `{} no-run` needs a reason after ':' ({MARKING})",
                            rel(page),
                            b.line,
                            b.lang
                        ));
                    }
                } else {
                    ran += 1;
                    runnable.push(b);
                }
            }
        }
        run_shell(page, &runnable, &mut problems);
    }
    eprintln!(
        "docs: {} pages, {tomls} TOML blocks checked, {ran} shell snippets run, {not_run} marked no-run",
        pages.len()
    );
    assert!(problems.is_empty(), "{} problem(s) in the docs:\n\n{}", problems.len(), problems.join("\n\n"));
}

/// Lines outside fenced code blocks, with inline code spans blanked out.
fn prose(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches(' ');
        let c = line.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = c.map_or(0, |c| line.chars().take_while(|x| *x == c).count());
        match fence {
            Some((fc, len)) => {
                if c == Some(fc) && run >= len && line[run..].trim().is_empty() {
                    fence = None;
                }
            }
            None if run >= 3 && !(c == Some('`') && line[run..].contains('`')) => fence = c.map(|c| (c, run)),
            None => {
                let mut kept = String::new();
                for (j, part) in raw.split('`').enumerate() {
                    kept.push_str(if j % 2 == 0 { part } else { "" });
                }
                out.push((i + 1, kept));
            }
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (_, line) in prose(&text.replace('`', "")) {
        if let Some(h) = line.strip_prefix('#') {
            let base = slug(h.trim_start_matches('#'));
            let n = seen.iter().filter(|s| **s == base).count();
            seen.push(base.clone());
            out.push(if n == 0 { base } else { format!("{base}-{n}") });
        }
    }
    out
}

/// Relative link targets of a page: `(line, target)`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line_no, line) in prose(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
                out.push((line_no, target.to_owned()));
            }
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn links_between_pages_resolve() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, target) in links(&text) {
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !dest.exists() {
                problems.push(format!("{}:{line}: {target}: {} does not exist", rel(&page), rel(&dest)));
                continue;
            }
            if !anchor.is_empty() && dest.extension().is_some_and(|x| x == "md") {
                let known = anchors(&std::fs::read_to_string(&dest).unwrap());
                if !known.iter().any(|a| a == anchor) {
                    problems.push(format!(
                        "{}:{line}: {target}: no heading #{anchor} in {}",
                        rel(&page),
                        rel(&dest)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn link_and_anchor_extraction() {
    let md = "# Title\n## A `code` heading: x\n## Title\n[a](b.md#c) `[no](x.md)` [web](https://x.y) [self](#title-1)\n```\n[in](code.md)\n```\n";
    assert_eq!(links(md), [(4, "b.md#c".to_owned()), (4, "#title-1".to_owned())]);
    assert_eq!(anchors(md), ["title", "a-code-heading-x", "title-1"]);
}

#[test]
fn fences_attributes_and_reasons_are_read_as_documented() {
    let md = "\
text
```toml
a = 1
```
````markdown
```sh
nested, not a block of its own
```
````
```sh no-run: needs a live Vault server
vault login
```
~~~toml,partial
[x]
~~~
```console
$ true
```
    ```toml
    indented: an indented code block, not a fence
    ```
";
    let b = blocks(md);
    let summary: Vec<(usize, &str, Vec<&str>, Option<&str>)> = b
        .iter()
        .map(|b| (b.line, b.lang.as_str(), b.attrs.iter().map(String::as_str).collect(), b.reason.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (2, "toml", vec![], None),
            (5, "markdown", vec![], None),
            (10, "sh", vec!["no-run"], Some("needs a live Vault server")),
            (13, "toml", vec!["partial"], None),
            (16, "console", vec![], None),
        ]
    );
    assert_eq!(b[1].body, "```sh\nnested, not a block of its own\n```\n");
    assert_eq!(b[0].body, "a = 1\n");
}

#[test]
fn page_level_no_run_needs_a_reason() {
    assert_eq!(page_no_run("# x\n"), None);
    assert_eq!(page_no_run("<!-- docs-test: shell no-run: generated by bench/run -->\n"), Some(Ok(())));
    assert!(matches!(page_no_run("<!-- docs-test: shell no-run -->\n"), Some(Err(_))));
    assert!(matches!(page_no_run("<!-- docs-test: shell no-run:  -->\n"), Some(Err(_))));
}

#[test]
fn toml_checks_tell_a_fragment_from_a_broken_mapping() {
    let block = |attrs: &[&str], reason: Option<&str>, body: &str| Block {
        line: 1,
        lang: "toml".into(),
        attrs: attrs.iter().map(|s| s.to_string()).collect(),
        reason: reason.map(str::to_owned),
        body: body.into(),
    };
    let whole = "[env]\nA = { value = \"x\" }\n";
    assert!(check_toml(&block(&[], None, whole)).is_ok());
    assert!(check_toml(&block(&[], None, "[env]\nA = 1\n")).is_err(), "a wrong type is caught");
    assert!(check_toml(&block(&[], None, "bogus_key = true\n")).is_err(), "an unknown key is caught");
    assert!(check_toml(&block(&["partial"], None, "bogus_key = true\n")).is_ok());
    assert!(check_toml(&block(&["partial"], None, "= broken")).is_err());
    assert!(check_toml(&block(&["invalid"], None, "[env]\nA = 1\n")).is_ok());
    assert!(
        check_toml(&block(&["invalid"], None, whole)).is_err(),
        "an invalid example that loads is caught"
    );
    assert!(check_toml(&block(&["ignore"], None, "x")).is_err(), "ignore needs a reason");
    let protected = "[env]\nLD_PRELOAD = \"envfile:/x#A\"\n";
    assert!(check_toml(&block(&[], None, protected)).is_err(), "references are bound: protected names");
    let profile = "[profiles.p]\nenv.A = \"nosuch-source-type:x\"\n";
    assert!(check_toml(&block(&[], None, profile)).is_err(), "every profile is bound");
    assert!(check_toml(&block(&["ignore"], Some("why"), "x")).is_ok());
}

/// The first column (backticks removed) of a markdown table in `page`: the
/// table containing the first line that contains `marker`, or the first
/// table after it.
fn table_fields(page: &str, marker: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(page)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at =
        lines.iter().position(|l| l.contains(marker)).unwrap_or_else(|| panic!("{page} has no {marker:?}"));
    let mut start = at;
    while start > 0 && lines[start - 1].starts_with('|') && lines[start].starts_with('|') {
        start -= 1;
    }
    lines[start..]
        .iter()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .filter_map(|l| l.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .collect()
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn check_json_fields_are_the_documented_ones() {
    let t = TestDir::new();
    t.secret_file("app.env", "A=1\nB=2\n");
    t.file(
        "secretexec.toml",
        "[sources.local]\ntype = \"envfile\"\npath = \"app.env\"\n[env]\nA = \"local:A\"\nMISSING = \"local:NOPE\"\nOPT = { ref = \"local:NOPE\", optional = true }\n[profiles.p]\nenv.A = \"local:B\"\n",
    );
    let r = secretexec().current_dir(t.path()).args(["-p", "p", "check", "--json"]).run();
    r.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("check --json prints JSON");
    assert_eq!(keys(&doc), sorted(table_fields("docs/check-json.md", "| `schema` |")));
    let variables = doc["variables"].as_array().unwrap();
    let statuses: Vec<&str> = variables.iter().filter_map(|v| v["status"].as_str()).collect();
    for s in ["ok", "error", "missing-optional", "overridden"] {
        assert!(statuses.contains(&s), "the fixture covers status {s}: {statuses:?}");
    }
    let documented = sorted(table_fields("docs/check-json.md", "Each entry of `variables`:"));
    for v in variables {
        assert_eq!(keys(v), documented, "variables[] fields");
    }
    let documented = sorted(table_fields("docs/check-json.md", "Each entry of `sources`:"));
    for s in doc["sources"].as_array().unwrap() {
        assert_eq!(keys(s), documented, "sources[] fields");
    }
    assert_eq!(doc["schema"], secretexec::check::SCHEMA);
}

#[test]
fn json_log_fields_are_the_documented_ones() {
    let t = TestDir::new();
    t.secret_file("app.env", "A=1\n");
    let r = secretexec()
        .current_dir(t.path())
        .args(["-vvv", "--log-format", "json", "-e", "A=envfile:app.env#A", "--", "true"])
        .run();
    r.assert_code(0);
    let documented = sorted(table_fields("docs/logging.md", "| `ts` |"));
    let mut lines = 0;
    for line in r.stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(keys(&v), documented, "{line}");
        lines += 1;
    }
    assert!(lines > 0, "-vvv logs something");
}
