//! Validation, as KubeStash's admission does it, and no stricter. KubeStash refuses an object in
//! three places: its validating webhooks (kubestash/apimachinery `webhooks/core/v1alpha1/*.go` and
//! `webhooks/storage/v1alpha1/*.go`; the installer's chart registers them for BackupStorage,
//! Repository, RetentionPolicy, BackupBatch, BackupBlueprint, BackupConfiguration, BackupSession,
//! HookTemplate and RestoreSession only), the webhook's decoding of the object (a `metav1.Duration`
//! field that is not a Go duration fails it), and the API server (object metadata, the CRD
//! schemas' `required`, `enum`, `minimum`). What those refuse is an error here. What they accept
//! and kstash cannot use as written is a warning: reported at apply, the object stored, and a clear
//! error later, when something needs the field. Every rule names its counterpart in a
//! `// KubeStash:` comment (`none` when KubeStash has no such rule, with why kstash keeps it).
//!
//! Every message names the object, the JSON path and the fix. Pure: the caller passes the objects
//! already stored and, for updates, the old version.
//!
//! One approximation: kstash's types read an absent string as empty, so a field the CRD schema
//! requires inside an optional object (`storageRef.name`, `invoker.kind`) is refused when empty,
//! though the schema would take an explicit `""`.

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
use crate::storage::{Backend, BackupStorage, Repository, RetentionPolicy, Snapshot, StorageProvider};
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

/// What validation found about one object.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// What KubeStash refuses too: the object is not stored.
    pub errors: Vec<FieldError>,
    /// What KubeStash accepts but kstash cannot use as written (or will fail on when a backup,
    /// restore or hook needs it): reported, and the object stored.
    pub warnings: Vec<FieldError>,
}

/// How a rule bites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// KubeStash refuses it too: the object is refused.
    Error,
    /// KubeStash accepts it: reported, and the object stored.
    Warning,
}

use Level::{Error, Warning};

pub(crate) struct Errors {
    pub(crate) object: String,
    pub(crate) list: Vec<FieldError>,
    pub(crate) warnings: Vec<FieldError>,
}

impl Errors {
    fn new(object: String) -> Errors {
        Errors {
            object,
            list: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn at(
        &mut self,
        level: Level,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let e = FieldError {
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        };
        match level {
            Error => self.list.push(e),
            Warning => self.warnings.push(e),
        }
    }

    /// An error: KubeStash refuses this too.
    pub(crate) fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.at(Error, path, message, fix);
    }

    /// A warning: KubeStash accepts this; kstash reports it and stores the object.
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.at(Warning, path, message, fix);
    }

    pub(crate) fn required(&mut self, path: &str, value: &str, fix: &str) {
        self.required_at(Error, path, value, fix);
    }

    fn required_at(&mut self, level: Level, path: &str, value: &str, fix: &str) {
        if let Some(level) = blank(value, level) {
            self.at(level, path, "required value is missing", fix);
        }
    }

    /// `name` among its siblings already in `seen`: an empty name is reported at `missing`, a
    /// repeated one at `duplicate` (two empty names count as a duplicate only for an error, as
    /// KubeStash's uniqueness checks compare names as they are).
    #[allow(clippy::too_many_arguments)]
    fn sibling_name(
        &mut self,
        path: &str,
        name: &str,
        seen: &mut BTreeSet<String>,
        what: &str,
        hint: &str,
        missing: Level,
        duplicate: Level,
    ) {
        if let Some(level) = blank(name, missing) {
            self.at(level, path, "required value is missing", hint);
            if duplicate == Warning {
                return;
            }
        }
        if !seen.insert(name.to_string()) {
            self.at(
                duplicate,
                path,
                format!("duplicate {what} name '{name}'"),
                format!("give every {what} a unique name"),
            );
        }
    }

    /// A `metav1.Duration` field. Go's `time.ParseDuration` refuses what is not a duration when
    /// KubeStash's webhook decodes the object (`level`: an error where a webhook is registered for
    /// the kind); it takes a negative one, which no kstash timeout or delay can use (a warning).
    fn go_duration(&mut self, level: Level, path: &str, value: Option<&str>) {
        let Some(v) = value else { return };
        if let Err(e) = parse_go_duration(v) {
            match v.trim().strip_prefix('-').map(parse_go_duration) {
                Some(Ok(_)) => self.warn(
                    path,
                    format!("'{v}' is negative; kstash cannot wait a negative time"),
                    "use a positive duration like 30s, 5m or 1h30m",
                ),
                _ => self.at(
                    level,
                    path,
                    format!("invalid duration: {e}"),
                    "use a duration like 30s, 5m or 1h30m",
                ),
            }
        }
    }

    fn non_negative(&mut self, level: Level, path: &str, value: Option<i64>) {
        if let Some(v) = value
            && v < 0
        {
            self.at(
                level,
                path,
                format!("must be >= 0 (is {v})"),
                "use 0 or a positive number",
            );
        }
    }

