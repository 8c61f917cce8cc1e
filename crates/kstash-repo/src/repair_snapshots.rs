//! `repair snapshots` (restic 0.16+): snapshots whose trees reference blobs that are gone are
//! rewritten so that every remaining reference resolves.
//!
//! A file loses the data blobs no index lists (its content is cut short, its size set to what
//! is left); a directory whose tree cannot be loaded becomes empty; a snapshot whose root tree
//! cannot be loaded is deleted (nothing of it can be restored). The rewritten snapshot keeps
//! the old one's time, host and paths, gets the tag `repaired` and names the old one as its
//! `original`; with `forget` the old snapshot file is deleted. Run after `repair index`, under
//! the exclusive lock. New trees are saved (and indexed) before any snapshot is written.

use std::collections::HashMap;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::repository::Repository;
use crate::saver::{Saver, SaverOptions, compressor, with_saver};
use crate::snapshot::SnapshotEntry;
use crate::tree::{NodeType, Tree};

/// The tag a rewritten snapshot gets.
pub const REPAIRED_TAG: &str = "repaired";

/// Options of [`repair_snapshots`].
#[derive(Debug, Clone)]
pub struct RepairSnapshotsOptions {
    /// Delete each original snapshot that was rewritten.
    pub forget: bool,
    /// Find what would change; write and delete nothing.
    pub dry_run: bool,
    /// The exclusive lock held throughout (`None`: the caller holds it).
    pub lock: Option<LockOptions>,
}

impl Default for RepairSnapshotsOptions {
    fn default() -> Self {
        RepairSnapshotsOptions {
            forget: false,
            dry_run: false,
            lock: Some(LockOptions::default()),
        }
    }
}

/// What happened to one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRepair {
    /// Every reference resolves.
    Unchanged,
    /// Rewritten as `new` (`None` in a dry run); `forgotten` when the original was deleted.
    Rewritten {
        /// The new snapshot.
        new: Option<Id>,
        /// Whether the original was deleted.
        forgotten: bool,
    },
    /// The root tree cannot be loaded: the snapshot was (or in a dry run would be) deleted.
    Removed,
}

/// One snapshot's outcome and the changes made to its trees (`file "/a": removed missing
/// content`, `dir "/b": replaced with an empty directory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    /// The snapshot examined.
    pub id: Id,
    /// Its paths.
    pub paths: Vec<String>,
    /// What changed inside it, one line per file or directory.
    pub changes: Vec<String>,
    /// The outcome.
    pub outcome: SnapshotRepair,
}

/// What [`repair_snapshots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairSnapshotsSummary {
    /// One report per snapshot examined, oldest first.
    pub snapshots: Vec<SnapshotReport>,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

impl RepairSnapshotsSummary {
    /// Snapshots rewritten or removed.
    pub fn modified(&self) -> usize {
        self.snapshots
            .iter()
            .filter(|s| s.outcome != SnapshotRepair::Unchanged)
            .count()
    }
}

/// Rewrites trees; remembers each tree's replacement so shared subtrees are done once.
struct Rewriter<'s, 'r> {
    repo: &'r Repository,
    saver: Option<&'s Saver<'r>>,
    comp: Option<zstd::bulk::Compressor<'static>>,
    /// Old tree id → new tree id (`None` when the tree cannot be loaded) and its changes.
    done: HashMap<Id, (Option<Id>, Vec<String>)>,
}

impl Rewriter<'_, '_> {
    /// The id a tree is stored under: saved when the saver is there (not in a dry run).
    fn store(&mut self, tree: &Tree) -> Result<Id> {
        let blob = tree
            .to_blob()
            .map_err(|e| Error::Internal(format!("cannot encode a tree: {e}")))?;
        match self.saver {
            Some(s) => Ok(s.save(BlobType::Tree, &blob, self.comp.as_mut())?.0),
            None => Ok(Id::hash(&blob)),
        }
    }

