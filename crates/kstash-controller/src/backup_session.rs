//! BackupSession reconciler: an explicit state machine whose steps are recorded as conditions, so
//! a restarted daemon resumes where it stopped — skip check → deadline → pre-backup hooks →
//! Snapshots → executor job → wait (deadline, vanished executor) → post-backup hooks → retention →
//! history cleanup → final phase, metrics → retry.

use std::time::Duration;

use jiff::Timestamp;
use kstash_api::ErrorCategory;
use kstash_api::client::{ClientError, ResourcesExt};
use kstash_api::common::{ObjectReference, TypedObjectReference};
use kstash_api::core::{
    BackupConfiguration, BackupInvokerPhase, BackupSession, BackupSessionPhase, BackupSessionStatus,
    RetentionPolicyApplyPhase, RetentionPolicyApplyStatus, SessionSnapshotStatus,
};
use kstash_api::duration::parse_go_duration;
use kstash_api::meta;
use kstash_api::phase::{self, conditions as c};
use kstash_api::resolve::{self, ResolveError};
use kstash_api::storage::{
    BackupType, DeletionPolicy, Repository, RetentionPolicy, Snapshot, SnapshotPhase, SnapshotSpec,
    SnapshotStatus,
};

use crate::hook_steps::{self, HOOK_POLL};
use crate::hooks::{Summary, SummaryRef, SummaryStatus};
use crate::platform::{JobPurpose, JobSpec, JobState, Platform};
use crate::retention;
use crate::util::{self, Requeue, Result, cond, set_cond};

const POLL: Duration = Duration::from_secs(1);
/// How long a new session waits for its Repositories to become Ready before failing.
const REPOSITORY_WAIT: Duration = Duration::from_secs(60);

/// Why Snapshots could not be created; `waiting` when it may resolve by itself; `retry` when the
/// resource store refused a write for a moment (a conflict with another writer, such as the
/// Snapshot's own reconcile, or a store out of reach): the reconcile is retried, the session
/// does not fail.
struct EnsureError {
    message: String,
    waiting: bool,
    retry: Option<ClientError>,
}

impl From<String> for EnsureError {
    fn from(message: String) -> Self {
        EnsureError {
            message,
            waiting: false,
            retry: None,
        }
    }
}

impl From<ClientError> for EnsureError {
    fn from(e: ClientError) -> Self {
        match e.category() {
            ErrorCategory::Conflict | ErrorCategory::Transient => EnsureError {
                message: e.to_string(),
                waiting: false,
                retry: Some(e),
            },
            _ => EnsureError::from(e.to_string()),
        }
    }
}

/// Snapshot name: `<repo>-<session name without trailing -digits>-<digits>` (63-char rule).
pub fn snapshot_name(repo: &str, backup_session: &str) -> String {
    let (stem, digits) = match backup_session.rsplit_once('-') {
        Some((stem, d)) if !d.is_empty() && d.chars().all(|x| x.is_ascii_digit()) => (stem, d),
        _ => (backup_session, ""),
    };
    kstash_api::names::name_with_prefix_middle_suffix(repo, stem, digits)
}

/// Reconcile one BackupSession.
pub fn reconcile_backup_session(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut bs) = p.get_as::<BackupSession>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    if util::is_deleting(&bs.metadata) {
        if util::has_finalizer(&bs.metadata) {
            if p.job_state(ns, name) == JobState::Running {
                p.stop_job(ns, name, "BackupSession deleted")?;
            }
            p.delete_job(ns, name)?;
            util::remove_finalizer(&mut bs.metadata);
            p.update_as(&bs)?;
        }
        return Ok(Requeue::Idle);
    }
    if util::add_finalizer(&mut bs.metadata) {
        bs = p.update_as(&bs)?;
    }
    let mut st = bs.status.clone().unwrap_or_default();

    // Resolve: the configuration and its session entry, once per reconcile.
    let invoker = bs
        .spec
        .invoker
        .as_ref()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let (bc, session) = configuration_of(p, &bs)?;
    let mut facts = Facts {
        resolved: session.is_some(),
        has_post_hooks: session
            .as_ref()
            .and_then(|s| s.hooks.as_ref())
            .is_some_and(|h| !h.post_backup.is_empty()),
        executor_done: false,
    };

    // Plan → apply, one step at a time, until a step waits or the session is settled.
    loop {
        let now = p.now();
        let step = next_step(&st, &facts);
        tracing::debug!(?step, "backup session step");
        match step {
            Step::Retry => return retry_if_needed(p, &bs),
            Step::Prepare => bs = prepare(p, bs, &mut st, bc.as_ref(), now)?,
            Step::Unresolved => {
                let (reason, message) = match &bc {
                    None => (
                        "InvokerNotFound",
                        format!("BackupConfiguration {ns}/{invoker} does not exist"),
                    ),
                    Some(_) => (
                        "SessionNotFound",
                        format!(
                            "BackupConfiguration {ns}/{invoker} has no session \"{}\"",
                            bs.spec.session
                        ),
                    ),
                };
                set_cond(
                    &mut st.conditions,
                    now,
                    c::SNAPSHOTS_ENSURED,
                    false,
                    reason,
                    message,
                );
            }
            Step::Finish => return finish(p, bs, st, bc.as_ref()),
            // The steps below run only for a resolved session (the plan says so).
            _ => {
                let (Some(bc), Some(session)) = (bc.as_ref(), session.as_ref()) else {
                    return finish(p, bs, st, bc.as_ref());
                };
                let outcome = match step {
                    Step::PreHooks => pre_hooks(p, &mut bs, &mut st, bc, session, now)?,
                    Step::Snapshots => snapshots(p, &mut bs, &mut st, bc, session, now)?,
                    Step::Executor => executor(p, &mut bs, &mut st, &invoker, now)?,
                    Step::Wait => {
                        let outcome = wait_for_executor(p, &mut bs, &mut st, now)?;
                        facts.executor_done = outcome.is_none();
                        outcome
                    }
                    Step::PostHooks => post_hooks(p, &mut bs, &mut st, bc, session, now)?,
                    Step::Retention => {
                        st.retention_policies = apply_retention(p, bc, session, &st, now)?;
                        set_cond(
                            &mut st.conditions,
                            now,
                            c::RETENTION_POLICY_EXECUTOR_ENSURED,
                            true,
                            "SuccessfullyEnsuredRetentionPolicyExecutor",
                            "",
                        );
                        bs = save(p, bs, &st)?;
                        None
                    }
                    Step::History => {
                        match clean_history(p, &bs, session.session_history_limit.unwrap_or(1)) {
                            Ok(()) => set_cond(
                                &mut st.conditions,
                                now,
                                c::SESSION_HISTORY_CLEANED,
                                true,
                                "SuccessfullyCleanedSessionHistory",
                                "",
                            ),
                            Err(e) => set_cond(
                                &mut st.conditions,
                                now,
                                c::SESSION_HISTORY_CLEANED,
                                false,
                                "FailedToCleanSessionHistory",
                                e,
                            ),
                        }
                        None
                    }
                    Step::Retry | Step::Prepare | Step::Unresolved | Step::Finish => None,
                };
                if let Some(requeue) = outcome {
                    return Ok(requeue);
                }
            }
        }
    }
}