    // KubeStash: validateUsagePolicy of backupstorage.go, retentionpolicy.go, hooktemplate.go and
    // backupblueprint.go.
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

/// How a blank `value` is reported: `None` when it is not blank; `level` when it is empty (what
/// KubeStash compares with `""`); a warning when it is only white space, which KubeStash takes.
fn blank(value: &str, level: Level) -> Option<Level> {
    if value.is_empty() {
        Some(level)
    } else if value.trim().is_empty() {
        Some(Warning)
    } else {
        None
    }
}

/// Validate `obj` (after defaults): its errors and warnings.
pub fn check(obj: &Object, ctx: Context<'_>) -> Checked {
    let mut e = Errors::new(obj.describe());
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
    Checked {
        errors: e.list,
        warnings: e.warnings,
    }
}

/// Validate `obj` (after defaults). Returns every error found; empty means valid.
pub fn validate(obj: &Object, ctx: Context<'_>) -> Vec<FieldError> {
    check(obj, ctx).errors
}

/// The warning for a cluster-scoped object (Addon, Function, Namespace) that names a namespace,
/// checked before defaults drop it.
// KubeStash: the API server clears it (`EnsureObjectNamespaceMatchesRequestNamespace`), and
// `kubectl apply` ignores it, so it is no error.
pub fn ignored_namespace(obj: &Object) -> Option<FieldError> {
    let ns = obj.meta().namespace.as_deref().filter(|ns| !ns.is_empty())?;
    if obj.resource_type().namespaced {
        return None;
    }
    Some(FieldError {
        object: obj.describe(),
        path: "metadata.namespace".into(),
        message: format!(
            "{} is cluster-scoped; namespace '{ns}' is ignored",
            obj.resource_type().kind
        ),
        fix: "remove metadata.namespace".into(),
    })
}

// KubeStash: the API server's ValidateObjectMeta (custom resources' names are DNS-1123
// subdomains; the request's namespace a DNS-1123 label; label keys and values).
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
    if let Some(ns) = &meta.namespace
        && obj.resource_type().namespaced
        && let Some(why) = names::dns1123_label_error(ns)
    {
        e.add(
            "metadata.namespace",
            format!("invalid namespace '{ns}': {why}"),
            "use a DNS-1123 label, e.g. 'demo'",
        );
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

/// A directory as the storage names it: slashes trimmed and collapsed (kstash-storage's
/// `repo_dir`), so `/demo/pg`, `demo/pg/` and `demo//pg` are one directory.
fn storage_dir(dir: &str) -> String {
    dir.split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// A repository directory below the storage root: an empty one is reported at `missing`.
// KubeStash: none for '.', '..' and the root (a Repository's path and a session repository's
// directory are plain strings). kstash-storage refuses each when the repository is initialised
// (`StorageLayout::repo_dir`: outside the storage's prefix, or the storage root itself).
fn relative_dir(e: &mut Errors, missing: Level, path: &str, dir: &str, what: &str) {
    if dir.is_empty() {
        e.at(
            missing,
            path,
            "required value is missing",
            format!("set {what} to a relative path such as 'demo/postgres'"),
        );
    } else if let Some(bad) = dir.split('/').find(|p| *p == ".." || *p == ".") {
        e.warn(
            path,
            format!("'{dir}' must not contain '{bad}'; kstash cannot create the repository"),
            format!("set {what} to a path inside the storage, e.g. '/demo/postgres'"),
        );
    } else if storage_dir(dir).trim().is_empty() {
        e.warn(
            path,
            "must name a directory below the storage root; kstash cannot create the repository",
            format!("set {what} to e.g. '/demo/postgres'"),
        );
    }
}

/// KubeStash's `isPointToSameDir` (backupstorage.go): the same provider and, for s3, the same
/// bucket, region and prefix; for gcs, bucket and prefix; for azure, account, container and
/// prefix, compared after the trailing-'/' trim of its mutating webhook (which `defaults` does
/// too). Two storages of another provider never clash.
fn kubestash_same_dir(a: &Backend, b: &Backend) -> bool {
    if a.provider != b.provider {
        return false;
    }
    match a.provider {
        Some(StorageProvider::S3) => match (&a.s3, &b.s3) {
            (Some(x), Some(y)) => x.bucket == y.bucket && x.region == y.region && x.prefix == y.prefix,
            _ => false,
        },
        Some(StorageProvider::Gcs) => match (&a.gcs, &b.gcs) {
            (Some(x), Some(y)) => x.bucket == y.bucket && x.prefix == y.prefix,
            _ => false,
        },
        Some(StorageProvider::Azure) => match (&a.azure, &b.azure) {
            (Some(x), Some(y)) => {
                x.storage_account == y.storage_account && x.container == y.container && x.prefix == y.prefix
            }
            _ => false,
        },
        _ => false,
    }
}

fn backup_storage(bs: &BackupStorage, ctx: Context<'_>, e: &mut Errors) {
    let st = &bs.spec.storage;
    // KubeStash: none for everything in `spec.storage` (the CRD's provider has no enum, no field
    // of it is required, and backupstorage.go checks none). kstash-storage refuses an incomplete
    // storage when it is initialised (`StorageConfig::from_backend`), so each is a warning naming
    // what will fail; b2, swift and rest are kstash's own providers (KubeStash's CRD has none).
    const UNUSABLE: &str = "; backups and restores with this storage fail until it is set";
    match st.provider {
        None => e.warn(
            "spec.storage.provider",
            format!("required value is missing{UNUSABLE}"),
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
                e.warn(
                    &path,
                    format!(
                        "provider is '{}' but spec.storage.{} is missing{UNUSABLE}",
                        p.field(),
                        p.field()
                    ),
                    format!("add spec.storage.{} with its settings", p.field()),
                );
            }
        }
    }
    let missing = |e: &mut Errors, path: &str, value: &str, fix: &str| {
        if value.trim().is_empty() {
            e.warn(path, format!("required value is missing{UNUSABLE}"), fix);
        }
    };
    if let Some(l) = &st.local {
        missing(
            e,
            "spec.storage.local.mountPath",
            &l.mount_path,
            "set mountPath, the directory the storage is mounted at (e.g. /safe/data)",
        );
        // Container runtimes refuse a relative mount path, so KubeStash's and kstash's Jobs
        // cannot mount the storage.
        if !l.mount_path.is_empty() && !l.mount_path.starts_with('/') {
            e.warn(
                "spec.storage.local.mountPath",
                "must be an absolute path; a Job cannot mount the storage there",
                "use an absolute path such as /safe/data",
            );
        }
        // Kubernetes refuses a Pod whose volume has two sources, so no Job can mount it.
        let v = &l.volume;
        let sources = [
            v.host_path.is_some(),
            v.nfs.is_some(),
            v.persistent_volume_claim.is_some(),
            v.empty_dir.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            e.warn(
                "spec.storage.local",
                "more than one volume source is set; Kubernetes refuses such a volume",
                "keep exactly one of hostPath, nfs, persistentVolumeClaim, emptyDir",
            );
        }
        // The embedded runtime reads a hostPath storage at `hostPath.path` on this machine.
        if v.host_path.as_ref().is_some_and(|h| !h.path.starts_with('/')) {
            e.warn(
                "spec.storage.local.hostPath.path",
                "must be an absolute path; a relative one depends on the directory kstash runs in",
                "use an absolute host path such as /var/backups",
            );
        }
    }
    if let Some(s3) = &st.s3 {
        missing(e, "spec.storage.s3.bucket", &s3.bucket, "set the bucket name");
        // kstash's S3 client speaks http(s) only.
        if s3.endpoint.contains("://")
            && !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"))
        {
            e.warn(
                "spec.storage.s3.endpoint",
                format!("'{}' is not an http(s) URL{UNUSABLE}", s3.endpoint),
                "use e.g. https://s3.amazonaws.com or http://127.0.0.1:9000",
            );
        }
    }
    if let Some(g) = &st.gcs {
        missing(e, "spec.storage.gcs.bucket", &g.bucket, "set the bucket name");
    }
    if let Some(a) = &st.azure {
        missing(
            e,
            "spec.storage.azure.storageAccount",
            &a.storage_account,
            "set the storage account name",
        );
        missing(
            e,
            "spec.storage.azure.container",
            &a.container,
            "set the container name",
        );
    }
    if let Some(b) = &st.b2 {
        missing(e, "spec.storage.b2.bucket", &b.bucket, "set the bucket name");
    }
    if let Some(s) = &st.swift {
        missing(
            e,
            "spec.storage.swift.container",
            &s.container,
            "set the container name",
        );
    }
    if let Some(r) = &st.rest {
        missing(
            e,
            "spec.storage.rest.url",
            &r.url,
            "set url, e.g. http://rest-server:8000/repo",
        );
        if !(r.url.is_empty() || r.url.starts_with("http://") || r.url.starts_with("https://")) {
            e.warn(
                "spec.storage.rest.url",
                format!("'{}' is not an http(s) URL{UNUSABLE}", r.url),
                "use e.g. http://rest-server:8000/repo",
            );
        }
    }
    // KubeStash: none (the CRD's maxConnections has no minimum); kstash uses its default for 0
    // or less, which the message says.
    for (path, n) in [
        (
            "spec.storage.local.maxConnections",
            st.local.as_ref().map(|l| l.max_connections),
        ),
        (
            "spec.storage.s3.maxConnections",
            st.s3.as_ref().map(|s| s.max_connections),
        ),
        (
            "spec.storage.gcs.maxConnections",
            st.gcs.as_ref().map(|g| g.max_connections),
        ),
        (
            "spec.storage.azure.maxConnections",
            st.azure.as_ref().map(|a| a.max_connections),
        ),
    ] {
        if let Some(n) = n.filter(|n| *n < 0) {
            e.warn(
                path,
                format!("must be >= 0 (is {n}); kstash uses its default"),
                "use 0 (the default) or a positive number",
            );
        }
    }
    e.usage_policy("spec.usagePolicy", bs.spec.usage_policy.as_ref());
    let me = Object::BackupStorage(bs.clone());
    let ns = me.namespace().unwrap_or("default");
    let peers = others(&ctx, &me, |o| match o {
        Object::BackupStorage(b) => Some(b),
        _ => None,
    });
    // KubeStash: backupstorage.go validateSingleDefaultBackupStorageInSameNamespace.
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
    // KubeStash: backupstorage.go validateUniqueDirectory (isPointToSameDir): an error where it
    // and kstash's location (which adds the endpoint, so two S3 servers may each have a bucket
    // of the same name) agree. Where only kstash's location matches (a prefix differing in a
    // leading '/', or a local, b2, swift or rest storage) it is a warning: both storages would
    // list, and sync, the other's repositories and snapshots.
    if let Some(key) = st.location_key()
        && let Some((o, b)) = peers
            .iter()
            .find(|(_, b)| b.spec.storage.location_key().as_ref() == Some(&key))
    {
        let level = if kubestash_same_dir(st, &b.spec.storage) {
            Error
        } else {
            Warning
        };
        e.at(
            level,
            format!(
                "spec.storage.{}",
                st.provider.map(|p| p.field()).unwrap_or("provider")
            ),
            format!("{} already uses this bucket/container and prefix", o.describe()),
            "use a different bucket or prefix, or reuse that BackupStorage",
        );
    }
    // KubeStash: backupstorage.go validateUpdateStorage (the API server copies the stored status
    // into the new object, so the old status is the one it reads).
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
    // KubeStash: CRD `storageRef.required: [name]`, but `storageRef` itself is optional and kstash
    // cannot tell an absent one from an empty name, so a warning: the repository has no storage.
    e.required_at(
        Warning,
        "spec.storageRef.name",
        &r.spec.storage_ref.name,
        "set storageRef.name to a BackupStorage",
    );
    relative_dir(e, Warning, "spec.path", &r.spec.path, "spec.path");
    // KubeStash: repository.go ValidateUpdate ("repository path can not be updated").
    if let Some(Object::Repository(old)) = ctx.old
        && old.spec.path != r.spec.path
    {
        e.add(
            "spec.path",
            format!("is immutable (was '{}')", old.spec.path),
            "create a new Repository for a new path",
        );
    }
    // KubeStash: CRD `encryptionSecret.required: [name]`.
    if let Some(sec) = &r.spec.encryption_secret {
        e.required(
            "spec.encryptionSecret.name",
            &sec.name,
            "name the Secret holding RESTIC_PASSWORD",
        );
    }
    // KubeStash: none on a Repository (backupconfiguration.go validateRepoDirExistence checks
    // the repositories a configuration creates). Two Repositories on one directory are one restic
    // repository, whose snapshots each forgets by its own retention and deletion policy.
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
        if !r.spec.path.is_empty()
            && other.spec.storage_ref.name == r.spec.storage_ref.name
            && storage_ns(other, ons) == storage_ns(r, &ns)
            && storage_dir(&other.spec.path) == storage_dir(&r.spec.path)
        {
            e.warn(
                "spec.path",
                format!(
                    "{} already uses path '{}' in this storage; both would forget each other's snapshots",
                    o.describe(),
                    r.spec.path
                ),
                "choose a different path",
            );
        }
    }
}

/// Whether KubeStash's `ParseDuration` (retentionpolicy_helpers.go) reads `s`: after trimming
/// white space, one or more `[-]<digits><unit>` with units `mo`, `y`, `w`, `d`, `h`, `m`.
fn kubestash_reads_period(s: &str) -> bool {
    let mut rest = s.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('-').unwrap_or(rest);
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        rest = match rest.strip_prefix("mo") {
            Some(r) => r,
            None if rest.starts_with(['y', 'w', 'd', 'h', 'm']) => &rest[1..],
            None => return false,
        };
    }
    true
}

