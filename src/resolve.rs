//! Fetches every referenced secret: one call per source with all of its
//! locators, sources concurrently, all bounded by the plan's deadline.
//!
//! Promises: every failure is collected (not only the first); a value that
//! a later assignment overrides by name is never fetched; every fetched value
//! is registered with the redactor before anything else can print it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::config::Delivery;
use crate::plan::{Assignment, Origin, Plan, Target, Value, is_env_name};
use crate::redact;
use crate::secret::Secret;
use crate::sources::{Backend, Context, FailKind, FetchError, Fetched};

/// A resolved value on its way to the child.
pub enum EnvVal {
    Plain(String),
    Secret(Secret),
    /// Delivered as a path to an in-memory file holding the secret.
    File(Secret),
}

impl EnvVal {
    /// The bytes of the value (for `File`, the file's content).
    pub fn bytes(&self) -> &[u8] {
        match self {
            EnvVal::Plain(s) => s.as_bytes(),
            EnvVal::Secret(s) | EnvVal::File(s) => s.expose(),
        }
    }
}

/// What happened to one variable (or one failed import).
pub enum Outcome {
    Set(EnvVal),
    /// Optional and not found: left unset.
    Skipped(FetchError),
    /// Overridden by a later assignment of the same name.
    Overridden(Origin),
    Failed(FetchError),
}

/// One line of `check`: a variable, or an import that failed as a whole.
pub struct Entry {
    pub name: String,
    pub origin: Origin,
    /// Source id, or empty for plain values.
    pub source: String,
    /// The reference as written, or empty for plain values.
    pub reference: String,
    pub optional: bool,
    pub outcome: Outcome,
}

/// The result of resolving a plan.
pub struct Resolution {
    /// In precedence order, lowest first.
    pub entries: Vec<Entry>,
    /// Bootstrap credential variables the backends used.
    pub credential_vars: BTreeSet<String>,
    /// How each source authenticated or what it read (for `check`).
    pub source_notes: BTreeMap<String, String>,
}

impl Resolution {
    pub fn failures(&self) -> impl Iterator<Item = (&Entry, &FetchError)> {
        self.entries.iter().filter_map(|e| match &e.outcome {
            Outcome::Failed(err) => Some((e, err)),
            _ => None,
        })
    }

    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The final value of every variable that is set, in precedence order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &EnvVal)> {
        self.entries.iter().filter_map(|e| match &e.outcome {
            Outcome::Set(v) => Some((e.name.as_str(), v)),
            _ => None,
        })
    }
}

/// Indices of assignments whose single variable is set again later by a
/// plain `Var` assignment: no need to fetch them.
fn statically_overridden(assignments: &[Assignment]) -> BTreeMap<usize, Origin> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, a) in assignments.iter().enumerate() {
        if let Target::Var { name, .. } = &a.target {
            last.insert(name, i);
        }
    }
    let mut out = BTreeMap::new();
    for (i, a) in assignments.iter().enumerate() {
        if let Target::Var { name, .. } = &a.target
            && last[name.as_str()] != i
        {
            out.insert(i, assignments[last[name.as_str()]].origin.clone());
        }
    }
    out
}

