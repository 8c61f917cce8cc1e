//! Every backend against its real server (a local directory, SeaweedFS for S3, fake-gcs-server,
//! Azurite, `rclone serve restic`): init, stream and tree backups, restore, dump, forget+prune
//! and check through kstash; then the real `restic` checks and restores what kstash wrote where
//! restic 0.14 can reach the server (local, S3, REST).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kstash_repo::archiver::{TreeBackupOptions, backup_tree};
use kstash_repo::forget::{ForgetOptions, KeepPolicy, forget};
use kstash_repo::lock::LockOptions;
use kstash_repo::prune::{PruneOptions, prune};
use kstash_repo::{
    Backend, CheckOptions, InitOptions, ReadDataSubset, Repository, RestoreOptions, StreamBackupOptions,
    backup_stream, check, dump_file, restore,
};
use kstash_storage::layout::StorageLayout;
use kstash_storage::{
    AzureLocation, GcsLocation, Location, RemoteKind, RestLocation, S3Credentials, S3Location, StorageConfig,
    create_bucket, open_backend, open_backend_creating_bucket,
};
use kstash_testsupport::data::{noise, text};
use kstash_testsupport::{Azurite, FakeGcs, Restic, ResticRest, SeaweedS3};

const PW: &str = "backend-test-password";

/// A small directory tree to back up: nested files, an empty file, a symlink.
fn source_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("etc/conf.d")).unwrap();
    std::fs::write(src.join("big.bin"), noise(3 << 20, 7)).unwrap();
    std::fs::write(src.join("etc/app.conf"), text(10_000, 8)).unwrap();
    std::fs::write(src.join("etc/conf.d/empty"), b"").unwrap();
    std::os::unix::fs::symlink("etc/app.conf", src.join("link")).unwrap();
    src
}

/// Every regular file and symlink under `root`, relative path → content (or link target).
fn tree_contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn stream_options() -> StreamBackupOptions {
    StreamBackupOptions {
        // Small packs, so the repository has many and prune has work to do.
        pack_size: 1 << 20,
        ..StreamBackupOptions::named("db.sql")
    }
}

