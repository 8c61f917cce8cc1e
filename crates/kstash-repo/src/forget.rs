//! Choosing snapshots and forgetting them: filters (host, tag lists, paths, time range), grouping,
//! restic's keep policy (`forget --keep-*`) bucket for bucket as restic 0.14 applies it, and
//! `forget` itself (by policy or by id) under an exclusive lock. Prune is not done here.
//!
//! # The selection rule (restic 0.14 `ApplyPolicy`)
//! Snapshots are grouped (by default by host and the sorted list of paths), and each group is
//! sorted newest first. Walking that list, a snapshot is kept when any of these holds:
//! * it has every tag of one of the `keep_tags` lists (a list with the tag `""` matches untagged
//!   snapshots);
//! * `within` is set and its time is strictly after "latest − within", where latest is the
//!   newest snapshot of the group that is not in the future, and the subtraction is Go's
//!   `AddDate(-y, -m, -d)` (month ends overflow forward: Mar 31 − 1m = Mar 3) then `−h` hours;
//! * for each count bucket (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`) whose
//!   remaining count is above zero: the snapshot's bucket value differs from the value of the
//!   last snapshot that bucket kept. The value is computed from the snapshot's wall-clock time in
//!   the UTC offset stored with it: `YYYYMMDDHH`, `YYYYMMDD`, ISO `YYYYWW`, `YYYYMM`, `YYYY`, and
//!   for `last` the position in the list (always new). Keeping decrements the count;
//! * for each `within_*` bucket: the snapshot is inside that window and its bucket value differs
//!   from the last one that bucket kept (no count).
//!
//! Only snapshots that "open" a new bucket are kept, so the newest snapshot of each hour, day,
//! week… is kept. A bucket that matched no snapshot does not use up its count. Exact time ties
//! (which restic orders at random) are broken by id: the smaller id counts as newer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::gojson::GoTime;
use crate::id::Id;
use crate::lock::{self, LockOptions, RepoLock};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotEntry};

// ---- filters --------------------------------------------------------------------------------

/// Tags that must all be present (one `--tag a,b` value).
pub type TagList = Vec<String>;

/// Split `a, b,c` into a [`TagList`] as restic does: on commas, trimming spaces around each tag
/// (so `""` gives the single empty tag, which matches untagged snapshots).
pub fn split_tag_list(s: &str) -> TagList {
    s.split(',').map(|t| t.trim().to_string()).collect()
}

/// Whether `sn` has every tag of `list` (restic's `HasTags`): an empty tag matches a snapshot
/// without tags, an empty list matches everything.
pub fn has_tags(sn: &Snapshot, list: &[String]) -> bool {
    for tag in list {
        if tag.is_empty() && sn.tags.is_empty() {
            return true;
        }
        if !sn.tags.contains(tag) {
            return false;
        }
    }
    true
}

/// Which snapshots a command considers (`--host`, `--tag`, `--path`, and a time range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Any of these host names (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag lists, each matched when the snapshot has all its tags (empty: any tags).
    pub tags: Vec<TagList>,
    /// All of these paths, compared exactly (empty: any paths).
    pub paths: Vec<String>,
    /// Only snapshots taken strictly after this instant.
    pub newer_than: Option<Timestamp>,
    /// Only snapshots taken strictly before this instant.
    pub older_than: Option<Timestamp>,
}

impl SnapshotFilter {
    /// Whether the filter lets every snapshot through.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.newer_than.is_none()
            && self.older_than.is_none()
    }

    /// Whether `sn` passes: host in `hosts`, some tag list satisfied, every path present, and
    /// the time inside the range.
    pub fn matches(&self, sn: &Snapshot) -> bool {
        let t = sn.time.timestamp;
        (self.hosts.is_empty() || self.hosts.contains(&sn.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(|l| has_tags(sn, l)))
            && self.paths.iter().all(|p| sn.paths.contains(p))
            && self.newer_than.is_none_or(|n| t > n)
            && self.older_than.is_none_or(|o| t < o)
    }

    /// The entries of `list` that pass, in their order.
    pub fn apply(&self, list: Vec<SnapshotEntry>) -> Vec<SnapshotEntry> {
        list.into_iter().filter(|e| self.matches(&e.snapshot)).collect()
    }
}

// ---- durations ------------------------------------------------------------------------------

/// restic's calendar duration for `--keep-within*`: `1y2m3d4h` (years, months, days, hours; `m`
/// is months). Zero means "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeepDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl KeepDuration {
    /// Parse `6y5m234d37h` (any subset, any order; a repeated unit replaces the earlier value, as
    /// in restic). The empty string is zero. Negative numbers are refused (restic accepts them,
    /// which moves the cut-off into the future and can remove every snapshot).
    pub fn parse(s: &str) -> Result<KeepDuration> {
        let bad = |why: String| Error::Invalid(format!("duration {s:?}: {why} (examples: 7d, 1y6m, 2d12h)"));
        let mut d = KeepDuration::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            if rest.starts_with('-') {
                return Err(bad("negative durations are not allowed".into()));
            }
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad("no number found".into()));
            }
            let n: u32 = rest[..digits]
                .parse()
                .map_err(|_| bad(format!("number {} too large", &rest[..digits])))?;
            rest = &rest[digits..];
            let Some(unit) = rest.chars().next() else {
                return Err(bad(format!("no unit found after number {n}")));
            };
            match unit {
                'y' => d.years = n,
                'm' => d.months = n,
                'd' => d.days = n,
                'h' => d.hours = n,
                u => return Err(bad(format!("invalid unit {u:?} found after number {n}"))),
            }
            rest = &rest[unit.len_utf8()..];
        }
        Ok(d)
    }

    /// Whether nothing is set.
    pub fn is_zero(&self) -> bool {
        *self == KeepDuration::default()
    }

    /// `t` minus this duration, as restic computes it: Go's `AddDate(-years, -months, -days)` in
    /// `t`'s own offset (day overflow moves forward: Mar 31 − 1 month = Mar 3), then minus `hours`
    /// hours. Saturates at the earliest representable instant.
    pub fn before(&self, t: GoTime) -> Timestamp {
        let off = jiff::tz::Offset::from_seconds(t.offset_seconds).unwrap_or(jiff::tz::Offset::UTC);
        let dt = off.to_datetime(t.timestamp);
        // Go's time.Date normalisation: months overflow into years, days into months.
        let month0 = i64::from(dt.month()) - 1 - i64::from(self.months);
        let year = i64::from(dt.year()) - i64::from(self.years) + month0.div_euclid(12);
        let month = month0.rem_euclid(12) + 1;
        let first = i16::try_from(year)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, month as i8, 1).ok())
            .and_then(|d| off.to_timestamp(d.to_datetime(dt.time())).ok());
        let Some(first) = first else {
            return Timestamp::MIN;
        };
        let day_shift = i64::from(dt.day()) - 1 - i64::from(self.days);
        let back = SignedDuration::from_hours(i64::from(self.hours));
        first
            .checked_add(SignedDuration::from_secs(day_shift * 86_400))
            .and_then(|x| x.checked_sub(back))
            .unwrap_or(Timestamp::MIN)
    }
}

