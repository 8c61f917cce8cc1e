//! RestoreSession reconciler: validate → resolve the snapshot (by name, `latest`, or point in time)
//! → target check → pause backups of the same target → pre-restore hooks → executor job → wait
//! (deadline, vanished executor) → post-restore hooks → resume backups → final phase, metrics.

use std::time::Duration;

use jiff::Timestamp;
use kstash_api::addons::Addon;
use kstash_api::client::ResourcesExt;
use kstash_api::common::{ResourceFoundStatus, TypedObjectReference};
use kstash_api::core::{
    BackupConfiguration, ComponentRestoreStatus, RestorePhase, RestoreSession, RestoreSessionStatus,
};
use kstash_api::duration::parse_go_duration;
use kstash_api::meta;
use kstash_api::phase::{self, conditions as c};
use kstash_api::storage::{Repository, Snapshot, SnapshotPhase};

use crate::backup_session::{ExecutorWait, WaitStep, plan_executor_wait};
use crate::hook_steps::{self, HOOK_POLL};
use crate::hooks::Summary;
use crate::platform::{JobPurpose, JobSpec, JobState, Platform};
use crate::util::{self, Requeue, Result, cond, set_cond};

/// Pick the snapshot a data source names (pure): a Snapshot name, `latest` (the newest Succeeded
/// snapshot of the repository by snapshotTime), or with `pitr` the newest Succeeded snapshot taken
/// at or before `targetTime` (strictly before when `exclusive`).
pub fn resolve_snapshot<'a>(
    snapshots: &'a [Snapshot],
    repository: &str,
    snapshot: &str,
    pitr: Option<(Timestamp, bool)>,
) -> std::result::Result<&'a Snapshot, String> {
    let time = |s: &Snapshot| {
        s.status
            .as_ref()
            .and_then(|x| x.snapshot_time.as_ref().map(|t| t.0))
    };
    let succeeded = |s: &&Snapshot| {
        s.status.as_ref().and_then(|x| x.phase) == Some(SnapshotPhase::Succeeded)
            && (repository.is_empty() || s.spec.repository == repository)
    };
    if let Some((target, exclusive)) = pitr {
        return snapshots
            .iter()
            .filter(succeeded)
            .filter(|s| time(s).is_some_and(|t| if exclusive { t < target } else { t <= target }))
            .max_by_key(|s| (time(s), s.metadata.name.clone()))
            .ok_or_else(|| {
                format!(
                    "no Succeeded snapshot of Repository {repository} taken {} {target}",
                    if exclusive { "before" } else { "at or before" }
                )
            });
    }
    if snapshot == "latest" || snapshot.is_empty() {
        return snapshots
            .iter()
            .filter(succeeded)
            .max_by_key(|s| (time(s), s.metadata.name.clone()))
            .ok_or_else(|| {
                format!(
                    "Repository {repository} has no Succeeded snapshot yet (spec.dataSource.snapshot: latest)"
                )
            });
    }
    snapshots
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(snapshot))
        .ok_or_else(|| {
            format!(
                "Snapshot \"{snapshot}\" (spec.dataSource.snapshot) not found{}; fix: use `latest` or a name from `kstash snapshots`",
                if repository.is_empty() { String::new() } else { format!(" in Repository {repository}") }
            )
        })
}

