//! BackupBlueprint auto-backup: a target (AppBinding, Deployment, StatefulSet, DaemonSet,
//! PersistentVolumeClaim) annotated with `blueprint.kubestash.com/name` + `/namespace` gets a
//! BackupConfiguration generated from the blueprint's `backupConfigurationTemplate`, with every
//! `${var}` placeholder filled from the target's `variables.kubestash.com/<var>` annotations.
//! Owns the pure plan ([`plan_auto_backup`]), the target reconciler (create, update or delete the
//! generated configuration) and the BackupBlueprint reconciler (finalizer, `deletionPolicy:
//! OnDelete`, re-planning every target of a changed blueprint, removing leftovers).
//!
//! As in KubeStash, the configuration lands in the template's `namespace` (default: the
//! blueprint's namespace) and is named `<lowercase-kind>-<target-name>`, or
//! `<target-namespace>-<lowercase-kind>-<target-name>` when that namespace is not the target's
//! (63-character rule of `kstash_api::names`). KubeStash documents no built-in variables: every
//! placeholder needs an annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kstash_api::client::ResourcesExt;
use kstash_api::common::TypedObjectReference;
use kstash_api::core::{
    BackupBlueprint, BackupConfiguration, BackupConfigurationSpec, BlueprintDeletionPolicy,
};
use kstash_api::meta::{self, ResourceType};
use kstash_api::object::Object;
use kstash_api::validation::{self, Context};
use kstash_api::{defaults, names, usage};
use serde_json::Value;

use crate::platform::Platform;
use crate::util::{self, Requeue, Result};

/// Name of the BackupBlueprint a target uses.
pub const ANNOTATION_BLUEPRINT_NAME: &str = "blueprint.kubestash.com/name";
/// Namespace of the BackupBlueprint a target uses.
pub const ANNOTATION_BLUEPRINT_NAMESPACE: &str = "blueprint.kubestash.com/namespace";
/// Comma-separated subset of the template's sessions (default: all).
pub const ANNOTATION_SESSION_NAMES: &str = "blueprint.kubestash.com/session-names";
/// The spelling of [`ANNOTATION_SESSION_NAMES`] in older KubeStash releases; still accepted.
pub const ANNOTATION_SESSIONS_LEGACY: &str = "blueprint.kubestash.com/sessions";
/// Prefix of the annotations that give placeholder values: `variables.kubestash.com/<var>`.
pub const VARIABLE_PREFIX: &str = "variables.kubestash.com/";
/// `kubestash.com/invoker-kind` of a generated BackupConfiguration: together with the
/// `kubestash.com/app-ref-*` labels naming the target it marks the configuration as generated,
/// and only such configurations are ever updated or deleted here.
pub const INVOKER_KIND: &str = "BackupBlueprint";

/// Kinds that can opt into auto-backup, i.e. the kinds whose changes go to [`reconcile_target`]
/// (the Kubernetes operator watches these).
pub const TARGET_KINDS: &[&ResourceType] = &[
    &meta::APP_BINDING,
    &meta::DEPLOYMENT,
    &meta::STATEFUL_SET,
    &meta::DAEMON_SET,
    &meta::PERSISTENT_VOLUME_CLAIM,
];

/// How long to wait before planning a target again after a configuration error (a change of the
/// target or the blueprint wakes it sooner).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(60);

/// The resource type of a target kind, or `None` when the kind cannot opt into auto-backup.
pub fn target_type(kind: &str) -> Option<&'static ResourceType> {
    TARGET_KINDS.iter().copied().find(|rt| rt.kind == kind)
}

/// An object that may opt into auto-backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub rt: &'static ResourceType,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.rt.kind, self.namespace, self.name)
    }
}

impl Target {
    /// The target a stored object is (`None` for kinds that cannot opt into auto-backup).
    pub fn of(obj: &Value) -> Option<Target> {
        let api_version = str_at(obj, "/apiVersion");
        let rt = target_type(str_at(obj, "/kind")).filter(|rt| rt.api_version() == api_version)?;
        Some(Target {
            rt,
            namespace: match str_at(obj, "/metadata/namespace") {
                "" => "default".to_string(),
                ns => ns.to_string(),
            },
            name: str_at(obj, "/metadata/name").to_string(),
        })
    }

