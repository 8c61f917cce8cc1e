//! The Stash v1 kinds (`stash.appscode.com`), field for field with stashed/apimachinery
//! (2026-02): Repository (v1alpha1); BackupConfiguration, BackupSession, RestoreSession,
//! BackupBlueprint, BackupBatch, RestoreBatch, Task and Function (v1beta1).
//!
//! Shared sub-types KubeStash kept unchanged (runtime settings, retry, hook handlers, usage
//! policy, the local volume backend) are the KubeStash ones. Pod-level structures kstash does not
//! act on (`interimVolumeTemplate`, `volumeClaimTemplates`, a Task's volumes, a Function's ports)
//! are kept as raw JSON so nothing a user wrote is lost.

use k8s_openapi::api::core::v1::VolumeMount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{Condition, ObjectReference, RetryConfig, RuntimeSettings, Timestamp, UsagePolicy};
use crate::core::HookAction;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

// ---------------------------------------------------------------------------------------------
// Shared field types
// ---------------------------------------------------------------------------------------------

/// `spec.backend` of a Repository or BackupBlueprint: the storage Secret and exactly one provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// The Secret holding `RESTIC_PASSWORD` and the provider's credentials.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swift: Option<SwiftSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b2: Option<B2Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestSpec>,
}

impl Backend {
    /// The providers that are set, by their field name.
    pub fn providers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.local.is_some() {
            out.push("local");
        }
        if self.s3.is_some() {
            out.push("s3");
        }
        if self.gcs.is_some() {
            out.push("gcs");
        }
        if self.azure.is_some() {
            out.push("azure");
        }
        if self.swift.is_some() {
            out.push("swift");
        }
        if self.b2.is_some() {
            out.push("b2");
        }
        if self.rest.is_some() {
            out.push("rest");
        }
        out
    }
}

/// A volume mounted into the job (`mountPath`, `subPath`) of any core/v1 volume source, kept as
/// written (`hostPath`, `nfs`, `persistentVolumeClaim`, `azureDisk`, …).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalSpec {
    #[serde(default)]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
    #[serde(flatten)]
    pub volume: serde_json::Map<String, Value>,
}

/// An S3 bucket (`s3:<endpoint>/<bucket>/<prefix>` for restic).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, rename = "insecureTLS", skip_serializing_if = "is_false")]
    pub insecure_tls: bool,
}

/// A GCS bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    #[serde(default)]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections: i64,
}

/// An Azure Blob container (the account comes from the Secret's `AZURE_ACCOUNT_NAME`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    #[serde(default)]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections: i64,
}

/// An OpenStack Swift container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SwiftSpec {
    #[serde(default)]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// A Backblaze B2 bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct B2Spec {
    #[serde(default)]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections: i64,
}

/// A restic REST server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestSpec {
    #[serde(default)]
    pub url: String,
}

/// The inline retention policy of a BackupConfiguration, BackupBatch or BackupBlueprint: restic
/// `forget` flags over the whole restic repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_last: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_hourly: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_daily: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_weekly: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_monthly: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_yearly: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
    /// A required key in Stash's CRD (no `omitempty`).
    #[serde(default)]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

/// A named parameter of a task or step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `task`: which Task runs, with parameters. Empty for workloads backed up by a sidecar and for
/// KubeDB AppBindings (the AppBinding's `parameters.stash.addon` names the Task).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// What a target points at.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The target of a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// The host identifier written into the restic snapshots instead of `host-<n>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    #[serde(default, rename = "ref")]
    pub reference: TargetRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot_class_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// Which data a restore host takes: snapshots by id (or `latest`), or paths of the newest
/// snapshot of `sourceHost`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_host: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

/// The target of a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTarget {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    #[serde(default, rename = "ref")]
    pub reference: TargetRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Offshoot PersistentVolumeClaims (names may end in `-${POD_ORDINAL}`), kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// A post-action hook: a handler and when it runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostHook {
    #[serde(flatten)]
    pub handler: HookAction,
    /// `Always` (default), `OnSuccess`, `OnFailure`, `OnFinalRetryFailure` (backup only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execution_policy: String,
}

/// Hooks around a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_backup: Option<HookAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_backup: Option<PostHook>,
}

/// Hooks around a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_restore: Option<HookAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_restore: Option<PostHook>,
}

/// `tempDir`: the scratch emptyDir at `/stash-tmp` (restic's cache lives there).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TempDir {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub medium: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_caching: bool,
}

/// Who started a BackupSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Invoker {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// The per-target part of a BackupConfiguration, BackupBatch member or BackupBlueprint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<TempDir>,
    /// An offshoot PersistentVolumeClaim template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
}

/// The per-target part of a RestoreSession or RestoreBatch member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTargetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RestoreTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<TempDir>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
}

// ---------------------------------------------------------------------------------------------
// Repository (v1alpha1)
// ---------------------------------------------------------------------------------------------

