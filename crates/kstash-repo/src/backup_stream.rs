//! Back up one byte stream (a database dump, say) as a single file in a new snapshot, as
//! `restic backup --stdin --stdin-filename NAME` does, but through a parallel pipeline:
//!
//! ```text
//! reader thread ─▶ chunker (calling thread) ─▶ N workers: SHA-256, dedup, zstd, encrypt
//!     ─▶ packer thread ─▶ M uploader threads ─▶ index files ─▶ tree ─▶ snapshot
//! ```
//!
//! Every queue is bounded, so memory is bounded by queue depths and the pack size, not by the
//! input. Nothing is referenced by a snapshot until the stream has been read to its end without
//! error: if the reader fails, the packs already uploaded are recorded in an index file (so a
//! retry deduplicates against them and prune can reclaim them) and no snapshot is written.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backend::FileType;
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::gojson::GoTime;
use crate::id::Id;
use crate::index::{BlobType, IndexFile, MAX_BLOBS_PER_INDEX_FILE};
use crate::lock::{self, LockOptions};
use crate::pack::{self, DEFAULT_PACK_SIZE, EncodedBlob, FinishedPack, PackWriter};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotSummary};
use crate::tree::{Node, Tree};

/// Cuts a stream into chunks. `next_boundary` gets the next bytes of the stream and returns
/// `Some(n)` if the current chunk ends after `data[..n]` (state resets for the next chunk), or
/// `None` if the chunk continues past `data`. The restic-compatible [`Chunker`] implements it.
pub trait Splitter: Send {
    /// See the trait documentation.
    fn next_boundary(&mut self, data: &[u8]) -> Option<usize>;
}

impl Splitter for Chunker {
    fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        Chunker::next_boundary(self, data)
    }
}

/// Fixed-size chunks (for tests and for repositories where cross-tool dedup does not matter).
#[derive(Debug, Clone)]
pub struct FixedSplitter {
    size: usize,
    filled: usize,
}

impl FixedSplitter {
    /// Chunks of `size` bytes (at least 1).
    pub fn new(size: usize) -> FixedSplitter {
        FixedSplitter {
            size: size.max(1),
            filled: 0,
        }
    }
}

impl Splitter for FixedSplitter {
    fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        let want = self.size - self.filled;
        if data.len() >= want {
            self.filled = 0;
            Some(want)
        } else {
            self.filled += data.len();
            None
        }
    }
}

/// Options of a stream backup.
#[derive(Debug, Clone)]
pub struct StreamBackupOptions {
    /// File name inside the snapshot (no `/`); the snapshot path is `/<filename>`.
    pub filename: String,
    /// Snapshot tags.
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    pub hostname: Option<String>,
    /// Snapshot time (default: when the backup starts).
    pub time: Option<GoTime>,
    /// Accept an empty stream (default: an empty stream is an error, as in restic).
    pub allow_empty: bool,
    /// Pack size target in bytes.
    pub pack_size: usize,
    /// Hash/compress/encrypt threads (0: one per core).
    pub workers: usize,
    /// Concurrent pack uploads.
    pub uploaders: usize,
    /// Size of each read from the stream.
    pub read_size: usize,
    /// The shared lock held for the whole backup (`None`: the caller takes care of locking).
    pub lock: Option<LockOptions>,
}

impl Default for StreamBackupOptions {
    fn default() -> Self {
        StreamBackupOptions {
            filename: "stdin".to_string(),
            tags: Vec::new(),
            hostname: None,
            time: None,
            allow_empty: false,
            pack_size: DEFAULT_PACK_SIZE,
            workers: 0,
            uploaders: 2,
            read_size: 1024 * 1024,
            lock: Some(LockOptions::default()),
        }
    }
}

impl StreamBackupOptions {
    /// Defaults with this file name.
    pub fn named(filename: impl Into<String>) -> Self {
        StreamBackupOptions {
            filename: filename.into(),
            ..Default::default()
        }
    }
}