/// The session's BackupConfiguration and its entry for the session, through the one lookup in
/// [`resolve`]; a missing or unusable invoker is `None` (the plan records it), a store failure is
/// the reconcile's error.
fn configuration_of(
    p: &dyn Platform,
    bs: &BackupSession,
) -> Result<(Option<BackupConfiguration>, Option<kstash_api::core::Session>)> {
    let bc = match resolve::session_configuration(p, bs) {
        Ok(bc) => bc,
        Err(ResolveError::Client(e)) => return Err(e.into()),
        Err(_) => None,
    };
    let entry = bc
        .as_ref()
        .and_then(|bc| resolve::session_entry(bc, &bs.spec.session).ok())
        .map(|(_, s)| s.clone());
    Ok((bc, entry))
}

/// What the plan knows besides the status: whether the session resolved, whether it has post
/// hooks, and whether the executor-wait step found every Snapshot final in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub resolved: bool,
    pub has_post_hooks: bool,
    pub executor_done: bool,
}

/// The steps of a BackupSession, in order. Each records its outcome as a condition, so a
/// restarted daemon resumes at the step it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Skip check (configuration not Ready, another session running), deadline, Running.
    Prepare,
    /// The configuration or its session entry does not exist: record it, then finish.
    Unresolved,
    PreHooks,
    /// Create one Snapshot per repository (waiting for Repositories still initialising).
    Snapshots,
    /// Start the executor job.
    Executor,
    /// Wait for the executor's Snapshots (deadline, vanished or failed executor).
    Wait,
    PostHooks,
    Retention,
    History,
    /// Final phase, duration, event, metrics push, then retry if failed.
    Finish,
    /// Completed: create the retry session when one is due.
    Retry,
}

/// The next step of a session (pure): from its recorded conditions and the facts.
pub fn next_step(st: &BackupSessionStatus, facts: &Facts) -> Step {
    let phase_now = st.phase.unwrap_or(BackupSessionPhase::Pending);
    let done = |t: &str| cond(&st.conditions, t);
    if phase::backup_session_completed(phase_now) && done(c::METRICS_PUSHED).is_some() {
        return Step::Retry;
    }
    if st.phase.is_none() || phase_now == BackupSessionPhase::Pending && done(c::BACKUP_SKIPPED).is_none() {
        return Step::Prepare;
    }
    if done(c::BACKUP_SKIPPED) == Some(true) {
        return Step::Finish;
    }
    if !facts.resolved {
        return match done(c::SNAPSHOTS_ENSURED) {
            None => Step::Unresolved,
            Some(_) => Step::Finish,
        };
    }
    let pre = done(c::PRE_BACKUP_HOOKS_SUCCEEDED);
    if pre.is_none() {
        return Step::PreHooks;
    }
    let failed_early = pre == Some(false)
        || done(c::SNAPSHOTS_ENSURED) == Some(false)
        || done(c::BACKUP_EXECUTOR_ENSURED) == Some(false);
    if !failed_early {
        if done(c::SNAPSHOTS_ENSURED).is_none() {
            return Step::Snapshots;
        }
        if done(c::BACKUP_EXECUTOR_ENSURED).is_none() {
            return Step::Executor;
        }
        if !facts.executor_done {
            return Step::Wait;
        }
    }
    if facts.has_post_hooks && done(c::POST_BACKUP_HOOKS_SUCCEEDED).is_none() {
        return Step::PostHooks;
    }
    if done(c::RETENTION_POLICY_EXECUTOR_ENSURED).is_none() && !st.snapshots.is_empty() {
        return Step::Retention;
    }
    if done(c::SESSION_HISTORY_CLEANED).is_none() {
        return Step::History;
    }
    Step::Finish
}

