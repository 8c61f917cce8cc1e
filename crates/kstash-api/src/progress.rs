//! Live progress of a running backup or restore as KubeStash (2026) records it in
//! `Snapshot.status.components[*].resticStats[].progress` and
//! `RestoreSession.status.components[*].progress`: the values computed from counters (bytes and
//! files done and total, time elapsed), formatted as KubeStash formats them (sizes as Go's
//! `units.HumanSize`, `7.48%`, `39.39MB/s`), and the one-line summary with an ETA that
//! `kstash get`/`describe` print.

use std::time::Duration;

use crate::core::RestoreProgress;
use crate::duration::format_go_duration;
use crate::storage::BackupProgress;

/// Counters of an operation at one moment. A total of 0 means "not known yet".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProgressSample {
    /// Bytes read (backup) or written (restore) so far.
    pub bytes_done: u64,
    /// Bytes expected in all (0: unknown, e.g. a database dump stream).
    pub bytes_total: u64,
    /// Files done so far.
    pub files_done: u64,
    /// Files expected in all (0: unknown).
    pub files_total: u64,
    /// Time since the operation started.
    pub elapsed: Duration,
}

impl ProgressSample {
    /// The known total, never below what is already done (files can grow while being read).
    fn total(&self) -> Option<u64> {
        (self.bytes_total > 0).then(|| self.bytes_total.max(self.bytes_done))
    }

    /// Percent of the bytes done (0–100), when the total is known.
    pub fn percent(&self) -> Option<f64> {
        self.total()
            .map(|t| (self.bytes_done as f64 * 100.0 / t as f64).min(100.0))
    }

    /// Average speed in bytes per second since the start (`None` before any time passed).
    pub fn speed(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.bytes_done as f64 / secs)
    }

    /// Time left at the average speed so far, when the total is known and something was done.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total()?;
        let speed = self.speed().filter(|s| *s > 0.0)?;
        Some(Duration::from_secs_f64((total - self.bytes_done) as f64 / speed))
    }

    /// The fields KubeStash fills, each only when known: `(secondsElapsed, percentDone, done,
    /// total, speed)`.
    fn fields(&self) -> (i64, String, String, String, String) {
        (
            self.elapsed.as_secs() as i64,
            self.percent()
                .filter(|p| *p > 0.0)
                .map(|p| format!("{p:.2}%"))
                .unwrap_or_default(),
            human_size(self.bytes_done),
            self.total().map(human_size).unwrap_or_default(),
            self.speed()
                .filter(|_| self.elapsed.as_secs() > 0)
                .map(|s| format!("{}/s", human_size_f(s)))
                .unwrap_or_default(),
        )
    }

    /// The `resticStats[].progress` of a backup.
    pub fn backup(&self) -> BackupProgress {
        let (seconds_elapsed, percent_done, backup_done, total, speed) = self.fields();
        BackupProgress {
            seconds_elapsed,
            percent_done,
            total_files: self.files_total as i64,
            files_done: self.files_done as i64,
            backup_done,
            total,
            speed,
        }
    }

    /// The `components[*].progress` of a restore.
    pub fn restore(&self) -> RestoreProgress {
        let (seconds_elapsed, percent_done, restore_done, total, speed) = self.fields();
        RestoreProgress {
            seconds_elapsed,
            percent_done,
            total_files: self.files_total as i64,
            files_done: self.files_done as i64,
            restore_done,
            total,
            speed,
        }
    }
}

/// A byte count as Go's `units.HumanSize` prints it (decimal units, four significant digits):
/// `512B`, `1.5kB`, `393.9MB`, `5.268GB`.
pub fn human_size(bytes: u64) -> String {
    human_size_f(bytes as f64)
}

fn human_size_f(mut size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", four_significant(size), UNITS[i])
}

