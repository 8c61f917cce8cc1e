//! Table tests of the BackupSession reconciler's pure steps: situations → next step.

use std::time::Duration;

use jiff::Timestamp;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-12-07T10:00:00Z";

/// Observed: the executor state, whether Snapshots are final / reported, and the deadline.
fn observed(job: JobState, all_final: bool, all_reported: bool, deadline: Option<&str>) -> ExecutorWait {
    ExecutorWait {
        executor: "backup",
        timeout_field: "spec.backupTimeout",
        all_final,
        all_reported,
        any_failed: false,
        job,
        deadline: deadline.map(at),
        now: at(NOW),
    }
}

fn incomplete(stop: bool, message: &str) -> WaitStep {
    WaitStep::Incomplete {
        stop,
        message: message.into(),
    }
}

#[test]
fn executor_wait_plans() {
    let cases: Vec<(&str, ExecutorWait, WaitStep)> = vec![
        (
            "every snapshot final: go on",
            observed(JobState::Succeeded, true, true, None),
            WaitStep::Done,
        ),
        (
            "final even though the executor vanished afterwards",
            observed(JobState::Missing, true, false, None),
            WaitStep::Done,
        ),
        (
            "components reported, snapshots being finalised: look again soon",
            observed(JobState::Succeeded, false, true, None),
            WaitStep::Wait(Duration::from_millis(200)),
        ),
        (
            "executor running (or queued for a slot), no deadline: poll slowly (its writes wake us)",
            observed(JobState::Running, false, false, None),
            WaitStep::Wait(Duration::from_secs(5)),
        ),
        (
            "executor running, deadline in 300 ms: look again at the deadline",
            observed(JobState::Running, false, false, Some("2026-12-07T10:00:00.3Z")),
            WaitStep::Wait(Duration::from_millis(300)),
        ),
        (
            "executor running past the deadline: stop it, snapshots incomplete",
            observed(JobState::Running, false, false, Some("2026-12-07T09:59:59Z")),
            incomplete(
                true,
                "deadline exceeded or signal terminated (spec.backupTimeout)",
            ),
        ),
        (
            "executor succeeded without reporting every component",
            observed(JobState::Succeeded, false, false, None),
            incomplete(false, "backup executor exited without reporting every component"),
        ),
        (
            "executor failed: its message is kept",
            observed(JobState::Failed("exit status 2: boom".into()), false, false, None),
            incomplete(false, "backup executor failed: exit status 2: boom"),
        ),
        (
            "executor vanished (process gone, daemon restarted)",
            observed(JobState::Missing, false, false, Some("2026-12-07T11:00:00Z")),
            incomplete(
                false,
                "backup executor terminated before completion (process gone)",
            ),
        ),
    ];
    for (what, o, expected) in cases {
        assert_eq!(plan_executor_wait(&o), expected, "{what}");
    }
}

#[test]
fn a_failed_component_stops_the_executor_instead_of_waiting_for_the_others() {
    let mut o = observed(JobState::Running, false, false, None);
    o.any_failed = true;
    assert_eq!(
        plan_executor_wait(&o),
        incomplete(true, "stopped: another component failed, so the backup failed")
    );
    // Once the executor is gone the usual rule applies.
    o.job = JobState::Failed("exit status 1".into());
    assert_eq!(
        plan_executor_wait(&o),
        incomplete(false, "backup executor failed: exit status 1")
    );
    // Final is final.
    o.all_final = true;
    assert_eq!(plan_executor_wait(&o), WaitStep::Done);
}

#[test]
fn restore_messages_name_the_restore_executor_and_its_timeout() {
    let mut o = observed(JobState::Running, false, false, Some("2026-12-07T09:00:00Z"));
    o.executor = "restore";
    o.timeout_field = "spec.restoreTimeout";
    assert_eq!(
        plan_executor_wait(&o),
        incomplete(
            true,
            "deadline exceeded or signal terminated (spec.restoreTimeout)"
        )
    );
    o.job = JobState::Missing;
    assert_eq!(
        plan_executor_wait(&o),
        incomplete(
            false,
            "restore executor terminated before completion (process gone)"
        )
    );
}

/// A status in `phase` with these conditions (True/False) and `snapshots` Snapshots.
fn status(
    phase: Option<BackupSessionPhase>,
    conditions: &[(&str, bool)],
    snapshots: usize,
) -> BackupSessionStatus {
    let mut st = BackupSessionStatus {
        phase,
        ..Default::default()
    };
    for (t, ok) in conditions {
        set_cond(&mut st.conditions, at(NOW), t, *ok, "Reason", "");
    }
    st.snapshots = (0..snapshots)
        .map(|i| SessionSnapshotStatus {
            name: format!("repo-{i}-session"),
            phase: None,
            app_ref: None,
            repository: format!("repo-{i}"),
        })
        .collect();
    st
}

fn facts(resolved: bool, has_post_hooks: bool, executor_done: bool) -> Facts {
    Facts {
        resolved,
        has_post_hooks,
        executor_done,
    }
}