/// Skip check, then deadline and Running; a skipped session gets `BackupSkipped` True.
fn prepare(
    p: &dyn Platform,
    bs: BackupSession,
    st: &mut BackupSessionStatus,
    bc: Option<&BackupConfiguration>,
    now: Timestamp,
) -> Result<BackupSession> {
    if let Some(msg) = skip_reason(p, &bs, bc)? {
        set_cond(
            &mut st.conditions,
            now,
            c::BACKUP_SKIPPED,
            true,
            "PreRequisitesNotSatisfied",
            msg,
        );
        // Leave Pending: the plan finishes a skipped session.
        st.phase = Some(BackupSessionPhase::Pending);
        return Ok(bs);
    }
    set_cond(
        &mut st.conditions,
        now,
        c::BACKUP_SKIPPED,
        false,
        "PreRequisitesSatisfied",
        "",
    );
    if let Some(t) = &bs.spec.backup_timeout
        && let Ok(d) = parse_go_duration(t)
    {
        let created = bs
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now);
        st.backup_deadline = Some(util::time(util::add(created, d)));
    }
    st.phase = Some(BackupSessionPhase::Running);
    save(p, bs, st)
}

/// Pre-backup hooks, each a tracked task: the worker does not wait for them.
fn pre_hooks(
    p: &dyn Platform,
    bs: &mut BackupSession,
    st: &mut BackupSessionStatus,
    bc: &BackupConfiguration,
    session: &kstash_api::core::Session,
    now: Timestamp,
) -> Result<Option<Requeue>> {
    let ns = util::namespace(&bs.metadata).to_string();
    let pre = session
        .hooks
        .as_ref()
        .map(|h| h.pre_backup.clone())
        .unwrap_or_default();
    let stage = hook_steps::Stage {
        hooks: &pre,
        task_prefix: hook_steps::task_prefix("BackupSession", util::uid(&bs.metadata), "pre"),
        condition: c::PRE_BACKUP_HOOKS_SUCCEEDED,
        ok_reason: "SuccessfullyExecutedPreBackupHooks",
        failed_reason: "FailedToExecutePreBackupHooks",
        outcome: None,
    };
    let summary = summary(bs, bc, "Running", "");
    let finished = hook_steps::drive(
        p,
        &ns,
        &stage,
        &summary,
        &mut st.hooks.pre_hooks,
        &mut st.conditions,
        now,
    );
    *bs = save(p, bs.clone(), st)?;
    hook_steps::forget_finished(p.tasks(), &stage, &st.hooks.pre_hooks);
    Ok((!finished).then_some(Requeue::After(HOOK_POLL)))
}

/// One Snapshot per repository; waits a little for Repositories still being initialised.
fn snapshots(
    p: &dyn Platform,
    bs: &mut BackupSession,
    st: &mut BackupSessionStatus,
    bc: &BackupConfiguration,
    session: &kstash_api::core::Session,
    now: Timestamp,
) -> Result<Option<Requeue>> {
    match ensure_snapshots(p, bs, bc, session, now) {
        Ok(snaps) => {
            st.total_snapshots = Some(snaps.len() as i32);
            st.snapshots = snaps;
            set_cond(
                &mut st.conditions,
                now,
                c::SNAPSHOTS_ENSURED,
                true,
                "SuccessfullyEnsuredSnapshots",
                "",
            );
        }
        Err(EnsureError { retry: Some(e), .. }) => return Err(e.into()),
        Err(e) if e.waiting && util::age(&bs.metadata, now) < REPOSITORY_WAIT => {
            // A Repository still being initialised (e.g. a session triggered right after the
            // configuration was applied): wait a little instead of failing.
            tracing::info!(reason = %e.message, "waiting for the session's repositories");
            return Ok(Some(Requeue::After(POLL)));
        }
        Err(e) => set_cond(
            &mut st.conditions,
            now,
            c::SNAPSHOTS_ENSURED,
            false,
            "FailedToEnsureSnapshots",
            e.message,
        ),
    }
    *bs = save(p, bs.clone(), st)?;
    Ok(None)
}

/// Start the executor job (a no-op when it exists).
fn executor(
    p: &dyn Platform,
    bs: &mut BackupSession,
    st: &mut BackupSessionStatus,
    invoker: &str,
    now: Timestamp,
) -> Result<Option<Requeue>> {
    let job = JobSpec {
        name: util::name(&bs.metadata).to_string(),
        namespace: util::namespace(&bs.metadata).to_string(),
        purpose: JobPurpose::Backup {
            backup_session: util::name(&bs.metadata).to_string(),
        },
        labels: util::labels(&[
            (util::LABEL_INVOKER_NAME, invoker),
            (util::LABEL_SESSION_NAME, &bs.spec.session),
        ]),
        deadline: st.backup_deadline.as_ref().map(|t| t.0),
    };
    match p.start_job(&job) {
        Ok(()) => set_cond(
            &mut st.conditions,
            now,
            c::BACKUP_EXECUTOR_ENSURED,
            true,
            "SuccessfullyEnsuredBackupExecutor",
            "",
        ),
        Err(e) => set_cond(
            &mut st.conditions,
            now,
            c::BACKUP_EXECUTOR_ENSURED,
            false,
            "FailedToEnsureBackupExecutor",
            e.to_string(),
        ),
    }
    *bs = save(p, bs.clone(), st)?;
    Ok(None)
}

