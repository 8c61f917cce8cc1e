//! `check`: verifies a repository without changing it (config, key files, index files, the packs
//! they list, every snapshot and every tree reachable from one, and with read-data every blob's
//! content) and reports each problem with the file, pack, blob, snapshot and path concerned.
//!
//! The structure check compares the index files with the packs in storage (missing, unreferenced,
//! wrong size) and reads each pack's header with two ranged reads to compare its blob list with
//! the index; then it walks every tree of every snapshot, so a file whose data lives in a missing
//! or damaged pack is named by snapshot and path. Read-data (all packs, or a subset as restic's
//! `--read-data-subset`) reads whole packs, one per worker thread, verifies the pack's SHA-256
//! against its name and decrypts, decompresses and hashes every blob. Nothing is written except
//! the shared lock (when asked for), and nothing is ever deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::backend::FileType;
use crate::config::{VERSION_1, VERSION_2};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{BlobLocation, BlobType, Index, IndexFile, PackedBlob};
use crate::keys::KeyFile;
use crate::lock::{self, LockOptions};
use crate::pack;
use crate::repository::{Repository, decode_unpacked};
use crate::tree::{NodeType, Tree};

/// Largest `t` of an `n/t` subset: groups are chosen by the first byte of the pack id.
pub const MAX_GROUPS: u32 = 256;
/// Header reads in flight per read-data thread (headers are small; this hides storage latency).
const HEADER_THREADS_PER_THREAD: usize = 4;
/// Index/header disagreements listed per pack before the rest are summarised.
const MAX_MISMATCHES_PER_PACK: usize = 10;

/// Which packs read-data reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadDataSubset {
    /// Every pack (`--read-data`).
    All,
    /// Group `n` of `t` (1-based): the packs whose id's first byte modulo `t` is `n - 1`, as in
    /// restic 0.14, so running `1/t` … `t/t` reads every pack exactly once.
    Group {
        /// Which group, 1..=t.
        n: u32,
        /// How many groups, at most [`MAX_GROUPS`].
        t: u32,
    },
    /// A random `P` percent of the packs (at least one).
    Percent(f64),
    /// Random packs up to this many bytes in total (at least one pack).
    Size(u64),
}

impl FromStr for ReadDataSubset {
    type Err = Error;

    /// `n/t`, `P%` (`2.5%`), or a size in bytes with an optional `b`/`k`/`m`/`g`/`t` suffix
    /// (powers of 1024, either case), as restic's `--read-data-subset`; also `all`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("--read-data-subset {s:?}: {why}"));
        let s_trim = s.trim();
        if s_trim.eq_ignore_ascii_case("all") {
            return Ok(ReadDataSubset::All);
        }
        if let Some((n, t)) = s_trim.split_once('/') {
            let n: u32 = n
                .parse()
                .map_err(|_| bad("expected n/t with two positive integers, e.g. 1/5"))?;
            let t: u32 = t
                .parse()
                .map_err(|_| bad("expected n/t with two positive integers, e.g. 1/5"))?;
            if n == 0 || t == 0 || n > t {
                return Err(bad("n and t must be positive and n <= t, e.g. 2/5"));
            }
            if t > MAX_GROUPS {
                return Err(bad(&format!("t must be at most {MAX_GROUPS}")));
            }
            return Ok(ReadDataSubset::Group { n, t });
        }
        if let Some(p) = s_trim.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| bad("expected a percentage such as 10% or 2.5%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad("the percentage must be above 0% and at most 100%"));
            }
            return Ok(ReadDataSubset::Percent(p));
        }
        let (digits, unit) = match s_trim.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let unit: u64 = match c.to_ascii_lowercase() {
                    'b' => 1,
                    'k' => 1 << 10,
                    'm' => 1 << 20,
                    'g' => 1 << 30,
                    't' => 1 << 40,
                    _ => return Err(bad("unknown size unit (use b, k, m, g or t)")),
                };
                (&s_trim[..i], unit)
            }
            _ => (s_trim, 1),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| bad("expected n/t, a percentage (10%) or a size (500M)"))?;
        let bytes = n.checked_mul(unit).ok_or_else(|| bad("the size is too large"))?;
        if bytes == 0 {
            return Err(bad("the size must be above 0"));
        }
        Ok(ReadDataSubset::Size(bytes))
    }
}

impl fmt::Display for ReadDataSubset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadDataSubset::All => f.write_str("all"),
            ReadDataSubset::Group { n, t } => write!(f, "{n}/{t}"),
            ReadDataSubset::Percent(p) => write!(f, "{p}%"),
            ReadDataSubset::Size(b) => write!(f, "{b}"),
        }
    }
}

/// Whether pack `id` belongs to group `n` of `t` (1-based), restic 0.14's rule.
pub fn in_group(id: &Id, n: u32, t: u32) -> bool {
    t > 0 && u32::from(id.0[0]) % t == n.wrapping_sub(1)
}

/// The packs of `packs` (id and size) that `subset` selects, sorted by id. Random subsets draw
/// from `rng`.
pub fn select_packs<R: rand::Rng + ?Sized>(
    subset: &ReadDataSubset,
    packs: &[(Id, u64)],
    rng: &mut R,
) -> Vec<Id> {
    use rand::seq::SliceRandom as _;
    let mut out: Vec<Id> = match *subset {
        ReadDataSubset::All => packs.iter().map(|p| p.0).collect(),
        ReadDataSubset::Group { n, t } => packs
            .iter()
            .filter(|p| in_group(&p.0, n, t))
            .map(|p| p.0)
            .collect(),
        ReadDataSubset::Percent(pct) => {
            let mut all: Vec<Id> = packs.iter().map(|p| p.0).collect();
            all.sort();
            all.shuffle(rng);
            let want = ((all.len() as f64) * pct / 100.0).floor() as usize;
            let want = want.clamp(usize::from(!all.is_empty()), all.len());
            all.truncate(want);
            all
        }
        ReadDataSubset::Size(limit) => {
            let mut all: Vec<(Id, u64)> = packs.to_vec();
            all.sort();
            all.shuffle(rng);
            let mut total = 0u64;
            let mut chosen = Vec::new();
            for (id, size) in all {
                if !chosen.is_empty() && total.saturating_add(size) > limit {
                    continue;
                }
                total = total.saturating_add(size);
                chosen.push(id);
            }
            chosen
        }
    };
    out.sort();
    out
}

