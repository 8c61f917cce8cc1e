//! `kstash exec restore`: the restore job of one RestoreSession. It resolves the data source
//! (the Snapshot, its Repository, storage and encryption Secret) and the Addon task, then
//! restores every requested component's restic snapshots (`resticStats[].summary.id`) and
//! writes `RestoreSession.status.components[<component>]`: Running (with live progress), then
//! Succeeded or Failed with its duration and progress.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kstash_api::client::Resources;
use kstash_api::core::{ComponentRestoreStatus, RestorePhase, RestoreProgress, RestoreSession};
use kstash_api::progress::ProgressSample;
use kstash_api::resolve::{self, ResolvedRepository, ResolvedRestore};
use kstash_api::storage::{ComponentPhase, Snapshot};
use kstash_storage::layout::StorageLayout;
use kstash_storage::layout::component_path;

use crate::ExecOptions;
use crate::progress::{ProgressTarget, Tracker, reporting};
use crate::refs;
use crate::status::{go_duration, update_status};
use crate::{ExecError, Result};
use kstash_addons::stream::{self, StreamDriver};
use kstash_addons::volume::{RestoreTotals, restore_snapshot};
use kstash_addons::{DriverKind, ResolvedTask, manifest, resolve_tasks};

/// What a restore job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The RestoreSession.
    pub restore_session: String,
    /// The Snapshot restored from.
    pub snapshot: String,
    /// One entry per restored component.
    pub components: Vec<ComponentRestore>,
}

/// One restored component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRestore {
    /// The component name.
    pub component: String,
    /// The restic snapshots restored.
    pub restic_snapshots: Vec<String>,
    /// Where they were restored to (a stream driver: the file name of the stream).
    pub target: PathBuf,
    /// Files restored (or already in place unchanged).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
}

/// The parameters of a volume restore task.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VolumeRestoreParams {
    /// `target` (default `/`): files land at `<target>/<original absolute path>`.
    target: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
}

impl VolumeRestoreParams {
    fn from_task(task: &ResolvedTask) -> Result<VolumeRestoreParams> {
        task.check_required()?;
        let include = task.list_param("include");
        let exclude = task.list_param("exclude");
        if !include.is_empty() && !exclude.is_empty() {
            return Err(ExecError::invalid(
                task.describe(),
                "parameters include and exclude are mutually exclusive; set only one",
            ));
        }
        Ok(VolumeRestoreParams {
            target: PathBuf::from(task.param("target").unwrap_or("/")),
            include,
            exclude,
        })
    }
}

/// Where restored data goes.
enum Destination {
    /// Files onto disk.
    Volume(VolumeRestoreParams),
    /// One stream into a database tool.
    Stream(Box<dyn StreamDriver>),
    /// Object manifests created again through the resource client (`kubedump-addon`).
    Manifest(ResolvedTask),
}

/// Where the data comes from, resolved once for every component.
struct Source {
    repo_object: String,
    /// The repository's directory inside the storage.
    directory: String,
    layout: StorageLayout,
    password: String,
    password_from: String,
    destination: Destination,
}

