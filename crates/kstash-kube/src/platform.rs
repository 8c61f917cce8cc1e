//! The `Platform` seam on Kubernetes: resources through the API, executors as batch/v1 Jobs built
//! from the Addon task and Function, schedules as CronJobs `trigger-<bc>-<session>`, per-namespace
//! executor RBAC, targets looked up through discovery, and Events. Owned objects are written with
//! server-side apply under one field manager; the reconcilers' own writes use resourceVersion
//! checks and the status subresource.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kstash_api::client::{ClientResult, Resources};
use kstash_api::common::TypedObjectReference;
use kstash_api::meta::ResourceType;
use kstash_api::resolve::{self, ResolvedAddon};
use kstash_api::schedule::Schedule;
use kstash_api::storage::BackupStorage;
use kstash_controller::platform::{
    CommandOutput, HookCommands, JobPurpose, JobSpec, JobState, Platform, PlatformError, ScheduleSpec,
    StorageOps,
};
use kstash_controller::pushgateway::Pusher;
use kstash_controller::tasks::TaskTracker;
use kube::api::ApiResource;
use serde_json::{Value, json};

use crate::build::{self, ExecutorInputs, TriggerInputs};
use crate::resources::{KubeResources, builtin};

/// Settings of the operator that shape what it creates.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Image of trigger CronJob pods (`kstash trigger`).
    pub image: String,
    /// Pushgateway for session metrics.
    pub pushgateway: Option<String>,
}

/// The Kubernetes runtime.
pub struct KubePlatform {
    res: KubeResources,
    storage: Arc<dyn StorageOps>,
    settings: KubeSettings,
    /// Namespaces whose executor RBAC was applied by this process.
    rbac_done: Mutex<std::collections::BTreeSet<String>>,
    /// The last phase this process wrote per object uid, so a phase change is noticed without
    /// reading the object before every status write.
    phases: Mutex<std::collections::HashMap<String, Option<String>>>,
    /// Hooks and other slow work, off the reconcile workers.
    tasks: TaskTracker,
    /// The Pushgateway queue (when `settings.pushgateway` is set).
    pusher: Option<Pusher>,
}

/// Exec hooks on Kubernetes need a pod exec, which the operator does not do yet.
struct NoPodExec;

impl HookCommands for NoPodExec {
    fn exec(
        &self,
        namespace: &str,
        command: &[String],
        _env: &BTreeMap<String, String>,
        _timeout: Duration,
    ) -> Result<CommandOutput, PlatformError> {
        Err(perr(format!(
            "hook in namespace {namespace}: exec hooks ({command:?}) are not supported by the kstash operator yet; use an httpGet/httpPost/tcpSocket hook (HookTemplate spec.action) or run the command from a Function hook"
        )))
    }
}

/// Objects whose last phase is remembered (then the memory starts over).
const PHASE_CACHE_MAX: usize = 10_000;

impl std::fmt::Debug for KubePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePlatform")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn jobs_ar() -> ApiResource {
    builtin("batch/v1", "Job", "jobs")
}
fn cronjobs_ar() -> ApiResource {
    builtin("batch/v1", "CronJob", "cronjobs")
}

fn perr(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::new(e.to_string())
}

/// The controller owner reference of a stored object (the reconcilers' `owner_ref`, as JSON).
fn owner_of(obj: &Value) -> Value {
    let text = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
    let meta = serde_json::from_value(obj["metadata"].clone()).unwrap_or_default();
    let owner = kstash_controller::util::owner_ref(text("/apiVersion").to_string(), text("/kind"), &meta);
    serde_json::to_value(owner).unwrap_or(Value::Null)
}

/// The API resource of a target kind (`apiGroup` + `kind`) kstash knows (workloads, PVCs,
/// AppBindings); other kinds are found through discovery.
pub fn target_resource(target: &TypedObjectReference) -> Option<ApiResource> {
    let group = target.api_group.as_deref().unwrap_or("");
    let kind = target.kind.as_deref()?;
    kstash_api::meta::ALL
        .iter()
        .find(|rt| rt.group == group && rt.kind == kind)
        .map(crate::resources::api_resource)
}

