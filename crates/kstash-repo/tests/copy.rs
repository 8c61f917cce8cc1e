//! `copy` with restic as the oracle: snapshots restic wrote (trees and streams, v1) copied by
//! kstash into a v2 repository with another password pass `restic check --read-data` there and
//! list and restore identically.

use kstash_repo::copy::{CopyOptions, copy_snapshots};

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, TestRepo, restic, restic_ok};

#[test]
fn restic_snapshots_copied_to_another_key_check_and_restore() {
    if restic_or_skip().is_none() {
        return;
    }
    let src = TestRepo::new();
    src.restic(&["init", "--repository-version", "1"]);
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data_dir.path().join("d/e")).unwrap();
    std::fs::write(data_dir.path().join("d/a.txt"), "alpha\n".repeat(50_000)).unwrap();
    std::fs::write(
        data_dir.path().join("d/e/b.bin"),
        (0..2_000_000u32)
            .map(|i| ((i * 31) >> 7) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.txt", data_dir.path().join("d/link")).unwrap();
    src.restic(&["backup", data_dir.path().join("d").to_str().unwrap()]);
    let dump = "copy into t values (1);\n".repeat(80_000);
    restic(
        &src.path,
        PW,
        &["backup", "--stdin", "--stdin-filename", "db.sql"],
        Some(dump.as_bytes()),
    );

    let dst_dir = tempfile::tempdir().unwrap();
    let dst_path = dst_dir.path().join("repo");
    let other_pw = "another password";
    restic_ok(&dst_path, other_pw, &["init"], None);
    let from = src.open();
    from.load_index().unwrap();
    let to = kstash_repo::Repository::open(
        std::sync::Arc::new(kstash_repo::LocalBackend::new(&dst_path)),
        other_pw,
    )
    .unwrap();
    to.load_index().unwrap();
    let all = from.list_snapshots().unwrap();
    let sum = copy_snapshots(&from, &to, &all, &CopyOptions::default()).unwrap();
    assert_eq!(sum.copied.len(), 2);
    restic_ok(&dst_path, other_pw, &["check", "--read-data"], None);
    // The same listing (tree ids are equal, so `ls` must match line for line) and the same bytes.
    for (from_id, to_id) in &sum.copied {
        let a = src.restic(&["ls", "--json", &from_id.to_string()]);
        let b = restic_ok(&dst_path, other_pw, &["ls", "--json", &to_id.to_string()], None);
        let strip = |out: Vec<u8>| {
            String::from_utf8(out)
                .unwrap()
                .lines()
                .skip(1)
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(a), strip(b));
    }
    let dumped = restic_ok(&dst_path, other_pw, &["dump", "latest", "/db.sql"], None);
    assert!(dumped == dump.as_bytes());
    // Copying again adds nothing.
    let again = copy_snapshots(&from, &to, &all, &CopyOptions::default()).unwrap();
    assert_eq!((again.copied.len(), again.skipped.len()), (0, 2));
}
