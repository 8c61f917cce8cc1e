//! Oracle tests of the keep policy: ~60 snapshots spread over three years (several hosts, path
//! sets, tags and UTC offsets) are written by kstash; for many policies the real `restic forget
//! --dry-run --json` (0.14) decides, and kstash's decisions must be the same, group for group,
//! snapshot for snapshot, with the same reasons and counters. Then kstash forgets for real and
//! restic sees exactly the expected snapshots and a healthy repository. Skipped (with a message)
//! only when `restic` is not installed, and then a failure under `CI`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::forget::{
    ForgetGroup, ForgetOptions, GroupBy, KeepDuration, KeepPolicy, SnapshotFilter, forget, forget_snapshots,
    split_tag_list,
};
use kstash_repo::gojson::GoTime;
use kstash_repo::{Id, LockOptions, Repository, Snapshot};
use serde_json::Value;

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, TestRepo};

/// restic with a fixed time zone (buckets use each snapshot's own offset, but Go's `AddDate`
/// would follow DST rules if an offset matched a local zone).
fn restic_json(t: &TestRepo, args: &[&str]) -> Value {
    let out = Command::new("restic")
        .arg("-r")
        .arg(&t.path)
        .arg("--no-cache")
        .arg("--json")
        .args(args)
        .env("RESTIC_PASSWORD", PW)
        .env("TZ", "UTC")
        .env_remove("RESTIC_REPOSITORY")
        .env_remove("RESTIC_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run restic");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Array(Vec::new());
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "restic {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// xorshift64*, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The snapshots of the test: times over 2021–2023 (dense in the last two months, pairs within
/// one hour, clusters around the ISO-week year boundaries), one in the future, two hosts, path
/// sets given in either order, tag subsets, and four UTC offsets. Every instant is distinct.
fn snapshots(tree: Id) -> Vec<Snapshot> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let start = GoTime::parse("2021-01-01T00:00:00Z")
        .unwrap()
        .timestamp
        .as_second();
    let end = GoTime::parse("2023-12-31T00:00:00Z")
        .unwrap()
        .timestamp
        .as_second();
    let mut times: Vec<i64> = Vec::new();
    for _ in 0..20 {
        times.push(start + rng.below((end - start) as u64) as i64);
    }
    for _ in 0..18 {
        times.push(end - rng.below(60 * 86_400) as i64);
    }
    for _ in 0..6 {
        let t = start + rng.below((end - start) as u64) as i64;
        times.push(t);
        times.push(t + 60 + rng.below(1800) as i64);
    }
    for boundary in ["2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z"] {
        let b = GoTime::parse(boundary).unwrap().timestamp.as_second();
        for _ in 0..5 {
            times.push(b - 4 * 86_400 + rng.below(8 * 86_400) as i64);
        }
    }
    let offsets = [0, 19_800, -28_800, 7_200];
    let hosts = ["db1", "db2"];
    let path_sets: [&[&str]; 3] = [&["/dumpfile.sql"], &["/a", "/b"], &["/b", "/a"]];
    let tag_sets: [&[&str]; 5] = [
        &[],
        &["nightly"],
        &["nightly", "weekly"],
        &["manual"],
        &["weekly"],
    ];
    let mut out: Vec<Snapshot> = times
        .iter()
        .enumerate()
        .map(|(i, secs)| {
            let path_set = path_sets[rng.below(3) as usize];
            let mut s = Snapshot::new(tree, path_set.iter().map(|p| p.to_string()).collect());
            let ts = jiff::Timestamp::new(*secs, (i as i32) * 1000 + 7).unwrap();
            s.time = GoTime {
                timestamp: ts,
                offset_seconds: offsets[rng.below(4) as usize],
            };
            s.hostname = hosts[rng.below(2) as usize].to_string();
            s.tags = tag_sets[rng.below(5) as usize]
                .iter()
                .map(|t| t.to_string())
                .collect();
            s
        })
        .collect();
    let mut future = Snapshot::new(tree, vec!["/dumpfile.sql".into()]);
    future.time = GoTime::parse("2099-06-01T12:00:00+02:00").unwrap();
    future.hostname = "db1".into();
    out.push(future);
    out
}

