//! `copy`: snapshots from one repository into another with its own key (and maybe its own
//! format version), as `restic copy` does. Blobs the destination lacks are decrypted with the
//! source key and re-encoded (compressed for v2) with the destination key; a tree already in the
//! destination is taken to be complete below, so copying again is cheap. A snapshot already
//! copied (same `original`, or same time, tree, host and paths) is skipped.

use std::collections::HashSet;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::repository::Repository;
use crate::saver::{Saver, SaverOptions, compressor, locked, with_saver};
use crate::snapshot::{Snapshot, SnapshotEntry};
use crate::tree::NodeType;

/// Options of a copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Threads re-encoding data blobs (0: one per core).
    pub workers: usize,
    /// Pack size in the destination.
    pub pack_size: usize,
    /// Concurrent uploads.
    pub uploaders: usize,
    /// Shared locks on both repositories (`None`: the caller takes care of locking).
    pub lock: Option<LockOptions>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            workers: 0,
            pack_size: crate::pack::DEFAULT_PACK_SIZE,
            uploaders: 2,
            lock: Some(LockOptions::default()),
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// (source id, new destination id) of each copied snapshot.
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the destination already had.
    pub skipped: Vec<Id>,
    /// Blobs written to the destination.
    pub blobs_copied: u64,
    /// Their plaintext bytes.
    pub bytes_copied: u64,
}

fn same_snapshot(a: &Snapshot, a_id: &Id, b: &Snapshot) -> bool {
    if b.original == Some(*a_id) || a.original.is_some() && a.original == b.original {
        return true;
    }
    a.time == b.time && a.tree == b.tree && a.hostname == b.hostname && a.paths == b.paths
}

/// Copy `snapshots` of `src` into `dst`.
pub fn copy_snapshots(
    src: &Repository,
    dst: &Repository,
    snapshots: &[SnapshotEntry],
    options: &CopyOptions,
) -> Result<CopySummary> {
    let (_src_lock, dst_lock) = match &options.lock {
        Some(l) => {
            let a = lock::acquire(src, false, l)?;
            let b = lock::acquire(dst, false, l)?;
            src.refresh_index()?;
            dst.refresh_index()?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let existing = dst.list_snapshots()?;
    let workers = if options.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        options.workers
    };
    let mut summary = CopySummary::default();
    let mut todo = Vec::new();
    for sn in snapshots {
        if existing
            .iter()
            .any(|e| same_snapshot(&sn.snapshot, &sn.id, &e.snapshot))
        {
            tracing::info!(snapshot = %sn.id.short(), "already in the destination; skipped");
            summary.skipped.push(sn.id);
        } else {
            todo.push(sn);
        }
    }
    if todo.is_empty() {
        return Ok(summary);
    }
    let saver_options = SaverOptions {
        pack_size: options.pack_size,
        uploaders: options.uploaders,
    };
    let ((), stats) = with_saver(dst, &saver_options, |saver| {
        for sn in &todo {
            copy_tree(src, saver, sn.snapshot.tree, workers).map_err(|e| Error::Damaged {
                what: format!("copying snapshot {}", sn.id.short()),
                source: Box::new(e),
            })?;
        }
        Ok(())
    })?;
    summary.blobs_copied = stats.data_blobs + stats.tree_blobs;
    summary.bytes_copied = stats.bytes_added;
    if let Some(h) = &dst_lock {
        h.check()?;
    }
    for sn in todo {
        let mut copy = sn.snapshot.clone();
        if copy.original.is_none() {
            copy.original = Some(sn.id);
        }
        let id = dst.save_snapshot(&copy)?;
        tracing::info!(from = %sn.id.short(), to = %id.short(), "copied snapshot");
        summary.copied.push((sn.id, id));
    }
    Ok(summary)
}

/// Copy the tree `root` and everything below it that the destination lacks.
fn copy_tree(src: &Repository, saver: &Saver<'_>, root: Id, workers: usize) -> Result<()> {
    let dst = saver.repo();
    let error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel::<Id>(workers * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let error = &error;
            s.spawn(move || {
                let mut comp = match compressor(dst) {
                    Ok(c) => c,
                    Err(e) => return saver.fail(e),
                };
                loop {
                    let job = locked(&rx).recv();
                    let Ok(id) = job else { return };
                    // Claimed by the walker: encode and add without another dedup check.
                    let res = src.load_blob(BlobType::Data, &id).and_then(|plain| {
                        let enc =
                            crate::pack::encode_blob(dst.key(), BlobType::Data, id, &plain, comp.as_mut())?;
                        saver.add_encoded(enc, plain.len() as u64)
                    });
                    if let Err(e) = res {
                        locked(error).get_or_insert(e);
                        saver.fail(Error::Internal("copy failed".into()));
                    }
                }
            });
        }
        drop(rx);
        let mut comp = compressor(dst)?;
        // Depth first; a tree is saved after its subtrees and blobs were queued. The saver only
        // writes an index once the packs are uploaded, so a snapshot is saved after all of it.
        let mut queued: HashSet<Id> = HashSet::new();
        let walk = walk_missing(src, saver, root, &tx, &mut queued, &mut comp);
        drop(tx);
        walk
    })?;
    if let Some(e) = error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    Ok(())
}