/// `%.4g` for 0 ≤ x < 1000 (no exponent needed): four significant digits, trailing zeros cut.
fn four_significant(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One line for a person: `7.48%, 393.9MB of 5.268GB, 2/10 files, 39.39MB/s, 1m0s elapsed, ETA
/// 12m23s` — each part only when recorded. The ETA is derived from `percentDone` and
/// `secondsElapsed` (the speed so far), as the stored sizes are rounded.
pub fn summary(
    percent_done: &str,
    done: &str,
    total: &str,
    files: (i64, i64),
    speed: &str,
    seconds_elapsed: i64,
) -> String {
    let mut parts = Vec::new();
    if !percent_done.is_empty() {
        parts.push(percent_done.to_string());
    }
    match (done.is_empty(), total.is_empty()) {
        (false, false) => parts.push(format!("{done} of {total}")),
        (false, true) => parts.push(done.to_string()),
        _ => {}
    }
    let (files_done, files_total) = files;
    if files_total > 0 {
        parts.push(format!("{files_done}/{files_total} files"));
    }
    if !speed.is_empty() {
        parts.push(speed.to_string());
    }
    if seconds_elapsed > 0 {
        parts.push(format!(
            "{} elapsed",
            format_go_duration(Duration::from_secs(seconds_elapsed as u64))
        ));
    }
    if let Some(eta) = eta(percent_done, seconds_elapsed) {
        parts.push(format!("ETA {}", format_go_duration(eta)));
    }
    parts.join(", ")
}

/// Time left from a recorded `percentDone` (`7.48%`) and `secondsElapsed`, at the speed so far;
/// `None` when either is missing, nothing is done yet, or it is complete.
pub fn eta(percent_done: &str, seconds_elapsed: i64) -> Option<Duration> {
    let p: f64 = percent_done.trim().trim_end_matches('%').parse().ok()?;
    if !(p > 0.0 && p < 100.0) || seconds_elapsed <= 0 {
        return None;
    }
    Some(Duration::from_secs(
        (seconds_elapsed as f64 * (100.0 - p) / p).round() as u64,
    ))
}

/// The summary of a backup's progress.
pub fn backup_summary(p: &BackupProgress) -> String {
    summary(
        &p.percent_done,
        &p.backup_done,
        &p.total,
        (p.files_done, p.total_files),
        &p.speed,
        p.seconds_elapsed,
    )
}

/// The summary of a restore's progress.
pub fn restore_summary(p: &RestoreProgress) -> String {
    summary(
        &p.percent_done,
        &p.restore_done,
        &p.total,
        (p.files_done, p.total_files),
        &p.speed,
        p.seconds_elapsed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(done: u64, total: u64, secs: u64) -> ProgressSample {
        ProgressSample {
            bytes_done: done,
            bytes_total: total,
            files_done: 1,
            files_total: 2,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn sizes_read_like_go_units_human_size() {
        for (bytes, want) in [
            (0, "0B"),
            (512, "512B"),
            (1500, "1.5kB"),
            (393_900_000, "393.9MB"),
            (5_268_000_000, "5.268GB"),
            (1_039_000_000, "1.039GB"),
            (999_999, "1000kB"),
            (1_000_000, "1MB"),
            (12_345_678, "12.35MB"),
        ] {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn percent_speed_and_eta_come_from_done_total_and_elapsed() {
        // (done, total, seconds) → (percent, bytes/s, ETA seconds)
        type Row = (u64, u64, u64, Option<f64>, Option<f64>, Option<u64>);
        let table: [Row; 6] = [
            (250, 1000, 10, Some(25.0), Some(25.0), Some(30)),
            (1000, 1000, 4, Some(100.0), Some(250.0), Some(0)),
            (500, 0, 5, None, Some(100.0), None),
            (0, 1000, 0, Some(0.0), None, None),
            (0, 1000, 3, Some(0.0), Some(0.0), None),
            (1200, 1000, 6, Some(100.0), Some(200.0), Some(0)),
        ];
        for (done, total, secs, percent, speed, eta) in table {
            let s = sample(done, total, secs);
            assert_eq!(s.percent(), percent, "percent of {done}/{total}");
            assert_eq!(s.speed(), speed, "speed of {done} in {secs}s");
            assert_eq!(
                s.eta().map(|d| d.as_secs()),
                eta,
                "eta of {done}/{total} in {secs}s"
            );
        }
    }

    #[test]
    fn the_status_fields_are_kubestash_s() {
        let p = sample(393_900_000, 5_268_000_000, 60).backup();
        assert_eq!(
            p,
            BackupProgress {
                seconds_elapsed: 60,
                percent_done: "7.48%".into(),
                total_files: 2,
                files_done: 1,
                backup_done: "393.9MB".into(),
                total: "5.268GB".into(),
                speed: "6.565MB/s".into(),
            }
        );
        let json = serde_json::to_value(&p).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "backupDone",
                "filesDone",
                "percentDone",
                "secondsElapsed",
                "speed",
                "total",
                "totalFiles"
            ]
        );

        // A dump stream: no total, so neither percent nor total; nothing timed yet: no speed.
        let r = sample(1_039_000_000, 0, 0).restore();
        assert_eq!((r.restore_done.as_str(), r.total.as_str()), ("1.039GB", ""));
        assert_eq!((r.percent_done.as_str(), r.speed.as_str()), ("", ""));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("restoreDone").is_some() && json.get("backupDone").is_none());
    }

    #[test]
    fn the_summary_shows_what_is_known_and_an_eta() {
        let p = sample(393_900_000, 5_268_000_000, 60).backup();
        assert_eq!(
            backup_summary(&p),
            "7.48%, 393.9MB of 5.268GB, 1/2 files, 6.565MB/s, 1m0s elapsed, ETA 12m22s"
        );
        let r = RestoreProgress {
            restore_done: "1.3MB".into(),
            seconds_elapsed: 10,
            ..Default::default()
        };
        assert_eq!(restore_summary(&r), "1.3MB, 10s elapsed");
        assert_eq!(eta("50.00%", 30), Some(Duration::from_secs(30)));
        assert_eq!(eta("100.00%", 30), None);
        assert_eq!(eta("", 30), None);
        assert_eq!(eta("oops", 30), None);
    }
}