/// Reconcile one RestoreSession.
pub fn reconcile_restore_session(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut rs) = p.get_as::<RestoreSession>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let job_name = format!("restore-{name}");
    if util::is_deleting(&rs.metadata) {
        if util::has_finalizer(&rs.metadata) {
            if p.job_state(ns, &job_name) == JobState::Running {
                p.stop_job(ns, &job_name, "RestoreSession deleted")?;
            }
            p.delete_job(ns, &job_name)?;
            let st = rs.status.clone().unwrap_or_default();
            resume_backups(p, &st)?;
            util::remove_finalizer(&mut rs.metadata);
            p.update_as(&rs)?;
        }
        return Ok(Requeue::Idle);
    }
    if util::add_finalizer(&mut rs.metadata) {
        rs = p.update_as(&rs)?;
    }
    let mut st = rs.status.clone().unwrap_or_default();
    let mut facts = RestoreFacts {
        has_post_hooks: rs.spec.hooks.as_ref().is_some_and(|h| !h.post_restore.is_empty()),
        prepared: false,
        executor_done: false,
    };
    // The Snapshot resolved by this reconcile's Prepare step (the executor restores it).
    let mut snapshot_name = String::new();

    // Plan → apply, one step at a time, until a step waits or the session is settled.
    loop {
        let now = p.now();
        let step = next_restore_step(&st, &facts);
        tracing::debug!(?step, "restore session step");
        match step {
            RestoreStep::Settled => return Ok(Requeue::Idle),
            RestoreStep::Prepare => match prepare(p, &rs, &mut st, now)? {
                Ok(snapshot) => {
                    snapshot_name = snapshot;
                    facts.prepared = true;
                    rs = save(p, rs, &st)?;
                }
                Err(()) => {
                    save(p, rs, &st)?;
                    return Ok(Requeue::After(Duration::from_secs(5)));
                }
            },
            RestoreStep::PreHooks => {
                let pre = rs
                    .spec
                    .hooks
                    .as_ref()
                    .map(|h| h.pre_restore.clone())
                    .unwrap_or_default();
                let stage = hook_steps::Stage {
                    hooks: &pre,
                    task_prefix: hook_steps::task_prefix("RestoreSession", util::uid(&rs.metadata), "pre"),
                    condition: c::PRE_RESTORE_HOOKS_SUCCEEDED,
                    ok_reason: "SuccessfullyExecutedPreRestoreHooks",
                    failed_reason: "FailedToExecutePreRestoreHooks",
                    outcome: None,
                };
                let summary = summary(&rs, "Running", "");
                let finished = hook_steps::drive(
                    p,
                    ns,
                    &stage,
                    &summary,
                    &mut st.hooks.pre_hooks,
                    &mut st.conditions,
                    now,
                );
                rs = save(p, rs, &st)?;
                hook_steps::forget_finished(p.tasks(), &stage, &st.hooks.pre_hooks);
                if !finished {
                    return Ok(Requeue::After(HOOK_POLL));
                }
            }
            RestoreStep::Executor => {
                let job = JobSpec {
                    name: job_name.clone(),
                    namespace: ns.to_string(),
                    purpose: JobPurpose::Restore {
                        restore_session: name.to_string(),
                        snapshot: snapshot_name.clone(),
                    },
                    labels: util::labels(&[
                        (util::LABEL_INVOKER_KIND, "RestoreSession"),
                        (util::LABEL_INVOKER_NAME, name),
                    ]),
                    deadline: st.restore_deadline.as_ref().map(|t| t.0),
                };
                match p.start_job(&job) {
                    Ok(()) => set_cond(
                        &mut st.conditions,
                        now,
                        c::RESTORE_EXECUTOR_ENSURED,
                        true,
                        "SuccessfullyEnsuredRestoreExecutor",
                        "",
                    ),
                    Err(e) => set_cond(
                        &mut st.conditions,
                        now,
                        c::RESTORE_EXECUTOR_ENSURED,
                        false,
                        "FailedToEnsureRestoreExecutor",
                        e.to_string(),
                    ),
                }
                rs = save(p, rs, &st)?;
            }
            RestoreStep::Wait => {
                if let Some(requeue) = wait_for_executor(p, &mut rs, &mut st, &job_name, now)? {
                    return Ok(requeue);
                }
                facts.executor_done = true;
            }
            RestoreStep::PostHooks => {
                let mut probe = st.clone();
                set_cond(&mut probe.conditions, now, c::METRICS_PUSHED, true, "", "");
                let ok = phase::restore_session(&probe) == RestorePhase::Succeeded;
                let post = rs
                    .spec
                    .hooks
                    .as_ref()
                    .map(|h| h.post_restore.clone())
                    .unwrap_or_default();
                let err = failure_message(&probe);
                let stage = hook_steps::Stage {
                    hooks: &post,
                    task_prefix: hook_steps::task_prefix("RestoreSession", util::uid(&rs.metadata), "post"),
                    condition: c::POST_RESTORE_HOOKS_SUCCEEDED,
                    ok_reason: "SuccessfullyExecutedPostRestoreHooks",
                    failed_reason: "FailedToExecutePostRestoreHooks",
                    outcome: Some(ok),
                };
                let sum = summary(&rs, if ok { "Succeeded" } else { "Failed" }, &err);
                let finished = hook_steps::drive(
                    p,
                    ns,
                    &stage,
                    &sum,
                    &mut st.hooks.post_hooks,
                    &mut st.conditions,
                    now,
                );
                rs = save(p, rs, &st)?;
                hook_steps::forget_finished(p.tasks(), &stage, &st.hooks.post_hooks);
                if !finished {
                    return Ok(Requeue::After(HOOK_POLL));
                }
            }
            RestoreStep::Finish => return finish(p, rs, st),
        }
    }
}

