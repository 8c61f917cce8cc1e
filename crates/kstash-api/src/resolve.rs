//! The resolve step: a BackupSession or a RestoreSession (or a bare Repository), read once
//! through [`Resources`], becomes one validated value — configuration, session spec, Addon with
//! its tasks and Functions, every repository with its storage, storage Secret and password
//! reference, and the target. Reconcilers, the Kubernetes Job builder, the executors and the CLI
//! all use it, so a fallback is decided here and a wrong reference is reported here, once.
//!
//! ```text
//! BackupSession ─spec.invoker─▶ BackupConfiguration ─spec.sessions[i]─▶ Session
//!                                     │                    ├─ addon ──▶ Addon ─tasks─▶ Function   (addon())
//!                                     │                    └─ repositories[j] ─▶ ResolvedRepository (session_repository())
//! RestoreSession ─dataSource─▶ Snapshot ─spec.repository─▶ Repository ─▶ ResolvedRepository   (repository())
//!                └─ addon ──▶ Addon ─tasks─▶ Function                                          (addon())
//! ```
//!
//! The third session kind, a BackupVerificationSession, is [`resolve_verification`] over the same
//! parts: its invoker is found like a BackupSession's, its repository entry names the
//! BackupVerifier, and the restore it runs is an ordinary RestoreSession resolved by
//! [`resolve_restore`].
//!
//! **The one password rule.** The restic password of a repository is key `RESTIC_PASSWORD` of the
//! first Secret named by, in order:
//! 1. the RestoreSession's `spec.dataSource.encryptionSecret` (restores only; namespace defaults
//!    to the RestoreSession's),
//! 2. the Repository's `spec.encryptionSecret` (namespace defaults to the Repository's),
//! 3. the `encryptionSecret` of the BackupConfiguration session entry that declares the
//!    repository (`spec.sessions[].repositories[]`, namespace defaults to the
//!    BackupConfiguration's); for a bare Repository that entry is found among the
//!    BackupConfigurations of its namespace.
//!
//! None of them: [`ResolveError::Invalid`] on the Repository (or the entry, before the Repository
//! exists). A value is read with [`password`]: `stringData` over `data`, one trailing newline
//! dropped (as `kubectl create secret --from-file` leaves one), empty means missing.
//!
//! **The one storage rule.** An existing Repository's `spec.storageRef` (namespace defaults to the
//! Repository's) wins; before the Repository exists, the session entry's `backend` names the
//! BackupConfiguration backend (`spec.backends[].name`; an empty name means the first backend)
//! whose `storageRef` (namespace defaults to the BackupConfiguration's) is used. The storage
//! Secret is `spec.storage.<provider>.secretName` in the BackupStorage's namespace; it is read
//! with [`storage_secret`].

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::ErrorCategory;
use crate::addons::{Addon, Function, Task};
use crate::client::{ClientError, Resources, ResourcesExt};
use crate::common::{
    AddonInfo, ObjectReference, TaskReference, TypedLocalObjectReference, TypedObjectReference,
};
use crate::core::{
    BackupConfiguration, BackupSession, RepositoryInfo, RestoreDataSource, RestoreSession, Session,
};
use crate::storage::{BackupStorage, Repository, Snapshot};
use crate::verification::{self, BackupVerificationSession, BackupVerifier};

/// The key of an encryption Secret that holds the restic password.
pub const PASSWORD_KEY: &str = "RESTIC_PASSWORD";

