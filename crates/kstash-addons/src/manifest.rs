//! The manifest driver (`kubedump-addon`: functions `kubedump-backup` and `kubedump-restore`):
//! objects read through an API ([`with_objects`]) written out as YAML files in KubeStash
//! kubedump's layout, and such files created again in dependency order.
//!
//! The layout (KubeStash docs, "Backup resource YAMLs of entire cluster"): one file per object,
//! `<resource>[.<group>]/cluster/<name>.yaml` for cluster-scoped objects and
//! `<resource>[.<group>]/namespaces/<namespace>/<name>.yaml` for namespaced ones, under the
//! scratch directory's `manifest/` (KubeStash's snapshot path is `/kubestash-tmp/manifest`).
//!
//! The filters are KubeStash's task parameters, all ANDed: `IncludeNamespaces` /
//! `ExcludeNamespaces`, `IncludeResources` / `ExcludeResources` (plural `resource` or
//! `resource.group`), `ANDedLabelSelectors` / `ORedLabelSelectors` (`k:v,k2=v2` or bare keys) and
//! `IncludeClusterResources` (cluster-scoped objects are left out unless it is `true`). `*` means
//! all; an empty include list means all too (KubeStash's documented default is `*`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kstash_api::client::Resources;
use kstash_api::common::TypedObjectReference;
use kstash_api::dynamic::{AnyObjects, ApiKind, RegistryObjects};
use kstash_api::meta;
use serde_json::Value;

use crate::error::{ExecError, Result};
use crate::task::ResolvedTask;

/// Run `f` on the objects of every kind `client` can reach: discovery when it has it, else
/// kstash's registry (on the embedded runtime: kstash's own stored objects).
pub fn with_objects<R>(client: &dyn Resources, f: impl FnOnce(&dyn AnyObjects) -> R) -> R {
    match client.any_objects() {
        Some(api) => f(api),
        None => f(&RegistryObjects(client)),
    }
}

/// A list parameter: every item, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection {
    All,
    Listed(Vec<String>),
}

impl Selection {
    /// `*` (anywhere in the list) is all; an empty value is `empty`.
    fn parse(value: Option<&str>, empty: Selection) -> Selection {
        let items: Vec<String> = value
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if items.iter().any(|i| i == "*") {
            Selection::All
        } else if items.is_empty() {
            empty
        } else {
            Selection::Listed(items)
        }
    }

    fn contains(&self, matches: impl Fn(&str) -> bool) -> bool {
        match self {
            Selection::All => true,
            Selection::Listed(items) => items.iter().any(|i| matches(i)),
        }
    }
}

/// One label requirement: the key, and the value unless any value will do.
type LabelRequirement = (String, Option<String>);

fn parse_labels(value: Option<&str>) -> Vec<LabelRequirement> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once([':', '=']) {
            Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
            None => (item.to_string(), None),
        })
        .collect()
}

fn has_label(labels: &serde_json::Map<String, Value>, (key, value): &LabelRequirement) -> bool {
    match (labels.get(key).and_then(Value::as_str), value) {
        (Some(_), None) => true,
        (Some(v), Some(want)) => v == want,
        (None, _) => false,
    }
}

/// Which objects a manifest backup or restore takes (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFilter {
    include_namespaces: Selection,
    exclude_namespaces: Selection,
    include_resources: Selection,
    exclude_resources: Selection,
    and_labels: Vec<LabelRequirement>,
    or_labels: Vec<LabelRequirement>,
    include_cluster_resources: bool,
}

fn flag(task: &ResolvedTask, name: &str) -> Result<bool> {
    task.bool_param(name, false)
}

impl ManifestFilter {
    /// The filter of a `manifest-backup` or `manifest-restore` task's parameters.
    pub fn from_task(task: &ResolvedTask) -> Result<ManifestFilter> {
        let none = Selection::Listed(Vec::new());
        Ok(ManifestFilter {
            include_namespaces: Selection::parse(task.param("IncludeNamespaces"), Selection::All),
            exclude_namespaces: Selection::parse(task.param("ExcludeNamespaces"), none.clone()),
            include_resources: Selection::parse(task.param("IncludeResources"), Selection::All),
            exclude_resources: Selection::parse(task.param("ExcludeResources"), none),
            and_labels: parse_labels(task.param("ANDedLabelSelectors")),
            or_labels: parse_labels(task.param("ORedLabelSelectors")),
            include_cluster_resources: flag(task, "IncludeClusterResources")?,
        })
    }

    /// Whether the filter takes objects of `kind` at all (before looking at any object).
    pub fn takes_kind(&self, kind: &ApiKind) -> bool {
        let resource = kind.resource();
        let names = |i: &str| i == kind.plural || i == resource;
        (kind.namespaced || self.include_cluster_resources)
            && self.include_resources.contains(names)
            && !matches!(&self.exclude_resources, Selection::Listed(l) if l.iter().any(|i| names(i)))
    }

    /// Whether the filter takes `obj`, an object of `kind`.
    pub fn takes(&self, kind: &ApiKind, obj: &Value) -> bool {
        if !self.takes_kind(kind) {
            return false;
        }
        if kind.namespaced {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            if !self.include_namespaces.contains(|i| i == ns)
                || matches!(&self.exclude_namespaces, Selection::Listed(l) if l.iter().any(|i| i == ns))
            {
                return false;
            }
        }
        let empty = serde_json::Map::new();
        let labels = obj["metadata"]["labels"].as_object().unwrap_or(&empty);
        self.and_labels.iter().all(|r| has_label(labels, r))
            && (self.or_labels.is_empty() || self.or_labels.iter().any(|r| has_label(labels, r)))
    }
}