/// What the restore plan knows besides the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFacts {
    pub has_post_hooks: bool,
    /// This reconcile validated the session and resolved its Snapshot (the executor needs it).
    pub prepared: bool,
    /// This reconcile found every component final (or the executor gone).
    pub executor_done: bool,
}

/// The steps of a RestoreSession, in order; each records its outcome as a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStep {
    /// Validate, resolve the Snapshot, check the target, set the deadline, pause backups of
    /// the target; repeated until the executor starts (an Invalid session is re-validated).
    Prepare,
    PreHooks,
    Executor,
    /// Wait for the components (deadline, vanished or failed executor, a failed component).
    Wait,
    PostHooks,
    /// Resume backups, final phase, event, metrics.
    Finish,
    /// Finished: nothing left to do.
    Settled,
}

/// The next step of a restore (pure): from its recorded conditions and the facts.
pub fn next_restore_step(st: &RestoreSessionStatus, facts: &RestoreFacts) -> RestoreStep {
    let done = |t: &str| cond(&st.conditions, t);
    if matches!(st.phase, Some(RestorePhase::Succeeded | RestorePhase::Failed))
        && done(c::METRICS_PUSHED).is_some()
    {
        return RestoreStep::Settled;
    }
    let pre = done(c::PRE_RESTORE_HOOKS_SUCCEEDED);
    let executor = done(c::RESTORE_EXECUTOR_ENSURED);
    if executor.is_none() && pre != Some(false) {
        if !facts.prepared {
            return RestoreStep::Prepare;
        }
        if pre.is_none() {
            return RestoreStep::PreHooks;
        }
        return RestoreStep::Executor;
    }
    if executor == Some(true) && !facts.executor_done {
        return RestoreStep::Wait;
    }
    if facts.has_post_hooks && done(c::POST_RESTORE_HOOKS_SUCCEEDED).is_none() {
        return RestoreStep::PostHooks;
    }
    RestoreStep::Finish
}

