//! `kstash convert`: Stash v1 manifests as their KubeStash equivalents, following the mapping of
//! KubeStash's own `convert` command (Repository → BackupStorage + encryption Secret;
//! BackupConfiguration → BackupConfiguration + RetentionPolicy + HookTemplates; BackupBlueprint →
//! namespaced BackupBlueprint + BackupStorage + RetentionPolicy; RestoreSession →
//! RestoreSession), and doing better where it drops things: task parameters with a KubeStash
//! counterpart are carried over, an AppBinding target stays an AppBinding when its `appRef` is
//! unknown (kstash backs up AppBindings directly), and every field that has no equivalent is
//! listed in a comment above the object instead of vanishing.
//!
//! Pure: what the cluster or the store knows (AppBindings, the storage Secret) comes in through
//! [`Lookup`].

use serde_json::{Map, Value, json};

use super::types::*;
use super::{AddonFor, addon_for, task_params};
use crate::appcatalog::AppBinding;
use crate::names;

/// What the converter may look up; `None` answers leave placeholders and comments.
pub trait Lookup {
    /// The AppBinding `namespace/name`.
    fn app_binding(&self, namespace: &str, name: &str) -> Option<AppBinding>;
    /// Whether the Secret `namespace/name` has the key.
    fn secret_has_key(&self, namespace: &str, name: &str, key: &str) -> bool;
}

/// A lookup that knows nothing (offline conversion).
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl Lookup for Offline {
    fn app_binding(&self, _: &str, _: &str) -> Option<AppBinding> {
        None
    }
    fn secret_has_key(&self, _: &str, _: &str, _: &str) -> bool {
        false
    }
}

/// One converted object with the notes printed above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub object: Value,
    /// `# …` lines: where it came from, what was dropped, what to review.
    pub notes: Vec<String>,
}

/// The conversion of one Stash object: the KubeStash objects it becomes (empty for kinds with
/// no KubeStash counterpart, which `notes` then explains).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conversion {
    pub source: String,
    pub objects: Vec<Converted>,
    pub notes: Vec<String>,
}