/// Run the restore of RestoreSession `namespace/restore_session` from Snapshot `snapshot` (in
/// the data source's namespace; the controller resolves `latest` to a name before it starts the
/// job): see the module documentation.
pub fn run_restore(
    client: &dyn Resources,
    namespace: &str,
    restore_session: &str,
    snapshot: &str,
    opts: &ExecOptions,
) -> Result<RestoreReport> {
    let _span = tracing::info_span!("restore", namespace, restore_session, snapshot).entered();
    let rs_object = format!("RestoreSession {namespace}/{restore_session}");
    let resolved = resolve::resolve_restore(client, namespace, restore_session, snapshot)?;
    let ds = &resolved.data_source;
    let tasks = resolve_tasks(&resolved.addon)?;
    let task = match tasks.as_slice() {
        [one] => one,
        _ => {
            return Err(ExecError::invalid(
                &rs_object,
                "exactly one restore task is supported per RestoreSession",
            ));
        }
    };
    let snap = &resolved.snapshot;
    let snap_object = resolve::describe("Snapshot", &snap.metadata);
    let components: Vec<String> = if ds.components.is_empty() {
        snap.status
            .as_ref()
            .map(|s| s.components.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        ds.components.clone()
    };
    if components.is_empty() {
        return Err(ExecError::invalid(&snap_object, "has no components to restore"));
    }
    // One job per replica restores only its own component.
    let components = match &opts.component {
        Some(only) if components.contains(only) => vec![only.clone()],
        Some(only) => {
            return Err(ExecError::invalid(
                &snap_object,
                format!(
                    "has no component {only} to restore into this replica; it has {}",
                    components.join(", ")
                ),
            ));
        }
        None => components,
    };
    let total = opts.total_components.unwrap_or(components.len() as i32);
    update_status(client, namespace, restore_session, |r: &mut RestoreSession| {
        let st = r.status.get_or_insert_default();
        st.total_components = total;
        for name in &components {
            let c = st.components.entry(name.clone()).or_default();
            c.phase = Some(RestorePhase::Running);
            c.error.clear();
        }
    })?;

    let started = Instant::now();
    let destination = destination(client, task, &resolved, &rs_object, opts);
    let source = match destination.and_then(|d| resolve_source(client, &resolved.repository, d, opts)) {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            let elapsed = go_duration(started.elapsed());
            if let Err(w) = update_status(client, namespace, restore_session, |r: &mut RestoreSession| {
                let st = r.status.get_or_insert_default();
                for name in &components {
                    let c = st.components.entry(name.clone()).or_default();
                    c.phase = Some(RestorePhase::Failed);
                    c.duration = elapsed.clone();
                    c.error = message.clone();
                }
            }) {
                tracing::error!(error = %w, "could not record the failure in the RestoreSession's status");
            }
            return Err(e);
        }
    };

    let mut report = RestoreReport {
        restore_session: restore_session.to_string(),
        snapshot: snapshot.to_string(),
        components: Vec::new(),
    };
    let mut failures = Vec::new();
    for name in &components {
        let _span = tracing::info_span!("component", component = %name).entered();
        let started = Instant::now();
        let target = ProgressTarget::Restore {
            name: restore_session,
            component: name,
        };
        let result = reporting(client, namespace, target, opts.progress_period, |tracker| {
            restore_component(client, &source, snap, &snap_object, name, opts, tracker)
        });
        let elapsed = started.elapsed();
        let status = component_status(&result, elapsed);
        let write = update_status(client, namespace, restore_session, |r: &mut RestoreSession| {
            let st = r.status.get_or_insert_default();
            st.total_components = total;
            st.components.insert(name.clone(), status.clone());
        });
        match (result, write) {
            (Ok(done), Ok(_)) => {
                tracing::info!(files = done.files, bytes = done.bytes, "component restored");
                report.components.push(done);
            }
            (Ok(_), Err(w)) => failures.push((name, w)),
            (Err(e), w) => {
                if let Err(w) = w {
                    tracing::error!(error = %w, "could not record the failure in the RestoreSession's status");
                }
                tracing::error!(error = %e, "component restore failed");
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
                .map(|(name, e)| format!("{rs_object} component {name}: {e}"))
                .collect(),
        )),
    }
}

/// The status of a component after its restore.
fn component_status(result: &Result<ComponentRestore>, elapsed: Duration) -> ComponentRestoreStatus {
    match result {
        Ok(done) => ComponentRestoreStatus {
            phase: Some(RestorePhase::Succeeded),
            duration: go_duration(elapsed),
            error: String::new(),
            progress: Some(RestoreProgress {
                percent_done: "100.00%".into(),
                ..ProgressSample {
                    bytes_done: done.bytes,
                    bytes_total: done.bytes,
                    files_done: done.files,
                    files_total: done.files,
                    elapsed,
                }
                .restore()
            }),
        },
        Err(e) => ComponentRestoreStatus {
            phase: Some(RestorePhase::Failed),
            duration: go_duration(elapsed),
            error: e.to_string(),
            progress: None,
        },
    }
}

/// Where the task restores to: the stream driver of the RestoreSession's target, or the
/// volume task's parameters.
fn destination(
    client: &dyn Resources,
    task: &ResolvedTask,
    resolved: &ResolvedRestore,
    rs_object: &str,
    opts: &ExecOptions,
) -> Result<Destination> {
    if task.driver == DriverKind::Manifest {
        return Ok(Destination::Manifest(task.clone()));
    }
    Ok(
        match stream::driver_for(
            client,
            task,
            resolved.target.as_ref(),
            &resolved.namespace,
            rs_object,
            opts.local_mode,
        )? {
            Some(driver) => Destination::Stream(driver),
            None => Destination::Volume(VolumeRestoreParams::from_task(task)?),
        },
    )
}

/// The repository's storage and password, and where the data goes.
fn resolve_source(
    client: &dyn Resources,
    repo: &ResolvedRepository,
    destination: Destination,
    opts: &ExecOptions,
) -> Result<Source> {
    let password = resolve::password(client, &repo.password)?;
    let layout = refs::repository_layout(client, repo, opts.local_mode)?;
    Ok(Source {
        repo_object: repo.describe(),
        directory: repo.directory.clone(),
        layout,
        password,
        password_from: repo.password.to_string(),
        destination,
    })
}

