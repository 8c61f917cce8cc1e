//! The `Platform` seam: everything a reconciler needs from the runtime it runs on — resources,
//! executor jobs, schedules, the clock, hook commands and the storage metadata operations — so the
//! same reconcilers run embedded (SQLite, child processes, in-process cron) and on Kubernetes
//! (API server, Jobs, CronJobs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kstash_api::ErrorCategory;
use kstash_api::client::Resources;
use kstash_api::common::TypedObjectReference;
pub use kstash_api::storage_ops::{StorageOps, StorageOpsError};

use crate::pushgateway::Pusher;
use crate::tasks::TaskTracker;

/// Why a platform operation failed: a readable message naming the object and the cause, and the
/// category that decides what the caller does next.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlatformError {
    pub category: ErrorCategory,
    pub message: String,
}

impl PlatformError {
    /// A failure that may go away by itself (the usual case for I/O on a platform).
    pub fn new(msg: impl Into<String>) -> Self {
        PlatformError::of(ErrorCategory::Transient, msg)
    }

    /// A failure of a known category.
    pub fn of(category: ErrorCategory, msg: impl Into<String>) -> Self {
        PlatformError {
            category,
            message: msg.into(),
        }
    }

    pub fn category(&self) -> ErrorCategory {
        self.category
    }
}

/// A reference that cannot be resolved keeps its category (not found, invalid, a store failure).
impl From<kstash_api::resolve::ResolveError> for PlatformError {
    fn from(e: kstash_api::resolve::ResolveError) -> Self {
        PlatformError::of(e.category(), e.to_string())
    }
}

/// A storage operation's failure, as a platform failure of the same category and message.
impl From<StorageOpsError> for PlatformError {
    fn from(e: StorageOpsError) -> Self {
        PlatformError::of(e.category, e.message)
    }
}

/// An executor job: what it is for, as a type. The embedded runtime runs it as
/// `kstash exec <purpose.exec_args()>`; the Kubernetes runtime builds a Job from the purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Unique per namespace; a second `start_job` with the same name is a no-op.
    pub name: String,
    pub namespace: String,
    pub purpose: JobPurpose,
    /// Labels (KubeStash's invoker/session labels), for listing and cleanup.
    pub labels: BTreeMap<String, String>,
    /// Kill the job when this time passes.
    pub deadline: Option<Timestamp>,
}

/// What an executor job is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPurpose {
    /// Back up the BackupSession `backup_session` (of the job's namespace).
    Backup { backup_session: String },
    /// Restore `snapshot` for the RestoreSession `restore_session`.
    Restore {
        restore_session: String,
        snapshot: String,
    },
    /// Verify what the BackupVerificationSession `verification_session` restored (queries, a
    /// script, or the restored files against the snapshot).
    Verify { verification_session: String },
    /// Restore the Stash v1 RestoreSession `restore_session` from the restic repository Stash
    /// wrote (embedded runtime only).
    StashRestore { restore_session: String },
    /// Run the Stash v1 BackupSession `backup_session` into the restic repository Stash wrote
    /// (embedded runtime only).
    StashBackup { backup_session: String },
}

impl JobPurpose {
    /// The arguments after `kstash exec` that run this purpose in `namespace` (the one place
    /// they are written; the `kstash exec` parser reads them).
    pub fn exec_args(&self, namespace: &str) -> Vec<String> {
        match self {
            JobPurpose::Backup { backup_session } => vec![
                "backup".into(),
                "--namespace".into(),
                namespace.into(),
                "--backupsession".into(),
                backup_session.clone(),
            ],
            JobPurpose::Restore {
                restore_session,
                snapshot,
            } => vec![
                "restore".into(),
                "--namespace".into(),
                namespace.into(),
                "--restoresession".into(),
                restore_session.clone(),
                "--snapshot".into(),
                snapshot.clone(),
            ],
            JobPurpose::StashBackup { backup_session } => vec![
                "stash-backup".into(),
                "--namespace".into(),
                namespace.into(),
                "--backupsession".into(),
                backup_session.clone(),
            ],
            JobPurpose::StashRestore { restore_session } => vec![
                "stash-restore".into(),
                "--namespace".into(),
                namespace.into(),
                "--restoresession".into(),
                restore_session.clone(),
            ],
            JobPurpose::Verify { verification_session } => vec![
                "verify".into(),
                "--namespace".into(),
                namespace.into(),
                "--backupverificationsession".into(),
                verification_session.clone(),
            ],
        }
    }
}

/// Observed state of an executor job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Started and still running.
    Running,
    /// Exited with success.
    Succeeded,
    /// Exited with failure; the message says why (last lines of its log or the exit status).
    Failed(String),
    /// Never started, or vanished without reporting an exit (its process or pod is gone).
    Missing,
}