/// `### Set Valid <Field> ###`, KubeStash's placeholder for a value convert cannot know.
fn placeholder(field: &str) -> String {
    format!("### Set Valid {field} ###")
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The name of the Secret holding only `RESTIC_PASSWORD` for a converted repository.
pub fn encryption_secret_name(repository: &str) -> String {
    names::name_with_prefix_and_suffix(repository, "encryption-secret")
}

/// Convert one Stash object (a typed [`crate::Object`] of a Stash kind).
pub fn convert(obj: &crate::Object, lookup: &dyn Lookup) -> Conversion {
    use crate::Object as O;
    let source = obj.describe();
    let mut c = match obj {
        O::StashRepository(r) => repository(r, lookup),
        O::StashBackupConfiguration(b) => backup_configuration(b, lookup),
        O::StashRestoreSession(r) => restore_session(r, lookup),
        O::StashBackupBlueprint(b) => backup_blueprint(b),
        O::StashBackupSession(_) => Conversion {
            notes: vec![
                "a BackupSession is one run; KubeStash's is created by its BackupConfiguration (`kstash trigger`)".into(),
            ],
            ..Default::default()
        },
        O::StashTask(_) | O::StashFunction(_) => Conversion {
            notes: vec![
                "KubeStash Addons replace Stash Tasks and Functions; kstash installs its addon catalog itself".into(),
            ],
            ..Default::default()
        },
        O::StashBackupBatch(_) | O::StashRestoreBatch(_) => Conversion {
            notes: vec![
                "not converted: KubeStash has no batch kind; write one BackupConfiguration (or RestoreSession) per member".into(),
            ],
            ..Default::default()
        },
        _ => Conversion {
            notes: vec!["not a Stash v1 object; left out".into()],
            ..Default::default()
        },
    };
    c.source = source;
    c
}

/// The printed form: every converted object as YAML, notes as comments, `---` between objects.
pub fn render(conversions: &[Conversion]) -> String {
    let mut docs = Vec::new();
    for c in conversions {
        let head: Vec<String> = std::iter::once(format!("# converted from {}", c.source))
            .chain(c.notes.iter().map(|n| format!("# {n}")))
            .collect();
        if c.objects.is_empty() {
            docs.push(format!("{}\n", head.join("\n")));
            continue;
        }
        for (i, o) in c.objects.iter().enumerate() {
            let mut lines = if i == 0 { head.clone() } else { Vec::new() };
            lines.extend(o.notes.iter().map(|n| format!("# {n}")));
            let yaml = serde_yaml_ng::to_string(&o.object).unwrap_or_default();
            docs.push(format!(
                "{}{}{yaml}",
                lines.join("\n"),
                if lines.is_empty() { "" } else { "\n" }
            ));
        }
    }
    docs.join("---\n")
}

fn repository(r: &Repository, lookup: &dyn Lookup) -> Conversion {
    let name = name_of(&r.metadata);
    let ns = ns_of(&r.metadata);
    let mut notes = Vec::new();
    let backend = r.spec.backend.to_kubestash(None);
    let mut storage = serde_json::to_value(&backend).unwrap_or(Value::Null);
    if let Some(az) = storage.get_mut("azure").and_then(Value::as_object_mut) {
        az.insert(
            "storageAccount".into(),
            Value::String(placeholder("StorageAccount")),
        );
        notes.push("review: Stash read the Azure account from AZURE_ACCOUNT_NAME; KubeStash names it in spec.storage.azure.storageAccount".into());
    }
    if let Some(local) = &r.spec.backend.local {
        let known = ["hostPath", "nfs", "persistentVolumeClaim", "emptyDir"];
        let other: Vec<&String> = local
            .volume
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        if !other.is_empty() {
            notes.push(format!(
                "dropped spec.backend.local.{}: kstash mounts hostPath, nfs, persistentVolumeClaim and emptyDir",
                other.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut spec = json!({
        "storage": storage,
        "deletionPolicy": if r.spec.wipe_out { "WipeOut" } else { "Delete" },
    });
    if let Some(u) = &r.spec.usage_policy {
        spec["usagePolicy"] = serde_json::to_value(u).unwrap_or(Value::Null);
    }
    notes.push(
        "the BackupStorage's root is the Stash restic repository; KubeStash writes its repositories below it, next to restic's files. Stash's snapshots stay restorable with the Stash RestoreSession (kstash restores Stash repositories)".into(),
    );
    let storage_obj = json!({
        "apiVersion": "storage.kubestash.com/v1alpha1",
        "kind": "BackupStorage",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    let mut objects = vec![Converted {
        object: storage_obj,
        notes: Vec::new(),
    }];
    let secret = &r.spec.backend.storage_secret_name;
    let enc = encryption_secret_name(&name);
    if !secret.is_empty() && lookup.secret_has_key(&ns, secret, "RESTIC_PASSWORD") {
        objects.push(Converted {
            object: json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": enc, "namespace": ns},
                "type": "Opaque",
                "stringData": {"RESTIC_PASSWORD": placeholder("Password")},
            }),
            notes: vec![format!(
                "review: copy RESTIC_PASSWORD from Secret {ns}/{secret} here (kstash never prints Secret values); BackupConfigurations use it as encryptionSecret"
            )],
        });
    } else {
        notes.push(format!(
            "create Secret {ns}/{enc} with RESTIC_PASSWORD (Stash kept it in the storage Secret {secret}); converted BackupConfigurations name it as encryptionSecret"
        ));
    }
    Conversion {
        objects,
        notes,
        ..Default::default()
    }
}

/// A KubeStash target for a Stash target reference, and notes.
fn target(reference: &TargetRef, ns: &str, lookup: &dyn Lookup, notes: &mut Vec<String>) -> Value {
    let target_ns = if reference.namespace.is_empty() {
        ns
    } else {
        &reference.namespace
    };
    match reference.kind.as_str() {
        "AppBinding" => match lookup
            .app_binding(target_ns, &reference.name)
            .and_then(|ab| ab.spec.app_ref)
        {
            Some(app) => serde_json::to_value(app).unwrap_or(Value::Null),
            None => {
                notes.push(format!(
                    "target: the AppBinding {target_ns}/{} is kept as the target (kstash backs up AppBindings directly); with KubeDB, name the database (its appRef) instead",
                    reference.name
                ));
                json!({"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": reference.name, "namespace": target_ns})
            }
        },
        "" => {
            notes.push("target: none in Stash; set spec.target".into());
            json!({"apiGroup": placeholder("APIGroup"), "kind": placeholder("Kind"), "name": placeholder("Name"), "namespace": target_ns})
        }
        kind => {
            let group = reference
                .api_version
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            json!({"apiGroup": group, "kind": kind, "name": reference.name, "namespace": target_ns})
        }
    }
}

/// The KubeStash addon entry for a Stash task and target, and notes.
fn addon(
    task: Option<&TaskRef>,
    reference: &TargetRef,
    (paths, exclude): (&[String], &[String]),
    restore: bool,
    ns: &str,
    lookup: &dyn Lookup,
    notes: &mut Vec<String>,
) -> Value {
    let task = task.cloned().unwrap_or_default();
    let app_type = (reference.kind == "AppBinding")
        .then(|| {
            let target_ns = if reference.namespace.is_empty() {
                ns
            } else {
                &reference.namespace
            };
            lookup
                .app_binding(target_ns, &reference.name)
                .map(|ab| ab.spec.type_)
        })
        .flatten();
    let task_name = if restore {
        "logical-backup-restore"
    } else {
        "logical-backup"
    };
    match addon_for(&task.name, app_type.as_deref(), &reference.kind) {
        Ok(found) => {
            let mut params = Map::new();
            let (kept, dropped) = task_params(&task.params);
            if !dropped.is_empty() {
                notes.push(format!(
                    "dropped task params {} (no KubeStash counterpart)",
                    dropped.join(", ")
                ));
            }
            if matches!(found, AddonFor::Workload | AddonFor::Pvc) {
                if !restore && !paths.is_empty() {
                    params.insert("paths".into(), Value::String(paths.join(",")));
                }
                if !restore && !exclude.is_empty() {
                    params.insert("exclude".into(), Value::String(exclude.join(",")));
                }
            } else {
                for (k, v) in kept {
                    params.insert(k, Value::String(v));
                }
            }
            let mut t = json!({"name": task_name});
            if !params.is_empty() {
                t["params"] = Value::Object(params);
            }
            json!({"name": found.addon(), "tasks": [t]})
        }
        Err(message) => {
            notes.push(format!("review: {message}"));
            json!({"name": placeholder("Addon"), "tasks": [{"name": task_name}]})
        }
    }
}

/// A HookTemplate for a Stash hook handler. Stash ran `exec` hooks in the target's pod; the
/// KubeStash Pod executor finds it by label, guessed from the target (KubeDB labels its pods
/// `app.kubernetes.io/instance=<database>`; workloads commonly `app=<name>`) and flagged for review.
fn hook_template(
    owner: &str,
    ns: &str,
    which: &str,
    handler: &crate::core::HookAction,
    target: &TargetRef,
) -> Converted {
    let name = names::name_with_prefix_and_suffix(owner, &format!("{which}-hook"));
    let mut notes = Vec::new();
    let executor = if handler.http_get.is_some() || handler.http_post.is_some() {
        json!({"type": "Operator"})
    } else if handler.exec.is_some() {
        let selector = match (target.kind.as_str(), target.name.as_str()) {
            (_, "") => "app=### Set Valid Selector ###".to_string(),
            ("AppBinding", n) => format!("app.kubernetes.io/instance={n}"),
            (_, n) => format!("app={n}"),
        };
        notes.push(format!(
            "review: Stash ran this exec hook in the target's pod; spec.executor.pod.selector {selector} is a guess"
        ));
        json!({"type": "Pod", "pod": {"selector": selector}})
    } else {
        json!({"type": "Operator"})
    };
    Converted {
        object: json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "HookTemplate",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"action": serde_json::to_value(handler).unwrap_or(Value::Null), "executor": executor},
        }),
        notes,
    }
}

/// The KubeStash execution policy of a Stash post hook (`OnFinalRetryFailure` has none).
fn execution_policy(policy: &str, notes: &mut Vec<String>) -> Option<String> {
    match policy {
        "" => None,
        "OnFinalRetryFailure" => {
            notes.push(
                "hook executionPolicy OnFinalRetryFailure has no KubeStash value; the hook runs Always"
                    .into(),
            );
            None
        }
        p => Some(p.to_string()),
    }
}

fn retention_policy(p: &RetentionPolicy, ns: &str, notes: &mut Vec<String>) -> Converted {
    let mut kept = Map::new();
    for (field, v) in [
        ("last", p.keep_last),
        ("hourly", p.keep_hourly),
        ("daily", p.keep_daily),
        ("weekly", p.keep_weekly),
        ("monthly", p.keep_monthly),
        ("yearly", p.keep_yearly),
    ] {
        if v > 0 {
            kept.insert(field.into(), json!(v));
        }
    }
    let mut dropped = Vec::new();
    if !p.keep_tags.is_empty() {
        dropped.push("keepTags");
    }
    if p.prune {
        dropped.push("prune (KubeStash always prunes what retention removes)");
    }
    if p.dry_run {
        dropped.push("dryRun");
    }
    if !dropped.is_empty() {
        notes.push(format!("dropped retentionPolicy.{}", dropped.join(", ")));
    }
    let name = if p.name.is_empty() {
        placeholder("Name")
    } else {
        p.name.clone()
    };
    Converted {
        object: json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "RetentionPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"successfulSnapshots": kept, "usagePolicy": {"allowedNamespaces": {"from": "Same"}}},
        }),
        notes: Vec::new(),
    }
}

