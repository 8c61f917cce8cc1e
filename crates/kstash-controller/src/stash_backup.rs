//! Stash v1 BackupConfiguration and BackupSession reconcilers (embedded runtime): a configuration
//! gets a schedule that creates Stash BackupSessions (`<configuration>-<unix seconds>`, as Stash's
//! CronJob did); a session runs the `stash-backup` executor, which writes into the restic
//! repository Stash wrote with Stash's hosts and file names and applies the inline retention.
//! Each reconcile is resolve → pure plan ([`next_session_step`]) → apply.

use std::time::Duration;

use jiff::Timestamp;
use kstash_api::ErrorCategory;
use kstash_api::client::ResourcesExt;
use kstash_api::duration::parse_go_duration;
use kstash_api::stash::resolve::resolve_configuration;
use kstash_api::stash::{BackupConfiguration, BackupSession, BackupSessionStatus, ConfigurationStatus};
use serde_json::{Value, json};

use crate::platform::{JobPurpose, JobSpec, JobState, Platform, ScheduleSpec, TriggerTemplate};
use crate::util::{self, Requeue, Result, set_cond};

/// The schedule id of a Stash configuration (one schedule each).
pub const SCHEDULE_SESSION: &str = "stash-backup";
/// Schedules of Stash configurations are kept under `stash.appscode.com/<name>`, apart from a
/// KubeStash BackupConfiguration of the same name.
pub const INVOKER_PREFIX: &str = "stash.appscode.com/";
/// The label naming a Stash BackupSession's configuration (Stash's own).
pub const INVOKER_NAME_LABEL: &str = "stash.appscode.com/invoker-name";

/// The scheduler's invoker key for the Stash configuration `name`.
pub fn schedule_invoker(name: &str) -> String {
    format!("{INVOKER_PREFIX}{name}")
}

/// A new Stash BackupSession of configuration `bc`, named as Stash's trigger named them.
pub fn backup_session_for(namespace: &str, bc: &str, now: Timestamp) -> Value {
    json!({
        "apiVersion": "stash.appscode.com/v1beta1",
        "kind": "BackupSession",
        "metadata": {
            "name": format!("{bc}-{}", now.as_second()),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "stash.appscode.com",
                "stash.appscode.com/invoker-type": "BackupConfiguration",
                INVOKER_NAME_LABEL: bc,
            },
        },
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": bc}},
    })
}

/// Reconcile one Stash BackupConfiguration: check what it references, keep its schedule.
pub fn reconcile_stash_backup_configuration(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let invoker = schedule_invoker(name);
    let Some(bc) = p.get_as::<BackupConfiguration>(ns, name)? else {
        p.remove_schedules(ns, &invoker, &[])?;
        return Ok(Requeue::Idle);
    };
    if util::is_deleting(&bc.metadata) {
        p.remove_schedules(ns, &invoker, &[])?;
        return Ok(Requeue::Idle);
    }
    let now = p.now();
    let mut st = bc.status.clone().unwrap_or_default();
    st.observed_generation = bc.metadata.generation;
    let mut requeue = Requeue::Idle;
    match resolve_configuration(p, ns, name) {
        Ok(_) => {
            set_cond(
                &mut st.conditions,
                now,
                "RepositoryFound",
                true,
                "RepositoryAvailable",
                "",
            );
            set_cond(
                &mut st.conditions,
                now,
                "BackendSecretFound",
                true,
                "BackendSecretAvailable",
                "",
            );
            set_cond(
                &mut st.conditions,
                now,
                "BackupTargetFound",
                true,
                "TargetAvailable",
                "",
            );
            st.phase = "Ready".into();
        }
        Err(e) => {
            let (phase, retry) = match e.category() {
                ErrorCategory::NotFound => ("NotReady", true),
                _ => ("Invalid", false),
            };
            set_cond(
                &mut st.conditions,
                now,
                "ValidationPassed",
                false,
                "ReferenceNotUsable",
                e.to_string(),
            );
            st.phase = phase.into();
            p.remove_schedules(ns, &invoker, &[])?;
            save_configuration(p, bc, st)?;
            return Ok(if retry {
                Requeue::After(Duration::from_secs(10))
            } else {
                Requeue::Idle
            });
        }
    }
    if bc.spec.schedule.is_empty() {
        p.remove_schedules(ns, &invoker, &[])?;
        set_cond(
            &mut st.conditions,
            now,
            "CronJobCreated",
            false,
            "NoSchedule",
            "spec.schedule is empty; back up by creating a BackupSession",
        );
    } else {
        let schedule = ScheduleSpec {
            namespace: ns.to_string(),
            invoker: invoker.clone(),
            session: SCHEDULE_SESSION.into(),
            schedule: bc.spec.schedule.clone(),
            suspend: bc.spec.paused,
            scheduler: Default::default(),
            trigger: TriggerTemplate::default(),
            verifies: None,
        };
        match p.ensure_schedule(&schedule) {
            Ok(_) => set_cond(
                &mut st.conditions,
                now,
                "CronJobCreated",
                true,
                "CronJobCreationSucceeded",
                "",
            ),
            Err(e) => {
                set_cond(
                    &mut st.conditions,
                    now,
                    "CronJobCreated",
                    false,
                    "CronJobCreationFailed",
                    e.to_string(),
                );
                st.phase = "Invalid".into();
                requeue = Requeue::Idle;
            }
        }
    }
    save_configuration(p, bc, st)?;
    Ok(requeue)
}

