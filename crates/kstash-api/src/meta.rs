//! The registry of resource kinds: group, version, plural, short names and scope, used to resolve
//! the names users type (`bc`, `repo`, `backupconfigurations.core.kubestash.com`) and to route
//! stored objects.

/// Static description of one resource kind, as a Kubernetes API server would know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceType {
    /// API group; empty for the core group (`v1`).
    pub group: &'static str,
    /// API version within the group, e.g. `v1alpha1`.
    pub version: &'static str,
    /// Kind, e.g. `BackupConfiguration`.
    pub kind: &'static str,
    /// Lower-case plural, e.g. `backupconfigurations`.
    pub plural: &'static str,
    /// Lower-case singular, e.g. `backupconfiguration`.
    pub singular: &'static str,
    /// Short names, e.g. `["bc"]`.
    pub short_names: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Whether the kind has a `status` subresource.
    pub has_status: bool,
}

/// The `status` fields of a kind that aggregate other objects and so grow with the installation: a
/// BackupStorage's `status.repositories` lists every Repository in it. The frequent reads that do
/// not need them (every session's resolution reads its BackupStorage) skip them
/// (`Resources::get_lean`); the embedded store keeps them apart so that skipping costs nothing.
pub fn aggregate_status_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        (STORAGE_GROUP, "BackupStorage") => &["repositories"],
        _ => &[],
    }
}

impl ResourceType {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, the name a CRD is known by (`plural` alone for the core group).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// True when `name` (case-insensitive) is the kind, plural, singular, a short name, or one of
    /// those qualified by the group (`bc.core.kubestash.com`).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let (base, group) = match name.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (name.clone(), None),
        };
        if let Some(g) = group
            && g != self.group
        {
            return false;
        }
        base == self.kind.to_ascii_lowercase()
            || base == self.plural
            || base == self.singular
            || self.short_names.contains(&base.as_str())
    }
}

/// API group of BackupStorage, Repository, RetentionPolicy, Snapshot.
pub const STORAGE_GROUP: &str = "storage.kubestash.com";
/// API group of BackupConfiguration, BackupSession, RestoreSession, HookTemplate, BackupBlueprint.
pub const CORE_GROUP: &str = "core.kubestash.com";
/// API group of Addon and Function.
pub const ADDONS_GROUP: &str = "addons.kubestash.com";
/// API group of AppBinding.
pub const APPCATALOG_GROUP: &str = "appcatalog.appscode.com";
/// Version shared by every kstash/KubeStash group.
pub const V1ALPHA1: &str = "v1alpha1";

macro_rules! rt {
    ($group:expr, $version:expr, $kind:literal, $plural:literal, $singular:literal, [$($short:literal),*], $ns:expr, $status:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $ns,
            has_status: $status,
        }
    };
}

pub const BACKUP_STORAGE: ResourceType = rt!(
    STORAGE_GROUP,
    V1ALPHA1,
    "BackupStorage",
    "backupstorages",
    "backupstorage",
    [],
    true,
    true
);
pub const REPOSITORY: ResourceType = rt!(
    STORAGE_GROUP,
    V1ALPHA1,
    "Repository",
    "repositories",
    "repository",
    ["repo"],
    true,
    true
);
pub const RETENTION_POLICY: ResourceType = rt!(
    STORAGE_GROUP,
    V1ALPHA1,
    "RetentionPolicy",
    "retentionpolicies",
    "retentionpolicy",
    [],
    true,
    false
);
pub const SNAPSHOT: ResourceType = rt!(
    STORAGE_GROUP,
    V1ALPHA1,
    "Snapshot",
    "snapshots",
    "snapshot",
    [],
    true,
    true
);
pub const BACKUP_CONFIGURATION: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "BackupConfiguration",
    "backupconfigurations",
    "backupconfiguration",
    ["bc"],
    true,
    true
);
pub const BACKUP_SESSION: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "BackupSession",
    "backupsessions",
    "backupsession",
    [],
    true,
    true
);
pub const RESTORE_SESSION: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "RestoreSession",
    "restoresessions",
    "restoresession",
    ["restore"],
    true,
    true
);
pub const HOOK_TEMPLATE: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "HookTemplate",
    "hooktemplates",
    "hooktemplate",
    [],
    true,
    false
);
pub const BACKUP_BLUEPRINT: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "BackupBlueprint",
    "backupblueprints",
    "backupblueprint",
    [],
    true,
    false
);
/// KubeStash's CRD path is literally the singular (`backupverifier`); the plural users type is a
/// short name.
pub const BACKUP_VERIFIER: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "BackupVerifier",
    "backupverifier",
    "backupverifier",
    ["backupverifiers"],
    true,
    false
);
/// As for BackupVerifier, KubeStash's CRD path is the singular.
pub const BACKUP_VERIFICATION_SESSION: ResourceType = rt!(
    CORE_GROUP,
    V1ALPHA1,
    "BackupVerificationSession",
    "backupverificationsession",
    "backupverificationsession",
    ["backupverificationsessions", "bvs"],
    true,
    true
);
pub const ADDON: ResourceType = rt!(
    ADDONS_GROUP,
    V1ALPHA1,
    "Addon",
    "addons",
    "addon",
    [],
    false,
    false
);
pub const FUNCTION: ResourceType = rt!(
    ADDONS_GROUP,
    V1ALPHA1,
    "Function",
    "functions",
    "function",
    ["fn"],
    false,
    false
);
pub const APP_BINDING: ResourceType = rt!(
    APPCATALOG_GROUP,
    V1ALPHA1,
    "AppBinding",
    "appbindings",
    "appbinding",
    ["app"],
    true,
    false
);
pub const SECRET: ResourceType = rt!("", "v1", "Secret", "secrets", "secret", [], true, false);
pub const NAMESPACE: ResourceType = rt!(
    "",
    "v1",
    "Namespace",
    "namespaces",
    "namespace",
    ["ns"],
    false,
    false
);