/// Wait for the Snapshots; `None` once every one is final. One deleted underneath the session
/// can never complete: it counts as Failed, so the session ends instead of running forever.
fn wait_for_executor(
    p: &dyn Platform,
    bs: &mut BackupSession,
    st: &mut BackupSessionStatus,
    now: Timestamp,
) -> Result<Option<Requeue>> {
    let (ns, name) = (
        util::namespace(&bs.metadata).to_string(),
        util::name(&bs.metadata).to_string(),
    );
    let snapshots = session_snapshots(p, &ns, st)?;
    let deleted: Vec<String> = st
        .snapshots
        .iter()
        .filter(|s| !snapshots.iter().any(|x| util::name(&x.metadata) == s.name))
        .map(|s| s.name.clone())
        .collect();
    refresh_snapshot_status(st, &snapshots);
    let all_terminal = !st.snapshots.is_empty() && snapshots.iter().all(snapshot_terminal);
    if all_terminal && !deleted.is_empty() {
        let message = format!(
            "Snapshot {} deleted before the backup completed",
            deleted.join(", ")
        );
        p.event(
            &format!("BackupSession {ns}/{name}"),
            true,
            "SnapshotDeleted",
            &message,
        );
        if p.job_state(&ns, &name) == JobState::Running {
            p.stop_job(&ns, &name, &message)?;
        }
    }
    let observed = ExecutorWait {
        executor: "backup",
        timeout_field: "spec.backupTimeout",
        all_final: all_terminal,
        all_reported: !snapshots.is_empty() && snapshots.iter().all(components_reported),
        any_failed: snapshots.iter().any(component_failed),
        job: p.job_state(&ns, &name),
        deadline: st.backup_deadline.as_ref().map(|d| d.0),
        now,
    };
    let outcome = match plan_executor_wait(&observed) {
        WaitStep::Done => None,
        WaitStep::Wait(after) => Some(Requeue::After(after)),
        WaitStep::Incomplete { stop, message } => {
            if stop {
                p.stop_job(&ns, &name, "deadline exceeded")?;
            }
            mark_incomplete(p, &snapshots, now, &message)?;
            Some(Requeue::After(FINALISE_POLL))
        }
    };
    *bs = save(p, bs.clone(), st)?;
    Ok(outcome)
}

/// Post-backup hooks (by executionPolicy against the outcome so far), each a tracked task.
fn post_hooks(
    p: &dyn Platform,
    bs: &mut BackupSession,
    st: &mut BackupSessionStatus,
    bc: &BackupConfiguration,
    session: &kstash_api::core::Session,
    now: Timestamp,
) -> Result<Option<Requeue>> {
    let ns = util::namespace(&bs.metadata).to_string();
    if !st.snapshots.is_empty() {
        let snapshots = session_snapshots(p, &ns, st)?;
        refresh_snapshot_status(st, &snapshots);
    }
    // Outcome so far, as the phase would be computed with the final step done.
    let mut probe = st.clone();
    set_cond(&mut probe.conditions, now, c::METRICS_PUSHED, true, "", "");
    let succeeded_so_far = phase::backup_session(&probe) == BackupSessionPhase::Succeeded;
    let post = session
        .hooks
        .as_ref()
        .map(|h| h.post_backup.clone())
        .unwrap_or_default();
    let error = phase::backup_session_failure(&probe).unwrap_or_default();
    let sum = summary(
        bs,
        bc,
        if succeeded_so_far { "Succeeded" } else { "Failed" },
        &error,
    );
    let stage = hook_steps::Stage {
        hooks: &post,
        task_prefix: hook_steps::task_prefix("BackupSession", util::uid(&bs.metadata), "post"),
        condition: c::POST_BACKUP_HOOKS_SUCCEEDED,
        ok_reason: "SuccessfullyExecutedPostBackupHooks",
        failed_reason: "FailedToExecutePostBackupHooks",
        outcome: Some(succeeded_so_far),
    };
    let finished = hook_steps::drive(
        p,
        &ns,
        &stage,
        &sum,
        &mut st.hooks.post_hooks,
        &mut st.conditions,
        now,
    );
    *bs = save(p, bs.clone(), st)?;
    hook_steps::forget_finished(p.tasks(), &stage, &st.hooks.post_hooks);
    Ok((!finished).then_some(Requeue::After(HOOK_POLL)))
}

/// Whether every component of the Snapshot reported (or it was marked incomplete): what is left
/// is the Snapshot reconciler's finalising.
fn components_reported(s: &Snapshot) -> bool {
    s.status.as_ref().is_some_and(|x| {
        cond(&x.conditions, c::BACKUP_INCOMPLETE) == Some(true)
            || matches!(
                phase::snapshot_components(x),
                SnapshotPhase::Succeeded | SnapshotPhase::Failed
            )
    })
}

/// Whether a component of the Snapshot failed.
fn component_failed(s: &Snapshot) -> bool {
    s.status.as_ref().is_some_and(|x| {
        x.components
            .values()
            .any(|c| c.phase == Some(kstash_api::storage::ComponentPhase::Failed))
    })
}

/// How often a running (or queued) executor is looked at. Its status writes wake the session at
/// once; the poll only notices an executor that died or exited without writing, so it can be
/// slow — thousands of sessions queued for an executor slot must not poll every second.
const EXECUTOR_POLL: Duration = Duration::from_secs(5);

/// How soon a session whose Snapshots are being finalised looks again.
const FINALISE_POLL: Duration = Duration::from_millis(200);

