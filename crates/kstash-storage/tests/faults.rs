//! Storage servers that fail some requests (a fault-injecting proxy in front of the real
//! SeaweedFS, fake-gcs-server, Azurite and rclone REST server): transient faults end in a
//! successful retry; a storage that stays broken ends in a clear error and never in a
//! snapshot that check rejects.

use std::sync::Arc;

use kstash_repo::{
    Backend, CheckOptions, FileType, InitOptions, ReadDataSubset, Repository, StreamBackupOptions,
    backup_stream, check, dump_file,
};
use kstash_storage::{
    AzureLocation, GcsLocation, Location, RestLocation, S3Credentials, S3Location, StorageConfig, Tuning,
    open_backend,
};
use kstash_testsupport::data::noise;
use kstash_testsupport::{Azurite, FakeGcs, Fault, FaultPlan, FaultProxy, ResticRest, SeaweedS3};

const PW: &str = "fault-test-password";

/// Fast retries, so a test with many injected faults stays short.
fn quick_retries() -> Tuning {
    Tuning {
        retries: 8,
        ..Tuning::default()
    }
}

fn s3_through(proxy: &FaultProxy, s3: &SeaweedS3, bucket: &str) -> StorageConfig {
    StorageConfig {
        location: Location::S3(S3Location::new(
            proxy.url(),
            bucket,
            "repo",
            &s3.region,
            Some(S3Credentials {
                access_key_id: s3.access_key.clone(),
                secret_access_key: s3.secret_key.clone(),
                session_token: None,
            }),
            false,
            None,
        )),
        tuning: quick_retries(),
    }
}

fn small_packs(name: &str) -> StreamBackupOptions {
    StreamBackupOptions {
        pack_size: 512 * 1024,
        ..StreamBackupOptions::named(name)
    }
}

/// Back up `data`, read it back and check every byte, all through `backend`.
fn backup_dump_check(backend: Arc<dyn Backend>, data: &[u8]) {
    let repo = match Repository::open(backend.clone(), PW) {
        Ok(r) => r,
        Err(_) => Repository::init(backend.clone(), PW, InitOptions::default()).unwrap(),
    };
    let s = backup_stream(&repo, data, &small_packs("data.bin")).unwrap();
    let repo = Repository::open(backend, PW).unwrap();
    let mut out = Vec::new();
    dump_file(&repo, &s.snapshot_id.to_string(), "/data.bin", &mut out).unwrap();
    assert!(out == data, "restored bytes differ");
    assert_clean(&repo);
}

fn assert_clean(repo: &Repository) {
    let report = check(
        repo,
        &CheckOptions {
            read_data: Some(ReadDataSubset::All),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.errors.is_empty(), "check: {:?}", report.errors);
}

#[test]
fn s3_transient_faults_of_every_kind_are_retried() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("flaky").unwrap();
    let proxy = FaultProxy::start(&s3.endpoint, FaultPlan::none()).unwrap();
    let backend = open_backend(&s3_through(&proxy, &s3, "flaky")).unwrap();
    Repository::init(backend.clone(), PW, InitOptions::default()).unwrap();
    for (i, fault) in [
        Fault::ServiceUnavailable,
        Fault::InternalErrorAfterForward,
        Fault::ResetConnection,
        Fault::TruncateResponse,
    ]
    .into_iter()
    .enumerate()
    {
        let before = proxy.faults_injected();
        proxy.set_plan(FaultPlan::every_nth(4, fault));
        backup_dump_check(backend.clone(), &noise(3 << 20, i as u64 + 1));
        assert!(
            proxy.faults_injected() > before + 3,
            "{fault:?}: too few faults injected to mean anything"
        );
    }
    // Reads of pack data cut short in the middle are retried too.
    proxy.set_plan(
        FaultPlan::every_nth(2, Fault::TruncateResponse)
            .only_method("GET")
            .only_path_containing("/data/"),
    );
    let repo = Repository::open(backend, PW).unwrap();
    assert_clean(&repo);
    assert!(proxy.faults_injected() > 0);
}

