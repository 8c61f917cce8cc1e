//! One typed resolution of a Stash v1 RestoreSession, used by its reconciler and its executor:
//! the Stash Repository and where its restic repository is (the backend's root, as a KubeStash
//! storage backend), the password (`RESTIC_PASSWORD` of the storage Secret), the target, and the
//! KubeStash addon task that does the restore.

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use super::types::{BackupConfiguration, RestoreSession, Rule};
use super::{AddonFor, Repository, addon_for, host_of, task_params};
use crate::appcatalog::AppBinding;
use crate::client::{Resources, ResourcesExt};
use crate::common::{AddonInfo, TaskReference, TypedObjectReference};
use crate::resolve::{
    self, PASSWORD_KEY, PasswordRef, PasswordSource, ResolveError, ResolvedAddon, Result, SecretRef,
    TaskKind, describe,
};
use crate::storage;

/// A Stash RestoreSession with everything it reaches.
#[derive(Debug, Clone)]
pub struct ResolvedStashRestore {
    pub namespace: String,
    pub session: RestoreSession,
    /// `RestoreSession demo/x`.
    pub object: String,
    /// The Stash Repository and how its restic repository is reached.
    pub repository: ResolvedStashRepository,
    /// What is restored into, as the addon drivers take it.
    pub target: TypedObjectReference,
    /// Which addon replaces Stash's task, and the file Stash streamed.
    pub addon_for: AddonFor,
    pub addon: ResolvedAddon,
    /// The restic host this restore restores as (`alias` or `host-0`).
    pub host: String,
    /// Whether the target has an alias (Stash then filters snapshots by host).
    pub alias_set: bool,
    pub rules: Vec<Rule>,
    /// Stash task parameters kstash has no counterpart for (reported, not used).
    pub dropped_params: Vec<String>,
}

/// A Stash Repository and how its restic repository is reached.
#[derive(Debug, Clone)]
pub struct ResolvedStashRepository {
    pub repository: Repository,
    /// `Repository demo/gcs-repo` (Stash's).
    pub object: String,
    /// The restic repository's location as a KubeStash storage backend (its root is the
    /// restic repository).
    pub backend: storage::Backend,
    /// The storage Secret (credentials and `RESTIC_PASSWORD`).
    pub storage_secret: SecretRef,
    pub password: PasswordRef,
}

/// Resolve the Stash Repository `namespace/name`, which `named_by`'s `field` names.
pub fn resolve_repository(
    res: &dyn Resources,
    namespace: &str,
    name: &str,
    named_by: &str,
    field: &str,
) -> Result<ResolvedStashRepository> {
    let Some(repository) = res.get_as::<Repository>(namespace, name)? else {
        return Err(ResolveError::not_found(
            named_by,
            field,
            format!("Repository.stash.appscode.com {namespace}/{name}"),
            "apply the Stash Repository that holds the backups (apiVersion stash.appscode.com/v1alpha1)",
        ));
    };
    let object = format!("Repository {namespace}/{name}");
    let secret_name = repository.spec.backend.storage_secret_name.clone();
    if secret_name.is_empty() {
        return Err(ResolveError::invalid(
            &object,
            "spec.backend.storageSecretName",
            "not set",
            "name the Secret holding RESTIC_PASSWORD and the backend's credentials",
        ));
    }
    let storage_secret = SecretRef {
        namespace: namespace.to_string(),
        name: secret_name,
    };
    let Some(secret) = res.get_as::<Secret>(&storage_secret.namespace, &storage_secret.name)? else {
        return Err(ResolveError::not_found(
            &object,
            "spec.backend.storageSecretName",
            storage_secret.to_string(),
            "create it with RESTIC_PASSWORD (the restic repository's password) and the backend's credentials",
        ));
    };
    let azure_account = resolve::secret_value(&secret, "AZURE_ACCOUNT_NAME");
    let backend = repository.spec.backend.to_kubestash(azure_account.as_deref());
    let password = PasswordRef {
        secret: storage_secret.clone(),
        key: PASSWORD_KEY.into(),
        source: PasswordSource::StashRepository,
        named_by: object.clone(),
        field: "spec.backend.storageSecretName".into(),
    };
    Ok(ResolvedStashRepository {
        repository,
        object,
        backend,
        storage_secret,
        password,
    })
}