pub const DEPLOYMENT: ResourceType = rt!(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    "deployment",
    ["deploy"],
    true,
    true
);
pub const STATEFUL_SET: ResourceType = rt!(
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    "statefulset",
    ["sts"],
    true,
    true
);
pub const DAEMON_SET: ResourceType = rt!(
    "apps",
    "v1",
    "DaemonSet",
    "daemonsets",
    "daemonset",
    ["ds"],
    true,
    true
);
pub const PERSISTENT_VOLUME_CLAIM: ResourceType = rt!(
    "",
    "v1",
    "PersistentVolumeClaim",
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    ["pvc"],
    true,
    true
);

/// The built-in Kubernetes workload kinds kstash stores so they can be backup targets (and opt
/// into auto-backup with BackupBlueprint annotations). They are not CRDs: kstash generates no
/// schema for them and validates only their types.
pub const WORKLOADS: &[ResourceType] = &[DEPLOYMENT, STATEFUL_SET, DAEMON_SET, PERSISTENT_VOLUME_CLAIM];

/// Every kind kstash stores, in the order `kstash apply` creates them when a file mixes kinds
/// (referents before referrers).
pub const ALL: &[ResourceType] = &[
    NAMESPACE,
    SECRET,
    PERSISTENT_VOLUME_CLAIM,
    DEPLOYMENT,
    STATEFUL_SET,
    DAEMON_SET,
    APP_BINDING,
    FUNCTION,
    ADDON,
    HOOK_TEMPLATE,
    RETENTION_POLICY,
    BACKUP_STORAGE,
    REPOSITORY,
    BACKUP_BLUEPRINT,
    BACKUP_VERIFIER,
    BACKUP_CONFIGURATION,
    BACKUP_SESSION,
    SNAPSHOT,
    RESTORE_SESSION,
    BACKUP_VERIFICATION_SESSION,
];

/// API group of the Stash v1 kinds (the API KubeStash replaced).
pub const STASH_GROUP: &str = "stash.appscode.com";
const V1BETA1: &str = "v1beta1";

pub const STASH_REPOSITORY: ResourceType = rt!(
    STASH_GROUP,
    V1ALPHA1,
    "Repository",
    "repositories",
    "repository",
    ["repo"],
    true,
    true
);
pub const STASH_BACKUP_CONFIGURATION: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "BackupConfiguration",
    "backupconfigurations",
    "backupconfiguration",
    ["bc"],
    true,
    true
);
pub const STASH_BACKUP_SESSION: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "BackupSession",
    "backupsessions",
    "backupsession",
    [],
    true,
    true
);
pub const STASH_RESTORE_SESSION: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "RestoreSession",
    "restoresessions",
    "restoresession",
    ["restore"],
    true,
    true
);
pub const STASH_BACKUP_BLUEPRINT: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "BackupBlueprint",
    "backupblueprints",
    "backupblueprint",
    ["bb"],
    false,
    false
);
pub const STASH_BACKUP_BATCH: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "BackupBatch",
    "backupbatches",
    "backupbatch",
    [],
    true,
    true
);
pub const STASH_RESTORE_BATCH: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "RestoreBatch",
    "restorebatches",
    "restorebatch",
    [],
    true,
    true
);
pub const STASH_TASK: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "Task",
    "tasks",
    "task",
    ["task"],
    false,
    false
);
pub const STASH_FUNCTION: ResourceType = rt!(
    STASH_GROUP,
    V1BETA1,
    "Function",
    "functions",
    "function",
    ["fn"],
    false,
    false
);

