//! Back up one byte stream (a database dump, say) as a single file in a new snapshot, as
//! `restic backup --stdin --stdin-filename NAME` does, but through a parallel pipeline:
//!
//! ```text
//! reader thread ─▶ chunker (one per repository) ─▶ N workers: SHA-256, dedup, zstd, encrypt,
//!     append to the open pack ─▶ M uploader threads ─▶ index files ─▶ tree ─▶ snapshot
//! ```
//!
//! With several repositories (fan-out) the reader hands each buffer to every repository's
//! chunker, so the stream is read once.
//!
//! Every queue is bounded, so memory is bounded by queue depths and the pack size, not by the
//! input. Nothing is referenced by a snapshot until the stream has been read to its end without
//! error: if the reader fails, the packs already uploaded are recorded in an index file (so a
//! retry deduplicates against them and prune can reclaim them) and no snapshot is written.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::gojson::GoTime;
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::pack::DEFAULT_PACK_SIZE;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::saver::{Saver, SaverOptions, compressor, locked, with_saver};
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
    /// Counters to update as the stream is read (bytes).
    pub progress: Option<Arc<Progress>>,
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
            progress: None,
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

/// Back up `reader` with the repository's restic-compatible chunker.
pub fn backup_stream<R: Read + Send>(
    repo: &Repository,
    reader: R,
    options: &StreamBackupOptions,
) -> Result<StreamBackupSummary> {
    let chunker = repo_chunker(repo)?;
    backup_stream_with(repo, reader, chunker, options)
}

/// The restic-compatible chunker of a repository (its polynomial).
pub fn repo_chunker(repo: &Repository) -> Result<Chunker> {
    let bad = |e: String| Error::Format {
        what: "config".into(),
        reason: e,
    };
    let pol = repo.config().polynomial().map_err(|e| bad(e.to_string()))?;
    Chunker::new(pol).map_err(|e| bad(e.to_string()))
}

/// Back up `reader`, cutting it with `splitter`.
pub fn backup_stream_with<R: Read + Send, S: Splitter>(
    repo: &Repository,
    reader: R,
    splitter: S,
    options: &StreamBackupOptions,
) -> Result<StreamBackupSummary> {
    let mut results = fan_out(&[repo], reader, vec![splitter], options)?;
    results
        .pop()
        .unwrap_or_else(|| Err(Error::Internal("no result".into())))
}

/// Fan-out: back up one stream into several repositories at once, reading it once. Each
/// repository gets its own chunker (its own polynomial), workers and packs, and its own result:
/// a repository that fails (storage error, say) does not stop the others. A failing reader
/// fails them all, and none gets a snapshot. Errors that concern the call itself (a bad file
/// name) come back as the outer error.
pub fn backup_stream_to_many<R: Read + Send>(
    repos: &[&Repository],
    reader: R,
    options: &StreamBackupOptions,
) -> Result<Vec<Result<StreamBackupSummary>>> {
    let mut splitters = Vec::with_capacity(repos.len());
    for repo in repos {
        splitters.push(repo_chunker(repo)?);
    }
    fan_out(repos, reader, splitters, options)
}

/// A read buffer shared by the pipelines of all repositories, or the reader's failure.
type ReadMsg = std::result::Result<Arc<Vec<u8>>, ReadFailure>;

/// How the reader failed, recreated as an [`Error::Input`] for each repository.
#[derive(Debug, Clone)]
struct ReadFailure {
    bytes: u64,
    kind: ErrorKind,
    message: String,
}

impl ReadFailure {
    fn to_error(&self) -> Error {
        Error::Input {
            bytes: self.bytes,
            source: std::io::Error::new(self.kind, self.message.clone()),
        }
    }
}

fn fan_out<R: Read + Send, S: Splitter>(
    repos: &[&Repository],
    reader: R,
    splitters: Vec<S>,
    options: &StreamBackupOptions,
) -> Result<Vec<Result<StreamBackupSummary>>> {
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
    let started = Instant::now();
    let time = options.time.unwrap_or_else(GoTime::now);
    let read_size = options.read_size.max(4096);
    let bytes_read = AtomicU64::new(0);
    let results: Vec<Result<StreamBackupSummary>> = std::thread::scope(|s| {
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        for (i, (repo, splitter)) in repos.iter().zip(splitters).enumerate() {
            let (tx, rx) = sync_channel::<ReadMsg>(4);
            txs.push(Some(tx));
            let bytes_read = &bytes_read;
            let h = std::thread::Builder::new()
                .name(format!("kstash-repo-{i}"))
                .spawn_scoped(s, move || {
                    one_repo(repo, rx, splitter, options, time, started, bytes_read)
                });
            handles.push(h);
        }
        read_stage(reader, read_size, txs, &bytes_read, options.progress.as_deref());
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("a backup thread panicked".into()))),
                Err(e) => Err(Error::Internal(format!("cannot start a thread: {e}"))),
            })
            .collect()
    });
    Ok(results)
}