/// The state of a group of executor Jobs: Failed when one failed, Succeeded when all completed,
/// Running otherwise, Missing when there are none.
pub fn group_state(jobs: &[Value]) -> JobState {
    if jobs.is_empty() {
        return JobState::Missing;
    }
    let cond = |j: &Value, t: &str| {
        j.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t && c["status"] == "True")
            .cloned()
    };
    for j in jobs {
        if let Some(c) = cond(j, "Failed") {
            let name = j.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            return JobState::Failed(
                format!(
                    "Job {name}: {} {}",
                    c["reason"].as_str().unwrap_or("Failed"),
                    c["message"].as_str().unwrap_or("")
                )
                .trim_end()
                .to_string(),
            );
        }
    }
    if jobs.iter().all(|j| cond(j, "Complete").is_some()) {
        JobState::Succeeded
    } else {
        JobState::Running
    }
}

impl KubePlatform {
    /// A platform over `res`, with the storage operations of the executor crate.
    pub fn new(res: KubeResources, storage: Arc<dyn StorageOps>, settings: KubeSettings) -> Self {
        KubePlatform {
            res,
            storage,
            rbac_done: Mutex::new(Default::default()),
            phases: Mutex::new(Default::default()),
            tasks: TaskTracker::new(),
            pusher: settings.pushgateway.clone().map(Pusher::start),
            settings,
        }
    }

    /// The resource client.
    pub fn resources(&self) -> &KubeResources {
        &self.res
    }

    /// Apply the executor ServiceAccount and RoleBindings of `namespace` (once per process).
    pub fn ensure_executor_rbac(&self, namespace: &str) -> Result<(), PlatformError> {
        if self
            .rbac_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(namespace)
        {
            return Ok(());
        }
        for obj in build::executor_rbac(namespace) {
            let ar = match obj["kind"].as_str().unwrap_or("") {
                "ServiceAccount" => builtin("v1", "ServiceAccount", "serviceaccounts"),
                "RoleBinding" => builtin("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
                _ => builtin(
                    "rbac.authorization.k8s.io/v1",
                    "ClusterRoleBinding",
                    "clusterrolebindings",
                ),
            };
            self.res.apply(&ar, &obj).map_err(perr)?;
        }
        self.rbac_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string());
        Ok(())
    }

    fn executor_jobs(&self, namespace: &str, name: &str) -> ClientResult<Vec<Value>> {
        self.res
            .list_any(&jobs_ar(), Some(namespace), &[(build::LABEL_EXECUTOR, name)])
    }

    /// Build the executor Jobs of `job` from its session, the Addon task and the Function.
    pub fn plan_executor(&self, job: &JobSpec) -> Result<Vec<Value>, PlatformError> {
        self.plan_executor_with_namespaces(job).map(|(jobs, _)| jobs)
    }

    /// The executor Jobs, and the other namespaces whose objects (BackupStorage, encryption
    /// Secret, target, Repository) the executor must read. Built from the session's resolution
    /// ([`kstash_api::resolve`]); nothing about the session is looked up twice.
    pub fn plan_executor_with_namespaces(
        &self,
        job: &JobSpec,
    ) -> Result<(Vec<Value>, std::collections::BTreeSet<String>), PlatformError> {
        let ns = job.namespace.as_str();
        if let JobPurpose::Verify { verification_session } = &job.purpose {
            return self.plan_verifier(job, verification_session);
        }
        let (owner, addon, repositories, target, vars) = match &job.purpose {
            JobPurpose::Backup { backup_session } => {
                let r = resolve::resolve_backup(&self.res, ns, backup_session)?;
                let vars = BTreeMap::from([
                    ("namespace".to_string(), ns.to_string()),
                    ("backupSession".to_string(), backup_session.clone()),
                    ("invokerKind".to_string(), "BackupConfiguration".to_string()),
                    ("invokerName".to_string(), r.configuration_name().to_string()),
                ]);
                let owner = owner_of(&kstash_api::client::encode(&r.session));
                (owner, r.addon, r.repositories, r.target, vars)
            }
            JobPurpose::Restore {
                restore_session,
                snapshot,
            } => {
                let r = resolve::resolve_restore(&self.res, ns, restore_session, snapshot)?;
                let vars = BTreeMap::from([
                    ("namespace".to_string(), ns.to_string()),
                    ("restoreSession".to_string(), restore_session.clone()),
                    ("snapshot".to_string(), snapshot.clone()),
                    ("invokerKind".to_string(), "RestoreSession".to_string()),
                    ("invokerName".to_string(), restore_session.clone()),
                ]);
                let owner = owner_of(&kstash_api::client::encode(&r.session));
                (owner, r.addon, vec![r.repository], r.target, vars)
            }
            JobPurpose::Verify { .. } => unreachable!("planned above"),
            // Stash's own operator runs stash.appscode.com sessions on a cluster; kstash's
            // operator does not watch them (`kstash convert` turns them into KubeStash ones).
            JobPurpose::StashRestore {
                restore_session: session,
            }
            | JobPurpose::StashBackup {
                backup_session: session,
            } => {
                return Err(PlatformError::of(
                    kstash_api::ErrorCategory::Invalid,
                    format!(
                        "{ns}/{session}: Stash v1 sessions run on the embedded runtime only; on a cluster convert them with `kstash convert` and apply the KubeStash objects"
                    ),
                ));
            }
        };
        let mut foreign: std::collections::BTreeSet<String> =
            repositories.iter().flat_map(|r| r.namespaces()).collect();
        foreign.extend(target.as_ref().and_then(|t| t.namespace.clone()));
        foreign.remove(ns);
        foreign.remove("");
        let mut storages: Vec<&BackupStorage> = Vec::new();
        for r in &repositories {
            if !storages.iter().any(|s| s.metadata == r.storage.metadata) {
                storages.push(&r.storage);
            }
        }
        let jobs = self.plan_from(job, owner, &addon, storages, target.as_ref(), vars)?;
        Ok((jobs, foreign))
    }

