//! `kstash exec backup`: the backup job of one BackupSession. It reads the session's
//! configuration, resolves the Addon tasks to drivers, and for every Snapshot the controller
//! created (one per repository) backs the target up into that repository's component repository
//! (`<repo path>/repository/v1/<session>/<component>`), writing
//! `Snapshot.status.components[<component>]` itself: Running (with live progress in
//! `resticStats[0].progress`), then Succeeded or Failed.
//!
//! A retried executor never adds a second restic snapshot: every snapshot is tagged with the
//! BackupSession's uid, and a path that already has one is reused.

use std::time::{Duration, Instant};

use kstash_api::client::Resources;
use kstash_api::common::Driver;
use kstash_api::core::Session;
use kstash_api::phase::format_size;
use kstash_api::progress::ProgressSample;
use kstash_api::resolve::{self, ResolvedBackup};
use kstash_api::storage::{BackupProgress, Component, ComponentPhase, ResticStats, ResticSummary, Snapshot};
use kstash_repo::check::{CheckOptions, check};
use kstash_repo::repository::compression_level_of;
use kstash_storage::layout::component_path;

use crate::ExecOptions;
use crate::progress::{ProgressTarget, Tracker, reporting};
use crate::refs;
use crate::status::{go_duration, k8s_time, update_status};
use crate::{ExecError, Result};
use kstash_addons::stream::{self, StreamDriver, StreamSpec};
use kstash_addons::volume::{
    PathBackup, PathBackupSpec, VolumeBackupParams, backup_path, find_session_snapshot,
};
use kstash_addons::{DriverKind, ResolvedTask, manifest, resolve_tasks};

/// The component a volume backup writes (Deployments, PVCs: KubeStash's `dump`).
pub const VOLUME_COMPONENT: &str = "dump";
/// The restic tag holding the BackupSession's uid (the idempotency key).
pub const SESSION_UID_TAG: &str = "session-uid";
/// Longest wait for another process's exclusive lock (KubeStash waits up to an hour).
pub(crate) const MAX_LOCK_WAIT: Duration = Duration::from_secs(3600);

/// What a backup job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The BackupSession.
    pub backup_session: String,
    /// One entry per Snapshot (repository).
    pub snapshots: Vec<SnapshotBackup>,
}

/// The component written into one Snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBackup {
    /// The Snapshot's name.
    pub snapshot: String,
    /// Its Repository.
    pub repository: String,
    /// The component name (`dump`).
    pub component: String,
    /// The component's path inside the repository (`repository/v1/<session>/dump`).
    pub component_path: String,
    /// One restic snapshot per backed-up path.
    pub restic_snapshots: Vec<ResticSnapshotRef>,
    /// Bytes stored in the component repository.
    pub size: u64,
    /// Whether the component repository was created by this run.
    pub repository_created: bool,
}

/// One restic snapshot of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResticSnapshotRef {
    /// Its full id.
    pub id: String,
    /// The path it holds.
    pub host_path: String,
    /// Whether an earlier attempt of the same BackupSession wrote it.
    pub reused: bool,
}

/// Everything about the session that every Snapshot's backup needs.
struct SessionCtx<'a> {
    client: &'a dyn Resources,
    namespace: &'a str,
    backup_session: &'a str,
    uid: String,
    /// The session, its configuration and repositories.
    resolved: &'a ResolvedBackup,
    session: &'a Session,
    opts: &'a ExecOptions,
    /// The zstd level of the task's `compression` param (`auto`, `fastest`, `fast`, `better`,
    /// `max`), if set.
    compression: Option<i32>,
}

