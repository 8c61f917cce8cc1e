//! Output: kubectl-style tables from each kind's print columns, ages, YAML/JSON rendering,
//! redaction of Secret data, plain row tables for the commands that print their own, and the live progress of running Snapshots and RestoreSessions.

use std::fmt::Debug;

use jiff::Timestamp;
use kstash_api::core::RestoreProgress;
use kstash_api::meta::{self, ResourceType};
use kstash_api::progress::{backup_summary, eta, restore_summary};
use kstash_api::storage::BackupProgress;
use serde_json::Value;

/// Replace every value of a Secret's `data`/`stringData` by a redaction marker (keys are kept).
pub fn redact(mut obj: Value) -> Value {
    if obj.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = obj.get_mut(field) {
                for v in map.values_mut() {
                    *v = Value::String("<redacted>".into());
                }
            }
        }
    }
    obj
}

/// kubectl's human duration: `45s`, `5m30s`, `42m`, `5h10m`, `30h`, `3d4h`, `120d`, `2y30d`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match () {
        _ if secs < 120 => format!("{secs}s"),
        _ if m < 10 => format!("{m}m{}s", secs % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => format!("{d}d{}h", h % 24),
        _ if d < 730 => format!("{d}d"),
        _ => format!("{}y{}d", d / 365, d % 365),
    }
}

/// Evaluate a simple JSONPath like `.status.phase` or `.spec.storage.provider`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(obj, |v, key| v.get(key))
}

