//! Saving blobs: dedup against the index and against blobs saved in this run, encode (zstd,
//! encrypt), fill open packs per blob type (data and trees go to separate packs, as restic
//! does), upload full packs on uploader threads, and write index files as packs land.
//!
//! Placement, as restic 0.18 (restic#5291, after "Chunking Attacks on File Backup Services
//! using Content-Defined Chunking"): each blob goes to one of [`PACKS_PER_TYPE`] open packs of
//! its type picked at random, so a pack is not a run of consecutive chunks and the sizes of the
//! objects in the storage do not tell where the chunker cut a known file (from which the
//! chunker's secret polynomial could be derived). A blob of at least the pack size gets a pack
//! of its own; at the end, partial packs that fit together are merged, so a small file's two
//! chunks do not end up as two objects of their exact sizes.
//!
//! Shared by stream and tree backup, copy and prune. Packs are spooled to temporary files as
//! they fill (as restic does), in the repository's own spool directory when it has one, so a
//! local repository takes a finished pack over with a hard link and memory does not grow with
//! the pack size or the number of uploads in flight.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{BlobType, IndexFile, MAX_BLOBS_PER_INDEX_FILE, PackedBlob};
use crate::pack::{self, DEFAULT_PACK_SIZE, EncodedBlob};
use crate::repository::Repository;
use sha2::{Digest, Sha256};

/// Open packs per blob type that blobs are spread over (restic 0.18 uses two).
pub const PACKS_PER_TYPE: usize = 2;

/// Pieces a spooled pack is copied in when two partial packs are merged.
const MERGE_PIECE: usize = 1 << 20;

/// How a [`Saver`] packs and uploads.
#[derive(Debug, Clone)]
pub struct SaverOptions {
    /// Pack size target in bytes.
    pub pack_size: usize,
    /// Concurrent pack uploads.
    pub uploaders: usize,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            pack_size: DEFAULT_PACK_SIZE,
            uploaders: 2,
        }
    }
}

/// What a [`Saver`] stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaverStats {
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Plaintext bytes of new data blobs.
    pub data_added: u64,
    /// Bytes of new blobs as stored (compressed and encrypted).
    pub bytes_stored: u64,
    /// Data blobs that were already in the repository (or saved earlier in this run).
    pub data_known: u64,
    /// Tree blobs that were already in the repository (or saved earlier in this run).
    pub tree_known: u64,
    /// Pack files written.
    pub packs: u64,
}

#[derive(Default)]
struct Counters {
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    bytes_added: AtomicU64,
    data_added: AtomicU64,
    bytes_stored: AtomicU64,
    known: [AtomicU64; 2],
    packs: AtomicU64,
}

/// A pack being filled: blobs appended to a temporary file as they come.
#[derive(Default)]
struct OpenPack {
    file: Option<(File, PathBuf)>,
    hasher: Sha256,
    blobs: Vec<PackedBlob>,
    size: u64,
}

/// A finished pack waiting in its temporary file for an uploader.
struct SpooledPack {
    id: Id,
    path: PathBuf,
    size: u64,
    blobs: Vec<PackedBlob>,
}

