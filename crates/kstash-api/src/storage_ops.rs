//! The storage-operations seam: metadata I/O on a backup storage (the bucket layout of KubeStash)
//! and operations on the restic repositories inside it, as an object-safe trait. Only the
//! interface lives here, below every crate that uses it: the job programs implement it
//! (`kstash-exec`'s `StorageOpsImpl`) and the reconcilers call it (through their `Platform`), so
//! neither depends on the other.

use k8s_openapi::api::core::v1::Secret;

use crate::ErrorCategory;
use crate::storage::{BackupStorage, Repository, Snapshot};

/// Why a storage operation failed: a readable message naming the storage, the operation and the
/// cause, and the category that decides what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageOpsError {
    /// What kind of failure this is.
    pub category: ErrorCategory,
    /// `BackupStorage ns/name: <operation>: <cause>`.
    pub message: String,
}

impl StorageOpsError {
    /// A failure that may go away by itself (the usual case for I/O on a storage).
    pub fn new(msg: impl Into<String>) -> Self {
        StorageOpsError::of(ErrorCategory::Transient, msg)
    }

    /// A failure of a known category.
    pub fn of(category: ErrorCategory, msg: impl Into<String>) -> Self {
        StorageOpsError {
            category,
            message: msg.into(),
        }
    }

    /// What kind of failure this is.
    pub fn category(&self) -> ErrorCategory {
        self.category
    }
}

/// Metadata I/O on a backup storage (the bucket layout of KubeStash) and operations on the restic
/// repositories inside it. Implemented by the executor crate; reconcilers call it directly for
/// cloud storages and, on Kubernetes, through Jobs for local volumes.
pub trait StorageOps: Send + Sync {
    /// Write-probe the storage and write `metadata.yaml` when absent.
    fn initialize(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<(), StorageOpsError>;
    /// The Repository documents mirrored in the bucket and the Snapshots of each (disaster recovery).
    fn list_repositories(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
    ) -> Result<Vec<(Repository, Vec<Snapshot>)>, StorageOpsError>;
    /// Total bytes stored under the storage prefix.
    fn storage_size(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<u64, StorageOpsError>;
    /// Upload `repository.yaml` for `repo` (a no-op where the storage cannot mirror files).
    fn write_repository(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<(), StorageOpsError>;
    /// Bytes stored under the repository's path.
    fn repository_size(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<u64, StorageOpsError>;
    /// Upload `snapshots/<name>.yaml`.
    fn write_snapshot(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
        snapshot: &Snapshot,
    ) -> Result<(), StorageOpsError>;
    /// Forget and prune the restic snapshots of every component of `snapshot` (ids from
    /// `resticStats[].summary.id`), then delete its YAML. `password` is the repository's
    /// `RESTIC_PASSWORD`.
    fn wipe_snapshot(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
        snapshot: &Snapshot,
        password: &str,
    ) -> Result<(), StorageOpsError>;
    /// Delete everything under the repository's path.
    fn wipe_repository(
        &self,
        storage: &BackupStorage,
        secret: Option<&Secret>,
        repo: &Repository,
    ) -> Result<(), StorageOpsError>;
    /// Delete everything under the storage prefix.
    fn wipe_storage(&self, storage: &BackupStorage, secret: Option<&Secret>) -> Result<(), StorageOpsError>;
}
