//! Repository-level operations of the CLI (kubectl-kubestash habits): `snapshots`, `unlock`,
//! `password`, `download`, `debug`.
//!
//! They work on the store of the embedded runtime and on the component repositories of a
//! Repository directly with the engine (no daemon needed): `unlock` and `password` open every
//! component repository (`repository/v1/<session>/<component>`) with the Repository's encryption
//! password, `download` restores a Snapshot's components into a local directory, and `debug`
//! gathers what explains a failing backup, restore or storage in one report.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use kstash_api::client::ResourcesExt;
use kstash_api::common::{Condition, ConditionStatus, HookExecutionPhase, HookStatus};
use kstash_api::core::{BackupConfiguration, BackupSession, RestoreSession};
use kstash_api::phase::conditions as c;
use kstash_api::resolve;
use kstash_api::storage::{BackupStorage, Repository, Snapshot, SnapshotPhase};
use kstash_controller::platform::StorageOps as _;
use kstash_embedded::Store;
use kstash_exec::access::{ComponentRepo, component_repositories, download_snapshot};
use kstash_exec::{ExecOptions, LocalMode, StorageOpsImpl};
use kstash_repo::keys::{KdfParams, KeyInfo};
use kstash_repo::lock::{self, LockOptions};

use crate::cli::{
    DebugArgs, DebugWhat, DownloadArgs, PasswordAction, PasswordArgs, PasswordTarget, SnapshotsArgs,
    UnlockArgs,
};

/// Lines of an executor log shown by `debug`.
const LOG_TAIL_LINES: usize = 20;

/// Where component repositories live inside a repository directory.
const COMPONENT_PREFIX: &str = "repository/v1/";

// ---- small helpers --------------------------------------------------------------------------

