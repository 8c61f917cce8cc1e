//! `kstash exec stash-restore`: the restore job of a Stash v1 RestoreSession, from the restic
//! repository Stash wrote at its Repository's backend root.
//!
//! ```text
//! resolve (Stash Repository, storage Secret, target, addon) → open the restic repository
//!   → list its snapshots → Stash's rules choose them for this host
//!   → database: `dumpfile.sql` / `dumpfile.resp` streamed into the addon's loader;
//!     Elasticsearch: the interim dump directory loaded index by index (`meta.txt` skipped)
//!   → volumes: each snapshot restored at its original absolute paths (include/exclude)
//!   → status.stats[host]: Succeeded or Failed with its duration and error
//! ```
//!
//! The repository is only read: nothing is forgotten or pruned, and only shared locks are taken,
//! so Stash may keep writing to it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::resolve;
use kstash_api::stash::resolve::{
    ResolvedStashRepository, ResolvedStashRestore, resolve_repository, resolve_restore,
};
use kstash_api::stash::rules::{self, Selected, SnapshotInfo};
use kstash_api::stash::{AddonFor, HostRestoreStats, RestoreSession};
use kstash_repo::Repository as EngineRepo;
use kstash_repo::progress::Progress;
use kstash_storage::StorageConfig;

use crate::refs;
use crate::status::{go_duration, update_status};
use crate::{ExecError, ExecOptions, Result};
use kstash_addons::resolve_tasks;
use kstash_addons::stream::{self, StreamDriver};
use kstash_addons::volume::restore_snapshot;

/// What a Stash restore job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StashRestoreReport {
    /// The host restored as (`host-0` or the alias).
    pub host: String,
    /// The restic snapshots restored, in order.
    pub snapshots: Vec<String>,
    /// Bytes restored.
    pub bytes: u64,
}