fn save_configuration(p: &dyn Platform, mut bc: BackupConfiguration, st: ConfigurationStatus) -> Result<()> {
    if bc.status.as_ref() != Some(&st) {
        bc.status = Some(st);
        p.update_status_as(&bc)?;
    }
    Ok(())
}

/// The next step of a Stash BackupSession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStep {
    Settled,
    /// Skipped: `reason`.
    Skip(String),
    Fail(String),
    StartExecutor,
    Wait,
    Timeout,
    Finish {
        succeeded: bool,
        message: String,
    },
}

/// What a Stash BackupSession's reconcile observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    pub phase: String,
    /// The configuration exists (and is not being deleted).
    pub configuration_found: bool,
    pub configuration_paused: bool,
    /// Another session of the same configuration is Running.
    pub another_running: bool,
    pub job: JobState,
    /// What the executor recorded: `(succeeded, error)`.
    pub recorded: Option<(bool, String)>,
    pub deadline_passed: bool,
}

/// The pure plan of a Stash BackupSession.
pub fn next_session_step(f: &SessionFacts) -> SessionStep {
    match f.phase.as_str() {
        "Succeeded" | "Failed" | "Skipped" | "Unknown" => return SessionStep::Settled,
        "Running" => {}
        _ => {
            if !f.configuration_found {
                return SessionStep::Fail(
                    "spec.invoker names a BackupConfiguration that does not exist".into(),
                );
            }
            if f.configuration_paused {
                return SessionStep::Skip("the BackupConfiguration is paused".into());
            }
            if f.another_running {
                return SessionStep::Skip(
                    "another BackupSession of this BackupConfiguration is running".into(),
                );
            }
            return SessionStep::StartExecutor;
        }
    }
    match (&f.job, &f.recorded) {
        (JobState::Running, _) if f.deadline_passed => SessionStep::Timeout,
        (JobState::Running, _) => SessionStep::Wait,
        (_, Some((ok, error))) => SessionStep::Finish {
            succeeded: *ok,
            message: error.clone(),
        },
        (JobState::Failed(m), None) => SessionStep::Finish {
            succeeded: false,
            message: m.clone(),
        },
        (JobState::Succeeded, None) => SessionStep::Finish {
            succeeded: false,
            message: "the executor finished without recording the backup".into(),
        },
        (JobState::Missing, None) => SessionStep::Finish {
            succeeded: false,
            message: "the backup executor vanished (the daemon restarted?) before it finished".into(),
        },
    }
}

/// The executor job of a Stash BackupSession (Stash's `stash-backup-<session>-<target index>`).
pub fn job_name(session: &str) -> String {
    format!("stash-backup-{session}-0")
}

/// What the executor wrote in `status.targets[0]`.
fn recorded(status: &BackupSessionStatus) -> Option<(bool, String)> {
    let target = status.targets.first()?;
    let phase = target["phase"].as_str()?;
    let error = target["stats"][0]["error"].as_str().unwrap_or("").to_string();
    Some((phase == "Succeeded", error))
}

