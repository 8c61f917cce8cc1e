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
use crate::hook_steps::{self, HOOK_POLL, HookStep};
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
    if matches!(st.phase, Some(RestorePhase::Succeeded | RestorePhase::Failed))
        && cond(&st.conditions, c::METRICS_PUSHED).is_some()
    {
        return Ok(Requeue::Idle);
    }
    let now = p.now();

    // 1–2. Validate and resolve, until the executor is started.
    if cond(&st.conditions, c::RESTORE_EXECUTOR_ENSURED).is_none() {
        let snapshot_name;
        match validate_and_resolve(p, &rs) {
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
                save(p, rs, &st)?;
                return Ok(Requeue::After(Duration::from_secs(5)));
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
                snapshot_name = util::name(&snap.metadata).to_string();
                st.dependencies = deps;
                st.total_components = total;
            }
        }
        // 3. Target.
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
        // 4. Pause backups of the same target.
        if st.paused_backups.is_empty() {
            st.paused_backups = pause_backups(p, &rs)?;
        }
        rs = save(p, rs, &st)?;

        // 5. Pre-restore hooks, each a tracked task: the worker does not wait for them.
        if cond(&st.conditions, c::PRE_RESTORE_HOOKS_SUCCEEDED).is_none() {
            let pre = rs
                .spec
                .hooks
                .as_ref()
                .map(|h| h.pre_restore.clone())
                .unwrap_or_default();
            let prefix = hook_steps::task_prefix("RestoreSession", util::uid(&rs.metadata), "pre");
            let summary = summary(&rs, "Running", "");
            let (results, step) =
                hook_steps::run_step(p, ns, &pre, &st.hooks.pre_hooks, &summary, None, &prefix);
            st.hooks.pre_hooks = results;
            let finished = hook_steps::set_stage_condition(
                &mut st.conditions,
                now,
                c::PRE_RESTORE_HOOKS_SUCCEEDED,
                &step,
                "SuccessfullyExecutedPreRestoreHooks",
                "FailedToExecutePreRestoreHooks",
            );
            rs = save(p, rs, &st)?;
            hook_steps::forget_finished(p.tasks(), &pre, &prefix);
            if !finished {
                return Ok(Requeue::After(HOOK_POLL));
            }
            if matches!(step, HookStep::Failed(_)) {
                return post_and_finish(p, rs, st);
            }
        }
        let job = JobSpec {
            name: job_name.clone(),
            namespace: ns.to_string(),
            purpose: JobPurpose::Restore {
                restore_session: name.to_string(),
                snapshot: snapshot_name,
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
            Err(e) => {
                set_cond(
                    &mut st.conditions,
                    now,
                    c::RESTORE_EXECUTOR_ENSURED,
                    false,
                    "FailedToEnsureRestoreExecutor",
                    e.to_string(),
                );
                return post_and_finish(p, rs, st);
            }
        }
        rs = save(p, rs, &st)?;
    }
    if cond(&st.conditions, c::RESTORE_EXECUTOR_ENSURED) == Some(false)
        || cond(&st.conditions, c::PRE_RESTORE_HOOKS_SUCCEEDED) == Some(false)
    {
        return post_and_finish(p, rs, st);
    }

    // 6. Wait for the components.
    let terminal =
        |x: &ComponentRestoreStatus| matches!(x.phase, Some(RestorePhase::Succeeded | RestorePhase::Failed));
    let done = st.total_components > 0
        && st.components.len() as i32 >= st.total_components
        && st.components.values().all(terminal);
    if !done {
        let observed = ExecutorWait {
            executor: "restore",
            timeout_field: "spec.restoreTimeout",
            all_final: false,
            all_reported: false,
            any_failed: st
                .components
                .values()
                .any(|x| x.phase == Some(RestorePhase::Failed)),
            job: p.job_state(ns, &job_name),
            deadline: st.restore_deadline.as_ref().map(|d| d.0),
            now,
        };
        let incomplete = match plan_executor_wait(&observed) {
            WaitStep::Done => None,
            WaitStep::Wait(after) => return Ok(Requeue::After(after)),
            WaitStep::Incomplete { stop, message } => {
                if stop {
                    p.stop_job(ns, &job_name, "deadline exceeded")?;
                }
                Some(message)
            }
        };
        if let Some(msg) = incomplete {
            // Re-read: the executor may have written its last status just before exiting.
            let fresh = p.must_get::<RestoreSession>(ns, name)?;
            st = fresh.status.clone().unwrap_or_default();
            rs = fresh;
            let done_now = st.total_components > 0
                && st.components.len() as i32 >= st.total_components
                && st.components.values().all(terminal);
            if !done_now {
                set_cond(
                    &mut st.conditions,
                    now,
                    c::RESTORE_INCOMPLETE,
                    true,
                    "RestoreExecutorTerminatedBeforeCompletion",
                    msg.clone(),
                );
                for comp in st.components.values_mut() {
                    if !terminal(comp) {
                        comp.phase = Some(RestorePhase::Failed);
                        comp.error = msg.clone();
                    }
                }
            }
        }
    }
    post_and_finish(p, rs, st)
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

fn post_and_finish(
    p: &dyn Platform,
    mut rs: RestoreSession,
    mut st: RestoreSessionStatus,
) -> Result<Requeue> {
    let ns = util::namespace(&rs.metadata).to_string();
    let now = p.now();
    let mut probe = st.clone();
    set_cond(&mut probe.conditions, now, c::METRICS_PUSHED, true, "", "");
    let ok = phase::restore_session(&probe) == RestorePhase::Succeeded;
    if cond(&st.conditions, c::POST_RESTORE_HOOKS_SUCCEEDED).is_none() {
        let post = rs
            .spec
            .hooks
            .as_ref()
            .map(|h| h.post_restore.clone())
            .unwrap_or_default();
        if !post.is_empty() {
            let err = failure_message(&probe);
            let prefix = hook_steps::task_prefix("RestoreSession", util::uid(&rs.metadata), "post");
            let sum = summary(&rs, if ok { "Succeeded" } else { "Failed" }, &err);
            let (results, step) =
                hook_steps::run_step(p, &ns, &post, &st.hooks.post_hooks, &sum, Some(ok), &prefix);
            st.hooks.post_hooks = results;
            let finished = hook_steps::set_stage_condition(
                &mut st.conditions,
                now,
                c::POST_RESTORE_HOOKS_SUCCEEDED,
                &step,
                "SuccessfullyExecutedPostRestoreHooks",
                "FailedToExecutePostRestoreHooks",
            );
            rs = save(p, rs, &st)?;
            hook_steps::forget_finished(p.tasks(), &post, &prefix);
            if !finished {
                return Ok(Requeue::After(HOOK_POLL));
            }
        }
    }
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