    /// `spec.target` of the generated configuration.
    pub fn reference(&self) -> TypedObjectReference {
        TypedObjectReference {
            api_group: (!self.rt.group.is_empty()).then(|| self.rt.group.to_string()),
            kind: Some(self.rt.kind.to_string()),
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
        }
    }

    /// Name of the configuration generated for this target in `bc_namespace`:
    /// `<lowercase-kind>-<name>`, prefixed by `<target-namespace>-` in another namespace.
    pub fn configuration_name(&self, bc_namespace: &str) -> String {
        let kind = self.rt.kind.to_ascii_lowercase();
        let prefix = if bc_namespace == self.namespace {
            kind
        } else {
            format!("{}-{kind}", self.namespace)
        };
        names::name_with_prefix_and_suffix(&prefix, &self.name)
    }

    /// Where the configuration lands when the blueprint's template has no namespace.
    fn default_location(&self) -> (String, String) {
        (self.namespace.clone(), self.configuration_name(&self.namespace))
    }
}

/// What a target's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub blueprint_namespace: String,
    pub blueprint_name: String,
    /// The `session-names` subset, in the order written; `None`: every session.
    pub sessions: Option<Vec<String>>,
    /// The annotation the subset came from ([`ANNOTATION_SESSION_NAMES`], or the legacy key).
    pub sessions_annotation: &'static str,
    /// `variables.kubestash.com/<var>` values by variable name.
    pub variables: BTreeMap<String, String>,
}

/// Why no BackupConfiguration can be generated for an annotated target. Every message names the
/// target, the annotation, variable or field at fault, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoBackupError {
    #[error(
        "{target}: annotation {missing} is missing (auto-backup needs both {ANNOTATION_BLUEPRINT_NAME} and {ANNOTATION_BLUEPRINT_NAMESPACE}); fix: add it, or remove both to turn auto-backup off"
    )]
    IncompleteAnnotations { target: String, missing: &'static str },
    #[error(
        "{target}: BackupBlueprint {blueprint} (from annotations {ANNOTATION_BLUEPRINT_NAMESPACE} and {ANNOTATION_BLUEPRINT_NAME}) does not exist; fix: create it, or correct the annotations"
    )]
    BlueprintNotFound { target: String, blueprint: String },
    #[error(
        "{target}: BackupBlueprint {blueprint} is being deleted; fix: point {ANNOTATION_BLUEPRINT_NAME} at another blueprint, or remove the auto-backup annotations"
    )]
    BlueprintDeleting { target: String, blueprint: String },
    #[error(
        "{target}: BackupBlueprint {blueprint} has no spec.backupConfigurationTemplate; fix: add one with backends and sessions"
    )]
    NoTemplate { target: String, blueprint: String },
    #[error(
        "{target}: BackupBlueprint {blueprint} does not list {api_version} {kind} in spec.subjects ({subjects}); fix: add `- apiVersion: {api_version}` / `kind: {kind}` to its spec.subjects"
    )]
    KindNotInSubjects {
        target: String,
        blueprint: String,
        api_version: String,
        kind: String,
        subjects: String,
    },
    #[error(
        "{target}: BackupBlueprint {blueprint} may not be used from namespace '{namespace}' (spec.usagePolicy.allowedNamespaces); fix: allow '{namespace}' there (from: All, or a Selector matching it), or use a blueprint of namespace '{namespace}'"
    )]
    NamespaceNotAllowed {
        target: String,
        blueprint: String,
        namespace: String,
    },
    #[error(
        "{target}: annotation {annotation} names session(s) {unknown} that BackupBlueprint {blueprint} does not have (its sessions: {available}); fix: use names from that list"
    )]
    UnknownSessions {
        target: String,
        blueprint: String,
        annotation: &'static str,
        unknown: String,
        available: String,
    },
    #[error(
        "{target}: BackupBlueprint {blueprint} uses {placeholders} but the target has no annotation {annotations}; fix: add {annotations} to the target's metadata.annotations"
    )]
    MissingVariables {
        target: String,
        blueprint: String,
        placeholders: String,
        annotations: String,
    },
    #[error(
        "{target}: with the variables filled in, BackupBlueprint {blueprint}'s template is not a BackupConfiguration spec: {message}; fix: correct the template or the target's {VARIABLE_PREFIX}* annotations"
    )]
    InvalidTemplate {
        target: String,
        blueprint: String,
        message: String,
    },
    #[error(
        "{target}: the BackupConfiguration generated from BackupBlueprint {blueprint} is invalid: {errors}; fix: correct the blueprint's template or the target's {VARIABLE_PREFIX}* annotations"
    )]
    InvalidConfiguration {
        target: String,
        blueprint: String,
        errors: String,
    },
    #[error(
        "{target}: {configuration} exists and was not generated for this target from a BackupBlueprint, so auto-backup leaves it alone; fix: delete or rename that BackupConfiguration, or remove the auto-backup annotations"
    )]
    NotGenerated { target: String, configuration: String },
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn describe_blueprint(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The auto-backup request in a target's annotations; `None` when it has none.
pub fn request(obj: &Value, target: &Target) -> std::result::Result<Option<Request>, AutoBackupError> {
    let name = annotation(obj, ANNOTATION_BLUEPRINT_NAME).map(str::trim);
    let namespace = annotation(obj, ANNOTATION_BLUEPRINT_NAMESPACE).map(str::trim);
    let (name, namespace) = match (name, namespace) {
        (None | Some(""), None | Some("")) => return Ok(None),
        (None | Some(""), Some(_)) => {
            return Err(AutoBackupError::IncompleteAnnotations {
                target: target.to_string(),
                missing: ANNOTATION_BLUEPRINT_NAME,
            });
        }
        (Some(_), None | Some("")) => {
            return Err(AutoBackupError::IncompleteAnnotations {
                target: target.to_string(),
                missing: ANNOTATION_BLUEPRINT_NAMESPACE,
            });
        }
        (Some(n), Some(ns)) => (n, ns),
    };
    let (sessions_annotation, sessions) = match annotation(obj, ANNOTATION_SESSION_NAMES) {
        Some(list) => (ANNOTATION_SESSION_NAMES, Some(list)),
        None => (
            ANNOTATION_SESSIONS_LEGACY,
            annotation(obj, ANNOTATION_SESSIONS_LEGACY),
        ),
    };
    let sessions = sessions
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|list| !list.is_empty());
    let variables = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let var = k.strip_prefix(VARIABLE_PREFIX)?;
            Some((var.to_string(), v.as_str()?.to_string()))
        })
        .collect();
    Ok(Some(Request {
        blueprint_namespace: namespace.to_string(),
        blueprint_name: name.to_string(),
        sessions,
        sessions_annotation,
        variables,
    }))
}

