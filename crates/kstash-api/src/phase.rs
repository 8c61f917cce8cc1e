//! Phase calculators: each kind's `status.phase` derived from its conditions and components, as
//! KubeStash computes it (spec §1.1–§1.7). Pure functions over status values.

use crate::common::{Condition, ConditionStatus};
use crate::core::{
    BackupConfigurationSpec, BackupConfigurationStatus, BackupInvokerPhase, BackupSessionPhase,
    BackupSessionStatus, RestorePhase, RestoreSessionStatus, RetentionPolicyApplyPhase,
};
use crate::storage::{BackupStoragePhase, ComponentPhase, RepositoryPhase, SnapshotPhase, SnapshotStatus};
use crate::verification::{BackupVerificationSessionPhase, BackupVerificationSessionStatus};

/// Condition types and reasons used across kinds.
pub mod conditions {
    pub const BACKEND_INITIALIZED: &str = "BackendInitialized";
    pub const BACKEND_SECRET_FOUND: &str = "BackendSecretFound";
    pub const REPOSITORY_INITIALIZED: &str = "RepositoryInitialized";
    pub const SNAPSHOT_METADATA_UPLOADED: &str = "SnapshotMetadataUploaded";
    pub const RECENT_SNAPSHOT_LIST_UPDATED: &str = "RecentSnapshotListUpdated";
    pub const BACKUP_INCOMPLETE: &str = "BackupIncomplete";
    pub const VALIDATION_PASSED: &str = "ValidationPassed";
    pub const SCHEDULER_ENSURED: &str = "SchedulerEnsured";
    pub const INITIAL_BACKUP_TRIGGERED: &str = "InitialBackupTriggered";
    pub const BACKUP_SKIPPED: &str = "BackupSkipped";
    pub const SESSION_HISTORY_CLEANED: &str = "SessionHistoryCleaned";
    pub const PRE_BACKUP_HOOKS_SUCCEEDED: &str = "PreBackupHooksExecutionSucceeded";
    pub const POST_BACKUP_HOOKS_SUCCEEDED: &str = "PostBackupHooksExecutionSucceeded";
    pub const BACKUP_EXECUTOR_ENSURED: &str = "BackupExecutorEnsured";
    pub const RETENTION_POLICY_EXECUTOR_ENSURED: &str = "RetentionPolicyExecutorEnsured";
    pub const SNAPSHOTS_ENSURED: &str = "SnapshotsEnsured";
    pub const SNAPSHOT_CLEANUP_INCOMPLETE: &str = "SnapshotCleanupIncomplete";
    pub const METRICS_PUSHED: &str = "MetricsPushed";
    pub const RESTORE_EXECUTOR_ENSURED: &str = "RestoreExecutorEnsured";
    pub const PRE_RESTORE_HOOKS_SUCCEEDED: &str = "PreRestoreHooksExecutionSucceeded";
    pub const POST_RESTORE_HOOKS_SUCCEEDED: &str = "PostRestoreHooksExecutionSucceeded";
    pub const RESTORE_TARGET_FOUND: &str = "RestoreTargetFound";
    pub const RESTORE_INCOMPLETE: &str = "RestoreIncomplete";
}
use conditions as c;

/// The condition of `type_`, if present.
pub fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|x| x.type_ == type_)
}

pub(crate) fn is_true(conds: &[Condition], t: &str) -> bool {
    find(conds, t).is_some_and(|x| x.status == ConditionStatus::True)
}

pub(crate) fn is_false(conds: &[Condition], t: &str) -> bool {
    find(conds, t).is_some_and(|x| x.status == ConditionStatus::False)
}

/// Insert or replace the condition of the same type (keeping `lastTransitionTime` when the status
/// did not change).
pub fn set_condition(conds: &mut Vec<Condition>, new: Condition) {
    match conds.iter_mut().find(|x| x.type_ == new.type_) {
        Some(old) => {
            let keep_time = old.status == new.status;
            let time = old.last_transition_time.clone();
            *old = new;
            if keep_time && time.is_some() {
                old.last_transition_time = time;
            }
        }
        None => conds.push(new),
    }
}

