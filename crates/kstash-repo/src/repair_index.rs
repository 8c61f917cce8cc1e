//! `repair index` (restic 0.16+; `rebuild-index` in restic 0.14): a new index built from the
//! packs in storage, replacing every index file.
//!
//! The entries of a pack that still exists with exactly the size they add up to are reused (as
//! restic does); the header of every other pack is read: packs no index lists, packs of another
//! size, packs two index files list differently, and with `read_all_packs` every pack. Packs the
//! old index lists but storage lacks are left out, so their blobs become missing for `check` and
//! `repair snapshots`. A pack whose header cannot be read is left out and reported; it is never
//! deleted. Legacy (pre-0.8) index files are rewritten in the current format.
//!
//! Order, safe to interrupt at any point: the new index files (which `supersede` the old ones)
//! are written first, the old ones deleted last, all under the exclusive lock.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::FileType;
use crate::check::parallel_map;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, MAX_BLOBS_PER_INDEX_FILE, PackedBlob, same_blobs};
use crate::lock::{self, LockOptions};
use crate::pack;
use crate::repository::Repository;

/// Options of [`repair_index`].
#[derive(Debug, Clone)]
pub struct RepairIndexOptions {
    /// Read every pack's header instead of reusing the entries of packs whose size matches.
    pub read_all_packs: bool,
    /// Compute the new index, write and delete nothing.
    pub dry_run: bool,
    /// The exclusive lock held throughout (`None`: the caller holds it).
    pub lock: Option<LockOptions>,
    /// Pack headers read in parallel.
    pub threads: usize,
}

impl Default for RepairIndexOptions {
    fn default() -> Self {
        RepairIndexOptions {
            read_all_packs: false,
            dry_run: false,
            lock: Some(LockOptions::default()),
            threads: 8,
        }
    }
}

/// What [`repair_index`] found and (unless a dry run) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairIndexSummary {
    /// Index files read.
    pub index_files_read: usize,
    /// Index files in restic's legacy format among them.
    pub legacy_index_files: usize,
    /// Index files that could not be read, with why (replaced like the others).
    pub damaged_index_files: Vec<(Id, String)>,
    /// Packs in storage.
    pub packs: usize,
    /// Packs whose index entries were reused.
    pub packs_reused: usize,
    /// Packs whose header was read.
    pub packs_read: usize,
    /// Packs whose header could not be read, with why: left out of the new index.
    pub unreadable_packs: Vec<(Id, String)>,
    /// Packs the old index listed that are not in storage: left out of the new index.
    pub missing_packs: Vec<Id>,
    /// Packs and blobs in the new index.
    pub packs_indexed: usize,
    /// Blob entries in the new index.
    pub blobs_indexed: usize,
    /// The new index files (empty in a dry run).
    pub index_files_written: Vec<Id>,
    /// Old index files deleted (in a dry run: that would be deleted).
    pub index_files_deleted: usize,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// The size of a pack holding exactly `blobs`.
fn expected_size(blobs: &[PackedBlob]) -> u64 {
    blobs.iter().map(|b| u64::from(b.length)).sum::<u64>() + pack::header_size(blobs) as u64
}

