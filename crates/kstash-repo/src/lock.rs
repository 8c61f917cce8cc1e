//! Repository locks that restic understands, and that understand restic's.
//!
//! A lock is an unpacked file in `locks/` (encrypted JSON, zstd-compressed in v2 repositories)
//! holding `{time, exclusive, hostname, username, pid, uid, gid}` exactly as restic writes it, so
//! `restic list locks`, `restic cat lock`, `restic unlock` and restic's own conflict checks see
//! ours, and we see restic's.
//!
//! Any number of shared (non-exclusive) locks may coexist; an exclusive lock excludes every other
//! lock. Taking a lock: look for conflicting locks, write ours, wait a moment ([`SETTLE`]) for
//! concurrent writers to become visible, look again, and withdraw ours if a conflict appeared.
//! On a local directory the moment is skipped (it was 200 ms of every command): a listing there
//! shows every lock whose write has returned, so of two racing lockers the later to list sees
//! the other ([`Backend::lists_every_finished_write`]).
//!
//! A lock is *stale* when its time is more than [`STALE_AFTER`] in the past (its owner stopped
//! refreshing it) or when it was written on this host by a process that no longer exists. Stale
//! locks never block us (restic 0.14 still refuses them until `restic unlock`); `unlock` removes
//! them. A held lock is refreshed every [`REFRESH_INTERVAL`] by a background thread, by writing
//! a new lock file with the current time and removing the old one; dropping the [`RepoLock`]
//! stops the thread and removes the lock file. Like restic, a process holding a lock ignores
//! SIGHUP, which restic sends to same-host lock holders to see whether they are alive.
//!
//! Where restic's rules cannot tell whether a holder on another host is alive (on Kubernetes
//! every executor pod is its own host), the caller may supply a [`HolderLiveness`] judge in
//! [`LockOptions::liveness`]. Acquisition asks it about each conflicting, not-yet-stale lock:
//! a holder judged [`HolderState::Gone`] has its lock file removed at once; one judged
//! [`HolderState::Absent`] (not found where the judge looked, but possibly alive elsewhere) once
//! its lock has not been refreshed for [`ABSENT_AFTER`]; [`HolderState::Alive`] and
//! [`HolderState::Unknown`] leave the lock in place. The engine itself knows nothing of where
//! holders run.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileType};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::gojson::{self, GoTime};
use crate::id::Id;
use crate::repository::{Repository, seal_unpacked};

/// A lock not refreshed for this long is stale (restic's `StaleLockTimeout`).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is refreshed (restic's refresh interval).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The pause between writing our lock and checking again for conflicting ones.
pub const SETTLE: Duration = Duration::from_millis(200);
/// How often a waiting acquisition looks again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// A lock whose holder a [`HolderLiveness`] judge found [`HolderState::Absent`] is removed once
/// it has not been refreshed for this long: a live holder anywhere (restic or kstash) rewrites
/// its lock every [`REFRESH_INTERVAL`], so two intervals and two minutes tolerate one missed
/// refresh and a little clock skew between hosts.
pub const ABSENT_AFTER: Duration = Duration::from_secs(2 * REFRESH_INTERVAL.as_secs() + 120);

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The content of a lock file, field for field as restic's `Lock` (same JSON names and order,
/// `uid`/`gid` omitted when zero, Go's RFC 3339 time with nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// When the lock was written or last refreshed.
    pub time: GoTime,
    /// Whether the lock is exclusive.
    pub exclusive: bool,
    /// The host of the process holding it.
    #[serde(default)]
    pub hostname: String,
    /// The user of that process.
    #[serde(default)]
    pub username: String,
    /// The process id (Go `int`).
    #[serde(default)]
    pub pid: i64,
    /// The user id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// The group id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
}

impl LockFile {
    /// A lock for this process, timed now.
    pub fn for_this_process(exclusive: bool) -> LockFile {
        let (uid, gid) = crate::host::uid_gid();
        LockFile {
            time: GoTime::now(),
            exclusive,
            hostname: crate::host::hostname(),
            username: crate::host::username(),
            pid: i64::from(std::process::id()),
            uid,
            gid,
        }
    }

