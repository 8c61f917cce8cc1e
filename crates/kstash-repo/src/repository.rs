//! An open repository: backend + master key + config + in-memory index. `init`, `open`, key
//! management, unpacked files (`0x02 ‖ zstd(JSON)` in v2), blobs, trees and snapshots.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, FileType};
use crate::chunker::Pol;
use crate::config::{Config, VERSION_1, VERSION_2};
use crate::crypto::Key;
use crate::error::{Error, Result, file_name};
use crate::gojson;
use crate::id::Id;
use crate::index::{BlobType, Index, IndexFile, PackedBlob};
use crate::keys::{KdfParams, KeyError, KeyFile, KeyInfo};
use crate::pack;
use crate::snapshot::{Snapshot, SnapshotEntry};
use crate::tree::Tree;

/// Default zstd level (restic's `auto` is about level 3).
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

/// Named compression modes: restic's `auto` and `max`, restic 0.19's `fastest` and `better`
/// (klauspost's SpeedFastest and SpeedBetterCompression, about zstd levels 1 and 7), and kstash's
/// `fast` (zstd level 1, as `fastest`: about 40% less CPU than `auto` on SQL dumps, for streams
/// whose producer competes for the cores).
pub const COMPRESSION_MODES: &[(&str, i32)] = &[
    ("auto", DEFAULT_COMPRESSION_LEVEL),
    ("fastest", 1),
    ("fast", 1),
    ("better", 7),
    ("max", 19),
];

/// The names of [`COMPRESSION_MODES`], for messages: `auto, fastest, fast, better, max`.
pub fn compression_mode_names() -> String {
    COMPRESSION_MODES
        .iter()
        .map(|(m, _)| *m)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The zstd level of a named compression mode (`auto`, `fastest`, `fast`, `better`, `max`).
pub fn compression_level_of(mode: &str) -> Option<i32> {
    COMPRESSION_MODES
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(mode.trim()))
        .map(|(_, l)| *l)
}

/// Options for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Format version, 1 or 2 (default 2).
    pub version: u32,
    /// scrypt parameters of the first key.
    pub kdf: KdfParams,
    /// Chunker polynomial; random if `None`.
    pub polynomial: Option<Pol>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            version: VERSION_2,
            kdf: KdfParams::default(),
            polynomial: None,
        }
    }
}

/// An open repository. Cheap to share between threads by reference.
pub struct Repository {
    backend: Arc<dyn Backend>,
    key: Key,
    key_id: Id,
    config: Config,
    index: RwLock<Index>,
    /// The index files the in-memory index was built from.
    index_files: Mutex<BTreeSet<Id>>,
    damaged_index: Mutex<Vec<(Id, String)>>,
    compression_level: i32,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("version", &self.config.version)
            .field("key", &self.key_id)
            .finish()
    }
}

impl Repository {
    /// Create a new repository: config (random id and polynomial) and one key file.
    pub fn init(backend: Arc<dyn Backend>, password: &str, options: InitOptions) -> Result<Repository> {
        if options.version != VERSION_1 && options.version != VERSION_2 {
            return Err(Error::UnsupportedVersion {
                repo: backend.location(),
                version: options.version,
            });
        }
        if backend.exists(FileType::Config, "")? {
            return Err(Error::AlreadyInitialised(backend.location()));
        }
        let pol = match options.polynomial {
            Some(p) => p,
            None => Pol::random().map_err(|e| Error::Internal(format!("chunker polynomial: {e}")))?,
        };
        backend.create()?;
        let master = Key::random();
        let config = Config::new(options.version, pol);
        let kf =
            KeyFile::new(password, &master, options.kdf).map_err(|e| Error::Key(format!("new key: {e}")))?;
        let (key_id, bytes) = kf.to_bytes();
        backend.write(FileType::Key, &key_id.to_hex(), &bytes)?;
        let json = serde_json::to_vec(&config).map_err(|e| Error::json("config", e))?;
        backend.write(FileType::Config, "", &master.encrypt(&json))?;
        tracing::info!(repo = %backend.location(), id = %config.id, version = config.version, "initialised repository");
        Ok(Repository {
            backend,
            key: master,
            key_id,
            config,
            index: RwLock::new(Index::new()),
            index_files: Mutex::new(BTreeSet::new()),
            damaged_index: Mutex::new(Vec::new()),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        })
    }