/// A Stash Repository: one restic repository at the backend's root, its storage Secret holding
/// both the credentials and `RESTIC_PASSWORD`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RepositorySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RepositoryStatus>,
}

/// What a Repository describes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    #[serde(default)]
    pub backend: Backend,
    #[serde(default, skip_serializing_if = "is_false")]
    pub wipe_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
}

/// What Stash observed of a Repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_backup_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub total_size: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshot_count: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub snapshots_removed_on_last_cleanup: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Value>,
}

// ---------------------------------------------------------------------------------------------
// BackupConfiguration, BackupSession
// ---------------------------------------------------------------------------------------------

/// A Stash BackupConfiguration: one target backed up on a schedule into one Repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfiguration {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BackupConfigurationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConfigurationStatus>,
}

/// What a BackupConfiguration describes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationSpec {
    #[serde(flatten)]
    pub template: BackupConfigurationTemplateSpec,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    /// `Restic` (default) or `VolumeSnapshotter`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default)]
    pub repository: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_history_limit: Option<i32>,
    #[serde(default, rename = "timeOut", skip_serializing_if = "String::is_empty")]
    pub time_out: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
}

/// The status of a BackupConfiguration or BackupBatch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_conditions: Vec<Value>,
    /// `Invalid`, `Ready` or `NotReady`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
}

/// One run of a BackupConfiguration or BackupBatch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSession {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BackupSessionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BackupSessionStatus>,
}

/// Who a BackupSession runs for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionSpec {
    #[serde(default)]
    pub invoker: Invoker,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_left: Option<i32>,
}

/// What happened in a BackupSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionStatus {
    /// `Pending`, `Skipped`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per target: hosts, phase, actions, conditions and per-host stats, as Stash writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Value>,
}

// ---------------------------------------------------------------------------------------------
// RestoreSession
// ---------------------------------------------------------------------------------------------

/// A one-shot restore from a Stash Repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSession {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RestoreSessionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RestoreSessionStatus>,
}

/// What a RestoreSession restores, from where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionSpec {
    #[serde(flatten)]
    pub target_spec: RestoreTargetSpec,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default)]
    pub repository: ObjectReference,
    /// Deprecated: moved into `target.rules` (Stash's `Migrate()` does the same).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, rename = "timeOut", skip_serializing_if = "String::is_empty")]
    pub time_out: String,
}

impl RestoreSessionSpec {
    /// The rules in effect: `target.rules`, or the deprecated top-level `rules`.
    pub fn effective_rules(&self) -> &[Rule] {
        match self.target_spec.target.as_ref() {
            Some(t) if !t.rules.is_empty() => &t.rules,
            _ => &self.rules,
        }
    }
}

/// What happened in a RestoreSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown` or `Invalid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hosts: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<HostRestoreStats>,
}

/// The outcome of one restore host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostRestoreStats {
    #[serde(default)]
    pub hostname: String,
    /// `Succeeded`, `Failed`, `Running` or `Unknown`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

// ---------------------------------------------------------------------------------------------
// BackupBlueprint, BackupBatch, RestoreBatch
// ---------------------------------------------------------------------------------------------

/// A cluster-scoped template: a Repository and a BackupConfiguration for every target that opts
/// in with the `stash.appscode.com/backup-blueprint` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupBlueprint {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BackupBlueprintSpec,
}

/// What a BackupBlueprint creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupBlueprintSpec {
    #[serde(flatten)]
    pub repository: RepositorySpec,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repo_namespace: String,
    #[serde(flatten)]
    pub template: BackupConfigurationTemplateSpec,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_history_limit: Option<i32>,
    #[serde(default, rename = "timeOut", skip_serializing_if = "String::is_empty")]
    pub time_out: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
}

/// Several targets backed up together into one Repository (members separated by alias).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupBatch {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BackupBatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConfigurationStatus>,
}

/// What a BackupBatch backs up.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupBatchSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<BackupConfigurationTemplateSpec>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default)]
    pub repository: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    /// `Parallel` (default) or `Sequential`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execution_order: String,
    #[serde(default, rename = "timeOut", skip_serializing_if = "String::is_empty")]
    pub time_out: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
}

/// Several targets restored together from one Repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBatch {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RestoreBatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// What a RestoreBatch restores.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBatchSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<RestoreTargetSpec>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default)]
    pub repository: ObjectReference,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execution_order: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
    #[serde(default, rename = "timeOut", skip_serializing_if = "String::is_empty")]
    pub time_out: String,
}

// ---------------------------------------------------------------------------------------------
// Task, Function
// ---------------------------------------------------------------------------------------------

/// A cluster-scoped pipeline of Functions (`postgres-backup-16.1`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TaskSpec,
}

/// A Task's steps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<TaskStep>,
    /// core/v1 Volumes, kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Value>,
}

/// One step of a Task: a Function with parameters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskStep {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// A cluster-scoped container description a Task step runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: FunctionSpec,
}

/// The container of a Function.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_devices: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_security_policy_name: String,
}