/// Everything for one repository: lock, chunk, save, tree, snapshot.
fn one_repo<S: Splitter>(
    repo: &Repository,
    rx: Receiver<ReadMsg>,
    splitter: S,
    options: &StreamBackupOptions,
    time: GoTime,
    started: Instant,
    bytes_read: &AtomicU64,
) -> Result<StreamBackupSummary> {
    let repo_lock = lock::shared_and_fresh(repo, options.lock.as_ref())?;
    let workers = if options.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        options.workers
    };
    let saver_options = SaverOptions {
        pack_size: options.pack_size,
        uploaders: options.uploaders,
    };
    let ((tree_id, size), stats) = with_saver(repo, &saver_options, |saver| {
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let (work_tx, work_rx) = sync_channel::<(u64, Vec<u8>)>(workers * 2);
            let work_rx = Arc::new(Mutex::new(work_rx));
            let mut handles = Vec::new();
            for i in 0..workers {
                let work_rx = Arc::clone(&work_rx);
                let results = &results;
                handles.push(
                    std::thread::Builder::new()
                        .name(format!("kstash-work-{i}"))
                        .spawn_scoped(s, move || work_stage(saver, &work_rx, results)),
                );
            }
            drop(work_rx);
            let chunked = chunk_stage(saver, rx, work_tx, splitter);
            for h in handles {
                match h {
                    Ok(h) => {
                        if h.join().is_err() {
                            saver.fail(Error::Internal("a backup worker panicked".into()));
                        }
                    }
                    Err(e) => saver.fail(Error::Internal(format!("cannot start a thread: {e}"))),
                }
            }
            chunked
        })?;
        if saver.aborted() {
            return Err(Error::Internal("backup aborted".into()));
        }
        let size = bytes_read.load(Ordering::SeqCst);
        if size == 0 && !options.allow_empty {
            return Err(Error::EmptyInput);
        }
        let mut results = std::mem::take(&mut *locked(&results));
        results.sort_unstable_by_key(|(seq, _)| *seq);
        let (uid, gid) = crate::host::uid_gid();
        let mut node = Node::file(options.filename.clone(), 0o644, time, uid, gid);
        node.size = size;
        node.content = Some(results.into_iter().map(|(_, id)| id).collect());
        let mut tree = Tree::default();
        tree.insert(node);
        let tree_blob = tree.to_blob().map_err(|e| Error::json("tree", e))?;
        let mut comp = compressor(repo)?;
        let (tree_id, _) = saver.save(BlobType::Tree, &tree_blob, comp.as_mut())?;
        Ok((tree_id, size))
    })?;

    let mut sn = Snapshot::new(tree_id, vec![format!("/{}", options.filename)]);
    sn.time = time;
    if let Some(h) = &options.hostname {
        sn.hostname = h.clone();
    }
    sn.tags = options.tags.clone();
    sn.summary = Some(SnapshotSummary {
        backup_start: time,
        backup_end: GoTime::now(),
        files_new: 1,
        data_blobs: stats.data_blobs as i64,
        tree_blobs: stats.tree_blobs as i64,
        data_added: stats.bytes_added,
        data_added_packed: stats.bytes_stored,
        total_files_processed: 1,
        total_bytes_processed: size,
        ..Default::default()
    });
    if let Some(held) = &repo_lock {
        // A prune may have run if others took our lock for stale: do not reference its victims.
        held.check()?;
    }
    let snapshot_id = repo.save_snapshot(&sn)?;
    let summary = StreamBackupSummary {
        snapshot_id,
        tree_id,
        bytes_read: size,
        bytes_added: stats.data_added,
        bytes_stored: stats.bytes_stored,
        blobs_new: stats.data_blobs,
        blobs_known: stats.data_known,
        packs_written: stats.packs,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        snapshot = %snapshot_id.short(),
        bytes_read = size,
        bytes_added = summary.bytes_added,
        blobs_new = summary.blobs_new,
        blobs_known = summary.blobs_known,
        "stream backup done"
    );
    Ok(summary)
}

