//! [`StorageOpsImpl`]: the storage metadata operations the reconcilers call
//! ([`kstash_api::storage_ops::StorageOps`]) on the KubeStash bucket layout of
//! `kstash-storage`, plus the wipe-out of a Snapshot's restic data (forget + prune in every
//! component repository, then its YAML).

use k8s_openapi::api::core::v1::Secret;
use kstash_api::ErrorCategory;
use kstash_api::storage::{BackupStorage, Repository, Snapshot};
use kstash_api::storage_ops::{StorageOps, StorageOpsError};
use kstash_repo::forget::{ForgetOptions, forget_snapshots};
use kstash_repo::lock::{LivenessJudge, LockOptions, remove_stale_locks};
use kstash_repo::prune::{PruneOptions, prune};
use kstash_storage::layout::StorageLayout;
use kstash_storage::{LocalMode, Location, ObjectStore};

use crate::refs;

/// [`StorageOps`] on real storages.
#[derive(Debug, Clone)]
pub struct StorageOpsImpl {
    local_mode: LocalMode,
    operator_version: String,
    lock_liveness: Option<LivenessJudge>,
}

impl StorageOpsImpl {
    /// Operations that map `local` storages with `local_mode` ([`LocalMode::Host`] embedded,
    /// [`LocalMode::Mounted`] inside a Job).
    pub fn new(local_mode: LocalMode) -> StorageOpsImpl {
        StorageOpsImpl {
            local_mode,
            operator_version: env!("CARGO_PKG_VERSION").to_string(),
            lock_liveness: None,
        }
    }

    /// Judge the holders of conflicting repository locks with `judge` (the operator: by their
    /// pods) when wiping out snapshots.
    pub fn with_lock_liveness(mut self, judge: LivenessJudge) -> StorageOpsImpl {
        self.lock_liveness = Some(judge);
        self
    }

    /// How a wipe-out locks a repository: at once or not at all, with the liveness judge.
    fn lock_options(&self) -> LockOptions {
        LockOptions {
            liveness: self.lock_liveness.clone(),
            ..LockOptions::default()
        }
    }

    /// The `operatorVersion` written into `metadata.yaml`.
    pub fn with_operator_version(mut self, version: impl Into<String>) -> StorageOpsImpl {
        self.operator_version = version.into();
        self
    }

    fn layout(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        op: &str,
    ) -> Result<StorageLayout, StorageOpsError> {
        refs::storage_layout(storage, secret, self.local_mode).map_err(|e| fail(storage, op, e))
    }
}

/// A failure cause that knows its category.
trait Cause: std::fmt::Display {
    fn category(&self) -> ErrorCategory;
}

impl Cause for kstash_storage::StorageError {
    fn category(&self) -> ErrorCategory {
        kstash_storage::StorageError::category(self)
    }
}

impl Cause for kstash_repo::Error {
    fn category(&self) -> ErrorCategory {
        kstash_storage::repo_error_category(self)
    }
}

/// A limitation of the storage kind: never goes away.
impl Cause for &str {
    fn category(&self) -> ErrorCategory {
        ErrorCategory::Permanent
    }
}

impl Cause for crate::ExecError {
    fn category(&self) -> ErrorCategory {
        crate::ExecError::category(self)
    }
}

/// `BackupStorage ns/name: <op>: <cause>`, in the cause's category.
fn fail(storage: &BackupStorage, op: &str, cause: impl Cause) -> StorageOpsError {
    let category = cause.category();
    let object = refs::describe("BackupStorage", &storage.metadata);
    let cause = cause.to_string();
    // Storage errors already start with the object; do not say it twice.
    let cause = cause
        .strip_prefix(&format!("{object}: "))
        .map(str::to_string)
        .unwrap_or(cause);
    StorageOpsError::of(category, format!("{object}: {op}: {cause}"))
}

/// Whether an engine error is about a repository lock (KubeStash retries `forget` once after
/// `restic unlock` when its error mentions a lock); decided by the error's variant, not its text.
fn is_lock_error(e: &kstash_repo::Error) -> bool {
    matches!(
        e,
        kstash_repo::Error::Locked { .. } | kstash_repo::Error::LockLost(_)
    )
}