#[test]
fn backup_session_step_plans() {
    use BackupSessionPhase::{Failed, Pending, Running, Skipped, Succeeded};
    const SKIPPED: &str = c::BACKUP_SKIPPED;
    const PRE: &str = c::PRE_BACKUP_HOOKS_SUCCEEDED;
    const SNAPS: &str = c::SNAPSHOTS_ENSURED;
    const EXEC: &str = c::BACKUP_EXECUTOR_ENSURED;
    const POST: &str = c::POST_BACKUP_HOOKS_SUCCEEDED;
    const RETENTION: &str = c::RETENTION_POLICY_EXECUTOR_ENSURED;
    const HISTORY: &str = c::SESSION_HISTORY_CLEANED;
    const METRICS: &str = c::METRICS_PUSHED;
    let resolved = facts(true, false, false);
    let ran = [(SKIPPED, false), (PRE, true), (SNAPS, true), (EXEC, true)];
    let cases: Vec<(&str, BackupSessionStatus, Facts, Step)> = vec![
        (
            "a new session is prepared",
            status(None, &[], 0),
            resolved.clone(),
            Step::Prepare,
        ),
        (
            "a Pending session not yet checked is prepared",
            status(Some(Pending), &[], 0),
            resolved.clone(),
            Step::Prepare,
        ),
        (
            "skipped (configuration not Ready / another session running): finish as Skipped",
            status(Some(Pending), &[(SKIPPED, true)], 0),
            resolved.clone(),
            Step::Finish,
        ),
        (
            "the configuration or its session is gone: record it",
            status(Some(Running), &[(SKIPPED, false)], 0),
            facts(false, true, false),
            Step::Unresolved,
        ),
        (
            "unresolved and recorded: finish (no hooks can run)",
            status(Some(Running), &[(SKIPPED, false), (SNAPS, false)], 0),
            facts(false, true, false),
            Step::Finish,
        ),
        (
            "running, nothing done: pre-backup hooks",
            status(Some(Running), &[(SKIPPED, false)], 0),
            resolved.clone(),
            Step::PreHooks,
        ),
        (
            "pre hooks succeeded: Snapshots",
            status(Some(Running), &[(SKIPPED, false), (PRE, true)], 0),
            resolved.clone(),
            Step::Snapshots,
        ),
        (
            "Snapshots ensured: executor",
            status(Some(Running), &[(SKIPPED, false), (PRE, true), (SNAPS, true)], 1),
            resolved.clone(),
            Step::Executor,
        ),
        (
            "executor ensured: wait for it",
            status(Some(Running), &ran, 1),
            resolved.clone(),
            Step::Wait,
        ),
        (
            "executor done, no post hooks: retention",
            status(Some(Running), &ran, 1),
            facts(true, false, true),
            Step::Retention,
        ),
        (
            "executor done with post hooks: post hooks first",
            status(Some(Running), &ran, 1),
            facts(true, true, true),
            Step::PostHooks,
        ),
        (
            "post hooks done: retention",
            status(
                Some(Running),
                &[
                    (SKIPPED, false),
                    (PRE, true),
                    (SNAPS, true),
                    (EXEC, true),
                    (POST, false),
                ],
                1,
            ),
            facts(true, true, true),
            Step::Retention,
        ),
        (
            "retention applied: history cleanup",
            status(
                Some(Running),
                &[
                    (SKIPPED, false),
                    (PRE, true),
                    (SNAPS, true),
                    (EXEC, true),
                    (RETENTION, true),
                ],
                1,
            ),
            facts(true, false, true),
            Step::History,
        ),
        (
            "history cleaned: finish",
            status(
                Some(Running),
                &[
                    (SKIPPED, false),
                    (PRE, true),
                    (SNAPS, true),
                    (EXEC, true),
                    (RETENTION, true),
                    (HISTORY, true),
                ],
                1,
            ),
            facts(true, false, true),
            Step::Finish,
        ),
        (
            "pre hook failed: no Snapshots, no executor, post hooks still run",
            status(Some(Running), &[(SKIPPED, false), (PRE, false)], 0),
            facts(true, true, false),
            Step::PostHooks,
        ),
        (
            "pre hook failed, no post hooks and no Snapshots: no retention, history cleanup",
            status(Some(Running), &[(SKIPPED, false), (PRE, false)], 0),
            resolved.clone(),
            Step::History,
        ),
        (
            "Snapshots could not be created: skip the executor",
            status(Some(Running), &[(SKIPPED, false), (PRE, true), (SNAPS, false)], 0),
            resolved.clone(),
            Step::History,
        ),
        (
            "the executor could not start: no waiting, retention over the Snapshots",
            status(
                Some(Running),
                &[(SKIPPED, false), (PRE, true), (SNAPS, true), (EXEC, false)],
                1,
            ),
            resolved.clone(),
            Step::Retention,
        ),
        (
            "succeeded and finished: only a retry can follow",
            status(Some(Succeeded), &[(METRICS, true)], 1),
            resolved.clone(),
            Step::Retry,
        ),
        (
            "failed and finished: retry (when retries are left)",
            status(Some(Failed), &[(METRICS, true)], 1),
            resolved.clone(),
            Step::Retry,
        ),
        (
            "skipped and finished",
            status(Some(Skipped), &[(SKIPPED, true), (METRICS, true)], 0),
            resolved.clone(),
            Step::Retry,
        ),
    ];
    for (what, st, f, expected) in cases {
        assert_eq!(next_step(&st, &f), expected, "{what}");
    }
}

#[test]
fn a_refused_snapshot_write_is_retried_not_a_failed_session() {
    // (store error while ensuring Snapshots, retried by the queue?)
    let cases: Vec<(&str, ClientError, bool)> = vec![
        (
            "conflict with the Snapshot's own reconcile",
            ClientError::Conflict {
                object: "Snapshot demo/s".into(),
                reason: "the object has been modified".into(),
            },
            true,
        ),
        (
            "store out of reach",
            ClientError::Other("connection refused".into()),
            true,
        ),
        (
            "refused as invalid: the session fails",
            ClientError::Invalid {
                object: "Snapshot demo/s".into(),
                message: "name too long".into(),
            },
            false,
        ),
        (
            "missing: the session fails",
            ClientError::NotFound("Repository demo/r".into()),
            false,
        ),
    ];
    for (situation, error, retried) in cases {
        let e = EnsureError::from(error);
        assert_eq!(e.retry.is_some(), retried, "{situation}");
        assert!(!e.waiting, "{situation}");
    }
}
