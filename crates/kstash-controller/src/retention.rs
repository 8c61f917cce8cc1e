//! Retention selection: which Snapshots a RetentionPolicy keeps and which it removes.
//!
//! [`select`] is pure: it looks at the Snapshots of one repository for one session (name, phase and
//! `status.snapshotTime`), the policy's spec and the current time, and returns a [`Decision`]. Applying
//! the decision (setting `deletionPolicy: WipeOut` and deleting the removed Snapshots) is the caller's job.
//!
//! # Selection rule
//!
//! Snapshots are first ordered newest first by `time`; snapshots with identical times are ordered by
//! name, descending (so `b` comes before `a`). Every rule below walks that order, and both lists of the
//! result ([`Decision::keep`] and [`Decision::remove`]) are returned in that order.
//!
//! 1. **Unfinished snapshots** (phase `Pending` or `Running`) are always kept, with reason
//!    [`KeepReason::NotFinished`]. They do not count against any bucket and `maxRetentionPeriod` never
//!    removes them.
//! 2. **Successful snapshots** (phase `Succeeded`) are kept by restic-style buckets, evaluated on
//!    `time` in UTC. For a bucket with count `n`, the snapshots are walked newest first and a snapshot is
//!    kept when its bucket key differs from the key of the previously kept snapshot of that bucket,
//!    until `n` snapshots have been kept. This keeps the newest snapshot of each of the `n` most recent
//!    distinct periods that have snapshots (periods without snapshots are skipped, not counted):
//!    - `last`: the `n` newest snapshots ([`KeepReason::Last`]);
//!    - `hourly`: key `yyyy-mm-dd-hh` ([`KeepReason::Hourly`]);
//!    - `daily`: key `yyyy-mm-dd` ([`KeepReason::Daily`]);
//!    - `weekly`: key ISO week-numbering year + ISO week number, weeks start on Monday, so
//!      2025-12-29 and 2026-01-04 are both in week 2026-W01 ([`KeepReason::Weekly`]);
//!    - `monthly`: key `yyyy-mm` ([`KeepReason::Monthly`]);
//!    - `yearly`: key `yyyy` ([`KeepReason::Yearly`]).
//!
//!    The buckets are independent: a snapshot may be kept for several reasons, and is listed once with
//!    all of them (in the order above). An unset bucket counts as 0, so `successfulSnapshots: {}` keeps no
//!    successful snapshot. If `successfulSnapshots` is absent entirely, every successful snapshot is kept
//!    (reason [`KeepReason::Last`], as if `last` were unlimited) and only `maxRetentionPeriod` can remove
//!    one. Successful snapshots that no bucket keeps are removed.
//! 3. **Failed snapshots** (phase `Failed`): the `failedSnapshots.last` newest are kept
//!    ([`KeepReason::LastFailed`]); the default is 1 when `failedSnapshots` or its `last` is absent, and 0
//!    keeps none. The others are removed. Failed snapshots never count against the successful buckets.
//! 4. **`maxRetentionPeriod`** (when non-empty): every finished (Succeeded or Failed) snapshot with
//!    `time < now - period` is removed, even when a rule above kept it (expired snapshots are the oldest,
//!    so no older snapshot is kept in their place). The period uses the KubeStash grammar
//!    (`30d12h30m`, `2mo`, `1y`; units `y` = 365 days, `mo` = 30 days, `w`, `d`, `h`, `m` = minutes), not
//!    calendar arithmetic. A snapshot exactly `period` old is kept. A period too long to subtract from
//!    `now` removes nothing.
//!
//! # Errors
//!
//! Nothing is selected, and an error is returned, when `spec.maxRetentionPeriod` does not parse or when a
//! count is negative: a policy that cannot be read must never delete backups.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use kstash_api::duration::parse_retention_period;
use kstash_api::storage::{RetentionPolicySpec, SnapshotPhase};

