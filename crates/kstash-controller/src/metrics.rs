//! Session metrics pushed to a Prometheus Pushgateway and KubeStash state metrics.
//!
//! Two families of metrics, both rendered in the text exposition format by `prometheus-client`
//! (a fresh registry per render, gauges only, no units so no suffix is ever appended):
//!
//! - **Stash v1 session metrics** (spec §5.2, prefix `stash_appscode_com_`): pushed once per finished
//!   BackupSession or RestoreSession with [`push`] (HTTP `PUT`, so a push replaces the whole group).
//!   Labels: `invoker_kind`, `invoker_name`, `namespace`, `driver`; target-level series add
//!   `repository` and the target's `kind`, `group`, `name`; host-level series add `hostname` (the
//!   snapshot component). A KubeStash session writes one snapshot per repository, so a "target" here is
//!   one (target, repository) pair and session-level series carry no `repository` label.
//! - **KubeStash state metrics** (spec §5.1): derived from the current objects by [`state_metrics`],
//!   `<group with . → _>_<kind>_<metric>` with the labels of KubeStash's `MetricsConfiguration`s, plus a
//!   `namespace` label (the object's namespace) so equally named objects of two namespaces never collide.
//!
//! Values that cannot be derived (an empty size, an unparsable duration) leave their series out rather
//! than reporting a misleading 0; a family without series is left out entirely.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kstash_api::common::{Condition, TypedObjectReference};
use kstash_api::core::{
    BackupConfiguration, BackupInvokerPhase, BackupSession, BackupSessionPhase, BackupSessionStatus,
    RestorePhase, RestoreSession, RestoreSessionStatus, SessionSnapshotStatus,
};
use kstash_api::duration::parse_go_duration;
use kstash_api::phase::{self, conditions as c, parse_size};
use kstash_api::storage::{
    BackupStorage, BackupStoragePhase, Component, ComponentPhase, Repository, Snapshot, SnapshotPhase,
};
use kstash_api::verification::{BackupVerificationSession, BackupVerificationSessionPhase};
use prometheus_client::encoding::{EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Content type of the output of [`backup_session_metrics`], [`restore_session_metrics`] and
/// [`state_metrics`] when served on a `/metrics` endpoint.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type [`push`] sends: the Prometheus text format, which every Pushgateway parses (the
/// OpenMetrics `# EOF` trailer is a comment there).
const PUSH_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STASH: &str = "stash_appscode_com";
const DRIVER_RESTIC: &str = "Restic";

/// Why metrics could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The job name or a grouping label cannot form a Pushgateway path.
    #[error("invalid Pushgateway grouping for {url}: {reason}")]
    InvalidGrouping { url: String, reason: String },
    /// No HTTP answer: connection refused, DNS failure, timeout, TLS error.
    #[error("cannot push metrics to the Pushgateway at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The Pushgateway answered with a non-2xx status (e.g. 400 for inconsistent metrics).
    #[error("the Pushgateway at {url} rejected the metrics with HTTP {status}: {body}")]
    Rejected { url: String, status: u16, body: String },
}

/// Everything the state metrics are derived from.
#[derive(Debug, Default, Clone)]
pub struct StateObjects {
    pub backup_configurations: Vec<BackupConfiguration>,
    pub backup_sessions: Vec<BackupSession>,
    pub restore_sessions: Vec<RestoreSession>,
    pub backup_storages: Vec<BackupStorage>,
    pub repositories: Vec<Repository>,
    pub snapshots: Vec<Snapshot>,
    pub verification_sessions: Vec<BackupVerificationSession>,
}