/// How to check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Read and verify pack contents: `None` checks the structure only.
    pub read_data: Option<ReadDataSubset>,
    /// Hold a shared lock while checking (`None`: no lock, like restic's `--no-lock`).
    pub lock: Option<LockOptions>,
    /// Packs read in parallel by read-data, each holding one whole pack in memory (headers are
    /// read with four times as many requests in flight).
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            read_data: None,
            lock: Some(LockOptions::default()),
            threads: 2,
        }
    }
}

/// What kind of problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The config file cannot be read or holds invalid values.
    Config,
    /// A key file cannot be read or parsed, or its name is not its hash.
    KeyFile,
    /// An index file cannot be read, decrypted or parsed.
    IndexFile,
    /// A file whose name is not an id (warning).
    InvalidFileName,
    /// An index file in restic's legacy format, written before restic 0.8 (warning).
    OldIndexFormat,
    /// A pack listed in several index files (warning).
    DuplicatePack,
    /// A pack holding both tree and data blobs (warning).
    MixedPack,
    /// A pack in storage that no index file lists (warning).
    UnreferencedPack,
    /// A pack an index file lists that is not in storage.
    MissingPack,
    /// A pack whose size is not what its index entries add up to.
    PackSize,
    /// A pack whose header cannot be read, decrypted or parsed.
    PackHeader,
    /// A pack whose header and index entries disagree.
    PackIndexMismatch,
    /// A pack that could not be read.
    PackRead,
    /// A pack whose SHA-256 is not its name.
    PackHash,
    /// A blob that fails decryption, decompression or its hash.
    DamagedBlob,
    /// A snapshot file that cannot be read, decrypted or parsed.
    SnapshotFile,
    /// A tree that cannot be loaded, or holds an invalid node.
    Tree,
    /// A data blob referenced by a file that no index lists.
    MissingBlob,
    /// A data blob referenced by a file whose every copy is in a missing or damaged pack.
    LostBlob,
}

/// One problem: what is wrong and which file, pack, blob, snapshot, tree and path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckProblem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The repository file concerned, e.g. `index/1a2b…` or `data/1a/1a2b…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The pack concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<Id>,
    /// The blob concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<Id>,
    /// Its type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_type: Option<BlobType>,
    /// Its offset in the pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// The snapshot concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    /// The tree concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<Id>,
    /// The path in the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For a damaged or missing pack: the snapshots with files or trees in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected_snapshots: Vec<Id>,
    /// The whole message, naming everything above.
    pub message: String,
}

impl CheckProblem {
    fn new(kind: ProblemKind, message: String) -> CheckProblem {
        CheckProblem {
            kind,
            file: None,
            pack: None,
            blob: None,
            blob_type: None,
            offset: None,
            snapshot: None,
            tree: None,
            path: None,
            affected_snapshots: Vec::new(),
            message,
        }
    }

    fn file(mut self, file: String) -> Self {
        self.file = Some(file);
        self
    }

    fn pack(mut self, pack: Id) -> Self {
        self.file = Some(pack_file(&pack));
        self.pack = Some(pack);
        self
    }

    fn blob(mut self, blob_type: BlobType, id: Id) -> Self {
        self.blob = Some(id);
        self.blob_type = Some(blob_type);
        self
    }

    fn at(mut self, snapshot: Id, tree: Id, path: &str) -> Self {
        self.snapshot = Some(snapshot);
        self.tree = Some(tree);
        self.path = Some(path.to_string());
        self
    }
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.affected_snapshots.is_empty() {
            let ids: Vec<String> = self.affected_snapshots.iter().map(Id::short).collect();
            write!(f, " (affects snapshots {})", ids.join(", "))?;
        }
        Ok(())
    }
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Damage: the repository cannot be fully restored or is inconsistent.
    pub errors: Vec<CheckProblem>,
    /// Harmless findings (unreferenced packs, duplicates, odd file names).
    pub warnings: Vec<CheckProblem>,
    /// Which packs were read fully, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_data: Option<ReadDataSubset>,
    /// Key files examined.
    pub keys_checked: usize,
    /// Index files read.
    pub index_files_checked: usize,
    /// Packs in storage whose size and header were checked.
    pub packs_checked: usize,
    /// Packs read fully and verified.
    pub packs_read: usize,
    /// Blobs decrypted and verified by read-data.
    pub blobs_checked: u64,
    /// Distinct blobs listed by the index.
    pub blobs_indexed: usize,
    /// Extra copies of blobs stored in more than one pack (harmless; prune removes them).
    pub duplicate_blobs: u64,
    /// Snapshot files read.
    pub snapshots_checked: usize,
    /// Distinct trees loaded and checked.
    pub trees_checked: usize,
    /// Bytes of pack files read fully by read-data.
    pub bytes_read: u64,
    /// Snapshots with at least one file or tree that cannot be restored.
    pub damaged_snapshots: Vec<Id>,
}

