//! `secretexec check`: what resolved, from where, and what did not — never a
//! value. The JSON form is a stable, documented schema (docs/check-json.md).
//! Names, sources and references come from the mapping; every free-text
//! field (errors, hints, source notes) goes through the redactor.

use crate::plan::Plan;
use crate::redact::scrub;
use crate::resolve::{Outcome, Resolution};

/// Schema version of `check --json`; bumped on incompatible changes only.
pub const SCHEMA: u32 = 1;

fn status(o: &Outcome) -> &'static str {
    match o {
        Outcome::Set(_) => "ok",
        Outcome::Skipped(_) => "missing-optional",
        Outcome::Overridden(_) => "overridden",
        Outcome::Failed(_) => "error",
    }
}

fn detail(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Set(_) => None,
        Outcome::Skipped(e) | Outcome::Failed(e) => Some(scrub(&e.to_string())),
        Outcome::Overridden(by) => Some(format!("overridden by {by}")),
    }
}

/// The human table.
pub fn table(plan: &Plan, res: &Resolution) -> String {
    let headers = ["VARIABLE", "SOURCE", "REFERENCE", "STATUS", "OPTIONAL"];
    let rows: Vec<[String; 5]> = res
        .entries
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                if e.source.is_empty() { "(value)".into() } else { e.source.clone() },
                if e.reference.is_empty() { "-".into() } else { e.reference.clone() },
                status(&e.outcome).into(),
                if e.optional { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers);
    for (r, e) in rows.iter().zip(&res.entries) {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
        if let Some(d) = detail(&e.outcome)
            && !matches!(e.outcome, Outcome::Overridden(_))
        {
            out.push_str(&format!("  -> {d}\n"));
        }
    }
    if !res.source_notes.is_empty() {
        out.push_str("\nSources:\n");
        for (id, note) in &res.source_notes {
            let kind = plan.sources.get(id).map(|c| c.kind().name()).unwrap_or("?");
            out.push_str(&format!("  {id} ({kind}): {}\n", scrub(note)));
        }
    }
    let failed = res.failures().count();
    out.push_str(&if failed == 0 {
        format!("\n{} variables, all required secrets resolved\n", res.entries.len())
    } else {
        format!("\n{} variables, {failed} required secret(s) did not resolve\n", res.entries.len())
    });
    out
}

/// The JSON document.
pub fn json(plan: &Plan, res: &Resolution) -> String {
    use serde_json::{Value, json};
    let variables: Vec<Value> = res
        .entries
        .iter()
        .map(|e| {
            let (error, hint) = match &e.outcome {
                Outcome::Skipped(err) | Outcome::Failed(err) => {
                    (Some(scrub(&err.message)), err.hint.as_deref().map(scrub))
                }
                _ => (None, None),
            };
            json!({
                "name": e.name,
                "origin": e.origin.to_string(),
                "source": if e.source.is_empty() { Value::Null } else { e.source.clone().into() },
                "reference": if e.reference.is_empty() { Value::Null } else { e.reference.clone().into() },
                "status": status(&e.outcome),
                "optional": e.optional,
                "overridden_by": match &e.outcome { Outcome::Overridden(o) => Value::from(o.to_string()), _ => Value::Null },
                "error": error,
                "hint": hint,
            })
        })
        .collect();
    let sources: Vec<Value> = plan
        .sources
        .iter()
        .map(|(id, c)| json!({ "id": id, "type": c.kind().name(), "detail": res.source_notes.get(id).map(|n| scrub(n)) }))
        .collect();
    let doc = json!({
        "schema": SCHEMA,
        "ok": res.is_ok(),
        "config": plan.config_path.as_ref().map(|p| p.display().to_string()),
        "variables": variables,
        "sources": sources,
    });
    // Free-text fields (errors, hints, notes) were scrubbed one by one above:
    // scrubbing the whole document could break its structure.
    serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serializes") + "\n"
}