/// One group's decisions, comparable between restic and kstash.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupView {
    host: String,
    paths: Vec<String>,
    tags: Vec<String>,
    /// (id, reasons, counters as JSON), newest first.
    keep: Vec<(String, Vec<String>, String)>,
    /// ids, newest first.
    remove: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn restic_views(json: &Value) -> Vec<GroupView> {
    let mut views: Vec<GroupView> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let ids = |k: &str| -> Vec<String> {
                g[k].as_array()
                    .map(|a| a.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            let keep_ids = ids("keep");
            let reasons = g["reasons"].as_array().cloned().unwrap_or_default();
            assert_eq!(keep_ids.len(), reasons.len(), "{g}");
            GroupView {
                host: g["host"].as_str().unwrap_or("").to_string(),
                paths: strings(&g["paths"]),
                tags: strings(&g["tags"]),
                keep: keep_ids
                    .into_iter()
                    .zip(reasons)
                    .map(|(id, r)| (id, strings(&r["matches"]), r["counters"].to_string()))
                    .collect(),
                remove: ids("remove"),
            }
        })
        .collect();
    views.sort();
    views
}

fn kstash_views(groups: &[ForgetGroup]) -> Vec<GroupView> {
    let mut views: Vec<GroupView> = groups
        .iter()
        .map(|g| GroupView {
            host: g.key.hostname.clone(),
            paths: g.key.paths.clone(),
            tags: g.key.tags.clone(),
            keep: g
                .keep()
                .map(|d| {
                    (
                        d.entry.id.to_string(),
                        d.reasons.clone(),
                        serde_json::to_string(&d.counters).unwrap(),
                    )
                })
                .collect(),
            remove: g.remove().map(|d| d.entry.id.to_string()).collect(),
        })
        .collect();
    views.sort();
    views
}

/// The restic flags of a case, and the same as kstash options.
struct Case {
    flags: &'static [&'static str],
    options: ForgetOptions,
}

fn case(flags: &'static [&'static str], f: impl FnOnce(&mut ForgetOptions)) -> Case {
    let mut options = ForgetOptions {
        dry_run: true,
        lock: Some(LockOptions::default()),
        ..Default::default()
    };
    f(&mut options);
    Case { flags, options }
}

fn dur(s: &str) -> KeepDuration {
    KeepDuration::parse(s).unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        case(&["--keep-last", "5"], |o| o.policy.last = 5),
        case(&["--keep-hourly", "10"], |o| o.policy.hourly = 10),
        case(&["--keep-daily", "7"], |o| o.policy.daily = 7),
        case(&["--keep-weekly", "6"], |o| o.policy.weekly = 6),
        case(&["--keep-monthly", "12"], |o| o.policy.monthly = 12),
        case(&["--keep-yearly", "2"], |o| o.policy.yearly = 2),
        case(
            &[
                "--keep-last",
                "2",
                "--keep-daily",
                "3",
                "--keep-weekly",
                "4",
                "--keep-monthly",
                "6",
                "--keep-yearly",
                "10",
            ],
            |o| {
                o.policy.last = 2;
                o.policy.daily = 3;
                o.policy.weekly = 4;
                o.policy.monthly = 6;
                o.policy.yearly = 10;
            },
        ),
        case(&["--keep-within", "1m10d"], |o| o.policy.within = dur("1m10d")),
        case(&["--keep-within", "1y2d5h", "--keep-last", "1"], |o| {
            o.policy.within = dur("1y2d5h");
            o.policy.last = 1;
        }),
        case(&["--keep-tag", "nightly,weekly", "--keep-tag", "manual"], |o| {
            o.policy.keep_tags = vec![split_tag_list("nightly,weekly"), split_tag_list("manual")];
        }),
        case(&["--keep-tag", "", "--keep-monthly", "1"], |o| {
            o.policy.keep_tags = vec![split_tag_list("")];
            o.policy.monthly = 1;
        }),
        case(
            &[
                "--keep-within-hourly",
                "2d",
                "--keep-within-daily",
                "20d",
                "--keep-within-weekly",
                "2m",
                "--keep-within-monthly",
                "1y",
                "--keep-within-yearly",
                "3y",
            ],
            |o| {
                o.policy.within_hourly = dur("2d");
                o.policy.within_daily = dur("20d");
                o.policy.within_weekly = dur("2m");
                o.policy.within_monthly = dur("1y");
                o.policy.within_yearly = dur("3y");
            },
        ),
        case(&["--group-by", "host", "--keep-last", "3"], |o| {
            o.group_by = GroupBy::parse("host").unwrap();
            o.policy.last = 3;
        }),
        case(&["--group-by", "tags", "--keep-monthly", "2"], |o| {
            o.group_by = GroupBy::parse("tags").unwrap();
            o.policy.monthly = 2;
        }),
        case(&["--group-by", "", "--keep-weekly", "5"], |o| {
            o.group_by = GroupBy::NONE;
            o.policy.weekly = 5;
        }),
        case(&["--group-by", "host,paths,tags", "--keep-hourly", "3"], |o| {
            o.group_by = GroupBy::parse("host,paths,tags").unwrap();
            o.policy.hourly = 3;
        }),
        case(&["--host", "db1", "--keep-daily", "2"], |o| {
            o.filter.hosts = vec!["db1".into()];
            o.policy.daily = 2;
        }),
        case(
            &["--tag", "nightly", "--tag", "manual", "--keep-last", "2"],
            |o| {
                o.filter.tags = vec![split_tag_list("nightly"), split_tag_list("manual")];
                o.policy.last = 2;
            },
        ),
        case(&["--path", "/a", "--path", "/b", "--keep-yearly", "1"], |o| {
            o.filter.paths = vec!["/a".into(), "/b".into()];
            o.policy.yearly = 1;
        }),
    ]
}