impl CheckReport {
    /// Whether no error was found (warnings are fine).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// `data/1a/1a2b…`: the pack's path in the repository.
fn pack_file(id: &Id) -> String {
    let hex = id.to_hex();
    format!("data/{}/{hex}", &hex[..2])
}

/// What went wrong, without the file name the engine's messages start with (the problem's
/// message names the file itself).
fn reason(e: &Error) -> String {
    match e {
        Error::Mac { .. } => {
            "ciphertext verification failed (MAC mismatch): the data was changed or damaged".into()
        }
        Error::Crypto { source, .. } => source.to_string(),
        Error::HashMismatch { actual, .. } => format!("content hashes to {actual}, not to its id"),
        Error::Json { source, .. } => format!("invalid JSON: {source}"),
        Error::Format { reason, .. } | Error::InvalidPack { reason, .. } => reason.clone(),
        Error::NotFound(_) => "file not found".into(),
        Error::Backend { op, source, .. } => format!("{op} failed: {source}"),
        other => other.to_string(),
    }
}

/// A pack as the index files describe it.
#[derive(Debug)]
struct IndexedPack {
    blobs: Vec<PackedBlob>,
    /// The index files listing it.
    index_files: Vec<Id>,
}

impl IndexedPack {
    /// The pack's size if it holds exactly the indexed blobs.
    fn expected_size(&self) -> u64 {
        self.blobs.iter().map(|b| u64::from(b.length)).sum::<u64>() + pack::header_size(&self.blobs) as u64
    }
}

/// One pack to examine.
struct PackTask<'a> {
    id: Id,
    size: u64,
    blobs: &'a [PackedBlob],
    read_data: bool,
}

/// What checking one pack found.
#[derive(Default)]
struct PackOutcome {
    errors: Vec<CheckProblem>,
    /// Blob copies in this pack that cannot be read, with why.
    bad: Vec<(PackedBlob, String)>,
    blobs_checked: u64,
    bytes_read: u64,
    read_fully: bool,
}

/// Damage below a tree: `None` when every file and subtree is readable, else the packs
/// concerned (empty when the damage is not in a pack, e.g. a blob no index lists).
type Damage = Option<Rc<BTreeSet<Id>>>;

struct Checker<'r> {
    repo: &'r Repository,
    report: CheckReport,
    packs: BTreeMap<Id, IndexedPack>,
    /// First location of every indexed blob.
    index: Index,
    /// Further locations of blobs stored more than once.
    extra: HashMap<(Id, BlobType), Vec<BlobLocation>>,
    /// Blob copies known to be unreadable: (blob, type, pack) → why.
    bad: HashMap<(Id, BlobType, Id), String>,
    /// Packs whose problems should name the snapshots they affect.
    pack_snapshots: HashMap<Id, BTreeSet<Id>>,
}

/// Check `repo` (opened with [`Repository::open_without_index`] or [`Repository::open`]; its
/// in-memory index is not used) and report every problem found. Fails only when the check
/// cannot run at all (the lock is held exclusively, storage cannot be listed).
pub fn check(repo: &Repository, options: &CheckOptions) -> Result<CheckReport> {
    let _lock = match &options.lock {
        Some(lock_options) => Some(lock::acquire(repo, false, lock_options)?),
        None => None,
    };
    let mut c = Checker {
        repo,
        report: CheckReport {
            read_data: options.read_data,
            ..Default::default()
        },
        packs: BTreeMap::new(),
        index: Index::new(),
        extra: HashMap::new(),
        bad: HashMap::new(),
        pack_snapshots: HashMap::new(),
    };
    tracing::info!(repo = %repo.location(), "checking config and keys");
    c.check_config();
    c.check_keys()?;
    tracing::info!("loading index files");
    c.load_index()?;
    tracing::info!(packs = c.packs.len(), "checking packs");
    c.check_packs(options)?;
    tracing::info!("checking snapshots, trees and blobs");
    c.check_snapshots()?;
    c.attribute_snapshots();
    let r = &c.report;
    tracing::info!(
        errors = r.errors.len(),
        warnings = r.warnings.len(),
        packs = r.packs_checked,
        read = r.packs_read,
        snapshots = r.snapshots_checked,
        "check finished"
    );
    Ok(c.report)
}

