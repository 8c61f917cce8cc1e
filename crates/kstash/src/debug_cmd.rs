//! `kstash debug backup|restore|backupstorage`: what explains a failing backup, restore or
//! storage, gathered in one report (phase, failing conditions, failed hooks, the Snapshots and
//! components of each session, the tail of executor logs, and a write probe of the storage).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use kstash_api::client::ResourcesExt;
use kstash_api::common::{Condition, ConditionStatus, HookExecutionPhase, HookStatus};
use kstash_api::core::{BackupConfiguration, BackupSession, RestoreSession};
use kstash_api::phase::conditions as c;
use kstash_api::resolve;
use kstash_api::storage::{BackupStorage, Snapshot, SnapshotPhase};
use kstash_api::storage_ops::StorageOps as _;
use kstash_embedded::Store;
use kstash_exec::{LocalMode, StorageOpsImpl};

use crate::cli::{DebugArgs, DebugWhat};
use crate::print::{indented_table, row, show};

/// Lines of an executor log shown by `debug`.
const LOG_TAIL_LINES: usize = 20;

/// Condition types whose `True` status is the bad news.
const NEGATIVE_CONDITIONS: &[&str] = &[
    c::BACKUP_INCOMPLETE,
    c::BACKUP_SKIPPED,
    c::RESTORE_INCOMPLETE,
    c::SNAPSHOT_CLEANUP_INCOMPLETE,
];

/// Whether a condition reports a problem.
fn failing(cond: &Condition) -> bool {
    if NEGATIVE_CONDITIONS.contains(&cond.type_.as_str()) {
        cond.status == ConditionStatus::True
    } else {
        cond.status == ConditionStatus::False
    }
}

fn condition_rows(conds: &[&Condition], with_status: bool) -> Vec<Vec<String>> {
    let mut rows = vec![if with_status {
        row(["TYPE", "STATUS", "REASON", "MESSAGE"])
    } else {
        row(["TYPE", "REASON", "MESSAGE"])
    }];
    for cnd in conds {
        let mut r = vec![cnd.type_.clone()];
        if with_status {
            r.push(format!("{:?}", cnd.status));
        }
        r.push(cnd.reason.clone().unwrap_or_default());
        r.push(cnd.message.clone().unwrap_or_default().replace('\n', " "));
        rows.push(r);
    }
    rows
}

/// Print the failing conditions under a heading, or that there are none.
fn print_failing_conditions(conds: &[Condition], indent: &str) {
    let bad: Vec<&Condition> = conds.iter().filter(|x| failing(x)).collect();
    if bad.is_empty() {
        outln!("{indent}Failing conditions: none");
    } else {
        outln!("{indent}Failing conditions:");
        out!(
            "{}",
            indented_table(&condition_rows(&bad, false), &format!("{indent}  "))
        );
    }
}

fn print_failed_hooks(hooks: &HookStatus, indent: &str) {
    let failed: Vec<String> = hooks
        .pre_hooks
        .iter()
        .map(|h| ("pre", h))
        .chain(hooks.post_hooks.iter().map(|h| ("post", h)))
        .filter(|(_, h)| h.phase == Some(HookExecutionPhase::Failed))
        .map(|(when, h)| format!("{} ({when})", h.name))
        .collect();
    if !failed.is_empty() {
        outln!("{indent}Failed hooks: {}", failed.join(", "));
    }
}

/// `text` without ANSI escape sequences (executor logs may carry colour codes).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '\u{1b}' {
            out.push(ch);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for f in chars.by_ref() {
                if ('@'..='~').contains(&f) {
                    break;
                }
            }
        }
    }
    out
}

/// The last lines of an executor log, or why there is none.
fn print_log_tail(log: &Path, indent: &str) {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = strip_ansi(&String::from_utf8_lossy(&bytes));
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            if lines.is_empty() {
                outln!("{indent}Executor log {} is empty", log.display());
                return;
            }
            outln!(
                "{indent}Executor log (last {} of {} lines of {}):",
                lines.len() - start,
                lines.len(),
                log.display()
            );
            for l in &lines[start..] {
                outln!("{indent}  | {l}");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            outln!(
                "{indent}Executor log: none at {} (no executor started yet, or it was removed with the session history)",
                log.display()
            );
        }
        Err(e) => outln!("{indent}Executor log {}: cannot be read: {e}", log.display()),
    }
}

