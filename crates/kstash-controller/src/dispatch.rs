//! Which reconciler handles which kind, and which other objects a change should wake up.

use std::time::Duration;

use kstash_api::meta::{self, ResourceType};
use serde_json::Value;

use crate::platform::Platform;
use crate::util::{Requeue, Result};

/// One object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl Key {
    /// The smallest key (a lower bound for ordered sets of keys).
    pub const MIN: Key = Key {
        kind: "",
        namespace: String::new(),
        name: String::new(),
    };

    /// The key of a stored object of `kind` (its namespace and name).
    pub fn of(kind: &'static str, obj: &Value) -> Key {
        Key {
            kind,
            namespace: s(obj, "/metadata/namespace").to_string(),
            name: s(obj, "/metadata/name").to_string(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Kinds that have a reconciler, in the order a full resync visits them (blueprints and their
/// targets before BackupConfigurations, so a generated configuration is reconciled in the same
/// pass).
pub const RECONCILED: &[&ResourceType] = &[
    &meta::BACKUP_STORAGE,
    &meta::REPOSITORY,
    &meta::BACKUP_BLUEPRINT,
    &meta::APP_BINDING,
    &meta::DEPLOYMENT,
    &meta::STATEFUL_SET,
    &meta::DAEMON_SET,
    &meta::PERSISTENT_VOLUME_CLAIM,
    &meta::BACKUP_CONFIGURATION,
    &meta::BACKUP_SESSION,
    &meta::SNAPSHOT,
    &meta::RESTORE_SESSION,
    &meta::BACKUP_VERIFICATION_SESSION,
];

/// Stash v1 kinds with a reconciler. Only the embedded runtime queues them: on a cluster, Stash's
/// own operator owns `stash.appscode.com` objects (convert them with `kstash convert`).
pub const STASH_RECONCILED: &[&ResourceType] = &[
    &meta::STASH_BACKUP_CONFIGURATION,
    &meta::STASH_BACKUP_SESSION,
    &meta::STASH_RESTORE_SESSION,
];

/// Reconcile the object `key` names.
pub fn reconcile(p: &dyn Platform, key: &Key) -> Result<Requeue> {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    match key.kind {
        "BackupStorage" => crate::storage::reconcile_backup_storage(p, ns, name),
        "Repository" => crate::storage::reconcile_repository(p, ns, name),
        "Snapshot" => crate::storage::reconcile_snapshot(p, ns, name),
        "BackupConfiguration" => crate::backup_configuration::reconcile_backup_configuration(p, ns, name),
        "BackupSession" => crate::backup_session::reconcile_backup_session(p, ns, name),
        "RestoreSession" => crate::restore_session::reconcile_restore_session(p, ns, name),
        "BackupBlueprint" => crate::blueprint::reconcile_backup_blueprint(p, ns, name),
        "BackupConfiguration.stash.appscode.com" => {
            crate::stash_backup::reconcile_stash_backup_configuration(p, ns, name)
        }
        "BackupSession.stash.appscode.com" => {
            crate::stash_backup::reconcile_stash_backup_session(p, ns, name)
        }
        "RestoreSession.stash.appscode.com" => crate::stash_restore::reconcile_stash_restore(p, ns, name),
        "BackupVerificationSession" => {
            crate::verification_session::reconcile_backup_verification_session(p, ns, name)
        }
        kind if crate::blueprint::target_type(kind).is_some() => {
            crate::blueprint::reconcile_target(p, kind, ns, name)
        }
        _ => Ok(Requeue::Idle),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Phases in which an object of `rt` waits for nothing: the periodic resync leaves it out (a
/// change still wakes it, and a restart queues every object again). At 10,000 configurations,
/// resyncing some 40,000 finished BackupSessions every 10 s kept every reconcile worker busy.
pub fn settled_phases(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group, rt.kind) {
        (meta::CORE_GROUP, "BackupSession" | "BackupVerificationSession") => {
            &["Succeeded", "Failed", "Skipped"]
        }
        _ => &[],
    }
}

/// An object a change wakes, and how long its reconcile may wait to gather more changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub key: Key,
    pub after: Duration,
}

/// How long a BackupStorage waits after a change of one of its Repositories: its reconcile lists
/// every Repository in it, and every backup changes a Repository's status, so on a busy
/// installation the changes of these seconds are gathered into one reconcile.
pub const AGGREGATE_WAKE_DELAY: Duration = Duration::from_secs(5);

/// The keys a changed object wakes ([`wakes_for_change`] without the delays).
pub fn keys_for_change(obj: &Value) -> Vec<Key> {
    wakes_for_change(obj).into_iter().map(|w| w.key).collect()
}

/// The objects a changed object wakes: itself (when reconciled) and the objects whose status
/// depends on it, each at once except a Repository's BackupStorage ([`AGGREGATE_WAKE_DELAY`]).
/// A BackupSession wakes no BackupConfiguration: nothing in a configuration's status depends on
/// its sessions, and at thousands of sessions a minute those reconciles were most of the work. A BackupBlueprint wakes only itself: its reconcile re-plans every target
/// annotated with it (finding them needs a list, which this pure function cannot do); a
/// BackupConfiguration generated from a blueprint also wakes its target, so a deleted or edited
/// generated configuration is restored.
pub fn wakes_for_change(obj: &Value) -> Vec<Wake> {
    let now = |key: Key| Wake {
        key,
        after: Duration::ZERO,
    };
    let kind = s(obj, "/kind");
    let ns = s(obj, "/metadata/namespace").to_string();
    if s(obj, "/apiVersion").starts_with("stash.appscode.com/") {
        // Stash's kinds repeat KubeStash's names: only their own reconciler is woken.
        return STASH_RECONCILED
            .iter()
            .filter(|rt| rt.kind == kind)
            .map(|rt| {
                now(Key {
                    kind: rt.key_kind(),
                    namespace: ns.clone(),
                    name: s(obj, "/metadata/name").to_string(),
                })
            })
            .collect();
    }
    let name = s(obj, "/metadata/name").to_string();
    let mut out = Vec::new();
    let key = |kind: &'static str, namespace: &str, name: &str| Key {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    if let Some(rt) = RECONCILED.iter().find(|rt| rt.kind == kind) {
        out.push(now(key(rt.kind, &ns, &name)));
    }
    match kind {
        "Snapshot" => {
            out.push(now(key("Repository", &ns, s(obj, "/spec/repository"))));
            let bs = s(obj, "/spec/backupSession");
            if !bs.is_empty() {
                out.push(now(key("BackupSession", &ns, bs)));
            }
        }
        "Repository" => {
            let sns = match s(obj, "/spec/storageRef/namespace") {
                "" => ns.as_str(),
                x => x,
            };
            out.push(Wake {
                key: key("BackupStorage", sns, s(obj, "/spec/storageRef/name")),
                after: AGGREGATE_WAKE_DELAY,
            });
            let inv = obj
                .pointer("/metadata/labels/kubestash.com~1invoker-name")
                .and_then(Value::as_str);
            if let Some(inv) = inv {
                out.push(now(key("BackupConfiguration", &ns, inv)));
            }
        }
        "BackupConfiguration" => {
            if let Some((kind, tns, tname)) = crate::blueprint::target_of_generated(obj) {
                out.push(now(key(kind, &tns, &tname)));
            }
        }
        // A verification's restore wakes its session.
        "RestoreSession" => {
            let bvs = obj
                .pointer("/metadata/labels/kstash.dev~1verification-session")
                .and_then(Value::as_str);
            if let Some(bvs) = bvs {
                out.push(now(key("BackupVerificationSession", &ns, bvs)));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wake(kind: &'static str, name: &str, after: Duration) -> Wake {
        Wake {
            key: Key {
                kind,
                namespace: "demo".into(),
                name: name.into(),
            },
            after,
        }
    }

    #[test]
    fn a_change_wakes_itself_and_what_depends_on_it_the_storage_after_the_aggregate_delay() {
        let repository = json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "repo", "namespace": "demo", "labels": {"kubestash.com/invoker-name": "bc"}},
            "spec": {"storageRef": {"name": "s3"}}
        });
        let session = json!({
            "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
            "metadata": {"name": "bc-1", "namespace": "demo"},
            "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "bc"}}
        });
        let snapshot = json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
            "metadata": {"name": "repo-bc-1", "namespace": "demo"},
            "spec": {"repository": "repo", "backupSession": "bc-1"}
        });
        let cases = [
            (
                repository,
                vec![
                    wake("Repository", "repo", Duration::ZERO),
                    wake("BackupStorage", "s3", AGGREGATE_WAKE_DELAY),
                    wake("BackupConfiguration", "bc", Duration::ZERO),
                ],
            ),
            // Nothing in a configuration's status depends on its sessions.
            (session, vec![wake("BackupSession", "bc-1", Duration::ZERO)]),
            (
                snapshot,
                vec![
                    wake("Snapshot", "repo-bc-1", Duration::ZERO),
                    wake("Repository", "repo", Duration::ZERO),
                    wake("BackupSession", "bc-1", Duration::ZERO),
                ],
            ),
        ];
        for (obj, expected) in cases {
            assert_eq!(wakes_for_change(&obj), expected, "{}", obj["kind"]);
        }
    }
}
