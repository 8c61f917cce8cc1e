//! The KubeStash layout on a real S3 server (SeaweedFS): initialisation, Repository and Snapshot
//! copies, a component's restic repository, sizing, wiping, and the reasons of refusals.

use kstash_api::storage::{Repository, RepositorySpec, Snapshot, SnapshotSpec};
use kstash_storage::layout::{InitOutcome, StorageLayout, component_path};
use kstash_storage::{Location, RemoteKind, S3Credentials, S3Location, StorageConfig, open_backend};
use kstash_testsupport::SeaweedS3;

fn layout(s3: &SeaweedS3, bucket: &str, prefix: &str, secret: &str) -> StorageLayout {
    layout_as(s3, &s3.access_key, secret, bucket, prefix)
}

fn layout_as(s3: &SeaweedS3, access_key: &str, secret: &str, bucket: &str, prefix: &str) -> StorageLayout {
    let creds = S3Credentials {
        access_key_id: access_key.to_string(),
        secret_access_key: secret.to_string(),
        session_token: None,
    };
    let mut config = StorageConfig::new(Location::S3(S3Location::new(
        &s3.endpoint,
        bucket,
        prefix,
        &s3.region,
        Some(creds),
        false,
        None,
    )));
    config.tuning.retries = 1;
    StorageLayout::new(config).unwrap()
}

fn repo(name: &str, path: &str) -> Repository {
    let mut r = Repository::new(
        name,
        RepositorySpec {
            path: path.into(),
            ..Default::default()
        },
    );
    r.metadata.namespace = Some("demo".into());
    r
}

fn snapshot(name: &str) -> Snapshot {
    Snapshot::new(
        name,
        SnapshotSpec {
            repository: "pg".into(),
            session: "frequent".into(),
            version: "v1".into(),
            ..Default::default()
        },
    )
}

#[test]
fn layout_on_s3_round_trips_sizes_and_wipes() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("kstash-bs").unwrap();
    let l = layout(&s3, "kstash-bs", "/kubestash/", &s3.secret_key);

    assert_eq!(l.initialize("v0.1.0").unwrap(), InitOutcome::Created);
    assert_eq!(l.initialize("v0.1.0").unwrap(), InitOutcome::AlreadyInitialized);
    let meta = l.read_metadata().unwrap().unwrap();
    assert_eq!(meta.operator_version, "v0.1.0");
    assert_eq!(
        s3.list_keys("kstash-bs", "").unwrap(),
        ["kubestash/metadata.yaml"],
        "only metadata.yaml is left (the probe is deleted)"
    );

    for (name, path) in [
        ("pg", "team-a/postgres"),
        ("pg2", "team-a/postgres-2"),
        ("m", "mysql"),
    ] {
        l.write_repository(&repo(name, path)).unwrap();
    }
    l.write_snapshot("team-a/postgres", &snapshot("pg-frequent-1"))
        .unwrap();
    l.write_snapshot("team-a/postgres-2", &snapshot("pg2-frequent-1"))
        .unwrap();

    // A component repository through the restic engine.
    let component = l.component_config("team-a/postgres", "frequent", "dump").unwrap();
    assert_eq!(
        component.display(),
        format!(
            "s3:{}/kstash-bs/kubestash/team-a/postgres/{}",
            s3.endpoint,
            component_path("frequent", "dump")
        )
    );
    let backend = open_backend(&component).unwrap();
    kstash_repo::Repository::init(backend, "pw", kstash_repo::InitOptions::default()).unwrap();
    assert!(
        s3.list_keys(
            "kstash-bs",
            "kubestash/team-a/postgres/repository/v1/frequent/dump/"
        )
        .unwrap()
        .iter()
        .any(|k| k.ends_with("/config")),
        "the restic repository is in its component directory"
    );

    let listed = l.list_repositories().unwrap();
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);
    let paths: Vec<_> = listed.repositories.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["mysql", "team-a/postgres", "team-a/postgres-2"]);
    let pg = &listed.repositories[1];
    assert_eq!(pg.repository.metadata.name.as_deref(), Some("pg"));
    assert_eq!(pg.snapshots, ["pg-frequent-1"]);
    let size = l.repository_size("team-a/postgres").unwrap();
    assert!(size > 0);
    assert_eq!(pg.size, size);
    assert_eq!(l.repository_size("team-a/postgres-2").unwrap(), 0);

    let snaps = l.list_snapshots("team-a/postgres").unwrap();
    assert_eq!(snaps.snapshots.len(), 1);
    assert_eq!(snaps.snapshots[0].metadata.name.as_deref(), Some("pg-frequent-1"));

    let before = s3
        .list_keys("kstash-bs", "kubestash/team-a/postgres/")
        .unwrap()
        .len() as u64;
    assert_eq!(l.wipe_repository("team-a/postgres").unwrap(), before);
    assert!(
        s3.list_keys("kstash-bs", "kubestash/team-a/postgres/")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s3.list_keys("kstash-bs", "kubestash/team-a/postgres-2/").unwrap(),
        [
            "kubestash/team-a/postgres-2/repository.yaml",
            "kubestash/team-a/postgres-2/snapshots/pg2-frequent-1.yaml"
        ],
        "a sibling sharing the name's beginning is untouched"
    );
    assert_eq!(l.list_repositories().unwrap().repositories.len(), 2);

    // Another prefix in the same bucket is not part of this storage.
    s3.put_object("kstash-bs", "elsewhere/keep", b"x").unwrap();
    assert_eq!(l.wipe_out().unwrap(), 4);
    assert_eq!(s3.list_keys("kstash-bs", "").unwrap(), ["elsewhere/keep"]);
}

#[test]
fn layout_initialize_says_bucket_missing_or_credentials_refused() {
    let s3 = SeaweedS3::start().unwrap();
    let e = layout(&s3, "no-such-bucket", "p", &s3.secret_key)
        .initialize("v1")
        .unwrap_err();
    eprintln!("missing bucket: {e}");
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    // A read says the same, not "no metadata.yaml".
    let e = layout(&s3, "other-missing-bucket", "p", &s3.secret_key)
        .read_metadata()
        .unwrap_err();
    eprintln!("missing bucket, read: {e}");
    assert_eq!(e.remote_kind(), Some(RemoteKind::BucketMissing), "{e}");
    // SeaweedFS creates a missing bucket on PutObject (AWS and MinIO answer NoSuchBucket), which
    // is why initialize lists before its write probe.
    assert!(
        s3.list_keys("no-such-bucket", "").is_err(),
        "initialize must not create the bucket"
    );

    s3.create_bucket("kstash-bs").unwrap();
    let e = layout(&s3, "kstash-bs", "p", "wrong-secret")
        .initialize("v1")
        .unwrap_err();
    eprintln!("wrong credentials: {e}");
    assert_eq!(e.remote_kind(), Some(RemoteKind::Auth), "{e}");
    assert!(e.to_string().contains("access denied"), "{e}");
    let e = layout_as(&s3, "unknown-key", &s3.secret_key, "kstash-bs", "p")
        .initialize("v1")
        .unwrap_err();
    eprintln!("unknown access key: {e}");
    assert_eq!(e.remote_kind(), Some(RemoteKind::Auth), "{e}");
    assert!(s3.list_keys("kstash-bs", "").unwrap().is_empty());
}