/// Where an object's file goes, relative to the `manifest/` directory.
pub fn file_path(kind: &ApiKind, obj: &Value) -> PathBuf {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut p = PathBuf::from(kind.resource());
    if kind.namespaced {
        p.push("namespaces");
        p.push(obj["metadata"]["namespace"].as_str().unwrap_or_default());
    } else {
        p.push("cluster");
    }
    p.push(format!("{name}.yaml"));
    p
}

/// Kinds whose objects are records of what happened rather than configuration: their `status`
/// is kept in the backup (it is the record) and they are never created again by a restore (a
/// BackupSession created again would run again; Snapshots come back from the bucket through
/// their BackupStorage).
fn is_history(kind: &ApiKind) -> bool {
    let kstash = [meta::CORE_GROUP, meta::STORAGE_GROUP, meta::STASH_GROUP];
    kstash.contains(&kind.group.as_str())
        && matches!(
            kind.kind.as_str(),
            "BackupSession" | "RestoreSession" | "BackupVerificationSession" | "Snapshot"
        )
}

/// The object without the fields its server sets: uid, resourceVersion, generation,
/// creationTimestamp, managedFields, selfLink, deletion marks, and `status` (kept for the
/// records of [`is_history`]).
pub fn sanitize(kind: &ApiKind, mut obj: Value) -> Value {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            m.remove(f);
        }
    }
    if !is_history(kind)
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    obj
}

/// What a manifest backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Files written.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Write every object `filter` takes from `api` under `dir` (created, mode 0700: Secrets are
/// among the objects).
pub fn dump_manifests(api: &dyn AnyObjects, filter: &ManifestFilter, dir: &Path) -> Result<DumpSummary> {
    let mut objects = Vec::new();
    for kind in api.kinds()? {
        if !filter.takes_kind(&kind) {
            continue;
        }
        for obj in api.list(&kind)? {
            if filter.takes(&kind, &obj) {
                objects.push((kind.clone(), obj));
            }
        }
    }
    write_objects(dir, objects.iter().map(|(k, o)| (file_path(k, o), k, o)))
}

/// The component a manifest backup writes (KubeStash's kubedump names it so).
pub const MANIFEST_COMPONENT: &str = "manifest";

/// A manifest backup's files, in a private temporary directory removed on drop.
pub struct Scratch {
    _dir: tempfile::TempDir,
    /// The `manifest/` directory the files are under (what is backed up).
    pub manifest: PathBuf,
}

/// Where a task's temporary files go: inside its `scratchDir` when that directory exists
/// (KubeStash's `/kubestash-tmp` volume in a cluster), else the system's temporary directory.
pub fn scratch_dir(task: &ResolvedTask) -> Result<Scratch> {
    let base = task
        .param("scratchDir")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("kstash-manifest-")
        .tempdir_in(&base)
        .map_err(|e| {
            ExecError::invalid(
                task.describe(),
                format!("cannot create a temporary directory in {}: {e}; fix: set scratchDir to a writable directory", base.display()),
            )
        })?;
    let manifest = dir.path().join(MANIFEST_COMPONENT);
    Ok(Scratch { _dir: dir, manifest })
}

/// Write the objects a manifest backup task takes from `client` into a scratch directory:
/// - `kubedump-backup` without a target: every object the task's filters take;
/// - `kubedump-backup` with a target (KubeStash's application backup): the target at
///   `<name>.yaml` and, with `includeDependants` "true", everything it owns, each under its owner
///   as `<Kind>/<name>/<name>.yaml`;
/// - `manifest-backup` of `workload-addon`: the target workload and what its pods reference
///   (ServiceAccount, ConfigMaps, Secrets, PersistentVolumeClaims) and, with
///   `includeRBACResources` "true", the Roles and bindings of its ServiceAccount.
pub fn dump_task(
    client: &dyn Resources,
    task: &ResolvedTask,
    target: Option<&TypedObjectReference>,
    namespace: &str,
) -> Result<(Scratch, DumpSummary)> {
    let scratch = scratch_dir(task)?;
    let summary = with_objects(client, |api| -> Result<DumpSummary> {
        match (task.function.as_str(), target) {
            (WORKLOAD_BACKUP_FUNCTION, Some(target)) => {
                let include_rbac = flag(task, "includeRBACResources")?;
                let objects =
                    workload_objects(api, find_target(api, target, namespace, task)?, include_rbac)?;
                write_objects(
                    &scratch.manifest,
                    objects.iter().map(|(k, o)| (file_path(k, o), k, o)),
                )
            }
            (WORKLOAD_BACKUP_FUNCTION, None) => Err(ExecError::invalid(
                task.describe(),
                "a workload manifest backup needs the BackupConfiguration's spec.target (the workload); set it",
            )),
            (_, Some(target)) => {
                let include_dependants = flag(task, "includeDependants")?;
                let root = find_target(api, target, namespace, task)?;
                let objects = application_objects(api, root, include_dependants)?;
                write_objects(
                    &scratch.manifest,
                    objects.iter().map(|(p, k, o)| (p.clone(), k, o)),
                )
            }
            (_, None) => dump_manifests(api, &ManifestFilter::from_task(task)?, &scratch.manifest),
        }
    })?;
    Ok((scratch, summary))
}

