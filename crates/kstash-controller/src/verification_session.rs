//! BackupVerificationSession reconciler: resolve → pick the Snapshot (or skip) → a RestoreSession
//! into the verifier's target → the verifier job (queries, a script, or kstash's content
//! comparison of a restored volume) → the Snapshot's verification status, history cleanup, final
//! phase, event, metrics → retry. The plan ([`next_verify_step`]) is pure; the restore itself is
//! an ordinary RestoreSession, so verification never blocks the reconcile workers.

use std::time::Duration;

use kstash_api::client::ResourcesExt;
use kstash_api::common::TypedLocalObjectReference;
use kstash_api::core::{RestoreDataSource, RestorePhase, RestoreSession, RestoreSessionSpec};
use kstash_api::duration::parse_go_duration;
use kstash_api::meta;
use kstash_api::phase;
use kstash_api::resolve::{self, ResolvedVerification};
use kstash_api::storage::{Snapshot, VerificationStatus};
use kstash_api::verification::{
    self, BackupVerificationSession, BackupVerificationSessionPhase, BackupVerificationSessionSpec,
    BackupVerificationSessionStatus, VerificationType, conditions as vc,
};
use kstash_api::{ErrorCategory, names};

use crate::platform::{JobPurpose, JobSpec, JobState, Platform, PlatformError};
use crate::util::{self, Requeue, Result, cond, set_cond};

/// Label on the RestoreSession (and job) a verification starts: the session's name.
pub const LABEL_VERIFICATION_SESSION: &str = "kstash.dev/verification-session";
/// How often a running restore or verifier job is looked at (a change of the RestoreSession
/// also wakes the session).
const POLL: Duration = Duration::from_secs(3);

/// What the restore this session started looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreObserved {
    /// Not created yet.
    Absent,
    Running,
    Succeeded,
    Failed(String),
}

/// What the plan knows besides the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFacts {
    pub restore: RestoreObserved,
    /// A verifier job runs after the restore (Query, Script, or a volume content comparison).
    pub needs_executor: bool,
    /// `spec.retryLeft`.
    pub retry_left: i32,
}

/// The steps of a verification, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyStep {
    /// Resolve, pick the Snapshot (or skip), create the RestoreSession.
    Prepare,
    WaitRestore,
    Executor,
    WaitExecutor,
    /// Snapshot status, history cleanup, phase, duration, event, metrics.
    Finish,
    /// Failed with retries left and no retry created yet.
    Retry,
    Settled,
}

/// The next step of a verification (pure): from its recorded conditions and the facts.
pub fn next_verify_step(st: &BackupVerificationSessionStatus, facts: &VerifyFacts) -> VerifyStep {
    let done = |t: &str| cond(&st.conditions, t);
    if done(vc::HISTORY_CLEANED).is_some() {
        let failed = phase::backup_verification_session(st) == BackupVerificationSessionPhase::Failed;
        return if failed && facts.retry_left > 0 && st.retried != Some(true) {
            VerifyStep::Retry
        } else {
            VerifyStep::Settled
        };
    }
    if done(vc::SKIPPED) == Some(true) || done(vc::BACKUP_VERIFIED).is_some() {
        return VerifyStep::Finish;
    }
    match done(vc::RESTORE_SUCCEEDED) {
        Some(false) => VerifyStep::Finish,
        None if facts.restore == RestoreObserved::Absent => VerifyStep::Prepare,
        None => VerifyStep::WaitRestore,
        Some(true) if !facts.needs_executor => VerifyStep::Finish,
        Some(true) => match done(vc::EXECUTOR_ENSURED) {
            None => VerifyStep::Executor,
            Some(false) => VerifyStep::Finish,
            Some(true) => VerifyStep::WaitExecutor,
        },
    }
}

/// The verifier job's name for session `name`.
pub fn job_name(name: &str) -> String {
    names::name_with_prefix_and_suffix("verify", name)
}