fn sanitize(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

/// Resolves every assignment of `plan`.
pub fn resolve(plan: &Plan) -> Resolution {
    let deadline = Instant::now() + plan.timeout;
    let ctx = Context { deadline };
    let skip = statically_overridden(&plan.assignments);

    // Group locators per source; remember which assignment asked.
    let mut wanted: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, a) in plan.assignments.iter().enumerate() {
        if let Value::Ref(r) = &a.value
            && !skip.contains_key(&i)
        {
            wanted.entry(&r.source).or_default().push((i, &r.locator));
        }
    }

    let mut answers: BTreeMap<usize, Result<Fetched, FetchError>> = BTreeMap::new();
    let mut credential_vars = BTreeSet::new();
    let mut source_notes = BTreeMap::new();
    type Answers = (Vec<Result<Fetched, FetchError>>, Vec<String>, Option<String>);
    let run_one = |id: &str, wants: &[(usize, &str)]| -> Answers {
        let config = &plan.sources[id];
        match config.open(id) {
            Ok(backend) => {
                let locs: Vec<&str> = wants.iter().map(|(_, l)| *l).collect();
                let results = fetch_registered(backend.as_ref(), &ctx, &locs);
                backend.finish();
                (results, backend.credential_vars(), backend.describe())
            }
            Err(e) => (wants.iter().map(|_| Err(e.clone())).collect(), Vec::new(), None),
        }
    };
    let outputs: Vec<(&str, Answers)> = if wanted.len() <= 1 {
        wanted.iter().map(|(id, w)| (*id, run_one(id, w))).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = wanted
                .iter()
                .map(|(id, w)| {
                    let run_one = &run_one;
                    (*id, s.spawn(move || run_one(id, w)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(id, h)| {
                    let answers = h.join().unwrap_or_else(|_| {
                        let e =
                            FetchError::new(FailKind::Local, format!("source {id} panicked while fetching"));
                        (wanted[id].iter().map(|_| Err(e.clone())).collect(), Vec::new(), None)
                    });
                    (id, answers)
                })
                .collect()
        })
    };
    for (id, (results, creds, note)) in outputs {
        credential_vars.extend(creds);
        if let Some(n) = note {
            source_notes.insert(id.to_owned(), n);
        }
        for ((i, _), r) in wanted[id].iter().zip(results) {
            answers.insert(*i, r);
        }
    }

    let mut entries = Vec::new();
    for (i, a) in plan.assignments.iter().enumerate() {
        let (source, reference) = match &a.value {
            Value::Ref(r) => (r.source.clone(), r.raw.clone()),
            Value::Plain(_) => (String::new(), String::new()),
        };
        let entry = |name: String, outcome| Entry {
            name,
            origin: a.origin.clone(),
            source: source.clone(),
            reference: reference.clone(),
            optional: a.optional,
            outcome,
        };
        match (&a.target, &a.value) {
            (Target::Var { name, .. }, _) if skip.contains_key(&i) => {
                entries.push(entry(name.clone(), Outcome::Overridden(skip[&i].clone())));
            }
            (Target::Var { name, .. }, Value::Plain(v)) => {
                entries.push(entry(name.clone(), Outcome::Set(EnvVal::Plain(v.clone()))))
            }
            (Target::Var { name, delivery }, Value::Ref(_)) => {
                let outcome = match answers.remove(&i) {
                    Some(Ok(Fetched::One(s))) => Outcome::Set(match delivery {
                        Delivery::Env => EnvVal::Secret(s),
                        Delivery::File => EnvVal::File(s),
                    }),
                    Some(Ok(Fetched::Many(_))) => Outcome::Failed(FetchError::new(
                        FailKind::Local,
                        "this reference names several values; use it in [[import]], or name one key",
                    )),
                    Some(Err(e)) if a.optional && e.kind == FailKind::NotFound => Outcome::Skipped(e),
                    Some(Err(e)) => Outcome::Failed(e),
                    None => Outcome::Failed(FetchError::new(FailKind::Local, "no answer from the source")),
                };
                if let Outcome::Set(v) = &outcome
                    && v.bytes().contains(&0)
                {
                    entries.push(entry(name.clone(), Outcome::Failed(FetchError::new(
                        FailKind::Corrupt,
                        "the value contains a NUL byte, which no environment variable can hold; use as = \"file\"",
                    ))));
                    continue;
                }
                entries.push(entry(name.clone(), outcome));
            }
            (Target::Import { prefix, sanitize: fix, only, exclude }, _) => {
                match answers.remove(&i) {
                    Some(Ok(Fetched::Many(items))) => {
                        let mut seen: BTreeMap<String, String> = BTreeMap::new();
                        for (key, value) in items {
                            if only.as_ref().is_some_and(|o| !o.contains(&key)) || exclude.contains(&key) {
                                continue;
                            }
                            let raw_name = format!("{prefix}{key}");
                            let name = if is_env_name(&raw_name) {
                                raw_name
                            } else if *fix {
                                sanitize(&raw_name)
                            } else {
                                entries.push(entry(raw_name.clone(), Outcome::Failed(FetchError::new(
                                FailKind::Local,
                                format!("key {key:?} is not a valid environment variable name; set sanitize = true on the import to map it to {:?}", sanitize(&raw_name)),
                            ))));
                                continue;
                            };
                            if let Some(other) = seen.insert(name.clone(), key.clone()) {
                                entries.push(entry(name.clone(), Outcome::Failed(FetchError::new(
                                FailKind::Local,
                                format!("keys {other:?} and {key:?} both map to {name}; rename one or use exclude = [...]"),
                            ))));
                                continue;
                            }
                            if plan.protected.contains(&name) {
                                entries.push(entry(name.clone(), Outcome::Failed(FetchError::new(
                                FailKind::Local,
                                format!("{name} is a protected name and cannot be set from a secret source; list it in allow_protected = [...] if intended"),
                            ))));
                                continue;
                            }
                            if value.contains_nul() {
                                entries.push(entry(name.clone(), Outcome::Failed(FetchError::new(
                                FailKind::Corrupt,
                                "the value contains a NUL byte, which no environment variable can hold",
                            ))));
                                continue;
                            }
                            entries.push(entry(name, Outcome::Set(EnvVal::Secret(value))));
                        }
                    }
                    Some(Ok(Fetched::One(_))) => entries.push(entry(
                        format!("{prefix}*"),
                        Outcome::Failed(FetchError::new(
                            FailKind::Local,
                            "an import needs a bulk reference (SOURCE:*), not a single value",
                        )),
                    )),
                    Some(Err(e)) if a.optional && e.kind == FailKind::NotFound => {
                        entries.push(entry(format!("{prefix}*"), Outcome::Skipped(e)))
                    }
                    Some(Err(e)) => entries.push(entry(format!("{prefix}*"), Outcome::Failed(e))),
                    None => entries.push(entry(
                        format!("{prefix}*"),
                        Outcome::Failed(FetchError::new(FailKind::Local, "no answer from the source")),
                    )),
                }
            }
        }
    }

    // A later value for the same name overrides an earlier one.
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.outcome, Outcome::Set(_)) {
            last.insert(e.name.clone(), i);
        }
    }
    let origins: Vec<Origin> = entries.iter().map(|e| e.origin.clone()).collect();
    for (i, e) in entries.iter_mut().enumerate() {
        if matches!(e.outcome, Outcome::Set(_)) && last[&e.name] != i {
            e.outcome = Outcome::Overridden(origins[last[&e.name]].clone());
        }
    }
    Resolution { entries, credential_vars, source_notes }
}

/// Fetches and registers every returned value with the redactor before the
/// caller can see it.
fn fetch_registered(
    backend: &dyn Backend,
    ctx: &Context,
    locators: &[&str],
) -> Vec<Result<Fetched, FetchError>> {
    let results = backend.fetch(ctx, locators);
    for r in &results {
        match r {
            Ok(Fetched::One(s)) => redact::register(s),
            Ok(Fetched::Many(items)) => items.iter().for_each(|(_, s)| redact::register(s)),
            Err(_) => {}
        }
    }
    results
}