/// Reconcile one Stash BackupSession.
pub fn reconcile_stash_backup_session(p: &dyn Platform, ns: &str, name: &str) -> Result<Requeue> {
    let Some(bs) = p.get_as::<BackupSession>(ns, name)? else {
        return Ok(Requeue::Idle);
    };
    let object = format!("BackupSession.stash.appscode.com {ns}/{name}");
    let job = job_name(name);
    let now = p.now();
    let mut st = bs.status.clone().unwrap_or_default();
    let invoker = bs.spec.invoker.name.clone();
    let bc = p.get_as::<BackupConfiguration>(ns, &invoker)?;
    let created = bs
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let deadline = bc
        .as_ref()
        .and_then(|bc| parse_go_duration(&bc.spec.time_out).ok())
        .filter(|d| !d.is_zero())
        .and_then(|d| created.checked_add(jiff::SignedDuration::try_from(d).ok()?).ok());
    let pending = st.phase.is_empty() || st.phase == "Pending";
    let another_running = pending
        && p.list_as::<BackupSession>(Some(ns), &[])?.iter().any(|o| {
            o.spec.invoker.name == invoker
                && o.metadata.name.as_deref() != Some(name)
                && o.status.as_ref().is_some_and(|s| s.phase == "Running")
        });
    let facts = SessionFacts {
        phase: st.phase.clone(),
        configuration_found: bc.as_ref().is_some_and(|b| !util::is_deleting(&b.metadata)),
        configuration_paused: bc.as_ref().is_some_and(|b| b.spec.paused),
        another_running,
        job: if st.phase == "Running" {
            p.job_state(ns, &job)
        } else {
            JobState::Missing
        },
        recorded: recorded(&st),
        deadline_passed: deadline.is_some_and(|d| now >= d),
    };
    let step = next_session_step(&facts);
    tracing::debug!(?step, "stash backup session step");
    match step {
        SessionStep::Settled => return Ok(Requeue::Idle),
        SessionStep::Wait => return Ok(Requeue::After(Duration::from_secs(2))),
        SessionStep::Skip(reason) => {
            st.phase = "Skipped".into();
            set_cond(
                &mut st.conditions,
                now,
                "BackupSkipped",
                true,
                "SkippedTakingNewBackup",
                reason,
            );
        }
        SessionStep::Fail(message) => {
            p.event(&object, true, "BackupFailed", &message);
            st.phase = "Failed".into();
            set_cond(
                &mut st.conditions,
                now,
                "BackupExecutorEnsured",
                false,
                "InvokerNotFound",
                message,
            );
        }
        SessionStep::StartExecutor => {
            p.start_job(&JobSpec {
                name: job.clone(),
                namespace: ns.to_string(),
                purpose: JobPurpose::StashBackup {
                    backup_session: name.to_string(),
                },
                labels: [(INVOKER_NAME_LABEL.to_string(), invoker.clone())].into(),
                deadline,
            })?;
            st.phase = "Running".into();
            st.session_deadline = deadline.map(util::time);
            set_cond(
                &mut st.conditions,
                now,
                "BackupExecutorEnsured",
                true,
                "SuccessfullyEnsuredBackupExecutor",
                format!("started the backup executor {job}"),
            );
            save_session(p, bs, st)?;
            return Ok(Requeue::After(Duration::from_secs(1)));
        }
        SessionStep::Timeout => {
            p.stop_job(ns, &job, "the BackupConfiguration's timeOut passed")?;
            st.phase = "Failed".into();
            set_cond(
                &mut st.conditions,
                now,
                "DeadlineExceeded",
                true,
                "FailedToCompleteWithinDeadline",
                "spec.timeOut passed",
            );
        }
        SessionStep::Finish { succeeded, message } => {
            st.phase = if succeeded { "Succeeded" } else { "Failed" }.into();
            if !succeeded {
                p.event(&object, true, "BackupFailed", &message);
            }
        }
    }
    st.session_duration = util::go_duration(now.duration_since(created).unsigned_abs());
    save_session(p, bs, st)?;
    if let Some(bc) = bc {
        clean_history(p, ns, &invoker, bc.spec.backup_history_limit.unwrap_or(1))?;
    }
    Ok(Requeue::Idle)
}

fn save_session(p: &dyn Platform, mut bs: BackupSession, st: BackupSessionStatus) -> Result<()> {
    if bs.status.as_ref() != Some(&st) {
        bs.status = Some(st);
        p.update_status_as(&bs)?;
    }
    Ok(())
}