/// Why a session (or repository) cannot be resolved: the object, the field, what is wrong and
/// the fix, said once.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A field names an object that does not exist.
    #[error("{object}: {field}: {missing} not found; fix: {fix}")]
    NotFound {
        /// The object holding the reference (`BackupConfiguration demo/pg`).
        object: String,
        /// The field (`spec.sessions[0].addon.name`).
        field: String,
        /// What is missing (`Addon "x"`, `Secret demo/enc`).
        missing: String,
        /// What to do.
        fix: String,
    },
    /// A field is unset or names something unusable.
    #[error("{object}: {field}: {problem}; fix: {fix}")]
    Invalid {
        /// The object concerned.
        object: String,
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The resource store failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl ResolveError {
    /// What kind of failure this is.
    pub fn category(&self) -> ErrorCategory {
        match self {
            ResolveError::NotFound { .. } => ErrorCategory::NotFound,
            ResolveError::Invalid { .. } => ErrorCategory::Invalid,
            ResolveError::Client(e) => e.category(),
        }
    }

    pub(crate) fn not_found(
        object: &str,
        field: impl Into<String>,
        missing: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ResolveError::NotFound {
            object: object.to_string(),
            field: field.into(),
            missing: missing.into(),
            fix: fix.into(),
        }
    }

    pub(crate) fn invalid(
        object: &str,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ResolveError::Invalid {
            object: object.to_string(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Result of the resolve step.
pub type Result<T, E = ResolveError> = std::result::Result<T, E>;

/// A reference's namespace, or `default` when it names none (or an empty one).
pub fn ns_or<'a>(namespace: &'a Option<String>, default: &'a str) -> &'a str {
    match namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => default,
    }
}

/// `Kind namespace/name` of a namespaced object's metadata, for messages.
pub fn describe(kind: &str, meta: &ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Whether tasks back up or restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// `spec.backupTasks` of the Addon.
    Backup,
    /// `spec.restoreTasks` of the Addon.
    Restore,
}

impl TaskKind {
    /// `backup` or `restore`.
    pub fn word(self) -> &'static str {
        match self {
            TaskKind::Backup => "backup",
            TaskKind::Restore => "restore",
        }
    }

    /// The Addon's tasks of this kind.
    pub fn tasks(self, addon: &Addon) -> &[Task] {
        match self {
            TaskKind::Backup => &addon.spec.backup_tasks,
            TaskKind::Restore => &addon.spec.restore_tasks,
        }
    }
}

/// A namespaced Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {}/{}", self.namespace, self.name)
    }
}

/// Which rule of the password fallback chose the Secret (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// `RestoreSession.spec.dataSource.encryptionSecret`.
    RestoreDataSource,
    /// `Repository.spec.encryptionSecret`.
    Repository,
    /// `BackupConfiguration.spec.sessions[].repositories[].encryptionSecret`.
    SessionRepository,
    /// A Stash Repository's `spec.backend.storageSecretName` (Stash keeps the password with the
    /// storage credentials).
    StashRepository,
}

/// Where a repository's restic password is: a Secret and its key, and which field named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRef {
    pub secret: SecretRef,
    /// Always [`PASSWORD_KEY`].
    pub key: String,
    pub source: PasswordSource,
    /// The object whose field named the Secret (`Repository demo/pg`).
    pub named_by: String,
    /// That field (`spec.encryptionSecret`).
    pub field: String,
}

impl std::fmt::Display for PasswordRef {
    /// `key RESTIC_PASSWORD of Secret demo/enc`, as wrong-password messages name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {} of {}", self.key, self.secret)
    }
}

/// One task of a session's Addon: the session's reference, the Addon's definition and its
/// Function (`None` when the Function object is not installed; the embedded executors run the
/// task by its function name, the Kubernetes Job builder needs the object).
#[derive(Debug, Clone, PartialEq)]
pub struct AddonTask {
    /// The index in the session's `addon.tasks`.
    pub index: usize,
    pub reference: TaskReference,
    pub task: Task,
    pub function: Option<Function>,
}

/// The Addon of a session with its tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAddon {
    /// The session's addon entry (`spec.sessions[].addon`, `RestoreSession.spec.addon`).
    pub info: AddonInfo,
    pub addon: Addon,
    pub kind: TaskKind,
    /// In the session's order; never empty.
    pub tasks: Vec<AddonTask>,
}

impl ResolvedAddon {
    /// The Addon's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

/// A repository with where it lives and how it is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRepository {
    /// The Repository's name and namespace.
    pub name: String,
    pub namespace: String,
    /// The BackupConfiguration backend it belongs to (empty for a bare Repository).
    pub backend: String,
    /// Its directory inside the storage (`spec.path`, or the session entry's `directory`).
    pub directory: String,
    /// The Repository object; `None` until the BackupConfiguration's reconcile creates it.
    pub repository: Option<Repository>,
    pub storage: BackupStorage,
    /// The BackupStorage's credentials Secret, when its provider names one.
    pub storage_secret: Option<SecretRef>,
    pub password: PasswordRef,
}

impl ResolvedRepository {
    /// `Repository namespace/name`.
    pub fn describe(&self) -> String {
        format!("Repository {}/{}", self.namespace, self.name)
    }

    /// `BackupStorage namespace/name`.
    pub fn describe_storage(&self) -> String {
        describe("BackupStorage", &self.storage.metadata)
    }

    /// Namespaces whose objects reading this repository touches (its own, the storage's, the
    /// storage Secret's and the password Secret's).
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::from([self.namespace.clone(), self.password.secret.namespace.clone()]);
        out.extend(self.storage.metadata.namespace.clone());
        out.extend(self.storage_secret.as_ref().map(|s| s.namespace.clone()));
        out
    }
}

