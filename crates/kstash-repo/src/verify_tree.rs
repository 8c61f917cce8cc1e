//! Verification of a restored copy: a snapshot (or a sub-path of it) restored into a directory
//! is compared, item by item, with the snapshot's tree: every regular file's size, mode and
//! content, every directory's mode, every symlink's target, every fifo and device, and anything
//! on disk that the snapshot does not hold.
//!
//! ```text
//! restore's own plan ──┬─ root, directories: present, a directory, mode; listed: unplanned names are extra
//! (same walk, names,   ├─ symlinks, fifos, devices: present, the right kind, target / mode / device number
//!  selection and       ├─ files, on worker threads: present, mode, size, then each blob-sized range of
//!  path mapping)       │    the file → SHA-256 → equal to the blob id?
//!                      └─ hard links: the same inode as the file they link to (else checked as files)
//! ```
//!
//! Nothing is read from the repository but trees and the index, and nothing is decrypted again:
//! a data blob's id is the SHA-256 of its plaintext, so the restored bytes are hashed range by
//! range, the lengths taken from the index. Each worker reads through one fixed buffer, so memory
//! does not grow with file or blob size, only with the number of items, as the restore's own
//! plan does. Devices are compared only when running as root, as only root restores them.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::BlobType;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::restore::{self, Item, Planned, RestoreOptions};
use crate::snapshot::SnapshotEntry;
use crate::tree::{Node, NodeType, mode};

/// Mismatches kept by default in [`TreeComparison::mismatches`] (all are counted).
pub const DEFAULT_MAX_MISMATCHES: usize = 100;
/// Bytes read from a restored file at a time, per worker.
const READ_BUFFER: usize = 1 << 20;

/// Options of [`compare_restored_tree`].
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The include patterns the restore was given ([`RestoreOptions::include`]).
    pub include: Vec<String>,
    /// The exclude patterns the restore was given ([`RestoreOptions::exclude`]).
    pub exclude: Vec<String>,
    /// Mismatches kept in [`TreeComparison::mismatches`]; beyond this they are only counted.
    pub max_mismatches: usize,
    /// Files compared concurrently (0: the number of CPUs, at most 4).
    pub threads: usize,
    /// Counters to update as files are compared (bytes, files); the totals are set once the
    /// restore's plan is known.
    pub progress: Option<Arc<Progress>>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            max_mismatches: DEFAULT_MAX_MISMATCHES,
            threads: 0,
            progress: None,
        }
    }
}

impl CompareOptions {
    /// Options that select what a restore with `restore` selected (and update its progress
    /// counters, if it has any).
    pub fn for_restore(restore: &RestoreOptions) -> CompareOptions {
        CompareOptions {
            include: restore.include.clone(),
            exclude: restore.exclude.clone(),
            progress: restore.progress.clone(),
            ..CompareOptions::default()
        }
    }
}

/// The outcome of [`compare_restored_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeComparison {
    /// Regular files compared (hard links included).
    pub files_checked: u64,
    /// Content bytes hashed and compared.
    pub bytes_checked: u64,
    /// Items compared: files, directories (the root included), symlinks, fifos and devices.
    pub items_checked: u64,
    /// Every difference found, also those beyond [`CompareOptions::max_mismatches`].
    pub mismatch_count: u64,
    /// The differences kept, by path.
    pub mismatches: Vec<Mismatch>,
}

impl TreeComparison {
    /// Whether the restored copy matches the snapshot.
    pub fn matches(&self) -> bool {
        self.mismatch_count == 0
    }
}

/// Differences shown by [`TreeComparison`]'s `Display`.
const SHOWN: usize = 3;

impl fmt::Display for TreeComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matches() {
            return write!(
                f,
                "the restored copy matches the snapshot ({} files, {} bytes compared)",
                self.files_checked, self.bytes_checked
            );
        }
        let plural = if self.mismatch_count == 1 { "" } else { "s" };
        write!(
            f,
            "{} difference{plural} from the snapshot: ",
            self.mismatch_count
        )?;
        for (i, m) in self.mismatches.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{m}")?;
        }
        let shown = self.mismatches.len().min(SHOWN) as u64;
        if self.mismatch_count > shown {
            write!(f, "; and {} more", self.mismatch_count - shown)?;
        }
        Ok(())
    }
}

