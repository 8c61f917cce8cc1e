//! `core.kubestash.com/v1alpha1` backup verification: BackupVerifier (how and when a repository's
//! backups are proven restorable) and BackupVerificationSession (one such proof), with their
//! condition names and KubeStash's phase rule.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AddonInfo, Condition, RetryConfig, RuntimeSettings, TypedLocalObjectReference, TypedObjectReference,
    is_zero_i32,
};
use crate::core::SchedulerSpec;

/// Where and how a verification restores: the scratch target and the addon that restores into it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TypedObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon_info: Option<AddonInfo>,
}

/// How a restored backup is judged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum VerificationType {
    /// The restore succeeding is the proof.
    #[default]
    RestoreOnly,
    /// Queries against the restored target must match (`spec.query`).
    Query,
    /// A script run against the restored target must exit 0 (`spec.script`).
    Script,
}

/// The script of a `Script` verifier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptVerifierSpec {
    /// Absolute path of the script (a mounted ConfigMap on Kubernetes, a host file embedded).
    #[serde(default)]
    pub location: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// How and when the backups of a repository are verified. Linked from
/// `BackupConfiguration.spec.sessions[].repositories[].backupVerifier`. Has no status.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupVerifier",
    plural = "backupverifier",
    singular = "backupverifier",
    shortname = "backupverifiers",
    namespaced,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerifierSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_option: Option<RestoreOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSpec>,
    /// KubeStash's first verifier API (2023) had a bare cron string here; read as
    /// `scheduler.schedule` when `scheduler` is absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule: String,
    /// The Function of the verifier Job on Kubernetes (KubeDB ships `kubedbverifier`); kstash's
    /// own verifier runs when it is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<VerificationType>,
    /// Per-database queries (a RawExtension in KubeStash), read by [`crate::query`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_nullable")]
    pub query: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptVerifierSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Verification sessions (and their restores) kept per repository; defaulted to 1.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub session_history_limit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
}

impl BackupVerifierSpec {
    /// The verification type (`RestoreOnly` when unset).
    pub fn verification_type(&self) -> VerificationType {
        self.type_.unwrap_or_default()
    }

    /// The cron schedule: `scheduler.schedule`, or the legacy `schedule` string.
    pub fn cron(&self) -> Option<&str> {
        match &self.scheduler {
            Some(s) if !s.schedule.trim().is_empty() => Some(s.schedule.as_str()),
            _ if !self.schedule.trim().is_empty() => Some(self.schedule.as_str()),
            _ => None,
        }
    }

    /// The restore target, when set.
    pub fn target(&self) -> Option<&TypedObjectReference> {
        self.restore_option.as_ref().and_then(|r| r.target.as_ref())
    }
}

