//! The work queue both runtimes share: de-duplicated keys with a ready time, several workers, at
//! most one reconcile per object at a time, and a per-object exponential backoff chosen by the
//! error's category.
//!
//! Concurrency: one `Mutex<State>` guards everything; workers sleep on one `Condvar` that is
//! notified when a key is added, a key's reconcile ends (its key may be queued again), or the
//! queue shuts down. A key changed while it is being reconciled stays queued and is handed out
//! again once the running reconcile is done, so no change is lost and no object is reconciled by
//! two workers at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kstash_api::ErrorCategory;

use crate::dispatch::Key;
use crate::util::{ReconcileError, Requeue};

/// Workers when none are configured: reconciles mostly wait on the store, a process or the network
/// (slow work runs as tracked tasks and jobs), so a 2-core machine keeps 4 busy.
pub const DEFAULT_WORKERS: usize = 4;

/// The backoff after the `failures`-th consecutive failure of one object: doubling from a base that
/// depends on the category, up to a cap. A conflict is retried almost at once (someone else wrote
/// first); a transient failure soon; a bad or missing reference slowly (a user must act, or the
/// object may appear); a permanent one rarely.
pub fn backoff(category: ErrorCategory, failures: u32) -> Duration {
    let (base, cap) = match category {
        ErrorCategory::Conflict => (Duration::from_millis(20), Duration::from_secs(1)),
        ErrorCategory::Transient => (Duration::from_millis(500), Duration::from_secs(30)),
        ErrorCategory::NotFound | ErrorCategory::Invalid => (Duration::from_secs(2), Duration::from_secs(60)),
        ErrorCategory::Permanent => (Duration::from_secs(10), Duration::from_secs(300)),
    };
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(cap)
}

/// Which lane a waiting key is in: changes (and requeues) are handed out before keys that only the
/// periodic resync queued, so a resync of thousands of objects never delays a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Lane {
    Change,
    Resync,
}

#[derive(Debug)]
struct State {
    /// When the queue was made: no key is ready before it (the lower bound of `order`).
    epoch: Instant,
    /// Keys waiting: their lane, ready instant and arrival number.
    waiting: HashMap<Key, (Lane, Instant, u64)>,
    /// The same keys in hand-out order: lane, then ready instant, then arrival (FIFO).
    order: BTreeSet<(Lane, Instant, u64, Key)>,
    arrivals: u64,
    /// Keys a worker is reconciling now.
    active: HashSet<Key>,
    /// Consecutive failures per key (reset by a success).
    failures: HashMap<Key, u32>,
    shutdown: bool,
}

impl State {
    /// Queue `key` in `lane` at `at`, or move it to a better lane or an earlier instant.
    fn put(&mut self, key: Key, lane: Lane, at: Instant) {
        match self.waiting.get(&key).copied() {
            Some((l, t, n)) => {
                let (nl, nt) = (l.min(lane), t.min(at));
                if (nl, nt) != (l, t) {
                    self.order.remove(&(l, t, n, key.clone()));
                    self.order.insert((nl, nt, n, key.clone()));
                    self.waiting.insert(key, (nl, nt, n));
                }
            }
            None => {
                self.arrivals += 1;
                let n = self.arrivals;
                self.order.insert((lane, at, n, key.clone()));
                self.waiting.insert(key, (lane, at, n));
            }
        }
    }

    /// Take the first ready key no worker holds (changes first, then resyncs; FIFO by ready
    /// instant within a lane); else say when the soonest waiting key becomes ready.
    fn take(&mut self, now: Instant) -> Result<Key, Option<Instant>> {
        let mut soonest: Option<Instant> = None;
        for lane in [Lane::Change, Lane::Resync] {
            let first = (lane, self.epoch, 0, Key::MIN);
            let mut found = None;
            for (l, at, n, key) in self.order.range(first..) {
                if *l != lane {
                    break;
                }
                if *at > now {
                    // Sorted by instant: the rest of this lane is later still.
                    soonest = Some(soonest.map_or(*at, |s| s.min(*at)));
                    break;
                }
                if !self.active.contains(key) {
                    found = Some((*l, *at, *n, key.clone()));
                    break;
                }
            }
            if let Some(entry) = found {
                self.order.remove(&entry);
                self.waiting.remove(&entry.3);
                self.active.insert(entry.3.clone());
                return Ok(entry.3);
            }
        }
        Err(soonest)
    }
}