/// One difference between the restored copy and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The path in the snapshot (`/data/a.txt`); for an extra item, the path it would have.
    pub path: String,
    /// The item in the restored directory.
    pub target: PathBuf,
    /// What differs.
    pub difference: Difference,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.difference)
    }
}

/// What differs between a restored item and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The snapshot holds the item (a `file`, `directory`, …); the restored copy does not.
    Missing {
        /// The kind of item the snapshot holds.
        expected: &'static str,
    },
    /// The restored item is of another kind than the snapshot's.
    Kind {
        /// The kind in the snapshot.
        expected: &'static str,
        /// The kind on disk.
        found: &'static str,
    },
    /// A regular file's size.
    Size {
        /// Bytes in the snapshot.
        expected: u64,
        /// Bytes on disk.
        found: u64,
    },
    /// Permission bits (with setuid, setgid and sticky), as `st_mode & 0o7777`.
    Mode {
        /// In the snapshot.
        expected: u32,
        /// On disk.
        found: u32,
    },
    /// The bytes `offset..offset + length` of a file do not hash to the snapshot's blob there.
    Content {
        /// Where the blob starts in the file.
        offset: u64,
        /// The blob's length.
        length: u64,
        /// The blob id in the snapshot.
        blob: Id,
    },
    /// A file holds bytes past the end of the snapshot's blobs (its size matches the node's,
    /// but the blobs are shorter).
    Trailing {
        /// Where the blobs end.
        offset: u64,
    },
    /// A symlink's target.
    LinkTarget {
        /// In the snapshot.
        expected: String,
        /// On disk.
        found: String,
    },
    /// A device's number (`st_rdev`).
    Device {
        /// In the snapshot.
        expected: u64,
        /// On disk.
        found: u64,
    },
    /// An item on disk that the snapshot does not hold.
    Extra {
        /// Its kind.
        found: &'static str,
    },
    /// A file's content cannot be checked: the index does not know one of its blobs.
    UnknownBlob {
        /// The blob id in the snapshot.
        blob: Id,
    },
    /// The restored item could not be read.
    Unreadable {
        /// The operating system's error.
        reason: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing { expected } => write!(f, "missing (a {expected} in the snapshot)"),
            Difference::Kind { expected, found } => {
                write!(f, "restored as a {found}, but the snapshot has a {expected}")
            }
            Difference::Size { expected, found } => {
                write!(f, "size {found} bytes, but {expected} bytes in the snapshot")
            }
            Difference::Mode { expected, found } => {
                write!(f, "mode {found:04o}, but {expected:04o} in the snapshot")
            }
            Difference::Content { offset, length, blob } => write!(
                f,
                "content differs in bytes {offset}..{} (blob {})",
                offset + length,
                blob.short()
            ),
            Difference::Trailing { offset } => write!(
                f,
                "holds bytes from offset {offset} on that the snapshot's content does not cover"
            ),
            Difference::LinkTarget { expected, found } => {
                write!(f, "symlink to {found:?}, but to {expected:?} in the snapshot")
            }
            Difference::Device { expected, found } => {
                write!(f, "device number {found:#x}, but {expected:#x} in the snapshot")
            }
            Difference::Extra { found } => write!(f, "extra {found}, not in the snapshot"),
            Difference::UnknownBlob { blob } => write!(
                f,
                "content cannot be checked: data blob {blob} is not in the repository index"
            ),
            Difference::Unreadable { reason } => write!(f, "cannot be read: {reason}"),
        }
    }
}