/// BackupStorage: Ready iff `BackendInitialized` is True and `BackendSecretFound` is absent or True.
pub fn backup_storage(conds: &[Condition]) -> BackupStoragePhase {
    if is_true(conds, c::BACKEND_INITIALIZED) && !is_false(conds, c::BACKEND_SECRET_FOUND) {
        BackupStoragePhase::Ready
    } else {
        BackupStoragePhase::NotReady
    }
}

/// Repository: Ready iff `RepositoryInitialized` is True.
pub fn repository(conds: &[Condition]) -> RepositoryPhase {
    if is_true(conds, c::REPOSITORY_INITIALIZED) {
        RepositoryPhase::Ready
    } else {
        RepositoryPhase::NotReady
    }
}

/// Phase of the components of a Snapshot: all `totalComponents` succeeded ⇒ Succeeded; any failed
/// ⇒ Failed; otherwise Running.
pub fn snapshot_components(status: &SnapshotStatus) -> SnapshotPhase {
    let phases: Vec<_> = status.components.values().map(|x| x.phase).collect();
    if phases.contains(&Some(ComponentPhase::Failed)) {
        return SnapshotPhase::Failed;
    }
    let succeeded = phases
        .iter()
        .filter(|p| **p == Some(ComponentPhase::Succeeded))
        .count();
    if succeeded > 0 && succeeded as i32 == status.total_components {
        SnapshotPhase::Succeeded
    } else {
        SnapshotPhase::Running
    }
}

/// Snapshot: Failed if metadata upload or the recent-list update failed, the backup is
/// incomplete, or any component failed (KubeStash 2026: at once, while other components may
/// still run); Pending without components; the components' phase once metadata upload was
/// attempted; Running before that.
pub fn snapshot(status: &SnapshotStatus) -> SnapshotPhase {
    let conds = &status.conditions;
    if is_false(conds, c::SNAPSHOT_METADATA_UPLOADED)
        || is_false(conds, c::RECENT_SNAPSHOT_LIST_UPDATED)
        || is_true(conds, c::BACKUP_INCOMPLETE)
        || status
            .components
            .values()
            .any(|x| x.phase == Some(ComponentPhase::Failed))
    {
        return SnapshotPhase::Failed;
    }
    if status.components.is_empty() {
        return SnapshotPhase::Pending;
    }
    if find(conds, c::SNAPSHOT_METADATA_UPLOADED).is_some() {
        return snapshot_components(status);
    }
    SnapshotPhase::Running
}

/// Snapshot integrity: the AND over components; `None` until every component reports it.
pub fn snapshot_integrity(status: &SnapshotStatus) -> Option<bool> {
    if status.components.is_empty() {
        return None;
    }
    status
        .components
        .values()
        .try_fold(true, |acc, comp| comp.integrity.map(|i| acc && i))
}

/// Format a byte count with binary units as KubeStash does (`12.222 MiB`, `512 B`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("TiB", 1099511627776.0),
        ("GiB", 1073741824.0),
        ("MiB", 1048576.0),
        ("KiB", 1024.0),
    ];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.3} {unit}", bytes as f64 / size);
        }
    }
    format!("{bytes} B")
}

/// Parse a size produced by [`format_size`] back into bytes (approximately, for sums).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = s.trim().split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        "TiB" => 1099511627776.0,
        _ => return None,
    };
    Some((n * mult).round() as u64)
}

/// BackupConfiguration: Invalid if validation failed; Ready iff the target was found, every backend
/// is reported and ready, and every session is reported with its scheduler ensured.
pub fn backup_configuration(
    spec: &BackupConfigurationSpec,
    status: &BackupConfigurationStatus,
) -> BackupInvokerPhase {
    if is_false(&status.conditions, c::VALIDATION_PASSED) {
        return BackupInvokerPhase::Invalid;
    }
    let backends_ready =
        status.backends.len() == spec.backends.len() && status.backends.iter().all(|b| b.ready == Some(true));
    let sessions_ready = status.sessions.len() == spec.sessions.len()
        && status
            .sessions
            .iter()
            .all(|s| is_true(&s.conditions, c::SCHEDULER_ENSURED));
    if status.target_found == Some(true) && backends_ready && sessions_ready {
        BackupInvokerPhase::Ready
    } else {
        BackupInvokerPhase::NotReady
    }
}

