//! Lock interplay with the real `restic` binary (0.14): restic honours our locks, we honour
//! restic's, both agree on what is stale, and both tools can remove the other's stale locks.
//! Skipped (with a message) only when `restic` is not installed, and then a failure under `CI`.
//!
//! A real restic exclusive lock is held deterministically by `restic key passwd`: it takes an
//! exclusive lock, then waits for the new password on standard input, which the test holds open.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::gojson::GoTime;
use kstash_repo::lock::{self, LockFile, LockOptions};
use kstash_repo::{Error, FileType, Id, Repository};
use kstash_testsupport::ResticLockHolder;

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, TestRepo};

fn restic(repo: &Path, args: &[&str]) -> Output {
    common::restic(repo, PW, args, None)
}

fn restic_ok(repo: &Path, args: &[&str]) -> String {
    String::from_utf8(common::restic_ok(repo, PW, args, None)).unwrap()
}

fn small_backup(repo: &Repository) -> kstash_repo::Result<kstash_repo::StreamBackupSummary> {
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    backup_stream(repo, &data[..], &StreamBackupOptions::named("dumpfile.sql"))
}

#[test]
fn restic_sees_and_respects_a_kstash_shared_lock() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    small_backup(&repo).unwrap();
    assert!(t.lock_names().is_empty(), "the backup removed its lock");

    let held = lock::acquire_shared(&repo, Duration::ZERO).unwrap();
    let id = held.id().to_hex();
    assert_eq!(t.lock_names(), vec![id.clone()]);
    assert_eq!(restic_ok(&t.path, &["list", "locks", "--no-lock"]).trim(), id);
    let shown: serde_json::Value =
        serde_json::from_str(&restic_ok(&t.path, &["cat", "lock", &id, "--no-lock"])).unwrap();
    let ours = held.lock_file();
    assert_eq!(shown["pid"], std::process::id());
    assert_eq!(shown["exclusive"], false);
    assert_eq!(shown["hostname"], ours.hostname.as_str());
    assert_eq!(shown["username"], ours.username.as_str());
    assert_eq!(shown["time"], ours.time.to_string());

    // Shared locks coexist: restic can read (it takes a shared lock itself) but not prune.
    restic_ok(&t.path, &["snapshots"]);
    let prune = restic(&t.path, &["prune"]);
    assert!(!prune.status.success());
    let stderr = String::from_utf8_lossy(&prune.stderr);
    assert!(
        stderr.contains(&format!(
            "repository is already locked by PID {} on {}",
            std::process::id(),
            ours.hostname
        )),
        "{stderr}"
    );
    // restic's `unlock` leaves a live lock alone: it agrees that ours is not stale.
    restic_ok(&t.path, &["unlock"]);
    assert_eq!(t.lock_names(), vec![id]);

    drop(held);
    assert!(t.lock_names().is_empty());
    restic_ok(&t.path, &["prune"]);
    restic_ok(&t.path, &["check"]);
}

