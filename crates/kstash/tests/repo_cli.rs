//! End-to-end tests of `kstash repo`: the real `kstash` binary writes repositories and the real
//! `restic` binary (installed by scripts/setup) checks and reads them back, and the other way round.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kstash_testsupport::{ResticLockHolder, lock_file_names};

const PASSWORD: &str = "correct horse battery staple";

fn kstash(repo: &Path, args: &[&str], password: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kstash"))
        .arg("repo")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("KSTASH_PASSWORD", password)
        .env_remove("RESTIC_PASSWORD")
        .output()
        .unwrap()
}

fn restic(repo: &Path, args: &[&str]) -> Output {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("restic is installed by scripts/setup");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A producer of ~5 MiB of SQL-like text, as `pg_dumpall` would print.
const PRODUCER: &str =
    "for i in $(seq 1 60000); do echo \"INSERT INTO t VALUES ($i, 'row-$i', now());\"; done";

fn expected_dump() -> Vec<u8> {
    Command::new("sh").args(["-c", PRODUCER]).output().unwrap().stdout
}

#[test]
fn a_producer_command_is_backed_up_and_restic_reads_it_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    let summary = ok(kstash(
        &repo,
        &[
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "dumpfile.sql",
            "--tag",
            "nightly",
            "--",
            "sh",
            "-c",
            PRODUCER,
        ],
        PASSWORD,
    ));
    assert!(summary.starts_with("snapshot "), "{summary}");

    restic(&repo, &["check", "--read-data"]);
    let dumped = restic(&repo, &["dump", "latest", "/dumpfile.sql"]).stdout;
    assert_eq!(
        dumped,
        expected_dump(),
        "restic dump must return the producer's bytes"
    );
    let ours = kstash(&repo, &["dump", "latest", "/dumpfile.sql"], PASSWORD).stdout;
    assert_eq!(ours, dumped);

    let snapshots: serde_json::Value =
        serde_json::from_slice(&restic(&repo, &["snapshots", "--json"]).stdout).unwrap();
    assert_eq!(snapshots[0]["tags"][0], "nightly");
    assert_eq!(snapshots[0]["paths"][0], "/dumpfile.sql");
}

#[test]
fn a_failing_producer_fails_the_backup_and_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    let out = kstash(
        &repo,
        &[
            "backup",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "seq 1 100000; exit 3",
        ],
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exit status: 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(kstash(&repo, &["snapshots", "--json"], PASSWORD))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0);
    restic(&repo, &["check"]);
}

#[test]
fn kstash_reads_what_restic_wrote_and_rejects_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    restic(&repo, &["init"]);
    let mut child = Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "dumpfile.sql"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &expected_dump()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    assert_eq!(
        kstash(&repo, &["dump", "latest", "/dumpfile.sql"], PASSWORD).stdout,
        expected_dump()
    );
    let wrong = kstash(&repo, &["snapshots"], "not the password");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong password"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

#[test]
fn keys_can_be_added_used_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    let second = dir.path().join("second");
    std::fs::write(&second, "second password\n").unwrap();
    ok(kstash(
        &repo,
        &["key", "add", "--new-password-file", second.to_str().unwrap()],
        PASSWORD,
    ));
    let keys: serde_json::Value =
        serde_json::from_str(&ok(kstash(&repo, &["key", "list", "--json"], "second password"))).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(kstash(&repo, &["key", "remove", &first_id], "second password"));
    assert_eq!(
        kstash(&repo, &["snapshots"], PASSWORD).status.code(),
        Some(1),
        "the removed password no longer opens the repository"
    );
    let listed = Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .args(["key", "list"])
        .env("RESTIC_PASSWORD", "second password")
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "restic opens the repository with the remaining key"
    );
}

fn kstash_stdin(repo: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .arg("repo")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("KSTASH_PASSWORD", PASSWORD)
        .env_remove("RESTIC_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn restic_locks_block_wait_and_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));

    // A live restic exclusive lock: backup fails at once, naming restic's process.
    let holder = ResticLockHolder::start(&repo, PASSWORD).unwrap();
    let pid = holder.pid();
    let out = kstash_stdin(&repo, &["backup", "--stdin"], b"data\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "repository is already locked exclusively by PID {pid} on host"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("kstash repo unlock"), "{stderr}");
    // Readers too, unless --no-lock.
    assert_eq!(kstash(&repo, &["snapshots"], PASSWORD).status.code(), Some(1));
    ok(kstash(&repo, &["snapshots", "--no-lock"], PASSWORD));
    // `unlock` leaves a live lock alone.
    assert_eq!(
        ok(kstash(&repo, &["unlock"], PASSWORD)).trim(),
        "successfully removed 0 locks"
    );
    assert_eq!(lock_file_names(&repo).len(), 1);

    // --lock-wait: restic finishes while we wait.
    let waiter = std::thread::spawn({
        let repo = repo.clone();
        move || kstash_stdin(&repo, &["backup", "--stdin", "--lock-wait", "1m"], b"waited\n")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    holder.finish();
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(lock_file_names(&repo).is_empty());

    // A killed restic: its lock is stale (dead PID on this host), so it does not block, and
    // `unlock` removes it.
    ResticLockHolder::start(&repo, PASSWORD).unwrap().kill();
    assert_eq!(lock_file_names(&repo).len(), 1);
    ok(kstash_stdin(&repo, &["backup", "--stdin"], b"after the kill\n"));
    assert_eq!(
        ok(kstash(&repo, &["unlock"], PASSWORD)).trim(),
        "successfully removed 1 locks"
    );
    assert!(lock_file_names(&repo).is_empty());

    // --remove-all removes a live lock too.
    let holder = ResticLockHolder::start(&repo, PASSWORD).unwrap();
    assert_eq!(
        ok(kstash(&repo, &["unlock", "--remove-all"], PASSWORD)).trim(),
        "successfully removed 1 locks"
    );
    assert!(lock_file_names(&repo).is_empty());
    // (Killed: a restic whose lock file vanished retries removing it for minutes.)
    holder.kill();
    let listed: serde_json::Value =
        serde_json::from_str(&ok(kstash(&repo, &["snapshots", "--json"], PASSWORD))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    restic(&repo, &["check"]);
}