/// BackupSession phase (order matters, spec §1.6).
pub fn backup_session(status: &BackupSessionStatus) -> BackupSessionPhase {
    let conds = &status.conditions;
    if is_false(conds, c::METRICS_PUSHED) {
        return BackupSessionPhase::Failed;
    }
    if is_true(conds, c::BACKUP_SKIPPED) {
        return BackupSessionPhase::Skipped;
    }
    let final_step_done = find(conds, c::METRICS_PUSHED).is_some();
    if final_step_done
        && (is_false(conds, c::BACKUP_EXECUTOR_ENSURED)
            || is_false(conds, c::SNAPSHOTS_ENSURED)
            || is_false(conds, c::PRE_BACKUP_HOOKS_SUCCEEDED)
            || is_false(conds, c::POST_BACKUP_HOOKS_SUCCEEDED)
            || status
                .retention_policies
                .iter()
                .any(|r| r.phase == Some(RetentionPolicyApplyPhase::FailedToApply))
            || is_false(conds, c::SESSION_HISTORY_CLEANED)
            || is_true(conds, c::SNAPSHOT_CLEANUP_INCOMPLETE))
    {
        return BackupSessionPhase::Failed;
    }
    let phases: Vec<_> = status
        .snapshots
        .iter()
        .map(|s| s.phase.unwrap_or(SnapshotPhase::Pending))
        .collect();
    if phases.is_empty() || phases.iter().all(|p| *p == SnapshotPhase::Pending) {
        return BackupSessionPhase::Pending;
    }
    if !phases
        .iter()
        .all(|p| matches!(p, SnapshotPhase::Succeeded | SnapshotPhase::Failed))
    {
        return BackupSessionPhase::Running;
    }
    if !final_step_done {
        return BackupSessionPhase::Running;
    }
    if phases.contains(&SnapshotPhase::Failed) {
        BackupSessionPhase::Failed
    } else {
        BackupSessionPhase::Succeeded
    }
}

/// Why a BackupSession failed: the first False condition's message, else a snapshot or retention failure.
pub fn backup_session_failure(status: &BackupSessionStatus) -> Option<String> {
    if let Some(x) = status
        .conditions
        .iter()
        .find(|x| x.status == ConditionStatus::False && x.type_ != c::BACKUP_SKIPPED)
    {
        return Some(x.message.clone().unwrap_or_else(|| x.type_.clone()));
    }
    if status
        .snapshots
        .iter()
        .any(|s| s.phase == Some(SnapshotPhase::Failed))
    {
        return Some("one or more snapshots are failed".into());
    }
    if status
        .retention_policies
        .iter()
        .any(|r| r.phase == Some(RetentionPolicyApplyPhase::FailedToApply))
    {
        return Some("one or more retention policies are failed to apply".into());
    }
    None
}

/// Is a BackupSession finished?
pub fn backup_session_completed(phase: BackupSessionPhase) -> bool {
    matches!(
        phase,
        BackupSessionPhase::Succeeded | BackupSessionPhase::Failed | BackupSessionPhase::Skipped
    )
}