/// A BackupSession resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBackup {
    pub namespace: String,
    pub session: BackupSession,
    pub configuration: BackupConfiguration,
    /// The index of [`Self::session_spec`] in the configuration's `spec.sessions`.
    pub session_index: usize,
    /// The configuration's session entry the BackupSession runs.
    pub session_spec: Session,
    pub addon: ResolvedAddon,
    /// In the session entry's order; never empty.
    pub repositories: Vec<ResolvedRepository>,
    /// The configuration's target (namespace defaulted to the configuration's).
    pub target: Option<TypedObjectReference>,
}

impl ResolvedBackup {
    /// The BackupSession's name.
    pub fn name(&self) -> &str {
        self.session.metadata.name.as_deref().unwrap_or_default()
    }

    /// The BackupConfiguration's name.
    pub fn configuration_name(&self) -> &str {
        self.configuration.metadata.name.as_deref().unwrap_or_default()
    }

    /// One of the session's repositories by name.
    pub fn repository(&self, name: &str) -> Option<&ResolvedRepository> {
        self.repositories.iter().find(|r| r.name == name)
    }
}

/// A RestoreSession resolved, for one Snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRestore {
    pub namespace: String,
    pub session: RestoreSession,
    pub data_source: RestoreDataSource,
    /// The Snapshot restored from (in the data source's namespace).
    pub snapshot: Snapshot,
    /// Its repository; the password follows rule 1 of the module documentation.
    pub repository: ResolvedRepository,
    pub addon: ResolvedAddon,
    /// The restore target (namespace defaulted to the RestoreSession's).
    pub target: Option<TypedObjectReference>,
}

impl ResolvedRestore {
    /// The RestoreSession's name.
    pub fn name(&self) -> &str {
        self.session.metadata.name.as_deref().unwrap_or_default()
    }

    /// The Snapshot's name.
    pub fn snapshot_name(&self) -> &str {
        self.snapshot.metadata.name.as_deref().unwrap_or_default()
    }
}

fn with_namespace(target: Option<&TypedObjectReference>, default: &str) -> Option<TypedObjectReference> {
    target.map(|t| {
        let mut t = t.clone();
        t.namespace = Some(ns_or(&t.namespace, default).to_string());
        t
    })
}

fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none defined".into()
    } else {
        format!("use one of: {}", names.join(", "))
    }
}

/// The session entry `name` of a configuration, with its index.
pub fn session_entry<'a>(bc: &'a BackupConfiguration, name: &str) -> Result<(usize, &'a Session)> {
    bc.spec
        .sessions
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)
        .ok_or_else(|| {
            ResolveError::invalid(
                &describe("BackupConfiguration", &bc.metadata),
                "spec.sessions",
                format!("has no session \"{name}\""),
                one_of(bc.spec.sessions.iter().map(|s| s.name.as_str())),
            )
        })
}

/// The Addon of a session entry with its tasks of `kind`; `field` is where `info` sits in
/// `object` (`spec.sessions[0].addon`, `spec.addon`).
pub fn addon(
    res: &dyn Resources,
    object: &str,
    field: &str,
    info: Option<&AddonInfo>,
    kind: TaskKind,
) -> Result<ResolvedAddon> {
    let Some(info) = info.filter(|a| !a.name.is_empty()) else {
        return Err(ResolveError::invalid(
            object,
            format!("{field}.name"),
            "not set",
            format!("name an Addon and its {} tasks, e.g. workload-addon", kind.word()),
        ));
    };
    let Some(found) = res.get_as::<Addon>("", &info.name)? else {
        return Err(ResolveError::not_found(
            object,
            format!("{field}.name"),
            format!("Addon \"{}\"", info.name),
            "install it (kstash server installs the catalog) or name an installed Addon",
        ));
    };
    if info.tasks.is_empty() {
        return Err(ResolveError::invalid(
            object,
            format!("{field}.tasks"),
            "empty",
            format!(
                "name a {} task of Addon \"{}\": {}",
                kind.word(),
                info.name,
                one_of(kind.tasks(&found).iter().map(|t| t.name.as_str()))
            ),
        ));
    }
    let defined = kind.tasks(&found);
    let mut tasks = Vec::new();
    for (index, reference) in info.tasks.iter().enumerate() {
        let Some(task) = defined.iter().find(|t| t.name == reference.name) else {
            return Err(ResolveError::invalid(
                object,
                format!("{field}.tasks[{index}].name"),
                format!(
                    "Addon \"{}\" has no {} task \"{}\"",
                    info.name,
                    kind.word(),
                    reference.name
                ),
                one_of(defined.iter().map(|t| t.name.as_str())),
            ));
        };
        let function = if task.function.is_empty() {
            None
        } else {
            res.get_as::<Function>("", &task.function)?
        };
        tasks.push(AddonTask {
            index,
            reference: reference.clone(),
            task: task.clone(),
            function,
        });
    }
    Ok(ResolvedAddon {
        info: info.clone(),
        addon: found,
        kind,
        tasks,
    })
}