impl Checker<'_> {
    fn error(&mut self, p: CheckProblem) {
        tracing::debug!(problem = %p, "check error");
        self.report.errors.push(p);
    }

    fn warn(&mut self, p: CheckProblem) {
        tracing::debug!(problem = %p, "check warning");
        self.report.warnings.push(p);
    }

    /// Read the config file again: it decrypts, parses, and holds a known version and an
    /// irreducible chunker polynomial.
    fn check_config(&mut self) {
        let problem = |why: String| {
            CheckProblem::new(ProblemKind::Config, format!("config: {why}")).file("config".into())
        };
        let plain = self
            .repo
            .backend()
            .read(FileType::Config, "")
            .and_then(|enc| {
                self.repo
                    .key()
                    .decrypt(&enc)
                    .map_err(|e| Error::crypto("config", e))
            })
            .and_then(|plain| decode_unpacked(plain, "config"));
        let config: crate::config::Config = match plain
            .and_then(|json| serde_json::from_slice(&json).map_err(|e| Error::json("config", e)))
        {
            Ok(c) => c,
            Err(e) => return self.error(problem(reason(&e))),
        };
        if config.version != VERSION_1 && config.version != VERSION_2 {
            self.error(problem(format!(
                "unsupported repository version {}",
                config.version
            )));
        }
        match config.polynomial() {
            Ok(p) if p.is_irreducible() => {}
            Ok(p) => self.error(problem(format!("chunker polynomial {p} is not irreducible"))),
            Err(e) => self.error(problem(format!("invalid chunker polynomial: {e}"))),
        }
        if config.id.len() != 64 || !config.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.warn(problem(format!("unusual repository id {:?}", config.id)));
        }
    }

    /// Every key file parses, uses scrypt with valid parameters, and is named by its hash; the
    /// key that opened the repository is still there.
    fn check_keys(&mut self) -> Result<()> {
        let backend = self.repo.backend().clone();
        let mut found_current = false;
        let mut names = backend.list(FileType::Key)?;
        names.sort();
        for (name, _) in names {
            let file = format!("keys/{name}");
            let Ok(id) = name.parse::<Id>() else {
                self.warn(
                    CheckProblem::new(
                        ProblemKind::InvalidFileName,
                        format!("{file}: not a key file name (64 hex digits); ignored"),
                    )
                    .file(file),
                );
                continue;
            };
            self.report.keys_checked += 1;
            found_current |= id == self.repo.key_id();
            let problem =
                |why: String| CheckProblem::new(ProblemKind::KeyFile, format!("key file {file}: {why}"));
            let bytes = match backend.read(FileType::Key, &name) {
                Ok(b) => b,
                Err(e) => {
                    self.error(problem(reason(&e)).file(file.clone()));
                    continue;
                }
            };
            let actual = Id::hash(&bytes);
            if actual != id {
                self.error(
                    problem(format!("content hashes to {actual}, not to its name")).file(file.clone()),
                );
            }
            match serde_json::from_slice::<KeyFile>(&bytes) {
                Err(e) => self.error(problem(format!("invalid JSON: {e}")).file(file)),
                Ok(kf) if kf.kdf != "scrypt" => {
                    self.error(problem(format!("unsupported KDF {:?}", kf.kdf)).file(file))
                }
                Ok(kf) if !kf.n.is_power_of_two() || kf.n < 2 || kf.r == 0 || kf.p == 0 => self.error(
                    problem(format!(
                        "invalid scrypt parameters N={} r={} p={}",
                        kf.n, kf.r, kf.p
                    ))
                    .file(file),
                ),
                Ok(kf) if kf.data.len() <= crate::crypto::OVERHEAD => {
                    self.error(problem("the encrypted master key is missing or too short".into()).file(file))
                }
                Ok(_) => {}
            }
        }
        if !found_current {
            self.error(CheckProblem::new(
                ProblemKind::KeyFile,
                format!(
                    "key file keys/{} that opened the repository is gone",
                    self.repo.key_id()
                ),
            ));
        }
        Ok(())
    }

    /// Read every index file; an unreadable one is reported by name and the others still count.
    fn load_index(&mut self) -> Result<()> {
        let mut names = self.repo.backend().list(FileType::Index)?;
        names.sort();
        for (name, _) in names {
            let file = format!("index/{name}");
            let Ok(id) = name.parse::<Id>() else {
                self.warn(
                    CheckProblem::new(
                        ProblemKind::InvalidFileName,
                        format!("{file}: not an index file name (64 hex digits); ignored"),
                    )
                    .file(file),
                );
                continue;
            };
            let index_file: IndexFile = match self.repo.load_json(FileType::Index, &id) {
                Ok(f) => f,
                Err(e) => {
                    self.error(
                        CheckProblem::new(
                            ProblemKind::IndexFile,
                            format!("index file {file}: {}", reason(&e)),
                        )
                        .file(file),
                    );
                    continue;
                }
            };
            self.report.index_files_checked += 1;
            if index_file.legacy {
                self.warn(
                    CheckProblem::new(
                        ProblemKind::OldIndexFormat,
                        format!(
                            "index {file} has old format (harmless; `kstash repo repair index` rewrites it)"
                        ),
                    )
                    .file(file.clone()),
                );
            }
            for p in &index_file.packs {
                let blobs: Vec<PackedBlob> = p.blobs.iter().map(|b| b.to_packed()).collect();
                if let Some(known) = self.packs.get_mut(&p.id) {
                    known.index_files.push(id);
                    // The same blobs in another order are the same listing.
                    let same = crate::index::same_blobs(&known.blobs, &blobs);
                    let first = known.index_files[0];
                    let message = if same {
                        format!(
                            "pack {} is listed in several index files ({}, {}); harmless, `kstash repo repair index` removes the duplicate",
                            p.id,
                            first.short(),
                            id.short()
                        )
                    } else {
                        format!(
                            "pack {} is listed differently in index files {} and {}; the first listing is used (`kstash repo repair index` reads the pack and rewrites it)",
                            p.id,
                            first.short(),
                            id.short()
                        )
                    };
                    self.warn(CheckProblem::new(ProblemKind::DuplicatePack, message).pack(p.id));
                    continue;
                }
                for b in &blobs {
                    if let Some(first) = self.index.get(b.blob_type, &b.id)
                        && first.pack != p.id
                    {
                        self.report.duplicate_blobs += 1;
                        self.extra
                            .entry((b.id, b.blob_type))
                            .or_default()
                            .push(BlobLocation {
                                pack: p.id,
                                offset: b.offset,
                                length: b.length,
                                uncompressed_length: b.uncompressed_length,
                            });
                    }
                }
                self.index.add_pack(p.id, &blobs);
                let has_tree = blobs.iter().any(|b| b.blob_type == BlobType::Tree);
                let has_data = blobs.iter().any(|b| b.blob_type == BlobType::Data);
                if has_tree && has_data {
                    self.warn(
                        CheckProblem::new(
                            ProblemKind::MixedPack,
                            format!("pack {} holds both tree and data blobs (harmless; `kstash repo prune` repacks it)", p.id),
                        )
                        .pack(p.id),
                    );
                }
                self.packs.insert(
                    p.id,
                    IndexedPack {
                        blobs,
                        index_files: vec![id],
                    },
                );
            }
        }
        self.report.blobs_indexed = self.index.len();
        Ok(())
    }

    /// Compare the index with the packs in storage, then examine each pack (header, or with
    /// read-data the whole file) in a few threads.
    fn check_packs(&mut self, options: &CheckOptions) -> Result<()> {
        let mut stored: BTreeMap<Id, u64> = BTreeMap::new();
        for (name, size) in self.repo.backend().list(FileType::Pack)? {
            match name.parse::<Id>() {
                Ok(id) => {
                    stored.insert(id, size);
                }
                Err(_) => self.warn(
                    CheckProblem::new(
                        ProblemKind::InvalidFileName,
                        format!("data/…/{name}: not a pack file name (64 hex digits); ignored"),
                    )
                    .file(format!("data/{name}")),
                ),
            }
        }

        let mut problems = Vec::new();
        let mut bad = Vec::new();
        let mut present: Vec<(Id, u64)> = Vec::new();
        for (id, ip) in &self.packs {
            let Some(&size) = stored.get(id) else {
                let indexes: Vec<String> = ip
                    .index_files
                    .iter()
                    .map(|i| format!("index/{}", i.short()))
                    .collect();
                problems.push(
                    CheckProblem::new(
                        ProblemKind::MissingPack,
                        format!(
                            "pack {id} does not exist, but {} lists it with {} blobs",
                            indexes.join(", "),
                            ip.blobs.len()
                        ),
                    )
                    .pack(*id),
                );
                bad.extend(
                    ip.blobs
                        .iter()
                        .map(|b| (*b, *id, format!("its pack {id} is missing"))),
                );
                continue;
            };
            present.push((*id, size));
            if ip.blobs.is_empty() {
                problems.push(
                    CheckProblem::new(
                        ProblemKind::PackIndexMismatch,
                        format!("pack {id} is listed with no blobs"),
                    )
                    .pack(*id),
                );
            }
            let expected = ip.expected_size();
            if size != expected {
                let what = if size < expected {
                    "truncated?"
                } else {
                    "extra bytes?"
                };
                problems.push(
                    CheckProblem::new(
                        ProblemKind::PackSize,
                        format!("pack {id}: size is {size} bytes, but its index entries add up to {expected} ({what})"),
                    )
                    .pack(*id),
                );
                for b in &ip.blobs {
                    let end = u64::from(b.offset) + u64::from(b.length);
                    if end > size {
                        bad.push((
                            *b,
                            *id,
                            format!("its pack {id} is truncated (the blob ends at byte {end}, the file has {size})"),
                        ));
                    }
                }
            }
        }
        for (id, size) in &stored {
            if !self.packs.contains_key(id) {
                self.warn(
                    CheckProblem::new(
                        ProblemKind::UnreferencedPack,
                        format!(
                            "pack {id} ({size} bytes) is not referenced by any index file: unreferenced pack: `kstash repo prune` deletes it, `kstash repo repair index` indexes its blobs"
                        ),
                    )
                    .pack(*id),
                );
            }
        }
        for p in problems {
            self.error(p);
        }
        for (b, pack, why) in bad {
            self.bad.insert((b.id, b.blob_type, pack), why);
        }

        let to_read: HashSet<Id> = match &options.read_data {
            None => HashSet::new(),
            Some(subset) => select_packs(subset, &present, &mut rand::rng())
                .into_iter()
                .collect(),
        };
        if let Some(subset) = &options.read_data {
            tracing::info!(subset = %subset, packs = to_read.len(), of = present.len(), "reading pack data");
        }
        let (reads, headers): (Vec<PackTask<'_>>, Vec<PackTask<'_>>) = present
            .iter()
            .map(|(id, size)| PackTask {
                id: *id,
                size: *size,
                blobs: &self.packs[id].blobs,
                read_data: to_read.contains(id),
            })
            .partition(|t| t.read_data);
        let repo = self.repo;
        // Whole packs: one per thread in memory. Headers are small: more requests in flight.
        let threads = options.threads.max(1);
        let mut outcomes: Vec<(Id, PackOutcome)> =
            parallel_map(&reads, threads, |t| (t.id, read_pack(repo, t)))?;
        outcomes.extend(parallel_map(
            &headers,
            threads * HEADER_THREADS_PER_THREAD,
            |t| (t.id, check_header(repo, t)),
        )?);
        drop((reads, headers));
        outcomes.sort_by_key(|(id, _)| *id);
        for (pack, o) in outcomes {
            self.report.packs_checked += 1;
            self.report.packs_read += usize::from(o.read_fully);
            self.report.blobs_checked += o.blobs_checked;
            self.report.bytes_read += o.bytes_read;
            for p in o.errors {
                self.error(p);
            }
            for (b, why) in o.bad {
                self.bad.insert((b.id, b.blob_type, pack), why);
            }
        }
        Ok(())
    }

    /// Every indexed location of a blob, first one first.
    fn locations(&self, t: BlobType, id: &Id) -> Vec<BlobLocation> {
        let mut out: Vec<BlobLocation> = self.index.get(t, id).into_iter().collect();
        if let Some(more) = self.extra.get(&(*id, t)) {
            out.extend(more.iter().copied());
        }
        out
    }

    /// Load, decrypt, verify and parse a tree from any of its copies.
    fn load_tree(&self, id: &Id) -> std::result::Result<Tree, (String, Vec<Id>)> {
        let locations = self.locations(BlobType::Tree, id);
        if locations.is_empty() {
            return Err(("not found in any index file".into(), Vec::new()));
        }
        let mut why = Vec::new();
        let mut packs = Vec::new();
        for loc in &locations {
            if let Some(bad) = self.bad.get(&(*id, BlobType::Tree, loc.pack)) {
                why.push(bad.clone());
                packs.push(loc.pack);
                continue;
            }
            let loaded = self
                .repo
                .backend()
                .read_range(
                    FileType::Pack,
                    &loc.pack.to_hex(),
                    u64::from(loc.offset),
                    loc.length as usize,
                )
                .and_then(|data| {
                    pack::decode_blob(
                        self.repo.key(),
                        &loc.pack,
                        BlobType::Tree,
                        id,
                        &data,
                        loc.uncompressed_length,
                    )
                });
            match loaded {
                Ok(plain) => match Tree::from_blob(&plain) {
                    Ok(t) => return Ok(t),
                    Err(e) => return Err((format!("invalid tree JSON: {e}"), Vec::new())),
                },
                Err(e) => {
                    why.push(format!(
                        "in pack {} at offset {}: {}",
                        loc.pack,
                        loc.offset,
                        reason(&e)
                    ));
                    packs.push(loc.pack);
                }
            }
        }
        Err((why.join("; "), packs))
    }

    /// Load every snapshot and walk its trees.
    fn check_snapshots(&mut self) -> Result<()> {
        let mut names = self.repo.backend().list(FileType::Snapshot)?;
        names.sort();
        let mut memo: HashMap<Id, Damage> = HashMap::new();
        for (name, _) in names {
            let file = format!("snapshots/{name}");
            let Ok(id) = name.parse::<Id>() else {
                self.warn(
                    CheckProblem::new(
                        ProblemKind::InvalidFileName,
                        format!("{file}: not a snapshot file name (64 hex digits); ignored"),
                    )
                    .file(file),
                );
                continue;
            };
            let sn = match self.repo.load_snapshot(&id) {
                Ok(s) => s,
                Err(e) => {
                    let mut p = CheckProblem::new(
                        ProblemKind::SnapshotFile,
                        format!("snapshot file {file}: {}", reason(&e)),
                    )
                    .file(file);
                    p.snapshot = Some(id);
                    self.error(p);
                    continue;
                }
            };
            self.report.snapshots_checked += 1;
            if let Some(packs) = self.walk(id, sn.tree, "/", &mut memo) {
                self.report.damaged_snapshots.push(id);
                for pack in packs.iter() {
                    self.pack_snapshots.entry(*pack).or_default().insert(id);
                }
            }
        }
        Ok(())
    }

    /// Check tree `tree` (reached at `path` of `snapshot`) and everything below it, once per
    /// tree; returns the damage found below it.
    fn walk(&mut self, snapshot: Id, tree_id: Id, path: &str, memo: &mut HashMap<Id, Damage>) -> Damage {
        if let Some(d) = memo.get(&tree_id) {
            return d.clone();
        }
        // A tree cannot contain itself (ids are hashes), but a forged one must not loop forever.
        memo.insert(tree_id, None);
        self.report.trees_checked += 1;
        let sn = snapshot.short();
        let tree = match self.load_tree(&tree_id) {
            Ok(t) => t,
            Err((why, packs)) => {
                let p = CheckProblem::new(
                    ProblemKind::Tree,
                    format!(
                        "snapshot {sn}: tree {} path {path}: cannot load the tree: {why}",
                        tree_id.short()
                    ),
                )
                .blob(BlobType::Tree, tree_id)
                .at(snapshot, tree_id, path);
                self.error(p);
                let d: Damage = Some(Rc::new(packs.into_iter().collect()));
                memo.insert(tree_id, d.clone());
                return d;
            }
        };
        let mut damaged = false;
        let mut packs: BTreeSet<Id> = BTreeSet::new();
        for node in &tree.nodes {
            let child = if path.ends_with('/') {
                format!("{path}{}", node.name)
            } else {
                format!("{path}/{}", node.name)
            };
            let at = |msg: String| {
                CheckProblem::new(
                    ProblemKind::Tree,
                    format!("snapshot {sn}: tree {} path {child}: {msg}", tree_id.short()),
                )
                .at(snapshot, tree_id, &child)
            };
            if node.name.is_empty() {
                self.error(at("node with an empty name".into()));
                damaged = true;
            }
            match node.node_type {
                NodeType::File => {
                    let Some(content) = &node.content else {
                        self.error(at("file has no content list".into()));
                        damaged = true;
                        continue;
                    };
                    for blob in content {
                        let locations = self.locations(BlobType::Data, blob);
                        if locations.is_empty() {
                            let mut p = at(format!("data blob {blob} missing from the index"));
                            p.kind = ProblemKind::MissingBlob;
                            self.error(p.blob(BlobType::Data, *blob));
                            damaged = true;
                            continue;
                        }
                        let why: Vec<&String> = locations
                            .iter()
                            .filter_map(|l| self.bad.get(&(*blob, BlobType::Data, l.pack)))
                            .collect();
                        if why.len() == locations.len() {
                            let why = why.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ");
                            let mut p = at(format!("data blob {blob} cannot be read: {why}"));
                            p.kind = ProblemKind::LostBlob;
                            p.pack = locations.first().map(|l| l.pack);
                            p.offset = locations.first().map(|l| l.offset);
                            self.error(p.blob(BlobType::Data, *blob));
                            packs.extend(locations.iter().map(|l| l.pack));
                            damaged = true;
                        }
                    }
                }
                NodeType::Dir => match node.subtree {
                    None => {
                        self.error(at("directory has no subtree".into()));
                        damaged = true;
                    }
                    Some(sub) => {
                        if let Some(d) = self.walk(snapshot, sub, &child, memo) {
                            packs.extend(d.iter().copied());
                            damaged = true;
                        }
                    }
                },
                _ => {}
            }
        }
        let d: Damage = damaged.then(|| Rc::new(packs));
        memo.insert(tree_id, d.clone());
        d
    }

    /// Name, in each pack-level problem, the snapshots that have files or trees in that pack.
    fn attribute_snapshots(&mut self) {
        self.report.damaged_snapshots.sort();
        for p in &mut self.report.errors {
            if p.snapshot.is_some() {
                continue;
            }
            if let Some(pack) = p.pack
                && let Some(snaps) = self.pack_snapshots.get(&pack)
            {
                p.affected_snapshots = snaps.iter().copied().collect();
            }
        }
    }
}

