//! Stash v1 RestoreSession reconciler: resolve (the Stash Repository, its Secret, the target and
//! the addon) → pure plan ([`next_step`]) → apply: start the `stash-restore` executor, wait for
//! it (or the session's `timeOut`), and set Stash's phase, conditions and `sessionDuration`.
//!
//! A missing referent (Repository, Secret, AppBinding) keeps the session Pending until it is
//! applied, as Stash waits; a reference kstash cannot use makes it Invalid; the executor's
//! outcome makes it Succeeded or Failed. The restore reads the repository only (the executor's
//! module says how).

use std::time::Duration;

use kstash_api::ErrorCategory;
use kstash_api::client::ResourcesExt;
use kstash_api::duration::parse_go_duration;
use kstash_api::stash::resolve::resolve_restore;
use kstash_api::stash::{HostRestoreStats, RestoreSession, RestoreSessionStatus};

use crate::platform::{JobPurpose, JobSpec, JobState, Platform};
use crate::util::{self, Requeue, Result, set_cond};

/// Stash's condition: the executor Job was created.
pub const RESTORE_EXECUTOR_ENSURED: &str = "RestoreExecutorEnsured";
/// Stash's condition: the restore finished (True) or failed (False).
pub const RESTORE_COMPLETED: &str = "RestoreCompleted";
/// kstash's condition while a referent is missing.
pub const REFERENCES_FOUND: &str = "ReferencesFound";

/// What resolving the session found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Ready,
    /// A referent does not exist yet (retry later).
    Missing(String),
    /// A reference kstash cannot use (final).
    Invalid(String),
}

/// The next step for a Stash RestoreSession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Finished; nothing to do.
    Settled,
    /// Wait for a missing referent, say which.
    WaitForReferences(String),
    /// The session cannot run.
    Invalid(String),
    /// Start the executor.
    StartExecutor,
    /// The executor runs.
    Wait,
    /// Stop the executor: the deadline passed.
    Timeout,
    /// Record the outcome.
    Finish { succeeded: bool, message: String },
}