/// RestoreSession phase (spec §1.7; a failed component fails it at once, KubeStash 2026).
pub fn restore_session(status: &RestoreSessionStatus) -> RestorePhase {
    let conds = &status.conditions;
    if is_false(conds, c::METRICS_PUSHED) {
        return RestorePhase::Failed;
    }
    if is_false(conds, c::VALIDATION_PASSED) {
        return RestorePhase::Invalid;
    }
    let final_step_done = find(conds, c::METRICS_PUSHED).is_some();
    if final_step_done
        && (is_false(conds, c::PRE_RESTORE_HOOKS_SUCCEEDED)
            || is_false(conds, c::POST_RESTORE_HOOKS_SUCCEEDED)
            || is_false(conds, c::RESTORE_EXECUTOR_ENSURED)
            || is_true(conds, c::RESTORE_INCOMPLETE))
    {
        return RestorePhase::Failed;
    }
    let phases: Vec<_> = status
        .components
        .values()
        .map(|x| x.phase.unwrap_or(RestorePhase::Pending))
        .collect();
    let computed = if phases.is_empty() {
        RestorePhase::Pending
    } else if phases.iter().all(|p| *p == RestorePhase::Succeeded) {
        RestorePhase::Succeeded
    } else if phases.iter().all(|p| {
        matches!(
            p,
            RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Unknown
        )
    }) {
        if phases.contains(&RestorePhase::Failed) {
            RestorePhase::Failed
        } else {
            RestorePhase::Unknown
        }
    } else if phases.contains(&RestorePhase::Failed) {
        RestorePhase::Failed
    } else {
        RestorePhase::Running
    };
    match computed {
        // KubeStash 2026: one failed component fails the session at once, even while other
        // components still run and before the final step.
        RestorePhase::Pending | RestorePhase::Unknown | RestorePhase::Failed => computed,
        RestorePhase::Succeeded if !final_step_done => RestorePhase::Running,
        other => other,
    }
}