    /// Whether the lock is stale as seen from `host` at `now` (see the module documentation).
    pub fn is_stale_at(&self, now: jiff::Timestamp, host: &str) -> bool {
        let age = now.as_nanosecond() - self.time.timestamp.as_nanosecond();
        if age > STALE_AFTER.as_nanos() as i128 {
            return true;
        }
        !host.is_empty() && self.hostname == host && !process_exists(self.pid)
    }

    /// Whether the lock is stale now, as seen from this host.
    pub fn is_stale(&self) -> bool {
        self.is_stale_at(jiff::Timestamp::now(), &crate::host::hostname())
    }

    /// Whether this lock and a lock of kind `exclusive` cannot both be held.
    pub fn conflicts_with(&self, exclusive: bool) -> bool {
        exclusive || self.exclusive
    }
}

/// Whether process `pid` exists on this host. Without `/proc` we cannot tell and say yes, so a
/// live process's lock is never taken for stale.
fn process_exists(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// restic decides whether a lock holder on its own host is alive by sending it SIGHUP, whose
/// default action ends a process: a `restic unlock` next to a running backup would kill it.
/// Like restic, a process that writes locks therefore ignores SIGHUP (a handler that only sets
/// a flag replaces the default action; handlers others register still run).
fn survive_liveness_probes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, flag) {
            tracing::warn!(error = %e, "cannot ignore SIGHUP; restic's lock checks may end this process");
        }
    });
}

/// A lock file found in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The lock file's id (its name in `locks/`).
    pub id: Id,
    /// Its content.
    pub lock: LockFile,
    /// Whether it was stale when read.
    pub stale: bool,
}

impl fmt::Display for LockInfo {
    /// `exclusively by PID 1234 on host h by user u since 2026-01-02T03:04:05Z (lock 1a2b3c4d)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.lock;
        let since = GoTime {
            timestamp: jiff::Timestamp::from_second(l.time.timestamp.as_second()).unwrap_or(l.time.timestamp),
            offset_seconds: l.time.offset_seconds,
        };
        write!(
            f,
            "{}by PID {} on host {} by user {} since {since} (lock {})",
            if l.exclusive { "exclusively " } else { "" },
            l.pid,
            display_or_unknown(&l.hostname),
            display_or_unknown(&l.username),
            self.id.short()
        )
    }
}

fn display_or_unknown(s: &str) -> &str {
    if s.is_empty() { "(unknown)" } else { s }
}

/// The message of [`Error::Locked`].
pub(crate) fn locked_message(holder: &LockInfo, waited: &Duration) -> String {
    let waited = if waited.is_zero() {
        String::new()
    } else {
        format!(", still after waiting {}s", waited.as_secs())
    };
    format!(
        "repository is already locked {holder}{waited}; wait, or run `kstash repo unlock --remove-all` if that process is gone"
    )
}

/// What a [`HolderLiveness`] judge knows about the process holding a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// The holder has certainly ended (e.g. its pod Succeeded or Failed): its lock is removed
    /// at once.
    Gone,
    /// The holder was not found where the judge looked (e.g. no pod of that name in this
    /// namespace), yet may run elsewhere (another namespace, a machine outside the cluster): its
    /// lock is removed only once it has not been refreshed for [`ABSENT_AFTER`].
    Absent,
    /// The holder runs: its lock is respected.
    Alive,
    /// The judge cannot tell (e.g. its API failed): its lock is respected, as without a judge.
    Unknown,
}

/// Judges whether the holder of a conflicting lock still runs, for holders restic's own rules
/// cannot judge (another host). Called from the acquiring thread, possibly every
/// [`LockOptions::retry_interval`] while waiting; it should answer within seconds and answer
/// [`HolderState::Unknown`] whenever in doubt. Any `Fn(&LockFile) -> HolderState` is a judge.
pub trait HolderLiveness: Send + Sync {
    /// The state of the process that wrote `lock`.
    fn holder_state(&self, lock: &LockFile) -> HolderState;
}

impl<F: Fn(&LockFile) -> HolderState + Send + Sync> HolderLiveness for F {
    fn holder_state(&self, lock: &LockFile) -> HolderState {
        self(lock)
    }
}

/// A shared [`HolderLiveness`] judge, as carried in [`LockOptions`]. Two are equal when they
/// are the same judge.
#[derive(Clone)]
pub struct LivenessJudge(Arc<dyn HolderLiveness>);

impl LivenessJudge {
    /// Share `judge`.
    pub fn new(judge: impl HolderLiveness + 'static) -> LivenessJudge {
        LivenessJudge(Arc::new(judge))
    }

