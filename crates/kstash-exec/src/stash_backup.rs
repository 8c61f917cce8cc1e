//! `kstash exec stash-backup`: one Stash v1 BackupSession, written the way Stash wrote it, into
//! the same restic repository, so old and new snapshots sit side by side.
//!
//! ```text
//! resolve (BackupConfiguration, Stash Repository, storage Secret, target, addon)
//!   → open the restic repository at the backend root (created, as Stash did, when missing)
//!   → database: the addon's dump streamed in as `dumpfile.sql` / `dumpfile.resp`, host `host-0`
//!     or the alias, no tags
//!   → volumes: each `target.paths` entry backed up at its absolute path, same host
//!   → the inline retentionPolicy as restic `forget` (grouped by host and paths across the whole
//!     repository, `prune` when set) — Stash's `update-status` step
//!   → BackupSession.status.targets[0] (hosts, per-host stats with each snapshot)
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::phase::format_size;
use kstash_api::stash::resolve::{ResolvedStashConfiguration, resolve_configuration};
use kstash_api::stash::{AddonFor, BackupSession, RetentionPolicy};
use kstash_repo::Repository as EngineRepo;
use kstash_repo::forget::{ForgetOptions, GroupBy, KeepPolicy, forget};
use kstash_repo::lock::LockOptions;
use kstash_repo::progress::Progress;
use kstash_repo::prune::{PruneOptions, prune};
use serde_json::json;

use crate::stash_restore::stash_repository_config;
use crate::status::{go_duration, k8s_time, update_status};
use crate::{ExecError, ExecOptions, Result, refs};
use kstash_addons::resolve_tasks;
use kstash_addons::stream::{self, StreamSpec};
use kstash_addons::volume::{PathBackupSpec, backup_path};

/// One restic snapshot a Stash backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StashSnapshot {
    pub id: String,
    pub path: String,
    pub size: u64,
    pub uploaded: u64,
    pub files: u64,
    pub elapsed: Duration,
}

/// What a Stash backup job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StashBackupReport {
    pub host: String,
    pub snapshots: Vec<StashSnapshot>,
    /// Snapshots the retention policy removed.
    pub forgotten: usize,
}

