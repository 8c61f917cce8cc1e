//! Validation, as KubeStash's validating webhooks do it, plus the schema rules the API server
//! would enforce. Every error names the object, the JSON path and the fix. Pure: the caller passes
//! the objects already stored and, for updates, the old version.

use std::collections::{BTreeMap, BTreeSet};

use crate::addons::{Addon, Function, Task};
use crate::appcatalog::AppBinding;
use crate::common::{AddonInfo, FromNamespaces, HookInfo, ObjectReference, UsagePolicy};
use crate::core::{
    BackupBlueprint, BackupConfiguration, BackupSession, HookExecutorType, HookTemplate, RestoreSession,
    Session,
};
use crate::duration::{parse_go_duration, parse_retention_period};
use crate::names;
use crate::object::{FieldError, Object};
use crate::schedule::Schedule;
use crate::stash::validation as stash;
use crate::storage::{BackupStorage, Repository, RetentionPolicy, Snapshot, StorageProvider};
use crate::usage;
use crate::verification::{
    self, BackupVerificationSession, BackupVerificationSessionSpec, BackupVerifier, VerificationType,
};

/// What validation may look at besides the object: what the store holds, and the old version
/// when the object is being updated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Objects already stored (any kind, any namespace).
    pub existing: &'a [Object],
    /// The stored version of the object, when this is an update.
    pub old: Option<&'a Object>,
}

pub(crate) struct Errors {
    pub(crate) object: String,
    pub(crate) list: Vec<FieldError>,
}