/// `kstash debug backup|restore|backupstorage`.
pub fn debug(home: Option<&Path>, store: &Store, a: DebugArgs) -> Result<ExitCode> {
    match a.what {
        DebugWhat::Backup {
            name,
            namespace,
            sessions,
        } => {
            let home = crate::ops::home_dir(home)?;
            debug_backup(&home, store, &namespace, &name, &sessions)
        }
        DebugWhat::Restore { name, namespace } => {
            let home = crate::ops::home_dir(home)?;
            debug_restore(&home, store, &namespace, &name)
        }
        DebugWhat::Backupstorage { name, namespace } => debug_storage(store, &namespace, &name),
    }
}

fn job_log(home: &Path, ns: &str, job: &str) -> PathBuf {
    home.join("jobs").join(ns).join(job).join("log")
}

fn debug_backup(home: &Path, store: &Store, ns: &str, name: &str, only: &[String]) -> Result<ExitCode> {
    let bc: BackupConfiguration = store
        .get_as(ns, name)?
        .with_context(|| format!("BackupConfiguration {ns}/{name} not found (kstash get bc -n {ns})"))?;
    let only: Vec<&String> = only.iter().filter(|s| !s.trim().is_empty()).collect();
    for s in &only {
        resolve::session_entry(&bc, s)?;
    }
    let st = bc.status.clone().unwrap_or_default();
    outln!("BackupConfiguration {ns}/{name}");
    let paused = if bc.spec.paused {
        " (paused: kstash resume)"
    } else {
        ""
    };
    outln!("  Phase: {}{paused}", show(st.phase));
    if st.phase != Some(kstash_api::core::BackupInvokerPhase::Ready) && bc.status.is_some() {
        outln!(
            "  Not ready because: {}",
            kstash_controller::backup_session::not_ready_reason(&st)
        );
    }
    if bc.status.is_none() {
        outln!("  No status yet: no kstash server (or `kstash trigger`) has reconciled it");
    }
    print_failing_conditions(&st.conditions, "  ");
    if st.target_found == Some(false) {
        outln!("  Target not found");
    }
    for d in st.dependencies.iter().filter(|d| d.found == Some(false)) {
        outln!(
            "  Dependency not found: {} {}",
            d.reference.kind.clone().unwrap_or_default(),
            d.reference.name
        );
    }
    let mut backend_rows = vec![row([
        "BACKEND",
        "STORAGE",
        "STORAGE-PHASE",
        "RETENTION-POLICY",
        "REASON",
    ])];
    for b in st.backends.iter().filter(|b| b.ready != Some(true)) {
        let storage = b.storage.clone().unwrap_or_default();
        let rp = b.retention_policy.clone().unwrap_or_default();
        let reasons: Vec<String> = [storage.reason.clone(), rp.reason.clone()]
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect();
        backend_rows.push(vec![
            b.name.clone(),
            storage.r#ref.name.clone(),
            show(storage.phase),
            match rp.found {
                Some(true) => format!("{} (found)", rp.r#ref.name),
                Some(false) => format!("{} (not found)", rp.r#ref.name),
                None => rp.r#ref.name.clone(),
            },
            reasons.join("; "),
        ]);
    }
    if backend_rows.len() > 1 {
        outln!("  Backends not ready:");
        out!("{}", indented_table(&backend_rows, "    "));
    }
    let mut repo_rows = vec![row(["REPOSITORY", "PHASE", "REASON"])];
    for r in st
        .repositories
        .iter()
        .filter(|r| r.phase != Some(kstash_api::storage::RepositoryPhase::Ready))
    {
        repo_rows.push(vec![r.name.clone(), show(r.phase), r.reason.clone()]);
    }
    if repo_rows.len() > 1 {
        outln!("  Repositories not ready:");
        out!("{}", indented_table(&repo_rows, "    "));
    }
    for s in st
        .sessions
        .iter()
        .filter(|s| only.is_empty() || only.contains(&&s.name))
    {
        let bad: Vec<&Condition> = s.conditions.iter().filter(|x| failing(x)).collect();
        if !bad.is_empty() {
            outln!("  Session {} schedule:", s.name);
            out!("{}", indented_table(&condition_rows(&bad, false), "    "));
        }
    }

    let all_sessions: Vec<BackupSession> = store
        .list_as::<BackupSession>(Some(ns), &[])?
        .into_iter()
        .filter(|b| {
            b.spec
                .invoker
                .as_ref()
                .is_some_and(|i| i.kind == "BackupConfiguration" && i.name == name)
        })
        .collect();
    let snapshots: Vec<Snapshot> = store.list_as(Some(ns), &[])?;
    for session in &bc.spec.sessions {
        if !only.is_empty() && !only.contains(&&session.name) {
            continue;
        }
        outln!("");
        let latest = all_sessions
            .iter()
            .filter(|b| b.spec.session == session.name)
            .max_by(|x, y| {
                let t = |b: &BackupSession| b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(x).cmp(&t(y))
                    .then_with(|| x.metadata.name.cmp(&y.metadata.name))
            });
        let Some(bs) = latest else {
            outln!(
                "Session {}: no BackupSession yet (start one: kstash trigger {name} -n {ns} --sessions {})",
                session.name,
                session.name
            );
            continue;
        };
        debug_backup_session(home, ns, &session.name, bs, &snapshots);
    }
    Ok(ExitCode::SUCCESS)
}

fn debug_backup_session(home: &Path, ns: &str, session: &str, bs: &BackupSession, snapshots: &[Snapshot]) {
    let bs_name = bs.metadata.name.clone().unwrap_or_default();
    let st = bs.status.clone().unwrap_or_default();
    let duration = if st.duration.is_empty() {
        String::new()
    } else {
        format!(" after {}", st.duration)
    };
    outln!(
        "Session {session}: latest BackupSession {bs_name} is {}{duration}",
        show(st.phase)
    );
    if let Some(why) = kstash_api::phase::backup_session_failure(&st) {
        outln!("  Why: {why}");
    }
    print_failing_conditions(&st.conditions, "  ");
    print_failed_hooks(&st.hooks, "  ");
    for r in st.retention_policies.iter().filter(|r| !r.error.is_empty()) {
        outln!(
            "  Retention policy of {}: {} {}",
            r.repository,
            show(r.phase),
            r.error
        );
    }
    // Snapshots of this session: those the status lists, and any Snapshot naming the session.
    let mut names: Vec<(String, String)> = st
        .snapshots
        .iter()
        .map(|s| (s.name.clone(), s.repository.clone()))
        .collect();
    for s in snapshots.iter().filter(|s| s.spec.backup_session == bs_name) {
        let n = s.metadata.name.clone().unwrap_or_default();
        if !names.iter().any(|(x, _)| x == &n) {
            names.push((n, s.spec.repository.clone()));
        }
    }
    let mut healthy = 0;
    for (snap_name, repo) in &names {
        let Some(snap) = snapshots
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(snap_name.as_str()))
        else {
            outln!("  Snapshot {snap_name} (Repository {repo}): missing");
            continue;
        };
        let sst = snap.status.clone().unwrap_or_default();
        let with_errors: Vec<(&String, &kstash_api::storage::Component)> = sst
            .components
            .iter()
            .filter(|(_, comp)| {
                !comp.error.is_empty() || comp.phase == Some(kstash_api::storage::ComponentPhase::Failed)
            })
            .collect();
        if sst.phase == Some(SnapshotPhase::Succeeded) && with_errors.is_empty() {
            healthy += 1;
            continue;
        }
        outln!(
            "  Snapshot {snap_name} (Repository {}): {}",
            snap.spec.repository,
            show(sst.phase)
        );
        let bad: Vec<&Condition> = sst.conditions.iter().filter(|x| failing(x)).collect();
        if !bad.is_empty() {
            out!("{}", indented_table(&condition_rows(&bad, false), "    "));
        }
        if with_errors.is_empty() {
            if sst.components.is_empty() {
                outln!("    no component recorded a result (see the executor log below)");
            }
        } else {
            let mut rows = vec![row(["COMPONENT", "PHASE", "ERROR"])];
            for (cname, comp) in with_errors {
                rows.push(vec![
                    cname.clone(),
                    show(comp.phase),
                    comp.error.replace('\n', " "),
                ]);
            }
            out!("{}", indented_table(&rows, "    "));
        }
    }
    if healthy > 0 {
        outln!("  Succeeded snapshots: {healthy}");
    }
    print_log_tail(&job_log(home, ns, &bs_name), "  ");
}

fn debug_restore(home: &Path, store: &Store, ns: &str, name: &str) -> Result<ExitCode> {
    let rs: RestoreSession = store.get_as(ns, name)?.with_context(|| {
        format!("RestoreSession {ns}/{name} not found (kstash get restoresession -n {ns})")
    })?;
    let st = rs.status.clone().unwrap_or_default();
    outln!("RestoreSession {ns}/{name}");
    let duration = if st.duration.is_empty() {
        String::new()
    } else {
        format!(" after {}", st.duration)
    };
    outln!("  Phase: {}{duration}", show(st.phase));
    if let Some(ds) = &rs.spec.data_source {
        outln!(
            "  Data source: Repository {}/{}, snapshot {}",
            if ds.namespace.is_empty() {
                ns
            } else {
                &ds.namespace
            },
            ds.repository,
            ds.snapshot
        );
    }
    if st.target_found == Some(false) {
        outln!("  Target not found");
    }
    for d in st.dependencies.iter().filter(|d| d.found == Some(false)) {
        outln!(
            "  Dependency not found: {} {}",
            d.reference.kind.clone().unwrap_or_default(),
            d.reference.name
        );
    }
    print_failing_conditions(&st.conditions, "  ");
    print_failed_hooks(&st.hooks, "  ");
    if st.components.is_empty() {
        outln!("  Components: none recorded yet");
    } else {
        let mut rows = vec![row(["COMPONENT", "PHASE", "DURATION", "ERROR"])];
        let components: BTreeMap<_, _> = st.components.iter().collect();
        for (cname, comp) in components {
            rows.push(vec![
                cname.clone(),
                show(comp.phase),
                comp.duration.clone(),
                comp.error.replace('\n', " "),
            ]);
        }
        outln!("  Components:");
        out!("{}", indented_table(&rows, "    "));
    }
    print_log_tail(&job_log(home, ns, &format!("restore-{name}")), "  ");
    Ok(ExitCode::SUCCESS)
}

/// `debug backupstorage`: status, then a live write probe (exit 1 when it fails).
fn debug_storage(store: &Store, ns: &str, name: &str) -> Result<ExitCode> {
    let bs: BackupStorage = store
        .get_as(ns, name)?
        .with_context(|| format!("BackupStorage {ns}/{name} not found (kstash get backupstorage -n {ns})"))?;
    let st = bs.status.clone().unwrap_or_default();
    outln!("BackupStorage {ns}/{name}");
    outln!(
        "  Provider: {}",
        bs.spec
            .storage
            .provider
            .map(|p| format!("{p:?}").to_lowercase())
            .unwrap_or_else(|| "<none>".into())
    );
    outln!("  Phase: {}", show(st.phase));
    if bs.status.is_none() {
        outln!("  No status yet: no kstash server (or `kstash trigger`) has reconciled it");
    }
    if st.conditions.is_empty() {
        outln!("  Conditions: none");
    } else {
        outln!("  Conditions:");
        let all: Vec<&Condition> = st.conditions.iter().collect();
        out!("{}", indented_table(&condition_rows(&all, true), "    "));
    }
    let mut repo_rows = vec![row(["REPOSITORY", "PATH", "ERROR"])];
    for r in st
        .repositories
        .iter()
        .filter(|r| r.error.as_ref().is_some_and(|e| !e.is_empty()))
    {
        repo_rows.push(vec![
            format!("{}/{}", r.namespace, r.name),
            r.path.clone(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    if repo_rows.len() > 1 {
        outln!("  Repositories with errors:");
        out!("{}", indented_table(&repo_rows, "    "));
    }
    let secret = match resolve::storage_secret(store, &bs) {
        Ok(secret) => secret,
        Err(e @ resolve::ResolveError::NotFound { .. }) => {
            outln!("  Write probe: FAILED: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let probe = StorageOpsImpl::new(LocalMode::Host).initialize(&bs, secret.as_ref());
    match probe {
        Ok(()) => {
            outln!("  Write probe: OK (a probe file written, read back and deleted; metadata.yaml present)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("  Write probe: FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_codes_are_stripped() {
        let line = "\u{1b}[2m2026-01-01\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m backup failed";
        assert_eq!(strip_ansi(line), "2026-01-01 ERROR backup failed");
        assert_eq!(strip_ansi("plain [text]"), "plain [text]");
    }

    #[test]
    fn negative_conditions_fail_when_true() {
        let incomplete = Condition::new(c::BACKUP_INCOMPLETE, true, "Killed", "executor died");
        let ok = Condition::new(c::BACKUP_EXECUTOR_ENSURED, true, "Ensured", "");
        let bad = Condition::new(c::SNAPSHOTS_ENSURED, false, "Failed", "repo not ready");
        assert!(failing(&incomplete));
        assert!(!failing(&ok));
        assert!(failing(&bad));
    }
}