fn backup_configuration(b: &BackupConfiguration, lookup: &dyn Lookup) -> Conversion {
    let name = name_of(&b.metadata);
    let ns = ns_of(&b.metadata);
    let s = &b.spec;
    let mut notes = Vec::new();
    let mut objects = Vec::new();
    if s.driver == "VolumeSnapshotter" {
        notes.push(
            "not converted: driver VolumeSnapshotter takes CSI VolumeSnapshots, which kstash does not (no restic data to convert)".into(),
        );
        return Conversion {
            notes,
            ..Default::default()
        };
    }
    let repo_ns = s.repository.namespace.clone().unwrap_or_else(|| ns.clone());
    let t = s.template.target.clone().unwrap_or_default();
    let target_value = target(&t.reference, &ns, lookup, &mut notes);
    let target_ns = target_value["namespace"].as_str().unwrap_or(&ns).to_string();
    let target_name = target_value["name"].as_str().unwrap_or("").to_string();
    let addon_value = addon(
        s.template.task.as_ref(),
        &t.reference,
        (&t.paths, &t.exclude),
        false,
        &ns,
        lookup,
        &mut notes,
    );
    let mut dropped = Vec::new();
    for (set, field) in [
        (!s.driver.is_empty() && s.driver != "Restic", "driver"),
        (
            !t.alias.is_empty(),
            "target.alias (KubeStash names components, not restic hosts)",
        ),
        (t.replicas.is_some(), "target.replicas"),
        (!t.volume_mounts.is_empty(), "target.volumeMounts"),
        (!t.args.is_empty(), "target.args"),
        (s.template.temp_dir.is_some(), "tempDir"),
        (
            s.template.interim_volume_template.is_some(),
            "interimVolumeTemplate (kstash streams dumps; no interim volume)",
        ),
    ] {
        if set {
            dropped.push(field);
        }
    }
    if !dropped.is_empty() {
        notes.push(format!("dropped {}", dropped.join(", ")));
    }
    let rp = s.retention_policy.clone().unwrap_or_default();
    let rp_obj = retention_policy(&rp, &repo_ns, &mut notes);
    let rp_name = rp_obj.object["metadata"]["name"].clone();
    let mut session = json!({
        "name": "backup",
        "scheduler": {"schedule": s.schedule, "jobTemplate": {"backoffLimit": 1}},
        "repositories": [{
            "name": s.repository.name,
            "backend": "storage",
            "directory": if target_name.is_empty() || target_name.starts_with("###") { placeholder("Directory") } else { format!("{target_ns}/{target_name}") },
            "encryptionSecret": {"name": encryption_secret_name(&s.repository.name), "namespace": repo_ns},
        }],
        "addon": addon_value,
    });
    if let Some(n) = s.backup_history_limit {
        session["sessionHistoryLimit"] = json!(n);
    }
    if !s.time_out.is_empty() {
        session["backupTimeout"] = json!(s.time_out);
    }
    if let Some(r) = &s.retry_config {
        session["retryConfig"] = serde_json::to_value(r).unwrap_or(Value::Null);
    }
    if let Some(rt) = &s.template.runtime_settings {
        if let Some(c) = &rt.container {
            session["addon"]["containerRuntimeSettings"] = serde_json::to_value(c).unwrap_or(Value::Null);
        }
        if rt.pod.is_some() {
            notes
                .push("dropped runtimeSettings.pod (set addon.jobTemplate.spec for the executor pod)".into());
        }
    }
    if let Some(h) = &s.template.hooks {
        let mut hooks = json!({});
        if let Some(pre) = &h.pre_backup {
            let ht = hook_template(&name, &ns, "prebackup", pre, &t.reference);
            hooks["preBackup"] = json!([{"name": "prebackup-hook", "hookTemplate": {"name": ht.object["metadata"]["name"], "namespace": ns}}]);
            objects.push(ht);
        }
        if let Some(post) = &h.post_backup {
            let ht = hook_template(&name, &ns, "postbackup", &post.handler, &t.reference);
            let mut entry = json!({"name": "postbackup-hook", "hookTemplate": {"name": ht.object["metadata"]["name"], "namespace": ns}});
            if let Some(p) = execution_policy(&post.execution_policy, &mut notes) {
                entry["executionPolicy"] = json!(p);
            }
            hooks["postBackup"] = json!([entry]);
            objects.push(ht);
        }
        session["hooks"] = hooks;
    }
    let mut spec = json!({
        "target": target_value,
        "backends": [{
            "name": "storage",
            "storageRef": {"name": s.repository.name, "namespace": repo_ns},
            "retentionPolicy": {"name": rp_name, "namespace": repo_ns},
        }],
        "sessions": [session],
    });
    if s.paused {
        spec["paused"] = json!(true);
    }
    objects.insert(
        0,
        Converted {
            object: json!({
                "apiVersion": "core.kubestash.com/v1alpha1",
                "kind": "BackupConfiguration",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }),
            notes: Vec::new(),
        },
    );
    objects.insert(1, rp_obj);
    Conversion {
        objects,
        notes,
        ..Default::default()
    }
}