/// One Snapshot as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The Snapshot's name.
    pub name: String,
    /// `status.phase`.
    pub phase: SnapshotPhase,
    /// `status.snapshotTime` (for an unfinished snapshot, whatever time the caller has, e.g. creation).
    pub time: Timestamp,
}

/// Why a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeepReason {
    /// One of the `successfulSnapshots.last` newest (or `successfulSnapshots` is absent).
    Last,
    /// Newest of one of the `successfulSnapshots.hourly` most recent hours.
    Hourly,
    /// Newest of one of the `successfulSnapshots.daily` most recent days.
    Daily,
    /// Newest of one of the `successfulSnapshots.weekly` most recent ISO weeks.
    Weekly,
    /// Newest of one of the `successfulSnapshots.monthly` most recent months.
    Monthly,
    /// Newest of one of the `successfulSnapshots.yearly` most recent years.
    Yearly,
    /// One of the `failedSnapshots.last` newest failed snapshots.
    LastFailed,
    /// Pending or Running: never touched by retention.
    NotFinished,
}

/// The outcome of [`select`]; both lists are newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Snapshots to keep, each with every reason it is kept for.
    pub keep: Vec<(String, Vec<KeepReason>)>,
    /// Snapshots to remove.
    pub remove: Vec<String>,
}

/// Which successful snapshots a bucket keeps; keys compare equal within one period.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BucketKey {
    Snapshot(usize),
    Hour(i16, i8, i8, i8),
    Day(i16, i8, i8),
    Week(i16, i8),
    Month(i16, i8),
    Year(i16),
}

fn bucket_key(reason: KeepReason, index: usize, time: Timestamp) -> BucketKey {
    let dt = TimeZone::UTC.to_datetime(time);
    match reason {
        KeepReason::Hourly => BucketKey::Hour(dt.year(), dt.month(), dt.day(), dt.hour()),
        KeepReason::Daily => BucketKey::Day(dt.year(), dt.month(), dt.day()),
        KeepReason::Weekly => {
            let week = dt.date().iso_week_date();
            BucketKey::Week(week.year(), week.week())
        }
        KeepReason::Monthly => BucketKey::Month(dt.year(), dt.month()),
        KeepReason::Yearly => BucketKey::Year(dt.year()),
        KeepReason::Last | KeepReason::LastFailed | KeepReason::NotFinished => BucketKey::Snapshot(index),
    }
}

fn count(value: Option<i32>, default: usize, field: &str) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(n) => usize::try_from(n).map_err(|_| {
            format!("spec.{field} is {n}: a snapshot count must be 0 or more; fix the RetentionPolicy")
        }),
    }
}

/// The instant before which finished snapshots expire, or `None` when nothing expires.
fn cutoff(policy: &RetentionPolicySpec, now: Timestamp) -> Result<Option<Timestamp>, String> {
    let period = policy.max_retention_period.trim();
    if period.is_empty() {
        return Ok(None);
    }
    let minutes = parse_retention_period(period).map_err(|e| {
        format!(
            "spec.maxRetentionPeriod '{period}' is invalid: {e}; write it as one or more <number><unit> \
             with units y, mo, w, d, h, m (for example 30d, 2mo, 1y, 30d12h30m) or leave it empty"
        )
    })?;
    let Some(secs) = minutes.checked_mul(60).and_then(|s| i64::try_from(s).ok()) else {
        return Ok(None);
    };
    Ok(now.checked_sub(SignedDuration::from_secs(secs)).ok())
}

