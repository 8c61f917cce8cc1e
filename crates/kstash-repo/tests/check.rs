//! `check` against real damage on disk, in repositories written by kstash and by the real
//! `restic` binary (0.14, format v1 and v2): a clean repository checks OK (as `restic check
//! --read-data` agrees); a flipped bit, a truncated or deleted pack, a corrupt index or snapshot
//! file are each pinpointed by file, pack, blob, snapshot and path; check changes nothing; and the
//! snapshot that was not damaged can still be dumped. The restic cases are skipped (with a
//! message) only when `restic` is not installed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::dump::find_node;
use kstash_repo::index::IndexFile;
use kstash_repo::keys::KdfParams;
use kstash_repo::lock;
use kstash_repo::pack::{PackWriter, encode_blob};
use kstash_repo::{
    BlobType, CheckOptions, CheckReport, Error, FileType, Id, InitOptions, ProblemKind, ReadDataSubset,
    Repository, check, dump_file,
};
use sha2::{Digest, Sha256};

use kstash_testsupport::restic_or_skip;

mod common;
use common::{PW, TestRepo, restic, restic_available, restic_ok};

/// Who wrote the repository.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Writer {
    Kstash(u32),
    Restic(&'static str),
}

const ALL_WRITERS: [Writer; 4] = [
    Writer::Kstash(2),
    Writer::Kstash(1),
    Writer::Restic("2"),
    Writer::Restic("1"),
];

/// One backed-up file: its snapshot, its path there and its content.
#[derive(Debug, Clone)]
struct Stream {
    snapshot: Id,
    path: String,
    data: Vec<u8>,
}

/// A repository with two independent snapshots, `a` (the one the tests damage) and `b`, whose
/// data lie in different packs.
struct Fixture {
    t: TestRepo,
    writer: Writer,
    a: Stream,
    b: Stream,
}

/// Deterministic, compressible, pg_dump-like text.
fn dump_text(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 200);
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut line = 0u64;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        line += 1;
        let _ = writeln!(
            out,
            "{line}\tcustomer-{}\t{}\t2024-0{}-1{} 12:{:02}:00",
            x % 100_000,
            x >> 40,
            1 + x % 9,
            x % 10,
            x % 60
        );
    }
    out.truncate(n);
    out
}

