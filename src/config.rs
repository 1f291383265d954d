//! The mapping file: TOML text -> [`Config`], checked, with no I/O beyond
//! reading the file.
//!
//! Every problem is collected and reported at once (unknown keys with their
//! line, wrong types, bad references), not only the first. Values in the
//! mapping are never echoed in an error: a misplaced token must not be
//! printed back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::sources::{Kind, SourceConfig, UnknownKey};

/// One problem in the mapping file, with its position when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// How a variable's value reaches the child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// The value itself, in the environment.
    #[default]
    Env,
    /// A path to a 0400 in-memory file holding the value.
    File,
}

/// One `[env]` entry as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvEntry {
    pub what: EnvValue,
    pub optional: bool,
    pub delivery: Delivery,
    /// Byte span of the entry in the mapping, for messages.
    pub line: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// A reference, resolved through a source.
    Ref(String),
    /// A plain, non-secret value (`{ value = "info" }`).
    Plain(String),
}

/// One `[[import]]` entry: every key of a bulk reference.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Import {
    #[serde(rename = "ref")]
    pub reference: String,
    /// Prepended to every imported name.
    #[serde(default)]
    pub prefix: String,
    /// Replace characters invalid in an environment name by `_` instead of failing.
    #[serde(default)]
    pub sanitize: bool,
    /// A source that cannot be read is skipped with a warning.
    #[serde(default)]
    pub optional: bool,
    /// Import only these keys (as named in the source).
    #[serde(default)]
    pub only: Option<Vec<String>>,
    /// Skip these keys (as named in the source).
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(skip)]
    pub line: Option<usize>,
}

/// `[profiles.NAME]`: a layer over `[env]` and `[[import]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub env: BTreeMap<String, EnvEntry>,
    pub import: Vec<Import>,
}

/// `reload_on`: what, besides the `watch` timer, makes the supervisor re-resolve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOn {
    /// SIGHUP to secretexec re-resolves now (and is not forwarded).
    Sighup,
    /// SIGHUP is forwarded to the child like the other signals.
    #[default]
    None,
}

/// `on_change`: what the supervisor does when a value changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnChange {
    /// Stop the child (stop_signal, stop_timeout, SIGKILL) and start it with the new values.
    #[default]
    Restart,
    /// Rewrite `as = "file"` secrets, then send this signal to the child.
    Signal(i32),
    /// Log only.
    None,
}

/// `on_error`: what a failed re-resolve (store down) does to the running child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Keep it running; retry with backoff.
    #[default]
    Keep,
    /// Stop it and exit 125.
    Stop,
}

/// The `[supervise]` table: rotation and stopping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervise {
    /// Re-resolve every source this often (a source's own `watch` wins).
    pub watch: Option<Duration>,
    pub reload_on: ReloadOn,
    pub on_change: OnChange,
    /// Sent to the child's process group to stop it.
    pub stop_signal: i32,
    /// How long to wait after `stop_signal` before SIGKILL.
    pub stop_timeout: Duration,
    /// A random delay up to this long before acting on a change.
    pub splay: Duration,
    pub on_error: OnError,
}

impl Default for Supervise {
    fn default() -> Self {
        Supervise {
            watch: None,
            reload_on: ReloadOn::None,
            on_change: OnChange::Restart,
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            splay: Duration::ZERO,
            on_error: OnError::Keep,
        }
    }
}

/// `[supervise]` as written.
#[derive(Deserialize)]
struct SuperviseTable {
    #[serde(default, with = "crate::duration::option")]
    watch: Option<Duration>,
    #[serde(default)]
    reload_on: ReloadOn,
    #[serde(default)]
    on_change: Option<String>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default, with = "crate::duration::option")]
    stop_timeout: Option<Duration>,
    #[serde(default, with = "crate::duration::option")]
    splay: Option<Duration>,
    #[serde(default)]
    on_error: OnError,
}

