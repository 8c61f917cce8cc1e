//! `core.kubestash.com/v1alpha1`: BackupConfiguration, BackupSession, RestoreSession, HookTemplate
//! and BackupBlueprint.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AddonInfo, Condition, HookInfo, HookStatus, ObjectReference, ParameterDefinition, PodTemplateSpec,
    ResourceFoundStatus, RetryConfig, Timestamp, TypedLocalObjectReference, TypedObjectReference,
    UsagePolicy, go_duration_schema, int_or_string_schema, is_zero_i32, time_schema,
};
use crate::storage::{BackupStoragePhase, RepositoryPhase, SnapshotPhase};

/// A backend of a BackupConfiguration: a storage plus the retention policy applied to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendReference {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_ref: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<ObjectReference>,
}

/// What to do with a repository's data when the BackupConfiguration is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupConfigDeletionPolicy {
    Delete,
    WipeOut,
    Retain,
}

/// A repository a session writes to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_verifier: Option<ObjectReference>,
    #[serde(default)]
    pub directory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<BackupConfigDeletionPolicy>,
}

/// CronJob concurrency policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    Allow,
    Forbid,
    Replace,
}

/// Job completion mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CompletionMode {
    NonIndexed,
    Indexed,
}

/// Template of the trigger job (mirrors batch/v1 JobSpec).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<CompletionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// When a session runs (mirrors batch/v1 CronJobSpec).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerSpec {
    /// Five-field cron, optionally prefixed by `CRON_TZ=<zone> ` or `TZ=<zone> `, or `@hourly`-style.
    #[serde(default)]
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    #[serde(default)]
    pub job_template: JobTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
}

/// Hooks around a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_backup: Vec<HookInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_backup: Vec<HookInfo>,
}

/// One backup session of a BackupConfiguration: schedule, hooks, addon and repositories.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_duration_schema")]
    pub backup_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryInfo>,
}

/// What to back up, where, and when.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupConfiguration",
    plural = "backupconfigurations",
    shortname = "bc",
    namespaced,
    status = "BackupConfigurationStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Phase of a BackupConfiguration.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupInvokerPhase {
    NotReady,
    Ready,
    Invalid,
}

/// Readiness of a backend's storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    #[serde(default)]
    pub r#ref: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupStoragePhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Whether a backend's retention policy was found.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    #[serde(default)]
    pub r#ref: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Readiness of one backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicyStatus>,
}

/// Readiness of one repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RepositoryPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verification_configured: bool,
}

/// Schedule state of one session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_schedule: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Observed state of a BackupConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepoStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<ResourceFoundStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupInvokerPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_found: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One run of a backup session.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupSession",
    plural = "backupsessions",
    namespaced,
    status = "BackupSessionStatus",
    printcolumn = r#"{"name":"Invoker-Type","type":"string","jsonPath":".spec.invoker.kind"}"#,
    printcolumn = r#"{"name":"Invoker-Name","type":"string","jsonPath":".spec.invoker.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoker: Option<TypedLocalObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retry_left: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_duration_schema")]
    pub backup_timeout: Option<String>,
}

/// Phase of a BackupSession.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupSessionPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// A snapshot taken by a session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSnapshotStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
}

/// Phase of applying a retention policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicyApplyPhase {
    Pending,
    Applied,
    FailedToApply,
}

/// Result of applying a retention policy to one repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyApplyStatus {
    #[serde(default)]
    pub r#ref: ObjectReference,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RetentionPolicyApplyPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Observed state of a BackupSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupSessionPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub backup_deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_snapshots: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SessionSnapshotStatus>,
    #[serde(default)]
    pub hooks: HookStatus,
    #[serde(default, rename = "retentionPolicy", skip_serializing_if = "Vec::is_empty")]
    pub retention_policies: Vec<RetentionPolicyApplyStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub next_retry: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Point-in-time recovery target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pitr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub target_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
}

/// Which snapshot to restore from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDataSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<Pitr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
}

/// Hooks around a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_restore: Vec<HookInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_restore: Vec<HookInfo>,
}

/// Options for restoring workload manifests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadManifestOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restore_namespace: String,
}

/// Options for restoring a KubeDB database's manifests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeDbManifestOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restore_namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub db_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiver: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiver_ref: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_script: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_issuer_ref: Option<TypedLocalObjectReference>,
}

