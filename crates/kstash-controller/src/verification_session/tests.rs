//! The verification plan as a table: recorded conditions and observed facts → next step.

use kstash_api::common::Condition;
use kstash_api::verification::{BackupVerificationSessionStatus, conditions as vc};

use super::{RestoreObserved, VerifyFacts, VerifyStep, next_verify_step};

fn status(conds: &[(&str, bool)], retried: Option<bool>) -> BackupVerificationSessionStatus {
    BackupVerificationSessionStatus {
        conditions: conds
            .iter()
            .map(|(t, s)| Condition::new(t, *s, "Test", ""))
            .collect(),
        retried,
        ..Default::default()
    }
}

fn facts(restore: RestoreObserved, needs_executor: bool, retry_left: i32) -> VerifyFacts {
    VerifyFacts {
        restore,
        needs_executor,
        retry_left,
    }
}

/// A situation, its recorded conditions, `status.retried`, the facts, and the expected step.
type Row = (
    &'static str,
    Vec<(&'static str, bool)>,
    Option<bool>,
    VerifyFacts,
    VerifyStep,
);

#[test]
fn every_situation_has_its_next_step() {
    use RestoreObserved as R;
    use VerifyStep as S;
    let restored = (vc::RESTORE_SUCCEEDED, true);
    let restore_failed = (vc::RESTORE_SUCCEEDED, false);
    let ensured = (vc::EXECUTOR_ENSURED, true);
    let not_ensured = (vc::EXECUTOR_ENSURED, false);
    let verified = (vc::BACKUP_VERIFIED, true);
    let not_verified = (vc::BACKUP_VERIFIED, false);
    let cleaned = (vc::HISTORY_CLEANED, true);
    let skipped = (vc::SKIPPED, true);
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("new session: resolve, pick the snapshot, start the restore",
            vec![], None, facts(R::Absent, false, 0), S::Prepare),
        ("restore running",
            vec![], None, facts(R::Running, true, 0), S::WaitRestore),
        ("restore finished, not recorded yet",
            vec![], None, facts(R::Succeeded, true, 0), S::WaitRestore),
        ("restore failed, not recorded yet",
            vec![], None, facts(R::Failed("x".into()), true, 0), S::WaitRestore),
        ("restore failed: finish (Failed)",
            vec![restore_failed], None, facts(R::Failed("x".into()), true, 0), S::Finish),
        ("RestoreOnly: the restore is the proof",
            vec![restored], None, facts(R::Succeeded, false, 0), S::Finish),
        ("Query: start the verifier",
            vec![restored], None, facts(R::Succeeded, true, 0), S::Executor),
        ("verifier running",
            vec![restored, ensured], None, facts(R::Succeeded, true, 0), S::WaitExecutor),
        ("verifier could not start",
            vec![restored, not_ensured], None, facts(R::Succeeded, true, 0), S::Finish),
        ("verifier reported success",
            vec![restored, ensured, verified], None, facts(R::Succeeded, true, 0), S::Finish),
        ("verifier reported failure",
            vec![restored, ensured, not_verified], None, facts(R::Succeeded, true, 0), S::Finish),
        ("unresolvable session (recorded as not verified before any restore)",
            vec![not_verified], None, facts(R::Absent, true, 0), S::Finish),
        ("skipped: snapshot already verified",
            vec![skipped], None, facts(R::Absent, true, 2), S::Finish),
        ("finished and succeeded",
            vec![restored, ensured, verified, cleaned], None, facts(R::Succeeded, true, 2), S::Settled),
        ("finished, failed, retries left: retry",
            vec![restored, ensured, not_verified, cleaned], None, facts(R::Succeeded, true, 2), S::Retry),
        ("finished, failed, retry already created",
            vec![restored, ensured, not_verified, cleaned], Some(true), facts(R::Succeeded, true, 2), S::Settled),
        ("finished, failed, no retries left",
            vec![restore_failed, cleaned], None, facts(R::Failed("x".into()), true, 0), S::Settled),
        ("skipped sessions are never retried",
            vec![skipped, cleaned], None, facts(R::Absent, true, 2), S::Settled),
    ];
    for (situation, conds, retried, f, want) in table {
        assert_eq!(
            next_verify_step(&status(&conds, retried), &f),
            want,
            "{situation}"
        );
    }
}
