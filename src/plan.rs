//! argv + mapping -> [`Plan`]: every variable bound to a source and a
//! locator, in precedence order, checked before any secret is fetched.
//!
//! Precedence, lowest first: inherited environment < `[[import]]` < `[env]`
//! < profiles in the order given (each: imports, then env) < `--env-file`
//! < `-e`. Problems are collected and reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, ConfigProblem, Delivery, EnvEntry, EnvValue, Import};
use crate::reference::{self, SecretRef};
use crate::sources::{SourceConfig, Sources, envfile};

/// Names a secret source may not set unless listed in `allow_protected`.
pub const PROTECTED: &[&str] = &["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "PATH"];

/// Inherited under `--clear-env` unless `keep` replaces the list.
pub const DEFAULT_KEEP: &[&str] = &["PATH", "HOME", "LANG", "TERM", "TZ"];

/// Resolve deadline when the mapping sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an assignment came from, for `check` and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Import(usize),
    Env,
    ProfileImport(String, usize),
    ProfileEnv(String),
    EnvFileFlag(PathBuf),
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Import(i) => write!(f, "import[{i}]"),
            Origin::Env => f.write_str("env"),
            Origin::ProfileImport(p, i) => write!(f, "profiles.{p}.import[{i}]"),
            Origin::ProfileEnv(p) => write!(f, "profiles.{p}.env"),
            Origin::EnvFileFlag(p) => write!(f, "--env-file {}", p.display()),
            Origin::Flag => f.write_str("-e"),
        }
    }
}

/// What an assignment sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One variable.
    Var { name: String, delivery: Delivery },
    /// Every key a bulk reference returns.
    Import { prefix: String, sanitize: bool, only: Option<Vec<String>>, exclude: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Ref(SecretRef),
    Plain(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub target: Target,
    pub value: Value,
    pub optional: bool,
    pub origin: Origin,
}

/// Everything needed to resolve and launch, checked.
#[derive(Clone, Debug)]
pub struct Plan {
    pub config_path: Option<PathBuf>,
    /// Named and ad-hoc sources by id.
    pub sources: Sources,
    /// Lowest precedence first.
    pub assignments: Vec<Assignment>,
    pub clear_env: bool,
    pub keep: Vec<String>,
    pub protected: BTreeSet<String>,
    pub pass_credentials: bool,
    pub timeout: Duration,
    /// Supervise mode: rotation and stopping (`[supervise]`).
    pub supervise: crate::config::Supervise,
    /// A source's own `watch` interval, by source id (overrides `supervise.watch`).
    pub source_watch: BTreeMap<String, Duration>,
}

/// The parts of the command line that shape the plan.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub profiles: Vec<String>,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub clear_env: bool,
    pub keep: Vec<String>,
    pub timeout: Option<Duration>,
}

/// A problem found while planning; several are reported together.
#[derive(Clone, Debug)]
pub enum Problem {
    Config(ConfigProblem),
    Reference { origin: String, name: String, error: reference::RefError },
    Other(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Config(p) => write!(f, "{p}"),
            Problem::Reference { origin, name, error } => {
                write!(f, "{origin}: {name}: bad reference\n{}", error.pointed())
            }
            Problem::Other(m) => f.write_str(m),
        }
    }
}

pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Binds references to sources, collecting problems.
struct Binder<'a> {
    named: &'a Sources,
    /// The mapping's directory.
    base: Option<&'a Path>,
    broken: &'a [String],
    adhoc: Sources,
    problems: Vec<Problem>,
    out: Vec<Assignment>,
}

impl Binder<'_> {
    fn bind(&mut self, raw: &str, origin: &Origin, name: &str) -> Option<SecretRef> {
        // Bare references in the mapping resolve relative paths like its
        // [sources] tables do; on the command line, from the current directory.
        let base = if *origin == Origin::Flag { None } else { self.base };
        if let Some((source, _)) = raw.split_once(':')
            && self.broken.iter().any(|b| b == source)
        {
            // The source's own problem was reported already.
            return None;
        }
        reference::parse(raw, self.named, &mut self.adhoc, base)
            .map_err(|error| {
                self.problems.push(Problem::Reference {
                    origin: origin.to_string(),
                    name: name.to_owned(),
                    error,
                })
            })
            .ok()
    }

    fn imports(&mut self, imports: &[Import], origin: impl Fn(usize) -> Origin) {
        for (i, imp) in imports.iter().enumerate() {
            let origin = origin(i);
            if !imp.prefix.is_empty() && !imp.sanitize && !is_env_name(&format!("{}X", imp.prefix)) {
                self.problems.push(Problem::Other(format!(
                    "{origin}: prefix {:?} cannot start an environment name",
                    imp.prefix
                )));
            }
            if let Some(r) = self.bind(&imp.reference, &origin, "(import)") {
                self.out.push(Assignment {
                    target: Target::Import {
                        prefix: imp.prefix.clone(),
                        sanitize: imp.sanitize,
                        only: imp.only.clone(),
                        exclude: imp.exclude.clone(),
                    },
                    value: Value::Ref(r),
                    optional: imp.optional,
                    origin,
                });
            }
        }
    }

    fn env(&mut self, env: &BTreeMap<String, EnvEntry>, origin: &Origin) {
        for (name, entry) in env {
            let value = match &entry.what {
                EnvValue::Plain(v) => Value::Plain(v.clone()),
                EnvValue::Ref(raw) => match self.bind(raw, origin, name) {
                    Some(r) => Value::Ref(r),
                    None => continue,
                },
            };
            self.var(name, value, entry.delivery, entry.optional, origin.clone());
        }
    }

    fn var(&mut self, name: &str, value: Value, delivery: Delivery, optional: bool, origin: Origin) {
        if !is_env_name(name) {
            self.problems.push(Problem::Other(format!(
                "{origin}: {name:?} is not a valid environment variable name (letters, digits, _; not starting with a digit)"
            )));
            return;
        }
        self.out.push(Assignment {
            target: Target::Var { name: name.to_owned(), delivery },
            value,
            optional,
            origin,
        });
    }
}