fn walk_missing(
    src: &Repository,
    saver: &Saver<'_>,
    tree_id: Id,
    tx: &std::sync::mpsc::SyncSender<Id>,
    queued: &mut HashSet<Id>,
    comp: &mut Option<zstd::bulk::Compressor<'static>>,
) -> Result<()> {
    if saver.repo().index().contains(BlobType::Tree, &tree_id) || !queued.insert(tree_id) {
        return Ok(());
    }
    let blob = src.load_blob(BlobType::Tree, &tree_id)?;
    let tree = crate::tree::Tree::from_blob(&blob).map_err(|e| Error::json(format!("tree {tree_id}"), e))?;
    for node in &tree.nodes {
        if node.node_type == NodeType::Dir {
            if let Some(sub) = node.subtree {
                walk_missing(src, saver, sub, tx, queued, comp)?;
            }
        } else if let Some(content) = &node.content {
            for id in content {
                if saver.claim(BlobType::Data, id) {
                    tx.send(*id)
                        .map_err(|_| Error::Internal("copy workers are gone".into()))?;
                } else {
                    saver.count_known(BlobType::Data);
                }
            }
        }
        if saver.aborted() {
            return Err(Error::Internal("copy aborted".into()));
        }
    }
    // The tree blob goes over byte for byte, so its id stays the same.
    saver.save(BlobType::Tree, &blob, comp.as_mut())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::backup_stream::{StreamBackupOptions, backup_stream};
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;

    fn repo(version: u32, pw: &str) -> Repository {
        let opts = InitOptions {
            version,
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        Repository::init(Arc::new(MemoryBackend::new()), pw, opts).unwrap()
    }

    #[test]
    fn copies_between_keys_and_versions_once() {
        let src = repo(2, "one");
        let dst = repo(1, "two");
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        let sum = backup_stream(&src, &data[..], &StreamBackupOptions::named("d.sql")).unwrap();
        let all = src.list_snapshots().unwrap();
        let c = copy_snapshots(&src, &dst, &all, &CopyOptions::default()).unwrap();
        assert_eq!(c.copied.len(), 1);
        assert!(c.blobs_copied >= 2);
        let mut out = Vec::new();
        crate::dump::dump_file(&dst, "latest", "/d.sql", &mut out).unwrap();
        assert_eq!(out, data);
        let copied = dst.find_snapshot("latest").unwrap();
        assert_eq!(copied.snapshot.original, Some(sum.snapshot_id));
        assert_eq!(copied.snapshot.tree, sum.tree_id);
        // Again: skipped, nothing written.
        let again = copy_snapshots(&src, &dst, &all, &CopyOptions::default()).unwrap();
        assert_eq!(
            (again.copied.len(), again.skipped.len(), again.blobs_copied),
            (0, 1, 0)
        );
    }

    #[test]
    fn a_missing_source_blob_fails_without_a_snapshot() {
        let src = repo(2, "one");
        let dst = repo(2, "two");
        backup_stream(&src, &b"hello"[..], &StreamBackupOptions::named("d.sql")).unwrap();
        let all = src.list_snapshots().unwrap();
        // Forget what the source index knows: the data blob cannot be found.
        *src.index_mut() = crate::index::Index::new();
        let err = copy_snapshots(
            &src,
            &dst,
            &all,
            &CopyOptions {
                lock: None,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Damaged { .. }), "{err}");
        assert!(dst.list_snapshots().unwrap().is_empty());
    }
}
