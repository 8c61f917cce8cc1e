//! `storage.kubestash.com/v1alpha1`: BackupStorage, Repository, RetentionPolicy, Snapshot, and the
//! `BackendMeta` file written at the root of every initialised storage.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, Driver, InlineVolumeSource, ObjectReference, RuntimeSettings, Timestamp, TypedObjectReference,
    UsagePolicy, is_zero_i64, time_schema,
};

/// What happens to stored data when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    WipeOut,
}

/// Storage provider of a BackupStorage. `local`, `s3`, `gcs` and `azure` are KubeStash's;
/// `b2`, `swift` and `rest` are the Stash-era backends kstash also accepts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageProvider {
    Local,
    S3,
    Gcs,
    Azure,
    B2,
    Swift,
    Rest,
}

impl StorageProvider {
    /// The field of `spec.storage` that holds this provider's settings.
    pub fn field(self) -> &'static str {
        match self {
            StorageProvider::Local => "local",
            StorageProvider::S3 => "s3",
            StorageProvider::Gcs => "gcs",
            StorageProvider::Azure => "azure",
            StorageProvider::B2 => "b2",
            StorageProvider::Swift => "swift",
            StorageProvider::Rest => "rest",
        }
    }
}

/// A directory (host path, NFS, PVC…) used as storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSpec {
    #[serde(flatten)]
    pub volume: InlineVolumeSource,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    #[serde(default)]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
}

/// An S3 or S3-compatible bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    #[serde(default, rename = "insecureTLS", skip_serializing_if = "std::ops::Not::not")]
    pub insecure_tls: bool,
}

/// A Google Cloud Storage bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    #[serde(default)]
    pub bucket: String,
    /// kstash extension: a custom JSON API endpoint (an emulator such as fake-gcs-server);
    /// empty means Google's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
}

/// An Azure Blob container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    #[serde(default)]
    pub storage_account: String,
    #[serde(default)]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// kstash extension: a custom blob endpoint (`http://127.0.0.1:10000/devstoreaccount1` for
    /// Azurite); empty means `https://<storageAccount>.blob.core.windows.net`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
}

/// An OpenStack Swift container (Stash-era backend).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwiftSpec {
    #[serde(default)]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
}

/// A Backblaze B2 bucket (Stash-era backend).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct B2Spec {
    #[serde(default)]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
}

/// A restic REST server (Stash-era backend).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestServerSpec {
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
}

/// Where backed-up data is stored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<StorageProvider>,
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
    pub rest: Option<RestServerSpec>,
}

impl Backend {
    /// The secret holding the credentials of the configured provider, if any.
    pub fn secret_name(&self) -> Option<&str> {
        let name = match self.provider? {
            StorageProvider::Local => return None,
            StorageProvider::S3 => &self.s3.as_ref()?.secret_name,
            StorageProvider::Gcs => &self.gcs.as_ref()?.secret_name,
            StorageProvider::Azure => &self.azure.as_ref()?.secret_name,
            StorageProvider::B2 => &self.b2.as_ref()?.secret_name,
            StorageProvider::Swift => &self.swift.as_ref()?.secret_name,
            StorageProvider::Rest => &self.rest.as_ref()?.secret_name,
        };
        (!name.is_empty()).then_some(name.as_str())
    }

    /// The identity of the location this backend writes to (provider + bucket/container + prefix),
    /// used to reject two BackupStorages that point at the same place.
    pub fn location_key(&self) -> Option<String> {
        Some(match self.provider? {
            StorageProvider::Local => {
                let l = self.local.as_ref()?;
                let src = serde_json::to_string(&l.volume).unwrap_or_default();
                format!("local|{src}|{}", l.sub_path.trim_matches('/'))
            }
            StorageProvider::S3 => {
                let s = self.s3.as_ref()?;
                format!(
                    "s3|{}|{}|{}|{}",
                    s.endpoint,
                    s.bucket,
                    s.region,
                    s.prefix.trim_matches('/')
                )
            }
            StorageProvider::Gcs => {
                let s = self.gcs.as_ref()?;
                format!("gcs|{}|{}", s.bucket, s.prefix.trim_matches('/'))
            }
            StorageProvider::Azure => {
                let s = self.azure.as_ref()?;
                format!(
                    "azure|{}|{}|{}",
                    s.storage_account,
                    s.container,
                    s.prefix.trim_matches('/')
                )
            }
            StorageProvider::B2 => {
                let s = self.b2.as_ref()?;
                format!("b2|{}|{}", s.bucket, s.prefix.trim_matches('/'))
            }
            StorageProvider::Swift => {
                let s = self.swift.as_ref()?;
                format!("swift|{}|{}", s.container, s.prefix.trim_matches('/'))
            }
            StorageProvider::Rest => format!("rest|{}", self.rest.as_ref()?.url.trim_end_matches('/')),
        })
    }
}