fn restore_session(r: &RestoreSession, lookup: &dyn Lookup) -> Conversion {
    let name = name_of(&r.metadata);
    let ns = ns_of(&r.metadata);
    let s = &r.spec;
    let mut notes = Vec::new();
    if s.driver == "VolumeSnapshotter" {
        notes.push(
            "not converted: driver VolumeSnapshotter restores CSI VolumeSnapshots, which kstash does not"
                .into(),
        );
        return Conversion {
            notes,
            ..Default::default()
        };
    }
    let repo_ns = s.repository.namespace.clone().unwrap_or_else(|| ns.clone());
    let t = s.target_spec.target.clone().unwrap_or_default();
    let target_value = if t.reference.name.is_empty() && !t.volume_claim_templates.is_empty() {
        notes.push(
            "target: Stash created PVCs from volumeClaimTemplates; create them first and name one here"
                .into(),
        );
        json!({"apiGroup": "", "kind": "PersistentVolumeClaim", "name": placeholder("Name"), "namespace": ns})
    } else {
        target(&t.reference, &ns, lookup, &mut notes)
    };
    let addon_value = addon(
        s.target_spec.task.as_ref(),
        &t.reference,
        (&[], &[]),
        true,
        &ns,
        lookup,
        &mut notes,
    );
    let rules = s.effective_rules();
    if !rules.is_empty() {
        notes.push(format!(
            "dropped rules {}: a KubeStash RestoreSession restores one Snapshot; to restore a backup Stash took, apply the Stash RestoreSession itself (kstash restores Stash repositories)",
            serde_json::to_string(rules).unwrap_or_default()
        ));
    }
    notes.push(
        "snapshot: latest means the newest KubeStash Snapshot, i.e. one taken after the conversion".into(),
    );
    let mut dropped = Vec::new();
    for (set, field) in [
        (!t.alias.is_empty(), "target.alias"),
        (t.replicas.is_some(), "target.replicas"),
        (!t.volume_mounts.is_empty(), "target.volumeMounts"),
        (
            !t.volume_claim_templates.is_empty(),
            "target.volumeClaimTemplates",
        ),
        (!t.args.is_empty(), "target.args"),
        (s.target_spec.temp_dir.is_some(), "tempDir"),
        (
            s.target_spec.interim_volume_template.is_some(),
            "interimVolumeTemplate",
        ),
    ] {
        if set {
            dropped.push(field);
        }
    }
    if !dropped.is_empty() {
        notes.push(format!("dropped {}", dropped.join(", ")));
    }
    let mut objects = Vec::new();
    let mut spec = json!({
        "target": target_value,
        "dataSource": {
            "namespace": repo_ns,
            "repository": s.repository.name,
            "snapshot": "latest",
            "encryptionSecret": {"name": encryption_secret_name(&s.repository.name), "namespace": repo_ns},
        },
        "addon": addon_value,
    });
    if !s.time_out.is_empty() {
        spec["restoreTimeout"] = json!(s.time_out);
    }
    if let Some(h) = &s.target_spec.hooks {
        let mut hooks = json!({});
        if let Some(pre) = &h.pre_restore {
            let ht = hook_template(&name, &ns, "prerestore", pre, &t.reference);
            hooks["preRestore"] = json!([{"name": "prerestore-hook", "hookTemplate": {"name": ht.object["metadata"]["name"], "namespace": ns}}]);
            objects.push(ht);
        }
        if let Some(post) = &h.post_restore {
            let ht = hook_template(&name, &ns, "postrestore", &post.handler, &t.reference);
            let mut entry = json!({"name": "postrestore-hook", "hookTemplate": {"name": ht.object["metadata"]["name"], "namespace": ns}});
            if let Some(p) = execution_policy(&post.execution_policy, &mut notes) {
                entry["executionPolicy"] = json!(p);
            }
            hooks["postRestore"] = json!([entry]);
            objects.push(ht);
        }
        spec["hooks"] = hooks;
    }
    objects.insert(
        0,
        Converted {
            object: json!({
                "apiVersion": "core.kubestash.com/v1alpha1",
                "kind": "RestoreSession",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }),
            notes: Vec::new(),
        },
    );
    Conversion {
        objects,
        notes,
        ..Default::default()
    }
}