/// What a stream backup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBackupSummary {
    /// The new snapshot.
    pub snapshot_id: Id,
    /// Its root tree.
    pub tree_id: Id,
    /// Bytes read from the stream.
    pub bytes_read: u64,
    /// Plaintext bytes of new data blobs.
    pub bytes_added: u64,
    /// Bytes of new blobs as stored (compressed and encrypted), trees included.
    pub bytes_stored: u64,
    /// Data blobs stored.
    pub blobs_new: u64,
    /// Data blobs already in the repository (or repeated within the stream).
    pub blobs_known: u64,
    /// Pack files written.
    pub packs_written: u64,
    /// Wall time.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Stats {
    bytes_read: AtomicU64,
    bytes_added: AtomicU64,
    bytes_stored: AtomicU64,
    blobs_new: AtomicU64,
    blobs_known: AtomicU64,
    packs: AtomicU64,
}

/// Shared state of one pipeline run.
struct Shared<'r> {
    repo: &'r Repository,
    abort: AtomicBool,
    error: Mutex<Option<Error>>,
    claimed: Mutex<std::collections::HashSet<Id>>,
    results: Mutex<Vec<(u64, Id)>>,
    pending_index: Mutex<IndexFile>,
    stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared<'_> {
    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            tracing::debug!(error = %e, "stream backup failing");
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Record an uploaded pack for the next index file; write the file when it is full.
    fn index_pack(&self, p: &FinishedPack) -> Result<()> {
        let full = {
            let mut pending = lock(&self.pending_index);
            pending.add_pack(p.id, &p.blobs);
            if pending.blob_count() >= MAX_BLOBS_PER_INDEX_FILE {
                Some(std::mem::take(&mut *pending))
            } else {
                None
            }
        };
        if let Some(file) = full {
            let id = self.repo.save_json(FileType::Index, &file)?;
            tracing::debug!(index = %id.short(), packs = file.packs.len(), "wrote index file");
        }
        Ok(())
    }

    /// Write whatever is pending as a final index file.
    fn flush_index(&self) -> Result<()> {
        let file = std::mem::take(&mut *lock(&self.pending_index));
        if !file.packs.is_empty() {
            let id = self.repo.save_json(FileType::Index, &file)?;
            tracing::debug!(index = %id.short(), packs = file.packs.len(), "wrote index file");
        }
        Ok(())
    }
}

/// Back up `reader` with the repository's restic-compatible chunker.
pub fn backup_stream<R: Read + Send>(
    repo: &Repository,
    reader: R,
    options: &StreamBackupOptions,
) -> Result<StreamBackupSummary> {
    let pol = repo.config().polynomial().map_err(|e| Error::Format {
        what: "config".into(),
        reason: e.to_string(),
    })?;
    let chunker = Chunker::new(pol).map_err(|e| Error::Format {
        what: "config".into(),
        reason: e.to_string(),
    })?;
    backup_stream_with(repo, reader, chunker, options)
}

