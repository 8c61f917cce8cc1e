//! Defaults, as KubeStash's mutating webhooks set them: usage policies, deletion policies, trimmed
//! bucket paths, failed-snapshot retention, session history, retries, and the default BackupStorage
//! and RetentionPolicy of a namespace.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::common::{AllowedNamespaces, FromNamespaces, ObjectReference, UsagePolicy};
use crate::core::BackendReference;
use crate::object::Object;
use crate::storage::{DeletionPolicy, FailedSnapshotsKeepPolicy};
use crate::usage;

/// Name given to the backend that defaulting adds to a BackupConfiguration without backends.
pub const DEFAULT_BACKEND_NAME: &str = "default-backend";

fn default_usage(p: &mut Option<UsagePolicy>) {
    let policy = p.get_or_insert_with(UsagePolicy::default);
    if policy.allowed_namespaces.from.is_none() {
        policy.allowed_namespaces = AllowedNamespaces {
            from: Some(FromNamespaces::Same),
            ..policy.allowed_namespaces.clone()
        };
    }
}

fn trim_slash(s: &mut String) {
    while s.ends_with('/') {
        s.pop();
    }
}

/// Fill in defaults in place. `existing` is what the store already holds (used to find the
/// namespace's default BackupStorage and RetentionPolicy).
pub fn apply(obj: &mut Object, existing: &[Object]) {
    let namespace = obj.namespace().map(str::to_string);
    if obj.resource_type().namespaced && obj.meta().namespace.is_none() {
        obj.meta_mut().namespace = namespace.clone();
    }
    // Like the API server (`EnsureObjectNamespaceMatchesRequestNamespace`): a cluster-scoped
    // object keeps no namespace (`validation::ignored_namespace` warns about it).
    if !obj.resource_type().namespaced {
        obj.meta_mut().namespace = None;
    }
    let ns = namespace.as_deref().unwrap_or("default");
    match obj {
        Object::BackupStorage(bs) => {
            default_usage(&mut bs.spec.usage_policy);
            bs.spec.deletion_policy.get_or_insert(DeletionPolicy::Delete);
            let st = &mut bs.spec.storage;
            if let Some(s3) = st.s3.as_mut() {
                trim_slash(&mut s3.bucket);
                trim_slash(&mut s3.endpoint);
                trim_slash(&mut s3.prefix);
            }
            if let Some(g) = st.gcs.as_mut() {
                trim_slash(&mut g.bucket);
                trim_slash(&mut g.prefix);
            }
            if let Some(a) = st.azure.as_mut() {
                trim_slash(&mut a.prefix);
            }
        }
        Object::RetentionPolicy(rp) => {
            default_usage(&mut rp.spec.usage_policy);
            let failed = rp
                .spec
                .failed_snapshots
                .get_or_insert_with(FailedSnapshotsKeepPolicy::default);
            failed.last.get_or_insert(1);
        }
        Object::HookTemplate(ht) => {
            default_usage(&mut ht.spec.usage_policy);
        }
        Object::BackupBlueprint(bp) => {
            default_usage(&mut bp.spec.usage_policy);
        }
        Object::BackupVerifier(v) => {
            // KubeStash: `+kubebuilder:default=1`; an explicit 0 cannot survive its omitempty.
            if v.spec.session_history_limit == 0 {
                v.spec.session_history_limit = 1;
            }
            if let Some(rc) = v.spec.retry_config.as_mut() {
                rc.max_retry.get_or_insert(1);
            }
        }
        Object::Repository(r) => {
            r.spec.deletion_policy.get_or_insert(DeletionPolicy::Delete);
        }
        Object::Snapshot(s) => {
            s.spec.deletion_policy.get_or_insert(DeletionPolicy::Delete);
            if s.spec.version.is_empty() {
                s.spec.version = "v1".into();
            }
        }
        Object::BackupConfiguration(bc) => {
            if bc.spec.backends.is_empty()
                && let Some(storage) = usage::default_storage(ns, existing)
            {
                bc.spec.backends.push(BackendReference {
                    name: DEFAULT_BACKEND_NAME.into(),
                    storage_ref: Some(storage),
                    retention_policy: None,
                });
            }
            let default_rp = usage::default_retention_policy(ns, existing);
            for b in &mut bc.spec.backends {
                if b.retention_policy.is_none() {
                    b.retention_policy = default_rp.clone();
                }
            }
            let single_backend = (bc.spec.backends.len() == 1).then(|| bc.spec.backends[0].name.clone());
            for s in &mut bc.spec.sessions {
                s.session_history_limit.get_or_insert(1);
                if let Some(rc) = s.retry_config.as_mut() {
                    rc.max_retry.get_or_insert(1);
                }
                for r in &mut s.repositories {
                    if r.backend.is_empty()
                        && let Some(b) = &single_backend
                    {
                        r.backend = b.clone();
                    }
                }
            }
        }
        Object::RestoreSession(rs) => {
            if let Some(ds) = rs.spec.data_source.as_mut()
                && ds.namespace.is_empty()
            {
                ds.namespace = ns.to_string();
            }
        }
        Object::Secret(secret) => {
            // Like the API server: stringData is merged into data and dropped.
            if let Some(string_data) = secret.string_data.take() {
                let data = secret.data.get_or_insert_with(BTreeMap::new);
                for (k, v) in string_data {
                    data.insert(k, ByteString(v.into_bytes()));
                }
            }
        }
        _ => {}
    }
}

/// A reference to `name` in `namespace`.
pub fn reference(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        namespace: Some(namespace.to_string()),
        name: name.to_string(),
    }
}