    /// Open a repository with a password: try every key file, read config, load the index.
    pub fn open(backend: Arc<dyn Backend>, password: &str) -> Result<Repository> {
        let repo = Repository::open_without_index(backend, password)?;
        repo.load_index()?;
        Ok(repo)
    }

    /// [`Repository::open`] without loading the index (for `check`, which reads the index files
    /// itself and reports each unreadable one instead of failing on the first).
    pub fn open_without_index(backend: Arc<dyn Backend>, password: &str) -> Result<Repository> {
        let location = backend.location();
        if !backend.exists(FileType::Config, "")? {
            return Err(Error::NotFound(format!("repository {location} (no config file)")));
        }
        let mut found = None;
        for (name, _) in backend.list(FileType::Key)? {
            let Ok(id) = name.parse::<Id>() else {
                tracing::warn!(file = %name, "ignoring key file with an invalid name");
                continue;
            };
            let bytes = backend.read(FileType::Key, &name)?;
            let kf: KeyFile = match serde_json::from_slice(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "ignoring unreadable key file");
                    continue;
                }
            };
            match kf.open(password) {
                Ok(master) => {
                    found = Some((id, master));
                    break;
                }
                Err(KeyError::Crypto(crate::crypto::CryptoError::Mac)) => {
                    tracing::debug!(key = %id.short(), "password does not open key");
                }
                Err(e) => tracing::warn!(key = %id.short(), error = %e, "cannot use key file"),
            }
        }
        let (key_id, key) = found.ok_or_else(|| Error::WrongPassword {
            repo: location.clone(),
        })?;
        let enc = backend.read(FileType::Config, "")?;
        let plain = key
            .decrypt(&enc)
            .map_err(|e| Error::crypto(format!("{location}/config"), e))?;
        let config: Config = decode_unpacked_plain(&plain, &format!("{location}/config"))?;
        if config.version != VERSION_1 && config.version != VERSION_2 {
            return Err(Error::UnsupportedVersion {
                repo: location,
                version: config.version,
            });
        }
        let repo = Repository {
            backend,
            key,
            key_id,
            config,
            index: RwLock::new(Index::new()),
            index_files: Mutex::new(BTreeSet::new()),
            damaged_index: Mutex::new(Vec::new()),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        };
        tracing::debug!(repo = %location, key = %key_id.short(), "opened repository");
        Ok(repo)
    }

    /// (Re)load every index file into memory.
    ///
    /// An index file that cannot be decoded (corrupted, wrong MAC, bad JSON) is skipped with a
    /// warning and listed by [`Repository::damaged_index_files`], so the data of undamaged packs
    /// stays readable; storage errors still fail. Prune reads the index files itself and
    /// refuses to run while one is damaged.
    pub fn load_index(&self) -> Result<()> {
        let mut idx = Index::new();
        let mut files = BTreeSet::new();
        let mut damaged = Vec::new();
        for id in self.list_index_files()? {
            match self.load_json::<IndexFile>(FileType::Index, &id) {
                Ok(file) => {
                    idx.add_file(&file);
                    files.insert(id);
                }
                Err(e @ (Error::Backend { .. } | Error::Storage(_) | Error::NotFound(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(index = %id, error = %e, "skipping a damaged index file; run `kstash repo check`, and `kstash repo repair index` to rebuild the index");
                    damaged.push((id, e.to_string()));
                }
            }
        }
        tracing::debug!(packs = idx.pack_count(), blobs = idx.len(), "loaded index");
        *self.index_mut() = idx;
        *self.index_files.lock().unwrap_or_else(|p| p.into_inner()) = files;
        *self.damaged_index.lock().unwrap_or_else(|p| p.into_inner()) = damaged;
        Ok(())
    }

    /// Index files the last [`Repository::load_index`] had to skip, with the reason.
    pub fn damaged_index_files(&self) -> Vec<(Id, String)> {
        self.damaged_index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bring the in-memory index up to date with the index files in storage, e.g. after taking
    /// a lock: new files are added; if a file that was loaded is gone (prune or index rebuild
    /// ran), everything is reloaded so no blob of a deleted pack stays known. Returns whether
    /// anything changed.
    pub fn refresh_index(&self) -> Result<bool> {
        let now: BTreeSet<Id> = self.list_index_files()?.into_iter().collect();
        let known = self.index_files.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !known.is_subset(&now) {
            tracing::debug!("index files were removed; reloading the whole index");
            self.load_index()?;
            return Ok(true);
        }
        let damaged: BTreeSet<Id> = self.damaged_index_files().into_iter().map(|(id, _)| id).collect();
        let new: Vec<Id> = now
            .difference(&known)
            .filter(|id| !damaged.contains(id))
            .copied()
            .collect();
        for id in &new {
            let file: IndexFile = self.load_json(FileType::Index, id)?;
            self.index_mut().add_file(&file);
            self.index_files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*id);
        }
        if !new.is_empty() {
            tracing::debug!(files = new.len(), "loaded new index files");
        }
        Ok(!new.is_empty())
    }

    fn list_index_files(&self) -> Result<Vec<Id>> {
        Ok(self
            .backend
            .list(FileType::Index)?
            .into_iter()
            .filter_map(|(name, _)| name.parse::<Id>().ok())
            .collect())
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The id of the key file that opened the repository.
    pub fn key_id(&self) -> Id {
        self.key_id
    }

    /// The zstd level used for new blobs and files (v2 only).
    pub fn compression_level(&self) -> i32 {
        self.compression_level
    }

    /// Set the zstd level (1–22; restic `auto` ≈ 3, `max` ≈ 19).
    pub fn set_compression_level(&mut self, level: i32) {
        self.compression_level = level;
    }

    /// Whether new blobs are compressed.
    pub fn compression(&self) -> bool {
        self.config.compression()
    }

    /// Read access to the index.
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the index.
    pub fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The repository location.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    // ---- keys ---------------------------------------------------------------------------------

    /// Add a key file for `password` wrapping this repository's master key.
    pub fn add_key(&self, password: &str, params: KdfParams) -> Result<Id> {
        let kf =
            KeyFile::new(password, &self.key, params).map_err(|e| Error::Key(format!("new key: {e}")))?;
        let (id, bytes) = kf.to_bytes();
        self.backend.write(FileType::Key, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    /// Every key file.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(FileType::Key)? {
            let Ok(id) = name.parse::<Id>() else { continue };
            let bytes = self.backend.read(FileType::Key, &name)?;
            let kf: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::json(file_name(FileType::Key, &name), e))?;
            out.push(KeyInfo {
                id,
                current: id == self.key_id,
                username: kf.username,
                hostname: kf.hostname,
                created: kf.created,
            });
        }
        out.sort_by_key(|k| k.created.timestamp);
        Ok(out)
    }

    /// Remove a key file (not the one in use).
    pub fn remove_key(&self, id: &Id) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::Key(format!(
                "refusing to remove key {} which is currently used",
                id.short()
            )));
        }
        self.backend.remove(FileType::Key, &id.to_hex())
    }

    /// Change the password: add a key for `new_password`, then remove the current key file.
    pub fn change_password(&mut self, new_password: &str, params: KdfParams) -> Result<Id> {
        let new_id = self.add_key(new_password, params)?;
        let old = std::mem::replace(&mut self.key_id, new_id);
        self.backend.remove(FileType::Key, &old.to_hex())?;
        Ok(new_id)
    }

    // ---- unpacked files -----------------------------------------------------------------------

    /// Encode (compress in v2), encrypt and store a JSON file; returns its id.
    pub fn save_json<T: Serialize>(&self, t: FileType, value: &T) -> Result<Id> {
        let json = gojson::to_vec(value).map_err(|e| Error::json(t.dir(), e))?;
        self.save_unpacked(t, &json)
    }

    /// Store an unpacked file from its plaintext (JSON).
    pub fn save_unpacked(&self, t: FileType, plain: &[u8]) -> Result<Id> {
        let level = (t != FileType::Config)
            .then(|| self.unpacked_compression())
            .flatten();
        let enc = seal_unpacked(&self.key, level, plain)?;
        let id = Id::hash(&enc);
        self.backend.write(t, &id.to_hex(), &enc)?;
        Ok(id)
    }

    /// The zstd level for unpacked files (index, snapshots, locks): `None` in v1 repositories.
    pub fn unpacked_compression(&self) -> Option<i32> {
        self.compression().then_some(self.compression_level)
    }

    /// Load, verify (name = SHA-256 of the bytes), decrypt and decode an unpacked file.
    pub fn load_unpacked(&self, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let name = id.to_hex();
        let what = file_name(t, &name);
        let enc = self.backend.read(t, &name)?;
        let actual = Id::hash(&enc);
        if actual != *id {
            return Err(Error::HashMismatch {
                what,
                expected: *id,
                actual,
            });
        }
        let plain = self
            .key
            .decrypt(&enc)
            .map_err(|e| Error::crypto(what.clone(), e))?;
        decode_unpacked(plain, &what)
    }

    /// Load and parse a JSON unpacked file.
    pub fn load_json<T: DeserializeOwned>(&self, t: FileType, id: &Id) -> Result<T> {
        let plain = self.load_unpacked(t, id)?;
        serde_json::from_slice(&plain).map_err(|e| Error::json(file_name(t, &id.to_hex()), e))
    }

    // ---- blobs --------------------------------------------------------------------------------

    /// Read, decrypt, decompress and verify one blob.
    pub fn load_blob(&self, blob_type: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = self.index().get(blob_type, id).ok_or(Error::BlobNotFound {
            kind: blob_type.as_str(),
            id: *id,
        })?;
        let data = self.backend.read_range(
            FileType::Pack,
            &loc.pack.to_hex(),
            u64::from(loc.offset),
            loc.length as usize,
        )?;
        pack::decode_blob(
            &self.key,
            &loc.pack,
            blob_type,
            id,
            &data,
            loc.uncompressed_length,
        )
    }

    /// Load a tree blob.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.load_blob(BlobType::Tree, id)?;
        Tree::from_blob(&data).map_err(|e| Error::json(format!("tree {id}"), e))
    }

    /// Read a pack's header from storage.
    pub fn list_pack(&self, pack_id: &Id) -> Result<Vec<PackedBlob>> {
        let name = pack_id.to_hex();
        let size = self.backend.stat(FileType::Pack, &name)?;
        let tail = self.backend.read_range(
            FileType::Pack,
            &name,
            size.saturating_sub(4),
            4.min(size as usize),
        )?;
        let tail: [u8; 4] = tail.try_into().map_err(|_| Error::InvalidPack {
            pack: *pack_id,
            reason: "file too small".into(),
        })?;
        let (start, len) = pack::header_range(pack_id, size, tail)?;
        let enc = self.backend.read_range(FileType::Pack, &name, start, len)?;
        pack::parse_header(&self.key, pack_id, start, &enc)
    }

    /// Write a finished pack and add its blobs to the in-memory index (not to an index file).
    pub fn upload_pack(&self, p: &pack::FinishedPack) -> Result<()> {
        match self.backend.write(FileType::Pack, &p.id.to_hex(), &p.data) {
            Ok(()) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.index_mut().add_pack(p.id, &p.blobs);
        Ok(())
    }

    // ---- snapshots ----------------------------------------------------------------------------

    /// Store a snapshot; returns its id.
    pub fn save_snapshot(&self, sn: &Snapshot) -> Result<Id> {
        self.save_json(FileType::Snapshot, sn)
    }

    /// Load one snapshot.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        self.load_json(FileType::Snapshot, id)
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(FileType::Snapshot)? {
            let Ok(id) = name.parse::<Id>() else { continue };
            out.push(SnapshotEntry {
                id,
                snapshot: self.load_snapshot(&id)?,
            });
        }
        sort_by_time(&mut out);
        Ok(out)
    }

    /// Every readable snapshot, oldest first, and the snapshot files that could not be read
    /// (for listing and `latest`; operations that delete data use the strict
    /// [`Repository::list_snapshots`]).
    pub fn list_snapshots_lenient(&self) -> Result<(Vec<SnapshotEntry>, UnreadableSnapshots)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for (name, _) in self.backend.list(FileType::Snapshot)? {
            let Ok(id) = name.parse::<Id>() else { continue };
            match self.load_snapshot(&id) {
                Ok(snapshot) => out.push(SnapshotEntry { id, snapshot }),
                Err(e @ (Error::Backend { .. } | Error::Storage(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %e, "skipping an unreadable snapshot file");
                    bad.push((name, e));
                }
            }
        }
        sort_by_time(&mut out);
        Ok((out, bad))
    }

    /// A snapshot by full id, unique id prefix, or `latest` (newest readable one by time).
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotEntry> {
        if spec == "latest" {
            return self
                .list_snapshots_lenient()?
                .0
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound(spec.to_string()));
        }
        let spec_l = spec.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .backend
            .list(FileType::Snapshot)?
            .into_iter()
            .filter(|(n, _)| n.starts_with(&spec_l))
            .filter_map(|(n, _)| n.parse().ok())
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            [id] => Ok(SnapshotEntry {
                id: *id,
                snapshot: self.load_snapshot(id)?,
            }),
            _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
        }
    }
}

