//! The seam between the dashboard and its runtime: what a page or an action needs beyond reading
//! resources (starting a backup, pausing, unlocking, executor logs, opening a component
//! repository). The binary implements it with the same functions its CLI commands use.

use std::collections::BTreeMap;

/// A failed operation, with the runtime's message (it names the object and the fix).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// One component of a Snapshot opened for reading: the restic repository and the restic snapshots
/// the component recorded (`resticStats[].summary.id`).
pub struct ComponentData {
    /// The opened component repository (the runtime may keep it open for the next request).
    pub repo: std::sync::Arc<kstash_repo::Repository>,
    /// The restic snapshot ids of the component.
    pub snapshot_ids: Vec<String>,
}

/// Locks held in one component repository.
#[derive(Debug, Clone, Default)]
pub struct ComponentLocks {
    /// `repository/v1/<session>/<component>`.
    pub path: String,
    /// Every lock in it.
    pub locks: Vec<LockState>,
}

/// One lock file of a component repository.
#[derive(Debug, Clone, Default)]
pub struct LockState {
    /// The lock's short id.
    pub id: String,
    /// Exclusive (prune, forget) rather than shared (backup, restore, check).
    pub exclusive: bool,
    /// `user@host pid N`.
    pub holder: String,
    /// Its process is gone or it is older than 30 minutes: `unlock` removes it.
    pub stale: bool,
}

/// What the runtime does for the dashboard. Every action is an ordinary resource operation, the
/// same one the CLI performs.
pub trait Operations: Send + Sync {
    /// Start a backup of every session of a BackupConfiguration now (as `kstash trigger`); the
    /// names of the BackupSessions created.
    fn trigger(&self, namespace: &str, name: &str) -> Result<Vec<String>, OpError>;
    /// Pause or resume a BackupConfiguration (as `kstash pause` / `kstash resume`).
    fn set_paused(&self, namespace: &str, name: &str, paused: bool) -> Result<(), OpError>;
    /// Remove the stale locks of a Repository's component repositories (as `kstash unlock`); how
    /// many were removed.
    fn unlock(&self, namespace: &str, repository: &str) -> Result<usize, OpError>;
    /// The locks of a Repository's component repositories.
    fn locks(&self, namespace: &str, repository: &str) -> Result<Vec<ComponentLocks>, OpError>;
    /// Why retention keeps each Snapshot of a Repository (snapshot name → reasons).
    fn retention_reasons(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<BTreeMap<String, String>, OpError>;
    /// The executor log of a BackupSession or RestoreSession, when there is one.
    fn executor_log(&self, namespace: &str, session: &str) -> Option<String>;
    /// Open one component of a Snapshot for browsing and downloads.
    fn open_component(
        &self,
        namespace: &str,
        snapshot: &str,
        component: &str,
    ) -> Result<ComponentData, OpError>;
    /// Record an event about `object` ("Kind namespace/name") naming what a dashboard user did.
    fn event(&self, object: &str, reason: &str, message: &str);
}
