//! KubeStash's mutating-webhook defaults, applied by the operator after the fact: kstash ships no
//! admission webhook, so an object created with `kubectl` arrives without them (usage policies,
//! deletion policies, the namespace's default BackupStorage and RetentionPolicy, session history
//! limits, a RestoreSession's data-source namespace). The operator writes the defaulted spec back
//! once, before the object's first reconcile, so reconcilers see what the embedded runtime's
//! admission would have stored. The planning step is pure.

use kstash_api::Object;
use kstash_api::client::{ClientResult, Resources};
use kstash_api::meta::{self, ResourceType};
use kstash_controller::dispatch::Key;
use serde_json::Value;

/// Kinds whose spec the webhook defaults (Repositories and Snapshots are created by the operator
/// with their defaults already set).
const DEFAULTED: &[&ResourceType] = &[
    &meta::BACKUP_STORAGE,
    &meta::RETENTION_POLICY,
    &meta::HOOK_TEMPLATE,
    &meta::BACKUP_BLUEPRINT,
    &meta::BACKUP_CONFIGURATION,
    &meta::RESTORE_SESSION,
];

/// The document with its spec defaulted, or `None` when the defaults change nothing (or the
/// document does not parse; the reconciler reports that).
pub fn defaulted(doc: &Value, existing: &[Object]) -> Option<Value> {
    let original = Object::from_value(doc).ok()?;
    let mut object = original.clone();
    kstash_api::defaults::apply(&mut object, existing);
    let before = original.to_value();
    let after = object.to_value();
    if before.get("spec") == after.get("spec") {
        return None;
    }
    let mut out = doc.clone();
    out["spec"] = after.get("spec").cloned().unwrap_or(Value::Null);
    Some(out)
}

/// Whether a BackupConfiguration lacks what the default lookups fill in (backends, or a backend's
/// retention policy); only then are the candidates listed, so a configured object costs one read.
fn needs_default_lookup(doc: &Value) -> bool {
    match doc.pointer("/spec/backends").and_then(Value::as_array) {
        None => true,
        Some(backends) => {
            backends.is_empty()
                || backends
                    .iter()
                    .any(|b| b.get("retentionPolicy").is_none_or(Value::is_null))
        }
    }
}

/// Default the object `key` names in place; true when it was written.
pub fn apply_defaults(p: &dyn Resources, key: &Key) -> ClientResult<bool> {
    let Some(rt) = DEFAULTED.iter().find(|rt| rt.kind == key.kind) else {
        return Ok(false);
    };
    let Some(doc) = p.get(rt, &key.namespace, &key.name)? else {
        return Ok(false);
    };
    if doc.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(false);
    }
    // The default BackupStorage/RetentionPolicy lookups need the candidates and, for selector
    // usage policies, the namespaces' labels.
    let mut existing = Vec::new();
    if rt.kind == "BackupConfiguration" && needs_default_lookup(&doc) {
        for kind in [&meta::BACKUP_STORAGE, &meta::RETENTION_POLICY, &meta::NAMESPACE] {
            for v in p.list(kind, None, &[])? {
                if let Ok(o) = Object::from_value(&v) {
                    existing.push(o);
                }
            }
        }
    }
    let Some(new) = defaulted(&doc, &existing) else {
        return Ok(false);
    };
    tracing::info!(object = %key, "applying the webhook defaults");
    p.update(new)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::from_value(&v).unwrap()
    }

    #[test]
    fn a_storage_without_usage_policy_gets_same_namespace_and_delete() {
        let doc = json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": "s", "namespace": "demo", "resourceVersion": "7"},
            "spec": {"storage": {"provider": "s3", "s3": {"bucket": "b/", "endpoint": "http://x/"}}}
        });
        let out = defaulted(&doc, &[]).unwrap();
        assert_eq!(out["spec"]["usagePolicy"]["allowedNamespaces"]["from"], "Same");
        assert_eq!(out["spec"]["deletionPolicy"], "Delete");
        assert_eq!(out["spec"]["storage"]["s3"]["bucket"], "b");
        assert_eq!(
            out["metadata"]["resourceVersion"], "7",
            "written back with its resourceVersion"
        );
        // Defaulting is idempotent: a defaulted object needs nothing more.
        assert_eq!(defaulted(&out, &[]), None);
    }

    #[test]
    fn a_configuration_without_backends_gets_the_namespace_default_storage_and_policy() {
        let storage = obj(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": "default-storage", "namespace": "demo"},
            "spec": {"default": true, "storage": {"provider": "local", "local": {"mountPath": "/m", "hostPath": {"path": "/x"}}},
                     "usagePolicy": {"allowedNamespaces": {"from": "Same"}}}
        }));
        let policy = obj(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "keep", "namespace": "demo"},
            "spec": {"default": true, "successfulSnapshots": {"last": 3}, "usagePolicy": {"allowedNamespaces": {"from": "Same"}}}
        }));
        let doc = json!({
            "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
            "metadata": {"name": "bc", "namespace": "demo"},
            "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "web", "namespace": "demo"},
                     "sessions": [{"name": "s", "scheduler": {"schedule": "@daily"},
                                   "repositories": [{"name": "r", "directory": "d", "encryptionSecret": {"name": "e"}}],
                                   "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}}]}
        });
        let out = defaulted(&doc, &[storage, policy]).unwrap();
        let backend = &out["spec"]["backends"][0];
        assert_eq!(backend["storageRef"]["name"], "default-storage");
        assert_eq!(backend["retentionPolicy"]["name"], "keep");
        assert_eq!(
            out["spec"]["sessions"][0]["repositories"][0]["backend"],
            backend["name"]
        );
        assert_eq!(out["spec"]["sessions"][0]["sessionHistoryLimit"], 1);
    }

    #[test]
    fn kinds_without_webhook_defaults_are_left_alone() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "demo"},
                            "stringData": {"a": "b"}});
        // Secrets are defaulted by the API server itself, never by kstash.
        assert!(!DEFAULTED.iter().any(|rt| rt.kind == "Secret"));
        let _ = secret;
    }
}
