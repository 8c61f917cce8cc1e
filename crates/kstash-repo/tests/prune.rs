//! Prune against the real `restic`: what kstash prunes passes `restic check --read-data` and still
//! restores; what restic wrote and forgot, kstash prunes; damage stops prune before it deletes
//! anything; an interrupted prune leaves a repository that checks and a second prune finishes;
//! restic's locks block kstash prune and the reverse.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::prune::{MaxUnused, PruneOptions, prune};
use kstash_repo::{Backend, Error, FileType, LocalBackend, Repository, dump_file};
use kstash_testsupport::ResticLockHolder;
use kstash_testsupport::data::text;

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, TestRepo, restic, restic_available};

fn small_packs() -> StreamBackupOptions {
    StreamBackupOptions {
        pack_size: 512 * 1024,
        ..StreamBackupOptions::named("db.sql")
    }
}

fn back_up(repo: &Repository, data: &[u8], tag: &str) -> String {
    let opts = StreamBackupOptions {
        tags: vec![tag.into()],
        ..small_packs()
    };
    backup_stream(repo, data, &opts).unwrap().snapshot_id.to_string()
}

fn dump(repo: &Repository, snapshot: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dump_file(repo, snapshot, "/db.sql", &mut out).unwrap();
    out
}

/// Every file of the repository with its bytes, to prove an operation changed nothing.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn pack_bytes(t: &TestRepo) -> u64 {
    t.backend()
        .list(FileType::Pack)
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum()
}

fn forget(t: &TestRepo, snapshot: &str) {
    t.backend().remove(FileType::Snapshot, snapshot).unwrap();
}

#[test]
fn forget_then_prune_frees_space_and_restic_checks_it() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    let (a, b, c) = (text(3_000_000, 1), text(3_000_000, 2), text(3_000_000, 3));
    let sa = back_up(&repo, &a, "a");
    let sb = back_up(&repo, &b, "b");
    // c shares a's first half.
    let mut ac = a[..1_500_000].to_vec();
    ac.extend_from_slice(&c[..1_500_000]);
    let sc = back_up(&repo, &ac, "c");
    let before = pack_bytes(&t);
    forget(&t, &sb);
    let sum = prune(&repo, &PruneOptions::default()).unwrap();
    assert!(sum.packs_deleted > 0 && sum.bytes_deleted > 0, "{sum:?}");
    assert!(pack_bytes(&t) < before);
    assert_eq!(sum.snapshots, 2);
    t.restic(&["check", "--read-data"]);
    assert_eq!(dump(&repo, &sa), a);
    assert_eq!(dump(&repo, &sc), ac);
    let reopened = t.open();
    reopened.load_index().unwrap();
    assert_eq!(dump(&reopened, &sc), ac);
    // Nothing left to do: a second prune changes nothing.
    let snapshot_before = files(&t.path);
    let again = prune(&repo, &PruneOptions::default()).unwrap();
    assert_eq!(
        (again.packs_deleted, again.packs_repacked, again.packs_written),
        (0, 0, 0)
    );
    assert_eq!(
        files(&t.path).keys().collect::<Vec<_>>(),
        snapshot_before.keys().collect::<Vec<_>>()
    );
}

