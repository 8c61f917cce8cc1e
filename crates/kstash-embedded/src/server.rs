//! The embedded daemon loop: follows the store's change log (shared by every process using the
//! file), runs the reconcilers through a de-duplicating delay queue, fires due schedules, resyncs
//! everything every 10 s, and stops between reconciles when asked to. Also the single-daemon lock
//! and the addon catalog installation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kstash_api::client::ResourcesExt;
use kstash_api::core::BackupConfiguration;
use kstash_controller::dispatch::{self, Key, RECONCILED, STASH_RECONCILED};
use kstash_controller::{WorkQueue, backup_configuration, stash_backup, verification_session};

use crate::StoreError;
use crate::platform::EmbeddedPlatform;
use crate::scheduler::Due;
use crate::store::Store;

/// How often every object is reconciled even without changes (KubeStash requeues every 10 s).
pub const RESYNC: Duration = Duration::from_secs(10);

/// Holds `server.lock` in the data directory while a daemon runs.
#[derive(Debug)]
pub struct ServerLock {
    _file: File,
    path: PathBuf,
}

impl ServerLock {
    /// Take the lock, or say which process holds it.
    pub fn acquire(home: &Path) -> Result<ServerLock, String> {
        std::fs::create_dir_all(home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        let path = home.join("server.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                std::fs::write(&path, std::process::id().to_string()).map_err(|e| e.to_string())?;
                Ok(ServerLock { _file: file, path })
            }
            Err(_) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                Err(format!(
                    "another kstash server (pid {}) is running on {}; stop it first or use another KSTASH_HOME",
                    pid.trim(),
                    home.display()
                ))
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a daemon holds the lock of `home` (its pid when it does).
pub fn server_running(home: &Path) -> Option<String> {
    let path = home.join("server.lock");
    let file = File::options().read(true).write(true).open(&path).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(_) => Some(
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    }
}

/// Apply the catalog documents (YAML, several per file) into the store. Objects a user changed
/// (without the `app.kubernetes.io/managed-by: kstash` label) are left alone.
pub fn install_catalog(store: &Store, documents: &[(&str, &str)]) -> Result<usize, String> {
    let mut n = 0;
    for (file, doc) in documents {
        for (i, value) in kstash_api::manifest::parse_documents(file, doc)
            .map_err(|e| format!("catalog: {e}"))?
            .into_iter()
            .enumerate()
        {
            let rt = crate::object::resource_type(&value)
                .map_err(|e| format!("catalog {file} document {i}: {e}"))?;
            let name = value
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if let Ok(existing) = store.get(rt, "", name) {
                let managed = existing
                    .pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                    .and_then(|v| v.as_str());
                if managed != Some("kstash") {
                    continue;
                }
            }
            store.apply(value).map_err(|e| format!("catalog: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// When the loop stops on its own.
pub enum StopWhen<'a> {
    /// Only on shutdown.
    Never,
    /// When the predicate says so (checked after each round), e.g. a foreground `trigger`.
    Done(&'a dyn Fn(&EmbeddedPlatform) -> bool),
}

impl std::fmt::Debug for StopWhen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopWhen::Never => "Never",
            StopWhen::Done(_) => "Done",
        })
    }
}

/// Run the daemon until `shutdown` is set (or `stop` says so): this thread follows the change log,
/// starts queued executors, fires due schedules and resyncs; `p.reconcile_workers()` worker
/// threads reconcile from the shared [`WorkQueue`], one object at a time each, so a slow reconcile
/// holds up only its own object.
pub fn run(p: &EmbeddedPlatform, shutdown: &AtomicBool, stop: StopWhen<'_>) -> Result<(), StoreError> {
    let queue = WorkQueue::new();
    let revision = p.store.current_revision()?;
    enqueue_all(p, &queue, false)?;
    tracing::info!(
        objects = queue.len(),
        workers = p.reconcile_workers(),
        "reconcile loop started"
    );
    let outcome = std::thread::scope(|scope| {
        let workers = scope.spawn(|| {
            queue.run_workers(p.reconcile_workers(), |key| dispatch::reconcile(p, key));
        });
        let outcome = follow(p, &queue, revision, shutdown, &stop);
        // Workers finish the reconcile they are in, then stop.
        queue.shut_down();
        let _ = workers.join();
        outcome
    });
    tracing::info!("reconcile loop stopped");
    outcome
}

/// The feeding side of the loop: changes → keys, executor slots, schedules, resync.
fn follow(
    p: &EmbeddedPlatform,
    queue: &WorkQueue,
    mut revision: u64,
    shutdown: &AtomicBool,
    stop: &StopWhen<'_>,
) -> Result<(), StoreError> {
    let mut last_resync = Instant::now();
    while !shutdown.load(Ordering::SeqCst) {
        // Changes from every process.
        match p.store.changes_since(revision) {
            Ok(events) => {
                for ev in events {
                    revision = ev.revision;
                    for wake in dispatch::wakes_for_change(&ev.object) {
                        queue.add_after(wake.key, wake.after);
                    }
                }
            }
            Err(StoreError::Gone { requested, compacted }) => {
                tracing::info!(
                    requested,
                    compacted,
                    "change log compacted past the daemon's position; queueing every object again"
                );
                revision = p.store.current_revision()?;
                enqueue_all(p, queue, false)?;
            }
            Err(e) => return Err(e),
        }
        // Queued executors whose slot came free.
        p.runner.pump();
        // Schedules: every session due at this tick is created in one transaction.
        let due = p.scheduler.due(Timestamp::now());
        if !due.is_empty() {
            fire(p, &due);
        }
        if last_resync.elapsed() >= RESYNC {
            enqueue_all(p, queue, true)?;
            last_resync = Instant::now();
        }
        if let StopWhen::Done(f) = stop
            && f(p)
        {
            break;
        }
        // Sleep until the next schedule is due, at most a short poll of the change log.
        let mut wait = POLL;
        if let Some(next) = p.scheduler.next_due() {
            let until = Timestamp::now().duration_until(next);
            if let Ok(until) = Duration::try_from(until) {
                wait = wait.min(until);
            } else {
                wait = Duration::ZERO;
            }
        }
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// How often the change log is read when nothing is due.
const POLL: Duration = Duration::from_millis(100);

/// Queue every reconciled object: at start (and after the change log was compacted away) as
/// changes; on the periodic resync behind every change (`resync`).
fn enqueue_all(p: &EmbeddedPlatform, queue: &WorkQueue, resync: bool) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut objects = 0;
    for rt in RECONCILED.iter().chain(STASH_RECONCILED) {
        let except = if resync { dispatch::settled_phases(rt) } else { &[] };
        for (namespace, name) in p.store.list_keys(rt, except)? {
            let key = Key {
                kind: rt.key_kind(),
                namespace,
                name,
            };
            objects += 1;
            if resync {
                queue.add_if_absent(key);
            } else {
                queue.add(key);
            }
        }
    }
    tracing::debug!(
        objects,
        resync,
        ms = started.elapsed().as_millis(),
        "queued every object"
    );
    Ok(())
}

/// Schedules fired: create their BackupSessions, all of one tick in one transaction, from what
/// each schedule carries (no read of the configurations: a paused one has a suspended schedule).
/// A session whose name is taken (triggered by hand in the same second) is created on its own at
/// the next free second.
fn fire(p: &EmbeddedPlatform, due: &[Due]) {
    let now = Timestamp::now();
    let started = Instant::now();
    let (verifiers, due): (Vec<&Due>, Vec<&Due>) = due.iter().partition(|d| d.verifies.is_some());
    for d in verifiers {
        let repository = d.verifies.as_deref().unwrap_or_default();
        match verification_session::trigger(
            p,
            &d.namespace,
            &d.invoker,
            &d.session,
            repository,
            d.trigger.retry_left,
        ) {
            Ok(bvs) => {
                tracing::info!(verificationsession = %bvs.metadata.name.unwrap_or_default(), "verifier schedule fired")
            }
            Err(e) => {
                tracing::warn!(error = %e, repository, "verifier schedule fired but the BackupVerificationSession could not be created")
            }
        }
    }
    // Stash v1 configurations: a Stash BackupSession each, named as Stash's trigger named them.
    let (stash, due): (Vec<&Due>, Vec<&Due>) = due
        .into_iter()
        .partition(|d| d.invoker.starts_with(stash_backup::INVOKER_PREFIX));
    for d in stash {
        let bc = d.invoker.trim_start_matches(stash_backup::INVOKER_PREFIX);
        match p
            .store
            .create(stash_backup::backup_session_for(&d.namespace, bc, now))
        {
            Ok(bs) => {
                tracing::info!(backupsession = %Key::of("BackupSession", &bs).name, "Stash schedule fired")
            }
            Err(e) => {
                tracing::warn!(error = %e, configuration = bc, "Stash schedule fired but the BackupSession could not be created")
            }
        }
    }
    let mut batch = Vec::with_capacity(due.len());
    let mut fired = Vec::with_capacity(due.len());
    for d in due {
        let bs =
            backup_configuration::backup_session_from(&d.namespace, &d.invoker, &d.session, &d.trigger, now);
        match serde_json::to_value(&bs) {
            Ok(bs) => {
                batch.push(bs);
                fired.push(d);
            }
            Err(e) => tracing::warn!(error = %e, "schedule fired but the BackupSession could not be built"),
        }
    }
    if batch.is_empty() {
        return;
    }
    let outcomes = match p.store.create_all(batch) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, sessions = fired.len(), "schedules fired but the BackupSessions could not be created");
            return;
        }
    };
    // The sessions of the batch became visible together, when its transaction committed.
    let committed = Timestamp::now();
    let earliest = fired.iter().map(|d| d.at).min().unwrap_or(now);
    tracing::info!(
        sessions = fired.len(),
        late_ms = now.duration_since(earliest).as_millis(),
        create_ms = started.elapsed().as_millis(),
        "schedule tick created its BackupSessions"
    );
    for (d, outcome) in fired.into_iter().zip(outcomes) {
        let created = match outcome {
            Ok(obj) => Ok((Key::of("BackupSession", &obj).name, committed)),
            Err(StoreError::AlreadyExists { .. }) => {
                match p.get_as::<BackupConfiguration>(&d.namespace, &d.invoker) {
                    Ok(Some(bc)) => backup_configuration::trigger(p, &bc, &d.session, d.trigger.retry_left)
                        .map(|bs| (bs.metadata.name.unwrap_or_default(), Timestamp::now()))
                        .map_err(|e| e.to_string()),
                    Ok(None) => Err(format!(
                        "BackupConfiguration {}/{} is gone",
                        d.namespace, d.invoker
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match created {
            Ok((name, at)) => {
                let lag = at.duration_since(d.at);
                tracing::info!(backupsession = %name, lag_ms = lag.as_millis(), "schedule fired")
            }
            Err(e) => tracing::warn!(error = %e, "schedule fired but the BackupSession could not be created"),
        }
    }
}