    /// The state of the process that wrote `lock`.
    pub fn holder_state(&self, lock: &LockFile) -> HolderState {
        self.0.holder_state(lock)
    }
}

impl fmt::Debug for LivenessJudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LivenessJudge")
    }
}

impl PartialEq for LivenessJudge {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LivenessJudge {}

/// How to take and keep a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// How long to keep trying while a conflicting lock is held (zero: fail at once, as restic
    /// 0.14 does).
    pub wait: Duration,
    /// The pause between attempts while waiting.
    pub retry_interval: Duration,
    /// How often the held lock is refreshed.
    pub refresh_interval: Duration,
    /// The pause between writing our lock and the second conflict check (skipped on a backend
    /// that [lists every finished write](crate::backend::Backend::lists_every_finished_write)).
    pub settle: Duration,
    /// Who judges whether the holder of a conflicting lock on another host still runs (`None`:
    /// only restic's rules, as restic itself).
    pub liveness: Option<LivenessJudge>,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: Duration::ZERO,
            retry_interval: RETRY_INTERVAL,
            refresh_interval: REFRESH_INTERVAL,
            settle: SETTLE,
            liveness: None,
        }
    }
}

impl LockOptions {
    /// Defaults, waiting up to `wait` for conflicting locks to go away.
    pub fn waiting(wait: Duration) -> LockOptions {
        LockOptions {
            wait,
            ..Default::default()
        }
    }
}

/// Every readable lock file in the repository. Empty files (interrupted non-atomic uploads on
/// some stores), unparsable names and files that vanish while being read are skipped; other
/// unreadable files are skipped with a warning, as restic 0.14 does.
pub fn list_locks(repo: &Repository) -> Result<Vec<LockInfo>> {
    let now = jiff::Timestamp::now();
    let host = crate::host::hostname();
    let mut out = Vec::new();
    for (name, size) in repo.backend().list(FileType::Lock)? {
        let Ok(id) = name.parse::<Id>() else { continue };
        if size == 0 {
            continue;
        }
        match repo.load_json::<LockFile>(FileType::Lock, &id) {
            Ok(lock) => {
                let stale = lock.is_stale_at(now, &host);
                out.push(LockInfo { id, lock, stale });
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => tracing::warn!(lock = %id.short(), error = %e, "ignoring unreadable lock file"),
        }
    }
    out.sort_by_key(|l| (l.lock.time.timestamp, l.id));
    Ok(out)
}

/// Remove every stale lock (as `restic unlock` does); returns the ids removed.
pub fn remove_stale_locks(repo: &Repository) -> Result<Vec<Id>> {
    let mut removed = Vec::new();
    for l in list_locks(repo)? {
        if l.stale {
            remove_lock_file(repo.backend().as_ref(), &l.id)?;
            removed.push(l.id);
        }
    }
    Ok(removed)
}

/// Remove every lock file, stale or not, readable or not (as `restic unlock --remove-all`
/// does); returns the ids removed.
pub fn remove_all_locks(repo: &Repository) -> Result<Vec<Id>> {
    let mut removed = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lock)? {
        let Ok(id) = name.parse::<Id>() else { continue };
        remove_lock_file(repo.backend().as_ref(), &id)?;
        removed.push(id);
    }
    Ok(removed)
}

