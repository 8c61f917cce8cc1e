//! End to end on the embedded daemon: an executor killed mid-backup ends its session `Failed`
//! with `BackupIncomplete` (never stuck in Running), and a daemon killed mid-session and started
//! again finishes the session consistently with exactly one snapshot.

mod lifecycle;

use std::path::Path;
use std::time::Duration;

use kstash_testsupport::Restic;
use lifecycle::{Env, name, phase, wait_some, write_tree};
use serde_json::Value;

/// Wait for the executor of the first session of `bc` to start; returns (session, executor pid).
fn executor_started(env: &Env, bc: &str) -> (String, u32) {
    wait_some(Duration::from_secs(60), "the backup executor to start", || {
        let s = env.sessions_of(bc).into_iter().next()?;
        let session = name(&s).to_string();
        let job = env.home.join("jobs/demo").join(&session).join("job.json");
        let record: Value = serde_json::from_slice(&std::fs::read(job).ok()?).ok()?;
        Some((session, record["pid"].as_u64()? as u32))
    })
}

fn final_session(env: &Env, session: &str) -> Value {
    wait_some(Duration::from_secs(120), "the session to end", || {
        let s = env.get("backupsession", "demo", session)?;
        matches!(phase(&s), "Succeeded" | "Failed" | "Skipped").then_some(s)
    })
}

fn kill_9(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}

fn restic_snapshot_count(repo: &Path) -> usize {
    let restic = Restic::new(repo.display().to_string(), "changeit").unwrap();
    let out = restic.run(&["snapshots", "--json", "--no-lock"]).unwrap();
    serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
}

#[test]
fn killed_executor_ends_failed_with_backup_incomplete() {
    let env = Env::new();
    write_tree(&env.data, 96 << 20);
    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration("big", "0 0 1 1 *", &env.data.display().to_string(), ""));
    let _daemon = env.start_daemon(&[]);

    let (session, pid) = executor_started(&env, "big");
    kill_9(pid);

    let s = final_session(&env, &session);
    assert_eq!(
        phase(&s),
        "Failed",
        "a session whose executor was killed must fail: {s:#}"
    );
    let snap_name = s
        .pointer("/status/snapshots/0/name")
        .and_then(Value::as_str)
        .unwrap();
    let snap = env.get("snapshot", "demo", snap_name).unwrap();
    assert_eq!(phase(&snap), "Failed", "{snap:#}");
    let incomplete = snap["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BackupIncomplete")
        .unwrap_or_else(|| panic!("no BackupIncomplete condition: {snap:#}"));
    assert_eq!(incomplete["status"], "True");
    assert_eq!(incomplete["reason"], "BackupExecutorTerminatedBeforeCompletion");
    // The executor was killed before it could save a snapshot.
    let repo = env.component_repo("demo/big", "frequent");
    if repo.join("config").exists() {
        assert_eq!(
            restic_snapshot_count(&repo),
            0,
            "a killed backup must not leave a restic snapshot"
        );
    }
}

#[test]
fn daemon_killed_mid_session_and_restarted_finishes_consistently() {
    let env = Env::new();
    write_tree(&env.data, 96 << 20);
    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration("crashy", "0 0 1 1 *", &env.data.display().to_string(), ""));
    let mut daemon = env.start_daemon(&[]);

    let (session, _pid) = executor_started(&env, "crashy");
    daemon.kill();
    let running = env.get("backupsession", "demo", &session).unwrap();
    assert_eq!(
        phase(&running),
        "Running",
        "the daemon died mid-session: {running:#}"
    );

    // The executor outlives the daemon; a new daemon picks the session up where it was.
    let _daemon2 = env.start_daemon(&[]);
    let s = final_session(&env, &session);
    assert_eq!(phase(&s), "Succeeded", "{s:#}");
    let sessions = env.sessions_of("crashy");
    assert_eq!(sessions.len(), 1, "no extra session: {sessions:#?}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1);
    assert_eq!(phase(&snaps[0]), "Succeeded");
    assert_eq!(
        restic_snapshot_count(&env.component_repo("demo/crashy", "frequent")),
        1
    );
}