fn retention_policy(rp: &RetentionPolicy, ctx: Context<'_>, e: &mut Errors) {
    let s = &rp.spec;
    // KubeStash: retentionpolicy.go validateProvidedPolicy.
    if s.max_retention_period.is_empty() && s.successful_snapshots.is_none() {
        e.add(
            "spec",
            "neither maxRetentionPeriod nor successfulSnapshots is set",
            "set maxRetentionPeriod (e.g. 30d) or successfulSnapshots (e.g. last: 5)",
        );
    }
    // KubeStash: retentionpolicy.go validateMaxRetentionPeriodFormat (ParseDuration). It also
    // reads a negative number ("-5d"), which no retention can apply: a warning.
    if !s.max_retention_period.is_empty()
        && let Err(why) = parse_retention_period(&s.max_retention_period)
    {
        let level = if kubestash_reads_period(&s.max_retention_period) {
            Warning
        } else {
            Error
        };
        e.at(
            level,
            "spec.maxRetentionPeriod",
            format!("invalid period: {why}"),
            "use <int><unit> pairs with units y, mo, w, d, h, m, e.g. 30d12h",
        );
    }
    // KubeStash: none (the CRD's counts have no minimum); a negative count keeps nothing.
    if let Some(k) = &s.successful_snapshots {
        for (f, v) in [
            ("last", k.last),
            ("hourly", k.hourly),
            ("daily", k.daily),
            ("weekly", k.weekly),
            ("monthly", k.monthly),
            ("yearly", k.yearly),
        ] {
            e.non_negative(
                Warning,
                &format!("spec.successfulSnapshots.{f}"),
                v.map(i64::from),
            );
        }
    }
    if let Some(f) = &s.failed_snapshots {
        e.non_negative(Warning, "spec.failedSnapshots.last", f.last.map(i64::from));
    }
    e.usage_policy("spec.usagePolicy", s.usage_policy.as_ref());
    // KubeStash: retentionpolicy.go validateSingleDefaultRetentionPolicyInSameNamespace.
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
    // KubeStash: none (Snapshots have no webhook; the CRD requires no field of the spec). A
    // Snapshot without its Repository is listed, kept and forgotten by no repository.
    e.required_at(
        Warning,
        "spec.repository",
        &s.spec.repository,
        "name the Repository this snapshot belongs to",
    );
}