/// Remove a lock file; one already gone is fine.
fn remove_lock_file(backend: &dyn Backend, id: &Id) -> Result<()> {
    match backend.remove(FileType::Lock, &id.to_hex()) {
        Ok(()) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The oldest lock, other than `own`, that is not stale and conflicts with a lock of kind
/// `exclusive`, and whose holder `liveness` (if any) does not find gone. Locks of holders it
/// finds gone are removed on the way (see [`holder_gone`]).
fn find_conflict(
    repo: &Repository,
    exclusive: bool,
    own: Option<&Id>,
    liveness: Option<&LivenessJudge>,
) -> Result<Option<LockInfo>> {
    let now = jiff::Timestamp::now();
    for l in list_locks(repo)? {
        if Some(&l.id) == own || !l.lock.conflicts_with(exclusive) {
            continue;
        }
        if l.stale {
            tracing::info!(lock = %l.id.short(), holder = %l, "ignoring stale lock");
            continue;
        }
        let Some(reason) = liveness.and_then(|j| holder_gone(j, &l.lock, now)) else {
            return Ok(Some(l));
        };
        tracing::warn!(
            lock = %l.id.short(),
            hostname = %l.lock.hostname,
            pid = l.lock.pid,
            exclusive = l.lock.exclusive,
            "removing the lock of a holder that {reason}"
        );
        remove_lock_file(repo.backend().as_ref(), &l.id)?;
    }
    Ok(None)
}

/// Why the holder of `lock` counts as gone at `now` by `judge`'s verdict, or `None` while it
/// may still run.
fn holder_gone(judge: &LivenessJudge, lock: &LockFile, now: jiff::Timestamp) -> Option<&'static str> {
    match judge.holder_state(lock) {
        HolderState::Gone => Some("has ended"),
        HolderState::Absent => {
            let age = now.as_nanosecond() - lock.time.timestamp.as_nanosecond();
            (age >= ABSENT_AFTER.as_nanos() as i128)
                .then_some("cannot be found and stopped refreshing its lock")
        }
        HolderState::Alive | HolderState::Unknown => None,
    }
}

/// Take a shared lock, waiting up to `wait` for an exclusive one to go away.
pub fn acquire_shared(repo: &Repository, wait: Duration) -> Result<RepoLock> {
    acquire(repo, false, &LockOptions::waiting(wait))
}

/// Take an exclusive lock, waiting up to `wait` for every other lock to go away.
pub fn acquire_exclusive(repo: &Repository, wait: Duration) -> Result<RepoLock> {
    acquire(repo, true, &LockOptions::waiting(wait))
}

/// A shared lock for a reader or a backup when `options` is given (`None`: the caller takes
/// care of locking), then the in-memory index brought up to date: packs a prune removed before
/// we held the lock must not be read or deduplicated against.
pub fn shared_and_fresh(repo: &Repository, options: Option<&LockOptions>) -> Result<Option<RepoLock>> {
    let Some(options) = options else { return Ok(None) };
    let held = acquire(repo, false, options)?;
    repo.refresh_index()?;
    Ok(Some(held))
}

/// Take a lock. While a conflicting, non-stale lock is held, try again every
/// `options.retry_interval` until `options.wait` has passed, then fail with
/// [`Error::Locked`] naming the holder. Conflicting locks whose holder `options.liveness` finds
/// gone are removed first (see the module documentation).
pub fn acquire(repo: &Repository, exclusive: bool, options: &LockOptions) -> Result<RepoLock> {
    let started = Instant::now();
    let deadline = started + options.wait;
    let mut announced = false;
    loop {
        let holder = match try_acquire(repo, exclusive, options)? {
            Ok(lock) => return Ok(lock),
            Err(holder) => holder,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Locked {
                holder: Box::new(holder),
                waited: now - started,
            });
        }
        if !announced {
            tracing::warn!(
                "repository is already locked {holder}; waiting up to {}s",
                options.wait.as_secs()
            );
            announced = true;
        }
        std::thread::sleep(
            options
                .retry_interval
                .max(Duration::from_millis(10))
                .min(deadline - now),
        );
    }
}

/// One attempt: our lock, or the conflicting lock that prevents it.
fn try_acquire(
    repo: &Repository,
    exclusive: bool,
    options: &LockOptions,
) -> Result<std::result::Result<RepoLock, LockInfo>> {
    let liveness = options.liveness.as_ref();
    if let Some(holder) = find_conflict(repo, exclusive, None, liveness)? {
        return Ok(Err(holder));
    }
    survive_liveness_probes();
    let sealer = Sealer {
        backend: Arc::clone(repo.backend()),
        key: repo.key().clone(),
        level: repo.unpacked_compression(),
    };
    let lock = LockFile::for_this_process(exclusive);
    let id = sealer.write(&lock)?;
    if !repo.backend().lists_every_finished_write() {
        std::thread::sleep(options.settle);
    }
    match find_conflict(repo, exclusive, Some(&id), liveness) {
        Ok(None) => {}
        Ok(Some(holder)) => {
            remove_lock_file(sealer.backend.as_ref(), &id)?;
            return Ok(Err(holder));
        }
        Err(e) => {
            let _ = remove_lock_file(sealer.backend.as_ref(), &id);
            return Err(e);
        }
    }
    tracing::debug!(lock = %id.short(), exclusive, "locked repository");
    Ok(Ok(RepoLock::start(sealer, id, lock, options.refresh_interval)))
}