/// Oldest first; equal times by id, so the order is the same on every run.
fn sort_by_time(snapshots: &mut [SnapshotEntry]) {
    snapshots.sort_by(|a, b| {
        a.snapshot
            .time
            .timestamp
            .cmp(&b.snapshot.time.timestamp)
            .then(a.id.cmp(&b.id))
    });
}

/// Snapshot files that could not be read: name and why.
pub type UnreadableSnapshots = Vec<(String, Error)>;

/// An unpacked file as stored: `0x02 ‖ zstd(plain)` when `level` is given (v2), else `plain`;
/// then encrypted with `key`. The file's name is the SHA-256 of the result.
pub fn seal_unpacked(key: &Key, level: Option<i32>, plain: &[u8]) -> Result<Vec<u8>> {
    Ok(match level {
        Some(level) => {
            let z = zstd::bulk::compress(plain, level)
                .map_err(|e| Error::Internal(format!("zstd compression failed: {e}")))?;
            let mut v = Vec::with_capacity(z.len() + 1);
            v.push(2u8);
            v.extend_from_slice(&z);
            key.encrypt(&v)
        }
        None => key.encrypt(plain),
    })
}

/// The largest decompressed unpacked file (index, snapshot, lock). kstash and restic write
/// index files of a few MiB; a file that inflates beyond this is refused instead of filling the
/// memory (zstd turns a few KiB into gigabytes of zeros).
pub const MAX_UNPACKED_SIZE: u64 = 256 * 1024 * 1024;

