//! `stats`: how big snapshots are, in restic's two main modes. `restore-size` adds up the files
//! a restore would write; `raw-data` adds up the distinct blobs the snapshots reference, as
//! plaintext and as stored, which gives the compression ratio and what the snapshots really
//! cost in the repository.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::index::BlobType;
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;
use crate::tree::NodeType;

/// Which sizes to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsMode {
    /// Bytes and files a restore would write (restic's default).
    #[default]
    RestoreSize,
    /// Distinct blobs referenced: plaintext and stored bytes.
    RawData,
}

impl std::str::FromStr for StatsMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "restore-size" => Ok(StatsMode::RestoreSize),
            "raw-data" => Ok(StatsMode::RawData),
            _ => Err(format!("unknown stats mode {s:?}: use restore-size or raw-data")),
        }
    }
}

/// The numbers, named as `restic stats --json` names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Bytes: of files (restore-size) or of blob plaintext (raw-data).
    pub total_size: u64,
    /// Files and directories (restore-size).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_file_count: u64,
    /// Distinct blobs (raw-data).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blob_count: u64,
    /// Plaintext bytes of the blobs (raw-data).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_uncompressed_size: u64,
    /// Plaintext ÷ stored (raw-data).
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_ratio: f64,
    /// Snapshots counted.
    pub snapshots_count: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}

/// Count the given snapshots.
pub fn stats(repo: &Repository, snapshots: &[SnapshotEntry], mode: StatsMode) -> Result<Stats> {
    let mut st = Stats {
        snapshots_count: snapshots.len() as u64,
        ..Default::default()
    };
    let mut seen_trees: HashSet<Id> = HashSet::new();
    let mut seen_blobs: HashSet<Id> = HashSet::new();
    for sn in snapshots {
        // restore-size counts every snapshot's files in full; raw-data counts shared trees once.
        let mut stack = vec![sn.snapshot.tree];
        while let Some(tree_id) = stack.pop() {
            if mode == StatsMode::RawData {
                if !seen_trees.insert(tree_id) {
                    continue;
                }
                count_blob(repo, BlobType::Tree, &tree_id, &mut st);
            }
            let tree = repo.load_tree(&tree_id)?;
            for node in &tree.nodes {
                if mode == StatsMode::RestoreSize {
                    st.total_file_count += 1;
                    if node.node_type == NodeType::File {
                        st.total_size += node.size;
                    }
                }
                if let Some(sub) = node.subtree.filter(|_| node.node_type == NodeType::Dir) {
                    stack.push(sub);
                } else if mode == StatsMode::RawData
                    && let Some(content) = &node.content
                {
                    for id in content {
                        if seen_blobs.insert(*id) {
                            count_blob(repo, BlobType::Data, id, &mut st);
                        }
                    }
                }
            }
        }
    }
    if mode == StatsMode::RawData && st.total_size > 0 {
        st.compression_ratio = st.total_uncompressed_size as f64 / st.total_size as f64;
    }
    Ok(st)
}

/// Add a blob's stored size (to `total_size`) and plaintext size.
fn count_blob(repo: &Repository, t: BlobType, id: &Id, st: &mut Stats) {
    if let Some(loc) = repo.index().get(t, id) {
        st.total_blob_count += 1;
        let stored = u64::from(loc.length);
        st.total_size += stored;
        let plain = match loc.uncompressed_length {
            Some(n) => u64::from(n),
            None => stored.saturating_sub(crate::crypto::OVERHEAD as u64),
        };
        st.total_uncompressed_size += plain;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::backup_stream::{StreamBackupOptions, backup_stream};
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;
    use std::sync::Arc;

    #[test]
    fn restore_size_counts_every_snapshot_raw_data_counts_blobs_once() {
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(Arc::new(MemoryBackend::new()), "pw", opts).unwrap();
        let data = "insert into t values (42);\n".repeat(100_000).into_bytes();
        backup_stream(&repo, &data[..], &StreamBackupOptions::named("a.sql")).unwrap();
        backup_stream(&repo, &data[..], &StreamBackupOptions::named("b.sql")).unwrap();
        let all = repo.list_snapshots().unwrap();
        let rs = stats(&repo, &all, StatsMode::RestoreSize).unwrap();
        assert_eq!(rs.total_size, 2 * data.len() as u64);
        assert_eq!((rs.total_file_count, rs.snapshots_count), (2, 2));
        let raw = stats(&repo, &all, StatsMode::RawData).unwrap();
        // One copy of the data (deduplicated) plus two trees.
        assert!(raw.total_uncompressed_size >= data.len() as u64);
        assert!(raw.total_uncompressed_size < data.len() as u64 + 4096, "{raw:?}");
        assert!(raw.compression_ratio > 10.0, "{raw:?}");
        assert!("raw-data".parse::<StatsMode>().is_ok() && "x".parse::<StatsMode>().is_err());
    }
}