/// A password candidate: the reference, its default namespace, and which field named it.
struct Candidate<'a> {
    reference: Option<&'a ObjectReference>,
    default_ns: &'a str,
    source: PasswordSource,
    named_by: String,
    field: String,
}

/// The first candidate that names a Secret (the one password rule's order is the caller's
/// order, always: data source, Repository, session entry).
fn first_password<'a>(candidates: impl IntoIterator<Item = Candidate<'a>>) -> Option<PasswordRef> {
    candidates.into_iter().find_map(|c| {
        let r = c.reference.filter(|r| !r.name.is_empty())?;
        Some(PasswordRef {
            secret: SecretRef {
                namespace: ns_or(&r.namespace, c.default_ns).to_string(),
                name: r.name.clone(),
            },
            key: PASSWORD_KEY.to_string(),
            source: c.source,
            named_by: c.named_by,
            field: c.field,
        })
    })
}

fn no_password(object: &str, field: &str) -> ResolveError {
    ResolveError::invalid(
        object,
        field,
        "not set",
        "name a Secret holding RESTIC_PASSWORD here (or in the BackupConfiguration's spec.sessions[].repositories[].encryptionSecret)",
    )
}

/// The BackupStorage `reference` (namespace defaulting to `default_ns`) named by `object`'s `field`.
fn storage_at(
    res: &dyn Resources,
    object: &str,
    field: &str,
    reference: &ObjectReference,
    default_ns: &str,
) -> Result<(BackupStorage, Option<SecretRef>)> {
    if reference.name.is_empty() {
        return Err(ResolveError::invalid(
            object,
            format!("{field}.name"),
            "empty",
            "name the BackupStorage the repository lives in",
        ));
    }
    let ns = ns_or(&reference.namespace, default_ns);
    // Lean: its status lists every Repository in it, which no resolution needs.
    let Some(storage) = res.get_lean_as::<BackupStorage>(ns, &reference.name)? else {
        return Err(ResolveError::not_found(
            object,
            field,
            format!("BackupStorage {ns}/{}", reference.name),
            "create the BackupStorage or correct the reference",
        ));
    };
    let secret = storage_secret_ref(&storage);
    Ok((storage, secret))
}

/// Repository `j` of session entry `i` of `bc`, with its storage and password by the one rules;
/// the Repository may not exist yet.
pub fn session_repository(
    res: &dyn Resources,
    bc: &BackupConfiguration,
    session_index: usize,
    repo_index: usize,
) -> Result<ResolvedRepository> {
    let bc_object = describe("BackupConfiguration", &bc.metadata);
    let bc_ns = bc.metadata.namespace.as_deref().unwrap_or_default();
    let field = format!("spec.sessions[{session_index}].repositories[{repo_index}]");
    let Some(info) = bc
        .spec
        .sessions
        .get(session_index)
        .and_then(|s| s.repositories.get(repo_index))
    else {
        return Err(ResolveError::invalid(
            &bc_object,
            field,
            "does not exist",
            "name a repository of the session",
        ));
    };
    if info.name.is_empty() {
        return Err(ResolveError::invalid(
            &bc_object,
            format!("{field}.name"),
            "empty",
            "name the Repository",
        ));
    }
    let repository = res.get_as::<Repository>(bc_ns, &info.name)?;
    let entry = Candidate {
        reference: info.encryption_secret.as_ref(),
        default_ns: bc_ns,
        source: PasswordSource::SessionRepository,
        named_by: bc_object.clone(),
        field: format!("{field}.encryptionSecret"),
    };
    match repository {
        Some(repo) => {
            let mut resolved = repository_with(res, repo, None, Some(entry))?;
            resolved.backend = info.backend.clone();
            Ok(resolved)
        }
        None => {
            let password = first_password([entry])
                .ok_or_else(|| no_password(&bc_object, &format!("{field}.encryptionSecret")))?;
            let (k, backend) = if info.backend.is_empty() {
                bc.spec.backends.iter().enumerate().next()
            } else {
                bc.spec
                    .backends
                    .iter()
                    .enumerate()
                    .find(|(_, b)| b.name == info.backend)
            }
            .ok_or_else(|| {
                ResolveError::invalid(
                    &bc_object,
                    format!("{field}.backend"),
                    format!("no backend \"{}\" in spec.backends", info.backend),
                    one_of(bc.spec.backends.iter().map(|b| b.name.as_str())),
                )
            })?;
            let reference = backend.storage_ref.as_ref().ok_or_else(|| {
                ResolveError::invalid(
                    &bc_object,
                    format!("spec.backends[{k}].storageRef"),
                    "not set",
                    "name the BackupStorage of the backend",
                )
            })?;
            let (storage, storage_secret) = storage_at(
                res,
                &bc_object,
                &format!("spec.backends[{k}].storageRef"),
                reference,
                bc_ns,
            )?;
            Ok(ResolvedRepository {
                name: info.name.clone(),
                namespace: bc_ns.to_string(),
                backend: info.backend.clone(),
                directory: info.directory.clone(),
                repository: None,
                storage,
                storage_secret,
                password,
            })
        }
    }
}

