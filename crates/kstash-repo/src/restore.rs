//! Restore: a snapshot's tree (or one sub-path of it) written to a target directory, with
//! include/exclude patterns, permissions, owners (when root), times, symlinks, hard links, fifos,
//! devices (when root), extended attributes and sparse files; unchanged existing files are skipped.
//!
//! A restore runs in two halves. *Planning* walks the trees, applies the selection and checks
//! every name: a name that is empty, `.`, `..` or holds a `/` (a hostile or corrupted snapshot)
//! refuses the whole restore with [`Error::UnsafeName`] before anything is written. *Writing*
//! then creates the directories (owner-only at first), restores the regular files, then hard
//! links, symlinks and special files, and last the directories' metadata, deepest first, so their
//! times are not disturbed by their children.
//!
//! Regular files are written pack by pack, as restic's file restorer does, so each pack is read
//! once however many files share it:
//!
//! ```text
//!  files ─ workers: unchanged? clear, locate blobs ─▶ blobs grouped by pack (packs in the order
//!          files first need them), each pack's blobs by offset, close ones in runs
//!  packs ─ workers 1..N, a pack each: one request per run ─▶ decode each blob once
//!          ─▶ write it at every (file, offset) that needs it, all-zero blocks left as holes
//!          ─▶ the worker writing a file's last blob sets its length and metadata
//! ```
//!
//! Memory is bounded by the threads: each holds one run (at most 8 MiB) and one decoded blob.
//! Descriptors are bounded too: a file is in progress from its first pack to its last, and
//! packs may interleave thousands of files, so at most [`MAX_OPEN_FILES`] of them (fewer when
//! `RLIMIT_NOFILE` is low) are open at once; the least recently used is closed and reopened
//! when needed (`restore::open_files`), after checking it is still the file created for it.
//!
//! Nothing is ever written through a symlink: whatever is in the way of an item (a symlink left
//! in the target, a file where a directory belongs) is removed first, files are created anew with
//! `O_NOFOLLOW | O_EXCL` (so an existing hard link to a file elsewhere is never written through),
//! and times and owners of symlinks are set on the link itself.
//!
//! Failures of single items (a file that cannot be written, a blob missing from the repository)
//! do not stop the restore: they are collected in [`RestoreSummary::errors`]. A file whose data
//! cannot be read or written is removed again, so nothing partial stays under its name.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, CWD, FileType as NodKind, Mode, Timespec, Timestamps, XattrFlags};

use crate::blob_read::{self, Fetched, Located};
use crate::error::{Error, Result};
use crate::gojson::GoTime;
use crate::id::Id;
use crate::index::BlobType;
use crate::lock::{self, LockOptions, RepoLock};
use crate::pattern::PatternSet;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;
use crate::tree::{Node, NodeType, mode};

mod open_files;

pub use open_files::MAX_OPEN_FILES;
use open_files::OpenFiles;

/// Blocks of this size (aligned in the file) that are all zeros are left as holes.
pub const SPARSE_BLOCK: usize = 4096;
/// Most bytes read from a pack in one request when adjacent blobs of a file are coalesced.
const MAX_COALESCED_READ: u64 = 8 << 20;
/// Bytes of an existing file read at a time when its content is verified.
const VERIFY_BUFFER: usize = 256 << 10;
/// Deepest directory nesting accepted (far beyond `PATH_MAX`; guards the recursive walk).
const MAX_DEPTH: usize = 4096;

// ---- options and summary ----------------------------------------------------------------------

/// What to do with a file that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingFiles {
    /// Always rewrite it.
    Overwrite,
    /// Leave it alone when its size and modification time match the snapshot (only its
    /// owner, mode and times are restored).
    #[default]
    SkipUnchanged,
    /// As [`ExistingFiles::SkipUnchanged`], but also read it and compare the hash of every
    /// blob-sized piece with the snapshot's blob ids.
    Verify,
}

/// Options of [`restore`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore only what matches one of these patterns (and the directories leading to it).
    pub include: Vec<String>,
    /// Do not restore what matches one of these patterns (nor anything below it).
    pub exclude: Vec<String>,
    /// Handling of files already in the target.
    pub existing: ExistingFiles,
    /// Leave all-zero blocks as holes (restic's `--sparse`, on by default here).
    pub sparse: bool,
    /// Threads that read and decode packs and write files (0: the number of CPUs, at most 4;
    /// never more than the files that may be open at once, see [`MAX_OPEN_FILES`]).
    pub threads: usize,
    /// Hold a shared lock while restoring (`None`: no lock, like restic's `--no-lock`).
    pub lock: Option<LockOptions>,
    /// Counters to update as files are restored (bytes, files); the totals are set once the
    /// restore is planned.
    pub progress: Option<Arc<Progress>>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            existing: ExistingFiles::default(),
            sparse: true,
            threads: 0,
            lock: Some(LockOptions::default()),
            progress: None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// The snapshot restored.
    pub snapshot: Option<Id>,
    /// Regular files whose content was written.
    pub files: u64,
    /// Hard links created to files restored earlier.
    pub hardlinks: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Fifos and devices created.
    pub specials: u64,
    /// Content bytes of the written files (holes included).
    pub bytes: u64,
    /// Of [`RestoreSummary::bytes`], the zeros left as holes instead of being written.
    pub sparse_bytes: u64,
    /// Existing files left in place because they were unchanged.
    pub files_skipped: u64,
    /// Content bytes of those files.
    pub bytes_skipped: u64,
    /// Items that cannot be restored here: sockets, irregular files, devices when not root.
    pub nodes_skipped: u64,
    /// Things not restored exactly (an unsupported extended attribute, a skipped device, …).
    pub warnings: Vec<String>,
    /// Items that failed; the restore went on with the others.
    pub errors: Vec<Error>,
}

impl RestoreSummary {
    /// Whether every selected item was restored without error.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Split `SNAPSHOT[:SUBPATH]` (restic's `snapshotID:subfolder` syntax) into its parts.
pub fn split_snapshot_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((snapshot, sub)) => (snapshot, sub),
        None => (spec, ""),
    }
}

