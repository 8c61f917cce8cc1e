//! A typed view of any stored object: parse a JSON/YAML document into the right kind, with
//! type errors that carry the JSON path, and warnings for fields kstash does not know.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::addons::{Addon, Function};
use crate::appcatalog::AppBinding;
use crate::core::{BackupBlueprint, BackupConfiguration, BackupSession, HookTemplate, RestoreSession};
use crate::meta::{self, ResourceType};
use crate::stash;
use crate::storage::{BackupStorage, Repository, RetentionPolicy, Snapshot};
use crate::verification::{BackupVerificationSession, BackupVerifier};

/// One problem with one field of one object. Displays as
/// `BackupConfiguration demo/sample: spec.sessions[0].scheduler.schedule: <message>; fix: <hint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `Kind namespace/name` (or `Kind name` when cluster-scoped).
    pub object: String,
    /// JSON path of the field, e.g. `spec.storage.s3.bucket`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.path, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "; fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// Every kind kstash understands, typed.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    BackupStorage(BackupStorage),
    Repository(Repository),
    RetentionPolicy(RetentionPolicy),
    Snapshot(Snapshot),
    BackupConfiguration(BackupConfiguration),
    BackupSession(BackupSession),
    RestoreSession(RestoreSession),
    HookTemplate(HookTemplate),
    BackupBlueprint(BackupBlueprint),
    BackupVerifier(BackupVerifier),
    BackupVerificationSession(BackupVerificationSession),
    Addon(Addon),
    Function(Function),
    AppBinding(AppBinding),
    Secret(Secret),
    Namespace(Namespace),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    PersistentVolumeClaim(PersistentVolumeClaim),
    StashRepository(stash::Repository),
    StashBackupConfiguration(stash::BackupConfiguration),
    StashBackupSession(stash::BackupSession),
    StashRestoreSession(stash::RestoreSession),
    StashBackupBlueprint(stash::BackupBlueprint),
    StashBackupBatch(stash::BackupBatch),
    StashRestoreBatch(stash::RestoreBatch),
    StashTask(stash::Task),
    StashFunction(stash::Function),
}

macro_rules! each_kind {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::BackupStorage($o) => $e,
            Object::Repository($o) => $e,
            Object::RetentionPolicy($o) => $e,
            Object::Snapshot($o) => $e,
            Object::BackupConfiguration($o) => $e,
            Object::BackupSession($o) => $e,
            Object::RestoreSession($o) => $e,
            Object::HookTemplate($o) => $e,
            Object::BackupBlueprint($o) => $e,
            Object::BackupVerifier($o) => $e,
            Object::BackupVerificationSession($o) => $e,
            Object::Addon($o) => $e,
            Object::Function($o) => $e,
            Object::AppBinding($o) => $e,
            Object::Secret($o) => $e,
            Object::Namespace($o) => $e,
            Object::Deployment($o) => $e,
            Object::StatefulSet($o) => $e,
            Object::DaemonSet($o) => $e,
            Object::PersistentVolumeClaim($o) => $e,
            Object::StashRepository($o) => $e,
            Object::StashBackupConfiguration($o) => $e,
            Object::StashBackupSession($o) => $e,
            Object::StashRestoreSession($o) => $e,
            Object::StashBackupBlueprint($o) => $e,
            Object::StashBackupBatch($o) => $e,
            Object::StashRestoreBatch($o) => $e,
            Object::StashTask($o) => $e,
            Object::StashFunction($o) => $e,
        }
    };
}

/// The `Kind namespace/name` label used in messages.
pub fn describe(rt: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if rt.namespaced => format!("{} {ns}/{name}", rt.kind),
        _ => format!("{} {name}", rt.kind),
    }
}