/// The BackupStorage of an existing Repository (`spec.storageRef`, namespace defaulting to the
/// Repository's) and the reference of its credentials Secret: the storage rule without the
/// password, for callers that only reach the storage.
pub fn repository_storage(
    res: &dyn Resources,
    repo: &Repository,
) -> Result<(BackupStorage, Option<SecretRef>)> {
    let object = describe("Repository", &repo.metadata);
    let ns = repo.metadata.namespace.as_deref().unwrap_or_default();
    storage_at(res, &object, "spec.storageRef", &repo.spec.storage_ref, ns)
}

/// The session entry (and its configuration) that declares Repository `namespace/name`, among
/// the BackupConfigurations of its namespace.
fn declaring_entry(
    res: &dyn Resources,
    namespace: &str,
    name: &str,
) -> Result<Option<(BackupConfiguration, RepositoryInfo, String)>> {
    for bc in res.list_as::<BackupConfiguration>(Some(namespace), &[])? {
        for (i, s) in bc.spec.sessions.iter().enumerate() {
            if let Some((j, info)) = s.repositories.iter().enumerate().find(|(_, r)| r.name == name) {
                let field = format!("spec.sessions[{i}].repositories[{j}].encryptionSecret");
                return Ok(Some((bc.clone(), info.clone(), field)));
            }
        }
    }
    Ok(None)
}

/// An existing Repository with its storage and password by the one rules (rule 3 looks the
/// declaring session entry up among the BackupConfigurations of the Repository's namespace).
pub fn repository(res: &dyn Resources, repo: Repository) -> Result<ResolvedRepository> {
    repository_with(res, repo, None, None)
}

/// Repository `namespace/name`, which must exist; see [`repository`].
pub fn repository_named(res: &dyn Resources, namespace: &str, name: &str) -> Result<ResolvedRepository> {
    let repo = res.must_get::<Repository>(namespace, name)?;
    repository(res, repo)
}

/// [`repository`] with rule 1's data-source Secret and rule 3's entry when the caller knows them.
fn repository_with(
    res: &dyn Resources,
    repo: Repository,
    data_source: Option<Candidate<'_>>,
    entry: Option<Candidate<'_>>,
) -> Result<ResolvedRepository> {
    let object = describe("Repository", &repo.metadata);
    let ns = repo.metadata.namespace.clone().unwrap_or_default();
    let name = repo.metadata.name.clone().unwrap_or_default();
    let own = Candidate {
        reference: repo.spec.encryption_secret.as_ref(),
        default_ns: &ns,
        source: PasswordSource::Repository,
        named_by: object.clone(),
        field: "spec.encryptionSecret".into(),
    };
    let mut password = first_password(data_source.into_iter().chain([own]));
    if password.is_none() {
        password = match entry {
            Some(e) => first_password([e]),
            None => declaring_entry(res, &ns, &name)?.and_then(|(bc, info, field)| {
                first_password([Candidate {
                    reference: info.encryption_secret.as_ref(),
                    default_ns: bc.metadata.namespace.as_deref().unwrap_or(&ns),
                    source: PasswordSource::SessionRepository,
                    named_by: describe("BackupConfiguration", &bc.metadata),
                    field,
                }])
            }),
        };
    }
    let password = password.ok_or_else(|| no_password(&object, "spec.encryptionSecret"))?;
    let (storage, storage_secret) = repository_storage(res, &repo)?;
    Ok(ResolvedRepository {
        name,
        namespace: ns,
        backend: String::new(),
        directory: repo.spec.path.clone(),
        repository: Some(repo),
        storage,
        storage_secret,
        password,
    })
}