impl StorageOps for StorageOpsImpl {
    fn initialize(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<(), StorageOpsError> {
        const OP: &str = "initialising the storage";
        let layout = self.layout(storage, secret, OP)?;
        let outcome = layout
            .initialize(&self.operator_version)
            .map_err(|e| fail(storage, OP, e))?;
        tracing::info!(storage = %layout.display(), created = outcome.created(), "storage initialised");
        Ok(())
    }

    fn list_repositories(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
    ) -> Result<Vec<(Repository, Vec<Snapshot>)>, StorageOpsError> {
        const OP: &str = "listing the repositories stored in it";
        let layout = self.layout(storage, secret, OP)?;
        let listed = layout.list_repositories().map_err(|e| fail(storage, OP, e))?;
        for u in &listed.unreadable {
            tracing::warn!(storage = %layout.display(), object = %u.path, error = %u.error, "unreadable repository.yaml skipped");
        }
        let mut out = Vec::new();
        for stored in listed.repositories {
            let snapshots = layout
                .list_snapshots(&stored.path)
                .map_err(|e| fail(storage, OP, e))?;
            for u in &snapshots.unreadable {
                tracing::warn!(storage = %layout.display(), object = %u.path, error = %u.error, "unreadable snapshot skipped");
            }
            let mut repository = stored.repository;
            // Where repository.yaml was found is where the data is.
            let same = repository
                .spec
                .path
                .split('/')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("/")
                == stored.path;
            if !same {
                tracing::warn!(
                    found = %stored.path,
                    recorded = %repository.spec.path,
                    "repository.yaml records another path; using where it was found"
                );
                repository.spec.path = stored.path.clone();
            }
            out.push((repository, snapshots.snapshots));
        }
        Ok(out)
    }

    fn storage_size(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<u64, StorageOpsError> {
        const OP: &str = "measuring the storage";
        let layout = self.layout(storage, secret, OP)?;
        if let Location::Rest(_) = layout.config().location {
            return Err(fail(
                storage,
                OP,
                "a restic REST server cannot be listed; its size is unknown",
            ));
        }
        let store = ObjectStore::open(layout.config()).map_err(|e| fail(storage, OP, e))?;
        let entries = store.list("").map_err(|e| fail(storage, OP, e))?;
        Ok(entries.iter().map(|e| e.size).sum())
    }

    fn write_repository(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<(), StorageOpsError> {
        let op = format!(
            "storing repository.yaml of {}",
            refs::describe("Repository", &repo.metadata)
        );
        let layout = self.layout(storage, secret, &op)?;
        if !layout.supports_mirror() {
            tracing::debug!(storage = %layout.display(), "storage keeps no resource copies; repository.yaml not written");
            return Ok(());
        }
        layout.write_repository(repo).map_err(|e| fail(storage, &op, e))
    }

    fn repository_size(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<u64, StorageOpsError> {
        let op = format!("measuring {}", refs::describe("Repository", &repo.metadata));
        let layout = self.layout(storage, secret, &op)?;
        layout
            .repository_size(&repo.spec.path)
            .map_err(|e| fail(storage, &op, e))
    }

    fn write_snapshot(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
        snapshot: &Snapshot,
    ) -> Result<(), StorageOpsError> {
        let op = format!(
            "storing the metadata of {}",
            refs::describe("Snapshot", &snapshot.metadata)
        );
        let layout = self.layout(storage, secret, &op)?;
        if !layout.supports_mirror() {
            tracing::debug!(storage = %layout.display(), "storage keeps no resource copies; snapshot YAML not written");
            return Ok(());
        }
        layout
            .write_snapshot(&repo.spec.path, snapshot)
            .map_err(|e| fail(storage, &op, e))
    }

    fn wipe_snapshot(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
        snapshot: &Snapshot,
        password: &str,
    ) -> Result<(), StorageOpsError> {
        let snapshot_object = refs::describe("Snapshot", &snapshot.metadata);
        let op = format!("wiping out {snapshot_object}");
        let layout = self.layout(storage, secret, &op)?;
        let repo_object = refs::describe("Repository", &repo.metadata);
        let components = snapshot.status.as_ref().map(|s| &s.components);
        for (name, comp) in components.into_iter().flatten() {
            let ids = comp.restic_snapshot_ids();
            if ids.is_empty() {
                continue;
            }
            let path = if comp.path.is_empty() {
                kstash_storage::layout::component_path(&snapshot.spec.session, name)
            } else {
                comp.path.clone()
            };
            let op = format!("{op}: component {name}");
            let config = refs::component_config(&layout, &repo_object, &repo.spec.path, &path)
                .map_err(|e| fail(storage, &op, e))?;
            let password_from = format!("the encryption password of {repo_object}");
            let engine = match refs::open_repository(&config, password, &password_from) {
                Ok(r) => r,
                Err(crate::ExecError::Repo { source, .. })
                    if matches!(*source, kstash_repo::Error::NotFound(_)) =>
                {
                    tracing::info!(component = %name, "component repository does not exist; nothing to forget");
                    continue;
                }
                Err(e) => return Err(fail(storage, &op, e)),
            };
            let forget_and_prune = || -> kstash_repo::Result<usize> {
                let forgotten = forget_snapshots(
                    &engine,
                    &ids,
                    &ForgetOptions {
                        lock: Some(self.lock_options()),
                        ..Default::default()
                    },
                )?;
                prune(
                    &engine,
                    &PruneOptions {
                        lock: Some(self.lock_options()),
                        ..Default::default()
                    },
                )?;
                Ok(forgotten.removed.len())
            };
            let removed = match forget_and_prune() {
                Ok(n) => n,
                Err(e) if is_lock_error(&e) => {
                    tracing::warn!(error = %e, "repository locked; removing stale locks and retrying once");
                    remove_stale_locks(&engine).map_err(|e| fail(storage, &op, e))?;
                    forget_and_prune().map_err(|e| fail(storage, &op, e))?
                }
                Err(e) => return Err(fail(storage, &op, e)),
            };
            tracing::info!(component = %name, removed, "restic snapshots forgotten and pruned");
        }
        if layout.supports_mirror() {
            let name = snapshot.metadata.name.as_deref().unwrap_or_default();
            layout
                .delete_snapshot(&repo.spec.path, name)
                .map_err(|e| fail(storage, &op, e))?;
        }
        Ok(())
    }

    fn wipe_repository(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<(), StorageOpsError> {
        let op = format!("wiping out {}", refs::describe("Repository", &repo.metadata));
        let layout = self.layout(storage, secret, &op)?;
        let n = layout
            .wipe_repository(&repo.spec.path)
            .map_err(|e| fail(storage, &op, e))?;
        tracing::info!(objects = n, "repository wiped out");
        Ok(())
    }

    fn wipe_storage(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<(), StorageOpsError> {
        const OP: &str = "wiping out the storage";
        let layout = self.layout(storage, secret, OP)?;
        let n = layout.wipe_out().map_err(|e| fail(storage, OP, e))?;
        tracing::info!(objects = n, "storage wiped out");
        Ok(())
    }
}
