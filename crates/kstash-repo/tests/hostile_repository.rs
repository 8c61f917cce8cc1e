//! A hostile repository never crashes kstash: property tests feed the engine's readers of pack
//! headers, index files, tree blobs, snapshot files, key files and lock files with random bytes
//! and with mutations of valid encodings (truncation, bit flips, inserted bytes, huge lengths and
//! counts). Every input must end in a value or an error naming the file or blob, never a panic,
//! an allocation sized by a hostile number, or a hang.
//!
//! The mutated plaintext is encrypted with the repository's own key, so the parsers behind the
//! MAC are reached (an attacker who only has storage access is stopped by the MAC already, which
//! the raw-byte cases check too). Bounded to a few seconds: `PROPTEST_CASES` raises the number of
//! cases per target for a longer run (`bench/fuzz` does, in release mode); failures are kept in
//! `hostile_repository.proptest-regressions` and replayed first.
//!
//! Each property's body is one `check_*` function, which also replays the checked-in corpus
//! (`tests/hostile-corpus/<kind>/<name>`: each kind's valid plaintext and hand-picked hostile
//! inputs), so CI runs those same inputs on every run whatever the random cases are. The corpus is
//! written by the ignored test `rewrite_the_hostile_corpus`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kstash_repo::backend::FileType;
use kstash_repo::crypto::Key;
use kstash_repo::index::{BlobType, IndexFile};
use kstash_repo::keys::{KdfParams, KeyFile};
use kstash_repo::lock::{self, LockFile};
use kstash_repo::pack::{self, PackWriter};
use kstash_repo::repository::seal_unpacked;
use kstash_repo::tree::{Node, Tree};
use kstash_repo::{Backend, Error, Id, InitOptions, MemoryBackend, Repository, StreamBackupOptions};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

// ---- allocation guard -----------------------------------------------------------------------

/// Address space a test process may add to what it has when the world is built: a few hostile
/// cases legitimately use scrypt's 1 GiB at most; a length or count trusted for an up-front
/// allocation (4 GiB for a `u32`, terabytes for scrypt's `N`) fails and aborts the test.
const ADDRESS_SPACE_HEADROOM: u64 = 3 << 30;
/// The longest one case may take (scrypt of a key file included).
const MAX_CASE_TIME: Duration = Duration::from_secs(5);

/// Caps this process's address space (`RLIMIT_AS`) at its current size plus
/// [`ADDRESS_SPACE_HEADROOM`] (nextest runs each test in its own process).
fn cap_address_space() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(kib) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    else {
        return;
    };
    let limit = kib * 1024 + ADDRESS_SPACE_HEADROOM;
    let rlimit = rustix::process::Rlimit {
        current: Some(limit),
        maximum: rustix::process::getrlimit(rustix::process::Resource::As).maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::As, rlimit).unwrap();
}

/// Runs `f` and fails if it took longer than [`MAX_CASE_TIME`]. A panic inside fails the
/// property as it is; an allocation beyond the address-space cap aborts the test.
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() <= MAX_CASE_TIME,
        "{what}: took {:?}",
        started.elapsed()
    );
    out
}

// ---- inputs ---------------------------------------------------------------------------------

/// Numbers a hostile file puts where lengths, counts, offsets and KDF costs go.
const HUGE: &[&str] = &[
    "4294967295",
    "4294967296",
    "2147483648",
    "18446744073709551615",
    "9223372036854775807",
    "1073741824",
    "-1",
    "0",
    "1e308",
];