impl StateObjects {
    /// Every object the state metrics are derived from, read from `r` (all namespaces).
    pub fn collect(
        r: &dyn kstash_api::client::Resources,
    ) -> Result<StateObjects, kstash_api::client::ClientError> {
        use kstash_api::client::ResourcesExt as _;
        Ok(StateObjects {
            backup_configurations: r.list_as(None, &[])?,
            backup_sessions: r.list_as(None, &[])?,
            restore_sessions: r.list_as(None, &[])?,
            backup_storages: r.list_as(None, &[])?,
            repositories: r.list_as(None, &[])?,
            snapshots: r.list_as(None, &[])?,
            verification_sessions: r.list_as(None, &[])?,
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// Stash v1 session metrics (spec §5.2)
// ---------------------------------------------------------------------------------------------------

/// Stash v1 names (prefix `stash_appscode_com_`) for one finished BackupSession.
///
/// - `backupsession_success` (1/0), `backupsession_duration_seconds` (from `status.duration`),
///   `backupsession_target_count_total` (snapshots of the session), and
///   `backupsession_last_success_time_seconds` only when the session succeeded (creation time plus
///   duration, else the latest time recorded on the session or its snapshots, else now).
/// - per snapshot (target × repository): `backupsession_target_success`,
///   `backupsession_target_host_count_total`, `backupsession_target_last_success_time_seconds`.
/// - per snapshot component (`hostname` = component name): `backupsession_host_backup_success`,
///   `…_host_backup_duration_seconds`, `…_host_data_size_bytes`, `…_host_data_uploaded_bytes`,
///   `…_host_data_processing_time_seconds`, `…_host_files_total` when known.
/// - per repository: `repository_integrity`, `repository_size_bytes`, `repository_snapshot_count`.
///
/// The session's outcome is its phase when that is final; otherwise (metrics are pushed before the
/// final phase is written) the phase it gets once the metrics step is done, with the phases of the
/// given Snapshot objects taking precedence over the copies in the session status.
pub fn backup_session_metrics(
    bc: &BackupConfiguration,
    session: &BackupSession,
    snapshots: &[Snapshot],
    repositories: &[Repository],
) -> String {
    let mut out = Exposition::default();
    let namespace = bc
        .metadata
        .namespace
        .as_deref()
        .or(session.metadata.namespace.as_deref())
        .unwrap_or_default();
    let invoker_kind = session
        .spec
        .invoker
        .as_ref()
        .map(|i| i.kind.as_str())
        .filter(|k| !k.is_empty())
        .unwrap_or("BackupConfiguration");
    let invoker_name = bc.metadata.name.as_deref().unwrap_or_default();
    let invoker = vec![
        label("invoker_kind", invoker_kind),
        label("invoker_name", invoker_name),
        label("namespace", namespace),
        label("driver", DRIVER_RESTIC),
    ];

    let runs = target_runs(session, snapshots);
    let status = session.status.clone().unwrap_or_default();
    let outcome = finished_backup_phase(&status, &runs);
    let succeeded = outcome == BackupSessionPhase::Succeeded;

    let stash = |m: &str| format!("{STASH}_backupsession_{m}");
    out.gauge(
        &stash("success"),
        "Indicates whether the entire backup session was succeeded or not",
        invoker.clone(),
        bool_value(succeeded),
    );
    if let Some(d) = go_duration(&status.duration) {
        out.gauge(
            &stash("duration_seconds"),
            "Indicates total time taken to complete the entire backup session",
            invoker.clone(),
            d.as_secs_f64(),
        );
    }
    out.gauge(
        &stash("target_count_total"),
        "Indicates the total number of target that was backed up in this backup session",
        invoker.clone(),
        runs.len() as f64,
    );
    if succeeded {
        out.gauge(
            &stash("last_success_time_seconds"),
            "Indicates the time (in unix epoch) when the backup session last succeeded",
            invoker.clone(),
            backup_finish_time(session, &runs),
        );
    }

    for run in &runs {
        let app = run.app.or(bc.spec.target.as_ref());
        let mut target = invoker.clone();
        target.push(label("repository", run.repository));
        target.extend(target_labels(app));
        let run_succeeded = run.phase == Some(SnapshotPhase::Succeeded);
        out.gauge(
            &stash("target_success"),
            "Indicates whether the backup for a target has succeeded or not",
            target.clone(),
            bool_value(run_succeeded),
        );
        let snapshot_status = run.snapshot.and_then(|s| s.status.as_ref());
        if run_succeeded {
            let hosts = snapshot_status
                .map(|s| {
                    usize::try_from(s.total_components)
                        .unwrap_or(0)
                        .max(s.components.len())
                })
                .unwrap_or(0);
            if hosts > 0 {
                out.gauge(
                    &stash("target_host_count_total"),
                    "Indicates the total number of hosts that was backed up for this target",
                    target.clone(),
                    hosts as f64,
                );
            }
            if let Some(t) =
                snapshot_status.and_then(|s| s.last_update_time.as_ref().or(s.snapshot_time.as_ref()))
            {
                out.gauge(
                    &stash("target_last_success_time_seconds"),
                    "Indicates the time (in unix epoch) when the backup of this target last succeeded",
                    target.clone(),
                    unix_seconds(t),
                );
            }
        }
        for (host, component) in snapshot_status.iter().flat_map(|s| s.components.iter()) {
            let mut labels = target.clone();
            if let Some(driver) = component.driver {
                set_label(&mut labels, "driver", &enum_str(&driver));
            }
            labels.push(label("hostname", host));
            host_backup_metrics(&mut out, labels, component);
        }
    }

    for repo in repositories {
        let name = repo.metadata.name.as_deref().unwrap_or_default();
        let mut labels = invoker.clone();
        if let Some(ns) = repo.metadata.namespace.as_deref() {
            set_label(&mut labels, "namespace", ns);
        }
        labels.push(label("repository", name));
        labels.push(label("name", name));
        let rs = repo.status.clone().unwrap_or_default();
        let repo_metric = |m: &str| format!("{STASH}_repository_{m}");
        out.gauge(
            &repo_metric("integrity"),
            "Result of repository integrity check after last backup",
            labels.clone(),
            bool_value(rs.integrity == Some(true)),
        );
        if let Some(size) = size_bytes(&rs.size) {
            out.gauge(
                &repo_metric("size_bytes"),
                "Indicates size of repository after last backup (in bytes)",
                labels.clone(),
                size,
            );
        }
        if let Some(count) = rs.snapshot_count {
            out.gauge(
                &repo_metric("snapshot_count"),
                "Indicates number of snapshots stored in the repository",
                labels,
                f64::from(count),
            );
        }
    }
    out.render()
}

/// Host-level backup series of one snapshot component.
fn host_backup_metrics(out: &mut Exposition, labels: Labels, component: &Component) {
    let stash = |m: &str| format!("{STASH}_backupsession_{m}");
    let ok = component.phase == Some(ComponentPhase::Succeeded) && component.error.is_empty();
    out.gauge(
        &stash("host_backup_success"),
        "Indicates whether the backup for a host succeeded or not",
        labels.clone(),
        bool_value(ok),
    );
    if let Some(d) = go_duration(&component.duration) {
        out.gauge(
            &stash("host_backup_duration_seconds"),
            "Indicates total time taken to complete the backup process for a host",
            labels.clone(),
            d.as_secs_f64(),
        );
    }
    let summaries: Vec<_> = component
        .restic_stats
        .iter()
        .filter_map(|s| s.summary.as_ref())
        .collect();
    let data_size =
        sum_known(summaries.iter().map(|s| size_bytes(&s.size))).or_else(|| size_bytes(&component.size));
    if let Some(v) = data_size {
        out.gauge(
            &stash("host_data_size_bytes"),
            "Total size of the target data to backup for a host (in bytes)",
            labels.clone(),
            v,
        );
    }
    if let Some(v) = sum_known(summaries.iter().map(|s| size_bytes(&s.uploaded))) {
        out.gauge(
            &stash("host_data_uploaded_bytes"),
            "Amount of data uploaded to the repository for a host (in bytes)",
            labels.clone(),
            v,
        );
    }
    let processing = summaries.iter().map(|s| match (&s.start_time, &s.end_time) {
        (Some(start), Some(end)) => Some((unix_seconds(end) - unix_seconds(start)).max(0.0)),
        _ => None,
    });
    if let Some(v) = sum_known(processing) {
        out.gauge(
            &stash("host_data_processing_time_seconds"),
            "Total time taken to process the target data for a host",
            labels.clone(),
            v,
        );
    }
    let files = component
        .restic_stats
        .iter()
        .filter_map(|s| s.progress.as_ref())
        .map(|p| (p.total_files > 0).then_some(p.total_files as f64));
    if let Some(v) = sum_known(files) {
        out.gauge(
            &stash("host_files_total"),
            "Total number of files that has been backed up for a host",
            labels,
            v,
        );
    }
}

/// Stash v1 names (prefix `stash_appscode_com_restoresession_`) for one finished RestoreSession:
/// `success`, `duration_seconds`, `target_count_total`, `target_success`, `target_host_count_total`,
/// and per component (`hostname`) `host_restore_success` and `host_restore_duration_seconds`.
///
/// The outcome is the phase when final (Succeeded, Failed, Invalid), otherwise the phase the session
/// gets once the metrics step is done.
pub fn restore_session_metrics(restore: &RestoreSession) -> String {
    let mut out = Exposition::default();
    let status = restore.status.clone().unwrap_or_default();
    let outcome = finished_restore_phase(&status);
    let succeeded = outcome == RestorePhase::Succeeded;
    let data_source = restore.spec.data_source.clone().unwrap_or_default();
    let session = vec![
        label("invoker_kind", "RestoreSession"),
        label(
            "invoker_name",
            restore.metadata.name.as_deref().unwrap_or_default(),
        ),
        label(
            "namespace",
            restore.metadata.namespace.as_deref().unwrap_or_default(),
        ),
        label("driver", DRIVER_RESTIC),
        label("repository", &data_source.repository),
    ];
    let stash = |m: &str| format!("{STASH}_restoresession_{m}");
    out.gauge(
        &stash("success"),
        "Indicates whether the entire restore session was succeeded or not",
        session.clone(),
        bool_value(succeeded),
    );
    if let Some(d) = go_duration(&status.duration) {
        out.gauge(
            &stash("duration_seconds"),
            "Indicates the total time taken to complete the entire restore session",
            session.clone(),
            d.as_secs_f64(),
        );
    }
    out.gauge(
        &stash("target_count_total"),
        "Indicates the total number of targets that was restored in this restore session",
        session.clone(),
        1.0,
    );

    let mut target = session;
    target.extend(target_labels(restore.spec.target.as_ref()));
    out.gauge(
        &stash("target_success"),
        "Indicates whether the restore for a target has succeeded or not",
        target.clone(),
        bool_value(succeeded),
    );
    let hosts = usize::try_from(status.total_components)
        .unwrap_or(0)
        .max(status.components.len());
    if hosts > 0 {
        out.gauge(
            &stash("target_host_count_total"),
            "Indicates the total number of hosts that was restored for this restore target",
            target.clone(),
            hosts as f64,
        );
    }
    for (host, component) in &status.components {
        let mut labels = target.clone();
        labels.push(label("hostname", host));
        let ok = component.phase == Some(RestorePhase::Succeeded) && component.error.is_empty();
        out.gauge(
            &stash("host_restore_success"),
            "Indicates whether the restore process was succeeded for a host",
            labels.clone(),
            bool_value(ok),
        );
        if let Some(d) = go_duration(&component.duration) {
            out.gauge(
                &stash("host_restore_duration_seconds"),
                "Indicates the total time taken to complete the restore process for a host",
                labels,
                d.as_secs_f64(),
            );
        }
    }
    out.render()
}

/// One snapshot of a BackupSession: the session's status entry merged with the Snapshot object.
struct TargetRun<'a> {
    name: &'a str,
    repository: &'a str,
    app: Option<&'a TypedObjectReference>,
    phase: Option<SnapshotPhase>,
    snapshot: Option<&'a Snapshot>,
}

/// The snapshots listed in the session status (in order), then given Snapshot objects it does not list.
fn target_runs<'a>(session: &'a BackupSession, snapshots: &'a [Snapshot]) -> Vec<TargetRun<'a>> {
    let listed = session
        .status
        .as_ref()
        .map(|s| s.snapshots.as_slice())
        .unwrap_or_default();
    let from_object = |o: &'a Snapshot, fallback: Option<&'a SessionSnapshotStatus>| TargetRun {
        name: o.metadata.name.as_deref().unwrap_or_default(),
        repository: non_empty(&o.spec.repository)
            .or(fallback.map(|e| e.repository.as_str()))
            .unwrap_or_default(),
        app: (!o.spec.app_ref.name.is_empty())
            .then_some(&o.spec.app_ref)
            .or(fallback.and_then(|e| e.app_ref.as_ref())),
        phase: o
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .or(fallback.and_then(|e| e.phase)),
        snapshot: Some(o),
    };
    let mut runs: Vec<TargetRun<'a>> = listed
        .iter()
        .map(|entry| {
            match snapshots
                .iter()
                .find(|o| o.metadata.name.as_deref() == Some(entry.name.as_str()))
            {
                Some(o) => from_object(o, Some(entry)),
                None => TargetRun {
                    name: &entry.name,
                    repository: &entry.repository,
                    app: entry.app_ref.as_ref(),
                    phase: entry.phase,
                    snapshot: None,
                },
            }
        })
        .collect();
    for o in snapshots {
        let name = o.metadata.name.as_deref().unwrap_or_default();
        if !runs.iter().any(|r| r.name == name) {
            runs.push(from_object(o, None));
        }
    }
    runs
}

/// The phase a BackupSession ends with: its phase when final, else the phase computed as if the
/// metrics step were done, from the status with the Snapshot objects' phases folded in.
fn finished_backup_phase(status: &BackupSessionStatus, runs: &[TargetRun<'_>]) -> BackupSessionPhase {
    match status.phase {
        Some(p) if phase::backup_session_completed(p) => p,
        _ => {
            let mut s = status.clone();
            for entry in &mut s.snapshots {
                if let Some(p) = runs.iter().find(|r| r.name == entry.name).and_then(|r| r.phase) {
                    entry.phase = Some(p);
                }
            }
            let unlisted: Vec<_> = runs
                .iter()
                .filter(|r| !s.snapshots.iter().any(|e| e.name == r.name))
                .map(|run| SessionSnapshotStatus {
                    name: run.name.to_string(),
                    phase: run.phase,
                    app_ref: run.app.cloned(),
                    repository: run.repository.to_string(),
                })
                .collect();
            s.snapshots.extend(unlisted);
            phase::set_condition(
                &mut s.conditions,
                Condition::new(
                    c::METRICS_PUSHED,
                    true,
                    "SuccessfullyPushedMetrics",
                    "metrics pushed",
                ),
            );
            phase::backup_session(&s)
        }
    }
}

/// The phase a RestoreSession ends with (see [`finished_backup_phase`]).
fn finished_restore_phase(status: &RestoreSessionStatus) -> RestorePhase {
    match status.phase {
        Some(p @ (RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid)) => p,
        _ => {
            let mut s = status.clone();
            phase::set_condition(
                &mut s.conditions,
                Condition::new(
                    c::METRICS_PUSHED,
                    true,
                    "SuccessfullyPushedMetrics",
                    "metrics pushed",
                ),
            );
            phase::restore_session(&s)
        }
    }
}

/// When a successful session finished: creation + duration, else the latest time recorded on the
/// session's conditions or snapshots, else now.
fn backup_finish_time(session: &BackupSession, runs: &[TargetRun<'_>]) -> f64 {
    let status = session.status.as_ref();
    let created = session.metadata.creation_timestamp.as_ref();
    if let (Some(created), Some(d)) = (created, status.and_then(|s| go_duration(&s.duration))) {
        return unix_seconds(created) + d.as_secs_f64();
    }
    let condition_times = status
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .filter_map(|c| c.last_transition_time.as_ref());
    let snapshot_times = runs
        .iter()
        .filter_map(|r| r.snapshot?.status.as_ref())
        .flat_map(|s| [s.last_update_time.as_ref(), s.snapshot_time.as_ref()])
        .flatten();
    condition_times
        .chain(snapshot_times)
        .map(unix_seconds)
        .reduce(f64::max)
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond() as f64 / 1000.0)
}

/// `kind`, `group`, `name` of a backup or restore target (Stash's target labels).
fn target_labels(target: Option<&TypedObjectReference>) -> Labels {
    vec![
        label("kind", target.and_then(|t| t.kind.as_deref()).unwrap_or_default()),
        label(
            "group",
            target.and_then(|t| t.api_group.as_deref()).unwrap_or_default(),
        ),
        label("name", target.map(|t| t.name.as_str()).unwrap_or_default()),
    ]
}

// ---------------------------------------------------------------------------------------------------
// KubeStash state metrics (spec §5.1)
// ---------------------------------------------------------------------------------------------------

const BACKUP_CONFIGURATION_PHASES: [BackupInvokerPhase; 3] = [
    BackupInvokerPhase::Ready,
    BackupInvokerPhase::NotReady,
    BackupInvokerPhase::Invalid,
];
const BACKUP_SESSION_PHASES: [BackupSessionPhase; 5] = [
    BackupSessionPhase::Pending,
    BackupSessionPhase::Running,
    BackupSessionPhase::Succeeded,
    BackupSessionPhase::Failed,
    BackupSessionPhase::Skipped,
];
const RESTORE_SESSION_PHASES: [RestorePhase; 6] = [
    RestorePhase::Pending,
    RestorePhase::Running,
    RestorePhase::Succeeded,
    RestorePhase::Failed,
    RestorePhase::Invalid,
    RestorePhase::Unknown,
];
const BACKUP_STORAGE_PHASES: [BackupStoragePhase; 2] =
    [BackupStoragePhase::Ready, BackupStoragePhase::NotReady];
const SNAPSHOT_PHASES: [SnapshotPhase; 4] = [
    SnapshotPhase::Pending,
    SnapshotPhase::Running,
    SnapshotPhase::Succeeded,
    SnapshotPhase::Failed,
];

/// KubeStash state metrics (spec §5.1), text exposition format.
///
/// Per kind, in this order: `core_kubestash_com_backupconfiguration_{created,info,sessions,phase,
/// conditions}`, `core_kubestash_com_backupsession_{created,info,snapshots,phase,duration_seconds,
/// conditions}`, `core_kubestash_com_restoresession_{created,info,phase,duration_seconds,
/// component_count_total,conditions}`, `storage_kubestash_com_backupstorage_{created,info,
/// repository_size_bytes,phase,size_bytes,conditions}`, `storage_kubestash_com_repository_{created,info,
/// last_successful_backup,size_bytes,snapshot_count_total,conditions}`,
/// `storage_kubestash_com_snapshot_{created,info,phase,size_bytes,time_seconds,component_count_total,
/// conditions}`. `phase` is one series per possible phase (1 for the current one, 0 otherwise),
/// `conditions` one series per condition (labels `condition`, `status`) with value 1.
pub fn state_metrics(objects: &StateObjects) -> String {
    let mut out = Exposition::default();
    for bc in &objects.backup_configurations {
        backup_configuration_state(&mut out, bc);
    }
    for bs in &objects.backup_sessions {
        backup_session_state(&mut out, bs);
    }
    for rs in &objects.restore_sessions {
        restore_session_state(&mut out, rs);
    }
    for storage in &objects.backup_storages {
        backup_storage_state(&mut out, storage);
    }
    for repo in &objects.repositories {
        repository_state(&mut out, repo);
    }
    for snapshot in &objects.snapshots {
        snapshot_state(&mut out, snapshot);
    }
    last_verifications(&mut out, &objects.verification_sessions);
    out.render()
}

fn backup_configuration_state(out: &mut Exposition, bc: &BackupConfiguration) {
    let m = |s: &str| format!("core_kubestash_com_backupconfiguration_{s}");
    let target = bc.spec.target.as_ref();
    let common = vec![
        label("backup_invoker_kind", "BackupConfiguration"),
        label(
            "backup_invoker_name",
            bc.metadata.name.as_deref().unwrap_or_default(),
        ),
        label("namespace", bc.metadata.namespace.as_deref().unwrap_or_default()),
        label(
            "target_kind",
            target.and_then(|t| t.kind.as_deref()).unwrap_or_default(),
        ),
        label("target_name", target.map(|t| t.name.as_str()).unwrap_or_default()),
        label(
            "target_namespace",
            target.and_then(|t| t.namespace.as_deref()).unwrap_or_default(),
        ),
    ];
    let status = bc.status.as_ref();
    created(out, &m("created"), "BackupConfiguration", &bc.metadata, &common);
    out.gauge(
        &m("info"),
        "General information about this BackupConfiguration",
        common.clone(),
        1.0,
    );
    for session in &bc.spec.sessions {
        let mut labels = common.clone();
        labels.push(label("session_name", &session.name));
        labels.push(label(
            "schedule",
            session
                .scheduler
                .as_ref()
                .map(|s| s.schedule.as_str())
                .unwrap_or_default(),
        ));
        labels.push(label(
            "addon_name",
            session
                .addon
                .as_ref()
                .map(|a| a.name.as_str())
                .unwrap_or_default(),
        ));
        out.gauge(
            &m("sessions"),
            "List of sessions of this BackupConfiguration",
            labels,
            1.0,
        );
    }
    phase_gauges(
        out,
        &m("phase"),
        "BackupConfiguration object current phase",
        &common,
        &BACKUP_CONFIGURATION_PHASES,
        status.and_then(|s| s.phase),
    );
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this BackupConfiguration",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

fn backup_session_state(out: &mut Exposition, bs: &BackupSession) {
    let m = |s: &str| format!("core_kubestash_com_backupsession_{s}");
    let invoker = bs.spec.invoker.as_ref();
    let common = vec![
        label("invoker_kind", "BackupSession"),
        label("invoker_name", bs.metadata.name.as_deref().unwrap_or_default()),
        label("namespace", bs.metadata.namespace.as_deref().unwrap_or_default()),
        label(
            "backup_invoker_kind",
            invoker.map(|i| i.kind.as_str()).unwrap_or_default(),
        ),
        label(
            "backup_invoker_name",
            invoker.map(|i| i.name.as_str()).unwrap_or_default(),
        ),
    ];
    let status = bs.status.as_ref();
    let current = status.and_then(|s| s.phase);
    created(out, &m("created"), "BackupSession", &bs.metadata, &common);
    let mut info = common.clone();
    info.push(label("session", &bs.spec.session));
    info.push(label("phase", &current.map(|p| enum_str(&p)).unwrap_or_default()));
    out.gauge(
        &m("info"),
        "General information about this BackupSession",
        info,
        1.0,
    );
    for snap in status.iter().flat_map(|s| s.snapshots.iter()) {
        let app = snap.app_ref.as_ref();
        let mut labels = common.clone();
        labels.push(label("snapshot_name", &snap.name));
        labels.push(label(
            "snapshot_phase",
            &snap.phase.map(|p| enum_str(&p)).unwrap_or_default(),
        ));
        labels.push(label("repository", &snap.repository));
        labels.push(label(
            "backedup_app_kind",
            app.and_then(|a| a.kind.as_deref()).unwrap_or_default(),
        ));
        labels.push(label(
            "backedup_app_name",
            app.map(|a| a.name.as_str()).unwrap_or_default(),
        ));
        labels.push(label(
            "backedup_app_namespace",
            app.and_then(|a| a.namespace.as_deref()).unwrap_or_default(),
        ));
        out.gauge(
            &m("snapshots"),
            "General information about the snapshots of this BackupSession",
            labels,
            1.0,
        );
    }
    phase_gauges(
        out,
        &m("phase"),
        "BackupSession object current phase",
        &common,
        &BACKUP_SESSION_PHASES,
        current,
    );
    if let Some(d) = status.and_then(|s| go_duration(&s.duration)) {
        out.gauge(
            &m("duration_seconds"),
            "Time required to complete this backup process",
            common.clone(),
            d.as_secs_f64(),
        );
    }
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this BackupSession",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

fn restore_session_state(out: &mut Exposition, rs: &RestoreSession) {
    let m = |s: &str| format!("core_kubestash_com_restoresession_{s}");
    let target = rs.spec.target.as_ref();
    let common = vec![
        label("invoker_kind", "RestoreSession"),
        label("invoker_name", rs.metadata.name.as_deref().unwrap_or_default()),
        label("namespace", rs.metadata.namespace.as_deref().unwrap_or_default()),
        label(
            "target_kind",
            target.and_then(|t| t.kind.as_deref()).unwrap_or_default(),
        ),
        label("target_name", target.map(|t| t.name.as_str()).unwrap_or_default()),
        label(
            "target_namespace",
            target.and_then(|t| t.namespace.as_deref()).unwrap_or_default(),
        ),
    ];
    let status = rs.status.as_ref();
    let current = status.and_then(|s| s.phase);
    let source = rs.spec.data_source.clone().unwrap_or_default();
    created(out, &m("created"), "RestoreSession", &rs.metadata, &common);
    let mut info = common.clone();
    info.push(label("datasource_namespace", &source.namespace));
    info.push(label("repository", &source.repository));
    info.push(label("snapshot", &source.snapshot));
    info.push(label(
        "addon_name",
        rs.spec
            .addon
            .as_ref()
            .map(|a| a.name.as_str())
            .unwrap_or_default(),
    ));
    info.push(label("phase", &current.map(|p| enum_str(&p)).unwrap_or_default()));
    out.gauge(
        &m("info"),
        "General information about this RestoreSession",
        info,
        1.0,
    );
    phase_gauges(
        out,
        &m("phase"),
        "RestoreSession object current phase",
        &common,
        &RESTORE_SESSION_PHASES,
        current,
    );
    if let Some(d) = status.and_then(|s| go_duration(&s.duration)) {
        out.gauge(
            &m("duration_seconds"),
            "The total time taken to complete the restore process",
            common.clone(),
            d.as_secs_f64(),
        );
    }
    if let Some(s) = status {
        out.gauge(
            &m("component_count_total"),
            "The number of total components for this RestoreSession",
            common.clone(),
            f64::from(s.total_components),
        );
    }
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this RestoreSession",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

fn backup_storage_state(out: &mut Exposition, storage: &BackupStorage) {
    let m = |s: &str| format!("storage_kubestash_com_backupstorage_{s}");
    let common = vec![
        label("invoker_kind", "BackupStorage"),
        label(
            "invoker_name",
            storage.metadata.name.as_deref().unwrap_or_default(),
        ),
        label(
            "namespace",
            storage.metadata.namespace.as_deref().unwrap_or_default(),
        ),
    ];
    let status = storage.status.as_ref();
    let current = status.and_then(|s| s.phase);
    created(out, &m("created"), "BackupStorage", &storage.metadata, &common);
    let mut info = common.clone();
    info.push(label(
        "provider",
        storage
            .spec
            .storage
            .provider
            .map(|p| p.field())
            .unwrap_or_default(),
    ));
    info.push(label(
        "default",
        if storage.spec.default { "true" } else { "false" },
    ));
    info.push(label(
        "deletionPolicy",
        &storage
            .spec
            .deletion_policy
            .map(|p| enum_str(&p))
            .unwrap_or_default(),
    ));
    info.push(label("phase", &current.map(|p| enum_str(&p)).unwrap_or_default()));
    out.gauge(
        &m("info"),
        "General information about this BackupStorage",
        info,
        1.0,
    );
    for repo in status.iter().flat_map(|s| s.repositories.iter()) {
        let Some(size) = size_bytes(&repo.size) else {
            continue;
        };
        let mut labels = common.clone();
        labels.push(label("repo_name", &repo.name));
        labels.push(label("repo_namespace", &repo.namespace));
        labels.push(label("repo_path", &repo.path));
        out.gauge(
            &m("repository_size_bytes"),
            "Size of the data of one Repository in this BackupStorage",
            labels,
            size,
        );
    }
    phase_gauges(
        out,
        &m("phase"),
        "BackupStorage object current phase",
        &common,
        &BACKUP_STORAGE_PHASES,
        current,
    );
    if let Some(size) = status.and_then(|s| size_bytes(&s.total_size)) {
        out.gauge(
            &m("size_bytes"),
            "Total size of the backed up data in this BackupStorage",
            common.clone(),
            size,
        );
    }
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this BackupStorage",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

fn repository_state(out: &mut Exposition, repo: &Repository) {
    let m = |s: &str| format!("storage_kubestash_com_repository_{s}");
    let app = &repo.spec.app_ref;
    let common = vec![
        label("invoker_kind", "Repository"),
        label("invoker_name", repo.metadata.name.as_deref().unwrap_or_default()),
        label(
            "namespace",
            repo.metadata.namespace.as_deref().unwrap_or_default(),
        ),
        label("target_kind", app.kind.as_deref().unwrap_or_default()),
        label("target_name", &app.name),
        label("target_namespace", app.namespace.as_deref().unwrap_or_default()),
    ];
    let status = repo.status.as_ref();
    created(out, &m("created"), "Repository", &repo.metadata, &common);
    let mut info = common.clone();
    info.push(label("path", &repo.spec.path));
    info.push(label(
        "phase",
        &status
            .and_then(|s| s.phase)
            .map(|p| enum_str(&p))
            .unwrap_or_default(),
    ));
    info.push(label("integrity", &opt_bool(status.and_then(|s| s.integrity))));
    out.gauge(&m("info"), "General information about this Repository", info, 1.0);
    if let Some(t) = status.and_then(|s| s.last_backup_time.as_ref()) {
        out.gauge(
            &m("last_successful_backup"),
            "Last successful backup stored in this Repository",
            common.clone(),
            unix_seconds(t).floor(),
        );
    }
    if let Some(size) = status.and_then(|s| size_bytes(&s.size)) {
        out.gauge(
            &m("size_bytes"),
            "Total backed up data stored in this Repository",
            common.clone(),
            size,
        );
    }
    if let Some(count) = status.and_then(|s| s.snapshot_count) {
        out.gauge(
            &m("snapshot_count_total"),
            "Number of current snapshots stored in this Repository",
            common.clone(),
            f64::from(count),
        );
    }
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this Repository",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

fn snapshot_state(out: &mut Exposition, snapshot: &Snapshot) {
    let m = |s: &str| format!("storage_kubestash_com_snapshot_{s}");
    let app = &snapshot.spec.app_ref;
    let common = vec![
        label("invoker_kind", "Snapshot"),
        label(
            "invoker_name",
            snapshot.metadata.name.as_deref().unwrap_or_default(),
        ),
        label(
            "namespace",
            snapshot.metadata.namespace.as_deref().unwrap_or_default(),
        ),
        label("target_kind", app.kind.as_deref().unwrap_or_default()),
        label("target_name", &app.name),
        label("target_namespace", app.namespace.as_deref().unwrap_or_default()),
    ];
    let status = snapshot.status.as_ref();
    let current = status.and_then(|s| s.phase);
    let spec = &snapshot.spec;
    created(out, &m("created"), "Snapshot", &snapshot.metadata, &common);
    let mut info = common.clone();
    info.push(label(
        "snapshot_type",
        &spec.type_.map(|t| enum_str(&t)).unwrap_or_default(),
    ));
    info.push(label("repository", &spec.repository));
    info.push(label("session", &spec.session));
    info.push(label("backupsession", &spec.backup_session));
    info.push(label("version", &spec.version));
    info.push(label("phase", &current.map(|p| enum_str(&p)).unwrap_or_default()));
    info.push(label("integrity", &opt_bool(status.and_then(|s| s.integrity))));
    out.gauge(&m("info"), "General information about this Snapshot", info, 1.0);
    phase_gauges(
        out,
        &m("phase"),
        "Snapshot object current phase",
        &common,
        &SNAPSHOT_PHASES,
        current,
    );
    if let Some(size) = status.and_then(|s| size_bytes(&s.size)) {
        out.gauge(&m("size_bytes"), "Size of this Snapshot", common.clone(), size);
    }
    if let Some(t) = status.and_then(|s| s.snapshot_time.as_ref()) {
        out.gauge(
            &m("time_seconds"),
            "The time when this Snapshot was taken",
            common.clone(),
            unix_seconds(t).floor(),
        );
    }
    if let Some(s) = status {
        out.gauge(
            &m("component_count_total"),
            "The number of total components for this Snapshot",
            common.clone(),
            f64::from(s.total_components),
        );
    }
    condition_gauges(
        out,
        &m("conditions"),
        "Current conditions of this Snapshot",
        &common,
        status.map(|s| s.conditions.as_slice()),
    );
}

/// Per repository, its newest finished (not skipped) verification:
/// `storage_kubestash_com_repository_last_verification_time_seconds` (when it finished) and
/// `storage_kubestash_com_repository_last_verification_success` (1 verified, 0 failed).
fn last_verifications(out: &mut Exposition, sessions: &[BackupVerificationSession]) {
    use std::collections::BTreeMap;
    let mut newest: BTreeMap<(String, String), (f64, bool)> = BTreeMap::new();
    for s in sessions {
        let Some(st) = &s.status else { continue };
        let success = match st.phase {
            Some(BackupVerificationSessionPhase::Succeeded) => true,
            Some(BackupVerificationSessionPhase::Failed) => false,
            _ => continue,
        };
        let Some(at) = phase::find(
            &st.conditions,
            kstash_api::verification::conditions::HISTORY_CLEANED,
        )
        .and_then(|c| c.last_transition_time.as_ref()) else {
            continue;
        };
        let key = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.spec.repository.clone(),
        );
        let t = unix_seconds(at).floor();
        if newest.get(&key).is_none_or(|(old, _)| t >= *old) {
            newest.insert(key, (t, success));
        }
    }
    for ((ns, repo), (t, success)) in newest {
        let labels = vec![label("namespace", &ns), label("repository", &repo)];
        out.gauge(
            "storage_kubestash_com_repository_last_verification_time_seconds",
            "When the newest verification of this repository finished",
            labels.clone(),
            t,
        );
        out.gauge(
            "storage_kubestash_com_repository_last_verification_success",
            "Whether the newest verification of this repository proved its snapshot restorable",
            labels,
            bool_value(success),
        );
    }
}

/// Pushed once per finished BackupVerificationSession (prefix `kstash_backupverification_`):
/// `success`, `duration_seconds` and `snapshot_info` (labels `snapshot`, `phase`).
pub fn verification_session_metrics(bvs: &BackupVerificationSession) -> String {
    let mut out = Exposition::default();
    let st = bvs.status.clone().unwrap_or_default();
    let labels = vec![
        label("namespace", bvs.metadata.namespace.as_deref().unwrap_or_default()),
        label(
            "invoker_name",
            bvs.spec
                .invoker
                .as_ref()
                .map(|i| i.name.as_str())
                .unwrap_or_default(),
        ),
        label("repository", &bvs.spec.repository),
    ];
    let success = st.phase == Some(BackupVerificationSessionPhase::Succeeded);
    out.gauge(
        "kstash_backupverification_success",
        "Whether the verification proved the snapshot restorable",
        labels.clone(),
        bool_value(success),
    );
    if let Some(d) = go_duration(&st.duration) {
        out.gauge(
            "kstash_backupverification_duration_seconds",
            "How long the verification took",
            labels.clone(),
            d.as_secs_f64(),
        );
    }
    let mut info = labels;
    info.push(label("snapshot", &bvs.spec.snapshot));
    info.push(label(
        "phase",
        &st.phase.map(|p| enum_str(&p)).unwrap_or_default(),
    ));
    out.gauge(
        "kstash_backupverification_snapshot_info",
        "The snapshot a verification looked at",
        info,
        1.0,
    );
    out.render()
}

/// `<kind>_created`: the creation timestamp in unix seconds, when known.
fn created(out: &mut Exposition, name: &str, kind: &str, meta: &ObjectMeta, common: &Labels) {
    if let Some(t) = &meta.creation_timestamp {
        out.gauge(
            name,
            &format!("Unix creation timestamp of this {kind} object"),
            common.clone(),
            t.0.as_second() as f64,
        );
    }
}

/// One series per possible phase: 1 for the current one, 0 for the others.
fn phase_gauges<P: Serialize + PartialEq + Copy>(
    out: &mut Exposition,
    name: &str,
    help: &str,
    common: &Labels,
    phases: &[P],
    current: Option<P>,
) {
    for p in phases {
        let mut labels = common.clone();
        labels.push(label("phase", &enum_str(p)));
        out.gauge(name, help, labels, bool_value(current == Some(*p)));
    }
}

/// One series per condition, labels `condition` and `status`, value 1.
fn condition_gauges(
    out: &mut Exposition,
    name: &str,
    help: &str,
    common: &Labels,
    conds: Option<&[Condition]>,
) {
    for cond in conds.unwrap_or_default() {
        let mut labels = common.clone();
        labels.push(label("condition", &cond.type_));
        labels.push(label("status", &enum_str(&cond.status)));
        out.gauge(name, help, labels, 1.0);
    }
}

// ---------------------------------------------------------------------------------------------------
// Pushgateway
// ---------------------------------------------------------------------------------------------------

/// PUT the body to `<url>/metrics/job/<job>/<label>/<value>…`, replacing every metric of that group.
///
/// Values are URL-path-escaped; a value containing `/` or an empty one uses the Pushgateway's
/// `<label>@base64/<base64url>` form (the job too). Connects within 10 s and gives up after 30 s.
pub fn push(url: &str, job: &str, grouping: &[(&str, &str)], body: &str) -> Result<(), MetricsError> {
    let endpoint = push_url(url, job, grouping)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .put(&endpoint)
        .header("Content-Type", PUSH_CONTENT_TYPE)
        .send(body)
        .map_err(|e| MetricsError::Unreachable {
            url: endpoint.clone(),
            cause: e.to_string(),
        })?;
    let status = response.status();
    if status.is_success() {
        tracing::debug!(url = %endpoint, bytes = body.len(), "pushed metrics to the Pushgateway");
        return Ok(());
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| format!("(body unreadable: {e})"));
    Err(MetricsError::Rejected {
        url: endpoint,
        status: status.as_u16(),
        body: text.trim().to_string(),
    })
}

/// `<url>/metrics/job/<job>{/<label>/<value>}` with the Pushgateway's escaping rules.
fn push_url(url: &str, job: &str, grouping: &[(&str, &str)]) -> Result<String, MetricsError> {
    let base = url.trim_end_matches('/');
    let invalid = |reason: String| MetricsError::InvalidGrouping {
        url: base.to_string(),
        reason,
    };
    if job.is_empty() {
        return Err(invalid("the job name is empty".into()));
    }
    let mut out = format!("{base}/metrics/");
    path_component(&mut out, "job", job);
    for (i, (name, value)) in grouping.iter().enumerate() {
        if !is_label_name(name) || name.starts_with("__") {
            return Err(invalid(format!("'{name}' is not a valid label name")));
        }
        if *name == "job" || grouping[..i].iter().any(|(n, _)| n == name) {
            return Err(invalid(format!(
                "label '{name}' appears twice in the grouping key"
            )));
        }
        out.push('/');
        path_component(&mut out, name, value);
    }
    Ok(out)
}

fn path_component(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        let _ = write!(out, "{name}@base64/=");
    } else if value.contains('/') {
        let _ = write!(out, "{name}@base64/{}", base64_url(value.as_bytes()));
    } else {
        let _ = write!(out, "{name}/");
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// RFC 4648 §5 base64 (URL alphabet) without padding.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------

/// A label value, escaped (`\`, `"`, newline) when encoded.
#[derive(Debug, Clone)]
struct LabelValue(String);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for ch in self.0.chars() {
            match ch {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

type Labels = Vec<(&'static str, LabelValue)>;

fn label(name: &'static str, value: &str) -> (&'static str, LabelValue) {
    (name, LabelValue(value.to_string()))
}

/// Replace the value of an existing label (keeping its position), or append it.
fn set_label(labels: &mut Labels, name: &'static str, value: &str) {
    match labels.iter_mut().find(|(n, _)| *n == name) {
        Some(l) => l.1 = LabelValue(value.to_string()),
        None => labels.push(label(name, value)),
    }
}

/// The series of one gauge family, encoded in insertion order (deterministic output).
#[derive(Debug, Default)]
struct GaugeFamily {
    series: Vec<(Labels, f64)>,
}

impl EncodeMetric for GaugeFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.series {
            let mut series = encoder.encode_family(labels)?;
            // Whole numbers print as integers (`1`, not `1.0`).
            if value.fract() == 0.0 && value.abs() < 9.0e15 {
                series.encode_gauge(&(*value as i64))?;
            } else {
                series.encode_gauge(value)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Gauge families in first-use order; a series whose label set repeats within a family is dropped.
#[derive(Debug, Default)]
struct Exposition {
    families: Vec<(String, String, GaugeFamily, HashSet<String>)>,
}

impl Exposition {
    fn gauge(&mut self, name: &str, help: &str, labels: Labels, value: f64) {
        let idx = match self.families.iter().position(|f| f.0 == name) {
            Some(i) => i,
            None => {
                self.families.push((
                    name.to_string(),
                    help.to_string(),
                    GaugeFamily::default(),
                    HashSet::new(),
                ));
                self.families.len() - 1
            }
        };
        let family = &mut self.families[idx];
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}\u{0}{}", v.0))
            .collect::<Vec<_>>()
            .join("\u{1}");
        if !family.3.insert(key) {
            tracing::warn!(metric = name, "dropping a series whose label set repeats");
            return;
        }
        family.2.series.push((labels, value));
    }

    /// Encode with a fresh registry; ends with the OpenMetrics `# EOF` line.
    fn render(self) -> String {
        let mut registry = Registry::default();
        for (name, help, family, _) in self.families {
            registry.register(name, help, family);
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------------

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn opt_bool(b: Option<bool>) -> String {
    b.map(|b| b.to_string()).unwrap_or_default()
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// A Go duration (`1m30s`), or None when empty or unparsable.
fn go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    parse_go_duration(s).ok()
}

/// A size such as `1.234 MiB` in bytes, or None when empty or unparsable.
fn size_bytes(s: &str) -> Option<f64> {
    parse_size(s).map(|b| b as f64)
}

/// Sum of the known values, or None when none is known.
fn sum_known(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().reduce(|a, b| a + b)
}

fn unix_seconds(t: &Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

/// The serde name of a unit enum variant (`Succeeded`, `Restic`, `True`).
fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("valid object")
    }

    /// The sample lines (no comments) of an exposition.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn has_line(text: &str, line: &str) -> bool {
        samples(text).contains(&line)
    }

    #[track_caller]
    fn assert_line(text: &str, line: &str) {
        assert!(has_line(text, line), "missing line\n  {line}\nin\n{text}");
    }

    /// Metric names of all sample lines.
    fn names(text: &str) -> Vec<&str> {
        samples(text)
            .iter()
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
            .collect()
    }

    fn bc() -> BackupConfiguration {
        from(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": "pg-backup", "namespace": "demo", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {
                "target": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg"},
                "backends": [{"name": "s3", "storageRef": {"name": "s3-storage"}}],
                "sessions": [{
                    "name": "frequent",
                    "scheduler": {"schedule": "*/5 * * * *", "jobTemplate": {"template": {}}},
                    "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup"}]},
                    "repositories": [{"name": "s3-repo", "backend": "s3", "directory": "/pg"}]
                }]
            },
            "status": {
                "phase": "Ready",
                "conditions": [
                    {"type": "ValidationPassed", "status": "True", "reason": "ResourceValidationPassed"},
                    {"type": "InitialBackupTriggered", "status": "False"}
                ]
            }
        }))
    }

    fn session(phase: &str, snapshot_phase: &str, duration: &str) -> BackupSession {
        from(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupSession",
            "metadata": {"name": "pg-backup-frequent-1714557600", "namespace": "demo",
                         "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration",
                                 "name": "pg-backup"},
                     "session": "frequent"},
            "status": {
                "phase": phase,
                "duration": duration,
                "totalSnapshots": 1,
                "snapshots": [{"name": "s3-repo-pg-backup-frequent-1714557600", "phase": snapshot_phase,
                               "repository": "s3-repo",
                               "appRef": {"apiGroup": "kubedb.com", "kind": "Postgres",
                                          "namespace": "demo", "name": "pg"}}],
                "conditions": [{"type": "BackupExecutorEnsured", "status": "True"},
                               {"type": "SnapshotsEnsured", "status": "True"}]
            }
        }))
    }

    fn snapshot(phase: &str, component_phase: &str) -> Snapshot {
        from(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Snapshot",
            "metadata": {"name": "s3-repo-pg-backup-frequent-1714557600", "namespace": "demo",
                         "creationTimestamp": "2024-05-01T10:00:01Z"},
            "spec": {"type": "FullBackup", "repository": "s3-repo", "session": "frequent",
                     "backupSession": "pg-backup-frequent-1714557600", "version": "v1",
                     "appRef": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg"}},
            "status": {
                "phase": phase,
                "snapshotTime": "2024-05-01T10:00:05Z",
                "lastUpdateTime": "2024-05-01T10:01:20Z",
                "size": "3 MiB",
                "integrity": true,
                "totalComponents": 1,
                "conditions": [{"type": "SnapshotMetadataUploaded", "status": "True"}],
                "components": {"dump": {
                    "path": "repository/v1/frequent/dump",
                    "phase": component_phase,
                    "size": "3 MiB",
                    "duration": "20s",
                    "driver": "Restic",
                    "error": if component_phase == "Failed" { "pg_dumpall exited with 1" } else { "" },
                    "resticStats": [{
                        "summary": {"id": "abc", "uploaded": "1.5 MiB", "size": "3 MiB", "hostPath": "dumpfile.sql",
                                    "startTime": "2024-05-01T10:00:05Z", "endTime": "2024-05-01T10:00:17.5Z"},
                        "progress": {"totalFiles": 12, "filesDone": 12}
                    }]
                }}
            }
        }))
    }

    fn repository() -> Repository {
        from(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Repository",
            "metadata": {"name": "s3-repo", "namespace": "demo", "creationTimestamp": "2024-04-30T00:00:00Z"},
            "spec": {"appRef": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg"},
                     "storageRef": {"namespace": "demo", "name": "s3-storage"}, "path": "/pg"},
            "status": {"phase": "Ready", "integrity": true, "snapshotCount": 3, "size": "10 MiB",
                       "lastBackupTime": "2024-05-01T10:01:30Z",
                       "conditions": [{"type": "RepositoryInitialized", "status": "True"}]}
        }))
    }

    const INVOKER: &str =
        r#"invoker_kind="BackupConfiguration",invoker_name="pg-backup",namespace="demo",driver="Restic""#;
    const TARGET: &str = r#"repository="s3-repo",kind="Postgres",group="kubedb.com",name="pg""#;

    #[test]
    fn metrics_succeeded_backup_session() {
        let text = backup_session_metrics(
            &bc(),
            &session("Succeeded", "Succeeded", "1m30s"),
            &[snapshot("Succeeded", "Succeeded")],
            &[repository()],
        );
        let s = "stash_appscode_com_backupsession";
        assert_line(&text, &format!("{s}_success{{{INVOKER}}} 1"));
        assert_line(&text, &format!("{s}_duration_seconds{{{INVOKER}}} 90"));
        assert_line(&text, &format!("{s}_target_count_total{{{INVOKER}}} 1"));
        // 2024-05-01T10:00:00Z + 90 s
        assert_line(
            &text,
            &format!("{s}_last_success_time_seconds{{{INVOKER}}} 1714557690"),
        );
        assert_line(&text, &format!("{s}_target_success{{{INVOKER},{TARGET}}} 1"));
        assert_line(
            &text,
            &format!("{s}_target_host_count_total{{{INVOKER},{TARGET}}} 1"),
        );
        assert_line(
            &text,
            &format!("{s}_target_last_success_time_seconds{{{INVOKER},{TARGET}}} 1714557680"),
        );
        let host = format!("{INVOKER},{TARGET},hostname=\"dump\"");
        assert_line(&text, &format!("{s}_host_backup_success{{{host}}} 1"));
        assert_line(&text, &format!("{s}_host_backup_duration_seconds{{{host}}} 20"));
        assert_line(&text, &format!("{s}_host_data_size_bytes{{{host}}} 3145728"));
        assert_line(&text, &format!("{s}_host_data_uploaded_bytes{{{host}}} 1572864"));
        assert_line(
            &text,
            &format!("{s}_host_data_processing_time_seconds{{{host}}} 12.5"),
        );
        assert_line(&text, &format!("{s}_host_files_total{{{host}}} 12"));
        let repo = r#"invoker_kind="BackupConfiguration",invoker_name="pg-backup",namespace="demo",driver="Restic",repository="s3-repo",name="s3-repo""#;
        assert_line(
            &text,
            &format!("stash_appscode_com_repository_integrity{{{repo}}} 1"),
        );
        assert_line(
            &text,
            &format!("stash_appscode_com_repository_size_bytes{{{repo}}} 10485760"),
        );
        assert_line(
            &text,
            &format!("stash_appscode_com_repository_snapshot_count{{{repo}}} 3"),
        );

        // Exactly the Stash names: no unit or `_total` suffix added by the encoder.
        let mut got: Vec<_> = names(&text);
        got.sort_unstable();
        got.dedup();
        let mut want: Vec<String> = [
            "success",
            "duration_seconds",
            "target_count_total",
            "last_success_time_seconds",
            "target_success",
            "target_host_count_total",
            "target_last_success_time_seconds",
            "host_backup_success",
            "host_backup_duration_seconds",
            "host_data_size_bytes",
            "host_data_uploaded_bytes",
            "host_data_processing_time_seconds",
            "host_files_total",
        ]
        .iter()
        .map(|m| format!("{s}_{m}"))
        .chain(
            ["integrity", "size_bytes", "snapshot_count"]
                .iter()
                .map(|m| format!("stash_appscode_com_repository_{m}")),
        )
        .collect();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(text.contains(&format!("# TYPE {s}_success gauge\n")));
        assert!(!text.contains("# UNIT"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn metrics_failed_backup_session() {
        let text = backup_session_metrics(
            &bc(),
            &session("Failed", "Failed", "45s"),
            &[snapshot("Failed", "Failed")],
            &[],
        );
        let s = "stash_appscode_com_backupsession";
        assert_line(&text, &format!("{s}_success{{{INVOKER}}} 0"));
        assert_line(&text, &format!("{s}_duration_seconds{{{INVOKER}}} 45"));
        assert_line(&text, &format!("{s}_target_success{{{INVOKER},{TARGET}}} 0"));
        assert_line(
            &text,
            &format!("{s}_host_backup_success{{{INVOKER},{TARGET},hostname=\"dump\"}} 0"),
        );
        assert!(!text.contains("last_success_time_seconds"), "{text}");
        assert!(!text.contains("target_host_count_total"), "{text}");
        assert!(!text.contains("stash_appscode_com_repository_"), "{text}");
    }

    #[test]
    fn metrics_session_outcome_before_final_phase() {
        // Metrics are pushed before the final phase is written: a Running session whose snapshots
        // all finished counts by its snapshots.
        let ok = backup_session_metrics(
            &bc(),
            &session("Running", "Running", "1m"),
            &[snapshot("Succeeded", "Succeeded")],
            &[],
        );
        assert_line(
            &ok,
            &format!("stash_appscode_com_backupsession_success{{{INVOKER}}} 1"),
        );
        let failed = backup_session_metrics(
            &bc(),
            &session("Running", "Running", "1m"),
            &[snapshot("Failed", "Failed")],
            &[],
        );
        assert_line(
            &failed,
            &format!("stash_appscode_com_backupsession_success{{{INVOKER}}} 0"),
        );
        let still_running = backup_session_metrics(&bc(), &session("Running", "Running", ""), &[], &[]);
        assert_line(
            &still_running,
            &format!("stash_appscode_com_backupsession_success{{{INVOKER}}} 0"),
        );
        assert!(!still_running.contains("duration_seconds"));
    }

    fn restore(phase: &str) -> RestoreSession {
        from(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "RestoreSession",
            "metadata": {"name": "pg-restore", "namespace": "demo", "creationTimestamp": "2024-05-02T08:00:00Z"},
            "spec": {
                "target": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg-new"},
                "dataSource": {"repository": "s3-repo", "snapshot": "latest"},
                "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup-restore"}]}
            },
            "status": {
                "phase": phase,
                "duration": "2m3.5s",
                "totalComponents": 2,
                "components": {
                    "dump": {"phase": "Succeeded", "duration": "1m"},
                    "wal": {"phase": "Failed", "duration": "3s", "error": "psql exited with 2"}
                },
                "conditions": [{"type": "RestoreExecutorEnsured", "status": "True"}]
            }
        }))
    }

