//! Fixtures shared by the end-to-end `kstash repo` tests: a local repository in a temporary
//! directory (made with cheap key derivation, so every command opens it fast), the `kstash`
//! binary and the real `restic` (the oracle) run against it.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use kstash_repo::keys::KdfParams;
use kstash_repo::{InitOptions, LocalBackend, Repository};
use kstash_testsupport::Restic;

/// Password of every test repository.
pub const PASSWORD: &str = "correct horse battery staple";

/// A repository in a temporary directory.
pub struct LocalRepo {
    _dir: tempfile::TempDir,
    /// The repository directory.
    pub path: PathBuf,
    /// A scratch directory beside it (inputs, restores).
    pub scratch: PathBuf,
}

impl LocalRepo {
    /// An initialised v2 repository whose key opens in about a millisecond.
    pub fn init() -> LocalRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let options = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        Repository::init(Arc::new(LocalBackend::new(&path)), PASSWORD, options).unwrap();
        LocalRepo {
            _dir: dir,
            path,
            scratch,
        }
    }

    /// `kstash repo -r REPO ARGS…`, not yet run, with the password in the environment.
    pub fn kstash_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kstash"));
        cmd.arg("repo").arg("-r").arg(&self.path).args(args);
        cmd.env("KSTASH_PASSWORD", PASSWORD)
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_REPOSITORY")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kstash repo …` to the end, whatever its exit status.
    pub fn kstash(&self, args: &[&str]) -> Output {
        self.kstash_command(args).output().unwrap()
    }

    /// Runs `kstash repo …`, asserting success; returns stdout.
    pub fn kstash_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.kstash(args);
        assert!(
            out.status.success(),
            "kstash repo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Starts `kstash repo backup --stdin` reading the file `input`.
    pub fn spawn_backup(&self, input: &Path, filename: &str) -> Child {
        let mut cmd = self.kstash_command(&["backup", "--stdin", "--stdin-filename", filename]);
        cmd.stdin(std::fs::File::open(input).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    /// Backs up `input` as `/<filename>` to the end; returns the new snapshot's id.
    pub fn backup(&self, input: &Path, filename: &str) -> String {
        let out = self.spawn_backup(input, filename).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kstash repo backup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        snapshot_id_of(&out.stdout)
    }

    /// Ids of the snapshots, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let listed: serde_json::Value =
            serde_json::from_slice(&self.kstash_ok(&["snapshots", "--json"])).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The real restic on this repository.
    pub fn restic(&self) -> Restic {
        Restic::new(self.path.display().to_string(), PASSWORD).unwrap()
    }
}

/// The snapshot id from `kstash repo backup`'s summary (`snapshot <id> saved…`).
pub fn snapshot_id_of(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let id = text
        .split_whitespace()
        .skip_while(|w| *w != "snapshot")
        .nth(1)
        .unwrap_or_else(|| panic!("no snapshot id in {text:?}"));
    id.to_owned()
}