/// A de-duplicating delay queue of reconcile keys, shared by the workers.
#[derive(Debug)]
pub struct WorkQueue {
    state: Mutex<State>,
    wake: Condvar,
}

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl WorkQueue {
    pub fn new() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                epoch: Instant::now(),
                waiting: HashMap::new(),
                order: BTreeSet::new(),
                arrivals: 0,
                active: HashSet::new(),
                failures: HashMap::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `key` to run now (a change was seen): an earlier backoff is cut short.
    pub fn add(&self, key: Key) {
        self.add_at(key, Instant::now());
    }

    /// Queue `key` to run in `delay` (or sooner, when it is queued sooner already): changes within
    /// the delay are gathered into one reconcile.
    pub fn add_after(&self, key: Key, delay: Duration) {
        self.add_at(key, Instant::now() + delay);
    }

    fn add_at(&self, key: Key, at: Instant) {
        self.lock().put(key, Lane::Change, at);
        self.wake.notify_one();
    }

    /// Queue `key` now, behind every change, unless it is queued already (a periodic resync must
    /// neither undo a backoff nor delay new work).
    pub fn add_if_absent(&self, key: Key) {
        let mut st = self.lock();
        if st.waiting.contains_key(&key) || st.active.contains(&key) {
            return;
        }
        st.put(key, Lane::Resync, Instant::now());
        drop(st);
        self.wake.notify_one();
    }

    /// Keys waiting or being reconciled.
    pub fn len(&self) -> usize {
        let st = self.lock();
        st.waiting.len() + st.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stop handing out keys; every blocked [`WorkQueue::next`] returns `None`.
    pub fn shut_down(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    /// The next ready key that no worker holds, waiting for one; `None` once shut down. The caller
    /// must hand the key back with [`WorkQueue::done`].
    pub fn next(&self) -> Option<Key> {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return None;
            }
            let now = Instant::now();
            let soonest = match st.take(now) {
                Ok(key) => return Some(key),
                Err(soonest) => soonest,
            };
            // Nothing ready: sleep until the soonest key is due (or a notification). The cap keeps
            // a worker responsive to shutdown even if a notification were missed.
            let wait = soonest
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            st = self
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A reconcile of `key` ended: requeue it as the outcome says (an error by its category's
    /// backoff), and release it for the other workers. Returns the backoff applied after a failure.
    pub fn done(&self, key: Key, outcome: Result<Requeue, ErrorCategory>) -> Option<Duration> {
        let mut st = self.lock();
        st.active.remove(&key);
        let (at, backoff_used) = match outcome {
            Ok(Requeue::Idle) => {
                st.failures.remove(&key);
                (None, None)
            }
            Ok(Requeue::After(d)) => {
                st.failures.remove(&key);
                (Some(Instant::now() + d), None)
            }
            Err(category) => {
                let n = st.failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let d = backoff(category, *n);
                (Some(Instant::now() + d), Some(d))
            }
        };
        if let Some(at) = at {
            st.put(key, Lane::Change, at);
        }
        drop(st);
        // Every worker may be waiting on this key (it was skipped while active).
        self.wake.notify_all();
        backoff_used
    }

    /// Run `workers` threads that take keys and call `reconcile` on each until the queue is shut
    /// down; returns when every worker has finished its current reconcile. A panic in a reconcile is
    /// caught, logged and treated as a permanent failure of that key.
    pub fn run_workers<F>(&self, workers: usize, reconcile: F)
    where
        F: Fn(&Key) -> Result<Requeue, ReconcileError> + Sync,
    {
        std::thread::scope(|scope| {
            for i in 0..workers.max(1) {
                let reconcile = &reconcile;
                std::thread::Builder::new()
                    .name(format!("reconcile-{i}"))
                    .spawn_scoped(scope, move || {
                        while let Some(key) = self.next() {
                            let span = tracing::info_span!("reconcile", object = %key);
                            let outcome = span.in_scope(|| {
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconcile(&key)))
                            });
                            let outcome = match outcome {
                                Ok(Ok(requeue)) => Ok(requeue),
                                Ok(Err(e)) => {
                                    let category = e.category();
                                    if category == ErrorCategory::Conflict {
                                        tracing::debug!(object = %key, error = %e, "conflict; retrying");
                                    } else {
                                        tracing::warn!(object = %key, error = %e, %category, "reconcile failed");
                                    }
                                    Err(category)
                                }
                                Err(_) => {
                                    tracing::error!(object = %key, "reconciler panicked");
                                    Err(ErrorCategory::Permanent)
                                }
                            };
                            self.done(key, outcome);
                        }
                    })
                    .expect("spawn a reconcile worker");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(name: &str) -> Key {
        Key {
            kind: "BackupSession",
            namespace: "demo".into(),
            name: name.into(),
        }
    }

    #[test]
    fn backoff_doubles_per_category_up_to_its_cap() {
        use ErrorCategory::*;
        let table = [
            (Conflict, 1, 20),
            (Conflict, 2, 40),
            (Conflict, 10, 1_000),
            (Transient, 1, 500),
            (Transient, 3, 2_000),
            (Transient, 30, 30_000),
            (NotFound, 1, 2_000),
            (Invalid, 2, 4_000),
            (Invalid, 9, 60_000),
            (Permanent, 1, 10_000),
            (Permanent, 99, 300_000),
        ];
        for (category, failures, ms) in table {
            assert_eq!(
                backoff(category, failures),
                Duration::from_millis(ms),
                "{category} after {failures} failures"
            );
        }
    }

    #[test]
    fn a_key_added_twice_is_handed_out_once() {
        let q = WorkQueue::new();
        q.add(key("a"));
        q.add(key("a"));
        assert_eq!(q.next(), Some(key("a")));
        q.shut_down();
        assert_eq!(q.next(), None);
    }

    #[test]
    fn a_key_changed_while_active_waits_for_the_running_reconcile() {
        let q = WorkQueue::new();
        q.add(key("a"));
        q.add(key("b"));
        let first = q.next().unwrap();
        assert_eq!(first, key("a"));
        q.add(key("a")); // changed while a worker holds it
        assert_eq!(q.next(), Some(key("b")), "the held key is skipped");
        q.done(key("b"), Ok(Requeue::Idle));
        q.done(key("a"), Ok(Requeue::Idle));
        assert_eq!(q.next(), Some(key("a")), "the change is not lost");
    }

    #[test]
    fn a_resync_does_not_cut_a_backoff_short_but_a_change_does() {
        let q = WorkQueue::new();
        q.add(key("a"));
        let k = q.next().unwrap();
        let d = q.done(k, Err(ErrorCategory::Permanent));
        assert_eq!(d, Some(Duration::from_secs(10)));
        q.add_if_absent(key("a"));
        q.add(key("b"));
        assert_eq!(q.next(), Some(key("b")), "a is still backing off");
        q.add(key("a"));
        q.done(key("b"), Ok(Requeue::Idle));
        assert_eq!(q.next(), Some(key("a")));
    }

    #[test]
    fn changes_go_before_resyncs_and_each_lane_is_first_come_first_served() {
        let q = WorkQueue::new();
        q.add_if_absent(key("resync-1"));
        q.add(key("z-change-1"));
        q.add_if_absent(key("resync-2"));
        q.add(key("a-change-2"));
        // A resynced key that changes moves to the change lane, keeping its place in time.
        q.add(key("resync-2"));
        let order: Vec<String> = (0..4).map(|_| q.next().unwrap().name).collect();
        assert_eq!(order, ["z-change-1", "resync-2", "a-change-2", "resync-1"]);
    }

    #[test]
    fn failures_grow_the_backoff_and_a_success_resets_it() {
        let q = WorkQueue::new();
        for expected in [500, 1_000, 2_000] {
            q.add(key("a"));
            let k = q.next().unwrap();
            assert_eq!(
                q.done(k, Err(ErrorCategory::Transient)),
                Some(Duration::from_millis(expected))
            );
        }
        q.add(key("a"));
        let k = q.next().unwrap();
        q.done(k, Ok(Requeue::Idle));
        q.add(key("a"));
        let k = q.next().unwrap();
        assert_eq!(
            q.done(k, Err(ErrorCategory::Transient)),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_slow_reconcile_does_not_hold_up_the_other_workers() {
        // Key "slow" blocks its worker until every other key has been reconciled: with one worker
        // this would deadlock (the test would hang); with two it finishes.
        let q = Arc::new(WorkQueue::new());
        q.add(key("slow"));
        for i in 0..20 {
            q.add(key(&format!("k{i}")));
        }
        let others = AtomicUsize::new(0);
        let q2 = q.clone();
        q.run_workers(2, |k| {
            if k.name == "slow" {
                while others.load(Ordering::SeqCst) < 20 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                q2.shut_down();
            } else {
                others.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Requeue::Idle)
        });
        assert_eq!(others.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn one_object_is_never_reconciled_by_two_workers_at_once() {
        let q = Arc::new(WorkQueue::new());
        let inside = AtomicUsize::new(0);
        let rounds = AtomicUsize::new(0);
        let q2 = q.clone();
        q.add(key("a"));
        q.run_workers(4, |k| {
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two workers on one key");
            // Wake the key again while it is held: the other workers must not take it.
            q2.add(k.clone());
            std::thread::sleep(Duration::from_millis(2));
            inside.fetch_sub(1, Ordering::SeqCst);
            if rounds.fetch_add(1, Ordering::SeqCst) == 50 {
                q2.shut_down();
            }
            Ok(Requeue::Idle)
        });
        assert!(rounds.load(Ordering::SeqCst) > 50);
    }
}