/// Resolve the Stash RestoreSession `namespace/name`.
pub fn resolve_restore(res: &dyn Resources, namespace: &str, name: &str) -> Result<ResolvedStashRestore> {
    let Some(session) = res.get_as::<RestoreSession>(namespace, name)? else {
        return Err(ResolveError::not_found(
            &format!("RestoreSession.stash.appscode.com {namespace}/{name}"),
            "metadata.name",
            format!("RestoreSession {namespace}/{name}"),
            "apply it",
        ));
    };
    let object = format!("RestoreSession {namespace}/{name}");
    let spec = &session.spec;
    let repository = resolve_repository(
        res,
        &referenced_namespace(&spec.repository.namespace, namespace),
        &spec.repository.name,
        &object,
        "spec.repository.name",
    )?;
    let Some(target) = spec.target_spec.target.as_ref() else {
        return Err(ResolveError::invalid(
            &object,
            "spec.target",
            "not set",
            "set target.ref to what is restored",
        ));
    };
    let work = target_and_addon(
        res,
        namespace,
        &object,
        &target.reference,
        spec.target_spec.task.as_ref(),
        TaskKind::Restore,
        None,
    )?;
    Ok(ResolvedStashRestore {
        namespace: namespace.to_string(),
        object,
        rules: spec.effective_rules().to_vec(),
        host: host_of(&target.alias),
        alias_set: !target.alias.is_empty(),
        target: work.target,
        session,
        repository,
        addon_for: work.addon_for,
        addon: work.addon,
        dropped_params: work.dropped_params,
    })
}

/// The Task a KubeDB AppBinding names for Stash (`spec.parameters.stash.addon.backupTask.name`
/// or `restoreTask`).
fn stash_task_of(ab: &AppBinding, kind: TaskKind) -> Option<String> {
    let which = match kind {
        TaskKind::Backup => "backupTask",
        TaskKind::Restore => "restoreTask",
    };
    ab.spec
        .parameters
        .as_ref()?
        .pointer(&format!("/stash/addon/{which}/name"))?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A referenced object's namespace: the reference's, else the referrer's.
fn referenced_namespace(reference: &Option<String>, namespace: &str) -> String {
    reference
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.to_string())
}

/// `RestoreSession demo/x` for messages.
pub fn describe_session(session: &RestoreSession) -> String {
    describe("RestoreSession", &session.metadata)
}

/// A Stash BackupConfiguration with everything its backups reach.
#[derive(Debug, Clone)]
pub struct ResolvedStashConfiguration {
    pub namespace: String,
    pub configuration: BackupConfiguration,
    /// `BackupConfiguration demo/x`.
    pub object: String,
    pub repository: ResolvedStashRepository,
    /// What is backed up, as the addon drivers take it.
    pub target: TypedObjectReference,
    pub addon_for: AddonFor,
    /// The addon's backup task (for databases; workloads and PVCs back up `paths`).
    pub addon: ResolvedAddon,
    /// The restic host Stash wrote (`alias` or `host-0`).
    pub host: String,
    /// Workload/PVC paths (`target.paths`; a PVC's default `/stash-data`).
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub dropped_params: Vec<String>,
}

/// Resolve the Stash BackupConfiguration `namespace/name`.
pub fn resolve_configuration(
    res: &dyn Resources,
    namespace: &str,
    name: &str,
) -> Result<ResolvedStashConfiguration> {
    let object = format!("BackupConfiguration {namespace}/{name}");
    let Some(configuration) = res.get_as::<BackupConfiguration>(namespace, name)? else {
        return Err(ResolveError::not_found(
            &object,
            "metadata.name",
            format!("BackupConfiguration.stash.appscode.com {namespace}/{name}"),
            "apply it",
        ));
    };
    let spec = &configuration.spec;
    if spec.driver == "VolumeSnapshotter" {
        return Err(ResolveError::invalid(
            &object,
            "spec.driver",
            "VolumeSnapshotter (CSI VolumeSnapshots) is not supported by kstash",
            "use driver Restic (the default)",
        ));
    }
    let repository = resolve_repository(
        res,
        &referenced_namespace(&spec.repository.namespace, namespace),
        &spec.repository.name,
        &object,
        "spec.repository.name",
    )?;
    let Some(target) = spec.template.target.as_ref() else {
        return Err(ResolveError::invalid(
            &object,
            "spec.target",
            "not set",
            "set target.ref to what is backed up",
        ));
    };
    let work = target_and_addon(
        res,
        namespace,
        &object,
        &target.reference,
        spec.template.task.as_ref(),
        TaskKind::Backup,
        Some((&target.paths, &target.exclude)),
    )?;
    Ok(ResolvedStashConfiguration {
        namespace: namespace.to_string(),
        object,
        host: host_of(&target.alias),
        exclude: target.exclude.clone(),
        paths: work.paths,
        target: work.target,
        configuration,
        repository,
        addon_for: work.addon_for,
        addon: work.addon,
        dropped_params: work.dropped_params,
    })
}