/// One schedule per BackupConfiguration session (a CronJob `trigger-<bc>-<session>` on Kubernetes).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub namespace: String,
    pub invoker: String,
    pub session: String,
    /// 5-field cron, `@hourly` style macros, optional `CRON_TZ=`/`TZ=` prefix.
    pub schedule: String,
    /// Paused configuration or `scheduler.suspend`.
    pub suspend: bool,
    /// The session's whole scheduler (history limits, concurrency policy, trigger job template),
    /// for runtimes that create a CronJob from it; the embedded cron uses only the fields above.
    pub scheduler: kstash_api::core::SchedulerSpec,
    /// What a fired schedule needs to create its BackupSession without reading the
    /// configuration again (the embedded cron creates thousands in one tick).
    pub trigger: TriggerTemplate,
    /// Set for a verifier's schedule (`trigger-verifier-…` on Kubernetes): the repository of
    /// `session` whose newest snapshot a fired schedule verifies, instead of backing up.
    pub verifies: Option<String>,
}

impl ScheduleSpec {
    /// What identifies the schedule among its invoker's: the session name, or
    /// `<session>/verify/<repository>` for a verifier's schedule (`/` never occurs in names).
    pub fn id(&self) -> String {
        schedule_id(&self.session, self.verifies.as_deref())
    }
}

/// See [`ScheduleSpec::id`].
pub fn schedule_id(session: &str, verifies: Option<&str>) -> String {
    match verifies {
        Some(repo) => format!("{session}/verify/{repo}"),
        None => session.to_string(),
    }
}

/// The configuration's parts a triggered BackupSession is made of (see
/// `backup_configuration::backup_session_from`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TriggerTemplate {
    /// The BackupConfiguration's uid, for the session's owner reference.
    pub invoker_uid: String,
    /// The session entry's `backupTimeout`.
    pub backup_timeout: Option<String>,
    /// The retry budget of a scheduled session (`retryConfig.maxRetry`).
    pub retry_left: i32,
}

/// Outcome of a hook command run by the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    /// Exit status and the tail of stderr/stdout, for messages.
    pub message: String,
}

/// Runs hooks' `exec.command`s where a platform runs commands.
pub trait HookCommands: Send + Sync {
    /// Run `command` with `env` added, killed after `timeout`.
    fn exec(
        &self,
        namespace: &str,
        command: &[String],
        env: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<CommandOutput, PlatformError>;
}

/// The runtime a reconciler runs on.
pub trait Platform: Resources {
    /// Now (tests may move it).
    fn now(&self) -> Timestamp;

    /// Start an executor job unless one of that name exists already.
    fn start_job(&self, job: &JobSpec) -> Result<(), PlatformError>;
    /// State of the job `name`.
    fn job_state(&self, namespace: &str, name: &str) -> JobState;
    /// Stop a running job (deadline passed); it then reads as `Failed`.
    fn stop_job(&self, namespace: &str, name: &str, reason: &str) -> Result<(), PlatformError>;
    /// Forget a finished job and its logs (session history cleanup).
    fn delete_job(&self, namespace: &str, name: &str) -> Result<(), PlatformError>;

    /// Create or update the schedule of one session; returns the next fire time.
    fn ensure_schedule(&self, schedule: &ScheduleSpec) -> Result<Option<Timestamp>, PlatformError>;
    /// Remove the schedules of `invoker` in `namespace` except those whose [`ScheduleSpec::id`] is
    /// in `keep`.
    fn remove_schedules(&self, namespace: &str, invoker: &str, keep: &[String]) -> Result<(), PlatformError>;

    /// Whether a backup or restore target exists (`None`: cannot tell on this platform).
    fn target_found(&self, target: &TypedObjectReference) -> Result<Option<bool>, PlatformError>;

    /// Where hooks' `exec.command`s run (a local process embedded, a pod exec on Kubernetes);
    /// shared with the hook tasks' threads.
    fn hook_commands(&self) -> Arc<dyn HookCommands>;

    /// The tracked tasks of this runtime (hooks, wipe-outs): slow work off the reconcile workers.
    fn tasks(&self) -> &TaskTracker;

    /// Storage metadata operations.
    fn storage(&self) -> Arc<dyn StorageOps>;

    /// Whether a verifier job can compare a restored volume with its snapshot here (the restore
    /// landed on this machine's disk). Embedded: yes; Kubernetes: the files are in a PVC the
    /// verifier job does not mount, so a volume RestoreOnly verifier stops at the restore.
    fn compares_restored_volumes(&self) -> bool {
        false
    }

    /// The Pushgateway queue for session metrics, when one is configured.
    fn pusher(&self) -> Option<&Pusher> {
        None
    }

    /// Record an event about an object (phase changes, errors). Default: a log line.
    fn event(&self, object: &str, warning: bool, reason: &str, message: &str) {
        if warning {
            tracing::warn!(object, reason, message, "event");
        } else {
            tracing::info!(object, reason, message, "event");
        }
    }
}