/// Options for restoring manifests, per kind of application.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRestoreOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadManifestOptions>,
    #[serde(default, rename = "mongoDB", skip_serializing_if = "Option::is_none")]
    pub mongo_db: Option<KubeDbManifestOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<KubeDbManifestOptions>,
    #[serde(default, rename = "mySQL", skip_serializing_if = "Option::is_none")]
    pub my_sql: Option<KubeDbManifestOptions>,
    #[serde(default, rename = "clickhouse", skip_serializing_if = "Option::is_none")]
    pub click_house: Option<KubeDbManifestOptions>,
    #[serde(default, rename = "mariaDB", skip_serializing_if = "Option::is_none")]
    pub maria_db: Option<KubeDbManifestOptions>,
    #[serde(default, rename = "zooKeeper", skip_serializing_if = "Option::is_none")]
    pub zoo_keeper: Option<KubeDbManifestOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singlestore: Option<KubeDbManifestOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<KubeDbManifestOptions>,
    /// MSSQLServer, Druid and RedisSentinel options, kept as written.
    #[serde(default, rename = "msSQLServer", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub ms_sql_server: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub druid: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub redis_sentinel: Option<serde_json::Value>,
}

/// Restore of a snapshot into a target.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "RestoreSession",
    plural = "restoresessions",
    shortname = "restore",
    namespaced,
    status = "RestoreSessionStatus",
    printcolumn = r#"{"name":"Repository","type":"string","jsonPath":".spec.dataSource.repository"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<RestoreDataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_duration_schema")]
    pub restore_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_options: Option<ManifestRestoreOptions>,
}

/// Phase of a RestoreSession (and of each restored component).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    Pending,
    Running,
    Failed,
    Succeeded,
    Invalid,
    Unknown,
}

/// Progress of a running restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    #[serde(default, skip_serializing_if = "crate::common::is_zero_i64")]
    pub seconds_elapsed: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub percent_done: String,
    #[serde(default, skip_serializing_if = "crate::common::is_zero_i64")]
    pub total_files: i64,
    #[serde(default, skip_serializing_if = "crate::common::is_zero_i64")]
    pub files_done: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restore_done: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub total: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub speed: String,
}

/// Restore state of one component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RestoreProgress>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Observed state of a RestoreSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_found: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub restore_deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub total_components: i32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentRestoreStatus>,
    #[serde(default)]
    pub hooks: HookStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<ResourceFoundStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused_backups: Vec<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// An HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// Exec action: run a command.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ExecAction {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// HTTP GET action.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default)]
    #[schemars(schema_with = "int_or_string_schema")]
    pub port: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// A form field of an HTTP POST action.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct FormEntry {
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// HTTP POST action (body is a Go-style template over the session summary).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpPostAction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default)]
    #[schemars(schema_with = "int_or_string_schema")]
    pub port: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub form: Vec<FormEntry>,
}

/// TCP socket action: succeed when the port accepts a connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TcpSocketAction {
    #[serde(default)]
    #[schemars(schema_with = "int_or_string_schema")]
    pub port: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// What a hook does (kmodules prober `Handler`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_post: Option<HttpPostAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
}

/// Where a hook runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HookExecutorType {
    Function,
    Pod,
    Operator,
}

/// A Function-based hook executor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionHookExecutorSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "env", skip_serializing_if = "Vec::is_empty")]
    pub env_variables: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// On which pods a Pod hook runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PodHookExecutionStrategy {
    ExecuteOnOne,
    ExecuteOnAll,
}

/// A Pod-based hook executor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodHookExecutorSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<PodHookExecutionStrategy>,
}

/// Where and how a hook executes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookExecutor {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<HookExecutorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionHookExecutorSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodHookExecutorSpec>,
}

/// A reusable hook.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "HookTemplate",
    plural = "hooktemplates",
    namespaced,
    printcolumn = r#"{"name":"Executor","type":"string","jsonPath":".spec.executor.type"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HookTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParameterDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<HookAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<HookExecutor>,
}

/// Deletion policy of BackupConfigurations generated from a blueprint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BlueprintDeletionPolicy {
    OnDelete,
}

/// The BackupConfiguration a blueprint generates for each annotated target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationTemplate {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<BlueprintDeletionPolicy>,
}

/// `apiVersion` + `kind` of a subject a blueprint watches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// A template for automatic backups of annotated targets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupBlueprint",
    plural = "backupblueprints",
    namespaced,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupBlueprintSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_configuration_template: Option<BackupConfigurationTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<TypeMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
}