/// The BackupConfiguration a BackupSession runs (`None` when it does not exist): the one place a
/// session's configuration is looked up. An invoker that is not set or not a BackupConfiguration
/// is invalid. The session's entry in it is [`session_entry`].
pub fn session_configuration(
    res: &dyn Resources,
    session: &BackupSession,
) -> Result<Option<BackupConfiguration>> {
    invoker_configuration(
        res,
        &describe("BackupSession", &session.metadata),
        session.metadata.namespace.as_deref().unwrap_or_default(),
        session.spec.invoker.as_ref(),
    )
}

/// The BackupConfiguration `invoker` names for a session `object` in `namespace` (a
/// BackupSession's or a BackupVerificationSession's `spec.invoker`), `None` when it does not exist.
fn invoker_configuration(
    res: &dyn Resources,
    object: &str,
    namespace: &str,
    invoker: Option<&TypedLocalObjectReference>,
) -> Result<Option<BackupConfiguration>> {
    let Some(invoker) = invoker.filter(|i| !i.name.is_empty()) else {
        return Err(ResolveError::invalid(
            object,
            "spec.invoker",
            "not set",
            "name the BackupConfiguration (kind BackupConfiguration) the session runs",
        ));
    };
    if invoker.kind != "BackupConfiguration" {
        return Err(ResolveError::invalid(
            object,
            "spec.invoker.kind",
            format!("{:?} is not supported", invoker.kind),
            "kstash runs sessions of kind BackupConfiguration",
        ));
    }
    Ok(res.get_as::<BackupConfiguration>(namespace, &invoker.name)?)
}

/// Resolve BackupSession `namespace/name`: see the module documentation.
pub fn resolve_backup(res: &dyn Resources, namespace: &str, name: &str) -> Result<ResolvedBackup> {
    let session: BackupSession = res.must_get(namespace, name)?;
    let object = format!("BackupSession {namespace}/{name}");
    let Some(configuration) = session_configuration(res, &session)? else {
        let invoker = session
            .spec
            .invoker
            .as_ref()
            .map(|i| i.name.as_str())
            .unwrap_or("");
        return Err(ResolveError::not_found(
            &object,
            "spec.invoker.name",
            format!("BackupConfiguration {namespace}/{invoker}"),
            "create the BackupConfiguration or delete this session",
        ));
    };
    let bc_object = describe("BackupConfiguration", &configuration.metadata);
    let (session_index, session_spec) = session_entry(&configuration, &session.spec.session)?;
    let session_spec = session_spec.clone();
    let addon = addon(
        res,
        &bc_object,
        &format!("spec.sessions[{session_index}].addon"),
        session_spec.addon.as_ref(),
        TaskKind::Backup,
    )?;
    if session_spec.repositories.is_empty() {
        return Err(ResolveError::invalid(
            &bc_object,
            format!("spec.sessions[{session_index}].repositories"),
            "empty",
            "name at least one repository for the session to back up into",
        ));
    }
    let repositories = (0..session_spec.repositories.len())
        .map(|j| session_repository(res, &configuration, session_index, j))
        .collect::<Result<Vec<_>>>()?;
    let bc_ns = configuration.metadata.namespace.as_deref().unwrap_or(namespace);
    let target = with_namespace(configuration.spec.target.as_ref(), bc_ns);
    Ok(ResolvedBackup {
        namespace: namespace.to_string(),
        session,
        configuration,
        session_index,
        session_spec,
        addon,
        repositories,
        target,
    })
}

/// A BackupVerificationSession resolved: its configuration, the repository entry being
/// verified, the BackupVerifier that entry names, and where the verification restores to.
#[derive(Debug, Clone)]
pub struct ResolvedVerification {
    pub namespace: String,
    pub session: BackupVerificationSession,
    pub configuration: BackupConfiguration,
    pub session_index: usize,
    pub repository_index: usize,
    /// The configuration's entry for the verified repository.
    pub repository: RepositoryInfo,
    pub verifier: BackupVerifier,
    /// `restoreOption.target`, namespace filled in (the verifier's namespace by default).
    pub target: TypedObjectReference,
    /// `restoreOption.addonInfo`.
    pub addon: AddonInfo,
}

