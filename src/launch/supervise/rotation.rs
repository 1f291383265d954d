//! Rotation: when to re-resolve which source, and whether anything changed.
//!
//! The supervisor keeps no secret plaintext between polls. For each source
//! it keeps one HMAC-SHA256 digest (key random per process) over the values
//! that source contributes to the child's environment; a poll re-resolves
//! the due sources (each backend is opened afresh: a Vault login is done and
//! revoked again), computes their digests and drops the values at once.
//!
//! A value shadowed by another source (a later layer sets the same name) is
//! not part of its source's digest: changing it cannot change the child, so
//! it never causes a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::plan::{Plan, Value};
use crate::resolve::{EnvVal, Outcome, Resolution};

/// Retry delay after the first failed poll; doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay for a source polled only on SIGHUP.
const MAX_RETRY: Duration = Duration::from_secs(60);

struct SourceWatch {
    interval: Option<Duration>,
    next: Option<Instant>,
    digest: [u8; 32],
    failures: u32,
}

/// The outcome of one poll.
pub(crate) enum Poll {
    Unchanged,
    /// These sources' values changed.
    Changed(Vec<String>),
    /// The re-resolve failed; one line per unresolved variable.
    Failed(Vec<String>),
}

pub(crate) struct Watch {
    key: [u8; 64],
    sources: BTreeMap<String, SourceWatch>,
    /// Per source: the names that other sources (or plain values) set in
    /// the child's environment.
    others: BTreeMap<String, BTreeSet<String>>,
}

impl Watch {
    /// Digests of the resolution the child was started with; schedules the
    /// first polls from `now`.
    pub(crate) fn new(plan: &Plan, res: &Resolution, now: Instant) -> Watch {
        let mut w = Watch { key: random_key(), sources: BTreeMap::new(), others: BTreeMap::new() };
        for id in plan.sources.keys() {
            let interval = plan.source_watch.get(id).copied().or(plan.supervise.watch);
            w.sources.insert(
                id.clone(),
                SourceWatch { interval, next: interval.map(|i| now + i), digest: [0; 32], failures: 0 },
            );
        }
        w.refresh(res);
        w
    }

    /// Takes the digests of a fresh full resolution as the new baseline.
    pub(crate) fn refresh(&mut self, res: &Resolution) {
        self.others.clear();
        for id in self.sources.keys() {
            let names = res
                .entries
                .iter()
                .filter(|e| e.source != *id && matches!(e.outcome, Outcome::Set(_)))
                .map(|e| e.name.clone())
                .collect();
            self.others.insert(id.clone(), names);
        }
        let digests: Vec<(String, [u8; 32])> =
            self.sources.keys().map(|id| (id.clone(), self.digest(id, res))).collect();
        for (id, d) in digests {
            if let Some(s) = self.sources.get_mut(&id) {
                s.digest = d;
            }
        }
    }

    /// Whether a full resolution differs from the baseline.
    pub(crate) fn differs(&self, res: &Resolution) -> bool {
        self.sources.iter().any(|(id, s)| self.digest(id, res) != s.digest)
    }