/// One change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    /// Overwrite 4 bytes with a little-endian `u32` (lengths in binary headers).
    PutU32(prop::sample::Index, u32),
    /// Replace the `n`th run of ASCII digits by a huge or odd number (lengths in JSON).
    HugeNumber(prop::sample::Index, prop::sample::Index),
    /// Repeat a slice many times (deep nesting, long arrays).
    Repeat(prop::sample::Index, usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use prop::sample::Index as I;
    prop_oneof![
        any::<I>().prop_map(Mutation::Truncate),
        (any::<I>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<I>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<I>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<I>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (
            any::<I>(),
            prop_oneof![Just(u32::MAX), Just(1 << 31), Just(1 << 24), any::<u32>()]
        )
            .prop_map(|(i, v)| Mutation::PutU32(i, v)),
        (any::<I>(), any::<I>()).prop_map(|(i, h)| Mutation::HugeNumber(i, h)),
        (any::<I>(), 1usize..16, 2u16..2000).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn apply(mut v: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: &prop::sample::Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Truncate(i) => v.truncate(at(i, v.len())),
        Mutation::FlipBit(i, b) => {
            if !v.is_empty() {
                let i = at(i, v.len());
                v[i] ^= 1 << b;
            }
        }
        Mutation::SetByte(i, b) => {
            if !v.is_empty() {
                let i = at(i, v.len());
                v[i] = *b;
            }
        }
        Mutation::Insert(i, bytes) => {
            let i = at(i, v.len() + 1);
            v.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = at(i, v.len());
            let end = (i + n).min(v.len());
            v.drain(i..end);
        }
        Mutation::PutU32(i, x) => {
            if v.len() >= 4 {
                let i = at(i, v.len() - 3);
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        Mutation::HugeNumber(i, h) => {
            let runs = digit_runs(&v);
            if !runs.is_empty() {
                let (s, e) = runs[at(i, runs.len())];
                let huge = HUGE[h.index(HUGE.len())].as_bytes();
                v.splice(s..e, huge.iter().copied());
            }
        }
        Mutation::Repeat(i, n, k) => {
            if !v.is_empty() {
                let s = at(i, v.len());
                let e = (s + n).min(v.len());
                let piece = v[s..e].to_vec();
                let copies: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * usize::from(*k))
                    .collect();
                v.splice(e..e, copies);
            }
        }
    }
    v
}

fn digit_runs(v: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if v[i].is_ascii_digit() {
            let s = i;
            while i < v.len() && v[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Random bytes, or a valid encoding with one to four mutations.
fn hostile(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        4 => prop::collection::vec(mutation(), 1..5).prop_map(move |ms| ms.iter().fold(valid.clone(), apply)),
    ]
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---- a small valid repository ---------------------------------------------------------------

const PW: &str = "hostile";

/// A repository in memory with one backed-up stream, and the plaintexts of its files.
struct World {
    backend: Arc<MemoryBackend>,
    key: Key,
    /// The blob part of the stream's pack (everything before its header).
    pack_blobs: Vec<u8>,
    pack_header: Vec<u8>,
    index: Vec<u8>,
    snapshot: Vec<u8>,
    tree: Vec<u8>,
    key_file: Vec<u8>,
    lock: Vec<u8>,
}

impl World {
    fn new() -> World {
        let backend = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..Default::default()
        };
        let repo = Repository::init(backend.clone(), PW, opts).unwrap();
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let summary = kstash_repo::backup_stream(
            &repo,
            &data[..],
            &StreamBackupOptions {
                filename: "dump.sql".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let only = |t: FileType| -> (Id, Vec<u8>) {
            let (name, _) = backend.list(t).unwrap().into_iter().next().unwrap();
            let id: Id = name.parse().unwrap();
            (id, backend.read(t, &name).unwrap())
        };
        let (index_id, _) = only(FileType::Index);
        let index = repo.load_unpacked(FileType::Index, &index_id).unwrap();
        let snapshot = repo
            .load_unpacked(FileType::Snapshot, &summary.snapshot_id)
            .unwrap();
        let tree = repo.load_blob(BlobType::Tree, &summary.tree_id).unwrap();
        let (pack_id, pack_bytes) = only(FileType::Pack);
        let tail: [u8; 4] = pack_bytes[pack_bytes.len() - 4..].try_into().unwrap();
        let (start, len) = pack::header_range(&pack_id, pack_bytes.len() as u64, tail).unwrap();
        let start = start as usize;
        let pack_header = repo.key().decrypt(&pack_bytes[start..start + len]).unwrap();
        let (_, key_file) = only(FileType::Key);
        let lock = kstash_repo::gojson::to_vec(&LockFile::for_this_process(true)).unwrap();
        World {
            key: repo.key().clone(),
            backend,
            pack_blobs: pack_bytes[..start].to_vec(),
            pack_header,
            index,
            snapshot,
            tree,
            key_file,
            lock,
        }
    }

    /// Opens the repository (its valid index loaded).
    fn open(&self) -> Repository {
        Repository::open(self.backend.clone(), PW).unwrap()
    }

    /// Stores `bytes` as a file of type `t` named after their hash; returns the id.
    fn put(&self, t: FileType, bytes: &[u8]) -> Id {
        let id = Id::hash(bytes);
        match self.backend.write(t, &id.to_hex(), bytes) {
            Ok(()) | Err(Error::AlreadyExists(_)) => id,
            Err(e) => panic!("{e}"),
        }
    }

    fn remove(&self, t: FileType, id: &Id) {
        let _ = self.backend.remove(t, &id.to_hex());
    }

    /// An unpacked file (index, snapshot, lock) as stored: compressed (v2) or not, encrypted.
    fn seal(&self, plain: &[u8], compressed: bool) -> Vec<u8> {
        seal_unpacked(&self.key, compressed.then_some(3), plain).unwrap()
    }
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(|| {
        let world = World::new();
        cap_address_space();
        world
    })
}

/// `err` names `what` (a file or blob id).
fn names(err: &Error, what: &str) -> bool {
    err.to_string().contains(what)
}

// ---- unpacked files: sealed, compressed, or raw ----------------------------------------------

/// An unpacked file's mutated plaintext, compressed or not, or its raw ciphertext mutated.
fn unpacked(valid: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, u8)> {
    (hostile(valid), 0u8..3)
}

fn sealed_or_raw(w: &World, plain: &[u8], how: u8) -> Vec<u8> {
    match how {
        0 => w.seal(plain, false),
        1 => w.seal(plain, true),
        // Storage access without the key: the bytes as they are.
        _ => plain.to_vec(),
    }
}

// ---- the checks, shared by the properties and the corpus replay -------------------------------

/// A pack made of the world's blobs and a hostile `header`: sealed with the repository's key
/// (`how` 0 or 1: the parser itself is reached) or as it is (2), then its length, or `tail` in
/// its place. Listing it is an error naming the pack, or blobs that read cleanly or fail naming
/// the pack or blob.
fn check_pack_header(header: &[u8], how: u8, tail: Option<u32>) -> Result<(), TestCaseError> {
    let w = world();
    let mut file = w.pack_blobs.clone();
    match how {
        0 | 1 => file.extend_from_slice(&w.key.encrypt(header)),
        _ => file.extend_from_slice(header),
    }
    let len = (file.len() - w.pack_blobs.len()) as u32;
    file.extend_from_slice(&tail.unwrap_or(len).to_le_bytes());
    let id = w.put(FileType::Pack, &file);
    let repo = w.open();
    let listed = bounded("list_pack", || repo.list_pack(&id));
    match listed {
        Err(e) => prop_assert!(names(&e, &id.to_hex()), "{e}"),
        Ok(blobs) => {
            // The listed blobs are then read as check and repair index would.
            repo.index_mut().add_pack(id, &blobs);
            for b in blobs.iter().take(64) {
                if let Err(e) = bounded("load_blob", || repo.load_blob(b.blob_type, &b.id)) {
                    let named =
                        names(&e, &id.to_hex()) || names(&e, &b.id.to_hex()) || names(&e, &pack_name(&id));
                    prop_assert!(named, "{e}");
                }
            }
        }
    }
    w.remove(FileType::Pack, &id);
    Ok(())
}

/// An index file of plaintext `plain` stored as [`sealed_or_raw`] `how`: skipped and named, or
/// the blobs it claims fail cleanly when read.
fn check_index_file(plain: &[u8], how: u8) -> Result<(), TestCaseError> {
    let w = world();
    let file = sealed_or_raw(w, plain, how);
    let id = w.put(FileType::Index, &file);
    let name = format!("index/{id}");
    let repo = w.open();
    match bounded("load index file", || {
        repo.load_json::<IndexFile>(FileType::Index, &id)
    }) {
        Err(e) => {
            prop_assert!(names(&e, &name), "{e}");
            prop_assert!(repo.damaged_index_files().iter().any(|(d, _)| *d == id));
        }
        Ok(index) => {
            // Whatever it claims, reading the blobs it lists fails cleanly.
            let mut fresh = kstash_repo::index::Index::new();
            fresh.add_file(&index);
            for p in index.packs.iter().take(8) {
                for b in p.blobs.iter().take(8) {
                    let loc = fresh.get(b.blob_type, &b.id).unwrap();
                    let data = repo.backend().read_range(
                        FileType::Pack,
                        &loc.pack.to_hex(),
                        u64::from(loc.offset),
                        loc.length as usize,
                    );
                    if let Ok(data) = data {
                        let r = bounded("decode_blob", || {
                            pack::decode_blob(
                                repo.key(),
                                &loc.pack,
                                b.blob_type,
                                &b.id,
                                &data,
                                loc.uncompressed_length,
                            )
                        });
                        if let Err(e) = r {
                            prop_assert!(names(&e, &loc.pack.to_hex()), "{e}");
                        }
                    }
                }
            }
        }
    }
    w.remove(FileType::Index, &id);
    Ok(())
}

/// A tree blob of plaintext `plain`, compressed or not, in a pack of its own: loading it is an
/// error naming it, or a tree whose names and subtrees can be followed.
fn check_tree_blob(plain: &[u8], compress: bool) -> Result<(), TestCaseError> {
    let w = world();
    let repo = w.open();
    let id = Id::hash(plain);
    let mut z = zstd::bulk::Compressor::new(3).unwrap();
    let blob = pack::encode_blob(&w.key, BlobType::Tree, id, plain, compress.then_some(&mut z)).unwrap();
    let mut pw = PackWriter::new(0);
    pw.add(&blob).unwrap();
    let finished = pw.finish(&w.key).unwrap();
    repo.upload_pack(&finished).unwrap();
    match bounded("load_tree", || repo.load_tree(&id)) {
        Err(e) => prop_assert!(names(&e, &id.to_hex()), "{e}"),
        Ok(tree) => {
            // What readers do next with a tree: look names up, follow subtrees.
            for node in tree.nodes.iter().take(64) {
                let _ = tree.find(&node.name);
                if let Some(sub) = node.subtree {
                    let _ = bounded("load subtree", || repo.load_tree(&sub));
                }
            }
        }
    }
    w.remove(FileType::Pack, &finished.id);
    Ok(())
}

/// A snapshot file of plaintext `plain` stored as [`sealed_or_raw`] `how`: an error naming it
/// (and listed as unreadable), or a snapshot whose tree reads cleanly or fails naming it.
fn check_snapshot_file(plain: &[u8], how: u8) -> Result<(), TestCaseError> {
    let w = world();
    let file = sealed_or_raw(w, plain, how);
    let id = w.put(FileType::Snapshot, &file);
    let repo = w.open();
    match bounded("load_snapshot", || repo.load_snapshot(&id)) {
        Err(e) => {
            prop_assert!(names(&e, &format!("snapshots/{id}")), "{e}");
            let (_, unreadable) = bounded("list snapshots", || repo.list_snapshots_lenient()).unwrap();
            prop_assert!(unreadable.iter().any(|(n, _)| *n == id.to_hex()));
        }
        Ok(sn) => {
            // Its tree may be anything: reading it fails cleanly.
            if let Err(e) = bounded("snapshot tree", || repo.load_tree(&sn.tree)) {
                prop_assert!(names(&e, &sn.tree.to_hex()), "{e}");
            }
        }
    }
    w.remove(FileType::Snapshot, &id);
    Ok(())
}

/// A lock file of plaintext `plain` stored as [`sealed_or_raw`] `how`: an error naming it, and
/// listing the locks still works.
fn check_lock_file(plain: &[u8], how: u8) -> Result<(), TestCaseError> {
    let w = world();
    let file = sealed_or_raw(w, plain, how);
    let id = w.put(FileType::Lock, &file);
    let repo = w.open();
    if let Err(e) = bounded("load lock", || repo.load_json::<LockFile>(FileType::Lock, &id)) {
        prop_assert!(names(&e, &format!("locks/{id}")), "{e}");
    }
    let locks = bounded("list_locks", || lock::list_locks(&repo));
    prop_assert!(locks.is_ok(), "{locks:?}");
    for l in locks.unwrap() {
        let _ = l.lock.is_stale();
        let _ = l.to_string();
    }
    w.remove(FileType::Lock, &id);
    Ok(())
}

/// A key file `file`, the only key of a repository: opening it (scrypt included) is quick, and
/// fails with a key, crypto or format error.
fn check_key_file(file: &[u8]) -> Result<(), TestCaseError> {
    let w = world();
    let kf: Result<KeyFile, _> = serde_json::from_slice(file);
    if let Ok(kf) = kf {
        let _ = bounded("open key file", || kf.open(PW));
    }
    // The whole open path: the hostile key is the only one.
    let backend = Arc::new(MemoryBackend::new());
    backend
        .write(
            FileType::Config,
            "",
            &w.backend.read(FileType::Config, "").unwrap(),
        )
        .unwrap();
    let name = Id::hash(file).to_hex();
    backend.write(FileType::Key, &name, file).unwrap();
    let opened = bounded("open repository", || Repository::open_without_index(backend, PW));
    if let Err(e) = opened {
        prop_assert!(
            matches!(
                e,
                Error::WrongPassword { .. }
                    | Error::Crypto { .. }
                    | Error::Mac { .. }
                    | Error::Format { .. }
                    | Error::Json { .. }
            ),
            "{e}"
        );
    }
    Ok(())
}

// ---- properties -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn a_hostile_pack_header_is_an_error_naming_the_pack(
        header in hostile(world().pack_header.clone()),
        how in 0u8..3,
        tail in prop_oneof![3 => Just(None), 1 => any::<u32>().prop_map(Some)],
    ) {
        check_pack_header(&header, how, tail)?;
    }

    #[test]
    fn a_hostile_index_file_is_skipped_and_named((plain, how) in unpacked(world().index.clone())) {
        check_index_file(&plain, how)?;
    }

    #[test]
    fn a_hostile_tree_blob_is_an_error_naming_the_tree(plain in hostile(world().tree.clone()), compress in any::<bool>()) {
        check_tree_blob(&plain, compress)?;
    }

    #[test]
    fn a_hostile_snapshot_file_is_an_error_naming_it((plain, how) in unpacked(world().snapshot.clone())) {
        check_snapshot_file(&plain, how)?;
    }

    #[test]
    fn a_hostile_lock_file_is_ignored_with_a_warning((plain, how) in unpacked(world().lock.clone())) {
        check_lock_file(&plain, how)?;
    }
}

proptest! {
    // Each case runs scrypt (with the cheap test parameters unless a mutation raised them).
    #![proptest_config(config(48))]

    #[test]
    fn a_hostile_key_file_is_refused_quickly(file in hostile(world().key_file.clone())) {
        check_key_file(&file)?;
    }
}

fn pack_name(id: &Id) -> String {
    format!("data/{}/{id}", &id.to_hex()[..2])
}

// ---- the seed corpus: hostile numbers that once (or would) have been trusted ------------------

#[test]
fn a_key_file_with_huge_scrypt_costs_is_refused_at_once() {
    let w = world();
    let valid: serde_json::Value = serde_json::from_slice(&w.key_file).unwrap();
    for (field, value) in [
        ("N", serde_json::json!(1u64 << 40)),
        ("N", serde_json::json!(1u64 << 62)),
        ("r", serde_json::json!(u32::MAX)),
        ("p", serde_json::json!(u32::MAX)),
        ("r", serde_json::json!(1u32 << 20)),
        ("p", serde_json::json!(1u32 << 20)),
    ] {
        let mut v = valid.clone();
        v[field] = value.clone();
        let kf: KeyFile = serde_json::from_value(v).unwrap();
        let err = bounded("huge kdf", || kf.open(PW)).unwrap_err();
        assert!(err.to_string().contains("scrypt"), "{field}={value}: {err}");
    }
}

#[test]
fn a_blob_claiming_four_gib_uncompressed_is_refused_without_allocating_them() {
    let w = world();
    let plain = b"small".repeat(100);
    let id = Id::hash(&plain);
    let mut z = zstd::bulk::Compressor::new(3).unwrap();
    let blob = pack::encode_blob(&w.key, BlobType::Data, id, &plain, Some(&mut z)).unwrap();
    assert!(blob.uncompressed_length.is_some());
    let pack_id = Id::hash(b"pack");
    for claimed in [u32::MAX, 1 << 31, 100 << 20] {
        let err = bounded("decode", || {
            pack::decode_blob(&w.key, &pack_id, BlobType::Data, &id, &blob.data, Some(claimed))
        })
        .unwrap_err();
        assert!(
            names(&err, &id.to_hex()) && names(&err, &pack_id.to_hex()),
            "{err}"
        );
    }
}

#[test]
fn an_index_entry_claiming_a_four_gib_blob_in_a_local_pack_reads_nothing_that_large() {
    let _capped = world();
    let dir = tempfile::tempdir().unwrap();
    let backend = kstash_repo::LocalBackend::new(dir.path());
    backend
        .write(FileType::Pack, &Id::hash(b"p").to_hex(), b"a short pack")
        .unwrap();
    let err = bounded("read_range", || {
        backend.read_range(FileType::Pack, &Id::hash(b"p").to_hex(), 0, u32::MAX as usize)
    })
    .unwrap_err();
    assert!(names(&err, &Id::hash(b"p").to_hex()), "{err}");
}

#[test]
fn a_tree_with_a_node_named_badly_is_an_error_naming_the_tree() {
    for json in [
        r#"{"nodes":[{"name":"\\","type":"file"}]}"#,
        r#"{"nodes":[{"name":"\\x","type":"file"}]}"#,
        r#"{"nodes":[{"name":"\\777","type":"file"}]}"#,
        r#"{"nodes":[{"name":"\\U0011ffff","type":"file"}]}"#,
        r#"{"nodes":[{"name":"a","type":"file","mtime":"2022-08-01T10:00:00+é:00"}]}"#,
    ] {
        let _ = Tree::from_blob(json.as_bytes());
    }
    let _ = Node::file("x", 0o644, Default::default(), 0, 0);
}

// ---- the checked-in corpus ------------------------------------------------------------------

/// The kinds of input, as the corpus's directory names, in the order they are replayed.
const KINDS: [&str; 6] = ["pack-header", "index", "tree", "snapshot", "lock", "key"];

/// `tests/hostile-corpus`: `<kind>/<name>`, one input per file (see its `README.md`).
fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile-corpus")
}

/// Runs one corpus input of `kind` through that kind's check in every way the properties may
/// store it: a pack header sealed and raw, with its true length and with lengths claiming 4 GiB
/// and nothing; an unpacked file sealed, sealed compressed and raw; a tree blob compressed or not.
fn replay(kind: &str, input: &[u8]) -> Result<(), TestCaseError> {
    match kind {
        "pack-header" => {
            for how in [0, 2] {
                for tail in [None, Some(u32::MAX), Some(0)] {
                    check_pack_header(input, how, tail)?;
                }
            }
        }
        "index" => (0..3).try_for_each(|how| check_index_file(input, how))?,
        "tree" => [false, true]
            .into_iter()
            .try_for_each(|compress| check_tree_blob(input, compress))?,
        "snapshot" => (0..3).try_for_each(|how| check_snapshot_file(input, how))?,
        "lock" => (0..3).try_for_each(|how| check_lock_file(input, how))?,
        "key" => check_key_file(input)?,
        other => return Err(TestCaseError::fail(format!("no check for corpus kind {other:?}"))),
    }
    Ok(())
}

/// The corpus files of `kind`, sorted by name.
fn corpus_files(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = corpus_dir().join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_input_of_the_checked_in_corpus_passes_its_property() {
    let _capped = world();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !entry.file_type().unwrap().is_dir() || KINDS.contains(&name.as_str()),
            "corpus directory {name:?} is not one of {KINDS:?}"
        );
    }
    for kind in KINDS {
        let files = corpus_files(kind);
        assert!(
            files.iter().any(|p| p.ends_with("valid")) && files.len() >= 8,
            "{kind}: the valid input and the hostile ones are checked in"
        );
        for path in files {
            let input = std::fs::read(&path).unwrap();
            if let Err(e) = replay(kind, &input) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}

/// Rewrites `tests/hostile-corpus` (run it by name with `--run-ignored only`; commit the result).
/// The world's random parts (times, host, pid, ids that hash ciphertext) are replaced by fixed
/// values, and the valid key file, which holds a random salt and ciphertext, is kept when the
/// checked-in one still opens with the test password. Not byte-stable: the engine places blobs
/// into packs in a random order, so the index and pack-header inputs come out in another order
/// each time (the checked-in files are the corpus).
#[test]
#[ignore = "rewrites the checked-in corpus"]
fn rewrite_the_hostile_corpus() {
    let w = world();
    let dir = corpus_dir();
    let kept_key = std::fs::read(dir.join("key/valid"))
        .ok()
        .filter(|k| serde_json::from_slice::<KeyFile>(k).is_ok_and(|kf| kf.open(PW).is_ok()));
    for (kind, inputs) in corpus::inputs(w, kept_key) {
        let kind_dir = dir.join(kind);
        let _ = std::fs::remove_dir_all(&kind_dir);
        std::fs::create_dir_all(&kind_dir).unwrap();
        for (name, bytes) in inputs {
            std::fs::write(kind_dir.join(name), bytes).unwrap();
        }
    }
}

/// The corpus's inputs: each kind's valid plaintext made deterministic, and hand-picked hostile
/// variants of it.
mod corpus {
    use super::{HUGE, KINDS, World, digit_runs};
    use kstash_repo::Id;
    use kstash_testsupport::data::noise;
    use serde_json::{Value, json};

    type Inputs = Vec<(String, Vec<u8>)>;

    /// `(kind, [(name, bytes)])` for every kind of [`KINDS`].
    pub(super) fn inputs(w: &World, kept_key: Option<Vec<u8>>) -> Vec<(&'static str, Inputs)> {
        let tree = normalized(&w.tree);
        let tree_id = Id::hash(&tree).to_hex();
        let mut snapshot: Value = serde_json::from_slice(&normalized(&w.snapshot)).unwrap();
        snapshot["tree"] = json!(tree_id);
        let mut index: Value = serde_json::from_slice(&normalized(&w.index)).unwrap();
        for (n, pack) in index["packs"].as_array_mut().unwrap().iter_mut().enumerate() {
            pack["id"] = json!(Id::hash(format!("corpus pack {n}").as_bytes()).to_hex());
            for blob in pack["blobs"].as_array_mut().unwrap() {
                if blob["type"] == "tree" {
                    blob["id"] = json!(tree_id);
                }
            }
        }
        let key = kept_key.unwrap_or_else(|| normalized(&w.key_file));
        let out = vec![
            ("pack-header", pack_header(&w.pack_header)),
            ("index", json_kind(&to_vec(&index), &index_edits())),
            ("tree", json_kind(&tree, &tree_edits())),
            ("snapshot", json_kind(&to_vec(&snapshot), &snapshot_edits())),
            ("lock", json_kind(&normalized(&w.lock), &lock_edits())),
            ("key", json_kind(&key, &key_edits())),
        ];
        assert_eq!(out.iter().map(|(k, _)| *k).collect::<Vec<_>>(), KINDS);
        out
    }

    fn to_vec(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    /// `json` with the values that differ from run to run (times, host, user, process) fixed.
    fn normalized(json: &[u8]) -> Vec<u8> {
        fn fix(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        match k.as_str() {
                            "time" | "mtime" | "atime" | "ctime" | "created" | "backup_start"
                            | "backup_end" => *v = json!("2024-01-02T03:04:05.123456789+01:00"),
                            "hostname" => *v = json!("corpus-host"),
                            "username" => *v = json!("corpus"),
                            "pid" => *v = json!(4242),
                            "uid" | "gid" => *v = json!(1000),
                            "inode" | "device_id" => *v = json!(7),
                            _ => fix(v),
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(fix),
                _ => {}
            }
        }
        let mut v: Value = serde_json::from_slice(json).unwrap();
        fix(&mut v);
        to_vec(&v)
    }

    /// What every kind gets: the valid input cut, flipped and padded, and bytes that are no
    /// encoding at all.
    fn common(valid: &[u8], seed: u64) -> Inputs {
        let mut flipped = valid.to_vec();
        flipped[0] ^= 0x80;
        let mut last_flipped = valid.to_vec();
        *last_flipped.last_mut().unwrap() ^= 0x01;
        vec![
            ("valid".into(), valid.to_vec()),
            ("empty".into(), Vec::new()),
            ("truncated-to-half".into(), valid[..valid.len() / 2].to_vec()),
            ("truncated-by-one-byte".into(), valid[..valid.len() - 1].to_vec()),
            ("first-byte-high-bit-flipped".into(), flipped),
            ("last-byte-low-bit-flipped".into(), last_flipped),
            ("random-512-bytes".into(), noise(512, seed)),
            ("zeros-4096".into(), vec![0; 4096]),
        ]
    }

    // -- pack headers --

    /// The length of the header entry starting with type byte `t` (compressed ones carry the
    /// uncompressed length too).
    fn entry_len(t: u8) -> usize {
        if t >= 2 { 41 } else { 37 }
    }

    fn pack_header(valid: &[u8]) -> Inputs {
        let mut out = common(valid, 1);
        let put = |at: usize, x: u32| {
            let mut v = valid.to_vec();
            v[at..at + 4].copy_from_slice(&x.to_le_bytes());
            v
        };
        out.push(("first-length-u32-max".into(), put(1, u32::MAX)));
        out.push(("first-length-zero".into(), put(1, 0)));
        out.push(("first-length-2-pow-31".into(), put(1, 1 << 31)));
        if valid[0] >= 2 {
            out.push(("first-uncompressed-length-u32-max".into(), put(5, u32::MAX)));
            out.push(("first-uncompressed-length-zero".into(), put(5, 0)));
        }
        let mut every = valid.to_vec();
        let mut at = 0;
        while at < every.len() {
            let next = at + entry_len(every[at]);
            every[at + 1..at + 5].copy_from_slice(&(u32::MAX / 2).to_le_bytes());
            at = next;
        }
        out.push(("every-length-half-u32-max".into(), every));
        for t in [4u8, 0xff] {
            let mut v = valid.to_vec();
            v[0] = t;
            out.push((format!("first-type-{t}"), v));
        }
        let mut uncompressed = valid.to_vec();
        uncompressed[0] &= 1;
        out.push(("first-type-compressed-to-plain".into(), uncompressed));
        out.push(("cut-inside-first-entry".into(), valid[..20].to_vec()));
        let first = &valid[..entry_len(valid[0])];
        out.push(("first-entry-500-times".into(), first.repeat(500)));
        out.push(("entry-and-a-stray-byte".into(), [first, &[0]].concat()));
        out
    }

    // -- JSON files --

    /// An edit of the valid JSON: a name and what it does.
    type Edit = (&'static str, fn(&mut Value));

    /// The common inputs, the syntax-level ones every JSON file gets, and `edits` of the valid
    /// value.
    fn json_kind(valid: &[u8], edits: &[Edit]) -> Inputs {
        let mut out = common(valid, valid.len() as u64);
        let text = String::from_utf8(valid.to_vec()).unwrap();
        let deep_arrays = "[".repeat(3000);
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(1000), "}".repeat(1000));
        out.extend([
            ("null".to_string(), b"null".to_vec()),
            ("an-array".into(), b"[]".to_vec()),
            ("an-empty-object".into(), b"{}".to_vec()),
            ("a-string".into(), br#""valid""#.to_vec()),
            ("arrays-nested-3000-deep".into(), deep_arrays.into_bytes()),
            ("objects-nested-1000-deep".into(), deep_objects.into_bytes()),
            ("invalid-utf8-inside".into(), {
                let mut v = valid.to_vec();
                let mid = text.find(":\"").map_or(v.len() / 2, |i| i + 2);
                v.splice(mid..mid, [0xff, 0xfe]);
                v
            }),
            ("valid-twice".into(), valid.repeat(2)),
            ("trailing-garbage".into(), [valid, b"}}]]"].concat()),
        ]);
        for huge in HUGE {
            let mut v = valid.to_vec();
            for (s, e) in digit_runs(valid).into_iter().rev() {
                v.splice(s..e, huge.bytes());
            }
            out.push((format!("every-number-{}", huge.replace('-', "minus-")), v));
        }
        let value: Value = serde_json::from_slice(valid).unwrap();
        for (name, edit) in edits {
            let mut v = value.clone();
            edit(&mut v);
            out.push(((*name).to_string(), to_vec(&v)));
        }
        out
    }

    /// The first element of the array at `v[key]`.
    fn first<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
        &mut v[key][0]
    }

    fn index_edits() -> Vec<Edit> {
        vec![
            ("blob-length-u32-max", |v| {
                first(first(v, "packs"), "blobs")["length"] = json!(u32::MAX)
            }),
            ("blob-offset-u32-max", |v| {
                first(first(v, "packs"), "blobs")["offset"] = json!(u32::MAX)
            }),
            ("blob-uncompressed-length-u32-max", |v| {
                first(first(v, "packs"), "blobs")["uncompressed_length"] = json!(u32::MAX)
            }),
            ("blob-length-negative", |v| {
                first(first(v, "packs"), "blobs")["length"] = json!(-1)
            }),
            ("blob-type-unknown", |v| {
                first(first(v, "packs"), "blobs")["type"] = json!("evil")
            }),
            ("blob-id-not-hex", |v| {
                first(first(v, "packs"), "blobs")["id"] = json!("zz")
            }),
            ("pack-id-short", |v| first(v, "packs")["id"] = json!("abcd")),
            ("blobs-is-null", |v| first(v, "packs")["blobs"] = Value::Null),
            ("pack-listed-100-times", |v| {
                let pack = first(v, "packs").clone();
                v["packs"] = Value::Array(vec![pack; 100]);
            }),
            ("supersedes-itself-and-garbage", |v| {
                v["supersedes"] = json!(["zz", 7, null])
            }),
        ]
    }

    fn tree_edits() -> Vec<Edit> {
        vec![
            ("node-named-dot-dot", |v| first(v, "nodes")["name"] = json!("..")),
            ("node-name-with-slash", |v| {
                first(v, "nodes")["name"] = json!("../../etc/passwd")
            }),
            ("node-name-empty", |v| first(v, "nodes")["name"] = json!("")),
            ("dir-without-subtree", |v| {
                first(v, "nodes")["type"] = json!("dir")
            }),
            ("subtree-missing-from-repository", |v| {
                let n = first(v, "nodes");
                n["type"] = json!("dir");
                n["subtree"] = json!(Id::hash(b"nowhere").to_hex());
            }),
            ("type-unknown", |v| first(v, "nodes")["type"] = json!("wormhole")),
            ("size-u64-max", |v| first(v, "nodes")["size"] = json!(u64::MAX)),
            ("mode-u64-max", |v| first(v, "nodes")["mode"] = json!(u64::MAX)),
            ("content-300-missing-blobs", |v| {
                let ids: Vec<Value> = (0..300u32)
                    .map(|i| json!(Id::hash(&i.to_le_bytes()).to_hex()))
                    .collect();
                first(v, "nodes")["content"] = Value::Array(ids);
            }),
            ("node-listed-100-times", |v| {
                let node = first(v, "nodes").clone();
                v["nodes"] = Value::Array(vec![node; 100]);
            }),
            ("time-out-of-range", |v| {
                first(v, "nodes")["mtime"] = json!("99999-01-01T00:00:00Z")
            }),
            ("nodes-is-an-object", |v| v["nodes"] = json!({"a": 1})),
        ]
    }

    fn snapshot_edits() -> Vec<Edit> {
        vec![
            ("tree-not-hex", |v| v["tree"] = json!("not a tree id")),
            ("tree-missing", |v| {
                v.as_object_mut().unwrap().remove("tree");
            }),
            ("tree-missing-from-repository", |v| {
                v["tree"] = json!(Id::hash(b"nowhere").to_hex())
            }),
            ("time-out-of-range", |v| {
                v["time"] = json!("99999-01-01T00:00:00Z")
            }),
            ("time-not-a-time", |v| v["time"] = json!(12)),
            ("paths-100-long-ones", |v| {
                v["paths"] = json!(vec!["/x".repeat(100); 100])
            }),
            ("parent-not-hex", |v| v["parent"] = json!("zz")),
            ("tags-not-strings", |v| v["tags"] = json!([1, null, {"a": []}])),
        ]
    }

    fn lock_edits() -> Vec<Edit> {
        vec![
            ("pid-negative", |v| v["pid"] = json!(-1)),
            ("pid-u64-max", |v| v["pid"] = json!(u64::MAX)),
            ("time-far-future", |v| v["time"] = json!("9999-12-31T23:59:59Z")),
            ("time-out-of-range", |v| {
                v["time"] = json!("99999-01-01T00:00:00Z")
            }),
            ("exclusive-not-a-bool", |v| v["exclusive"] = json!("yes")),
            ("hostname-huge", |v| v["hostname"] = json!("h".repeat(5000))),
        ]
    }

    fn key_edits() -> Vec<Edit> {
        vec![
            ("scrypt-n-2-pow-40", |v| v["N"] = json!(1u64 << 40)),
            ("scrypt-n-2-pow-62", |v| v["N"] = json!(1u64 << 62)),
            ("scrypt-n-u64-max", |v| v["N"] = json!(u64::MAX)),
            ("scrypt-n-zero", |v| v["N"] = json!(0)),
            ("scrypt-n-not-a-power-of-two", |v| v["N"] = json!(3)),
            ("scrypt-r-u32-max", |v| v["r"] = json!(u32::MAX)),
            ("scrypt-p-u32-max", |v| v["p"] = json!(u32::MAX)),
            ("scrypt-r-and-p-2-pow-20", |v| {
                v["r"] = json!(1 << 20);
                v["p"] = json!(1 << 20);
            }),
            ("scrypt-r-zero", |v| v["r"] = json!(0)),
            ("kdf-unknown", |v| v["kdf"] = json!("argon2id")),
            ("salt-not-base64", |v| v["salt"] = json!("!!!")),
            ("salt-empty", |v| v["salt"] = json!("")),
            ("data-empty", |v| v["data"] = json!("")),
            ("data-too-short-for-a-mac", |v| {
                v["data"] = json!("AAAAAAAAAAAAAAAAAAAA")
            }),
            ("data-one-bit-flipped", |v| {
                let data = v["data"].as_str().unwrap().to_string();
                let mut b = data.into_bytes();
                b[10] = if b[10] == b'A' { b'B' } else { b'A' };
                v["data"] = json!(String::from_utf8(b).unwrap());
            }),
        ]
    }
}