/// Writes lock files without borrowing the repository, so the refresh thread can own it.
struct Sealer {
    backend: Arc<dyn Backend>,
    key: Key,
    level: Option<i32>,
}

impl Sealer {
    fn write(&self, lock: &LockFile) -> Result<Id> {
        let json = gojson::to_vec(lock).map_err(|e| Error::json("lock", e))?;
        let enc = seal_unpacked(&self.key, self.level, &json)?;
        let id = Id::hash(&enc);
        self.backend.write(FileType::Lock, &id.to_hex(), &enc)?;
        Ok(id)
    }
}

struct HeldState {
    id: Id,
    lock: LockFile,
    refreshed: Instant,
    stop: bool,
    /// Old lock files of ours whose removal failed; retried on release.
    leftovers: Vec<Id>,
}

struct Held {
    sealer: Sealer,
    refresh_interval: Duration,
    state: Mutex<HeldState>,
    wake: Condvar,
}

impl Held {
    fn state(&self) -> MutexGuard<'_, HeldState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refresh(&self) -> Result<()> {
        let mut lock = self.state().lock.clone();
        lock.time = GoTime::now();
        let new_id = self.sealer.write(&lock)?;
        let old_id = {
            let mut st = self.state();
            st.lock = lock;
            st.refreshed = Instant::now();
            std::mem::replace(&mut st.id, new_id)
        };
        match self.sealer.backend.remove(FileType::Lock, &old_id.to_hex()) {
            Ok(()) => {}
            Err(Error::NotFound(_)) => tracing::warn!(
                lock = %old_id.short(),
                "our lock file was removed by someone else (unlock --remove-all?); holding the refreshed one"
            ),
            Err(e) => {
                tracing::warn!(lock = %old_id.short(), error = %e, "cannot remove the old lock file");
                self.state().leftovers.push(old_id);
            }
        }
        tracing::debug!(old = %old_id.short(), new = %new_id.short(), "refreshed lock");
        Ok(())
    }

    fn run_refresher(&self) {
        loop {
            let st = self.state();
            let (st, _) = self
                .wake
                .wait_timeout_while(st, self.refresh_interval, |s| !s.stop)
                .unwrap_or_else(PoisonError::into_inner);
            if st.stop {
                return;
            }
            drop(st);
            if let Err(e) = self.refresh() {
                tracing::warn!(error = %e, "cannot refresh the repository lock");
            }
        }
    }
}

/// A lock held on a repository: refreshed in the background, removed on drop.
pub struct RepoLock {
    held: Arc<Held>,
    refresher: Option<JoinHandle<()>>,
    released: bool,
}

impl fmt::Debug for RepoLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.held.state();
        f.debug_struct("RepoLock")
            .field("id", &st.id)
            .field("exclusive", &st.lock.exclusive)
            .finish()
    }
}