#[test]
fn s3_that_stays_broken_fails_clearly_and_leaves_no_half_written_snapshot() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("broken").unwrap();
    let proxy = FaultProxy::start(&s3.endpoint, FaultPlan::none()).unwrap();
    let mut config = s3_through(&proxy, &s3, "broken");
    config.tuning.retries = 2;
    let backend = open_backend(&config).unwrap();
    let repo = Repository::init(backend.clone(), PW, InitOptions::default()).unwrap();
    let first = backup_stream(&repo, &noise(1 << 20, 1)[..], &small_packs("a.bin")).unwrap();

    // Pack uploads start failing for good in the middle of the next backup.
    proxy.set_plan(
        FaultPlan::always(Fault::ServiceUnavailable)
            .only_method("PUT")
            .only_path_containing("/data/"),
    );
    let err = backup_stream(&repo, &noise(4 << 20, 2)[..], &small_packs("b.bin"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kept failing") && err.contains("s3:http://127.0.0.1") && err.contains("data/"),
        "{err}"
    );

    // Uploads of the snapshot itself failing: the data is there, the snapshot is not.
    proxy.set_plan(
        FaultPlan::always(Fault::ResetConnection)
            .only_method("PUT")
            .only_path_containing("/snapshots/"),
    );
    let err = backup_stream(&repo, &noise(1 << 20, 3)[..], &small_packs("c.bin"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("snapshots/"), "{err}");

    proxy.set_plan(FaultPlan::none());
    let repo = Repository::open(backend.clone(), PW).unwrap();
    let snapshots = repo.list_snapshots().unwrap();
    assert_eq!(snapshots.len(), 1, "only the first backup may have a snapshot");
    assert_eq!(snapshots[0].id, first.snapshot_id);
    assert_clean(&repo);
    // And the storage works again once the server does.
    backup_dump_check(backend, &noise(2 << 20, 4));
}

#[test]
fn rest_server_faults_are_retried_and_persistent_ones_reported() {
    let server = ResticRest::start().unwrap();
    let proxy = FaultProxy::start(&server.url, FaultPlan::every_nth(3, Fault::ServiceUnavailable)).unwrap();
    let location = RestLocation::parse("test", "url", &format!("{}/flaky", proxy.url())).unwrap();
    let config = StorageConfig {
        location: Location::Rest(location),
        tuning: quick_retries(),
    };
    let backend = open_backend(&config).unwrap();
    Repository::init(backend.clone(), PW, InitOptions::default()).unwrap();
    backup_dump_check(backend.clone(), &noise(2 << 20, 5));
    proxy.set_plan(FaultPlan::every_nth(3, Fault::ResetConnection));
    backup_dump_check(backend.clone(), &noise(2 << 20, 6));
    assert!(proxy.faults_injected() > 4);

    proxy.set_plan(FaultPlan::always(Fault::ServiceUnavailable));
    let mut impatient = config.clone();
    impatient.tuning.retries = 2;
    let err = open_backend(&impatient)
        .unwrap()
        .read(FileType::Config, "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kept failing") && err.contains("503"), "{err}");
}

#[test]
fn gcs_and_azure_faults_are_retried() {
    let gcs = FakeGcs::start().unwrap();
    gcs.create_bucket("flaky-gcs").unwrap();
    let gproxy =
        FaultProxy::start(&gcs.endpoint, FaultPlan::every_nth(4, Fault::ServiceUnavailable)).unwrap();
    let gconfig = StorageConfig {
        location: Location::Gcs(GcsLocation {
            bucket: "flaky-gcs".into(),
            prefix: "repo".into(),
            service_account_json: None,
            project_id: None,
            endpoint: Some(gproxy.url().to_string()),
        }),
        tuning: quick_retries(),
    };
    backup_dump_check(open_backend(&gconfig).unwrap(), &noise(2 << 20, 7));
    assert!(gproxy.faults_injected() > 2);

    let az = Azurite::start().unwrap();
    az.create_container("flaky-az").unwrap();
    let upstream = az
        .blob_endpoint
        .trim_end_matches(&format!("/{}", az.account))
        .to_string();
    let aproxy = FaultProxy::start(&upstream, FaultPlan::every_nth(4, Fault::ResetConnection)).unwrap();
    let aconfig = StorageConfig {
        location: Location::Azure(AzureLocation {
            account: az.account.clone(),
            container: "flaky-az".into(),
            prefix: "repo".into(),
            account_key: Some(az.key.clone()),
            endpoint: Some(format!("{}/{}", aproxy.url(), az.account)),
        }),
        tuning: quick_retries(),
    };
    backup_dump_check(open_backend(&aconfig).unwrap(), &noise(2 << 20, 8));
    assert!(aproxy.faults_injected() > 2);
}