/// Whether reference `a` (of an object in `a_ns`) and `b` (in `b_ns`) name the same target: same
/// kind (group ignored when either leaves it out), same name, same namespace after defaulting.
pub fn same_target(a: &TypedObjectReference, a_ns: &str, b: &TypedObjectReference, b_ns: &str) -> bool {
    let group_matches = match (&a.api_group, &b.api_group) {
        (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => x == y,
        _ => true,
    };
    group_matches
        && a.kind.as_deref().unwrap_or("") == b.kind.as_deref().unwrap_or("")
        && a.name == b.name
        && a.namespace.as_deref().unwrap_or(a_ns) == b.namespace.as_deref().unwrap_or(b_ns)
}

/// `Kind namespace/name` of a target reference made in namespace `ns`.
pub fn describe_target(t: &TypedObjectReference, ns: &str) -> String {
    format!(
        "{} {}/{}",
        t.kind.as_deref().unwrap_or("target"),
        t.namespace.as_deref().unwrap_or(ns),
        t.name
    )
}

/// The addons whose restores put files on disk (a volume verifier restores into a directory).
pub fn is_volume_addon(addon: &str) -> bool {
    matches!(addon, "workload-addon" | "pvc-addon")
}

/// Why a volume verifier's restore would land on the backed-up paths themselves: its restore
/// task must name a scratch `target` directory other than `/` (the volume restore's default,
/// which puts files back where they were backed up from).
pub fn unsafe_volume_restore(addon: &AddonInfo) -> Option<String> {
    if !is_volume_addon(&addon.name) {
        return None;
    }
    match scratch_directory(addon) {
        None => Some(
            "the restore task has no `target` param, so it would restore over the backed-up directories"
                .into(),
        ),
        Some(dir) if dir.trim_end_matches('/').is_empty() => Some(format!(
            "the restore task's `target` param is {dir:?}, so it would restore over the backed-up directories"
        )),
        Some(_) => None,
    }
}

/// The directory a volume verifier restores into: the `target` param of the first task of
/// `restoreOption.addonInfo` (the volume restore task's destination). `None` when unset.
pub fn scratch_directory(addon: &AddonInfo) -> Option<String> {
    let params = addon.tasks.first()?.params.as_ref()?;
    match params.get("target")? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A name-only reference (core/v1 `LocalObjectReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    #[serde(default)]
    pub name: String,
}

/// One verification of one repository's snapshot.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BackupVerificationSession",
    plural = "backupverificationsession",
    singular = "backupverificationsession",
    shortname = "backupverificationsessions",
    shortname = "bvs",
    namespaced,
    status = "BackupVerificationSessionStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerificationSessionSpec {
    /// The BackupConfiguration whose repository is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoker: Option<TypedLocalObjectReference>,
    /// KubeStash's first session API (2023) named the verifier instead of the invoker; kept so
    /// such objects still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_verifier: Option<LocalObjectReference>,
    /// The invoker's session whose repository is verified.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// The Snapshot verified; empty: the repository's newest Succeeded Snapshot, chosen when the
    /// session starts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retry_left: i32,
}

/// Phase of a BackupVerificationSession.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupVerificationSessionPhase {
    /// Only in KubeStash's first API; read, never written.
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl BackupVerificationSessionPhase {
    /// Succeeded, Failed or Skipped.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// Observed state of a BackupVerificationSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupVerificationSessionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupVerificationSessionPhase>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Condition types and reasons of a BackupVerificationSession (KubeStash's names).
pub mod conditions {
    pub const SKIPPED: &str = "BackupVerificationSkipped";
    pub const REASON_ALREADY_VERIFIED: &str = "SnapshotAlreadyVerified";
    /// kstash: the repository has no Succeeded Snapshot to verify yet.
    pub const REASON_NO_SNAPSHOT: &str = "NoSucceededSnapshot";
    pub const HISTORY_CLEANED: &str = "VerificationSessionHistoryCleaned";
    pub const REASON_HISTORY_CLEANED: &str = "SuccessfullyCleanedVerificationSessionHistory";
    pub const REASON_HISTORY_NOT_CLEANED: &str = "FailedToCleanVerificationSessionHistory";
    pub const EXECUTOR_ENSURED: &str = "VerificationExecutorEnsured";
    pub const REASON_EXECUTOR_ENSURED: &str = "SuccessfullyEnsuredVerificationExecutor";
    pub const REASON_EXECUTOR_NOT_ENSURED: &str = "FailedToEnsureVerificationExecutor";
    pub const RESTORE_SUCCEEDED: &str = "RestoreSucceeded";
    pub const REASON_RESTORED: &str = "SuccessfullyRestoredBackup";
    pub const REASON_NOT_RESTORED: &str = "FailedToRestoreBackup";
    pub const BACKUP_VERIFIED: &str = "BackupVerified";
    pub const REASON_VERIFIED: &str = "SuccessfullyVerifiedBackup";
    pub const REASON_NOT_VERIFIED: &str = "FailedToVerifyBackup";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_schedule_string_is_read_when_scheduler_is_absent() {
        let legacy: BackupVerifierSpec = serde_json::from_value(serde_json::json!({
            "schedule": "*/5 * * * *", "type": "RestoreOnly"
        }))
        .unwrap();
        assert_eq!(legacy.cron(), Some("*/5 * * * *"));
        let both: BackupVerifierSpec = serde_json::from_value(serde_json::json!({
            "schedule": "*/5 * * * *", "scheduler": {"schedule": "0 * * * *"}
        }))
        .unwrap();
        assert_eq!(both.cron(), Some("0 * * * *"));
        assert_eq!(BackupVerifierSpec::default().cron(), None);
        assert_eq!(
            BackupVerifierSpec::default().verification_type(),
            VerificationType::RestoreOnly
        );
    }
}