/// The function of `workload-addon`'s `manifest-backup` task.
pub const WORKLOAD_BACKUP_FUNCTION: &str = "manifest-backup";
/// The function of `workload-addon`'s `manifest-restore` task.
pub const WORKLOAD_RESTORE_FUNCTION: &str = "manifest-restore";

/// The target object of a manifest backup, with its kind.
fn find_target(
    api: &dyn AnyObjects,
    target: &TypedObjectReference,
    namespace: &str,
    task: &ResolvedTask,
) -> Result<(ApiKind, Value)> {
    let group = target.api_group.as_deref().unwrap_or_default();
    let kind_name = target.kind.as_deref().unwrap_or_default();
    let ns = target
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    let what = format!("target {kind_name} {ns}/{}", target.name);
    let kind = api
        .kinds()?
        .into_iter()
        .find(|k| k.group == group && k.kind == kind_name)
        .ok_or_else(|| {
            ExecError::invalid(
                task.describe(),
                format!("{what}: kind {kind_name} of group {group:?} is not served here; fix spec.target"),
            )
        })?;
    let obj = api.get(&kind, ns, &target.name)?.ok_or_else(|| {
        ExecError::invalid(
            task.describe(),
            format!("{what} does not exist; fix spec.target or create it"),
        )
    })?;
    Ok((kind, obj))
}

/// Write `(relative path, kind, object)` files under `dir`, sanitized.
fn write_objects<'a>(
    dir: &Path,
    objects: impl Iterator<Item = (PathBuf, &'a ApiKind, &'a Value)>,
) -> Result<DumpSummary> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        ExecError::invalid("manifest backup", format!("cannot {what} {}: {e}", p.display()))
    };
    create_private_dir(dir).map_err(|e| io("create", dir, e))?;
    let mut summary = DumpSummary::default();
    for (rel, kind, obj) in objects {
        let path = dir.join(rel);
        let mut obj = sanitize(kind, obj.clone());
        // A list item may lack apiVersion/kind; every file must be applicable on its own.
        obj["apiVersion"] = Value::String(kind.api_version());
        obj["kind"] = Value::String(kind.kind.clone());
        let text = serde_yaml_ng::to_string(&obj)
            .map_err(|e| ExecError::invalid(path.display().to_string(), format!("cannot write YAML: {e}")))?;
        if let Some(parent) = path.parent() {
            create_private_dir(parent).map_err(|e| io("create", parent, e))?;
        }
        std::fs::write(&path, &text).map_err(|e| io("write", &path, e))?;
        summary.objects += 1;
        summary.bytes += text.len() as u64;
    }
    tracing::info!(
        objects = summary.objects,
        bytes = summary.bytes,
        "manifests written"
    );
    Ok(summary)
}

/// KubeStash's application backup: the target at `<name>.yaml` and (with `dependants`) every
/// object owned by it, directly or through other owned objects, each at
/// `<owner's directory>/<Kind>/<name>/<name>.yaml`.
fn application_objects(
    api: &dyn AnyObjects,
    (kind, root): (ApiKind, Value),
    dependants: bool,
) -> Result<Vec<(PathBuf, ApiKind, Value)>> {
    let root_name = root["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = root["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut out = vec![(PathBuf::from(format!("{root_name}.yaml")), kind, root.clone())];
    if !dependants {
        return Ok(out);
    }
    // Every namespaced object of the target's namespace, by the uid of its controller/owner.
    let mut candidates: Vec<(ApiKind, Value)> = Vec::new();
    for k in api.kinds()?.into_iter().filter(|k| k.namespaced) {
        for o in api.list(&k)? {
            if o["metadata"]["namespace"].as_str() == Some(ns.as_str())
                && o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            {
                candidates.push((k.clone(), o));
            }
        }
    }
    let mut queue = vec![(
        root["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
        PathBuf::new(),
    )];
    while let Some((uid, dir)) = queue.pop() {
        if uid.is_empty() {
            continue;
        }
        for (k, o) in &candidates {
            let owned = o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid.as_str())));
            if owned {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                let sub = dir.join(&k.kind).join(name);
                out.push((sub.join(format!("{name}.yaml")), k.clone(), o.clone()));
                queue.push((o["metadata"]["uid"].as_str().unwrap_or_default().to_string(), sub));
            }
        }
    }
    Ok(out)
}

/// What a workload's pods reference, as `(kind, name)` in the workload's namespace.
fn pod_references(workload: &Value) -> Vec<(&'static str, String)> {
    let pod = &workload["spec"]["template"]["spec"];
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut add = |kind: &'static str, name: Option<&str>| {
        if let Some(n) = name.filter(|n| !n.is_empty())
            && !out.iter().any(|(k, m)| *k == kind && m == n)
        {
            out.push((kind, n.to_string()));
        }
    };
    add(
        "ServiceAccount",
        pod["serviceAccountName"]
            .as_str()
            .or(pod["serviceAccount"].as_str()),
    );
    for v in pod["volumes"].as_array().into_iter().flatten() {
        add("ConfigMap", v["configMap"]["name"].as_str());
        add("Secret", v["secret"]["secretName"].as_str());
        add(
            "PersistentVolumeClaim",
            v["persistentVolumeClaim"]["claimName"].as_str(),
        );
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            add("ConfigMap", source["configMap"]["name"].as_str());
            add("Secret", source["secret"]["name"].as_str());
        }
    }
    for s in pod["imagePullSecrets"].as_array().into_iter().flatten() {
        add("Secret", s["name"].as_str());
    }
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|c| pod[*c].as_array().into_iter().flatten());
    for c in containers {
        for from in c["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", from["configMapRef"]["name"].as_str());
            add("Secret", from["secretRef"]["name"].as_str());
        }
        for e in c["env"].as_array().into_iter().flatten() {
            add("ConfigMap", e["valueFrom"]["configMapKeyRef"]["name"].as_str());
            add("Secret", e["valueFrom"]["secretKeyRef"]["name"].as_str());
        }
    }
    out
}