/// Resolve BackupVerificationSession `namespace/name`: its BackupConfiguration (`spec.invoker`),
/// the session entry (`spec.session`), the repository entry (`spec.repository`) and that entry's
/// `backupVerifier`; refuses a verifier that restores into the configuration's own target.
pub fn resolve_verification(
    res: &dyn Resources,
    namespace: &str,
    name: &str,
) -> Result<ResolvedVerification> {
    let session: BackupVerificationSession = res.must_get(namespace, name)?;
    let object = format!("BackupVerificationSession {namespace}/{name}");
    let Some(configuration) = invoker_configuration(res, &object, namespace, session.spec.invoker.as_ref())?
    else {
        let invoker = session
            .spec
            .invoker
            .as_ref()
            .map(|i| i.name.as_str())
            .unwrap_or("");
        return Err(ResolveError::not_found(
            &object,
            "spec.invoker.name",
            format!("BackupConfiguration {namespace}/{invoker}"),
            "create the BackupConfiguration or delete this session",
        ));
    };
    let bc_object = describe("BackupConfiguration", &configuration.metadata);
    let bc_ns = configuration
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_string());
    let (session_index, entry) = session_entry(&configuration, &session.spec.session)?;
    let (repository_index, repository) = entry
        .repositories
        .iter()
        .enumerate()
        .find(|(_, r)| r.name == session.spec.repository)
        .ok_or_else(|| {
            ResolveError::invalid(
                &object,
                "spec.repository",
                format!(
                    "session \"{}\" of {bc_object} has no repository \"{}\"",
                    session.spec.session, session.spec.repository
                ),
                one_of(entry.repositories.iter().map(|r| r.name.as_str())),
            )
        })?;
    let field = format!("spec.sessions[{session_index}].repositories[{repository_index}].backupVerifier");
    let Some(vref) = repository.backup_verifier.as_ref().filter(|v| !v.name.is_empty()) else {
        return Err(ResolveError::invalid(
            &bc_object,
            field,
            format!("repository \"{}\" has no backupVerifier", repository.name),
            "name a BackupVerifier in the repository entry (backupVerifier: {name: …, namespace: …})",
        ));
    };
    let vns = ns_or(&vref.namespace, &bc_ns).to_string();
    let Some(verifier) = res.get_as::<BackupVerifier>(&vns, &vref.name)? else {
        return Err(ResolveError::not_found(
            &bc_object,
            field,
            format!("BackupVerifier {vns}/{}", vref.name),
            "create the BackupVerifier (kstash apply -f verifier.yaml) or fix the reference",
        ));
    };
    let v_object = describe("BackupVerifier", &verifier.metadata);
    let option = verifier.spec.restore_option.clone().unwrap_or_default();
    let Some(target) = with_namespace(option.target.as_ref(), &vns) else {
        return Err(ResolveError::invalid(
            &v_object,
            "spec.restoreOption.target",
            "not set",
            "name a scratch target to restore into",
        ));
    };
    let Some(addon) = option.addon_info.clone() else {
        return Err(ResolveError::invalid(
            &v_object,
            "spec.restoreOption.addonInfo",
            "not set",
            "name the addon and restore task, e.g. {name: postgres-addon, tasks: [{name: logical-backup-restore}]}",
        ));
    };
    if let Some(why) = verification::unsafe_volume_restore(&addon) {
        return Err(ResolveError::invalid(
            &v_object,
            "spec.restoreOption.addonInfo.tasks[0].params.target",
            why,
            "name a scratch directory, e.g. params: {target: /var/lib/kstash/verify}",
        ));
    }
    if let Some(own) = &configuration.spec.target
        && verification::same_target(own, &bc_ns, &target, &vns)
    {
        return Err(ResolveError::invalid(
            &v_object,
            "spec.restoreOption.target",
            format!(
                "{} is the backup target of {bc_object}; verification would overwrite the data it verifies",
                verification::describe_target(&target, &vns)
            ),
            "restore into a separate target (e.g. a scratch database in its own namespace)",
        ));
    }
    Ok(ResolvedVerification {
        namespace: namespace.to_string(),
        repository: repository.clone(),
        configuration: configuration.clone(),
        session_index,
        repository_index,
        verifier,
        target,
        addon,
        session,
    })
}