impl Drop for OpenPack {
    fn drop(&mut self) {
        // A pack abandoned half-filled (the save failed): its temporary file goes.
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for SpooledPack {
    fn drop(&mut self) {
        // Gone already when the backend took it over; otherwise an abandoned pack.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn spool_error(path: &Path, e: std::io::Error) -> Error {
    Error::Backend {
        op: "write temporary pack",
        path: path.display().to_string(),
        source: e,
    }
}

impl OpenPack {
    fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    fn add(&mut self, dir: &Path, enc: &EncodedBlob) -> Result<()> {
        if self.file.is_none() {
            let mut rnd = [0u8; 12];
            crate::crypto::fill_random(&mut rnd);
            let path = dir.join(format!("pack-{}", hex::encode(rnd)));
            let f = File::create_new(&path).map_err(|e| spool_error(&path, e))?;
            self.file = Some((f, path));
        }
        let (f, path) = self.file.as_mut().expect("opened above");
        let offset = u32::try_from(self.size).map_err(|_| Error::Internal("pack too large".into()))?;
        let length = u32::try_from(enc.data.len()).map_err(|_| Error::Internal("blob too large".into()))?;
        f.write_all(&enc.data).map_err(|e| spool_error(path, e))?;
        self.hasher.update(&enc.data);
        self.size += enc.data.len() as u64;
        self.blobs.push(PackedBlob {
            id: enc.id,
            blob_type: enc.blob_type,
            offset,
            length,
            uncompressed_length: enc.uncompressed_length,
        });
        Ok(())
    }

    /// Append the blobs of `other` after this pack's: its bytes are copied from its temporary
    /// file (which goes when `other` is dropped) and its offsets shifted.
    fn merge(&mut self, other: OpenPack) -> Result<()> {
        use std::io::Read;
        let (Some((f, path)), Some((_, other_path))) = (self.file.as_mut(), other.file.as_ref()) else {
            return Err(Error::Internal("merging an empty pack".into()));
        };
        let mut src = File::open(other_path).map_err(|e| spool_error(other_path, e))?;
        let mut piece = vec![0u8; MERGE_PIECE];
        let mut copied = 0u64;
        loop {
            let n = src.read(&mut piece).map_err(|e| spool_error(other_path, e))?;
            if n == 0 {
                break;
            }
            f.write_all(&piece[..n]).map_err(|e| spool_error(path, e))?;
            self.hasher.update(&piece[..n]);
            copied += n as u64;
        }
        if copied != other.size {
            return Err(Error::Internal(format!(
                "merging packs: {} holds {copied} bytes, {} were written",
                other_path.display(),
                other.size
            )));
        }
        let base = self.size;
        self.size += copied;
        for b in &other.blobs {
            let offset = u32::try_from(u64::from(b.offset) + base)
                .map_err(|_| Error::Internal("pack too large".into()))?;
            self.blobs.push(PackedBlob { offset, ..*b });
        }
        Ok(())
    }

    fn finish(&mut self, key: &crate::crypto::Key) -> Result<SpooledPack> {
        let (mut f, path) = self
            .file
            .take()
            .ok_or_else(|| Error::Internal("finishing an empty pack".into()))?;
        let tail = pack::seal_header(key, &self.blobs)?;
        let written = f.write_all(&tail);
        drop(f);
        self.hasher.update(&tail);
        let mut spooled = SpooledPack {
            id: Id::default(),
            path,
            size: self.size + tail.len() as u64,
            blobs: std::mem::take(&mut self.blobs),
        };
        written.map_err(|e| spool_error(&spooled.path, e))?;
        spooled.id = Id(std::mem::take(&mut self.hasher).finalize().into());
        Ok(spooled)
    }
}

/// A mutex's guard, also after a panic in another holder (the data stays usable: every writer
/// leaves it consistent between statements, and failures travel through `Saver::fail`).
pub(crate) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Saves blobs into packs; get one from [`with_saver`]. Every method may be called from many
/// threads at once.
pub struct Saver<'r> {
    repo: &'r Repository,
    pack_size: usize,
    spool: PathBuf,
    /// The open packs, by blob type (see [`slot`]); a blob goes to one picked at random.
    open: [[Mutex<OpenPack>; PACKS_PER_TYPE]; 2],
    claimed: Mutex<HashSet<Id>>,
    pending_index: Mutex<IndexFile>,
    upload_tx: Mutex<Option<SyncSender<SpooledPack>>>,
    abort: AtomicBool,
    error: Mutex<Option<Error>>,
    counters: Counters,
}

impl std::fmt::Debug for Saver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saver")
            .field("pack_size", &self.pack_size)
            .finish()
    }
}

/// A zstd compressor for the repository's level, or `None` for a v1 (uncompressed) repository.
/// Keep one per thread: creating one per blob is slow.
pub fn compressor(repo: &Repository) -> Result<Option<zstd::bulk::Compressor<'static>>> {
    if !repo.compression() {
        return Ok(None);
    }
    zstd::bulk::Compressor::new(repo.compression_level())
        .map(Some)
        .map_err(|e| Error::Internal(format!("zstd: {e}")))
}

fn slot(t: BlobType) -> usize {
    match t {
        BlobType::Data => 0,
        BlobType::Tree => 1,
    }
}