/// A workload and what it needs to run again: the objects its pods reference and, with
/// `include_rbac`, the RoleBindings and ClusterRoleBindings naming its ServiceAccount with their
/// Roles and ClusterRoles. References to objects that do not exist (or kinds not served) are
/// left out with a log line.
fn workload_objects(
    api: &dyn AnyObjects,
    (kind, workload): (ApiKind, Value),
    include_rbac: bool,
) -> Result<Vec<(ApiKind, Value)>> {
    let ns = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kinds = api.kinds()?;
    let core = |k: &str| kinds.iter().find(|a| a.group.is_empty() && a.kind == k);
    let refs = pod_references(&workload);
    let mut out = vec![(kind, workload)];
    for (k, name) in &refs {
        let Some(api_kind) = core(k) else {
            tracing::info!(kind = k, name = %name, "referenced kind is not served here; left out");
            continue;
        };
        match api.get(api_kind, &ns, name)? {
            Some(o) => out.push((api_kind.clone(), o)),
            None => tracing::warn!(kind = k, name = %name, "referenced object does not exist; left out"),
        }
    }
    let service_account = refs
        .iter()
        .find(|(k, _)| *k == "ServiceAccount")
        .map(|(_, n)| n.clone());
    if include_rbac && let Some(sa) = service_account {
        let rbac = |k: &str| {
            kinds
                .iter()
                .find(|a| a.group == "rbac.authorization.k8s.io" && a.kind == k)
        };
        let names_sa = |b: &Value| {
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"].as_str() == Some(sa.as_str())
                    && s["namespace"].as_str().unwrap_or(&ns) == ns
            })
        };
        for (binding_kind, role_kind, namespaced) in [
            ("RoleBinding", "Role", true),
            ("ClusterRoleBinding", "ClusterRole", false),
        ] {
            let (Some(bk), Some(rk)) = (rbac(binding_kind), rbac(role_kind)) else {
                continue;
            };
            for b in api.list(bk)? {
                if (namespaced && b["metadata"]["namespace"].as_str() != Some(ns.as_str())) || !names_sa(&b) {
                    continue;
                }
                let role_kind_named = b["roleRef"]["kind"].as_str().unwrap_or_default().to_string();
                let role_name = b["roleRef"]["name"].as_str().unwrap_or_default().to_string();
                out.push((bk.clone(), b));
                // A RoleBinding may name a ClusterRole.
                let rk = if role_kind_named == "ClusterRole" {
                    rbac("ClusterRole")
                } else {
                    Some(rk)
                };
                if let Some(rk) = rk
                    && let Some(role) = api.get(rk, &ns, &role_name)?
                    && !out
                        .iter()
                        .any(|(k, o)| k == rk && o["metadata"]["name"] == role["metadata"]["name"])
                {
                    out.push((rk.clone(), role));
                }
            }
        }
    }
    Ok(out)
}

/// Restore the objects under `dir` (a restored `manifest/` directory) into `client` as a
/// `manifest-restore` task says; fails after trying every object when one could not be restored.
pub fn restore_task(client: &dyn Resources, task: &ResolvedTask, dir: &Path) -> Result<RestoreSummary> {
    let options = RestoreOptions::from_task(task)?;
    let objects = read_manifests(dir)?;
    let summary = with_objects(client, |api| restore_objects(api, objects, &options))?;
    match summary.failures() {
        Some(failed) => Err(ExecError::invalid(
            task.describe(),
            format!("these objects could not be restored (the others were): {failed}"),
        )),
        None => Ok(summary),
    }
}

/// How many times (every 500 ms) discovery is asked whether new CustomResourceDefinitions
/// are served before the objects of their kinds are restored anyway (and reported if refused).
const CRD_ESTABLISH_POLLS: usize = 20;