#[test]
fn daemon_killed_while_a_retention_wipe_out_is_pending_finishes_it_after_restart() {
    let env = Env::new();
    write_tree(&env.data, 4096);
    // Retention keeps the last Snapshot: the second backup's retention wipes out the first.
    env.apply(&env.storage_manifests(1));
    env.apply(&env.backup_configuration("kept", "0 0 1 1 *", &env.data.display().to_string(), ""));
    let mut daemon = env.start_daemon(&[]);
    let first = env.wait_sessions_done("kept", 1).remove(0);
    assert_eq!(phase(&first), "Succeeded", "{first:#}");

    // Hold a shared lock on the component repository: backups share it, but the wipe-out's
    // forget + prune needs it exclusively, so it cannot finish while the lock is held.
    let repo_dir = env.component_repo("demo/kept", "frequent");
    let repo = kstash_repo::Repository::open(
        std::sync::Arc::new(kstash_repo::LocalBackend::new(&repo_dir)),
        "changeit",
    )
    .unwrap();
    let held = kstash_repo::acquire_shared(&repo, Duration::ZERO).unwrap();

    env.ok(&["trigger", "kept", "-n", "demo"]);
    let first_snapshot = wait_some(
        Duration::from_secs(120),
        "retention to delete the first Snapshot",
        || {
            env.list("snapshots", "demo")
                .into_iter()
                .find(|s| s.pointer("/metadata/deletionTimestamp").is_some())
                .map(|s| name(&s).to_string())
        },
    );

    // Killed with the wipe-out still to do; the lock goes away; a new daemon finishes it.
    daemon.kill();
    drop(held);
    let _daemon2 = env.start_daemon(&[]);
    wait_some(Duration::from_secs(120), "the wiped-out Snapshot to go", || {
        env.get("snapshot", "demo", &first_snapshot)
            .is_none()
            .then_some(())
    });
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    assert_eq!(phase(&snaps[0]), "Succeeded", "{:#}", snaps[0]);
    assert_eq!(
        restic_snapshot_count(&repo_dir),
        1,
        "restic agrees: one snapshot left"
    );
    let restic = Restic::new(repo_dir.display().to_string(), "changeit").unwrap();
    restic
        .run(&["check"])
        .expect("restic check passes after the restarted wipe-out");
}

#[test]
fn daemon_killed_while_the_executor_writes_progress_restarts_into_a_complete_snapshot() {
    let env = Env::new();
    write_tree(&env.data, 96 << 20);
    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration("progress", "0 0 1 1 *", &env.data.display().to_string(), ""));
    // Progress every 20 ms, so writes are in flight all through the backup.
    let period = [("KSTASH_PROGRESS_PERIOD", "20ms")];
    let mut daemon = env.start_daemon_with_env(&[], &period);

    let (session, _pid) = executor_started(&env, "progress");
    // A progress write seen while the component still runs.
    let snapshot = wait_some(Duration::from_secs(60), "a live progress write", || {
        env.list("snapshots", "demo").into_iter().find(|s| {
            let dump = &s["status"]["components"]["dump"];
            dump["phase"] == "Running" && dump.pointer("/resticStats/0/progress").is_some()
        })
    });
    daemon.kill();

    let _daemon2 = env.start_daemon_with_env(&[], &period);
    let s = final_session(&env, &session);
    assert_eq!(phase(&s), "Succeeded", "{s:#}");
    let snap = env.get("snapshot", "demo", name(&snapshot)).unwrap();
    assert_eq!(phase(&snap), "Succeeded", "{snap:#}");
    let progress = &snap["status"]["components"]["dump"]["resticStats"][0]["progress"];
    assert_eq!(progress["percentDone"], "100.00%", "final progress: {progress:#}");
    assert_eq!(progress["filesDone"], progress["totalFiles"], "{progress:#}");
    assert_eq!(
        restic_snapshot_count(&env.component_repo("demo/progress", "frequent")),
        1
    );
}