/// Run the backup of BackupSession `namespace/backup_session`: see the module documentation.
///
/// Problems with the session itself (missing objects, an unsupported Addon function) fail before
/// any Snapshot is touched. Afterwards each Snapshot's component ends Succeeded or Failed (with
/// the reason in `error`); if one failed, that error is returned (several: all their messages).
pub fn run_backup(
    client: &dyn Resources,
    namespace: &str,
    backup_session: &str,
    opts: &ExecOptions,
) -> Result<BackupReport> {
    let _span = tracing::info_span!("backup", namespace, backup_session).entered();
    let bs_object = format!("BackupSession {namespace}/{backup_session}");
    let resolved = resolve::resolve_backup(client, namespace, backup_session)?;
    let bs = &resolved.session;
    let uid = bs
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ExecError::invalid(&bs_object, "metadata.uid is empty (not a stored object?)"))?;
    let config_object = resolve::describe("BackupConfiguration", &resolved.configuration.metadata);
    let tasks = resolve_tasks(&resolved.addon)?;
    let task = single_task(&tasks, &config_object)?;
    let manifest_opts;
    let opts = if task.driver == DriverKind::Manifest && opts.component.is_none() {
        manifest_opts = ExecOptions {
            component: Some(manifest::MANIFEST_COMPONENT.to_string()),
            ..opts.clone()
        };
        &manifest_opts
    } else {
        opts
    };
    let driver = stream::driver_for(
        client,
        task,
        resolved.target.as_ref(),
        resolved
            .configuration
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(namespace),
        &config_object,
        opts.local_mode,
    )?;

    let snapshots: Vec<String> = bs
        .status
        .as_ref()
        .map(|s| {
            s.snapshots
                .iter()
                .filter(|s| !s.name.is_empty())
                .map(|s| s.name.clone())
                .collect()
        })
        .unwrap_or_default();
    if snapshots.is_empty() {
        return Err(ExecError::invalid(
            &bs_object,
            "status.snapshots lists no Snapshot; the controller creates them before it starts the backup job",
        ));
    }

    let compression = match task.param("compression") {
        None => None,
        Some(mode) => Some(compression_level_of(mode).ok_or_else(|| {
            ExecError::invalid(
                task.describe(),
                format!(
                    "parameter compression is {mode:?}; use one of {}",
                    kstash_repo::repository::compression_mode_names()
                ),
            )
        })?),
    };
    let ctx = SessionCtx {
        client,
        namespace,
        backup_session,
        uid,
        resolved: &resolved,
        session: &resolved.session_spec,
        opts,
        compression,
    };
    let mut report = BackupReport {
        backup_session: backup_session.to_string(),
        snapshots: Vec::new(),
    };
    let mut failures = Vec::new();
    let results: Vec<(&String, Result<SnapshotBackup>)> = match &driver {
        None => snapshots
            .iter()
            .map(|name| (name, backup_snapshot(&ctx, task, name)))
            .collect(),
        Some(driver) => snapshots
            .iter()
            .zip(backup_stream_snapshots(&ctx, driver.as_ref(), &snapshots))
            .collect(),
    };
    for (name, result) in results {
        match result {
            Ok(done) => report.snapshots.push(done),
            Err(e) => {
                tracing::error!(snapshot = %name, error = %e, "backup failed");
                failures.push((name, e));
            }
        }
    }
    match failures.len() {
        0 => Ok(report),
        1 => Err(failures.remove(0).1),
        _ => Err(ExecError::Failed(
            failures
                .into_iter()
                .map(|(name, e)| {
                    format!(
                        "Snapshot {namespace}/{name} component {}: {e}",
                        opts.backup_component()
                    )
                })
                .collect(),
        )),
    }
}