/// Restore `objects` into `api`: CustomResourceDefinitions first, then (their kinds now served)
/// everything else, in dependency order.
pub fn restore_objects(
    api: &dyn AnyObjects,
    objects: Vec<ManifestObject>,
    options: &RestoreOptions,
) -> Result<RestoreSummary> {
    let is_crd = |m: &ManifestObject| {
        m.object["kind"] == "CustomResourceDefinition"
            && m.object["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
    };
    let (crds, rest): (Vec<ManifestObject>, Vec<ManifestObject>) = objects.into_iter().partition(is_crd);
    let mut summary = RestoreSummary::default();
    // (group, kind) of the CustomResourceDefinitions created here.
    let mut new_kinds: Vec<(String, String)> = Vec::new();
    if !crds.is_empty() {
        let kinds = api.kinds()?;
        for (mo, step) in plan_restore(crds, &kinds, options) {
            let defines = (
                mo.object["spec"]["group"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                mo.object["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            let done = apply_restore(api, vec![(mo, step)], options).objects;
            if done.iter().any(|(_, o)| *o == Outcome::Created) {
                new_kinds.push(defines);
            }
            summary.objects.extend(done);
        }
    }
    // A new CustomResourceDefinition is served once the API server has established it.
    let mut kinds = api.kinds()?;
    for _ in 0..CRD_ESTABLISH_POLLS {
        let served = |(g, k): &(String, String)| kinds.iter().any(|a| &a.group == g && &a.kind == k);
        if new_kinds.iter().all(served) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        kinds = api.kinds()?;
    }
    summary
        .objects
        .extend(apply_restore(api, plan_restore(rest, &kinds, options), options).objects);
    tracing::info!(
        created = summary.count(|o| *o == Outcome::Created),
        replaced = summary.count(|o| *o == Outcome::Replaced),
        kept = summary.count(|o| *o == Outcome::Kept),
        skipped = summary.count(|o| matches!(o, Outcome::Skipped(_))),
        dry_run = options.dry_run,
        "manifests restored"
    );
    Ok(summary)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// How a manifest restore treats what it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Which objects.
    pub filter: ManifestFilter,
    /// `OverrideResources`: replace objects that exist (otherwise they are kept).
    pub override_resources: bool,
    /// `StorageClassMappings` (`old=new,…`): storage classes of PersistentVolumeClaims and
    /// PersistentVolumes rewritten.
    pub storage_class_mappings: BTreeMap<String, String>,
    /// `RestorePVs`: PersistentVolumes are created (otherwise left out, and claims lose their
    /// `spec.volumeName` so that they bind anew).
    pub restore_pvs: bool,
    /// Print what would change, change nothing.
    pub dry_run: bool,
}

impl RestoreOptions {
    /// The options of a `manifest-restore` task's parameters.
    pub fn from_task(task: &ResolvedTask) -> Result<RestoreOptions> {
        let mut mappings = BTreeMap::new();
        for item in task.list_param("StorageClassMappings") {
            let Some((old, new)) = item
                .split_once('=')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty())
            else {
                return Err(ExecError::invalid(
                    task.describe(),
                    format!("parameter StorageClassMappings item {item:?} is not old=new"),
                ));
            };
            mappings.insert(old.trim().to_string(), new.trim().to_string());
        }
        let mut filter = ManifestFilter::from_task(task)?;
        if task.function == WORKLOAD_RESTORE_FUNCTION {
            // A workload's backup holds its ClusterRoles and bindings only with includeRBACResources.
            filter.include_cluster_resources = flag(task, "includeRBACResources")?;
        }
        Ok(RestoreOptions {
            filter,
            // KubeStash spells it `OverrideResources` in kubedump-addon and `overrideResources`
            // in workload-addon.
            override_resources: flag(task, "OverrideResources")? || flag(task, "overrideResources")?,
            storage_class_mappings: mappings,
            restore_pvs: flag(task, "RestorePVs")?,
            dry_run: flag(task, "dryRun")?,
        })
    }
}

/// One object read back from a manifest backup.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    /// The file it came from, relative to the `manifest/` directory.
    pub file: PathBuf,
    /// The `<resource>[.<group>]` directory it sits in.
    pub resource: String,
    /// The object.
    pub object: Value,
}

impl ManifestObject {
    /// `Kind namespace/name` (or `Kind name`), for reports.
    pub fn describe(&self) -> String {
        let o = &self.object;
        let kind = o["kind"].as_str().unwrap_or("?");
        let name = o["metadata"]["name"].as_str().unwrap_or("?");
        match o["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
            _ => format!("{kind} {name}"),
        }
    }
}

/// Every object file under `dir` (a restored `manifest/` directory), in path order.
pub fn read_manifests(dir: &Path) -> Result<Vec<ManifestObject>> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)
        .map_err(|e| ExecError::invalid("manifest restore", format!("cannot read {}: {e}", dir.display())))?;
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ExecError::invalid(rel.display().to_string(), format!("cannot read: {e}")))?;
        let object: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| ExecError::invalid(rel.display().to_string(), format!("not YAML: {e}")))?;
        let resource = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(ManifestObject {
            file: rel,
            resource,
            object,
        });
    }
    Ok(out)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// What the restore does with one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create it, or (with `OverrideResources`) replace it when it exists.
    Apply { kind: ApiKind, object: Value },
    /// Leave it out, and why.
    Skip { reason: String },
}

/// Class, apply rank, kind, namespace, name: what objects are created in order of.
type RestoreRank = (u8, usize, String, String, String);