    /// The verifier Job of a BackupVerificationSession, and the namespaces it reads besides its
    /// own (the configuration's, the target's).
    fn plan_verifier(
        &self,
        job: &JobSpec,
        session: &str,
    ) -> Result<(Vec<Value>, std::collections::BTreeSet<String>), PlatformError> {
        let ns = job.namespace.as_str();
        let r = resolve::resolve_verification(&self.res, ns, session)?;
        let function = match r.verifier.spec.function.as_str() {
            "" => None,
            name => Some(
                kstash_api::client::ResourcesExt::get_as::<kstash_api::addons::Function>(self, "", name)
                    .map_err(perr)?
                    .ok_or_else(|| {
                        perr(format!(
                            "BackupVerifier {}/{}: spec.function: Function \"{name}\" not found; fix: install it (KubeDB ships kubedbverifier) or leave function empty for kstash's own verifier",
                            r.verifier.metadata.namespace.as_deref().unwrap_or(ns),
                            r.verifier.metadata.name.as_deref().unwrap_or("")
                        ))
                    })?,
            ),
        };
        let vars = BTreeMap::from([
            ("namespace".to_string(), ns.to_string()),
            ("backupVerificationSession".to_string(), session.to_string()),
            ("snapshot".to_string(), r.session.spec.snapshot.clone()),
            ("invokerKind".to_string(), "BackupConfiguration".to_string()),
            (
                "invokerName".to_string(),
                r.configuration.metadata.name.clone().unwrap_or_default(),
            ),
            ("targetName".to_string(), r.target.name.clone()),
            (
                "targetKind".to_string(),
                r.target.kind.clone().unwrap_or_default(),
            ),
            (
                "targetNamespace".to_string(),
                r.target.namespace.clone().unwrap_or_default(),
            ),
        ]);
        let built = build::verifier_job(&build::VerifierJobInputs {
            job,
            owner: owner_of(&kstash_api::client::encode(&r.session)),
            verifier: &r.verifier.spec,
            function: function.as_ref(),
            vars,
            image: &self.settings.image,
            service_account: build::EXECUTOR_SERVICE_ACCOUNT.to_string(),
        })
        .map_err(|e| perr(e.to_string()))?;
        let mut foreign = std::collections::BTreeSet::new();
        foreign.extend(r.configuration.metadata.namespace.clone());
        foreign.extend(r.target.namespace.clone());
        foreign.remove(ns);
        Ok((vec![built], foreign))
    }