/// The pure plan: from the phase, what resolving found, the executor's state, the per-host stats
/// the executor wrote and whether `timeOut` passed.
pub fn next_step(
    phase: &str,
    resolution: &Resolution,
    job: &JobState,
    stats: &[HostRestoreStats],
    deadline_passed: bool,
) -> Step {
    match phase {
        "Succeeded" | "Failed" | "Invalid" | "Unknown" => return Step::Settled,
        "Running" => {}
        _ => {
            return match resolution {
                Resolution::Ready => Step::StartExecutor,
                Resolution::Missing(m) => Step::WaitForReferences(m.clone()),
                Resolution::Invalid(m) => Step::Invalid(m.clone()),
            };
        }
    }
    let host_error = || {
        stats
            .iter()
            .filter(|s| s.phase == "Failed")
            .map(|s| format!("host {}: {}", s.hostname, s.error))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let all_succeeded = !stats.is_empty() && stats.iter().all(|s| s.phase == "Succeeded");
    match job {
        JobState::Running if deadline_passed => Step::Timeout,
        JobState::Running => Step::Wait,
        JobState::Succeeded if all_succeeded => Step::Finish {
            succeeded: true,
            message: String::new(),
        },
        JobState::Succeeded => Step::Finish {
            succeeded: false,
            message: "the executor finished without recording every host's restore".into(),
        },
        JobState::Failed(m) => Step::Finish {
            succeeded: false,
            message: match host_error() {
                e if e.is_empty() => m.clone(),
                e => e,
            },
        },
        // Its outcome is in the stats if it wrote one before the daemon restarted.
        JobState::Missing if all_succeeded => Step::Finish {
            succeeded: true,
            message: String::new(),
        },
        JobState::Missing => Step::Finish {
            succeeded: false,
            message: match host_error() {
                e if e.is_empty() => "the restore executor vanished (the daemon restarted?) before it finished; apply the RestoreSession again under a new name".into(),
                e => e,
            },
        },
    }
}

/// The executor job's name (Stash's `stash-restore-<session>-<target index>`).
pub fn job_name(session: &str) -> String {
    format!("stash-restore-{session}-0")
}

/// Reconcile one Stash RestoreSession.
pub fn reconcile_stash_restore(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(rs) = p.get_as::<RestoreSession>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let object = format!("RestoreSession.stash.appscode.com {ns}/{name}");
    let job = job_name(name);
    let now = p.now();
    let created = rs
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let deadline = parse_go_duration(&rs.spec.time_out)
        .ok()
        .filter(|d| !d.is_zero())
        .and_then(|d| created.checked_add(jiff::SignedDuration::try_from(d).ok()?).ok());
    let mut st = rs.status.clone().unwrap_or_default();
    let phase = st.phase.clone();
    let resolution = if phase.is_empty() || phase == "Pending" {
        match resolve_restore(p, ns, name) {
            Ok(_) => Resolution::Ready,
            Err(e) if e.category() == ErrorCategory::NotFound => Resolution::Missing(e.to_string()),
            Err(e) if e.category() == ErrorCategory::Invalid => Resolution::Invalid(e.to_string()),
            Err(e) => return Err(crate::platform::PlatformError::of(e.category(), e.to_string()).into()),
        }
    } else {
        Resolution::Ready
    };
    let job_state = if phase == "Running" {
        p.job_state(ns, &job)
    } else {
        JobState::Missing
    };
    let step = next_step(
        &phase,
        &resolution,
        &job_state,
        &st.stats,
        deadline.is_some_and(|d| now >= d),
    );
    tracing::debug!(?step, "stash restore session step");
    match step {
        Step::Settled => return Ok(Requeue::Idle),
        Step::Wait => {
            return Ok(Requeue::After(Duration::from_secs(2)));
        }
        Step::WaitForReferences(message) => {
            st.phase = "Pending".into();
            set_cond(
                &mut st.conditions,
                now,
                REFERENCES_FOUND,
                false,
                "NotFound",
                message,
            );
            save(p, rs, st)?;
            return Ok(Requeue::After(Duration::from_secs(5)));
        }
        Step::Invalid(message) => {
            p.event(&object, true, "Invalid", &message);
            st.phase = "Invalid".into();
            set_cond(
                &mut st.conditions,
                now,
                RESTORE_COMPLETED,
                false,
                "Invalid",
                message,
            );
        }
        Step::StartExecutor => {
            set_cond(&mut st.conditions, now, REFERENCES_FOUND, true, "Found", "");
            p.start_job(&JobSpec {
                name: job.clone(),
                namespace: ns.to_string(),
                purpose: JobPurpose::StashRestore {
                    restore_session: name.to_string(),
                },
                labels: [
                    (
                        "stash.appscode.com/invoker-type".to_string(),
                        "RestoreSession".to_string(),
                    ),
                    ("stash.appscode.com/invoker-name".to_string(), name.to_string()),
                ]
                .into(),
                deadline,
            })?;
            st.phase = "Running".into();
            st.total_hosts = Some(1);
            st.session_deadline = deadline.map(util::time);
            set_cond(
                &mut st.conditions,
                now,
                RESTORE_EXECUTOR_ENSURED,
                true,
                "SuccessfullyEnsuredRestoreExecutor",
                format!("started the restore executor {job}"),
            );
            p.event(
                &object,
                false,
                "RestoreExecutorEnsured",
                &format!("started {job}"),
            );
            save(p, rs, st)?;
            return Ok(Requeue::After(Duration::from_secs(1)));
        }
        Step::Timeout => {
            p.stop_job(ns, &job, "the RestoreSession's timeOut passed")?;
            st.phase = "Failed".into();
            set_cond(
                &mut st.conditions,
                now,
                RESTORE_COMPLETED,
                false,
                "DeadlineExceeded",
                format!(
                    "spec.timeOut {} passed before the restore finished",
                    rs.spec.time_out
                ),
            );
        }
        Step::Finish { succeeded, message } => {
            st.phase = if succeeded { "Succeeded" } else { "Failed" }.into();
            if !succeeded {
                p.event(&object, true, "RestoreFailed", &message);
            }
            set_cond(
                &mut st.conditions,
                now,
                RESTORE_COMPLETED,
                succeeded,
                if succeeded {
                    "RestoreSucceeded"
                } else {
                    "RestoreFailed"
                },
                message,
            );
        }
    }
    st.session_duration = util::go_duration(
        now.duration_since(created)
            .unsigned_abs()
            .min(Duration::from_secs(100 * 365 * 86400)),
    );
    save(p, rs, st)?;
    Ok(Requeue::Idle)
}

fn save(p: &dyn Platform, mut rs: RestoreSession, st: RestoreSessionStatus) -> Result<()> {
    if rs.status.as_ref() != Some(&st) {
        rs.status = Some(st);
        p.update_status_as(&rs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(phase: &str, error: &str) -> HostRestoreStats {
        HostRestoreStats {
            hostname: "host-0".into(),
            phase: phase.into(),
            duration: "1s".into(),
            error: error.into(),
        }
    }

    #[test]
    fn stash_restore_steps() {
        let ready = Resolution::Ready;
        let missing = Resolution::Missing("Repository demo/r not found".into());
        let invalid = Resolution::Invalid("no addon for mongodb".into());
        let ok = vec![host("Succeeded", "")];
        let failed = vec![host("Failed", "psql exited 3")];
        let running = vec![host("Running", "")];
        let fin = |succeeded: bool, message: &str| Step::Finish {
            succeeded,
            message: message.into(),
        };
        // (situation, phase, resolution, job, stats, deadline passed, expected step)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a Resolution,
            JobState,
            &'a [HostRestoreStats],
            bool,
            Step,
        );
        let cases: Vec<Case> = vec![
            (
                "new and ready",
                "",
                &ready,
                JobState::Missing,
                &[],
                false,
                Step::StartExecutor,
            ),
            (
                "pending, referent missing",
                "Pending",
                &missing,
                JobState::Missing,
                &[],
                false,
                Step::WaitForReferences("Repository demo/r not found".into()),
            ),
            (
                "unusable reference",
                "",
                &invalid,
                JobState::Missing,
                &[],
                false,
                Step::Invalid("no addon for mongodb".into()),
            ),
            (
                "executor running",
                "Running",
                &ready,
                JobState::Running,
                &[],
                false,
                Step::Wait,
            ),
            (
                "executor running past the deadline",
                "Running",
                &ready,
                JobState::Running,
                &[],
                true,
                Step::Timeout,
            ),
            (
                "executor succeeded",
                "Running",
                &ready,
                JobState::Succeeded,
                &ok,
                false,
                fin(true, ""),
            ),
            (
                "executor exited 0 without stats",
                "Running",
                &ready,
                JobState::Succeeded,
                &[],
                false,
                fin(
                    false,
                    "the executor finished without recording every host's restore",
                ),
            ),
            (
                "executor failed with a host error",
                "Running",
                &ready,
                JobState::Failed("exit 1".into()),
                &failed,
                false,
                fin(false, "host host-0: psql exited 3"),
            ),
            (
                "executor failed before writing stats",
                "Running",
                &ready,
                JobState::Failed("exit 1".into()),
                &[],
                false,
                fin(false, "exit 1"),
            ),
            (
                "daemon restarted after success",
                "Running",
                &ready,
                JobState::Missing,
                &ok,
                false,
                fin(true, ""),
            ),
            (
                "executor vanished mid-restore",
                "Running",
                &ready,
                JobState::Missing,
                &running,
                false,
                fin(
                    false,
                    "the restore executor vanished (the daemon restarted?) before it finished; apply the RestoreSession again under a new name",
                ),
            ),
            (
                "succeeded is final",
                "Succeeded",
                &ready,
                JobState::Missing,
                &ok,
                false,
                Step::Settled,
            ),
            (
                "failed is final",
                "Failed",
                &invalid,
                JobState::Running,
                &[],
                true,
                Step::Settled,
            ),
            (
                "invalid is final",
                "Invalid",
                &ready,
                JobState::Missing,
                &[],
                false,
                Step::Settled,
            ),
        ];
        for (what, phase, resolution, job, stats, late, want) in cases {
            assert_eq!(next_step(phase, resolution, &job, stats, late), want, "{what}");
        }
    }
}