/// The Stash v1 kinds kstash stores and runs, in apply order. They are looked up after the
/// KubeStash kinds, so `repo` or `bc` alone mean KubeStash's; `repositories.stash.appscode.com`
/// names Stash's. They are not in [`ALL`]: kstash generates no CRDs for them (Stash's own CRDs
/// describe them) and the Kubernetes operator does not watch them.
pub const STASH: &[ResourceType] = &[
    STASH_TASK,
    STASH_FUNCTION,
    STASH_REPOSITORY,
    STASH_BACKUP_BLUEPRINT,
    STASH_BACKUP_CONFIGURATION,
    STASH_BACKUP_BATCH,
    STASH_BACKUP_SESSION,
    STASH_RESTORE_SESSION,
    STASH_RESTORE_BATCH,
];

/// Every kind kstash stores: the KubeStash ones, then Stash's.
pub fn every_kind() -> impl Iterator<Item = &'static ResourceType> {
    ALL.iter().chain(STASH.iter())
}

impl ResourceType {
    /// The name a reconcile queue keys this kind by: the kind for KubeStash and Kubernetes
    /// kinds, `<Kind>.stash.appscode.com` for Stash's (whose kind names repeat KubeStash's).
    pub fn key_kind(&self) -> &'static str {
        if self.group != STASH_GROUP {
            return self.kind;
        }
        match self.kind {
            "Repository" => "Repository.stash.appscode.com",
            "BackupConfiguration" => "BackupConfiguration.stash.appscode.com",
            "BackupSession" => "BackupSession.stash.appscode.com",
            "RestoreSession" => "RestoreSession.stash.appscode.com",
            "BackupBlueprint" => "BackupBlueprint.stash.appscode.com",
            "BackupBatch" => "BackupBatch.stash.appscode.com",
            "RestoreBatch" => "RestoreBatch.stash.appscode.com",
            "Task" => "Task.stash.appscode.com",
            _ => "Function.stash.appscode.com",
        }
    }
}

/// A column of `kstash get` (a CRD `additionalPrinterColumn`): header, JSONPath, type.
pub type PrintColumn = (&'static str, &'static str, &'static str);

const AGE: PrintColumn = ("Age", ".metadata.creationTimestamp", "date");

/// The print columns of a resource type: Stash's for the Stash kinds, else [`print_columns`].
pub fn print_columns_of(rt: &ResourceType) -> &'static [PrintColumn] {
    if rt.group != STASH_GROUP {
        return print_columns(rt.kind);
    }
    match rt.kind {
        "Repository" => &[
            ("Integrity", ".status.integrity", "boolean"),
            ("Size", ".status.totalSize", "string"),
            ("Snapshot-Count", ".status.snapshotCount", "integer"),
            ("Last-Successful-Backup", ".status.lastBackupTime", "date"),
            AGE,
        ],
        "BackupConfiguration" => &[
            ("Task", ".spec.task.name", "string"),
            ("Schedule", ".spec.schedule", "string"),
            ("Paused", ".spec.paused", "boolean"),
            ("Phase", ".status.phase", "string"),
            AGE,
        ],
        "BackupSession" => &[
            ("Invoker-Type", ".spec.invoker.kind", "string"),
            ("Invoker-Name", ".spec.invoker.name", "string"),
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.sessionDuration", "string"),
            AGE,
        ],
        "RestoreSession" => &[
            ("Repository", ".spec.repository.name", "string"),
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.sessionDuration", "string"),
            AGE,
        ],
        "BackupBlueprint" => &[
            ("Task", ".spec.task.name", "string"),
            ("Schedule", ".spec.schedule", "string"),
            AGE,
        ],
        "BackupBatch" => &[
            ("Schedule", ".spec.schedule", "string"),
            ("Paused", ".spec.paused", "boolean"),
            ("Phase", ".status.phase", "string"),
            AGE,
        ],
        "RestoreBatch" => &[
            ("Repository", ".spec.repository.name", "string"),
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.sessionDuration", "string"),
            AGE,
        ],
        _ => &[AGE],
    }
}