/// Back up `reader`, cutting it with `splitter`.
pub fn backup_stream_with<R: Read + Send, S: Splitter>(
    repo: &Repository,
    reader: R,
    splitter: S,
    options: &StreamBackupOptions,
) -> Result<StreamBackupSummary> {
    let started = Instant::now();
    if options.filename.is_empty()
        || options.filename.contains('/')
        || options.filename == "."
        || options.filename == ".."
    {
        return Err(Error::Invalid(format!(
            "stream file name {:?} must be a plain file name",
            options.filename
        )));
    }
    let repo_lock = match &options.lock {
        Some(lock_options) => {
            let held = lock::acquire(repo, false, lock_options)?;
            // Packs a prune removed before we held the lock must not be deduplicated against.
            repo.refresh_index()?;
            Some(held)
        }
        None => None,
    };
    let time = options.time.unwrap_or_else(GoTime::now);
    let workers = if options.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        options.workers
    };
    let uploaders = options.uploaders.max(1);
    let pack_size = options.pack_size.max(64 * 1024);
    let read_size = options.read_size.max(4096);

    let shared = Shared {
        repo,
        abort: AtomicBool::new(false),
        error: Mutex::new(None),
        claimed: Mutex::new(std::collections::HashSet::new()),
        results: Mutex::new(Vec::new()),
        pending_index: Mutex::new(IndexFile::default()),
        stats: Stats::default(),
    };

    std::thread::scope(|s| {
        let (read_tx, read_rx) = sync_channel::<Result<Vec<u8>>>(4);
        let (work_tx, work_rx) = sync_channel::<(u64, Vec<u8>)>(workers * 2);
        let (blob_tx, blob_rx) = sync_channel::<EncodedBlob>(workers * 2);
        // Rendezvous: a finished pack waits for a free uploader, bounding packs in memory to
        // one being filled plus one per uploader.
        let (pack_tx, pack_rx) = sync_channel::<FinishedPack>(0);
        // Shared receivers: dropped when the last thread using them exits, so a sender never
        // blocks on a queue nobody reads.
        let work_rx = Arc::new(Mutex::new(work_rx));
        let pack_rx = Arc::new(Mutex::new(pack_rx));
        let shared = &shared;

        let mut handles = Vec::new();
        handles.push(spawn(s, "kstash-read".into(), move || {
            read_stage(shared, reader, read_size, read_tx)
        }));
        for i in 0..workers {
            let blob_tx = blob_tx.clone();
            let work_rx = Arc::clone(&work_rx);
            handles.push(spawn(s, format!("kstash-work-{i}"), move || {
                work_stage(shared, &work_rx, blob_tx)
            }));
        }
        drop(blob_tx);
        drop(work_rx);
        handles.push(spawn(s, "kstash-pack".into(), move || {
            pack_stage(shared, blob_rx, pack_tx, pack_size)
        }));
        for i in 0..uploaders {
            let pack_rx = Arc::clone(&pack_rx);
            handles.push(spawn(s, format!("kstash-upload-{i}"), move || {
                upload_stage(shared, &pack_rx)
            }));
        }
        drop(pack_rx);
        chunk_stage(shared, read_rx, work_tx, splitter);
        for h in handles {
            match h {
                Ok(h) => {
                    if h.join().is_err() {
                        shared.fail(Error::Internal("a backup pipeline thread panicked".into()));
                    }
                }
                Err(e) => shared.fail(Error::Internal(format!("cannot start a thread: {e}"))),
            }
        }
    });

    if let Some(err) = lock(&shared.error).take() {
        // Keep what was uploaded findable (dedup on retry; prune reclaims it); never a snapshot.
        if let Err(e) = shared.flush_index() {
            tracing::warn!(error = %e, "could not index the packs of the failed backup");
            // The in-memory index must not claim blobs that no index file lists, or a later
            // backup in this process would reference them.
            if let Err(e) = repo.load_index() {
                tracing::warn!(error = %e, "could not reload the index");
            }
        }
        return Err(err);
    }

    let st = &shared.stats;
    let bytes_read = st.bytes_read.load(Ordering::SeqCst);
    if bytes_read == 0 && !options.allow_empty {
        return Err(Error::EmptyInput);
    }
    let mut results = std::mem::take(&mut *lock(&shared.results));
    results.sort_unstable_by_key(|(seq, _)| *seq);

    let (uid, gid) = crate::host::uid_gid();
    let mut node = Node::file(options.filename.clone(), 0o644, time, uid, gid);
    node.size = bytes_read;
    node.content = Some(results.into_iter().map(|(_, id)| id).collect());
    let mut tree = Tree::default();
    tree.insert(node);
    let tree_blob = tree.to_blob().map_err(|e| Error::json("tree", e))?;
    let tree_id = Id::hash(&tree_blob);
    let mut tree_blobs = 0;
    if !repo.index().contains(BlobType::Tree, &tree_id) {
        let mut comp = compressor(repo)?;
        let enc = pack::encode_blob(repo.key(), BlobType::Tree, tree_id, &tree_blob, comp.as_mut())?;
        let mut w = PackWriter::new(enc.data.len() + 1024);
        w.add(&enc)?;
        let p = w.finish(repo.key())?;
        repo.upload_pack(&p)?;
        shared.index_pack(&p)?;
        st.bytes_stored.fetch_add(enc.data.len() as u64, Ordering::SeqCst);
        st.packs.fetch_add(1, Ordering::SeqCst);
        tree_blobs = 1;
    }
    shared.flush_index()?;

    let mut sn = Snapshot::new(tree_id, vec![format!("/{}", options.filename)]);
    sn.time = time;
    if let Some(h) = &options.hostname {
        sn.hostname = h.clone();
    }
    sn.tags = options.tags.clone();
    let summary = StreamBackupSummary {
        snapshot_id: Id::default(),
        tree_id,
        bytes_read,
        bytes_added: st.bytes_added.load(Ordering::SeqCst),
        bytes_stored: st.bytes_stored.load(Ordering::SeqCst),
        blobs_new: st.blobs_new.load(Ordering::SeqCst),
        blobs_known: st.blobs_known.load(Ordering::SeqCst),
        packs_written: st.packs.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
    };
    sn.summary = Some(SnapshotSummary {
        backup_start: time,
        backup_end: GoTime::now(),
        files_new: 1,
        data_blobs: summary.blobs_new as i64,
        tree_blobs,
        data_added: summary.bytes_added,
        data_added_packed: summary.bytes_stored,
        total_files_processed: 1,
        total_bytes_processed: bytes_read,
        ..Default::default()
    });
    if let Some(held) = &repo_lock {
        // A prune may have run if others took our lock for stale: do not reference its victims.
        held.check()?;
    }
    let snapshot_id = repo.save_snapshot(&sn)?;
    let summary = StreamBackupSummary {
        snapshot_id,
        elapsed: started.elapsed(),
        ..summary
    };
    tracing::info!(
        snapshot = %snapshot_id.short(),
        bytes_read,
        bytes_added = summary.bytes_added,
        blobs_new = summary.blobs_new,
        blobs_known = summary.blobs_known,
        "stream backup done"
    );
    Ok(summary)
}