/// Resolve RestoreSession `namespace/name` restoring from Snapshot `snapshot` (a name, in the
/// data source's namespace; the controller picks it for `latest` or a point in time).
pub fn resolve_restore(
    res: &dyn Resources,
    namespace: &str,
    name: &str,
    snapshot: &str,
) -> Result<ResolvedRestore> {
    let session: RestoreSession = res.must_get(namespace, name)?;
    let object = format!("RestoreSession {namespace}/{name}");
    let Some(data_source) = session.spec.data_source.clone() else {
        return Err(ResolveError::invalid(
            &object,
            "spec.dataSource",
            "not set",
            "set dataSource.repository and dataSource.snapshot",
        ));
    };
    let addon = addon(
        res,
        &object,
        "spec.addon",
        session.spec.addon.as_ref(),
        TaskKind::Restore,
    )?;
    let ds_ns = if data_source.namespace.is_empty() {
        namespace
    } else {
        data_source.namespace.as_str()
    };
    let Some(snap) = res.get_as::<Snapshot>(ds_ns, snapshot)? else {
        return Err(ResolveError::not_found(
            &object,
            "spec.dataSource.snapshot",
            format!("Snapshot {ds_ns}/{snapshot}"),
            "use `latest` or a name from `kstash snapshots`",
        ));
    };
    let snap_object = format!("Snapshot {ds_ns}/{snapshot}");
    if !data_source.repository.is_empty() && data_source.repository != snap.spec.repository {
        return Err(ResolveError::invalid(
            &object,
            "spec.dataSource.repository",
            format!(
                "{snap_object} belongs to Repository {}, not to {}",
                snap.spec.repository, data_source.repository
            ),
            "name the Snapshot's repository, or a Snapshot of this repository",
        ));
    }
    let Some(repo) = res.get_as::<Repository>(ds_ns, &snap.spec.repository)? else {
        return Err(ResolveError::not_found(
            &snap_object,
            "spec.repository",
            format!("Repository {ds_ns}/{}", snap.spec.repository),
            "recreate the Repository (a BackupStorage sync recreates it from the bucket)",
        ));
    };
    let override_secret = Candidate {
        reference: data_source.encryption_secret.as_ref(),
        default_ns: namespace,
        source: PasswordSource::RestoreDataSource,
        named_by: object.clone(),
        field: "spec.dataSource.encryptionSecret".into(),
    };
    let repository = repository_with(res, repo, Some(override_secret), None)?;
    let target = with_namespace(session.spec.target.as_ref(), namespace);
    Ok(ResolvedRestore {
        namespace: namespace.to_string(),
        session,
        data_source,
        snapshot: snap,
        repository,
        addon,
        target,
    })
}

/// The value of `key` in a Secret: `stringData` over `data`, one trailing newline dropped;
/// `None` when absent or empty.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let raw = match secret.string_data.as_ref().and_then(|d| d.get(key)) {
        Some(v) => v.clone(),
        None => String::from_utf8_lossy(&secret.data.as_ref()?.get(key)?.0).into_owned(),
    };
    let v = raw.strip_suffix('\n').unwrap_or(&raw);
    (!v.is_empty()).then(|| v.to_string())
}

/// Read the restic password `password` points at.
pub fn password(res: &dyn Resources, password: &PasswordRef) -> Result<String> {
    let s = &password.secret;
    let Some(secret) = res.get_as::<Secret>(&s.namespace, &s.name)? else {
        return Err(ResolveError::not_found(
            &password.named_by,
            &password.field,
            s.to_string(),
            format!(
                "create it with the key {} holding the repository's encryption password",
                password.key
            ),
        ));
    };
    secret_value(&secret, &password.key).ok_or_else(|| {
        ResolveError::invalid(
            &password.named_by,
            &password.field,
            format!("{s} has no key {} (or it is empty)", password.key),
            format!(
                "add `{}` with the repository's encryption password to the Secret",
                password.key
            ),
        )
    })
}

/// The credentials Secret a BackupStorage names (`spec.storage.<provider>.secretName`, in the
/// BackupStorage's namespace), `None` when its provider names none.
pub fn storage_secret_ref(storage: &BackupStorage) -> Option<SecretRef> {
    storage.spec.storage.secret_name().map(|name| SecretRef {
        namespace: storage.metadata.namespace.clone().unwrap_or_default(),
        name: name.to_string(),
    })
}

/// Read the credentials Secret of a BackupStorage (`None` when its provider names none).
pub fn storage_secret(res: &dyn Resources, storage: &BackupStorage) -> Result<Option<Secret>> {
    let Some(s) = storage_secret_ref(storage) else {
        return Ok(None);
    };
    match res.get_as::<Secret>(&s.namespace, &s.name)? {
        Some(secret) => Ok(Some(secret)),
        None => Err(ResolveError::not_found(
            &describe("BackupStorage", &storage.metadata),
            "spec.storage.*.secretName",
            s.to_string(),
            "create it with the provider's credential keys",
        )),
    }
}

#[cfg(test)]
mod tests;