    /// The executor Jobs of the session's first task.
    fn plan_from(
        &self,
        job: &JobSpec,
        owner: Value,
        addon: &ResolvedAddon,
        storages: Vec<&BackupStorage>,
        target: Option<&TypedObjectReference>,
        mut vars: BTreeMap<String, String>,
    ) -> Result<Vec<Value>, PlatformError> {
        let ns = job.namespace.as_str();
        let first = addon.tasks.first().ok_or_else(|| {
            perr(format!(
                "executor {ns}/{}: the session's addon names no task",
                job.name
            ))
        })?;
        let (task_ref, task) = (&first.reference, &first.task);
        let function = first.function.as_ref().ok_or_else(|| {
            perr(format!(
                "Addon {}: spec.{}Tasks[{}].function: Function \"{}\" not found; fix: install the addon catalog's Functions",
                addon.name(),
                addon.kind.word(),
                addon
                    .kind
                    .tasks(&addon.addon)
                    .iter()
                    .position(|t| t.name == task.name)
                    .unwrap_or(0),
                task.function
            ))
        })?;
        for p in &task.parameters {
            if !p.default.is_empty() {
                vars.entry(p.name.clone()).or_insert_with(|| p.default.clone());
            }
        }
        if let Some(Value::Object(params)) = &task_ref.params {
            for (k, v) in params {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                vars.insert(k.clone(), text);
            }
        }
        let mut target_obj = None;
        let mut daemon_nodes = Vec::new();
        if let Some(t) = target {
            vars.insert("targetName".into(), t.name.clone());
            vars.insert("targetKind".into(), t.kind.clone().unwrap_or_default());
            let tns = t.namespace.as_deref().unwrap_or(ns);
            vars.insert("targetNamespace".into(), tns.to_string());
            if let Some(ar) = target_resource(t) {
                target_obj = self.res.get_any(&ar, tns, &t.name).map_err(perr)?;
                if let Some(o) = target_obj.as_mut()
                    && let Some(map) = o.as_object_mut()
                {
                    map.insert("kind".into(), Value::String(ar.kind.clone()));
                }
                if t.kind.as_deref() == Some("DaemonSet")
                    && let Some(sel) = target_obj
                        .as_ref()
                        .and_then(|o| o.pointer("/spec/selector/matchLabels"))
                        .and_then(Value::as_object)
                {
                    let labels: Vec<(String, String)> = sel
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    let pairs: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let pods = self
                        .res
                        .list_any(&builtin("v1", "Pod", "pods"), Some(tns), &pairs)
                        .map_err(perr)?;
                    let mut nodes: Vec<String> = pods
                        .iter()
                        .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect();
                    nodes.sort();
                    nodes.dedup();
                    daemon_nodes = nodes;
                }
            }
        }
        let inputs = ExecutorInputs {
            job,
            owner,
            addon: &addon.info,
            task_ref,
            task,
            function,
            vars,
            target: target_obj.as_ref(),
            daemon_nodes,
            storages,
            service_account: build::EXECUTOR_SERVICE_ACCOUNT.to_string(),
            now: Timestamp::now(),
        };
        build::executor_jobs(&inputs).map_err(perr)
    }
}

impl KubePlatform {
    /// Write a status; when the phase changes, record an Event about it (Warning for the bad
    /// phases) carrying the first failed condition's message.
    fn update_status_with_events(&self, obj: Value) -> ClientResult<Value> {
        let text = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_string();
        let (kind, ns, name) = (text("/kind"), text("/metadata/namespace"), text("/metadata/name"));
        let new_phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_string);
        let uid = text("/metadata/uid");
        let cached = self
            .phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uid)
            .cloned();
        let rt = kstash_api::meta::ALL.iter().find(|rt| rt.kind == kind);
        let old_phase = match (&new_phase, cached, rt) {
            (None, _, _) => None,
            (Some(_), Some(known), _) => known,
            // First status write of this object by this process: read the stored phase once.
            (Some(_), None, Some(rt)) => self.res.get(rt, &ns, &name).ok().flatten().and_then(|o| {
                o.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
            (Some(_), None, None) => None,
        };
        let stored = self.res.update_status(obj)?;
        if new_phase.is_some() && !uid.is_empty() {
            let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
            if phases.len() >= PHASE_CACHE_MAX {
                // Bounded: sessions come and go; forgetting costs one read per object.
                phases.clear();
            }
            phases.insert(uid, new_phase.clone());
        }
        if let Some(new) = new_phase
            && old_phase.as_deref() != Some(new.as_str())
        {
            let warning = matches!(new.as_str(), "Failed" | "Invalid" | "NotReady" | "Skipped");
            let failed = stored
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == "False" || c["type"] == "BackupIncomplete")
                .filter_map(|c| c["message"].as_str())
                .find(|m| !m.is_empty())
                .map(str::to_string);
            let message = match failed {
                Some(m) => format!("phase {new}: {m}"),
                None => format!("phase {new}"),
            };
            let object = if ns.is_empty() {
                format!("{kind} {name}")
            } else {
                format!("{kind} {ns}/{name}")
            };
            self.event(&object, warning, &format!("Phase{new}"), &message);
        }
        Ok(stored)
    }
}

