//! Tree backups written by kstash, checked and restored by the real `restic` binary, and trees
//! of both tools deduplicated against each other. Skipped (with a message) without `restic`;
//! a failure under `CI`.

use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kstash_repo::archiver::{ParentChoice, TreeBackupOptions, backup_tree};
use kstash_testsupport::data::noise;

use kstash_testsupport::restic_or_skip;

mod common;
use common::TestRepo;

/// A directory with one of everything a tree backup must record.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(123_456_789);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

impl Fixture {
    fn every_file_type() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("nested/deeper")).unwrap();
        std::fs::write(root.join("small.txt"), b"hello, restic\n").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::write(root.join("nested/big.bin"), noise(3 * 1024 * 1024 + 17, 7)).unwrap();
        std::fs::write(
            root.join("nested/deeper/text.sql"),
            "insert into t values (1);\n".repeat(40_000),
        )
        .unwrap();
        std::fs::write(root.join("secret"), b"s").unwrap();
        std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(root.join("tool.sh"), b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(root.join("tool.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("nested/big.bin", root.join("link")).unwrap();
        symlink("/nonexistent/target", root.join("dangling")).unwrap();
        std::fs::hard_link(root.join("small.txt"), root.join("nested/hardlink.txt")).unwrap();
        let sparse = File::create(root.join("sparse.img")).unwrap();
        sparse.set_len(20 * 1024 * 1024).unwrap();
        drop(sparse);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        // Extended attributes where the file system has them (tmpfs and ext4 do for user.*).
        let _ = rustix::fs::setxattr(
            root.join("small.txt"),
            "user.kstash.test",
            b"value-1",
            rustix::fs::XattrFlags::empty(),
        );
        for (i, p) in [
            "small.txt",
            "empty",
            "nested/big.bin",
            "secret",
            "tool.sh",
            "sparse.img",
        ]
        .iter()
        .enumerate()
        {
            set_mtime(&root.join(p), 1_600_000_000 + i as u64 * 86_400);
        }
        set_mtime(&root.join("nested/deeper"), 1_500_000_000);
        Fixture { _dir: dir, root }
    }
}

/// `restic ls --json` of a snapshot: path → (type, size, mode, mtime, uid, gid, linktarget-free).
fn restic_listing(t: &TestRepo, snapshot: &str, under: &Path) -> BTreeMap<String, serde_json::Value> {
    let out = t.restic(&["ls", "--json", snapshot]);
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["struct_type"] != "node" {
            continue;
        }
        let path = v["path"].as_str().unwrap().to_string();
        if !Path::new(&path).starts_with(under) || Path::new(&path) == under {
            continue;
        }
        let keep = serde_json::json!({
            "type": v["type"], "size": v["size"], "mode": v["mode"], "mtime": v["mtime"],
            "uid": v["uid"], "gid": v["gid"],
        });
        map.insert(path, keep);
    }
    map
}

fn opts() -> TreeBackupOptions {
    TreeBackupOptions {
        workers: 2,
        ..Default::default()
    }
}

/// Every file's bytes, type and metadata below `root`, keyed by relative path.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode())
            } else if m.file_type().is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file {:o} {} bytes sha {} mtime {}.{}",
                    m.mode(),
                    data.len(),
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)),
                    m.mtime(),
                    m.mtime_nsec()
                )
            } else {
                format!("special {:o}", m.mode())
            };
            out.insert(rel, what);
        }
    }
    out
}

#[test]
fn kstash_tree_backup_is_checked_and_restored_by_restic() {
    if restic_or_skip().is_none() {
        return;
    }
    let fx = Fixture::every_file_type();
    let t = TestRepo::new();
    let repo = t.init();
    let sum = backup_tree(&repo, std::slice::from_ref(&fx.root), &opts()).unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    // small, empty, big, text, secret, tool, hardlink, sparse.
    assert_eq!(sum.total_files, 8);
    t.restic(&["check", "--read-data"]);

    let target = tempfile::tempdir().unwrap();
    t.restic(&[
        "restore",
        &sum.snapshot_id.to_string(),
        "--target",
        target.path().to_str().unwrap(),
    ]);
    let restored = target.path().join(fx.root.strip_prefix("/").unwrap());
    let want = describe(&fx.root);
    let got = describe(&restored);
    assert_eq!(got, want, "restic restores exactly what kstash backed up");
    // Hard links come back as hard links; the xattr (when the fs had one) comes back too.
    let a = std::fs::metadata(restored.join("small.txt")).unwrap();
    let b = std::fs::metadata(restored.join("nested/hardlink.txt")).unwrap();
    assert_eq!(a.ino(), b.ino(), "restic restored the hard link");
    let mut buf = [0u8; 64];
    if let Ok(n) = rustix::fs::getxattr(fx.root.join("small.txt"), "user.kstash.test", &mut buf) {
        let mut got = [0u8; 64];
        let m = rustix::fs::getxattr(restored.join("small.txt"), "user.kstash.test", &mut got).unwrap();
        assert_eq!(&got[..m], &buf[..n]);
    }
}