/// Rebuild the index of `repo` from its packs (see the module documentation).
pub fn repair_index(repo: &Repository, options: &RepairIndexOptions) -> Result<RepairIndexSummary> {
    let held = match &options.lock {
        Some(l) => Some(lock::acquire(repo, true, l)?),
        None => None,
    };
    let mut summary = RepairIndexSummary {
        dry_run: options.dry_run,
        ..Default::default()
    };

    // 1. The old index: each pack's first listing; packs listed differently are read again.
    let mut old_files = Vec::new();
    let mut listed: BTreeMap<Id, Vec<PackedBlob>> = BTreeMap::new();
    let mut conflicting: BTreeSet<Id> = BTreeSet::new();
    for (name, _) in repo.backend().list(FileType::Index)? {
        let Ok(id) = name.parse::<Id>() else {
            tracing::warn!(file = %name, "ignoring a file in index/ whose name is not an id");
            continue;
        };
        old_files.push(id);
        let file: IndexFile = match repo.load_json(FileType::Index, &id) {
            Ok(f) => f,
            // Storage failures stop the repair: they say nothing about the file.
            Err(e @ (Error::Backend { .. } | Error::Storage(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(index = %id, error = %e, "cannot read an index file; its packs are read again");
                summary.damaged_index_files.push((id, e.to_string()));
                continue;
            }
        };
        summary.index_files_read += 1;
        summary.legacy_index_files += usize::from(file.legacy);
        for p in &file.packs {
            let blobs: Vec<PackedBlob> = p.blobs.iter().map(|b| b.to_packed()).collect();
            match listed.get(&p.id) {
                Some(first) if !same_blobs(first, &blobs) => {
                    conflicting.insert(p.id);
                }
                Some(_) => {}
                None => {
                    listed.insert(p.id, blobs);
                }
            }
        }
    }
    // Files that failed with a storage error were returned above; damaged ones may hide
    // listings, but their packs are in storage and get read below.

    // 2. The packs in storage: reuse or read.
    let mut stored: BTreeMap<Id, u64> = BTreeMap::new();
    for (name, size) in repo.backend().list(FileType::Pack)? {
        match name.parse::<Id>() {
            Ok(id) => {
                stored.insert(id, size);
            }
            Err(_) => tracing::warn!(file = %name, "ignoring a file in data/ that is not a pack"),
        }
    }
    summary.packs = stored.len();
    summary.missing_packs = listed
        .keys()
        .filter(|id| !stored.contains_key(id))
        .copied()
        .collect();
    for id in &summary.missing_packs {
        tracing::warn!(pack = %id, "the index lists a pack that is not in storage; removing it from the index");
    }
    let mut new_index: BTreeMap<Id, Vec<PackedBlob>> = BTreeMap::new();
    let mut to_read: Vec<Id> = Vec::new();
    for (id, size) in &stored {
        match listed.remove(id) {
            Some(blobs)
                if !options.read_all_packs
                    && !conflicting.contains(id)
                    && !blobs.is_empty()
                    && expected_size(&blobs) == *size =>
            {
                new_index.insert(*id, blobs);
            }
            _ => to_read.push(*id),
        }
    }
    summary.packs_reused = new_index.len();
    tracing::info!(
        reuse = new_index.len(),
        read = to_read.len(),
        "reading pack headers"
    );
    let headers = parallel_map(&to_read, options.threads.max(1), |id| repo.list_pack(id))?;
    for (id, header) in to_read.iter().zip(headers) {
        summary.packs_read += 1;
        match header {
            Ok(blobs) if !blobs.is_empty() => {
                new_index.insert(*id, blobs);
            }
            Ok(_) => summary
                .unreadable_packs
                .push((*id, "its header lists no blobs".into())),
            Err(e @ (Error::Backend { .. } | Error::Storage(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(pack = %id, error = %e, "cannot read a pack header; leaving the pack out of the index");
                summary.unreadable_packs.push((*id, e.to_string()));
            }
        }
    }
    summary.packs_indexed = new_index.len();
    summary.blobs_indexed = new_index.values().map(Vec::len).sum();
    summary.index_files_deleted = old_files.len();
    if options.dry_run {
        return Ok(summary);
    }

    // 3. The new index files, superseding every old one; then the old ones go.
    let mut file = IndexFile {
        supersedes: old_files.clone(),
        ..Default::default()
    };
    let mut count = 0;
    for (id, blobs) in &new_index {
        if count + blobs.len() > MAX_BLOBS_PER_INDEX_FILE && !file.packs.is_empty() {
            summary
                .index_files_written
                .push(repo.save_json(FileType::Index, &file)?);
            file.packs.clear();
            count = 0;
        }
        count += blobs.len();
        file.add_pack(*id, blobs);
    }
    if !file.packs.is_empty() {
        summary
            .index_files_written
            .push(repo.save_json(FileType::Index, &file)?);
    }
    if let Some(h) = &held {
        h.check()?;
    }
    for id in &old_files {
        match repo.backend().remove(FileType::Index, &id.to_hex()) {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    repo.load_index()?;
    tracing::info!(
        packs = summary.packs_indexed,
        blobs = summary.blobs_indexed,
        written = summary.index_files_written.len(),
        deleted = summary.index_files_deleted,
        "index rebuilt"
    );
    Ok(summary)
}