/// Validate and resolve (the Snapshot's name, or `Err` after recording Invalid), the target, the
/// deadline, Running, and the paused backups of the target.
fn prepare(
    p: &dyn Platform,
    rs: &RestoreSession,
    st: &mut RestoreSessionStatus,
    now: jiff::Timestamp,
) -> Result<std::result::Result<String, ()>> {
    let snapshot_name = match validate_and_resolve(p, rs) {
        Err(msg) => {
            set_cond(
                &mut st.conditions,
                now,
                c::VALIDATION_PASSED,
                false,
                "ResourceValidationFailed",
                msg,
            );
            st.phase = Some(RestorePhase::Invalid);
            return Ok(Err(()));
        }
        Ok((snap, deps, total)) => {
            set_cond(
                &mut st.conditions,
                now,
                c::VALIDATION_PASSED,
                true,
                "ResourceValidationPassed",
                "",
            );
            st.dependencies = deps;
            st.total_components = total;
            util::name(&snap.metadata).to_string()
        }
    };
    if let Some(t) = &rs.spec.target {
        match p.target_found(t)? {
            Some(found) => {
                st.target_found = Some(found);
                set_cond(
                    &mut st.conditions,
                    now,
                    c::RESTORE_TARGET_FOUND,
                    found,
                    if found {
                        "TargetAvailable"
                    } else {
                        "TargetNotFound"
                    },
                    if found {
                        String::new()
                    } else {
                        format!("{} {} not found", t.kind.as_deref().unwrap_or(""), t.name)
                    },
                );
            }
            None => st.target_found = None,
        }
    }
    if let Some(t) = &rs.spec.restore_timeout
        && st.restore_deadline.is_none()
        && let Ok(d) = parse_go_duration(t)
    {
        st.restore_deadline = Some(util::time(util::add(now, d)));
    }
    st.phase = Some(RestorePhase::Running);
    if st.paused_backups.is_empty() {
        st.paused_backups = pause_backups(p, rs)?;
    }
    Ok(Ok(snapshot_name))
}

/// Wait for the components; `None` once every one is final (or marked failed because the
/// executor will not report them).
fn wait_for_executor(
    p: &dyn Platform,
    rs: &mut RestoreSession,
    st: &mut RestoreSessionStatus,
    job_name: &str,
    now: jiff::Timestamp,
) -> Result<Option<Requeue>> {
    let (ns, name) = (
        util::namespace(&rs.metadata).to_string(),
        util::name(&rs.metadata).to_string(),
    );
    let terminal =
        |x: &ComponentRestoreStatus| matches!(x.phase, Some(RestorePhase::Succeeded | RestorePhase::Failed));
    let all_done = |st: &RestoreSessionStatus| {
        st.total_components > 0
            && st.components.len() as i32 >= st.total_components
            && st.components.values().all(terminal)
    };
    if all_done(st) {
        return Ok(None);
    }
    let observed = ExecutorWait {
        executor: "restore",
        timeout_field: "spec.restoreTimeout",
        all_final: false,
        all_reported: false,
        any_failed: st
            .components
            .values()
            .any(|x| x.phase == Some(RestorePhase::Failed)),
        job: p.job_state(&ns, job_name),
        deadline: st.restore_deadline.as_ref().map(|d| d.0),
        now,
    };
    let message = match plan_executor_wait(&observed) {
        WaitStep::Done => return Ok(None),
        WaitStep::Wait(after) => return Ok(Some(Requeue::After(after))),
        WaitStep::Incomplete { stop, message } => {
            if stop {
                p.stop_job(&ns, job_name, "deadline exceeded")?;
            }
            message
        }
    };
    // Re-read: the executor may have written its last status just before exiting.
    let fresh = p.must_get::<RestoreSession>(&ns, &name)?;
    *st = fresh.status.clone().unwrap_or_default();
    *rs = fresh;
    if !all_done(st) {
        set_cond(
            &mut st.conditions,
            now,
            c::RESTORE_INCOMPLETE,
            true,
            "RestoreExecutorTerminatedBeforeCompletion",
            message.clone(),
        );
        for comp in st.components.values_mut() {
            if !terminal(comp) {
                comp.phase = Some(RestorePhase::Failed);
                comp.error = message.clone();
            }
        }
    }
    Ok(None)
}

