//! The hook step of a session, off the reconcile worker: [`plan`] decides (purely, from the hooks,
//! the statuses recorded so far and the states of their tracked tasks) which hook starts next,
//! whether to wait, or how the step ended; [`run_step`] applies that plan — it starts a hook as a
//! tracked task and returns at once, so a hook that takes minutes holds no worker.
//!
//! A hook's status is `Pending` while its task runs. After a daemon restart the task is gone
//! ([`TaskState::Unknown`]) while the status still says `Pending`: the hook counts as failed
//! ("interrupted"), and the session goes on as its executionPolicy says, never staying Running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kstash_api::client::ResourcesExt;
use kstash_api::common::{HookExecutionPhase, HookExecutionStatus, HookInfo};
use kstash_api::core::HookTemplate;

use crate::hooks::{self, Summary};
use crate::platform::{HookCommands, Platform};
use crate::tasks::{TaskState, TaskTracker};
use crate::util;

/// How soon a session waiting on a hook looks again.
pub const HOOK_POLL: Duration = Duration::from_millis(250);

/// What the hook step does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStep {
    /// Start the hook at this index of the list as a tracked task.
    Start(usize),
    /// A hook is running: look again later.
    Wait,
    /// Every hook that should run succeeded.
    Succeeded,
    /// A hook failed (the first failure stops the rest); the message names it.
    Failed(String),
}

/// The plan of one hook step: the statuses to record and what to do next. `outcome` filters post
/// hooks by executionPolicy (`Some(session succeeded)`); pre hooks pass `None`. `task` gives the
/// state of a hook's task by hook name.
pub fn plan(
    hooks_list: &[HookInfo],
    recorded: &[HookExecutionStatus],
    outcome: Option<bool>,
    task: &dyn Fn(&str) -> TaskState,
) -> (Vec<HookExecutionStatus>, HookStep) {
    let mut statuses: Vec<HookExecutionStatus> = Vec::new();
    let status = |name: &str, phase| HookExecutionStatus {
        name: name.to_string(),
        phase: Some(phase),
    };
    for (i, h) in hooks_list.iter().enumerate() {
        if let Some(ok) = outcome
            && !hooks::should_run(h.execution_policy, ok)
        {
            continue;
        }
        let before = recorded.iter().find(|r| r.name == h.name).and_then(|r| r.phase);
        match (before, task(&h.name)) {
            (Some(HookExecutionPhase::Succeeded), _) => {
                statuses.push(status(&h.name, HookExecutionPhase::Succeeded));
            }
            (Some(HookExecutionPhase::Failed), TaskState::Finished(Err(message))) => {
                statuses.push(status(&h.name, HookExecutionPhase::Failed));
                return (statuses, HookStep::Failed(message));
            }
            (Some(HookExecutionPhase::Failed), _) => {
                statuses.push(status(&h.name, HookExecutionPhase::Failed));
                return (statuses, HookStep::Failed(format!("hook \"{}\" failed", h.name)));
            }
            (_, TaskState::Running) => {
                statuses.push(status(&h.name, HookExecutionPhase::Pending));
                return (statuses, HookStep::Wait);
            }
            (_, TaskState::Finished(Ok(_))) => {
                statuses.push(status(&h.name, HookExecutionPhase::Succeeded));
            }
            (_, TaskState::Finished(Err(message))) => {
                statuses.push(status(&h.name, HookExecutionPhase::Failed));
                return (statuses, HookStep::Failed(message));
            }
            (Some(HookExecutionPhase::Pending), TaskState::Unknown) => {
                statuses.push(status(&h.name, HookExecutionPhase::Failed));
                return (
                    statuses,
                    HookStep::Failed(format!(
                        "hook \"{}\" was interrupted: kstash restarted while it ran, so its outcome is \
                         unknown; the next session runs it again",
                        h.name
                    )),
                );
            }
            (None, TaskState::Unknown) => {
                statuses.push(status(&h.name, HookExecutionPhase::Pending));
                return (statuses, HookStep::Start(i));
            }
        }
    }
    (statuses, HookStep::Succeeded)
}