/// Decide which of one repository's snapshots `policy` keeps and which it removes at `now`; see the
/// module documentation for the exact rule.
pub fn select(
    policy: &RetentionPolicySpec,
    snapshots: &[Candidate],
    now: Timestamp,
) -> Result<Decision, String> {
    let cutoff = cutoff(policy, now)?;

    let failed_keep = count(
        policy.failed_snapshots.as_ref().and_then(|f| f.last),
        1,
        "failedSnapshots.last",
    )?;
    // `None`: successfulSnapshots is absent, keep every successful snapshot.
    let buckets: Option<Vec<(KeepReason, usize)>> = match &policy.successful_snapshots {
        None => None,
        Some(s) => Some(vec![
            (KeepReason::Last, count(s.last, 0, "successfulSnapshots.last")?),
            (
                KeepReason::Hourly,
                count(s.hourly, 0, "successfulSnapshots.hourly")?,
            ),
            (KeepReason::Daily, count(s.daily, 0, "successfulSnapshots.daily")?),
            (
                KeepReason::Weekly,
                count(s.weekly, 0, "successfulSnapshots.weekly")?,
            ),
            (
                KeepReason::Monthly,
                count(s.monthly, 0, "successfulSnapshots.monthly")?,
            ),
            (
                KeepReason::Yearly,
                count(s.yearly, 0, "successfulSnapshots.yearly")?,
            ),
        ]),
    };

    let mut order: Vec<&Candidate> = snapshots.iter().collect();
    order.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));

    let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); order.len()];

    // Successful snapshots: each bucket walks them newest first.
    let successful: Vec<usize> = (0..order.len())
        .filter(|&i| order[i].phase == SnapshotPhase::Succeeded)
        .collect();
    match &buckets {
        None => {
            for &i in &successful {
                reasons[i].push(KeepReason::Last);
            }
        }
        Some(buckets) => {
            for &(reason, n) in buckets {
                let mut left = n;
                let mut previous: Option<BucketKey> = None;
                for &i in &successful {
                    if left == 0 {
                        break;
                    }
                    let key = bucket_key(reason, i, order[i].time);
                    if previous != Some(key) {
                        reasons[i].push(reason);
                        previous = Some(key);
                        left -= 1;
                    }
                }
            }
        }
    }

    // Failed snapshots: the newest `failed_keep`.
    (0..order.len())
        .filter(|&i| order[i].phase == SnapshotPhase::Failed)
        .take(failed_keep)
        .for_each(|i| reasons[i].push(KeepReason::LastFailed));

    let mut decision = Decision::default();
    for (candidate, why) in order.into_iter().zip(reasons) {
        let finished = matches!(candidate.phase, SnapshotPhase::Succeeded | SnapshotPhase::Failed);
        let expired = finished && cutoff.is_some_and(|c| candidate.time < c);
        if !finished {
            decision
                .keep
                .push((candidate.name.clone(), vec![KeepReason::NotFinished]));
        } else if expired || why.is_empty() {
            decision.remove.push(candidate.name.clone());
        } else {
            decision.keep.push((candidate.name.clone(), why));
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::KeepReason::*;
    use super::*;
    use kstash_api::storage::{FailedSnapshotsKeepPolicy, SuccessfulSnapshotsKeepPolicy};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
    }

    fn snap(name: &str, phase: SnapshotPhase, time: &str) -> Candidate {
        Candidate {
            name: name.into(),
            phase,
            time: at(time),
        }
    }
    fn ok(name: &str, time: &str) -> Candidate {
        snap(name, SnapshotPhase::Succeeded, time)
    }
    fn failed(name: &str, time: &str) -> Candidate {
        snap(name, SnapshotPhase::Failed, time)
    }

    fn successful(p: SuccessfulSnapshotsKeepPolicy) -> RetentionPolicySpec {
        RetentionPolicySpec {
            successful_snapshots: Some(p),
            ..Default::default()
        }
    }
    fn last(n: i32) -> SuccessfulSnapshotsKeepPolicy {
        SuccessfulSnapshotsKeepPolicy {
            last: Some(n),
            ..Default::default()
        }
    }

    struct Case {
        name: &'static str,
        policy: RetentionPolicySpec,
        now: &'static str,
        snapshots: Vec<Candidate>,
        keep: Vec<(&'static str, Vec<KeepReason>)>,
        remove: Vec<&'static str>,
    }

    fn run(cases: Vec<Case>) {
        for case in cases {
            let got = select(&case.policy, &case.snapshots, at(case.now))
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
            let want = Decision {
                keep: case.keep.into_iter().map(|(n, r)| (n.to_string(), r)).collect(),
                remove: case.remove.into_iter().map(String::from).collect(),
            };
            assert_eq!(got, want, "case {}", case.name);
            // The input order must not matter.
            let mut reversed = case.snapshots.clone();
            reversed.reverse();
            let again = select(&case.policy, &reversed, at(case.now))
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
            assert_eq!(again, want, "case {} (input reversed)", case.name);
        }
    }

    const NOW: &str = "2026-03-10T00:00:00Z";

    #[test]
    fn last_only() {
        run(vec![
            Case {
                name: "last 2 of 4, unsorted input",
                policy: successful(last(2)),
                now: NOW,
                snapshots: vec![
                    ok("b", "2026-03-01T11:00:00Z"),
                    ok("d", "2026-03-01T13:00:00Z"),
                    ok("a", "2026-03-01T10:00:00Z"),
                    ok("c", "2026-03-01T12:00:00Z"),
                ],
                keep: vec![("d", vec![Last]), ("c", vec![Last])],
                remove: vec!["b", "a"],
            },
            Case {
                name: "last larger than the number of snapshots",
                policy: successful(last(10)),
                now: NOW,
                snapshots: vec![ok("a", "2026-03-01T10:00:00Z"), ok("b", "2026-03-01T11:00:00Z")],
                keep: vec![("b", vec![Last]), ("a", vec![Last])],
                remove: vec![],
            },
            Case {
                name: "identical times: name descending breaks the tie",
                policy: successful(last(1)),
                now: NOW,
                snapshots: vec![
                    ok("snap-a", "2026-03-01T10:15:00Z"),
                    ok("snap-c", "2026-03-01T10:15:00Z"),
                    ok("snap-b", "2026-03-01T10:15:00Z"),
                ],
                keep: vec![("snap-c", vec![Last])],
                remove: vec!["snap-b", "snap-a"],
            },
            Case {
                name: "successfulSnapshots {} keeps no successful snapshot",
                policy: successful(SuccessfulSnapshotsKeepPolicy::default()),
                now: NOW,
                snapshots: vec![ok("a", "2026-03-01T10:00:00Z")],
                keep: vec![],
                remove: vec!["a"],
            },
            Case {
                name: "successfulSnapshots absent keeps every successful snapshot",
                policy: RetentionPolicySpec::default(),
                now: NOW,
                snapshots: vec![ok("a", "2026-03-01T10:00:00Z"), ok("b", "2020-01-01T00:00:00Z")],
                keep: vec![("a", vec![Last]), ("b", vec![Last])],
                remove: vec![],
            },
        ]);
    }

    #[test]
    fn hourly() {
        run(vec![Case {
            name: "several snapshots in one hour: only the newest is kept",
            policy: successful(SuccessfulSnapshotsKeepPolicy {
                hourly: Some(2),
                ..Default::default()
            }),
            now: NOW,
            snapshots: vec![
                ok("h09-59", "2026-03-01T09:59:59Z"),
                ok("h10-05", "2026-03-01T10:05:00Z"),
                ok("h10-15", "2026-03-01T10:15:00Z"),
                ok("h10-55", "2026-03-01T10:55:00Z"),
                ok("h11-00", "2026-03-01T11:00:00Z"),
                ok("h11-30", "2026-03-01T11:30:00Z"),
            ],
            keep: vec![("h11-30", vec![Hourly]), ("h10-55", vec![Hourly])],
            remove: vec!["h11-00", "h10-15", "h10-05", "h09-59"],
        }]);
    }

    #[test]
    fn daily() {
        run(vec![
            Case {
                name: "across midnight UTC",
                policy: successful(SuccessfulSnapshotsKeepPolicy {
                    daily: Some(2),
                    ..Default::default()
                }),
                now: NOW,
                snapshots: vec![
                    ok("mar01-noon", "2026-03-01T12:00:00Z"),
                    ok("mar01-late", "2026-03-01T23:59:59Z"),
                    ok("mar02-early", "2026-03-02T00:00:01Z"),
                ],
                keep: vec![("mar02-early", vec![Daily]), ("mar01-late", vec![Daily])],
                remove: vec!["mar01-noon"],
            },
            Case {
                name: "days are UTC days whatever the offset the time was written with",
                policy: successful(SuccessfulSnapshotsKeepPolicy {
                    daily: Some(2),
                    ..Default::default()
                }),
                now: NOW,
                snapshots: vec![
                    // 2026-03-01T23:30Z: still March 1st in UTC.
                    ok("local-mar02", "2026-03-02T01:30:00+02:00"),
                    ok("mar01", "2026-03-01T08:00:00Z"),
                    ok("feb28", "2026-02-28T08:00:00Z"),
                ],
                keep: vec![("local-mar02", vec![Daily]), ("feb28", vec![Daily])],
                remove: vec!["mar01"],
            },
            Case {
                name: "days without snapshots are skipped, not counted",
                policy: successful(SuccessfulSnapshotsKeepPolicy {
                    daily: Some(2),
                    ..Default::default()
                }),
                now: NOW,
                snapshots: vec![
                    ok("mar09", "2026-03-09T08:00:00Z"),
                    ok("mar01", "2026-03-01T08:00:00Z"),
                    ok("feb01", "2026-02-01T08:00:00Z"),
                ],
                keep: vec![("mar09", vec![Daily]), ("mar01", vec![Daily])],
                remove: vec!["feb01"],
            },
        ]);
    }

    #[test]
    fn weekly() {
        let weekly = |n| {
            successful(SuccessfulSnapshotsKeepPolicy {
                weekly: Some(n),
                ..Default::default()
            })
        };
        run(vec![
            Case {
                name: "Sunday and the following Monday are different ISO weeks",
                policy: weekly(2),
                now: NOW,
                snapshots: vec![
                    ok("thu-jan01", "2026-01-01T10:00:00Z"),
                    ok("sun-jan04", "2026-01-04T23:00:00Z"),
                    ok("mon-jan05", "2026-01-05T01:00:00Z"),
                ],
                keep: vec![("mon-jan05", vec![Weekly]), ("sun-jan04", vec![Weekly])],
                remove: vec!["thu-jan01"],
            },
            Case {
                // 2025-12-29 (Monday) is in ISO week 2026-W01 although its calendar year is 2025.
                name: "ISO week-numbering year differs from the calendar year",
                policy: weekly(3),
                now: NOW,
                snapshots: vec![
                    ok("sat-2025-12-27", "2025-12-27T10:00:00Z"),
                    ok("mon-2025-12-29", "2025-12-29T10:00:00Z"),
                    ok("sun-2026-01-04", "2026-01-04T10:00:00Z"),
                    ok("mon-2026-01-05", "2026-01-05T10:00:00Z"),
                ],
                keep: vec![
                    ("mon-2026-01-05", vec![Weekly]),
                    ("sun-2026-01-04", vec![Weekly]),
                    ("sat-2025-12-27", vec![Weekly]),
                ],
                remove: vec!["mon-2025-12-29"],
            },
            Case {
                // 2027-01-01 (Friday) is in ISO week 2026-W53.
                name: "week 53 spans the new year",
                policy: weekly(3),
                now: "2027-02-01T00:00:00Z",
                snapshots: vec![
                    ok("mon-2026-12-28", "2026-12-28T10:00:00Z"),
                    ok("fri-2027-01-01", "2027-01-01T10:00:00Z"),
                    ok("sun-2027-01-03", "2027-01-03T10:00:00Z"),
                    ok("mon-2027-01-04", "2027-01-04T10:00:00Z"),
                ],
                keep: vec![("mon-2027-01-04", vec![Weekly]), ("sun-2027-01-03", vec![Weekly])],
                remove: vec!["fri-2027-01-01", "mon-2026-12-28"],
            },
            Case {
                name: "the same week number in different years is a different week",
                policy: weekly(2),
                now: NOW,
                snapshots: vec![
                    ok("2025-W02", "2025-01-06T10:00:00Z"),
                    ok("2026-W02", "2026-01-05T10:00:00Z"),
                ],
                keep: vec![("2026-W02", vec![Weekly]), ("2025-W02", vec![Weekly])],
                remove: vec![],
            },
        ]);
    }

    #[test]
    fn monthly() {
        run(vec![Case {
            name: "newest of each of the 3 most recent months",
            policy: successful(SuccessfulSnapshotsKeepPolicy {
                monthly: Some(3),
                ..Default::default()
            }),
            now: "2026-04-01T00:00:00Z",
            snapshots: vec![
                ok("2025-12-31", "2025-12-31T12:00:00Z"),
                ok("2026-01-15", "2026-01-15T12:00:00Z"),
                ok("2026-02-28", "2026-02-28T12:00:00Z"),
                ok("2026-03-01", "2026-03-01T00:00:00Z"),
                ok("2026-03-31", "2026-03-31T23:00:00Z"),
            ],
            keep: vec![
                ("2026-03-31", vec![Monthly]),
                ("2026-02-28", vec![Monthly]),
                ("2026-01-15", vec![Monthly]),
            ],
            remove: vec!["2026-03-01", "2025-12-31"],
        }]);
    }

    #[test]
    fn yearly() {
        run(vec![Case {
            name: "newest of each of the 2 most recent years",
            policy: successful(SuccessfulSnapshotsKeepPolicy {
                yearly: Some(2),
                ..Default::default()
            }),
            now: NOW,
            snapshots: vec![
                ok("2023-01-01", "2023-01-01T00:00:00Z"),
                ok("2024-05-05", "2024-05-05T00:00:00Z"),
                ok("2025-06-01", "2025-06-01T00:00:00Z"),
                ok("2025-12-31", "2025-12-31T23:59:59Z"),
                ok("2026-01-01", "2026-01-01T00:00:00Z"),
            ],
            keep: vec![("2026-01-01", vec![Yearly]), ("2025-12-31", vec![Yearly])],
            remove: vec!["2025-06-01", "2024-05-05", "2023-01-01"],
        }]);
    }

    #[test]
    fn combined_buckets() {
        run(vec![Case {
            name: "a snapshot kept for several reasons is listed once with all of them",
            policy: successful(SuccessfulSnapshotsKeepPolicy {
                last: Some(1),
                daily: Some(2),
                monthly: Some(2),
                ..Default::default()
            }),
            now: NOW,
            snapshots: vec![
                ok("a", "2026-03-02T10:00:00Z"),
                ok("b", "2026-03-02T08:00:00Z"),
                ok("c", "2026-03-01T20:00:00Z"),
                ok("d", "2026-02-27T10:00:00Z"),
                ok("e", "2026-02-20T10:00:00Z"),
            ],
            keep: vec![
                ("a", vec![Last, Daily, Monthly]),
                ("c", vec![Daily]),
                ("d", vec![Monthly]),
            ],
            remove: vec!["b", "e"],
        }]);
    }

    #[test]
    fn failed_snapshots() {
        let snapshots = || {
            vec![
                failed("f4", "2026-03-01T04:00:00Z"),
                failed("f3", "2026-03-01T03:00:00Z"),
                ok("s", "2026-03-01T02:30:00Z"),
                failed("f2", "2026-03-01T02:00:00Z"),
                failed("f1", "2026-03-01T01:00:00Z"),
            ]
        };
        let with_failed = |n: Option<i32>| RetentionPolicySpec {
            successful_snapshots: Some(last(1)),
            failed_snapshots: Some(FailedSnapshotsKeepPolicy { last: n }),
            ..Default::default()
        };
        run(vec![
            Case {
                name: "failedSnapshots absent: keep 1; failures do not use successful slots",
                policy: successful(last(1)),
                now: NOW,
                snapshots: snapshots(),
                keep: vec![("f4", vec![LastFailed]), ("s", vec![Last])],
                remove: vec!["f3", "f2", "f1"],
            },
            Case {
                name: "failedSnapshots.last absent: keep 1",
                policy: with_failed(None),
                now: NOW,
                snapshots: snapshots(),
                keep: vec![("f4", vec![LastFailed]), ("s", vec![Last])],
                remove: vec!["f3", "f2", "f1"],
            },
            Case {
                name: "failedSnapshots.last 0 keeps none",
                policy: with_failed(Some(0)),
                now: NOW,
                snapshots: snapshots(),
                keep: vec![("s", vec![Last])],
                remove: vec!["f4", "f3", "f2", "f1"],
            },
            Case {
                name: "failedSnapshots.last 3",
                policy: with_failed(Some(3)),
                now: NOW,
                snapshots: snapshots(),
                keep: vec![
                    ("f4", vec![LastFailed]),
                    ("f3", vec![LastFailed]),
                    ("s", vec![Last]),
                    ("f2", vec![LastFailed]),
                ],
                remove: vec!["f1"],
            },
        ]);
    }

    #[test]
    fn unfinished_snapshots() {
        run(vec![
            Case {
                name: "pending and running are kept and do not use a slot",
                policy: successful(last(1)),
                now: NOW,
                snapshots: vec![
                    snap("running", SnapshotPhase::Running, "2026-03-09T12:00:00Z"),
                    snap("pending", SnapshotPhase::Pending, "2026-03-09T13:00:00Z"),
                    ok("new", "2026-03-09T11:00:00Z"),
                    ok("old", "2026-03-09T10:00:00Z"),
                ],
                keep: vec![
                    ("pending", vec![NotFinished]),
                    ("running", vec![NotFinished]),
                    ("new", vec![Last]),
                ],
                remove: vec!["old"],
            },
            Case {
                name: "maxRetentionPeriod and zero counts never remove an unfinished snapshot",
                policy: RetentionPolicySpec {
                    max_retention_period: "1d".into(),
                    successful_snapshots: Some(last(0)),
                    failed_snapshots: Some(FailedSnapshotsKeepPolicy { last: Some(0) }),
                    ..Default::default()
                },
                now: NOW,
                snapshots: vec![
                    snap("stuck", SnapshotPhase::Running, "2025-01-01T00:00:00Z"),
                    ok("done", "2026-03-09T11:00:00Z"),
                ],
                keep: vec![("stuck", vec![NotFinished])],
                remove: vec!["done"],
            },
        ]);
    }

    #[test]
    fn max_retention_period() {
        run(vec![
            Case {
                name: "removes expired snapshots that buckets keep; exactly period old is kept",
                policy: RetentionPolicySpec {
                    max_retention_period: "7d".into(),
                    successful_snapshots: Some(SuccessfulSnapshotsKeepPolicy {
                        last: Some(5),
                        yearly: Some(5),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                now: "2026-03-10T00:00:00Z",
                snapshots: vec![
                    ok("mar09", "2026-03-09T00:00:00Z"),
                    ok("mar03-exact", "2026-03-03T00:00:00Z"),
                    ok("mar02-expired", "2026-03-02T23:59:59Z"),
                    ok("2025-expired", "2025-06-01T00:00:00Z"),
                    failed("failed-expired", "2026-03-01T00:00:00Z"),
                ],
                keep: vec![("mar09", vec![Last, Yearly]), ("mar03-exact", vec![Last])],
                remove: vec!["mar02-expired", "failed-expired", "2025-expired"],
            },
            Case {
                name: "a bucket keeps two, one of them has expired",
                policy: RetentionPolicySpec {
                    max_retention_period: "1d".into(),
                    successful_snapshots: Some(last(2)),
                    ..Default::default()
                },
                now: "2026-03-10T00:00:00Z",
                snapshots: vec![
                    ok("fresh", "2026-03-09T12:00:00Z"),
                    ok("stale", "2026-03-08T12:00:00Z"),
                    ok("older", "2026-03-07T12:00:00Z"),
                ],
                keep: vec![("fresh", vec![Last])],
                remove: vec!["stale", "older"],
            },
            Case {
                name: "successfulSnapshots absent: only the period removes",
                policy: RetentionPolicySpec {
                    max_retention_period: "30d12h30m".into(),
                    ..Default::default()
                },
                now: "2026-03-31T12:30:00Z",
                snapshots: vec![
                    ok("in", "2026-03-01T00:00:00Z"),
                    ok("out", "2026-02-28T23:59:59Z"),
                ],
                keep: vec![("in", vec![Last])],
                remove: vec!["out"],
            },
            Case {
                // 2mo = 60 days, not two calendar months: the cutoff is 2026-04-02, not 2026-04-01.
                name: "2mo is 60 days",
                policy: RetentionPolicySpec {
                    max_retention_period: "2mo".into(),
                    ..Default::default()
                },
                now: "2026-06-01T00:00:00Z",
                snapshots: vec![
                    ok("apr02", "2026-04-02T00:00:00Z"),
                    ok("apr01-late", "2026-04-01T23:59:00Z"),
                ],
                keep: vec![("apr02", vec![Last])],
                remove: vec!["apr01-late"],
            },
            Case {
                // 1y = 365 days; from 2024-03-01 (leap year) that is 2023-03-02, not 2023-03-01.
                name: "1y is 365 days",
                policy: RetentionPolicySpec {
                    max_retention_period: "1y".into(),
                    ..Default::default()
                },
                now: "2024-03-01T00:00:00Z",
                snapshots: vec![
                    ok("2023-03-02", "2023-03-02T00:00:00Z"),
                    ok("2023-03-01-noon", "2023-03-01T12:00:00Z"),
                ],
                keep: vec![("2023-03-02", vec![Last])],
                remove: vec!["2023-03-01-noon"],
            },
            Case {
                name: "a period too long to subtract removes nothing",
                policy: RetentionPolicySpec {
                    max_retention_period: "99999999999999y".into(),
                    ..Default::default()
                },
                now: NOW,
                snapshots: vec![ok("ancient", "1970-01-01T00:00:00Z")],
                keep: vec![("ancient", vec![Last])],
                remove: vec![],
            },
        ]);
    }

    #[test]
    fn invalid_policy_is_an_error_and_selects_nothing() {
        let snapshots = vec![ok("a", "2026-03-01T10:00:00Z")];
        for period in ["30x", "30", "d", "1.5d"] {
            let policy = RetentionPolicySpec {
                max_retention_period: period.into(),
                ..Default::default()
            };
            let err = select(&policy, &snapshots, at(NOW)).expect_err(period);
            assert!(err.contains("spec.maxRetentionPeriod"), "{err}");
            assert!(err.contains(&format!("'{period}'")), "{err}");
            assert!(err.contains("units y, mo, w, d, h, m"), "{err}");
            // Also with no snapshots at all.
            assert!(select(&policy, &[], at(NOW)).is_err(), "{period}");
        }
        let err = select(&successful(last(-1)), &snapshots, at(NOW)).expect_err("negative last");
        assert!(err.contains("spec.successfulSnapshots.last is -1"), "{err}");
        let policy = RetentionPolicySpec {
            failed_snapshots: Some(FailedSnapshotsKeepPolicy { last: Some(-2) }),
            ..Default::default()
        };
        let err = select(&policy, &snapshots, at(NOW)).expect_err("negative failed");
        assert!(err.contains("spec.failedSnapshots.last is -2"), "{err}");
    }

    #[test]
    fn empty_input() {
        run(vec![
            Case {
                name: "no snapshots",
                policy: successful(last(3)),
                now: NOW,
                snapshots: vec![],
                keep: vec![],
                remove: vec![],
            },
            Case {
                name: "no snapshots, default policy with a period",
                policy: RetentionPolicySpec {
                    max_retention_period: "30d".into(),
                    ..Default::default()
                },
                now: NOW,
                snapshots: vec![],
                keep: vec![],
                remove: vec![],
            },
        ]);
    }
}