impl RepoLock {
    fn start(sealer: Sealer, id: Id, lock: LockFile, refresh_interval: Duration) -> RepoLock {
        let held = Arc::new(Held {
            sealer,
            refresh_interval: refresh_interval.max(Duration::from_millis(10)),
            state: Mutex::new(HeldState {
                id,
                lock,
                refreshed: Instant::now(),
                stop: false,
                leftovers: Vec::new(),
            }),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&held);
        let refresher = std::thread::Builder::new()
            .name("kstash-lock-refresh".into())
            .spawn(move || for_thread.run_refresher())
            .map_err(|e| tracing::warn!(error = %e, "cannot start the lock refresh thread; the lock will go stale after 30 minutes"))
            .ok();
        RepoLock {
            held,
            refresher,
            released: false,
        }
    }

    /// The id of the current lock file (changes on every refresh).
    pub fn id(&self) -> Id {
        self.held.state().id
    }

    /// The current content of the lock file.
    pub fn lock_file(&self) -> LockFile {
        self.held.state().lock.clone()
    }

    /// Whether the lock is exclusive.
    pub fn is_exclusive(&self) -> bool {
        self.held.state().lock.exclusive
    }

    /// Fail if the lock may have gone stale for others: the last successful refresh is closer
    /// to [`STALE_AFTER`] than one and a half refresh intervals (restic's margin for clock
    /// drift). Call before committing work (writing a snapshot) that a concurrent prune could
    /// have invalidated.
    pub fn check(&self) -> Result<()> {
        let st = self.held.state();
        let age = st.refreshed.elapsed();
        let margin = self.held.refresh_interval.saturating_mul(3) / 2;
        if age + margin.min(STALE_AFTER / 2) >= STALE_AFTER {
            return Err(Error::LockLost(format!(
                "lock {} was last refreshed {}s ago and may be considered stale by others",
                st.id.short(),
                age.as_secs()
            )));
        }
        Ok(())
    }

    /// Stop refreshing and remove the lock file, reporting a failure to remove it.
    pub fn release(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        self.held.state().stop = true;
        self.held.wake.notify_all();
        if let Some(handle) = self.refresher.take()
            && handle.join().is_err()
        {
            tracing::warn!("the lock refresh thread panicked");
        }
        let (id, leftovers) = {
            let mut st = self.held.state();
            (st.id, std::mem::take(&mut st.leftovers))
        };
        let backend = self.held.sealer.backend.as_ref();
        for old in leftovers {
            let _ = remove_lock_file(backend, &old);
        }
        remove_lock_file(backend, &id)?;
        tracing::debug!(lock = %id.short(), "unlocked repository");
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "cannot remove the repository lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Repository {
        crate::repository::memory_repo(2).1
    }

    fn quick() -> LockOptions {
        LockOptions {
            settle: Duration::from_millis(5),
            retry_interval: Duration::from_millis(20),
            ..Default::default()
        }
    }

    /// Several threads race for an exclusive lock on a local directory, round after round. The
    /// settle pause is an hour, so the test would hang if a local lock still took it; and with
    /// no pause, the write-then-list order alone must keep two holders from ever overlapping.
    #[test]
    fn racing_exclusive_lockers_on_a_local_directory_never_overlap_and_do_not_settle() {
        use std::sync::Barrier;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(crate::backend::LocalBackend::new(dir.path().join("repo")));
        assert!(backend.lists_every_finished_write());
        let opts = crate::repository::InitOptions {
            kdf: crate::keys::KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(backend, "pw", opts).unwrap();
        let never_settle = LockOptions {
            settle: Duration::from_secs(3600),
            ..Default::default()
        };
        const THREADS: usize = 6;
        let (holding, won) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for _round in 0..20 {
            let start = Barrier::new(THREADS);
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        start.wait();
                        if let Ok(lock) = acquire(&repo, true, &never_settle) {
                            assert_eq!(holding.fetch_add(1, Ordering::SeqCst), 0, "two exclusive holders");
                            won.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            holding.fetch_sub(1, Ordering::SeqCst);
                            lock.release().unwrap();
                        }
                    });
                }
            });
        }
        assert!(won.load(Ordering::SeqCst) > 0, "no round had a winner");
        assert!(list_locks(&repo).unwrap().is_empty());
    }

    #[test]
    fn json_is_restics() {
        let restic = r#"{"time":"2026-11-22T02:56:06.953116082Z","exclusive":true,"hostname":"vm","username":"root","pid":18926}"#;
        let l: LockFile = serde_json::from_str(restic).unwrap();
        assert_eq!(l.pid, 18926);
        assert!(l.exclusive);
        assert_eq!(gojson::to_vec(&l).unwrap(), restic.as_bytes());
        let with_ids = LockFile {
            uid: 1000,
            gid: 100,
            ..l
        };
        let j = String::from_utf8(gojson::to_vec(&with_ids).unwrap()).unwrap();
        assert!(j.ends_with(r#""pid":18926,"uid":1000,"gid":100}"#), "{j}");
    }

    #[test]
    fn staleness() {
        let now = jiff::Timestamp::now();
        let mut l = LockFile::for_this_process(false);
        assert!(!l.is_stale_at(now, &l.hostname.clone()));
        l.time = GoTime::utc(now - jiff::SignedDuration::from_mins(31));
        assert!(l.is_stale_at(now, "elsewhere"));
        l.time = GoTime::utc(now - jiff::SignedDuration::from_mins(29));
        assert!(!l.is_stale_at(now, "elsewhere"));
        l.pid = i64::from(u32::MAX);
        assert!(l.is_stale_at(now, &l.hostname.clone()), "dead PID on this host");
        assert!(
            !l.is_stale_at(now, "elsewhere"),
            "another host's PID cannot be checked"
        );
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_excludes() {
        let repo = repo();
        let a = acquire(&repo, false, &quick()).unwrap();
        let b = acquire(&repo, false, &quick()).unwrap();
        assert_eq!(list_locks(&repo).unwrap().len(), 2);
        let err = acquire(&repo, true, &quick()).unwrap_err();
        let Error::Locked { holder, .. } = &err else {
            panic!("{err}")
        };
        assert!(!holder.lock.exclusive);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "repository is already locked by PID {} on host ",
                std::process::id()
            )),
            "{msg}"
        );
        assert!(msg.contains("kstash repo unlock"), "{msg}");
        drop(a);
        b.release().unwrap();
        assert!(list_locks(&repo).unwrap().is_empty());

        let x = acquire(&repo, true, &quick()).unwrap();
        assert!(x.is_exclusive());
        let err = acquire(&repo, false, &quick()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("repository is already locked exclusively by PID"),
            "{err}"
        );
        // Waiting: released by another thread while we wait.
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                drop(x);
            });
            let opts = LockOptions {
                wait: Duration::from_secs(10),
                ..quick()
            };
            let started = Instant::now();
            let y = acquire(&repo, false, &opts).unwrap();
            assert!(started.elapsed() >= Duration::from_millis(100));
            drop(y);
        });
        assert!(list_locks(&repo).unwrap().is_empty());
    }

    #[test]
    fn waiting_times_out_naming_the_holder() {
        let repo = repo();
        let _x = acquire(&repo, true, &quick()).unwrap();
        let opts = LockOptions {
            wait: Duration::from_millis(200),
            ..quick()
        };
        let started = Instant::now();
        let err = acquire(&repo, true, &opts).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("still after waiting"), "{err}");
        assert_eq!(
            list_locks(&repo).unwrap().len(),
            1,
            "the failed attempts left nothing"
        );
    }

    #[test]
    fn stale_locks_do_not_block_and_are_removed() {
        let repo = repo();
        let mut old = LockFile::for_this_process(true);
        old.hostname = "elsewhere".into();
        old.time = GoTime::utc(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(31));
        let old_id = repo.save_json(FileType::Lock, &old).unwrap();
        let mut fresh_foreign = LockFile::for_this_process(true);
        fresh_foreign.hostname = "elsewhere".into();
        let lock = acquire(&repo, true, &quick()).unwrap();
        drop(lock);
        let foreign_id = repo.save_json(FileType::Lock, &fresh_foreign).unwrap();
        assert!(
            acquire(&repo, false, &quick()).is_err(),
            "a live foreign lock blocks"
        );
        assert_eq!(remove_stale_locks(&repo).unwrap(), vec![old_id]);
        let left = list_locks(&repo).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, foreign_id);
        assert_eq!(remove_all_locks(&repo).unwrap(), vec![foreign_id]);
        assert!(list_locks(&repo).unwrap().is_empty());
    }

    /// A lock as another host's process would have written it, `age` ago.
    fn foreign_lock(repo: &Repository, hostname: &str, exclusive: bool, age: jiff::SignedDuration) -> Id {
        let lock = LockFile {
            time: GoTime::utc(jiff::Timestamp::now() - age),
            hostname: hostname.into(),
            pid: 1,
            ..LockFile::for_this_process(exclusive)
        };
        repo.save_json(FileType::Lock, &lock).unwrap()
    }

    /// A judge answering `verdict` for every holder, recording the host names it was asked about.
    fn judge(verdict: HolderState) -> (LivenessJudge, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        let judge = LivenessJudge::new(move |l: &LockFile| {
            record.lock().unwrap().push(l.hostname.clone());
            verdict
        });
        (judge, asked)
    }

    fn judged_by(judge: &LivenessJudge) -> LockOptions {
        LockOptions {
            liveness: Some(judge.clone()),
            ..quick()
        }
    }

    fn lock_ids(repo: &Repository) -> Vec<Id> {
        list_locks(repo).unwrap().into_iter().map(|l| l.id).collect()
    }

    #[test]
    fn a_holder_judged_gone_loses_its_lock_and_acquisition_proceeds_at_once() {
        let repo = repo();
        let theirs = foreign_lock(&repo, "backup-pod-x7k2q", true, jiff::SignedDuration::ZERO);
        let (gone, asked) = judge(HolderState::Gone);
        let ours = acquire(&repo, false, &judged_by(&gone)).unwrap();
        assert!(
            !lock_ids(&repo).contains(&theirs),
            "the dead holder's lock was removed"
        );
        assert_eq!(lock_ids(&repo), vec![ours.id()]);
        assert_eq!(asked.lock().unwrap()[0], "backup-pod-x7k2q");
    }

    #[test]
    fn alive_and_unknown_holders_keep_their_locks() {
        for verdict in [HolderState::Alive, HolderState::Unknown] {
            let repo = repo();
            let theirs = foreign_lock(&repo, "backup-pod-x7k2q", true, jiff::SignedDuration::ZERO);
            let (j, asked) = judge(verdict);
            let err = acquire(&repo, false, &judged_by(&j)).unwrap_err();
            let Error::Locked { holder, .. } = &err else {
                panic!("{verdict:?}: {err}")
            };
            assert_eq!(holder.id, theirs, "{verdict:?}");
            assert!(err.to_string().contains("on host backup-pod-x7k2q"), "{err}");
            assert_eq!(
                lock_ids(&repo),
                vec![theirs],
                "{verdict:?}: left alone, and ours withdrawn"
            );
            assert!(
                !asked.lock().unwrap().is_empty(),
                "{verdict:?}: the judge was asked"
            );
        }
    }

    #[test]
    fn an_absent_holder_loses_its_lock_only_once_it_stopped_refreshing() {
        let repo = repo();
        let (absent, _) = judge(HolderState::Absent);
        // Refreshed recently: the holder may run where the judge cannot see.
        let fresh = foreign_lock(&repo, "elsewhere", true, jiff::SignedDuration::from_mins(2));
        let err = acquire(&repo, false, &judged_by(&absent)).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert_eq!(lock_ids(&repo), vec![fresh]);
        remove_all_locks(&repo).unwrap();
        // Not refreshed for longer than a live holder ever lets it get, yet not stale.
        let age = jiff::SignedDuration::try_from(ABSENT_AFTER).unwrap() + jiff::SignedDuration::from_mins(1);
        assert!(age < jiff::SignedDuration::try_from(STALE_AFTER).unwrap());
        let old = foreign_lock(&repo, "elsewhere", true, age);
        assert!(!list_locks(&repo).unwrap()[0].stale);
        let ours = acquire(&repo, false, &judged_by(&absent)).unwrap();
        assert_eq!(lock_ids(&repo), vec![ours.id()]);
        assert!(!lock_ids(&repo).contains(&old));
    }

    #[test]
    fn the_judge_is_asked_only_about_live_conflicting_locks() {
        let repo = repo();
        let shared = foreign_lock(&repo, "reader-pod", false, jiff::SignedDuration::ZERO);
        let stale = foreign_lock(&repo, "old-pod", true, jiff::SignedDuration::from_mins(31));
        let (gone, asked) = judge(HolderState::Gone);
        // A shared lock does not conflict with ours, and a stale one is ignored by restic's rule.
        let ours = acquire(&repo, false, &judged_by(&gone)).unwrap();
        assert!(asked.lock().unwrap().is_empty(), "{:?}", asked.lock().unwrap());
        let mut left = lock_ids(&repo);
        left.sort();
        let mut expected = vec![shared, stale, ours.id()];
        expected.sort();
        assert_eq!(left, expected, "nothing was removed");
    }

    #[test]
    fn refresh_replaces_the_file() {
        let repo = repo();
        let opts = LockOptions {
            refresh_interval: Duration::from_millis(50),
            ..quick()
        };
        let lock = acquire(&repo, false, &opts).unwrap();
        let first = lock.id();
        let t0 = lock.lock_file().time;
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock.id() == first && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_ne!(lock.id(), first);
        assert!(lock.lock_file().time.timestamp > t0.timestamp);
        lock.check().unwrap();
        // Stop refreshing before looking, so the listing is stable.
        let held = Arc::clone(&lock.held);
        let mut lock = lock;
        held.state().stop = true;
        held.wake.notify_all();
        if let Some(h) = lock.refresher.take() {
            h.join().unwrap();
        }
        let ids: Vec<Id> = list_locks(&repo).unwrap().into_iter().map(|l| l.id).collect();
        assert_eq!(ids, vec![lock.id()]);
        drop(lock);
        assert!(list_locks(&repo).unwrap().is_empty());
    }
}