/// A place to store backups, with who may use it and what happens on deletion.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "storage.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupStorage",
    plural = "backupstorages",
    namespaced,
    status = "BackupStorageStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.storage.provider"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Deletion-Policy","type":"string","jsonPath":".spec.deletionPolicy"}"#,
    printcolumn = r#"{"name":"Total-Size","type":"string","jsonPath":".status.totalSize"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageSpec {
    #[serde(default)]
    pub storage: Backend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
}

/// Phase of a BackupStorage.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupStoragePhase {
    Ready,
    NotReady,
}

/// A repository that lives in a storage (status of BackupStorage, and the `BackendMeta` file).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Observed state of a BackupStorage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupStoragePhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub total_size: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A path inside a BackupStorage that holds the backups of one application.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "storage.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "Repository",
    plural = "repositories",
    shortname = "repo",
    namespaced,
    status = "RepositoryStatus",
    printcolumn = r#"{"name":"Integrity","type":"boolean","jsonPath":".status.integrity"}"#,
    printcolumn = r#"{"name":"Snapshot-Count","type":"integer","jsonPath":".status.snapshotCount"}"#,
    printcolumn = r#"{"name":"Size","type":"string","jsonPath":".status.size"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Last-Successful-Backup","type":"date","format":"date-time","jsonPath":".status.lastBackupTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    #[serde(default)]
    pub app_ref: TypedObjectReference,
    #[serde(default)]
    pub storage_ref: ObjectReference,
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Phase of a Repository.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RepositoryPhase {
    NotReady,
    Ready,
}

/// A recent snapshot of a repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub snapshot_time: Option<Timestamp>,
}

/// Observed state of a Repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RepositoryPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub last_backup_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_count: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_snapshots: Vec<SnapshotInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component_paths: Vec<String>,
}

/// How many successful snapshots to keep, by bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessfulSnapshotsKeepPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<i32>,
}

/// How many failed snapshots to keep.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedSnapshotsKeepPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<i32>,
}

/// Which snapshots to keep.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "storage.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "RetentionPolicy",
    plural = "retentionpolicies",
    namespaced,
    printcolumn = r#"{"name":"Max-Retention-Period","type":"string","jsonPath":".spec.maxRetentionPeriod"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// Duration grammar `<int><unit>…`, units `y`, `mo`, `w`, `d`, `h`, `m` (e.g. `30d12h`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_retention_period: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_snapshots: Option<SuccessfulSnapshotsKeepPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_snapshots: Option<FailedSnapshotsKeepPolicy>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

/// Full or incremental backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupType {
    FullBackup,
    IncrementalBackup,
}

/// Phase of a Snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SnapshotPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// Verification state of a Snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VerificationStatus {
    Verified,
    NotVerified,
    VerificationFailed,
}

/// Phase of one component of a Snapshot.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ComponentPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// Summary of one restic backup run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResticSummary {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uploaded: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub end_time: Option<Timestamp>,
}

/// Progress of a running backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupProgress {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub seconds_elapsed: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub percent_done: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub total_files: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub files_done: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_done: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub total: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub speed: String,
}

/// Statistics of one restic run within a component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResticStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ResticSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<BackupProgress>,
}

/// Statistics of a volume snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotterStats {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pvc_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_snapshot_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub volume_snapshot_time: Option<Timestamp>,
}

/// One backed-up component of a Snapshot (a restic repository of its own).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ComponentPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restic_stats: Vec<ResticStats>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_snapshotter_stats: Vec<VolumeSnapshotterStats>,
    /// Driver-specific statistics kstash does not produce (WAL-G, Medusa, Solr, ClickHouse, Neo4j, logs),
    /// kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub wal_g_stats: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub log_stats: Option<serde_json::Value>,
}

impl Component {
    /// The restic snapshots the component recorded (`resticStats[].summary.id`, empty ids left out).
    pub fn restic_snapshot_ids(&self) -> Vec<String> {
        self.restic_stats
            .iter()
            .filter_map(|s| s.summary.as_ref())
            .map(|s| s.id.clone())
            .filter(|id| !id.is_empty())
            .collect()
    }
}

/// One backup of an application in a repository.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "storage.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "Snapshot",
    plural = "snapshots",
    namespaced,
    status = "SnapshotStatus",
    printcolumn = r#"{"name":"Repository","type":"string","jsonPath":".spec.repository"}"#,
    printcolumn = r#"{"name":"Session","type":"string","jsonPath":".spec.session"}"#,
    printcolumn = r#"{"name":"Snapshot-Time","type":"string","jsonPath":".status.snapshotTime"}"#,
    printcolumn = r#"{"name":"Deletion-Policy","type":"string","jsonPath":".spec.deletionPolicy"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    #[serde(default, rename = "snapshotID", skip_serializing_if = "String::is_empty")]
    pub snapshot_id: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<BackupType>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_session: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub app_ref: TypedObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Observed state of a Snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<VerificationStatus>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verification_session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub snapshot_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub last_update_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "crate::common::is_zero_i32")]
    pub total_components: i32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, Component>,
}

/// The `metadata.yaml` object at the root of an initialised storage (`config.kubestash.com/v1alpha1`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendMeta {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_schema")]
    pub creation_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryInfo>,
}