    /// The replacement of tree `id` at `path` (`None`: it cannot be loaded), and the changes
    /// made below it.
    fn rewrite(&mut self, id: Id, path: &str) -> Result<(Option<Id>, Vec<String>)> {
        if let Some(known) = self.done.get(&id) {
            return Ok(known.clone());
        }
        let mut tree = match self.repo.load_tree(&id) {
            Ok(t) => t,
            Err(e @ (Error::Backend { .. } | Error::Storage(_))) => return Err(e),
            Err(e) => {
                tracing::debug!(tree = %id, path, error = %e, "tree cannot be loaded");
                self.done.insert(id, (None, Vec::new()));
                return Ok((None, Vec::new()));
            }
        };
        let mut changes = Vec::new();
        let mut changed = false;
        for node in &mut tree.nodes {
            let child = if path == "/" {
                format!("/{}", node.name)
            } else {
                format!("{path}/{}", node.name)
            };
            match node.node_type {
                NodeType::File => {
                    let Some(content) = &node.content else { continue };
                    let index = self.repo.index();
                    let kept: Vec<Id> = content
                        .iter()
                        .filter(|b| index.contains(BlobType::Data, b))
                        .copied()
                        .collect();
                    let size: u64 = kept
                        .iter()
                        .filter_map(|b| index.get(BlobType::Data, b))
                        .map(|l| u64::from(l.data_length()))
                        .sum();
                    drop(index);
                    if kept.len() != content.len() {
                        changes.push(format!("file {child:?}: removed missing content"));
                    } else if size != node.size {
                        changes.push(format!("file {child:?}: fixed incorrect size"));
                    } else {
                        continue;
                    }
                    node.content = Some(kept);
                    node.size = size;
                    changed = true;
                }
                NodeType::Dir => {
                    let Some(sub) = node.subtree else { continue };
                    let (new, below) = self.rewrite(sub, &child)?;
                    changes.extend(below);
                    let new = match new {
                        Some(n) => n,
                        None => {
                            changes.push(format!("dir {child:?}: replaced with an empty directory"));
                            self.store(&Tree::default())?
                        }
                    };
                    if new != sub {
                        node.subtree = Some(new);
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        let new = if changed { self.store(&tree)? } else { id };
        self.done.insert(id, (Some(new), changes.clone()));
        Ok((Some(new), changes))
    }
}

/// Repair `snapshots` (every snapshot when empty) of `repo` (see the module documentation).
pub fn repair_snapshots(
    repo: &Repository,
    snapshots: &[SnapshotEntry],
    options: &RepairSnapshotsOptions,
) -> Result<RepairSnapshotsSummary> {
    let held = match &options.lock {
        Some(l) => Some(lock::acquire(repo, true, l)?),
        None => None,
    };
    repo.refresh_index()?;
    let all;
    let snapshots = if snapshots.is_empty() {
        all = repo.list_snapshots()?;
        &all
    } else {
        snapshots
    };
    let mut summary = RepairSnapshotsSummary {
        dry_run: options.dry_run,
        ..Default::default()
    };
    // Trees first (saved and indexed when the saver finishes), snapshots after.
    let rewrites = if options.dry_run {
        let mut rw = Rewriter {
            repo,
            saver: None,
            comp: None,
            done: HashMap::new(),
        };
        rewrite_all(&mut rw, snapshots)?
    } else {
        with_saver(repo, &SaverOptions::default(), |saver| {
            let mut rw = Rewriter {
                repo,
                saver: Some(saver),
                comp: compressor(repo)?,
                done: HashMap::new(),
            };
            rewrite_all(&mut rw, snapshots)
        })?
        .0
    };
    if let Some(h) = &held {
        h.check()?;
    }
    for (sn, (root, changes)) in snapshots.iter().zip(rewrites) {
        let outcome = match root {
            Some(root) if root == sn.snapshot.tree => SnapshotRepair::Unchanged,
            Some(root) => {
                let mut new = None;
                if !options.dry_run {
                    let mut s = sn.snapshot.clone();
                    s.tree = root;
                    if s.original.is_none() {
                        s.original = Some(sn.id);
                    }
                    if !s.tags.iter().any(|t| t == REPAIRED_TAG) {
                        s.tags.push(REPAIRED_TAG.to_string());
                    }
                    new = Some(repo.save_snapshot(&s)?);
                    if options.forget {
                        repo.backend().remove(FileType::Snapshot, &sn.id.to_hex())?;
                    }
                }
                SnapshotRepair::Rewritten {
                    new,
                    forgotten: options.forget,
                }
            }
            None => {
                if !options.dry_run {
                    repo.backend().remove(FileType::Snapshot, &sn.id.to_hex())?;
                }
                SnapshotRepair::Removed
            }
        };
        tracing::info!(snapshot = %sn.id.short(), changes = changes.len(), outcome = ?outcome, "snapshot repaired");
        summary.snapshots.push(SnapshotReport {
            id: sn.id,
            paths: sn.snapshot.paths.clone(),
            changes,
            outcome,
        });
    }
    Ok(summary)
}

/// Each snapshot's new root (`None`: the root cannot be loaded) and the changes, in order.
fn rewrite_all(
    rw: &mut Rewriter<'_, '_>,
    snapshots: &[SnapshotEntry],
) -> Result<Vec<(Option<Id>, Vec<String>)>> {
    snapshots
        .iter()
        .map(|sn| rw.rewrite(sn.snapshot.tree, "/"))
        .collect()
}