/// Compare `restored_root`, where `subpath` of `snapshot` was restored (as [`restore::restore`]
/// and [`restore::restore_snapshot`] take them: empty or `/` for the whole snapshot), with the
/// snapshot's tree. Items are found where the restore puts them, and only what the restore
/// selects (with `options.include`/`exclude`) is expected; everything else in `restored_root`
/// is extra. Differences are results, not errors: an error means the comparison could not be
/// made (a tree could not be loaded, a hostile name, a worker thread that died). Takes no lock:
/// the caller holds the one it took for the restore.
pub fn compare_restored_tree(
    repo: &Repository,
    snapshot: &SnapshotEntry,
    subpath: &str,
    restored_root: &Path,
    options: &CompareOptions,
) -> Result<TreeComparison> {
    let selection = RestoreOptions {
        include: options.include.clone(),
        exclude: options.exclude.clone(),
        lock: None,
        ..RestoreOptions::default()
    };
    let planned = restore::plan_restore(repo, snapshot, subpath, restored_root, &selection)?;
    let plan = &planned.plan;
    let expected: HashSet<&str> = plan
        .dirs
        .iter()
        .chain(&plan.files)
        .chain(plan.links.iter().map(|(item, _)| item))
        .chain(&plan.others)
        .map(|item| item.loc.as_str())
        .collect();
    if let Some(p) = &options.progress {
        let files = plan.files.len() + plan.links.len();
        p.set_totals(plan.files.iter().map(|f| f.node.size).sum(), files as u64);
    }
    let (uid, _) = crate::host::uid_gid();
    let c = Comparer {
        repo,
        planned: &planned,
        progress: options.progress.as_deref(),
        as_root: uid == 0,
        max: options.max_mismatches,
        count: AtomicU64::new(0),
        kept: Mutex::new(Vec::new()),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        items: AtomicU64::new(0),
    };
    c.check_dir("", None, &expected);
    for dir in &plan.dirs {
        c.check_dir(&dir.loc, Some(&dir.node), &expected);
    }
    for item in &plan.others {
        c.check_other(item);
    }
    c.check_files(&plan.files, options.threads)?;
    let mut buf = vec![0u8; READ_BUFFER];
    for (link, origin) in &plan.links {
        c.check_link(link, &plan.files[*origin], &mut buf);
    }
    let mut mismatches = c.kept.into_inner().unwrap_or_else(|p| p.into_inner());
    mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    let comparison = TreeComparison {
        files_checked: c.files.into_inner(),
        bytes_checked: c.bytes.into_inner(),
        items_checked: c.items.into_inner(),
        mismatch_count: c.count.into_inner(),
        mismatches,
    };
    tracing::info!(
        snapshot = %planned.snapshot,
        target = %restored_root.display(),
        files = comparison.files_checked,
        bytes = comparison.bytes_checked,
        mismatches = comparison.mismatch_count,
        "restored copy compared with the snapshot"
    );
    Ok(comparison)
}

struct Comparer<'a> {
    repo: &'a Repository,
    planned: &'a Planned,
    progress: Option<&'a Progress>,
    as_root: bool,
    /// Mismatches to keep; `count` counts them all.
    max: usize,
    count: AtomicU64,
    kept: Mutex<Vec<Mismatch>>,
    files: AtomicU64,
    bytes: AtomicU64,
    items: AtomicU64,
}