/// Run the Stash BackupSession `namespace/name`: see the module documentation.
pub fn run_stash_backup(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<StashBackupReport> {
    let _span = tracing::info_span!("stash_backup", namespace, backup_session = name).entered();
    let started = Instant::now();
    let session: BackupSession = client.must_get(namespace, name)?;
    let resolved = resolve_configuration(client, namespace, &session.spec.invoker.name);
    let host = resolved
        .as_ref()
        .map(|r| r.host.clone())
        .unwrap_or_else(|_| "host-0".into());
    let result = resolved
        .map_err(ExecError::from)
        .and_then(|r| backup(client, &r, opts));
    let stats = match &result {
        Ok(report) => json!({
            "hostname": host,
            "phase": "Succeeded",
            "duration": go_duration(started.elapsed()),
            "snapshots": report.snapshots.iter().map(|s| json!({
                "name": s.id,
                "path": s.path,
                "totalSize": format_size(s.size),
                "uploaded": format_size(s.uploaded),
                "processingTime": go_duration(s.elapsed),
                "fileStats": {"totalFiles": s.files},
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({
            "hostname": host,
            "phase": "Failed",
            "duration": go_duration(started.elapsed()),
            "error": e.to_string(),
        }),
    };
    update_status(client, namespace, name, |bs: &mut BackupSession| {
        let st = bs.status.get_or_insert_default();
        let phase = if stats["phase"] == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
        st.targets = vec![json!({
            "ref": bs.spec.invoker.name,
            "totalHosts": 1,
            "phase": phase,
            "stats": [stats.clone()],
        })];
    })?;
    match &result {
        Ok(r) => tracing::info!(
            snapshots = r.snapshots.len(),
            forgotten = r.forgotten,
            "Stash backup done"
        ),
        Err(e) => tracing::error!(error = %e, "Stash backup failed"),
    }
    result
}

fn backup(
    client: &dyn Resources,
    r: &ResolvedStashConfiguration,
    opts: &ExecOptions,
) -> Result<StashBackupReport> {
    if !r.dropped_params.is_empty() {
        tracing::warn!(params = ?r.dropped_params, "Stash task parameters with no kstash counterpart are ignored");
    }
    let (config, password, password_from) = stash_repository_config(client, &r.repository, opts)?;
    let (engine, created) = refs::open_or_init_repository(&config, &password, &password_from)?;
    if created {
        tracing::info!(repo = %engine.location(), "initialised the Stash repository (restic format v2)");
    }
    let lock = opts.lock_options("the Stash backup")?;
    let mut report = StashBackupReport {
        host: r.host.clone(),
        snapshots: Vec::new(),
        forgotten: 0,
    };
    match r.addon_for {
        AddonFor::Database { file: "", .. } => {
            return Err(ExecError::invalid(
                &r.object,
                "kstash does not write Stash's Elasticsearch interim-directory snapshots; back Elasticsearch up with a KubeStash BackupConfiguration (`kstash convert`) — Stash's existing snapshots stay restorable",
            ));
        }
        AddonFor::Database { .. } => {
            let tasks = resolve_tasks(&r.addon)?;
            let [task] = tasks.as_slice() else {
                return Err(ExecError::invalid(
                    &r.object,
                    "exactly one backup task is supported",
                ));
            };
            let Some(driver) = stream::driver_for(
                client,
                task,
                Some(&r.target),
                &r.namespace,
                &r.object,
                opts.local_mode,
            )?
            else {
                return Err(ExecError::invalid(
                    &r.object,
                    "the addon's task is not a database dump",
                ));
            };
            let started = Instant::now();
            let spec = StreamSpec {
                tags: &[],
                hostname: &r.host,
                lock: lock.clone(),
            };
            let results =
                stream::backup_to_many(driver.as_ref(), &[&engine], &spec, Arc::new(Progress::new()))?;
            for res in results {
                let s = res.map_err(|e| ExecError::Repo {
                    repo: engine.location(),
                    source: Box::new(e),
                })?;
                report.snapshots.push(StashSnapshot {
                    id: s.snapshot_id.to_string(),
                    path: format!("/{}", driver.file_name()),
                    size: s.bytes_read,
                    uploaded: s.bytes_added,
                    files: 1,
                    elapsed: started.elapsed(),
                });
            }
        }
        AddonFor::Workload | AddonFor::Pvc => {
            if r.paths.is_empty() {
                return Err(ExecError::invalid(
                    &r.object,
                    "spec.target.paths is empty; list the directories to back up",
                ));
            }
            for path in &r.paths {
                let spec = PathBackupSpec {
                    tags: &[],
                    session_tag: "",
                    hostname: &r.host,
                    excludes: &r.exclude,
                    lock: lock.clone(),
                };
                let b =
                    backup_path(&engine, Path::new(path), &spec, Arc::new(Progress::new())).map_err(|e| {
                        ExecError::Repo {
                            repo: engine.location(),
                            source: Box::new(e),
                        }
                    })?;
                report.snapshots.push(StashSnapshot {
                    id: b.id.to_string(),
                    path: b.host_path,
                    size: b.size,
                    uploaded: b.uploaded,
                    files: b.files,
                    elapsed: b.elapsed,
                });
            }
        }
    }
    if let Some(policy) = &r.configuration.spec.retention_policy {
        report.forgotten = apply_retention(&engine, policy, &lock)?;
    }
    record_repository(client, r, &engine, report.forgotten)?;
    Ok(report)
}

/// The Stash Repository's status as Stash's `update-status` step kept it: first and last backup
/// time, snapshot count, total size and the snapshots the last cleanup removed.
fn record_repository(
    client: &dyn Resources,
    r: &ResolvedStashConfiguration,
    engine: &EngineRepo,
    forgotten: usize,
) -> Result<()> {
    let snapshots = crate::stash_restore::snapshot_infos(engine)?;
    let bytes = refs::repository_bytes(engine)?;
    let now = k8s_time(jiff::Timestamp::now());
    let repo = &r.repository.repository.metadata;
    update_status(
        client,
        repo.namespace.as_deref().unwrap_or_default(),
        repo.name.as_deref().unwrap_or_default(),
        |repo: &mut kstash_api::stash::Repository| {
            let st = repo.status.get_or_insert_default();
            if st.first_backup_time.is_none() {
                st.first_backup_time = Some(now.clone());
            }
            st.last_backup_time = Some(now.clone());
            st.snapshot_count = snapshots.len() as i64;
            st.total_size = format_size(bytes);
            st.snapshots_removed_on_last_cleanup = forgotten as i64;
            st.observed_generation = repo.metadata.generation;
        },
    )?;
    Ok(())
}

/// Stash's inline retention: `restic forget [--keep-*] [--prune] [--dry-run]` without `--host`,
/// i.e. restic's grouping by host and paths over the whole repository. Returns the snapshots
/// removed (or that would be, with `dryRun`).
fn apply_retention(engine: &EngineRepo, p: &RetentionPolicy, lock: &LockOptions) -> Result<usize> {
    let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    let policy = KeepPolicy {
        last: count(p.keep_last),
        hourly: count(p.keep_hourly),
        daily: count(p.keep_daily),
        weekly: count(p.keep_weekly),
        monthly: count(p.keep_monthly),
        yearly: count(p.keep_yearly),
        keep_tags: p
            .keep_tags
            .iter()
            .map(|t| kstash_repo::forget::split_tag_list(t))
            .collect(),
        ..Default::default()
    };
    if policy.is_empty() {
        return Ok(0);
    }
    let repo_err = |e: kstash_repo::Error| ExecError::Repo {
        repo: engine.location(),
        source: Box::new(e),
    };
    let summary = forget(
        engine,
        &ForgetOptions {
            filter: Default::default(),
            policy,
            group_by: GroupBy::default(),
            dry_run: p.dry_run,
            lock: Some(lock.clone()),
            now: None,
        },
    )
    .map_err(repo_err)?;
    tracing::info!(removed = summary.removed.len(), dry_run = p.dry_run, policy = %p.name, "retention applied");
    if p.prune && !p.dry_run && !summary.removed.is_empty() {
        prune(
            engine,
            &PruneOptions {
                lock: Some(lock.clone()),
                ..Default::default()
            },
        )
        .map_err(repo_err)?;
    }
    Ok(summary.removed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_stash_wrote_them() {
        // Stash's `totalSize` and `uploaded` are KubeStash's size strings.
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.500 KiB");
        assert_eq!(format_size(3 * 1024 * 1024 * 1024), "3.000 GiB");
    }
}