/// Decode an unpacked file's plaintext: `0x02 ‖ zstd(JSON)`, or plain JSON (`{`/`[`).
pub fn decode_unpacked(plain: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    decode_unpacked_at_most(plain, what, MAX_UNPACKED_SIZE)
}

fn decode_unpacked_at_most(plain: Vec<u8>, what: &str, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read as _;
    match plain.first() {
        Some(b'{') | Some(b'[') => Ok(plain),
        Some(2) => {
            let format = |reason: String| Error::Format {
                what: what.to_string(),
                reason,
            };
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(&plain[1..])
                .and_then(|d| d.take(limit + 1).read_to_end(&mut out))
                .map_err(|e| format(format!("zstd decompression failed: {e}")))?;
            if out.len() as u64 > limit {
                return Err(format(format!("decompresses to more than {limit} bytes")));
            }
            Ok(out)
        }
        Some(v) => Err(Error::Format {
            what: what.to_string(),
            reason: format!("unknown file format version {v}"),
        }),
        None => Err(Error::Format {
            what: what.to_string(),
            reason: "empty file".into(),
        }),
    }
}

fn decode_unpacked_plain<T: DeserializeOwned>(plain: &[u8], what: &str) -> Result<T> {
    let json = decode_unpacked(plain.to_vec(), what)?;
    serde_json::from_slice(&json).map_err(|e| Error::json(what, e))
}