/// Restore snapshot `spec` (`latest`, an id or id prefix, optionally followed by `:SUBPATH`) into
/// `target` (created if missing), holding a shared lock unless `options.lock` is `None`. With a
/// sub-path naming a directory, its contents land directly in `target`; naming anything else,
/// that item lands in `target` under its own name. Include/exclude patterns are matched against
/// paths relative to what is restored (`/` is `target`).
pub fn restore(
    repo: &Repository,
    spec: &str,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreSummary> {
    let (snapshot, subpath) = split_snapshot_spec(spec);
    let held = lock::shared_and_fresh(repo, options.lock.as_ref())?;
    let sn = repo.find_snapshot(snapshot)?;
    run(repo, &sn, subpath, target, options, held.as_ref())
}

/// [`restore`] of a snapshot already found, for callers that hold a lock themselves
/// (`options.lock` is ignored).
pub fn restore_snapshot(
    repo: &Repository,
    snapshot: &SnapshotEntry,
    subpath: &str,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreSummary> {
    run(repo, snapshot, subpath, target, options, None)
}

/// What a restore of `subpath` of `sn` into `target` with the selection of `options` creates, as
/// planned before anything is written (nothing is written, no lock is taken): [`restore`] writes
/// exactly this, and [`crate::verify_tree`] compares a restored copy with it.
pub(crate) fn plan_restore(
    repo: &Repository,
    sn: &SnapshotEntry,
    subpath: &str,
    target: &Path,
    options: &RestoreOptions,
) -> Result<Planned> {
    let mut r = Restorer::new(repo, sn, subpath, target, options, None)?;
    let plan = r.plan(sn)?;
    Ok(Planned {
        plan,
        snapshot: r.snapshot,
        base: r.base,
        target: r.target,
    })
}

fn run(
    repo: &Repository,
    sn: &SnapshotEntry,
    subpath: &str,
    target: &Path,
    options: &RestoreOptions,
    held: Option<&RepoLock>,
) -> Result<RestoreSummary> {
    let mut r = Restorer::new(repo, sn, subpath, target, options, held)?;
    let plan = r.plan(sn)?;
    tracing::debug!(
        snapshot = %r.snapshot,
        target = %target.display(),
        dirs = plan.dirs.len(),
        files = plan.files.len(),
        hardlinks = plan.links.len(),
        others = plan.others.len(),
        "restore planned"
    );
    if let Some(p) = &options.progress {
        let bytes = plan.files.iter().map(|f| f.node.size).sum();
        p.set_totals(bytes, plan.files.len() as u64);
    }
    r.write(&plan)?;
    let st = &r.stats;
    let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let mut warnings = std::mem::take(r.warnings.get_mut().unwrap_or_else(|p| p.into_inner()));
    warnings.splice(0..0, plan.warnings);
    let summary = RestoreSummary {
        snapshot: Some(sn.id),
        files: get(&st.files),
        hardlinks: get(&st.hardlinks),
        dirs: get(&st.dirs),
        symlinks: get(&st.symlinks),
        specials: get(&st.specials),
        bytes: get(&st.bytes),
        sparse_bytes: get(&st.sparse_bytes),
        files_skipped: get(&st.files_skipped),
        bytes_skipped: get(&st.bytes_skipped),
        nodes_skipped: get(&st.nodes_skipped) + plan.nodes_skipped,
        warnings,
        errors: std::mem::take(r.errors.get_mut().unwrap_or_else(|p| p.into_inner())),
    };
    tracing::info!(
        snapshot = %r.snapshot,
        target = %target.display(),
        files = summary.files,
        dirs = summary.dirs,
        bytes = summary.bytes,
        skipped = summary.files_skipped,
        errors = summary.errors.len(),
        "restore finished"
    );
    Ok(summary)
}

// ---- names ------------------------------------------------------------------------------------

/// Why `name` may not be created inside a directory, or `None` if it may: names must be
/// non-empty, not `.` or `..`, and hold no `/` or NUL, so `dir/name` always stays inside `dir`.
pub fn unsafe_name_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty name")
    } else if name == "." || name == ".." {
        Some("refers to a directory itself or its parent")
    } else if name.contains('/') {
        Some("contains a path separator")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else {
        None
    }
}

// ---- include / exclude ------------------------------------------------------------------------

/// Include and exclude patterns together (restic's syntax, see [`crate::pattern`]), matched
/// against paths relative to what is restored (`/` is the target directory).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    include: PatternSet,
    exclude: PatternSet,
}

impl Selection {
    /// Compile the patterns (empty ones are ignored, as restic does).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        let set = |list: &[String]| {
            let non_empty: Vec<&str> = list
                .iter()
                .map(String::as_str)
                .filter(|p| !p.is_empty())
                .collect();
            PatternSet::new(&non_empty)
        };
        Ok(Selection {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    /// For the item at `path`: (restore it, descend into it). An excluded item is neither
    /// restored nor entered; with include patterns, an item is restored when it (or an ancestor)
    /// matches one, and a directory is entered when something below it might.
    pub fn select(&self, path: &str, is_dir: bool) -> (bool, bool) {
        if self.exclude.matches(path) {
            return (false, false);
        }
        if self.include.is_empty() {
            return (true, is_dir);
        }
        let included = self.include.matches(path);
        (
            included,
            is_dir && (included || self.include.may_match_below(path)),
        )
    }
}

// ---- sparse writes ----------------------------------------------------------------------------

/// The ranges of `buf` to write when it lands at `file_offset` in a new file: every block-aligned
/// run of [`SPARSE_BLOCK`] bytes (and the partial blocks at either end) that is all zeros is left
/// out, so it stays a hole. Adjacent non-zero blocks form one range.
pub fn data_runs(buf: &[u8], file_offset: u64) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    let block = SPARSE_BLOCK as u64;
    let mut start = 0usize;
    while start < buf.len() {
        let to_boundary = (block - (file_offset + start as u64) % block) as usize;
        let end = (start + to_boundary).min(buf.len());
        if !is_zero(&buf[start..end]) {
            match runs.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => runs.push(start..end),
            }
        }
        start = end;
    }
    runs
}

/// Whether `buf` is all zeros (OR-folded in chunks so the compiler vectorizes it).
pub fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        if c.iter().fold(0u8, |a, b| a | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|b| *b == 0)
}

// ---- planning ---------------------------------------------------------------------------------