/// Reconcile one BackupVerificationSession.
pub fn reconcile_backup_verification_session(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(mut bvs) = p.get_as::<BackupVerificationSession>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let job = job_name(name);
    if util::is_deleting(&bvs.metadata) {
        if util::has_finalizer(&bvs.metadata) {
            if p.job_state(ns, &job) == JobState::Running {
                p.stop_job(ns, &job, "BackupVerificationSession deleted")?;
            }
            p.delete_job(ns, &job)?;
            delete_restore(p, ns, name)?;
            util::remove_finalizer(&mut bvs.metadata);
            p.update_as(&bvs)?;
        }
        return Ok(Requeue::Idle);
    }
    if util::add_finalizer(&mut bvs.metadata) {
        bvs = p.update_as(&bvs)?;
    }
    let mut st = bvs.status.clone().unwrap_or_default();
    let resolved = resolve::resolve_verification(p, ns, name);
    let mut facts = VerifyFacts {
        restore: observe_restore(p, ns, name)?,
        needs_executor: resolved.as_ref().is_ok_and(|r| needs_executor(p, r)),
        retry_left: bvs.spec.retry_left,
    };
    loop {
        let now = p.now();
        let step = next_verify_step(&st, &facts);
        tracing::debug!(?step, "verification session step");
        match step {
            VerifyStep::Settled => return Ok(Requeue::Idle),
            VerifyStep::Prepare => {
                let r = match &resolved {
                    Ok(r) => r,
                    Err(e) if matches!(e.category(), ErrorCategory::Transient | ErrorCategory::Conflict) => {
                        return Err(PlatformError::of(e.category(), e.to_string()).into());
                    }
                    Err(e) => {
                        set_cond(
                            &mut st.conditions,
                            now,
                            vc::BACKUP_VERIFIED,
                            false,
                            vc::REASON_NOT_VERIFIED,
                            e.to_string(),
                        );
                        bvs = save(p, bvs, &st)?;
                        continue;
                    }
                };
                st.phase = Some(BackupVerificationSessionPhase::Running);
                match pick_snapshot(p, r)? {
                    Pick::Skip { reason, message } => {
                        set_cond(&mut st.conditions, now, vc::SKIPPED, true, reason, message);
                    }
                    Pick::Fail(message) => {
                        set_cond(
                            &mut st.conditions,
                            now,
                            vc::BACKUP_VERIFIED,
                            false,
                            vc::REASON_NOT_VERIFIED,
                            message,
                        );
                    }
                    Pick::Verify(snapshot) => {
                        if bvs.spec.snapshot.is_empty() {
                            bvs.spec.snapshot = snapshot.clone();
                            bvs = p.update_as(&bvs)?;
                        }
                        p.create_as(&restore_session(r, &bvs, &snapshot))?;
                        facts.restore = RestoreObserved::Running;
                    }
                }
                bvs = save(p, bvs, &st)?;
            }
            VerifyStep::WaitRestore => match &facts.restore {
                RestoreObserved::Running | RestoreObserved::Absent => {
                    save(p, bvs, &st)?;
                    return Ok(Requeue::After(POLL));
                }
                RestoreObserved::Succeeded => {
                    set_cond(
                        &mut st.conditions,
                        now,
                        vc::RESTORE_SUCCEEDED,
                        true,
                        vc::REASON_RESTORED,
                        "",
                    );
                    bvs = save(p, bvs, &st)?;
                }
                RestoreObserved::Failed(why) => {
                    set_cond(
                        &mut st.conditions,
                        now,
                        vc::RESTORE_SUCCEEDED,
                        false,
                        vc::REASON_NOT_RESTORED,
                        format!("RestoreSession {ns}/{name} failed: {why}"),
                    );
                    bvs = save(p, bvs, &st)?;
                }
            },
            VerifyStep::Executor => {
                let spec = JobSpec {
                    name: job.clone(),
                    namespace: ns.to_string(),
                    purpose: JobPurpose::Verify {
                        verification_session: name.to_string(),
                    },
                    labels: util::labels(&[
                        (util::LABEL_INVOKER_KIND, "BackupVerificationSession"),
                        (util::LABEL_INVOKER_NAME, name),
                    ]),
                    deadline: None,
                };
                match p.start_job(&spec) {
                    Ok(()) => set_cond(
                        &mut st.conditions,
                        now,
                        vc::EXECUTOR_ENSURED,
                        true,
                        vc::REASON_EXECUTOR_ENSURED,
                        "",
                    ),
                    Err(e) => set_cond(
                        &mut st.conditions,
                        now,
                        vc::EXECUTOR_ENSURED,
                        false,
                        vc::REASON_EXECUTOR_NOT_ENSURED,
                        e.to_string(),
                    ),
                }
                bvs = save(p, bvs, &st)?;
            }
            VerifyStep::WaitExecutor => {
                let state = p.job_state(ns, &job);
                if state == JobState::Running {
                    return Ok(Requeue::After(POLL));
                }
                // The verifier writes BackupVerified itself; re-read to see it.
                bvs = p.must_get::<BackupVerificationSession>(ns, name)?;
                st = bvs.status.clone().unwrap_or_default();
                if cond(&st.conditions, vc::BACKUP_VERIFIED).is_none() {
                    let why = match state {
                        JobState::Failed(m) => format!("the verifier job failed: {m}"),
                        JobState::Missing => "the verifier job vanished without reporting".to_string(),
                        _ => "the verifier job exited without reporting a result".to_string(),
                    };
                    set_cond(
                        &mut st.conditions,
                        now,
                        vc::BACKUP_VERIFIED,
                        false,
                        vc::REASON_NOT_VERIFIED,
                        why,
                    );
                    bvs = save(p, bvs, &st)?;
                }
            }
            VerifyStep::Finish => {
                bvs = finish(p, bvs, st.clone(), resolved.as_ref().ok())?;
                st = bvs.status.clone().unwrap_or_default();
            }
            VerifyStep::Retry => return retry(p, &bvs, resolved.as_ref().ok()),
        }
    }
}