/// The one task of the session (each writes component `dump`, so one task per session).
fn single_task<'t>(tasks: &'t [ResolvedTask], config_object: &str) -> Result<&'t ResolvedTask> {
    let all: Vec<&ResolvedTask> = tasks.iter().collect();
    match all.as_slice() {
        [one] => Ok(one),
        [] => Err(ExecError::invalid(
            config_object,
            "the session's addon has no tasks",
        )),
        many => Err(ExecError::invalid(
            config_object,
            format!(
                "tasks {} all back up into component {VOLUME_COMPONENT}; keep one",
                many.iter()
                    .map(|t| t.task.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Back up into the repository of Snapshot `name`, recording the component's status.
fn backup_snapshot(ctx: &SessionCtx<'_>, task: &ResolvedTask, name: &str) -> Result<SnapshotBackup> {
    let _span = tracing::info_span!("snapshot", snapshot = name).entered();
    let started = Instant::now();
    let path = component_path(&ctx.session.name, ctx.opts.backup_component());
    let snapshot = mark_running(ctx, name, &path)?;
    let names = [name.to_string()];
    let target = ProgressTarget::Snapshots {
        names: &names,
        component: ctx.opts.backup_component(),
    };
    let result = reporting(
        ctx.client,
        ctx.namespace,
        target,
        ctx.opts.progress_period,
        |tracker| backup_component(ctx, task, &snapshot, &path, tracker),
    );
    record_result(ctx, name, &path, started, result)
}

/// Mark the component of Snapshot `name` Running; returns the Snapshot.
fn mark_running(ctx: &SessionCtx<'_>, name: &str, path: &str) -> Result<Snapshot> {
    update_status(ctx.client, ctx.namespace, name, |s: &mut Snapshot| {
        let st = s.status.get_or_insert_default();
        st.total_components = ctx.opts.total_components.unwrap_or(1);
        let c = st
            .components
            .entry(ctx.opts.backup_component().to_string())
            .or_default();
        c.phase = Some(ComponentPhase::Running);
        c.path = path.to_string();
        c.driver = Some(Driver::Restic);
        c.error.clear();
        c.integrity = None;
    })
}

/// Write the component's final status (Succeeded with its stats, or Failed with the error).
fn record_result(
    ctx: &SessionCtx<'_>,
    name: &str,
    path: &str,
    started: Instant,
    result: Result<ComponentDone>,
) -> Result<SnapshotBackup> {
    let duration = go_duration(started.elapsed());
    let write = match &result {
        Ok(done) => update_status(ctx.client, ctx.namespace, name, |s: &mut Snapshot| {
            let c = component(s, ctx.opts);
            c.phase = Some(ComponentPhase::Succeeded);
            c.path = path.to_string();
            c.driver = Some(Driver::Restic);
            c.duration = duration.clone();
            c.size = format_size(done.size);
            c.integrity = Some(true);
            c.restic_stats = done.stats.clone();
            c.error.clear();
        }),
        Err(e) => update_status(ctx.client, ctx.namespace, name, |s: &mut Snapshot| {
            let c = component(s, ctx.opts);
            c.phase = Some(ComponentPhase::Failed);
            c.duration = duration.clone();
            c.error = e.to_string();
        }),
    };
    match (result, write) {
        (Ok(done), Ok(_)) => {
            tracing::info!(
                repository = %done.report.repository,
                size = done.report.size,
                duration = %duration,
                component = ctx.opts.backup_component(),
                "component succeeded"
            );
            Ok(done.report)
        }
        (Ok(_), Err(w)) => Err(w),
        (Err(e), Ok(_)) => Err(e),
        (Err(e), Err(w)) => {
            tracing::error!(error = %w, "could not record the failure in the Snapshot's status");
            Err(e)
        }
    }
}

/// The component entry of a Snapshot read back from the store.
fn component<'s>(s: &'s mut Snapshot, opts: &ExecOptions) -> &'s mut Component {
    let st = s.status.get_or_insert_default();
    st.total_components = st.total_components.max(opts.total_components.unwrap_or(1));
    st.components
        .entry(opts.backup_component().to_string())
        .or_default()
}

/// What a successful component backup produced.
struct ComponentDone {
    stats: Vec<ResticStats>,
    size: u64,
    report: SnapshotBackup,
}

/// The component repository of one Snapshot, opened (or created), with the tags to write.
struct OpenedComponent {
    snapshot_name: String,
    repo_name: String,
    engine: kstash_repo::Repository,
    created: bool,
    password_from: String,
    session_tag: String,
    tags: Vec<String>,
}

/// Open (or create) the component repository of `snapshot`.
fn open_component(
    ctx: &SessionCtx<'_>,
    snapshot: &Snapshot,
    component_path: &str,
) -> Result<OpenedComponent> {
    let snapshot_name = snapshot.metadata.name.clone().unwrap_or_default();
    let snapshot_object = format!("Snapshot {}/{snapshot_name}", ctx.namespace);
    let repo_name = &snapshot.spec.repository;
    if repo_name.is_empty() {
        return Err(ExecError::invalid(snapshot_object, "spec.repository is empty"));
    }
    let repo = ctx.resolved.repository(repo_name).ok_or_else(|| {
        ExecError::invalid(
            &snapshot_object,
            format!(
                "spec.repository {repo_name} is not a repository of session {} of {}",
                ctx.session.name,
                resolve::describe("BackupConfiguration", &ctx.resolved.configuration.metadata)
            ),
        )
    })?;
    let password = resolve::password(ctx.client, &repo.password)?;
    let password_from = repo.password.to_string();
    let layout = refs::repository_layout(ctx.client, repo, ctx.opts.local_mode)?;
    let config = refs::component_config(&layout, &repo.describe(), &repo.directory, component_path)?;
    let (mut engine, created) = refs::open_or_init_repository(&config, &password, &password_from)?;
    if let Some(level) = ctx.compression {
        engine.set_compression_level(level);
    }
    let session_tag = format!("{SESSION_UID_TAG}={}", ctx.uid);
    let tags: Vec<String> = [
        session_tag.clone(),
        format!("kubestash.com/session-name={}", ctx.session.name),
        format!("kubestash.com/backupsession={}", ctx.backup_session),
        format!("kubestash.com/snapshot={snapshot_name}"),
    ]
    .into_iter()
    .map(|t| t.replace(',', "_"))
    .collect();
    Ok(OpenedComponent {
        snapshot_name,
        repo_name: repo_name.clone(),
        engine,
        created,
        password_from,
        session_tag,
        tags,
    })
}

fn backup_component(
    ctx: &SessionCtx<'_>,
    task: &ResolvedTask,
    snapshot: &Snapshot,
    component_path: &str,
    tracker: &Tracker,
) -> Result<ComponentDone> {
    // A manifest backup is the directory of files its objects are written to.
    let scratch;
    let (paths, excludes) = if task.driver == DriverKind::Manifest {
        let (dir, written) =
            manifest::dump_task(ctx.client, task, ctx.resolved.target.as_ref(), ctx.namespace)?;
        tracing::info!(objects = written.objects, "manifests to back up");
        scratch = dir;
        (vec![scratch.manifest.clone()], Vec::new())
    } else {
        let params = VolumeBackupParams::from_task(task)?;
        params.check_paths_exist(task)?;
        (params.paths, params.excludes)
    };
    let OpenedComponent {
        snapshot_name,
        repo_name,
        engine,
        created,
        password_from,
        session_tag,
        tags,
    } = open_component(ctx, snapshot, component_path)?;
    let location = engine.location();
    let mut backups: Vec<PathBackup> = Vec::new();
    for path in &paths {
        let lock = ctx.opts.lock_options(&format!("backing up {}", path.display()))?;
        let spec = PathBackupSpec {
            tags: &tags,
            session_tag: &session_tag,
            hostname: &ctx.opts.hostname,
            excludes: &excludes,
            lock,
        };
        let done = backup_path(&engine, path, &spec, tracker.part())
            .map_err(|e| ExecError::repo(&location, e, &password_from))?;
        tracing::info!(
            path = %done.host_path,
            snapshot = %done.id.short(),
            reused = done.reused,
            files = done.files,
            uploaded = done.uploaded,
            "path backed up"
        );
        backups.push(done);
    }

    let size = verify(ctx, &engine, &password_from)?;
    let stats = backups.iter().map(restic_stats).collect();
    Ok(ComponentDone {
        stats,
        size,
        report: SnapshotBackup {
            snapshot: snapshot_name,
            repository: repo_name,
            component: ctx.opts.backup_component().to_string(),
            component_path: component_path.to_string(),
            restic_snapshots: backups
                .iter()
                .map(|b| ResticSnapshotRef {
                    id: b.id.to_hex(),
                    host_path: b.host_path.clone(),
                    reused: b.reused,
                })
                .collect(),
            size,
            repository_created: created,
        },
    })
}

/// Check the component repository after a backup; returns its size in bytes.
fn verify(ctx: &SessionCtx<'_>, engine: &kstash_repo::Repository, password_from: &str) -> Result<u64> {
    let location = engine.location();
    ctx.opts.check_deadline("checking the repository")?;
    let checked = check(
        engine,
        &CheckOptions {
            read_data: None,
            lock: None,
            threads: 2,
        },
    )
    .map_err(|e| ExecError::repo(&location, e, password_from))?;
    if !checked.is_ok() {
        let first: Vec<String> = checked.errors.iter().take(3).map(|p| format!("{p:?}")).collect();
        return Err(ExecError::invalid(
            format!("repository {location}"),
            format!(
                "integrity check found {} error(s) after the backup: {}",
                checked.errors.len(),
                first.join("; ")
            ),
        ));
    }
    refs::repository_bytes(engine)
}

/// Back up the stream of `driver` into the repository of every Snapshot in `names`, running
/// the producer once and fanning its stream out (repositories where an earlier attempt of this
/// BackupSession already wrote the stream reuse that snapshot). One result per Snapshot, in order.
fn backup_stream_snapshots(
    ctx: &SessionCtx<'_>,
    driver: &dyn StreamDriver,
    names: &[String],
) -> Vec<Result<SnapshotBackup>> {
    let path = component_path(&ctx.session.name, ctx.opts.backup_component());
    let file = driver.file_name().to_string();
    let snapshot_path = format!("/{file}");
    let started = Instant::now();
    let mut results: Vec<Option<Result<SnapshotBackup>>> = Vec::new();
    let mut pending: Vec<(usize, OpenedComponent)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let _span = tracing::info_span!("snapshot", snapshot = %name).entered();
        let opened = mark_running(ctx, name, &path).and_then(|snap| open_component(ctx, &snap, &path));
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                results.push(Some(record_result(ctx, name, &path, started, Err(e))));
                continue;
            }
        };
        match find_session_snapshot(&opened.engine, &snapshot_path, &opened.session_tag) {
            Ok(Some(found)) => {
                tracing::info!(snapshot = %found.id.short(), "this BackupSession already backed the stream up; reusing its snapshot");
                let sn = &found.snapshot;
                let (uploaded, size, start, end) = match &sn.summary {
                    Some(s) => (
                        s.data_added,
                        s.total_bytes_processed,
                        s.backup_start.timestamp,
                        s.backup_end.timestamp,
                    ),
                    None => (0, 0, sn.time.timestamp, sn.time.timestamp),
                };
                let done = StreamDone {
                    id: found.id.to_hex(),
                    reused: true,
                    uploaded,
                    size,
                    start,
                    end,
                    elapsed: Duration::ZERO,
                };
                let r = stream_done(ctx, &opened, &path, &file, done);
                results.push(Some(record_result(ctx, name, &path, started, r)));
            }
            Ok(None) => {
                results.push(None);
                pending.push((i, opened));
            }
            Err(e) => {
                let e = ExecError::repo(opened.engine.location(), e, &opened.password_from);
                results.push(Some(record_result(ctx, name, &path, started, Err(e))));
            }
        }
    }
    if !pending.is_empty() {
        let start = jiff::Timestamp::now();
        let run = Instant::now();
        let outcome = ctx
            .opts
            .lock_options("starting the stream backup")
            .and_then(|lock| {
                let repos: Vec<&kstash_repo::Repository> = pending.iter().map(|(_, o)| &o.engine).collect();
                let tags = pending[0]
                    .1
                    .tags
                    .iter()
                    .filter(|t| !t.starts_with("kubestash.com/snapshot="))
                    .cloned()
                    .collect::<Vec<_>>();
                let spec = StreamSpec {
                    tags: &tags,
                    hostname: &ctx.opts.hostname,
                    lock,
                };
                let running: Vec<String> = pending.iter().map(|(i, _)| names[*i].clone()).collect();
                let target = ProgressTarget::Snapshots {
                    names: &running,
                    component: ctx.opts.backup_component(),
                };
                reporting(
                    ctx.client,
                    ctx.namespace,
                    target,
                    ctx.opts.progress_period,
                    |tracker| stream::backup_to_many(driver, &repos, &spec, tracker.part()),
                )
            });
        match outcome {
            Err(e) => {
                let message = e.to_string();
                let mut first = Some(e);
                for (i, _) in &pending {
                    let err = first
                        .take()
                        .unwrap_or_else(|| ExecError::Failed(vec![message.clone()]));
                    results[*i] = Some(record_result(ctx, &names[*i], &path, started, Err(err)));
                }
            }
            Ok(summaries) => {
                for ((i, opened), summary) in pending.iter().zip(summaries) {
                    let _span = tracing::info_span!("snapshot", snapshot = %names[*i]).entered();
                    let r = summary
                        .map_err(|e| ExecError::repo(opened.engine.location(), e, &opened.password_from))
                        .and_then(|s| {
                            let done = StreamDone {
                                id: s.snapshot_id.to_hex(),
                                reused: false,
                                uploaded: s.bytes_added,
                                size: s.bytes_read,
                                start,
                                end: jiff::Timestamp::now(),
                                elapsed: run.elapsed(),
                            };
                            stream_done(ctx, opened, &path, &file, done)
                        });
                    results[*i] = Some(record_result(ctx, &names[*i], &path, started, r));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ExecError::invalid("stream backup", "no result recorded"))))
        .collect()
}

/// One restic snapshot of a stream.
struct StreamDone {
    id: String,
    reused: bool,
    uploaded: u64,
    size: u64,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    elapsed: Duration,
}

/// Verify the component repository and describe the stream's snapshot in it.
fn stream_done(
    ctx: &SessionCtx<'_>,
    opened: &OpenedComponent,
    path: &str,
    file: &str,
    done: StreamDone,
) -> Result<ComponentDone> {
    let size = verify(ctx, &opened.engine, &opened.password_from)?;
    let stats = vec![ResticStats {
        summary: Some(ResticSummary {
            id: done.id.clone(),
            uploaded: format_size(done.uploaded),
            host_path: file.to_string(),
            size: format_size(done.size),
            start_time: Some(k8s_time(done.start)),
            end_time: Some(k8s_time(done.end)),
        }),
        progress: Some(completed(done.size, 1, done.elapsed)),
    }];
    Ok(ComponentDone {
        stats,
        size,
        report: SnapshotBackup {
            snapshot: opened.snapshot_name.clone(),
            repository: opened.repo_name.clone(),
            component: ctx.opts.backup_component().to_string(),
            component_path: path.to_string(),
            restic_snapshots: vec![ResticSnapshotRef {
                id: done.id,
                host_path: file.to_string(),
                reused: done.reused,
            }],
            size,
            repository_created: opened.created,
        },
    })
}

/// The `resticStats` entry of one path.
fn restic_stats(b: &PathBackup) -> ResticStats {
    ResticStats {
        summary: Some(ResticSummary {
            id: b.id.to_hex(),
            uploaded: format_size(b.uploaded),
            host_path: b.host_path.clone(),
            size: format_size(b.size),
            start_time: Some(k8s_time(b.start)),
            end_time: Some(k8s_time(b.end)),
        }),
        progress: Some(completed(b.size, b.files, b.elapsed)),
    }
}

/// The progress of a finished backup of `bytes` in `files` that took `elapsed`: 100% (also
/// when there was nothing to read).
fn completed(bytes: u64, files: u64, elapsed: Duration) -> BackupProgress {
    let sample = ProgressSample {
        bytes_done: bytes,
        bytes_total: bytes,
        files_done: files,
        files_total: files,
        elapsed,
    };
    BackupProgress {
        percent_done: "100.00%".into(),
        ..sample.backup()
    }
}