/// What the executor-wait step observed: the session's Snapshots, its executor and its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorWait {
    /// `backup` or `restore`, for messages.
    pub executor: &'static str,
    /// The session's timeout field, for messages (`spec.backupTimeout`).
    pub timeout_field: &'static str,
    /// Every Snapshot (restore: component) is final (phase set and metadata uploaded).
    pub all_final: bool,
    /// Every Snapshot's components reported, not yet finalised (restore: never).
    pub all_reported: bool,
    /// A component failed: the Snapshot (restore: the session) is Failed already, so the
    /// executor's other components are stopped rather than waited for (KubeStash 2026).
    pub any_failed: bool,
    pub job: JobState,
    pub deadline: Option<Timestamp>,
    pub now: Timestamp,
}

/// The executor-wait step's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitStep {
    /// Every Snapshot is final: go on to the post-backup steps.
    Done,
    /// Look again after this long.
    Wait(Duration),
    /// The executor will not report the rest: mark the unfinished Snapshots incomplete with the
    /// message (stopping the executor first when `stop`).
    Incomplete { stop: bool, message: String },
}

/// Decide the executor-wait step (pure).
pub fn plan_executor_wait(o: &ExecutorWait) -> WaitStep {
    if o.all_final {
        return WaitStep::Done;
    }
    if o.all_reported {
        return WaitStep::Wait(FINALISE_POLL);
    }
    let deadline_passed = o.deadline.is_some_and(|d| o.now >= d);
    let incomplete = |stop: bool, message: &str| WaitStep::Incomplete {
        stop,
        message: message.to_string(),
    };
    match &o.job {
        JobState::Running if o.any_failed => incomplete(
            true,
            &format!("stopped: another component failed, so the {} failed", o.executor),
        ),
        JobState::Running if deadline_passed => incomplete(
            true,
            &format!("deadline exceeded or signal terminated ({})", o.timeout_field),
        ),
        JobState::Running => {
            let until_deadline = o
                .deadline
                .map(|d| util::elapsed(o.now, d).max(Duration::from_millis(100)))
                .unwrap_or(EXECUTOR_POLL);
            WaitStep::Wait(until_deadline.min(EXECUTOR_POLL))
        }
        JobState::Succeeded => incomplete(
            false,
            &format!("{} executor exited without reporting every component", o.executor),
        ),
        JobState::Failed(msg) => incomplete(false, &format!("{} executor failed: {msg}", o.executor)),
        JobState::Missing => incomplete(
            false,
            &format!(
                "{} executor terminated before completion (process gone)",
                o.executor
            ),
        ),
    }
}

fn snapshot_terminal(s: &Snapshot) -> bool {
    let st = s.status.as_ref();
    matches!(
        st.and_then(|x| x.phase),
        Some(SnapshotPhase::Succeeded | SnapshotPhase::Failed)
    ) && st.is_some_and(|x| phase::find(&x.conditions, c::SNAPSHOT_METADATA_UPLOADED).is_some())
}

fn session_snapshots(p: &dyn Platform, ns: &str, st: &BackupSessionStatus) -> Result<Vec<Snapshot>> {
    let mut out = Vec::new();
    for s in &st.snapshots {
        if let Some(snap) = p.get_as::<Snapshot>(ns, &s.name)? {
            out.push(snap);
        }
    }
    Ok(out)
}

/// Copy the Snapshots' phases into the session's list; one that no longer exists is Failed.
fn refresh_snapshot_status(st: &mut BackupSessionStatus, snapshots: &[Snapshot]) {
    for s in st.snapshots.iter_mut() {
        match snapshots.iter().find(|x| util::name(&x.metadata) == s.name) {
            Some(snap) => s.phase = snap.status.as_ref().and_then(|x| x.phase),
            None => s.phase = Some(SnapshotPhase::Failed),
        }
    }
}

fn mark_incomplete(p: &dyn Platform, snapshots: &[Snapshot], now: Timestamp, msg: &str) -> Result<()> {
    for snap in snapshots {
        if snapshot_terminal(snap) {
            continue;
        }
        let mut snap = snap.clone();
        let mut status = snap.status.clone().unwrap_or_default();
        set_cond(
            &mut status.conditions,
            now,
            c::BACKUP_INCOMPLETE,
            true,
            "BackupExecutorTerminatedBeforeCompletion",
            msg,
        );
        for comp in status.components.values_mut() {
            if !matches!(
                comp.phase,
                Some(
                    kstash_api::storage::ComponentPhase::Succeeded
                        | kstash_api::storage::ComponentPhase::Failed
                )
            ) {
                comp.phase = Some(kstash_api::storage::ComponentPhase::Failed);
                if comp.error.is_empty() {
                    comp.error = msg.to_string();
                }
            }
        }
        status.phase = Some(phase::snapshot(&status));
        snap.status = Some(status);
        p.update_status_as(&snap)?;
    }
    Ok(())
}

fn save(p: &dyn Platform, mut bs: BackupSession, st: &BackupSessionStatus) -> Result<BackupSession> {
    if bs.status.as_ref() == Some(st) {
        return Ok(bs);
    }
    bs.status = Some(st.clone());
    Ok(p.update_status_as(&bs)?)
}