/// Check a pack's header (two ranged reads) against the index.
fn check_header(repo: &Repository, t: &PackTask<'_>) -> PackOutcome {
    let mut out = PackOutcome::default();
    match read_header(repo, t) {
        Ok(header) => compare_header(&t.id, &header, t.blobs, &mut out.errors),
        Err(e) => out.errors.push(header_problem(&t.id, &e)),
    }
    out
}

fn header_problem(id: &Id, e: &Error) -> CheckProblem {
    CheckProblem::new(
        ProblemKind::PackHeader,
        format!("pack {id}: cannot read the pack header: {}", reason(e)),
    )
    .pack(*id)
}

/// The blob list of a pack's header, read with two ranged reads.
fn read_header(repo: &Repository, t: &PackTask<'_>) -> Result<Vec<PackedBlob>> {
    let name = t.id.to_hex();
    let backend = repo.backend();
    if t.size < 4 {
        return Err(Error::InvalidPack {
            pack: t.id,
            reason: format!("file too small ({} bytes)", t.size),
        });
    }
    let tail: [u8; 4] = backend
        .read_range(FileType::Pack, &name, t.size - 4, 4)?
        .try_into()
        .map_err(|_| Error::InvalidPack {
            pack: t.id,
            reason: "short read of the header length".into(),
        })?;
    let (start, len) = pack::header_range(&t.id, t.size, tail)?;
    let enc = backend.read_range(FileType::Pack, &name, start, len)?;
    pack::parse_header(repo.key(), &t.id, start, &enc)
}

