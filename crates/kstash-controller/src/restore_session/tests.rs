//! Table tests of the RestoreSession reconciler's plan: situations → next step.

use jiff::Timestamp;

use super::*;

/// A status in `phase` with these conditions (True/False).
fn status(phase: Option<RestorePhase>, conditions: &[(&str, bool)]) -> RestoreSessionStatus {
    let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
    let mut st = RestoreSessionStatus {
        phase,
        ..Default::default()
    };
    for (t, ok) in conditions {
        set_cond(&mut st.conditions, now, t, *ok, "Reason", "");
    }
    st
}

fn facts(has_post_hooks: bool, prepared: bool, executor_done: bool) -> RestoreFacts {
    RestoreFacts {
        has_post_hooks,
        prepared,
        executor_done,
    }
}

#[test]
fn restore_session_step_plans() {
    use RestorePhase::{Failed, Invalid, Running, Succeeded};
    const VALID: &str = c::VALIDATION_PASSED;
    const PRE: &str = c::PRE_RESTORE_HOOKS_SUCCEEDED;
    const EXEC: &str = c::RESTORE_EXECUTOR_ENSURED;
    const POST: &str = c::POST_RESTORE_HOOKS_SUCCEEDED;
    const METRICS: &str = c::METRICS_PUSHED;
    let cases: Vec<(&str, RestoreSessionStatus, RestoreFacts, RestoreStep)> = vec![
        (
            "a new session is validated first",
            status(None, &[]),
            facts(false, false, false),
            RestoreStep::Prepare,
        ),
        (
            "an Invalid session is validated again (a missing Snapshot may appear)",
            status(Some(Invalid), &[(VALID, false)]),
            facts(false, false, false),
            RestoreStep::Prepare,
        ),
        (
            "validated in this reconcile: pre-restore hooks",
            status(Some(Running), &[(VALID, true)]),
            facts(false, true, false),
            RestoreStep::PreHooks,
        ),
        (
            "waiting on a pre hook: validated again on the next reconcile before looking at it",
            status(Some(Running), &[(VALID, true)]),
            facts(false, false, false),
            RestoreStep::Prepare,
        ),
        (
            "pre hooks succeeded: start the executor",
            status(Some(Running), &[(VALID, true), (PRE, true)]),
            facts(false, true, false),
            RestoreStep::Executor,
        ),
        (
            "executor started: wait for the components",
            status(Some(Running), &[(VALID, true), (PRE, true), (EXEC, true)]),
            facts(true, false, false),
            RestoreStep::Wait,
        ),
        (
            "components final, post hooks configured",
            status(Some(Running), &[(VALID, true), (PRE, true), (EXEC, true)]),
            facts(true, false, true),
            RestoreStep::PostHooks,
        ),
        (
            "components final, no post hooks: finish",
            status(Some(Running), &[(VALID, true), (PRE, true), (EXEC, true)]),
            facts(false, false, true),
            RestoreStep::Finish,
        ),
        (
            "post hooks done: finish",
            status(
                Some(Running),
                &[(VALID, true), (PRE, true), (EXEC, true), (POST, true)],
            ),
            facts(true, false, true),
            RestoreStep::Finish,
        ),
        (
            "pre hook failed: no executor, post hooks run (by their policy)",
            status(Some(Running), &[(VALID, true), (PRE, false)]),
            facts(true, false, false),
            RestoreStep::PostHooks,
        ),
        (
            "pre hook failed, no post hooks: finish Failed",
            status(Some(Running), &[(VALID, true), (PRE, false)]),
            facts(false, false, false),
            RestoreStep::Finish,
        ),
        (
            "the executor could not start: no waiting",
            status(Some(Running), &[(VALID, true), (PRE, true), (EXEC, false)]),
            facts(false, false, false),
            RestoreStep::Finish,
        ),
        (
            "succeeded and finished: settled",
            status(Some(Succeeded), &[(METRICS, true)]),
            facts(true, false, false),
            RestoreStep::Settled,
        ),
        (
            "failed and finished: settled",
            status(Some(Failed), &[(METRICS, true)]),
            facts(true, false, false),
            RestoreStep::Settled,
        ),
    ];
    for (what, st, f, expected) in cases {
        assert_eq!(next_restore_step(&st, &f), expected, "{what}");
    }
}