/// Left-aligned columns separated by three spaces, as `kstash get` prints.
fn table(rows: &[Vec<String>]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `table` with every line indented.
fn indented_table(rows: &[Vec<String>], indent: &str) -> String {
    table(rows).lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A phase as kubectl prints it, or `<none>`.
fn show<T: Debug>(phase: Option<T>) -> String {
    phase.map_or_else(|| "<none>".to_string(), |p| format!("{p:?}"))
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn age(t: jiff::Timestamp) -> String {
    crate::print::human_duration(jiff::Timestamp::now().duration_since(t).as_secs())
}

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

fn get_repository(store: &Store, ns: &str, name: &str) -> Result<Repository> {
    store
        .get_as::<Repository>(ns, name)?
        .with_context(|| format!("Repository {ns}/{name} not found (kstash get repo -n {ns})"))
}

/// The Secret that holds the Repository's password (by the one rule of `kstash_api::resolve`),
/// for messages.
fn encryption_secret(store: &Store, repo: &Repository) -> Result<String> {
    Ok(resolve::repository(store, repo.clone())?
        .password
        .secret
        .to_string())
}

/// `wanted` as a component path: exact, or relative to `repository/v1/`.
fn matches_path(component: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_matches('/');
    component == wanted || component.strip_prefix(COMPONENT_PREFIX) == Some(wanted)
}

/// The component repositories of `namespace/name`, only those in `paths` when given.
fn components(
    store: &Store,
    ns: &str,
    name: &str,
    paths: &[String],
) -> Result<(Repository, Vec<ComponentRepo>)> {
    let repo = get_repository(store, ns, name)?;
    let all = component_repositories(store, &repo, &ExecOptions::embedded())
        .with_context(|| format!("finding the component repositories of Repository {ns}/{name}"))?;
    if all.is_empty() {
        bail!(
            "Repository {ns}/{name} has no component repositories yet: no backup has written into it (kstash trigger <backupconfiguration> -n {ns})"
        );
    }
    let paths: Vec<&String> = paths.iter().filter(|p| !p.trim().is_empty()).collect();
    if paths.is_empty() {
        return Ok((repo, all));
    }
    let unknown: Vec<&str> = paths
        .iter()
        .filter(|p| !all.iter().any(|c| matches_path(&c.path, p)))
        .map(|p| p.as_str())
        .collect();
    if !unknown.is_empty() {
        bail!(
            "Repository {ns}/{name} has no component path {}; its paths: {}",
            unknown.join(", "),
            all.iter().map(|c| c.path.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let selected = all
        .into_iter()
        .filter(|c| paths.iter().any(|p| matches_path(&c.path, p)))
        .collect();
    Ok((repo, selected))
}

fn open_component(comp: &ComponentRepo, ns: &str, repo: &str) -> Result<kstash_repo::Repository> {
    comp.open()
        .with_context(|| format!("opening {} of Repository {ns}/{repo}", comp.path))
}

/// Take a lock on a component repository, pointing at `kstash unlock` when another holds it.
fn lock_component(
    engine: &kstash_repo::Repository,
    exclusive: bool,
    comp: &ComponentRepo,
    ns: &str,
    repo: &str,
) -> Result<lock::RepoLock> {
    lock::acquire(engine, exclusive, &LockOptions::default()).with_context(|| {
        format!(
            "locking {} of Repository {ns}/{repo} (if the process holding the lock is gone: kstash unlock {repo} -n {ns} --remove-all)",
            comp.path
        )
    })
}

// ---- snapshots ------------------------------------------------------------------------------

fn snapshot_time(s: &Snapshot) -> Option<jiff::Timestamp> {
    s.status
        .as_ref()
        .and_then(|st| st.snapshot_time.as_ref())
        .or(s.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// `kstash snapshots`: Snapshots newest first.
pub fn snapshots(store: &Store, a: SnapshotsArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let scope = (!a.all_namespaces).then_some(ns);
    if let (Some(r), false) = (&a.repository, a.all_namespaces) {
        get_repository(store, ns, r)?;
    }
    let mut list: Vec<Snapshot> = store.list_as(scope, &[])?;
    list.retain(|s| {
        a.repository.as_ref().is_none_or(|r| &s.spec.repository == r)
            && a.session
                .as_ref()
                .is_none_or(|x| &s.spec.session == x || &s.spec.backup_session == x)
    });
    list.sort_by(|x, y| {
        snapshot_time(y)
            .cmp(&snapshot_time(x))
            .then_with(|| y.metadata.name.cmp(&x.metadata.name))
    });
    if list.is_empty() {
        if a.all_namespaces {
            eprintln!("No snapshots found");
        } else {
            eprintln!("No snapshots found in {ns} namespace.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec![];
    if a.all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(row([
        "NAME",
        "REPOSITORY",
        "SESSION",
        "PHASE",
        "SNAPSHOT-TIME",
        "SIZE",
        "INTEGRITY",
        "AGE",
    ]));
    let mut rows = vec![header];
    for s in &list {
        let st = s.status.clone().unwrap_or_default();
        let mut r = vec![];
        if a.all_namespaces {
            r.push(s.metadata.namespace.clone().unwrap_or_default());
        }
        r.push(s.metadata.name.clone().unwrap_or_default());
        r.push(s.spec.repository.clone());
        r.push(s.spec.session.clone());
        r.push(st.phase.map(|p| format!("{p:?}")).unwrap_or_default());
        r.push(
            st.snapshot_time
                .as_ref()
                .map(|t| rfc3339(t.0))
                .unwrap_or_default(),
        );
        r.push(st.size.clone());
        r.push(st.integrity.map(|i| i.to_string()).unwrap_or_default());
        r.push(
            s.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(t.0))
                .unwrap_or_default(),
        );
        rows.push(r);
    }
    out!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

// ---- unlock ---------------------------------------------------------------------------------

/// `kstash unlock <repo>`: remove stale locks (or all) from every component repository.
pub fn unlock(store: &Store, a: UnlockArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let (_, comps) = components(store, ns, &a.repository, &a.paths)?;
    let mut total = 0;
    for comp in &comps {
        let engine = open_component(comp, ns, &a.repository)?;
        let removed = if a.remove_all {
            lock::remove_all_locks(&engine)
        } else {
            lock::remove_stale_locks(&engine)
        }
        .with_context(|| {
            format!(
                "removing locks of {} of Repository {ns}/{}",
                comp.path, a.repository
            )
        })?;
        total += removed.len();
        let ids: Vec<String> = removed.iter().map(|id| id.short()).collect();
        if ids.is_empty() {
            outln!("{}: removed 0 locks", comp.path);
        } else {
            outln!("{}: removed {} locks ({})", comp.path, ids.len(), ids.join(", "));
        }
    }
    if total == 0 && !a.remove_all {
        eprintln!(
            "note: only stale locks are removed (their process is gone or they are older than 30 minutes); --remove-all removes locks of running processes too"
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---- password -------------------------------------------------------------------------------

fn new_password(t: &PasswordTarget, action: &str) -> Result<String> {
    let Some(file) = &t.new_password_file else {
        bail!("kstash password {action} needs --new-password-file FILE (its first line is the new password)");
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the new password file {}", file.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!(
            "the new password file {} is empty; put the new password on its first line",
            file.display()
        );
    }
    Ok(password)
}

fn key_rows(keys: &[KeyInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![row(["ID", "CURRENT", "USER", "HOST", "CREATED"])];
    for k in keys {
        rows.push(vec![
            k.id.short(),
            if k.current { "*".into() } else { String::new() },
            k.username.clone(),
            k.hostname.clone(),
            k.created.timestamp.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    rows
}

/// `kstash password add|list|update|remove <repo>`.
pub fn password(store: &Store, a: PasswordArgs) -> Result<ExitCode> {
    match a.action {
        PasswordAction::List(t) => password_list(store, &t),
        PasswordAction::Add(t) => password_add(store, &t),
        PasswordAction::Update(t) => password_update(store, &t),
        PasswordAction::Remove(t) => password_remove(store, &t),
    }
}

fn password_list(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let (_, comps) = components(store, ns, &t.repository, &t.paths)?;
    for (i, comp) in comps.iter().enumerate() {
        let engine = open_component(comp, ns, &t.repository)?;
        let _lock = lock_component(&engine, false, comp, ns, &t.repository)?;
        let keys = engine
            .list_keys()
            .with_context(|| format!("listing the keys of {}", comp.path))?;
        if i > 0 {
            outln!("");
        }
        outln!("{}:", comp.path);
        out!("{}", indented_table(&key_rows(&keys), "  "));
    }
    Ok(ExitCode::SUCCESS)
}

fn password_add(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let new = new_password(t, "add")?;
    let (repo, comps) = components(store, ns, &t.repository, &t.paths)?;
    for comp in &comps {
        let engine = open_component(comp, ns, &t.repository)?;
        let _lock = lock_component(&engine, false, comp, ns, &t.repository)?;
        let id = engine.add_key(&new, KdfParams::default()).with_context(|| {
            format!(
                "adding a key to {} of Repository {ns}/{}",
                comp.path, t.repository
            )
        })?;
        outln!("{}: added key {}", comp.path, id.short());
    }
    eprintln!(
        "note: the {} still holds the old password, which keeps working and is what kstash uses; to switch, put the new password into its RESTIC_PASSWORD, then remove the old keys (kstash password remove {} -n {ns} --id-paths ID:PATH)",
        encryption_secret(store, &repo)?,
        t.repository
    );
    Ok(ExitCode::SUCCESS)
}

fn password_update(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let new = new_password(t, "update")?;
    let (repo, comps) = components(store, ns, &t.repository, &t.paths)?;
    let secret = encryption_secret(store, &repo)?;
    let mut changed: Vec<&str> = Vec::new();
    for comp in &comps {
        let result = (|| -> Result<kstash_repo::Id> {
            let mut engine = open_component(comp, ns, &t.repository)?;
            let _lock = lock_component(&engine, true, comp, ns, &t.repository)?;
            Ok(engine.change_password(&new, KdfParams::default())?)
        })();
        match result {
            Ok(id) => {
                outln!("{}: password changed (new key {})", comp.path, id.short());
                changed.push(&comp.path);
            }
            Err(e) if changed.is_empty() => return Err(e),
            Err(e) => {
                return Err(e.context(format!(
                    "changing the password of {}; already changed (these now only open with the new password): {} — put the new password into the {secret} only once every path is changed, or change those back",
                    comp.path,
                    changed.join(", ")
                )));
            }
        }
    }
    eprintln!(
        "warning: the {secret} still holds the old password, which no longer opens {}; update its RESTIC_PASSWORD with the new password now, or backups and restores of Repository {ns}/{} fail",
        if t.paths.is_empty() {
            "these repositories".to_string()
        } else {
            changed.join(", ")
        },
        t.repository
    );
    Ok(ExitCode::SUCCESS)
}

fn password_remove(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let name = t.repository.as_str();
    let pairs: Vec<&String> = t.id_paths.iter().filter(|p| !p.trim().is_empty()).collect();
    if pairs.is_empty() {
        bail!(
            "kstash password remove needs --id-paths ID:PATH[,ID:PATH…] (ids and paths: kstash password list {name} -n {ns})"
        );
    }
    let (repo, comps) = components(store, ns, name, &[])?;
    // Check every pair before removing anything.
    let mut plan: Vec<(&ComponentRepo, kstash_repo::Repository, KeyInfo)> = Vec::new();
    for pair in pairs {
        let Some((id, path)) = pair.split_once(':') else {
            bail!(
                "--id-paths takes ID:PATH pairs; '{pair}' has no ':' (see kstash password list {name} -n {ns})"
            );
        };
        let Some(comp) = comps.iter().find(|c| matches_path(&c.path, path)) else {
            bail!(
                "Repository {ns}/{name} has no component path {path}; its paths: {}",
                comps
                    .iter()
                    .map(|c| c.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let engine = open_component(comp, ns, name)?;
        let keys = engine
            .list_keys()
            .with_context(|| format!("listing the keys of {}", comp.path))?;
        let found: Vec<&KeyInfo> = keys
            .iter()
            .filter(|k| !id.is_empty() && k.id.to_string().starts_with(id))
            .collect();
        let key = match found.as_slice() {
            [k] => (*k).clone(),
            [] => bail!(
                "{} has no key '{id}' (kstash password list {name} -n {ns})",
                comp.path
            ),
            _ => bail!(
                "'{id}' matches {} keys of {}; give more of the id",
                found.len(),
                comp.path
            ),
        };
        if key.current {
            bail!(
                "key {} of {} is the one the password in the {} opens: removing it would lock kstash out; put another key's password into the Secret first (kstash password add/update), then remove this one",
                key.id.short(),
                comp.path,
                encryption_secret(store, &repo)?
            );
        }
        plan.push((comp, engine, key));
    }
    for (comp, engine, key) in plan {
        let _lock = lock_component(&engine, true, comp, ns, name)?;
        engine
            .remove_key(&key.id)
            .with_context(|| format!("removing key {} of {}", key.id.short(), comp.path))?;
        outln!("{}: removed key {}", comp.path, key.id.short());
    }
    Ok(ExitCode::SUCCESS)
}

// ---- download -------------------------------------------------------------------------------

/// `kstash download <snapshot>`: restore a Snapshot's components into `--destination`.
pub fn download(store: &Store, a: DownloadArgs) -> Result<ExitCode> {
    let ns = a.namespace.as_str();
    let snap: Snapshot = store.get_as(ns, &a.snapshot)?.with_context(|| {
        format!(
            "Snapshot {ns}/{} not found (kstash snapshots -n {ns})",
            a.snapshot
        )
    })?;
    let st = snap.status.clone().unwrap_or_default();
    if st.phase != Some(SnapshotPhase::Succeeded) {
        eprintln!(
            "warning: Snapshot {ns}/{} is {}; downloading what its components recorded",
            a.snapshot,
            show(st.phase)
        );
    }
    let names: Vec<String> = if a.components.is_empty() {
        st.components.keys().cloned().collect()
    } else {
        a.components.clone()
    };
    download_snapshot(
        store,
        ns,
        &a.snapshot,
        &a.components,
        &a.destination,
        &ExecOptions::embedded(),
    )
    .with_context(|| format!("downloading Snapshot {ns}/{}", a.snapshot))?;
    let base = std::path::absolute(&a.destination).unwrap_or_else(|_| a.destination.clone());
    for n in &names {
        outln!(
            "component {n} of Snapshot {ns}/{} downloaded to {}",
            a.snapshot,
            base.join(&a.snapshot).join(n).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---- debug ----------------------------------------------------------------------------------

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

    #[test]
    fn component_paths_match_with_or_without_prefix() {
        assert!(matches_path(
            "repository/v1/frequent/dump",
            "repository/v1/frequent/dump"
        ));
        assert!(matches_path("repository/v1/frequent/dump", "frequent/dump"));
        assert!(!matches_path("repository/v1/frequent/dump", "dump"));
    }
}
