//! Smoke tests: start every server the suite uses and do one real client round trip against it.
//! If one of these fails, run `scripts/setup` first; the error shows the tail of the server log.

use std::path::Path;

use kstash_testsupport::http;
use kstash_testsupport::python::run_python;
use kstash_testsupport::{
    Azurite, Elasticsearch, FakeGcs, MariaDb, Postgres, Pushgateway, Redis, Resp, Restic, ResticRest, Result,
    SeaweedS3, ZooKeeper,
};

const RESTIC_PASSWORD: &str = "smoke-test-password";

#[test]
fn postgres_create_insert_select() -> Result<()> {
    let pg = Postgres::start()?;

    pg.psql("create table backups (id int primary key, name text)");
    pg.psql("insert into backups values (1, 'daily'), (2, 'weekly')");

    assert_eq!(
        pg.psql("select id, name from backups order by id"),
        "1|daily\n2|weekly"
    );
    assert!(pg.psql("select version()").starts_with("PostgreSQL "));
    Ok(())
}

#[test]
fn mariadb_create_insert_select() -> Result<()> {
    let db = MariaDb::start()?;

    db.sql("create database shop");
    db.sql("create table shop.orders (id int primary key, item varchar(20))");
    db.sql("insert into shop.orders values (1, 'disk'), (2, 'tape')");

    assert_eq!(
        db.sql("select id, item from shop.orders order by id"),
        "1\tdisk\n2\ttape"
    );
    assert!(db.sql("select version()").contains("MariaDB"));
    Ok(())
}

#[test]
fn redis_set_get_over_resp() -> Result<()> {
    let redis = Redis::start()?;

    assert_eq!(
        redis.command(&["SET", "greeting", "hello redis"])?,
        Resp::Simple("OK".into())
    );

    assert_eq!(
        redis.command(&["GET", "greeting"])?,
        Resp::Bulk(Some(b"hello redis".to_vec()))
    );
    assert_eq!(redis.command(&["GET", "missing"])?, Resp::Bulk(None));
    assert_eq!(redis.command(&["DBSIZE"])?, Resp::Integer(1));
    Ok(())
}

#[test]
fn zookeeper_four_letter_words_and_zkcli() -> Result<()> {
    let zk = ZooKeeper::start()?;

    assert_eq!(zk.four_letter_word("ruok")?, "imok");
    let srvr = zk.four_letter_word("srvr")?;
    assert!(srvr.contains("Mode: standalone"), "srvr answered:\n{srvr}");

    zk.cli(&["create", "/kstash-smoke", "hello-zk"])?;
    let get = zk.cli(&["get", "/kstash-smoke"])?;
    assert_eq!(get.lines().last(), Some("hello-zk"), "zkCli get printed:\n{get}");
    Ok(())
}

#[test]
fn s3_boto3_put_get_and_restic_repository() -> Result<()> {
    let s3 = SeaweedS3::start()?;
    s3.create_bucket("smoke")?;

    let env = [
        ("S3_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ("AWS_DEFAULT_REGION", s3.region.as_str()),
    ];
    let boto3_put_then_get = r#"
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
s3.put_object(Bucket="smoke", Key="dir/greeting.txt", Body=b"hello from boto3")
print(s3.get_object(Bucket="smoke", Key="dir/greeting.txt")["Body"].read().decode())
"#;
    assert_eq!(
        run_python(boto3_put_then_get, &[], &env)?.trim(),
        "hello from boto3"
    );
    // The crate's own signed client sees what boto3 wrote.
    assert_eq!(
        s3.get_object("smoke", "dir/greeting.txt")?,
        Some(b"hello from boto3".to_vec())
    );

    restic_init_backup_check_restore(&s3.restic("smoke/restic-repo", RESTIC_PASSWORD)?)?;
    assert!(
        s3.list_keys("smoke", "restic-repo/")?
            .contains(&"restic-repo/config".to_owned())
    );
    Ok(())
}

#[test]
fn azurite_put_get_with_azure_sdk() -> Result<()> {
    let azurite = Azurite::start()?;

    let azure_put_then_get = r#"
import os
from azure.storage.blob import BlobServiceClient
service = BlobServiceClient.from_connection_string(os.environ["AZURE_CONNECTION_STRING"])
container = service.create_container("smoke")
container.upload_blob("dir/greeting.txt", b"hello from azurite")
print(container.download_blob("dir/greeting.txt").readall().decode())
print(",".join(b.name for b in container.list_blobs()))
"#;
    let out = run_python(
        azure_put_then_get,
        &[],
        &[("AZURE_CONNECTION_STRING", &azurite.connection_string())],
    )?;

    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hello from azurite", "dir/greeting.txt"]
    );
    Ok(())
}