fn restore_component(
    client: &dyn Resources,
    source: &Source,
    snap: &Snapshot,
    snap_object: &str,
    name: &str,
    opts: &ExecOptions,
    tracker: &Tracker,
) -> Result<ComponentRestore> {
    let status = snap.status.as_ref();
    let Some(comp) = status.and_then(|s| s.components.get(name)) else {
        let have: Vec<&str> = status
            .map(|s| s.components.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(ExecError::invalid(
            snap_object,
            format!(
                "has no component {name} (it has: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            ),
        ));
    };
    if comp.phase != Some(ComponentPhase::Succeeded) {
        return Err(ExecError::invalid(
            snap_object,
            format!(
                "component {name} is {}, not Succeeded; restore from a snapshot whose backup succeeded",
                comp.phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "not started".into())
            ),
        ));
    }
    let ids = comp.restic_snapshot_ids();
    if ids.is_empty() {
        return Err(ExecError::invalid(
            snap_object,
            format!("component {name} records no restic snapshot (resticStats[].summary.id)"),
        ));
    }
    let path = if comp.path.is_empty() {
        component_path(&snap.spec.session, name)
    } else {
        comp.path.clone()
    };
    let config = refs::component_config(&source.layout, &source.repo_object, &source.directory, &path)?;
    let engine = refs::open_repository(&config, &source.password, &source.password_from)?;
    let params = match &source.destination {
        Destination::Volume(p) => p,
        Destination::Manifest(task) => {
            // Restore the files into a private scratch directory, then create the objects.
            let scratch = manifest::scratch_dir(task)?;
            let all = VolumeRestoreParams {
                target: scratch.manifest.clone(),
                include: Vec::new(),
                exclude: Vec::new(),
            };
            let totals = restore_ids(&engine, &ids, &all, name, opts, tracker)?;
            // The files sit under the path that was backed up (KubeStash: /kubestash-tmp/manifest).
            let backed_up = comp
                .restic_stats
                .iter()
                .filter_map(|s| s.summary.as_ref())
                .map(|s| s.host_path.trim_start_matches('/'))
                .find(|p| !p.is_empty())
                .map(|p| scratch.manifest.join(p))
                .filter(|p| p.is_dir())
                .unwrap_or_else(|| scratch.manifest.clone());
            let summary = manifest::restore_task(client, task, &backed_up)?;
            return Ok(ComponentRestore {
                component: name.to_string(),
                restic_snapshots: ids.clone(),
                target: PathBuf::from(manifest::MANIFEST_COMPONENT),
                files: summary.objects.len() as u64,
                bytes: totals.bytes,
            });
        }
        Destination::Stream(driver) => {
            let [id] = ids.as_slice() else {
                return Err(ExecError::invalid(
                    snap_object,
                    format!(
                        "component {name} records {} restic snapshots; a stream restore needs exactly one",
                        ids.len()
                    ),
                ));
            };
            let file = comp
                .restic_stats
                .iter()
                .filter_map(|s| s.summary.as_ref())
                .map(|s| s.host_path.trim_start_matches('/'))
                .find(|p| !p.is_empty())
                .unwrap_or(driver.file_name())
                .to_string();
            let lock = opts.lock_options(&format!("restoring snapshot {id} of component {name}"))?;
            let bytes = stream::restore_from(
                driver.as_ref(),
                &engine,
                id,
                &format!("/{file}"),
                &lock,
                &tracker.part(),
            )?;
            return Ok(ComponentRestore {
                component: name.to_string(),
                restic_snapshots: ids.clone(),
                target: PathBuf::from(file),
                files: 1,
                bytes,
            });
        }
    };
    let totals = restore_ids(&engine, &ids, params, name, opts, tracker)?;
    Ok(ComponentRestore {
        component: name.to_string(),
        restic_snapshots: ids,
        target: params.target.clone(),
        files: totals.files,
        bytes: totals.bytes,
    })
}

/// Restore the restic snapshots `ids` of component `name` as `params` say.
fn restore_ids(
    engine: &kstash_repo::Repository,
    ids: &[String],
    params: &VolumeRestoreParams,
    name: &str,
    opts: &ExecOptions,
    tracker: &Tracker,
) -> Result<RestoreTotals> {
    let target = &params.target;
    let mut totals = RestoreTotals::default();
    for id in ids {
        let lock = opts.lock_options(&format!("restoring snapshot {id} of component {name}"))?;
        let t = restore_snapshot(
            engine,
            id,
            target,
            &params.include,
            &params.exclude,
            &lock,
            Some(tracker.part()),
        )?;
        tracing::info!(snapshot = %id, target = %target.display(), files = t.files, "restored");
        totals.files += t.files;
        totals.bytes += t.bytes;
    }
    Ok(totals)
}
