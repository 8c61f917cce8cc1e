//! `prune`: find the blobs the snapshots still use, delete packs nobody needs, repack partly
//! used packs until the unused space is within a tolerance, and rewrite the index, in an order
//! that is safe to interrupt at any point:
//!
//! 1. new packs (used blobs of repacked packs, verified before copying) and their index files;
//! 2. an index file for every kept pack, `supersedes` the old ones;
//! 3. delete the old index files;
//! 4. delete the packs no index lists any more.
//!
//! Packs holding both tree and data blobs (written by restic before 0.8) are always repacked.
//!
//! A crash before 3 leaves old and new index files side by side, both pointing at packs that
//! still exist; a crash before 4 leaves unreferenced packs, which the next prune deletes. Prune
//! refuses to delete anything when a snapshot's tree or blob cannot be found: that is damage for
//! `check`, and deleting on a wrong picture of what is used would lose data.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{BlobType, IndexBlob, IndexFile, MAX_BLOBS_PER_INDEX_FILE};
use crate::lock::{self, LockOptions};
use crate::pack::{self, EncodedBlob};
use crate::repository::Repository;
use crate::saver::{SaverOptions, with_saver};
use crate::tree::NodeType;

/// How much unused space may stay in partly used packs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// A percentage of the used bytes (restic's `--max-unused 5%`, the default).
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Never repack (only delete wholly unused packs).
    Unlimited,
}

impl MaxUnused {
    /// Parse restic's forms: `5%`, `100M`, `2G`, `unlimited`.
    pub fn parse(text: &str) -> Result<MaxUnused> {
        let t = text.trim();
        let bad = || {
            Error::Invalid(format!(
                "--max-unused {text:?}: use a percentage (5%), a size (100M, 2G) or `unlimited`"
            ))
        };
        if t == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..100.0).contains(&v) {
                return Err(bad());
            }
            return Ok(MaxUnused::Percent(v));
        }
        let (num, mult) = match t.char_indices().last() {
            Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
            Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
            Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
            Some((i, 't' | 'T')) => (&t[..i], 1 << 40),
            _ => (t, 1),
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        Ok(MaxUnused::Bytes(n.saturating_mul(mult)))
    }

    fn limit(self, used_bytes: u64) -> u64 {
        match self {
            MaxUnused::Percent(p) => (used_bytes as f64 * p / (100.0 - p)) as u64,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Unlimited => u64::MAX,
        }
    }
}

/// Options of a prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused space tolerated in kept packs.
    pub max_unused: MaxUnused,
    /// Only compute the plan.
    pub dry_run: bool,
    /// Pack size of repacked packs.
    pub pack_size: usize,
    /// Concurrent uploads.
    pub uploaders: usize,
    /// The exclusive lock held throughout (`None`: the caller holds it).
    pub lock: Option<LockOptions>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            dry_run: false,
            pack_size: pack::DEFAULT_PACK_SIZE,
            uploaders: 2,
            lock: Some(LockOptions::default()),
        }
    }
}

/// What prune found and (unless a dry run) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Snapshots whose trees were walked.
    pub snapshots: usize,
    /// Distinct blobs the snapshots use.
    pub blobs_used: u64,
    /// Stored bytes of used blobs (one copy each).
    pub bytes_used: u64,
    /// Stored bytes of blobs nobody uses (and of duplicate copies).
    pub bytes_unused: u64,
    /// Packs kept as they are.
    pub packs_kept: usize,
    /// Partly used packs whose used blobs are copied into new packs.
    pub packs_repacked: usize,
    /// Packs with nothing used.
    pub packs_unused: usize,
    /// Packs in storage that no index lists (left by an interrupted backup or prune).
    pub packs_unindexed: usize,
    /// Packs written by the repack.
    pub packs_written: u64,
    /// Packs deleted (unused, repacked and unindexed).
    pub packs_deleted: usize,
    /// Bytes of the deleted packs.
    pub bytes_deleted: u64,
    /// Unused bytes left in kept packs afterwards.
    pub bytes_unused_after: u64,
    /// Index files replaced.
    pub index_files_replaced: usize,
    /// Whether anything was changed.
    pub dry_run: bool,
}

