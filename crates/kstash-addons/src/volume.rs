//! The volume driver on the engine: each directory of a workload or PVC backed up as its own
//! restic snapshot (KubeStash's `restic backup <path> --exclude …`, one `resticStats` entry per
//! path), reusing a snapshot an earlier attempt of the same BackupSession already wrote; and the
//! restore of recorded snapshots into a target directory (`restic restore <id> --target T`, so
//! files land at `T/<original absolute path>`).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstash_repo::archiver::{TreeBackupOptions, backup_tree};
use kstash_repo::lock::LockOptions;
use kstash_repo::progress::Progress;
use kstash_repo::{Id, Repository as EngineRepo, RestoreOptions};

use crate::error::{ExecError, Result};
use crate::task::ResolvedTask;

/// The parameters of a volume backup task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeBackupParams {
    /// Absolute, lexically normalised directories (or files) to back up.
    pub paths: Vec<PathBuf>,
    /// restic exclude patterns.
    pub excludes: Vec<String>,
}

impl VolumeBackupParams {
    /// `paths` (required, comma list) and `exclude` (optional, comma list) of `task`.
    pub fn from_task(task: &ResolvedTask) -> Result<VolumeBackupParams> {
        task.check_required()?;
        let raw = task.list_param("paths");
        if raw.is_empty() {
            return Err(ExecError::invalid(
                task.describe(),
                "parameter paths is empty; set it to the directories to back up (comma-separated)",
            ));
        }
        let mut paths = Vec::new();
        for p in raw {
            let abs = absolute(Path::new(&p)).map_err(|e| {
                ExecError::invalid(
                    task.describe(),
                    format!("backup path {p:?} cannot be resolved: {e}"),
                )
            })?;
            if !paths.contains(&abs) {
                paths.push(abs);
            }
        }
        Ok(VolumeBackupParams {
            paths,
            excludes: task.list_param("exclude"),
        })
    }

    /// Fail (naming the path) when one of the paths does not exist, before anything is written.
    pub fn check_paths_exist(&self, task: &ResolvedTask) -> Result<()> {
        for p in &self.paths {
            if let Err(e) = std::fs::symlink_metadata(p) {
                return Err(ExecError::PathMissing {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                    task: task.describe(),
                });
            }
        }
        Ok(())
    }
}

/// Absolute, lexically normalised form of a path (`.` and `..` resolved without following
/// links), as the engine records snapshot paths.
pub(crate) fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// How one path is backed up.
#[derive(Debug, Clone)]
pub struct PathBackupSpec<'a> {
    /// Tags of the new snapshot (no commas).
    pub tags: &'a [String],
    /// The tag that identifies this BackupSession's snapshots (`session-uid=<uid>`).
    pub session_tag: &'a str,
    /// The host name to record.
    pub hostname: &'a str,
    /// restic exclude patterns.
    pub excludes: &'a [String],
    /// How to lock the repository (how long to wait for an exclusive lock held by someone
    /// else, who judges whether its holder still runs).
    pub lock: LockOptions,
}

/// One path's snapshot.
#[derive(Debug, Clone)]
pub struct PathBackup {
    /// The path backed up.
    pub host_path: String,
    /// The restic snapshot.
    pub id: Id,
    /// Whether the snapshot was written by an earlier attempt of the same BackupSession.
    pub reused: bool,
    /// Bytes of new data added to the repository.
    pub uploaded: u64,
    /// Bytes of the files in the snapshot.
    pub size: u64,
    /// Files in the snapshot.
    pub files: u64,
    /// When the backup started and ended.
    pub start: jiff::Timestamp,
    /// See `start`.
    pub end: jiff::Timestamp,
    /// Wall time of this run (zero when reused).
    pub elapsed: Duration,
}

/// The snapshot of `path` carrying `session_tag`, if an earlier attempt wrote one.
pub fn find_session_snapshot(
    repo: &EngineRepo,
    path: &str,
    session_tag: &str,
) -> kstash_repo::Result<Option<kstash_repo::SnapshotEntry>> {
    let (snapshots, unreadable) = repo.list_snapshots_lenient()?;
    if !unreadable.is_empty() {
        tracing::warn!(count = unreadable.len(), "unreadable snapshot files ignored");
    }
    Ok(snapshots.into_iter().rev().find(|e| {
        e.snapshot.tags.iter().any(|t| t == session_tag)
            && e.snapshot.paths.len() == 1
            && e.snapshot.paths[0] == path
    }))
}