/// `s` with every `${var}` replaced by its value; unknown variables are left in place and
/// added to `missing`. An unterminated `${` is literal text.
pub fn fill(s: &str, vars: &BTreeMap<String, String>, missing: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let var = &after[..end];
        match vars.get(var) {
            Some(value) => out.push_str(value),
            None => {
                if !var.is_empty() {
                    missing.insert(var.to_string());
                }
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Fill placeholders in every string (values and keys) of `v`.
fn fill_value(v: &mut Value, vars: &BTreeMap<String, String>, missing: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if s.contains("${") => *s = fill(s, vars, missing),
        Value::Array(items) => items.iter_mut().for_each(|i| fill_value(i, vars, missing)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut item) in entries {
                fill_value(&mut item, vars, missing);
                let key = if k.contains("${") {
                    fill(&k, vars, missing)
                } else {
                    k
                };
                map.insert(key, item);
            }
        }
        _ => {}
    }
}

fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Where `bp` would put the configuration of target `t` whose variables are `vars`; `None` when
/// the template's namespace needs a variable the target does not give.
fn location(t: &Target, bp: &BackupBlueprint, vars: &BTreeMap<String, String>) -> Option<(String, String)> {
    let template_ns = bp
        .spec
        .backup_configuration_template
        .as_ref()
        .map(|t| t.namespace.as_str())
        .unwrap_or("");
    let mut missing = BTreeSet::new();
    let ns = fill(template_ns, vars, &mut missing);
    if !missing.is_empty() {
        return None;
    }
    let ns = if ns.is_empty() {
        util::ns_or(&bp.metadata.namespace, "default").to_string()
    } else {
        ns
    };
    let name = t.configuration_name(&ns);
    Some((ns, name))
}

/// The labels of a configuration generated for `t` from blueprint `bp_ns/bp_name`.
pub fn generated_labels(t: &Target, bp_ns: &str, bp_name: &str) -> BTreeMap<String, String> {
    let mut labels = util::labels(&[
        (util::LABEL_MANAGED_BY, util::MANAGED_BY),
        (util::LABEL_INVOKER_KIND, INVOKER_KIND),
        (util::LABEL_INVOKER_NAME, bp_name),
        (util::LABEL_INVOKER_NAMESPACE, bp_ns),
        (util::LABEL_APP_REF_KIND, t.rt.kind),
        (util::LABEL_APP_REF_NAMESPACE, &t.namespace),
    ]);
    // Names may be longer than a label value; the target is matched by spec.target anyway.
    if names::label_value_error(&t.name).is_none() {
        labels.insert(util::LABEL_APP_REF_NAME.to_string(), t.name.clone());
    }
    labels
}

/// Whether `bc` was generated by a blueprint for target `t` (the only configurations auto-backup
/// updates or deletes).
pub fn is_generated_for(bc: &BackupConfiguration, t: &Target) -> bool {
    let labels = bc.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).map(String::as_str);
    let bc_ns = util::namespace(&bc.metadata);
    label(util::LABEL_INVOKER_KIND) == Some(INVOKER_KIND)
        && label(util::LABEL_APP_REF_KIND) == Some(t.rt.kind)
        && label(util::LABEL_APP_REF_NAMESPACE) == Some(t.namespace.as_str())
        && bc.spec.target.as_ref().is_some_and(|r| {
            r.kind.as_deref() == Some(t.rt.kind)
                && r.name == t.name
                && util::ns_or(&r.namespace, bc_ns) == t.namespace
        })
}