/// Stash's `${TARGET_*}` blueprint variables as KubeStash's `${var}` ones.
fn blueprint_variables(text: &str) -> String {
    text.replace("${TARGET_NAMESPACE}", "${namespace}")
        .replace("${TARGET_NAME}", "${targetName}")
        .replace("${TARGET_KIND}", "${targetKind}")
        .replace("${TARGET_APP_RESOURCE}", "${dbType}")
        .replace("${TARGET_APP_VERSION}", "${appVersion}")
}

fn backup_blueprint(b: &BackupBlueprint) -> Conversion {
    let name = name_of(&b.metadata);
    let s = &b.spec;
    let mut notes = Vec::new();
    let ns = [&s.repo_namespace, &s.backup_namespace]
        .into_iter()
        .find(|n| !n.is_empty())
        .cloned()
        .or_else(|| b.metadata.namespace.clone())
        .unwrap_or_else(|| {
            notes.push("namespace: the Stash blueprint is cluster-scoped; KubeStash's lives in a namespace (default here)".into());
            "default".into()
        });
    // The prefix's static head stays the storage prefix; its templated tail becomes each
    // repository's directory.
    let backend = s.repository.backend.to_kubestash(None);
    let mut storage = serde_json::to_value(&backend).unwrap_or(Value::Null);
    let mut directory = "${namespace}/${targetName}".to_string();
    if let Some(section) = storage.as_object_mut().and_then(|m| {
        ["s3", "gcs", "azure", "swift", "b2"]
            .iter()
            .find_map(|k| m.get(*k).is_some().then_some(*k))
            .and_then(|k| m.get_mut(k))
    }) && let Some(prefix) = section.get("prefix").and_then(Value::as_str).map(str::to_string)
        && let Some(at) = prefix.find("${")
    {
        let (head, tail) = prefix.split_at(at);
        section["prefix"] = json!(head.trim_end_matches('/'));
        directory = blueprint_variables(tail);
    }
    let storage_name = names::name_with_prefix_and_suffix(&name, "storage");
    let storage_obj = json!({
        "apiVersion": "storage.kubestash.com/v1alpha1",
        "kind": "BackupStorage",
        "metadata": {"name": storage_name, "namespace": ns},
        "spec": {
            "storage": storage,
            "deletionPolicy": if s.repository.wipe_out { "WipeOut" } else { "Delete" },
            "usagePolicy": {"allowedNamespaces": {"from": "All"}},
        },
    });
    let rp = s.retention_policy.clone().unwrap_or_default();
    let rp_obj = retention_policy(&rp, &ns, &mut notes);
    let rp_name = rp_obj.object["metadata"]["name"].clone();
    let task = s.template.task.clone().unwrap_or_default();
    let addon_name = match addon_for(
        &blueprint_variables(&task.name).replace("${appVersion}", ""),
        None,
        "Deployment",
    ) {
        Ok(a) => a.addon().to_string(),
        Err(_) => placeholder("Addon"),
    };
    let (kept, dropped) = task_params(&task.params);
    if !dropped.is_empty() {
        notes.push(format!("dropped task params {}", dropped.join(", ")));
    }
    let mut task_entry = json!({"name": "logical-backup"});
    if !kept.is_empty() {
        task_entry["params"] = Value::Object(kept.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    }
    let mut session = json!({
        "name": "backup",
        "scheduler": {"schedule": if s.schedule.is_empty() { "${schedule}".to_string() } else { s.schedule.clone() }, "jobTemplate": {"backoffLimit": 1}},
        "repositories": [{
            "name": "${repoName}",
            "backend": "storage",
            "directory": directory,
            "encryptionSecret": {"name": encryption_secret_name(&name), "namespace": ns},
        }],
        "addon": {"name": addon_name, "tasks": [task_entry]},
    });
    if let Some(n) = s.backup_history_limit {
        session["sessionHistoryLimit"] = json!(n);
    }
    notes.push(format!(
        "targets opt in with KubeStash's annotations (blueprint.kubestash.com/name: {name}, variables.kubestash.com/repoName, …) instead of stash.appscode.com/backup-blueprint; create Secret {ns}/{} with RESTIC_PASSWORD",
        encryption_secret_name(&name)
    ));
    let blueprint = json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "BackupBlueprint",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "usagePolicy": {"allowedNamespaces": {"from": "All"}},
            "backupConfigurationTemplate": {
                "deletionPolicy": "OnDelete",
                "backends": [{
                    "name": "storage",
                    "storageRef": {"name": storage_name, "namespace": ns},
                    "retentionPolicy": {"name": rp_name, "namespace": ns},
                }],
                "sessions": [session],
            },
        },
    });
    Conversion {
        objects: vec![
            Converted {
                object: blueprint,
                notes: Vec::new(),
            },
            Converted {
                object: storage_obj,
                notes: Vec::new(),
            },
            rp_obj,
        ],
        notes,
        ..Default::default()
    }
}