impl<'r> Saver<'r> {
    /// The repository blobs go to.
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    /// Record the first error and make every later call fail fast.
    pub fn fail(&self, e: Error) {
        let mut slot = locked(&self.error);
        if slot.is_none() {
            tracing::debug!(error = %e, "saver failing");
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Whether a failure happened (in an uploader or through [`Saver::fail`]).
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.aborted() {
            return Err(Error::Internal("the save was aborted by an earlier error".into()));
        }
        Ok(())
    }

    /// Whether the blob is in the repository or was claimed by this run; claims it if not.
    /// A `false` answer obliges the caller to save the blob (with [`Saver::add_encoded`]).
    pub fn claim(&self, t: BlobType, id: &Id) -> bool {
        if self.repo.index().contains(t, id) {
            return false;
        }
        let mut claimed = locked(&self.claimed);
        // Tree and data blobs with equal ids are different blobs; keep them apart.
        let key = if t == BlobType::Tree { tree_key(id) } else { *id };
        claimed.insert(key)
    }

    /// Save a blob unless it is known; returns its id and whether it was new.
    pub fn save(
        &self,
        t: BlobType,
        data: &[u8],
        comp: Option<&mut zstd::bulk::Compressor<'static>>,
    ) -> Result<(Id, bool)> {
        self.check()?;
        let id = Id::hash(data);
        if !self.claim(t, &id) {
            self.count_known(t);
            return Ok((id, false));
        }
        let enc = pack::encode_blob(self.repo.key(), t, id, data, comp)?;
        self.add_encoded(enc, data.len() as u64)?;
        Ok((id, true))
    }

    /// Count a blob found to be known without calling [`Saver::save`].
    pub fn count_known(&self, t: BlobType) {
        self.counters.known[slot(t)].fetch_add(1, Ordering::Relaxed);
    }

    /// Put an encoded blob (already claimed) into the open pack of its type; hands the pack to
    /// an uploader when full (waiting for a free one).
    pub fn add_encoded(&self, enc: EncodedBlob, plain_len: u64) -> Result<()> {
        self.check()?;
        let c = &self.counters;
        match enc.blob_type {
            BlobType::Data => {
                c.data_blobs.fetch_add(1, Ordering::Relaxed);
                c.data_added.fetch_add(plain_len, Ordering::Relaxed);
            }
            BlobType::Tree => {
                c.tree_blobs.fetch_add(1, Ordering::Relaxed);
            }
        }
        c.bytes_added.fetch_add(plain_len, Ordering::Relaxed);
        c.bytes_stored.fetch_add(enc.data.len() as u64, Ordering::Relaxed);
        if enc.data.len() >= self.pack_size {
            // A pack of its own (as restic): prune can then drop it without repacking others.
            let mut own = OpenPack::default();
            own.add(&self.spool, &enc)?;
            return self.send(own);
        }
        let pick = rand::random_range(0..PACKS_PER_TYPE);
        let full = {
            let mut open = locked(&self.open[slot(enc.blob_type)][pick]);
            open.add(&self.spool, &enc)?;
            if open.size >= self.pack_size as u64 {
                Some(std::mem::take(&mut *open))
            } else {
                None
            }
        };
        if let Some(w) = full {
            self.send(w)?;
        }
        Ok(())
    }

    fn send(&self, mut w: OpenPack) -> Result<()> {
        let p = w.finish(self.repo.key())?;
        let tx = locked(&self.upload_tx).clone();
        match tx {
            Some(tx) if tx.send(p).is_ok() => Ok(()),
            _ => {
                self.check()?;
                Err(Error::Internal("pack uploaders are gone".into()))
            }
        }
    }

    /// Upload the partly filled packs now (before a tree pack is needed by a snapshot, say),
    /// merging those of a type that fit in one pack together (as restic's `mergePackers`).
    pub fn flush(&self) -> Result<()> {
        for packs in &self.open {
            let mut current: Option<OpenPack> = None;
            for open in packs {
                let w = std::mem::take(&mut *locked(open));
                if w.is_empty() {
                    continue;
                }
                current = Some(match current.take() {
                    None => w,
                    Some(mut c) if c.size + w.size < self.pack_size as u64 => {
                        c.merge(w)?;
                        c
                    }
                    Some(c) => {
                        self.send(c)?;
                        w
                    }
                });
            }
            if let Some(c) = current {
                self.send(c)?;
            }
        }
        Ok(())
    }

    /// What was stored so far.
    pub fn stats(&self) -> SaverStats {
        let c = &self.counters;
        SaverStats {
            data_blobs: c.data_blobs.load(Ordering::SeqCst),
            tree_blobs: c.tree_blobs.load(Ordering::SeqCst),
            bytes_added: c.bytes_added.load(Ordering::SeqCst),
            data_added: c.data_added.load(Ordering::SeqCst),
            bytes_stored: c.bytes_stored.load(Ordering::SeqCst),
            data_known: c.known[0].load(Ordering::SeqCst),
            tree_known: c.known[1].load(Ordering::SeqCst),
            packs: c.packs.load(Ordering::SeqCst),
        }
    }

    /// Record an uploaded pack for the next index file; write the file when it is full.
    fn index_pack(&self, p: &SpooledPack) -> Result<()> {
        let full = {
            let mut pending = locked(&self.pending_index);
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
        let file = std::mem::take(&mut *locked(&self.pending_index));
        if !file.packs.is_empty() {
            let id = self.repo.save_json(FileType::Index, &file)?;
            tracing::debug!(index = %id.short(), packs = file.packs.len(), "wrote index file");
        }
        Ok(())
    }

    fn upload_loop(&self, rx: &Mutex<Receiver<SpooledPack>>) {
        loop {
            let job = locked(rx).recv();
            let Ok(p) = job else { return };
            if self.aborted() {
                // Keep draining so senders never block; the pack is dropped unwritten.
                continue;
            }
            match self.upload(&p).and_then(|()| self.index_pack(&p)) {
                Ok(()) => {
                    self.counters.packs.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(pack = %p.id.short(), bytes = p.size, blobs = p.blobs.len(), "uploaded pack");
                }
                Err(e) => self.fail(e),
            }
        }
    }

    /// Store a spooled pack and make its blobs known to the in-memory index.
    fn upload(&self, p: &SpooledPack) -> Result<()> {
        match self
            .repo
            .backend()
            .write_file(FileType::Pack, &p.id.to_hex(), &p.path)
        {
            Ok(()) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.repo.index_mut().add_pack(p.id, &p.blobs);
        Ok(())
    }
}

/// A key for the claimed set that cannot collide with a data blob's id.
fn tree_key(id: &Id) -> Id {
    let mut b = *id.as_bytes();
    b[0] ^= 0xff;
    b[31] ^= 0x5a;
    Id(b)
}

/// Run `f` with a [`Saver`]; when `f` returns, upload what is left, join the uploaders and write
/// the last index file. On failure (of `f` or of an upload) the packs already uploaded are still
/// indexed, so a retry deduplicates against them and prune can reclaim them.
pub fn with_saver<T>(
    repo: &Repository,
    options: &SaverOptions,
    f: impl FnOnce(&Saver<'_>) -> Result<T>,
) -> Result<(T, SaverStats)> {
    let spool = repo.backend().spool_dir().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&spool).map_err(|e| spool_error(&spool, e))?;
    let (tx, rx) = sync_channel::<SpooledPack>(0);
    let saver = Saver {
        repo,
        pack_size: options.pack_size.max(64 * 1024),
        spool,
        open: std::array::from_fn(|_| std::array::from_fn(|_| Mutex::new(OpenPack::default()))),
        claimed: Mutex::new(HashSet::new()),
        pending_index: Mutex::new(IndexFile::default()),
        upload_tx: Mutex::new(Some(tx)),
        abort: AtomicBool::new(false),
        error: Mutex::new(None),
        counters: Counters::default(),
    };
    let result = std::thread::scope(|s| {
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        // A remote backend asks for more uploads in flight than a local disk needs.
        let uploaders = options.uploaders.max(repo.backend().upload_concurrency()).max(1);
        for i in 0..uploaders {
            let rx = Arc::clone(&rx);
            let saver = &saver;
            let h = std::thread::Builder::new()
                .name(format!("kstash-upload-{i}"))
                .spawn_scoped(s, move || saver.upload_loop(&rx));
            match h {
                Ok(h) => handles.push(h),
                Err(e) => saver.fail(Error::Internal(format!("cannot start an upload thread: {e}"))),
            }
        }
        drop(rx);
        let result = if saver.aborted() {
            Err(Error::Internal("no upload thread".into()))
        } else {
            f(&saver)
        };
        // The first failure wins: an upload error that made `f` give up ("aborted") is the one
        // to report, not the giving up.
        let result = match result.and_then(|v| saver.flush().map(|()| v)) {
            Ok(v) => Some(v),
            Err(e) => {
                saver.fail(e);
                None
            }
        };
        // Closing the channel lets the uploaders finish the packs in hand and exit.
        locked(&saver.upload_tx).take();
        for h in handles {
            if h.join().is_err() {
                saver.fail(Error::Internal("a pack upload thread panicked".into()));
            }
        }
        result
    });
    let first_error = locked(&saver.error).take();
    let index_result = saver.flush_index();
    let value = match (result, first_error) {
        (_, Some(e)) => Err(e),
        (Some(v), None) => Ok(v),
        (None, None) => Err(Error::Internal("save failed without an error".into())),
    };
    if let Err(e) = &index_result {
        tracing::warn!(error = %e, "could not write the index of the uploaded packs");
        // The in-memory index must not claim blobs that no index file lists.
        if let Err(e) = repo.load_index() {
            tracing::warn!(error = %e, "could not reload the index");
        }
    }
    let value = value?;
    index_result?;
    Ok((value, saver.stats()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, MemoryBackend};
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;

    fn repo() -> (Arc<MemoryBackend>, Repository) {
        let be = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(be.clone(), "pw", opts).unwrap();
        (be, repo)
    }

    #[test]
    fn saves_dedups_and_separates_types() {
        let (be, repo) = repo();
        let opts = SaverOptions {
            pack_size: 64 * 1024,
            uploaders: 2,
        };
        let ((), st) = with_saver(&repo, &opts, |s| {
            let mut comp = compressor(s.repo())?;
            std::thread::scope(|sc| {
                for t in 0..3u8 {
                    sc.spawn(move || {
                        let mut comp = compressor(s.repo()).unwrap();
                        for i in 0..40u32 {
                            let blob: Vec<u8> = (0..50_000u32).map(|j| (j * 7 + i * 13) as u8 ^ t).collect();
                            s.save(BlobType::Data, &blob, comp.as_mut()).unwrap();
                        }
                    });
                }
            });
            // Same bytes as a tree blob and as a data blob: two blobs.
            let (a, new_a) = s.save(BlobType::Tree, b"{\"nodes\":[]}\n", comp.as_mut())?;
            let (b, new_b) = s.save(BlobType::Data, b"{\"nodes\":[]}\n", comp.as_mut())?;
            assert_eq!(a, b);
            assert!(new_a && new_b);
            let (_, again) = s.save(BlobType::Data, b"{\"nodes\":[]}\n", comp.as_mut())?;
            assert!(!again);
            Ok(())
        })
        .unwrap();
        assert_eq!(st.data_blobs, 121);
        assert_eq!(st.tree_blobs, 1);
        assert_eq!((st.data_known, st.tree_known), (1, 0));
        // Reopen: every blob is found through the index files, and packs hold one type each.
        let re = Repository::open(be.clone(), "pw").unwrap();
        re.load_index().unwrap();
        assert_eq!(re.index().len(), 122);
        let packs = be.list(FileType::Pack).unwrap();
        assert_eq!(packs.len() as u64, st.packs);
        for (name, _) in packs {
            let blobs = re.list_pack(&name.parse().unwrap()).unwrap();
            assert!(blobs.iter().all(|b| b.blob_type == blobs[0].blob_type));
        }
    }

    /// Each pack's blobs as positions in the order they were saved (the chunk order).
    fn positions_per_pack(be: &MemoryBackend, repo: &Repository, order: &[Id]) -> Vec<Vec<usize>> {
        let pos: std::collections::HashMap<Id, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut packs: Vec<Vec<usize>> = be
            .list(FileType::Pack)
            .unwrap()
            .iter()
            .map(|(name, _)| {
                let mut blobs = repo.list_pack(&name.parse().unwrap()).unwrap();
                blobs.sort_by_key(|b| b.offset);
                blobs.iter().map(|b| pos[&b.id]).collect()
            })
            .collect();
        packs.sort();
        packs
    }

    #[test]
    fn blobs_are_spread_over_packs_at_random_not_in_chunk_order() {
        let (be, repo) = repo();
        let opts = SaverOptions {
            pack_size: 64 * 1024,
            uploaders: 1,
        };
        let noise = kstash_testsupport::data::noise(300 * 3000, 1);
        let blobs: Vec<&[u8]> = noise.chunks(3000).collect();
        let order: Vec<Id> = blobs.iter().map(|b| Id::hash(b)).collect();
        with_saver(&repo, &opts, |s| {
            for b in &blobs {
                s.save(BlobType::Data, b, None)?;
            }
            Ok(())
        })
        .unwrap();
        let packs = positions_per_pack(&be, &repo, &order);
        let mut all: Vec<usize> = packs.concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..300).collect::<Vec<_>>(),
            "every blob in exactly one pack"
        );
        // One pack filled in chunk order holds a run of consecutive chunks, and its size is the
        // sum of their sizes: that is what the random placement prevents.
        let runs = packs
            .iter()
            .filter(|p| p.windows(2).all(|w| w[1] == w[0] + 1))
            .count();
        assert!(
            runs < packs.len() / 2,
            "{runs} of {} packs hold consecutive chunks: {packs:?}",
            packs.len()
        );
    }

    #[test]
    fn a_small_backup_ends_in_one_pack_and_an_oversized_blob_in_its_own() {
        // Two chunks of a small file in two packs would give away both chunk sizes: the partial
        // packs are merged at the end (each round places the two blobs at random again).
        for round in 0..20u64 {
            let (be, repo) = repo();
            let opts = SaverOptions {
                pack_size: 64 * 1024,
                uploaders: 1,
            };
            let blobs = [
                kstash_testsupport::data::noise(5000, round),
                kstash_testsupport::data::noise(7000, round + 100),
                kstash_testsupport::data::noise(100_000, round + 200),
            ];
            let order: Vec<Id> = blobs.iter().map(|b| Id::hash(b)).collect();
            with_saver(&repo, &opts, |s| {
                for b in &blobs {
                    s.save(BlobType::Data, b, None)?;
                }
                Ok(())
            })
            .unwrap();
            let packs = positions_per_pack(&be, &repo, &order);
            assert_eq!(packs.len(), 2, "round {round}: {packs:?}");
            assert!(packs.contains(&vec![2]), "round {round}: {packs:?}");
            let small = packs.iter().find(|p| p.len() == 2).unwrap();
            // Read back through a fresh handle: the merged pack's offsets are right.
            let re = Repository::open(be.clone(), "pw").unwrap();
            re.load_index().unwrap();
            for (i, b) in blobs.iter().enumerate() {
                assert!(
                    re.load_blob(BlobType::Data, &order[i]).unwrap() == *b,
                    "round {round}: blob {i} of {small:?}"
                );
            }
        }
    }

    #[test]
    fn failing_callback_still_indexes_uploaded_packs() {
        let (be, repo) = repo();
        let opts = SaverOptions {
            pack_size: 64 * 1024,
            uploaders: 1,
        };
        let err = with_saver(&repo, &opts, |s| {
            for i in 0..10u32 {
                let blob: Vec<u8> = (0..70_000u32).map(|j| (j ^ i) as u8).collect();
                s.save(BlobType::Data, &blob, None)?;
            }
            Err::<(), _>(Error::Invalid("stop".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("stop"), "{err}");
        let re = Repository::open(be.clone(), "pw").unwrap();
        re.load_index().unwrap();
        let packs = be.list(FileType::Pack).unwrap();
        assert!(!packs.is_empty());
        for (name, _) in packs {
            assert!(
                re.index().has_pack(&name.parse().unwrap()),
                "pack {name} not indexed"
            );
        }
    }
}