/// The print columns of a kind, as its CRD declares them (a test in `crd` keeps the two equal),
/// so printing needs no schema generation.
pub fn print_columns(kind: &str) -> &'static [PrintColumn] {
    match kind {
        "BackupStorage" => &[
            ("Provider", ".spec.storage.provider", "string"),
            ("Default", ".spec.default", "boolean"),
            ("Deletion-Policy", ".spec.deletionPolicy", "string"),
            ("Total-Size", ".status.totalSize", "string"),
            ("Phase", ".status.phase", "string"),
            AGE,
        ],
        "Repository" => &[
            ("Integrity", ".status.integrity", "boolean"),
            ("Snapshot-Count", ".status.snapshotCount", "integer"),
            ("Size", ".status.size", "string"),
            ("Phase", ".status.phase", "string"),
            ("Last-Successful-Backup", ".status.lastBackupTime", "date"),
            AGE,
        ],
        "RetentionPolicy" => &[
            ("Max-Retention-Period", ".spec.maxRetentionPeriod", "string"),
            ("Default", ".spec.default", "boolean"),
            AGE,
        ],
        "Snapshot" => &[
            ("Repository", ".spec.repository", "string"),
            ("Session", ".spec.session", "string"),
            ("Snapshot-Time", ".status.snapshotTime", "string"),
            ("Deletion-Policy", ".spec.deletionPolicy", "string"),
            ("Phase", ".status.phase", "string"),
            AGE,
        ],
        "BackupConfiguration" => &[
            ("Phase", ".status.phase", "string"),
            ("Paused", ".spec.paused", "boolean"),
            AGE,
        ],
        "BackupVerifier" => &[AGE],
        "BackupVerificationSession" => &[
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.duration", "string"),
            AGE,
        ],
        "BackupSession" => &[
            ("Invoker-Type", ".spec.invoker.kind", "string"),
            ("Invoker-Name", ".spec.invoker.name", "string"),
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.duration", "string"),
            AGE,
        ],
        "RestoreSession" => &[
            ("Repository", ".spec.dataSource.repository", "string"),
            ("Phase", ".status.phase", "string"),
            ("Duration", ".status.duration", "string"),
            AGE,
        ],
        "HookTemplate" => &[("Executor", ".spec.executor.type", "string"), AGE],
        "AppBinding" => &[
            ("Type", ".spec.type", "string"),
            ("Version", ".spec.version", "string"),
            AGE,
        ],
        "Secret" => &[("Type", ".type", "string"), ("Data", "#data", "integer"), AGE],
        _ => &[AGE],
    }
}

/// Resolve a name a user typed (kind, plural, singular, short name, optionally `.group`).
pub fn lookup(name: &str) -> Option<&'static ResourceType> {
    every_kind().find(|t| t.matches(name))
}

/// Resolve an object's `apiVersion` + `kind`.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    every_kind().find(|t| t.kind == kind && t.api_version() == api_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stash_kinds_are_reached_by_their_group() {
        assert_eq!(lookup("repo").unwrap().group, STORAGE_GROUP);
        assert_eq!(
            lookup("repositories.stash.appscode.com").unwrap(),
            &STASH_REPOSITORY
        );
        assert_eq!(
            lookup("restoresession.stash.appscode.com").unwrap(),
            &STASH_RESTORE_SESSION
        );
        assert_eq!(lookup("tasks").unwrap(), &STASH_TASK);
        assert_eq!(
            by_api_version_kind("stash.appscode.com/v1beta1", "RestoreSession").unwrap(),
            &STASH_RESTORE_SESSION
        );
        assert_eq!(
            by_api_version_kind("stash.appscode.com/v1alpha1", "Repository").unwrap(),
            &STASH_REPOSITORY
        );
        let keys: std::collections::BTreeSet<_> = every_kind().map(|rt| rt.key_kind()).collect();
        assert_eq!(
            keys.len(),
            ALL.len() + STASH.len(),
            "every kind has its own queue key"
        );
    }

    #[test]
    fn short_names_and_plurals_resolve_like_kubectl() {
        assert_eq!(lookup("bc").unwrap().kind, "BackupConfiguration");
        assert_eq!(lookup("repo").unwrap().kind, "Repository");
        assert_eq!(lookup("restore").unwrap().kind, "RestoreSession");
        assert_eq!(lookup("fn").unwrap().kind, "Function");
        assert_eq!(lookup("BackupStorages").unwrap().kind, "BackupStorage");
        assert_eq!(
            lookup("snapshots.storage.kubestash.com").unwrap().kind,
            "Snapshot"
        );
        assert!(lookup("snapshots.core.kubestash.com").is_none());
        assert!(lookup("pods").is_none());
        assert_eq!(lookup("deploy").unwrap().kind, "Deployment");
        assert_eq!(lookup("statefulsets.apps").unwrap().kind, "StatefulSet");
        assert_eq!(lookup("pvc").unwrap().kind, "PersistentVolumeClaim");
        assert!(lookup("deployments.core.kubestash.com").is_none());
    }

    #[test]
    fn api_version_of_core_group_has_no_slash() {
        assert_eq!(SECRET.api_version(), "v1");
        assert_eq!(BACKUP_SESSION.api_version(), "core.kubestash.com/v1alpha1");
        assert_eq!(
            by_api_version_kind("addons.kubestash.com/v1alpha1", "Addon"),
            Some(&ADDON)
        );
    }
}
