//! Backup of directory trees, as `restic backup PATH…` does: the snapshot's root tree reaches
//! every given path through its real parent directories; files, directories, symlinks, devices,
//! fifos and sockets are recorded with mode, owners, times, inode, link count and xattrs; a
//! parent snapshot's file content is reused when size, mtime, ctime and inode are unchanged.
//!
//! ```text
//! walker (calling thread, depth first, sorted) ─▶ file queue ─▶ N file workers: read, chunk,
//!     hash, dedup, zstd, encrypt ─▶ Saver (open packs, uploaders, index files)
//! directories: when all their entries are done, a tree blob ─▶ Saver
//! ```
//!
//! One file is read by one worker (files are the unit of parallelism). Items that cannot be read
//! are counted and reported in the summary (and left out of the snapshot), never skipped silently.
//! When progress counters are given, a scanner thread walks the paths ahead (as restic's scanner
//! does) and sets their totals, so a front end can show a percentage.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backup_stream::repo_chunker;
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::gojson::GoTime;
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions};
use crate::pack::DEFAULT_PACK_SIZE;
use crate::pattern::PatternSet;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::saver::{Saver, SaverOptions, compressor, locked, with_saver};
use crate::snapshot::{Snapshot, SnapshotSummary};
use crate::tree::{ExtendedAttribute, Node, NodeType, Tree, mode};

/// Which snapshot to compare files with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The latest snapshot of this host with the same paths (restic's default).
    #[default]
    Latest,
    /// Read every file again.
    None,
    /// This snapshot (id, prefix or `latest`).
    Snapshot(String),
}

/// Options of a tree backup.
#[derive(Debug, Clone)]
pub struct TreeBackupOptions {
    /// restic-style exclude patterns (see [`crate::pattern`]).
    pub excludes: Vec<String>,
    /// Parent snapshot for change detection.
    pub parent: ParentChoice,
    /// Snapshot tags.
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    pub hostname: Option<String>,
    /// Snapshot time (default: when the backup starts).
    pub time: Option<GoTime>,
    /// Treat a file with a new inode number but the same size and times as unchanged.
    pub ignore_inode: bool,
    /// Treat a file with a new ctime but the same size, mtime and inode as unchanged.
    pub ignore_ctime: bool,
    /// File worker threads (0: one per core).
    pub workers: usize,
    /// Pack size target in bytes.
    pub pack_size: usize,
    /// Concurrent pack uploads.
    pub uploaders: usize,
    /// The shared lock held for the whole backup (`None`: the caller takes care of locking).
    pub lock: Option<LockOptions>,
    /// Counters to update as files are read (bytes, files).
    pub progress: Option<Arc<Progress>>,
}

impl Default for TreeBackupOptions {
    fn default() -> Self {
        TreeBackupOptions {
            excludes: Vec::new(),
            parent: ParentChoice::Latest,
            tags: Vec::new(),
            hostname: None,
            time: None,
            ignore_inode: false,
            ignore_ctime: false,
            workers: 0,
            pack_size: DEFAULT_PACK_SIZE,
            uploaders: 2,
            lock: Some(LockOptions::default()),
            progress: None,
        }
    }
}

/// An item that could not be backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Its path on this machine.
    pub path: String,
    /// Why.
    pub message: String,
}

/// What a tree backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeBackupSummary {
    /// The new snapshot.
    pub snapshot_id: Id,
    /// Its root tree.
    pub tree_id: Id,
    /// The snapshot compared with, if any.
    pub parent: Option<Id>,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files whose content was read again because they changed.
    pub files_changed: u64,
    /// Files taken from the parent without reading them.
    pub files_unmodified: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose tree changed.
    pub dirs_changed: u64,
    /// Directories with the parent's tree.
    pub dirs_unmodified: u64,
    /// Files in the snapshot.
    pub total_files: u64,
    /// Bytes of those files.
    pub total_bytes: u64,
    /// Bytes read from files (unmodified files are not read).
    pub bytes_read: u64,
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes of new blobs as stored.
    pub bytes_stored: u64,
    /// Pack files written.
    pub packs_written: u64,
    /// Items left out because they could not be read.
    pub errors: Vec<ItemError>,
    /// Wall time.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counts {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
}