/// A repository with one tiny stream backup (for a valid tree) and the generated snapshots.
fn populated() -> (TestRepo, Repository, Vec<Id>) {
    let t = TestRepo::new();
    let repo = t.init();
    let first = backup_stream(
        &repo,
        &b"SELECT 1;\n"[..],
        &StreamBackupOptions::named("dumpfile.sql"),
    )
    .unwrap();
    // Only the tree is wanted: the backup's own snapshot (taken now) goes.
    repo.backend()
        .remove(kstash_repo::FileType::Snapshot, &first.snapshot_id.to_hex())
        .unwrap();
    let ids = snapshots(first.tree_id)
        .iter()
        .map(|sn| repo.save_snapshot(sn).unwrap())
        .collect();
    (t, repo, ids)
}

#[test]
fn kstash_selects_exactly_what_restic_selects() {
    if restic_or_skip().is_none() {
        return;
    }
    let (t, repo, ids) = populated();
    assert_eq!(ids.len(), 61);
    assert_eq!(t.snapshots_json().len(), 61);
    let mut total_removed = 0;
    for c in cases() {
        let mut args = vec!["forget", "--dry-run"];
        args.extend_from_slice(c.flags);
        let theirs = restic_views(&restic_json(&t, &args));
        let summary = forget(&repo, &c.options).unwrap();
        let ours = kstash_views(&summary.groups);
        assert_eq!(ours, theirs, "policy {:?} ({})", c.flags, c.options.policy);
        assert!(!theirs.is_empty(), "{:?} selected no group", c.flags);
        let removed: usize = theirs.iter().map(|g| g.remove.len()).sum();
        let kept: usize = theirs.iter().map(|g| g.keep.len()).sum();
        assert!(kept > 0, "{:?} keeps nothing: a weak case", c.flags);
        assert_eq!(summary.removed.len(), removed);
        total_removed += removed;
        assert_eq!(repo.list_snapshots().unwrap().len(), 61, "dry run");
    }
    assert!(
        total_removed > 100,
        "the cases should remove plenty ({total_removed})"
    );
}