/// An item to restore: its path below the restore root (`/a/b`) and its node.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) loc: String,
    pub(crate) node: Node,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Parents before children.
    pub(crate) dirs: Vec<Item>,
    pub(crate) files: Vec<Item>,
    /// Hard links: the item and the index in `files` of the file it links to.
    pub(crate) links: Vec<(Item, usize)>,
    /// Symlinks, fifos and devices.
    pub(crate) others: Vec<Item>,
    nodes_skipped: u64,
    warnings: Vec<String>,
    /// (device_id, inode) → index in `files` of the first file restored for it.
    inodes: HashMap<(u64, u64), usize>,
}

/// A [`Plan`] with the mapping of its restore-root paths to the snapshot and the target.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) plan: Plan,
    /// The snapshot's short id, for messages.
    pub(crate) snapshot: String,
    base: String,
    target: PathBuf,
}

impl Planned {
    /// The path in the snapshot of restore-root path `loc`.
    pub(crate) fn snapshot_path(&self, loc: &str) -> String {
        snapshot_path(&self.base, loc)
    }

    /// The file in the target for restore-root path `loc`.
    pub(crate) fn target_path(&self, loc: &str) -> PathBuf {
        target_path(&self.target, loc)
    }
}

/// The path in the snapshot of restore-root path `loc` when `base` (`/a/b`, or empty for the
/// whole snapshot) is restored.
fn snapshot_path(base: &str, loc: &str) -> String {
    if loc.is_empty() {
        if base.is_empty() {
            "/".into()
        } else {
            base.to_string()
        }
    } else {
        format!("{base}{loc}")
    }
}

/// The file in `target` for restore-root path `loc`.
fn target_path(target: &Path, loc: &str) -> PathBuf {
    let rel = loc.trim_start_matches('/');
    if rel.is_empty() {
        target.to_path_buf()
    } else {
        target.join(rel)
    }
}

#[derive(Default)]
struct Stats {
    files: AtomicU64,
    hardlinks: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    bytes: AtomicU64,
    sparse_bytes: AtomicU64,
    files_skipped: AtomicU64,
    bytes_skipped: AtomicU64,
    nodes_skipped: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

// ---- writing file content, pack by pack -------------------------------------------------------

/// Most unneeded bytes between two needed blobs of a pack read in one request anyway.
const MAX_GAP: u64 = 1 << 20;

/// What step 1 of [`Restorer::restore_files`] found for a file.
enum Prepared {
    /// Nothing more to do (left alone as unchanged, or empty and created).
    Done,
    /// Its blobs, located, in file order.
    Content(Vec<Located>),
}

/// The blobs needed from one pack, ordered by offset, and where each goes.
struct PackWrites {
    blobs: Vec<Located>,
    /// For each blob: (file index, offset in the file), one entry per use.
    targets: Vec<Vec<(usize, u64)>>,
    /// Runs of `blobs` fetched with one request each.
    runs: Vec<Range<usize>>,
}

/// A file being written by the pack workers.
#[derive(Default)]
struct FileWrite {
    /// Blob uses not yet written or given up; the worker that takes it to 0 finishes the file.
    remaining: usize,
    /// Device and inode of the file, created at the first blob written; its handle lives in
    /// [`OpenFiles`] and may be closed and reopened between blobs.
    created: Option<(u64, u64)>,
    /// The first failure: the file is removed once its last blob is done.
    failed: Option<Error>,
    /// Bytes left as holes so far.
    holes: u64,
}

/// The content writes of a restore: the packs to read, in the order files first need them,
/// and the state of each file (each under its own mutex: workers on different packs may write
/// to one file at different offsets, without holding it).
struct Writes {
    packs: Vec<PackWrites>,
    /// The length of each file (the plaintext lengths of its blobs, from the index).
    sizes: Vec<u64>,
    states: Vec<Mutex<FileWrite>>,
}

impl Writes {
    /// `located[i]`: the blobs of file `i` still to write, if any.
    fn plan(files: &[Item], located: Vec<Option<Vec<Located>>>) -> Writes {
        let mut packs: Vec<PackWrites> = Vec::new();
        let mut pack_at: HashMap<Id, usize> = HashMap::new();
        let mut blob_at: HashMap<(usize, Id), usize> = HashMap::new();
        let mut sizes = vec![0u64; files.len()];
        let mut states: Vec<Mutex<FileWrite>> = files.iter().map(|_| Mutex::default()).collect();
        for (file, blobs) in located.into_iter().enumerate() {
            let Some(blobs) = blobs else { continue };
            states[file]
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .remaining = blobs.len();
            let mut offset = 0u64;
            for (id, loc) in blobs {
                let p = *pack_at.entry(loc.pack).or_insert_with(|| {
                    packs.push(PackWrites {
                        blobs: Vec::new(),
                        targets: Vec::new(),
                        runs: Vec::new(),
                    });
                    packs.len() - 1
                });
                let pack = &mut packs[p];
                let b = *blob_at.entry((p, id)).or_insert_with(|| {
                    pack.blobs.push((id, loc));
                    pack.targets.push(Vec::new());
                    pack.blobs.len() - 1
                });
                pack.targets[b].push((file, offset));
                offset += u64::from(loc.data_length());
            }
            sizes[file] = offset;
        }
        for pack in &mut packs {
            let mut order: Vec<usize> = (0..pack.blobs.len()).collect();
            order.sort_by_key(|&b| pack.blobs[b].1.offset);
            pack.blobs = order.iter().map(|&b| pack.blobs[b]).collect();
            pack.targets = order
                .iter()
                .map(|&b| std::mem::take(&mut pack.targets[b]))
                .collect();
            pack.runs = blob_read::runs(&pack.blobs, MAX_GAP, MAX_COALESCED_READ);
        }
        Writes { packs, sizes, states }
    }
}

/// What the pack workers share: the files, their write state, their open handles, and which
/// are in place.
struct FileStates<'a> {
    files: &'a [Item],
    writes: &'a Writes,
    open: &'a OpenFiles,
    done: &'a [AtomicBool],
}

impl FileStates<'_> {
    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, FileWrite> {
        self.writes.states[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, i: usize) -> bool {
        self.lock(i).failed.is_some()
    }
}