impl Object {
    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        each_kind!(self, o => &o.metadata)
    }

    /// The object's metadata, mutable.
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_kind!(self, o => &mut o.metadata)
    }

    /// The kind's registry entry.
    pub fn resource_type(&self) -> &'static ResourceType {
        match self {
            Object::BackupStorage(_) => &meta::BACKUP_STORAGE,
            Object::Repository(_) => &meta::REPOSITORY,
            Object::RetentionPolicy(_) => &meta::RETENTION_POLICY,
            Object::Snapshot(_) => &meta::SNAPSHOT,
            Object::BackupConfiguration(_) => &meta::BACKUP_CONFIGURATION,
            Object::BackupSession(_) => &meta::BACKUP_SESSION,
            Object::RestoreSession(_) => &meta::RESTORE_SESSION,
            Object::HookTemplate(_) => &meta::HOOK_TEMPLATE,
            Object::BackupBlueprint(_) => &meta::BACKUP_BLUEPRINT,
            Object::BackupVerifier(_) => &meta::BACKUP_VERIFIER,
            Object::BackupVerificationSession(_) => &meta::BACKUP_VERIFICATION_SESSION,
            Object::Addon(_) => &meta::ADDON,
            Object::Function(_) => &meta::FUNCTION,
            Object::AppBinding(_) => &meta::APP_BINDING,
            Object::Secret(_) => &meta::SECRET,
            Object::Namespace(_) => &meta::NAMESPACE,
            Object::Deployment(_) => &meta::DEPLOYMENT,
            Object::StatefulSet(_) => &meta::STATEFUL_SET,
            Object::DaemonSet(_) => &meta::DAEMON_SET,
            Object::PersistentVolumeClaim(_) => &meta::PERSISTENT_VOLUME_CLAIM,
            Object::StashRepository(_) => &meta::STASH_REPOSITORY,
            Object::StashBackupConfiguration(_) => &meta::STASH_BACKUP_CONFIGURATION,
            Object::StashBackupSession(_) => &meta::STASH_BACKUP_SESSION,
            Object::StashRestoreSession(_) => &meta::STASH_RESTORE_SESSION,
            Object::StashBackupBlueprint(_) => &meta::STASH_BACKUP_BLUEPRINT,
            Object::StashBackupBatch(_) => &meta::STASH_BACKUP_BATCH,
            Object::StashRestoreBatch(_) => &meta::STASH_RESTORE_BATCH,
            Object::StashTask(_) => &meta::STASH_TASK,
            Object::StashFunction(_) => &meta::STASH_FUNCTION,
        }
    }

    /// `metadata.name` (empty if unset).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, or `default` for namespaced kinds without one; `None` for
    /// cluster-scoped kinds.
    pub fn namespace(&self) -> Option<&str> {
        if self.resource_type().namespaced {
            Some(self.meta().namespace.as_deref().unwrap_or("default"))
        } else {
            None
        }
    }

    /// `Kind namespace/name`.
    pub fn describe(&self) -> String {
        describe(self.resource_type(), self.namespace(), self.name())
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let rt = self.resource_type();
        let mut v = each_kind!(self, o => serde_json::to_value(o)).expect("typed objects always serialise");
        if let Value::Object(map) = &mut v {
            map.insert("apiVersion".into(), Value::String(rt.api_version()));
            map.insert("kind".into(), Value::String(rt.kind.into()));
        }
        v
    }

    /// Parse a document into its kind. Type errors name the JSON path.
    pub fn from_value(value: &Value) -> Result<Object, FieldError> {
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = value.pointer("/metadata/namespace").and_then(Value::as_str);
        let Some(rt) = meta::by_api_version_kind(api_version, kind) else {
            let hint = meta::every_kind()
                .find(|t| t.kind == kind)
                .map(|t| format!("use apiVersion: {}", t.api_version()))
                .unwrap_or_else(|| {
                    let kinds: Vec<_> = meta::ALL.iter().map(|t| t.kind).chain(["Task"]).collect();
                    format!("kstash understands: {}", kinds.join(", "))
                });
            return Err(FieldError {
                object: format!("{} {}", if kind.is_empty() { "<no kind>" } else { kind }, name),
                path: if kind.is_empty() || meta::every_kind().all(|t| t.kind != kind) {
                    "kind"
                } else {
                    "apiVersion"
                }
                .into(),
                message: format!("unknown apiVersion/kind '{api_version}'/'{kind}'"),
                fix: hint,
            });
        };
        let label = describe(rt, ns.or(Some("default")), name);
        let err = |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            FieldError {
                object: label.clone(),
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
                fix: "correct the value's type or spelling as the CRD schema says (`kstash crd`)".into(),
            }
        };
        fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
            serde_path_to_error::deserialize(v.clone())
        }
        if rt.group == meta::STASH_GROUP {
            return Ok(match rt.kind {
                "Repository" => Object::StashRepository(typed(value).map_err(err)?),
                "BackupConfiguration" => Object::StashBackupConfiguration(typed(value).map_err(err)?),
                "BackupSession" => Object::StashBackupSession(typed(value).map_err(err)?),
                "RestoreSession" => Object::StashRestoreSession(typed(value).map_err(err)?),
                "BackupBlueprint" => Object::StashBackupBlueprint(typed(value).map_err(err)?),
                "BackupBatch" => Object::StashBackupBatch(typed(value).map_err(err)?),
                "RestoreBatch" => Object::StashRestoreBatch(typed(value).map_err(err)?),
                "Task" => Object::StashTask(typed(value).map_err(err)?),
                "Function" => Object::StashFunction(typed(value).map_err(err)?),
                other => unreachable!("registry kind {other} has no typed variant"),
            });
        }
        Ok(match rt.kind {
            "BackupStorage" => Object::BackupStorage(typed(value).map_err(err)?),
            "Repository" => Object::Repository(typed(value).map_err(err)?),
            "RetentionPolicy" => Object::RetentionPolicy(typed(value).map_err(err)?),
            "Snapshot" => Object::Snapshot(typed(value).map_err(err)?),
            "BackupConfiguration" => Object::BackupConfiguration(typed(value).map_err(err)?),
            "BackupSession" => Object::BackupSession(typed(value).map_err(err)?),
            "RestoreSession" => Object::RestoreSession(typed(value).map_err(err)?),
            "HookTemplate" => Object::HookTemplate(typed(value).map_err(err)?),
            "BackupBlueprint" => Object::BackupBlueprint(typed(value).map_err(err)?),
            "BackupVerifier" => Object::BackupVerifier(typed(value).map_err(err)?),
            "BackupVerificationSession" => Object::BackupVerificationSession(typed(value).map_err(err)?),
            "Addon" => Object::Addon(typed(value).map_err(err)?),
            "Function" => Object::Function(typed(value).map_err(err)?),
            "AppBinding" => Object::AppBinding(typed(value).map_err(err)?),
            "Secret" => Object::Secret(typed(value).map_err(err)?),
            "Namespace" => Object::Namespace(typed(value).map_err(err)?),
            "Deployment" => Object::Deployment(typed(value).map_err(err)?),
            "StatefulSet" => Object::StatefulSet(typed(value).map_err(err)?),
            "DaemonSet" => Object::DaemonSet(typed(value).map_err(err)?),
            "PersistentVolumeClaim" => Object::PersistentVolumeClaim(typed(value).map_err(err)?),
            other => unreachable!("registry kind {other} has no typed variant"),
        })
    }

    /// Fields of `original` that the typed object does not carry (unknown or misspelled fields),
    /// as warnings. Zero values (`false`, `0`, `""`, `[]`, `{}`, `null`) are not reported because
    /// dropping them does not change meaning.
    pub fn unknown_fields(&self, original: &Value) -> Vec<FieldError> {
        let typed = self.to_value();
        let mut out = Vec::new();
        diff_unknown(original, &typed, String::new(), &mut out);
        out.into_iter()
            .map(|path| FieldError {
                object: self.describe(),
                message: "unknown field; kstash ignores it".into(),
                fix: "remove it or check its spelling against `kstash crd`".into(),
                path,
            })
            .collect()
    }

    /// Serialise any typed kind to JSON (helper for callers holding a concrete type).
    pub fn value_of<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).expect("typed objects always serialise")
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn diff_unknown(orig: &Value, typed: &Value, path: String, out: &mut Vec<String>) {
    match (orig, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, ov) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => diff_unknown(ov, tv, p, out),
                    None if is_zero(ov) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t.iter()).enumerate() {
                diff_unknown(ov, tv, format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(o), _) if !o.values().all(is_zero) => out.push(path),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_errors_carry_the_json_path() {
        let doc = json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": "s3-storage", "namespace": "demo"},
            "spec": {"storage": {"provider": "s4"}}
        });
        let err = Object::from_value(&doc).unwrap_err();
        assert_eq!(err.object, "BackupStorage demo/s3-storage");
        assert_eq!(err.path, "spec.storage.provider");
        assert!(err.message.contains("unknown variant `s4`"), "{}", err.message);
    }

    #[test]
    fn unknown_kind_names_the_field_and_lists_kinds() {
        let doc = json!({"apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupStorage", "metadata": {"name": "x"}});
        let err = Object::from_value(&doc).unwrap_err();
        assert_eq!(err.path, "apiVersion");
        assert!(err.fix.contains("storage.kubestash.com/v1alpha1"));
    }

    #[test]
    fn unknown_fields_are_reported_but_zero_values_are_not() {
        let doc = json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "keep", "namespace": "demo"},
            "spec": {"maxRetentionPeriod": "30d", "default": false, "successfulSnaphots": {"last": 5}}
        });
        let obj = Object::from_value(&doc).unwrap();
        let warnings = obj.unknown_fields(&doc);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].path, "spec.successfulSnaphots");
    }

    #[test]
    fn round_trip_keeps_api_version_and_kind() {
        let doc = json!({
            "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
            "metadata": {"name": "s-1", "namespace": "demo"},
            "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "bc"}, "session": "frequent"}
        });
        let obj = Object::from_value(&doc).unwrap();
        assert_eq!(obj.to_value(), doc);
        assert!(obj.unknown_fields(&doc).is_empty());
    }
}