/// Read the stream in `read_size` buffers and hand each to every repository still going.
fn read_stage<R: Read>(
    mut reader: R,
    read_size: usize,
    mut txs: Vec<Option<SyncSender<ReadMsg>>>,
    bytes_read: &AtomicU64,
    progress: Option<&Progress>,
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
                    let failure = ReadFailure {
                        bytes: total + n as u64,
                        kind: e.kind(),
                        message: e.to_string(),
                    };
                    for tx in txs.iter().flatten() {
                        let _ = tx.send(Err(failure.clone()));
                    }
                    return;
                }
            }
        }
        total += n as u64;
        bytes_read.store(total, Ordering::SeqCst);
        if let Some(p) = progress {
            p.add_bytes(n as u64);
        }
        if n > 0 {
            buf.truncate(n);
            let buf = Arc::new(buf);
            for slot in txs.iter_mut() {
                // A repository whose pipeline stopped no longer receives.
                if let Some(tx) = slot
                    && tx.send(Ok(Arc::clone(&buf))).is_err()
                {
                    *slot = None;
                }
            }
            if txs.iter().all(Option::is_none) {
                return;
            }
        }
        if eof {
            return;
        }
    }
}

/// Cut the buffers into chunks for the workers. Returns the reader's failure, if any.
fn chunk_stage<S: Splitter>(
    saver: &Saver<'_>,
    rx: Receiver<ReadMsg>,
    tx: SyncSender<(u64, Vec<u8>)>,
    mut splitter: S,
) -> Result<()> {
    let mut seq = 0u64;
    let fresh = || Vec::with_capacity(2 * crate::chunker::MIN_SIZE);
    let mut cur: Vec<u8> = fresh();
    for msg in rx {
        let buf = msg.map_err(|f| f.to_error())?;
        if saver.aborted() {
            return Ok(());
        }
        let mut pos = 0;
        while pos < buf.len() {
            match splitter.next_boundary(&buf[pos..]) {
                Some(n) => {
                    cur.extend_from_slice(&buf[pos..pos + n]);
                    pos += n;
                    let chunk = std::mem::replace(&mut cur, fresh());
                    if tx.send((seq, chunk)).is_err() {
                        return Ok(());
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
    if !cur.is_empty() && !saver.aborted() {
        let _ = tx.send((seq, cur));
    }
    Ok(())
}

/// Hash, dedup, compress, encrypt and pack chunks.
fn work_stage(saver: &Saver<'_>, rx: &Mutex<Receiver<(u64, Vec<u8>)>>, results: &Mutex<Vec<(u64, Id)>>) {
    let mut comp = match compressor(saver.repo()) {
        Ok(c) => c,
        Err(e) => return saver.fail(e),
    };
    loop {
        let job = locked(rx).recv();
        let Ok((seq, chunk)) = job else { return };
        if saver.aborted() {
            return;
        }
        match saver.save(BlobType::Data, &chunk, comp.as_mut()) {
            Ok((id, _)) => locked(results).push((seq, id)),
            Err(e) => return saver.fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, FileType, MemoryBackend};
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

    #[test]
    fn fan_out_reads_once_and_a_reader_error_fails_all() {
        let (be_a, a) = test_repo(2);
        let (be_b, b) = test_repo(1);
        let data = text(2_500_000, 4);
        let reads = std::sync::atomic::AtomicUsize::new(0);
        struct Counting<'a>(&'a [u8], &'a std::sync::atomic::AtomicUsize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1.fetch_add(n, Ordering::SeqCst);
                Ok(n)
            }
        }
        let results = backup_stream_to_many(&[&a, &b], Counting(&data, &reads), &small()).unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            data.len(),
            "the stream is read once"
        );
        for (r, be, repo) in [(&results[0], &be_a, &a), (&results[1], &be_b, &b)] {
            let sum = r.as_ref().unwrap();
            assert_eq!(sum.bytes_read, data.len() as u64);
            assert_eq!(be.list(FileType::Snapshot).unwrap().len(), 1);
            let mut out = Vec::new();
            crate::dump::dump_file(repo, "latest", "/d.sql", &mut out).unwrap();
            assert_eq!(out, data);
        }
        // A failing reader fails every repository and leaves no snapshot anywhere.
        let r = FailingReader {
            data: data.clone(),
            pos: 0,
            fail_at: 1_000_000,
        };
        let results = backup_stream_to_many(&[&a, &b], r, &small()).unwrap();
        assert!(results.iter().all(|r| matches!(r, Err(Error::Input { .. }))));
        assert_eq!(be_a.list(FileType::Snapshot).unwrap().len(), 1);
        assert_eq!(be_b.list(FileType::Snapshot).unwrap().len(), 1);
    }
}
