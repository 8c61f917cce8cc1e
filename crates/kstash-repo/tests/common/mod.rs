//! Fixtures shared by the cross-tool tests: a temporary local repository, and the real `restic`
//! binary run against it with the same password.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use kstash_repo::keys::KdfParams;
use kstash_repo::{Backend, InitOptions, LocalBackend, Repository};

/// Password of every test repository.
pub const PW: &str = "correct horse battery staple";

/// Whether the `restic` oracle can be run: `false` (with a visible SKIPPED line) only outside CI;
/// under CI a missing restic fails the test ([`kstash_testsupport::restic_or_skip`]).
pub fn restic_available() -> bool {
    kstash_testsupport::restic_or_skip().is_some()
}

/// Run `restic -r REPO --no-cache ARGS…`, optionally feeding `stdin`, whatever the exit status.
pub fn restic(repo: &Path, password: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("restic");
    cmd.arg("-r").arg(repo).arg("--no-cache").args(args);
    cmd.env("RESTIC_PASSWORD", password)
        .env_remove("RESTIC_REPOSITORY")
        .env_remove("RESTIC_PASSWORD_FILE");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run restic");
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = child.wait_with_output().expect("wait for restic");
    if let Some(w) = writer {
        w.join().unwrap();
    }
    out
}

/// [`restic`], asserting success; returns stdout.
pub fn restic_ok(repo: &Path, password: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = restic(repo, password, args, stdin);
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// Run `restic -r REPO --no-cache ARGS…` in directory `cwd` (so relative paths given to
/// `backup` become the snapshot's top-level names), asserting success; returns stdout.
pub fn restic_in(cwd: &Path, repo: &Path, password: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("restic")
        .current_dir(cwd)
        .arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .env_remove("RESTIC_REPOSITORY")
        .env_remove("RESTIC_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run restic");
    assert!(
        out.status.success(),
        "restic {args:?} in {} failed: {}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A local repository in a temporary directory (not created until `init`).
pub struct TestRepo {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        TestRepo { _dir: dir, path }
    }

    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(LocalBackend::new(&self.path))
    }

    /// Initialise with fast (insecure) key derivation.
    pub fn init(&self) -> Repository {
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        Repository::init(self.backend(), PW, opts).unwrap()
    }

    pub fn open(&self) -> Repository {
        Repository::open(self.backend(), PW).unwrap()
    }

    /// Run restic on this repository, asserting success.
    pub fn restic(&self, args: &[&str]) -> Vec<u8> {
        restic_ok(&self.path, PW, args, None)
    }

    pub fn snapshots_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_slice(&self.restic(&["snapshots", "--json"])).unwrap()
    }

    /// Lock file names, sorted.
    pub fn lock_names(&self) -> Vec<String> {
        kstash_testsupport::lock_file_names(&self.path)
    }
}

// ---- hand-made trees (repair and hostile-snapshot tests) ---------------------------------------

/// Store one blob in a pack of its own and index it.
pub fn save_blob(repo: &Repository, t: kstash_repo::BlobType, data: &[u8]) -> kstash_repo::Id {
    let id = kstash_repo::Id::hash(data);
    let enc = kstash_repo::pack::encode_blob(repo.key(), t, id, data, None).unwrap();
    let mut w = kstash_repo::pack::PackWriter::new(0);
    w.add(&enc).unwrap();
    let p = w.finish(repo.key()).unwrap();
    repo.upload_pack(&p).unwrap();
    let mut index = kstash_repo::index::IndexFile::default();
    index.add_pack(p.id, &p.blobs);
    repo.save_json(kstash_repo::FileType::Index, &index).unwrap();
    id
}

pub fn file_node(repo: &Repository, name: &str, data: &[u8]) -> kstash_repo::tree::Node {
    let mut n = kstash_repo::tree::Node::file(name, 0o644, kstash_repo::gojson::GoTime::now(), 0, 0);
    n.size = data.len() as u64;
    n.content = Some(vec![save_blob(repo, kstash_repo::BlobType::Data, data)]);
    n
}

pub fn dir_node(name: &str, subtree: kstash_repo::Id) -> kstash_repo::tree::Node {
    let mut n = kstash_repo::tree::Node::file(name, 0o755, kstash_repo::gojson::GoTime::now(), 0, 0);
    n.node_type = kstash_repo::tree::NodeType::Dir;
    n.mode = kstash_repo::tree::mode::DIR | 0o755;
    n.content = None;
    n.subtree = Some(subtree);
    n
}
