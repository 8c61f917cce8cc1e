//! Dump: write one file of a snapshot to any `Write`, in order, with the decoding spread over
//! several threads and the memory bounded.
//!
//! ```text
//!  plan (caller) ─ runs of blobs adjacent in a pack, in file order ─┐
//!  worker 1..N   ─ take the next run (if the window allows), one range read,
//!                  decode blob by blob (MAC, decrypt, zstd, hash) ─▶ ready[position]
//!  writer (caller) ─ position 0, 1, 2, … ◀─ ready ─▶ out
//! ```
//!
//! The writer owns the order: it waits for the next position and writes it, so output is
//! byte-identical to a serial dump whatever order workers finish in. Memory is bounded by the
//! window: a worker takes a run only while the plaintext reserved by runs not yet written stays
//! under [`WINDOW`] (or when nothing is reserved, so the run the writer waits for is always taken).
//! A repeated blob (a run of zeros) is decoded once and written again from the writer's copy.
//! The first failing blob ends the dump with its error (naming the blob and its pack) after
//! everything before it was written; workers stop at their next blob.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::blob_read::{self, Fetched, Located};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;
use crate::tree::{Node, NodeType};

/// Most bytes fetched from a pack in one request. Smaller than restore's: a run is the unit a
/// worker takes, and several must fit in the window.
const MAX_READ: u64 = 2 << 20;
/// Most plaintext bytes decoded ahead of the writer (taken runs not yet written).
pub const WINDOW: u64 = 32 << 20;
/// Most decoding threads by default.
const MAX_THREADS: usize = 8;

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

/// Write the content of a file node to `out`, decoding on one thread per core (at most 8);
/// returns the bytes written.
pub fn dump_node<W: Write>(repo: &Repository, node: &Node, out: W) -> Result<u64> {
    dump_node_with(repo, node, out, 0)
}

/// [`dump_node`] decoding on `threads` threads (0: one per core, at most 8).
pub fn dump_node_with<W: Write>(repo: &Repository, node: &Node, mut out: W, threads: usize) -> Result<u64> {
    let ids = node.content.as_deref().unwrap_or_default();
    let written = write_content(repo, ids, &mut out, blob_read::worker_count(threads, MAX_THREADS))?;
    out.flush().map_err(Error::Output)?;
    if written != node.size {
        tracing::warn!(name = %node.name, expected = node.size, written, "dumped size differs from the node's size");
    }
    Ok(written)
}

/// What the writer does at one position of a file's content.
enum Slot {
    /// Wait for the decoded blob, which reserved this many bytes of the window.
    Load(u64),
    /// The same blob as at the position before: write it again.
    Repeat,
    /// A blob the index does not know.
    Missing(Id),
}

/// The work of one dump, planned from the index before any thread starts.
struct Plan {
    slots: Vec<Slot>,
    /// The blobs to load, in file order, and the position of each in the content.
    blobs: Vec<Located>,
    positions: Vec<usize>,
    /// Runs of `blobs` fetched with one request each, with the window bytes each reserves.
    runs: Vec<(Range<usize>, u64)>,
}

impl Plan {
    fn new(repo: &Repository, ids: &[Id]) -> Plan {
        let mut slots = Vec::with_capacity(ids.len());
        let (mut blobs, mut positions) = (Vec::new(), Vec::new());
        {
            let index = repo.index();
            for (pos, id) in ids.iter().enumerate() {
                if pos > 0 && ids[pos - 1] == *id {
                    slots.push(Slot::Repeat);
                    continue;
                }
                match index.get(BlobType::Data, id) {
                    Some(loc) => {
                        slots.push(Slot::Load(u64::from(loc.data_length())));
                        blobs.push((*id, loc));
                        positions.push(pos);
                    }
                    None => slots.push(Slot::Missing(*id)),
                }
            }
        }
        let runs = blob_read::runs(&blobs, 0, MAX_READ)
            .into_iter()
            .map(|r| {
                let bytes = blobs[r.clone()]
                    .iter()
                    .map(|(_, loc)| u64::from(loc.data_length()))
                    .sum();
                (r, bytes)
            })
            .collect();
        Plan {
            slots,
            blobs,
            positions,
            runs,
        }
    }
}

/// What the writer and the workers share, under [`Pipeline::state`].
#[derive(Default)]
struct Shared {
    /// The next run to take.
    next_run: usize,
    /// Window bytes reserved by taken runs and not yet handed to the writer.
    reserved: u64,
    /// Decoded blobs (or their errors) by position, waiting for the writer.
    ready: HashMap<usize, Result<Vec<u8>>>,
    /// The writer is done (finished or failed): workers leave at their next step.
    stopped: bool,
    /// A worker panicked: what it had taken will never arrive.
    worker_panicked: bool,
}

/// One mutex and one condition variable: every change (a blob ready, window bytes released,
/// stop, a worker lost) is announced to all waiters; they are few (the writer and the workers).
struct Pipeline<'a> {
    repo: &'a Repository,
    plan: Plan,
    state: Mutex<Shared>,
    changed: Condvar,
}