impl Errors {
    pub(crate) fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.list.push(FieldError {
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    pub(crate) fn required(&mut self, path: &str, value: &str, fix: &str) {
        if value.trim().is_empty() {
            self.add(path, "required value is missing", fix);
        }
    }

    /// `name` must be set and differ from the names of its siblings already in `seen`.
    fn unique_name(&mut self, path: &str, name: &str, seen: &mut BTreeSet<String>, what: &str, hint: &str) {
        self.required(path, name, hint);
        if !name.is_empty() && !seen.insert(name.to_string()) {
            self.add(
                path,
                format!("duplicate {what} name '{name}'"),
                format!("give every {what} a unique name"),
            );
        }
    }

    fn go_duration(&mut self, path: &str, value: Option<&str>) {
        if let Some(v) = value
            && let Err(e) = parse_go_duration(v)
        {
            self.add(
                path,
                format!("invalid duration: {e}"),
                "use a duration like 30s, 5m or 1h30m",
            );
        }
    }

    fn non_negative(&mut self, path: &str, value: Option<i64>) {
        if let Some(v) = value
            && v < 0
        {
            self.add(
                path,
                format!("must be >= 0 (is {v})"),
                "use 0 or a positive number",
            );
        }
    }

    fn usage_policy(&mut self, path: &str, policy: Option<&UsagePolicy>) {
        if let Some(p) = policy
            && p.allowed_namespaces.from == Some(FromNamespaces::Selector)
            && p.allowed_namespaces.selector.is_none()
        {
            self.add(
                format!("{path}.allowedNamespaces.selector"),
                "`from: Selector` needs a selector",
                "add allowedNamespaces.selector.matchLabels, or use `from: Same` or `from: All`",
            );
        }
    }
}

/// Validate `obj` (after defaults). Returns every error found; empty means valid.
pub fn validate(obj: &Object, ctx: Context<'_>) -> Vec<FieldError> {
    let mut e = Errors {
        object: obj.describe(),
        list: Vec::new(),
    };
    validate_metadata(obj, &mut e);
    match obj {
        Object::BackupStorage(o) => backup_storage(o, ctx, &mut e),
        Object::Repository(o) => repository(o, ctx, &mut e),
        Object::RetentionPolicy(o) => retention_policy(o, ctx, &mut e),
        Object::Snapshot(o) => snapshot(o, &mut e),
        Object::BackupConfiguration(o) => backup_configuration(o, ctx, &mut e),
        Object::BackupSession(o) => backup_session(o, ctx, &mut e),
        Object::RestoreSession(o) => restore_session(o, ctx, &mut e),
        Object::HookTemplate(o) => hook_template(o, &mut e),
        Object::BackupBlueprint(o) => backup_blueprint(o, ctx, &mut e),
        Object::BackupVerifier(o) => backup_verifier(o, ctx, &mut e),
        Object::BackupVerificationSession(o) => backup_verification_session(o, ctx, &mut e),
        Object::Addon(o) => addon(o, &mut e),
        Object::Function(o) => function(o, &mut e),
        Object::AppBinding(o) => app_binding(o, &mut e),
        Object::Secret(_)
        | Object::Namespace(_)
        | Object::Deployment(_)
        | Object::StatefulSet(_)
        | Object::DaemonSet(_)
        | Object::PersistentVolumeClaim(_) => {}
        Object::StashRepository(o) => stash::repository(o, &mut e),
        Object::StashBackupConfiguration(o) => stash::backup_configuration(o, &mut e),
        Object::StashBackupSession(o) => stash::backup_session(o, &mut e),
        Object::StashRestoreSession(o) => stash::restore_session(o, &mut e),
        Object::StashBackupBlueprint(o) => stash::backup_blueprint(o, &mut e),
        Object::StashBackupBatch(o) => stash::backup_batch(o, &mut e),
        Object::StashRestoreBatch(o) => stash::restore_batch(o, &mut e),
        Object::StashTask(o) => stash::task(o, &mut e),
        Object::StashFunction(o) => stash::function(o, &mut e),
    }
    e.list
}

fn validate_metadata(obj: &Object, e: &mut Errors) {
    let meta = obj.meta();
    match meta.name.as_deref() {
        None | Some("") => e.add("metadata.name", "required value is missing", "set metadata.name"),
        Some(n) => {
            if let Some(why) = names::dns1123_subdomain_error(n) {
                e.add(
                    "metadata.name",
                    format!("invalid name '{n}': {why}"),
                    "use lower-case letters, digits and '-', e.g. 'sample-backup'",
                );
            }
        }
    }
    if let Some(ns) = &meta.namespace {
        if !obj.resource_type().namespaced {
            e.add(
                "metadata.namespace",
                format!(
                    "{} is cluster-scoped and takes no namespace",
                    obj.resource_type().kind
                ),
                "remove metadata.namespace",
            );
        } else if let Some(why) = names::dns1123_label_error(ns) {
            e.add(
                "metadata.namespace",
                format!("invalid namespace '{ns}': {why}"),
                "use a DNS-1123 label, e.g. 'demo'",
            );
        }
    }
    for (k, v) in meta.labels.iter().flatten() {
        if let Some(why) = names::label_key_error(k) {
            e.add(
                format!("metadata.labels.{k}"),
                format!("invalid label key: {why}"),
                "use [prefix/]name with alphanumerics, '-', '_', '.'",
            );
        }
        if let Some(why) = names::label_value_error(v) {
            e.add(
                format!("metadata.labels.{k}"),
                format!("invalid label value: {why}"),
                "use at most 63 alphanumerics, '-', '_', '.'",
            );
        }
    }
}

fn others<'a, T>(
    ctx: &Context<'a>,
    me: &Object,
    pick: impl Fn(&'a Object) -> Option<&'a T>,
) -> Vec<(&'a Object, &'a T)> {
    ctx.existing
        .iter()
        .filter(|o| {
            !(o.resource_type() == me.resource_type()
                && o.namespace() == me.namespace()
                && o.name() == me.name())
        })
        .filter_map(|o| pick(o).map(|t| (o, t)))
        .collect()
}

fn relative_dir(e: &mut Errors, path: &str, dir: &str, what: &str) {
    if dir.trim().is_empty() {
        e.add(
            path,
            "required value is missing",
            format!("set {what} to a relative path such as 'demo/postgres'"),
        );
    } else if dir.split('/').any(|p| p == "..") {
        e.add(
            path,
            format!("'{dir}' must not contain '..'"),
            format!("set {what} to a path inside the storage, e.g. '/demo/postgres'"),
        );
    } else if dir.trim_matches('/').is_empty() {
        e.add(
            path,
            "must name a directory below the storage root",
            format!("set {what} to e.g. '/demo/postgres'"),
        );
    }
}

fn backup_storage(bs: &BackupStorage, ctx: Context<'_>, e: &mut Errors) {
    let st = &bs.spec.storage;
    match st.provider {
        None => e.add(
            "spec.storage.provider",
            "required value is missing",
            "set provider to one of local, s3, gcs, azure, b2, swift, rest",
        ),
        Some(p) => {
            let path = format!("spec.storage.{}", p.field());
            let present = match p {
                StorageProvider::Local => st.local.is_some(),
                StorageProvider::S3 => st.s3.is_some(),
                StorageProvider::Gcs => st.gcs.is_some(),
                StorageProvider::Azure => st.azure.is_some(),
                StorageProvider::B2 => st.b2.is_some(),
                StorageProvider::Swift => st.swift.is_some(),
                StorageProvider::Rest => st.rest.is_some(),
            };
            if !present {
                e.add(
                    &path,
                    format!(
                        "provider is '{}' but spec.storage.{} is missing",
                        p.field(),
                        p.field()
                    ),
                    format!("add spec.storage.{} with its settings", p.field()),
                );
            }
            if let Some(l) = &st.local {
                e.required(
                    "spec.storage.local.mountPath",
                    &l.mount_path,
                    "set mountPath, the directory the storage is mounted at (e.g. /safe/data)",
                );
                if !l.mount_path.is_empty() && !l.mount_path.starts_with('/') {
                    e.add(
                        "spec.storage.local.mountPath",
                        "must be an absolute path",
                        "use an absolute path such as /safe/data",
                    );
                }
                let v = &l.volume;
                let sources = [
                    v.host_path.is_some(),
                    v.nfs.is_some(),
                    v.persistent_volume_claim.is_some(),
                    v.empty_dir.is_some(),
                ];
                if sources.iter().filter(|s| **s).count() > 1 {
                    e.add(
                        "spec.storage.local",
                        "more than one volume source is set",
                        "keep exactly one of hostPath, nfs, persistentVolumeClaim, emptyDir",
                    );
                }
                if v.host_path.as_ref().is_some_and(|h| !h.path.starts_with('/')) {
                    e.add(
                        "spec.storage.local.hostPath.path",
                        "must be an absolute path",
                        "use an absolute host path such as /var/backups",
                    );
                }
                e.non_negative("spec.storage.local.maxConnections", Some(l.max_connections));
            }
            if let Some(s3) = &st.s3 {
                e.required("spec.storage.s3.bucket", &s3.bucket, "set the bucket name");
                if s3.endpoint.contains("://")
                    && !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"))
                {
                    e.add(
                        "spec.storage.s3.endpoint",
                        format!("'{}' is not an http(s) URL", s3.endpoint),
                        "use e.g. https://s3.amazonaws.com or http://127.0.0.1:9000",
                    );
                }
                e.non_negative("spec.storage.s3.maxConnections", Some(s3.max_connections));
            }
            if let Some(g) = &st.gcs {
                e.required("spec.storage.gcs.bucket", &g.bucket, "set the bucket name");
                e.non_negative("spec.storage.gcs.maxConnections", Some(g.max_connections));
            }
            if let Some(a) = &st.azure {
                e.required(
                    "spec.storage.azure.storageAccount",
                    &a.storage_account,
                    "set the storage account name",
                );
                e.required(
                    "spec.storage.azure.container",
                    &a.container,
                    "set the container name",
                );
                e.non_negative("spec.storage.azure.maxConnections", Some(a.max_connections));
            }
            if let Some(b) = &st.b2 {
                e.required("spec.storage.b2.bucket", &b.bucket, "set the bucket name");
            }
            if let Some(s) = &st.swift {
                e.required(
                    "spec.storage.swift.container",
                    &s.container,
                    "set the container name",
                );
            }
            if let Some(r) = &st.rest {
                if r.url.is_empty() {
                    e.add(
                        "spec.storage.rest.url",
                        "required value is missing",
                        "set url, e.g. http://rest-server:8000/repo",
                    );
                } else if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                    e.add(
                        "spec.storage.rest.url",
                        format!("'{}' is not an http(s) URL", r.url),
                        "use e.g. http://rest-server:8000/repo",
                    );
                }
            }
        }
    }
    e.usage_policy("spec.usagePolicy", bs.spec.usage_policy.as_ref());
    let me = Object::BackupStorage(bs.clone());
    let ns = me.namespace().unwrap_or("default");
    let peers = others(&ctx, &me, |o| match o {
        Object::BackupStorage(b) => Some(b),
        _ => None,
    });
    if bs.spec.default
        && let Some((o, _)) = peers
            .iter()
            .find(|(o, b)| b.spec.default && o.namespace() == Some(ns))
    {
        e.add(
            "spec.default",
            format!(
                "namespace '{ns}' already has a default BackupStorage '{}'",
                o.name()
            ),
            "set default: false here, or unset default on the other one first",
        );
    }
    if let Some(key) = st.location_key()
        && let Some((o, _)) = peers
            .iter()
            .find(|(_, b)| b.spec.storage.location_key().as_ref() == Some(&key))
    {
        e.add(
            format!(
                "spec.storage.{}",
                st.provider.map(|p| p.field()).unwrap_or("provider")
            ),
            format!("{} already uses this bucket/container and prefix", o.describe()),
            "use a different bucket or prefix, or reuse that BackupStorage",
        );
    }
    if let Some(Object::BackupStorage(old)) = ctx.old {
        let in_use = old.status.as_ref().is_some_and(|s| !s.repositories.is_empty());
        if in_use && old.spec.storage != bs.spec.storage {
            e.add(
                "spec.storage",
                "cannot be changed while repositories use this storage",
                "delete the repositories first, or create a new BackupStorage",
            );
        }
    }
}

fn repository(r: &Repository, ctx: Context<'_>, e: &mut Errors) {
    e.required(
        "spec.storageRef.name",
        &r.spec.storage_ref.name,
        "set storageRef.name to a BackupStorage",
    );
    relative_dir(e, "spec.path", &r.spec.path, "spec.path");
    if let Some(Object::Repository(old)) = ctx.old
        && old.spec.path != r.spec.path
    {
        e.add(
            "spec.path",
            format!("is immutable (was '{}')", old.spec.path),
            "create a new Repository for a new path",
        );
    }
    if let Some(sec) = &r.spec.encryption_secret {
        e.required(
            "spec.encryptionSecret.name",
            &sec.name,
            "name the Secret holding RESTIC_PASSWORD",
        );
    }
    let me = Object::Repository(r.clone());
    let ns = me.namespace().unwrap_or("default").to_string();
    let storage_ns = |x: &Repository, own: &str| {
        x.spec
            .storage_ref
            .namespace
            .clone()
            .unwrap_or_else(|| own.to_string())
    };
    for (o, other) in others(&ctx, &me, |o| match o {
        Object::Repository(x) => Some(x),
        _ => None,
    }) {
        let ons = o.namespace().unwrap_or("default");
        if other.spec.storage_ref.name == r.spec.storage_ref.name
            && storage_ns(other, ons) == storage_ns(r, &ns)
            && other.spec.path.trim_matches('/') == r.spec.path.trim_matches('/')
        {
            e.add(
                "spec.path",
                format!(
                    "{} already uses path '{}' in this storage",
                    o.describe(),
                    r.spec.path
                ),
                "choose a different path",
            );
        }
    }
}

fn retention_policy(rp: &RetentionPolicy, ctx: Context<'_>, e: &mut Errors) {
    let s = &rp.spec;
    if s.max_retention_period.is_empty() && s.successful_snapshots.is_none() {
        e.add(
            "spec",
            "neither maxRetentionPeriod nor successfulSnapshots is set",
            "set maxRetentionPeriod (e.g. 30d) or successfulSnapshots (e.g. last: 5)",
        );
    }
    if !s.max_retention_period.is_empty()
        && let Err(why) = parse_retention_period(&s.max_retention_period)
    {
        e.add(
            "spec.maxRetentionPeriod",
            format!("invalid period: {why}"),
            "use <int><unit> pairs with units y, mo, w, d, h, m, e.g. 30d12h",
        );
    }
    if let Some(k) = &s.successful_snapshots {
        for (f, v) in [
            ("last", k.last),
            ("hourly", k.hourly),
            ("daily", k.daily),
            ("weekly", k.weekly),
            ("monthly", k.monthly),
            ("yearly", k.yearly),
        ] {
            e.non_negative(&format!("spec.successfulSnapshots.{f}"), v.map(i64::from));
        }
    }
    if let Some(f) = &s.failed_snapshots {
        e.non_negative("spec.failedSnapshots.last", f.last.map(i64::from));
    }
    e.usage_policy("spec.usagePolicy", s.usage_policy.as_ref());
    let me = Object::RetentionPolicy(rp.clone());
    if s.default {
        let ns = me.namespace();
        if let Some((o, _)) = others(&ctx, &me, |o| match o {
            Object::RetentionPolicy(x) => Some(x),
            _ => None,
        })
        .into_iter()
        .find(|(o, x)| x.spec.default && o.namespace() == ns)
        {
            e.add(
                "spec.default",
                format!("namespace already has a default RetentionPolicy '{}'", o.name()),
                "set default: false here, or unset default on the other one first",
            );
        }
    }
}

fn snapshot(s: &Snapshot, e: &mut Errors) {
    e.required(
        "spec.repository",
        &s.spec.repository,
        "name the Repository this snapshot belongs to",
    );
    if !s.spec.snapshot_id.is_empty() && !is_ulid(&s.spec.snapshot_id) {
        e.add(
            "spec.snapshotID",
            format!("'{}' is not a ULID", s.spec.snapshot_id),
            "use a 26-character Crockford base32 ULID",
        );
    }
}

fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c)))
}