/// What [`exercise_engine`] left in the repository, for restic to verify.
struct Written {
    /// The stream the latest stream snapshot holds.
    stream: Vec<u8>,
    /// The directory the tree snapshot holds.
    tree_src: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The whole engine on `backend`: init, two stream backups and a tree backup, dump and restore
/// compared with the source, forget (keep the last of each group) + prune, check --read-data.
fn exercise_engine(backend: Arc<dyn Backend>) -> Written {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::init(backend.clone(), PW, InitOptions::default()).unwrap();
    let Err(err) = Repository::init(backend.clone(), PW, InitOptions::default()) else {
        panic!("second init must fail")
    };
    assert!(err.to_string().contains("already"), "{err}");

    let first = [text(2 << 20, 1), noise(1 << 20, 2)].concat();
    let second = [text(2 << 20, 1), noise(1 << 20, 3)].concat();
    let s1 = backup_stream(&repo, &first[..], &stream_options()).unwrap();
    let s2 = backup_stream(&repo, &second[..], &stream_options()).unwrap();
    assert!(s2.bytes_read == second.len() as u64);

    let src = source_tree(tmp.path());
    let t = backup_tree(&repo, std::slice::from_ref(&src), &TreeBackupOptions::default()).unwrap();

    // Read everything back through a fresh handle, as a restore on another machine would.
    let repo = Repository::open(backend.clone(), PW).unwrap();
    for (id, data) in [(s1.snapshot_id, &first), (s2.snapshot_id, &second)] {
        let mut out = Vec::new();
        dump_file(&repo, &id.to_string(), "/db.sql", &mut out).unwrap();
        assert!(out == *data, "dump of {id} differs from what was backed up");
    }
    let target = tmp.path().join("restored");
    let spec = format!("{}:{}", t.snapshot_id, src.display());
    restore(&repo, &spec, &target, &RestoreOptions::default()).unwrap();
    assert_eq!(tree_contents(&target), tree_contents(&src));

    let forgotten = forget(
        &repo,
        &ForgetOptions {
            policy: KeepPolicy {
                last: 1,
                ..Default::default()
            },
            lock: Some(LockOptions::default()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        forgotten.removed,
        vec![s1.snapshot_id],
        "only the older stream snapshot goes"
    );
    let pruned = prune(&repo, &PruneOptions::default()).unwrap();
    assert!(
        pruned.packs_deleted > 0 || pruned.packs_repacked > 0,
        "prune did nothing: {pruned:?}"
    );

    let repo = Repository::open(backend, PW).unwrap();
    let report = check(
        &repo,
        &CheckOptions {
            read_data: Some(ReadDataSubset::All),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        report.errors.is_empty(),
        "check found errors: {:?}",
        report.errors
    );
    let mut out = Vec::new();
    dump_file(&repo, &s2.snapshot_id.to_string(), "/db.sql", &mut out).unwrap();
    assert!(out == second, "the kept snapshot changed after prune");
    Written {
        stream: second,
        tree_src: src,
        _tmp: tmp,
    }
}

/// The real restic checks every byte and restores both snapshots kstash wrote.
fn restic_reads(restic: &Restic, written: &Written) {
    let out = restic.output(&["check", "--read-data"]).unwrap();
    assert!(
        out.status.success(),
        "restic check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = restic
        .output(&["dump", "--path", "/db.sql", "latest", "/db.sql"])
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    assert!(dump.stdout == written.stream, "restic's dump differs");
    let target = tempfile::tempdir().unwrap();
    let src = written.tree_src.display().to_string();
    restic
        .run(&[
            "restore",
            "latest",
            "--path",
            &src,
            "--target",
            &target.path().display().to_string(),
        ])
        .unwrap();
    let restored = target.path().join(written.tree_src.strip_prefix("/").unwrap());
    assert_eq!(tree_contents(&restored), tree_contents(&written.tree_src));
}

fn s3_config(s3: &SeaweedS3, bucket: &str, prefix: &str) -> StorageConfig {
    StorageConfig::new(Location::S3(S3Location::new(
        &s3.endpoint,
        bucket,
        prefix,
        &s3.region,
        Some(S3Credentials {
            access_key_id: s3.access_key.clone(),
            secret_access_key: s3.secret_key.clone(),
            session_token: None,
        }),
        false,
        None,
    )))
}

#[test]
fn local_directory_round_trip_and_restic_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend = open_backend(&StorageConfig::new(Location::Local { root: root.clone() })).unwrap();
    let written = exercise_engine(backend);
    restic_reads(&Restic::new(root.display().to_string(), PW).unwrap(), &written);
}

#[test]
fn s3_seaweedfs_round_trip_and_restic_reads_it() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("kstash").unwrap();
    let config = s3_config(&s3, "kstash", "team-a/repo");
    let written = exercise_engine(open_backend(&config).unwrap());
    let keys = s3.list_keys("kstash", "team-a/repo/").unwrap();
    assert!(keys.iter().any(|k| k == "team-a/repo/config"), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("team-a/repo/data/")),
        "{keys:?}"
    );
    restic_reads(&s3.restic("kstash/team-a/repo", PW).unwrap(), &written);
}

#[test]
fn s3_multipart_upload_of_large_packs() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("big").unwrap();
    let mut config = s3_config(&s3, "big", "mp");
    // Parts of 5 MiB (S3's minimum) for anything from 6 MiB: a 16 MiB pack goes in 4 parts.
    config.tuning.multipart_threshold = 6 << 20;
    config.tuning.part_size = 5 << 20;
    let backend = open_backend(&config).unwrap();
    let repo = Repository::init(backend.clone(), PW, InitOptions::default()).unwrap();
    // Over 32 MiB: blobs are spread over two open packs at random, so one of them fills.
    let data = noise(36 << 20, 11);
    let opts = StreamBackupOptions {
        pack_size: 16 << 20,
        ..StreamBackupOptions::named("big.bin")
    };
    let s = backup_stream(&repo, &data[..], &opts).unwrap();
    let packs = backend.list(kstash_repo::FileType::Pack).unwrap();
    assert!(
        packs.iter().any(|(_, size)| *size >= 16 << 20),
        "no pack above the threshold: {packs:?}"
    );
    let mut out = Vec::new();
    dump_file(&repo, &s.snapshot_id.to_string(), "/big.bin", &mut out).unwrap();
    assert!(out == data);
    let out = s.snapshot_id.to_string();
    let restic = s3.restic("big/mp", PW).unwrap();
    let dump = restic.output(&["dump", &out, "/big.bin"]).unwrap();
    assert!(
        dump.status.success() && dump.stdout == data,
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
}

#[test]
fn gcs_fake_server_round_trip() {
    let gcs = FakeGcs::start().unwrap();
    gcs.create_bucket("kstash-gcs").unwrap();
    let config = StorageConfig::new(Location::Gcs(GcsLocation {
        bucket: "kstash-gcs".into(),
        prefix: "demo/repo".into(),
        service_account_json: None,
        project_id: None,
        endpoint: Some(gcs.endpoint.clone()),
    }));
    exercise_engine(open_backend(&config).unwrap());
    assert!(
        gcs.download_object("kstash-gcs", "demo/repo/config")
            .unwrap()
            .is_some()
    );
}

#[test]
fn azure_azurite_round_trip() {
    let az = Azurite::start().unwrap();
    az.create_container("kstash-az").unwrap();
    let config = StorageConfig::new(Location::Azure(AzureLocation {
        account: az.account.clone(),
        container: "kstash-az".into(),
        prefix: "demo/repo".into(),
        account_key: Some(az.key.clone()),
        endpoint: Some(az.blob_endpoint.clone()),
    }));
    exercise_engine(open_backend(&config).unwrap());
}

#[test]
fn rest_server_round_trip_with_basic_auth_and_restic_reads_it() {
    let server = ResticRest::start_with_auth("kstash", "rest-secret").unwrap();
    let mut location = RestLocation::parse("test", "url", &format!("{}/team-a", server.url)).unwrap();
    location.username = Some("kstash".into());
    location.password = Some("rest-secret".into());
    let config = StorageConfig::new(Location::Rest(location.clone()));
    let backend = open_backend(&config).unwrap();
    backend.create().unwrap();
    let written = exercise_engine(backend);
    restic_reads(&server.restic("team-a", PW).unwrap(), &written);

    // The wrong password is refused with an authentication error naming the server.
    location.password = Some("wrong".into());
    let bad = open_backend(&StorageConfig::new(Location::Rest(location))).unwrap();
    let Err(err) = Repository::open(bad, PW) else {
        panic!("wrong REST password must fail")
    };
    let msg = err.to_string();
    assert!(
        msg.contains("access denied") && msg.contains("rest:http://127.0.0.1"),
        "{msg}"
    );
}

#[test]
fn azure_and_gcs_refusals_say_why() {
    let az = Azurite::start().unwrap();
    az.create_container("exists").unwrap();
    let azure = |container: &str, key: &str| {
        StorageConfig::new(Location::Azure(AzureLocation {
            account: az.account.clone(),
            container: container.into(),
            prefix: "p".into(),
            account_key: Some(key.into()),
            endpoint: Some(az.blob_endpoint.clone()),
        }))
    };
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let e = open_backend(&azure("exists", wrong_key)).err().unwrap();
    assert_eq!(e.remote_kind(), Some(RemoteKind::Auth), "{e}");
    let e = open_backend(&azure("missing", &az.key)).err().unwrap();
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");

    let gcs = FakeGcs::start().unwrap();
    let e = open_backend(&StorageConfig::new(Location::Gcs(GcsLocation {
        bucket: "missing".into(),
        prefix: "p".into(),
        service_account_json: None,
        project_id: None,
        endpoint: Some(gcs.endpoint.clone()),
    })))
    .err()
    .unwrap();
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");
}

/// `kstash repo init` into a bucket or container that does not exist, as `restic init` does:
/// a BackupStorage initialised there first still refuses (KubeStash expects the bucket), then
/// the repository init creates it, the repository takes a backup and gives it back, and a
/// second open finds the bucket there and creates nothing.
fn repo_init_creates_the_missing_bucket(config: &StorageConfig, created: &str) {
    let e = StorageLayout::new(config.clone())
        .unwrap()
        .initialize("v1")
        .unwrap_err();
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");
    assert!(e.to_string().contains("does not exist (create it first)"), "{e}");
    let e = open_backend(config).err().unwrap();
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");

    let (backend, what) = open_backend_creating_bucket(config).unwrap();
    assert_eq!(what.as_deref(), Some(created));
    let repo = Repository::init(backend, PW, InitOptions::default()).unwrap();
    let data = [text(1 << 20, 21), noise(1 << 20, 22)].concat();
    let s = backup_stream(&repo, &data[..], &stream_options()).unwrap();

    let (backend, what) = open_backend_creating_bucket(config).unwrap();
    assert_eq!(what, None, "the bucket exists now");
    let repo = Repository::open(backend, PW).unwrap();
    let snapshots = repo.list_snapshots().unwrap();
    assert_eq!(snapshots.len(), 1);
    let mut out = Vec::new();
    dump_file(&repo, &s.snapshot_id.to_string(), "/db.sql", &mut out).unwrap();
    assert!(out == data, "dump differs from what was backed up");
}

#[test]
fn s3_repo_init_creates_a_missing_bucket_and_a_backup_storage_still_refuses() {
    let s3 = SeaweedS3::start().unwrap();
    let config = s3_config(&s3, "made-by-init", "team/repo");
    repo_init_creates_the_missing_bucket(&config, "bucket made-by-init");
    let snapshots = s3
        .restic("made-by-init/team/repo", PW)
        .unwrap()
        .output(&["snapshots", "--json"])
        .unwrap();
    assert!(
        snapshots.status.success(),
        "{}",
        String::from_utf8_lossy(&snapshots.stderr)
    );
}

#[test]
fn gcs_repo_init_creates_a_missing_bucket_and_a_backup_storage_still_refuses() {
    let gcs = FakeGcs::start().unwrap();
    let config = StorageConfig::new(Location::Gcs(GcsLocation {
        bucket: "made-by-init".into(),
        prefix: "team/repo".into(),
        service_account_json: None,
        project_id: None,
        endpoint: Some(gcs.endpoint.clone()),
    }));
    repo_init_creates_the_missing_bucket(&config, "bucket made-by-init");
    assert!(
        gcs.download_object("made-by-init", "team/repo/config")
            .unwrap()
            .is_some()
    );
}

#[test]
fn azure_repo_init_creates_a_missing_container_and_a_backup_storage_still_refuses() {
    let az = Azurite::start().unwrap();
    let config = StorageConfig::new(Location::Azure(AzureLocation {
        account: az.account.clone(),
        container: "made-by-init".into(),
        prefix: "team/repo".into(),
        account_key: Some(az.key.clone()),
        endpoint: Some(az.blob_endpoint.clone()),
    }));
    repo_init_creates_the_missing_bucket(&config, "container made-by-init");
}

#[test]
fn creating_a_bucket_with_refused_credentials_says_access_denied() {
    let s3 = SeaweedS3::start().unwrap();
    let mut config = s3_config(&s3, "never-made", "r");
    if let Location::S3(l) = &mut config.location {
        l.credentials.as_mut().unwrap().secret_access_key = "wrong".into();
    }
    let e = create_bucket(&config).unwrap_err();
    assert_eq!(e.remote_kind(), Some(RemoteKind::Auth), "{e}");
    assert!(e.to_string().contains("never-made"), "{e}");
    assert!(
        s3.list_keys("never-made", "").is_err(),
        "the bucket must not exist"
    );
}
