//! Storage seam: the [`Backend`] trait over restic's file layout, a [`LocalBackend`] on a
//! directory, and a [`MemoryBackend`] for tests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result, file_name};

/// The kinds of files in a restic repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// `config` (a single file).
    Config,
    /// `keys/<id>`.
    Key,
    /// `snapshots/<id>`.
    Snapshot,
    /// `index/<id>`.
    Index,
    /// `data/<2 hex>/<id>`.
    Pack,
    /// `locks/<id>`.
    Lock,
}

impl FileType {
    /// Every type that lives in a directory.
    pub const DIRS: [FileType; 5] = [
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Pack,
        FileType::Lock,
    ];

    /// The directory (or, for config, file) name in the repository.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "data",
            FileType::Lock => "locks",
        }
    }
}

/// A place that stores repository files. Files are write-once: written atomically under their
/// final name and never modified; only removal changes them. The name of `Config` is ignored.
pub trait Backend: Send + Sync {
    /// A human-readable location, used in messages.
    fn location(&self) -> String;
    /// Prepare the layout of a new repository (directories, where the storage has them).
    fn create(&self) -> Result<()> {
        Ok(())
    }
    /// The whole file.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// `len` bytes starting at `offset`; fewer bytes is an error.
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Store a new file atomically. Fails with [`Error::AlreadyExists`] if the name is taken.
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()>;
    /// Names and sizes of all files of a type (for `Config`: the config file if it exists).
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// Delete a file; deleting a missing file is [`Error::NotFound`].
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// The size of a file, or [`Error::NotFound`].
    fn stat(&self, t: FileType, name: &str) -> Result<u64>;
    /// A directory for temporary files that [`Backend::write_file`] can take over cheaply (on
    /// the repository's file system for a local repository); `None`: the system's temporary
    /// directory.
    fn spool_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Store a new file from the local file `path`, which is consumed (moved or deleted) whatever
    /// the outcome. The default reads it into memory and calls [`Backend::write`].
    fn write_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        let data = fs::read(path).map_err(|e| Error::Backend {
            op: "read",
            path: path.display().to_string(),
            source: e,
        });
        let _ = fs::remove_file(path);
        self.write(t, name, &data?)
    }
    /// How many pack uploads this backend wants in flight at least (a remote store hides its
    /// latency with more); the operation's own setting wins when it is higher.
    fn upload_concurrency(&self) -> usize {
        1
    }
    /// Whether a file this or any other process wrote is in every `list` that starts after the
    /// write returned. Locking then skips its settle pause ([`crate::lock::LockOptions::settle`]):
    /// of two lockers that each write, then list, at least one sees the other. Only a local
    /// directory says yes; object stores keep the pause, as restic does everywhere.
    fn lists_every_finished_write(&self) -> bool {
        false
    }
    /// Whether a file exists.
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        match self.stat(t, name) {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A repository in a local directory, laid out exactly as restic's local backend does.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    open_packs: std::sync::Arc<Mutex<PackFiles>>,
}

/// Recently read packs kept open: a restore of many small files reads one pack thousands of
/// times, and an `open` each time cost more than the reads (measured: 20k opens in a 20k-file
/// restore). Packs never change once written, so a kept descriptor always reads the right bytes.
#[derive(Debug, Default)]
struct PackFiles {
    files: std::collections::VecDeque<(String, std::sync::Arc<fs::File>)>,
}

