//! Snapshot files: restic's JSON (Go field order and omitempty rules), loading, listing, and
//! finding a snapshot by id, prefix or `latest`.

use serde::{Deserialize, Serialize};

use crate::gojson::GoTime;
use crate::id::Id;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Statistics restic (0.17+) records about the backup that made a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// When the backup started.
    #[serde(default)]
    pub backup_start: GoTime,
    /// When it ended.
    #[serde(default)]
    pub backup_end: GoTime,
    /// New files.
    #[serde(default)]
    pub files_new: u64,
    /// Changed files.
    #[serde(default)]
    pub files_changed: u64,
    /// Unmodified files.
    #[serde(default)]
    pub files_unmodified: u64,
    /// New directories.
    #[serde(default)]
    pub dirs_new: u64,
    /// Changed directories.
    #[serde(default)]
    pub dirs_changed: u64,
    /// Unmodified directories.
    #[serde(default)]
    pub dirs_unmodified: u64,
    /// Data blobs added.
    #[serde(default)]
    pub data_blobs: i64,
    /// Tree blobs added.
    #[serde(default)]
    pub tree_blobs: i64,
    /// Bytes added before compression.
    #[serde(default)]
    pub data_added: u64,
    /// Bytes added as stored.
    #[serde(default)]
    pub data_added_packed: u64,
    /// Files read.
    #[serde(default)]
    pub total_files_processed: u64,
    /// Bytes read.
    #[serde(default)]
    pub total_bytes_processed: u64,
}

/// A snapshot, field for field as restic's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot was taken.
    pub time: GoTime,
    /// The snapshot this one was based on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// The root tree.
    pub tree: Id,
    /// The paths backed up.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// User id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Group id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    /// Exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The snapshot this one is a modified copy of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// The program that wrote it (restic 0.16+ field; older restic ignores it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub program_version: String,
    /// Backup statistics (restic 0.17+ field; older restic ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
}

impl Snapshot {
    /// A snapshot of `paths` with root `tree`, taken now by this user on this host.
    pub fn new(tree: Id, paths: Vec<String>) -> Snapshot {
        let (uid, gid) = crate::host::uid_gid();
        Snapshot {
            time: GoTime::now(),
            parent: None,
            tree,
            paths,
            hostname: crate::host::hostname(),
            username: crate::host::username(),
            uid,
            gid,
            excludes: Vec::new(),
            tags: Vec::new(),
            original: None,
            program_version: format!("kstash {}", env!("CARGO_PKG_VERSION")),
            summary: None,
        }
    }
}

/// A snapshot with its id (the SHA-256 of its stored file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The snapshot file's id.
    pub id: Id,
    /// Its content.
    pub snapshot: Snapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESTIC_SNAPSHOT: &str = r#"{"time":"2026-11-22T02:26:25.020403809Z","tree":"eae8ee8982c7aecb45b9a57fbcfec374c536b9152a752e00230e3c843ed4acf8","paths":["/dumpfile.sql"],"hostname":"vm","username":"root"}"#;

    #[test]
    fn restic_snapshot_round_trips() {
        let s: Snapshot = serde_json::from_str(RESTIC_SNAPSHOT).unwrap();
        assert_eq!(s.paths, vec!["/dumpfile.sql"]);
        assert_eq!(crate::gojson::to_vec(&s).unwrap(), RESTIC_SNAPSHOT.as_bytes());
    }

    #[test]
    fn optional_fields() {
        let mut s = Snapshot::new(Id::hash(b"t"), vec!["/x".into()]);
        s.uid = 1000;
        s.tags = vec!["a".into()];
        s.parent = Some(Id::hash(b"p"));
        s.summary = Some(SnapshotSummary {
            data_added: 5,
            ..Default::default()
        });
        let j = String::from_utf8(crate::gojson::to_vec(&s).unwrap()).unwrap();
        assert!(j.contains("\"parent\":"), "{j}");
        assert!(j.find("\"parent\"").unwrap() < j.find("\"tree\"").unwrap());
        assert!(j.contains("\"uid\":1000"));
        assert!(j.contains("\"program_version\":\"kstash "));
        assert!(j.contains("\"data_added\":5"));
        let back: Snapshot = serde_json::from_slice(j.as_bytes()).unwrap();
        assert_eq!(back, s);
    }
}