/// Read a whole pack: its SHA-256 must be its name, its header must match the index, and every
/// indexed blob must decrypt, decompress and hash to its id.
fn read_pack(repo: &Repository, t: &PackTask<'_>) -> PackOutcome {
    let mut out = PackOutcome {
        read_fully: true,
        ..Default::default()
    };
    let data = match repo.backend().read(FileType::Pack, &t.id.to_hex()) {
        Ok(d) => d,
        Err(e) => {
            out.errors.push(
                CheckProblem::new(
                    ProblemKind::PackRead,
                    format!("pack {}: cannot read: {}", t.id, reason(&e)),
                )
                .pack(t.id),
            );
            return out;
        }
    };
    out.bytes_read = data.len() as u64;
    let actual = Id::hash(&data);
    if actual != t.id {
        out.errors.push(
            CheckProblem::new(
                ProblemKind::PackHash,
                format!(
                    "pack {}: content hashes to {actual}, not to its name: the file was changed or damaged",
                    t.id
                ),
            )
            .pack(t.id),
        );
    }
    match pack::list_blobs(repo.key(), &t.id, &data) {
        Ok(header) => compare_header(&t.id, &header, t.blobs, &mut out.errors),
        Err(e) => out.errors.push(header_problem(&t.id, &e)),
    }
    let mut blobs = t.blobs.to_vec();
    blobs.sort_by_key(|b| b.offset);
    for b in blobs {
        out.blobs_checked += 1;
        let start = b.offset as usize;
        let end = start + b.length as usize;
        let result = match data.get(start..end) {
            Some(enc) => pack::decode_blob(repo.key(), &t.id, b.blob_type, &b.id, enc, b.uncompressed_length)
                .map(drop)
                .map_err(|e| reason(&e)),
            None => Err(format!(
                "the blob ends at byte {end}, beyond the end of the file ({} bytes)",
                data.len()
            )),
        };
        if let Err(why) = result {
            let message = format!(
                "pack {}: {} blob {} at offset {} (length {}): {why}",
                t.id,
                b.blob_type.as_str(),
                b.id,
                b.offset,
                b.length
            );
            let mut p = CheckProblem::new(ProblemKind::DamagedBlob, message)
                .pack(t.id)
                .blob(b.blob_type, b.id);
            p.offset = Some(b.offset);
            out.errors.push(p);
            out.bad.push((
                b,
                format!("damaged in pack {} at offset {}: {why}", t.id, b.offset),
            ));
        }
    }
    out
}