/// The order objects are created in: CustomResourceDefinitions, Namespaces, other
/// cluster-scoped objects, namespaced objects, workloads last; inside a class kstash's apply
/// order ([`kstash_api::manifest::apply_rank`]) and then by kind, namespace and name.
fn restore_rank(kind: &ApiKind, obj: &Value) -> RestoreRank {
    let class = match (kind.group.as_str(), kind.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "Namespace") => 1,
        (_, _) if !kind.namespaced => 2,
        ("apps", _) | ("batch", _) | ("", "Pod" | "ReplicationController") => 4,
        _ => 3,
    };
    let md = &obj["metadata"];
    (
        class,
        kstash_api::manifest::apply_rank(obj),
        kind.kind.clone(),
        md["namespace"].as_str().unwrap_or_default().to_string(),
        md["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// The restore plan: for every object read back, in creation order, what to do with it. Pure:
/// `kinds` are the kinds the destination serves.
pub fn plan_restore(
    objects: Vec<ManifestObject>,
    kinds: &[ApiKind],
    options: &RestoreOptions,
) -> Vec<(ManifestObject, Step)> {
    let mut out: Vec<(Option<RestoreRank>, ManifestObject, Step)> = Vec::new();
    for mo in objects {
        let api_version = mo.object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = mo.object["kind"].as_str().unwrap_or_default();
        let Some(kind) = kinds
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind_name)
            .or_else(|| {
                // A version the destination no longer serves: the same group and kind.
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                kinds.iter().find(|k| k.group == group && k.kind == kind_name)
            })
        else {
            let step = Step::Skip {
                reason: format!("kind {api_version} {kind_name} is not served here"),
            };
            out.push((None, mo, step));
            continue;
        };
        let skip = |reason: &str| Step::Skip {
            reason: reason.to_string(),
        };
        let step = if !options.filter.takes(kind, &mo.object) {
            skip("left out by the task's filters")
        } else if is_history(kind) {
            skip("a record of a past run, not created again (Snapshots come back from their BackupStorage)")
        } else if mo.object["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["controller"] == Value::Bool(true)))
        {
            skip("created by its controller from its owner")
        } else if kind.group.is_empty() && kind.kind == "PersistentVolume" && !options.restore_pvs {
            skip("PersistentVolumes are restored only with RestorePVs \"true\"")
        } else {
            Step::Apply {
                kind: kind.clone(),
                object: prepare(kind, mo.object.clone(), options),
            }
        };
        out.push((Some(restore_rank(kind, &mo.object)), mo, step));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, mo, step)| (mo, step)).collect()
}

/// The object as it is created: server-set fields and owner references (their uids are gone)
/// dropped, storage classes mapped, and a claim's volume name dropped unless its volume is
/// restored too.
fn prepare(kind: &ApiKind, obj: Value, options: &RestoreOptions) -> Value {
    let mut obj = sanitize(kind, obj);
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("ownerReferences");
    }
    let storage_kind =
        kind.group.is_empty() && matches!(kind.kind.as_str(), "PersistentVolumeClaim" | "PersistentVolume");
    if storage_kind {
        if let Some(class) = obj["spec"]["storageClassName"].as_str()
            && let Some(new) = options.storage_class_mappings.get(class)
        {
            obj["spec"]["storageClassName"] = Value::String(new.clone());
        }
        if kind.kind == "PersistentVolumeClaim" && !options.restore_pvs {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("volumeName");
            }
            if let Some(a) = obj["metadata"]["annotations"].as_object_mut() {
                a.retain(|k, _| !k.starts_with("pv.kubernetes.io/"));
            }
        }
    }
    obj
}

/// What happened to one object of a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Replaced,
    /// It exists and `OverrideResources` is not set.
    Kept,
    Skipped(String),
    Failed(String),
    /// A dry run's `would create` / `would replace` / `would keep`.
    Would(&'static str),
}

/// What a manifest restore did, object by object (`Kind namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    pub objects: Vec<(String, Outcome)>,
}