/// Plan the auto-backup of `target` (any stored object): `Ok(None)` when it is not annotated
/// (or not a kind that can opt in, or being deleted), else the BackupConfiguration to generate,
/// with defaults applied and validated as admission would. `blueprint(namespace, name)` looks up
/// the blueprint the annotations name; `existing` is what validation and defaulting look at
/// (Namespaces for usage-policy selectors; BackupStorages, RetentionPolicies, HookTemplates;
/// Repositories for name and directory collisions). Pure.
pub fn plan_auto_backup(
    target: &Value,
    blueprint: impl FnOnce(&str, &str) -> Option<BackupBlueprint>,
    existing: &[Object],
) -> std::result::Result<Option<BackupConfiguration>, AutoBackupError> {
    let Some(t) = Target::of(target) else {
        return Ok(None);
    };
    if is_deleting(target) {
        return Ok(None);
    }
    let Some(req) = request(target, &t)? else {
        return Ok(None);
    };
    let bp_desc = describe_blueprint(&req.blueprint_namespace, &req.blueprint_name);
    let bp = blueprint(&req.blueprint_namespace, &req.blueprint_name).ok_or_else(|| {
        AutoBackupError::BlueprintNotFound {
            target: t.to_string(),
            blueprint: bp_desc.clone(),
        }
    })?;
    if bp.metadata.deletion_timestamp.is_some() {
        return Err(AutoBackupError::BlueprintDeleting {
            target: t.to_string(),
            blueprint: bp_desc,
        });
    }
    plan_from_blueprint(&t, &req, &bp, existing).map(Some)
}