/// Names of users and groups, read once from `/etc/passwd` and `/etc/group`.
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn load() -> Names {
        fn table(path: &str) -> HashMap<u32, String> {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            text.lines()
                .filter_map(|line| {
                    let mut f = line.split(':');
                    let name = f.next()?;
                    let _ = f.next()?;
                    let id = f.next()?.parse().ok()?;
                    Some((id, name.to_string()))
                })
                .collect()
        }
        Names {
            users: table("/etc/passwd"),
            groups: table("/etc/group"),
        }
    }
}

/// State shared by the walker and the workers.
struct Ctx<'a, 'r> {
    saver: &'a Saver<'r>,
    excludes: PatternSet,
    names: Names,
    tz: jiff::tz::TimeZone,
    ignore_inode: bool,
    ignore_ctime: bool,
    counts: Counts,
    errors: Mutex<Vec<ItemError>>,
    progress: Option<Arc<Progress>>,
}

impl Ctx<'_, '_> {
    fn error(&self, path: &Path, message: impl std::fmt::Display) {
        let e = ItemError {
            path: path.display().to_string(),
            message: message.to_string(),
        };
        tracing::warn!(path = %e.path, error = %e.message, "cannot back up item");
        locked(&self.errors).push(e);
    }

    fn time(&self, secs: i64, nanos: i64) -> GoTime {
        let ts = jiff::Timestamp::new(secs, nanos as i32).unwrap_or_default();
        GoTime {
            timestamp: ts,
            offset_seconds: self.tz.to_offset(ts).seconds(),
        }
    }

    /// A node with the metadata of `meta` (no content or subtree yet).
    fn node(&self, name: String, path: &Path, meta: &Metadata) -> Node {
        let ft = meta.file_type();
        let node_type = if ft.is_dir() {
            NodeType::Dir
        } else if ft.is_symlink() {
            NodeType::Symlink
        } else if ft.is_file() {
            NodeType::File
        } else if ft.is_block_device() {
            NodeType::Dev
        } else if ft.is_char_device() {
            NodeType::Chardev
        } else if ft.is_fifo() {
            NodeType::Fifo
        } else if ft.is_socket() {
            NodeType::Socket
        } else {
            NodeType::Irregular
        };
        let mtime = self.time(meta.mtime(), meta.mtime_nsec());
        let mut n = Node::file(name, 0, mtime, meta.uid(), meta.gid());
        n.node_type = node_type;
        n.mode = mode::from_unix(meta.mode());
        n.atime = self.time(meta.atime(), meta.atime_nsec());
        n.ctime = self.time(meta.ctime(), meta.ctime_nsec());
        n.user = self.names.users.get(&meta.uid()).cloned().unwrap_or_default();
        n.group = self.names.groups.get(&meta.gid()).cloned().unwrap_or_default();
        n.inode = meta.ino();
        n.device_id = meta.dev();
        n.links = meta.nlink();
        n.content = None;
        match node_type {
            NodeType::File => {
                n.size = meta.len();
                n.content = Some(Vec::new());
            }
            NodeType::Dev | NodeType::Chardev => n.device = meta.rdev(),
            _ => {}
        }
        n.extended_attributes = read_xattrs(path);
        n
    }

    /// Whether `node` (just read from disk) is unchanged from the parent's `old`.
    fn unchanged(&self, node: &Node, old: &Node) -> bool {
        old.node_type == NodeType::File
            && old.size == node.size
            && old.mtime.timestamp == node.mtime.timestamp
            && (self.ignore_ctime || old.ctime.timestamp == node.ctime.timestamp)
            && (self.ignore_inode || old.inode == node.inode)
            && old.content.as_ref().is_some_and(|c| {
                let index = self.saver.repo().index();
                c.iter().all(|id| index.contains(BlobType::Data, id))
            })
    }
}

/// Extended attributes of `path` (not following symlinks); none where unsupported.
fn read_xattrs(path: &Path) -> Vec<ExtendedAttribute> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = OsStr::from_bytes(name);
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut value) {
            value.truncate(len);
            out.push(ExtendedAttribute {
                name: name.to_string_lossy().into_owned(),
                value,
            });
        }
    }
    out
}