impl RestoreSummary {
    /// How many objects ended with an outcome matching `f`.
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.objects.iter().filter(|(_, o)| f(o)).count()
    }

    /// The failed objects with their errors, `None` when none failed.
    pub fn failures(&self) -> Option<String> {
        let failed: Vec<String> = self
            .objects
            .iter()
            .filter_map(|(what, o)| match o {
                Outcome::Failed(e) => Some(format!("{what}: {e}")),
                _ => None,
            })
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

/// Carry out the plan against `api`: each object is created, replaced or kept; one that fails
/// is recorded and the rest go on.
pub fn apply_restore(
    api: &dyn AnyObjects,
    plan: Vec<(ManifestObject, Step)>,
    options: &RestoreOptions,
) -> RestoreSummary {
    let mut summary = RestoreSummary::default();
    for (mo, step) in plan {
        let what = mo.describe();
        let outcome = match step {
            Step::Skip { reason } => Outcome::Skipped(reason),
            Step::Apply { kind, object } => apply_one(api, &kind, object, options),
        };
        match &outcome {
            Outcome::Failed(e) => tracing::warn!(object = %what, error = %e, "object not restored"),
            Outcome::Skipped(r) => tracing::debug!(object = %what, reason = %r, "object left out"),
            o => tracing::info!(object = %what, outcome = ?o, "object restored"),
        }
        summary.objects.push((what, outcome));
    }
    summary
}

fn apply_one(api: &dyn AnyObjects, kind: &ApiKind, mut object: Value, options: &RestoreOptions) -> Outcome {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let existing = match api.get(kind, &ns, &name) {
        Ok(e) => e,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match (existing, options.override_resources, options.dry_run) {
        (None, _, true) => Outcome::Would("would create"),
        (Some(_), true, true) => Outcome::Would("would replace"),
        (Some(_), false, true) => Outcome::Would("would keep"),
        (Some(_), false, false) => Outcome::Kept,
        (None, _, false) => match api.create(kind, object) {
            Ok(_) => Outcome::Created,
            Err(e) if e.is_conflict() => Outcome::Kept,
            Err(e) => Outcome::Failed(e.to_string()),
        },
        (Some(current), true, false) => {
            object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            match api.replace(kind, object) {
                Ok(_) => Outcome::Replaced,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::task::DriverKind;

    fn task(params: &[(&str, &str)]) -> ResolvedTask {
        ResolvedTask {
            addon: "kubedump-addon".into(),
            task: "manifest-backup".into(),
            function: "kubedump-backup".into(),
            driver: DriverKind::Manifest,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            required: Vec::new(),
        }
    }

    fn kind(group: &str, kind: &str, plural: &str, namespaced: bool) -> ApiKind {
        ApiKind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        }
    }

    fn object(kind: &ApiKind, ns: Option<&str>, name: &str, labels: Value) -> Value {
        let mut o = json!({"apiVersion": kind.api_version(), "kind": kind.kind,
            "metadata": {"name": name, "labels": labels}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = json!(ns);
        }
        o
    }

    #[test]
    fn filters_are_anded_as_kubestash_documents_them() {
        let deploy = kind("apps", "Deployment", "deployments", true);
        let cm = kind("", "ConfigMap", "configmaps", true);
        let role = kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false);
        let a = object(
            &deploy,
            Some("demo-a"),
            "web",
            json!({"app": "my-app", "tier": "fe"}),
        );
        let b = object(&cm, Some("demo-b"), "conf", json!({"app": "my-sts"}));
        let c = object(&role, None, "reader", json!({"app": "my-app"}));
        let none = object(&cm, Some("kube-system"), "x", json!({}));
        // (params, takes a, takes b, takes c, takes none)
        type Params = &'static [(&'static str, &'static str)];
        let table: &[(Params, [bool; 4])] = &[
            (&[], [true, true, false, true]),
            (&[("IncludeClusterResources", "true")], [true, true, true, true]),
            (
                &[("IncludeNamespaces", "demo-a,demo-b")],
                [true, true, false, false],
            ),
            (
                &[("IncludeNamespaces", "*"), ("ExcludeNamespaces", "kube-system")],
                [true, true, false, false],
            ),
            (
                &[("IncludeResources", "deployments")],
                [true, false, false, false],
            ),
            (
                &[("IncludeResources", "deployments.apps,configmaps")],
                [true, true, false, true],
            ),
            (
                &[("IncludeResources", "deployments.batch")],
                [false, false, false, false],
            ),
            (&[("ExcludeResources", "configmaps")], [true, false, false, false]),
            (
                &[
                    ("ORedLabelSelectors", "app:my-app,app:my-sts"),
                    ("IncludeClusterResources", "true"),
                ],
                [true, true, true, false],
            ),
            (
                &[("ANDedLabelSelectors", "app=my-app,tier")],
                [true, false, false, false],
            ),
            (&[("ANDedLabelSelectors", "app")], [true, true, false, false]),
        ];
        for (params, want) in table {
            let f = ManifestFilter::from_task(&task(params)).unwrap();
            let got = [
                f.takes(&deploy, &a),
                f.takes(&cm, &b),
                f.takes(&role, &c),
                f.takes(&cm, &none),
            ];
            assert_eq!(&got, want, "params {params:?}");
        }
        let err = ManifestFilter::from_task(&task(&[("IncludeClusterResources", "yes")])).unwrap_err();
        assert!(
            err.to_string().contains("IncludeClusterResources is \"yes\""),
            "{err}"
        );
    }

    #[test]
    fn files_follow_kubedumps_layout() {
        let sts = kind("apps", "StatefulSet", "statefulsets", true);
        let role = kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false);
        let secret = kind("", "Secret", "secrets", true);
        assert_eq!(
            file_path(&sts, &object(&sts, Some("demo-b"), "db", json!({}))),
            Path::new("statefulsets.apps/namespaces/demo-b/db.yaml")
        );
        assert_eq!(
            file_path(&role, &object(&role, None, "r", json!({}))),
            Path::new("clusterroles.rbac.authorization.k8s.io/cluster/r.yaml")
        );
        assert_eq!(
            file_path(&secret, &object(&secret, Some("demo"), "s", json!({}))),
            Path::new("secrets/namespaces/demo/s.yaml")
        );
    }

    #[test]
    fn server_set_fields_are_dropped_and_records_keep_their_status() {
        let cm = kind("", "ConfigMap", "configmaps", true);
        let mut o = object(&cm, Some("d"), "c", json!({}));
        o["metadata"]["uid"] = json!("u");
        o["metadata"]["resourceVersion"] = json!("7");
        o["metadata"]["managedFields"] = json!([]);
        o["status"] = json!({"x": 1});
        let clean = sanitize(&cm, o.clone());
        assert!(clean["metadata"].get("uid").is_none());
        assert!(clean["metadata"].get("resourceVersion").is_none());
        assert!(clean["metadata"].get("managedFields").is_none());
        assert!(clean.get("status").is_none());
        let snap = ApiKind::of(&meta::SNAPSHOT);
        assert_eq!(sanitize(&snap, o)["status"], json!({"x": 1}));
    }

    fn mo(o: Value) -> ManifestObject {
        ManifestObject {
            file: PathBuf::new(),
            resource: String::new(),
            object: o,
        }
    }

    #[test]
    fn restore_creates_referents_first_and_leaves_out_what_it_must() {
        let kinds = vec![
            kind(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            ),
            kind("", "Namespace", "namespaces", false),
            kind("", "PersistentVolume", "persistentvolumes", false),
            kind("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
            kind("apps", "Deployment", "deployments", true),
            kind("apps", "ReplicaSet", "replicasets", true),
            kind("", "Secret", "secrets", true),
            ApiKind::of(&meta::BACKUP_CONFIGURATION),
            ApiKind::of(&meta::BACKUP_SESSION),
        ];
        let k = |name: &str| kinds.iter().find(|k| k.kind == name).unwrap().clone();
        let mut rs = object(&k("ReplicaSet"), Some("d"), "web-1", json!({}));
        rs["metadata"]["ownerReferences"] =
            json!([{"kind": "Deployment", "name": "web", "controller": true, "uid": "u"}]);
        let mut pvc = object(&k("PersistentVolumeClaim"), Some("d"), "data", json!({}));
        pvc["spec"] = json!({"storageClassName": "longhorn", "volumeName": "pv-1"});
        let objects = vec![
            object(&k("Deployment"), Some("d"), "web", json!({})),
            rs,
            object(&k("BackupConfiguration"), Some("d"), "bc", json!({})),
            object(&k("BackupSession"), Some("d"), "bc-1", json!({})),
            pvc,
            object(&k("Secret"), Some("d"), "s", json!({})),
            object(&k("PersistentVolume"), None, "pv-1", json!({})),
            object(&k("Namespace"), None, "d", json!({})),
            object(&k("CustomResourceDefinition"), None, "x.example.com", json!({})),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "d"}}),
        ];
        let mut options = RestoreOptions::from_task(&task(&[
            ("IncludeClusterResources", "true"),
            ("StorageClassMappings", "longhorn=standard"),
        ]))
        .unwrap();
        let plan = plan_restore(objects.into_iter().map(mo).collect(), &kinds, &options);
        let order: Vec<(String, bool)> = plan
            .iter()
            .map(|(m, s)| (m.describe(), matches!(s, Step::Apply { .. })))
            .collect();
        let want = [
            ("Widget d/w", false),
            ("CustomResourceDefinition x.example.com", true),
            ("Namespace d", true),
            ("PersistentVolume pv-1", false),
            ("Secret d/s", true),
            ("PersistentVolumeClaim d/data", true),
            ("BackupConfiguration d/bc", true),
            ("BackupSession d/bc-1", false),
            ("Deployment d/web", true),
            ("ReplicaSet d/web-1", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(d, a)| (d.to_string(), *a)).collect();
        assert_eq!(order, want);
        let claim = plan
            .iter()
            .find_map(|(m, s)| match s {
                Step::Apply { object, .. } if m.describe() == "PersistentVolumeClaim d/data" => Some(object),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            claim["spec"],
            json!({"storageClassName": "standard"}),
            "class mapped, volume name dropped"
        );

        options.restore_pvs = true;
        let pv = object(&k("PersistentVolume"), None, "pv-1", json!({}));
        let plan = plan_restore(vec![mo(pv)], &kinds, &options);
        assert!(matches!(plan[0].1, Step::Apply { .. }));
    }

    /// An in-memory API that fails to create objects named `broken`.
    #[derive(Default)]
    struct MemoryObjects {
        objects: std::sync::Mutex<BTreeMap<(String, String, String), Value>>,
    }

    impl AnyObjects for MemoryObjects {
        fn kinds(&self) -> kstash_api::client::ClientResult<Vec<ApiKind>> {
            Ok(Vec::new())
        }
        fn list(&self, _: &ApiKind) -> kstash_api::client::ClientResult<Vec<Value>> {
            Ok(Vec::new())
        }
        fn get(
            &self,
            kind: &ApiKind,
            ns: &str,
            name: &str,
        ) -> kstash_api::client::ClientResult<Option<Value>> {
            let key = (kind.kind.clone(), ns.to_string(), name.to_string());
            Ok(self.objects.lock().unwrap().get(&key).cloned())
        }
        fn create(&self, kind: &ApiKind, obj: Value) -> kstash_api::client::ClientResult<Value> {
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            if name == "broken" {
                return Err(kstash_api::client::ClientError::Invalid {
                    object: name,
                    message: "refused".into(),
                });
            }
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.objects
                .lock()
                .unwrap()
                .insert((kind.kind.clone(), ns, name), obj.clone());
            Ok(obj)
        }
        fn replace(&self, kind: &ApiKind, obj: Value) -> kstash_api::client::ClientResult<Value> {
            self.create(kind, obj)
        }
    }

    #[test]
    fn a_failed_object_is_reported_and_the_rest_go_on() {
        let cm = kind("", "ConfigMap", "configmaps", true);
        let api = MemoryObjects::default();
        api.create(
            &cm,
            json!({"metadata": {"name": "kept", "namespace": "d"}, "data": {"v": "old"}}),
        )
        .unwrap();
        let objects: Vec<ManifestObject> = ["broken", "kept", "new"]
            .iter()
            .map(|n| mo(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "d"}, "data": {"v": "new"}})))
            .collect();
        let kinds = [cm.clone()];
        let mut options = RestoreOptions::from_task(&task(&[])).unwrap();
        let summary = apply_restore(&api, plan_restore(objects.clone(), &kinds, &options), &options);
        let outcomes: Vec<&Outcome> = summary.objects.iter().map(|(_, o)| o).collect();
        assert!(matches!(outcomes[0], Outcome::Failed(e) if e.contains("refused")));
        assert_eq!(outcomes[1..], [&Outcome::Kept, &Outcome::Created]);
        assert_eq!(api.get(&cm, "d", "kept").unwrap().unwrap()["data"]["v"], "old");
        assert!(summary.failures().unwrap().starts_with("ConfigMap d/broken: "));

        options.override_resources = true;
        options.dry_run = true;
        let summary = apply_restore(&api, plan_restore(objects.clone(), &kinds, &options), &options);
        assert_eq!(summary.objects[1].1, Outcome::Would("would replace"));
        assert_eq!(
            api.get(&cm, "d", "kept").unwrap().unwrap()["data"]["v"],
            "old",
            "a dry run changes nothing"
        );
        options.dry_run = false;
        apply_restore(&api, plan_restore(objects, &kinds, &options), &options);
        assert_eq!(api.get(&cm, "d", "kept").unwrap().unwrap()["data"]["v"], "new");
    }
}