/// Builds the plan. `config` is `None` when no mapping file exists (ad-hoc
/// flags only).
pub fn build(config: Option<Config>, ov: &Overrides) -> Result<Plan, Vec<Problem>> {
    let config = config.unwrap_or_default();
    let base = config
        .path
        .as_deref()
        .and_then(Path::parent)
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    let mut b = Binder {
        named: &config.sources,
        base,
        broken: &config.broken_sources,
        adhoc: Sources::new(),
        problems: Vec::new(),
        out: Vec::new(),
    };

    b.imports(&config.import, Origin::Import);
    b.env(&config.env, &Origin::Env);
    for p in &ov.profiles {
        match config.profiles.get(p) {
            Some(profile) => {
                b.imports(&profile.import, |i| Origin::ProfileImport(p.clone(), i));
                b.env(&profile.env, &Origin::ProfileEnv(p.clone()));
            }
            None => {
                let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
                b.problems.push(Problem::Other(format!(
                    "profile {p:?} is not defined in the mapping (defined: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )));
            }
        }
    }
    for path in &ov.env_files {
        let id = format!("--env-file {}", path.display());
        b.adhoc.insert(
            id.clone(),
            SourceConfig::Envfile(envfile::Config { path: path.clone(), follow_symlinks: false }),
        );
        b.out.push(Assignment {
            target: Target::Import {
                prefix: String::new(),
                sanitize: false,
                only: None,
                exclude: Vec::new(),
            },
            value: Value::Ref(SecretRef {
                source: id,
                locator: "*".into(),
                raw: format!("envfile:{}", path.display()),
            }),
            optional: false,
            origin: Origin::EnvFileFlag(path.clone()),
        });
    }
    for flag in &ov.env {
        let Some((name, raw)) = flag.split_once('=') else {
            b.problems.push(Problem::Other(
                "-e: expected NAME=REFERENCE, e.g. -e DB_URL=vault:secret/app#db_url".into(),
            ));
            continue;
        };
        if let Some(r) = b.bind(raw, &Origin::Flag, name) {
            b.var(name, Value::Ref(r), Delivery::Env, false, Origin::Flag);
        }
    }
    let Binder { adhoc, mut problems, out: assignments, .. } = b;

    let mut protected: BTreeSet<String> = PROTECTED.iter().map(|s| (*s).to_owned()).collect();
    protected.extend(config.protected.iter().cloned());
    for allowed in &config.allow_protected {
        protected.remove(allowed);
    }
    for a in &assignments {
        if let (Target::Var { name, .. }, Value::Ref(r)) = (&a.target, &a.value)
            && protected.contains(name)
        {
            problems.push(Problem::Other(format!(
                "{}: {name} is a protected name and cannot be set from a secret source ({}); \
                 list it in allow_protected = [...] if this is intended",
                a.origin, r.raw
            )));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut sources = config.sources.clone();
    sources.extend(adhoc);
    // Only sources something refers to are opened.
    let used: BTreeSet<&str> = assignments
        .iter()
        .filter_map(|a| match &a.value {
            Value::Ref(r) => Some(r.source.as_str()),
            Value::Plain(_) => None,
        })
        .collect();
    sources.retain(|id, _| used.contains(id.as_str()));

    let source_watch = config
        .source_watch
        .iter()
        .filter(|(id, _)| sources.contains_key(*id))
        .map(|(id, d)| (id.clone(), *d))
        .collect();

    let keep = if !ov.keep.is_empty() {
        ov.keep.clone()
    } else if let Some(k) = &config.keep {
        k.clone()
    } else {
        DEFAULT_KEEP.iter().map(|s| (*s).to_owned()).collect()
    };
    Ok(Plan {
        config_path: config.path.clone(),
        sources,
        assignments,
        clear_env: config.clear_env || ov.clear_env,
        keep,
        protected,
        pass_credentials: config.pass_credentials,
        timeout: ov.timeout.or(config.timeout).unwrap_or(DEFAULT_TIMEOUT),
        supervise: config.supervise.clone(),
        source_watch,
    })
}

impl Plan {
    /// True if the mapping file holds a credential and must pass the strict
    /// permission check itself.
    pub fn mapping_holds_credentials(&self) -> bool {
        self.sources.values().any(SourceConfig::holds_inline_credential)
    }
}