impl Resources for KubePlatform {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        self.res.get(rt, namespace, name)
    }
    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        self.res.list(rt, namespace, labels)
    }
    fn create(&self, obj: Value) -> ClientResult<Value> {
        self.res.create(obj)
    }
    fn update(&self, obj: Value) -> ClientResult<Value> {
        self.res.update(obj)
    }
    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        self.update_status_with_events(obj)
    }
    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        self.res.delete(rt, namespace, name)
    }
}

impl Platform for KubePlatform {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn start_job(&self, job: &JobSpec) -> Result<(), PlatformError> {
        if !self
            .executor_jobs(&job.namespace, &job.name)
            .map_err(perr)?
            .is_empty()
        {
            return Ok(());
        }
        let (jobs, foreign) = self.plan_executor_with_namespaces(job)?;
        self.ensure_executor_rbac(&job.namespace)?;
        let role = match &job.purpose {
            JobPurpose::Restore { .. } => "kubestash-restore-job",
            _ => "kubestash-backup-job",
        };
        let rolebindings = builtin("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings");
        for other in &foreign {
            self.res
                .apply(
                    &rolebindings,
                    &build::foreign_binding(&job.namespace, other, role),
                )
                .map_err(perr)?;
        }
        for j in &jobs {
            self.res.apply(&jobs_ar(), j).map_err(perr)?;
        }
        tracing::info!(executor = %format!("{}/{}", job.namespace, job.name), jobs = jobs.len(), "executor Jobs created");
        Ok(())
    }

    fn job_state(&self, namespace: &str, name: &str) -> JobState {
        match self.executor_jobs(namespace, name) {
            Ok(jobs) => group_state(&jobs),
            // An API hiccup must not read as a vanished executor: report it as still running;
            // the next reconcile looks again.
            Err(e) => {
                tracing::warn!(error = %e, "cannot read executor Jobs");
                JobState::Running
            }
        }
    }

    fn stop_job(&self, namespace: &str, name: &str, reason: &str) -> Result<(), PlatformError> {
        tracing::info!(executor = %format!("{namespace}/{name}"), reason, "stopping executor Jobs");
        self.delete_job(namespace, name)
    }

    fn delete_job(&self, namespace: &str, name: &str) -> Result<(), PlatformError> {
        for j in self.executor_jobs(namespace, name).map_err(perr)? {
            let jname = j.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            self.res.delete_any(&jobs_ar(), namespace, jname).map_err(perr)?;
        }
        Ok(())
    }

    fn ensure_schedule(&self, s: &ScheduleSpec) -> Result<Option<Timestamp>, PlatformError> {
        let parsed = Schedule::parse(&s.schedule).map_err(|e| {
            perr(format!(
                "BackupConfiguration {}/{} session {}: spec.sessions[].scheduler.schedule: {e}",
                s.namespace, s.invoker, s.session
            ))
        })?;
        let expr = s
            .schedule
            .trim()
            .strip_prefix("CRON_TZ=")
            .or_else(|| s.schedule.trim().strip_prefix("TZ="))
            .and_then(|r| r.split_once(char::is_whitespace).map(|(_, e)| e.trim()))
            .unwrap_or(s.schedule.trim());
        let bc = self
            .res
            .get(&kstash_api::meta::BACKUP_CONFIGURATION, &s.namespace, &s.invoker)
            .map_err(perr)?
            .ok_or_else(|| {
                perr(format!(
                    "BackupConfiguration {}/{} not found",
                    s.namespace, s.invoker
                ))
            })?;
        self.ensure_executor_rbac(&s.namespace)?;
        let cron = build::trigger_cronjob(&TriggerInputs {
            namespace: &s.namespace,
            invoker: &s.invoker,
            session: &s.session,
            schedule: expr,
            time_zone: parsed.time_zone(),
            suspend: s.suspend,
            scheduler: &s.scheduler,
            owner: owner_of(&bc),
            image: &self.settings.image,
            service_account: build::TRIGGER_SERVICE_ACCOUNT,
            verifies: s.verifies.as_deref(),
        });
        self.res.apply(&cronjobs_ar(), &cron).map_err(perr)?;
        Ok(if s.suspend {
            None
        } else {
            parsed.next_after(Timestamp::now())
        })
    }