/// Deterministic incompressible bytes.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut out: Vec<u8> = (0..n.div_ceil(32) as u32)
        .flat_map(|i| Sha256::digest([seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect();
    out.truncate(n);
    out
}

fn build(writer: Writer) -> Fixture {
    let t = TestRepo::new();
    let (a, b) = match writer {
        Writer::Kstash(version) => {
            let repo = Repository::init(
                t.backend(),
                PW,
                InitOptions {
                    version,
                    kdf: KdfParams::insecure_fast(),
                    ..Default::default()
                },
            )
            .unwrap();
            let backup = |name: &str, data: Vec<u8>| {
                let options = StreamBackupOptions {
                    pack_size: 512 << 10,
                    ..StreamBackupOptions::named(name)
                };
                let sum = backup_stream(&repo, &data[..], &options).unwrap();
                Stream {
                    snapshot: sum.snapshot_id,
                    path: format!("/{name}"),
                    data,
                }
            };
            let a = backup("a.sql", dump_text(4 << 20, 1));
            let b = backup("b.sql", dump_text(3 << 20, 2));
            (a, b)
        }
        Writer::Restic(version) => {
            t.restic(&["init", "--repository-version", version]);
            let src = t.path.parent().unwrap().join("src");
            fs::create_dir_all(src.join("sub")).unwrap();
            let big = [noise(1 << 20, 1), dump_text(1 << 20, 3)].concat();
            fs::write(src.join("big.bin"), &big).unwrap();
            fs::write(src.join("small.txt"), b"a small file\n").unwrap();
            fs::write(src.join("sub/notes.txt"), dump_text(10_000, 4)).unwrap();
            t.restic(&["backup", src.to_str().unwrap()]);
            let data = dump_text(2 << 20, 5);
            restic_ok(
                &t.path,
                PW,
                &["backup", "--stdin", "--stdin-filename", "db.sql"],
                Some(&data),
            );
            let snaps = t.snapshots_json();
            let id = |i: usize| snaps[i]["id"].as_str().unwrap().parse::<Id>().unwrap();
            let (first, second) = if snaps[0]["paths"][0] == "/db.sql" {
                (1, 0)
            } else {
                (0, 1)
            };
            let a = Stream {
                snapshot: id(first),
                path: format!("{}/big.bin", src.display()),
                data: big,
            };
            let b = Stream {
                snapshot: id(second),
                path: "/db.sql".into(),
                data,
            };
            (a, b)
        }
    };
    Fixture { t, writer, a, b }
}

impl Fixture {
    fn open(&self) -> Repository {
        Repository::open(self.t.backend(), PW).unwrap()
    }

    fn open_for_check(&self) -> Repository {
        Repository::open_without_index(self.t.backend(), PW).unwrap()
    }

    /// Where the first data blob of `s` is stored: (blob, pack, offset, length).
    fn first_blob(&self, s: &Stream) -> (Id, Id, u32, u32) {
        let repo = self.open();
        let sn = repo.find_snapshot(&s.snapshot.to_hex()).unwrap();
        let node = find_node(&repo, &sn, &s.path).unwrap();
        let blob = node.content.unwrap()[0];
        let loc = repo.index().get(BlobType::Data, &blob).unwrap();
        (blob, loc.pack, loc.offset, loc.length)
    }

    /// Every pack holding data of `s`.
    fn packs_of(&self, s: &Stream) -> Vec<Id> {
        let repo = self.open();
        let sn = repo.find_snapshot(&s.snapshot.to_hex()).unwrap();
        let node = find_node(&repo, &sn, &s.path).unwrap();
        let mut packs: Vec<Id> = node
            .content
            .unwrap()
            .iter()
            .map(|b| repo.index().get(BlobType::Data, b).unwrap().pack)
            .collect();
        packs.sort();
        packs.dedup();
        packs
    }

    fn pack_path(&self, pack: &Id) -> PathBuf {
        let hex = pack.to_hex();
        self.t.path.join("data").join(&hex[..2]).join(hex)
    }

    fn check(&self, read_data: Option<ReadDataSubset>) -> CheckReport {
        let repo = self.open_for_check();
        let before = file_hashes(&self.t.path);
        let report = check(
            &repo,
            &CheckOptions {
                read_data,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            file_hashes(&self.t.path),
            before,
            "{:?}: check must not add, change or remove any file",
            self.writer
        );
        report
    }

    /// `s` still dumps to its original bytes.
    fn assert_dumps(&self, s: &Stream) {
        let repo = self.open();
        let mut out = Vec::new();
        dump_file(&repo, &s.snapshot.to_hex()[..12], &s.path, &mut out)
            .unwrap_or_else(|e| panic!("{:?}: dumping {} failed: {e}", self.writer, s.path));
        assert!(out == s.data, "{:?}: {} dumps other bytes", self.writer, s.path);
    }

    fn restic_check(&self, args: &[&str]) -> (bool, String) {
        let out = restic(&self.t.path, PW, &[&["check"], args].concat(), None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// SHA-256 of every file under `dir`, by relative path.
fn file_hashes(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, hex::encode(Sha256::digest(fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Change a repository file in place (the files are read-only, as restic writes them).
fn modify(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut data = fs::read(path).unwrap();
    f(&mut data);
    fs::write(path, &data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o400)).unwrap();
}

fn of_kind(r: &CheckReport, kind: ProblemKind) -> Vec<&kstash_repo::CheckProblem> {
    r.errors.iter().filter(|p| p.kind == kind).collect()
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

fn writers() -> Vec<Writer> {
    if restic_or_skip().is_some() {
        ALL_WRITERS.to_vec()
    } else {
        ALL_WRITERS
            .into_iter()
            .filter(|w| matches!(w, Writer::Kstash(_)))
            .collect()
    }
}

#[test]
fn clean_repositories_check_ok_and_restic_agrees() {
    for writer in writers() {
        let f = build(writer);
        let packs_on_disk = file_hashes(&f.t.path.join("data")).len();
        let r = f.check(None);
        assert!(r.is_ok() && r.warnings.is_empty(), "{writer:?}:\n{}", show(&r));
        assert_eq!(r.snapshots_checked, 2, "{writer:?}");
        assert_eq!(r.packs_checked, packs_on_disk, "{writer:?}");
        assert!(r.trees_checked >= 2 && r.index_files_checked >= 1 && r.keys_checked == 1);
        assert_eq!((r.packs_read, r.blobs_checked), (0, 0));
        assert!(r.damaged_snapshots.is_empty());

        let r = f.check(Some(ReadDataSubset::All));
        assert!(r.is_ok() && r.warnings.is_empty(), "{writer:?}:\n{}", show(&r));
        assert_eq!(r.packs_read, packs_on_disk, "{writer:?}");
        assert_eq!(
            r.blobs_checked as usize,
            r.blobs_indexed + r.duplicate_blobs as usize
        );
        assert!(r.bytes_read > (f.b.data.len() / 3) as u64, "{writer:?}: {r:?}");
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&["--read-data"]);
            assert!(ok, "{writer:?}: restic disagrees:\n{out}");
        }
        f.assert_dumps(&f.a);
        f.assert_dumps(&f.b);
    }
}

#[test]
fn a_flipped_bit_in_a_blob_is_pinpointed_by_read_data() {
    for writer in writers() {
        let f = build(writer);
        let (blob, pack, offset, length) = f.first_blob(&f.a);
        assert!(
            !f.packs_of(&f.b).contains(&pack),
            "{writer:?}: the streams share a pack"
        );
        modify(&f.pack_path(&pack), |d| d[(offset + length / 2) as usize] ^= 0x10);

        // Size and header are intact, and the structure check reads no data blob.
        let r = f.check(None);
        assert!(r.is_ok(), "{writer:?}:\n{}", show(&r));

        let r = f.check(Some(ReadDataSubset::All));
        assert!(!r.is_ok());
        let damaged = of_kind(&r, ProblemKind::DamagedBlob);
        assert_eq!(damaged.len(), 1, "{writer:?}:\n{}", show(&r));
        let d = damaged[0];
        assert_eq!(
            (d.pack, d.blob, d.offset, d.blob_type),
            (Some(pack), Some(blob), Some(offset), Some(BlobType::Data)),
            "{d}"
        );
        assert!(
            d.message.contains(&pack.to_hex()) && d.message.contains(&blob.to_hex()),
            "{d}"
        );
        assert!(d.message.contains("MAC"), "{d}");
        assert_eq!(d.affected_snapshots, vec![f.a.snapshot], "{d}");
        let hash = of_kind(&r, ProblemKind::PackHash);
        assert_eq!(hash.len(), 1, "{}", show(&r));
        assert_eq!(hash[0].pack, Some(pack));
        let lost = of_kind(&r, ProblemKind::LostBlob);
        assert_eq!(lost.len(), 1, "{}", show(&r));
        assert_eq!(lost[0].snapshot, Some(f.a.snapshot));
        assert_eq!(lost[0].path.as_deref(), Some(f.a.path.as_str()));
        assert!(lost[0].message.contains(&f.a.path), "{}", lost[0]);
        assert_eq!(r.errors.len(), 3, "{writer:?}:\n{}", show(&r));
        assert_eq!(r.damaged_snapshots, vec![f.a.snapshot]);

        // The n/t groups: only the one holding the damaged pack finds it, in kstash as in restic.
        let group = u32::from(pack.0[0]) % 2 + 1;
        let other = 3 - group;
        let r = f.check(Some(ReadDataSubset::Group { n: group, t: 2 }));
        assert_eq!(of_kind(&r, ProblemKind::DamagedBlob).len(), 1, "{}", show(&r));
        let r = f.check(Some(ReadDataSubset::Group { n: other, t: 2 }));
        assert!(r.is_ok(), "{writer:?} group {other}/2:\n{}", show(&r));
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&["--read-data"]);
            assert!(!ok && out.contains(&pack.to_hex()), "{out}");
            let (ok, out) = f.restic_check(&[&format!("--read-data-subset={group}/2")]);
            assert!(!ok && out.contains(&pack.to_hex()), "{out}");
            let (ok, out) = f.restic_check(&[&format!("--read-data-subset={other}/2")]);
            assert!(ok, "restic reads another group for {other}/2:\n{out}");
        }

        f.assert_dumps(&f.b);
        let err = dump_file(&f.open(), &f.a.snapshot.to_hex(), &f.a.path, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Mac { .. }), "{err}");
    }
}

#[test]
fn a_flipped_bit_in_a_pack_header_is_found_by_the_structure_check() {
    for writer in writers() {
        let f = build(writer);
        let (_, pack, _, _) = f.first_blob(&f.a);
        let path = f.pack_path(&pack);
        let size = fs::metadata(&path).unwrap().len() as usize;
        // The header is just before its 4-byte length at the end.
        modify(&path, |d| d[size - 12] ^= 1);
        let r = f.check(None);
        let header = of_kind(&r, ProblemKind::PackHeader);
        assert_eq!(header.len(), 1, "{writer:?}:\n{}", show(&r));
        assert_eq!(header[0].pack, Some(pack));
        assert!(header[0].message.contains(&pack.to_hex()), "{}", header[0]);
        assert_eq!(r.errors.len(), 1, "{writer:?}:\n{}", show(&r));
        // The blobs themselves are intact, and read through the index.
        f.assert_dumps(&f.a);
        f.assert_dumps(&f.b);
    }
}

#[test]
fn a_truncated_pack_is_reported_by_the_structure_check() {
    for writer in writers() {
        let f = build(writer);
        let (_, pack, offset, length) = f.first_blob(&f.a);
        let path = f.pack_path(&pack);
        let size = fs::metadata(&path).unwrap().len();
        let cut = u64::from(offset + length / 2);
        modify(&path, |d| d.truncate(cut as usize));

        let r = f.check(None);
        let sized = of_kind(&r, ProblemKind::PackSize);
        assert_eq!(sized.len(), 1, "{writer:?}:\n{}", show(&r));
        assert_eq!(sized[0].pack, Some(pack));
        assert!(
            sized[0].message.contains(&format!("size is {cut} bytes"))
                && sized[0].message.contains(&size.to_string()),
            "{}",
            sized[0]
        );
        assert_eq!(sized[0].affected_snapshots, vec![f.a.snapshot]);
        assert_eq!(of_kind(&r, ProblemKind::PackHeader).len(), 1, "{}", show(&r));
        let lost = of_kind(&r, ProblemKind::LostBlob);
        assert!(!lost.is_empty(), "{}", show(&r));
        assert!(
            lost.iter().all(|p| p.snapshot == Some(f.a.snapshot)),
            "{}",
            show(&r)
        );
        assert!(lost[0].message.contains("truncated"), "{}", lost[0]);
        assert_eq!(r.damaged_snapshots, vec![f.a.snapshot]);

        let r = f.check(Some(ReadDataSubset::All));
        assert!(!of_kind(&r, ProblemKind::DamagedBlob).is_empty(), "{}", show(&r));
        assert_eq!(of_kind(&r, ProblemKind::PackHash).len(), 1, "{}", show(&r));
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&[]);
            assert!(!ok && out.contains(&pack.to_hex()), "{out}");
        }
        f.assert_dumps(&f.b);
    }
}

#[test]
fn a_deleted_pack_is_reported_with_the_snapshots_and_paths_it_breaks() {
    for writer in writers() {
        let f = build(writer);
        let (blob, pack, _, _) = f.first_blob(&f.a);
        fs::remove_file(f.pack_path(&pack)).unwrap();

        let r = f.check(None);
        let missing = of_kind(&r, ProblemKind::MissingPack);
        assert_eq!(missing.len(), 1, "{writer:?}:\n{}", show(&r));
        assert_eq!(missing[0].pack, Some(pack));
        assert_eq!(missing[0].affected_snapshots, vec![f.a.snapshot]);
        let text = missing[0].to_string();
        assert!(
            text.contains(&pack.to_hex())
                && text.contains("does not exist")
                && text.contains(&f.a.snapshot.short()),
            "{text}"
        );
        let lost = of_kind(&r, ProblemKind::LostBlob);
        let first = lost
            .iter()
            .find(|p| p.blob == Some(blob))
            .unwrap_or_else(|| panic!("{}", show(&r)));
        assert_eq!(first.snapshot, Some(f.a.snapshot));
        assert_eq!(first.path.as_deref(), Some(f.a.path.as_str()));
        let text = first.to_string();
        assert!(
            text.starts_with(&format!("snapshot {}: tree ", f.a.snapshot.short()))
                && text.contains(&format!("path {}: data blob {blob}", f.a.path))
                && text.contains("is missing"),
            "{text}"
        );
        assert_eq!(r.damaged_snapshots, vec![f.a.snapshot]);
        assert_eq!(
            r.errors.len(),
            1 + lost.len(),
            "nothing else is reported:\n{}",
            show(&r)
        );
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&[]);
            assert!(!ok && out.contains(&pack.to_hex()), "{out}");
        }
        f.assert_dumps(&f.b);
    }
}

