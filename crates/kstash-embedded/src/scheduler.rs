//! The in-process cron of the embedded runtime: one entry per BackupConfiguration session, fired
//! by the daemon loop. A run missed while the daemon was down is not caught up (like a CronJob
//! without `startingDeadlineSeconds`); the next one fires on time.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use kstash_api::schedule::Schedule;
use kstash_controller::platform::{PlatformError, ScheduleSpec};

#[derive(Debug)]
struct Entry {
    spec: ScheduleSpec,
    schedule: Schedule,
    next: Option<Timestamp>,
}

/// Schedules keyed by (namespace, invoker, schedule id: the session, or a verifier's
/// `<session>/verify/<repository>`).
#[derive(Debug, Default)]
pub struct Scheduler {
    entries: Mutex<BTreeMap<(String, String, String), Entry>>,
}

/// A session whose schedule is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub namespace: String,
    pub invoker: String,
    pub session: String,
    pub at: Timestamp,
    /// What the BackupSession is made of (no read of the configuration needed).
    pub trigger: kstash_controller::platform::TriggerTemplate,
    /// A verifier's schedule: the repository to verify (no BackupSession then).
    pub verifies: Option<String>,
}

impl Scheduler {
    /// Create or update an entry; returns the next fire time (None while suspended).
    pub fn ensure(&self, spec: &ScheduleSpec, now: Timestamp) -> Result<Option<Timestamp>, PlatformError> {
        let schedule = Schedule::parse(&spec.schedule).map_err(|e| {
            PlatformError::new(match &spec.verifies {
                None => format!(
                    "BackupConfiguration {}/{} session {}: scheduler.schedule: {e}",
                    spec.namespace, spec.invoker, spec.session
                ),
                Some(repo) => format!(
                    "BackupConfiguration {}/{} repository {repo}: its BackupVerifier's spec.scheduler.schedule: {e}",
                    spec.namespace, spec.invoker
                ),
            })
        })?;
        let key = (spec.namespace.clone(), spec.invoker.clone(), spec.id());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(key).or_insert_with(|| Entry {
            spec: spec.clone(),
            schedule: schedule.clone(),
            next: schedule.next_after(now),
        });
        if entry.spec != *spec {
            entry.next = schedule.next_after(now);
            entry.spec = spec.clone();
            entry.schedule = schedule;
        }
        Ok(if spec.suspend { None } else { entry.next })
    }

    /// Remove the entries of `invoker` except the schedule ids in `keep`. Visits only that
    /// invoker's entries (every BackupConfiguration reconcile calls this; a scan of all entries
    /// made 10,000 of them quadratic).
    pub fn remove(&self, namespace: &str, invoker: &str, keep: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let from = (namespace.to_string(), invoker.to_string(), String::new());
        let gone: Vec<_> = entries
            .range(from..)
            .take_while(|((ns, inv, _), _)| ns == namespace && inv == invoker)
            .filter(|((_, _, session), _)| !keep.contains(session))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            entries.remove(&k);
        }
    }

    /// Entries due at `now`; each advances to its next run. Suspended entries advance silently.
    pub fn due(&self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for ((ns, inv, _), e) in entries.iter_mut() {
            let Some(next) = e.next else { continue };
            if next > now {
                continue;
            }
            e.next = e.schedule.next_after(now);
            if !e.spec.suspend {
                out.push(Due {
                    namespace: ns.clone(),
                    invoker: inv.clone(),
                    session: e.spec.session.clone(),
                    at: next,
                    trigger: e.spec.trigger.clone(),
                    verifies: e.spec.verifies.clone(),
                });
            }
        }
        out
    }

    /// The earliest next run of any active entry.
    pub fn next_due(&self) -> Option<Timestamp> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .values()
            .filter(|e| !e.spec.suspend)
            .filter_map(|e| e.next)
            .min()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: &str, suspend: bool) -> ScheduleSpec {
        ScheduleSpec {
            trigger: Default::default(),
            scheduler: Default::default(),
            namespace: "demo".into(),
            invoker: "bc".into(),
            session: "s".into(),
            schedule: schedule.into(),
            suspend,
            verifies: None,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn fires_once_per_minute_and_advances() {
        let s = Scheduler::default();
        let next = s
            .ensure(&spec("* * * * *", false), at("2026-01-01T10:00:30Z"))
            .unwrap();
        assert_eq!(next, Some(at("2026-01-01T10:01:00Z")));
        assert!(s.due(at("2026-01-01T10:00:59Z")).is_empty());
        let due = s.due(at("2026-01-01T10:01:00.2Z"));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].at, at("2026-01-01T10:01:00Z"));
        assert!(s.due(at("2026-01-01T10:01:30Z")).is_empty());
        assert_eq!(s.due(at("2026-01-01T10:02:00Z")).len(), 1);
    }

    #[test]
    fn time_zone_prefix_is_honoured() {
        let s = Scheduler::default();
        // 02:00 in Berlin (UTC+1 in January) is 01:00 UTC.
        let next = s
            .ensure(
                &spec("CRON_TZ=Europe/Berlin 0 2 * * *", false),
                at("2026-01-01T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(next, Some(at("2026-01-01T01:00:00Z")));
    }

    #[test]
    fn suspended_entries_never_fire_and_bad_cron_is_an_error() {
        let s = Scheduler::default();
        assert_eq!(
            s.ensure(&spec("* * * * *", true), at("2026-01-01T10:00:00Z"))
                .unwrap(),
            None
        );
        assert!(s.due(at("2026-01-01T10:05:00Z")).is_empty());
        let e = s
            .ensure(&spec("61 * * * *", false), at("2026-01-01T10:00:00Z"))
            .unwrap_err();
        assert!(e.to_string().contains("scheduler.schedule"), "{e}");
        s.remove("demo", "bc", &[]);
        assert!(s.is_empty());
    }

    #[test]
    fn remove_drops_only_the_invokers_sessions_not_kept() {
        let s = Scheduler::default();
        let now = at("2026-01-01T10:00:00Z");
        for (invoker, session) in [("bc", "a"), ("bc", "b"), ("bc-2", "a"), ("bd", "a")] {
            let mut sp = spec("* * * * *", false);
            sp.invoker = invoker.into();
            sp.session = session.into();
            s.ensure(&sp, now).unwrap();
        }
        s.remove("demo", "bc", &["b".to_string()]);
        assert_eq!(s.len(), 3);
        s.remove("demo", "bc", &[]);
        assert_eq!(s.len(), 2);
        s.remove("other", "bc-2", &[]);
        assert_eq!(s.len(), 2);
    }
}