    /// The earliest instant a source is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.sources.values().filter_map(|s| s.next).min()
    }

    /// Makes every source due now (SIGHUP with `reload_on = "sighup"`).
    pub(crate) fn all_due(&mut self, now: Instant) {
        for s in self.sources.values_mut() {
            s.next = Some(now);
        }
    }

    /// Takes the sources due at `now` out of the schedule (until
    /// [`Watch::finish_poll`]) and returns them with the plan that resolves
    /// only them; `None` when nothing is due.
    pub(crate) fn begin_poll(&mut self, plan: &Plan, now: Instant) -> Option<(BTreeSet<String>, Plan)> {
        let due: BTreeSet<String> = self
            .sources
            .iter()
            .filter(|(_, s)| s.next.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return None;
        }
        for id in &due {
            self.sources.get_mut(id).expect("due ids come from self.sources").next = None;
        }
        let mut sub = plan.clone();
        sub.assignments.retain(|a| matches!(&a.value, Value::Ref(r) if due.contains(&r.source)));
        sub.sources.retain(|id, _| due.contains(id));
        Some((due, sub))
    }

    /// Puts sources taken by [`Watch::begin_poll`] back on their schedule
    /// without a result (the poll could not run).
    pub(crate) fn abort_poll(&mut self, due: &BTreeSet<String>) {
        let now = Instant::now();
        for id in due {
            let s = self.sources.get_mut(id).expect("due ids come from self.sources");
            s.next = Some(s.next.unwrap_or(now).min(now + s.interval.unwrap_or(MAX_RETRY)));
        }
    }

    /// Compares the digests of a poll's resolution (of the `due` sources
    /// only) with the baseline and reschedules those sources: after their
    /// interval, or with backoff on failure.
    pub(crate) fn finish_poll(&mut self, due: &BTreeSet<String>, res: &Resolution) -> Poll {
        let failures = failure_lines(res);
        let after = Instant::now();
        if !failures.is_empty() {
            for id in due {
                let s = self.sources.get_mut(id).expect("due ids come from self.sources");
                s.failures += 1;
                let cap = s.interval.unwrap_or(MAX_RETRY);
                s.next = Some(s.next.unwrap_or(after).min(after + backoff(s.failures, cap)));
            }
            return Poll::Failed(failures);
        }
        let mut changed = Vec::new();
        for id in due {
            let d = self.digest(id, res);
            let s = self.sources.get_mut(id).expect("due ids come from self.sources");
            s.failures = 0;
            // A SIGHUP during the poll may have made it due again already.
            s.next = match (s.next, s.interval) {
                (Some(t), Some(i)) => Some(t.min(after + i)),
                (Some(t), None) => Some(t),
                (None, i) => i.map(|i| after + i),
            };
            if d != s.digest {
                changed.push(id.clone());
            }
        }
        if changed.is_empty() { Poll::Unchanged } else { Poll::Changed(changed) }
    }

    /// HMAC-SHA256 over what source `id` contributes to the environment:
    /// (name, kind, value) of every set or skipped variable that no other
    /// source sets, in precedence order. Lengths are framed, so
    /// concatenations cannot collide.
    fn digest(&self, id: &str, res: &Resolution) -> [u8; 32] {
        let empty = BTreeSet::new();
        let others = self.others.get(id).unwrap_or(&empty);
        let mut inner = Sha256::new();
        inner.update(self.key.map(|b| b ^ 0x36));
        for e in res.entries.iter().filter(|e| e.source == id && !others.contains(&e.name)) {
            let (tag, value): (u8, &[u8]) = match &e.outcome {
                Outcome::Set(EnvVal::Plain(v)) => (b'p', v.as_bytes()),
                Outcome::Set(EnvVal::Secret(s)) => (b's', s.expose()),
                Outcome::Set(EnvVal::File(s)) => (b'f', s.expose()),
                Outcome::Skipped(_) => (b'k', &[]),
                Outcome::Overridden(_) | Outcome::Failed(_) => continue,
            };
            inner.update((e.name.len() as u64).to_le_bytes());
            inner.update(e.name.as_bytes());
            inner.update([tag]);
            inner.update((value.len() as u64).to_le_bytes());
            inner.update(value);
        }
        let mut outer = Sha256::new();
        outer.update(self.key.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// One line per variable that did not resolve: name, reference, source, why.
pub(crate) fn failure_lines(res: &Resolution) -> Vec<String> {
    res.failures()
        .map(|(e, err)| format!("{} ({} from source {}): {err}", e.name, e.reference, e.source))
        .collect()
}

/// 1 s, 2 s, 4 s, … up to `cap`, with up to 25 % jitter off.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let base = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap);
    let jitter = base.mul_f64((crate::random_u64() % 1000) as f64 / 4000.0);
    base - jitter
}

/// A random delay in `[0, splay]`.
pub(crate) fn splay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    max.mul_f64((crate::random_u64() % 1_000_001) as f64 / 1_000_000.0)
}

fn random_key() -> [u8; 64] {
    let mut key = [0u8; 64];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: getrandom writes at most the remaining length into our buffer.
        let n = unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), key.len() - filled, 0) };
        if n <= 0 {
            break;
        }
        filled += n as usize;
    }
    if filled < key.len() {
        // No getrandom (very old kernel): RandomState's keys come from the OS too.
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&crate::random_u64().to_le_bytes());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(10);
        assert!(backoff(1, cap) <= Duration::from_secs(1));
        assert!(backoff(1, cap) >= Duration::from_millis(750));
        assert!(backoff(3, cap) >= Duration::from_secs(3));
        assert!(backoff(30, cap) <= cap);
    }

    #[test]
    fn splay_is_bounded() {
        assert_eq!(splay(Duration::ZERO), Duration::ZERO);
        assert!(splay(Duration::from_millis(10)) <= Duration::from_millis(10));
    }
}
