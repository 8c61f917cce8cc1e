//! `kstash repo` with remote repository URLs: kstash and the real restic pointed at the same
//! repository on SeaweedFS (S3) and `rclone serve restic` (REST), credentials from the usual
//! environment variables; and the messages a user sees for wrong credentials, a missing bucket
//! (which `init` creates) and an unreachable endpoint.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use kstash_testsupport::{ResticRest, SeaweedS3};

const PASSWORD: &str = "remote cli password";

/// `kstash repo -r <url> <args>` with `env` set (and the caller's AWS variables removed).
fn kstash(url: &str, env: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kstash"));
    cmd.arg("repo")
        .arg("-r")
        .arg(url)
        .args(args)
        .env("KSTASH_PASSWORD", PASSWORD)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sql(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("INSERT INTO t VALUES ({i}, 'row-{i}');\n"))
        .collect::<String>()
        .into_bytes()
}

fn s3_env(s3: &SeaweedS3) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", s3.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.clone()),
        ("AWS_DEFAULT_REGION", s3.region.clone()),
    ]
}

fn borrow<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn kstash_and_restic_share_an_s3_repository() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("shared").unwrap();
    let url = s3.restic_repository("shared/cli");
    let env = s3_env(&s3);
    let env = borrow(&env);
    ok(kstash(&url, &env, &["init"], None));
    let data = sql(50_000);
    ok(kstash(
        &url,
        &env,
        &["backup", "--stdin", "--stdin-filename", "dump.sql"],
        Some(&data),
    ));

    // restic writes a second snapshot into the same repository; kstash lists and dumps both.
    let restic = s3.restic("shared/cli", PASSWORD).unwrap();
    let more = sql(60_000);
    let mut child = restic
        .command(&["backup", "--stdin", "--stdin-filename", "dump.sql"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&more).unwrap();
    assert!(child.wait().unwrap().success());

    let listed = ok(kstash(&url, &env, &["snapshots", "--json"], None));
    let snapshots: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(snapshots.len(), 2, "{listed}");
    let latest = ok(kstash(&url, &env, &["dump", "latest", "/dump.sql"], None));
    assert!(
        latest.as_bytes() == more,
        "kstash's dump of restic's snapshot differs"
    );
    ok(kstash(
        &url,
        &env,
        &["forget", "--keep-last", "1", "--prune"],
        None,
    ));
    ok(kstash(&url, &env, &["check", "--read-data"], None));
    let dumped = restic.output(&["dump", "latest", "/dump.sql"]).unwrap();
    assert!(dumped.status.success() && dumped.stdout == more);
    assert!(restic.output(&["check", "--read-data"]).unwrap().status.success());
}

#[test]
fn kstash_and_restic_share_a_rest_repository() {
    let server = ResticRest::start_with_auth("u", "p").unwrap();
    let url = server.repository("cli");
    ok(kstash(&url, &[], &["init"], None));
    let data = sql(30_000);
    ok(kstash(
        &url,
        &[],
        &["backup", "--stdin", "--stdin-filename", "dump.sql"],
        Some(&data),
    ));
    let restic = server.restic("cli", PASSWORD).unwrap();
    let dumped = restic.output(&["dump", "latest", "/dump.sql"]).unwrap();
    assert!(
        dumped.status.success() && dumped.stdout == data,
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
}

#[test]
fn remote_failures_say_which_storage_and_why() {
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("exists").unwrap();
    let env = s3_env(&s3);

    // Wrong secret key.
    let mut wrong = env.clone();
    wrong[1].1 = "not-the-secret".into();
    let err = failed(kstash(
        &s3.restic_repository("exists/r"),
        &borrow(&wrong),
        &["init"],
        None,
    ));
    assert!(
        err.contains("access denied") && err.contains("s3:http://127.0.0.1"),
        "{err}"
    );

    // A bucket that does not exist: reading says so; init creates it, as `restic init` does.
    let err = failed(kstash(
        &s3.restic_repository("missing-bucket/r"),
        &borrow(&env),
        &["snapshots"],
        None,
    ));
    assert!(err.contains("bucket") && err.contains("does not exist"), "{err}");
    let out = kstash(
        &s3.restic_repository("missing-bucket/r"),
        &borrow(&env),
        &["init"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(ok(out).contains("created kstash repository"));
    assert!(stderr.contains("created bucket missing-bucket"), "{stderr}");
    ok(kstash(
        &s3.restic_repository("missing-bucket/r"),
        &borrow(&env),
        &["snapshots"],
        None,
    ));

    // Nothing listens on the endpoint (a free port that was just closed).
    let port = kstash_testsupport::ports::free_port().unwrap();
    let url = format!("s3:http://127.0.0.1:{port}/b/r");
    let err = failed(kstash(&url, &borrow(&env), &["snapshots"], None));
    assert!(
        err.contains("unreachable") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // An S3 URL without a secret key for the access key.
    let err = failed(kstash(
        &s3.restic_repository("exists/r"),
        &[("AWS_ACCESS_KEY_ID", "x")],
        &["init"],
        None,
    ));
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");

    // An unknown scheme.
    let err = failed(kstash("sftp:host:/x", &[], &["init"], None));
    assert!(err.contains("unknown backend"), "{err}");
}