fn spawn<'scope, F: FnOnce() + Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: String,
    f: F,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, ()>> {
    std::thread::Builder::new().name(name).spawn_scoped(s, f)
}

fn compressor(repo: &Repository) -> Result<Option<zstd::bulk::Compressor<'static>>> {
    if !repo.compression() {
        return Ok(None);
    }
    zstd::bulk::Compressor::new(repo.compression_level())
        .map(Some)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))
}

fn read_stage<R: Read>(
    shared: &Shared<'_>,
    mut reader: R,
    read_size: usize,
    tx: SyncSender<Result<Vec<u8>>>,
) {
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; read_size];
        let mut n = 0;
        let mut eof = false;
        while n < buf.len() {
            match reader.read(&mut buf[n..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(Error::Input {
                        bytes: total + n as u64,
                        source: e,
                    }));
                    return;
                }
            }
            if shared.aborted() {
                return;
            }
        }
        total += n as u64;
        shared.stats.bytes_read.store(total, Ordering::SeqCst);
        if n > 0 {
            buf.truncate(n);
            if tx.send(Ok(buf)).is_err() {
                return;
            }
        }
        if eof {
            return;
        }
    }
}

fn chunk_stage<S: Splitter>(
    shared: &Shared<'_>,
    rx: Receiver<Result<Vec<u8>>>,
    tx: SyncSender<(u64, Vec<u8>)>,
    mut splitter: S,
) {
    let mut seq = 0u64;
    let fresh = || Vec::with_capacity(2 * crate::chunker::MIN_SIZE);
    let mut cur: Vec<u8> = fresh();
    for msg in rx {
        let buf = match msg {
            Ok(b) => b,
            Err(e) => return shared.fail(e),
        };
        if shared.aborted() {
            return;
        }
        let mut pos = 0;
        while pos < buf.len() {
            match splitter.next_boundary(&buf[pos..]) {
                Some(n) => {
                    cur.extend_from_slice(&buf[pos..pos + n]);
                    pos += n;
                    let chunk = std::mem::replace(&mut cur, fresh());
                    if tx.send((seq, chunk)).is_err() {
                        return;
                    }
                    seq += 1;
                }
                None => {
                    cur.extend_from_slice(&buf[pos..]);
                    break;
                }
            }
        }
    }
    if !cur.is_empty() && !shared.aborted() {
        let _ = tx.send((seq, cur));
    }
}