    fn remove_schedules(&self, namespace: &str, invoker: &str, keep: &[String]) -> Result<(), PlatformError> {
        let crons = self
            .res
            .list_any(
                &cronjobs_ar(),
                Some(namespace),
                &[
                    ("kubestash.com/invoker-name", invoker),
                    ("kubestash.com/invoker-kind", "BackupConfiguration"),
                ],
            )
            .map_err(perr)?;
        for c in crons {
            let label = |k: &str| {
                c.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1")))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let verifies =
                (label(build::LABEL_SCHEDULE) == "verifier").then(|| label("kubestash.com/repo-name"));
            let id = kstash_controller::platform::schedule_id(label("kubestash.com/session-name"), verifies);
            if keep.contains(&id) {
                continue;
            }
            let name = c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            self.res
                .delete_any(&cronjobs_ar(), namespace, name)
                .map_err(perr)?;
        }
        Ok(())
    }

    fn target_found(&self, target: &TypedObjectReference) -> Result<Option<bool>, PlatformError> {
        let ns = target.namespace.as_deref().unwrap_or("default");
        let Some(ar) = target_resource(target) else {
            // A kind kstash does not know (e.g. a KubeDB database): look it up through discovery.
            let group = target.api_group.clone().unwrap_or_default();
            let kind = target.kind.clone().unwrap_or_default();
            let client = self.res.client().clone();
            let found = self.res.block_on(async move {
                let g = kube::discovery::group(&client, &group).await?;
                Ok::<_, kube::Error>(g.recommended_kind(&kind))
            });
            return match found {
                Ok(Some((ar, _))) => Ok(Some(
                    self.res.get_any(&ar, ns, &target.name).map_err(perr)?.is_some(),
                )),
                Ok(None) => Ok(Some(false)),
                Err(e) => {
                    tracing::debug!(error = %e, "target kind not discoverable");
                    Ok(Some(false))
                }
            };
        };
        Ok(Some(
            self.res.get_any(&ar, ns, &target.name).map_err(perr)?.is_some(),
        ))
    }

    fn hook_commands(&self) -> Arc<dyn HookCommands> {
        Arc::new(NoPodExec)
    }

    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    fn storage(&self) -> Arc<dyn StorageOps> {
        self.storage.clone()
    }

    fn pusher(&self) -> Option<&Pusher> {
        self.pusher.as_ref()
    }

    fn event(&self, object: &str, warning: bool, reason: &str, message: &str) {
        if warning {
            tracing::warn!(object, reason, message, "event");
        } else {
            tracing::info!(object, reason, message, "event");
        }
        if let Some(ev) = event_for(object, warning, reason, message, Timestamp::now())
            && let Err(e) = self.res.create_any(&builtin("v1", "Event", "events"), &ev)
        {
            tracing::debug!(error = %e, "cannot record the event");
        }
    }
}

/// A core/v1 Event about `object` ("Kind namespace/name"); `None` when it names no object.
pub fn event_for(object: &str, warning: bool, reason: &str, message: &str, now: Timestamp) -> Option<Value> {
    let (kind, rest) = object.split_once(' ')?;
    let (ns, name) = rest.split_once('/').unwrap_or(("default", rest));
    let api_version = kstash_api::meta::ALL
        .iter()
        .find(|rt| rt.kind == kind)
        .map(|rt| rt.api_version())
        .unwrap_or_default();
    let time = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    Some(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}.", build::shorten(name, 200)), "namespace": ns},
        "involvedObject": {"apiVersion": api_version, "kind": kind, "namespace": ns, "name": name},
        "reason": reason,
        "message": build::shorten(message, 1024),
        "type": if warning { "Warning" } else { "Normal" },
        "source": {"component": "kstash-operator"},
        "reportingComponent": "kstash-operator",
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    }))
}