/// Parses `"restart"`, `"none"` or `"signal:SIGHUP"` (also `signal:HUP`, `signal:1`).
pub fn parse_on_change(s: &str) -> Result<OnChange, String> {
    match s {
        "restart" => Ok(OnChange::Restart),
        "none" => Ok(OnChange::None),
        _ => match s.strip_prefix("signal:") {
            Some(sig) => crate::launch::supervise::signal_by_name(sig).map(OnChange::Signal),
            None => Err(format!(
                "on_change must be \"restart\", \"none\" or \"signal:NAME\" (e.g. signal:SIGHUP), not {s:?}"
            )),
        },
    }
}

/// Top-level settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct Settings {
    #[serde(default)]
    clear_env: bool,
    #[serde(default)]
    keep: Option<Vec<String>>,
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    allow_protected: Vec<String>,
    #[serde(default)]
    pass_credentials: bool,
    #[serde(default, with = "crate::duration::option")]
    timeout: Option<Duration>,
}

/// The mapping, checked for shape; references are bound later by the plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub env: BTreeMap<String, EnvEntry>,
    pub import: Vec<Import>,
    pub profiles: BTreeMap<String, Profile>,
    pub clear_env: bool,
    pub keep: Option<Vec<String>>,
    pub protected: Vec<String>,
    pub allow_protected: Vec<String>,
    pub pass_credentials: bool,
    pub timeout: Option<Duration>,
    pub supervise: Supervise,
    /// A source's own `watch` interval, by source name.
    pub source_watch: BTreeMap<String, Duration>,
    /// Sources whose table had problems (already reported): references to
    /// them are not reported again as unknown.
    pub broken_sources: Vec<String>,
}

/// A mapping with problems: what could be read, and every problem.
#[derive(Debug)]
pub struct Broken {
    pub partial: Config,
    pub problems: Vec<ConfigProblem>,
}

/// Where to look for the mapping when `--config` is not given, in order.
pub fn discover() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SECRETEXEC_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    ["./secretexec.toml", "/etc/secretexec/secretexec.toml"].iter().map(PathBuf::from).find(|p| p.exists())
}

struct Ctx<'a> {
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Ctx<'_> {
    fn at(&mut self, span: Option<std::ops::Range<usize>>, message: String) {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.problems.push(ConfigProblem { line, column, message });
    }

    fn line(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// Deserializes `value` into `T`, reporting unknown keys (each with its
    /// line) and type errors. `context` names the table (`sources.vault`).
    fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        context: &str,
        allowed_extra: &[&str],
    ) -> Option<T> {
        let mut unknown = Vec::new();
        let result: Result<T, toml::de::Error> =
            serde_ignored::deserialize(value.clone().into_deserializer(), |p| unknown.push(p.to_string()));
        for key in unknown {
            if allowed_extra.contains(&key.as_str()) {
                continue;
            }
            let span = find_span(value, &key);
            let place =
                if context.is_empty() { "at the top level".to_owned() } else { format!("in {context}") };
            self.at(span, format!("unknown key {:?} {place}", join(context, &key)));
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or_else(|| Some(value.span()));
                let message = scrub_serde_message(e.message());
                let message = if context.is_empty() { message } else { format!("in {context}: {message}") };
                self.at(span, message);
                None
            }
        }
    }
}

fn join(context: &str, key: &str) -> String {
    if context.is_empty() { key.to_owned() } else { format!("{context}.{key}") }
}