#[test]
fn a_corrupt_index_file_is_reported_by_name() {
    for writer in writers() {
        let f = build(writer);
        let (_, pack, _, _) = f.first_blob(&f.a);
        // The index file that lists the pack.
        let repo = f.open();
        let index_id = repo
            .backend()
            .list(FileType::Index)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.parse::<Id>().unwrap())
            .find(|id| {
                let file: IndexFile = repo.load_json(FileType::Index, id).unwrap();
                file.packs.iter().any(|p| p.id == pack)
            })
            .unwrap();
        drop(repo);
        modify(&f.t.path.join("index").join(index_id.to_hex()), |d| d[40] ^= 4);

        let r = f.check(None);
        let bad = of_kind(&r, ProblemKind::IndexFile);
        assert_eq!(bad.len(), 1, "{writer:?}:\n{}", show(&r));
        assert_eq!(bad[0].file.as_deref(), Some(format!("index/{index_id}").as_str()));
        assert!(
            bad[0].message.contains(&format!("index/{index_id}")),
            "{}",
            bad[0]
        );
        // The packs it listed are now unreferenced (a warning), and the damage shows in `a` only.
        assert!(
            r.warnings
                .iter()
                .any(|w| w.kind == ProblemKind::UnreferencedPack && w.pack == Some(pack)),
            "{}",
            show(&r)
        );
        assert!(r.damaged_snapshots.contains(&f.a.snapshot), "{}", show(&r));
        assert!(!r.damaged_snapshots.contains(&f.b.snapshot), "{}", show(&r));
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&[]);
            assert!(!ok && out.contains(&index_id.to_hex()), "{out}");
        }
        // Opening skips the damaged index file (restic 0.14 cannot open at all), names it, and
        // the undamaged snapshot still dumps; prune refuses to run on such a picture.
        let repo = Repository::open(f.t.backend(), PW).unwrap();
        assert_eq!(repo.damaged_index_files()[0].0, index_id);
        f.assert_dumps(&f.b);
        let err = kstash_repo::prune::prune(&repo, &Default::default()).unwrap_err();
        assert!(err.to_string().contains(&index_id.to_hex()), "{err}");
    }
}