/// Back up `path` into `repo` unless a snapshot of it tagged with the session's tag exists,
/// counting what is read in `progress`.
pub fn backup_path(
    repo: &EngineRepo,
    path: &Path,
    spec: &PathBackupSpec<'_>,
    progress: Arc<Progress>,
) -> kstash_repo::Result<PathBackup> {
    let host_path = path.display().to_string();
    if let Some(found) = find_session_snapshot(repo, &host_path, spec.session_tag)? {
        tracing::info!(
            path = %host_path,
            snapshot = %found.id.short(),
            "this BackupSession already backed up the path; reusing its snapshot"
        );
        let sn = &found.snapshot;
        let (uploaded, size, files, start, end) = match &sn.summary {
            Some(s) => (
                s.data_added,
                s.total_bytes_processed,
                s.total_files_processed,
                s.backup_start.timestamp,
                s.backup_end.timestamp,
            ),
            None => (0, 0, 0, sn.time.timestamp, sn.time.timestamp),
        };
        progress.set_totals(size, files);
        progress.add_bytes(size);
        progress.add_items(files);
        return Ok(PathBackup {
            host_path,
            id: found.id,
            reused: true,
            uploaded,
            size,
            files,
            start,
            end,
            elapsed: Duration::ZERO,
        });
    }
    let started = Instant::now();
    let start = jiff::Timestamp::now();
    let options = TreeBackupOptions {
        excludes: spec.excludes.to_vec(),
        tags: spec.tags.to_vec(),
        hostname: Some(spec.hostname.to_string()),
        lock: Some(spec.lock.clone()),
        progress: Some(progress),
        ..Default::default()
    };
    let summary = backup_tree(repo, &[path.to_path_buf()], &options)?;
    for e in &summary.errors {
        tracing::warn!(path = %e.path, error = %e.message, "item left out of the snapshot");
    }
    Ok(PathBackup {
        host_path,
        id: summary.snapshot_id,
        reused: false,
        uploaded: summary.bytes_added,
        size: summary.total_bytes,
        files: summary.total_files,
        start,
        end: jiff::Timestamp::now(),
        elapsed: started.elapsed(),
    })
}

/// What restoring some snapshots wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreTotals {
    /// Files restored or already in place.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
}

/// Restore the snapshot `id` (full id or unique prefix) of `repo` into `target`, counting what
/// is restored in `progress` (if any). Items that could not be restored make it fail, naming the
/// first few.
pub fn restore_snapshot(
    repo: &EngineRepo,
    id: &str,
    target: &Path,
    include: &[String],
    exclude: &[String],
    lock: &LockOptions,
    progress: Option<Arc<Progress>>,
) -> Result<RestoreTotals> {
    let options = RestoreOptions {
        include: include.to_vec(),
        exclude: exclude.to_vec(),
        lock: Some(lock.clone()),
        progress,
        ..Default::default()
    };
    let summary = kstash_repo::restore(repo, id, target, &options).map_err(|e| ExecError::Repo {
        repo: repo.location(),
        source: Box::new(e),
    })?;
    for w in &summary.warnings {
        tracing::warn!(snapshot = id, warning = %w, "restore warning");
    }
    if !summary.errors.is_empty() {
        let first: Vec<String> = summary.errors.iter().take(3).map(|e| e.to_string()).collect();
        return Err(ExecError::invalid(
            format!("restore of snapshot {id} into {}", target.display()),
            format!(
                "{} item(s) could not be restored: {}{}",
                summary.errors.len(),
                first.join("; "),
                if summary.errors.len() > 3 { "; …" } else { "" }
            ),
        ));
    }
    Ok(RestoreTotals {
        files: summary.files + summary.files_skipped + summary.hardlinks,
        bytes: summary.bytes + summary.bytes_skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_normalised_lexically() {
        assert_eq!(
            absolute(Path::new("/a/./b/../c/")).unwrap(),
            PathBuf::from("/a/c")
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("x")).unwrap(), cwd.join("x"));
    }
}
