//! Live progress into status (KubeStash 2026): while a job moves data, a reporter thread reads
//! the engine's progress counters ([`kstash_repo::progress::Progress`]) every
//! [`ExecOptions::progress_period`](crate::ExecOptions) and writes them, as KubeStash's fields,
//! into the running component of each Snapshot (`resticStats[0].progress`) or of the
//! RestoreSession (`progress`). A write is a status update that re-reads and retries on a
//! conflict, never touches a component that is no longer Running, and never fails the job: a
//! failed write is logged and the next period tries again.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kstash_api::client::Resources;
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::progress::ProgressSample;
use kstash_api::storage::{ComponentPhase, ResticStats, Snapshot};
use kstash_repo::progress::Progress;

use crate::status::update_status;

/// KubeStash's `progressPollInterval`.
pub const PROGRESS_PERIOD: Duration = Duration::from_secs(10);

/// Where a job's progress is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProgressTarget<'a> {
    /// Component `component` of each of these Snapshots (a stream fans out to all of them).
    Snapshots { names: &'a [String], component: &'a str },
    /// Component `component` of RestoreSession `name`.
    Restore { name: &'a str, component: &'a str },
}

/// The counters of one job, in parts (each path of a volume, each restic snapshot restored):
/// the engine fills the current part's [`Progress`]; finished parts stay counted.
pub(crate) struct Tracker {
    started: Instant,
    parts: Mutex<Parts>,
}

#[derive(Default)]
struct Parts {
    /// Bytes and files of the finished parts (done and total).
    finished: ProgressSample,
    current: Arc<Progress>,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            started: Instant::now(),
            parts: Mutex::new(Parts::default()),
        }
    }

    /// Fresh counters for the next part; what the previous parts did stays counted.
    pub fn part(&self) -> Arc<Progress> {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let Parts {
            finished: f,
            current: c,
        } = &mut *parts;
        let (done, files) = (c.bytes(), c.items());
        f.bytes_done += done;
        f.bytes_total += c.total_bytes().max(done);
        f.files_done += files;
        f.files_total += c.total_items().max(files);
        *c = Arc::new(Progress::new());
        Arc::clone(c)
    }

    /// All parts so far, with the time since the job started. A total stays unknown (0)
    /// while the current part's is.
    pub fn sample(&self) -> ProgressSample {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let (f, c) = (&parts.finished, &parts.current);
        let known = |finished: u64, current: u64| if current == 0 { 0 } else { finished + current };
        ProgressSample {
            bytes_done: f.bytes_done + c.bytes(),
            bytes_total: known(f.bytes_total, c.total_bytes()),
            files_done: f.files_done + c.items(),
            files_total: known(f.files_total, c.total_items()),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Run `work` while a reporter writes its progress into `target` every `period`; the reporter
/// stops (and is joined) before this returns, so the caller's final status write comes last.
pub(crate) fn reporting<R>(
    client: &dyn Resources,
    namespace: &str,
    target: ProgressTarget<'_>,
    period: Duration,
    work: impl FnOnce(&Tracker) -> R,
) -> R {
    let tracker = Tracker::new();
    // Dropping the sender wakes the reporter at once; nothing is ever sent.
    let (stop, stopped) = mpsc::channel::<()>();
    let counters = &tracker;
    std::thread::scope(|s| {
        let reporter = std::thread::Builder::new()
            .name("kstash-progress".into())
            .spawn_scoped(s, move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    write(client, namespace, target, &counters.sample());
                }
            });
        if let Err(e) = &reporter {
            tracing::warn!(error = %e, "cannot start the progress reporter; no live progress");
        }
        let result = work(&tracker);
        drop(stop);
        if let Ok(r) = reporter
            && r.join().is_err()
        {
            tracing::warn!("the progress reporter panicked");
        }
        result
    })
}

/// Write one sample into `target`; failures are logged, never returned.
fn write(client: &dyn Resources, namespace: &str, target: ProgressTarget<'_>, sample: &ProgressSample) {
    match target {
        ProgressTarget::Snapshots { names, component } => {
            let progress = sample.backup();
            for name in names {
                let written = update_status(client, namespace, name, |s: &mut Snapshot| {
                    let Some(c) = s.status.as_mut().and_then(|st| st.components.get_mut(component)) else {
                        return;
                    };
                    if c.phase != Some(ComponentPhase::Running) {
                        return;
                    }
                    match c.restic_stats.first_mut() {
                        Some(stats) => stats.progress = Some(progress.clone()),
                        None => c.restic_stats.push(ResticStats {
                            summary: None,
                            progress: Some(progress.clone()),
                        }),
                    }
                });
                if let Err(e) = written {
                    tracing::warn!(snapshot = %name, component, error = %e, "progress not written; skipped");
                }
            }
        }
        ProgressTarget::Restore { name, component } => {
            let progress = sample.restore();
            let written = update_status(client, namespace, name, |r: &mut RestoreSession| {
                let Some(c) = r.status.as_mut().and_then(|st| st.components.get_mut(component)) else {
                    return;
                };
                if c.phase == Some(RestorePhase::Running) {
                    c.progress = Some(progress.clone());
                }
            });
            if let Err(e) = written {
                tracing::warn!(restore_session = %name, component, error = %e, "progress not written; skipped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_parts_stay_counted_and_an_unknown_total_stays_unknown() {
        let t = Tracker::new();
        let a = t.part();
        a.set_totals(100, 2);
        a.add_bytes(100);
        a.add_item();
        a.add_item();
        let b = t.part();
        b.add_bytes(30);
        let s = t.sample();
        assert_eq!(
            (s.bytes_done, s.bytes_total, s.files_done, s.files_total),
            (130, 0, 2, 0)
        );
        b.set_totals(50, 1);
        let s = t.sample();
        assert_eq!(
            (s.bytes_done, s.bytes_total, s.files_done, s.files_total),
            (130, 150, 2, 3)
        );
    }
}