fn validate_and_resolve(
    p: &dyn Platform,
    rs: &RestoreSession,
) -> std::result::Result<(Snapshot, Vec<ResourceFoundStatus>, i32), String> {
    let ns = util::namespace(&rs.metadata);
    let ds = rs
        .spec
        .data_source
        .as_ref()
        .ok_or("spec.dataSource: missing; fix: set dataSource.repository and dataSource.snapshot")?;
    let dns = if ds.namespace.is_empty() {
        ns
    } else {
        ds.namespace.as_str()
    };
    let addon = rs
        .spec
        .addon
        .as_ref()
        .ok_or("spec.addon: missing; fix: name the Addon and its restore task")?;
    let mut deps = Vec::new();
    let found_addon = p.get_as::<Addon>("", &addon.name).map_err(|e| e.to_string())?;
    deps.push(ResourceFoundStatus {
        reference: TypedObjectReference {
            api_group: Some(meta::ADDONS_GROUP.into()),
            kind: Some("Addon".into()),
            name: addon.name.clone(),
            namespace: None,
        },
        found: Some(found_addon.is_some()),
    });
    let Some(found_addon) = found_addon else {
        return Err(format!(
            "spec.addon.name: Addon \"{}\" not found; fix: install it or use workload-addon",
            addon.name
        ));
    };
    for (i, t) in addon.tasks.iter().enumerate() {
        if !found_addon.spec.restore_tasks.iter().any(|x| x.name == t.name) {
            return Err(format!(
                "spec.addon.tasks[{i}].name: Addon \"{}\" has no restore task \"{}\"; fix: use one of: {}",
                addon.name,
                t.name,
                found_addon
                    .spec
                    .restore_tasks
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !ds.repository.is_empty()
        && p.get_as::<Repository>(dns, &ds.repository)
            .map_err(|e| e.to_string())?
            .is_none()
    {
        return Err(format!(
            "spec.dataSource.repository: Repository {dns}/{} not found",
            ds.repository
        ));
    }
    let labels: Vec<(&str, &str)> = if ds.repository.is_empty() {
        vec![]
    } else {
        vec![(util::LABEL_REPO_NAME, ds.repository.as_str())]
    };
    let snapshots = p
        .list_as::<Snapshot>(Some(dns), &labels)
        .map_err(|e| e.to_string())?;
    let pitr = ds
        .pitr
        .as_ref()
        .and_then(|x| x.target_time.as_ref().map(|t| (t.0, x.exclusive)));
    let snap = resolve_snapshot(&snapshots, &ds.repository, &ds.snapshot, pitr)?.clone();
    deps.push(ResourceFoundStatus {
        reference: TypedObjectReference {
            api_group: Some(meta::STORAGE_GROUP.into()),
            kind: Some("Snapshot".into()),
            name: util::name(&snap.metadata).to_string(),
            namespace: Some(dns.to_string()),
        },
        found: Some(true),
    });
    let comps: Vec<String> = snap
        .status
        .as_ref()
        .map(|s| s.components.keys().cloned().collect())
        .unwrap_or_default();
    for want in &ds.components {
        if !comps.contains(want) {
            return Err(format!(
                "spec.dataSource.components: Snapshot {} has no component \"{want}\"; it has: {}",
                util::name(&snap.metadata),
                comps.join(", ")
            ));
        }
    }
    let total = if ds.components.is_empty() {
        comps.len()
    } else {
        ds.components.len()
    } as i32;
    Ok((snap, deps, total))
}

/// Pause the BackupConfigurations (in the restore's namespace) whose target is the restore target.
fn pause_backups(p: &dyn Platform, rs: &RestoreSession) -> Result<Vec<TypedObjectReference>> {
    let Some(target) = &rs.spec.target else {
        return Ok(Vec::new());
    };
    let ns = util::namespace(&rs.metadata);
    let same = |t: &TypedObjectReference| {
        t.kind == target.kind
            && t.name == target.name
            && t.namespace.as_deref().unwrap_or(ns) == target.namespace.as_deref().unwrap_or(ns)
    };
    let mut paused = Vec::new();
    for mut bc in p.list_as::<BackupConfiguration>(None, &[])? {
        if bc.spec.paused || !bc.spec.target.as_ref().is_some_and(same) {
            continue;
        }
        bc.spec.paused = true;
        p.update_as(&bc)?;
        tracing::info!(backupconfiguration = %util::name(&bc.metadata), "paused during restore");
        paused.push(TypedObjectReference {
            api_group: Some(meta::CORE_GROUP.into()),
            kind: Some("BackupConfiguration".into()),
            name: util::name(&bc.metadata).to_string(),
            namespace: Some(util::namespace(&bc.metadata).to_string()),
        });
    }
    Ok(paused)
}

fn resume_backups(p: &dyn Platform, st: &RestoreSessionStatus) -> Result<()> {
    for r in &st.paused_backups {
        let ns = r.namespace.as_deref().unwrap_or("");
        if let Some(mut bc) = p.get_as::<BackupConfiguration>(ns, &r.name)?
            && bc.spec.paused
        {
            bc.spec.paused = false;
            p.update_as(&bc)?;
            tracing::info!(backupconfiguration = %r.name, "resumed after restore");
        }
    }
    Ok(())
}

fn summary(rs: &RestoreSession, phase: &str, error: &str) -> Summary {
    crate::backup_session::session_summary(
        &rs.metadata,
        "RestoreSession",
        &rs.metadata,
        rs.spec.target.clone(),
        phase,
        error,
    )
}

fn save(p: &dyn Platform, mut rs: RestoreSession, st: &RestoreSessionStatus) -> Result<RestoreSession> {
    if rs.status.as_ref() == Some(st) {
        return Ok(rs);
    }
    rs.status = Some(st.clone());
    Ok(p.update_status_as(&rs)?)
}

/// The final step: resume backups, MetricsPushed, phase, duration, event, metrics.
fn finish(p: &dyn Platform, rs: RestoreSession, mut st: RestoreSessionStatus) -> Result<Requeue> {
    let ns = util::namespace(&rs.metadata).to_string();
    let now = p.now();
    resume_backups(p, &st)?;
    set_cond(
        &mut st.conditions,
        now,
        c::METRICS_PUSHED,
        true,
        "SuccessfullyPushedMetrics",
        "",
    );
    let ph = phase::restore_session(&st);
    st.phase = Some(ph);
    st.duration = util::go_duration(util::age(&rs.metadata, now));
    let rs = save(p, rs, &st)?;
    let name = util::name(&rs.metadata);
    p.event(
        &format!("RestoreSession {ns}/{name}"),
        ph != RestorePhase::Succeeded,
        &format!("{ph:?}"),
        &failure_message(&st),
    );
    if let Some(pusher) = p.pusher() {
        let body = crate::metrics::restore_session_metrics(&rs);
        let object = format!("RestoreSession {ns}/{name}");
        let grouping = [("namespace", ns.as_str()), ("invoker_name", name)];
        if let Err(e) = pusher.enqueue(&object, "kstash-restore", &grouping, body) {
            p.event(&object, true, "MetricsPushFailed", &e.to_string());
        }
    }
    Ok(Requeue::Idle)
}

/// The first failure of a restore: a False condition's message, a component error.
pub fn failure_message(st: &RestoreSessionStatus) -> String {
    for cnd in &st.conditions {
        let bad = match cnd.type_.as_str() {
            c::RESTORE_INCOMPLETE => cnd.status == kstash_api::common::ConditionStatus::True,
            _ => cnd.status == kstash_api::common::ConditionStatus::False,
        };
        if bad && let Some(m) = &cnd.message {
            return m.clone();
        }
    }
    st.components
        .iter()
        .find(|(_, x)| !x.error.is_empty())
        .map(|(k, x)| format!("component {k}: {}", x.error))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
