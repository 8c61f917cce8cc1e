//! The embedded daemon loop: follows the store's change log (shared by every process using the
//! file), runs the reconcilers through a de-duplicating delay queue, fires due schedules, resyncs
//! everything every 10 s, and stops between reconciles when asked to. Also the single-daemon lock
//! and the addon catalog installation.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kstash_api::client::ResourcesExt;
use kstash_api::core::BackupConfiguration;
use kstash_controller::dispatch::{self, Key, RECONCILED};
use kstash_controller::{Requeue, backup_configuration};

use crate::platform::EmbeddedPlatform;
use crate::store::Store;
use crate::{LabelSelector, StoreError};

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

/// Run the reconcile loop until `shutdown` is set (or `stop` says so).
pub fn run(p: &EmbeddedPlatform, shutdown: &AtomicBool, stop: StopWhen<'_>) -> Result<(), StoreError> {
    let mut queue: BTreeMap<Key, Instant> = BTreeMap::new();
    let mut failures: BTreeMap<Key, u32> = BTreeMap::new();
    let mut revision = p.store.current_revision()?;
    enqueue_all(p, &mut queue)?;
    let mut last_resync = Instant::now();
    tracing::info!(objects = queue.len(), "reconcile loop started");
    while !shutdown.load(Ordering::SeqCst) {
        // Changes from every process.
        match p.store.changes_since(revision) {
            Ok(events) => {
                for ev in events {
                    revision = ev.revision;
                    for key in dispatch::keys_for_change(&ev.object) {
                        queue.insert(key, Instant::now());
                    }
                }
            }
            Err(StoreError::Gone { .. }) => {
                revision = p.store.current_revision()?;
                enqueue_all(p, &mut queue)?;
            }
            Err(e) => return Err(e),
        }
        // Queued executors whose slot came free.
        p.runner.pump();
        // Schedules.
        for due in p.scheduler.due(Timestamp::now()) {
            fire(p, &due.namespace, &due.invoker, &due.session, due.at);
        }
        if last_resync.elapsed() >= RESYNC {
            enqueue_all(p, &mut queue)?;
            last_resync = Instant::now();
        }
        // Reconcile what is due.
        let now = Instant::now();
        let ready: Vec<Key> = queue
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ready {
            if shutdown.load(Ordering::SeqCst) {
                break;
            }
            // Schedules fire on time even while a long resync is being worked through.
            for due in p.scheduler.due(Timestamp::now()) {
                fire(p, &due.namespace, &due.invoker, &due.session, due.at);
            }
            queue.remove(&key);
            let span = tracing::info_span!("reconcile", object = %key);
            let _g = span.enter();
            match dispatch::reconcile(p, &key) {
                Ok(Requeue::Idle) => {
                    failures.remove(&key);
                }
                Ok(Requeue::After(d)) => {
                    failures.remove(&key);
                    let at = Instant::now() + d;
                    let slot = queue.entry(key).or_insert(at);
                    *slot = (*slot).min(at);
                }
                Err(e) => {
                    let n = failures.entry(key.clone()).or_insert(0);
                    *n += 1;
                    let conflict =
                        matches!(&e, kstash_controller::ReconcileError::Client(c) if c.is_conflict());
                    if conflict {
                        tracing::debug!(error = %e, "conflict; retrying");
                    } else {
                        tracing::warn!(error = %e, attempt = *n, "reconcile failed");
                    }
                    let backoff = if conflict {
                        Duration::from_millis(50)
                    } else {
                        Duration::from_millis(500 * u64::from((*n).min(20)))
                    };
                    queue.insert(key, Instant::now() + backoff);
                }
            }
        }
        if let StopWhen::Done(f) = &stop
            && f(p)
        {
            break;
        }
        let next = queue.values().min().copied();
        let wait = next
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
    tracing::info!("reconcile loop stopped");
    Ok(())
}

fn enqueue_all(p: &EmbeddedPlatform, queue: &mut BTreeMap<Key, Instant>) -> Result<(), StoreError> {
    let now = Instant::now();
    for rt in RECONCILED {
        for obj in p.store.list(rt, None, &LabelSelector::everything())? {
            queue.entry(Key::of(rt.kind, &obj)).or_insert(now);
        }
    }
    Ok(())
}

/// A schedule fired: create the BackupSession (the retry budget comes from `retryConfig`).
fn fire(p: &EmbeddedPlatform, ns: &str, invoker: &str, session: &str, at: Timestamp) {
    let bc = match p.get_as::<BackupConfiguration>(ns, invoker) {
        Ok(Some(bc)) => bc,
        _ => return,
    };
    if bc.spec.paused {
        return;
    }
    let retry = backup_configuration::retry_budget(&bc, session);
    let lag = Timestamp::now().duration_since(at);
    match backup_configuration::trigger(p, &bc, session, retry) {
        Ok(bs) => tracing::info!(
            backupsession = %bs.metadata.name.unwrap_or_default(),
            lag_ms = lag.as_millis(),
            "schedule fired"
        ),
        Err(e) => tracing::warn!(error = %e, "schedule fired but the BackupSession could not be created"),
    }
}
