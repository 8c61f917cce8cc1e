//! BackupConfiguration reconciler: validation beyond admission (addon, tasks, cron), target check,
//! backend status, one Repository per session repository, one schedule per session, the instant
//! first backup, `paused`, and per-repository deletion policy on delete. Also `trigger`, which
//! creates a BackupSession the way the CronJob, the scheduler and `kstash trigger` do.

use kstash_api::addons::Addon;
use kstash_api::client::ResourcesExt;
use kstash_api::common::{
    ObjectReference, ResourceFoundStatus, TypedLocalObjectReference, TypedObjectReference,
};
use kstash_api::core::{
    BackendStatus, BackupConfigDeletionPolicy, BackupConfiguration, BackupConfigurationStatus,
    BackupInvokerPhase, BackupSession, BackupSessionSpec, RepoStatus, RetentionPolicyStatus, SchedulerSpec,
    Session, SessionStatus, StorageStatus,
};
use kstash_api::meta;
use kstash_api::phase::{self, conditions as c};
use kstash_api::schedule::Schedule;
use kstash_api::storage::{
    BackupStorage, BackupStoragePhase, DeletionPolicy, Repository, RepositorySpec, RetentionPolicy,
};
use kstash_api::verification::{BackupVerifier, describe_target, same_target};
use std::time::Duration;

use jiff::Timestamp;

use crate::platform::{Platform, ScheduleSpec, TriggerTemplate};
use crate::util::{self, ReconcileError, Requeue, Result, cond, set_cond};