#[test]
fn a_corrupt_snapshot_file_is_reported_by_name() {
    for writer in writers() {
        let f = build(writer);
        let file = f.t.path.join("snapshots").join(f.a.snapshot.to_hex());
        modify(&file, |d| {
            let i = d.len() / 2;
            d[i] ^= 0x01;
        });
        let r = f.check(None);
        let bad = of_kind(&r, ProblemKind::SnapshotFile);
        assert_eq!(bad.len(), 1, "{writer:?}:\n{}", show(&r));
        assert_eq!(bad[0].snapshot, Some(f.a.snapshot));
        assert_eq!(
            bad[0].file.as_deref(),
            Some(format!("snapshots/{}", f.a.snapshot).as_str())
        );
        assert_eq!(r.errors.len(), 1, "{}", show(&r));
        assert_eq!(r.snapshots_checked, 1);
        if restic_or_skip().is_some() {
            let (ok, out) = f.restic_check(&[]);
            assert!(!ok && out.contains(&f.a.snapshot.short()), "{out}");
        }
        f.assert_dumps(&f.b);
    }
}

#[test]
fn missing_or_corrupt_config_and_a_wrong_password_are_clear_errors() {
    for writer in writers() {
        let f = build(writer);
        let config = f.t.path.join("config");
        let original = fs::read(&config).unwrap();

        let err = Repository::open(f.t.backend(), "not the password").unwrap_err();
        assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
        assert!(err.to_string().starts_with("wrong password"), "{err}");
        let err = Repository::open_without_index(f.t.backend(), "not the password").unwrap_err();
        assert!(matches!(err, Error::WrongPassword { .. }), "{err}");

        modify(&config, |d| d[20] ^= 0x80);
        let err = Repository::open(f.t.backend(), PW).unwrap_err();
        assert!(
            err.to_string().contains("/config") && err.to_string().contains("MAC"),
            "{err}"
        );
        modify(&config, |d| d.truncate(10));
        let err = Repository::open(f.t.backend(), PW).unwrap_err();
        assert!(err.to_string().contains("/config"), "{err}");
        fs::remove_file(&config).unwrap();
        let err = Repository::open_without_index(f.t.backend(), PW).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
        if restic_or_skip().is_some() {
            let (ok, _) = f.restic_check(&[]);
            assert!(!ok, "restic cannot open it either");
        }
        // Put back, everything is fine again.
        fs::write(&config, &original).unwrap();
        assert!(f.check(None).is_ok());
    }
}