/// A fresh repository in memory with fast (insecure) key derivation, for unit tests.
#[cfg(test)]
pub(crate) fn memory_repo(version: u32) -> (Arc<crate::backend::MemoryBackend>, Repository) {
    let be = Arc::new(crate::backend::MemoryBackend::new());
    let opts = InitOptions {
        version,
        kdf: crate::keys::KdfParams::insecure_fast(),
        ..Default::default()
    };
    let repo = Repository::init(be.clone(), "pw", opts).expect("init a memory repository");
    (be, repo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;

    fn fast() -> InitOptions {
        InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        }
    }

    #[test]
    fn init_open_and_wrong_password() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let repo = Repository::init(be.clone(), "pw", fast()).unwrap();
        assert_eq!(repo.config().version, 2);
        assert!(repo.config().polynomial().unwrap().is_irreducible());
        assert!(matches!(
            Repository::init(be.clone(), "pw", fast()),
            Err(Error::AlreadyInitialised(_))
        ));
        let again = Repository::open(be.clone(), "pw").unwrap();
        assert_eq!(again.config(), repo.config());
        assert_eq!(again.key(), repo.key());
        let err = Repository::open(be.clone(), "bad").unwrap_err();
        assert_eq!(
            err.to_string(),
            "wrong password or no key found for repository memory:"
        );
    }

    #[test]
    fn keys_add_list_remove_passwd() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let mut repo = Repository::init(be.clone(), "pw", fast()).unwrap();
        let second = repo.add_key("two", KdfParams::insecure_fast()).unwrap();
        assert_eq!(repo.list_keys().unwrap().len(), 2);
        assert!(Repository::open(be.clone(), "two").is_ok());
        assert!(repo.remove_key(&repo.key_id()).is_err());
        repo.remove_key(&second).unwrap();
        assert!(Repository::open(be.clone(), "two").is_err());
        repo.change_password("three", KdfParams::insecure_fast()).unwrap();
        assert!(Repository::open(be.clone(), "pw").is_err());
        let r3 = Repository::open(be.clone(), "three").unwrap();
        assert_eq!(r3.key(), repo.key());
        let keys = repo.list_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].current);
    }

    #[test]
    fn unpacked_files_v1_and_v2() {
        for version in [1, 2] {
            let be = Arc::new(MemoryBackend::new());
            let repo = Repository::init(be.clone(), "pw", InitOptions { version, ..fast() }).unwrap();
            let v = serde_json::json!({"a": [1, 2, 3], "b": "x".repeat(1000)});
            let id = repo.save_json(FileType::Snapshot, &v).unwrap();
            let back: serde_json::Value = repo.load_json(FileType::Snapshot, &id).unwrap();
            assert_eq!(back, v);
            let raw = repo
                .key()
                .decrypt(&be.read(FileType::Snapshot, &id.to_hex()).unwrap())
                .unwrap();
            assert_eq!(raw[0], if version == 2 { 2 } else { b'{' });
            let cfg = repo
                .key()
                .decrypt(&be.read(FileType::Config, "").unwrap())
                .unwrap();
            assert_eq!(cfg[0], b'{', "config is never compressed");
            // Flipped byte: MAC failure naming the file (hash check comes first for named files).
            be.tamper(FileType::Snapshot, &id.to_hex(), |d| d[40] ^= 1);
            let err = repo.load_unpacked(FileType::Snapshot, &id).unwrap_err();
            assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
            assert!(err.to_string().contains(&format!("snapshots/{id}")), "{err}");
        }
    }

    #[test]
    fn refresh_index_adds_new_files_and_reloads_after_removals() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let writer = Repository::init(be.clone(), "pw", fast()).unwrap();
        let reader = Repository::open(be.clone(), "pw").unwrap();
        assert!(!reader.refresh_index().unwrap());
        let blob = |n: u8| PackedBlob {
            id: Id::hash(&[n]),
            blob_type: BlobType::Data,
            offset: 0,
            length: 10,
            uncompressed_length: None,
        };
        let mut file = IndexFile::default();
        file.add_pack(Id::hash(b"pack1"), &[blob(1)]);
        let first = writer.save_json(FileType::Index, &file).unwrap();
        assert!(reader.refresh_index().unwrap());
        assert!(reader.index().contains(BlobType::Data, &Id::hash(&[1])));
        assert!(!reader.refresh_index().unwrap(), "nothing new");
        // A prune replaces the file: the blob of the deleted pack is forgotten.
        let mut file = IndexFile::default();
        file.add_pack(Id::hash(b"pack2"), &[blob(2)]);
        writer.save_json(FileType::Index, &file).unwrap();
        be.remove(FileType::Index, &first.to_hex()).unwrap();
        assert!(reader.refresh_index().unwrap());
        assert!(!reader.index().contains(BlobType::Data, &Id::hash(&[1])));
        assert!(reader.index().contains(BlobType::Data, &Id::hash(&[2])));
    }

    #[test]
    fn compression_modes_include_restic_0_19_names() {
        let levels: Vec<Option<i32>> = ["auto", "fastest", "fast", "better", "MAX", " max ", "off", "best"]
            .iter()
            .map(|m| compression_level_of(m))
            .collect();
        assert_eq!(
            levels,
            [Some(3), Some(1), Some(1), Some(7), Some(19), Some(19), None, None]
        );
        assert_eq!(compression_mode_names(), "auto, fastest, fast, better, max");
    }

    #[test]
    fn an_unpacked_file_that_inflates_beyond_the_limit_is_refused() {
        let zeros = vec![0u8; 4 << 20];
        let mut plain = vec![2u8];
        plain.extend_from_slice(&zstd::bulk::compress(&zeros, 3).unwrap());
        assert!(plain.len() < 4096, "{}", plain.len());
        let err = decode_unpacked_at_most(plain.clone(), "snapshots/x", 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("snapshots/x: decompresses to more than"),
            "{err}"
        );
        assert_eq!(
            decode_unpacked_at_most(plain, "snapshots/x", 4 << 20).unwrap(),
            zeros
        );
    }

    #[test]
    fn corrupted_config_is_a_mac_error() {
        let be = Arc::new(MemoryBackend::new());
        Repository::init(be.clone(), "pw", fast()).unwrap();
        be.tamper(FileType::Config, "", |d| d[20] ^= 0x80);
        let err = Repository::open(be, "pw").unwrap_err();
        assert!(matches!(err, Error::Mac { .. }), "{err}");
        assert!(err.to_string().contains("config"), "{err}");
    }
}