/// `f(0)`, …, `f(n - 1)` on up to `threads` scoped threads named `name-N` (each takes the next
/// index), the results in index order.
fn parallel_map<T: Send>(
    threads: usize,
    n: usize,
    name: &str,
    f: impl Fn(usize) -> T + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let chunks = std::thread::scope(|s| -> Result<Vec<Vec<(usize, T)>>> {
        let mut workers = Vec::new();
        for t in 0..threads.min(n) {
            let worker = std::thread::Builder::new()
                .name(format!("{name}-{t}"))
                .spawn_scoped(s, move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            return out;
                        }
                        out.push((i, f(i)));
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
            workers.push(worker);
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| Error::Internal(format!("{name} thread panicked")))
            })
            .collect()
    })?;
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, t) in chunks.into_iter().flatten() {
        out[i] = Some(t);
    }
    Ok(out.into_iter().flatten().collect())
}

struct Restorer<'a> {
    repo: &'a Repository,
    snapshot: String,
    /// The sub-path restored (`/a/b`, or empty for the whole snapshot), for messages.
    base: String,
    target: PathBuf,
    options: &'a RestoreOptions,
    selection: Selection,
    as_root: bool,
    held: Option<&'a RepoLock>,
    stats: Stats,
    errors: Mutex<Vec<Error>>,
    warnings: Mutex<Vec<String>>,
}

impl<'a> Restorer<'a> {
    fn new(
        repo: &'a Repository,
        sn: &SnapshotEntry,
        subpath: &str,
        target: &Path,
        options: &'a RestoreOptions,
        held: Option<&'a RepoLock>,
    ) -> Result<Restorer<'a>> {
        let selection = Selection::new(&options.include, &options.exclude)?;
        let (uid, _) = crate::host::uid_gid();
        Ok(Restorer {
            repo,
            snapshot: sn.id.short(),
            base: subpath
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .fold(String::new(), |acc, p| acc + "/" + p),
            target: target.to_path_buf(),
            options,
            selection,
            as_root: uid == 0,
            held,
            stats: Stats::default(),
            errors: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
        })
    }
}