#[test]
fn kstash_forget_leaves_what_restic_would_and_a_healthy_repository() {
    if restic_or_skip().is_none() {
        return;
    }
    let (t, repo, _) = populated();
    let flags = [
        "forget",
        "--dry-run",
        "--keep-last",
        "3",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "6",
        "--keep-tag",
        "manual",
    ];
    let plan = restic_json(&t, &flags);
    let expected: BTreeSet<String> = restic_views(&plan)
        .into_iter()
        .flat_map(|g| g.keep.into_iter().map(|k| k.0))
        .collect();
    assert!(expected.len() > 10 && expected.len() < 50, "{}", expected.len());

    let summary = forget(
        &repo,
        &ForgetOptions {
            policy: KeepPolicy {
                last: 3,
                weekly: 4,
                monthly: 6,
                keep_tags: vec![split_tag_list("manual")],
                ..Default::default()
            },
            lock: Some(LockOptions::default()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.removed.len(), 61 - expected.len());
    let left: BTreeSet<String> = t
        .snapshots_json()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, expected);
    assert!(t.lock_names().is_empty(), "the exclusive lock is released");
    t.restic(&["check"]);

    // Forgetting again with the same policy removes nothing.
    let again = forget(
        &repo,
        &ForgetOptions {
            policy: KeepPolicy {
                last: 3,
                weekly: 4,
                monthly: 6,
                keep_tags: vec![split_tag_list("manual")],
                ..Default::default()
            },
            lock: Some(LockOptions::default()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(again.removed.is_empty());

    // Explicit ids: a short prefix, `latest` of host db2, and one that does not exist.
    let some: Vec<String> = left.iter().take(2).cloned().collect();
    let latest_db2 = t
        .snapshots_json()
        .into_iter()
        .filter(|s| s["hostname"] == "db2")
        .max_by_key(|s| GoTime::parse(s["time"].as_str().unwrap()).unwrap().timestamp)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let specs = vec![
        some[0][..8].to_string(),
        some[1].clone(),
        "latest".to_string(),
        "ffffffffffff".to_string(),
    ];
    let by_id = forget_snapshots(
        &repo,
        &specs,
        &ForgetOptions {
            filter: SnapshotFilter {
                hosts: vec!["db2".into()],
                ..Default::default()
            },
            lock: Some(LockOptions::default()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(by_id.not_found, ["ffffffffffff"]);
    let mut gone: BTreeSet<String> = some.iter().cloned().collect();
    gone.insert(latest_db2);
    assert_eq!(
        by_id
            .removed
            .iter()
            .map(|id| id.to_string())
            .collect::<BTreeSet<_>>(),
        gone
    );
    let now_left: BTreeSet<String> = t
        .snapshots_json()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(now_left, left.difference(&gone).cloned().collect::<BTreeSet<_>>());
    t.restic(&["check"]);
}

#[test]
fn keep_within_uses_gos_month_arithmetic_like_restic() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    let made = backup_stream(&repo, &b"x\n"[..], &StreamBackupOptions::named("f")).unwrap();
    let tree = made.tree_id;
    // Only the snapshots below stay: the backup's own (this machine's host name) would be a second
    // group, sorted before "h" on hosts whose name does.
    repo.backend()
        .remove(kstash_repo::FileType::Snapshot, &made.snapshot_id.to_hex())
        .unwrap();
    for time in [
        "2023-02-28T12:00:00Z",
        "2023-03-02T12:00:00Z",
        "2023-03-03T12:00:00Z",
        "2023-03-03T12:00:01Z",
        "2023-03-31T12:00:00Z",
    ] {
        let mut s = Snapshot::new(tree, vec!["/f".into()]);
        s.time = GoTime::parse(time).unwrap();
        s.hostname = "h".into();
        repo.save_snapshot(&s).unwrap();
    }
    // restic: 2023-03-31 minus one month is 2023-03-03 (Go normalises "February 31").
    for (within, expected_kept) in [("1m", 2), ("1m1d", 3), ("29d", 3), ("1m2d", 4)] {
        let theirs = restic_views(&restic_json(
            &t,
            &["forget", "--dry-run", "--keep-within", within],
        ));
        let ours = forget(
            &repo,
            &ForgetOptions {
                policy: KeepPolicy {
                    within: dur(within),
                    ..Default::default()
                },
                dry_run: true,
                lock: Some(LockOptions::default()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kstash_views(&ours.groups), theirs, "--keep-within {within}");
        assert_eq!(theirs[0].keep.len(), expected_kept, "--keep-within {within}");
    }
}