/// How many pack files stay open.
const OPEN_PACKS: usize = 32;

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            open_packs: Default::default(),
        }
    }

    /// An open pack file, from the cache or opened now.
    fn pack_file(&self, name: &str, p: &Path) -> Result<std::sync::Arc<fs::File>> {
        let mut cache = self.open_packs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, f)) = cache.files.iter().find(|(n, _)| n == name) {
            return Ok(f.clone());
        }
        let f = std::sync::Arc::new(fs::File::open(p).map_err(|e| Self::io_err("open", p, e))?);
        if cache.files.len() >= OPEN_PACKS {
            cache.files.pop_front();
        }
        cache.files.push_back((name.to_string(), f.clone()));
        Ok(f)
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => {
                let sub = name.get(..2).unwrap_or("00");
                self.root.join("data").join(sub).join(name)
            }
            _ => self.root.join(t.dir()).join(name),
        }
    }

    fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> Error {
        if e.kind() == ErrorKind::NotFound {
            Error::NotFound(path.display().to_string())
        } else {
            Error::Backend {
                op,
                path: path.display().to_string(),
                source: e,
            }
        }
    }

    fn write_inner(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let fname = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd);
        let tmp = dir.join(format!(".{fname}-tmp-{}", hex::encode(rnd)));
        let mut f = match fs::File::create_new(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                fs::File::create_new(&tmp)?
            }
            Err(e) => return Err(e),
        };
        let res = f.write_all(data);
        drop(f);
        match res {
            Ok(()) => Self::commit(&tmp, path),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Make the finished temporary file `tmp` the write-once file `path`: synced, read-only,
    /// never replacing an existing file. `tmp` is gone afterwards, whatever the outcome.
    fn commit(tmp: &Path, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let res = (|| {
            let f = fs::OpenOptions::new().read(true).open(tmp)?;
            f.sync_all()?;
            f.set_permissions(fs::Permissions::from_mode(0o400))?;
            drop(f);
            // A hard link never replaces an existing file: write-once without a check-then-act race.
            let linked = match fs::hard_link(tmp, path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    fs::create_dir_all(dir)?;
                    fs::hard_link(tmp, path)
                }
                other => other,
            };
            match linked {
                Ok(()) => fs::remove_file(tmp),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(e),
                Err(_) => {
                    if path.exists() {
                        return Err(std::io::Error::new(ErrorKind::AlreadyExists, "file exists"));
                    }
                    fs::rename(tmp, path)
                }
            }
        })();
        if res.is_err() {
            let _ = fs::remove_file(tmp);
        }
        res?;
        fs::File::open(dir)?.sync_all()
    }

    fn list_dir(dir: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io_err("list", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Self::io_err("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Self::io_err("stat", &entry.path(), e)),
            };
            if meta.is_file() {
                out.push((name, meta.len()));
            }
        }
        Ok(())
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    /// A directory on one host lists what was created in it at once. (A directory shared over
    /// NFS can cache its listing for seconds on another host; restic's 200 ms pause does not
    /// cover that either.)
    fn lists_every_finished_write(&self) -> bool {
        true
    }

    fn create(&self) -> Result<()> {
        let mkdir = |p: PathBuf| -> Result<()> {
            fs::create_dir_all(&p).map_err(|e| Self::io_err("mkdir", &p, e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                .map_err(|e| Self::io_err("chmod", &p, e))
        };
        mkdir(self.root.clone())?;
        for t in FileType::DIRS {
            mkdir(self.root.join(t.dir()))?;
        }
        for i in 0..=255u8 {
            mkdir(self.root.join("data").join(hex::encode([i])))?;
        }
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        fs::read(&p).map_err(|e| Self::io_err("read", &p, e))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        let f = if t == FileType::Pack {
            self.pack_file(name, &p)?
        } else {
            std::sync::Arc::new(fs::File::open(&p).map_err(|e| Self::io_err("open", &p, e))?)
        };
        // The length may come from a damaged or hostile index: check it against the file before
        // allocating a buffer of that size.
        let size = f.metadata().map_err(|e| Self::io_err("stat", &p, e))?.len();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            let e = std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("range {offset}+{len} beyond the end of the file ({size} bytes)"),
            );
            return Err(Self::io_err("read", &p, e));
        }
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| Self::io_err("read", &p, e))?;
        Ok(buf)
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(".kstash-tmp"))
    }

    fn write_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        let p = self.path(t, name);
        Self::commit(path, &p).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::AlreadyExists(p.display().to_string())
            } else {
                Self::io_err("write", &p, e)
            }
        })?;
        tracing::trace!(file = %p.display(), "wrote from a spooled file");
        Ok(())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let p = self.path(t, name);
        self.write_inner(&p, data).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::AlreadyExists(p.display().to_string())
            } else {
                Self::io_err("write", &p, e)
            }
        })?;
        tracing::trace!(file = %p.display(), bytes = data.len(), "wrote");
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match t {
            FileType::Config => {
                if let Ok(m) = fs::metadata(self.path(t, "")) {
                    out.push(("config".to_string(), m.len()));
                }
            }
            FileType::Pack => {
                let data = self.root.join("data");
                let subs = match fs::read_dir(&data) {
                    Ok(s) => s,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Self::io_err("list", &data, e)),
                };
                for sub in subs {
                    let sub = sub.map_err(|e| Self::io_err("list", &data, e))?;
                    if sub.file_type().map(|f| f.is_dir()).unwrap_or(false) {
                        Self::list_dir(&sub.path(), &mut out)?;
                    }
                }
            }
            _ => Self::list_dir(&self.root.join(t.dir()), &mut out)?,
        }
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        if t == FileType::Pack {
            let mut cache = self.open_packs.lock().unwrap_or_else(|e| e.into_inner());
            cache.files.retain(|(n, _)| n != name);
        }
        let p = self.path(t, name);
        fs::remove_file(&p).map_err(|e| Self::io_err("remove", &p, e))
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64> {
        let p = self.path(t, name);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Self::io_err("stat", &p, e))
    }
}

