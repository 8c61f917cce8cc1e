//! A full disk: the repository lives on a real 16 MiB tmpfs (mounted by the test when it may;
//! otherwise a backend that fails writes with ENOSPC past a quota stands in, and says so). A
//! backup that runs out of space fails with a clear error and leaves no snapshot; what was
//! stored before still restores and checks; prune reclaims the orphaned packs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::keys::KdfParams;
use kstash_repo::{Backend, Error, FileType, InitOptions, LocalBackend, Repository, dump_file};

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, restic};

/// A small real file system, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(size_mib: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&mount)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { _dir: dir, mount })
    }

    /// Give the file system `size_mib` (as an operator freeing space would).
    fn grow(&self, size_mib: u32) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size_mib}m")])
            .arg(&self.mount)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "remounting {} with {size_mib} MiB failed",
            self.mount.display()
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// Stands in for a full disk where mounting is not allowed: writes fail with ENOSPC once
/// `quota` bytes have been written.
struct QuotaBackend {
    inner: LocalBackend,
    left: AtomicU64,
}

impl Backend for QuotaBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> kstash_repo::Result<()> {
        self.inner.create()
    }
    fn read(&self, t: FileType, name: &str) -> kstash_repo::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> kstash_repo::Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, len)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> kstash_repo::Result<()> {
        let n = data.len() as u64;
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(n))
            .is_err()
        {
            return Err(Error::Backend {
                op: "write",
                path: format!("{}/{name}", t.dir()),
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> kstash_repo::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> kstash_repo::Result<()> {
        if let Ok(size) = self.inner.stat(t, name) {
            self.left.fetch_add(size, Ordering::SeqCst);
        }
        self.inner.remove(t, name)
    }
    fn stat(&self, t: FileType, name: &str) -> kstash_repo::Result<u64> {
        self.inner.stat(t, name)
    }
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn options() -> StreamBackupOptions {
    StreamBackupOptions {
        pack_size: 1024 * 1024,
        ..StreamBackupOptions::named("db.sql")
    }
}

#[test]
fn a_full_disk_fails_the_backup_cleanly() {
    // 16 MiB: after the first backup, the failing one's first pack (at most 1 MiB plus one 8 MiB
    // chunk) always fits, so some of its packs land before the disk is full.
    let disk = SmallDisk::mount(16);
    let fallback = tempfile::tempdir().unwrap();
    let path: PathBuf = match &disk {
        Some(d) => d.mount.join("repo"),
        None => {
            eprintln!("cannot mount a tmpfs here: simulating the full disk with an ENOSPC quota backend");
            fallback.path().join("repo")
        }
    };
    let quota = Arc::new(QuotaBackend {
        inner: LocalBackend::new(&path),
        left: AtomicU64::new(16 << 20),
    });
    let backend: Arc<dyn Backend> = match &disk {
        Some(_) => Arc::new(LocalBackend::new(&path)),
        None => quota.clone(),
    };
    let init = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..Default::default()
    };
    let repo = Repository::init(backend, PW, init).unwrap();
    let first = noise(2 << 20, 1);
    let kept = backup_stream(&repo, &first[..], &options()).unwrap();

    let too_big = noise(40 << 20, 2);
    let err = backup_stream(&repo, &too_big[..], &options()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(
        msg.contains("data/") || msg.contains("index/") || msg.contains(".kstash-tmp/pack-"),
        "the error names the file: {msg}"
    );
    let snapshots = repo.backend().list(FileType::Snapshot).unwrap();
    assert_eq!(snapshots.len(), 1, "no snapshot for the failed backup");

    let mut out = Vec::new();
    dump_file(&repo, &kept.snapshot_id.to_hex(), "/db.sql", &mut out).unwrap();
    assert!(out == first, "what was stored before still restores");
    if restic_or_skip().is_some() {
        let check = restic(&path, PW, &["check", "--no-lock", "--read-data"], None);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // Prune reclaims the packs of the failed backup; a backup that fits then succeeds. The disk
    // gets room first: the packs that landed may have left too little for prune's lock and index.
    match &disk {
        Some(d) => d.grow(64),
        None => {
            quota.left.fetch_add(48 << 20, Ordering::SeqCst);
        }
    }
    let pruned = kstash_repo::prune::prune(&repo, &Default::default()).unwrap();
    assert!(pruned.packs_deleted > 0, "{pruned:?}");
    let second = noise(2 << 20, 3);
    backup_stream(&repo, &second[..], &options()).unwrap();
    assert_eq!(repo.backend().list(FileType::Snapshot).unwrap().len(), 2);
    let _ = Path::new(&path);
}