fn work_stage(shared: &Shared<'_>, rx: &Mutex<Receiver<(u64, Vec<u8>)>>, tx: SyncSender<EncodedBlob>) {
    let repo = shared.repo;
    let mut comp = match compressor(repo) {
        Ok(c) => c,
        Err(e) => return shared.fail(e),
    };
    loop {
        let job = lock(rx).recv();
        let Ok((seq, chunk)) = job else { return };
        if shared.aborted() {
            return;
        }
        let id = Id::hash(&chunk);
        lock(&shared.results).push((seq, id));
        let known = repo.index().contains(BlobType::Data, &id) || !lock(&shared.claimed).insert(id);
        if known {
            shared.stats.blobs_known.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match pack::encode_blob(repo.key(), BlobType::Data, id, &chunk, comp.as_mut()) {
            Ok(enc) => {
                shared.stats.blobs_new.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .bytes_added
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                shared
                    .stats
                    .bytes_stored
                    .fetch_add(enc.data.len() as u64, Ordering::Relaxed);
                drop(chunk);
                if tx.send(enc).is_err() {
                    return;
                }
            }
            Err(e) => return shared.fail(e),
        }
    }
}

fn pack_stage(
    shared: &Shared<'_>,
    rx: Receiver<EncodedBlob>,
    tx: SyncSender<FinishedPack>,
    pack_size: usize,
) {
    let key = shared.repo.key();
    let capacity = pack_size + crate::chunker::MAX_SIZE + 64 * 1024;
    let mut w = PackWriter::new(capacity);
    for blob in rx {
        if let Err(e) = w.add(&blob) {
            return shared.fail(e);
        }
        if w.size() >= pack_size {
            let full = std::mem::replace(&mut w, PackWriter::new(capacity));
            match full.finish(key) {
                Ok(p) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Err(e) => return shared.fail(e),
            }
        }
    }
    if !w.is_empty() && !shared.aborted() {
        match w.finish(key) {
            Ok(p) => {
                let _ = tx.send(p);
            }
            Err(e) => shared.fail(e),
        }
    }
}

fn upload_stage(shared: &Shared<'_>, rx: &Mutex<Receiver<FinishedPack>>) {
    loop {
        let job = lock(rx).recv();
        let Ok(p) = job else { return };
        let res = shared.repo.upload_pack(&p).and_then(|()| shared.index_pack(&p));
        match res {
            Ok(()) => {
                shared.stats.packs.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pack = %p.id.short(), bytes = p.data.len(), blobs = p.blobs.len(), "uploaded pack");
            }
            Err(e) => return shared.fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, MemoryBackend};
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;

    pub(crate) fn test_repo(version: u32) -> (Arc<MemoryBackend>, Repository) {
        let be = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            version,
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(be.clone(), "pw", opts).unwrap();
        (be, repo)
    }

    pub(crate) fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 100);
        let mut x = seed;
        while out.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!("{}\tuser{}\t{}\n", x >> 40, (x >> 20) % 1000, x % 99991).as_bytes(),
            );
        }
        out.truncate(n);
        out
    }

    fn small() -> StreamBackupOptions {
        StreamBackupOptions {
            pack_size: 200_000,
            read_size: 10_000,
            workers: 2,
            ..StreamBackupOptions::named("d.sql")
        }
    }

    #[test]
    fn fixed_splitter_cuts_across_buffers() {
        let mut s = FixedSplitter::new(10);
        assert_eq!(s.next_boundary(&[0; 4]), None);
        assert_eq!(s.next_boundary(&[0; 20]), Some(6));
        assert_eq!(s.next_boundary(&[0; 20]), Some(10));
    }

    #[test]
    fn backup_dedups_and_writes_in_order() {
        for version in [1, 2] {
            let (be, repo) = test_repo(version);
            let data = text(3_000_000, 1);
            let sum = backup_stream_with(&repo, &data[..], FixedSplitter::new(64 * 1024), &small()).unwrap();
            assert_eq!(sum.bytes_read, data.len() as u64);
            assert_eq!(sum.blobs_new + sum.blobs_known, 46);
            assert!(sum.packs_written >= 2);
            if version == 2 {
                assert!(sum.bytes_stored < sum.bytes_added, "{sum:?}");
            }
            let sn = repo.load_snapshot(&sum.snapshot_id).unwrap();
            assert_eq!(sn.paths, vec!["/d.sql"]);
            assert_eq!(sn.tree, sum.tree_id);
            let tree = repo.load_tree(&sn.tree).unwrap();
            let node = tree.find("d.sql").unwrap();
            assert_eq!(node.size, data.len() as u64);
            let mut out = Vec::new();
            for id in node.content.as_ref().unwrap() {
                out.extend(repo.load_blob(BlobType::Data, id).unwrap());
            }
            assert_eq!(out, data);
            // Same data again: nothing new but the tree.
            let again =
                backup_stream_with(&repo, &data[..], FixedSplitter::new(64 * 1024), &small()).unwrap();
            assert_eq!(again.blobs_new, 0);
            assert_eq!(again.bytes_added, 0);
            // A fresh open sees the index written by both runs.
            let reopened = Repository::open(be.clone(), "pw").unwrap();
            assert_eq!(reopened.index().len(), repo.index().len());
            for (name, _) in be.list(FileType::Pack).unwrap() {
                let id: Id = name.parse().unwrap();
                assert!(reopened.index().has_pack(&id));
                let blobs = reopened.list_pack(&id).unwrap();
                assert!(!blobs.is_empty());
            }
        }
    }

    #[test]
    fn restic_chunker_is_the_default() {
        // A fixed polynomial (restic's test polynomial) makes the cut points deterministic; with a
        // random one, 5 MB may legitimately hold no cut after the 512 KiB minimum.
        let be = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            version: 2,
            kdf: KdfParams::insecure_fast(),
            polynomial: Some("3da3358b4dc173".parse().unwrap()),
        };
        let repo = Repository::init(be, "pw", opts).unwrap();
        let data = text(5_000_000, 2);
        let sum = backup_stream(&repo, &data[..], &small()).unwrap();
        assert!(sum.blobs_new >= 2, "{sum:?}");
        let again = backup_stream(&repo, &data[..], &small()).unwrap();
        assert_eq!(again.blobs_new, 0);
    }

    struct FailingReader {
        data: Vec<u8>,
        pos: usize,
        fail_at: usize,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pos >= self.fail_at {
                return Err(std::io::Error::other("producer died"));
            }
            let n = buf
                .len()
                .min(self.fail_at - self.pos)
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn failing_reader_leaves_no_snapshot() {
        let (be, repo) = test_repo(2);
        let data = text(3_000_000, 3);
        let r = FailingReader {
            data,
            pos: 0,
            fail_at: 2_000_000,
        };
        let err = backup_stream_with(&repo, r, FixedSplitter::new(64 * 1024), &small()).unwrap_err();
        assert!(matches!(err, Error::Input { .. }), "{err}");
        assert!(err.to_string().contains("producer died"), "{err}");
        assert!(be.list(FileType::Snapshot).unwrap().is_empty());
        // Packs that were uploaded are indexed.
        let reopened = Repository::open(be.clone(), "pw").unwrap();
        for (name, _) in be.list(FileType::Pack).unwrap() {
            assert!(reopened.index().has_pack(&name.parse().unwrap()));
        }
    }

    #[test]
    fn backup_holds_a_shared_lock_and_respects_exclusive_ones() {
        let (be, repo) = test_repo(2);
        let quick = crate::lock::LockOptions {
            settle: Duration::from_millis(5),
            ..Default::default()
        };
        let exclusive = crate::lock::acquire(&repo, true, &quick).unwrap();
        let opts = StreamBackupOptions {
            lock: Some(quick.clone()),
            ..small()
        };
        let err = backup_stream(&repo, &b"x"[..], &opts).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(be.list(FileType::Snapshot).unwrap().is_empty());
        // No lock: the caller's business (it may hold the exclusive lock itself).
        let unlocked = StreamBackupOptions {
            lock: None,
            ..small()
        };
        backup_stream(&repo, &b"x"[..], &unlocked).unwrap();
        drop(exclusive);
        backup_stream(&repo, &b"y"[..], &opts).unwrap();
        assert!(
            be.list(FileType::Lock).unwrap().is_empty(),
            "the lock is gone afterwards"
        );
    }

    #[test]
    fn empty_stream_and_bad_names() {
        let (be, repo) = test_repo(2);
        let err = backup_stream(&repo, &b""[..], &small()).unwrap_err();
        assert!(matches!(err, Error::EmptyInput));
        let opts = StreamBackupOptions {
            allow_empty: true,
            ..small()
        };
        let sum = backup_stream(&repo, &b""[..], &opts).unwrap();
        let tree = repo.load_tree(&sum.tree_id).unwrap();
        assert_eq!(tree.nodes[0].content, Some(vec![]));
        assert_eq!(be.list(FileType::Snapshot).unwrap().len(), 1);
        let bad = StreamBackupOptions::named("a/b");
        assert!(matches!(
            backup_stream(&repo, &b"x"[..], &bad),
            Err(Error::Invalid(_))
        ));
    }
}