/// An in-memory backend, for tests and for staging.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    files: Mutex<BTreeMap<(FileType, String), Vec<u8>>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn key(t: FileType, name: &str) -> (FileType, String) {
        (
            t,
            if t == FileType::Config {
                "config".to_string()
            } else {
                name.to_string()
            },
        )
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<(FileType, String), Vec<u8>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change a stored file in place (for corruption tests).
    pub fn tamper(&self, t: FileType, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        match self.files().get_mut(&Self::key(t, name)) {
            Some(v) => {
                f(v);
                true
            }
            None => false,
        }
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.files()
            .get(&Self::key(t, name))
            .cloned()
            .ok_or_else(|| Error::NotFound(file_name(t, name)))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let files = self.files();
        let data = files
            .get(&Self::key(t, name))
            .ok_or_else(|| Error::NotFound(file_name(t, name)))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        data.get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Backend {
                op: "read",
                path: file_name(t, name),
                source: std::io::Error::new(ErrorKind::UnexpectedEof, "range beyond end of file"),
            })
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let mut files = self.files();
        let k = Self::key(t, name);
        if files.contains_key(&k) {
            return Err(Error::AlreadyExists(file_name(t, name)));
        }
        files.insert(k, data.to_vec());
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        Ok(self
            .files()
            .iter()
            .filter(|((ft, _), _)| *ft == t)
            .map(|((_, n), v)| (n.clone(), v.len() as u64))
            .collect())
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.files()
            .remove(&Self::key(t, name))
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(file_name(t, name)))
    }

    fn stat(&self, t: FileType, name: &str) -> Result<u64> {
        self.files()
            .get(&Self::key(t, name))
            .map(|v| v.len() as u64)
            .ok_or_else(|| Error::NotFound(file_name(t, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(b: &dyn Backend) {
        b.create().unwrap();
        let name = "ab".to_string() + &"0".repeat(62);
        assert!(!b.exists(FileType::Pack, &name).unwrap());
        b.write(FileType::Pack, &name, b"hello world").unwrap();
        assert!(matches!(
            b.write(FileType::Pack, &name, b"x"),
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"hello world");
        assert_eq!(b.read_range(FileType::Pack, &name, 6, 5).unwrap(), b"world");
        assert!(b.read_range(FileType::Pack, &name, 6, 50).is_err());
        assert_eq!(b.stat(FileType::Pack, &name).unwrap(), 11);
        assert_eq!(b.list(FileType::Pack).unwrap(), vec![(name.clone(), 11)]);
        assert!(b.list(FileType::Snapshot).unwrap().is_empty());
        b.write(FileType::Config, "", b"cfg").unwrap();
        assert_eq!(b.read(FileType::Config, "ignored").unwrap(), b"cfg");
        b.remove(FileType::Pack, &name).unwrap();
        assert!(matches!(b.remove(FileType::Pack, &name), Err(Error::NotFound(_))));
        assert!(matches!(b.read(FileType::Pack, &name), Err(Error::NotFound(_))));
        assert!(b.list(FileType::Pack).unwrap().is_empty());
    }

    #[test]
    fn local_backend_contract() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        exercise(&b);
        assert!(dir.path().join("repo/data/ff").is_dir());
        // No temp files left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("repo/data/ab")).unwrap().collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn memory_backend_contract() {
        exercise(&MemoryBackend::new());
    }
}