#[test]
fn fake_gcs_bucket_upload_download() -> Result<()> {
    let gcs = FakeGcs::start()?;

    gcs.create_bucket("smoke")?;
    gcs.upload_object("smoke", "dir/greeting.txt", b"hello from gcs")?;

    assert_eq!(
        gcs.download_object("smoke", "dir/greeting.txt")?,
        Some(b"hello from gcs".to_vec())
    );
    assert_eq!(gcs.download_object("smoke", "missing.txt")?, None);
    let listing =
        json(&http::get(&format!("{}/storage/v1/b/smoke/o", gcs.endpoint))?.ensure_success("list")?);
    assert_eq!(listing["items"][0]["name"], "dir/greeting.txt");
    assert_eq!(listing["items"][0]["size"], "14");
    Ok(())
}

#[test]
fn rclone_rest_server_with_restic() -> Result<()> {
    let rest = ResticRest::start_with_auth("smoke-user", "smoke-pass")?;

    restic_init_backup_check_restore(&rest.restic("repo1", RESTIC_PASSWORD)?)?;

    assert!(rest.data_dir.join("repo1/config").is_file());
    let without_credentials = Restic::new(format!("rest:{}/repo1", rest.url), RESTIC_PASSWORD)?;
    assert!(
        without_credentials.run(&["snapshots"]).is_err(),
        "basic auth must be enforced"
    );
    Ok(())
}

#[test]
fn pushgateway_push_then_scrape() -> Result<()> {
    let gateway = Pushgateway::start()?;

    let metric = "# TYPE kstash_smoke_backup_success gauge\nkstash_smoke_backup_success{target=\"pg\"} 1\n";
    let group = format!("{}/metrics/job/kstash_backup/namespace/demo", gateway.url);
    http::post(&group, "text/plain; version=0.0.4", metric.as_bytes())?.ensure_success("push")?;

    let scraped = http::get(&format!("{}/metrics", gateway.url))?
        .ensure_success("scrape")?
        .text();
    let line = scraped
        .lines()
        .find(|l| l.starts_with("kstash_smoke_backup_success{"));
    let line = line.unwrap_or_else(|| panic!("pushed metric missing from /metrics:\n{scraped}"));
    assert!(
        line.contains(r#"job="kstash_backup""#) && line.contains(r#"namespace="demo""#),
        "{line}"
    );
    assert!(line.contains(r#"target="pg""#) && line.ends_with(" 1"), "{line}");
    Ok(())
}

#[test]
fn elasticsearch_index_bulk_refresh_count() -> Result<()> {
    let es = Elasticsearch::start()?;

    let settings =
        br#"{"settings":{"number_of_shards":1},"mappings":{"properties":{"name":{"type":"keyword"}}}}"#;
    http::put(&format!("{}/smoke", es.url), "application/json", settings)?.ensure_success("create index")?;
    let bulk = concat!(
        "{\"index\":{\"_index\":\"smoke\",\"_id\":\"1\"}}\n{\"name\":\"first\"}\n",
        "{\"index\":{\"_index\":\"smoke\",\"_id\":\"2\"}}\n{\"name\":\"second\"}\n",
    );
    let bulk_reply = json(&http::post(
        &format!("{}/_bulk", es.url),
        "application/x-ndjson",
        bulk.as_bytes(),
    )?);
    assert_eq!(bulk_reply["errors"], false, "{bulk_reply}");
    http::post(&format!("{}/smoke/_refresh", es.url), "application/json", b"")?.ensure_success("refresh")?;

    let count = json(&http::get(&format!("{}/smoke/_count", es.url))?.ensure_success("count")?);
    assert_eq!(count["count"], 2, "{count}");
    Ok(())
}

// ---- helpers ----------------------------------------------------------------------------------

/// `restic init`, `backup` of a small directory, `snapshots`, `check`, and a `restore` whose files
/// must equal the originals.
fn restic_init_backup_check_restore(restic: &Restic) -> Result<()> {
    let work = tempfile::tempdir().expect("temp dir");
    let source = work.path().join("source");
    write_sample_files(&source);

    restic.run(&["init"])?;
    restic.run(&["backup", "--host", "smoke", source.to_str().expect("utf-8 path")])?;
    let snapshots = json_str(&restic.run(&["snapshots", "--json"])?);
    assert_eq!(snapshots.as_array().map(Vec::len), Some(1), "{snapshots}");
    let check = restic.run(&["check"])?;
    assert!(
        check.contains("no errors were found"),
        "restic check said:\n{check}"
    );

    let target = work.path().join("restored");
    restic.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8 path"),
    ])?;
    // restic restores absolute paths below the target: <target>/<source path>.
    let restored = target.join(source.strip_prefix("/").expect("absolute temp dir"));
    for name in ["small.txt", "nested/big.bin"] {
        assert_eq!(
            read(&restored.join(name)),
            read(&source.join(name)),
            "restored {name} differs"
        );
    }
    Ok(())
}

fn write_sample_files(dir: &Path) {
    std::fs::create_dir_all(dir.join("nested")).expect("create sample dir");
    std::fs::write(dir.join("small.txt"), "hello restic\n").expect("write sample");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("nested/big.bin"), big).expect("write sample");
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn json(response: &http::Response) -> serde_json::Value {
    json_str(&response.text())
}

fn json_str(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