/// The prefix of the tracked task ids of one hook stage of a session: `<kind>/<uid>/<pre|post>`
/// (a hook's task is `<prefix>/<hook name>`).
pub fn task_prefix(session_kind: &str, uid: &str, stage: &str) -> String {
    format!("{session_kind}/{uid}/{stage}")
}

/// One hook step of a session, applied: plans, starts a hook's task when the plan says so, and
/// returns the statuses to record and the step (never [`HookStep::Start`]: a started hook is
/// `Wait`). `task_prefix` comes from [`task_prefix`]. The caller records the statuses,
/// then calls [`forget_finished`] once they are saved.
pub fn run_step(
    p: &dyn Platform,
    ns: &str,
    hooks_list: &[HookInfo],
    recorded: &[HookExecutionStatus],
    summary: &Summary,
    outcome: Option<bool>,
    task_prefix: &str,
) -> (Vec<HookExecutionStatus>, HookStep) {
    let tasks = p.tasks();
    let id = |hook: &str| format!("{task_prefix}/{hook}");
    let (mut statuses, step) = plan(hooks_list, recorded, outcome, &|h| tasks.state(&id(h)));
    let HookStep::Start(i) = step else {
        return (statuses, step);
    };
    let hook = &hooks_list[i];
    match start(p, tasks, ns, hook, summary, &id(&hook.name)) {
        Ok(()) => (statuses, HookStep::Wait),
        Err(message) => {
            if let Some(last) = statuses.last_mut() {
                last.phase = Some(HookExecutionPhase::Failed);
            }
            p.event(&format!("hook {ns}/{}", hook.name), true, "HookFailed", &message);
            (statuses, HookStep::Failed(message))
        }
    }
}

/// One hook stage of a session: which hooks, where their tasks live, which condition records it.
#[derive(Debug, Clone)]
pub struct Stage<'a> {
    pub hooks: &'a [HookInfo],
    /// From [`task_prefix`].
    pub task_prefix: String,
    /// The condition the finished stage sets, and its reasons.
    pub condition: &'static str,
    pub ok_reason: &'static str,
    pub failed_reason: &'static str,
    /// Post hooks: the session's outcome so far (filters by executionPolicy); pre hooks: `None`.
    pub outcome: Option<bool>,
}

/// Drive one stage: start or look at its hooks, record their statuses in `recorded` and, once the
/// stage finished, its condition. Returns whether it finished. The caller saves the status, then
/// calls [`forget_finished`].
pub fn drive(
    p: &dyn Platform,
    ns: &str,
    stage: &Stage<'_>,
    summary: &Summary,
    recorded: &mut Vec<HookExecutionStatus>,
    conditions: &mut Vec<kstash_api::common::Condition>,
    now: jiff::Timestamp,
) -> bool {
    let (statuses, step) = run_step(
        p,
        ns,
        stage.hooks,
        recorded,
        summary,
        stage.outcome,
        &stage.task_prefix,
    );
    *recorded = statuses;
    set_stage_condition(
        conditions,
        now,
        stage.condition,
        &step,
        stage.ok_reason,
        stage.failed_reason,
    )
}

/// Record a finished hook stage as its condition (True with `ok_reason`, or False with
/// `failed_reason` and the failure); returns false, setting nothing, while the stage waits.
pub fn set_stage_condition(
    conditions: &mut Vec<kstash_api::common::Condition>,
    now: jiff::Timestamp,
    type_: &str,
    step: &HookStep,
    ok_reason: &str,
    failed_reason: &str,
) -> bool {
    match step {
        HookStep::Start(_) | HookStep::Wait => false,
        HookStep::Succeeded => {
            util::set_cond(conditions, now, type_, true, ok_reason, "");
            true
        }
        HookStep::Failed(message) => {
            util::set_cond(conditions, now, type_, false, failed_reason, message.clone());
            true
        }
    }
}

/// Forget the tasks of a stage whose outcome `saved` (the statuses just saved) records. A task
/// that finished after the plan looked at it is kept: its outcome is not saved yet, and forgetting
/// it would make it read as interrupted.
pub fn forget_finished(tasks: &TaskTracker, stage: &Stage<'_>, saved: &[HookExecutionStatus]) {
    for h in stage.hooks {
        let recorded = saved.iter().any(|r| {
            r.name == h.name
                && matches!(
                    r.phase,
                    Some(HookExecutionPhase::Succeeded | HookExecutionPhase::Failed)
                )
        });
        if recorded {
            tasks.forget(&format!("{}/{}", stage.task_prefix, h.name));
        }
    }
}