type BlobKey = (Id, BlobType, u32, u32, Option<u32>);

fn blob_key(b: &PackedBlob) -> BlobKey {
    (b.id, b.blob_type, b.offset, b.length, b.uncompressed_length)
}

/// Report every blob the header and the index list differently (a few per pack).
fn compare_header(id: &Id, header: &[PackedBlob], indexed: &[PackedBlob], out: &mut Vec<CheckProblem>) {
    let in_header: HashSet<BlobKey> = header.iter().map(blob_key).collect();
    let in_index: HashSet<BlobKey> = indexed.iter().map(blob_key).collect();
    let mut mismatches: Vec<String> = Vec::new();
    for b in indexed {
        if !in_header.contains(&blob_key(b)) {
            mismatches.push(format!(
                "the index lists {} blob {} at offset {} (length {}), the pack header does not",
                b.blob_type.as_str(),
                b.id,
                b.offset,
                b.length
            ));
        }
    }
    for b in header {
        if !in_index.contains(&blob_key(b)) {
            mismatches.push(format!(
                "the pack header lists {} blob {} at offset {} (length {}), the index does not",
                b.blob_type.as_str(),
                b.id,
                b.offset,
                b.length
            ));
        }
    }
    let total = mismatches.len();
    for m in mismatches.into_iter().take(MAX_MISMATCHES_PER_PACK) {
        out.push(CheckProblem::new(ProblemKind::PackIndexMismatch, format!("pack {id}: {m}")).pack(*id));
    }
    if total > MAX_MISMATCHES_PER_PACK {
        out.push(
            CheckProblem::new(
                ProblemKind::PackIndexMismatch,
                format!(
                    "pack {id}: {} more differences between the pack header and the index",
                    total - MAX_MISMATCHES_PER_PACK
                ),
            )
            .pack(*id),
        );
    }
}