fn hooks(e: &mut Errors, path: &str, list: &[HookInfo], ctx: &Context<'_>, user_ns: &str) {
    let mut seen = BTreeSet::new();
    for (i, h) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        e.unique_name(
            &format!("{p}.name"),
            &h.name,
            &mut seen,
            "hook",
            "give the hook a name",
        );
        match &h.hook_template {
            None => e.add(
                format!("{p}.hookTemplate"),
                "required value is missing",
                "reference a HookTemplate by name",
            ),
            Some(r) => {
                e.required(
                    &format!("{p}.hookTemplate.name"),
                    &r.name,
                    "reference a HookTemplate by name",
                );
                check_usage(
                    e,
                    &format!("{p}.hookTemplate"),
                    r,
                    user_ns,
                    ctx,
                    "HookTemplate",
                    |o| match o {
                        Object::HookTemplate(t) => Some(t.spec.usage_policy.as_ref()),
                        _ => None,
                    },
                );
            }
        }
        e.non_negative(&format!("{p}.maxRetry"), Some(i64::from(h.max_retry)));
        e.go_duration(&format!("{p}.timeout"), h.timeout.as_deref());
    }
}

fn check_usage(
    e: &mut Errors,
    path: &str,
    r: &ObjectReference,
    user_ns: &str,
    ctx: &Context<'_>,
    kind: &str,
    pick: impl Fn(&Object) -> Option<Option<&UsagePolicy>>,
) {
    let owner_ns = r.namespace.as_deref().unwrap_or(user_ns);
    let found = ctx
        .existing
        .iter()
        .find(|o| o.name() == r.name && o.namespace() == Some(owner_ns) && pick(o).is_some());
    if let Some(o) = found {
        let policy = pick(o).flatten();
        if !usage::allows(policy, owner_ns, user_ns, ctx.existing) {
            e.add(
                path,
                format!(
                    "{kind} {owner_ns}/{} does not allow use from namespace '{user_ns}'",
                    r.name
                ),
                format!("add '{user_ns}' to the {kind}'s spec.usagePolicy.allowedNamespaces"),
            );
        }
    }
}