/// Problems a BackupConfiguration has beyond what admission checks (pure).
pub fn validate(bc: &BackupConfiguration, addons: &[Addon]) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, s) in bc.spec.sessions.iter().enumerate() {
        match &s.scheduler {
            None => errs.push(format!(
                "spec.sessions[{i}].scheduler: missing; fix: set scheduler.schedule, e.g. '*/5 * * * *'"
            )),
            Some(sch) => {
                if let Err(e) = Schedule::parse(&sch.schedule) {
                    errs.push(format!("spec.sessions[{i}].scheduler.schedule: {e}"));
                }
            }
        }
        let Some(addon) = &s.addon else {
            errs.push(format!(
                "spec.sessions[{i}].addon: missing; fix: name an Addon such as workload-addon"
            ));
            continue;
        };
        match addons.iter().find(|a| util::name(&a.metadata) == addon.name) {
            None => errs.push(format!(
                "spec.sessions[{i}].addon.name: Addon \"{}\" not found; fix: install it (kstash server installs the catalog) or use one of: {}",
                addon.name,
                addons.iter().map(|a| util::name(&a.metadata)).collect::<Vec<_>>().join(", ")
            )),
            Some(a) => {
                for (j, t) in addon.tasks.iter().enumerate() {
                    if !a.spec.backup_tasks.iter().any(|x| x.name == t.name) {
                        errs.push(format!(
                            "spec.sessions[{i}].addon.tasks[{j}].name: Addon \"{}\" has no backup task \"{}\"; fix: use one of: {}",
                            addon.name,
                            t.name,
                            a.spec.backup_tasks.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
    }
    errs
}

/// The storage reference of the backend named `backend` (empty: the first backend).
pub fn backend_storage(bc: &BackupConfiguration, backend: &str) -> Option<ObjectReference> {
    let ns = util::namespace(&bc.metadata);
    let b = if backend.is_empty() {
        bc.spec.backends.first()
    } else {
        bc.spec.backends.iter().find(|b| b.name == backend)
    }?;
    b.storage_ref.clone().map(|mut r| {
        if r.namespace.as_deref().unwrap_or("").is_empty() {
            r.namespace = Some(ns.to_string());
        }
        r
    })
}

/// The desired Repository of one session repository (pure).
pub fn desired_repository(
    bc: &BackupConfiguration,
    info: &kstash_api::core::RepositoryInfo,
) -> Option<Repository> {
    let ns = util::namespace(&bc.metadata).to_string();
    let storage_ref = backend_storage(bc, &info.backend)?;
    let mut enc = info.encryption_secret.clone();
    if let Some(e) = enc.as_mut()
        && e.namespace.as_deref().unwrap_or("").is_empty()
    {
        e.namespace = Some(ns.clone());
    }
    let mut repo = Repository::new(
        &info.name,
        RepositorySpec {
            app_ref: bc.spec.target.clone().unwrap_or_default(),
            storage_ref,
            path: info.directory.clone(),
            deletion_policy: Some(match info.deletion_policy {
                Some(BackupConfigDeletionPolicy::WipeOut) => DeletionPolicy::WipeOut,
                _ => DeletionPolicy::Delete,
            }),
            encryption_secret: enc,
            paused: false,
        },
    );
    repo.metadata.namespace = Some(ns.clone());
    repo.metadata.labels = Some(util::labels(&[
        (util::LABEL_MANAGED_BY, util::MANAGED_BY),
        (util::LABEL_INVOKER_KIND, "BackupConfiguration"),
        (util::LABEL_INVOKER_NAME, util::name(&bc.metadata)),
        (util::LABEL_INVOKER_NAMESPACE, &ns),
    ]));
    Some(repo)
}

/// Reconcile one BackupConfiguration.
pub fn reconcile_backup_configuration(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut bc) = p.get_as::<BackupConfiguration>(ns, name)? else {
        p.remove_schedules(ns, name, &[])?;
        return Ok(Requeue::Idle);
    };
    if util::is_deleting(&bc.metadata) {
        return delete_backup_configuration(p, bc);
    }
    if util::add_finalizer(&mut bc.metadata) {
        bc = p.update_as(&bc)?;
    }
    let now = p.now();
    let mut status = bc.status.clone().unwrap_or_default();
    let mut requeue = Requeue::Idle;

    // Validation.
    let addons = p.list_as::<Addon>(None, &[])?;
    let errs = validate(&bc, &addons);
    status.dependencies = bc
        .spec
        .sessions
        .iter()
        .filter_map(|s| s.addon.as_ref())
        .map(|a| ResourceFoundStatus {
            reference: TypedObjectReference {
                api_group: Some(meta::ADDONS_GROUP.to_string()),
                kind: Some("Addon".into()),
                name: a.name.clone(),
                namespace: None,
            },
            found: Some(addons.iter().any(|x| util::name(&x.metadata) == a.name)),
        })
        .collect();
    if !errs.is_empty() {
        set_cond(
            &mut status.conditions,
            now,
            c::VALIDATION_PASSED,
            false,
            "ResourceValidationFailed",
            errs.join("; "),
        );
        status.phase = Some(BackupInvokerPhase::Invalid);
        p.remove_schedules(ns, name, &[])?;
        write_status(p, bc, status)?;
        return Ok(Requeue::After(Duration::from_secs(30)));
    }
    set_cond(
        &mut status.conditions,
        now,
        c::VALIDATION_PASSED,
        true,
        "ResourceValidationPassed",
        "",
    );

    // Target.
    status.target_found = match &bc.spec.target {
        None => Some(true),
        Some(t) => p.target_found(t)?,
    };

    // Backends.
    status.backends = bc
        .spec
        .backends
        .iter()
        .map(|b| backend_status(p, ns, b))
        .collect::<Result<Vec<_>>>()?;

    // Repositories.
    let mut repo_statuses = Vec::new();
    for s in &bc.spec.sessions {
        for info in &s.repositories {
            repo_statuses.push(ensure_repository(p, &bc, info)?);
        }
    }
    status.repositories = repo_statuses;

    // Schedules.
    let mut sessions = Vec::new();
    for s in &bc.spec.sessions {
        let old = status.sessions.iter().find(|x| x.name == s.name).cloned();
        let mut st = old.unwrap_or(SessionStatus {
            name: s.name.clone(),
            ..Default::default()
        });
        let sch = s.scheduler.clone().unwrap_or_default();
        let spec = ScheduleSpec {
            namespace: ns.to_string(),
            invoker: name.to_string(),
            session: s.name.clone(),
            schedule: sch.schedule.clone(),
            suspend: bc.spec.paused || sch.suspend == Some(true),
            scheduler: sch.clone(),
            trigger: TriggerTemplate {
                invoker_uid: util::uid(&bc.metadata).to_string(),
                backup_timeout: s.backup_timeout.clone(),
                retry_left: retry_budget(&bc, &s.name),
            },
            verifies: None,
        };
        match p.ensure_schedule(&spec) {
            Ok(next) => {
                st.next_schedule = next.map(|t| t.to_string()).unwrap_or_default();
                set_cond(
                    &mut st.conditions,
                    now,
                    c::SCHEDULER_ENSURED,
                    true,
                    "SchedulerEnsured",
                    "",
                );
            }
            Err(e) => {
                set_cond(
                    &mut st.conditions,
                    now,
                    c::SCHEDULER_ENSURED,
                    false,
                    "SchedulerNotEnsured",
                    e.to_string(),
                );
                requeue = Requeue::After(Duration::from_secs(10));
            }
        }
        sessions.push(st);
    }
    let mut keep: Vec<String> = bc.spec.sessions.iter().map(|s| s.name.clone()).collect();
    keep.extend(ensure_verifier_schedules(
        p,
        &bc,
        &mut status.repositories,
        &mut requeue,
    )?);
    p.remove_schedules(ns, name, &keep)?;
    status.sessions = sessions;
    let phase = phase::backup_configuration(&bc.spec, &status);
    status.phase = Some(phase);
    if phase != BackupInvokerPhase::Ready {
        requeue = requeue.min(Requeue::After(Duration::from_secs(3)));
    }

    // Instant first backup per session once Ready (not while paused), as soon as the session's
    // Repositories are initialised: a session started earlier would fail ensuring its Snapshots.
    if phase == BackupInvokerPhase::Ready && !bc.spec.paused {
        let repos_ready = |s: &Session| {
            s.repositories.iter().all(|r| {
                status
                    .repositories
                    .iter()
                    .any(|x| x.name == r.name && x.phase == Some(kstash_api::storage::RepositoryPhase::Ready))
            })
        };
        let untriggered: Vec<Session> = bc
            .spec
            .sessions
            .iter()
            .filter(|s| {
                status
                    .sessions
                    .iter()
                    .find(|x| x.name == s.name)
                    .is_some_and(|x| cond(&x.conditions, c::INITIAL_BACKUP_TRIGGERED).is_none())
            })
            .cloned()
            .collect();
        let (sessions_to_trigger, waiting): (Vec<Session>, Vec<Session>) =
            untriggered.into_iter().partition(repos_ready);
        if !waiting.is_empty() {
            // A Repository status change wakes this configuration too; this is the fallback.
            requeue = requeue.min(Requeue::After(Duration::from_secs(2)));
        }
        // Write the status first so the session sees the configuration Ready.
        let bc2 = write_status(p, bc.clone(), status.clone())?;
        for s in sessions_to_trigger {
            let res = trigger(p, &bc2, &s.name, retry_budget(&bc2, &s.name));
            if let Some(st) = status.sessions.iter_mut().find(|x| x.name == s.name) {
                match res {
                    Ok(bs) => set_cond(
                        &mut st.conditions,
                        now,
                        c::INITIAL_BACKUP_TRIGGERED,
                        true,
                        "SuccessfullyTriggeredInitialBackup",
                        format!("BackupSession {}", util::name(&bs.metadata)),
                    ),
                    Err(e) => set_cond(
                        &mut st.conditions,
                        now,
                        c::INITIAL_BACKUP_TRIGGERED,
                        false,
                        "FailedToTriggerInitialBackup",
                        e.to_string(),
                    ),
                }
            }
        }
        let fresh = p.must_get::<BackupConfiguration>(ns, name)?;
        write_status(p, fresh, status)?;
        return Ok(requeue);
    }
    write_status(p, bc, status)?;
    Ok(requeue)
}

fn write_status(
    p: &dyn Platform,
    mut bc: BackupConfiguration,
    status: BackupConfigurationStatus,
) -> Result<BackupConfiguration> {
    if bc.status.as_ref() == Some(&status) {
        return Ok(bc);
    }
    bc.status = Some(status);
    Ok(p.update_status_as(&bc)?)
}

fn backend_status(
    p: &dyn Platform,
    ns: &str,
    b: &kstash_api::core::BackendReference,
) -> Result<BackendStatus> {
    let mut st = BackendStatus {
        name: b.name.clone(),
        ..Default::default()
    };
    let mut ready = true;
    if let Some(r) = &b.storage_ref {
        let sns = util::ns_or(&r.namespace, ns);
        // Lean: only its phase and conditions are needed, not the Repositories its status lists.
        let bs = p.get_lean_as::<BackupStorage>(sns, &r.name)?;
        let (phase, reason) = match &bs {
            None => (None, format!("BackupStorage {sns}/{} not found", r.name)),
            Some(bs) => {
                let phase = bs.status.as_ref().and_then(|s| s.phase);
                let reason = if phase == Some(BackupStoragePhase::Ready) {
                    String::new()
                } else {
                    let why = bs
                        .status
                        .as_ref()
                        .and_then(|s| {
                            s.conditions
                                .iter()
                                .find(|c| c.status != kstash_api::common::ConditionStatus::True)
                        })
                        .and_then(|c| c.message.clone())
                        .unwrap_or_else(|| "not initialized yet".into());
                    format!("BackupStorage {sns}/{} is not Ready: {why}", r.name)
                };
                (phase, reason)
            }
        };
        ready &= phase == Some(BackupStoragePhase::Ready);
        st.storage = Some(StorageStatus {
            r#ref: ObjectReference {
                name: r.name.clone(),
                namespace: Some(sns.to_string()),
            },
            phase,
            reason,
        });
    } else {
        ready = false;
    }
    if let Some(r) = &b.retention_policy {
        let rns = util::ns_or(&r.namespace, ns);
        let found = p.get_as::<RetentionPolicy>(rns, &r.name)?.is_some();
        ready &= found;
        st.retention_policy = Some(RetentionPolicyStatus {
            r#ref: ObjectReference {
                name: r.name.clone(),
                namespace: Some(rns.to_string()),
            },
            found: Some(found),
            reason: if found {
                String::new()
            } else {
                format!("RetentionPolicy {rns}/{} not found", r.name)
            },
        });
    }
    st.ready = Some(ready);
    Ok(st)
}

fn ensure_repository(
    p: &dyn Platform,
    bc: &BackupConfiguration,
    info: &kstash_api::core::RepositoryInfo,
) -> Result<RepoStatus> {
    let ns = util::namespace(&bc.metadata);
    let mut st = RepoStatus {
        name: info.name.clone(),
        ..Default::default()
    };
    let Some(desired) = desired_repository(bc, info) else {
        st.reason = format!(
            "backend \"{}\" of repository {} has no storageRef",
            info.backend, info.name
        );
        return Ok(st);
    };
    match p.get_as::<Repository>(ns, &info.name)? {
        None => {
            let created = p.create_as(&desired)?;
            st.phase = created.status.and_then(|s| s.phase);
            st.reason = "created".into();
        }
        Some(existing) if util::is_deleting(&existing.metadata) => {
            // A Repository of a deleted configuration of the same name (e.g. a regenerated
            // auto-backup configuration) is still being cleaned up; a backup into it now would
            // lose its Snapshot with it. Not Ready until it is gone and recreated.
            st.reason = format!(
                "Repository {ns}/{} is being deleted; it is recreated once its cleanup is done",
                info.name
            );
        }
        Some(mut existing) => {
            if existing.spec.storage_ref != desired.spec.storage_ref
                || existing.spec.path != desired.spec.path
            {
                st.reason = format!(
                    "Repository {ns}/{} already exists with another storage or path; fix: rename the repository in spec.sessions[].repositories",
                    info.name
                );
                return Ok(st);
            }
            if existing.spec.deletion_policy != desired.spec.deletion_policy
                || existing.spec.encryption_secret != desired.spec.encryption_secret
                || existing.spec.app_ref != desired.spec.app_ref
            {
                existing.spec.deletion_policy = desired.spec.deletion_policy;
                existing.spec.encryption_secret = desired.spec.encryption_secret.clone();
                existing.spec.app_ref = desired.spec.app_ref.clone();
                existing = p.update_as(&existing)?;
            }
            st.phase = existing.status.as_ref().and_then(|s| s.phase);
            if st.phase != Some(kstash_api::storage::RepositoryPhase::Ready) {
                st.reason = existing
                    .status
                    .as_ref()
                    .and_then(|s| phase::find(&s.conditions, c::REPOSITORY_INITIALIZED))
                    .and_then(|c| c.message.clone())
                    .unwrap_or_default();
            }
        }
    }
    Ok(st)
}

fn delete_backup_configuration(p: &dyn Platform, mut bc: BackupConfiguration) -> Result<Requeue> {
    let (ns, name) = (
        util::namespace(&bc.metadata).to_string(),
        util::name(&bc.metadata).to_string(),
    );
    p.remove_schedules(&ns, &name, &[])?;
    if !util::has_finalizer(&bc.metadata) {
        return Ok(Requeue::Idle);
    }
    for s in &bc.spec.sessions {
        for info in &s.repositories {
            if info.deletion_policy == Some(BackupConfigDeletionPolicy::Retain) {
                continue;
            }
            if let Some(mut repo) = p.get_as::<Repository>(&ns, &info.name)? {
                let want = if info.deletion_policy == Some(BackupConfigDeletionPolicy::WipeOut) {
                    DeletionPolicy::WipeOut
                } else {
                    DeletionPolicy::Delete
                };
                if repo.spec.deletion_policy != Some(want) {
                    repo.spec.deletion_policy = Some(want);
                    p.update_as(&repo)?;
                }
                p.delete(&meta::REPOSITORY, &ns, &info.name)?;
            }
        }
    }
    util::remove_finalizer(&mut bc.metadata);
    p.update_as(&bc)?;
    Ok(Requeue::Idle)
}

/// The retries a scheduled BackupSession of `session` starts with (`retryConfig.maxRetry`, 0
/// without a retry config).
pub fn retry_budget(bc: &BackupConfiguration, session: &str) -> i32 {
    bc.spec
        .sessions
        .iter()
        .find(|s| s.name == session)
        .and_then(|s| s.retry_config.as_ref())
        .and_then(|r| r.max_retry)
        .unwrap_or(0)
}

/// The BackupSession a trigger of `session` creates at `now` (named
/// `<configuration>-<session>-<unix seconds>`), with KubeStash's labels, its owner reference and
/// the retry budget `retry_left`. Pure: creating it is the caller's.
pub fn new_backup_session(
    bc: &BackupConfiguration,
    session: &str,
    retry_left: i32,
    now: Timestamp,
) -> Result<BackupSession> {
    let ns = util::namespace(&bc.metadata);
    let bc_name = util::name(&bc.metadata);
    let s = bc
        .spec
        .sessions
        .iter()
        .find(|s| s.name == session)
        .ok_or_else(|| {
            ReconcileError::Invalid(format!(
                "BackupConfiguration {ns}/{bc_name} has no session \"{session}\"; sessions: {}",
                bc.spec
                    .sessions
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let template = TriggerTemplate {
        invoker_uid: util::uid(&bc.metadata).to_string(),
        backup_timeout: s.backup_timeout.clone(),
        retry_left,
    };
    Ok(backup_session_from(ns, bc_name, session, &template, now))
}

/// The BackupSession of configuration `ns/invoker`, session `session`, triggered at `now`, from
/// the parts of the configuration it needs (what a schedule carries). Pure.
pub fn backup_session_from(
    ns: &str,
    invoker: &str,
    session: &str,
    template: &TriggerTemplate,
    now: Timestamp,
) -> BackupSession {
    let name = kstash_api::names::name_with_prefix_and_suffix(
        &format!("{invoker}-{session}"),
        &now.as_second().to_string(),
    );
    let mut bs = BackupSession::new(
        &name,
        BackupSessionSpec {
            invoker: Some(TypedLocalObjectReference {
                api_group: Some(meta::CORE_GROUP.to_string()),
                kind: "BackupConfiguration".into(),
                name: invoker.to_string(),
            }),
            session: session.to_string(),
            retry_left: template.retry_left,
            backup_timeout: template.backup_timeout.clone(),
        },
    );
    bs.metadata.namespace = Some(ns.to_string());
    bs.metadata.labels = Some(util::labels(&[
        (util::LABEL_MANAGED_BY, util::MANAGED_BY),
        (util::LABEL_INVOKER_KIND, "BackupConfiguration"),
        (util::LABEL_INVOKER_NAME, invoker),
        (util::LABEL_INVOKER_NAMESPACE, ns),
        (util::LABEL_SESSION_NAME, session),
    ]));
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(invoker.to_string()),
        uid: Some(template.invoker_uid.clone()),
        ..Default::default()
    };
    bs.metadata.owner_references = Some(vec![util::owner_ref(
        meta::BACKUP_CONFIGURATION.api_version(),
        "BackupConfiguration",
        &owner,
    )]);
    bs
}

/// One schedule per repository whose entry names a BackupVerifier with a schedule (a
/// `trigger-verifier-…` CronJob on Kubernetes); each repository's status says whether its
/// verification is configured, or why not. Returns the schedule ids kept.
fn ensure_verifier_schedules(
    p: &dyn Platform,
    bc: &BackupConfiguration,
    repo_statuses: &mut [RepoStatus],
    requeue: &mut Requeue,
) -> Result<Vec<String>> {
    let ns = util::namespace(&bc.metadata);
    let name = util::name(&bc.metadata);
    let mut ids = Vec::new();
    for s in &bc.spec.sessions {
        for info in &s.repositories {
            let Some(vref) = info.backup_verifier.as_ref().filter(|v| !v.name.is_empty()) else {
                continue;
            };
            let vns = vref.namespace.as_deref().unwrap_or(ns);
            let st = repo_statuses.iter_mut().find(|r| r.name == info.name);
            let (configured, reason) = match p.get_as::<BackupVerifier>(vns, &vref.name)? {
                None => (false, format!("BackupVerifier {vns}/{} not found", vref.name)),
                Some(v) => match (v.spec.cron(), v.spec.target()) {
                    (_, Some(t))
                        if bc
                            .spec
                            .target
                            .as_ref()
                            .is_some_and(|own| same_target(own, ns, t, vns)) =>
                    {
                        (
                            false,
                            format!(
                                "BackupVerifier {vns}/{} restores into {}, this configuration's own target; fix: give the verifier a separate restoreOption.target",
                                vref.name,
                                describe_target(t, vns)
                            ),
                        )
                    }
                    (None, _) => (
                        false,
                        format!(
                            "BackupVerifier {vns}/{} has no spec.scheduler.schedule; verify with `kstash verify {name} -n {ns} --repository {}`",
                            vref.name, info.name
                        ),
                    ),
                    (Some(cron), _) => {
                        let scheduler = v.spec.scheduler.clone().unwrap_or_else(|| SchedulerSpec {
                            schedule: cron.to_string(),
                            ..Default::default()
                        });
                        let spec = ScheduleSpec {
                            namespace: ns.to_string(),
                            invoker: name.to_string(),
                            session: s.name.clone(),
                            schedule: cron.to_string(),
                            suspend: bc.spec.paused || scheduler.suspend == Some(true),
                            scheduler,
                            trigger: TriggerTemplate {
                                invoker_uid: util::uid(&bc.metadata).to_string(),
                                backup_timeout: None,
                                retry_left: v
                                    .spec
                                    .retry_config
                                    .as_ref()
                                    .and_then(|r| r.max_retry)
                                    .unwrap_or(0),
                            },
                            verifies: Some(info.name.clone()),
                        };
                        match p.ensure_schedule(&spec) {
                            Ok(_) => {
                                ids.push(spec.id());
                                (true, String::new())
                            }
                            Err(e) => {
                                *requeue = requeue.min(Requeue::After(Duration::from_secs(10)));
                                (false, e.to_string())
                            }
                        }
                    }
                },
            };
            if let Some(st) = st {
                st.verification_configured = configured;
                if !configured {
                    st.reason = reason;
                }
            }
        }
    }
    Ok(ids)
}

/// Create a BackupSession of `session` now; when the second's name is taken (two triggers in
/// one second), the next free second is used.
pub fn trigger(
    p: &dyn Platform,
    bc: &BackupConfiguration,
    session: &str,
    retry_left: i32,
) -> Result<BackupSession> {
    let ns = util::namespace(&bc.metadata);
    let bc_name = util::name(&bc.metadata);
    let mut at = p.now();
    for _ in 0..120 {
        let bs = new_backup_session(bc, session, retry_left, at)?;
        match p.create_as(&bs) {
            Ok(created) => {
                tracing::info!(backupsession = %format!("{ns}/{}", util::name(&created.metadata)), "triggered backup");
                return Ok(created);
            }
            Err(e) if e.is_conflict() => at = util::add(at, Duration::from_secs(1)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReconcileError::NameExhausted(format!(
        "could not find a free BackupSession name for {ns}/{bc_name}"
    )))
}