/// A file for a worker: where it is, its node (metadata), the parent's node, where to answer.
struct FileJob {
    path: PathBuf,
    node: Node,
    old: Option<Node>,
    slot: usize,
    reply: Sender<(usize, Option<Node>)>,
}

/// The part of the root tree above the targets: names down to each target path.
#[derive(Debug, Default)]
struct Virtual {
    /// Set when this is a target itself (backed up whole).
    target: bool,
    children: BTreeMap<Vec<u8>, Virtual>,
}

/// Absolute, lexically normalised form of a path (`.` and `..` resolved without following links).
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)
        .map_err(|e| Error::Invalid(format!("backup path {}: {e}", path.display())))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

fn node_name(name: &OsStr) -> String {
    // restic 0.14 stores names as Go strings, which JSON writes lossily for non-UTF-8 bytes.
    name.to_string_lossy().into_owned()
}

/// Back up the trees (or files) at `paths` into a new snapshot.
pub fn backup_tree(
    repo: &Repository,
    paths: &[PathBuf],
    options: &TreeBackupOptions,
) -> Result<TreeBackupSummary> {
    let started = Instant::now();
    if paths.is_empty() {
        return Err(Error::Invalid("no paths to back up were given".into()));
    }
    let excludes = PatternSet::new(&options.excludes)?;
    let mut targets = Vec::new();
    for p in paths {
        let abs = absolute(p)?;
        std::fs::symlink_metadata(&abs).map_err(|e| {
            Error::Invalid(format!(
                "backup path {}: {e}; check the path exists and is readable",
                p.display()
            ))
        })?;
        targets.push(abs);
    }
    targets.sort();
    targets.dedup();
    let snapshot_paths: Vec<String> = targets.iter().map(|p| p.display().to_string()).collect();

    let repo_lock = lock::shared_and_fresh(repo, options.lock.as_ref())?;
    let hostname = options.hostname.clone().unwrap_or_else(crate::host::hostname);
    let parent = match &options.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(spec) => Some(repo.find_snapshot(spec)?),
        ParentChoice::Latest => {
            let mut want = snapshot_paths.clone();
            want.sort();
            repo.list_snapshots()?
                .into_iter()
                .filter(|s| {
                    let mut have = s.snapshot.paths.clone();
                    have.sort();
                    s.snapshot.hostname == hostname && have == want
                })
                .max_by_key(|s| s.snapshot.time.timestamp)
        }
    };
    if let Some(p) = &parent {
        tracing::info!(parent = %p.id.short(), "using parent snapshot");
    }

    // As restic: relative paths (below the working directory) start the tree at their first
    // component (`src` for `backup src`); otherwise the tree starts at `/`.
    let cwd = absolute(Path::new("."))?;
    let base = if paths.iter().all(|p| p.is_relative())
        && targets.iter().all(|t| t.starts_with(&cwd) && *t != cwd)
    {
        cwd
    } else {
        PathBuf::from("/")
    };
    let mut root = Virtual::default();
    for t in &targets {
        let mut v = &mut root;
        let below = t.strip_prefix(&base).unwrap_or(t);
        for c in below.components() {
            if let Component::Normal(n) = c {
                if v.target {
                    break; // below another target: already included
                }
                v = v.children.entry(n.as_bytes().to_vec()).or_default();
            }
        }
        v.target = true;
        v.children.clear();
    }

    let time = options.time.unwrap_or_else(GoTime::now);
    let workers = if options.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        options.workers
    };
    let chunker = repo_chunker(repo)?;
    let saver_options = SaverOptions {
        pack_size: options.pack_size,
        uploaders: options.uploaders,
    };
    // Set once the walker is done: the scanner's totals are no longer worth finishing.
    let scan_stop = AtomicBool::new(false);
    let ((tree_id, counts, errors), stats) = with_saver(repo, &saver_options, |saver| {
        let ctx = Ctx {
            saver,
            excludes,
            names: Names::load(),
            tz: jiff::tz::TimeZone::system(),
            ignore_inode: options.ignore_inode,
            ignore_ctime: options.ignore_ctime,
            counts: Counts::default(),
            errors: Mutex::new(Vec::new()),
            progress: options.progress.clone(),
        };
        let parent_tree = match &parent {
            Some(p) => Some(repo.load_tree(&p.snapshot.tree)?),
            None => None,
        };
        let tree_id = std::thread::scope(|s| {
            let (tx, rx) = sync_channel::<FileJob>(workers * 4);
            let rx = Arc::new(Mutex::new(rx));
            let mut handles = Vec::new();
            for i in 0..workers {
                let rx = Arc::clone(&rx);
                let ctx = &ctx;
                let chunker = chunker.clone();
                handles.push(
                    std::thread::Builder::new()
                        .name(format!("kstash-file-{i}"))
                        .spawn_scoped(s, move || file_worker(ctx, &rx, chunker)),
                );
            }
            drop(rx);
            if let Some(progress) = ctx.progress.as_deref() {
                let (targets, excludes, stop) = (&targets, &ctx.excludes, &scan_stop);
                if let Err(e) = std::thread::Builder::new()
                    .name("kstash-scan".into())
                    .spawn_scoped(s, move || scan_totals(targets, excludes, progress, stop))
                {
                    tracing::warn!(error = %e, "cannot start the scanner; progress shows no totals");
                }
            }
            let walker = Walker { ctx: &ctx, jobs: tx };
            let res = walker.virtual_dir(&root, &base, parent_tree.as_ref());
            drop(walker);
            scan_stop.store(true, Ordering::Relaxed);
            for h in handles {
                match h {
                    Ok(h) => {
                        if h.join().is_err() {
                            saver.fail(Error::Internal("a file worker panicked".into()));
                        }
                    }
                    Err(e) => saver.fail(Error::Internal(format!("cannot start a thread: {e}"))),
                }
            }
            res
        })?;
        if saver.aborted() {
            return Err(Error::Internal("backup aborted".into()));
        }
        let errors = std::mem::take(&mut *locked(&ctx.errors));
        Ok((tree_id, ctx.counts, errors))
    })?;

    let c = |a: &AtomicU64| a.load(Ordering::SeqCst);
    if let Some(p) = &options.progress {
        // What was backed up is the total now (files may have come or gone since the scan).
        p.set_totals(c(&counts.total_bytes), c(&counts.total_files));
    }
    let mut sn = Snapshot::new(tree_id, snapshot_paths);
    sn.time = time;
    sn.hostname = hostname;
    sn.tags = options.tags.clone();
    sn.excludes = options.excludes.clone();
    sn.parent = parent.as_ref().map(|p| p.id);
    let summary = TreeBackupSummary {
        snapshot_id: Id::default(),
        tree_id,
        parent: sn.parent,
        files_new: c(&counts.files_new),
        files_changed: c(&counts.files_changed),
        files_unmodified: c(&counts.files_unmodified),
        dirs_new: c(&counts.dirs_new),
        dirs_changed: c(&counts.dirs_changed),
        dirs_unmodified: c(&counts.dirs_unmodified),
        total_files: c(&counts.total_files),
        total_bytes: c(&counts.total_bytes),
        bytes_read: c(&counts.bytes_read),
        data_blobs: stats.data_blobs,
        tree_blobs: stats.tree_blobs,
        bytes_added: stats.bytes_added,
        bytes_stored: stats.bytes_stored,
        packs_written: stats.packs,
        errors,
        elapsed: Duration::ZERO,
    };
    sn.summary = Some(SnapshotSummary {
        backup_start: time,
        backup_end: GoTime::now(),
        files_new: summary.files_new,
        files_changed: summary.files_changed,
        files_unmodified: summary.files_unmodified,
        dirs_new: summary.dirs_new,
        dirs_changed: summary.dirs_changed,
        dirs_unmodified: summary.dirs_unmodified,
        data_blobs: summary.data_blobs as i64,
        tree_blobs: summary.tree_blobs as i64,
        data_added: summary.bytes_added,
        data_added_packed: summary.bytes_stored,
        total_files_processed: summary.total_files,
        total_bytes_processed: summary.total_bytes,
    });
    if let Some(held) = &repo_lock {
        held.check()?;
    }
    let snapshot_id = repo.save_snapshot(&sn)?;
    tracing::info!(
        snapshot = %snapshot_id.short(),
        files = summary.total_files,
        new = summary.files_new,
        changed = summary.files_changed,
        unmodified = summary.files_unmodified,
        errors = summary.errors.len(),
        "tree backup done"
    );
    Ok(TreeBackupSummary {
        snapshot_id,
        elapsed: started.elapsed(),
        ..summary
    })
}