fn addon_info(e: &mut Errors, path: &str, addon: Option<&AddonInfo>) {
    match addon {
        None => e.add(
            path,
            "required value is missing",
            "set addon.name (e.g. postgres-addon) and addon.tasks",
        ),
        Some(a) => {
            e.required(
                &format!("{path}.name"),
                &a.name,
                "name the Addon, e.g. postgres-addon",
            );
            if a.tasks.is_empty() {
                e.add(
                    format!("{path}.tasks"),
                    "at least one task is required",
                    "add a task, e.g. `- name: logical-backup`",
                );
            }
            for (i, t) in a.tasks.iter().enumerate() {
                e.required(
                    &format!("{path}.tasks[{i}].name"),
                    &t.name,
                    "name the task, e.g. logical-backup",
                );
                if let Some(p) = &t.params
                    && !p.is_object()
                {
                    e.add(
                        format!("{path}.tasks[{i}].params"),
                        "must be a map of parameter names to values",
                        "write params as `paths: /data` style key/value pairs",
                    );
                }
            }
        }
    }
}

/// Validate the sessions of a BackupConfiguration or blueprint template. `templated` skips checks
/// on values that still hold `${var}` placeholders.
fn sessions(
    e: &mut Errors,
    sessions: &[Session],
    backends: &BTreeSet<String>,
    ctx: &Context<'_>,
    user_ns: &str,
    templated: bool,
) {
    if sessions.is_empty() {
        e.add(
            "spec.sessions",
            "at least one session is required",
            "add a session with a name, scheduler, addon and repositories",
        );
    }
    let mut names = BTreeSet::new();
    let mut repo_names = BTreeSet::new();
    let mut dirs: BTreeMap<(String, String), String> = BTreeMap::new();
    for (i, s) in sessions.iter().enumerate() {
        let p = format!("spec.sessions[{i}]");
        e.unique_name(
            &format!("{p}.name"),
            &s.name,
            &mut names,
            "session",
            "give the session a name, e.g. frequent-backup",
        );
        match &s.scheduler {
            None => e.add(
                format!("{p}.scheduler"),
                "required value is missing",
                "add scheduler.schedule, e.g. '*/5 * * * *'",
            ),
            Some(sch) => {
                if sch.schedule.trim().is_empty() {
                    e.add(
                        format!("{p}.scheduler.schedule"),
                        "required value is missing",
                        "set a cron schedule, e.g. '*/5 * * * *'",
                    );
                } else if !(templated && sch.schedule.contains("${"))
                    && let Err(why) = Schedule::parse(&sch.schedule)
                {
                    e.add(
                        format!("{p}.scheduler.schedule"),
                        why,
                        "use 5 cron fields, e.g. '0 2 * * *', optionally prefixed by CRON_TZ=<zone>",
                    );
                }
                e.non_negative(
                    &format!("{p}.scheduler.startingDeadlineSeconds"),
                    sch.starting_deadline_seconds,
                );
                e.non_negative(
                    &format!("{p}.scheduler.successfulJobsHistoryLimit"),
                    sch.successful_jobs_history_limit.map(i64::from),
                );
                e.non_negative(
                    &format!("{p}.scheduler.failedJobsHistoryLimit"),
                    sch.failed_jobs_history_limit.map(i64::from),
                );
                e.non_negative(
                    &format!("{p}.scheduler.jobTemplate.backoffLimit"),
                    sch.job_template.backoff_limit.map(i64::from),
                );
            }
        }
        if let Some(rc) = &s.retry_config {
            if let Some(m) = rc.max_retry
                && m < 1
            {
                e.add(
                    format!("{p}.retryConfig.maxRetry"),
                    format!("must be at least 1 (is {m})"),
                    "set maxRetry to 1 or more, or remove retryConfig",
                );
            }
            e.go_duration(&format!("{p}.retryConfig.delay"), rc.delay.as_deref());
        }
        e.go_duration(&format!("{p}.backupTimeout"), s.backup_timeout.as_deref());
        e.non_negative(
            &format!("{p}.sessionHistoryLimit"),
            s.session_history_limit.map(i64::from),
        );
        if let Some(h) = &s.hooks {
            hooks(e, &format!("{p}.hooks.preBackup"), &h.pre_backup, ctx, user_ns);
            hooks(e, &format!("{p}.hooks.postBackup"), &h.post_backup, ctx, user_ns);
        }
        addon_info(e, &format!("{p}.addon"), s.addon.as_ref());
        if s.repositories.is_empty() {
            e.add(
                format!("{p}.repositories"),
                "at least one repository is required",
                "add a repository with name, backend and directory",
            );
        }
        for (j, r) in s.repositories.iter().enumerate() {
            let rp = format!("{p}.repositories[{j}]");
            e.unique_name(
                &format!("{rp}.name"),
                &r.name,
                &mut repo_names,
                "repository",
                "give the repository a name",
            );
            if backends.is_empty() {
                // already reported at spec.backends
            } else if r.backend.is_empty() {
                e.add(
                    format!("{rp}.backend"),
                    "required when the configuration has more than one backend",
                    format!(
                        "set backend to one of: {}",
                        backends.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            } else if !backends.contains(&r.backend) {
                e.add(
                    format!("{rp}.backend"),
                    format!("backend '{}' is not in spec.backends", r.backend),
                    format!(
                        "use one of: {}",
                        backends.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if !(templated && r.directory.contains("${")) {
                relative_dir(e, &format!("{rp}.directory"), &r.directory, "directory");
            }
            if !r.directory.is_empty() {
                let key = (r.backend.clone(), r.directory.trim_matches('/').to_string());
                if let Some(first) = dirs.get(&key) {
                    e.add(
                        format!("{rp}.directory"),
                        format!(
                            "directory '{}' is already used by repository '{first}' on the same backend",
                            r.directory
                        ),
                        "give every repository its own directory",
                    );
                } else {
                    dirs.insert(key, r.name.clone());
                }
            }
            if let Some(sec) = &r.encryption_secret {
                e.required(
                    &format!("{rp}.encryptionSecret.name"),
                    &sec.name,
                    "name the Secret holding RESTIC_PASSWORD",
                );
            }
        }
    }
}

fn backup_configuration(bc: &BackupConfiguration, ctx: Context<'_>, e: &mut Errors) {
    let me = Object::BackupConfiguration(bc.clone());
    let ns = me.namespace().unwrap_or("default").to_string();
    if let Some(t) = &bc.spec.target {
        e.required(
            "spec.target.name",
            &t.name,
            "name the target (an AppBinding, Deployment, StatefulSet, PVC…)",
        );
        if t.kind.as_deref().unwrap_or("").is_empty() {
            e.add(
                "spec.target.kind",
                "required value is missing",
                "set the target kind, e.g. AppBinding",
            );
        }
    }
    if bc.spec.backends.is_empty() {
        e.add(
            "spec.backends",
            "no backends, and the namespace has no default BackupStorage",
            "add a backend with a storageRef, or mark a BackupStorage `default: true`",
        );
    }
    let mut backend_names = BTreeSet::new();
    for (i, b) in bc.spec.backends.iter().enumerate() {
        let p = format!("spec.backends[{i}]");
        e.unique_name(
            &format!("{p}.name"),
            &b.name,
            &mut backend_names,
            "backend",
            "give the backend a name",
        );
        match &b.storage_ref {
            None => e.add(
                format!("{p}.storageRef"),
                "required value is missing",
                "reference a BackupStorage by name and namespace",
            ),
            Some(r) => {
                e.required(
                    &format!("{p}.storageRef.name"),
                    &r.name,
                    "reference a BackupStorage by name",
                );
                check_usage(
                    e,
                    &format!("{p}.storageRef"),
                    r,
                    &ns,
                    &ctx,
                    "BackupStorage",
                    |o| match o {
                        Object::BackupStorage(s) => Some(s.spec.usage_policy.as_ref()),
                        _ => None,
                    },
                );
            }
        }
        match &b.retention_policy {
            None => e.add(
                format!("{p}.retentionPolicy"),
                "required value is missing, and the namespace has no default RetentionPolicy",
                "reference a RetentionPolicy, or mark one `default: true`",
            ),
            Some(r) => {
                e.required(
                    &format!("{p}.retentionPolicy.name"),
                    &r.name,
                    "reference a RetentionPolicy by name",
                );
                check_usage(
                    e,
                    &format!("{p}.retentionPolicy"),
                    r,
                    &ns,
                    &ctx,
                    "RetentionPolicy",
                    |o| match o {
                        Object::RetentionPolicy(x) => Some(x.spec.usage_policy.as_ref()),
                        _ => None,
                    },
                );
            }
        }
    }
    sessions(e, &bc.spec.sessions, &backend_names, &ctx, &ns, false);
    verifiers_restore_elsewhere(e, bc, &ns, &ctx);
    // Repositories this configuration will create must not collide with existing ones.
    for (i, s) in bc.spec.sessions.iter().enumerate() {
        for (j, r) in s.repositories.iter().enumerate() {
            let Some(storage) = bc
                .spec
                .backends
                .iter()
                .find(|b| b.name == r.backend)
                .and_then(|b| b.storage_ref.clone())
            else {
                continue;
            };
            let storage_ns = storage.namespace.clone().unwrap_or_else(|| ns.clone());
            for o in ctx.existing {
                let Object::Repository(repo) = o else { continue };
                let repo_ns = o.namespace().unwrap_or("default");
                let same_storage = repo.spec.storage_ref.name == storage.name
                    && repo.spec.storage_ref.namespace.as_deref().unwrap_or(repo_ns) == storage_ns;
                let p = format!("spec.sessions[{i}].repositories[{j}]");
                if o.name() == r.name && repo_ns == ns {
                    let target = bc.spec.target.clone().unwrap_or_default();
                    if repo.spec.app_ref.name != target.name
                        || repo.spec.app_ref.kind != target.kind
                        || !same_storage
                    {
                        e.add(
                            format!("{p}.name"),
                            format!(
                                "Repository {ns}/{} already exists for another target or storage",
                                r.name
                            ),
                            "choose another repository name",
                        );
                    }
                } else if same_storage && repo.spec.path.trim_matches('/') == r.directory.trim_matches('/') {
                    e.add(
                        format!("{p}.directory"),
                        format!(
                            "{} already uses directory '{}' in this storage",
                            o.describe(),
                            r.directory
                        ),
                        "choose another directory",
                    );
                }
            }
        }
    }
}

fn backup_session(bs: &BackupSession, ctx: Context<'_>, e: &mut Errors) {
    match &bs.spec.invoker {
        None => e.add(
            "spec.invoker",
            "required value is missing",
            "reference the BackupConfiguration that runs this session",
        ),
        Some(inv) => {
            if !matches!(inv.kind.as_str(), "BackupConfiguration" | "BackupBatch") {
                e.add(
                    "spec.invoker.kind",
                    format!("'{}' cannot invoke a backup", inv.kind),
                    "use kind: BackupConfiguration",
                );
            }
            e.required("spec.invoker.name", &inv.name, "name the BackupConfiguration");
        }
    }
    e.required(
        "spec.session",
        &bs.spec.session,
        "name the session of the BackupConfiguration to run",
    );
    e.non_negative("spec.retryLeft", Some(i64::from(bs.spec.retry_left)));
    e.go_duration("spec.backupTimeout", bs.spec.backup_timeout.as_deref());
    if let Some(Object::BackupSession(old)) = ctx.old
        && old.spec != bs.spec
    {
        e.add(
            "spec",
            "a BackupSession's spec is immutable",
            "create a new BackupSession instead (e.g. `kstash trigger`)",
        );
    }
}

fn restore_session(rs: &RestoreSession, ctx: Context<'_>, e: &mut Errors) {
    let me = Object::RestoreSession(rs.clone());
    let ns = me.namespace().unwrap_or("default").to_string();
    match &rs.spec.data_source {
        None => e.add(
            "spec.dataSource",
            "required value is missing",
            "set dataSource.repository and dataSource.snapshot (a name or 'latest')",
        ),
        Some(ds) => {
            if let Some(pitr) = &ds.pitr {
                if pitr.target_time.is_none() {
                    e.add(
                        "spec.dataSource.pitr.targetTime",
                        "required for point-in-time recovery",
                        "set targetTime, e.g. 2026-01-10T02:00:00Z",
                    );
                }
                if ds.repository.is_empty() {
                    e.add(
                        "spec.dataSource.repository",
                        "required for point-in-time recovery",
                        "name the Repository to restore from",
                    );
                }
            } else if ds.snapshot.is_empty() {
                e.add(
                    "spec.dataSource.snapshot",
                    "required value is missing",
                    "name a Snapshot, or use 'latest' together with dataSource.repository",
                );
            } else if ds.snapshot == "latest" && ds.repository.is_empty() {
                e.add(
                    "spec.dataSource.repository",
                    "required when snapshot is 'latest'",
                    "name the Repository whose latest snapshot to restore",
                );
            }
            if let Some(sec) = &ds.encryption_secret {
                e.required(
                    "spec.dataSource.encryptionSecret.name",
                    &sec.name,
                    "name the Secret holding RESTIC_PASSWORD",
                );
            }
        }
    }
    addon_info(e, "spec.addon", rs.spec.addon.as_ref());
    e.go_duration("spec.restoreTimeout", rs.spec.restore_timeout.as_deref());
    if let Some(h) = &rs.spec.hooks {
        hooks(e, "spec.hooks.preRestore", &h.pre_restore, &ctx, &ns);
        hooks(e, "spec.hooks.postRestore", &h.post_restore, &ctx, &ns);
    }
    if let Some(t) = &rs.spec.target {
        e.required("spec.target.name", &t.name, "name the restore target");
    }
}

/// A verifier must never restore over the data it verifies: each `backupVerifier` of `bc` that
/// is stored must restore into another target than `bc`'s own.
fn verifiers_restore_elsewhere(e: &mut Errors, bc: &BackupConfiguration, ns: &str, ctx: &Context<'_>) {
    let Some(own) = &bc.spec.target else { return };
    for (i, s) in bc.spec.sessions.iter().enumerate() {
        for (j, r) in s.repositories.iter().enumerate() {
            let Some(vref) = &r.backup_verifier else { continue };
            let vns = vref.namespace.as_deref().unwrap_or(ns);
            let verifier = ctx.existing.iter().find_map(|o| match o {
                Object::BackupVerifier(v) if o.name() == vref.name && o.namespace() == Some(vns) => Some(v),
                _ => None,
            });
            if let Some(v) = verifier
                && let Some(t) = v.spec.target()
                && verification::same_target(own, ns, t, vns)
            {
                e.add(
                    format!("spec.sessions[{i}].repositories[{j}].backupVerifier"),
                    format!(
                        "BackupVerifier {vns}/{} restores into {}, which is this configuration's own backup target; verification would overwrite the data it verifies",
                        vref.name,
                        verification::describe_target(t, vns)
                    ),
                    "point the verifier's spec.restoreOption.target at a separate target (e.g. a scratch database in its own namespace)",
                );
            }
        }
    }
}

fn backup_verifier(v: &BackupVerifier, ctx: Context<'_>, e: &mut Errors) {
    let ns = v.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = &v.spec;
    match &spec.restore_option {
        None => e.add(
            "spec.restoreOption",
            "required value is missing",
            "set restoreOption.target (where to restore) and restoreOption.addonInfo (how)",
        ),
        Some(ro) => {
            match &ro.target {
                None => e.add(
                    "spec.restoreOption.target",
                    "required value is missing",
                    "name a scratch target to restore into, e.g. {apiGroup: appcatalog.appscode.com, kind: AppBinding, namespace: verify, name: scratch-db}",
                ),
                Some(t) => e.required("spec.restoreOption.target.name", &t.name, "name the restore target"),
            }
            addon_info(e, "spec.restoreOption.addonInfo", ro.addon_info.as_ref());
            if let Some(why) = ro
                .addon_info
                .as_ref()
                .and_then(verification::unsafe_volume_restore)
            {
                e.add(
                    "spec.restoreOption.addonInfo.tasks[0].params.target",
                    why,
                    "name a scratch directory, e.g. params: {target: /var/lib/kstash/verify}",
                );
            }
        }
    }
    if let Some(cron) = spec.cron()
        && let Err(why) = Schedule::parse(cron)
    {
        let path = if spec.scheduler.is_some() {
            "spec.scheduler.schedule"
        } else {
            "spec.schedule"
        };
        e.add(
            path,
            why,
            "use 5 cron fields, e.g. '0 3 * * *', optionally prefixed by CRON_TZ=<zone>",
        );
    }
    match spec.verification_type() {
        VerificationType::RestoreOnly => {}
        VerificationType::Query => match &spec.query {
            None => e.add(
                "spec.query",
                "required when type is Query",
                "add queries, e.g. `query: {postgres: [{database: shop, table: users, rowCount: {operator: Equal, value: 1000}}]}`",
            ),
            Some(raw) => {
                if let Err(errors) = crate::query::VerifierQuery::from_raw(raw) {
                    for fe in errors {
                        e.add(fe.path, fe.message, fe.fix);
                    }
                }
            }
        },
        VerificationType::Script => match &spec.script {
            None => e.add(
                "spec.script",
                "required when type is Script",
                "set script.location to the script's absolute path (and script.args if it takes any)",
            ),
            Some(sc) => {
                if !sc.location.starts_with('/') {
                    e.add(
                        "spec.script.location",
                        format!("must be an absolute path (is '{}')", sc.location),
                        "give the script's absolute path, e.g. /tmp/config/check.sh",
                    );
                }
            }
        },
    }
    if let Some(rc) = &spec.retry_config {
        if let Some(m) = rc.max_retry
            && m < 1
        {
            e.add(
                "spec.retryConfig.maxRetry",
                format!("must be at least 1 (is {m})"),
                "set maxRetry to 1 or more, or remove retryConfig",
            );
        }
        e.go_duration("spec.retryConfig.delay", rc.delay.as_deref());
    }
    e.non_negative(
        "spec.sessionHistoryLimit",
        Some(i64::from(spec.session_history_limit)),
    );
    // The same guard from the verifier's side: no configuration that links it may back up its target.
    let Some(t) = spec.target() else { return };
    let me = v.metadata.name.as_deref().unwrap_or("");
    for o in ctx.existing {
        let Object::BackupConfiguration(bc) = o else {
            continue;
        };
        let bc_ns = o.namespace().unwrap_or("default");
        let links = bc.spec.sessions.iter().flat_map(|s| &s.repositories).any(|r| {
            r.backup_verifier
                .as_ref()
                .is_some_and(|x| x.name == me && x.namespace.as_deref().unwrap_or(bc_ns) == ns)
        });
        if links
            && let Some(own) = &bc.spec.target
            && verification::same_target(own, bc_ns, t, &ns)
        {
            e.add(
                "spec.restoreOption.target",
                format!(
                    "{} is the backup target of BackupConfiguration {bc_ns}/{}, which uses this verifier; verification would overwrite the data it verifies",
                    verification::describe_target(t, &ns),
                    o.name()
                ),
                "restore into a separate target (e.g. a scratch database in its own namespace)",
            );
        }
    }
}

fn backup_verification_session(s: &BackupVerificationSession, ctx: Context<'_>, e: &mut Errors) {
    match &s.spec.invoker {
        None => e.add(
            "spec.invoker",
            "required value is missing",
            "reference the BackupConfiguration whose repository is verified: {apiGroup: core.kubestash.com, kind: BackupConfiguration, name: …}",
        ),
        Some(inv) => {
            if inv.kind != "BackupConfiguration" {
                e.add(
                    "spec.invoker.kind",
                    format!("'{}' cannot invoke a verification", inv.kind),
                    "use kind: BackupConfiguration",
                );
            }
            e.required("spec.invoker.name", &inv.name, "name the BackupConfiguration");
        }
    }
    e.required(
        "spec.session",
        &s.spec.session,
        "name the BackupConfiguration session whose repository is verified",
    );
    e.required(
        "spec.repository",
        &s.spec.repository,
        "name the repository to verify (one with a backupVerifier in the configuration)",
    );
    e.non_negative("spec.retryLeft", Some(i64::from(s.spec.retry_left)));
    if let Some(Object::BackupVerificationSession(old)) = ctx.old
        && old.spec != s.spec
        && !(old.spec.snapshot.is_empty()
            && old.spec
                == BackupVerificationSessionSpec {
                    snapshot: String::new(),
                    ..s.spec.clone()
                })
    {
        e.add(
            "spec",
            "a BackupVerificationSession's spec is immutable (only an empty snapshot may be filled in)",
            "create a new BackupVerificationSession instead",
        );
    }
}

fn hook_template(ht: &HookTemplate, e: &mut Errors) {
    e.usage_policy("spec.usagePolicy", ht.spec.usage_policy.as_ref());
    let Some(ex) = &ht.spec.executor else {
        e.add(
            "spec.executor",
            "required value is missing",
            "set executor.type to Operator, Function or Pod",
        );
        return;
    };
    match ex.type_ {
        None => e.add(
            "spec.executor.type",
            "required value is missing",
            "set executor.type to Operator, Function or Pod",
        ),
        Some(HookExecutorType::Function) => match &ex.function {
            Some(f) if !f.name.is_empty() => {}
            _ => e.add(
                "spec.executor.function",
                "a Function executor needs function.name",
                "set executor.function.name to a Function",
            ),
        },
        Some(HookExecutorType::Pod) => {
            match ex.pod.as_ref().map(|p| p.selector.as_str()) {
                None => e.add(
                    "spec.executor.pod",
                    "a Pod executor needs executor.pod",
                    "set executor.pod.selector, e.g. 'app=postgres'",
                ),
                Some("") => e.add(
                    "spec.executor.pod.selector",
                    "a Pod executor needs a selector",
                    "set executor.pod.selector, e.g. 'app=postgres'",
                ),
                Some(sel) => {
                    if let Some(bad) = sel.split(',').find(|kv| {
                        let parts: Vec<&str> = kv.split('=').collect();
                        parts.len() != 2
                            || parts[0].trim().is_empty()
                            || names::label_key_error(parts[0].trim()).is_some()
                            || names::label_value_error(parts[1].trim()).is_some()
                    }) {
                        e.add("spec.executor.pod.selector", format!("'{bad}' is not a key=value pair"), "write the selector as comma-separated key=value pairs, e.g. 'app=pg,role=primary'");
                    }
                }
            }
        }
        Some(HookExecutorType::Operator) => {}
    }
    if ex.type_.is_some_and(|t| t != HookExecutorType::Function) {
        match &ht.spec.action {
            None => e.add(
                "spec.action",
                "required for Operator and Pod executors",
                "set one of action.exec, action.httpGet, action.httpPost, action.tcpSocket",
            ),
            Some(a) => {
                let n = [
                    a.exec.is_some(),
                    a.http_get.is_some(),
                    a.http_post.is_some(),
                    a.tcp_socket.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count();
                if n != 1 {
                    e.add(
                        "spec.action",
                        format!("exactly one action must be set (found {n})"),
                        "keep one of exec, httpGet, httpPost, tcpSocket",
                    );
                }
                if let Some(x) = &a.exec
                    && x.command.is_empty()
                {
                    e.add(
                        "spec.action.exec.command",
                        "required value is missing",
                        "set the command to run, e.g. ['/bin/sh', '-c', 'echo ok']",
                    );
                }
                for (p, port) in [
                    ("httpGet", a.http_get.as_ref().map(|h| &h.port)),
                    ("httpPost", a.http_post.as_ref().map(|h| &h.port)),
                    ("tcpSocket", a.tcp_socket.as_ref().map(|h| &h.port)),
                ] {
                    if let Some(port) = port
                        && !valid_port(port)
                    {
                        let msg = if port.is_null() {
                            "required value is missing".to_string()
                        } else {
                            format!("{port} is not a port")
                        };
                        e.add(
                            format!("spec.action.{p}.port"),
                            msg,
                            "use a number 1-65535 or a named port",
                        );
                    }
                }
            }
        }
    }
}

fn valid_port(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
        serde_json::Value::Null => false,
        serde_json::Value::String(s) => {
            !s.is_empty()
                && (s.parse::<u16>().is_ok_and(|p| p > 0) || names::dns1123_label_error(s).is_none())
        }
        _ => false,
    }
}

fn backup_blueprint(bp: &BackupBlueprint, ctx: Context<'_>, e: &mut Errors) {
    e.usage_policy("spec.usagePolicy", bp.spec.usage_policy.as_ref());
    let Some(t) = &bp.spec.backup_configuration_template else {
        e.add(
            "spec.backupConfigurationTemplate",
            "required value is missing",
            "add backupConfigurationTemplate with backends and sessions",
        );
        return;
    };
    let me = Object::BackupBlueprint(bp.clone());
    let ns = if t.namespace.is_empty() {
        me.namespace().unwrap_or("default").to_string()
    } else {
        t.namespace.clone()
    };
    let mut backend_names = BTreeSet::new();
    for (i, b) in t.backends.iter().enumerate() {
        e.required(
            &format!("spec.backupConfigurationTemplate.backends[{i}].name"),
            &b.name,
            "give the backend a name",
        );
        backend_names.insert(b.name.clone());
        if let Some(r) = &b.storage_ref {
            check_usage(
                e,
                &format!("spec.backupConfigurationTemplate.backends[{i}].storageRef"),
                r,
                &ns,
                &ctx,
                "BackupStorage",
                |o| match o {
                    Object::BackupStorage(s) => Some(s.spec.usage_policy.as_ref()),
                    _ => None,
                },
            );
        }
    }
    let mut inner = Errors {
        object: e.object.clone(),
        list: Vec::new(),
    };
    sessions(&mut inner, &t.sessions, &backend_names, &ctx, &ns, true);
    for mut fe in inner.list {
        if t.backends.is_empty() && fe.path.ends_with(".backend") {
            continue; // backends come from the namespace default when the template has none
        }
        fe.path = fe.path.replacen("spec.", "spec.backupConfigurationTemplate.", 1);
        e.list.push(fe);
    }
}

fn task(e: &mut Errors, path: &str, t: &Task, seen: &mut BTreeSet<String>) {
    e.unique_name(
        &format!("{path}.name"),
        &t.name,
        seen,
        "task",
        "name the task, e.g. logical-backup",
    );
    e.required(
        &format!("{path}.function"),
        &t.function,
        "name the Function that runs this task",
    );
}

fn addon(a: &Addon, e: &mut Errors) {
    if a.spec.backup_tasks.is_empty() && a.spec.restore_tasks.is_empty() {
        e.add(
            "spec",
            "an Addon needs at least one backup or restore task",
            "add spec.backupTasks or spec.restoreTasks",
        );
    }
    for (field, list) in [
        ("backupTasks", &a.spec.backup_tasks),
        ("restoreTasks", &a.spec.restore_tasks),
    ] {
        let mut seen = BTreeSet::new();
        for (i, t) in list.iter().enumerate() {
            let p = format!("spec.{field}[{i}]");
            task(e, &p, t, &mut seen);
        }
    }
}

fn function(f: &Function, e: &mut Errors) {
    e.required(
        "spec.image",
        &f.spec.image,
        "set the container image that runs this function",
    );
}

/// An AppBinding is refused for nothing: KubeDB writes objects KubeStash's API accepts without
/// a webhook (both `url` and `service`, `tcp(host:port)/` DSNs, bare `host:port`). What kstash
/// cannot use is a warning here and a clear error only when a task needs the address.
fn app_binding(_: &AppBinding, _: &mut Errors) {}

/// Warnings about `obj`: what kstash accepts but cannot use as written (reported at apply,
/// stored all the same).
pub fn warnings(obj: &Object) -> Vec<FieldError> {
    let mut w = Errors {
        object: obj.describe(),
        list: Vec::new(),
    };
    if let Object::AppBinding(a) = obj {
        app_binding_warnings(a, &mut w);
    }
    w.list
}

fn app_binding_warnings(a: &AppBinding, w: &mut Errors) {
    let cc = &a.spec.client_config;
    if cc.address(false).is_none() {
        w.add(
            "spec.clientConfig",
            "neither url nor service is set; a backup or restore of this target will fail",
            "set clientConfig.url (e.g. postgres://127.0.0.1:5432/postgres) or clientConfig.service",
        );
    }
    if let Some(u) = cc.url.as_deref().filter(|u| !u.trim().is_empty())
        && let Err(why) = crate::appcatalog::parse_client_url(u)
    {
        w.add(
            "spec.clientConfig.url",
            format!("kstash cannot read it: {why}"),
            "use scheme://host:port[/path], tcp(host:port)/ or host:port",
        );
    }
    if let Some(s) = &cc.service {
        if let Some(p) = s.port
            && !(1..=65535).contains(&p)
        {
            w.add(
                "spec.clientConfig.service.port",
                format!("{p} is not a port; a task that uses the service will fail"),
                "use 1-65535",
            );
        }
        if cc.url.is_none() && s.name.is_empty() {
            w.add("spec.clientConfig.service.name", "not set", "name the service");
        }
    }
    if let Some(s) = &a.spec.secret
        && s.name.is_empty()
    {
        w.add(
            "spec.secret.name",
            "not set; a task that needs credentials will fail",
            "name the Secret with the credentials",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Object {
        let mut o = Object::from_value(&v).unwrap();
        crate::defaults::apply(&mut o, &[]);
        o
    }

    #[test]
    fn a_minimal_backup_configuration_is_valid() {
        let bc = parse(json!({
            "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
            "metadata": {"name": "pg-backup", "namespace": "demo"},
            "spec": {
                "target": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": "pg", "namespace": "demo"},
                "backends": [{"name": "s3", "storageRef": {"name": "s3", "namespace": "demo"}, "retentionPolicy": {"name": "keep", "namespace": "demo"}}],
                "sessions": [{"name": "frequent", "scheduler": {"schedule": "*/5 * * * *", "jobTemplate": {"backoffLimit": 1}},
                  "repositories": [{"name": "pg-repo", "backend": "s3", "directory": "/pg/../x", "encryptionSecret": {"name": "enc", "namespace": "demo"}}],
                  "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup"}]}}]
            }
        }));
        let errs = validate(&bc, Context::default());
        assert_eq!(
            errs.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["spec.sessions[0].repositories[0].directory"]
        );
        assert!(errs[0].to_string().starts_with("BackupConfiguration demo/pg-backup: spec.sessions[0].repositories[0].directory: '/pg/../x' must not contain '..'"));
    }

    #[test]
    fn default_storage_and_retention_policy_fill_empty_backends() {
        let storage = parse(
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": "local", "namespace": "demo"},
            "spec": {"default": true, "storage": {"provider": "local", "local": {"mountPath": "/safe", "hostPath": {"path": "/tmp/b"}}}}}),
        );
        let rp = parse(
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "all", "namespace": "kstash"},
            "spec": {"default": true, "maxRetentionPeriod": "30d", "usagePolicy": {"allowedNamespaces": {"from": "All"}}}}),
        );
        let existing = vec![storage, rp];
        let mut bc = Object::from_value(&json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
            "metadata": {"name": "b", "namespace": "demo"},
            "spec": {"sessions": [{"name": "s", "scheduler": {"schedule": "@daily"}, "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]},
              "repositories": [{"name": "r", "directory": "demo/r"}]}]}})).unwrap();
        crate::defaults::apply(&mut bc, &existing);
        let Object::BackupConfiguration(b) = &bc else {
            unreachable!()
        };
        assert_eq!(b.spec.backends[0].storage_ref.as_ref().unwrap().name, "local");
        assert_eq!(
            b.spec.backends[0]
                .retention_policy
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("kstash")
        );
        assert_eq!(
            b.spec.sessions[0].repositories[0].backend,
            crate::defaults::DEFAULT_BACKEND_NAME
        );
        assert_eq!(b.spec.sessions[0].session_history_limit, Some(1));
        assert!(
            validate(
                &bc,
                Context {
                    existing: &existing,
                    old: None
                }
            )
            .is_empty()
        );
    }
}