impl Comparer<'_> {
    fn report(&self, loc: &str, difference: Difference) {
        let mismatch = Mismatch {
            path: self.planned.snapshot_path(loc),
            target: self.planned.target_path(loc),
            difference,
        };
        tracing::debug!(%mismatch, "restored copy differs");
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n < self.max as u64 {
            self.kept.lock().unwrap_or_else(|p| p.into_inner()).push(mismatch);
        }
    }

    /// The metadata of the item at `loc` if it is of the kind `is_kind` accepts (never
    /// following a symlink); otherwise the difference is reported.
    fn inspect(
        &self,
        loc: &str,
        node_type: NodeType,
        is_kind: fn(&fs::FileType) -> bool,
    ) -> Option<Metadata> {
        self.items.fetch_add(1, Ordering::Relaxed);
        let expected = kind_of_node(node_type);
        match fs::symlink_metadata(self.planned.target_path(loc)) {
            Ok(m) if is_kind(&m.file_type()) => Some(m),
            Ok(m) => {
                let found = kind_on_disk(&m.file_type());
                self.report(loc, Difference::Kind { expected, found });
                None
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.report(loc, Difference::Missing { expected });
                None
            }
            Err(e) => {
                self.report(
                    loc,
                    Difference::Unreadable {
                        reason: e.to_string(),
                    },
                );
                None
            }
        }
    }

    fn check_mode(&self, loc: &str, node: &Node, m: &Metadata) {
        let expected = mode::to_unix(node.mode) & 0o7777;
        let found = m.mode() & 0o7777;
        if expected != found {
            self.report(loc, Difference::Mode { expected, found });
        }
    }

    /// The directory at `loc` (`node` is `None` for the root, whose mode a restore leaves
    /// alone), and the names in it that nothing planned.
    fn check_dir(&self, loc: &str, node: Option<&Node>, expected: &HashSet<&str>) {
        let Some(m) = self.inspect(loc, NodeType::Dir, fs::FileType::is_dir) else {
            return;
        };
        if let Some(node) = node {
            self.check_mode(loc, node, &m);
        }
        let entries = match fs::read_dir(self.planned.target_path(loc)) {
            Ok(entries) => entries,
            Err(e) => {
                self.report(
                    loc,
                    Difference::Unreadable {
                        reason: e.to_string(),
                    },
                );
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.report(
                        loc,
                        Difference::Unreadable {
                            reason: e.to_string(),
                        },
                    );
                    return;
                }
            };
            let child = format!("{loc}/{}", entry.file_name().to_string_lossy());
            if !expected.contains(child.as_str()) {
                let found = entry.file_type().map_or("item", |t| kind_on_disk(&t));
                self.report(&child, Difference::Extra { found });
            }
        }
    }

    fn check_other(&self, item: &Item) {
        let (loc, node) = (item.loc.as_str(), &item.node);
        match node.node_type {
            NodeType::Symlink => {
                if self
                    .inspect(loc, node.node_type, fs::FileType::is_symlink)
                    .is_none()
                {
                    return;
                }
                let want: &[u8] = match &node.linktarget_raw {
                    Some(raw) => raw,
                    None => node.linktarget.as_bytes(),
                };
                match fs::read_link(self.planned.target_path(loc)) {
                    Ok(found) if found.as_os_str().as_bytes() == want => {}
                    Ok(found) => self.report(
                        loc,
                        Difference::LinkTarget {
                            expected: String::from_utf8_lossy(want).into_owned(),
                            found: found.to_string_lossy().into_owned(),
                        },
                    ),
                    Err(e) => self.report(
                        loc,
                        Difference::Unreadable {
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            NodeType::Fifo => {
                if let Some(m) = self.inspect(loc, node.node_type, fs::FileType::is_fifo) {
                    self.check_mode(loc, node, &m);
                }
            }
            NodeType::Dev | NodeType::Chardev if self.as_root => {
                let is_kind = if node.node_type == NodeType::Dev {
                    fs::FileType::is_block_device
                } else {
                    fs::FileType::is_char_device
                };
                if let Some(m) = self.inspect(loc, node.node_type, is_kind) {
                    self.check_mode(loc, node, &m);
                    if m.rdev() != node.device {
                        let (expected, found) = (node.device, m.rdev());
                        self.report(loc, Difference::Device { expected, found });
                    }
                }
            }
            // Devices are restored only by root; nothing else is planned here.
            _ => {}
        }
    }

    /// Compare the regular files on worker threads, each with its own read buffer.
    fn check_files(&self, files: &[Item], threads: usize) -> Result<()> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            n => n,
        }
        .min(files.len().max(1));
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| -> Result<()> {
            let mut workers = Vec::new();
            for n in 0..threads {
                let worker = std::thread::Builder::new()
                    .name(format!("kstash-verify-{n}"))
                    .spawn_scoped(s, || {
                        let mut buf = vec![0u8; READ_BUFFER];
                        while let Some(item) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                            self.check_file(item, &mut buf);
                        }
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
                workers.push(worker);
            }
            for w in workers {
                w.join()
                    .map_err(|_| Error::Internal("verify worker thread panicked".into()))?;
            }
            Ok(())
        })
    }

    /// A hard link: the same inode as the file it links to, or else a file of its own that must
    /// match the snapshot all the same.
    fn check_link(&self, item: &Item, origin: &Item, buf: &mut [u8]) {
        let path = self.planned.target_path(&item.loc);
        let origin_path = self.planned.target_path(&origin.loc);
        if let (Ok(m), Ok(om)) = (fs::symlink_metadata(&path), fs::symlink_metadata(&origin_path))
            && m.is_file()
            && m.dev() == om.dev()
            && m.ino() == om.ino()
        {
            self.items.fetch_add(1, Ordering::Relaxed);
            self.files.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = &self.progress {
                p.add_item();
            }
            return;
        }
        self.check_file(item, buf);
    }

    fn check_file(&self, item: &Item, buf: &mut [u8]) {
        if let Some(p) = &self.progress {
            p.add_item();
        }
        let (loc, node) = (item.loc.as_str(), &item.node);
        let Some(m) = self.inspect(loc, NodeType::File, fs::FileType::is_file) else {
            return;
        };
        self.files.fetch_add(1, Ordering::Relaxed);
        self.check_mode(loc, node, &m);
        if m.len() != node.size {
            self.report(
                loc,
                Difference::Size {
                    expected: node.size,
                    found: m.len(),
                },
            );
            return;
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.planned.target_path(loc));
        let mut file = match file {
            Ok(file) => file,
            Err(e) => {
                let reason = e.to_string();
                return self.report(loc, Difference::Unreadable { reason });
            }
        };
        let ids = node.content.as_deref().unwrap_or_default();
        let hashed = hash_blob_ranges(self.repo, &mut file, ids, buf, |n| {
            self.bytes.fetch_add(n, Ordering::Relaxed);
            if let Some(p) = &self.progress {
                p.add_bytes(n);
            }
        });
        match hashed {
            Ok(covered) if covered != node.size => {
                self.report(loc, Difference::Trailing { offset: covered });
            }
            Ok(_) => {}
            Err(difference) => self.report(loc, difference),
        }
    }
}

/// Read `file` on from where it stands, one range per blob of `blobs` (its length from the
/// index) through `buf`, and compare each range's SHA-256 with the blob id. Returns the bytes
/// the blobs cover, or the first range that differs (also when the file ends early); `on_read`
/// is told of every piece read.
pub(crate) fn hash_blob_ranges(
    repo: &Repository,
    file: &mut impl Read,
    blobs: &[Id],
    buf: &mut [u8],
    mut on_read: impl FnMut(u64),
) -> Result<u64, Difference> {
    let mut offset = 0u64;
    for blob in blobs {
        let Some(at) = repo.index().get(BlobType::Data, blob) else {
            return Err(Difference::UnknownBlob { blob: *blob });
        };
        let length = u64::from(at.data_length());
        let differs = Difference::Content {
            offset,
            length,
            blob: *blob,
        };
        let mut hasher = Sha256::new();
        let mut left = length;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            match file.read_exact(&mut buf[..n]) {
                Ok(()) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(differs),
                Err(e) => {
                    let reason = e.to_string();
                    return Err(Difference::Unreadable { reason });
                }
            }
            on_read(n as u64);
            left -= n as u64;
        }
        if Id(hasher.finalize().into()) != *blob {
            return Err(differs);
        }
        offset += length;
    }
    Ok(offset)
}