/// Every blob reachable from the snapshots. Fails (naming the snapshot and tree) if a tree or
/// blob is missing, because nothing may be deleted on an incomplete picture.
pub fn used_blobs(repo: &Repository) -> Result<(HashSet<(Id, BlobType)>, usize)> {
    let snapshots = repo.list_snapshots()?;
    let mut used: HashSet<(Id, BlobType)> = HashSet::new();
    for sn in &snapshots {
        let mut stack = vec![(sn.snapshot.tree, "/".to_string())];
        while let Some((tree_id, path)) = stack.pop() {
            if !used.insert((tree_id, BlobType::Tree)) {
                continue;
            }
            let tree = repo.load_tree(&tree_id).map_err(|e| Error::Damaged {
                what: format!("snapshot {} tree {} at {path}", sn.id.short(), tree_id.short()),
                source: Box::new(e),
            })?;
            for node in &tree.nodes {
                let child = if path == "/" {
                    format!("/{}", node.name)
                } else {
                    format!("{path}/{}", node.name)
                };
                if node.node_type == NodeType::Dir {
                    if let Some(sub) = node.subtree {
                        stack.push((sub, child));
                    }
                } else if let Some(content) = &node.content {
                    let index = repo.index();
                    for id in content {
                        if !index.contains(BlobType::Data, id) {
                            return Err(Error::Damaged {
                                what: format!("snapshot {} file {child}", sn.id.short()),
                                source: Box::new(Error::BlobNotFound {
                                    kind: "data",
                                    id: *id,
                                }),
                            });
                        }
                        used.insert((*id, BlobType::Data));
                    }
                }
            }
        }
    }
    Ok((used, snapshots.len()))
}

/// Temporary pack files left by writers that crashed: nobody else writes while we hold the
/// exclusive lock, so whatever is in the spool directory is garbage.
fn remove_spooled_leftovers(repo: &Repository) {
    let Some(dir) = repo.backend().spool_dir() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("pack-") {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %e.path().display(), "removed a leftover temporary pack"),
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot remove a leftover temporary pack")
                }
            }
        }
    }
}

/// One pack as the index files describe it.
struct PackInfo {
    blobs: Vec<IndexBlob>,
    size: Option<u64>,
}

/// What happens to a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    Delete,
}

