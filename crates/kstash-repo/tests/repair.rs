//! `repair index` and `repair snapshots` on repositories damaged on disk: a deleted index file
//! is rebuilt from the pack headers; a removed pack leaves missing blobs that `check` names and
//! `repair snapshots` cuts out; a directory whose tree is gone becomes empty. After each repair
//! kstash's check and the real `restic check --read-data` pass, and what was not damaged still
//! dumps byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::index::IndexFile;
use kstash_repo::repair_index::{RepairIndexOptions, repair_index};
use kstash_repo::repair_snapshots::{RepairSnapshotsOptions, SnapshotRepair, repair_snapshots};
use kstash_repo::tree::{Node, Tree};
use kstash_repo::{
    BlobType, CheckOptions, CheckReport, FileType, Id, LockOptions, ProblemKind, Repository, Snapshot, check,
    dump_file,
};
use kstash_testsupport::data::{noise, text};

mod common;
use common::{PW, TestRepo, dir_node, file_node, restic, restic_available, save_blob};

fn fast_lock() -> Option<LockOptions> {
    Some(LockOptions {
        settle: Duration::from_millis(10),
        ..Default::default()
    })
}

fn index_options() -> RepairIndexOptions {
    RepairIndexOptions {
        lock: fast_lock(),
        ..Default::default()
    }
}

fn snapshot_options(forget: bool) -> RepairSnapshotsOptions {
    RepairSnapshotsOptions {
        forget,
        lock: fast_lock(),
        ..Default::default()
    }
}

fn back_up(repo: &Repository, name: &str, data: &[u8]) -> Id {
    let options = StreamBackupOptions {
        pack_size: 512 << 10,
        ..StreamBackupOptions::named(name)
    };
    backup_stream(repo, data, &options).unwrap().snapshot_id
}

fn dump(repo: &Repository, snapshot: &Id, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dump_file(repo, &snapshot.to_hex(), path, &mut out).unwrap();
    out
}

