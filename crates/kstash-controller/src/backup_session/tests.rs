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
            "executor running, no deadline: poll",
            observed(JobState::Running, false, false, None),
            WaitStep::Wait(Duration::from_secs(1)),
        ),
        (
            "executor running (or queued for a slot), deadline in 300 ms: look again at the deadline",
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
