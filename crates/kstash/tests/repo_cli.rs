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
    for threads in ["1", "3"] {
        let ours = ok(kstash(
            &repo,
            &["dump", "--threads", threads, "latest", "/dumpfile.sql"],
            PASSWORD,
        ));
        assert!(ours.as_bytes() == dumped, "dump --threads {threads} differs");
    }

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

/// `restic backup --stdin` of `data` with extra flags (`--time`, `--host`, `--tag`), in UTC.
fn restic_backup_at(repo: &Path, flags: &[&str], data: &[u8]) {
    let mut child = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .args(["backup", "--stdin", "--stdin-filename", "dumpfile.sql"])
        .args(flags)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn ids_of(list: &serde_json::Value, field: &str) -> std::collections::BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g[field].as_array().cloned().unwrap_or_default())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_applies_restics_policy_to_restics_snapshots_and_snapshots_filters() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    restic(&repo, &["init"]);
    for (time, host, tag) in [
        ("2022-01-01 10:00:00", "a", "nightly"),
        ("2022-01-01 11:00:00", "a", "nightly"),
        ("2022-01-02 09:00:00", "a", "nightly"),
        ("2022-02-01 08:00:00", "a", "manual"),
        ("2022-01-05 00:00:00", "b", "nightly"),
        ("2022-03-01 00:00:00", "b", "keep"),
    ] {
        restic_backup_at(
            &repo,
            &["--time", time, "--host", host, "--tag", tag],
            format!("{time} {host}\n").as_bytes(),
        );
    }
    let count = |args: &[&str]| -> usize {
        let mut all = vec!["snapshots", "--json"];
        all.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&ok(kstash(&repo, &all, PASSWORD))).unwrap();
        v.as_array().unwrap().len()
    };
    assert_eq!(count(&[]), 6);
    assert_eq!(count(&["--host", "a"]), 4);
    assert_eq!(count(&["--host", "a", "--host", "b"]), 6);
    assert_eq!(count(&["--tag", "keep", "--tag", "manual"]), 2);
    assert_eq!(count(&["--tag", "keep,manual"]), 0);
    assert_eq!(count(&["--path", "/dumpfile.sql"]), 6);
    assert_eq!(count(&["--path", "/other"]), 0);

    // An empty policy removes nothing.
    let out = ok(kstash(&repo, &["forget"], PASSWORD));
    assert!(
        out.contains("no policy was specified, no snapshots will be removed"),
        "{out}"
    );
    assert_eq!(count(&[]), 6);

    // The dry run decides as restic does, in restic's JSON shape.
    let policy = ["--keep-daily", "2", "--keep-tag", "keep"];
    let ours: serde_json::Value = serde_json::from_str(&ok(kstash(
        &repo,
        &[&["forget", "--dry-run", "--json"][..], &policy[..]].concat(),
        PASSWORD,
    )))
    .unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(
        &restic(
            &repo,
            &[&["forget", "--dry-run", "--json"][..], &policy[..]].concat(),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(ids_of(&ours, "keep"), ids_of(&theirs, "keep"));
    assert_eq!(ids_of(&ours, "remove"), ids_of(&theirs, "remove"));
    assert_eq!(ids_of(&ours, "remove").len(), 2);
    let group_a = ours
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["host"] == "a")
        .unwrap();
    assert_eq!(group_a["paths"], serde_json::json!(["/dumpfile.sql"]));
    assert_eq!(group_a["tags"], serde_json::Value::Null);
    assert_eq!(
        group_a["reasons"][0]["matches"],
        serde_json::json!(["daily snapshot"])
    );
    assert_eq!(group_a["reasons"][0]["counters"], serde_json::json!({"daily": 1}));
    assert_eq!(count(&[]), 6, "a dry run removes nothing");
    let human = ok(kstash(
        &repo,
        &[&["forget", "--dry-run"][..], &policy[..]].concat(),
        PASSWORD,
    ));
    assert!(
        human.contains("Applying Policy: keep 2 daily snapshots and all snapshots with tags [[keep]]"),
        "{human}"
    );
    assert!(
        human.contains("Would have removed the following snapshots:"),
        "{human}"
    );
    assert!(human.contains("keep 2 snapshots:"), "{human}");

    // For real, only host a: the two oldest snapshots of host a go.
    let out = ok(kstash(
        &repo,
        &["forget", "--keep-daily", "2", "--host", "a"],
        PASSWORD,
    ));
    assert!(out.contains("removed 2 snapshots"), "{out}");
    let left: serde_json::Value =
        serde_json::from_slice(&restic(&repo, &["snapshots", "--json"]).stdout).unwrap();
    let mut times: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_str().unwrap())
        .collect();
    times.sort();
    assert_eq!(
        times,
        [
            "2022-01-02T09:00:00Z",
            "2022-01-05T00:00:00Z",
            "2022-02-01T08:00:00Z",
            "2022-03-01T00:00:00Z"
        ]
    );
    restic(&repo, &["check"]);

    // By id prefix; ids together with a policy are refused; negative counts are usage errors.
    let victim = left
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["time"] == "2022-01-05T00:00:00Z")
        .unwrap()["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    let both = kstash(&repo, &["forget", "--keep-last", "1", &victim], PASSWORD);
    assert_eq!(both.status.code(), Some(1));
    assert_eq!(
        kstash(&repo, &["forget", "--keep-last", "-1"], PASSWORD)
            .status
            .code(),
        Some(2)
    );
    let out = kstash(&repo, &["forget", &victim, "deadbeef00"], PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Ignoring \"deadbeef00\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&[]), 3);
    assert!(lock_file_names(&repo).is_empty());
    restic(&repo, &["check"]);
}

#[test]
fn check_exits_1_and_names_the_pack_after_a_bit_flip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    ok(kstash_stdin(
        &repo,
        &["backup", "--stdin", "--stdin-filename", "a.sql"],
        &expected_dump(),
    ));
    let out = ok(kstash(&repo, &["check", "--read-data"], PASSWORD));
    assert!(out.ends_with("no errors were found\n"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&ok(kstash(&repo, &["check", "--json"], PASSWORD))).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["snapshots_checked"], 1);

    // Flip a bit in the middle of the largest pack: inside a data blob.
    let mut packs: Vec<(u64, std::path::PathBuf)> = walk_files(&repo.join("data"))
        .into_iter()
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    packs.sort();
    let (size, path) = packs.pop().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut data = std::fs::read(&path).unwrap();
    data[(size / 2) as usize] ^= 0x20;
    std::fs::write(&path, &data).unwrap();

    // The structure is intact; reading the data finds the damage, names the pack, exits 1.
    ok(kstash(&repo, &["check"], PASSWORD));
    let out = kstash(&repo, &["check", "--read-data"], PASSWORD);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("error: pack {name}: data blob ")),
        "{stdout}"
    );
    assert!(stdout.contains("/a.sql: data blob"), "{stdout}");
    assert!(stderr.contains("Fatal: repository contains errors"), "{stderr}");
    let out = kstash(
        &repo,
        &["check", "--read-data-subset", "100%", "--json"],
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged: Vec<&serde_json::Value> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "damaged_blob")
        .collect();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["pack"], name.as_str());
    // restic agrees, and a bad subset is a usage error.
    let restic_out = Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!restic_out.status.success());
    assert_eq!(
        kstash(&repo, &["check", "--read-data-subset", "0/3"], PASSWORD)
            .status
            .code(),
        Some(2)
    );
    assert!(lock_file_names(&repo).is_empty());
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn restore_writes_a_restic_directory_snapshot_with_patterns_sub_paths_and_skips() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::set_permissions(src.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::new(1_234_567_890, 123_456_789);
    std::fs::File::open(src.join("a.txt"))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    let big: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("sub/b.bin"), &big).unwrap();
    std::fs::write(src.join("sub/skip.log"), b"noise\n").unwrap();
    restic(&repo, &["init"]);
    let backup = Command::new("restic")
        .current_dir(dir.path())
        .arg("-r")
        .arg(&repo)
        .args(["backup", "src"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );

    let target = dir.path().join("target");
    let t = target.to_str().unwrap();
    let summary = |out: String| -> serde_json::Value { serde_json::from_str(&out).unwrap() };
    let s = summary(ok(kstash(
        &repo,
        &["restore", "latest", "--target", t, "--exclude", "*.log", "--json"],
        PASSWORD,
    )));
    assert_eq!(s["message_type"], "summary");
    assert_eq!(
        (s["files_restored"].as_u64(), s["dirs_restored"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    assert_eq!(s["errors"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(std::fs::read(target.join("src/a.txt")).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(target.join("src/sub/b.bin")).unwrap(), big);
    assert!(!target.join("src/sub/skip.log").exists());
    let m = std::fs::metadata(target.join("src/a.txt")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
        (0o640, 1_234_567_890, 123_456_789)
    );
    assert!(lock_file_names(&repo).is_empty());

    // Again: nothing changed, nothing written.
    let s = summary(ok(kstash(
        &repo,
        &["restore", "latest", "-t", t, "-e", "*.log", "--json"],
        PASSWORD,
    )));
    assert_eq!(
        (s["files_restored"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );

    // A sub-path, with the human-readable summary.
    let sub = dir.path().join("sub-target");
    let out = ok(kstash(
        &repo,
        &[
            "restore",
            "latest:/src/sub",
            "--target",
            sub.to_str().unwrap(),
            "--include",
            "*.bin",
        ],
        PASSWORD,
    ));
    assert!(out.starts_with("restored snapshot "), "{out}");
    assert_eq!(std::fs::read(sub.join("b.bin")).unwrap(), big);
    assert!(!sub.join("skip.log").exists());

    // A path that is not in the snapshot fails and names it.
    let bad = kstash(&repo, &["restore", "latest:/nope", "--target", t], PASSWORD);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("/nope"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn repair_index_rebuilds_a_lost_index_and_repair_snapshots_cuts_out_a_lost_pack() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    let data = expected_dump();
    ok(kstash_stdin(
        &repo,
        &["backup", "--stdin", "--stdin-filename", "a.sql"],
        &data,
    ));
    let index_dir = repo.join("index");
    for f in walk_files(&index_dir) {
        std::fs::remove_file(f).unwrap();
    }
    let out = kstash(&repo, &["check"], PASSWORD);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no index: the snapshot's blobs are unknown"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("`kstash repo repair index` indexes its blobs"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A dry run writes nothing; restic 0.14's name works too.
    let out = ok(kstash(&repo, &["repair", "index", "--dry-run"], PASSWORD));
    assert!(
        out.contains("dry run") && walk_files(&index_dir).is_empty(),
        "{out}"
    );
    let out = ok(kstash(&repo, &["rebuild-index"], PASSWORD));
    assert!(
        out.contains("loading indexes...") && out.contains("saved new index as") && out.ends_with("done\n"),
        "{out}"
    );
    assert_eq!(walk_files(&index_dir).len(), 1);
    let out = ok(kstash(&repo, &["check", "--read-data"], PASSWORD));
    assert!(out.ends_with("no errors were found\n"), "{out}");
    restic(&repo, &["check", "--read-data"]);
    assert_eq!(
        ok(kstash(&repo, &["dump", "latest", "/a.sql"], PASSWORD)).as_bytes(),
        data
    );

    // Lose the largest pack: repair index drops it, check names the missing blobs.
    let mut packs: Vec<(u64, std::path::PathBuf)> = walk_files(&repo.join("data"))
        .into_iter()
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    packs.sort();
    let (_, lost) = packs.pop().unwrap();
    std::fs::remove_file(&lost).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&ok(kstash(&repo, &["repair", "index", "--json"], PASSWORD))).unwrap();
    let lost_name = lost.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        report["missing_packs"],
        serde_json::json!([lost_name]),
        "{report}"
    );
    let out = kstash(&repo, &["check"], PASSWORD);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/a.sql: data blob"), "{stdout}");

    let out = ok(kstash(&repo, &["repair", "snapshots", "--forget"], PASSWORD));
    assert!(
        out.contains("file \"/a.sql\": removed missing content")
            && out.contains("saved new snapshot")
            && out.contains("modified 1 snapshots"),
        "{out}"
    );
    let out = ok(kstash(&repo, &["check", "--read-data"], PASSWORD));
    assert!(out.ends_with("no errors were found\n"), "{out}");
    restic(&repo, &["check", "--read-data"]);
    let snapshots = String::from_utf8(restic(&repo, &["snapshots", "--json"]).stdout).unwrap();
    let snapshots: serde_json::Value = serde_json::from_str(&snapshots).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots}");
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["repaired"]));
    assert!(lock_file_names(&repo).is_empty());
}

#[test]
fn restic_0_19_compression_names_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(kstash(&repo, &["init"], PASSWORD));
    for (mode, data) in [("fastest", &b"fastest\n"[..]), ("better", &b"better\n"[..])] {
        let name = format!("{mode}.txt");
        ok(kstash_stdin(
            &repo,
            &[
                "backup",
                "--stdin",
                "--stdin-filename",
                &name,
                "--compression",
                mode,
            ],
            data,
        ));
        let out = ok(kstash(&repo, &["dump", "latest", &format!("/{name}")], PASSWORD));
        assert_eq!(out.as_bytes(), data);
    }
    let out = kstash_stdin(&repo, &["backup", "--stdin", "--compression", "ultra"], b"x");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fastest") && stderr.contains("better"),
        "{stderr}"
    );
}