#[test]
fn restic_and_kstash_trees_agree_and_deduplicate() {
    if restic_or_skip().is_none() {
        return;
    }
    let fx = Fixture::every_file_type();
    let t = TestRepo::new();
    let repo = t.init();
    t.restic(&["backup", "--tag", "restic", fx.root.to_str().unwrap()]);
    let restic_id = t.snapshots_json()[0]["id"].as_str().unwrap().to_string();
    repo.load_index().unwrap();
    // kstash sees the same data through restic's index: no new data blobs, no file re-read when
    // restic's snapshot is the parent.
    let sum = backup_tree(
        &repo,
        std::slice::from_ref(&fx.root),
        &TreeBackupOptions {
            parent: ParentChoice::Snapshot(restic_id.clone()),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(sum.data_blobs, 0, "{sum:?}");
    assert_eq!(
        sum.files_unmodified, 8,
        "restic's nodes are understood as unchanged: {sum:?}"
    );
    // Both listings show the same types, sizes, modes, mtimes and owners.
    let a = restic_listing(&t, &restic_id, &fx.root);
    let b = restic_listing(&t, &sum.snapshot_id.to_string(), &fx.root);
    assert_eq!(a.len(), 13, "{a:#?}");
    assert_eq!(a, b);
    // And restic, given kstash's snapshot as parent, finds nothing to read either.
    let out = t.restic(&[
        "backup",
        "--json",
        "--parent",
        &sum.snapshot_id.to_string(),
        fx.root.to_str().unwrap(),
    ]);
    let summary = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["message_type"] == "summary")
        .unwrap();
    assert_eq!(summary["files_unmodified"], 8, "{summary}");
    assert_eq!(summary["data_blobs"], 0, "{summary}");
    t.restic(&["check", "--read-data"]);
}

#[test]
fn excludes_and_several_paths() {
    if restic_or_skip().is_none() {
        return;
    }
    let fx = Fixture::every_file_type();
    let t = TestRepo::new();
    let repo = t.init();
    let paths = [fx.root.join("nested"), fx.root.join("small.txt")];
    let sum = backup_tree(
        &repo,
        &paths,
        &TreeBackupOptions {
            excludes: vec!["*.sql".into()],
            ..opts()
        },
    )
    .unwrap();
    let listing = restic_listing(&t, &sum.snapshot_id.to_string(), &fx.root);
    let names: Vec<_> = listing
        .keys()
        .map(|k| k.strip_prefix(fx.root.to_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "/nested",
            "/nested/big.bin",
            "/nested/deeper",
            "/nested/hardlink.txt",
            "/small.txt"
        ]
    );
    let sn = &t.snapshots_json()[0];
    assert_eq!(sn["paths"].as_array().unwrap().len(), 2);
    assert_eq!(sn["excludes"][0], "*.sql");
}

#[test]
fn relative_paths_start_the_tree_where_restic_does() {
    if restic_or_skip().is_none() {
        return;
    }
    let fx = Fixture::every_file_type();
    let t = TestRepo::new();
    let repo = t.init();
    let parent_dir = fx.root.parent().unwrap();
    common::restic_in(
        parent_dir,
        &t.path,
        common::PW,
        &["backup", "--tag", "restic", "data"],
    );
    // Each test runs in its own process (nextest), so changing the working directory is local.
    std::env::set_current_dir(parent_dir).unwrap();
    let sum = backup_tree(&repo, &[PathBuf::from("data")], &opts()).unwrap();
    let top = |id: &str| -> Vec<String> {
        String::from_utf8(t.restic(&["ls", "--json", id]))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["struct_type"] == "node")
            .map(|v| v["path"].as_str().unwrap().to_string())
            .filter(|p| p.matches('/').count() == 1)
            .collect()
    };
    let restic_id = t.snapshots_json()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(top(&sum.snapshot_id.to_string()), top(&restic_id));
    assert_eq!(top(&restic_id), vec!["/data"]);
    let sn = t
        .snapshots_json()
        .into_iter()
        .find(|s| s["id"] == sum.snapshot_id.to_string())
        .unwrap();
    assert_eq!(
        sn["paths"][0],
        fx.root.to_str().unwrap(),
        "snapshot paths stay absolute"
    );
}