/// KubeStash's `CalculatePhase`, conditions checked in its order: history cleanup failed →
/// Failed; skipped → Skipped; history cleaned after a failed restore or verification → Failed;
/// history cleaned → Succeeded; otherwise Running.
pub fn backup_verification_session(
    status: &BackupVerificationSessionStatus,
) -> BackupVerificationSessionPhase {
    use crate::verification::conditions as c;
    use BackupVerificationSessionPhase as P;
    let conds = &status.conditions;
    if is_false(conds, c::HISTORY_CLEANED) {
        return P::Failed;
    }
    if is_true(conds, c::SKIPPED) {
        return P::Skipped;
    }
    let cleaned = is_true(conds, c::HISTORY_CLEANED);
    if cleaned && (is_false(conds, c::RESTORE_SUCCEEDED) || is_false(conds, c::BACKUP_VERIFIED)) {
        return P::Failed;
    }
    if cleaned {
        return P::Succeeded;
    }
    P::Running
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{
        BackendReference, BackendStatus, ComponentRestoreStatus, RetentionPolicyApplyStatus, Session,
        SessionSnapshotStatus, SessionStatus,
    };
    use crate::storage::Component;

    fn cond(t: &str, ok: bool) -> Condition {
        Condition::new(t, ok, "Test", "test message")
    }

    #[test]
    fn backup_storage_is_ready_only_when_initialised_and_secret_not_missing() {
        assert_eq!(backup_storage(&[]), BackupStoragePhase::NotReady);
        assert_eq!(
            backup_storage(&[cond(c::BACKEND_INITIALIZED, true)]),
            BackupStoragePhase::Ready
        );
        assert_eq!(
            backup_storage(&[
                cond(c::BACKEND_INITIALIZED, true),
                cond(c::BACKEND_SECRET_FOUND, true)
            ]),
            BackupStoragePhase::Ready
        );
        assert_eq!(
            backup_storage(&[
                cond(c::BACKEND_INITIALIZED, true),
                cond(c::BACKEND_SECRET_FOUND, false)
            ]),
            BackupStoragePhase::NotReady
        );
        assert_eq!(
            backup_storage(&[cond(c::BACKEND_INITIALIZED, false)]),
            BackupStoragePhase::NotReady
        );
    }

    #[test]
    fn repository_is_ready_when_initialised() {
        assert_eq!(repository(&[]), RepositoryPhase::NotReady);
        assert_eq!(
            repository(&[cond(c::REPOSITORY_INITIALIZED, true)]),
            RepositoryPhase::Ready
        );
        assert_eq!(
            repository(&[cond(c::REPOSITORY_INITIALIZED, false)]),
            RepositoryPhase::NotReady
        );
    }

    fn snap(
        components: &[(&str, ComponentPhase, Option<bool>)],
        total: i32,
        conds: Vec<Condition>,
    ) -> SnapshotStatus {
        SnapshotStatus {
            total_components: total,
            components: components
                .iter()
                .map(|(n, p, i)| {
                    (
                        n.to_string(),
                        Component {
                            phase: Some(*p),
                            integrity: *i,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            conditions: conds,
            ..Default::default()
        }
    }

    #[test]
    fn snapshot_phase_rules() {
        use ComponentPhase::*;
        let uploaded = || vec![cond(c::SNAPSHOT_METADATA_UPLOADED, true)];
        assert_eq!(snapshot(&snap(&[], 1, vec![])), SnapshotPhase::Pending);
        assert_eq!(
            snapshot(&snap(&[("dump", Succeeded, None)], 1, vec![])),
            SnapshotPhase::Running,
            "no metadata upload yet"
        );
        assert_eq!(
            snapshot(&snap(&[("dump", Succeeded, None)], 1, uploaded())),
            SnapshotPhase::Succeeded
        );
        assert_eq!(
            snapshot(&snap(&[("a", Succeeded, None)], 2, uploaded())),
            SnapshotPhase::Running,
            "one of two components"
        );
        assert_eq!(
            snapshot(&snap(
                &[("a", Succeeded, None), ("b", Failed, None)],
                2,
                uploaded()
            )),
            SnapshotPhase::Failed
        );
        assert_eq!(
            snapshot(&snap(
                &[("a", Succeeded, None)],
                1,
                vec![cond(c::SNAPSHOT_METADATA_UPLOADED, false)]
            )),
            SnapshotPhase::Failed
        );
        assert_eq!(
            snapshot(&snap(
                &[("a", Running, None)],
                1,
                vec![cond(c::RECENT_SNAPSHOT_LIST_UPDATED, false)]
            )),
            SnapshotPhase::Failed
        );
        assert_eq!(
            snapshot(&snap(
                &[("a", Running, None)],
                1,
                vec![cond(c::BACKUP_INCOMPLETE, true)]
            )),
            SnapshotPhase::Failed
        );
        assert_eq!(
            snapshot(&snap(&[], 1, vec![cond(c::BACKUP_INCOMPLETE, true)])),
            SnapshotPhase::Failed
        );
    }

    #[test]
    fn one_failed_component_fails_a_snapshot_at_once() {
        use ComponentPhase::*;
        let uploaded = || vec![cond(c::SNAPSHOT_METADATA_UPLOADED, true)];
        // (components, totalComponents, conditions) → phase
        type Row<'a> = (
            Vec<(&'a str, ComponentPhase, Option<bool>)>,
            i32,
            Vec<Condition>,
            SnapshotPhase,
        );
        let table: Vec<Row> = vec![
            (
                vec![("a", Failed, None), ("b", Running, None)],
                2,
                vec![],
                SnapshotPhase::Failed,
            ),
            (
                vec![("a", Failed, None), ("b", Pending, None)],
                2,
                vec![],
                SnapshotPhase::Failed,
            ),
            (vec![("a", Failed, None)], 3, vec![], SnapshotPhase::Failed),
            (
                vec![("a", Running, None), ("b", Failed, None)],
                2,
                uploaded(),
                SnapshotPhase::Failed,
            ),
            (
                vec![("a", Succeeded, None), ("b", Running, None)],
                2,
                vec![],
                SnapshotPhase::Running,
            ),
            (
                vec![("a", Succeeded, None), ("b", Running, None)],
                2,
                uploaded(),
                SnapshotPhase::Running,
            ),
            (
                vec![("a", Succeeded, None), ("b", Succeeded, None)],
                2,
                uploaded(),
                SnapshotPhase::Succeeded,
            ),
        ];
        for (components, total, conds, want) in table {
            let status = snap(&components, total, conds);
            assert_eq!(snapshot(&status), want, "{components:?} of {total}");
        }
    }

    #[test]
    fn snapshot_integrity_is_an_and_over_all_components() {
        use ComponentPhase::*;
        assert_eq!(snapshot_integrity(&snap(&[], 0, vec![])), None);
        assert_eq!(
            snapshot_integrity(&snap(
                &[("a", Succeeded, Some(true)), ("b", Succeeded, None)],
                2,
                vec![]
            )),
            None
        );
        assert_eq!(
            snapshot_integrity(&snap(
                &[("a", Succeeded, Some(true)), ("b", Succeeded, Some(true))],
                2,
                vec![]
            )),
            Some(true)
        );
        assert_eq!(
            snapshot_integrity(&snap(
                &[("a", Succeeded, Some(true)), ("b", Succeeded, Some(false))],
                2,
                vec![]
            )),
            Some(false)
        );
    }

    #[test]
    fn sizes_use_binary_units_with_three_decimals() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1024), "1.000 KiB");
        assert_eq!(format_size(12_815_000), "12.221 MiB");
        assert_eq!(format_size(3 * 1073741824), "3.000 GiB");
        assert_eq!(parse_size("1.000 KiB"), Some(1024));
        assert_eq!(parse_size("512 B"), Some(512));
    }

    #[test]
    fn backup_configuration_phase_rules() {
        let spec = BackupConfigurationSpec {
            backends: vec![BackendReference {
                name: "b".into(),
                ..Default::default()
            }],
            sessions: vec![Session {
                name: "s".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ready = BackupConfigurationStatus {
            target_found: Some(true),
            backends: vec![BackendStatus {
                name: "b".into(),
                ready: Some(true),
                ..Default::default()
            }],
            sessions: vec![SessionStatus {
                name: "s".into(),
                conditions: vec![cond(c::SCHEDULER_ENSURED, true)],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(backup_configuration(&spec, &ready), BackupInvokerPhase::Ready);
        let mut s = ready.clone();
        s.conditions.push(cond(c::VALIDATION_PASSED, false));
        assert_eq!(backup_configuration(&spec, &s), BackupInvokerPhase::Invalid);
        let mut s = ready.clone();
        s.target_found = Some(false);
        assert_eq!(backup_configuration(&spec, &s), BackupInvokerPhase::NotReady);
        let mut s = ready.clone();
        s.backends[0].ready = Some(false);
        assert_eq!(backup_configuration(&spec, &s), BackupInvokerPhase::NotReady);
        let mut s = ready.clone();
        s.sessions.clear();
        assert_eq!(backup_configuration(&spec, &s), BackupInvokerPhase::NotReady);
        let mut s = ready.clone();
        s.sessions[0].conditions = vec![cond(c::SCHEDULER_ENSURED, false)];
        assert_eq!(backup_configuration(&spec, &s), BackupInvokerPhase::NotReady);
    }

    fn session(snaps: &[SnapshotPhase], conds: Vec<Condition>) -> BackupSessionStatus {
        BackupSessionStatus {
            snapshots: snaps
                .iter()
                .map(|p| SessionSnapshotStatus {
                    phase: Some(*p),
                    ..Default::default()
                })
                .collect(),
            conditions: conds,
            ..Default::default()
        }
    }

    #[test]
    fn backup_session_phase_rules() {
        use SnapshotPhase::*;
        let done = || cond(c::METRICS_PUSHED, true);
        assert_eq!(backup_session(&session(&[], vec![])), BackupSessionPhase::Pending);
        assert_eq!(
            backup_session(&session(&[Pending, Pending], vec![])),
            BackupSessionPhase::Pending
        );
        assert_eq!(
            backup_session(&session(&[Running], vec![])),
            BackupSessionPhase::Running
        );
        assert_eq!(
            backup_session(&session(&[Succeeded], vec![])),
            BackupSessionPhase::Running,
            "terminal only after the final step"
        );
        assert_eq!(
            backup_session(&session(&[Succeeded], vec![done()])),
            BackupSessionPhase::Succeeded
        );
        assert_eq!(
            backup_session(&session(&[Succeeded, Failed], vec![done()])),
            BackupSessionPhase::Failed
        );
        assert_eq!(
            backup_session(&session(&[Succeeded], vec![cond(c::METRICS_PUSHED, false)])),
            BackupSessionPhase::Failed
        );
        assert_eq!(
            backup_session(&session(&[], vec![cond(c::BACKUP_SKIPPED, true)])),
            BackupSessionPhase::Skipped
        );
        for failing in [
            c::BACKUP_EXECUTOR_ENSURED,
            c::SNAPSHOTS_ENSURED,
            c::PRE_BACKUP_HOOKS_SUCCEEDED,
            c::POST_BACKUP_HOOKS_SUCCEEDED,
            c::SESSION_HISTORY_CLEANED,
        ] {
            assert_eq!(
                backup_session(&session(&[Succeeded], vec![done(), cond(failing, false)])),
                BackupSessionPhase::Failed,
                "{failing}"
            );
            assert_eq!(
                backup_session(&session(&[Running], vec![cond(failing, false)])),
                BackupSessionPhase::Running,
                "{failing} before the final step"
            );
        }
        assert_eq!(
            backup_session(&session(
                &[Succeeded],
                vec![done(), cond(c::SNAPSHOT_CLEANUP_INCOMPLETE, true)]
            )),
            BackupSessionPhase::Failed
        );
        let mut s = session(&[Succeeded], vec![done()]);
        s.retention_policies.push(RetentionPolicyApplyStatus {
            phase: Some(RetentionPolicyApplyPhase::FailedToApply),
            ..Default::default()
        });
        assert_eq!(backup_session(&s), BackupSessionPhase::Failed);
        assert_eq!(
            backup_session_failure(&s).as_deref(),
            Some("one or more retention policies are failed to apply")
        );
        let s = session(&[Failed], vec![done()]);
        assert_eq!(
            backup_session_failure(&s).as_deref(),
            Some("one or more snapshots are failed")
        );
        let s = session(
            &[Succeeded],
            vec![
                done(),
                Condition::new(c::PRE_BACKUP_HOOKS_SUCCEEDED, false, "X", "hook exited 1"),
            ],
        );
        assert_eq!(backup_session_failure(&s).as_deref(), Some("hook exited 1"));
        assert!(backup_session_completed(BackupSessionPhase::Skipped));
        assert!(!backup_session_completed(BackupSessionPhase::Running));
    }

    fn restore(components: &[RestorePhase], conds: Vec<Condition>) -> RestoreSessionStatus {
        RestoreSessionStatus {
            components: components
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        format!("c{i}"),
                        ComponentRestoreStatus {
                            phase: Some(*p),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            conditions: conds,
            ..Default::default()
        }
    }

    #[test]
    fn restore_session_phase_rules() {
        use RestorePhase::*;
        let done = || cond(c::METRICS_PUSHED, true);
        assert_eq!(restore_session(&restore(&[], vec![])), Pending);
        assert_eq!(restore_session(&restore(&[Running], vec![])), Running);
        assert_eq!(
            restore_session(&restore(&[Succeeded], vec![])),
            Running,
            "terminal only after the final step"
        );
        assert_eq!(restore_session(&restore(&[Succeeded], vec![done()])), Succeeded);
        assert_eq!(
            restore_session(&restore(&[Succeeded, Failed], vec![done()])),
            Failed
        );
        assert_eq!(
            restore_session(&restore(&[Failed, Running], vec![done()])),
            Failed
        );
        assert_eq!(
            restore_session(&restore(&[Succeeded, Unknown], vec![])),
            Unknown,
            "unknown is returned at once"
        );
        assert_eq!(
            restore_session(&restore(&[Succeeded], vec![cond(c::METRICS_PUSHED, false)])),
            Failed
        );
        assert_eq!(
            restore_session(&restore(&[], vec![cond(c::VALIDATION_PASSED, false)])),
            Invalid
        );
        for failing in [
            c::PRE_RESTORE_HOOKS_SUCCEEDED,
            c::POST_RESTORE_HOOKS_SUCCEEDED,
            c::RESTORE_EXECUTOR_ENSURED,
        ] {
            assert_eq!(
                restore_session(&restore(&[Succeeded], vec![done(), cond(failing, false)])),
                Failed,
                "{failing}"
            );
        }
        assert_eq!(
            restore_session(&restore(
                &[Running],
                vec![done(), cond(c::RESTORE_INCOMPLETE, true)]
            )),
            Failed
        );
    }

    #[test]
    fn one_failed_component_fails_a_restore_session_at_once() {
        use RestorePhase::*;
        let done = || cond(c::METRICS_PUSHED, true);
        // (components, conditions) → phase; no final step yet unless `done()` is given.
        let table: Vec<(Vec<RestorePhase>, Vec<Condition>, RestorePhase)> = vec![
            (vec![Failed, Running], vec![], Failed),
            (vec![Running, Failed, Pending], vec![], Failed),
            (vec![Failed], vec![], Failed),
            (vec![Failed, Succeeded], vec![], Failed),
            (vec![Failed, Running], vec![done()], Failed),
            (vec![Succeeded, Running], vec![], Running),
            (vec![Succeeded, Succeeded], vec![], Running),
            (vec![Succeeded, Succeeded], vec![done()], Succeeded),
        ];
        for (components, conds, want) in table {
            let status = restore(&components, conds);
            assert_eq!(restore_session(&status), want, "{components:?}");
        }
    }

    #[test]
    fn set_condition_replaces_by_type() {
        let mut conds = vec![cond(c::SCHEDULER_ENSURED, false)];
        set_condition(&mut conds, cond(c::SCHEDULER_ENSURED, true));
        set_condition(&mut conds, cond(c::INITIAL_BACKUP_TRIGGERED, true));
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0].status, ConditionStatus::True);
    }

    fn verification_status(conds: &[(&str, bool)]) -> crate::verification::BackupVerificationSessionStatus {
        crate::verification::BackupVerificationSessionStatus {
            conditions: conds
                .iter()
                .map(|(t, s)| Condition::new(t, *s, "Test", ""))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_kubestash_condition_order() {
        use crate::verification::BackupVerificationSessionPhase as P;
        use crate::verification::conditions as c;
        let table: &[(&[(&str, bool)], P)] = &[
            (&[], P::Running),
            (&[(c::RESTORE_SUCCEEDED, true)], P::Running),
            (&[(c::RESTORE_SUCCEEDED, false)], P::Running),
            (&[(c::SKIPPED, true)], P::Skipped),
            (&[(c::SKIPPED, true), (c::HISTORY_CLEANED, true)], P::Skipped),
            (&[(c::SKIPPED, true), (c::HISTORY_CLEANED, false)], P::Failed),
            (
                &[(c::RESTORE_SUCCEEDED, true), (c::HISTORY_CLEANED, true)],
                P::Succeeded,
            ),
            (
                &[
                    (c::RESTORE_SUCCEEDED, true),
                    (c::BACKUP_VERIFIED, true),
                    (c::HISTORY_CLEANED, true),
                ],
                P::Succeeded,
            ),
            (
                &[(c::RESTORE_SUCCEEDED, false), (c::HISTORY_CLEANED, true)],
                P::Failed,
            ),
            (
                &[
                    (c::RESTORE_SUCCEEDED, true),
                    (c::BACKUP_VERIFIED, false),
                    (c::HISTORY_CLEANED, true),
                ],
                P::Failed,
            ),
            (&[(c::BACKUP_VERIFIED, false)], P::Running),
        ];
        for (conds, want) in table {
            assert_eq!(
                backup_verification_session(&verification_status(conds)),
                *want,
                "conditions {conds:?}"
            );
        }
    }
}