/// Why a new session must be skipped: its configuration is not Ready, or another session of the
/// same invoker and session is still running.
fn skip_reason(
    p: &dyn Platform,
    bs: &BackupSession,
    bc: Option<&BackupConfiguration>,
) -> Result<Option<String>> {
    let ns = util::namespace(&bs.metadata);
    let Some(bc) = bc else {
        let inv = bs.spec.invoker.as_ref().map(|i| i.name.as_str()).unwrap_or("");
        return Ok(Some(format!("BackupConfiguration {ns}/{inv} does not exist")));
    };
    let bc_phase = bc.status.as_ref().and_then(|s| s.phase);
    if bc_phase != Some(BackupInvokerPhase::Ready) {
        let why = bc
            .status
            .as_ref()
            .map(not_ready_reason)
            .unwrap_or_else(|| "it has not been reconciled yet".into());
        return Ok(Some(format!(
            "BackupConfiguration {ns}/{} is not Ready ({}): {why}",
            util::name(&bc.metadata),
            bc_phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "no phase".into())
        )));
    }
    let others = p.list_as::<BackupSession>(
        Some(ns),
        &[
            (util::LABEL_INVOKER_NAME, util::name(&bc.metadata)),
            (util::LABEL_SESSION_NAME, &bs.spec.session),
        ],
    )?;
    for o in others {
        if util::name(&o.metadata) == util::name(&bs.metadata) {
            continue;
        }
        if o.status.as_ref().and_then(|s| s.phase) == Some(BackupSessionPhase::Running) {
            return Ok(Some(format!(
                "another BackupSession of the same session is running: {}",
                util::name(&o.metadata)
            )));
        }
    }
    Ok(None)
}