#[test]
fn a_restic_exclusive_lock_blocks_kstash_until_released_or_its_process_dies() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    restic_ok(&t.path, &["init"]);
    let repo = Repository::open(t.backend(), PW).unwrap();

    // Fail fast (the default), naming restic's process.
    let holder = ResticLockHolder::start(&t.path, PW).unwrap();
    let err = small_backup(&repo).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "repository is already locked exclusively by PID {} on host ",
            holder.pid()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("(lock {})", &holder.lock_id()[..8])),
        "{msg}"
    );
    assert!(msg.contains("kstash repo unlock"), "{msg}");
    assert!(matches!(
        kstash_repo::dump_file(&repo, "latest", "/x", std::io::sink()),
        Err(Error::Locked { .. })
    ));
    assert_eq!(
        t.lock_names(),
        vec![holder.lock_id().to_string()],
        "we left nothing behind"
    );

    // Waiting: restic finishes while we wait, and we get the lock.
    let options = StreamBackupOptions {
        lock: Some(LockOptions {
            wait: Duration::from_secs(60),
            retry_interval: Duration::from_millis(200),
            ..Default::default()
        }),
        ..StreamBackupOptions::named("waited.sql")
    };
    let started = Instant::now();
    let summary = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(800));
            let stderr = holder.finish();
            assert!(stderr.contains("empty password"), "{stderr}");
        });
        backup_stream(&repo, &b"waited for the lock\n"[..], &options).unwrap()
    });
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(t.lock_names().is_empty());

    // A restic process killed while holding its lock: the lock stays, but its PID is dead on
    // this host, so it is stale and does not block us.
    let holder = ResticLockHolder::start(&t.path, PW).unwrap();
    let restic_lock = holder.lock_id().to_string();
    holder.kill();
    assert_eq!(t.lock_names(), vec![restic_lock.clone()]);
    let listed = lock::list_locks(&repo).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].stale && listed[0].lock.exclusive);
    small_backup(&repo).unwrap();
    assert_eq!(t.lock_names(), vec![restic_lock.clone()], "not ours to remove");
    // restic 0.14 itself still refuses it until `unlock`, which removes it.
    assert!(!restic(&t.path, &["prune"]).status.success());
    restic_ok(&t.path, &["unlock"]);
    assert!(t.lock_names().is_empty());
    restic_ok(&t.path, &["check"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&restic_ok(&t.path, &["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == summary.snapshot_id.to_hex())
    );
}

fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn stale_locks_do_not_block_and_both_tools_remove_them() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();

    // 31 minutes old, from another host: stale by age for both tools.
    let mut aged = LockFile::for_this_process(true);
    aged.hostname = "some-other-pod".into();
    aged.time = GoTime::utc(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(31));
    let aged_id = repo.save_json(FileType::Lock, &aged).unwrap();
    // Fresh, from another host: live as far as anyone can tell.
    let mut foreign = LockFile::for_this_process(true);
    foreign.hostname = "some-other-pod".into();

    let held = lock::acquire_exclusive(&repo, Duration::ZERO).unwrap();
    drop(held);
    small_backup(&repo).unwrap();
    assert_eq!(lock::remove_stale_locks(&repo).unwrap(), vec![aged_id]);
    assert!(t.lock_names().is_empty());

    // restic removes our aged lock too: it parses our time and finds it older than 30 minutes.
    let aged_id = repo.save_json(FileType::Lock, &aged).unwrap();
    // And our lock from a dead process on this host.
    let mut dead = LockFile::for_this_process(false);
    dead.pid = i64::from(dead_pid());
    let dead_id = repo.save_json(FileType::Lock, &dead).unwrap();
    let foreign_id = repo.save_json(FileType::Lock, &foreign).unwrap();
    let err = small_backup(&repo).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("on host some-other-pod by user {}", foreign.username)),
        "{err}"
    );
    restic_ok(&t.path, &["unlock"]);
    assert_eq!(t.lock_names(), vec![foreign_id.to_hex()]);
    assert!(!t.lock_names().contains(&aged_id.to_hex()));
    assert!(!t.lock_names().contains(&dead_id.to_hex()));
    assert_eq!(lock::remove_all_locks(&repo).unwrap(), vec![foreign_id]);
    small_backup(&repo).unwrap();
    restic_ok(&t.path, &["check"]);
}

#[test]
fn a_held_lock_is_refreshed_and_restic_reads_the_new_file() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    let options = LockOptions {
        refresh_interval: Duration::from_millis(1500),
        ..Default::default()
    };
    let held = lock::acquire(&repo, true, &options).unwrap();
    let first: Id = held.id();
    let first_time = held.lock_file().time;
    let deadline = Instant::now() + Duration::from_secs(30);
    while held.id() == first {
        assert!(Instant::now() < deadline, "the lock was never refreshed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The refresh publishes the new id before it deletes the old file: wait for the deletion.
    let names = loop {
        let names = t.lock_names();
        if !names.contains(&first.to_hex()) {
            break names;
        }
        assert!(
            Instant::now() < deadline,
            "the old lock file is never removed: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(names.contains(&held.id().to_hex()), "{names:?}");
    // restic reads the refreshed file (retrying if another refresh replaced it meanwhile).
    let mut shown = None;
    for _ in 0..5 {
        let current = held.id().to_hex();
        let out = restic(&t.path, &["cat", "lock", &current, "--no-lock"]);
        if out.status.success() {
            shown = Some(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
            break;
        }
    }
    let shown = shown.expect("restic cat lock");
    assert_eq!(shown["exclusive"], true);
    assert_eq!(shown["pid"], std::process::id());
    assert_ne!(shown["time"], first_time.to_string());
    held.release().unwrap();
    assert!(t.lock_names().is_empty());
    restic_ok(&t.path, &["snapshots"]);
}