fn plan_from_blueprint(
    t: &Target,
    req: &Request,
    bp: &BackupBlueprint,
    existing: &[Object],
) -> std::result::Result<BackupConfiguration, AutoBackupError> {
    let bp_ns = util::ns_or(&bp.metadata.namespace, "default").to_string();
    let bp_name = util::name(&bp.metadata).to_string();
    let bp_desc = describe_blueprint(&bp_ns, &bp_name);
    let target = t.to_string();
    let template =
        bp.spec
            .backup_configuration_template
            .as_ref()
            .ok_or_else(|| AutoBackupError::NoTemplate {
                target: target.clone(),
                blueprint: bp_desc.clone(),
            })?;

    // Subjects: the kinds the blueprint is for (any version of the target's group).
    if !bp
        .spec
        .subjects
        .iter()
        .any(|s| s.kind == t.rt.kind && api_group(&s.api_version) == t.rt.group)
    {
        let subjects = bp
            .spec
            .subjects
            .iter()
            .map(|s| format!("{} {}", s.api_version, s.kind))
            .collect::<Vec<_>>();
        return Err(AutoBackupError::KindNotInSubjects {
            target,
            blueprint: bp_desc,
            api_version: t.rt.api_version(),
            kind: t.rt.kind.to_string(),
            subjects: if subjects.is_empty() {
                "it lists none".into()
            } else {
                subjects.join(", ")
            },
        });
    }

    // Usage policy, checked against the target's namespace.
    if !usage::allows(bp.spec.usage_policy.as_ref(), &bp_ns, &t.namespace, existing) {
        return Err(AutoBackupError::NamespaceNotAllowed {
            target,
            blueprint: bp_desc,
            namespace: t.namespace.clone(),
        });
    }

    // Sessions: all, or the annotated subset (matched on names with the variables filled in).
    let vars = &req.variables;
    let sessions: Vec<(String, Value)> = template
        .sessions
        .iter()
        .map(|s| {
            let name = fill(&s.name, vars, &mut BTreeSet::new());
            (name, serde_json::to_value(s).unwrap_or(Value::Null))
        })
        .collect();
    let selected: Vec<Value> = match &req.sessions {
        None => sessions.iter().map(|(_, v)| v.clone()).collect(),
        Some(wanted) => {
            let unknown: Vec<&String> = wanted
                .iter()
                .filter(|w| !sessions.iter().any(|(n, _)| n == *w))
                .collect();
            if !unknown.is_empty() {
                return Err(AutoBackupError::UnknownSessions {
                    target,
                    blueprint: bp_desc,
                    annotation: req.sessions_annotation,
                    unknown: unknown
                        .iter()
                        .map(|s| format!("'{s}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    available: sessions
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            sessions
                .iter()
                .filter(|(n, _)| wanted.contains(n))
                .map(|(_, v)| v.clone())
                .collect()
        }
    };

    // Placeholders.
    let mut missing = BTreeSet::new();
    let mut spec = serde_json::json!({
        "backends": serde_json::to_value(&template.backends).unwrap_or(Value::Null),
        "sessions": selected,
    });
    fill_value(&mut spec, vars, &mut missing);
    let template_ns = fill(&template.namespace, vars, &mut missing);
    if !missing.is_empty() {
        return Err(AutoBackupError::MissingVariables {
            target,
            blueprint: bp_desc,
            placeholders: missing
                .iter()
                .map(|v| format!("${{{v}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            annotations: missing
                .iter()
                .map(|v| format!("{VARIABLE_PREFIX}{v}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut spec: BackupConfigurationSpec =
        serde_json::from_value(spec).map_err(|e| AutoBackupError::InvalidTemplate {
            target: target.clone(),
            blueprint: bp_desc.clone(),
            message: e.to_string(),
        })?;
    spec.target = Some(t.reference());

    // Identity and labels.
    let bc_ns = if template_ns.is_empty() {
        bp_ns.clone()
    } else {
        template_ns
    };
    let mut bc = BackupConfiguration::new(&t.configuration_name(&bc_ns), spec);
    bc.metadata.namespace = Some(bc_ns);
    bc.metadata.labels = Some(generated_labels(t, &bp_ns, &bp_name));

    // Defaults and validation, as admission would apply them.
    let mut obj = Object::BackupConfiguration(bc);
    defaults::apply(&mut obj, existing);
    let errors = validation::validate(&obj, Context { existing, old: None });
    if !errors.is_empty() {
        return Err(AutoBackupError::InvalidConfiguration {
            target,
            blueprint: bp_desc,
            errors: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    match obj {
        Object::BackupConfiguration(bc) => Ok(bc),
        _ => unreachable!("defaults keep the kind"),
    }
}

// ------------------------------------------------------------------------------------------------
// Reconcilers.

/// Objects the plan reads, loaded once per reconcile: the cheap set first, Repositories only
/// before a write.
#[derive(Default)]
struct Existing {
    base: Option<Vec<Object>>,
    with_repositories: Option<Vec<Object>>,
}

fn load_objects(p: &dyn Platform, kinds: &[&'static ResourceType]) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for rt in kinds {
        for v in p.list(rt, None, &[])? {
            match Object::from_value(&v) {
                Ok(o) => out.push(o),
                Err(e) => tracing::debug!(error = %e, "stored object does not parse; ignored by auto-backup"),
            }
        }
    }
    Ok(out)
}

impl Existing {
    fn base(&mut self, p: &dyn Platform) -> Result<&[Object]> {
        if self.base.is_none() {
            self.base = Some(load_objects(
                p,
                &[
                    &meta::NAMESPACE,
                    &meta::BACKUP_STORAGE,
                    &meta::RETENTION_POLICY,
                    &meta::HOOK_TEMPLATE,
                ],
            )?);
        }
        Ok(self.base.as_deref().unwrap_or_default())
    }

    fn with_repositories(&mut self, p: &dyn Platform) -> Result<&[Object]> {
        if self.with_repositories.is_none() {
            let mut all = self.base(p)?.to_vec();
            all.extend(load_objects(p, &[&meta::REPOSITORY])?);
            self.with_repositories = Some(all);
        }
        Ok(self.with_repositories.as_deref().unwrap_or_default())
    }
}

fn report(p: &dyn Platform, t: &Target, e: &AutoBackupError) -> Requeue {
    p.event(&t.to_string(), true, "AutoBackupFailed", &e.to_string());
    Requeue::After(RETRY_AFTER_ERROR)
}

/// Delete the configuration at `ns/name` if it was generated for `t`.
fn delete_generated_at(p: &dyn Platform, t: &Target, ns: &str, name: &str) -> Result<()> {
    if let Some(bc) = p.get_as::<BackupConfiguration>(ns, name)?
        && is_generated_for(&bc, t)
        && bc.metadata.deletion_timestamp.is_none()
    {
        p.delete(&meta::BACKUP_CONFIGURATION, ns, name)?;
        p.event(
            &t.to_string(),
            false,
            "BackupConfigurationDeleted",
            &format!("deleted the generated BackupConfiguration {ns}/{name}"),
        );
    }
    Ok(())
}

/// Reconcile one target (an AppBinding, Deployment, StatefulSet, DaemonSet or
/// PersistentVolumeClaim): create or update the BackupConfiguration its blueprint annotations ask
/// for, or delete the one generated earlier when the annotations were removed or the target was
/// deleted. Configuration errors become a warning Event on the target; a configuration that was
/// not generated by a blueprint is never touched.
pub fn reconcile_target(p: &dyn Platform, kind: &str, ns: &str, name: &str) -> Result<Requeue> {
    reconcile_target_with(p, &mut Existing::default(), kind, ns, name)
}

fn reconcile_target_with(
    p: &dyn Platform,
    existing: &mut Existing,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<Requeue> {
    let Some(rt) = target_type(kind) else {
        return Ok(Requeue::Idle);
    };
    let t = Target {
        rt,
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    let (default_ns, default_name) = t.default_location();
    let obj = p.get(rt, ns, name)?.filter(|o| !is_deleting(o));
    let req = match obj.as_ref().map(|o| request(o, &t)).transpose() {
        Ok(r) => r.flatten(),
        Err(e) => return Ok(report(p, &t, &e)),
    };
    let (Some(obj), Some(req)) = (obj, req) else {
        // Not (or no longer) annotated, or gone: remove what was generated for it. Leftovers in
        // another namespace are collected by the blueprint's reconcile.
        delete_generated_at(p, &t, &default_ns, &default_name)?;
        return Ok(Requeue::Idle);
    };
    let bp = p.get_as::<BackupBlueprint>(&req.blueprint_namespace, &req.blueprint_name)?;
    let plan = |existing: &[Object]| plan_auto_backup(&obj, |_, _| bp.clone(), existing);
    let desired = match plan(existing.base(p)?) {
        Ok(Some(bc)) => bc,
        Ok(None) => {
            delete_generated_at(p, &t, &default_ns, &default_name)?;
            return Ok(Requeue::Idle);
        }
        Err(e) => return Ok(report(p, &t, &e)),
    };
    let bc_ns = util::namespace(&desired.metadata).to_string();
    let bc_name = util::name(&desired.metadata).to_string();
    let bp_desc = describe_blueprint(&req.blueprint_namespace, &req.blueprint_name);
    let current = p.get_as::<BackupConfiguration>(&bc_ns, &bc_name)?;
    match current {
        Some(cur) if !is_generated_for(&cur, &t) => {
            let e = AutoBackupError::NotGenerated {
                target: t.to_string(),
                configuration: format!("BackupConfiguration {bc_ns}/{bc_name}"),
            };
            return Ok(report(p, &t, &e));
        }
        Some(cur) if cur.metadata.deletion_timestamp.is_some() => {
            // Being deleted (blueprint OnDelete, or a user): recreate once it is gone.
            return Ok(Requeue::After(Duration::from_secs(2)));
        }
        Some(cur) if up_to_date(&cur, &desired) => {}
        current => {
            // Validate against the stored Repositories too before writing.
            let desired = match plan(existing.with_repositories(p)?) {
                Ok(Some(bc)) => bc,
                Ok(None) => return Ok(Requeue::Idle),
                Err(e) => return Ok(report(p, &t, &e)),
            };
            match current {
                None => {
                    p.create_as(&desired)?;
                    p.event(
                        &t.to_string(),
                        false,
                        "BackupConfigurationCreated",
                        &format!(
                            "created BackupConfiguration {bc_ns}/{bc_name} from BackupBlueprint {bp_desc}"
                        ),
                    );
                }
                Some(mut cur) => {
                    // `paused` belongs to the user (`kstash pause`), not to the template.
                    let paused = cur.spec.paused;
                    cur.spec = desired.spec;
                    cur.spec.paused = paused;
                    let labels = cur.metadata.labels.get_or_insert_with(BTreeMap::new);
                    labels.extend(desired.metadata.labels.unwrap_or_default());
                    p.update_as(&cur)?;
                    p.event(
                        &t.to_string(),
                        false,
                        "BackupConfigurationUpdated",
                        &format!(
                            "updated BackupConfiguration {bc_ns}/{bc_name} from BackupBlueprint {bp_desc}"
                        ),
                    );
                }
            }
        }
    }
    if (default_ns.as_str(), default_name.as_str()) != (bc_ns.as_str(), bc_name.as_str()) {
        delete_generated_at(p, &t, &default_ns, &default_name)?;
    }
    Ok(Requeue::Idle)
}

/// Spec equal (but for `paused`, which is the user's) and every generated label in place
/// (other metadata is the user's too).
fn up_to_date(cur: &BackupConfiguration, desired: &BackupConfiguration) -> bool {
    let labels = cur.metadata.labels.clone().unwrap_or_default();
    let mut spec = desired.spec.clone();
    spec.paused = cur.spec.paused;
    cur.spec == spec
        && desired
            .metadata
            .labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// The configurations generated from blueprint `ns/name`.
fn generated_by(p: &dyn Platform, ns: &str, name: &str) -> Result<Vec<BackupConfiguration>> {
    Ok(p.list_as::<BackupConfiguration>(
        None,
        &[
            (util::LABEL_INVOKER_KIND, INVOKER_KIND),
            (util::LABEL_INVOKER_NAME, name),
            (util::LABEL_INVOKER_NAMESPACE, ns),
        ],
    )?)
}

/// The target a generated configuration is for.
fn target_of(bc: &BackupConfiguration) -> Option<Target> {
    let r = bc.spec.target.as_ref()?;
    Some(Target {
        rt: target_type(r.kind.as_deref()?)?,
        namespace: util::ns_or(&r.namespace, util::namespace(&bc.metadata)).to_string(),
        name: r.name.clone(),
    })
}

/// Whether the generated configuration `bc` (for target `t`) is a leftover: its target is gone,
/// no longer annotated, or its blueprint now puts the configuration elsewhere. Unknown (the
/// named blueprint is missing, a namespace variable is missing) counts as not stale.
fn is_stale(p: &dyn Platform, bc: &BackupConfiguration, t: &Target) -> Result<bool> {
    let Some(obj) = p.get(t.rt, &t.namespace, &t.name)?.filter(|o| !is_deleting(o)) else {
        return Ok(true);
    };
    let req = match request(&obj, t) {
        Ok(None) => return Ok(true),
        Ok(Some(r)) => r,
        Err(_) => return Ok(false),
    };
    let Some(bp) = p.get_as::<BackupBlueprint>(&req.blueprint_namespace, &req.blueprint_name)? else {
        return Ok(false);
    };
    Ok(location(t, &bp, &req.variables)
        .is_some_and(|(ns, name)| ns != util::namespace(&bc.metadata) || name != util::name(&bc.metadata)))
}

/// Reconcile one BackupBlueprint: keep the `kubestash.com/cleanup` finalizer; on deletion with
/// `backupConfigurationTemplate.deletionPolicy: OnDelete` delete every configuration generated
/// from it; otherwise re-plan every target annotated with it and delete its leftovers.
pub fn reconcile_backup_blueprint(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut bp) = p.get_as::<BackupBlueprint>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let what = format!("BackupBlueprint {ns}/{name}");
    if util::is_deleting(&bp.metadata) {
        if !util::has_finalizer(&bp.metadata) {
            return Ok(Requeue::Idle);
        }
        let on_delete = bp
            .spec
            .backup_configuration_template
            .as_ref()
            .and_then(|t| t.deletion_policy)
            == Some(BlueprintDeletionPolicy::OnDelete);
        if on_delete {
            for bc in generated_by(p, ns, name)? {
                let (bns, bname) = (util::namespace(&bc.metadata), util::name(&bc.metadata));
                if bc.metadata.deletion_timestamp.is_none() {
                    p.delete(&meta::BACKUP_CONFIGURATION, bns, bname)?;
                    p.event(
                        &what,
                        false,
                        "BackupConfigurationDeleted",
                        &format!("deleted the generated BackupConfiguration {bns}/{bname} (deletionPolicy: OnDelete)"),
                    );
                }
            }
        }
        util::remove_finalizer(&mut bp.metadata);
        p.update_as(&bp)?;
        return Ok(Requeue::Idle);
    }
    if util::add_finalizer(&mut bp.metadata) {
        p.update_as(&bp)?;
    }

    // Leftovers: configurations of this blueprint whose target went away or moved on.
    let mut targets: BTreeSet<(&'static str, String, String)> = BTreeSet::new();
    for bc in generated_by(p, ns, name)? {
        let Some(t) = target_of(&bc) else { continue };
        if bc.metadata.deletion_timestamp.is_none() && is_stale(p, &bc, &t)? {
            let (bns, bname) = (util::namespace(&bc.metadata), util::name(&bc.metadata));
            p.delete(&meta::BACKUP_CONFIGURATION, bns, bname)?;
            p.event(
                &t.to_string(),
                false,
                "BackupConfigurationDeleted",
                &format!("deleted the generated BackupConfiguration {bns}/{bname}: no longer wanted"),
            );
        }
        targets.insert((t.rt.kind, t.namespace, t.name));
    }
    // Every target annotated with this blueprint (there is no label to select them by).
    for rt in TARGET_KINDS {
        for obj in p.list(rt, None, &[])? {
            if annotation(&obj, ANNOTATION_BLUEPRINT_NAME).map(str::trim) == Some(name)
                && annotation(&obj, ANNOTATION_BLUEPRINT_NAMESPACE).map(str::trim) == Some(ns)
                && let Some(t) = Target::of(&obj)
            {
                targets.insert((t.rt.kind, t.namespace, t.name));
            }
        }
    }
    let mut existing = Existing::default();
    let mut requeue = Requeue::Idle;
    for (kind, tns, tname) in targets {
        requeue = requeue.min(reconcile_target_with(p, &mut existing, kind, &tns, &tname)?);
    }
    Ok(requeue)
}

/// The target a generated configuration's change should wake (for `keys_for_change`).
pub fn target_of_generated(bc: &Value) -> Option<(&'static str, String, String)> {
    if str_at(bc, "/metadata/labels/kubestash.com~1invoker-kind") != INVOKER_KIND {
        return None;
    }
    let rt = target_type(str_at(bc, "/spec/target/kind"))?;
    let ns = match str_at(bc, "/spec/target/namespace") {
        "" => str_at(bc, "/metadata/namespace"),
        ns => ns,
    };
    Some((
        rt.kind,
        ns.to_string(),
        str_at(bc, "/spec/target/name").to_string(),
    ))
}

#[cfg(test)]
mod tests;