#[test]
fn an_unreferenced_pack_is_only_a_warning() {
    let f = build(Writer::Kstash(2));
    let repo = f.open();
    let data = b"a blob nobody indexed".to_vec();
    let mut w = kstash_repo::pack::PackWriter::new(0);
    w.add(&kstash_repo::pack::encode_blob(repo.key(), BlobType::Data, Id::hash(&data), &data, None).unwrap())
        .unwrap();
    let p = w.finish(repo.key()).unwrap();
    repo.upload_pack(&p).unwrap();
    let r = f.check(Some(ReadDataSubset::All));
    assert!(r.is_ok(), "{}", show(&r));
    assert_eq!(r.warnings.len(), 1, "{}", show(&r));
    assert_eq!(r.warnings[0].kind, ProblemKind::UnreferencedPack);
    assert_eq!(r.warnings[0].pack, Some(p.id));
    assert!(
        r.warnings[0].message.contains("unreferenced pack"),
        "{}",
        r.warnings[0]
    );
    if restic_or_skip().is_some() {
        let (ok, out) = f.restic_check(&[]);
        assert!(ok, "restic too treats it as harmless:\n{out}");
    }
}

#[test]
fn read_data_subsets_read_each_pack_once_across_groups() {
    let f = build(Writer::Kstash(2));
    let total = f.check(None).packs_checked;
    assert!(total >= 4, "{total} packs");
    for t in [2u32, 3] {
        let read: usize = (1..=t)
            .map(|n| {
                let r = f.check(Some(ReadDataSubset::Group { n, t }));
                assert!(r.is_ok(), "{}", show(&r));
                r.packs_read
            })
            .sum();
        assert_eq!(read, total, "groups 1..{t}/{t} read every pack once");
    }
    assert_eq!(f.check(Some(ReadDataSubset::Percent(100.0))).packs_read, total);
    assert_eq!(f.check(Some(ReadDataSubset::Percent(1.0))).packs_read, 1);
    assert_eq!(f.check(Some(ReadDataSubset::Size(1))).packs_read, 1);
    assert_eq!(f.check(Some(ReadDataSubset::Size(u64::MAX))).packs_read, total);
}