/// The hooks of a session. `usage` is how a HookTemplate's refusal of this namespace is
/// reported (KubeStash checks it for BackupConfigurations and RestoreSessions only).
fn hooks(
    e: &mut Errors,
    usage_level: Level,
    path: &str,
    list: &[HookInfo],
    ctx: &Context<'_>,
    user_ns: &str,
) {
    let mut seen = BTreeSet::new();
    for (i, h) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        // KubeStash: none; kstash reports each hook's status by its name, so two hooks of one
        // name overwrite each other's.
        e.sibling_name(
            &format!("{p}.name"),
            &h.name,
            &mut seen,
            "hook",
            "give the hook a name",
            Warning,
            Warning,
        );
        match &h.hook_template {
            // KubeStash: none (`hookTemplate` is optional in the CRD); the hook cannot run.
            None => e.warn(
                format!("{p}.hookTemplate"),
                "not set; the hook fails when it runs",
                "reference a HookTemplate by name",
            ),
            Some(r) => {
                // KubeStash: CRD `hookTemplate.required: [name]`.
                e.required(
                    &format!("{p}.hookTemplate.name"),
                    &r.name,
                    "reference a HookTemplate by name",
                );
                // KubeStash: validateHookTemplatesAgainstUsagePolicy (backupconfiguration.go,
                // restoresession.go); it looks the template up in the namespace the reference
                // names, so one without a namespace is never checked there.
                let level = match r.namespace.as_deref() {
                    Some(ns) if !ns.is_empty() => usage_level,
                    _ => Warning,
                };
                check_usage(
                    e,
                    level,
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
        // KubeStash: CRD `maxRetry.minimum: 0`.
        e.non_negative(Error, &format!("{p}.maxRetry"), Some(i64::from(h.max_retry)));
        // KubeStash: `timeout` is a metav1.Duration, decoded by the webhook of every kind with
        // hooks (BackupConfiguration, BackupBlueprint, RestoreSession).
        e.go_duration(Error, &format!("{p}.timeout"), h.timeout.as_deref());
    }
}

/// The usage policy of the referenced `kind` must allow `user_ns`. A referent that is not
/// stored is not reported (KubeStash skips what it does not find).
#[allow(clippy::too_many_arguments)]
fn check_usage(
    e: &mut Errors,
    level: Level,
    path: &str,
    r: &ObjectReference,
    user_ns: &str,
    ctx: &Context<'_>,
    kind: &str,
    pick: impl Fn(&Object) -> Option<Option<&UsagePolicy>>,
) {
    let owner_ns = r
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(user_ns);
    let found = ctx
        .existing
        .iter()
        .find(|o| o.name() == r.name && o.namespace() == Some(owner_ns) && pick(o).is_some());
    if let Some(o) = found {
        let policy = pick(o).flatten();
        if !usage::allows(policy, owner_ns, user_ns, ctx.existing) {
            e.at(
                level,
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

/// An addon entry. `level` is how a missing addon, name or task is reported: an error where
/// KubeStash's webhook checks it (backupconfiguration.go validateAddonInfo), a warning where
/// nothing does (RestoreSession, BackupVerifier, a blueprint's template), since the backup or
/// restore cannot run without them.
fn addon_info(e: &mut Errors, level: Level, path: &str, addon: Option<&AddonInfo>) {
    match addon {
        None => e.at(
            level,
            path,
            "required value is missing",
            "set addon.name (e.g. postgres-addon) and addon.tasks",
        ),
        Some(a) => {
            e.required_at(
                level,
                &format!("{path}.name"),
                &a.name,
                "name the Addon, e.g. postgres-addon",
            );
            if a.tasks.is_empty() {
                e.at(
                    level,
                    format!("{path}.tasks"),
                    "at least one task is required",
                    "add a task, e.g. `- name: logical-backup`",
                );
            }
            for (i, t) in a.tasks.iter().enumerate() {
                e.required_at(
                    level,
                    &format!("{path}.tasks[{i}].name"),
                    &t.name,
                    "name the task, e.g. logical-backup",
                );
                // KubeStash: CRD `params` is `type: object`.
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

/// Whose sessions are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A BackupConfiguration: KubeStash's webhook checks its sessions (validateSessions).
    Configuration,
    /// A BackupBlueprint's template: KubeStash's webhook checks only its usage policy, so what
    /// the CRD schema does not refuse is a warning here (the generated configuration is refused
    /// later); values that still hold `${var}` placeholders are not checked.
    Blueprint,
}

/// Validate the sessions of a BackupConfiguration or blueprint template.
fn sessions(
    e: &mut Errors,
    owner: Owner,
    sessions: &[Session],
    backends: &[String],
    ctx: &Context<'_>,
    user_ns: &str,
) {
    let webhook = match owner {
        Owner::Configuration => Error,
        Owner::Blueprint => Warning,
    };
    let templated = |v: &str| owner == Owner::Blueprint && v.contains("${");
    // KubeStash: backupconfiguration.go validateSessions ("sessions can not be empty").
    if sessions.is_empty() {
        e.at(
            webhook,
            "spec.sessions",
            "at least one session is required",
            "add a session with a name, scheduler, addon and repositories",
        );
    }
    let mut names = BTreeSet::new();
    // (backend, directory as written) → repository, and the same by storage directory.
    let mut dirs: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut storage_dirs: BTreeMap<(String, String), String> = BTreeMap::new();
    // repository name → (backend, storage directory) of its first use.
    let mut repos: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (i, s) in sessions.iter().enumerate() {
        let p = format!("spec.sessions[{i}]");
        // KubeStash: validateSessionNameUnique (empty and duplicate names).
        e.sibling_name(
            &format!("{p}.name"),
            &s.name,
            &mut names,
            "session",
            "give the session a name, e.g. frequent-backup",
            webhook,
            webhook,
        );
        match &s.scheduler {
            // KubeStash: validateSessionConfig.
            None => e.at(
                webhook,
                format!("{p}.scheduler"),
                "required value is missing",
                "add scheduler.schedule, e.g. '*/5 * * * *'",
            ),
            Some(sch) => {
                if sch.schedule.trim().is_empty() {
                    // KubeStash: CRD `scheduler.required: [jobTemplate, schedule]`.
                    e.add(
                        format!("{p}.scheduler.schedule"),
                        "required value is missing",
                        "set a cron schedule, e.g. '*/5 * * * *'",
                    );
                } else if !templated(&sch.schedule)
                    && let Err(why) = Schedule::parse(&sch.schedule)
                {
                    // KubeStash: none (it copies the schedule into a CronJob, which Kubernetes
                    // refuses later). kstash cannot schedule it: the configuration is Invalid.
                    e.warn(
                        format!("{p}.scheduler.schedule"),
                        format!("{why}; the configuration stays Invalid until it is fixed"),
                        "use 5 cron fields, e.g. '0 2 * * *', optionally prefixed by CRON_TZ=<zone>",
                    );
                }
                // KubeStash: none (no minimum in the CRD); Kubernetes refuses such a CronJob.
                for (field, v) in [
                    ("startingDeadlineSeconds", sch.starting_deadline_seconds),
                    (
                        "successfulJobsHistoryLimit",
                        sch.successful_jobs_history_limit.map(i64::from),
                    ),
                    (
                        "failedJobsHistoryLimit",
                        sch.failed_jobs_history_limit.map(i64::from),
                    ),
                    (
                        "jobTemplate.backoffLimit",
                        sch.job_template.backoff_limit.map(i64::from),
                    ),
                ] {
                    e.non_negative(Warning, &format!("{p}.scheduler.{field}"), v);
                }
            }
        }
        if let Some(rc) = &s.retry_config {
            // KubeStash: CRD `retryConfig.maxRetry.minimum: 1`.
            if let Some(m) = rc.max_retry
                && m < 1
            {
                e.add(
                    format!("{p}.retryConfig.maxRetry"),
                    format!("must be at least 1 (is {m})"),
                    "set maxRetry to 1 or more, or remove retryConfig",
                );
            }
            // KubeStash: metav1.Duration, decoded by the webhook.
            e.go_duration(Error, &format!("{p}.retryConfig.delay"), rc.delay.as_deref());
        }
        // KubeStash: metav1.Duration, decoded by the webhook.
        e.go_duration(Error, &format!("{p}.backupTimeout"), s.backup_timeout.as_deref());
        // KubeStash: none (no minimum in the CRD); a negative limit keeps no session.
        e.non_negative(
            Warning,
            &format!("{p}.sessionHistoryLimit"),
            s.session_history_limit.map(i64::from),
        );
        if let Some(h) = &s.hooks {
            hooks(
                e,
                webhook,
                &format!("{p}.hooks.preBackup"),
                &h.pre_backup,
                ctx,
                user_ns,
            );
            hooks(
                e,
                webhook,
                &format!("{p}.hooks.postBackup"),
                &h.post_backup,
                ctx,
                user_ns,
            );
        }
        addon_info(e, webhook, &format!("{p}.addon"), s.addon.as_ref());
        // KubeStash: validateRepositories ("no repository found for session").
        if s.repositories.is_empty() {
            e.at(
                webhook,
                format!("{p}.repositories"),
                "at least one repository is required",
                "add a repository with name, backend and directory",
            );
        }
        let mut session_repos = BTreeSet::new();
        for (j, r) in s.repositories.iter().enumerate() {
            let rp = format!("{p}.repositories[{j}]");
            // KubeStash: validateRepositoryNameUnique, within one session; the name is not
            // required there, but kstash names the Repository it creates after it.
            e.sibling_name(
                &format!("{rp}.name"),
                &r.name,
                &mut session_repos,
                "repository",
                "give the repository a name",
                Warning,
                webhook,
            );
            let backend_ok = backends.is_empty() || backends.contains(&r.backend);
            if backends.is_empty() {
                // already reported at spec.backends
            } else if r.backend.is_empty() {
                // KubeStash: none (validateRepositories checks only a backend that is set).
                if backends.len() > 1 {
                    e.warn(
                        format!("{rp}.backend"),
                        format!(
                            "not set, and the configuration has {} backends; kstash uses the first, '{}'",
                            backends.len(),
                            backends[0]
                        ),
                        format!("set backend to one of: {}", backends.join(", ")),
                    );
                }
            } else if !backend_ok {
                // KubeStash: validateRepositories (backendMatched).
                e.at(
                    webhook,
                    format!("{rp}.backend"),
                    format!("backend '{}' is not in spec.backends", r.backend),
                    format!("use one of: {}", backends.join(", ")),
                );
            }
            if !templated(&r.directory) {
                // KubeStash: validateRepositories ("directory is not provided").
                relative_dir(e, webhook, &format!("{rp}.directory"), &r.directory, "directory");
            }
            let dir = storage_dir(&r.directory);
            // KubeStash: none for one name in two sessions; kstash creates one Repository of
            // that name, so both must mean the same one.
            if !r.name.is_empty() {
                let here = (r.backend.clone(), dir.clone());
                match repos.get(&r.name) {
                    Some(first) if *first != here => e.warn(
                        format!("{rp}.name"),
                        format!(
                            "repository '{}' is used by another session with another backend or directory; kstash creates one Repository of that name",
                            r.name
                        ),
                        "use the same backend and directory, or another name",
                    ),
                    Some(_) => {}
                    None => {
                        repos.insert(r.name.clone(), here);
                    }
                }
            }
            if !r.directory.is_empty() {
                // KubeStash: validateRepoDirectories, on the directory as written; where only
                // the storage directory is the same (`/pg` and `pg/`) it is a warning, the two
                // repositories being one in the storage.
                let exact = (r.backend.clone(), r.directory.clone());
                let stored = (r.backend.clone(), dir.clone());
                let clash = match (dirs.get(&exact), storage_dirs.get(&stored)) {
                    (Some(first), _) if *first != r.name => Some((webhook, first.clone())),
                    (_, Some(first)) if *first != r.name => Some((Warning, first.clone())),
                    _ => None,
                };
                if let Some((level, first)) = clash {
                    e.at(
                        level,
                        format!("{rp}.directory"),
                        format!(
                            "directory '{}' is already used by repository '{first}' on the same backend",
                            r.directory
                        ),
                        "give every repository its own directory",
                    );
                }
                dirs.entry(exact).or_insert_with(|| r.name.clone());
                storage_dirs.entry(stored).or_insert_with(|| r.name.clone());
            }
            // KubeStash: CRD `encryptionSecret.required: [name]`.
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

/// Two references to one object as KubeStash compares them (`storageRefMatched`): name and
/// namespace as written, an absent namespace equal to an empty one.
fn same_ref_as_written(a: &ObjectReference, b: &ObjectReference) -> bool {
    a.name == b.name && a.namespace.as_deref().unwrap_or("") == b.namespace.as_deref().unwrap_or("")
}

fn backup_configuration(bc: &BackupConfiguration, ctx: Context<'_>, e: &mut Errors) {
    let me = Object::BackupConfiguration(bc.clone());
    let ns = me.namespace().unwrap_or("default").to_string();
    if let Some(t) = &bc.spec.target {
        // KubeStash: CRD `target.required: [name]`.
        e.required(
            "spec.target.name",
            &t.name,
            "name the target (an AppBinding, Deployment, StatefulSet, PVC…)",
        );
        // KubeStash: none (kind is optional in TypedObjectReference); no target is found
        // without it, so the configuration stays NotReady.
        if t.kind.as_deref().unwrap_or("").is_empty() {
            e.warn(
                "spec.target.kind",
                "not set; the target cannot be found",
                "set the target kind, e.g. AppBinding",
            );
        }
    }
    // KubeStash: validateBackends ("backend can not be empty"), after its mutating webhook found
    // no default BackupStorage.
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
        // KubeStash: validateBackendNameUnique (two unnamed backends are duplicates too). A name
        // is not required: a single unnamed backend is the one a repository without a backend
        // uses. Among several, kstash gives such a repository the first one: a warning.
        if b.name.is_empty() && bc.spec.backends.len() == 1 {
            backend_names.insert(String::new());
        } else {
            e.sibling_name(
                &format!("{p}.name"),
                &b.name,
                &mut backend_names,
                "backend",
                "give the backend a name",
                Warning,
                Error,
            );
        }
        match &b.storage_ref {
            // KubeStash: validateBackendReferences.
            None => e.add(
                format!("{p}.storageRef"),
                "required value is missing",
                "reference a BackupStorage by name and namespace",
            ),
            Some(r) => {
                // KubeStash: CRD `storageRef.required: [name]`.
                e.required(
                    &format!("{p}.storageRef.name"),
                    &r.name,
                    "reference a BackupStorage by name",
                );
                // KubeStash: validateBackendsAgainstUsagePolicy.
                check_usage(
                    e,
                    Error,
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
            // KubeStash: validateBackendReferences, after its mutating webhook found no default.
            None => e.add(
                format!("{p}.retentionPolicy"),
                "required value is missing, and the namespace has no default RetentionPolicy",
                "reference a RetentionPolicy, or mark one `default: true`",
            ),
            Some(r) => {
                // KubeStash: CRD `retentionPolicy.required: [name]`.
                e.required(
                    &format!("{p}.retentionPolicy.name"),
                    &r.name,
                    "reference a RetentionPolicy by name",
                );
                // KubeStash: validateBackendsAgainstUsagePolicy.
                check_usage(
                    e,
                    Error,
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
    let backend_list: Vec<String> = bc.spec.backends.iter().map(|b| b.name.clone()).collect();
    sessions(
        e,
        Owner::Configuration,
        &bc.spec.sessions,
        &backend_list,
        &ctx,
        &ns,
    );
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
                    // KubeStash: validateRepositories (targetMatched, storageRefMatched; both
                    // compare as written, so whatever differs here differs there too).
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
                } else if same_storage && storage_dir(&repo.spec.path) == storage_dir(&r.directory) {
                    // KubeStash: validateRepoDirExistence, on the storage reference and path as
                    // written; a warning where only kstash's defaulted namespace and storage
                    // directory make them the same.
                    let exact = same_ref_as_written(&repo.spec.storage_ref, &storage)
                        && repo.spec.path == r.directory;
                    e.at(
                        if exact { Error } else { Warning },
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
        // KubeStash: none (`invoker` is optional in the CRD); the session cannot run.
        None => e.warn(
            "spec.invoker",
            "not set; the session cannot run",
            "reference the BackupConfiguration that runs this session",
        ),
        Some(inv) => {
            // KubeStash: CRD `invoker.required: [kind, name]`.
            e.required("spec.invoker.kind", &inv.kind, "use kind: BackupConfiguration");
            // KubeStash: none for the kind's value; kstash runs BackupConfigurations' sessions.
            if !inv.kind.is_empty() && !matches!(inv.kind.as_str(), "BackupConfiguration" | "BackupBatch") {
                e.warn(
                    "spec.invoker.kind",
                    format!("'{}' cannot invoke a backup; the session cannot run", inv.kind),
                    "use kind: BackupConfiguration",
                );
            }
            e.required("spec.invoker.name", &inv.name, "name the BackupConfiguration");
        }
    }
    // KubeStash: none (backupsession.go checks nothing on create); the session cannot run.
    e.required_at(
        Warning,
        "spec.session",
        &bs.spec.session,
        "name the session of the BackupConfiguration to run",
    );
    e.non_negative(Warning, "spec.retryLeft", Some(i64::from(bs.spec.retry_left)));
    // KubeStash: metav1.Duration, decoded by the webhook.
    e.go_duration(Error, "spec.backupTimeout", bs.spec.backup_timeout.as_deref());
    // KubeStash: backupsession.go ValidateUpdate ("spec can not be updated").
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
    // KubeStash: restoresession.go ValidateDataSource (which reads `dataSource`, so a session
    // without one fails the webhook).
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
            // KubeStash: CRD `encryptionSecret.required: [name]`.
            if let Some(sec) = &ds.encryption_secret {
                e.required(
                    "spec.dataSource.encryptionSecret.name",
                    &sec.name,
                    "name the Secret holding RESTIC_PASSWORD",
                );
            }
        }
    }
    // KubeStash: none (restoresession.go does not look at the addon); the restore cannot run.
    addon_info(e, Warning, "spec.addon", rs.spec.addon.as_ref());
    // KubeStash: metav1.Duration, decoded by the webhook.
    e.go_duration(Error, "spec.restoreTimeout", rs.spec.restore_timeout.as_deref());
    if let Some(h) = &rs.spec.hooks {
        hooks(e, Error, "spec.hooks.preRestore", &h.pre_restore, &ctx, &ns);
        hooks(e, Error, "spec.hooks.postRestore", &h.post_restore, &ctx, &ns);
    }
    // KubeStash: CRD `target.required: [name]`.
    if let Some(t) = &rs.spec.target {
        e.required("spec.target.name", &t.name, "name the restore target");
    }
}

/// A verifier must never restore over the data it verifies: each `backupVerifier` of `bc` that
/// is stored must restore into another target than `bc`'s own.
// KubeStash: none. A warning: the verification refuses to run (`resolve::verification`), and
// the configuration's repository status says why.
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
                e.warn(
                    format!("spec.sessions[{i}].repositories[{j}].backupVerifier"),
                    format!(
                        "BackupVerifier {vns}/{} restores into {}, which is this configuration's own backup target; verification would overwrite the data it verifies, so kstash will not run it",
                        vref.name,
                        verification::describe_target(t, vns)
                    ),
                    "point the verifier's spec.restoreOption.target at a separate target (e.g. a scratch database in its own namespace)",
                );
            }
        }
    }
}

// KubeStash: the installer registers no webhook for BackupVerifier (backupverifier.go's
// validateVerifier is not called), so only the CRD refuses: `restoreOption.target.required:
// [name]`, `retryConfig.maxRetry.minimum: 1`, the `type` enum (parsing), `params` an object.
// Everything else is a warning; the verification fails when it runs, with the same message.
fn backup_verifier(v: &BackupVerifier, ctx: Context<'_>, e: &mut Errors) {
    let ns = v.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = &v.spec;
    match &spec.restore_option {
        None => e.warn(
            "spec.restoreOption",
            "not set; the verification cannot run",
            "set restoreOption.target (where to restore) and restoreOption.addonInfo (how)",
        ),
        Some(ro) => {
            match &ro.target {
                None => e.warn(
                    "spec.restoreOption.target",
                    "not set; the verification cannot run",
                    "name a scratch target to restore into, e.g. {apiGroup: appcatalog.appscode.com, kind: AppBinding, namespace: verify, name: scratch-db}",
                ),
                Some(t) => e.required("spec.restoreOption.target.name", &t.name, "name the restore target"),
            }
            addon_info(e, Warning, "spec.restoreOption.addonInfo", ro.addon_info.as_ref());
            // Restoring a volume backup over its own directories destroys what is verified.
            if let Some(why) = ro
                .addon_info
                .as_ref()
                .and_then(verification::unsafe_volume_restore)
            {
                e.warn(
                    "spec.restoreOption.addonInfo.tasks[0].params.target",
                    format!("{why}; kstash will not run it"),
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
        e.warn(
            path,
            format!("{why}; the verifier is never scheduled"),
            "use 5 cron fields, e.g. '0 3 * * *', optionally prefixed by CRON_TZ=<zone>",
        );
    }
    match spec.verification_type() {
        VerificationType::RestoreOnly => {}
        VerificationType::Query => match &spec.query {
            None => e.warn(
                "spec.query",
                "required when type is Query; the verification fails",
                "add queries, e.g. `query: {postgres: [{database: shop, table: users, rowCount: {operator: Equal, value: 1000}}]}`",
            ),
            Some(raw) => {
                if let Err(errors) = crate::query::VerifierQuery::from_raw(raw) {
                    for fe in errors {
                        e.warn(fe.path, fe.message, fe.fix);
                    }
                }
            }
        },
        VerificationType::Script => match &spec.script {
            None => e.warn(
                "spec.script",
                "required when type is Script; the verification fails",
                "set script.location to the script's absolute path (and script.args if it takes any)",
            ),
            Some(sc) => {
                if !sc.location.starts_with('/') {
                    e.warn(
                        "spec.script.location",
                        format!(
                            "must be an absolute path (is '{}'); the verification fails",
                            sc.location
                        ),
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
        e.go_duration(Warning, "spec.retryConfig.delay", rc.delay.as_deref());
    }
    e.non_negative(
        Warning,
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
            e.warn(
                "spec.restoreOption.target",
                format!(
                    "{} is the backup target of BackupConfiguration {bc_ns}/{}, which uses this verifier; verification would overwrite the data it verifies, so kstash will not run it",
                    verification::describe_target(t, &ns),
                    o.name()
                ),
                "restore into a separate target (e.g. a scratch database in its own namespace)",
            );
        }
    }
}

// KubeStash: the installer registers no webhook for BackupVerificationSession, so only the CRD
// refuses (`invoker.required: [kind, name]`); kstash's controller writes these sessions itself.
fn backup_verification_session(s: &BackupVerificationSession, ctx: Context<'_>, e: &mut Errors) {
    match &s.spec.invoker {
        None => e.warn(
            "spec.invoker",
            "not set; the verification cannot run",
            "reference the BackupConfiguration whose repository is verified: {apiGroup: core.kubestash.com, kind: BackupConfiguration, name: …}",
        ),
        Some(inv) => {
            e.required("spec.invoker.kind", &inv.kind, "use kind: BackupConfiguration");
            if !inv.kind.is_empty() && inv.kind != "BackupConfiguration" {
                e.warn(
                    "spec.invoker.kind",
                    format!("'{}' cannot invoke a verification; it cannot run", inv.kind),
                    "use kind: BackupConfiguration",
                );
            }
            e.required("spec.invoker.name", &inv.name, "name the BackupConfiguration");
        }
    }
    e.required_at(
        Warning,
        "spec.session",
        &s.spec.session,
        "name the BackupConfiguration session whose repository is verified",
    );
    e.required_at(
        Warning,
        "spec.repository",
        &s.spec.repository,
        "name the repository to verify (one with a backupVerifier in the configuration)",
    );
    e.non_negative(Warning, "spec.retryLeft", Some(i64::from(s.spec.retry_left)));
    // KubeStash: backupverificationsession.go's ValidateUpdate is not registered either; a
    // changed spec is not what the running verification uses.
    if let Some(Object::BackupVerificationSession(old)) = ctx.old
        && old.spec != s.spec
        && !(old.spec.snapshot.is_empty()
            && old.spec
                == BackupVerificationSessionSpec {
                    snapshot: String::new(),
                    ..s.spec.clone()
                })
    {
        e.warn(
            "spec",
            "a BackupVerificationSession's spec should not change (only an empty snapshot may be filled in); a running verification keeps the old one",
            "create a new BackupVerificationSession instead",
        );
    }
}

fn hook_template(ht: &HookTemplate, e: &mut Errors) {
    e.usage_policy("spec.usagePolicy", ht.spec.usage_policy.as_ref());
    // KubeStash: hooktemplate.go ValidateCreate ("executor can not be empty").
    let Some(ex) = &ht.spec.executor else {
        e.add(
            "spec.executor",
            "required value is missing",
            "set executor.type to Operator, Function or Pod",
        );
        return;
    };
    match ex.type_ {
        // KubeStash: none (the CRD's type is an enum, not required); its operator has no
        // executor for the hook, while kstash runs the action itself.
        None => e.warn(
            "spec.executor.type",
            "not set; KubeStash cannot execute this hook",
            "set executor.type to Operator, Function or Pod",
        ),
        // KubeStash: validateExecutorInfo requires `function`; its name is not required there,
        // but no Function is found without one.
        Some(HookExecutorType::Function) => match &ex.function {
            None => e.add(
                "spec.executor.function",
                "a Function executor needs executor.function",
                "set executor.function.name to a Function",
            ),
            Some(f) if f.name.is_empty() => e.warn(
                "spec.executor.function.name",
                "not set; the hook cannot run",
                "set executor.function.name to a Function",
            ),
            Some(_) => {}
        },
        // KubeStash: validateExecutorInfo: `pod`, a `selector`, and every comma-separated part of
        // it holding an '='. A part that is not a valid `key=value` label pair (`a==b`, `=b`,
        // `a!=b`) passes there and selects no pod: a warning.
        Some(HookExecutorType::Pod) => match ex.pod.as_ref().map(|p| p.selector.as_str()) {
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
                const FIX: &str =
                    "write the selector as comma-separated key=value pairs, e.g. 'app=pg,role=primary'";
                if let Some(bad) = sel.split(',').find(|kv| !kv.trim_matches(' ').contains('=')) {
                    e.add(
                        "spec.executor.pod.selector",
                        format!("'{bad}' is not a key=value pair"),
                        FIX,
                    );
                } else if let Some(bad) = sel.split(',').find(|kv| {
                    let parts: Vec<&str> = kv.split('=').collect();
                    parts.len() != 2
                        || parts[0].trim().is_empty()
                        || names::label_key_error(parts[0].trim()).is_some()
                        || names::label_value_error(parts[1].trim()).is_some()
                }) {
                    e.warn(
                        "spec.executor.pod.selector",
                        format!("'{bad}' is not a valid key=value label pair; it selects no pod"),
                        FIX,
                    );
                }
            }
        },
        Some(HookExecutorType::Operator) => {}
    }
    // KubeStash: validateActionForNonFunctionExecutor (any type but Function, unset included).
    if ex.type_ != Some(HookExecutorType::Function) {
        match &ht.spec.action {
            None => e.add(
                "spec.action",
                "required for Operator and Pod executors",
                "set one of action.exec, action.httpGet, action.httpPost, action.tcpSocket",
            ),
            Some(a) => {
                // KubeStash: none; like its prober, kstash runs the first handler set, and
                // fails the hook when none is.
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
                    e.warn(
                        "spec.action",
                        format!(
                            "exactly one action should be set (found {n}); {}",
                            if n == 0 {
                                "the hook fails when it runs"
                            } else {
                                "only the first of exec, httpGet, httpPost, tcpSocket runs"
                            }
                        ),
                        "keep one of exec, httpGet, httpPost, tcpSocket",
                    );
                }
                // KubeStash: none (`command` is optional in the CRD); the hook fails when it runs.
                if let Some(x) = &a.exec
                    && x.command.is_empty()
                {
                    e.warn(
                        "spec.action.exec.command",
                        "not set; the hook fails when it runs",
                        "set the command to run, e.g. ['/bin/sh', '-c', 'echo ok']",
                    );
                }
                for (p, port) in [
                    ("httpGet", a.http_get.as_ref().map(|h| &h.port)),
                    ("httpPost", a.http_post.as_ref().map(|h| &h.port)),
                    ("tcpSocket", a.tcp_socket.as_ref().map(|h| &h.port)),
                ] {
                    let Some(port) = port else { continue };
                    if port.is_null() {
                        // KubeStash: CRD `httpGet|httpPost|tcpSocket.required: [port]`.
                        e.add(
                            format!("spec.action.{p}.port"),
                            "required value is missing",
                            "use a number 1-65535 or a named port",
                        );
                    } else if !valid_port(port) {
                        // KubeStash: none (int-or-string without a range); no connection
                        // can be made to it.
                        e.warn(
                            format!("spec.action.{p}.port"),
                            format!("{port} is not a port; the hook fails when it runs"),
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

fn storage_usage(o: &Object) -> Option<Option<&UsagePolicy>> {
    match o {
        Object::BackupStorage(s) => Some(s.spec.usage_policy.as_ref()),
        _ => None,
    }
}

fn backup_blueprint(bp: &BackupBlueprint, ctx: Context<'_>, e: &mut Errors) {
    e.usage_policy("spec.usagePolicy", bp.spec.usage_policy.as_ref());
    // KubeStash: backupblueprint.go validateBackendsAgainstUsagePolicy
    // ("backupConfigurationTemplate can not be empty").
    let Some(t) = &bp.spec.backup_configuration_template else {
        e.add(
            "spec.backupConfigurationTemplate",
            "required value is missing",
            "add backupConfigurationTemplate with backends and sessions",
        );
        return;
    };
    let me = Object::BackupBlueprint(bp.clone());
    let own_ns = me.namespace().unwrap_or("default").to_string();
    let ns = if t.namespace.is_empty() {
        own_ns.clone()
    } else {
        t.namespace.clone()
    };
    let mut backend_names = BTreeSet::new();
    for (i, b) in t.backends.iter().enumerate() {
        let p = format!("spec.backupConfigurationTemplate.backends[{i}]");
        // KubeStash: none for the blueprint (the generated configuration's webhook checks it).
        e.sibling_name(
            &format!("{p}.name"),
            &b.name,
            &mut backend_names,
            "backend",
            "give the backend a name",
            Warning,
            Warning,
        );
        if let Some(r) = &b.storage_ref {
            // KubeStash: validateBackendsAgainstUsagePolicy, from the blueprint's namespace.
            check_usage(
                e,
                Error,
                &format!("{p}.storageRef"),
                r,
                &own_ns,
                &ctx,
                "BackupStorage",
                storage_usage,
            );
            // KubeStash: none for the template's namespace; the configuration generated there
            // is refused by its own webhook.
            if ns != own_ns && !ns.contains("${") {
                check_usage(
                    e,
                    Warning,
                    &format!("{p}.storageRef"),
                    r,
                    &ns,
                    &ctx,
                    "BackupStorage",
                    storage_usage,
                );
            }
        }
    }
    let mut inner = Errors::new(e.object.clone());
    let backend_list: Vec<String> = t.backends.iter().map(|b| b.name.clone()).collect();
    sessions(
        &mut inner,
        Owner::Blueprint,
        &t.sessions,
        &backend_list,
        &ctx,
        &ns,
    );
    for (list, out) in [(inner.list, &mut e.list), (inner.warnings, &mut e.warnings)] {
        for mut fe in list {
            if t.backends.is_empty() && fe.path.ends_with(".backend") {
                continue; // backends come from the namespace default when the template has none
            }
            fe.path = fe.path.replacen("spec.", "spec.backupConfigurationTemplate.", 1);
            out.push(fe);
        }
    }
}

// KubeStash: none for Addons and Functions (cluster-scoped, no webhook, nothing required in the
// CRDs). An Addon without tasks, a task without a name or Function, and a Function without an
// image cannot run: warnings.
fn task(e: &mut Errors, path: &str, t: &Task, seen: &mut BTreeSet<String>) {
    e.sibling_name(
        &format!("{path}.name"),
        &t.name,
        seen,
        "task",
        "name the task, e.g. logical-backup",
        Warning,
        Warning,
    );
    e.required_at(
        Warning,
        &format!("{path}.function"),
        &t.function,
        "name the Function that runs this task",
    );
}

fn addon(a: &Addon, e: &mut Errors) {
    if a.spec.backup_tasks.is_empty() && a.spec.restore_tasks.is_empty() {
        e.warn(
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
    e.required_at(
        Warning,
        "spec.image",
        &f.spec.image,
        "set the container image that runs this function",
    );
}

/// An AppBinding is refused for nothing: KubeDB writes objects KubeStash's API accepts without
/// a webhook (both `url` and `service`, `tcp(host:port)/` DSNs, bare `host:port`). What kstash
/// cannot use is a warning here and a clear error only when a task needs the address.
// KubeStash: none (kmodules' AppBinding CRD requires nothing kstash reads; no webhook).
fn app_binding(a: &AppBinding, w: &mut Errors) {
    let cc = &a.spec.client_config;
    if cc.address(false).is_none() {
        w.warn(
            "spec.clientConfig",
            "neither url nor service is set; a backup or restore of this target will fail",
            "set clientConfig.url (e.g. postgres://127.0.0.1:5432/postgres) or clientConfig.service",
        );
    }
    if let Some(u) = cc.url.as_deref().filter(|u| !u.trim().is_empty())
        && let Err(why) = crate::appcatalog::parse_client_url(u)
    {
        w.warn(
            "spec.clientConfig.url",
            format!("kstash cannot read it: {why}"),
            "use scheme://host:port[/path], tcp(host:port)/ or host:port",
        );
    }
    if let Some(s) = &cc.service {
        if let Some(p) = s.port
            && !(1..=65535).contains(&p)
        {
            w.warn(
                "spec.clientConfig.service.port",
                format!("{p} is not a port; a task that uses the service will fail"),
                "use 1-65535",
            );
        }
        if cc.url.is_none() && s.name.is_empty() {
            w.warn("spec.clientConfig.service.name", "not set", "name the service");
        }
    }
    if let Some(s) = &a.spec.secret
        && s.name.is_empty()
    {
        w.warn(
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

    fn paths(list: &[FieldError]) -> Vec<&str> {
        list.iter().map(|e| e.path.as_str()).collect()
    }

    const BS: &str = "storage.kubestash.com/v1alpha1";
    const CORE: &str = "core.kubestash.com/v1alpha1";

    fn configuration(sessions: serde_json::Value) -> Object {
        parse(json!({
            "apiVersion": CORE, "kind": "BackupConfiguration",
            "metadata": {"name": "pg-backup", "namespace": "demo"},
            "spec": {
                "target": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": "pg", "namespace": "demo"},
                "backends": [{"name": "s3", "storageRef": {"name": "s3", "namespace": "demo"}, "retentionPolicy": {"name": "keep", "namespace": "demo"}}],
                "sessions": sessions
            }
        }))
    }

    fn session(name: &str, schedule: &str, repo: &str, directory: &str) -> serde_json::Value {
        json!({"name": name, "scheduler": {"schedule": schedule, "jobTemplate": {}},
               "repositories": [{"name": repo, "backend": "s3", "directory": directory}],
               "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup"}]}})
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
        let c = check(&bc, Context::default());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(paths(&c.warnings), ["spec.sessions[0].repositories[0].directory"]);
        assert!(c.warnings[0].to_string().starts_with("BackupConfiguration demo/pg-backup: spec.sessions[0].repositories[0].directory: '/pg/../x' must not contain '..'"));
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

    #[test]
    fn an_incomplete_backup_storage_is_stored_with_warnings_as_kubestash_takes_it() {
        for (storage, path) in [
            (json!({}), "spec.storage.provider"),
            (json!({"provider": "s3"}), "spec.storage.s3"),
            (
                json!({"provider": "s3", "s3": {"endpoint": "http://minio:9000"}}),
                "spec.storage.s3.bucket",
            ),
            (
                json!({"provider": "azure", "azure": {"storageAccount": "acct"}}),
                "spec.storage.azure.container",
            ),
            (
                json!({"provider": "local", "local": {"mountPath": "data", "hostPath": {"path": "/b"}}}),
                "spec.storage.local.mountPath",
            ),
            (
                json!({"provider": "gcs", "gcs": {"bucket": "b", "maxConnections": -1}}),
                "spec.storage.gcs.maxConnections",
            ),
        ] {
            let bs = parse(json!({"apiVersion": BS, "kind": "BackupStorage",
                "metadata": {"name": "s", "namespace": "demo"}, "spec": {"storage": storage}}));
            let c = check(&bs, Context::default());
            assert!(c.errors.is_empty(), "{storage}: {:?}", c.errors);
            assert_eq!(paths(&c.warnings), [path], "{storage}");
        }
    }

    #[test]
    fn two_storages_on_one_bucket_are_refused_only_where_kubestash_refuses_them() {
        let s3 = |name: &str, endpoint: &str, prefix: &str| {
            parse(
                json!({"apiVersion": BS, "kind": "BackupStorage", "metadata": {"name": name, "namespace": "demo"},
                "spec": {"storage": {"provider": "s3", "s3": {"endpoint": endpoint, "bucket": "b", "region": "r", "prefix": prefix}}}}),
            )
        };
        let existing = [s3("first", "http://a:9000", "demo")];
        let ctx = Context {
            existing: &existing,
            old: None,
        };
        // Same bucket, region and prefix: KubeStash's isPointToSameDir.
        let c = check(&s3("second", "http://a:9000", "demo"), ctx);
        assert_eq!(paths(&c.errors), ["spec.storage.s3"]);
        // The same directory spelled with a leading '/': KubeStash compares strings.
        let c = check(&s3("second", "http://a:9000", "/demo"), ctx);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(paths(&c.warnings), ["spec.storage.s3"]);
        // Another S3 server with a bucket of the same name is another bucket.
        let c = check(&s3("second", "http://b:9000", "demo"), ctx);
        assert!(c.errors.is_empty() && c.warnings.is_empty(), "{c:?}");
    }

    #[test]
    fn a_bad_cron_or_a_negative_limit_is_a_warning_the_controller_acts_on() {
        let mut s = session("frequent", "61 * * * *", "pg-repo", "pg");
        s["sessionHistoryLimit"] = json!(-1);
        s["scheduler"]["jobTemplate"]["backoffLimit"] = json!(-2);
        let c = check(&configuration(json!([s])), Context::default());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(
            paths(&c.warnings),
            [
                "spec.sessions[0].scheduler.schedule",
                "spec.sessions[0].scheduler.jobTemplate.backoffLimit",
                "spec.sessions[0].sessionHistoryLimit"
            ]
        );
        assert!(c.warnings[0].message.contains("Invalid"), "{}", c.warnings[0]);
    }

    #[test]
    fn repositories_are_unique_per_session_and_may_be_shared_between_sessions() {
        // KubeStash's validateRepositoryNameUnique works per session: two sessions may write one
        // repository (same backend and directory).
        let bc = configuration(json!([
            session("frequent", "*/5 * * * *", "pg-repo", "pg"),
            session("daily", "0 2 * * *", "pg-repo", "/pg/"),
        ]));
        let c = check(&bc, Context::default());
        assert!(c.errors.is_empty() && c.warnings.is_empty(), "{c:?}");
        // One name for two directories: one Repository cannot be both.
        let bc = configuration(json!([
            session("frequent", "*/5 * * * *", "pg-repo", "pg"),
            session("daily", "0 2 * * *", "pg-repo", "other"),
        ]));
        let c = check(&bc, Context::default());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(paths(&c.warnings), ["spec.sessions[1].repositories[0].name"]);
        // Two names for one directory as written: KubeStash's validateRepoDirectories refuses;
        // spelled differently, the storage still sees one directory.
        for (dir, errors, warnings) in [("pg", 1, 0), ("/pg", 0, 1)] {
            let bc = configuration(json!([
                session("frequent", "*/5 * * * *", "pg-repo", "pg"),
                session("daily", "0 2 * * *", "pg-daily", dir),
            ]));
            let c = check(&bc, Context::default());
            assert_eq!(
                (c.errors.len(), c.warnings.len()),
                (errors, warnings),
                "{dir}: {c:?}"
            );
            assert!(
                c.errors
                    .iter()
                    .chain(&c.warnings)
                    .all(|e| e.path == "spec.sessions[1].repositories[0].directory")
            );
        }
    }

    #[test]
    fn one_unnamed_backend_is_kubestash_s_default_and_valid() {
        let bc = parse(json!({
            "apiVersion": CORE, "kind": "BackupConfiguration", "metadata": {"name": "b", "namespace": "demo"},
            "spec": {"backends": [{"storageRef": {"name": "s3"}, "retentionPolicy": {"name": "keep"}}],
                     "sessions": [{"name": "s", "scheduler": {"schedule": "@daily", "jobTemplate": {}},
                                   "repositories": [{"name": "r", "directory": "demo/r"}],
                                   "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}}]}
        }));
        let c = check(&bc, Context::default());
        assert!(c.errors.is_empty() && c.warnings.is_empty(), "{c:?}");
    }

    #[test]
    fn a_restore_session_without_an_addon_is_stored_with_a_warning() {
        let rs = parse(
            json!({"apiVersion": CORE, "kind": "RestoreSession", "metadata": {"name": "r", "namespace": "demo"},
            "spec": {"dataSource": {"repository": "repo", "snapshot": "latest"}}}),
        );
        let c = check(&rs, Context::default());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(paths(&c.warnings), ["spec.addon"]);
    }

    #[test]
    fn durations_refused_by_go_are_errors_and_negative_ones_warnings() {
        for (timeout, errors, warnings) in [
            ("30m", 0, 0),
            ("-0", 0, 0),
            ("+0", 0, 0),
            ("-5m", 0, 1),
            ("5 minutes", 1, 0),
            ("-x", 1, 0),
        ] {
            let bs = parse(
                json!({"apiVersion": CORE, "kind": "BackupSession", "metadata": {"name": "b", "namespace": "demo"},
                "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "pg"},
                         "session": "frequent", "backupTimeout": timeout}}),
            );
            let c = check(&bs, Context::default());
            assert_eq!(
                (c.errors.len(), c.warnings.len()),
                (errors, warnings),
                "{timeout}: {c:?}"
            );
        }
    }

    #[test]
    fn retention_periods_follow_kubestash_s_parse_duration() {
        for (period, errors, warnings) in [
            ("30d", 0, 0),
            (" 30d12h ", 0, 0),
            ("-5d", 0, 1),
            ("30x", 1, 0),
            ("30", 1, 0),
            ("d", 1, 0),
        ] {
            let rp = parse(
                json!({"apiVersion": BS, "kind": "RetentionPolicy", "metadata": {"name": "k", "namespace": "demo"},
                "spec": {"maxRetentionPeriod": period}}),
            );
            let c = check(&rp, Context::default());
            assert_eq!(
                (c.errors.len(), c.warnings.len()),
                (errors, warnings),
                "{period:?}: {c:?}"
            );
        }
    }

    #[test]
    fn a_pod_selector_needs_an_equals_sign_in_every_part_like_kubestash() {
        for (selector, errors, warnings) in [
            ("app=pg,role=primary", 0, 0),
            ("app=pg,tier", 1, 0),
            ("app==pg", 0, 1),
            ("app!=pg", 0, 1),
        ] {
            let ht = parse(
                json!({"apiVersion": CORE, "kind": "HookTemplate", "metadata": {"name": "h", "namespace": "demo"},
                "spec": {"action": {"exec": {"command": ["sync"]}}, "executor": {"type": "Pod", "pod": {"selector": selector}}}}),
            );
            let c = check(&ht, Context::default());
            assert_eq!(
                (c.errors.len(), c.warnings.len()),
                (errors, warnings),
                "{selector}: {c:?}"
            );
        }
        // KubeStash requires an action for any executor but Function, an unset type included.
        let ht = parse(
            json!({"apiVersion": CORE, "kind": "HookTemplate", "metadata": {"name": "h", "namespace": "demo"},
            "spec": {"executor": {}}}),
        );
        let c = check(&ht, Context::default());
        assert_eq!(paths(&c.errors), ["spec.action"]);
        assert_eq!(paths(&c.warnings), ["spec.executor.type"]);
    }

    #[test]
    fn a_cluster_scoped_object_with_a_namespace_is_admitted_without_it() {
        let doc = json!({"apiVersion": "addons.kubestash.com/v1alpha1", "kind": "Function",
            "metadata": {"name": "f", "namespace": "demo"}, "spec": {"image": "busybox"}});
        let admitted = crate::admission::admit(&doc, &[], None).unwrap();
        assert_eq!(paths(&admitted.warnings), ["metadata.namespace"]);
        assert_eq!(admitted.object.meta().namespace, None);
    }
}