/// Restore the Stash RestoreSession `namespace/name`: see the module documentation.
pub fn run_stash_restore(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<StashRestoreReport> {
    let _span = tracing::info_span!("stash_restore", namespace, restore_session = name).entered();
    let started = Instant::now();
    let resolved = resolve_restore(client, namespace, name);
    let host = resolved
        .as_ref()
        .map(|r| r.host.clone())
        .unwrap_or_else(|_| "host-0".into());
    record(client, namespace, name, &host, "Running", started, "")?;
    let result = resolved
        .map_err(ExecError::from)
        .and_then(|r| restore(client, &r, opts));
    match &result {
        Ok(report) => {
            tracing::info!(snapshots = ?report.snapshots, bytes = report.bytes, "Stash restore done");
            record(client, namespace, name, &host, "Succeeded", started, "")?;
        }
        Err(e) => {
            tracing::error!(error = %e, "Stash restore failed");
            record(client, namespace, name, &host, "Failed", started, &e.to_string())?;
        }
    }
    result
}

/// Write this host's entry of `status.stats`.
fn record(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    host: &str,
    phase: &str,
    started: Instant,
    error: &str,
) -> Result<()> {
    update_status(client, namespace, name, |r: &mut RestoreSession| {
        let st = r.status.get_or_insert_default();
        st.total_hosts = Some(1);
        let entry = HostRestoreStats {
            hostname: host.to_string(),
            phase: phase.to_string(),
            duration: go_duration(started.elapsed()),
            error: error.to_string(),
        };
        match st.stats.iter_mut().find(|s| s.hostname == host) {
            Some(s) => *s = entry,
            None => st.stats.push(entry),
        }
    })?;
    Ok(())
}

/// The restic repository of a resolved Stash Repository, opened (read-only use).
pub(crate) fn open_stash_repository(
    client: &dyn Resources,
    r: &ResolvedStashRepository,
    opts: &ExecOptions,
) -> Result<EngineRepo> {
    let (config, password, password_from) = stash_repository_config(client, r, opts)?;
    refs::open_repository(&config, &password, &password_from)
}

/// Where a Stash Repository's restic repository is, its password and where that came from.
pub(crate) fn stash_repository_config(
    client: &dyn Resources,
    r: &ResolvedStashRepository,
    opts: &ExecOptions,
) -> Result<(StorageConfig, String, String)> {
    let secret: Option<Secret> = client.get_as(&r.storage_secret.namespace, &r.storage_secret.name)?;
    let data = secret.as_ref().map(refs::secret_data);
    let config = StorageConfig::from_backend(&r.object, &r.backend, data.as_ref(), opts.local_mode)
        .map_err(|source| ExecError::storage(&r.object, source))?;
    let password = resolve::password(client, &r.password)?;
    Ok((config, password, r.password.to_string()))
}

/// Every restic snapshot of a Stash repository, as the rules see them (oldest first).
pub(crate) fn snapshot_infos(engine: &EngineRepo) -> Result<Vec<SnapshotInfo>> {
    Ok(engine
        .list_snapshots_lenient()
        .map_err(|e| ExecError::Repo {
            repo: engine.location(),
            source: Box::new(e),
        })?
        .0
        .into_iter()
        .map(|e| SnapshotInfo {
            id: e.id.to_string(),
            time: e.snapshot.time.timestamp,
            hostname: e.snapshot.hostname.clone(),
            paths: e.snapshot.paths.clone(),
        })
        .collect())
}

/// The restic snapshots of the Stash Repository `namespace/name` (for `kstash snapshots` and
/// `kstash convert`).
pub fn stash_repository_snapshots(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<Vec<SnapshotInfo>> {
    let r = resolve_repository(client, namespace, name, "kstash snapshots", "--repository")?;
    snapshot_infos(&open_stash_repository(client, &r, opts)?)
}

/// The restic snapshots the Stash RestoreSession `namespace/name` would restore (its rules
/// applied to what the repository holds now).
pub fn stash_restore_selection(
    client: &dyn Resources,
    namespace: &str,
    name: &str,
    opts: &ExecOptions,
) -> Result<Vec<Selected>> {
    let r = resolve_restore(client, namespace, name)?;
    let infos = snapshot_infos(&open_stash_repository(client, &r.repository, opts)?)?;
    rules::select(&infos, &r.host, r.alias_set, &r.rules).map_err(|m| ExecError::invalid(&r.object, m))
}

fn restore(
    client: &dyn Resources,
    r: &ResolvedStashRestore,
    opts: &ExecOptions,
) -> Result<StashRestoreReport> {
    if !r.dropped_params.is_empty() {
        tracing::warn!(params = ?r.dropped_params, "Stash task parameters with no kstash counterpart are ignored");
    }
    let engine = open_stash_repository(client, &r.repository, opts)?;
    let infos = snapshot_infos(&engine)?;
    let selected = rules::select(&infos, &r.host, r.alias_set, &r.rules).map_err(|m| {
        ExecError::invalid(
            format!("{} (restic repository {})", r.object, engine.location()),
            m,
        )
    })?;
    let tasks = resolve_tasks(&r.addon)?;
    let [task] = tasks.as_slice() else {
        return Err(ExecError::invalid(
            &r.object,
            "exactly one restore task is supported",
        ));
    };
    let driver = stream::driver_for(
        client,
        task,
        Some(&r.target),
        &r.namespace,
        &r.object,
        opts.local_mode,
    )?;
    let mut report = StashRestoreReport {
        host: r.host.clone(),
        snapshots: Vec::new(),
        bytes: 0,
    };
    match driver {
        Some(driver) => {
            let [one] = selected.as_slice() else {
                return Err(ExecError::invalid(
                    &r.object,
                    format!(
                        "the rules choose {} snapshots; a database restores from exactly one",
                        selected.len()
                    ),
                ));
            };
            let path = stream_path(r.addon_for, one, &infos)
                .map_err(|m| ExecError::invalid(format!("restic snapshot {}", &one.id[..8]), m))?;
            let lock = opts.lock_options(&format!("restoring restic snapshot {}", &one.id[..8]))?;
            tracing::info!(snapshot = %one.id, host = %one.hostname, path, "restoring a Stash dump");
            report.bytes = stream::restore_from(
                driver.as_ref() as &dyn StreamDriver,
                &engine,
                &one.id,
                &path,
                &lock,
                &Progress::new(),
            )?;
            report.snapshots.push(one.id.clone());
        }
        None => {
            for s in &selected {
                let lock = opts.lock_options(&format!("restoring restic snapshot {}", &s.id[..8]))?;
                let totals = restore_snapshot(
                    &engine,
                    &s.id,
                    Path::new("/"),
                    &s.include,
                    &s.exclude,
                    &lock,
                    Some(Arc::new(Progress::new())),
                )?;
                tracing::info!(snapshot = %s.id, files = totals.files, "restored at the original paths");
                report.bytes += totals.bytes;
                report.snapshots.push(s.id.clone());
            }
        }
    }
    Ok(report)
}

/// The path inside a Stash database snapshot to restore: the dump file by its base name
/// (`/dumpfile.sql` whether restic recorded `/dumpfile.sql` or, before 0.10, `dumpfile.sql`), or
/// for Elasticsearch the interim directory the snapshot holds.
fn stream_path(
    addon: AddonFor,
    selected: &Selected,
    infos: &[SnapshotInfo],
) -> std::result::Result<String, String> {
    let paths = infos
        .iter()
        .find(|i| i.id == selected.id)
        .map(|i| i.paths.clone())
        .unwrap_or_default();
    let AddonFor::Database { file, .. } = addon else {
        return Err("not a database snapshot".into());
    };
    if file.is_empty() {
        // Elasticsearch: the interim directory (`/stash-tmp/stash-interim-volume/data`, …).
        return match paths.as_slice() {
            [dir] => Ok(format!("/{}", dir.trim_start_matches('/'))),
            other => Err(format!(
                "an Elasticsearch snapshot holds one interim directory; this one has paths {other:?}"
            )),
        };
    }
    let found = paths
        .iter()
        .find(|p| Path::new(p.as_str()).file_name().is_some_and(|n| n == file));
    match found {
        Some(p) => Ok(format!("/{}", p.trim_start_matches('/'))),
        None if paths.is_empty() => Ok(format!("/{file}")),
        None => Err(format!(
            "holds {paths:?}, not {file}; was it written by the Stash addon for this database?"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(paths: &[&str]) -> (Selected, Vec<SnapshotInfo>) {
        let id = "a".repeat(64);
        (
            Selected {
                id: id.clone(),
                hostname: "host-0".into(),
                paths: vec![],
                include: vec![],
                exclude: vec![],
            },
            vec![SnapshotInfo {
                id,
                time: jiff::Timestamp::UNIX_EPOCH,
                hostname: "host-0".into(),
                paths: paths.iter().map(|s| s.to_string()).collect(),
            }],
        )
    }

    #[test]
    fn dump_files_are_found_by_base_name_and_directories_as_they_are() {
        let pg = AddonFor::Database {
            addon: "postgres-addon",
            file: "dumpfile.sql",
        };
        let es = AddonFor::Database {
            addon: "elasticsearch-addon",
            file: "",
        };
        let redis = AddonFor::Database {
            addon: "redis-addon",
            file: "dumpfile.resp",
        };
        let (s, i) = info(&["/dumpfile.sql"]);
        assert_eq!(stream_path(pg, &s, &i).unwrap(), "/dumpfile.sql");
        let (s, i) = info(&["dumpfile.sql"]);
        assert_eq!(
            stream_path(pg, &s, &i).unwrap(),
            "/dumpfile.sql",
            "restic 0.8/0.9 relative path"
        );
        let (s, i) = info(&["/stash-tmp/stash-interim-volume/data"]);
        assert_eq!(
            stream_path(es, &s, &i).unwrap(),
            "/stash-tmp/stash-interim-volume/data"
        );
        let (s, i) = info(&["/dumpfile.sql"]);
        let e = stream_path(redis, &s, &i).unwrap_err();
        assert!(e.contains("not dumpfile.resp"), "{e}");
    }
}
