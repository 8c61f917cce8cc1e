//! The job programs of kstash: what the `kstash exec …` child processes (embedded) or Job
//! containers (Kubernetes) run. Each reads its session and everything it references through a
//! resource client ([`kstash_api::client::Resources`]), moves the data with the engine, and writes the status it owns
//! itself.
//!
//! - [`run_backup`]: a BackupSession's backup into every repository of the session
//!   (`Snapshot.status.components`).
//! - [`run_restore`]: a RestoreSession's restore (`RestoreSession.status.components`).
//! - [`run_stash_backup`]: a Stash v1 BackupSession, into the restic repository Stash wrote, with
//!   Stash's hosts and file names and its inline retention.
//! - [`run_stash_restore`]: a Stash v1 RestoreSession's restore from the restic repository Stash
//!   wrote (`RestoreSession.status.stats`).
//! - [`run_verify`]: a BackupVerificationSession's verifier (queries, a script, or the restored
//!   volume compared with its snapshot), recorded as the session's `BackupVerified` condition.
//!
//! Both write live progress into those components while they run (every
//! [`ExecOptions::progress_period`]).
//! - [`StorageOpsImpl`]: the controller's storage metadata operations and snapshot wipe-out.
//! - [`access`]: component repositories, passwords and snapshot download for the CLI.
//!
//! The drivers these jobs run (chosen by the Addon task's `function`) live in `kstash-addons`;
//! its error type, [`ExecError`], is this crate's too.

pub mod access;
mod backup;
mod progress;
mod refs;
mod restore;
mod stash_backup;
mod stash_restore;
mod status;
mod storage_ops;
mod verify;

use std::time::Duration;

use kstash_repo::lock::{LivenessJudge, LockOptions};

pub use backup::{
    BackupReport, ResticSnapshotRef, SESSION_UID_TAG, SnapshotBackup, VOLUME_COMPONENT, run_backup,
};
pub use kstash_addons::go_duration;
pub use kstash_addons::{DirectTarget, ExecError, Result, dump_stream, load_stream};
pub use kstash_addons::{DriverKind, ResolvedTask, TaskKind, resolve_tasks};
pub use kstash_api::resolve::PASSWORD_KEY;
pub use kstash_storage::LocalMode;
pub use progress::PROGRESS_PERIOD;
pub use refs::secret_data;
pub use restore::{ComponentRestore, RestoreReport, run_restore};
pub use stash_backup::{StashBackupReport, StashSnapshot, run_stash_backup};
pub use stash_restore::{
    StashRestoreReport, run_stash_restore, stash_repository_snapshots, stash_restore_selection,
};
pub use storage_ops::StorageOpsImpl;
pub use verify::{VerifyReport, run_verify};

/// How a job runs on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// How `local` storages map to directories: [`LocalMode::Host`] embedded (the hostPath
    /// itself), [`LocalMode::Mounted`] in a Kubernetes Job (the volume's mountPath).
    pub local_mode: LocalMode,
    /// The host name recorded in restic snapshots (KubeStash: the pod's host, e.g. the
    /// workload name).
    pub hostname: String,
    /// The job is cut short once this passes (the session's backup/restore timeout).
    pub deadline: Option<jiff::Timestamp>,
    /// The one component this job writes or restores, when the task runs once per replica or
    /// node (`dump-pod-0`, `dump-<node>`); `None`: the single component `dump` (backup) or every
    /// requested component (restore).
    pub component: Option<String>,
    /// How many components the session has in all (one job per replica writes one each).
    pub total_components: Option<i32>,
    /// How often live progress is written into status ([`PROGRESS_PERIOD`], KubeStash's 10 s).
    pub progress_period: Duration,
    /// Who judges whether the holder of a conflicting repository lock still runs (in a
    /// Kubernetes Job: by its pod); `None`: restic's rules only (embedded).
    pub lock_liveness: Option<LivenessJudge>,
}

impl ExecOptions {
    /// Options for the embedded runtime: host paths, this machine's host name, no deadline.
    pub fn embedded() -> ExecOptions {
        ExecOptions {
            local_mode: LocalMode::Host,
            hostname: kstash_repo::host::hostname(),
            deadline: None,
            component: None,
            total_components: None,
            progress_period: PROGRESS_PERIOD,
            lock_liveness: None,
        }
    }

    /// The component a backup writes.
    pub fn backup_component(&self) -> &str {
        self.component.as_deref().unwrap_or(VOLUME_COMPONENT)
    }

    /// Time left before the deadline (a day when there is none), or
    /// [`ExecError::DeadlineExceeded`] naming `what` was about to start.
    pub fn check_deadline(&self, what: &str) -> Result<Duration> {
        let Some(deadline) = self.deadline else {
            return Ok(Duration::from_secs(24 * 3600));
        };
        let left = deadline.duration_since(jiff::Timestamp::now());
        if left.is_negative() || left.is_zero() {
            return Err(ExecError::DeadlineExceeded {
                deadline,
                what: what.to_string(),
            });
        }
        Ok(left.unsigned_abs())
    }

    /// How `what` (about to start) locks a repository: waiting for a conflicting lock until the
    /// deadline, an hour at most, with this job's [`lock_liveness`](Self::lock_liveness) judge;
    /// or [`ExecError::DeadlineExceeded`].
    pub fn lock_options(&self, what: &str) -> Result<LockOptions> {
        Ok(LockOptions {
            liveness: self.lock_liveness.clone(),
            ..LockOptions::waiting(self.check_deadline(what)?.min(backup::MAX_LOCK_WAIT))
        })
    }
}