#[test]
fn partly_used_packs_are_repacked_within_the_tolerance() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    // Two streams interleaved in the same packs: one big pack size, both in one backup each,
    // but a third backup of both halves mixed puts used and unused blobs side by side. `a` is
    // longer than the chunker's 8 MiB maximum chunk, so its first chunk is cut inside `a` and
    // shared with `mixed` whatever the repository's random chunker polynomial; the pack size
    // holds all of `mixed` in one pack.
    let (a, b) = (text(10_000_000, 11), text(6_000_000, 12));
    let mut mixed = a.clone();
    mixed.extend_from_slice(&b);
    let opts = StreamBackupOptions {
        pack_size: 64 * 1024 * 1024,
        ..StreamBackupOptions::named("db.sql")
    };
    let s_mixed = backup_stream(&repo, &mixed[..], &opts)
        .unwrap()
        .snapshot_id
        .to_string();
    let s_a = backup_stream(&repo, &a[..], &opts)
        .unwrap()
        .snapshot_id
        .to_string();
    forget(&t, &s_mixed);
    // Default 5%: the mixed pack is mostly unused, so it is repacked.
    let plan = prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(plan.dry_run && plan.packs_repacked >= 1, "{plan:?}");
    let files_before = files(&t.path);
    assert_eq!(files(&t.path), files_before, "a dry run changes nothing");
    let sum = prune(&repo, &PruneOptions::default()).unwrap();
    assert!(sum.packs_repacked >= 1 && sum.packs_written >= 1, "{sum:?}");
    assert!(sum.bytes_unused_after * 19 <= sum.bytes_used, "{sum:?}");
    t.restic(&["check", "--read-data"]);
    assert_eq!(dump(&repo, &s_a), a);
    // `unlimited` never repacks.
    let s2 = back_up(&repo, &mixed, "m");
    forget(&t, &s2);
    let lazy = prune(
        &repo,
        &PruneOptions {
            max_unused: MaxUnused::Unlimited,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(lazy.packs_repacked, 0, "{lazy:?}");
    t.restic(&["check"]);
}

#[test]
fn kstash_prunes_what_restic_wrote_and_forgot() {
    if restic_or_skip().is_none() {
        return;
    }
    for version in ["1", "2"] {
        let t = TestRepo::new();
        t.restic(&["init", "--repository-version", version]);
        let (a, b) = (text(2_500_000, 21), text(2_500_000, 22));
        restic(
            &t.path,
            PW,
            &["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "a"],
            Some(&a),
        );
        restic(
            &t.path,
            PW,
            &["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "b"],
            Some(&b),
        );
        let forgotten = t
            .snapshots_json()
            .into_iter()
            .find(|s| s["tags"][0] == "a")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        t.restic(&["forget", &forgotten]);
        let repo = t.open();
        let sum = prune(&repo, &PruneOptions::default()).unwrap();
        assert!(sum.packs_deleted >= 1, "v{version}: {sum:?}");
        t.restic(&["check", "--read-data"]);
        let out = t.restic(&["dump", "latest", "/db.sql"]);
        assert!(
            out == b,
            "v{version}: restic dumps the kept snapshot after kstash's prune"
        );
    }
}

#[test]
fn damage_stops_prune_before_anything_is_deleted() {
    let t = TestRepo::new();
    let repo = t.init();
    let a = text(2_000_000, 31);
    back_up(&repo, &a, "a");
    let sb = back_up(&repo, &text(2_000_000, 32), "b");
    forget(&t, &sb);
    // Remove one pack the remaining snapshot needs.
    let needed = {
        let sn = repo.find_snapshot("latest").unwrap();
        let tree = repo.load_tree(&sn.snapshot.tree).unwrap();
        let id = tree.nodes[0].content.as_ref().unwrap()[0];
        repo.index().get(kstash_repo::BlobType::Data, &id).unwrap().pack
    };
    // The message names one of its blobs (whichever prune meets first).
    let in_pack: Vec<String> = repo
        .list_pack(&needed)
        .unwrap()
        .iter()
        .map(|b| b.id.to_hex())
        .collect();
    std::fs::remove_file(
        t.path
            .join("data")
            .join(&needed.to_hex()[..2])
            .join(needed.to_hex()),
    )
    .unwrap();
    let before = files(&t.path);
    let err = prune(&repo, &PruneOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("kstash repo check") && msg.contains("nothing was deleted"),
        "{msg}"
    );
    // It names the blob and the pack, and reads as one sentence.
    assert!(msg.contains(&needed.to_hex()), "{msg}");
    assert!(in_pack.iter().any(|b| msg.contains(b.as_str())), "{msg}");
    assert!(
        msg.starts_with("data blob ")
            && msg.contains("which is missing from storage;")
            && !msg.contains("not found;"),
        "{msg}"
    );
    assert_eq!(files(&t.path), before, "prune deleted nothing");
}

/// A local backend whose `remove` fails after a number of calls: a prune "crashing" midway.
struct CrashingBackend {
    inner: LocalBackend,
    removes_left: AtomicUsize,
}

impl Backend for CrashingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn read(&self, t: FileType, name: &str) -> kstash_repo::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: usize) -> kstash_repo::Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, len)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> kstash_repo::Result<()> {
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> kstash_repo::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> kstash_repo::Result<()> {
        if t != FileType::Lock && self.removes_left.fetch_sub(1, Ordering::SeqCst) == 0 {
            return Err(Error::Internal("simulated crash".into()));
        }
        self.inner.remove(t, name)
    }
    fn stat(&self, t: FileType, name: &str) -> kstash_repo::Result<u64> {
        self.inner.stat(t, name)
    }
}

#[test]
fn an_interrupted_prune_leaves_a_valid_repository() {
    if restic_or_skip().is_none() {
        return;
    }
    // Crash after 0 removals (old index files all still there), after 1 (some index files
    // gone), and after the index files (some packs gone): check passes each time, the kept
    // data restores, and a second prune finishes the job.
    for crash_after in [0usize, 1, 3] {
        let t = TestRepo::new();
        let repo = t.init();
        let keep = text(1_500_000, 41);
        let s_keep = back_up(&repo, &keep, "keep");
        for seed in 42..46 {
            let s = back_up(&repo, &text(1_500_000, seed), "drop");
            forget(&t, &s);
        }
        let crashing = Arc::new(CrashingBackend {
            inner: LocalBackend::new(&t.path),
            removes_left: AtomicUsize::new(crash_after),
        });
        let crashing_repo = Repository::open(crashing, PW).unwrap();
        let err = prune(&crashing_repo, &PruneOptions::default()).unwrap_err();
        assert!(err.to_string().contains("simulated crash"), "{err}");
        kstash_repo::lock::remove_all_locks(&repo).unwrap();
        t.restic(&["check", "--read-data"]);
        let fresh = t.open();
        fresh.load_index().unwrap();
        assert_eq!(dump(&fresh, &s_keep), keep, "crash after {crash_after} removals");
        let sum = prune(&fresh, &PruneOptions::default()).unwrap();
        assert!(sum.packs_deleted > 0, "the second prune finishes: {sum:?}");
        t.restic(&["check", "--read-data"]);
        assert_eq!(dump(&fresh, &s_keep), keep);
    }
}

#[test]
fn restic_locks_block_kstash_prune_and_the_reverse() {
    if restic_or_skip().is_none() {
        return;
    }
    let t = TestRepo::new();
    let repo = t.init();
    back_up(&repo, &text(100_000, 51), "a");
    let holder = ResticLockHolder::start(&t.path, PW).unwrap();
    let err = prune(&repo, &PruneOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains(&holder.pid().to_string()), "{err}");
    holder.kill();
    t.restic(&["unlock"]);
    let held = kstash_repo::lock::acquire_exclusive(&repo, std::time::Duration::ZERO).unwrap();
    let out = restic(&t.path, PW, &["prune"], None);
    assert!(
        !out.status.success(),
        "restic prune must not run while kstash holds the lock"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(held);
    prune(&repo, &PruneOptions::default()).unwrap();
}

#[test]
fn a_pack_mixing_tree_and_data_blobs_is_repacked() {
    use kstash_repo::gojson::GoTime;
    use kstash_repo::index::IndexFile;
    use kstash_repo::pack::{PackWriter, encode_blob};
    use kstash_repo::tree::{Node, Tree};
    use kstash_repo::{BlobType, CheckOptions, Id, ProblemKind, Snapshot, check};

    let t = TestRepo::new();
    let repo = t.init();
    // As restic before 0.8 could write: one pack holding a file's data and the tree naming it.
    let data = text(100_000, 41);
    let data_id = Id::hash(&data);
    let mut node = Node::file("db.sql", 0o644, GoTime::now(), 0, 0);
    node.size = data.len() as u64;
    node.content = Some(vec![data_id]);
    let mut tree = Tree::default();
    tree.insert(node);
    let tree_blob = tree.to_blob().unwrap();
    let tree_id = Id::hash(&tree_blob);
    let mut w = PackWriter::new(0);
    w.add(&encode_blob(repo.key(), BlobType::Data, data_id, &data, None).unwrap())
        .unwrap();
    w.add(&encode_blob(repo.key(), BlobType::Tree, tree_id, &tree_blob, None).unwrap())
        .unwrap();
    let p = w.finish(repo.key()).unwrap();
    repo.upload_pack(&p).unwrap();
    let mut index = IndexFile::default();
    index.add_pack(p.id, &p.blobs);
    repo.save_json(FileType::Index, &index).unwrap();
    let sn = repo
        .save_snapshot(&Snapshot::new(tree_id, vec!["/db.sql".into()]))
        .unwrap()
        .to_string();
    let mixed = |repo: &Repository| {
        let r = check(repo, &CheckOptions::default()).unwrap();
        assert!(r.is_ok(), "{:?}", r.errors);
        let mixed: Vec<_> = r
            .warnings
            .iter()
            .filter(|w| w.kind == ProblemKind::MixedPack)
            .collect();
        assert!(
            mixed
                .iter()
                .all(|w| w.message.contains("`kstash repo prune` repacks it"))
        );
        mixed.len()
    };
    assert_eq!(mixed(&repo), 1);
    if restic_available() {
        // restic 0.14 reads it fine.
        t.restic(&["check", "--read-data"]);
    }

    // Everything in it is used, yet it is repacked: tree and data blobs end up apart.
    let sum = prune(&repo, &PruneOptions::default()).unwrap();
    assert_eq!((sum.packs_repacked, sum.packs_written), (1, 2), "{sum:?}");
    assert!(
        !t.path
            .join("data")
            .join(&p.id.to_hex()[..2])
            .join(p.id.to_hex())
            .exists()
    );
    assert_eq!(mixed(&repo), 0);
    assert_eq!(dump(&repo, &sn), data);
    if restic_available() {
        t.restic(&["check", "--read-data"]);
    }
    // Nothing left to do.
    let again = prune(&repo, &PruneOptions::default()).unwrap();
    assert_eq!(again.packs_repacked, 0, "{again:?}");
}