fn kstash_check(t: &TestRepo) -> CheckReport {
    let repo = Repository::open_without_index(t.backend(), PW).unwrap();
    check(
        &repo,
        &CheckOptions {
            lock: fast_lock(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn show(r: &CheckReport) -> String {
    let mut s = String::new();
    for e in &r.errors {
        s += &format!("error: {e}\n");
    }
    for w in &r.warnings {
        s += &format!("warning: {w}\n");
    }
    s
}

/// `restic check --read-data`: (passed, output); `None` without restic.
fn restic_check(t: &TestRepo) -> Option<(bool, String)> {
    if !restic_available() {
        return None;
    }
    let out = restic(&t.path, PW, &["check", "--read-data"], None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

fn index_names(t: &TestRepo) -> BTreeSet<String> {
    t.backend()
        .list(FileType::Index)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Every file of the repository with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.starts_with(root.join("locks")) {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// A repository with two stream snapshots in separate backups (so separate index files).
struct Two {
    t: TestRepo,
    a: (Id, Vec<u8>),
    b: (Id, Vec<u8>),
}

fn two() -> Two {
    let t = TestRepo::new();
    let repo = t.init();
    // Mostly incompressible and longer than the chunker's 8 MiB maximum chunk, so that `a` spans
    // at least two packs whatever the repository's (random) chunker polynomial cuts: a pack closes
    // once it holds 512 KiB, so the first one holds less than 512 KiB plus one chunk.
    let a = [text(1 << 20, 71), noise(9 << 20, 73)].concat();
    let b = text(2 << 20, 72);
    let sa = back_up(&repo, "a.sql", &a);
    let sb = back_up(&repo, "b.sql", &b);
    Two {
        t,
        a: (sa, a),
        b: (sb, b),
    }
}

impl Two {
    /// The index file listing the first pack of `a`, and the packs of `a`.
    fn index_and_packs_of_a(&self) -> (Id, Vec<Id>) {
        let repo = self.t.open();
        let sn = repo.load_snapshot(&self.a.0).unwrap();
        let tree = repo.load_tree(&sn.tree).unwrap();
        let mut packs: Vec<Id> = tree.nodes[0]
            .content
            .as_ref()
            .unwrap()
            .iter()
            .map(|b| repo.index().get(BlobType::Data, b).unwrap().pack)
            .collect();
        packs.dedup();
        let index = repo
            .backend()
            .list(FileType::Index)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.parse::<Id>().unwrap())
            .find(|id| {
                let f: IndexFile = repo.load_json(FileType::Index, id).unwrap();
                f.packs.iter().any(|p| p.id == packs[0])
            })
            .unwrap();
        (index, packs)
    }
}

#[test]
fn a_deleted_index_file_is_rebuilt_from_the_pack_headers() {
    let f = two();
    let (index, packs) = f.index_and_packs_of_a();
    f.t.backend().remove(FileType::Index, &index.to_hex()).unwrap();
    let r = kstash_check(&f.t);
    assert!(!r.is_ok(), "the blobs of a are no longer indexed:\n{}", show(&r));
    let before = index_names(&f.t);

    let repo = Repository::open_without_index(f.t.backend(), PW).unwrap();
    let s = repair_index(&repo, &index_options()).unwrap();
    assert!(s.packs_read >= packs.len(), "{s:?}");
    assert_eq!(s.packs_reused + s.packs_read, s.packs, "{s:?}");
    assert!(
        s.missing_packs.is_empty() && s.unreadable_packs.is_empty(),
        "{s:?}"
    );
    assert_eq!(s.index_files_deleted, before.len());
    let after = index_names(&f.t);
    let written: BTreeSet<String> = s.index_files_written.iter().map(|i| i.to_hex()).collect();
    assert_eq!(after, written, "only the new index files are left");
    assert!(after.is_disjoint(&before));

    let r = kstash_check(&f.t);
    assert!(r.is_ok() && r.warnings.is_empty(), "{}", show(&r));
    if let Some((ok, out)) = restic_check(&f.t) {
        assert!(ok, "restic check --read-data after repair index:\n{out}");
    }
    let repo = f.t.open();
    assert!(dump(&repo, &f.a.0, "/a.sql") == f.a.1);
    assert!(dump(&repo, &f.b.0, "/b.sql") == f.b.1);
}

#[test]
fn a_dry_run_changes_nothing_and_read_all_packs_reads_every_header() {
    let f = two();
    let before = files(&f.t.path);
    let repo = Repository::open_without_index(f.t.backend(), PW).unwrap();
    let dry = repair_index(
        &repo,
        &RepairIndexOptions {
            dry_run: true,
            ..index_options()
        },
    )
    .unwrap();
    assert!(dry.dry_run && dry.index_files_written.is_empty(), "{dry:?}");
    assert_eq!((dry.packs_read, dry.packs_reused), (0, dry.packs), "{dry:?}");
    assert_eq!(files(&f.t.path), before, "a dry run writes and deletes nothing");

    let all = repair_index(
        &repo,
        &RepairIndexOptions {
            read_all_packs: true,
            ..index_options()
        },
    )
    .unwrap();
    assert_eq!((all.packs_read, all.packs_reused), (all.packs, 0), "{all:?}");
    assert_eq!(all.blobs_indexed, dry.blobs_indexed);
    let r = kstash_check(&f.t);
    assert!(r.is_ok() && r.warnings.is_empty(), "{}", show(&r));
}

#[test]
fn a_removed_pack_leaves_missing_blobs_that_repair_snapshots_cuts_out() {
    let f = two();
    let (_, packs) = f.index_and_packs_of_a();
    assert!(packs.len() >= 2, "{packs:?}");
    let gone = packs[1];
    let lost_blobs: Vec<Id> = {
        let repo = f.t.open();
        repo.list_pack(&gone).unwrap().iter().map(|b| b.id).collect()
    };
    f.t.backend().remove(FileType::Pack, &gone.to_hex()).unwrap();

    let repo = Repository::open_without_index(f.t.backend(), PW).unwrap();
    let s = repair_index(&repo, &index_options()).unwrap();
    assert_eq!(s.missing_packs, vec![gone], "{s:?}");
    let r = kstash_check(&f.t);
    let missing: Vec<_> = r
        .errors
        .iter()
        .filter(|e| e.kind == ProblemKind::MissingBlob)
        .collect();
    assert!(!missing.is_empty(), "{}", show(&r));
    for e in &missing {
        assert!(lost_blobs.contains(&e.blob.unwrap()), "{e}");
        assert!(e.message.contains(&e.blob.unwrap().to_hex()), "{e}");
    }
    assert_eq!(r.damaged_snapshots, vec![f.a.0], "{}", show(&r));
    if let Some((ok, out)) = restic_check(&f.t) {
        assert!(!ok, "restic agrees the repository is damaged:\n{out}");
    }

    // A dry run names the file and changes nothing.
    let repo = f.t.open();
    let before = files(&f.t.path);
    let dry = repair_snapshots(
        &repo,
        &[],
        &RepairSnapshotsOptions {
            dry_run: true,
            ..snapshot_options(true)
        },
    )
    .unwrap();
    assert_eq!(dry.modified(), 1, "{dry:?}");
    assert_eq!(files(&f.t.path), before);

    let s = repair_snapshots(&repo, &[], &snapshot_options(true)).unwrap();
    let by_id: BTreeMap<Id, _> = s.snapshots.iter().map(|r| (r.id, r)).collect();
    assert_eq!(by_id[&f.b.0].outcome, SnapshotRepair::Unchanged);
    let ra = by_id[&f.a.0];
    assert_eq!(
        ra.changes,
        vec!["file \"/a.sql\": removed missing content".to_string()]
    );
    let SnapshotRepair::Rewritten {
        new: Some(new),
        forgotten: true,
    } = ra.outcome
    else {
        panic!("{ra:?}");
    };
    let r = kstash_check(&f.t);
    assert!(r.is_ok(), "{}", show(&r));
    if let Some((ok, out)) = restic_check(&f.t) {
        assert!(ok, "restic check --read-data after repair snapshots:\n{out}");
    }
    let repo = f.t.open();
    let sn = repo.load_snapshot(&new).unwrap();
    assert!(sn.tags.contains(&"repaired".to_string()), "{sn:?}");
    assert_eq!(sn.original, Some(f.a.0));
    assert!(
        repo.load_snapshot(&f.a.0).is_err(),
        "--forget removed the original"
    );
    let cut = dump(&repo, &new, "/a.sql");
    assert!(cut.len() < f.a.1.len() && !cut.is_empty());
    assert!(dump(&repo, &f.b.0, "/b.sql") == f.b.1);
}

// ---- hand-made trees --------------------------------------------------------------------------

fn save_tree(repo: &Repository, nodes: Vec<Node>) -> Id {
    let mut tree = Tree::default();
    for n in nodes {
        tree.insert(n);
    }
    save_blob(repo, BlobType::Tree, &tree.to_blob().unwrap())
}

#[test]
fn a_directory_whose_tree_is_gone_becomes_empty_and_the_snapshot_is_tagged_repaired() {
    let t = TestRepo::new();
    let repo = t.init();
    let inner = save_tree(&repo, vec![file_node(&repo, "deep.txt", b"deep\n")]);
    let kept = file_node(&repo, "kept.txt", b"kept\n");
    let root = save_tree(&repo, vec![dir_node("sub", inner), kept]);
    let mut sn = Snapshot::new(root, vec!["/x".into()]);
    sn.tags = vec!["nightly".into()];
    let old = repo.save_snapshot(&sn).unwrap();
    let pack = repo.index().get(BlobType::Tree, &inner).unwrap().pack;
    t.backend().remove(FileType::Pack, &pack.to_hex()).unwrap();
    let s = repair_index(
        &Repository::open_without_index(t.backend(), PW).unwrap(),
        &index_options(),
    )
    .unwrap();
    assert_eq!(s.missing_packs, vec![pack]);

    let repo = t.open();
    let s = repair_snapshots(&repo, &[], &snapshot_options(false)).unwrap();
    assert_eq!(
        s.snapshots[0].changes,
        vec!["dir \"/sub\": replaced with an empty directory".to_string()]
    );
    let SnapshotRepair::Rewritten {
        new: Some(new),
        forgotten: false,
    } = s.snapshots[0].outcome
    else {
        panic!("{s:?}");
    };
    let fixed = repo.load_snapshot(&new).unwrap();
    assert_eq!(fixed.tags, vec!["nightly".to_string(), "repaired".to_string()]);
    assert_eq!((fixed.time, fixed.paths.clone()), (sn.time, sn.paths));
    let tree = repo.load_tree(&fixed.tree).unwrap();
    let sub = repo
        .load_tree(&tree.find("sub").unwrap().subtree.unwrap())
        .unwrap();
    assert!(sub.nodes.is_empty());
    assert!(tree.find("kept.txt").is_some());
    // Without --forget the damaged original stays.
    assert!(repo.load_snapshot(&old).is_ok());
    let r = kstash_check(&t);
    assert_eq!(r.damaged_snapshots, vec![old], "{}", show(&r));
    // Repairing again leaves the repaired snapshot alone.
    let again = repair_snapshots(
        &repo,
        &[repo.find_snapshot(&new.to_hex()).unwrap()],
        &snapshot_options(false),
    )
    .unwrap();
    assert_eq!(again.snapshots[0].outcome, SnapshotRepair::Unchanged);
    if restic_available() {
        t.backend().remove(FileType::Snapshot, &old.to_hex()).unwrap();
        let (ok, out) = restic_check(&t).unwrap();
        assert!(ok, "restic check of the repaired snapshot:\n{out}");
    }
}

#[test]
fn both_repairs_need_the_exclusive_lock_and_release_it() {
    let f = two();
    let before = files(&f.t.path);
    let reader = f.t.open();
    let held = kstash_repo::acquire_shared(&reader, Duration::ZERO).unwrap();
    let repo = Repository::open_without_index(f.t.backend(), PW).unwrap();
    let err = repair_index(&repo, &index_options()).unwrap_err();
    assert!(matches!(err, kstash_repo::Error::Locked { .. }), "{err}");
    let err = repair_snapshots(&reader, &[], &snapshot_options(true)).unwrap_err();
    assert!(matches!(err, kstash_repo::Error::Locked { .. }), "{err}");
    drop(held);
    assert_eq!(files(&f.t.path), before, "a refused repair changes nothing");
    repair_index(&repo, &index_options()).unwrap();
    let s = repair_snapshots(&reader, &[], &snapshot_options(true)).unwrap();
    assert_eq!(s.modified(), 0, "{s:?}");
    assert!(f.t.lock_names().is_empty());
}

#[test]
fn a_snapshot_whose_root_tree_is_gone_is_removed() {
    let t = TestRepo::new();
    let repo = t.init();
    let root = save_tree(&repo, vec![file_node(&repo, "a.txt", b"a\n")]);
    let doomed = repo
        .save_snapshot(&Snapshot::new(root, vec!["/x".into()]))
        .unwrap();
    let other_root = save_tree(&repo, vec![file_node(&repo, "b.txt", b"b\n")]);
    let kept = repo
        .save_snapshot(&Snapshot::new(other_root, vec!["/y".into()]))
        .unwrap();
    let pack = repo.index().get(BlobType::Tree, &root).unwrap().pack;
    t.backend().remove(FileType::Pack, &pack.to_hex()).unwrap();
    repair_index(
        &Repository::open_without_index(t.backend(), PW).unwrap(),
        &index_options(),
    )
    .unwrap();

    let repo = t.open();
    let dry = repair_snapshots(
        &repo,
        &[],
        &RepairSnapshotsOptions {
            dry_run: true,
            ..snapshot_options(false)
        },
    )
    .unwrap();
    let outcome = |s: &kstash_repo::repair_snapshots::RepairSnapshotsSummary, id: Id| {
        s.snapshots.iter().find(|r| r.id == id).unwrap().outcome.clone()
    };
    assert_eq!(outcome(&dry, doomed), SnapshotRepair::Removed);
    assert!(repo.load_snapshot(&doomed).is_ok(), "a dry run removes nothing");

    // As restic: nothing of it can be restored, so it goes even without --forget.
    let s = repair_snapshots(&repo, &[], &snapshot_options(false)).unwrap();
    assert_eq!(outcome(&s, doomed), SnapshotRepair::Removed);
    assert_eq!(outcome(&s, kept), SnapshotRepair::Unchanged);
    assert!(repo.load_snapshot(&doomed).is_err());
    let r = kstash_check(&t);
    assert!(r.is_ok(), "{}", show(&r));
    if let Some((ok, out)) = restic_check(&t) {
        assert!(ok, "restic check:\n{out}");
    }
}