struct Walker<'c, 'a, 'r> {
    ctx: &'c Ctx<'a, 'r>,
    jobs: SyncSender<FileJob>,
}

impl Walker<'_, '_, '_> {
    /// A directory of the virtual part: its children are targets or lead to targets.
    fn virtual_dir(&self, v: &Virtual, real: &Path, old: Option<&Tree>) -> Result<Id> {
        let mut tree = Tree::default();
        for (name, child) in &v.children {
            let path = real.join(OsStr::from_bytes(name));
            let name = node_name(OsStr::from_bytes(name));
            let old_node = old.and_then(|t| t.find(&name));
            if child.target {
                if let Some(n) = self.entry(&path, name, old_node)? {
                    tree.insert(n);
                }
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.ctx.error(&path, e);
                    continue;
                }
            };
            let mut node = self.ctx.node(name, &path, &meta);
            node.node_type = NodeType::Dir;
            node.content = None;
            let old_tree = self.old_subtree(old_node)?;
            let id = self.virtual_dir(child, &path, old_tree.as_ref())?;
            node.subtree = Some(id);
            tree.insert(node);
        }
        self.save_tree(&tree)
    }

    fn old_subtree(&self, old: Option<&Node>) -> Result<Option<Tree>> {
        match old
            .filter(|n| n.node_type == NodeType::Dir)
            .and_then(|n| n.subtree)
        {
            Some(id) => self.ctx.saver.repo().load_tree(&id).map(Some),
            None => Ok(None),
        }
    }

    fn save_tree(&self, tree: &Tree) -> Result<Id> {
        let blob = tree.to_blob().map_err(|e| Error::json("tree", e))?;
        // Trees are small and few: compress with a throwaway context rather than keep one.
        let mut comp = compressor(self.ctx.saver.repo())?;
        let (id, _) = self.ctx.saver.save(BlobType::Tree, &blob, comp.as_mut())?;
        Ok(id)
    }

    /// One item of the real file system; `None` when left out (excluded or unreadable).
    fn entry(&self, path: &Path, name: String, old: Option<&Node>) -> Result<Option<Node>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.ctx.error(path, e);
                return Ok(None);
            }
        };
        let mut node = self.ctx.node(name, path, &meta);
        match node.node_type {
            NodeType::Dir => {
                let old_tree = self.old_subtree(old)?;
                let Some(id) = self.real_dir(path, old_tree.as_ref())? else {
                    return Ok(None);
                };
                let counts = &self.ctx.counts;
                match old.and_then(|o| o.subtree) {
                    Some(o) if o == id => counts.dirs_unmodified.fetch_add(1, Ordering::Relaxed),
                    Some(_) => counts.dirs_changed.fetch_add(1, Ordering::Relaxed),
                    None => counts.dirs_new.fetch_add(1, Ordering::Relaxed),
                };
                node.subtree = Some(id);
            }
            NodeType::File => {
                // A file given as a target: read by a worker like any other.
                let (tx, rx) = channel();
                let job = FileJob {
                    path: path.to_path_buf(),
                    node,
                    old: old.cloned(),
                    slot: 0,
                    reply: tx,
                };
                if self.jobs.send(job).is_err() {
                    return Err(Error::Internal("file workers are gone".into()));
                }
                let mut slots = [None];
                collect_files(&rx, &mut slots, 1)?;
                return Ok(slots[0].take());
            }
            NodeType::Symlink => match std::fs::read_link(path) {
                Ok(target) => {
                    let bytes = target.as_os_str().as_bytes();
                    node.linktarget = String::from_utf8_lossy(bytes).into_owned();
                    if std::str::from_utf8(bytes).is_err() {
                        node.linktarget_raw = Some(bytes.to_vec());
                    }
                }
                Err(e) => {
                    self.ctx.error(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    /// A directory of the real file system; `None` when it cannot be listed.
    fn real_dir(&self, dir: &Path, old: Option<&Tree>) -> Result<Option<Id>> {
        let mut entries: Vec<(Vec<u8>, PathBuf)> = match std::fs::read_dir(dir) {
            Ok(rd) => {
                let mut v = Vec::new();
                for e in rd {
                    match e {
                        Ok(e) => v.push((e.file_name().as_bytes().to_vec(), e.path())),
                        Err(e) => self.ctx.error(dir, e),
                    }
                }
                v
            }
            Err(e) => {
                self.ctx.error(dir, e);
                return Ok(None);
            }
        };
        entries.sort();
        let mut nodes: Vec<Option<Node>> = Vec::with_capacity(entries.len());
        let (reply_tx, reply_rx) = channel();
        let mut pending = 0usize;
        for (name, path) in entries {
            if self.ctx.saver.aborted() {
                return Err(Error::Internal("backup aborted".into()));
            }
            let text = path.to_string_lossy();
            if !self.ctx.excludes.is_empty() && self.ctx.excludes.matches(&text) {
                tracing::debug!(path = %text, "excluded");
                continue;
            }
            let name = node_name(OsStr::from_bytes(&name));
            let old_node = old.and_then(|t| t.find(&name));
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.ctx.error(&path, e);
                    continue;
                }
            };
            if meta.file_type().is_file() {
                let node = self.ctx.node(name, &path, &meta);
                let job = FileJob {
                    path,
                    node,
                    old: old_node.cloned(),
                    slot: nodes.len(),
                    reply: reply_tx.clone(),
                };
                nodes.push(None);
                pending += 1;
                if self.jobs.send(job).is_err() {
                    return Err(Error::Internal("file workers are gone".into()));
                }
            } else {
                nodes.push(self.entry(&path, name, old_node)?);
            }
        }
        drop(reply_tx);
        collect_files(&reply_rx, &mut nodes, pending)?;
        let mut tree = Tree::default();
        for n in nodes.into_iter().flatten() {
            tree.insert(n);
        }
        self.save_tree(&tree).map(Some)
    }
}

/// Walk `targets` (skipping what `excludes` matches, not following symlinks) and set the number
/// and bytes of their regular files as the totals of `progress`, once the walk is complete;
/// give up when `stop` is set.
fn scan_totals(targets: &[PathBuf], excludes: &PatternSet, progress: &Progress, stop: &AtomicBool) {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack: Vec<PathBuf> = targets.to_vec();
    while let Some(path) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            bytes += meta.len();
            files += 1;
        } else if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            for e in entries.flatten() {
                let p = e.path();
                if excludes.is_empty() || !excludes.matches(&p.to_string_lossy()) {
                    stack.push(p);
                }
            }
        }
    }
    progress.set_totals(bytes, files);
}