impl Restorer<'_> {
    /// The path in the snapshot of restore-root path `loc`.
    fn snapshot_path(&self, loc: &str) -> String {
        snapshot_path(&self.base, loc)
    }

    /// The file in the target for restore-root path `loc`.
    fn target_path(&self, loc: &str) -> PathBuf {
        target_path(&self.target, loc)
    }

    fn io_error(&self, loc: &str, op: &'static str, source: std::io::Error) -> Error {
        Error::RestoreIo {
            snapshot: self.snapshot.clone(),
            path: self.snapshot_path(loc),
            target: self.target_path(loc),
            op,
            source,
        }
    }

    fn record(&self, e: Error) {
        tracing::warn!(error = %e, "restore");
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    fn check_lock(&self) -> Result<()> {
        self.held.map_or(Ok(()), RepoLock::check)
    }

    // -- planning --

    fn plan(&mut self, sn: &SnapshotEntry) -> Result<Plan> {
        let mut plan = Plan::default();
        if self.base.is_empty() {
            self.plan_tree(&sn.snapshot.tree, "", 0, &mut plan)?;
            return Ok(plan);
        }
        let node = crate::dump::find_node(self.repo, sn, &self.base)?;
        if let (NodeType::Dir, Some(subtree)) = (node.node_type, node.subtree) {
            self.plan_tree(&subtree, "", 0, &mut plan)?;
        } else {
            // A single item: it lands in the target under its own name.
            self.base = self.base.rsplit_once('/').map_or("", |(p, _)| p).to_string();
            let tree = crate::tree::Tree { nodes: vec![node] };
            self.plan_nodes(tree, &self.snapshot_path(""), "", 0, &mut plan)?;
        }
        Ok(plan)
    }

    /// Plan the items of tree `id` at restore-root path `loc`; returns whether anything was
    /// selected in it.
    fn plan_tree(&self, id: &Id, loc: &str, depth: usize, plan: &mut Plan) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(Error::Format {
                what: format!("snapshot {} at {}", self.snapshot, self.snapshot_path(loc)),
                reason: format!("directories nested deeper than {MAX_DEPTH}"),
            });
        }
        let tree = self.repo.load_tree(id)?;
        self.plan_nodes(tree, &self.snapshot_path(loc), loc, depth, plan)
    }

    fn plan_nodes(
        &self,
        tree: crate::tree::Tree,
        where_: &str,
        loc: &str,
        depth: usize,
        plan: &mut Plan,
    ) -> Result<bool> {
        let mut seen = HashSet::with_capacity(tree.nodes.len());
        for node in &tree.nodes {
            if let Some(reason) = unsafe_name_reason(&node.name) {
                return Err(Error::UnsafeName {
                    snapshot: self.snapshot.clone(),
                    path: if where_.is_empty() {
                        "/".into()
                    } else {
                        where_.to_string()
                    },
                    name: node.name.clone(),
                    target: self.target.clone(),
                    reason,
                });
            }
            if !seen.insert(node.name.as_str()) {
                return Err(Error::Format {
                    what: format!("snapshot {} at {}", self.snapshot, where_),
                    reason: format!("the name {:?} appears twice in one directory", node.name),
                });
            }
        }
        let mut any = false;
        for node in tree.nodes {
            let child = format!("{loc}/{}", node.name);
            let is_dir = node.node_type == NodeType::Dir;
            let (selected, descend) = self.selection.select(&child, is_dir);
            if is_dir {
                let Some(subtree) = node.subtree else {
                    return Err(Error::Format {
                        what: format!("snapshot {} at {}", self.snapshot, self.snapshot_path(&child)),
                        reason: "directory without subtree".into(),
                    });
                };
                if !selected && !descend {
                    continue;
                }
                let at = plan.dirs.len();
                plan.dirs.push(Item {
                    loc: child.clone(),
                    node,
                });
                let below = descend && self.plan_tree(&subtree, &child, depth + 1, plan)?;
                if selected || below {
                    any = true;
                } else {
                    // Nothing below was selected, so nothing was planned after it.
                    plan.dirs.truncate(at);
                }
                continue;
            }
            if !selected {
                continue;
            }
            any = true;
            match node.node_type {
                NodeType::File => {
                    let key = (node.device_id, node.inode);
                    if node.links > 1 && node.inode != 0 {
                        if let Some(&origin) = plan.inodes.get(&key) {
                            plan.links.push((Item { loc: child, node }, origin));
                            continue;
                        }
                        plan.inodes.insert(key, plan.files.len());
                    }
                    plan.files.push(Item { loc: child, node });
                }
                NodeType::Symlink | NodeType::Fifo | NodeType::Dev | NodeType::Chardev => {
                    plan.others.push(Item { loc: child, node });
                }
                NodeType::Socket | NodeType::Irregular => {
                    plan.nodes_skipped += 1;
                    plan.warnings.push(format!(
                        "{}: a {} cannot be restored; skipped",
                        self.snapshot_path(&child),
                        node.node_type.as_str()
                    ));
                }
                NodeType::Dir => unreachable!("handled above"),
            }
        }
        Ok(any)
    }

    // -- writing --

    fn write(&self, plan: &Plan) -> Result<()> {
        fs::create_dir_all(&self.target).map_err(|e| self.io_error("", "create directory", e))?;
        for dir in &plan.dirs {
            match self.ensure_dir(&dir.loc) {
                Ok(()) => add(&self.stats.dirs, 1),
                Err(e) => self.record(e),
            }
        }
        self.check_lock()?;
        let done = self.restore_files(&plan.files)?;
        self.check_lock()?;
        for (item, origin) in &plan.links {
            if !done[*origin] {
                self.record(self.io_error(
                    &item.loc,
                    "hard link",
                    std::io::Error::other(format!(
                        "the file it links to ({}) was not restored",
                        self.snapshot_path(&plan.files[*origin].loc)
                    )),
                ));
                continue;
            }
            if let Err(e) = self.restore_hardlink(item, &plan.files[*origin]) {
                self.record(e);
            }
        }
        for item in &plan.others {
            if let Err(e) = self.restore_other(item) {
                self.record(e);
            }
        }
        self.check_lock()?;
        for dir in plan.dirs.iter().rev() {
            if let Err(e) = self.restore_metadata(&dir.loc, &dir.node, None) {
                self.record(e);
            }
        }
        Ok(())
    }

    /// Make `loc` a directory we can write into, replacing whatever else is there.
    fn ensure_dir(&self, loc: &str) -> Result<()> {
        let path = self.target_path(loc);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => fs::remove_file(&path).map_err(|e| self.io_error(loc, "remove", e))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error(loc, "inspect", e)),
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| self.io_error(loc, "create directory", e))
    }

    /// Remove whatever is at `loc` (a file, a symlink, an empty directory).
    fn clear(&self, loc: &str) -> Result<()> {
        let path = self.target_path(loc);
        let res = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        res.map_err(|e| self.io_error(loc, "remove", e))
    }

    /// Restore the regular files; returns which of them are in place. Three steps:
    /// 1. each file is looked at on the workers (an existing one may be left alone, or have to
    ///    be read to verify it), its blobs are located in the index and the offset of each in the
    ///    file is computed (a blob the index does not know fails the file before it is created);
    /// 2. the blobs still needed are grouped by pack, packs in the order files first need them;
    /// 3. the workers take a pack at a time: each run of close blobs is fetched with one
    ///    request, each blob decoded once and written to every place that needs it
    ///    ([`Restorer::restore_pack`]). A file is created at its first blob and finished
    ///    (length, metadata) by whichever worker writes its last one.
    fn restore_files(&self, files: &[Item]) -> Result<Vec<bool>> {
        // Each worker holds at most one file open at a time (in step 1 too), so no more workers
        // than files may be open: a worker then always finds a handle to close.
        let open = OpenFiles::new(open_files::default_cap());
        let threads = blob_read::worker_count(self.options.threads, 4).min(open.stats().cap);
        let done: Vec<AtomicBool> = files.iter().map(|_| AtomicBool::new(false)).collect();
        let prepared = parallel_map(threads, files.len(), "kstash-restore-prep", |i| {
            let item = &files[i];
            let outcome = self.prepare_file(item);
            if !matches!(outcome, Ok(Prepared::Content(_))) {
                self.file_finished(item);
            }
            match outcome {
                Ok(Prepared::Content(blobs)) => Some(blobs),
                Ok(Prepared::Done) => {
                    done[i].store(true, Ordering::SeqCst);
                    None
                }
                Err(e) => {
                    self.record(e);
                    None
                }
            }
        })?;
        let writes = Writes::plan(files, prepared);
        let state = FileStates {
            files,
            writes: &writes,
            open: &open,
            done: &done,
        };
        let next = AtomicUsize::new(0);
        parallel_map(threads, threads, "kstash-restore", |_| {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(pack) = writes.packs.get(i) else { return };
                self.restore_pack(pack, &state);
            }
        })?;
        let s = open.stats();
        tracing::debug!(
            packs = writes.packs.len(),
            threads,
            open_cap = s.cap,
            open_peak = s.peak,
            opens = s.opens,
            over_cap = s.over_cap,
            "restore: file contents written"
        );
        Ok(done.into_iter().map(|d| d.into_inner()).collect())
    }

    /// Counts a file as done in the progress (failed ones too: the total is what was planned).
    fn file_finished(&self, item: &Item) {
        if let Some(p) = &self.options.progress {
            p.add_item();
            p.add_bytes(item.node.size);
        }
    }

    /// Step 1 for one file: leave it alone if unchanged, else clear its place, and locate its
    /// blobs; an empty file is created at once.
    fn prepare_file(&self, item: &Item) -> Result<Prepared> {
        let (loc, node) = (&item.loc, &item.node);
        let path = self.target_path(loc);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && self.unchanged(loc, node, &m)? => {
                self.restore_metadata(loc, node, None)?;
                add(&self.stats.files_skipped, 1);
                add(&self.stats.bytes_skipped, node.size);
                return Ok(Prepared::Done);
            }
            Ok(_) => self.clear(loc)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error(loc, "inspect", e)),
        }
        let ids = node.content.as_deref().unwrap_or_default();
        if ids.is_empty() {
            let file = self.create(loc)?;
            self.finish_file(item, &file, 0, 0)?;
            return Ok(Prepared::Done);
        }
        let index = self.repo.index();
        let blobs = ids
            .iter()
            .map(|id| {
                index
                    .get(BlobType::Data, id)
                    .map(|loc| (*id, loc))
                    .ok_or(Error::BlobNotFound {
                        kind: BlobType::Data.as_str(),
                        id: *id,
                    })
            })
            .collect::<Result<Vec<Located>>>()
            .map_err(|e| self.data_error(loc, e))?;
        Ok(Prepared::Content(blobs))
    }

    /// A new file at `loc`: owner-only, never through a symlink, never an existing one.
    fn create(&self, loc: &str) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.target_path(loc))
            .map_err(|e| self.io_error(loc, "create", e))
    }

    /// The file at `loc` created by [`Restorer::create`] as `created` (device, inode), opened
    /// again for writing: not created, not truncated, never through a symlink, and refused if
    /// something else has taken its place since.
    fn reopen(&self, loc: &str, created: (u64, u64)) -> Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.target_path(loc))
            .map_err(|e| self.io_error(loc, "reopen", e))?;
        let m = file.metadata().map_err(|e| self.io_error(loc, "inspect", e))?;
        if (m.dev(), m.ino()) != created {
            return Err(self.io_error(
                loc,
                "reopen",
                std::io::Error::other("another file took its place while it was being restored"),
            ));
        }
        Ok(file)
    }

    /// Remove the partly written file at `loc` if it is still the one created as `created`
    /// (device, inode): it is ours, made with `O_EXCL`; anything else there is left alone.
    fn remove_partial(&self, loc: &str, created: (u64, u64)) {
        let path = self.target_path(loc);
        let ours = fs::symlink_metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == created);
        if !ours {
            return;
        }
        if let Err(rm) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %rm, "cannot remove a partly restored file");
        }
    }

    fn data_error(&self, loc: &str, source: Error) -> Error {
        Error::RestoreData {
            snapshot: self.snapshot.clone(),
            path: self.snapshot_path(loc),
            target: self.target_path(loc),
            source: Box::new(source),
        }
    }

    /// Step 3 for one pack: fetch each run with one request, decode each blob once and write it
    /// wherever it goes. When a run cannot be fetched or a blob not decoded, the blob is read
    /// again on its own for each file that needs it: each file gets its own error (or the blob,
    /// if the failure was passing).
    fn restore_pack(&self, pack: &PackWrites, state: &FileStates<'_>) {
        for run in &pack.runs {
            let fetched = Fetched::fetch(self.repo, &pack.blobs[run.clone()]);
            for (i, at) in run.clone().enumerate() {
                let blob = &pack.blobs[at];
                let plain = fetched.as_ref().ok().and_then(|f| f.decode(self.repo, i).ok());
                for &(file, offset) in &pack.targets[at] {
                    let outcome = match &plain {
                        Some(plain) => self.write_blob(state, file, offset, plain),
                        None if state.failed(file) => Ok(0),
                        None => blob_read::load_one(self.repo, blob)
                            .map_err(|e| self.data_error(&state.files[file].loc, e))
                            .and_then(|plain| self.write_blob(state, file, offset, &plain)),
                    };
                    self.blob_done(state, file, outcome);
                }
            }
        }
    }

    /// Write `blob` at `offset` of file `i` (creating the file at its first blob), leaving
    /// all-zero blocks as holes when sparse; returns the bytes left as holes.
    fn write_blob(&self, state: &FileStates<'_>, i: usize, offset: u64, blob: &[u8]) -> Result<u64> {
        let loc = &state.files[i].loc;
        // The file's lock is held while its handle is looked up (and opened): one thread opens
        // it at a time. The write itself runs without it.
        let file = {
            let mut w = state.lock(i);
            if w.failed.is_some() {
                return Ok(0);
            }
            state.open.get(i, || match w.created {
                Some(created) => self.reopen(loc, created),
                None => {
                    let f = self.create(loc)?;
                    let m = f.metadata().map_err(|e| self.io_error(loc, "inspect", e))?;
                    w.created = Some((m.dev(), m.ino()));
                    Ok(f)
                }
            })?
        };
        if !self.options.sparse {
            file.write_all_at(blob, offset)
                .map_err(|e| self.io_error(loc, "write", e))?;
            return Ok(0);
        }
        let mut written = 0;
        for run in data_runs(blob, offset) {
            written += run.len();
            file.write_all_at(&blob[run.clone()], offset + run.start as u64)
                .map_err(|e| self.io_error(loc, "write", e))?;
        }
        Ok((blob.len() - written) as u64)
    }

    /// Account for one blob of file `i`, written or failed; the last one finishes the file.
    fn blob_done(&self, state: &FileStates<'_>, i: usize, outcome: Result<u64>) {
        let finished = {
            let mut w = state.lock(i);
            match outcome {
                Ok(holes) => w.holes += holes,
                Err(e) => {
                    w.failed.get_or_insert(e);
                }
            }
            w.remaining -= 1;
            (w.remaining == 0).then(|| std::mem::take(&mut *w))
        };
        let Some(w) = finished else { return };
        let item = &state.files[i];
        let result = match (w.failed, w.created) {
            // Closed since its last blob? Reopened to set its length and metadata.
            (None, Some(created)) => match state.open.get(i, || self.reopen(&item.loc, created)) {
                Ok(file) => self.finish_file(item, &file, state.writes.sizes[i], w.holes),
                Err(e) => {
                    self.remove_partial(&item.loc, created);
                    Err(e)
                }
            },
            (failed, created) => {
                // Never leave a partial file under the real name: it would pass for restored
                // data (restic leaves nothing either).
                state.open.forget(i);
                if let Some(created) = created {
                    self.remove_partial(&item.loc, created);
                }
                Err(failed.unwrap_or_else(|| Error::Internal("a restored file was never created".into())))
            }
        };
        state.open.forget(i);
        match result {
            Ok(()) => state.done[i].store(true, Ordering::SeqCst),
            Err(e) => self.record(e),
        }
        self.file_finished(item);
    }

    /// Set the length of a fully written file (trailing holes need it), then its metadata.
    fn finish_file(&self, item: &Item, file: &File, size: u64, holes: u64) -> Result<()> {
        let (loc, node) = (&item.loc, &item.node);
        if let Err(e) = file.set_len(size) {
            let _ = fs::remove_file(self.target_path(loc));
            return Err(self.io_error(loc, "set the length of", e));
        }
        if size != node.size {
            self.warn(format!(
                "{}: restored {size} bytes, but the snapshot records a size of {}",
                self.snapshot_path(loc),
                node.size
            ));
        }
        self.restore_metadata(loc, node, Some(file))?;
        add(&self.stats.files, 1);
        add(&self.stats.bytes, size);
        add(&self.stats.sparse_bytes, holes);
        Ok(())
    }

    /// Whether the existing regular file at `loc` can be left as it is.
    fn unchanged(&self, loc: &str, node: &Node, m: &fs::Metadata) -> Result<bool> {
        if self.options.existing == ExistingFiles::Overwrite || m.len() != node.size {
            return Ok(false);
        }
        let want = timespec(&node.mtime);
        if m.mtime() != want.tv_sec || m.mtime_nsec() != want.tv_nsec {
            return Ok(false);
        }
        if self.options.existing == ExistingFiles::SkipUnchanged {
            return Ok(true);
        }
        self.content_matches(loc, node)
    }

    /// Read the file at `loc` and compare each blob-sized piece with the blob ids of `node`.
    fn content_matches(&self, loc: &str, node: &Node) -> Result<bool> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.target_path(loc))
        {
            Ok(f) => f,
            Err(_) => return Ok(false),
        };
        let ids = node.content.as_deref().unwrap_or_default();
        let mut buf = vec![0u8; VERIFY_BUFFER];
        let hashed = crate::verify_tree::hash_blob_ranges(self.repo, &mut file, ids, &mut buf, |_| {});
        let Ok(total) = hashed else {
            return Ok(false);
        };
        let mut probe = [0u8; 1];
        Ok(total == node.size && matches!(file.read(&mut probe), Ok(0)))
    }

    fn restore_hardlink(&self, item: &Item, origin: &Item) -> Result<()> {
        let path = self.target_path(&item.loc);
        let origin_path = self.target_path(&origin.loc);
        let om = fs::symlink_metadata(&origin_path).map_err(|e| self.io_error(&origin.loc, "inspect", e))?;
        if let Ok(m) = fs::symlink_metadata(&path)
            && m.dev() == om.dev()
            && m.ino() == om.ino()
        {
            add(&self.stats.hardlinks, 1);
            return Ok(());
        }
        self.clear(&item.loc)?;
        fs::hard_link(&origin_path, &path).map_err(|e| self.io_error(&item.loc, "hard link", e))?;
        add(&self.stats.hardlinks, 1);
        Ok(())
    }

    fn restore_other(&self, item: &Item) -> Result<()> {
        let (loc, node) = (&item.loc, &item.node);
        let path = self.target_path(loc);
        let perm = Mode::from_raw_mode(mode::to_unix(node.mode) & 0o7777);
        match node.node_type {
            NodeType::Symlink => {
                self.clear(loc)?;
                let link: &OsStr = match &node.linktarget_raw {
                    Some(raw) => OsStr::from_bytes(raw),
                    None => OsStr::new(&node.linktarget),
                };
                std::os::unix::fs::symlink(link, &path)
                    .map_err(|e| self.io_error(loc, "create symlink", e))?;
                add(&self.stats.symlinks, 1);
            }
            NodeType::Fifo => {
                self.clear(loc)?;
                rustix::fs::mknodat(CWD, &path, NodKind::Fifo, perm, 0)
                    .map_err(|e| self.io_error(loc, "create fifo", e.into()))?;
                add(&self.stats.specials, 1);
            }
            NodeType::Dev | NodeType::Chardev => {
                if !self.as_root {
                    add(&self.stats.nodes_skipped, 1);
                    self.warn(format!(
                        "{}: devices can only be created by root; skipped",
                        self.snapshot_path(loc)
                    ));
                    return Ok(());
                }
                self.clear(loc)?;
                let kind = if node.node_type == NodeType::Dev {
                    NodKind::BlockDevice
                } else {
                    NodKind::CharacterDevice
                };
                rustix::fs::mknodat(CWD, &path, kind, perm, node.device)
                    .map_err(|e| self.io_error(loc, "create device", e.into()))?;
                add(&self.stats.specials, 1);
            }
            _ => return Ok(()),
        }
        self.restore_metadata(loc, node, None)
    }

    /// Owner (when root), mode (not of symlinks), extended attributes and times of the item at
    /// `loc`, never following a symlink; through `file` when it is open.
    fn restore_metadata(&self, loc: &str, node: &Node, file: Option<&File>) -> Result<()> {
        let path = self.target_path(loc);
        let is_symlink = node.node_type == NodeType::Symlink;
        if self.as_root {
            let res = match file {
                Some(f) => std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid)),
                None => std::os::unix::fs::lchown(&path, Some(node.uid), Some(node.gid)),
            };
            res.map_err(|e| self.io_error(loc, "change the owner of", e))?;
        }
        // After chown, which clears the setuid and setgid bits.
        if !is_symlink {
            let perms = fs::Permissions::from_mode(mode::to_unix(node.mode) & 0o7777);
            let res = match file {
                Some(f) => f.set_permissions(perms),
                None => fs::set_permissions(&path, perms),
            };
            res.map_err(|e| self.io_error(loc, "change the mode of", e))?;
        }
        for xattr in &node.extended_attributes {
            let res = match file {
                Some(f) => rustix::fs::fsetxattr(f, xattr.name.as_str(), &xattr.value, XattrFlags::empty()),
                None => rustix::fs::lsetxattr(&path, xattr.name.as_str(), &xattr.value, XattrFlags::empty()),
            };
            if let Err(e) = res {
                self.warn(format!(
                    "{}: cannot set extended attribute {}: {}",
                    self.snapshot_path(loc),
                    xattr.name,
                    std::io::Error::from(e)
                ));
            }
        }
        let atime = if node.atime == GoTime::default() {
            &node.mtime
        } else {
            &node.atime
        };
        let times = Timestamps {
            last_access: timespec(atime),
            last_modification: timespec(&node.mtime),
        };
        let res = match file {
            Some(f) => rustix::fs::futimens(f, &times),
            None => rustix::fs::utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW),
        };
        res.map_err(|e| self.io_error(loc, "set the times of", e.into()))
    }
}