/// The first unmet readiness item of a BackupConfiguration status.
pub fn not_ready_reason(st: &kstash_api::core::BackupConfigurationStatus) -> String {
    if let Some(cnd) = phase::find(&st.conditions, c::VALIDATION_PASSED)
        .filter(|x| x.status != kstash_api::common::ConditionStatus::True)
    {
        return cnd.message.clone().unwrap_or_default();
    }
    if st.target_found == Some(false) {
        return "target not found".into();
    }
    for b in &st.backends {
        if b.ready != Some(true) {
            let s = b.storage.as_ref().map(|s| s.reason.clone()).unwrap_or_default();
            let r = b
                .retention_policy
                .as_ref()
                .map(|r| r.reason.clone())
                .unwrap_or_default();
            return format!(
                "backend {}: {}",
                b.name,
                [s, r]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    for s in &st.sessions {
        if let Some(cnd) = phase::find(&s.conditions, c::SCHEDULER_ENSURED)
            .filter(|x| x.status != kstash_api::common::ConditionStatus::True)
        {
            return format!("session {}: {}", s.name, cnd.message.clone().unwrap_or_default());
        }
    }
    "waiting for backends and schedules".into()
}

fn ensure_snapshots(
    p: &dyn Platform,
    bs: &BackupSession,
    bc: &BackupConfiguration,
    session: &kstash_api::core::Session,
    now: Timestamp,
) -> std::result::Result<Vec<SessionSnapshotStatus>, EnsureError> {
    let ns = util::namespace(&bs.metadata);
    let bs_name = util::name(&bs.metadata);
    let mut out = Vec::new();
    for info in &session.repositories {
        let repo = p
            .get_as::<Repository>(ns, &info.name)?
            .ok_or_else(|| EnsureError {
                message: format!("Repository {ns}/{} does not exist yet", info.name),
                waiting: true,
                retry: None,
            })?;
        if repo.status.as_ref().and_then(|s| s.phase) != Some(kstash_api::storage::RepositoryPhase::Ready) {
            let why = repo
                .status
                .as_ref()
                .and_then(|s| phase::find(&s.conditions, c::REPOSITORY_INITIALIZED))
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            return Err(EnsureError {
                message: format!("Repository {ns}/{} is not Ready: {why}", info.name),
                waiting: true,
                retry: None,
            });
        }
        let name = snapshot_name(&info.name, bs_name);
        let app_ref = bc.spec.target.clone().unwrap_or_default();
        // Idempotent: a retry after a refused write finds what the last attempt created.
        let existing = p.get_as::<Snapshot>(ns, &name)?;
        let created = match existing {
            Some(snap) => snap,
            None => {
                let mut snap = Snapshot::new(
                    &name,
                    SnapshotSpec {
                        snapshot_id: ulid::Ulid::generate().to_string(),
                        type_: Some(BackupType::FullBackup),
                        repository: info.name.clone(),
                        session: session.name.clone(),
                        backup_session: bs_name.to_string(),
                        version: "v1".into(),
                        app_ref: app_ref.clone(),
                        deletion_policy: Some(DeletionPolicy::Delete),
                        paused: false,
                    },
                );
                snap.metadata.namespace = Some(ns.to_string());
                snap.metadata.labels = Some(util::labels(&[
                    (util::LABEL_MANAGED_BY, util::MANAGED_BY),
                    (util::LABEL_REPO_NAME, &info.name),
                    (util::LABEL_SESSION_NAME, &session.name),
                    (util::LABEL_APP_REF_KIND, app_ref.kind.as_deref().unwrap_or("")),
                    (util::LABEL_APP_REF_NAME, &app_ref.name),
                    (
                        util::LABEL_APP_REF_NAMESPACE,
                        app_ref.namespace.as_deref().unwrap_or(""),
                    ),
                ]));
                snap.metadata.finalizers = Some(vec![util::FINALIZER.to_string()]);
                snap.metadata.owner_references = Some(vec![util::owner_ref(
                    meta::REPOSITORY.api_version(),
                    "Repository",
                    &repo.metadata,
                )]);
                p.create_as(&snap)?
            }
        };
        if created.status.as_ref().and_then(|s| s.phase).is_none() {
            let mut created = created;
            created.status = Some(SnapshotStatus {
                phase: Some(SnapshotPhase::Pending),
                snapshot_time: Some(util::time(now)),
                ..Default::default()
            });
            p.update_status_as(&created)?;
        }
        out.push(SessionSnapshotStatus {
            name,
            phase: Some(SnapshotPhase::Pending),
            app_ref: Some(app_ref),
            repository: info.name.clone(),
        });
    }
    Ok(out)
}

fn summary(bs: &BackupSession, bc: &BackupConfiguration, phase: &str, error: &str) -> Summary {
    session_summary(
        &bs.metadata,
        "BackupConfiguration",
        &bc.metadata,
        bc.spec.target.clone(),
        phase,
        error,
    )
}

/// The Summary rendered into hooks: the session, its invoker, its target and its outcome so far.
pub(crate) fn session_summary(
    session: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    invoker_kind: &str,
    invoker: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    target: Option<TypedObjectReference>,
    phase: &str,
    error: &str,
) -> Summary {
    let t = target.unwrap_or_default();
    Summary {
        name: util::name(session).to_string(),
        namespace: util::namespace(session).to_string(),
        invoker: SummaryRef {
            api_group: meta::CORE_GROUP.to_string(),
            kind: invoker_kind.to_string(),
            name: util::name(invoker).to_string(),
            namespace: util::namespace(invoker).to_string(),
        },
        target: SummaryRef {
            api_group: t.api_group.unwrap_or_default(),
            kind: t.kind.unwrap_or_default(),
            name: t.name,
            namespace: t.namespace.unwrap_or_default(),
        },
        status: SummaryStatus {
            phase: phase.to_string(),
            duration: String::new(),
            error: error.to_string(),
        },
    }
}

fn apply_retention(
    p: &dyn Platform,
    bc: &BackupConfiguration,
    session: &kstash_api::core::Session,
    st: &BackupSessionStatus,
    now: Timestamp,
) -> Result<Vec<RetentionPolicyApplyStatus>> {
    let ns = util::namespace(&bc.metadata);
    let mut out = Vec::new();
    for s in &st.snapshots {
        let info = session.repositories.iter().find(|r| r.name == s.repository);
        let backend = info.map(|i| i.backend.as_str()).unwrap_or("");
        let b = if backend.is_empty() {
            bc.spec.backends.first()
        } else {
            bc.spec.backends.iter().find(|b| b.name == backend)
        };
        let Some(rp_ref) = b.and_then(|b| b.retention_policy.clone()) else {
            continue;
        };
        let rns = util::ns_or(&rp_ref.namespace, ns).to_string();
        let mut entry = RetentionPolicyApplyStatus {
            r#ref: ObjectReference {
                name: rp_ref.name.clone(),
                namespace: Some(rns.clone()),
            },
            repository: s.repository.clone(),
            phase: Some(RetentionPolicyApplyPhase::Applied),
            error: String::new(),
        };
        let result = (|| -> std::result::Result<(), String> {
            let policy = p
                .get_as::<RetentionPolicy>(&rns, &rp_ref.name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("RetentionPolicy {rns}/{} not found", rp_ref.name))?;
            let snaps = p
                .list_as::<Snapshot>(
                    Some(ns),
                    &[
                        (util::LABEL_REPO_NAME, &s.repository),
                        (util::LABEL_SESSION_NAME, &session.name),
                    ],
                )
                .map_err(|e| e.to_string())?;
            let candidates: Vec<retention::Candidate> = snaps
                .iter()
                .filter(|x| !util::is_deleting(&x.metadata))
                .map(|x| retention::Candidate {
                    name: util::name(&x.metadata).to_string(),
                    phase: x
                        .status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .unwrap_or(SnapshotPhase::Pending),
                    time: x
                        .status
                        .as_ref()
                        .and_then(|s| s.snapshot_time.as_ref().map(|t| t.0))
                        .or_else(|| x.metadata.creation_timestamp.as_ref().map(|t| t.0))
                        .unwrap_or(now),
                })
                .collect();
            let decision = retention::select(&policy.spec, &candidates, now)?;
            for name in decision.remove {
                if let Some(mut snap) = snaps.iter().find(|x| util::name(&x.metadata) == name).cloned() {
                    tracing::info!(snapshot = %format!("{ns}/{name}"), policy = %rp_ref.name, "retention removes snapshot");
                    snap.spec.deletion_policy = Some(DeletionPolicy::WipeOut);
                    p.update_as(&snap).map_err(|e| e.to_string())?;
                    p.delete(&meta::SNAPSHOT, ns, &name).map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            entry.phase = Some(RetentionPolicyApplyPhase::FailedToApply);
            entry.error = e;
        }
        out.push(entry);
    }
    Ok(out)
}

fn clean_history(p: &dyn Platform, bs: &BackupSession, limit: i32) -> std::result::Result<(), String> {
    let ns = util::namespace(&bs.metadata);
    let invoker = bs.spec.invoker.as_ref().map(|i| i.name.as_str()).unwrap_or("");
    let mut sessions = p
        .list_as::<BackupSession>(
            Some(ns),
            &[
                (util::LABEL_INVOKER_NAME, invoker),
                (util::LABEL_SESSION_NAME, &bs.spec.session),
            ],
        )
        .map_err(|e| e.to_string())?;
    sessions.retain(|s| {
        util::name(&s.metadata) != util::name(&bs.metadata)
            && !util::is_deleting(&s.metadata)
            && s.status
                .as_ref()
                .and_then(|x| x.phase)
                .is_some_and(phase::backup_session_completed)
            && s.status
                .as_ref()
                .is_some_and(|x| cond(&x.conditions, c::METRICS_PUSHED).is_some())
    });
    sessions.sort_by_key(|s| {
        std::cmp::Reverse((
            s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            s.metadata.name.clone(),
        ))
    });
    // This session counts as the newest completed one.
    let keep_others = (limit.max(1) - 1) as usize;
    for old in sessions.into_iter().skip(keep_others) {
        // A failed session whose retry has not been created yet stays until it has.
        let st = old.status.as_ref();
        let awaiting_retry = st.and_then(|x| x.phase) == Some(BackupSessionPhase::Failed)
            && old.spec.retry_left > 0
            && st.and_then(|x| x.retried) != Some(true);
        if awaiting_retry {
            continue;
        }
        let name = util::name(&old.metadata).to_string();
        tracing::info!(backupsession = %format!("{ns}/{name}"), "session history limit: deleting");
        // A completed session has nothing left to clean up but its job: do it here, so the
        // session goes at once (also when `kstash trigger` runs in the foreground and stops).
        p.delete_job(ns, &name).map_err(|e| e.to_string())?;
        let mut old = old;
        if util::has_finalizer(&old.metadata) {
            util::remove_finalizer(&mut old.metadata);
            p.update_as(&old).map_err(|e| e.to_string())?;
        }
        p.delete(&meta::BACKUP_SESSION, ns, &name)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The final step: MetricsPushed, phase, duration, metrics, event.
fn finish(
    p: &dyn Platform,
    bs: BackupSession,
    mut st: BackupSessionStatus,
    bc: Option<&BackupConfiguration>,
) -> Result<Requeue> {
    let now = p.now();
    let ns = util::namespace(&bs.metadata).to_string();
    let name = util::name(&bs.metadata).to_string();
    if !st.snapshots.is_empty() {
        let snapshots = session_snapshots(p, &ns, &st)?;
        refresh_snapshot_status(&mut st, &snapshots);
    }
    set_cond(
        &mut st.conditions,
        now,
        c::METRICS_PUSHED,
        true,
        "SuccessfullyPushedMetrics",
        "",
    );
    let ph = phase::backup_session(&st);
    st.phase = Some(ph);
    st.duration = util::go_duration(util::age(&bs.metadata, now));
    let bs = save(p, bs, &st)?;
    let msg = match ph {
        BackupSessionPhase::Failed => phase::backup_session_failure(&st).unwrap_or_default(),
        BackupSessionPhase::Skipped => phase::find(&st.conditions, c::BACKUP_SKIPPED)
            .and_then(|x| x.message.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };
    p.event(
        &format!("BackupSession {ns}/{name}"),
        ph == BackupSessionPhase::Failed,
        &format!("{ph:?}"),
        &msg,
    );
    if let (Some(pusher), Some(bc)) = (p.pusher(), bc)
        && ph != BackupSessionPhase::Skipped
    {
        let snapshots = session_snapshots(p, &ns, &st).unwrap_or_default();
        let repos: Vec<Repository> = st
            .snapshots
            .iter()
            .filter_map(|s| p.get_as::<Repository>(&ns, &s.repository).ok().flatten())
            .collect();
        let body = crate::metrics::backup_session_metrics(bc, &bs, &snapshots, &repos);
        let object = format!("BackupSession {ns}/{name}");
        let grouping = [
            ("namespace", ns.as_str()),
            ("invoker_name", util::name(&bc.metadata)),
            ("session", bs.spec.session.as_str()),
        ];
        if let Err(e) = pusher.enqueue(&object, "kstash-backup", &grouping, body) {
            p.event(&object, true, "MetricsPushFailed", &e.to_string());
        }
    }
    retry_if_needed(p, &bs)
}

/// A failed session with retries left gets `nextRetry`, then a new session with one retry fewer.
fn retry_if_needed(p: &dyn Platform, bs: &BackupSession) -> Result<Requeue> {
    let Some(st) = bs.status.clone() else {
        return Ok(Requeue::Idle);
    };
    if st.phase != Some(BackupSessionPhase::Failed) || bs.spec.retry_left <= 0 || st.retried == Some(true) {
        return Ok(Requeue::Idle);
    }
    let (Some(bc), session) = configuration_of(p, bs)? else {
        return Ok(Requeue::Idle);
    };
    let now = p.now();
    let mut st2 = st.clone();
    let next = match &st.next_retry {
        Some(t) => t.0,
        None => {
            let delay = session
                .as_ref()
                .and_then(|s| s.retry_config.as_ref())
                .and_then(|r| r.delay.as_deref())
                .and_then(|d| parse_go_duration(d).ok())
                .unwrap_or_default();
            let t = util::add(now, delay);
            st2.next_retry = Some(util::time(t));
            let bs2 = save(p, bs.clone(), &st2)?;
            if t > now {
                return Ok(Requeue::After(util::elapsed(now, t)));
            }
            return retry_if_needed(p, &bs2);
        }
    };
    if now < next {
        return Ok(Requeue::After(util::elapsed(now, next)));
    }
    let created = crate::backup_configuration::trigger(p, &bc, &bs.spec.session, bs.spec.retry_left - 1)?;
    tracing::info!(retry = %util::name(&created.metadata), of = %util::name(&bs.metadata), "retrying failed backup");
    st2.retried = Some(true);
    save(p, bs.clone(), &st2)?;
    Ok(Requeue::Idle)
}

/// Tells a target reference apart for labels and metrics.
pub fn target_of(bc: &BackupConfiguration) -> TypedObjectReference {
    bc.spec.target.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