fn collect_files(
    rx: &Receiver<(usize, Option<Node>)>,
    nodes: &mut [Option<Node>],
    pending: usize,
) -> Result<()> {
    for _ in 0..pending {
        match rx.recv() {
            Ok((slot, node)) => nodes[slot] = node,
            Err(_) => return Err(Error::Internal("a file worker stopped early".into())),
        }
    }
    Ok(())
}

fn file_worker(ctx: &Ctx<'_, '_>, rx: &Mutex<Receiver<FileJob>>, mut chunker: Chunker) {
    let mut comp = match compressor(ctx.saver.repo()) {
        Ok(c) => c,
        Err(e) => return ctx.saver.fail(e),
    };
    let mut buf = vec![0u8; 512 * 1024];
    loop {
        let job = locked(rx).recv();
        let Ok(job) = job else { return };
        let FileJob {
            path,
            mut node,
            old,
            slot,
            reply,
        } = job;
        let result = if ctx.saver.aborted() {
            None
        } else if let Some(old) = old.as_ref().filter(|o| ctx.unchanged(&node, o)) {
            node.content = old.content.clone();
            ctx.counts.files_unmodified.fetch_add(1, Ordering::Relaxed);
            Some(node)
        } else {
            match read_file(ctx, &path, &mut chunker, comp.as_mut(), &mut buf) {
                Ok((content, size)) => {
                    node.content = Some(content);
                    node.size = size;
                    let c = &ctx.counts;
                    if old.is_some() {
                        c.files_changed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.files_new.fetch_add(1, Ordering::Relaxed);
                    }
                    c.bytes_read.fetch_add(size, Ordering::Relaxed);
                    Some(node)
                }
                Err(FileError::Read(e)) => {
                    ctx.error(&path, e);
                    None
                }
                Err(FileError::Save(e)) => {
                    ctx.saver.fail(e);
                    None
                }
            }
        };
        if let Some(n) = &result {
            ctx.counts.total_files.fetch_add(1, Ordering::Relaxed);
            ctx.counts.total_bytes.fetch_add(n.size, Ordering::Relaxed);
            if let Some(p) = &ctx.progress {
                p.add_item();
                p.add_bytes(n.size);
            }
        }
        let _ = reply.send((slot, result));
    }
}