#[test]
fn check_takes_a_shared_lock() {
    let f = build(Writer::Kstash(2));
    let repo = f.open_for_check();
    let exclusive = lock::acquire_exclusive(&repo, Duration::ZERO).unwrap();
    let err = check(&repo, &CheckOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let r = check(
        &repo,
        &CheckOptions {
            lock: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.is_ok(), "{}", show(&r));
    exclusive.release().unwrap();
    let shared = lock::acquire_shared(&repo, Duration::ZERO).unwrap();
    assert!(check(&repo, &CheckOptions::default()).unwrap().is_ok());
    assert_eq!(f.t.lock_names(), vec![shared.id().to_hex()]);
    shared.release().unwrap();
    assert!(f.t.lock_names().is_empty());
}

/// Every index file of the fixture, with its content.
fn index_files(f: &Fixture) -> Vec<(Id, IndexFile)> {
    let repo = f.open_for_check();
    let mut out: Vec<(Id, IndexFile)> =
        f.t.backend()
            .list(FileType::Index)
            .unwrap()
            .into_iter()
            .map(|(n, _)| {
                let id: Id = n.parse().unwrap();
                (id, repo.load_json(FileType::Index, &id).unwrap())
            })
            .collect();
    out.sort_by_key(|(id, _)| *id);
    out
}

/// Store `plain` as an index file the way restic does: encrypted with the master key, named by
/// the SHA-256 of the ciphertext, uncompressed (as restic before 0.14 wrote every file).
fn write_raw_index(f: &Fixture, plain: &[u8]) -> Id {
    let repo = f.open_for_check();
    let enc = repo.key().encrypt(plain);
    let id = Id::hash(&enc);
    f.t.backend().write(FileType::Index, &id.to_hex(), &enc).unwrap();
    id
}

#[test]
fn the_same_pack_listed_in_another_order_is_only_a_duplicate() {
    let f = build(Writer::Kstash(2));
    // A pack of two blobs, written here: whether a backup's packs hold several blobs depends on
    // where the repository's random chunker polynomial cuts.
    let listing = {
        let repo = f.open_for_check();
        let mut w = PackWriter::new(0);
        for seed in [7, 8] {
            let data = dump_text(100_000, seed);
            let blob = encode_blob(repo.key(), BlobType::Data, Id::hash(&data), &data, None).unwrap();
            w.add(&blob).unwrap();
        }
        let pack = w.finish(repo.key()).unwrap();
        repo.upload_pack(&pack).unwrap();
        let mut index = IndexFile::default();
        index.add_pack(pack.id, &pack.blobs);
        repo.save_json(FileType::Index, &index).unwrap();
        index.packs.remove(0)
    };
    assert_eq!(listing.blobs.len(), 2, "{listing:?}");

    // A second index file lists the pack's blobs in reverse order: a harmless duplicate.
    let mut reversed = listing.clone();
    reversed.blobs.reverse();
    let second = IndexFile {
        packs: vec![reversed],
        ..Default::default()
    };
    let second_id = write_raw_index(&f, &serde_json::to_vec(&second).unwrap());
    let r = f.check(None);
    assert!(r.is_ok(), "{}", show(&r));
    let dups: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.kind == ProblemKind::DuplicatePack)
        .collect();
    assert_eq!(dups.len(), 1, "{}", show(&r));
    assert!(
        dups[0].message.contains("listed in several index files")
            && dups[0].message.contains("kstash repo repair index"),
        "{}",
        dups[0]
    );
    assert!(!show(&r).contains("differently"), "{}", show(&r));
    if restic_available() {
        let (ok, out) = f.restic_check(&[]);
        assert!(ok, "restic:\n{out}");
    }

    // A listing that really differs (a blob left out) is still called different.
    f.t.backend()
        .remove(FileType::Index, &second_id.to_hex())
        .unwrap();
    let mut fewer = listing.clone();
    fewer.blobs.pop();
    let third = IndexFile {
        packs: vec![fewer],
        ..Default::default()
    };
    write_raw_index(&f, &serde_json::to_vec(&third).unwrap());
    let r = f.check(None);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.kind == ProblemKind::DuplicatePack && w.message.contains("listed differently")),
        "{}",
        show(&r)
    );
}