    #[test]
    fn metrics_restore_session() {
        let text = restore_session_metrics(&restore("Failed"));
        let s = "stash_appscode_com_restoresession";
        let base = r#"invoker_kind="RestoreSession",invoker_name="pg-restore",namespace="demo",driver="Restic",repository="s3-repo""#;
        let target = format!(r#"{base},kind="Postgres",group="kubedb.com",name="pg-new""#);
        assert_line(&text, &format!("{s}_success{{{base}}} 0"));
        assert_line(&text, &format!("{s}_duration_seconds{{{base}}} 123.5"));
        assert_line(&text, &format!("{s}_target_count_total{{{base}}} 1"));
        assert_line(&text, &format!("{s}_target_success{{{target}}} 0"));
        assert_line(&text, &format!("{s}_target_host_count_total{{{target}}} 2"));
        assert_line(
            &text,
            &format!("{s}_host_restore_success{{{target},hostname=\"dump\"}} 1"),
        );
        assert_line(
            &text,
            &format!("{s}_host_restore_duration_seconds{{{target},hostname=\"dump\"}} 60"),
        );
        assert_line(
            &text,
            &format!("{s}_host_restore_success{{{target},hostname=\"wal\"}} 0"),
        );

        let ok = restore_session_metrics(&restore("Succeeded"));
        assert_line(&ok, &format!("{s}_success{{{base}}} 1"));
    }

    #[test]
    fn metrics_state_backup_configuration() {
        let text = state_metrics(&StateObjects {
            backup_configurations: vec![bc()],
            ..Default::default()
        });
        let p = "core_kubestash_com_backupconfiguration";
        let common = r#"backup_invoker_kind="BackupConfiguration",backup_invoker_name="pg-backup",namespace="demo",target_kind="Postgres",target_name="pg",target_namespace="demo""#;
        assert_line(&text, &format!("{p}_created{{{common}}} 1714557600"));
        assert_line(&text, &format!("{p}_info{{{common}}} 1"));
        assert_line(
            &text,
            &format!(
                r#"{p}_sessions{{{common},session_name="frequent",schedule="*/5 * * * *",addon_name="postgres-addon"}} 1"#
            ),
        );
        assert_line(&text, &format!(r#"{p}_phase{{{common},phase="Ready"}} 1"#));
        assert_line(&text, &format!(r#"{p}_phase{{{common},phase="NotReady"}} 0"#));
        assert_line(&text, &format!(r#"{p}_phase{{{common},phase="Invalid"}} 0"#));
        assert_line(
            &text,
            &format!(r#"{p}_conditions{{{common},condition="ValidationPassed",status="True"}} 1"#),
        );
        assert_line(
            &text,
            &format!(r#"{p}_conditions{{{common},condition="InitialBackupTriggered",status="False"}} 1"#),
        );
        assert_eq!(samples(&text).len(), 8, "{text}");
    }

    #[test]
    fn metrics_state_backup_session_phase_is_one_hot() {
        let text = state_metrics(&StateObjects {
            backup_sessions: vec![session("Succeeded", "Succeeded", "1m30s")],
            ..Default::default()
        });
        let p = "core_kubestash_com_backupsession";
        let common = r#"invoker_kind="BackupSession",invoker_name="pg-backup-frequent-1714557600",namespace="demo",backup_invoker_kind="BackupConfiguration",backup_invoker_name="pg-backup""#;
        assert_line(&text, &format!("{p}_duration_seconds{{{common}}} 90"));
        assert_line(
            &text,
            &format!(r#"{p}_info{{{common},session="frequent",phase="Succeeded"}} 1"#),
        );
        assert_line(
            &text,
            &format!(
                r#"{p}_snapshots{{{common},snapshot_name="s3-repo-pg-backup-frequent-1714557600",snapshot_phase="Succeeded",repository="s3-repo",backedup_app_kind="Postgres",backedup_app_name="pg",backedup_app_namespace="demo"}} 1"#
            ),
        );
        let phases: Vec<_> = samples(&text)
            .into_iter()
            .filter(|l| l.starts_with(&format!("{p}_phase{{")))
            .collect();
        assert_eq!(phases.len(), 5, "{text}");
        assert_eq!(phases.iter().filter(|l| l.ends_with(" 1")).count(), 1);
        assert_line(&text, &format!(r#"{p}_phase{{{common},phase="Succeeded"}} 1"#));
        assert_line(&text, &format!(r#"{p}_phase{{{common},phase="Skipped"}} 0"#));
        assert_line(
            &text,
            &format!(r#"{p}_conditions{{{common},condition="SnapshotsEnsured",status="True"}} 1"#),
        );
    }

    #[test]
    fn metrics_state_restore_storage_repository_snapshot() {
        let storage: BackupStorage = from(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "BackupStorage",
            "metadata": {"name": "s3-storage", "namespace": "demo", "creationTimestamp": "2024-04-29T00:00:00Z"},
            "spec": {"storage": {"provider": "s3", "s3": {"bucket": "b", "endpoint": "http://minio"}},
                     "default": true, "deletionPolicy": "WipeOut"},
            "status": {"phase": "Ready", "totalSize": "1.234 MiB",
                       "repositories": [{"name": "s3-repo", "namespace": "demo", "path": "/pg", "size": "1 KiB"}],
                       "conditions": [{"type": "BackendInitialized", "status": "True"}]}
        }));
        let text = state_metrics(&StateObjects {
            restore_sessions: vec![restore("Succeeded")],
            backup_storages: vec![storage],
            repositories: vec![repository()],
            snapshots: vec![snapshot("Succeeded", "Succeeded")],
            ..Default::default()
        });

        let rs = "core_kubestash_com_restoresession";
        let rc = r#"invoker_kind="RestoreSession",invoker_name="pg-restore",namespace="demo",target_kind="Postgres",target_name="pg-new",target_namespace="demo""#;
        assert_line(&text, &format!("{rs}_created{{{rc}}} 1714636800"));
        assert_line(
            &text,
            &format!(
                r#"{rs}_info{{{rc},datasource_namespace="",repository="s3-repo",snapshot="latest",addon_name="postgres-addon",phase="Succeeded"}} 1"#
            ),
        );
        assert_line(&text, &format!(r#"{rs}_phase{{{rc},phase="Succeeded"}} 1"#));
        assert_line(&text, &format!(r#"{rs}_phase{{{rc},phase="Unknown"}} 0"#));
        assert_line(&text, &format!("{rs}_duration_seconds{{{rc}}} 123.5"));
        assert_line(&text, &format!("{rs}_component_count_total{{{rc}}} 2"));

        let bs = "storage_kubestash_com_backupstorage";
        let bc = r#"invoker_kind="BackupStorage",invoker_name="s3-storage",namespace="demo""#;
        assert_line(
            &text,
            &format!(
                r#"{bs}_info{{{bc},provider="s3",default="true",deletionPolicy="WipeOut",phase="Ready"}} 1"#
            ),
        );
        assert_line(
            &text,
            &format!(
                r#"{bs}_repository_size_bytes{{{bc},repo_name="s3-repo",repo_namespace="demo",repo_path="/pg"}} 1024"#
            ),
        );
        // round(1.234 * 1048576)
        assert_line(&text, &format!("{bs}_size_bytes{{{bc}}} 1293943"));
        assert_line(&text, &format!(r#"{bs}_phase{{{bc},phase="NotReady"}} 0"#));
        assert_line(
            &text,
            &format!(r#"{bs}_conditions{{{bc},condition="BackendInitialized",status="True"}} 1"#),
        );

        let repo = "storage_kubestash_com_repository";
        let target = r#"target_kind="Postgres",target_name="pg",target_namespace="demo""#;
        let rc = format!(r#"invoker_kind="Repository",invoker_name="s3-repo",namespace="demo",{target}"#);
        assert_line(
            &text,
            &format!(r#"{repo}_info{{{rc},path="/pg",phase="Ready",integrity="true"}} 1"#),
        );
        assert_line(
            &text,
            &format!("{repo}_last_successful_backup{{{rc}}} 1714557690"),
        );
        assert_line(&text, &format!("{repo}_size_bytes{{{rc}}} 10485760"));
        assert_line(&text, &format!("{repo}_snapshot_count_total{{{rc}}} 3"));

        let snap = "storage_kubestash_com_snapshot";
        let sc = format!(
            r#"invoker_kind="Snapshot",invoker_name="s3-repo-pg-backup-frequent-1714557600",namespace="demo",{target}"#
        );
        assert_line(
            &text,
            &format!(
                r#"{snap}_info{{{sc},snapshot_type="FullBackup",repository="s3-repo",session="frequent",backupsession="pg-backup-frequent-1714557600",version="v1",phase="Succeeded",integrity="true"}} 1"#
            ),
        );
        assert_line(&text, &format!(r#"{snap}_phase{{{sc},phase="Succeeded"}} 1"#));
        assert_line(&text, &format!(r#"{snap}_phase{{{sc},phase="Pending"}} 0"#));
        assert_line(&text, &format!("{snap}_size_bytes{{{sc}}} 3145728"));
        assert_line(&text, &format!("{snap}_time_seconds{{{sc}}} 1714557605"));
        assert_line(&text, &format!("{snap}_component_count_total{{{sc}}} 1"));
        assert_line(&text, &format!("{snap}_created{{{sc}}} 1714557601"));

        // Only the spec's names, each family declared once.
        for name in names(&text) {
            assert!(
                name.starts_with("core_kubestash_com_") || name.starts_with("storage_kubestash_com_"),
                "{name}"
            );
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let mut distinct = names(&text);
        distinct.dedup();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(types, distinct.len());
    }

    #[test]
    fn metrics_state_empty_and_escaping() {
        assert_eq!(state_metrics(&StateObjects::default()), "# EOF\n");

        let mut odd = bc();
        odd.spec.sessions[0]
            .scheduler
            .as_mut()
            .expect("scheduler")
            .schedule = "a\"b\\c\nd".into();
        odd.status = None;
        odd.metadata.creation_timestamp = None;
        let text = state_metrics(&StateObjects {
            backup_configurations: vec![odd.clone(), odd],
            ..Default::default()
        });
        assert!(text.contains(r#"schedule="a\"b\\c\nd""#), "{text}");
        // No status: all phases 0, no conditions; no creation time: no `created`; duplicates dropped.
        assert!(!text.contains("_created"));
        assert!(!text.contains("_conditions"));
        assert_eq!(
            samples(&text)
                .iter()
                .filter(|l| l.contains("_phase{") && l.ends_with(" 0"))
                .count(),
            3
        );
        assert_eq!(
            samples(&text).iter().filter(|l| l.contains("_sessions{")).count(),
            1
        );
    }

    #[test]
    fn metrics_push_url_escaping() {
        let url = push_url(
            "http://gw:9091/",
            "kstash-backup",
            &[
                ("namespace", "demo"),
                ("repository_path", "a/b"),
                ("empty", ""),
                ("odd", "x y%"),
            ],
        )
        .expect("valid grouping");
        assert_eq!(
            url,
            "http://gw:9091/metrics/job/kstash-backup/namespace/demo/repository_path@base64/YS9i/empty@base64/=/odd/x%20y%25"
        );
        assert_eq!(
            push_url("http://gw", "a/job", &[]).expect("valid"),
            "http://gw/metrics/job@base64/YS9qb2I"
        );
        assert_eq!(base64_url(b"ab"), "YWI");
        assert_eq!(base64_url(b"abc"), "YWJj");
        for bad in [
            push_url("http://gw", "", &[]),
            push_url("http://gw", "j", &[("1abc", "x")]),
            push_url("http://gw", "j", &[("job", "x")]),
            push_url("http://gw", "j", &[("a", "x"), ("a", "y")]),
        ] {
            let err = bad.expect_err("invalid grouping");
            assert!(err.to_string().contains("http://gw"), "{err}");
        }
    }
}