enum FileError {
    /// The file could not be read: reported, the backup goes on.
    Read(std::io::Error),
    /// The repository failed: the backup stops.
    Save(Error),
}

/// Read, chunk and save one file; returns its blob ids and its size as read.
fn read_file(
    ctx: &Ctx<'_, '_>,
    path: &Path,
    chunker: &mut Chunker,
    mut comp: Option<&mut zstd::bulk::Compressor<'static>>,
    buf: &mut [u8],
) -> std::result::Result<(Vec<Id>, u64), FileError> {
    let mut file = std::fs::File::open(path).map_err(FileError::Read)?;
    chunker.reset();
    let mut content = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut save = |data: &[u8], content: &mut Vec<Id>| -> std::result::Result<(), FileError> {
        let (id, _) = ctx
            .saver
            .save(BlobType::Data, data, comp.as_deref_mut())
            .map_err(FileError::Save)?;
        content.push(id);
        Ok(())
    };
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileError::Read(e)),
        };
        size += n as u64;
        let mut pos = 0;
        while pos < n {
            match chunker.next_boundary(&buf[pos..n]) {
                Some(k) => {
                    cur.extend_from_slice(&buf[pos..pos + k]);
                    pos += k;
                    save(&cur, &mut content)?;
                    cur.clear();
                }
                None => {
                    cur.extend_from_slice(&buf[pos..n]);
                    break;
                }
            }
        }
    }
    if !cur.is_empty() {
        save(&cur, &mut content)?;
    }
    Ok((content, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Repository {
        crate::repository::memory_repo(2).1
    }

    fn opts() -> TreeBackupOptions {
        TreeBackupOptions {
            workers: 2,
            pack_size: 256 * 1024,
            ..Default::default()
        }
    }

    fn try_find(repo: &Repository, root: Id, path: &Path) -> Option<Node> {
        let mut tree = repo.load_tree(&root).unwrap();
        let comps: Vec<_> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        for (i, c) in comps.iter().enumerate() {
            let node = tree.find(c)?.clone();
            if i + 1 == comps.len() {
                return Some(node);
            }
            tree = repo.load_tree(&node.subtree?).unwrap();
        }
        None
    }

    fn find(repo: &Repository, root: Id, path: &Path) -> Node {
        try_find(repo, root, path).unwrap_or_else(|| panic!("{} not in the snapshot", path.display()))
    }

    #[test]
    fn progress_counts_every_file_and_ends_at_the_scanned_totals_and_a_restore_reports_the_same() {
        let repo = repo();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), vec![1u8; 70_000]).unwrap();
        std::fs::write(d.join("sub/b"), vec![2u8; 30_000]).unwrap();
        std::fs::write(d.join("skip.log"), b"x").unwrap();
        let progress = Arc::new(Progress::new());
        let options = TreeBackupOptions {
            excludes: vec!["*.log".into()],
            progress: Some(Arc::clone(&progress)),
            ..opts()
        };
        let sum = backup_tree(&repo, &[d.to_path_buf()], &options).unwrap();
        assert_eq!((progress.bytes(), progress.items()), (100_000, 2));
        assert_eq!((progress.total_bytes(), progress.total_items()), (100_000, 2));

        let scanned = Progress::new();
        let excludes = PatternSet::new(&["*.log".to_string()]).unwrap();
        scan_totals(&[d.to_path_buf()], &excludes, &scanned, &AtomicBool::new(false));
        assert_eq!(
            (scanned.total_bytes(), scanned.total_items()),
            (100_000, 2),
            "the scanner honours the excludes"
        );

        let restored = Arc::new(Progress::new());
        let target = tempfile::tempdir().unwrap();
        let ropts = crate::restore::RestoreOptions {
            progress: Some(Arc::clone(&restored)),
            lock: None,
            ..Default::default()
        };
        crate::restore::restore(&repo, &sum.snapshot_id.to_hex(), target.path(), &ropts).unwrap();
        assert_eq!((restored.total_bytes(), restored.total_items()), (100_000, 2));
        assert_eq!((restored.bytes(), restored.items()), (100_000, 2));
    }

    #[test]
    fn absolute_paths_are_normalised() {
        assert_eq!(absolute(Path::new("/a/./b/../c")).unwrap(), PathBuf::from("/a/c"));
        assert_eq!(absolute(Path::new("/../x")).unwrap(), PathBuf::from("/x"));
    }

    #[test]
    fn parent_reuse_and_change_detection() {
        let repo = repo();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/deep")).unwrap();
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::write(d.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
        std::fs::write(d.join("sub/deep/c"), b"c").unwrap();
        std::fs::write(d.join("skip.log"), b"x").unwrap();
        let options = TreeBackupOptions {
            excludes: vec!["*.log".into()],
            ..opts()
        };
        let first = backup_tree(&repo, &[d.to_path_buf()], &options).unwrap();
        assert_eq!((first.files_new, first.total_files), (3, 3));
        assert_eq!(first.parent, None);
        assert!(first.errors.is_empty());
        let node = find(&repo, first.tree_id, &d.join("sub/b.bin"));
        assert_eq!(node.size, 300_000);
        assert!(try_find(&repo, first.tree_id, &d.join("skip.log")).is_none());

        // Unchanged: nothing is read again. (Trees may change once: reading updated atimes.)
        let second = backup_tree(&repo, &[d.to_path_buf()], &options).unwrap();
        assert_eq!(second.parent, Some(first.snapshot_id));
        assert_eq!(
            (second.files_unmodified, second.bytes_read, second.data_blobs),
            (3, 0, 0)
        );
        let again = backup_tree(&repo, &[d.to_path_buf()], &options).unwrap();
        // (The root tree holds /tmp's times, which other tests change; compare our directory.)
        assert_eq!(
            find(&repo, again.tree_id, d).subtree,
            find(&repo, second.tree_id, d).subtree,
            "nothing changed, not even atimes"
        );
        assert_eq!((again.data_blobs, again.files_unmodified), (0, 3));

        // One file changed: only it is read; its directory and the ones above change.
        std::fs::write(d.join("sub/deep/c"), b"changed").unwrap();
        let third = backup_tree(&repo, &[d.to_path_buf()], &options).unwrap();
        assert_eq!((third.files_changed, third.files_unmodified), (1, 2));
        assert_eq!(third.bytes_read, 7);
        assert!(third.dirs_changed >= 2, "{third:?}");
        let c = find(&repo, third.tree_id, &d.join("sub/deep/c"));
        assert_eq!(
            repo.load_blob(BlobType::Data, &c.content.unwrap()[0]).unwrap(),
            b"changed"
        );

        // No parent: everything is read again but deduplicated.
        let fourth = backup_tree(
            &repo,
            &[d.to_path_buf()],
            &TreeBackupOptions {
                parent: ParentChoice::None,
                ..options.clone()
            },
        )
        .unwrap();
        assert_eq!((fourth.files_new, fourth.data_blobs), (3, 0));
    }

    #[test]
    fn unreadable_items_are_reported_not_skipped_silently() {
        let repo = repo();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok"), b"ok").unwrap();
        // A missing target path is an error naming it.
        let err = backup_tree(&repo, &[d.join("missing")], &opts()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // A file whose read fails (even for root: /proc/self/mem at offset 0 is EIO) is reported
        // and left out; the rest is backed up.
        let mem = PathBuf::from("/proc/self/mem");
        let sum = backup_tree(&repo, &[d.to_path_buf(), mem.clone()], &opts()).unwrap();
        assert_eq!(sum.errors.len(), 1, "{:?}", sum.errors);
        assert_eq!(sum.errors[0].path, "/proc/self/mem");
        assert_eq!(sum.total_files, 1);
        let ok = find(&repo, sum.tree_id, &d.join("ok"));
        assert_eq!(ok.size, 2);
    }
}