/// Whether a verifier job follows the restore: Query and Script verifiers, and volume restores
/// where the platform can compare the restored files with the snapshot.
fn needs_executor(p: &dyn Platform, r: &ResolvedVerification) -> bool {
    match r.verifier.spec.verification_type() {
        VerificationType::Query | VerificationType::Script => true,
        VerificationType::RestoreOnly => {
            p.compares_restored_volumes() && verification::is_volume_addon(&r.addon.name)
        }
    }
}

enum Pick {
    Verify(String),
    Skip { reason: &'static str, message: String },
    Fail(String),
}

/// The Snapshot to verify: `spec.snapshot`, or the repository's newest Succeeded one; skipped
/// when it is already verified or there is none yet.
fn pick_snapshot(p: &dyn Platform, r: &ResolvedVerification) -> Result<Pick> {
    let bc_ns = util::namespace(&r.configuration.metadata);
    let repo = &r.session.spec.repository;
    let snapshots: Vec<Snapshot> = p.list_as::<Snapshot>(Some(bc_ns), &[])?;
    let named = &r.session.spec.snapshot;
    let chosen = if named.is_empty() {
        match crate::restore_session::resolve_snapshot(&snapshots, repo, "latest", None) {
            Ok(s) => s,
            Err(_) => {
                return Ok(Pick::Skip {
                    reason: vc::REASON_NO_SNAPSHOT,
                    message: format!("Repository {bc_ns}/{repo} has no Succeeded Snapshot to verify yet"),
                });
            }
        }
    } else {
        match snapshots.iter().find(|s| util::name(&s.metadata) == named) {
            Some(s) => s,
            None => {
                return Ok(Pick::Fail(format!(
                    "spec.snapshot: Snapshot {bc_ns}/{named} not found; fix: name a Snapshot of Repository {repo} (`kstash get snapshots -n {bc_ns}`) or leave it empty for the newest"
                )));
            }
        }
    };
    let name = util::name(&chosen.metadata).to_string();
    if chosen.status.as_ref().and_then(|s| s.verification_status) == Some(VerificationStatus::Verified) {
        return Ok(Pick::Skip {
            reason: vc::REASON_ALREADY_VERIFIED,
            message: format!("Snapshot {bc_ns}/{name} is already verified"),
        });
    }
    Ok(Pick::Verify(name))
}

/// The RestoreSession a verification runs: the verifier's target and addon, the verified
/// repository and Snapshot, owned by the session (so it goes with it).
fn restore_session(
    r: &ResolvedVerification,
    bvs: &BackupVerificationSession,
    snapshot: &str,
) -> RestoreSession {
    let ns = util::namespace(&bvs.metadata);
    let name = util::name(&bvs.metadata);
    let bc_ns = util::namespace(&r.configuration.metadata);
    let mut rs = RestoreSession::new(
        name,
        RestoreSessionSpec {
            target: Some(r.target.clone()),
            data_source: Some(RestoreDataSource {
                repository: r.session.spec.repository.clone(),
                namespace: bc_ns.to_string(),
                snapshot: snapshot.to_string(),
                encryption_secret: r.repository.encryption_secret.clone(),
                ..Default::default()
            }),
            addon: Some(r.addon.clone()),
            ..Default::default()
        },
    );
    rs.metadata.namespace = Some(ns.to_string());
    rs.metadata.labels = Some(util::labels(&[
        (util::LABEL_MANAGED_BY, util::MANAGED_BY),
        (LABEL_VERIFICATION_SESSION, name),
        (util::LABEL_REPO_NAME, &r.session.spec.repository),
    ]));
    rs.metadata.owner_references = Some(vec![util::owner_ref(
        meta::BACKUP_VERIFICATION_SESSION.api_version(),
        "BackupVerificationSession",
        &bvs.metadata,
    )]);
    rs
}

fn observe_restore(p: &dyn Platform, ns: &str, name: &str) -> Result<RestoreObserved> {
    let Some(rs) = p.get_as::<RestoreSession>(ns, name)? else {
        return Ok(RestoreObserved::Absent);
    };
    let st = rs.status.unwrap_or_default();
    Ok(match st.phase {
        Some(RestorePhase::Succeeded) => RestoreObserved::Succeeded,
        Some(RestorePhase::Failed | RestorePhase::Invalid) => {
            RestoreObserved::Failed(crate::restore_session::failure_message(&st))
        }
        _ => RestoreObserved::Running,
    })
}

fn delete_restore(p: &dyn Platform, ns: &str, name: &str) -> Result<()> {
    if p.get_as::<RestoreSession>(ns, name)?.is_some() {
        p.delete(&meta::RESTORE_SESSION, ns, name)?;
    }
    Ok(())
}

fn save(
    p: &dyn Platform,
    mut bvs: BackupVerificationSession,
    st: &BackupVerificationSessionStatus,
) -> Result<BackupVerificationSession> {
    if bvs.status.as_ref() == Some(st) {
        return Ok(bvs);
    }
    bvs.status = Some(st.clone());
    Ok(p.update_status_as(&bvs)?)
}

/// Why a session failed (the first False condition's message), or why it was skipped.
pub fn outcome_message(st: &BackupVerificationSessionStatus) -> String {
    for t in [
        vc::HISTORY_CLEANED,
        vc::BACKUP_VERIFIED,
        vc::RESTORE_SUCCEEDED,
        vc::EXECUTOR_ENSURED,
    ] {
        if let Some(x) = phase::find(&st.conditions, t)
            && x.status == kstash_api::common::ConditionStatus::False
        {
            return x.message.clone().unwrap_or_default();
        }
    }
    phase::find(&st.conditions, vc::SKIPPED)
        .and_then(|x| x.message.clone())
        .unwrap_or_default()
}

/// The final step: the Snapshot's verification status, history cleanup, phase, duration, event,
/// metrics.
fn finish(
    p: &dyn Platform,
    bvs: BackupVerificationSession,
    mut st: BackupVerificationSessionStatus,
    resolved: Option<&ResolvedVerification>,
) -> Result<BackupVerificationSession> {
    let now = p.now();
    let ns = util::namespace(&bvs.metadata).to_string();
    let name = util::name(&bvs.metadata).to_string();
    // The outcome as it will read once history is cleaned.
    let mut probe = st.clone();
    set_cond(&mut probe.conditions, now, vc::HISTORY_CLEANED, true, "", "");
    let outcome = phase::backup_verification_session(&probe);
    if outcome != BackupVerificationSessionPhase::Skipped
        && !bvs.spec.snapshot.is_empty()
        && let Some(r) = resolved
    {
        let bc_ns = util::namespace(&r.configuration.metadata);
        if let Some(mut snap) = p.get_as::<Snapshot>(bc_ns, &bvs.spec.snapshot)? {
            let sst = snap.status.get_or_insert_with(Default::default);
            sst.verification_status = Some(if outcome == BackupVerificationSessionPhase::Succeeded {
                VerificationStatus::Verified
            } else {
                VerificationStatus::VerificationFailed
            });
            sst.verification_session = name.clone();
            p.update_status_as(&snap)?;
        }
    }
    let limit = resolved
        .map(|r| r.verifier.spec.session_history_limit)
        .unwrap_or(1);
    match clean_history(p, &bvs, limit) {
        Ok(()) => set_cond(
            &mut st.conditions,
            now,
            vc::HISTORY_CLEANED,
            true,
            vc::REASON_HISTORY_CLEANED,
            "",
        ),
        Err(e) => set_cond(
            &mut st.conditions,
            now,
            vc::HISTORY_CLEANED,
            false,
            vc::REASON_HISTORY_NOT_CLEANED,
            e,
        ),
    }
    let ph = phase::backup_verification_session(&st);
    st.phase = Some(ph);
    st.duration = util::go_duration(util::age(&bvs.metadata, now));
    let bvs = save(p, bvs, &st)?;
    let object = format!("BackupVerificationSession {ns}/{name}");
    p.event(
        &object,
        ph == BackupVerificationSessionPhase::Failed,
        &format!("{ph:?}"),
        &outcome_message(&st),
    );
    if let Some(pusher) = p.pusher()
        && ph != BackupVerificationSessionPhase::Skipped
    {
        let body = crate::metrics::verification_session_metrics(&bvs);
        let grouping = [
            ("namespace", ns.as_str()),
            ("repository", bvs.spec.repository.as_str()),
        ];
        if let Err(e) = pusher.enqueue(&object, "kstash-verification", &grouping, body) {
            p.event(&object, true, "MetricsPushFailed", &e.to_string());
        }
    }
    Ok(bvs)
}

/// Keep the newest `limit` finished sessions of the same configuration and repository (this
/// one included); delete the others with their restores and jobs.
fn clean_history(
    p: &dyn Platform,
    bvs: &BackupVerificationSession,
    limit: i32,
) -> std::result::Result<(), String> {
    let ns = util::namespace(&bvs.metadata);
    let me = util::name(&bvs.metadata);
    let invoker = bvs.spec.invoker.as_ref().map(|i| i.name.as_str()).unwrap_or("");
    let mut others: Vec<BackupVerificationSession> = p
        .list_as::<BackupVerificationSession>(Some(ns), &[])
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|s| {
            util::name(&s.metadata) != me
                && !util::is_deleting(&s.metadata)
                && s.spec.repository == bvs.spec.repository
                && s.spec.invoker.as_ref().map(|i| i.name.as_str()).unwrap_or("") == invoker
                && s.status
                    .as_ref()
                    .is_some_and(|x| cond(&x.conditions, vc::HISTORY_CLEANED).is_some())
        })
        .collect();
    others.sort_by_key(|s| {
        std::cmp::Reverse((
            s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            s.metadata.name.clone(),
        ))
    });
    let keep_others = (limit.max(1) - 1) as usize;
    for old in others.into_iter().skip(keep_others) {
        let st = old.status.clone().unwrap_or_default();
        let awaiting_retry = phase::backup_verification_session(&st)
            == BackupVerificationSessionPhase::Failed
            && old.spec.retry_left > 0
            && st.retried != Some(true);
        if awaiting_retry {
            continue;
        }
        let name = util::name(&old.metadata).to_string();
        tracing::info!(session = %format!("{ns}/{name}"), "verification session history limit: deleting");
        p.delete_job(ns, &job_name(&name)).map_err(|e| e.to_string())?;
        delete_restore(p, ns, &name).map_err(|e| e.to_string())?;
        let mut old = old;
        if util::has_finalizer(&old.metadata) {
            util::remove_finalizer(&mut old.metadata);
            p.update_as(&old).map_err(|e| e.to_string())?;
        }
        p.delete(&meta::BACKUP_VERIFICATION_SESSION, ns, &name)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A failed session with retries left: after the verifier's `retryConfig.delay` (counted from
/// when it finished), a new session for the same Snapshot with one retry fewer.
fn retry(
    p: &dyn Platform,
    bvs: &BackupVerificationSession,
    resolved: Option<&ResolvedVerification>,
) -> Result<Requeue> {
    let now = p.now();
    let st = bvs.status.clone().unwrap_or_default();
    let finished = phase::find(&st.conditions, vc::HISTORY_CLEANED)
        .and_then(|x| x.last_transition_time.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let delay = resolved
        .and_then(|r| r.verifier.spec.retry_config.as_ref())
        .and_then(|rc| rc.delay.as_deref())
        .and_then(|d| parse_go_duration(d).ok())
        .unwrap_or_default();
    let due = util::add(finished, delay);
    if now < due {
        return Ok(Requeue::After(util::elapsed(now, due)));
    }
    let ns = util::namespace(&bvs.metadata);
    let invoker = bvs.spec.invoker.as_ref().map(|i| i.name.as_str()).unwrap_or("");
    let created = create_unique(p, |at| {
        new_session(
            ns,
            &bvs.spec.session,
            &bvs.spec.repository,
            invoker,
            &bvs.spec.snapshot,
            bvs.spec.retry_left - 1,
            at,
        )
    })?;
    tracing::info!(retry = %util::name(&created.metadata), of = %util::name(&bvs.metadata), "retrying failed verification");
    let mut st2 = st;
    st2.retried = Some(true);
    save(p, bvs.clone(), &st2)?;
    Ok(Requeue::Idle)
}

/// A BackupVerificationSession of configuration `invoker`'s `session`, verifying `repository`
/// (`snapshot` empty: the newest), named as KubeStash names them: `<repository>-<session>-<unix>`.
pub fn new_session(
    ns: &str,
    session: &str,
    repository: &str,
    invoker: &str,
    snapshot: &str,
    retry_left: i32,
    now: jiff::Timestamp,
) -> BackupVerificationSession {
    let name =
        names::name_with_prefix_and_suffix(&format!("{repository}-{session}"), &now.as_second().to_string());
    let mut bvs = BackupVerificationSession::new(
        &name,
        BackupVerificationSessionSpec {
            invoker: Some(TypedLocalObjectReference {
                api_group: Some(meta::CORE_GROUP.to_string()),
                kind: "BackupConfiguration".into(),
                name: invoker.to_string(),
            }),
            backup_verifier: None,
            session: session.to_string(),
            repository: repository.to_string(),
            snapshot: snapshot.to_string(),
            retry_left,
        },
    );
    bvs.metadata.namespace = Some(ns.to_string());
    bvs.metadata.labels = Some(util::labels(&[
        (util::LABEL_MANAGED_BY, util::MANAGED_BY),
        (util::LABEL_INVOKER_KIND, "BackupConfiguration"),
        (util::LABEL_INVOKER_NAME, invoker),
        (util::LABEL_SESSION_NAME, session),
        (util::LABEL_REPO_NAME, repository),
    ]));
    bvs
}

/// Create the session `make` builds for a time, starting now; when the second's name is taken
/// (two in one second), the next free second is used.
fn create_unique(
    p: &dyn Platform,
    make: impl Fn(jiff::Timestamp) -> BackupVerificationSession,
) -> Result<BackupVerificationSession> {
    let mut at = p.now();
    for _ in 0..120 {
        match p.create_as(&make(at)) {
            Ok(created) => return Ok(created),
            Err(e) if e.is_conflict() => at = util::add(at, Duration::from_secs(1)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(util::ReconcileError::NameExhausted(format!(
        "could not find a free BackupVerificationSession name for {}",
        util::name(&make(at).metadata)
    )))
}

/// Start a verification of `repository` of configuration `ns/invoker` now (the verifier's
/// schedule, and `kstash verify`): the session whose `repositories[]` entry names it.
pub fn trigger(
    p: &dyn Platform,
    ns: &str,
    invoker: &str,
    session: &str,
    repository: &str,
    retry_left: i32,
) -> Result<BackupVerificationSession> {
    create_unique(p, |at| {
        new_session(ns, session, repository, invoker, "", retry_left, at)
    })
}

#[cfg(test)]
mod tests;