/// A Go time as a `timespec` (nanoseconds always in `0..1e9`, also before 1970).
fn timespec(t: &GoTime) -> Timespec {
    let mut secs = t.timestamp.as_second();
    let mut nanos = i64::from(t.timestamp.subsec_nanosecond());
    if nanos < 0 {
        secs -= 1;
        nanos += 1_000_000_000;
    }
    Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", ".", "..", "../../evil", "/etc/x", "a/b", "x\0y", "/"] {
            assert!(unsafe_name_reason(bad).is_some(), "{bad:?} must be refused");
        }
        for good in ["a", "...", "..a", ".hidden", "a b", "\u{fffd}name", "a\\b", "-"] {
            assert_eq!(unsafe_name_reason(good), None, "{good:?} is fine");
        }
    }

    #[test]
    fn snapshot_specs_split_at_the_first_colon() {
        assert_eq!(split_snapshot_spec("latest"), ("latest", ""));
        assert_eq!(split_snapshot_spec("abc123:/src/d"), ("abc123", "/src/d"));
        assert_eq!(split_snapshot_spec("latest:a:b"), ("latest", "a:b"));
    }

    #[test]
    fn selection_combines_include_and_exclude() {
        let s = |inc: &[&str], exc: &[&str]| {
            let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            Selection::new(&v(inc), &v(exc)).unwrap()
        };
        let all = s(&[], &[]);
        assert_eq!(all.select("/a", true), (true, true));
        assert_eq!(all.select("/a", false), (true, false));

        let exc = s(&[], &["*.tmp", "/cache"]);
        assert_eq!(exc.select("/x/a.tmp", false), (false, false));
        assert_eq!(exc.select("/cache", true), (false, false));
        assert_eq!(exc.select("/cache/x", false), (false, false));
        assert_eq!(exc.select("/data/cache", true), (true, true));

        let inc = s(&["/src/d"], &[]);
        assert_eq!(inc.select("/src", true), (false, true), "entered, not selected");
        assert_eq!(inc.select("/src/a", false), (false, false));
        assert_eq!(inc.select("/src/d", true), (true, true));
        assert_eq!(inc.select("/src/d/b", false), (true, false));
        assert_eq!(inc.select("/other", true), (false, false));

        let both = s(&["/src"], &["*.log"]);
        assert_eq!(both.select("/src/x.log", false), (false, false));
        assert_eq!(both.select("/src/x.txt", false), (true, false));
        assert_eq!(both.select("/other", true), (false, false));

        // Globs: `*` stays within a component, `**` spans any depth, relative patterns float.
        let globs = s(&["/data/*.sql", "/logs/**/keep"], &[]);
        assert_eq!(globs.select("/data/a.sql", false), (true, false));
        assert_eq!(globs.select("/data/sub/a.sql", false), (false, false));
        assert_eq!(
            globs.select("/data/sub", true),
            (false, false),
            "no pattern can match below"
        );
        assert_eq!(globs.select("/logs/x/y", true), (false, true));
        assert_eq!(globs.select("/logs/x/y/keep/z", false), (true, false));
        let floating = s(&["conf"], &[]);
        assert_eq!(floating.select("/deep/down/conf/app.ini", false), (true, false));
        assert_eq!(
            floating.select("/deep/down", true),
            (false, true),
            "relative patterns may match anywhere"
        );
        assert_eq!(floating.select("/deep/conference", false), (false, false));

        // Empty patterns are ignored; a malformed one is an error naming it.
        assert_eq!(s(&[""], &[""]).select("/x", false), (true, false));
        let err = Selection::new(&["/a/[b".to_string()], &[]).unwrap_err();
        assert!(err.to_string().contains("/a/[b"), "{err}");
    }

    #[test]
    fn zero_blocks_are_left_out() {
        let b = SPARSE_BLOCK;
        // All zeros: nothing to write.
        assert!(data_runs(&vec![0u8; 3 * b], 0).is_empty());
        assert!(data_runs(&[], 0).is_empty());
        // Data in the second block only.
        let mut buf = vec![0u8; 3 * b];
        buf[b + 10] = 1;
        assert_eq!(data_runs(&buf, 0), vec![b..2 * b]);
        // Adjacent non-zero blocks merge; blocks are aligned to the file, not the buffer.
        let mut buf = vec![0u8; 4 * b];
        buf[100] = 1;
        buf[b + 200] = 2;
        assert_eq!(data_runs(&buf, 0), vec![0..2 * b]);
        assert_eq!(data_runs(&buf, 100), vec![0..2 * b - 100]);
        let mut buf = vec![0u8; 4 * b];
        buf[3 * b + 1] = 3;
        assert_eq!(data_runs(&buf, 100), vec![3 * b - 100..4 * b - 100]);
        // A buffer starting mid-block: the partial first block is judged on its own.
        let mut buf = vec![0u8; b];
        buf[b - 1] = 7;
        assert_eq!(data_runs(&buf, (b / 2) as u64), vec![b / 2..b]);
        // Non-zero everywhere: one run.
        let buf = vec![1u8; 2 * b + 5];
        assert_eq!(data_runs(&buf, 3), vec![0..2 * b + 5]);
        // Writing exactly the runs reproduces the buffer over a zeroed file.
        let mut buf = vec![0u8; 5 * b + 123];
        for (i, x) in buf.iter_mut().enumerate() {
            if (i / 1000) % 3 == 0 {
                *x = (i % 251) as u8 | 1;
            }
        }
        let mut out = vec![0u8; buf.len()];
        for r in data_runs(&buf, 77) {
            out[r.clone()].copy_from_slice(&buf[r]);
        }
        assert_eq!(out, buf);
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0u8; 1000]));
        for at in [0, 63, 64, 999] {
            let mut v = vec![0u8; 1000];
            v[at] = 0x80;
            assert!(!is_zero(&v), "byte {at}");
        }
    }

    #[test]
    fn timespecs_before_1970_have_positive_nanoseconds() {
        let t = GoTime::utc(jiff::Timestamp::new(-2, -500_000_000).unwrap());
        let ts = timespec(&t);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (-3, 500_000_000));
        let t = GoTime::parse("2024-05-06T07:08:09.123456789+02:00").unwrap();
        let ts = timespec(&t);
        assert_eq!(ts.tv_nsec, 123_456_789);
        assert_eq!(ts.tv_sec, 1_714_972_089);
    }
}