/// Tells the writer when a worker unwinds, so it does not wait for blobs that never come.
struct PanicFlag<'p, 'a>(&'p Pipeline<'a>);

impl Drop for PanicFlag<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().worker_panicked = true;
            self.0.changed.notify_all();
        }
    }
}

impl Pipeline<'_> {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, Shared>) -> MutexGuard<'g, Shared> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// A worker: take runs in order while the window allows, fetch each with one request and
    /// decode it blob by blob. A run whose fetch fails hands its error to its first position,
    /// a blob that fails to decode ends its run (the writer stops there).
    fn work(&self) {
        let _flag = PanicFlag(self);
        loop {
            let run = {
                let mut s = self.lock();
                loop {
                    if s.stopped {
                        return;
                    }
                    let Some((run, bytes)) = self.plan.runs.get(s.next_run) else {
                        return;
                    };
                    // With nothing reserved, the run is the one the writer waits for.
                    if s.reserved == 0 || s.reserved + bytes <= WINDOW {
                        s.next_run += 1;
                        s.reserved += bytes;
                        break run.clone();
                    }
                    s = self.wait(s);
                }
            };
            let positions = &self.plan.positions[run.clone()];
            match Fetched::fetch(self.repo, &self.plan.blobs[run]) {
                Err(e) => {
                    self.put(positions[0], Err(e));
                }
                Ok(fetched) => {
                    for (i, pos) in positions.iter().enumerate() {
                        let blob = fetched.decode(self.repo, i);
                        let failed = blob.is_err();
                        if !self.put(*pos, blob) || failed {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Hand a decoded blob to the writer; false once the writer has stopped.
    fn put(&self, pos: usize, blob: Result<Vec<u8>>) -> bool {
        let mut s = self.lock();
        if s.stopped {
            return false;
        }
        s.ready.insert(pos, blob);
        self.changed.notify_all();
        true
    }

    /// The writer: every position in order, each blob as soon as it is decoded.
    fn write<W: Write>(&self, out: &mut W) -> Result<u64> {
        let mut written = 0u64;
        let mut last = Vec::new();
        for (pos, slot) in self.plan.slots.iter().enumerate() {
            match slot {
                Slot::Repeat => {}
                Slot::Missing(id) => {
                    return Err(Error::BlobNotFound {
                        kind: BlobType::Data.as_str(),
                        id: *id,
                    });
                }
                Slot::Load(bytes) => last = self.take(pos, *bytes)?,
            }
            out.write_all(&last).map_err(Error::Output)?;
            written += last.len() as u64;
        }
        Ok(written)
    }

    /// Wait for the blob at `pos` and release the window bytes it reserved.
    fn take(&self, pos: usize, bytes: u64) -> Result<Vec<u8>> {
        let mut s = self.lock();
        loop {
            if let Some(blob) = s.ready.remove(&pos) {
                s.reserved -= bytes;
                self.changed.notify_all();
                return blob;
            }
            if s.worker_panicked {
                return Err(Error::Internal("a dump worker thread panicked".into()));
            }
            s = self.wait(s);
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// Write the blobs `ids` to `out` in order, decoded by `threads` workers.
fn write_content<W: Write>(repo: &Repository, ids: &[Id], out: &mut W, threads: usize) -> Result<u64> {
    let plan = Plan::new(repo, ids);
    let workers = threads.min(plan.runs.len());
    let pipeline = Pipeline {
        repo,
        plan,
        state: Mutex::new(Shared::default()),
        changed: Condvar::new(),
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers);
        let mut result = Ok(0);
        for n in 0..workers {
            match std::thread::Builder::new()
                .name(format!("kstash-dump-{n}"))
                .spawn_scoped(s, || pipeline.work())
            {
                Ok(h) => handles.push(h),
                Err(e) => {
                    result = Err(Error::Internal(format!("cannot start a thread: {e}")));
                    break;
                }
            }
        }
        if result.is_ok() {
            result = pipeline.write(out);
        }
        // Finished or failed, the workers must leave before the scope can end.
        pipeline.stop();
        let panicked = handles.into_iter().any(|h| h.join().is_err());
        match result {
            Ok(_) if panicked => Err(Error::Internal("a dump worker thread panicked".into())),
            r => r,
        }
    })
}

/// Options of [`dump_file_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOptions {
    /// Hold a shared lock while reading (`None`: no lock, like restic's `--no-lock`).
    pub lock: Option<LockOptions>,
    /// Threads that fetch and decode blobs (0: one per core, at most 8).
    pub threads: usize,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            lock: Some(LockOptions::default()),
            threads: 0,
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
    dump_node_with(repo, &node, out, options.threads)
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

    /// A repository holding one snapshot of a 24 MiB stream (text, then noise), and the stream:
    /// at least three blobs whatever the random chunker polynomial (a chunk is at most 8 MiB),
    /// and blobs in several packs (a noise chunk of 512 KiB or more is a pack of its own).
    fn multi_blob_stream() -> (Arc<MemoryBackend>, Repository, Node, Vec<u8>) {
        let (be, repo) = crate::repository::memory_repo(2);
        let mut input = data(4 << 20, 3);
        input.extend(kstash_testsupport::data::noise(20 << 20, 9));
        let options = StreamBackupOptions {
            pack_size: 512 << 10,
            ..StreamBackupOptions::named("big.sql")
        };
        backup_stream(&repo, &input[..], &options).unwrap();
        let sn = repo.find_snapshot("latest").unwrap();
        let node = find_node(&repo, &sn, "/big.sql").unwrap();
        assert!(node.content.as_ref().unwrap().len() >= 3, "{:?}", node.content);
        (be, repo, node, input)
    }

    fn dump_with(repo: &Repository, node: &Node, threads: usize) -> (Result<u64>, Vec<u8>) {
        let mut out = Vec::new();
        let res = dump_node_with(repo, node, &mut out, threads);
        (res, out)
    }

    #[test]
    fn a_multi_blob_stream_dumps_byte_identical_with_one_or_several_workers() {
        let (_be, repo, node, input) = multi_blob_stream();
        for threads in [1, 2, 3, 8, 0] {
            let (res, out) = dump_with(&repo, &node, threads);
            assert_eq!(res.unwrap(), input.len() as u64, "{threads} threads");
            assert!(out == input, "{threads} threads: output differs from the input");
        }
    }

    #[test]
    fn repeated_and_reordered_blobs_are_written_in_content_order() {
        let (_be, repo, mut node, _) = multi_blob_stream();
        let ids = node.content.clone().unwrap();
        let (a, b, c) = (ids[0], ids[1], ids[ids.len() - 1]);
        // A run of one blob (as zeros make), blobs out of pack order, a blob used twice apart.
        let content = vec![c, a, a, a, b, c, b, b, a];
        let expected: Vec<u8> = content
            .iter()
            .flat_map(|id| repo.load_blob(BlobType::Data, id).unwrap())
            .collect();
        node.content = Some(content);
        node.size = expected.len() as u64;
        for threads in [1, 4] {
            let (res, out) = dump_with(&repo, &node, threads);
            assert_eq!(res.unwrap(), expected.len() as u64);
            assert!(out == expected, "{threads} threads: output differs");
        }
        node.content = None;
        let (res, out) = dump_with(&repo, &node, 0);
        assert_eq!(res.unwrap(), 0, "an empty file");
        assert!(out.is_empty());
    }

    #[test]
    fn a_corrupted_middle_blob_fails_the_dump_after_writing_what_precedes_it() {
        let (be, repo, node, input) = multi_blob_stream();
        let ids = node.content.clone().unwrap();
        let bad = ids.len() / 2;
        let loc = repo.index().get(BlobType::Data, &ids[bad]).unwrap();
        let before: u64 = ids[..bad]
            .iter()
            .map(|id| u64::from(repo.index().get(BlobType::Data, id).unwrap().data_length()))
            .sum();
        be.tamper(FileType::Pack, &loc.pack.to_hex(), |d| {
            d[loc.offset as usize + 40] ^= 1
        });
        for threads in [1, 2, 4] {
            let (res, out) = dump_with(&repo, &node, threads);
            let err = res.unwrap_err();
            assert!(matches!(err, Error::Mac { .. }), "{err}");
            assert!(
                err.to_string().contains(&ids[bad].to_hex()),
                "names the blob: {err}"
            );
            assert!(
                err.to_string().contains(&loc.pack.to_hex()),
                "names the pack: {err}"
            );
            assert_eq!(
                out.len() as u64,
                before,
                "{threads} threads: everything before, nothing after"
            );
            assert!(out[..] == input[..out.len()]);
        }
    }

    #[test]
    fn a_missing_pack_or_blob_fails_the_dump_naming_it() {
        let (be, repo, mut node, input) = multi_blob_stream();
        let ids = node.content.clone().unwrap();
        let pack_of = |id: &Id| repo.index().get(BlobType::Data, id).unwrap().pack;
        let first = pack_of(&ids[0]);
        // Blobs are placed in packs at random, but a noise chunk (above 512 KiB) has a pack of
        // its own, so some later blob is in another pack than the first.
        let last = ids[1..]
            .iter()
            .map(pack_of)
            .find(|p| *p != first)
            .expect("a blob outside the first blob's pack");
        be.remove(FileType::Pack, &last.to_hex()).unwrap();
        for threads in [1, 4] {
            let (res, out) = dump_with(&repo, &node, threads);
            let err = res.unwrap_err();
            assert!(err.to_string().contains(&last.to_hex()), "{err}");
            assert!(!out.is_empty() && out.len() < input.len(), "{}", out.len());
            assert!(out[..] == input[..out.len()]);
        }
        // A blob the index does not know: its id is named.
        let unknown = Id::hash(b"not stored");
        node.content = Some(vec![ids[0], unknown, ids[0]]);
        let (res, out) = dump_with(&repo, &node, 2);
        let err = res.unwrap_err();
        assert!(
            matches!(err, Error::BlobNotFound { id, .. } if id == unknown),
            "{err}"
        );
        assert_eq!(
            out.len() as u64,
            u64::from(repo.index().get(BlobType::Data, &ids[0]).unwrap().data_length())
        );
    }
}