/// Prune the repository (see the module documentation for the order of steps).
pub fn prune(repo: &Repository, options: &PruneOptions) -> Result<PruneSummary> {
    let held = match &options.lock {
        Some(l) => Some(lock::acquire(repo, true, l)?),
        None => None,
    };
    repo.load_index()?;
    remove_spooled_leftovers(repo);
    if let Some((id, why)) = repo.damaged_index_files().into_iter().next() {
        return Err(Error::Damaged {
            what: format!("index file {id}"),
            source: Box::new(Error::Invalid(why)),
        });
    }
    let (used, snapshots) = used_blobs(repo)?;

    // The index files themselves: every copy of every blob (the in-memory index keeps one).
    let mut index_ids = Vec::new();
    let mut packs: BTreeMap<Id, PackInfo> = BTreeMap::new();
    for (name, _) in repo.backend().list(FileType::Index)? {
        let id: Id = name
            .parse()
            .map_err(|_| Error::Invalid(format!("index file {name}: not a valid id")))?;
        let file: IndexFile = repo.load_json(FileType::Index, &id).map_err(|e| Error::Damaged {
            what: format!("index file {id}"),
            source: Box::new(e),
        })?;
        for p in file.packs {
            packs
                .entry(p.id)
                .or_insert_with(|| PackInfo {
                    blobs: Vec::new(),
                    size: None,
                })
                .blobs
                .extend(p.blobs);
        }
        index_ids.push(id);
    }
    let mut unindexed = Vec::new();
    for (name, size) in repo.backend().list(FileType::Pack)? {
        let Ok(id) = name.parse::<Id>() else {
            tracing::warn!(file = %name, "ignoring a file in data/ that is not a pack");
            continue;
        };
        match packs.get_mut(&id) {
            Some(p) => p.size = Some(size),
            None => unindexed.push((id, size)),
        }
    }
    // A pack the index lists twice (same pack in two index files) counts once.
    for p in packs.values_mut() {
        let mut seen = HashSet::new();
        p.blobs.retain(|b| seen.insert((b.id, b.blob_type, b.offset)));
    }

    // Which copy of each used blob is kept: the first, in pack-id order, of a pack that exists.
    let mut taken: HashSet<(Id, BlobType)> = HashSet::new();
    let mut keeps: HashMap<Id, Vec<bool>> = HashMap::new();
    for (id, p) in &packs {
        let flags = p
            .blobs
            .iter()
            .map(|b| {
                p.size.is_some() && used.contains(&(b.id, b.blob_type)) && taken.insert((b.id, b.blob_type))
            })
            .collect();
        keeps.insert(*id, flags);
    }
    if let Some((id, t)) = used.iter().find(|k| !taken.contains(k)) {
        // The index lists it, but only in packs that are gone (else `used_blobs` had failed).
        let lost_in: Vec<String> = packs
            .iter()
            .filter(|(_, p)| p.blobs.iter().any(|b| b.id == *id && b.blob_type == *t))
            .map(|(pack, _)| pack.to_string())
            .collect();
        return Err(Error::Damaged {
            what: format!("{} blob {id}", t.as_str()),
            source: Box::new(Error::PackMissing {
                packs: lost_in.join(", "),
            }),
        });
    }

    let mut summary = PruneSummary {
        snapshots,
        blobs_used: used.len() as u64,
        dry_run: options.dry_run,
        ..Default::default()
    };
    let mut fates: BTreeMap<Id, Fate> = BTreeMap::new();
    let mut candidates = Vec::new();
    for (id, p) in &packs {
        let flags = &keeps[id];
        let used_bytes: u64 = p
            .blobs
            .iter()
            .zip(flags)
            .filter(|(_, k)| **k)
            .map(|(b, _)| b.length as u64)
            .sum();
        let unused_bytes: u64 = p
            .blobs
            .iter()
            .zip(flags)
            .filter(|(_, k)| !**k)
            .map(|(b, _)| b.length as u64)
            .sum();
        summary.bytes_used += used_bytes;
        summary.bytes_unused += unused_bytes;
        let has = |t: BlobType| p.blobs.iter().any(|b| b.blob_type == t);
        let fate = if p.size.is_none() || used_bytes == 0 {
            Fate::Delete
        } else if has(BlobType::Tree) && has(BlobType::Data) {
            // Tree and data blobs belong in separate packs (restic 0.8+, and a must in format
            // v2): a mixed pack is always repacked, as restic's prune does.
            Fate::Repack
        } else if unused_bytes == 0 {
            Fate::Keep
        } else {
            candidates.push((*id, used_bytes, unused_bytes));
            Fate::Keep
        };
        fates.insert(*id, fate);
    }
    // Repack the packs with the most unused space first until what is left fits the limit.
    let limit = options.max_unused.limit(summary.bytes_used);
    let mut unused_left: u64 = candidates.iter().map(|c| c.2).sum();
    candidates.sort_by(|a, b| {
        (b.2 as f64 / (a.1 + a.2) as f64)
            .total_cmp(&(a.2 as f64 / (b.1 + b.2) as f64))
            .then(a.0.cmp(&b.0))
    });
    for (id, _, unused) in &candidates {
        if unused_left <= limit {
            break;
        }
        fates.insert(*id, Fate::Repack);
        unused_left -= unused;
    }
    summary.bytes_unused_after = unused_left;
    summary.packs_kept = fates.values().filter(|f| **f == Fate::Keep).count();
    summary.packs_repacked = fates.values().filter(|f| **f == Fate::Repack).count();
    summary.packs_unused = fates.values().filter(|f| **f == Fate::Delete).count();
    summary.packs_unindexed = unindexed.len();
    let nothing_to_do = summary.packs_repacked == 0 && summary.packs_unused == 0 && unindexed.is_empty();
    tracing::info!(
        used = summary.blobs_used,
        keep = summary.packs_kept,
        repack = summary.packs_repacked,
        delete = summary.packs_unused,
        unindexed = summary.packs_unindexed,
        "prune plan"
    );
    if options.dry_run || nothing_to_do {
        return Ok(summary);
    }

    // 1. Repack: copy the kept blobs of repacked packs, verified, into new packs.
    let saver_options = SaverOptions {
        pack_size: options.pack_size,
        uploaders: options.uploaders,
    };
    let ((), stats) = with_saver(repo, &saver_options, |saver| {
        for (id, fate) in &fates {
            if *fate != Fate::Repack {
                continue;
            }
            let data = repo.backend().read(FileType::Pack, &id.to_hex())?;
            for (b, keep) in packs[id].blobs.iter().zip(&keeps[id]) {
                if !keep {
                    continue;
                }
                let range = b.offset as usize..(b.offset as usize + b.length as usize);
                let raw = data.get(range).ok_or_else(|| Error::InvalidPack {
                    pack: *id,
                    reason: format!("blob {} lies beyond the end of the file", b.id),
                })?;
                let uncompressed = (b.uncompressed_length != 0).then_some(b.uncompressed_length);
                // Never copy damage: the blob must decrypt and hash to its id.
                let plain = pack::decode_blob(repo.key(), id, b.blob_type, &b.id, raw, uncompressed)?;
                let enc = EncodedBlob {
                    id: b.id,
                    blob_type: b.blob_type,
                    data: raw.to_vec(),
                    uncompressed_length: uncompressed,
                    plain_length: plain.len(),
                };
                saver.add_encoded(enc, plain.len() as u64)?;
            }
        }
        Ok(())
    })?;
    summary.packs_written = stats.packs;

    // 2. One index for every kept pack, superseding all old index files.
    if let Some(h) = &held {
        h.check()?;
    }
    let mut file = IndexFile {
        supersedes: index_ids.clone(),
        ..Default::default()
    };
    let mut count = 0;
    for (id, fate) in &fates {
        if *fate != Fate::Keep {
            continue;
        }
        let blobs = &packs[id].blobs;
        if count + blobs.len() > MAX_BLOBS_PER_INDEX_FILE && !file.packs.is_empty() {
            repo.save_json(FileType::Index, &file)?;
            file = IndexFile {
                supersedes: index_ids.clone(),
                ..Default::default()
            };
            count = 0;
        }
        count += blobs.len();
        file.packs.push(crate::index::IndexPack {
            id: *id,
            blobs: blobs.clone(),
        });
    }
    if !file.packs.is_empty() {
        repo.save_json(FileType::Index, &file)?;
    }

    // 3. The old index files go (the repack's and the kept packs' new files cover what remains).
    for id in &index_ids {
        repo.backend().remove(FileType::Index, &id.to_hex())?;
    }
    summary.index_files_replaced = index_ids.len();

    // 4. Packs no index lists any more.
    let doomed = fates
        .iter()
        .filter(|(_, f)| **f != Fate::Keep)
        .map(|(id, _)| (*id, packs[id].size))
        .chain(unindexed.iter().map(|(id, s)| (*id, Some(*s))));
    for (id, size) in doomed {
        let Some(size) = size else { continue };
        match repo.backend().remove(FileType::Pack, &id.to_hex()) {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        summary.packs_deleted += 1;
        summary.bytes_deleted += size;
    }
    repo.load_index()?;
    tracing::info!(
        deleted = summary.packs_deleted,
        bytes = summary.bytes_deleted,
        written = summary.packs_written,
        "prune done"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused_forms() {
        assert_eq!(MaxUnused::parse("5%").unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(MaxUnused::parse("0%").unwrap(), MaxUnused::Percent(0.0));
        assert_eq!(MaxUnused::parse("100M").unwrap(), MaxUnused::Bytes(100 << 20));
        assert_eq!(MaxUnused::parse("2g").unwrap(), MaxUnused::Bytes(2 << 30));
        assert_eq!(MaxUnused::parse("4096").unwrap(), MaxUnused::Bytes(4096));
        assert_eq!(MaxUnused::parse("unlimited").unwrap(), MaxUnused::Unlimited);
        for bad in ["100%", "x%", "5 potatoes", "-1%"] {
            let e = MaxUnused::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--max-unused"), "{e}");
        }
        // 5% of the result: unused / (used + unused) <= 5%.
        assert_eq!(MaxUnused::Percent(5.0).limit(95_000), 5_000);
        assert_eq!(MaxUnused::Percent(0.0).limit(95_000), 0);
    }
}