/// Apply `f` to every item on up to `threads` threads; results in the order of `items`.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let workers = threads.clamp(1, items.len().max(1));
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let handle = std::thread::Builder::new()
                .name("kstash-packs".into())
                .spawn_scoped(s, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = f(item);
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start a check thread: {e}")))?;
            handles.push(handle);
        }
        for h in handles {
            h.join()
                .map_err(|_| Error::Internal("a check thread panicked".into()))?;
        }
        Ok(())
    })?;
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Internal("a pack was not checked".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn id_with_first_byte(b: u8, n: u8) -> Id {
        let mut id = Id::hash(&[b, n]);
        id.0[0] = b;
        id
    }

    #[test]
    fn subset_specs_parse_as_restic_accepts_them() {
        use ReadDataSubset::*;
        let ok = |s: &str| s.parse::<ReadDataSubset>().unwrap();
        assert_eq!(ok("1/5"), Group { n: 1, t: 5 });
        assert_eq!(ok("5/5"), Group { n: 5, t: 5 });
        assert_eq!(ok("256/256"), Group { n: 256, t: 256 });
        assert_eq!(ok("10%"), Percent(10.0));
        assert_eq!(ok("2.5%"), Percent(2.5));
        assert_eq!(ok("100%"), Percent(100.0));
        assert_eq!(ok("100M"), Size(100 << 20));
        assert_eq!(ok("100m"), Size(100 << 20));
        assert_eq!(ok("2G"), Size(2 << 30));
        assert_eq!(ok("3k"), Size(3 << 10));
        assert_eq!(ok("1T"), Size(1 << 40));
        assert_eq!(ok("4096"), Size(4096));
        assert_eq!(ok("77b"), Size(77));
        assert_eq!(ok("all"), All);
        for bad in [
            "0/5", "6/5", "1/0", "1/257", "1/2/3", "a/b", "-1/2", "0%", "101%", "x%", "-5%", "0", "0M",
            "abc", "10x", "", "M", "NaN%",
        ] {
            let err = bad.parse::<ReadDataSubset>().unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{bad}: {err}");
            assert!(err.to_string().contains("--read-data-subset"), "{err}");
        }
        // Display round-trips.
        for s in ["3/7", "12.5%", "all"] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn groups_split_packs_by_first_byte_exactly_once() {
        let packs: Vec<(Id, u64)> = (0..=255u8)
            .flat_map(|b| [(id_with_first_byte(b, 0), 10), (id_with_first_byte(b, 1), 10)])
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for t in [1u32, 2, 3, 7, 256] {
            let mut seen = BTreeSet::new();
            for n in 1..=t {
                let sel = select_packs(&ReadDataSubset::Group { n, t }, &packs, &mut rng);
                for id in &sel {
                    assert_eq!(
                        u32::from(id.0[0]) % t,
                        n - 1,
                        "restic's rule: first byte mod t == n-1"
                    );
                    assert!(seen.insert(*id), "pack {id} selected by two groups");
                }
                if t <= 256 {
                    assert!(!sel.is_empty());
                }
            }
            assert_eq!(seen.len(), packs.len(), "t={t}: every pack in exactly one group");
        }
        // Concrete cases: 0x00 and 0x03 are in group 1/3, 0x01 in 2/3, 0x02 in 3/3.
        assert!(in_group(&id_with_first_byte(0x00, 0), 1, 3));
        assert!(in_group(&id_with_first_byte(0x03, 0), 1, 3));
        assert!(in_group(&id_with_first_byte(0x01, 0), 2, 3));
        assert!(in_group(&id_with_first_byte(0x02, 0), 3, 3));
        assert!(!in_group(&id_with_first_byte(0x02, 0), 1, 3));
        assert!(in_group(&id_with_first_byte(0xff, 0), 2, 2));
        assert!(in_group(&id_with_first_byte(0xff, 0), 256, 256));
    }

    #[test]
    fn random_subsets_by_percentage_and_size() {
        let packs: Vec<(Id, u64)> = (0..100u8).map(|i| (id_with_first_byte(i, 7), 1000)).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let all = select_packs(&ReadDataSubset::All, &packs, &mut rng);
        assert_eq!(all.len(), 100);
        assert_eq!(
            select_packs(&ReadDataSubset::Percent(10.0), &packs, &mut rng).len(),
            10
        );
        assert_eq!(
            select_packs(&ReadDataSubset::Percent(0.1), &packs, &mut rng).len(),
            1,
            "at least one pack"
        );
        assert_eq!(
            select_packs(&ReadDataSubset::Percent(100.0), &packs, &mut rng),
            all
        );
        let a = select_packs(&ReadDataSubset::Percent(50.0), &packs, &mut rng);
        let b = select_packs(&ReadDataSubset::Percent(50.0), &packs, &mut rng);
        assert_ne!(a, b, "random");
        assert_eq!(
            select_packs(&ReadDataSubset::Size(25_500), &packs, &mut rng).len(),
            25
        );
        assert_eq!(
            select_packs(&ReadDataSubset::Size(10), &packs, &mut rng).len(),
            1,
            "at least one pack"
        );
        assert_eq!(
            select_packs(&ReadDataSubset::Size(u64::MAX), &packs, &mut rng).len(),
            100
        );
        assert!(select_packs(&ReadDataSubset::Percent(50.0), &[], &mut rng).is_empty());
        assert!(select_packs(&ReadDataSubset::Size(5), &[], &mut rng).is_empty());
    }

    #[test]
    fn header_and_index_differences_are_named_and_capped() {
        let pack = Id::hash(b"p");
        let blob = |n: u8, offset: u32| PackedBlob {
            id: Id::hash(&[n]),
            blob_type: BlobType::Data,
            offset,
            length: 100,
            uncompressed_length: None,
        };
        let mut out = Vec::new();
        compare_header(
            &pack,
            &[blob(1, 0), blob(2, 100)],
            &[blob(1, 0), blob(2, 100)],
            &mut out,
        );
        assert!(out.is_empty());
        compare_header(
            &pack,
            &[blob(1, 0), blob(2, 100)],
            &[blob(1, 0), blob(3, 100)],
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[0].message.contains(&Id::hash(&[3]).to_hex()), "{}", out[0]);
        assert!(out[1].message.contains(&Id::hash(&[2]).to_hex()), "{}", out[1]);
        assert_eq!(out[0].pack, Some(pack));
        out.clear();
        let many: Vec<PackedBlob> = (0..30).map(|i| blob(i, u32::from(i) * 100)).collect();
        compare_header(&pack, &many, &[], &mut out);
        assert_eq!(out.len(), MAX_MISMATCHES_PER_PACK + 1);
        assert!(
            out.last().unwrap().message.contains("20 more"),
            "{}",
            out.last().unwrap()
        );
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..50).collect();
        let out = parallel_map(&items, 3, |x| x * 2).unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(parallel_map(&Vec::<u32>::new(), 2, |x| *x).unwrap().is_empty());
    }
}
