//! Dump: write one file of a snapshot to any `Write`, streaming blob by blob (a loader thread
//! reads, decrypts and decompresses ahead of the writer through a bounded queue).

use std::io::Write;
use std::sync::mpsc::sync_channel;

use crate::error::{Error, Result};
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;
use crate::tree::{Node, NodeType};

/// Blobs loaded ahead of the writer.
const PREFETCH: usize = 4;

/// The node at `path` (`/a/b.sql`, leading `/` optional) in a snapshot.
pub fn find_node(repo: &Repository, snapshot: &SnapshotEntry, path: &str) -> Result<Node> {
    let not_found = || Error::PathNotFound {
        snapshot: snapshot.id.short(),
        path: path.to_string(),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let (last, dirs) = parts.split_last().ok_or_else(not_found)?;
    let mut tree_id = snapshot.snapshot.tree;
    for dir in dirs {
        let tree = repo.load_tree(&tree_id)?;
        let node = tree.find(dir).ok_or_else(not_found)?;
        tree_id = match (node.node_type, node.subtree) {
            (NodeType::Dir, Some(sub)) => sub,
            _ => return Err(not_found()),
        };
    }
    repo.load_tree(&tree_id)?
        .find(last)
        .cloned()
        .ok_or_else(not_found)
}

/// Write the content of a file node to `out`; returns the bytes written.
pub fn dump_node<W: Write>(repo: &Repository, node: &Node, mut out: W) -> Result<u64> {
    let ids = node.content.clone().unwrap_or_default();
    let mut written = 0u64;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel::<Result<Vec<u8>>>(PREFETCH);
        let loader = std::thread::Builder::new()
            .name("kstash-dump-load".into())
            .spawn_scoped(s, move || {
                for id in &ids {
                    let blob = repo.load_blob(BlobType::Data, id);
                    let failed = blob.is_err();
                    if tx.send(blob).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
        let mut result = Ok(());
        for blob in rx.iter() {
            match blob.and_then(|b| out.write_all(&b).map(|()| b.len()).map_err(Error::Output)) {
                Ok(n) => written += n as u64,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        if loader.join().is_err() {
            return Err(Error::Internal("dump loader thread panicked".into()));
        }
        result
    })?;
    out.flush().map_err(Error::Output)?;
    if written != node.size {
        tracing::warn!(name = %node.name, expected = node.size, written, "dumped size differs from the node's size");
    }
    Ok(written)
}

/// Options of [`dump_file_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOptions {
    /// Hold a shared lock while reading (`None`: no lock, like restic's `--no-lock`).
    pub lock: Option<LockOptions>,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            lock: Some(LockOptions::default()),
        }
    }
}

/// Write the file at `path` of snapshot `spec` (id, id prefix or `latest`) to `out`, holding a
/// shared lock (failing at once if the repository is locked exclusively).
pub fn dump_file<W: Write>(repo: &Repository, spec: &str, path: &str, out: W) -> Result<u64> {
    dump_file_with(repo, spec, path, out, &DumpOptions::default())
}

/// [`dump_file`] with options.
pub fn dump_file_with<W: Write>(
    repo: &Repository,
    spec: &str,
    path: &str,
    out: W,
    options: &DumpOptions,
) -> Result<u64> {
    let _lock = lock::shared_and_fresh(repo, options.lock.as_ref())?;
    let sn = repo.find_snapshot(spec)?;
    let node = find_node(repo, &sn, path)?;
    if node.node_type != NodeType::File {
        return Err(Error::NotAFile {
            snapshot: sn.id.short(),
            path: path.to_string(),
            node_type: node.node_type.as_str().to_string(),
        });
    }
    dump_node(repo, &node, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FileType;
    use crate::backup_stream::{StreamBackupOptions, backup_stream};
    use crate::index::BlobType;
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;
    use crate::{Backend, Id, MemoryBackend};
    use std::sync::Arc;

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| ((i / 7) as u8).wrapping_mul(31).wrapping_add(seed) ^ (i % 13) as u8)
            .collect()
    }

    #[test]
    fn dump_latest_returns_latest_content() {
        let be = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(be.clone(), "pw", opts).unwrap();
        let a = data(2_000_000, 1);
        let b = data(1_500_000, 2);
        let o = StreamBackupOptions::named("dumpfile.sql");
        let sa = backup_stream(&repo, &a[..], &o).unwrap();
        let sb = backup_stream(&repo, &b[..], &o).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            dump_file(&repo, "latest", "/dumpfile.sql", &mut out).unwrap(),
            b.len() as u64
        );
        assert_eq!(out, b);
        out.clear();
        dump_file(&repo, &sa.snapshot_id.to_hex()[..8], "dumpfile.sql", &mut out).unwrap();
        assert_eq!(out, a);
        assert_eq!(repo.list_snapshots().unwrap().last().unwrap().id, sb.snapshot_id);
        assert!(matches!(
            dump_file(&repo, "latest", "/nope", &mut out),
            Err(Error::PathNotFound { .. })
        ));
        assert!(matches!(
            dump_file(&repo, "ffff", "/dumpfile.sql", &mut out),
            Err(Error::SnapshotNotFound(_))
        ));

        // Corrupt one data pack: dump fails with a MAC error naming the pack.
        let sn = repo.find_snapshot("latest").unwrap();
        let node = find_node(&repo, &sn, "dumpfile.sql").unwrap();
        let first: Id = node.content.as_ref().unwrap()[0];
        let loc = repo.index().get(BlobType::Data, &first).unwrap();
        be.tamper(FileType::Pack, &loc.pack.to_hex(), |d| {
            d[loc.offset as usize + 30] ^= 1
        });
        let err = dump_file(&repo, "latest", "/dumpfile.sql", std::io::sink()).unwrap_err();
        assert!(matches!(err, Error::Mac { .. }), "{err}");
        assert!(err.to_string().contains(&loc.pack.to_hex()), "{err}");
        let _ = be.list(FileType::Pack);
    }
}