impl fmt::Display for KeepDuration {
    /// restic's form: `1y2m3d4h`, zero parts left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for KeepDuration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeepDuration::parse(s)
    }
}

// ---- policy ---------------------------------------------------------------------------------

/// Which snapshots of a group to keep (restic's `forget --keep-*`), plus KubeStash's maximum
/// retention period. Counts of zero are unset; restic 0.14 has no "unlimited" (`-1`) count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Keep the newest `last` snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the last `hourly` hours that have one.
    pub hourly: u32,
    /// … of each of the last `daily` days that have one.
    pub daily: u32,
    /// … of each of the last `weekly` ISO weeks that have one.
    pub weekly: u32,
    /// … of each of the last `monthly` months that have one.
    pub monthly: u32,
    /// … of each of the last `yearly` years that have one.
    pub yearly: u32,
    /// Keep every snapshot newer than this, relative to the group's newest snapshot.
    pub within: KeepDuration,
    /// Keep the newest snapshot of each hour within this window.
    pub within_hourly: KeepDuration,
    /// … of each day within this window.
    pub within_daily: KeepDuration,
    /// … of each week within this window.
    pub within_weekly: KeepDuration,
    /// … of each month within this window.
    pub within_monthly: KeepDuration,
    /// … of each year within this window.
    pub within_yearly: KeepDuration,
    /// Keep every snapshot that has all tags of one of these lists.
    pub keep_tags: Vec<TagList>,
    /// kstash extension (KubeStash `maxRetentionPeriod`), not in restic: after the selection
    /// above, every snapshot taken before `now − max_age` is removed, whatever kept it. Applied
    /// relative to `now`, not to the newest snapshot.
    pub max_age: Option<Duration>,
}

/// The bucket counts of a KubeStash `RetentionPolicy.spec.successfulSnapshots` (same shape, so
/// the controller maps it field by field). `failedSnapshots` concerns Snapshot resources, not
/// repository snapshots (restic snapshots are only written on success), so it is not here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionBuckets {
    /// `successfulSnapshots.last`.
    pub last: Option<i32>,
    /// `successfulSnapshots.hourly`.
    pub hourly: Option<i32>,
    /// `successfulSnapshots.daily`.
    pub daily: Option<i32>,
    /// `successfulSnapshots.weekly`.
    pub weekly: Option<i32>,
    /// `successfulSnapshots.monthly`.
    pub monthly: Option<i32>,
    /// `successfulSnapshots.yearly`.
    pub yearly: Option<i32>,
}

impl KeepPolicy {
    /// Whether nothing is configured, in which case `forget` removes nothing.
    pub fn is_empty(&self) -> bool {
        self.restic_part_is_empty() && self.max_age.is_none()
    }

    fn restic_part_is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_zero()
            && self.within_hourly.is_zero()
            && self.within_daily.is_zero()
            && self.within_weekly.is_zero()
            && self.within_monthly.is_zero()
            && self.within_yearly.is_zero()
            && self.keep_tags.is_empty()
    }

    /// The policy of a KubeStash RetentionPolicy: its `successfulSnapshots` counts and its
    /// `maxRetentionPeriod` (already converted to a duration). Negative counts are invalid.
    pub fn from_retention(
        buckets: &RetentionBuckets,
        max_retention_period: Option<Duration>,
    ) -> Result<KeepPolicy> {
        let count = |name: &str, v: Option<i32>| -> Result<u32> {
            let v = v.unwrap_or(0);
            u32::try_from(v).map_err(|_| {
                Error::Invalid(format!(
                    "successfulSnapshots.{name} must not be negative (got {v})"
                ))
            })
        };
        Ok(KeepPolicy {
            last: count("last", buckets.last)?,
            hourly: count("hourly", buckets.hourly)?,
            daily: count("daily", buckets.daily)?,
            weekly: count("weekly", buckets.weekly)?,
            monthly: count("monthly", buckets.monthly)?,
            yearly: count("yearly", buckets.yearly)?,
            max_age: max_retention_period,
            ..KeepPolicy::default()
        })
    }
}

fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, u) in [(days, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n != 0 {
            out.push_str(&format!("{n}{u}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

impl fmt::Display for KeepPolicy {
    /// restic's description: `keep 3 latest, 7 daily snapshots and all snapshots within 1m of the
    /// newest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keeps: Vec<String> = [
            (self.last, "latest"),
            (self.hourly, "hourly"),
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
            (self.yearly, "yearly"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        let keepw: Vec<String> = [
            (self.within_hourly, "hourly"),
            (self.within_daily, "daily"),
            (self.within_weekly, "weekly"),
            (self.within_monthly, "monthly"),
            (self.within_yearly, "yearly"),
        ]
        .iter()
        .filter(|(d, _)| !d.is_zero())
        .map(|(d, w)| format!("{w} snapshots within {d}"))
        .collect();
        let mut s = String::new();
        if !keeps.is_empty() {
            s = format!("{} snapshots", keeps.join(", "));
        }
        if !keepw.is_empty() {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(&keepw.join(", "));
        }
        if !self.keep_tags.is_empty() {
            if !s.is_empty() {
                s.push_str(" and ");
            }
            let lists: Vec<String> = self
                .keep_tags
                .iter()
                .map(|l| format!("[{}]", l.join(", ")))
                .collect();
            s.push_str(&format!("all snapshots with tags [{}]", lists.join(" ")));
        }
        if !self.within.is_zero() {
            if !s.is_empty() {
                s.push_str(" and ");
            }
            s.push_str(&format!("all snapshots within {} of the newest", self.within));
        }
        match self.max_age {
            Some(age) if s.is_empty() => write!(f, "keep all snapshots of the last {}", format_age(age)),
            Some(age) => write!(f, "keep {s}, but none older than {}", format_age(age)),
            None => write!(f, "keep {s}"),
        }
    }
}

// ---- grouping -------------------------------------------------------------------------------

/// What snapshots are grouped by before the policy is applied (restic's `--group-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By the (sorted) list of paths.
    pub paths: bool,
    /// By the (sorted) list of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// restic's default, `host,paths`.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// No grouping: one group of all snapshots.
    pub const NONE: GroupBy = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };

    /// Parse `host,paths,tags` (any subset; `hosts`, `path`, `tag` also accepted; `""` for no
    /// grouping).
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy::NONE;
        for option in s.split(',') {
            match option {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                "" => {}
                other => return Err(Error::Invalid(format!("unknown grouping option: '{other}'"))),
            }
        }
        Ok(g)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [(self.host, "host"), (self.paths, "paths"), (self.tags, "tags")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GroupBy::parse(s)
    }
}

/// The key of a group: the fields grouped by, empty for the others (restic's
/// `SnapshotGroupKey`). Paths and tags are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// The host name, if grouped by host.
    pub hostname: String,
    /// The sorted paths, if grouped by paths.
    pub paths: Vec<String>,
    /// The sorted tags, if grouped by tags.
    pub tags: Vec<String>,
}

impl GroupKey {
    /// The key of `sn` under `by`.
    pub fn of(sn: &Snapshot, by: GroupBy) -> GroupKey {
        let sorted = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v
        };
        GroupKey {
            hostname: if by.host {
                sn.hostname.clone()
            } else {
                String::new()
            },
            paths: if by.paths { sorted(&sn.paths) } else { Vec::new() },
            tags: if by.tags { sorted(&sn.tags) } else { Vec::new() },
        }
    }
}

impl fmt::Display for GroupKey {
    /// `host [h], paths [/a /b], tags [x]` (only the fields that are set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.hostname.is_empty() {
            parts.push(format!("host [{}]", self.hostname));
        }
        if !self.paths.is_empty() {
            parts.push(format!("paths [{}]", self.paths.join(" ")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags [{}]", self.tags.join(" ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Split `list` into groups, ordered by key; each group keeps the order of `list`.
pub fn group_snapshots(list: &[SnapshotEntry], by: GroupBy) -> Vec<(GroupKey, Vec<SnapshotEntry>)> {
    let mut groups: BTreeMap<GroupKey, Vec<SnapshotEntry>> = BTreeMap::new();
    for e in list {
        groups
            .entry(GroupKey::of(&e.snapshot, by))
            .or_default()
            .push(e.clone());
    }
    groups.into_iter().collect()
}

// ---- applying the policy --------------------------------------------------------------------

/// The bucket counts left after a snapshot was evaluated (restic's `counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeepCounters {
    /// `last` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub last: u32,
    /// `hourly` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub hourly: u32,
    /// `daily` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub daily: u32,
    /// `weekly` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub weekly: u32,
    /// `monthly` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub monthly: u32,
    /// `yearly` left.
    #[serde(skip_serializing_if = "is_zero")]
    pub yearly: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Whether it stays.
    pub keep: bool,
    /// Why it stays, in restic's words (`last snapshot`, `daily snapshot`, `within 1m`,
    /// `has tags [a, b]`, `hourly within 2d`, `policy is empty`); empty when removed.
    pub reasons: Vec<String>,
    /// The bucket counts left after this snapshot.
    pub counters: KeepCounters,
    /// Removed because it is older than the policy's `max_age` (it may have matched buckets).
    pub expired: bool,
}

/// The decisions for one group, newest snapshot first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetGroup {
    /// The group.
    pub key: GroupKey,
    /// One decision per snapshot, newest first.
    pub decisions: Vec<Decision>,
}

impl ForgetGroup {
    /// The snapshots kept, newest first.
    pub fn keep(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The snapshots removed, newest first.
    pub fn remove(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

type Bucker = fn(&jiff::civil::DateTime, usize) -> i64;

fn ymdh(d: &jiff::civil::DateTime, _: usize) -> i64 {
    ymd(d, 0) * 100 + i64::from(d.hour())
}

fn ymd(d: &jiff::civil::DateTime, _: usize) -> i64 {
    ym(d, 0) * 100 + i64::from(d.day())
}

fn yw(d: &jiff::civil::DateTime, _: usize) -> i64 {
    let w = d.date().iso_week_date();
    i64::from(w.year()) * 100 + i64::from(w.week())
}

fn ym(d: &jiff::civil::DateTime, _: usize) -> i64 {
    y(d, 0) * 100 + i64::from(d.month())
}

fn y(d: &jiff::civil::DateTime, _: usize) -> i64 {
    i64::from(d.year())
}

fn always(_: &jiff::civil::DateTime, nr: usize) -> i64 {
    nr as i64
}

/// The wall-clock time of a snapshot in the offset it was recorded with.
fn local_time(t: &GoTime) -> jiff::civil::DateTime {
    jiff::tz::Offset::from_seconds(t.offset_seconds)
        .unwrap_or(jiff::tz::Offset::UTC)
        .to_datetime(t.timestamp)
}

/// Newest first; exact ties by id (smaller id first).
fn sort_newest_first(list: &mut [SnapshotEntry]) {
    list.sort_by(|a, b| {
        b.snapshot
            .time
            .timestamp
            .cmp(&a.snapshot.time.timestamp)
            .then(a.id.cmp(&b.id))
    });
}

/// restic's `ApplyPolicy` on one group (no grouping is done here): the decision for every
/// snapshot, newest first. `now` only matters for `within*` (snapshots in the future do not
/// count as the newest) and for `max_age`. An empty policy keeps everything.
pub fn apply_policy_to_group(list: &[SnapshotEntry], policy: &KeepPolicy, now: Timestamp) -> Vec<Decision> {
    let mut list = list.to_vec();
    sort_newest_first(&mut list);
    let expired_before = policy.max_age.map(|age| {
        SignedDuration::try_from(age)
            .ok()
            .and_then(|a| now.checked_sub(a).ok())
            .unwrap_or(Timestamp::MIN)
    });
    let restic_empty = policy.restic_part_is_empty();

    // The newest snapshot that is not in the future; Go's zero time if there is none.
    let latest = list
        .iter()
        .map(|e| e.snapshot.time)
        .filter(|t| t.timestamp < now)
        .max_by_key(|t| t.timestamp)
        .unwrap_or_default();

    let mut buckets: [(u32, Bucker, Option<i64>, &str); 6] = [
        (policy.last, always, None, "last snapshot"),
        (policy.hourly, ymdh, None, "hourly snapshot"),
        (policy.daily, ymd, None, "daily snapshot"),
        (policy.weekly, yw, None, "weekly snapshot"),
        (policy.monthly, ym, None, "monthly snapshot"),
        (policy.yearly, y, None, "yearly snapshot"),
    ];
    let mut within_buckets: [(KeepDuration, Bucker, Option<i64>, &str); 5] = [
        (policy.within_hourly, ymdh, None, "hourly within"),
        (policy.within_daily, ymd, None, "daily within"),
        (policy.within_weekly, yw, None, "weekly within"),
        (policy.within_monthly, ym, None, "monthly within"),
        (policy.within_yearly, y, None, "yearly within"),
    ];
    let within_cutoff = (!policy.within.is_zero()).then(|| policy.within.before(latest));
    let within_bucket_cutoffs: Vec<Option<Timestamp>> = within_buckets
        .iter()
        .map(|(d, ..)| (!d.is_zero()).then(|| d.before(latest)))
        .collect();

    let mut out = Vec::with_capacity(list.len());
    for (nr, entry) in list.into_iter().enumerate() {
        let sn = &entry.snapshot;
        let mut reasons = Vec::new();
        if restic_empty {
            reasons.push("policy is empty".to_string());
        } else {
            for l in &policy.keep_tags {
                if has_tags(sn, l) {
                    reasons.push(format!("has tags [{}]", l.join(", ")));
                }
            }
            if let Some(cut) = within_cutoff
                && sn.time.timestamp > cut
            {
                reasons.push(format!("within {}", policy.within));
            }
            let local = local_time(&sn.time);
            for (count, bucker, last, reason) in buckets.iter_mut() {
                if *count > 0 {
                    let val = bucker(&local, nr);
                    if *last != Some(val) {
                        *last = Some(val);
                        *count -= 1;
                        reasons.push((*reason).to_string());
                    }
                }
            }
            for ((dur, bucker, last, reason), cut) in within_buckets.iter_mut().zip(&within_bucket_cutoffs) {
                if let Some(cut) = cut
                    && sn.time.timestamp > *cut
                {
                    let val = bucker(&local, nr);
                    if *last != Some(val) {
                        *last = Some(val);
                        reasons.push(format!("{reason} {dur}"));
                    }
                }
            }
        }
        let counters = KeepCounters {
            last: buckets[0].0,
            hourly: buckets[1].0,
            daily: buckets[2].0,
            weekly: buckets[3].0,
            monthly: buckets[4].0,
            yearly: buckets[5].0,
        };
        let mut keep = !reasons.is_empty();
        let expired = expired_before.is_some_and(|cut| sn.time.timestamp < cut);
        if expired {
            keep = false;
            reasons.clear();
        } else if restic_empty && expired_before.is_some() {
            reasons = vec![format!(
                "within max retention period {}",
                format_age(policy.max_age.unwrap_or_default())
            )];
        }
        out.push(Decision {
            entry,
            keep,
            reasons,
            counters,
            expired,
        });
    }
    out
}

/// Group `list` by `group_by` and apply `policy` to each group (restic's `forget` selection).
/// Groups are ordered by key.
pub fn apply_policy(
    list: &[SnapshotEntry],
    policy: &KeepPolicy,
    group_by: GroupBy,
    now: Timestamp,
) -> Vec<ForgetGroup> {
    group_snapshots(list, group_by)
        .into_iter()
        .map(|(key, members)| ForgetGroup {
            key,
            decisions: apply_policy_to_group(&members, policy, now),
        })
        .collect()
}

// ---- forget ---------------------------------------------------------------------------------

/// How to run [`forget`] or [`forget_snapshots`].
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Which snapshots are considered (for explicit ids: only used to resolve `latest`).
    pub filter: SnapshotFilter,
    /// What to keep.
    pub policy: KeepPolicy,
    /// How snapshots are grouped.
    pub group_by: GroupBy,
    /// Decide and report, but remove nothing.
    pub dry_run: bool,
    /// The exclusive lock to take; `None` (no lock) is only allowed with `dry_run`.
    pub lock: Option<LockOptions>,
    /// The current time for `within*` and `max_age`; `None` for the clock.
    pub now: Option<Timestamp>,
}

/// What [`forget`] or [`forget_snapshots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetSummary {
    /// The policy's decisions per group (none for an empty policy); for explicit ids, one group
    /// with an empty key holding every snapshot named, all removed.
    pub groups: Vec<ForgetGroup>,
    /// The snapshots removed, or that would be with `dry_run`, sorted.
    pub removed: Vec<Id>,
    /// Explicit ids that matched no snapshot (skipped, as restic does).
    pub not_found: Vec<String>,
    /// Whether nothing was deleted because this was a dry run.
    pub dry_run: bool,
    /// Whether the policy was empty, so nothing was removed.
    pub policy_empty: bool,
}

impl ForgetSummary {
    /// Whether snapshot files were deleted, so a prune would free space.
    pub fn prune_suggested(&self) -> bool {
        !self.dry_run && !self.removed.is_empty()
    }
}

fn lock_for(repo: &Repository, options: &ForgetOptions) -> Result<Option<RepoLock>> {
    match &options.lock {
        Some(lo) => Ok(Some(lock::acquire(repo, true, lo)?)),
        None if options.dry_run => Ok(None),
        None => Err(Error::Invalid(
            "forget without a lock is only allowed as a dry run".into(),
        )),
    }
}

/// Delete the snapshot files of `ids` (a file already gone is fine).
fn remove_snapshot_files(repo: &Repository, ids: &[Id], held: Option<&RepoLock>) -> Result<()> {
    if let Some(l) = held {
        l.check()?;
    }
    for id in ids {
        match repo.backend().remove(FileType::Snapshot, &id.to_hex()) {
            Ok(()) => tracing::info!(snapshot = %id.short(), "removed snapshot"),
            Err(Error::NotFound(_)) => {
                tracing::warn!(snapshot = %id.short(), "snapshot file was already gone")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Apply `options.policy` to the snapshots that pass `options.filter`, grouped by
/// `options.group_by`, and delete the snapshot files of those not kept, under an exclusive lock.
/// An empty policy removes nothing (restic: "no policy was specified, no snapshots will be
/// removed"). Data is not freed: run prune afterwards.
pub fn forget(repo: &Repository, options: &ForgetOptions) -> Result<ForgetSummary> {
    let held = lock_for(repo, options)?;
    let now = options.now.unwrap_or_else(Timestamp::now);
    let mut summary = ForgetSummary {
        dry_run: options.dry_run,
        ..Default::default()
    };
    if options.policy.is_empty() {
        tracing::info!("no policy was specified, no snapshots will be removed");
        summary.policy_empty = true;
        return Ok(summary);
    }
    let list = options.filter.apply(repo.list_snapshots()?);
    tracing::debug!(snapshots = list.len(), policy = %options.policy, "applying policy");
    summary.groups = apply_policy(&list, &options.policy, options.group_by, now);
    let removed: BTreeSet<Id> = summary
        .groups
        .iter()
        .flat_map(|g| g.remove().map(|d| d.entry.id))
        .collect();
    summary.removed = removed.into_iter().collect();
    if !options.dry_run {
        remove_snapshot_files(repo, &summary.removed, held.as_ref())?;
    }
    if let Some(l) = held {
        l.release()?;
    }
    Ok(summary)
}

/// Forget snapshots named by id, id prefix or `latest` (the newest snapshot passing
/// `options.filter`; the filter is not used otherwise), under an exclusive lock. Names that
/// match nothing are reported in [`ForgetSummary::not_found`] and skipped, as restic does; an
/// ambiguous prefix fails before anything is removed. The policy and grouping are ignored; the
/// summary has one group (empty key) listing the snapshots removed.
pub fn forget_snapshots(
    repo: &Repository,
    specs: &[String],
    options: &ForgetOptions,
) -> Result<ForgetSummary> {
    let held = lock_for(repo, options)?;
    let mut summary = ForgetSummary {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let mut found: BTreeMap<Id, SnapshotEntry> = BTreeMap::new();
    for spec in specs {
        let entry = if spec == "latest" {
            options.filter.apply(repo.list_snapshots()?).pop()
        } else {
            match repo.find_snapshot(spec) {
                Ok(e) => Some(e),
                Err(Error::SnapshotNotFound(_)) => None,
                Err(e) => return Err(e),
            }
        };
        match entry {
            Some(e) => {
                found.insert(e.id, e);
            }
            None => {
                tracing::warn!(snapshot = %spec, "no snapshot matches; ignoring it");
                summary.not_found.push(spec.clone());
            }
        }
    }
    summary.removed = found.keys().copied().collect();
    if !found.is_empty() {
        let mut entries: Vec<SnapshotEntry> = found.into_values().collect();
        sort_newest_first(&mut entries);
        summary.groups = vec![ForgetGroup {
            key: GroupKey::default(),
            decisions: entries
                .into_iter()
                .map(|entry| Decision {
                    entry,
                    keep: false,
                    reasons: Vec::new(),
                    counters: KeepCounters::default(),
                    expired: false,
                })
                .collect(),
        }];
    }
    if !options.dry_run {
        remove_snapshot_files(repo, &summary.removed, held.as_ref())?;
    }
    if let Some(l) = held {
        l.release()?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::MemoryBackend;
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;

    fn entry(time: &str, host: &str, paths: &[&str], tags: &[&str]) -> SnapshotEntry {
        let tree = Id::hash(b"tree");
        let mut s = Snapshot::new(tree, paths.iter().map(|p| p.to_string()).collect());
        s.time = GoTime::parse(time).unwrap();
        s.hostname = host.to_string();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        let id = Id::hash(format!("{time}|{host}|{paths:?}|{tags:?}").as_bytes());
        SnapshotEntry { id, snapshot: s }
    }

    fn at(time: &str) -> SnapshotEntry {
        entry(time, "h", &["/p"], &[])
    }

    fn ts(s: &str) -> Timestamp {
        GoTime::parse(s).unwrap().timestamp
    }

    const NOW: &str = "2030-01-01T00:00:00Z";

    /// The times of the kept snapshots, newest first.
    fn kept(list: &[SnapshotEntry], policy: &KeepPolicy) -> Vec<String> {
        apply_policy_to_group(list, policy, ts(NOW))
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.entry.snapshot.time.to_string())
            .collect()
    }

    /// Ten snapshots around the ISO-week year boundary 2021/2022 and beyond (listed oldest first
    /// on purpose: the policy sorts).
    fn calendar() -> Vec<SnapshotEntry> {
        [
            "2021-12-31T23:30:00Z", // Fri, ISO week 2021-52
            "2022-01-01T10:00:00Z", // Sat, 2021-52
            "2022-01-02T09:00:00Z", // Sun, 2021-52
            "2022-01-03T08:00:00Z", // Mon, 2022-01
            "2022-01-03T08:30:00Z", // same hour
            "2022-01-03T09:15:00Z",
            "2022-01-10T12:00:00Z", // 2022-02
            "2022-02-14T12:00:00Z",
            "2022-03-31T12:00:00Z",
            "2023-06-01T00:00:00Z",
        ]
        .into_iter()
        .map(at)
        .collect()
    }

    #[test]
    fn every_bucket_selects_the_newest_snapshot_of_each_period() {
        let list = calendar();
        let p = |f: fn(&mut KeepPolicy)| {
            let mut p = KeepPolicy::default();
            f(&mut p);
            p
        };
        let table: Vec<(&str, KeepPolicy, Vec<&str>)> = vec![
            (
                "last 3",
                p(|p| p.last = 3),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                ],
            ),
            (
                "hourly 7: 08:30 and 08:00 share an hour, so 08:00 is skipped and 01-02 counts",
                p(|p| p.hourly = 7),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-03T08:30:00Z",
                    "2022-01-02T09:00:00Z",
                ],
            ),
            (
                "daily 7",
                p(|p| p.daily = 7),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-02T09:00:00Z",
                    "2022-01-01T10:00:00Z",
                ],
            ),
            (
                "weekly 10: 2022-01-02, 01-01 and 2021-12-31 are all ISO week 2021-52",
                p(|p| p.weekly = 10),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-02T09:00:00Z",
                ],
            ),
            (
                "monthly 5",
                p(|p| p.monthly = 5),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2021-12-31T23:30:00Z",
                ],
            ),
            (
                "monthly 2",
                p(|p| p.monthly = 2),
                vec!["2023-06-01T00:00:00Z", "2022-03-31T12:00:00Z"],
            ),
            (
                "yearly 3",
                p(|p| p.yearly = 3),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2021-12-31T23:30:00Z",
                ],
            ),
            (
                "buckets combine: last 1 + weekly 2 + yearly 9",
                p(|p| {
                    p.last = 1;
                    p.weekly = 2;
                    p.yearly = 9;
                }),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2021-12-31T23:30:00Z",
                ],
            ),
            (
                "within 1y3m of the newest (2023-06-01 → after 2022-03-01)",
                p(|p| p.within = KeepDuration::parse("1y3m").unwrap()),
                vec!["2023-06-01T00:00:00Z", "2022-03-31T12:00:00Z"],
            ),
            (
                "daily within 1y5m: one per day after 2022-01-01T00:00",
                p(|p| p.within_daily = KeepDuration::parse("1y5m").unwrap()),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-02T09:00:00Z",
                    "2022-01-01T10:00:00Z",
                ],
            ),
            (
                "weekly within 2y, monthly within 1y6m (after 2021-12-01: December counts)",
                p(|p| {
                    p.within_weekly = KeepDuration::parse("2y").unwrap();
                    p.within_monthly = KeepDuration::parse("1y6m").unwrap();
                }),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-02T09:00:00Z",
                    "2021-12-31T23:30:00Z",
                ],
            ),
            (
                "weekly within 1y7m only (after 2021-11-01): 2021-12-31 shares ISO week 2021-52",
                p(|p| p.within_weekly = KeepDuration::parse("1y7m").unwrap()),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2022-02-14T12:00:00Z",
                    "2022-01-10T12:00:00Z",
                    "2022-01-03T09:15:00Z",
                    "2022-01-02T09:00:00Z",
                ],
            ),
            (
                "hourly within 4h and yearly within 5y",
                p(|p| {
                    p.within_hourly = KeepDuration::parse("4h").unwrap();
                    p.within_yearly = KeepDuration::parse("5y").unwrap();
                }),
                vec![
                    "2023-06-01T00:00:00Z",
                    "2022-03-31T12:00:00Z",
                    "2021-12-31T23:30:00Z",
                ],
            ),
        ];
        for (name, policy, want) in table {
            assert_eq!(kept(&list, &policy), want, "{name}");
        }
    }

    #[test]
    fn reasons_and_counters_are_restics() {
        let policy = KeepPolicy {
            last: 2,
            monthly: 3,
            within_daily: KeepDuration::parse("1d").unwrap(),
            keep_tags: vec![vec!["a".into(), "b".into()]],
            ..Default::default()
        };
        let mut list = calendar();
        list[0].snapshot.tags = vec!["b".into(), "a".into(), "x".into()];
        let d = apply_policy_to_group(&list, &policy, ts(NOW));
        assert_eq!(
            d[0].reasons,
            ["last snapshot", "monthly snapshot", "daily within 1d"]
        );
        assert_eq!(
            d[0].counters,
            KeepCounters {
                last: 1,
                monthly: 2,
                ..Default::default()
            }
        );
        assert_eq!(d[1].reasons, ["last snapshot", "monthly snapshot"]);
        assert_eq!(d[2].reasons, ["monthly snapshot"]);
        assert_eq!(d[2].counters, KeepCounters::default());
        assert!(!d[3].keep && d[3].reasons.is_empty());
        let last = d.last().unwrap();
        assert_eq!(last.reasons, ["has tags [a, b]"]);
        assert!(last.keep);
        assert_eq!(
            serde_json::to_string(&d[0].counters).unwrap(),
            r#"{"last":1,"monthly":2}"#
        );
        assert_eq!(serde_json::to_string(&d[2].counters).unwrap(), "{}");
    }

    #[test]
    fn keep_tags_are_and_within_a_list_and_or_between_lists() {
        let list = vec![
            entry("2022-01-01T00:00:00Z", "h", &["/p"], &["a"]),
            entry("2022-01-02T00:00:00Z", "h", &["/p"], &["a", "b"]),
            entry("2022-01-03T00:00:00Z", "h", &["/p"], &["c"]),
            entry("2022-01-04T00:00:00Z", "h", &["/p"], &[]),
            entry("2022-01-05T00:00:00Z", "h", &["/p"], &["b"]),
        ];
        let policy = KeepPolicy {
            keep_tags: vec![split_tag_list("a, b"), split_tag_list("c")],
            ..Default::default()
        };
        assert_eq!(
            kept(&list, &policy),
            ["2022-01-03T00:00:00Z", "2022-01-02T00:00:00Z"]
        );
        // The empty tag matches untagged snapshots only.
        let policy = KeepPolicy {
            keep_tags: vec![split_tag_list("")],
            ..Default::default()
        };
        assert_eq!(kept(&list, &policy), ["2022-01-04T00:00:00Z"]);
    }

    #[test]
    fn within_is_relative_to_the_newest_past_snapshot_strict_and_go_normalised() {
        // Exactly at the cut-off is not kept (restic's `After`).
        let list = vec![
            at("2023-05-31T00:00:00Z"),
            at("2023-05-31T00:00:01Z"),
            at("2023-06-01T00:00:00Z"),
        ];
        let policy = KeepPolicy {
            within: KeepDuration::parse("1d").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            kept(&list, &policy),
            ["2023-06-01T00:00:00Z", "2023-05-31T00:00:01Z"]
        );

        // A snapshot in the future does not count as the newest, but is kept (it is after).
        let mut future = list.clone();
        future.push(at("2099-01-01T00:00:00Z"));
        let now = ts("2024-01-01T00:00:00Z");
        let kept_now: Vec<String> = apply_policy_to_group(&future, &policy, now)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.entry.snapshot.time.to_string())
            .collect();
        assert_eq!(
            kept_now,
            [
                "2099-01-01T00:00:00Z",
                "2023-06-01T00:00:00Z",
                "2023-05-31T00:00:01Z"
            ]
        );
        // Everything in the future: the newest is Go's zero time, so everything is within.
        let all_future = vec![at("2099-01-01T00:00:00Z"), at("2098-01-01T00:00:00Z")];
        assert!(
            apply_policy_to_group(&all_future, &policy, now)
                .iter()
                .all(|d| d.keep)
        );

        // Go's AddDate: 2023-03-31 minus one month is "2023-02-31" = 2023-03-03 (not Feb 28).
        let list = vec![
            at("2023-03-02T12:00:00Z"),
            at("2023-03-03T12:00:00Z"),
            at("2023-03-03T12:00:01Z"),
            at("2023-03-31T12:00:00Z"),
        ];
        let policy = KeepPolicy {
            within: KeepDuration::parse("1m").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            kept(&list, &policy),
            ["2023-03-31T12:00:00Z", "2023-03-03T12:00:01Z"]
        );
        // Days and hours: 2023-03-31T12:00 − 1d2h = 2023-03-30T10:00.
        let list = vec![
            at("2023-03-30T10:00:00Z"),
            at("2023-03-30T10:00:01Z"),
            at("2023-03-31T12:00:00Z"),
        ];
        let policy = KeepPolicy {
            within: KeepDuration::parse("1d2h").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            kept(&list, &policy),
            ["2023-03-31T12:00:00Z", "2023-03-30T10:00:01Z"]
        );
    }

    #[test]
    fn cutoff_arithmetic_matches_go_add_date() {
        let cut = |t: &str, d: &str| {
            KeepDuration::parse(d)
                .unwrap()
                .before(GoTime::parse(t).unwrap())
                .to_string()
        };
        assert_eq!(cut("2023-03-31T12:00:00Z", "1m"), "2023-03-03T12:00:00Z");
        assert_eq!(cut("2024-03-31T12:00:00Z", "1m"), "2024-03-02T12:00:00Z");
        assert_eq!(cut("2024-02-29T00:00:00Z", "1y"), "2023-03-01T00:00:00Z");
        assert_eq!(cut("2023-01-15T00:00:00Z", "14m"), "2021-11-15T00:00:00Z");
        assert_eq!(cut("2023-01-01T05:00:00Z", "1d6h"), "2022-12-30T23:00:00Z");
        // In the snapshot's own offset: 2023-03-01T02:00+05:00 is 2023-02-28T21:00Z; minus one
        // month locally is 2023-02-01T02:00+05:00.
        assert_eq!(cut("2023-03-01T02:00:00+05:00", "1m"), "2023-01-31T21:00:00Z");
        assert_eq!(cut("2023-03-01T00:00:00Z", "20000y"), Timestamp::MIN.to_string());
    }

    #[test]
    fn buckets_use_the_offset_stored_with_each_snapshot() {
        // 20:00Z on Feb 28 is already March 1 in +05:30; 21:00Z is still February in UTC.
        let list = vec![at("2022-03-01T01:30:00+05:30"), at("2022-02-28T21:00:00Z")];
        let policy = KeepPolicy {
            monthly: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&list, &policy),
            ["2022-02-28T21:00:00Z", "2022-03-01T01:30:00+05:30"]
        );
        let policy = KeepPolicy {
            daily: 5,
            ..Default::default()
        };
        assert_eq!(kept(&list, &policy).len(), 2);
        // Same instant written in two offsets lands in the same hour only if the wall clock agrees.
        let list = vec![at("2022-02-28T21:10:00Z"), at("2022-02-28T16:20:00-05:00")];
        let policy = KeepPolicy {
            hourly: 5,
            ..Default::default()
        };
        assert_eq!(kept(&list, &policy).len(), 2, "21h and 16h are different hours");
    }

    #[test]
    fn exact_time_ties_are_broken_by_id() {
        let a = entry("2022-01-01T00:00:00Z", "h", &["/p"], &["one"]);
        let b = entry("2022-01-01T00:00:00Z", "h", &["/p"], &["two"]);
        let smaller = a.id.min(b.id);
        for list in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let d = apply_policy_to_group(
                &list,
                &KeepPolicy {
                    daily: 1,
                    ..Default::default()
                },
                ts(NOW),
            );
            assert_eq!(d[0].entry.id, smaller);
            assert!(d[0].keep && !d[1].keep);
        }
    }

    #[test]
    fn an_empty_policy_keeps_everything() {
        let policy = KeepPolicy::default();
        assert!(policy.is_empty());
        let d = apply_policy_to_group(&calendar(), &policy, ts(NOW));
        assert!(d.iter().all(|d| d.keep && d.reasons == ["policy is empty"]));
        assert!(
            !KeepPolicy {
                last: 1,
                ..Default::default()
            }
            .is_empty()
        );
        assert!(
            !KeepPolicy {
                keep_tags: vec![vec![]],
                ..Default::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn max_age_removes_old_snapshots_whatever_kept_them() {
        let now = ts("2022-04-01T00:00:00Z");
        let policy = KeepPolicy {
            last: 100,
            max_age: Some(Duration::from_secs(60 * 86_400)),
            ..Default::default()
        };
        let d = apply_policy_to_group(&calendar(), &policy, now);
        let kept: Vec<String> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.entry.snapshot.time.to_string())
            .collect();
        // After 2022-01-31T00:00Z; the future 2023 snapshot is not old.
        assert_eq!(
            kept,
            [
                "2023-06-01T00:00:00Z",
                "2022-03-31T12:00:00Z",
                "2022-02-14T12:00:00Z"
            ]
        );
        assert!(
            d.iter()
                .filter(|d| !d.keep)
                .all(|d| d.expired && d.reasons.is_empty())
        );
        // Only a maximum age: everything younger is kept.
        let policy = KeepPolicy::from_retention(
            &RetentionBuckets::default(),
            Some(Duration::from_secs(60 * 86_400)),
        )
        .unwrap();
        assert!(!policy.is_empty());
        let d = apply_policy_to_group(&calendar(), &policy, now);
        assert_eq!(d.iter().filter(|d| d.keep).count(), 3);
        assert_eq!(d[0].reasons, ["within max retention period 60d"]);
        assert_eq!(policy.to_string(), "keep all snapshots of the last 60d");
        let both = KeepPolicy {
            last: 2,
            max_age: Some(Duration::from_secs(86_400 + 3600)),
            ..Default::default()
        };
        assert_eq!(
            both.to_string(),
            "keep 2 latest snapshots, but none older than 1d1h"
        );
    }

    #[test]
    fn retention_buckets_map_to_the_policy() {
        let p = KeepPolicy::from_retention(
            &RetentionBuckets {
                last: Some(5),
                daily: Some(7),
                yearly: Some(0),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            p,
            KeepPolicy {
                last: 5,
                daily: 7,
                ..Default::default()
            }
        );
        assert!(
            KeepPolicy::from_retention(
                &RetentionBuckets {
                    hourly: Some(-1),
                    ..Default::default()
                },
                None
            )
            .is_err()
        );
        assert!(
            KeepPolicy::from_retention(&RetentionBuckets::default(), None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn policy_description_is_restics() {
        let p = KeepPolicy {
            last: 3,
            daily: 7,
            within_hourly: KeepDuration::parse("2d").unwrap(),
            keep_tags: vec![split_tag_list("a,b"), split_tag_list("c")],
            within: KeepDuration::parse("1y2m").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            p.to_string(),
            "keep 3 latest, 7 daily snapshots, hourly snapshots within 2d and all snapshots with tags [[a, b] [c]] and all snapshots within 1y2m of the newest"
        );
    }

    #[test]
    fn durations_parse_like_restic() {
        let d = KeepDuration::parse(" 1y2m3d4h ").unwrap();
        assert_eq!(
            d,
            KeepDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(d.to_string(), "1y2m3d4h");
        assert_eq!(
            KeepDuration::parse("5d2d").unwrap().days,
            2,
            "a repeated unit replaces"
        );
        assert_eq!(KeepDuration::parse("48h").unwrap().to_string(), "48h");
        assert!(KeepDuration::parse("").unwrap().is_zero());
        for bad in ["5", "d", "1w", "-1d", "1.5d", "99999999999d"] {
            assert!(KeepDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grouping_by_host_paths_and_tags() {
        let list = vec![
            entry("2022-01-01T00:00:00Z", "a", &["/y", "/x"], &["t2", "t1"]),
            entry("2022-01-02T00:00:00Z", "a", &["/x", "/y"], &["t1", "t2"]),
            entry("2022-01-03T00:00:00Z", "a", &["/x"], &["t1"]),
            entry("2022-01-04T00:00:00Z", "b", &["/x"], &[]),
        ];
        let sizes =
            |by: GroupBy| -> Vec<usize> { group_snapshots(&list, by).iter().map(|(_, g)| g.len()).collect() };
        assert_eq!(sizes(GroupBy::default()), [1, 2, 1], "paths are sorted");
        assert_eq!(sizes(GroupBy::NONE), [4]);
        assert_eq!(sizes(GroupBy::parse("host").unwrap()), [3, 1]);
        assert_eq!(sizes(GroupBy::parse("tags").unwrap()), [1, 1, 2]);
        assert_eq!(sizes(GroupBy::parse("host,paths,tags").unwrap()), [1, 2, 1]);
        assert_eq!(GroupBy::parse("hosts,path").unwrap(), GroupBy::default());
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::NONE);
        assert!(GroupBy::parse("host,user").is_err());
        let groups = apply_policy(
            &list,
            &KeepPolicy {
                last: 1,
                ..Default::default()
            },
            GroupBy::default(),
            ts(NOW),
        );
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].key.hostname, "a");
        assert_eq!(groups[0].key.paths, ["/x"]);
        assert!(groups[0].key.tags.is_empty());
        assert_eq!(groups[0].key.to_string(), "host [a], paths [/x]");
        let pair = &groups[1];
        assert_eq!(pair.keep().count(), 1);
        assert_eq!(
            pair.keep().next().unwrap().entry.snapshot.time.to_string(),
            "2022-01-02T00:00:00Z"
        );
        assert_eq!(pair.remove().count(), 1);
    }

    #[test]
    fn filters_follow_restic() {
        let list = vec![
            entry("2022-01-01T00:00:00Z", "a", &["/x", "/y"], &["t1", "t2"]),
            entry("2022-01-02T00:00:00Z", "b", &["/x"], &["t1"]),
            entry("2022-01-03T00:00:00Z", "c", &["/y"], &[]),
        ];
        let count = |f: SnapshotFilter| f.apply(list.clone()).len();
        assert!(SnapshotFilter::default().is_empty());
        assert_eq!(count(SnapshotFilter::default()), 3);
        let hosts = |h: &[&str]| SnapshotFilter {
            hosts: h.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(count(hosts(&["a", "c"])), 2, "hosts are OR'ed");
        let tags = |t: &[&str]| SnapshotFilter {
            tags: t.iter().map(|s| split_tag_list(s)).collect(),
            ..Default::default()
        };
        assert_eq!(count(tags(&["t1,t2"])), 1, "tags in one list are AND'ed");
        assert_eq!(count(tags(&["t2", "t1"])), 2, "lists are OR'ed");
        assert_eq!(count(tags(&[""])), 1, "the empty tag matches untagged snapshots");
        let paths = |p: &[&str]| SnapshotFilter {
            paths: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(count(paths(&["/x"])), 2);
        assert_eq!(count(paths(&["/x", "/y"])), 1, "paths are AND'ed");
        assert_eq!(count(paths(&["/x/"])), 0, "paths compare exactly");
        let range = SnapshotFilter {
            newer_than: Some(ts("2022-01-01T00:00:00Z")),
            older_than: Some(ts("2022-01-03T00:00:00Z")),
            ..Default::default()
        };
        assert_eq!(range.apply(list.clone())[0].snapshot.hostname, "b");
        assert_eq!(count(range), 1, "both ends exclusive");
        let both = SnapshotFilter {
            hosts: vec!["a".into(), "b".into()],
            tags: vec![split_tag_list("t2")],
            ..Default::default()
        };
        assert_eq!(count(both), 1);
    }

    fn memory_repo() -> Repository {
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        Repository::init(Arc::new(MemoryBackend::new()), "pw", opts).unwrap()
    }

    fn save_all(repo: &Repository, list: &[SnapshotEntry]) -> Vec<Id> {
        list.iter()
            .map(|e| repo.save_snapshot(&e.snapshot).unwrap())
            .collect()
    }

    fn fast_lock() -> Option<LockOptions> {
        Some(LockOptions {
            settle: std::time::Duration::from_millis(1),
            ..Default::default()
        })
    }

    #[test]
    fn forget_removes_exactly_what_the_policy_drops() {
        let repo = memory_repo();
        let mut list = calendar();
        list.push(entry("2022-01-05T00:00:00Z", "other", &["/p"], &[]));
        save_all(&repo, &list);
        let options = ForgetOptions {
            policy: KeepPolicy {
                monthly: 2,
                ..Default::default()
            },
            dry_run: true,
            lock: fast_lock(),
            ..Default::default()
        };
        let dry = forget(&repo, &options).unwrap();
        assert_eq!(dry.groups.len(), 2);
        assert_eq!(dry.removed.len(), 8);
        assert!(!dry.prune_suggested());
        assert_eq!(
            repo.list_snapshots().unwrap().len(),
            11,
            "a dry run removes nothing"
        );
        assert!(
            repo.backend().list(FileType::Lock).unwrap().is_empty(),
            "lock released"
        );

        let done = forget(
            &repo,
            &ForgetOptions {
                dry_run: false,
                ..options.clone()
            },
        )
        .unwrap();
        assert_eq!(done.removed, dry.removed);
        assert!(done.prune_suggested());
        let left: Vec<String> = repo
            .list_snapshots()
            .unwrap()
            .iter()
            .map(|e| e.snapshot.time.to_string())
            .collect();
        assert_eq!(
            left,
            [
                "2022-01-05T00:00:00Z",
                "2022-03-31T12:00:00Z",
                "2023-06-01T00:00:00Z"
            ]
        );
        assert!(repo.backend().list(FileType::Lock).unwrap().is_empty());

        // With a filter, other hosts are untouched.
        let filtered = forget(
            &repo,
            &ForgetOptions {
                filter: SnapshotFilter {
                    hosts: vec!["h".into()],
                    ..Default::default()
                },
                policy: KeepPolicy {
                    last: 1,
                    ..Default::default()
                },
                lock: fast_lock(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(filtered.groups.len(), 1);
        assert_eq!(repo.list_snapshots().unwrap().len(), 2);
    }

    #[test]
    fn an_empty_policy_removes_nothing_and_no_lock_needs_a_dry_run() {
        let repo = memory_repo();
        save_all(&repo, &calendar());
        let s = forget(
            &repo,
            &ForgetOptions {
                lock: fast_lock(),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.policy_empty && s.removed.is_empty() && s.groups.is_empty());
        assert_eq!(repo.list_snapshots().unwrap().len(), 10);
        let policy = KeepPolicy {
            last: 1,
            ..Default::default()
        };
        let err = forget(
            &repo,
            &ForgetOptions {
                policy: policy.clone(),
                lock: None,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        let s = forget(
            &repo,
            &ForgetOptions {
                policy,
                lock: None,
                dry_run: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.removed.len(), 9);
        assert_eq!(repo.list_snapshots().unwrap().len(), 10);
    }

    #[test]
    fn forget_by_id_prefix_and_latest() {
        let repo = memory_repo();
        let list = vec![
            entry("2022-01-01T00:00:00Z", "a", &["/p"], &[]),
            entry("2022-01-02T00:00:00Z", "a", &["/p"], &[]),
            entry("2022-01-03T00:00:00Z", "b", &["/p"], &[]),
        ];
        let ids = save_all(&repo, &list);
        let options = ForgetOptions {
            filter: SnapshotFilter {
                hosts: vec!["a".into()],
                ..Default::default()
            },
            lock: fast_lock(),
            ..Default::default()
        };
        let specs = vec![
            ids[0].short(),
            "latest".to_string(),
            ids[0].to_string(),
            "0000000000".to_string(),
        ];
        let s = forget_snapshots(&repo, &specs, &options).unwrap();
        let mut want = vec![ids[0], ids[1]];
        want.sort();
        assert_eq!(
            s.removed, want,
            "latest is the newest snapshot passing the filter"
        );
        assert_eq!(s.not_found, ["0000000000"]);
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].remove().count(), 2);
        assert_eq!(s.groups[0].decisions[0].entry.id, ids[1], "newest first");
        let left = repo.list_snapshots().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, ids[2]);
        // Dry run: nothing removed.
        let s = forget_snapshots(
            &repo,
            &[ids[2].short()],
            &ForgetOptions {
                dry_run: true,
                ..options
            },
        )
        .unwrap();
        assert_eq!(s.removed, [ids[2]]);
        assert_eq!(repo.list_snapshots().unwrap().len(), 1);
    }
}