/// Read the hook's template (on the worker: a quick read) and start the hook as a task.
fn start(
    p: &dyn Platform,
    tasks: &TaskTracker,
    ns: &str,
    hook: &HookInfo,
    summary: &Summary,
    id: &str,
) -> Result<(), String> {
    let r = hook
        .hook_template
        .as_ref()
        .ok_or_else(|| format!("hook \"{}\": hookTemplate is required", hook.name))?;
    let tns = util::ns_or(&r.namespace, ns);
    let template = p
        .get_as::<HookTemplate>(tns, &r.name)
        .map_err(|e| format!("hook \"{}\": {e}", hook.name))?
        .ok_or_else(|| {
            format!(
                "hook \"{}\": HookTemplate {tns}/{} not found; fix: create it or correct hookTemplate",
                hook.name, r.name
            )
        })?;
    let commands: Arc<dyn HookCommands> = p.hook_commands();
    let (hook, summary, ns, event_ns) = (hook.clone(), summary.clone(), ns.to_string(), ns.to_string());
    tracing::info!(hook = %hook.name, task = id, "hook started");
    tasks.start(id, move || {
        let exec = |cmd: &[String], env: &BTreeMap<String, String>, timeout: Duration| {
            commands.exec(&ns, cmd, env, timeout)
        };
        hooks::execute(&hook, &template, &summary, &exec)
            .map(|()| String::new())
            .map_err(|e| {
                tracing::warn!(hook = %format!("{event_ns}/{}", hook.name), error = %e, "hook failed");
                e.to_string()
            })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use kstash_api::common::HookExecutionPolicy;

    use super::*;
    use HookExecutionPhase::{Failed, Pending, Succeeded};

    fn hook(name: &str, policy: Option<HookExecutionPolicy>) -> HookInfo {
        HookInfo {
            name: name.into(),
            execution_policy: policy,
            ..Default::default()
        }
    }

    fn rec(name: &str, phase: HookExecutionPhase) -> HookExecutionStatus {
        HookExecutionStatus {
            name: name.into(),
            phase: Some(phase),
        }
    }

    /// A situation: the hooks, what status recorded, each hook's task state, the session outcome
    /// (post hooks) → the statuses and the step.
    struct Case {
        what: &'static str,
        hooks: Vec<HookInfo>,
        recorded: Vec<HookExecutionStatus>,
        tasks: Vec<(&'static str, TaskState)>,
        outcome: Option<bool>,
        statuses: Vec<HookExecutionStatus>,
        step: HookStep,
    }

    fn ok() -> TaskState {
        TaskState::Finished(Ok(String::new()))
    }
    fn err(m: &str) -> TaskState {
        TaskState::Finished(Err(m.into()))
    }

    #[test]
    fn a_task_that_finishes_after_the_plan_is_not_forgotten_before_its_outcome_is_saved() {
        let tasks = TaskTracker::new();
        let hooks = [hook("a", None)];
        let stage = Stage {
            hooks: &hooks,
            task_prefix: task_prefix("BackupSession", "uid", "post"),
            condition: "PostBackupHooksExecutionSucceeded",
            ok_reason: "ok",
            failed_reason: "failed",
            outcome: Some(true),
        };
        // Started and recorded Pending; the task finishes before the caller forgets.
        tasks.start("BackupSession/uid/post/a", || Ok(String::new()));
        while tasks.state("BackupSession/uid/post/a") == TaskState::Running {
            std::thread::yield_now();
        }
        forget_finished(&tasks, &stage, &[rec("a", Pending)]);
        assert_eq!(
            tasks.state("BackupSession/uid/post/a"),
            TaskState::Finished(Ok(String::new())),
            "the outcome must survive until it is saved"
        );
        forget_finished(&tasks, &stage, &[rec("a", Succeeded)]);
        assert_eq!(tasks.state("BackupSession/uid/post/a"), TaskState::Unknown);
    }

    #[test]
    fn hook_step_plans() {
        use HookExecutionPolicy::{Always, OnFailure, OnSuccess};
        let interrupted = "hook \"a\" was interrupted: kstash restarted while it ran, so its outcome is unknown; the next session runs it again";
        let cases = vec![
            Case {
                what: "no hooks: done at once",
                hooks: vec![],
                recorded: vec![],
                tasks: vec![],
                outcome: None,
                statuses: vec![],
                step: HookStep::Succeeded,
            },
            Case {
                what: "first hook not started: start it, recorded Pending",
                hooks: vec![hook("a", None), hook("b", None)],
                recorded: vec![],
                tasks: vec![],
                outcome: None,
                statuses: vec![rec("a", Pending)],
                step: HookStep::Start(0),
            },
            Case {
                what: "first hook running: wait",
                hooks: vec![hook("a", None), hook("b", None)],
                recorded: vec![rec("a", Pending)],
                tasks: vec![("a", TaskState::Running)],
                outcome: None,
                statuses: vec![rec("a", Pending)],
                step: HookStep::Wait,
            },
            Case {
                what: "first hook succeeded: start the second",
                hooks: vec![hook("a", None), hook("b", None)],
                recorded: vec![rec("a", Pending)],
                tasks: vec![("a", ok())],
                outcome: None,
                statuses: vec![rec("a", Succeeded), rec("b", Pending)],
                step: HookStep::Start(1),
            },
            Case {
                what: "first hook failed: the rest do not run",
                hooks: vec![hook("a", None), hook("b", None)],
                recorded: vec![rec("a", Pending)],
                tasks: vec![("a", err("hook \"a\" failed after 1 attempt: exit 1"))],
                outcome: None,
                statuses: vec![rec("a", Failed)],
                step: HookStep::Failed("hook \"a\" failed after 1 attempt: exit 1".into()),
            },
            Case {
                what: "every hook recorded Succeeded (tasks forgotten): done",
                hooks: vec![hook("a", None), hook("b", None)],
                recorded: vec![rec("a", Succeeded), rec("b", Succeeded)],
                tasks: vec![],
                outcome: None,
                statuses: vec![rec("a", Succeeded), rec("b", Succeeded)],
                step: HookStep::Succeeded,
            },
            Case {
                what: "daemon restarted while the hook ran: failed, interrupted",
                hooks: vec![hook("a", None)],
                recorded: vec![rec("a", Pending)],
                tasks: vec![],
                outcome: None,
                statuses: vec![rec("a", Failed)],
                step: HookStep::Failed(interrupted.into()),
            },
            Case {
                what: "a hook recorded Failed before a restart stays failed",
                hooks: vec![hook("a", None)],
                recorded: vec![rec("a", Failed)],
                tasks: vec![],
                outcome: None,
                statuses: vec![rec("a", Failed)],
                step: HookStep::Failed("hook \"a\" failed".into()),
            },
            Case {
                what: "post hooks after a success skip OnFailure ones",
                hooks: vec![
                    hook("f", Some(OnFailure)),
                    hook("s", Some(OnSuccess)),
                    hook("x", Some(Always)),
                ],
                recorded: vec![],
                tasks: vec![],
                outcome: Some(true),
                statuses: vec![rec("s", Pending)],
                step: HookStep::Start(1),
            },
            Case {
                what: "post hooks after a failure run OnFailure and Always (unset = Always)",
                hooks: vec![
                    hook("s", Some(OnSuccess)),
                    hook("f", Some(OnFailure)),
                    hook("u", None),
                ],
                recorded: vec![rec("f", Succeeded)],
                tasks: vec![],
                outcome: Some(false),
                statuses: vec![rec("f", Succeeded), rec("u", Pending)],
                step: HookStep::Start(2),
            },
            Case {
                what: "post hooks all filtered out: done",
                hooks: vec![hook("s", Some(OnSuccess))],
                recorded: vec![],
                tasks: vec![],
                outcome: Some(false),
                statuses: vec![],
                step: HookStep::Succeeded,
            },
        ];
        for c in cases {
            let task = |name: &str| {
                c.tasks
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or(TaskState::Unknown)
            };
            let (statuses, step) = plan(&c.hooks, &c.recorded, c.outcome, &task);
            assert_eq!(step, c.step, "{}", c.what);
            assert_eq!(statuses, c.statuses, "{}", c.what);
        }
    }
}