/// serde messages quote the offending value (`invalid type: string "…"`);
/// drop the quoted part so a misplaced secret is never echoed.
fn scrub_serde_message(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(start) = rest.find(['"', '`']) {
        let q = rest.as_bytes()[start] as char;
        out.push_str(&rest[..start]);
        match rest[start + 1..].find(q) {
            Some(end) => {
                out.push_str("(value hidden)");
                rest = &rest[start + 1 + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    // serde names the expected field set with backticks too; those are not values,
    // but hiding them costs little: the unknown-key report names the key.
    out.trim().to_owned()
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The span of the key at a dotted `path` (as serde_ignored prints it) inside `value`.
fn find_span(value: &Spanned<DeValue<'_>>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut cur = value;
    let mut span = None;
    for seg in path.split('.') {
        match cur.get_ref() {
            DeValue::Table(t) => {
                let (k, v) = t.iter().find(|(k, _)| k.get_ref() == seg)?;
                span = Some(k.span());
                cur = v;
            }
            DeValue::Array(a) => {
                let v = a.get(seg.parse::<usize>().ok()?)?;
                span = Some(v.span());
                cur = v;
            }
            _ => return span,
        }
    }
    span
}

fn as_table<'a, 'i>(v: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

/// Reads and checks the mapping at `path`. Relative paths inside it are
/// taken relative to its directory. On problems, what could be read comes
/// back too, so that reference problems can be reported in the same run.
pub fn load(path: &Path) -> Result<Config, Box<Broken>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Box::new(Broken {
            partial: Config::default(),
            problems: vec![ConfigProblem {
                line: None,
                column: None,
                message: format!("cannot read {}: {e}", path.display()),
            }],
        })
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (mut config, problems) = parse_partial(&text);
    for source in config.sources.values_mut() {
        source.rebase(base);
    }
    config.path = Some(path.to_owned());
    if problems.is_empty() { Ok(config) } else { Err(Box::new(Broken { partial: config, problems })) }
}

/// Parses mapping text. All problems are returned together.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    match parse_partial(text) {
        (config, problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// Parses what it can; every problem found is returned beside it.
fn parse_partial(text: &str) -> (Config, Vec<ConfigProblem>) {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (line, column) =
                e.span().map(|s| line_col(text, s.start)).map_or((None, None), |(l, c)| (Some(l), Some(c)));
            let problem = ConfigProblem { line, column, message: format!("TOML syntax: {}", e.message()) };
            return (Config::default(), vec![problem]);
        }
    };
    let mut cx = Ctx { text, problems: Vec::new() };
    let mut config = Config::default();
    let root_value = Spanned::new(root.span(), DeValue::Table(root.get_ref().clone()));

    if let Some(s) =
        cx.typed::<Settings>(&root_value, "", &["sources", "env", "import", "profiles", "supervise"])
    {
        config.clear_env = s.clear_env;
        config.keep = s.keep;
        config.protected = s.protected;
        config.allow_protected = s.allow_protected;
        config.pass_credentials = s.pass_credentials;
        config.timeout = s.timeout;
    }
    let table = root.get_ref();

    if let Some(sources) = table.get("sources") {
        match as_table(sources) {
            None => cx.at(Some(sources.span()), "sources must be a table of [sources.NAME] tables".into()),
            Some(t) => {
                for (name, value) in t {
                    match source_config(&mut cx, name, value) {
                        Some((sc, watch)) => {
                            config.sources.insert(name.get_ref().to_string(), sc);
                            if let Some(w) = watch {
                                config.source_watch.insert(name.get_ref().to_string(), w);
                            }
                        }
                        None => config.broken_sources.push(name.get_ref().to_string()),
                    }
                }
            }
        }
    }
    if let Some(sup) = table.get("supervise") {
        if let Some(s) = supervise_table(&mut cx, sup) {
            config.supervise = s;
        }
    }
    if let Some(env) = table.get("env") {
        config.env = env_table(&mut cx, env, "env");
    }
    if let Some(import) = table.get("import") {
        config.import = imports(&mut cx, import, "import");
    }
    if let Some(profiles) = table.get("profiles") {
        match as_table(profiles) {
            None => cx.at(Some(profiles.span()), "profiles must be a table of [profiles.NAME] tables".into()),
            Some(t) => {
                for (name, value) in t {
                    let ctx = format!("profiles.{}", name.get_ref());
                    let Some(pt) = as_table(value) else {
                        cx.at(Some(value.span()), format!("{ctx} must be a table"));
                        continue;
                    };
                    let mut profile = Profile::default();
                    for (k, v) in pt {
                        match k.get_ref().as_ref() {
                            "env" => profile.env = env_table(&mut cx, v, &format!("{ctx}.env")),
                            "import" => profile.import = imports(&mut cx, v, &format!("{ctx}.import")),
                            other => cx.at(
                                Some(k.span()),
                                format!(
                                    "unknown key {:?} in {ctx} (a profile holds env and import)",
                                    format!("{ctx}.{other}")
                                ),
                            ),
                        }
                    }
                    config.profiles.insert(name.get_ref().to_string(), profile);
                }
            }
        }
    }
    (config, cx.problems)
}

/// Keys every `[sources.NAME]` table may hold besides the backend's own.
const COMMON_SOURCE_KEYS: &[&str] = &["type", "watch"];

fn supervise_table(cx: &mut Ctx<'_>, value: &Spanned<DeValue<'_>>) -> Option<Supervise> {
    if as_table(value).is_none() {
        cx.at(Some(value.span()), "supervise must be a table: [supervise]".into());
        return None;
    }
    let t: SuperviseTable = cx.typed(value, "supervise", &[])?;
    let span_of = |key: &str| find_span(value, key);
    let mut out =
        Supervise { watch: t.watch, reload_on: t.reload_on, on_error: t.on_error, ..Supervise::default() };
    if t.watch == Some(Duration::ZERO) {
        cx.at(span_of("watch"), "supervise.watch must be longer than zero".into());
    }
    if let Some(s) = &t.on_change {
        match parse_on_change(s) {
            Ok(c) => out.on_change = c,
            Err(e) => cx.at(span_of("on_change"), format!("supervise.on_change: {e}")),
        }
    }
    if let Some(s) = &t.stop_signal {
        match crate::launch::supervise::signal_by_name(s) {
            Ok(n) => out.stop_signal = n,
            Err(e) => cx.at(span_of("stop_signal"), format!("supervise.stop_signal: {e}")),
        }
    }
    if let Some(d) = t.stop_timeout {
        out.stop_timeout = d;
    }
    if let Some(d) = t.splay {
        out.splay = d;
    }
    Some(out)
}

/// A source's settings and its own `watch` interval.
fn source_config(
    cx: &mut Ctx<'_>,
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Option<(SourceConfig, Option<Duration>)> {
    let ctx = format!("sources.{}", name.get_ref());
    if !name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || name.get_ref().is_empty()
    {
        cx.at(Some(name.span()), format!("source name {:?}: use letters, digits, _ and -", name.get_ref()));
        return None;
    }
    let Some(t) = as_table(value) else {
        cx.at(Some(value.span()), format!("{ctx} must be a table"));
        return None;
    };
    let kinds = Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    let kind = match t.get("type").map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => match Kind::from_name(s) {
            Some(k) => k,
            None => {
                let span = t.get("type").map(|v| v.span());
                cx.at(span, format!("{ctx}: unknown source type {s:?} (supported: {kinds})"));
                return None;
            }
        },
        _ => {
            cx.at(Some(value.span()), format!("{ctx}: missing type = \"...\" (one of: {kinds})"));
            return None;
        }
    };
    let watch = match t.get("watch") {
        None => None,
        Some(w) => match w.get_ref() {
            DeValue::String(s) => match crate::duration::parse(s) {
                Ok(d) if d > Duration::ZERO => Some(d),
                Ok(_) => {
                    cx.at(Some(w.span()), format!("{ctx}.watch must be longer than zero"));
                    None
                }
                Err(e) => {
                    cx.at(Some(w.span()), format!("{ctx}.watch: {e}"));
                    None
                }
            },
            _ => {
                cx.at(Some(w.span()), format!("{ctx}.watch must be a duration string, e.g. \"30s\""));
                None
            }
        },
    };
    let mut unknown: Vec<UnknownKey> = Vec::new();
    let parsed = SourceConfig::from_spanned(kind, value, &mut unknown);
    for UnknownKey(key) in unknown {
        if COMMON_SOURCE_KEYS.contains(&key.as_str()) {
            continue;
        }
        let span = find_span(value, &key);
        cx.at(span, format!("unknown key {:?} for source type {}", format!("{ctx}.{key}"), kind.name()));
    }
    match parsed {
        Ok(c) => Some((c, watch)),
        Err((span, message)) => {
            cx.at(span.or(Some(value.span())), format!("in {ctx}: {}", scrub_serde_message(&message)));
            None
        }
    }
}

#[derive(Deserialize)]
struct EnvTableEntry {
    #[serde(rename = "ref")]
    reference: Option<String>,
    value: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default, rename = "as")]
    delivery: Delivery,
}

fn env_table(cx: &mut Ctx<'_>, value: &Spanned<DeValue<'_>>, ctx: &str) -> BTreeMap<String, EnvEntry> {
    let mut out = BTreeMap::new();
    let Some(t) = as_table(value) else {
        cx.at(Some(value.span()), format!("{ctx} must be a table of NAME = \"REFERENCE\""));
        return out;
    };
    for (name, v) in t {
        let key = name.get_ref().to_string();
        let here = format!("{ctx}.{key}");
        let line = Some(cx.line(name.span().start));
        let entry = match v.get_ref() {
            DeValue::String(s) => Some(EnvEntry {
                what: EnvValue::Ref(s.to_string()),
                optional: false,
                delivery: Delivery::Env,
                line,
            }),
            DeValue::Table(_) => cx.typed::<EnvTableEntry>(v, &here, &[]).and_then(|e| {
                let what = match (e.reference, e.value) {
                    (Some(r), None) => EnvValue::Ref(r),
                    (None, Some(p)) => EnvValue::Plain(p),
                    _ => {
                        cx.at(
                            Some(v.span()),
                            format!("{here}: set exactly one of ref = \"SOURCE:LOCATOR\" or value = \"...\""),
                        );
                        return None;
                    }
                };
                if matches!(what, EnvValue::Plain(_)) && e.delivery == Delivery::File {
                    cx.at(
                        Some(v.span()),
                        format!("{here}: as = \"file\" is for secrets (ref), not plain values"),
                    );
                    return None;
                }
                Some(EnvEntry { what, optional: e.optional, delivery: e.delivery, line })
            }),
            _ => {
                cx.at(
                    Some(v.span()),
                    format!("{here}: expected \"SOURCE:LOCATOR\" or a table {{ ref = ..., optional = ... }}"),
                );
                None
            }
        };
        if let Some(e) = entry {
            out.insert(key, e);
        }
    }
    out
}

fn imports(cx: &mut Ctx<'_>, value: &Spanned<DeValue<'_>>, ctx: &str) -> Vec<Import> {
    let DeValue::Array(items) = value.get_ref() else {
        cx.at(Some(value.span()), format!("{ctx} must be an array of tables: [[{ctx}]]"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{ctx}[{i}]");
        if let Some(mut imp) = cx.typed::<Import>(item, &here, &[]) {
            imp.line = Some(cx.line(item.span().start));
            out.push(imp);
        }
    }
    out
}

impl SourceConfig {
    /// Deserializes a backend's settings from its spanned TOML table.
    fn from_spanned(
        kind: Kind,
        value: &Spanned<DeValue<'_>>,
        unknown: &mut Vec<UnknownKey>,
    ) -> Result<SourceConfig, (Option<std::ops::Range<usize>>, String)> {
        SourceConfig::deserialize_kind(kind, value.clone().into_deserializer(), unknown)
            .map_err(|e: toml::de::Error| (e.span(), e.message().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_loads() {
        let c = parse(
            r#"
clear_env = true
keep = ["PATH", "HOME"]
timeout = "20s"
[sources.local]
type = "envfile"
path = "/etc/app/app.env"
[env]
A = "local:A"
B = { ref = "local:B", optional = true }
C = { value = "info" }
D = { ref = "local:D", as = "file" }
[[import]]
ref = "local:*"
prefix = "APP_"
[profiles.billing]
env.S = "local:S"
"#,
        )
        .unwrap();
        assert!(c.clear_env);
        assert_eq!(c.timeout, Some(Duration::from_secs(20)));
        assert!(c.env["B"].optional);
        assert_eq!(c.env["C"].what, EnvValue::Plain("info".into()));
        assert_eq!(c.env["D"].delivery, Delivery::File);
        assert_eq!(c.import[0].prefix, "APP_");
        assert!(c.profiles["billing"].env.contains_key("S"));
    }

    #[test]
    fn every_unknown_key_reported_with_its_line() {
        let problems = parse(
            "clear_envv = true\n[sources.local]\ntype = \"envfile\"\npath = \"/x\"\npaht = \"/y\"\n[env]\nA = { ref = \"local:A\", optinal = true }\n",
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{text:?}");
        assert!(text[0].starts_with("line 1, column 1: unknown key \"clear_envv\""), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("line 5") && t.contains("sources.local.paht")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("line 7") && t.contains("env.A.optinal")), "{text:?}");
    }

    #[test]
    fn type_errors_do_not_echo_values() {
        let problems = parse("[env]\nA = { ref = \"x:y\", optional = \"hunter2-canary\" }\n").unwrap_err();
        let text = problems[0].to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.starts_with("line 2"), "{text}");
    }

    #[test]
    fn top_level_type_errors_read_well() {
        let problems = parse("timeout = \"soon\"\n").unwrap_err();
        assert_eq!(problems[0].line, Some(1));
        assert!(problems[0].message.starts_with("invalid duration"), "{problems:?}");
    }

    #[test]
    fn unknown_source_type_is_a_clear_error() {
        let problems = parse("[sources.x]\ntype = \"consul\"\n").unwrap_err();
        assert!(problems[0].message.contains("unknown source type \"consul\""), "{problems:?}");
        assert_eq!(problems[0].line, Some(2));
    }

    #[test]
    fn supervise_table_and_source_watch() {
        let c = parse(
            "[sources.local]\ntype = \"envfile\"\npath = \"/x\"\nwatch = \"30s\"\n[supervise]\nwatch = \"5m\"\n\
             reload_on = \"sighup\"\non_change = \"signal:SIGUSR1\"\nstop_signal = \"INT\"\nstop_timeout = \"3s\"\n\
             splay = \"1s\"\non_error = \"stop\"\n",
        )
        .unwrap();
        assert_eq!(c.source_watch["local"], Duration::from_secs(30));
        let s = &c.supervise;
        assert_eq!(s.watch, Some(Duration::from_secs(300)));
        assert_eq!(s.reload_on, ReloadOn::Sighup);
        assert_eq!(s.on_change, OnChange::Signal(libc::SIGUSR1));
        assert_eq!(s.stop_signal, libc::SIGINT);
        assert_eq!(s.stop_timeout, Duration::from_secs(3));
        assert_eq!(s.splay, Duration::from_secs(1));
        assert_eq!(s.on_error, OnError::Stop);
        assert_eq!(parse("").unwrap().supervise, Supervise::default());
    }

    #[test]
    fn supervise_problems_are_reported_with_lines() {
        let problems = parse(
            "[sources.local]\ntype = \"envfile\"\npath = \"/x\"\nwatch = \"soon\"\n[supervise]\n\
             on_change = \"reboot\"\nstop_signal = \"SIGNOPE\"\nwatchh = \"1s\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{text:?}");
        assert!(
            text.iter().any(|t| t.starts_with("line 4") && t.contains("sources.local.watch")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.starts_with("line 6") && t.contains("on_change")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("line 7") && t.contains("unknown signal")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("line 8") && t.contains("supervise.watchh")), "{text:?}");
    }
}