/// How a node's kind is named in messages.
fn kind_of_node(t: NodeType) -> &'static str {
    match t {
        NodeType::File => "file",
        NodeType::Dir => "directory",
        NodeType::Symlink => "symlink",
        NodeType::Dev => "block device",
        NodeType::Chardev => "character device",
        NodeType::Fifo => "fifo",
        NodeType::Socket => "socket",
        NodeType::Irregular => "irregular file",
    }
}

/// How the kind of an item on disk is named in messages.
fn kind_on_disk(t: &fs::FileType) -> &'static str {
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "item"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archiver::{TreeBackupOptions, backup_tree};
    use crate::keys::KdfParams;
    use crate::repository::InitOptions;
    use crate::restore::restore_snapshot;
    use crate::{LocalBackend, RestoreSummary};
    use std::os::unix::fs::PermissionsExt;

    /// A local repository holding one tree backup of `src`, all in temporary directories.
    struct Fixture {
        dir: tempfile::TempDir,
        repo: Repository,
        snapshot: SnapshotEntry,
    }

    impl Fixture {
        fn src(&self) -> PathBuf {
            self.dir.path().join("src")
        }

        /// The snapshot path of the backed-up directory (the archiver stores absolute paths).
        fn src_in_snapshot(&self) -> String {
            self.src().to_string_lossy().into_owned()
        }

        /// Restore `subpath` into a new directory `name`.
        fn restore(&self, subpath: &str, name: &str, options: &RestoreOptions) -> (PathBuf, RestoreSummary) {
            let target = self.dir.path().join(name);
            let summary = restore_snapshot(&self.repo, &self.snapshot, subpath, &target, options).unwrap();
            (target, summary)
        }

        fn compare(&self, subpath: &str, target: &Path, options: &CompareOptions) -> TreeComparison {
            compare_restored_tree(&self.repo, &self.snapshot, subpath, target, options).unwrap()
        }
    }

    fn content(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `src/`: a 3 MB file (several blobs) with a hard link to it, a small file with mode 0640,
    /// an executable, an empty file two levels down, a symlink and a fifo.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub/deep")).unwrap();
        fs::write(src.join("big.bin"), content(3_000_000, 1)).unwrap();
        fs::hard_link(src.join("big.bin"), src.join("sub/big-link.bin")).unwrap();
        fs::write(src.join("sub/small.txt"), b"hello, verification\n").unwrap();
        chmod(&src.join("sub/small.txt"), 0o640);
        fs::write(src.join("run.sh"), b"#!/bin/sh\nexit 0\n").unwrap();
        chmod(&src.join("run.sh"), 0o755);
        fs::write(src.join("sub/deep/empty"), b"").unwrap();
        std::os::unix::fs::symlink("sub/small.txt", src.join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        chmod(&src.join("sub/deep"), 0o750);

        let be = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let init = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(be, "pw", init).unwrap();
        let backup = TreeBackupOptions {
            workers: 2,
            pack_size: 512 * 1024,
            lock: None,
            ..Default::default()
        };
        let sum = backup_tree(&repo, std::slice::from_ref(&src), &backup).unwrap();
        let snapshot = repo.find_snapshot(&sum.snapshot_id.to_hex()).unwrap();
        Fixture { dir, repo, snapshot }
    }

    fn no_lock() -> RestoreOptions {
        RestoreOptions {
            lock: None,
            ..Default::default()
        }
    }

    fn only(c: &TreeComparison, path_end: &str) -> Difference {
        let found: Vec<_> = c
            .mismatches
            .iter()
            .filter(|m| m.path.ends_with(path_end))
            .collect();
        assert_eq!(found.len(), 1, "one mismatch for {path_end} in {c}");
        found[0].difference.clone()
    }

    #[test]
    fn a_restored_snapshot_matches_its_tree_whole_or_from_a_sub_path() {
        let f = fixture();
        let (all, s) = f.restore("", "all", &no_lock());
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let c = f.compare("", &all, &CompareOptions::default());
        assert!(c.matches(), "{c}");
        assert_eq!(c.mismatches, vec![]);
        // big.bin and its hard link, small.txt, run.sh, empty.
        assert_eq!(c.files_checked, 5);
        let sizes = 3_000_000 + 20 + 17;
        assert_eq!(c.bytes_checked, sizes, "the hard link is not read twice");
        assert!(
            c.to_string()
                .starts_with("the restored copy matches the snapshot (5 files"),
            "{c}"
        );

        let sub = f.src_in_snapshot();
        let (part, _) = f.restore(&sub, "part", &no_lock());
        let progress = Arc::new(Progress::new());
        let options = CompareOptions {
            progress: Some(Arc::clone(&progress)),
            ..Default::default()
        };
        let c = f.compare(&sub, &part, &options);
        assert!(c.matches(), "{c}");
        assert_eq!((c.files_checked, c.bytes_checked), (5, sizes));
        assert_eq!((progress.total_items(), progress.total_bytes()), (5, sizes));
        assert_eq!((progress.items(), progress.bytes()), (5, sizes));
        // The directories restore left above the sub-path are not part of that restore.
        let c = f.compare(&format!("{sub}/sub"), &part, &CompareOptions::default());
        assert!(!c.matches(), "comparing with another sub-path differs");

        // A single file lands under its own name, as restore puts it.
        let file = format!("{sub}/run.sh");
        let (one, _) = f.restore(&file, "one", &no_lock());
        assert!(one.join("run.sh").is_file());
        let c = f.compare(&file, &one, &CompareOptions::default());
        assert!(c.matches(), "{c}");
        assert_eq!((c.files_checked, c.bytes_checked), (1, 17));
    }

    #[test]
    fn include_and_exclude_select_what_the_restore_selected() {
        let f = fixture();
        let sub = f.src_in_snapshot();
        let options = RestoreOptions {
            exclude: vec!["*.bin".into()],
            ..no_lock()
        };
        let (target, _) = f.restore(&sub, "t", &options);
        let c = f.compare(&sub, &target, &CompareOptions::for_restore(&options));
        assert!(c.matches(), "{c}");
        assert_eq!(c.files_checked, 3);
        let c = f.compare(&sub, &target, &CompareOptions::default());
        assert_eq!(c.mismatch_count, 2, "{c}");
        assert_eq!(only(&c, "/big.bin"), Difference::Missing { expected: "file" });
    }

    #[test]
    fn each_alteration_is_reported_naming_the_path() {
        let f = fixture();
        let sub = f.src_in_snapshot();
        let (t, _) = f.restore(&sub, "t", &no_lock());

        // One flipped byte in the middle of big.bin (shared with its hard link).
        let mut big = fs::read(t.join("big.bin")).unwrap();
        big[1_500_000] ^= 0x20;
        fs::write(t.join("big.bin"), &big).unwrap();
        chmod(&t.join("run.sh"), 0o700);
        fs::write(t.join("sub/small.txt"), b"hello, verification!\n").unwrap();
        fs::remove_file(t.join("sub/deep/empty")).unwrap();
        fs::write(t.join("sub/stray.txt"), b"not in the snapshot").unwrap();
        fs::create_dir(t.join("stray-dir")).unwrap();
        fs::write(t.join("stray-dir/inner"), b"x").unwrap();
        fs::remove_file(t.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.join("link")).unwrap();
        chmod(&t.join("sub/deep"), 0o700);
        fs::remove_file(t.join("pipe")).unwrap();
        fs::write(t.join("pipe"), b"").unwrap();

        let c = f.compare(&sub, &t, &CompareOptions::default());
        assert_eq!(c.mismatch_count, 9, "{c}");
        assert_eq!(c.mismatches.len(), 9);
        let Difference::Content { offset, length, blob } = only(&c, "/big.bin") else {
            panic!("content mismatch expected: {c}")
        };
        assert!(
            offset <= 1_500_000 && 1_500_000 < offset + length,
            "{offset}+{length}"
        );
        let node = crate::dump::find_node(&f.repo, &f.snapshot, &format!("{sub}/big.bin")).unwrap();
        assert!(node.content.unwrap().contains(&blob));
        assert_eq!(
            only(&c, "/run.sh"),
            Difference::Mode {
                expected: 0o755,
                found: 0o700
            }
        );
        assert_eq!(
            only(&c, "/sub/small.txt"),
            Difference::Size {
                expected: 20,
                found: 21
            }
        );
        assert_eq!(
            only(&c, "/sub/deep/empty"),
            Difference::Missing { expected: "file" }
        );
        assert_eq!(only(&c, "/sub/stray.txt"), Difference::Extra { found: "file" });
        assert_eq!(
            only(&c, "/stray-dir"),
            Difference::Extra { found: "directory" },
            "an extra directory is one difference, not one per item in it"
        );
        assert_eq!(
            only(&c, "/link"),
            Difference::LinkTarget {
                expected: "sub/small.txt".into(),
                found: "/etc/passwd".into()
            }
        );
        assert_eq!(
            only(&c, "/sub/deep"),
            Difference::Mode {
                expected: 0o750,
                found: 0o700
            }
        );
        assert_eq!(
            only(&c, "/pipe"),
            Difference::Kind {
                expected: "fifo",
                found: "file"
            }
        );

        // Messages name the snapshot path and read as sentences.
        let said = |end: &str| {
            c.mismatches
                .iter()
                .find(|m| m.path.ends_with(end))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            said("/big.bin"),
            format!(
                "{sub}/big.bin: content differs in bytes {offset}..{} (blob {})",
                offset + length,
                blob.short()
            )
        );
        assert_eq!(
            said("/run.sh"),
            format!("{sub}/run.sh: mode 0700, but 0755 in the snapshot")
        );
        assert_eq!(
            said("/sub/small.txt"),
            format!("{sub}/sub/small.txt: size 21 bytes, but 20 bytes in the snapshot")
        );
        assert_eq!(
            said("/empty"),
            format!("{sub}/sub/deep/empty: missing (a file in the snapshot)")
        );
        assert_eq!(
            said("/stray.txt"),
            format!("{sub}/sub/stray.txt: extra file, not in the snapshot")
        );
        assert_eq!(
            said("/link"),
            format!("{sub}/link: symlink to \"/etc/passwd\", but to \"sub/small.txt\" in the snapshot")
        );
        assert_eq!(
            said("/pipe"),
            format!("{sub}/pipe: restored as a file, but the snapshot has a fifo")
        );
        let summary = c.to_string();
        assert!(
            summary.starts_with("9 differences from the snapshot: "),
            "{summary}"
        );
        assert!(summary.ends_with("; and 6 more"), "{summary}");
        assert_eq!(c.mismatches[0].target, t.join("big.bin"));
    }

    #[test]
    fn a_replaced_hard_link_is_checked_as_a_file_of_its_own() {
        let f = fixture();
        let sub = f.src_in_snapshot();
        let (t, _) = f.restore(&sub, "t", &no_lock());
        let link = t.join("sub/big-link.bin");
        let mut data = fs::read(&link).unwrap();
        fs::remove_file(&link).unwrap();
        data[10] ^= 1;
        fs::write(&link, &data).unwrap();
        chmod(&link, fs::metadata(t.join("big.bin")).unwrap().mode() & 0o7777);
        let c = f.compare(&sub, &t, &CompareOptions::default());
        assert_eq!(c.mismatch_count, 1, "{c}");
        assert!(
            matches!(
                only(&c, "/sub/big-link.bin"),
                Difference::Content { offset: 0, .. }
            ),
            "{c}"
        );
    }

    #[test]
    fn mismatches_beyond_the_limit_are_counted_not_kept() {
        let f = fixture();
        let sub = f.src_in_snapshot();
        let (t, _) = f.restore(&sub, "t", &no_lock());
        for i in 0..7 {
            fs::write(t.join(format!("extra-{i}")), b"x").unwrap();
        }
        let options = CompareOptions {
            max_mismatches: 3,
            threads: 1,
            ..Default::default()
        };
        let c = f.compare(&sub, &t, &options);
        assert_eq!((c.mismatch_count, c.mismatches.len()), (7, 3));
        assert!(c.to_string().ends_with("; and 4 more"), "{c}");
    }

    #[test]
    fn a_damaged_pack_fails_the_restore_of_its_file_naming_the_pack() {
        let f = fixture();
        let sub = f.src_in_snapshot();
        let node = crate::dump::find_node(&f.repo, &f.snapshot, &format!("{sub}/big.bin")).unwrap();
        // The repository's chunker polynomial is random, so the file has one chunk or several:
        // damage its last one.
        let blob = *node.content.as_ref().unwrap().last().unwrap();
        let at = f.repo.index().get(BlobType::Data, &blob).unwrap();
        let pack = at.pack.to_hex();
        let pack_file = f.dir.path().join("repo/data").join(&pack[..2]).join(&pack);
        // Flip one byte in place (the backend may hold the pack open).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pack_file)
            .unwrap();
        let mut byte = [0u8; 1];
        let pos = u64::from(at.offset) + 40;
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, pos).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 1], pos).unwrap();
        drop(file);

        let (t, s) = f.restore(&sub, "t", &no_lock());
        // The file's error, then its hard link's (the file it links to was not restored).
        assert_eq!(s.errors.len(), 2, "{:?}", s.errors);
        let err = s.errors[0].to_string();
        assert!(matches!(s.errors[0], Error::RestoreData { .. }), "{err}");
        assert!(err.contains(&pack), "the restore error names the pack: {err}");
        assert!(err.contains("/big.bin"), "{err}");

        let c = f.compare(&sub, &t, &CompareOptions::default());
        // Neither the file (removed when its data could not be read, so nothing partial passes
        // for restored data) nor its hard link is there.
        assert_eq!(only(&c, "/big.bin"), Difference::Missing { expected: "file" });
        assert_eq!(
            only(&c, "/big-link.bin"),
            Difference::Missing { expected: "file" }
        );
        assert_eq!(c.mismatch_count, 2, "{c}");
    }
}