/// What a Stash session's work resolves to: the target as the drivers take it, the KubeStash
/// addon that replaces Stash's Task, and that addon's task resolved.
struct Work {
    target: TypedObjectReference,
    addon_for: AddonFor,
    addon: ResolvedAddon,
    /// Workload/PVC paths (a PVC's default `/stash-data`); empty for databases.
    paths: Vec<String>,
    /// Stash task parameters with no KubeStash counterpart.
    dropped_params: Vec<String>,
}

/// Resolve the target of `object` and the KubeStash addon task of `kind` that does its work:
/// the addon comes from the Stash task name, else the AppBinding's Stash task parameter or type,
/// else the target kind; Stash task parameters are carried over, and a backup of a workload or
/// PVC passes `volume` (paths, exclude) as the task's parameters.
fn target_and_addon(
    res: &dyn Resources,
    namespace: &str,
    object: &str,
    reference: &super::TargetRef,
    task: Option<&super::TaskRef>,
    kind: TaskKind,
    volume: Option<(&[String], &[String])>,
) -> Result<Work> {
    let target_ns = if reference.namespace.is_empty() {
        namespace.to_string()
    } else {
        reference.namespace.clone()
    };
    let app_type = if reference.kind == "AppBinding" {
        let Some(ab) = res.get_as::<AppBinding>(&target_ns, &reference.name)? else {
            return Err(ResolveError::not_found(
                object,
                "spec.target.ref.name",
                format!("AppBinding {target_ns}/{}", reference.name),
                "apply the AppBinding of the database",
            ));
        };
        Some(stash_task_of(&ab, kind).unwrap_or(ab.spec.type_))
    } else {
        None
    };
    let task = task.cloned().unwrap_or_default();
    let addon_for = addon_for(&task.name, app_type.as_deref(), &reference.kind).map_err(|m| {
        ResolveError::invalid(object, "spec.task.name", m, "name a Stash task kstash supports")
    })?;
    let (params, dropped_params) = task_params(&task.params);
    let mut map: Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let mut paths = Vec::new();
    if let (Some((target_paths, exclude)), AddonFor::Workload | AddonFor::Pvc) = (volume, addon_for) {
        paths = match (addon_for, target_paths.is_empty()) {
            (AddonFor::Pvc, true) => vec!["/stash-data".to_string()],
            _ => target_paths.to_vec(),
        };
        map.insert("paths".into(), Value::String(paths.join(",")));
        if !exclude.is_empty() {
            map.insert("exclude".into(), Value::String(exclude.join(",")));
        }
    }
    let info = AddonInfo {
        name: addon_for.addon().to_string(),
        tasks: vec![TaskReference {
            name: match kind {
                TaskKind::Backup => "logical-backup",
                TaskKind::Restore => "logical-backup-restore",
            }
            .into(),
            params: (!map.is_empty()).then_some(Value::Object(map)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let addon = resolve::addon(res, object, "spec.task", Some(&info), kind)?;
    let api_group = reference
        .api_version
        .split_once('/')
        .map(|(g, _)| g.to_string())
        .filter(|g| !g.is_empty());
    Ok(Work {
        target: TypedObjectReference {
            api_group,
            kind: Some(reference.kind.clone()).filter(|k| !k.is_empty()),
            namespace: Some(target_ns),
            name: reference.name.clone(),
        },
        addon_for,
        addon,
        paths,
        dropped_params,
    })
}