fn cell(v: Option<&Value>, type_: &str, now: Timestamp) -> String {
    match v {
        None | Some(Value::Null) => match type_ {
            "date" | "string" | "boolean" | "integer" => "".into(),
            _ => "".into(),
        },
        Some(Value::String(s)) if type_ == "date" => match s.parse::<Timestamp>() {
            Ok(t) => human_duration(now.duration_since(t).as_secs()),
            Err(_) => s.clone(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Columns of a kind: `(HEADER, jsonPath, type)`; Snapshots and RestoreSessions also get
/// kstash's `PROGRESS` (before `AGE`).
fn columns(rt: &ResourceType, wide: bool) -> Vec<(String, &'static str, &'static str)> {
    let mut cols: Vec<_> = meta::print_columns_of(rt)
        .iter()
        .map(|(n, p, t)| (n.to_uppercase(), *p, *t))
        .collect();
    let before_age =
        |cols: &Vec<(String, &str, &str)>| cols.iter().position(|c| c.0 == "AGE").unwrap_or(cols.len());
    if rt.group != meta::STASH_GROUP && matches!(rt.kind, "Snapshot" | "RestoreSession") {
        let at = before_age(&cols);
        cols.insert(at, ("PROGRESS".into(), PROGRESS, "string"));
    }
    // KubeStash dropped the verification column from its Snapshot CRD (2024); `-o wide` shows it.
    if wide && rt.kind == "Snapshot" {
        let at = before_age(&cols);
        cols.insert(
            at,
            ("VERIFICATION".into(), ".status.verificationStatus", "string"),
        );
    }
    // Which repository and snapshot a verification looked at, and why it ended so.
    if wide && rt.kind == "BackupVerificationSession" {
        let at = before_age(&cols);
        cols.insert(at, ("REPOSITORY".into(), ".spec.repository", "string"));
        cols.insert(at + 1, ("SNAPSHOT".into(), ".spec.snapshot", "string"));
    }
    cols
}

/// The pseudo path of the `PROGRESS` column.
const PROGRESS: &str = "#progress";

/// The live progress of each running component of a Snapshot or RestoreSession, as
/// `(component, progress)`, in component order.
pub fn progress(obj: &Value) -> Vec<(String, Progress)> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(Value::Object(components)) = obj.pointer("/status/components") else {
        return Vec::new();
    };
    components
        .iter()
        .filter(|(_, c)| c.get("phase").and_then(Value::as_str) == Some("Running"))
        .filter_map(|(name, c)| {
            let p = match kind {
                "Snapshot" => Progress::Backup(
                    serde_json::from_value(c.pointer("/resticStats/0/progress")?.clone()).ok()?,
                ),
                "RestoreSession" => {
                    Progress::Restore(serde_json::from_value(c.get("progress")?.clone()).ok()?)
                }
                _ => return None,
            };
            Some((name.clone(), p))
        })
        .collect()
}

/// Live progress of one component.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Backup(BackupProgress),
    Restore(RestoreProgress),
}

impl Progress {
    /// The full line for `describe`: percent, done of total, files, speed, elapsed, ETA.
    pub fn summary(&self) -> String {
        match self {
            Progress::Backup(p) => backup_summary(p),
            Progress::Restore(p) => restore_summary(p),
        }
    }

    /// The short cell for a table: percent (or bytes done when the total is unknown), speed, ETA.
    pub fn cell(&self) -> String {
        let (percent, done, speed, secs) = match self {
            Progress::Backup(p) => (&p.percent_done, &p.backup_done, &p.speed, p.seconds_elapsed),
            Progress::Restore(p) => (&p.percent_done, &p.restore_done, &p.speed, p.seconds_elapsed),
        };
        let mut parts = vec![if percent.is_empty() {
            done.clone()
        } else {
            percent.clone()
        }];
        if !speed.is_empty() {
            parts.push(speed.clone());
        }
        if let Some(left) = eta(percent, secs) {
            parts.push(format!("ETA {}", human_duration(left.as_secs() as i64)));
        }
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }
}

/// The fields a [`Table`] reads, for listings that parse only those
/// (`kstash_embedded::pruned::KeepPaths`).
pub fn table_fields(rt: &ResourceType, wide: bool) -> Vec<&'static str> {
    let mut out = vec![".metadata.name", ".metadata.namespace", ".kind"];
    for (_, path, _) in columns(rt, wide) {
        out.push(match path {
            PROGRESS => ".status.components",
            "#data" => ".data",
            p => p,
        });
    }
    out
}

/// A table of objects of one kind, built a row at a time so that a long listing keeps only
/// the cells, not the objects.
pub struct Table {
    cols: Vec<(String, &'static str, &'static str)>,
    with_namespace: bool,
    now: Timestamp,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table of `rt`'s print columns (`wide`: `-o wide`'s), with a NAMESPACE column
    /// when `with_namespace` and the kind is namespaced.
    pub fn new(rt: &ResourceType, with_namespace: bool, wide: bool) -> Table {
        let cols = columns(rt, wide);
        let with_namespace = with_namespace && rt.namespaced;
        let mut header = Vec::new();
        if with_namespace {
            header.push("NAMESPACE".to_string());
        }
        header.push("NAME".to_string());
        header.extend(cols.iter().map(|c| c.0.clone()));
        Table {
            cols,
            with_namespace,
            now: Timestamp::now(),
            rows: vec![header],
        }
    }

    /// Add the row of `o`.
    pub fn push(&mut self, o: &Value) {
        let mut row = Vec::with_capacity(self.rows[0].len());
        if self.with_namespace {
            row.push(
                json_path(o, ".metadata.namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        row.push(
            json_path(o, ".metadata.name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        for (_, path, type_) in &self.cols {
            if *path == PROGRESS {
                let cells: Vec<String> = progress(o).iter().map(|(_, p)| p.cell()).collect();
                row.push(cells.join("; "));
            } else if *path == "#data" {
                row.push(
                    o.get("data")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len())
                        .to_string(),
                );
            } else {
                row.push(cell(json_path(o, path), type_, self.now));
            }
        }
        self.rows.push(row);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.len() == 1
    }

    /// The table as text, columns padded to their widest cell.
    pub fn render(self) -> String {
        rows_table(&self.rows)
    }
}

/// YAML of one object (redacted).
pub fn yaml(obj: &Value) -> String {
    serde_yaml_ng::to_string(&redact(obj.clone())).unwrap_or_default()
}

// ---- plain rows (commands that print their own tables) ------------------------------------

/// Left-aligned columns separated by three spaces, as `kstash get` prints.
pub(crate) fn rows_table(rows: &[Vec<String>]) -> String {
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

/// [`rows_table`] with every line indented.
pub(crate) fn indented_table(rows: &[Vec<String>], indent: &str) -> String {
    rows_table(rows)
        .lines()
        .map(|l| format!("{indent}{l}\n"))
        .collect()
}

pub(crate) fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A phase as kubectl prints it, or `<none>`.
pub(crate) fn show<T: Debug>(phase: Option<T>) -> String {
    phase.map_or_else(|| "<none>".to_string(), |p| format!("{p:?}"))
}

pub(crate) fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn age(t: jiff::Timestamp) -> String {
    human_duration(jiff::Timestamp::now().duration_since(t).as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(rt: &ResourceType, objects: &[Value], with_namespace: bool) -> String {
        let mut t = Table::new(rt, with_namespace, false);
        objects.iter().for_each(|o| t.push(o));
        t.render()
    }
    use serde_json::json;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(330), "5m30s");
        assert_eq!(human_duration(42 * 60), "42m");
        assert_eq!(human_duration(5 * 3600 + 600), "5h10m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(human_duration(120 * 86400), "120d");
    }

    #[test]
    fn secrets_are_redacted_but_keep_their_keys() {
        let s = redact(json!({"kind": "Secret", "data": {"RESTIC_PASSWORD": "c2VjcmV0"}}));
        assert_eq!(s["data"]["RESTIC_PASSWORD"], "<redacted>");
        let not_secret = redact(json!({"kind": "Repository", "data": {"x": "y"}}));
        assert_eq!(not_secret["data"]["x"], "y");
    }

    #[test]
    fn running_components_show_their_progress_in_tables_and_describe() {
        let rt = kstash_api::meta::lookup("snapshot").unwrap();
        let snap = json!({"kind": "Snapshot", "metadata": {"name": "s1", "namespace": "demo"},
            "status": {"phase": "Running", "components": {
                "dump": {"phase": "Running", "resticStats": [{"progress": {
                    "backupDone": "393.9MB", "total": "5.268GB", "percentDone": "7.48%",
                    "secondsElapsed": 60, "speed": "6.565MB/s", "totalFiles": 2, "filesDone": 1}}]},
                "done": {"phase": "Succeeded", "resticStats": [{"progress": {"percentDone": "100.00%"}}]}}}});
        let t = table_of(rt, std::slice::from_ref(&snap), false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("PROGRESS"), "{}", lines[0]);
        assert!(lines[1].contains("7.48% 6.565MB/s ETA 12m"), "{}", lines[1]);
        let p = progress(&snap);
        assert_eq!(p.len(), 1, "only running components");
        assert_eq!(
            p[0].1.summary(),
            "7.48%, 393.9MB of 5.268GB, 1/2 files, 6.565MB/s, 1m0s elapsed, ETA 12m22s"
        );
        let rs = json!({"kind": "RestoreSession", "status": {"components": {"dump": {
            "phase": "Running", "progress": {"restoreDone": "1.3MB", "secondsElapsed": 10}}}}});
        assert_eq!(progress(&rs)[0].1.cell(), "1.3MB");
    }

    #[test]
    fn tables_use_the_kinds_print_columns() {
        let rt = kstash_api::meta::lookup("repo").unwrap();
        let repo = json!({"metadata": {"name": "pg-repo", "namespace": "demo"},
            "status": {"integrity": true, "snapshotCount": 3, "size": "1.000 KiB", "phase": "Ready"}});
        let t = table_of(rt, &[repo], true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME      INTEGRITY   SNAPSHOT-COUNT   SIZE        PHASE"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("demo        pg-repo   true        3                1.000 KiB   Ready"),
            "{}",
            lines[1]
        );
    }
}