/// Keep the newest `limit` finished sessions of configuration `invoker` (Stash's
/// `backupHistoryLimit`, default 1); delete the older ones with their executors.
fn clean_history(p: &dyn Platform, ns: &str, invoker: &str, limit: i32) -> Result<()> {
    let mut finished: Vec<BackupSession> = p
        .list_as::<BackupSession>(Some(ns), &[])?
        .into_iter()
        .filter(|s| {
            s.spec.invoker.name == invoker
                && s.status
                    .as_ref()
                    .is_some_and(|st| matches!(st.phase.as_str(), "Succeeded" | "Failed" | "Skipped"))
        })
        .collect();
    finished.sort_by_key(|s| {
        std::cmp::Reverse((
            s.metadata.creation_timestamp.clone().map(|t| t.0),
            s.metadata.name.clone(),
        ))
    });
    for old in finished.iter().skip(limit.max(0) as usize) {
        let name = old.metadata.name.clone().unwrap_or_default();
        p.delete_job(ns, &job_name(&name))?;
        p.delete(&kstash_api::meta::STASH_BACKUP_SESSION, ns, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(phase: &str) -> SessionFacts {
        SessionFacts {
            phase: phase.into(),
            configuration_found: true,
            configuration_paused: false,
            another_running: false,
            job: JobState::Missing,
            recorded: None,
            deadline_passed: false,
        }
    }

    #[test]
    fn stash_backup_session_steps() {
        let with = |phase: &str, f: &dyn Fn(&mut SessionFacts)| {
            let mut x = facts(phase);
            f(&mut x);
            x
        };
        let fin = |succeeded: bool, message: &str| SessionStep::Finish {
            succeeded,
            message: message.into(),
        };
        let cases: Vec<(&str, SessionFacts, SessionStep)> = vec![
            ("new session", facts(""), SessionStep::StartExecutor),
            (
                "configuration gone",
                with("", &|f| f.configuration_found = false),
                SessionStep::Fail("spec.invoker names a BackupConfiguration that does not exist".into()),
            ),
            (
                "paused",
                with("Pending", &|f| f.configuration_paused = true),
                SessionStep::Skip("the BackupConfiguration is paused".into()),
            ),
            (
                "another running",
                with("", &|f| f.another_running = true),
                SessionStep::Skip("another BackupSession of this BackupConfiguration is running".into()),
            ),
            (
                "executor running",
                with("Running", &|f| f.job = JobState::Running),
                SessionStep::Wait,
            ),
            (
                "past the deadline",
                with("Running", &|f| {
                    f.job = JobState::Running;
                    f.deadline_passed = true;
                }),
                SessionStep::Timeout,
            ),
            (
                "recorded success",
                with("Running", &|f| {
                    f.job = JobState::Succeeded;
                    f.recorded = Some((true, String::new()));
                }),
                fin(true, ""),
            ),
            (
                "recorded failure",
                with("Running", &|f| {
                    f.job = JobState::Failed("exit 1".into());
                    f.recorded = Some((false, "pg_dump exited 1".into()));
                }),
                fin(false, "pg_dump exited 1"),
            ),
            (
                "failed before recording",
                with("Running", &|f| f.job = JobState::Failed("exit 2".into())),
                fin(false, "exit 2"),
            ),
            (
                "exited 0 without recording",
                with("Running", &|f| f.job = JobState::Succeeded),
                fin(false, "the executor finished without recording the backup"),
            ),
            (
                "vanished",
                with("Running", &|_| {}),
                fin(
                    false,
                    "the backup executor vanished (the daemon restarted?) before it finished",
                ),
            ),
            (
                "recorded, then the daemon restarted",
                with("Running", &|f| f.recorded = Some((true, String::new()))),
                fin(true, ""),
            ),
            (
                "finished is final",
                with("Succeeded", &|f| f.job = JobState::Running),
                SessionStep::Settled,
            ),
            ("skipped is final", with("Skipped", &|_| {}), SessionStep::Settled),
        ];
        for (what, f, want) in cases {
            assert_eq!(next_session_step(&f), want, "{what}");
        }
    }

    #[test]
    fn sessions_are_named_and_labelled_as_stash_named_them() {
        let bs = backup_session_for(
            "demo",
            "sample-postgres-backup",
            Timestamp::from_second(1_700_000_000).unwrap(),
        );
        assert_eq!(bs["metadata"]["name"], "sample-postgres-backup-1700000000");
        assert_eq!(
            bs["metadata"]["labels"][INVOKER_NAME_LABEL],
            "sample-postgres-backup"
        );
        assert_eq!(bs["spec"]["invoker"]["kind"], "BackupConfiguration");
        assert_eq!(schedule_invoker("x"), "stash.appscode.com/x");
    }
}