/// Replace every index file by one in restic's legacy format (before 0.8): a bare JSON array of
/// `{id, blobs: [{id, type, offset, length}]}`, encrypted, named by the hash of the ciphertext.
fn rewrite_index_as_legacy(f: &Fixture) -> Id {
    let mut packs = Vec::new();
    for (id, file) in index_files(f) {
        packs.extend(file.packs);
        f.t.backend().remove(FileType::Index, &id.to_hex()).unwrap();
    }
    let json = serde_json::to_vec(&packs).unwrap();
    assert!(
        json.starts_with(b"[{\"id\":\""),
        "{}",
        String::from_utf8_lossy(&json)
    );
    assert!(!json.windows(9).any(|w| w == b"supersede"));
    write_raw_index(f, &json)
}

#[test]
fn a_repository_whose_only_index_is_in_the_legacy_format_checks_dumps_and_restores() {
    let f = build(Writer::Kstash(1));
    let legacy = rewrite_index_as_legacy(&f);
    assert_eq!(index_files(&f).len(), 1);
    assert!(index_files(&f)[0].1.legacy);

    let r = f.check(Some(ReadDataSubset::All));
    assert!(r.is_ok(), "{}", show(&r));
    assert_eq!(r.snapshots_checked, 2);
    assert!(r.damaged_snapshots.is_empty());
    let hints: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.kind == ProblemKind::OldIndexFormat)
        .collect();
    assert_eq!(hints.len(), 1, "{}", show(&r));
    assert!(
        hints[0].message.contains(&format!("index/{legacy}")) && hints[0].message.contains("old format"),
        "{}",
        hints[0]
    );
    f.assert_dumps(&f.a);
    f.assert_dumps(&f.b);
    let target = tempfile::tempdir().unwrap();
    let summary = kstash_repo::restore(
        &f.open(),
        &f.b.snapshot.to_hex(),
        target.path(),
        &kstash_repo::RestoreOptions::default(),
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(fs::read(target.path().join("b.sql")).unwrap() == f.b.data);

    if restic_available() {
        // restic 0.14 reads it too, and only hints.
        let (ok, out) = f.restic_check(&["--read-data"]);
        assert!(ok && out.contains("has old format"), "restic:\n{out}");
        let dumped = restic_ok(&f.t.path, PW, &["dump", &f.a.snapshot.to_hex(), &f.a.path], None);
        assert!(dumped == f.a.data, "restic dumps the same bytes");
    }

    // `repair index` rewrites it in the current format.
    let options = kstash_repo::repair_index::RepairIndexOptions::default();
    let s = kstash_repo::repair_index::repair_index(&f.open_for_check(), &options).unwrap();
    assert_eq!((s.legacy_index_files, s.packs_read), (1, 0), "{s:?}");
    assert!(index_files(&f).iter().all(|(_, file)| !file.legacy));
    let r = f.check(None);
    assert!(r.is_ok() && r.warnings.is_empty(), "{}", show(&r));
    if restic_available() {
        let (ok, out) = f.restic_check(&[]);
        assert!(ok && !out.contains("old format"), "restic:\n{out}");
    }
}
