//! Tracked tasks: slow work a reconcile starts and does not wait for (hooks, snapshot wipe-outs).
//! Each task runs on its own thread under a name unique to what it does; the reconciler polls
//! [`TaskTracker::state`] on later reconciles, records the outcome in status, then forgets it.
//!
//! State is in memory only. After a daemon restart every task reads [`TaskState::Unknown`], and the
//! reconciler decides from the status it recorded when it started the task: it fails the step
//! clearly (a hook) or starts it again (idempotent work).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a finished task nobody asked about is kept (its session was deleted meanwhile).
const UNCLAIMED: Duration = Duration::from_secs(3600);

/// What a task says when it ends: `Ok(detail)` or `Err(message)` naming what failed.
pub type TaskOutcome = Result<String, String>;

/// The observed state of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Started and not finished.
    Running,
    /// Finished with this outcome (until forgotten).
    Finished(TaskOutcome),
    /// Never started by this process (or forgotten): after a restart, work that was in flight.
    Unknown,
}

#[derive(Debug)]
enum Entry {
    Running,
    Finished(TaskOutcome, Instant),
}

/// Runs and remembers tracked tasks; cheap to share (`Clone` shares the same tasks).
#[derive(Debug, Clone, Default)]
pub struct TaskTracker {
    tasks: Arc<Mutex<HashMap<String, Entry>>>,
}

impl TaskTracker {
    pub fn new() -> Self {
        TaskTracker::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start `work` as task `id` on its own thread, unless a task of that id is running or
    /// finished and not yet forgotten. Returns whether it was started.
    pub fn start(&self, id: &str, work: impl FnOnce() -> TaskOutcome + Send + 'static) -> bool {
        {
            let mut tasks = self.lock();
            if tasks.contains_key(id) {
                return false;
            }
            tasks.retain(|_, e| !matches!(e, Entry::Finished(_, at) if at.elapsed() > UNCLAIMED));
            tasks.insert(id.to_string(), Entry::Running);
        }
        let (tasks, key) = (self.tasks.clone(), id.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("task-{}", id.rsplit('/').next().unwrap_or(id)))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .unwrap_or_else(|_| Err("the task panicked".to_string()));
                tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Entry::Finished(outcome, Instant::now()));
            });
        if let Err(e) = spawned {
            self.lock().insert(
                id.to_string(),
                Entry::Finished(Err(format!("cannot start a thread: {e}")), Instant::now()),
            );
        }
        true
    }

    /// The state of task `id`.
    pub fn state(&self, id: &str) -> TaskState {
        match self.lock().get(id) {
            None => TaskState::Unknown,
            Some(Entry::Running) => TaskState::Running,
            Some(Entry::Finished(outcome, _)) => TaskState::Finished(outcome.clone()),
        }
    }

    /// Drop a finished task once its outcome is recorded (a running one is left alone).
    pub fn forget(&self, id: &str) {
        let mut tasks = self.lock();
        if matches!(tasks.get(id), Some(Entry::Finished(..))) {
            tasks.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn wait_finished(t: &TaskTracker, id: &str) -> TaskOutcome {
        loop {
            if let TaskState::Finished(o) = t.state(id) {
                return o;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_task_runs_off_the_caller_and_keeps_its_outcome_until_forgotten() {
        let t = TaskTracker::new();
        let (release, gate) = mpsc::channel::<()>();
        assert!(t.start("hook/a", move || {
            gate.recv().ok();
            Ok("done".into())
        }));
        assert_eq!(
            t.state("hook/a"),
            TaskState::Running,
            "start returned before the work ended"
        );
        assert!(
            !t.start("hook/a", || Ok(String::new())),
            "a second start is a no-op"
        );
        release.send(()).unwrap();
        assert_eq!(wait_finished(&t, "hook/a"), Ok("done".into()));
        t.forget("hook/a");
        assert_eq!(t.state("hook/a"), TaskState::Unknown);
    }

    #[test]
    fn a_panicking_task_finishes_failed() {
        let t = TaskTracker::new();
        t.start("x", || panic!("boom"));
        assert_eq!(wait_finished(&t, "x"), Err("the task panicked".into()));
    }

    #[test]
    fn a_running_task_is_not_forgotten() {
        let t = TaskTracker::new();
        let (release, gate) = mpsc::channel::<()>();
        t.start("x", move || {
            gate.recv().ok();
            Ok(String::new())
        });
        t.forget("x");
        assert_eq!(t.state("x"), TaskState::Running);
        release.send(()).unwrap();
        assert_eq!(wait_finished(&t, "x"), Ok(String::new()));
    }
}
