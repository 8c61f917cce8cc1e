//! End to end: mistakes in manifests end in readable conditions and messages — unknown addon,
//! missing storage Secret (and a trigger on the configuration that cannot run), bad cron (a
//! warning at apply, as KubeStash's API takes it, then Invalid), a restore of a snapshot that does
//! not exist — while the daemon keeps running.
mod lifecycle;

use std::time::Duration;

use lifecycle::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Wait until the object exists and `f` finds what the test expects in it.
fn wait_obj(env: &Env, kind: &str, name_: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_some(WAIT, what, || env.get(kind, "demo", name_).filter(|o| f(o)))
}

#[test]
fn unknown_addon_makes_the_configuration_invalid() {
    let env = Env::new();
    let mut daemon = env.start_daemon(&[]);
    env.apply(&env.storage_manifests(5));
    let bc = env
        .backup_configuration("noaddon", "0 0 1 1 *", &env.data.display().to_string(), "")
        .replace("name: workload-addon", "name: no-such-addon");
    env.apply(&bc);

    let bc = wait_obj(&env, "backupconfiguration", "noaddon", "phase Invalid", |o| {
        phase(o) == "Invalid"
    });
    let c = condition(&bc, "ValidationPassed").unwrap_or_else(|| panic!("{bc:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(
        message.contains("no-such-addon") && message.contains("not found"),
        "{message}"
    );

    // Nothing is backed up.
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.sessions_of("noaddon").is_empty());
    assert!(env.ok(&["get", "bc", "-n", "demo"]).contains("noaddon"));
    daemon.assert_healthy();
}

const S3_STORAGE: &str = r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {name: s3-storage, namespace: demo}
spec:
  storage:
    provider: s3
    s3: {endpoint: "http://127.0.0.1:9", bucket: kstash, region: us-east-1, secretName: s3-credentials}
  usagePolicy: {allowedNamespaces: {from: Same}}
  deletionPolicy: Delete
"#;

#[test]
fn storage_without_its_secret_is_reported_and_blocks_backups() {
    let env = Env::new();
    let mut daemon = env.start_daemon(&[]);
    env.apply(&env.storage_manifests(5));
    env.apply(S3_STORAGE);

    // The storage says which Secret is missing.
    let storage = wait_obj(&env, "backupstorage", "s3-storage", "BackendSecretFound", |o| {
        condition(o, "BackendSecretFound").is_some()
    });
    let c = condition(&storage, "BackendSecretFound").unwrap();
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(message.contains("s3-credentials"), "{message}");
    assert_ne!(phase(&storage), "Ready", "{storage:#}");

    // A configuration using it stays NotReady and says why.
    let bc = env
        .backup_configuration("nosecret", "0 0 1 1 *", &env.data.display().to_string(), "")
        .replace(
            "storageRef: {name: local-storage",
            "storageRef: {name: s3-storage",
        );
    env.apply(&bc);
    let bc = wait_obj(&env, "backupconfiguration", "nosecret", "backend status", |o| {
        o.pointer("/status/backends/0/storage/reason").is_some()
    });
    assert_eq!(phase(&bc), "NotReady", "{bc:#}");
    let reason = bc
        .pointer("/status/backends/0/storage/reason")
        .and_then(Value::as_str)
        .unwrap();
    assert!(reason.contains("s3-storage"), "{reason}");
    assert!(
        env.sessions_of("nosecret").is_empty(),
        "no instant backup while NotReady"
    );

    // A manual trigger creates a session that is skipped with the reason.
    let out = env.run(&["trigger", "nosecret", "-n", "demo", "--wait"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a skipped backup is not a success: {stdout}"
    );
    let sessions = env.wait_sessions_done("nosecret", 1);
    let session = &sessions[0];
    assert_eq!(phase(session), "Skipped", "{session:#}");
    let c = condition(session, "BackupSkipped").unwrap_or_else(|| panic!("{session:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "True", "{c}");
    assert!(
        message.contains("not Ready") && message.contains("s3-storage"),
        "{message}"
    );
    assert!(stdout.contains("Skipped"), "trigger output: {stdout}");
    assert!(env.list("snapshots", "demo").is_empty());
    daemon.assert_healthy();
}

/// KubeStash's API takes a configuration with a bad cron (Kubernetes refuses its CronJob later),
/// so kstash stores it with a warning at apply, and the configuration is Invalid and never runs.
#[test]
fn bad_cron_is_a_warning_at_apply_and_the_configuration_is_invalid() {
    let env = Env::new();
    let mut daemon = env.start_daemon(&[]);
    env.apply(&env.storage_manifests(5));

    let path = env.dir.path().join("badcron.yaml");
    std::fs::write(
        &path,
        env.backup_configuration("badcron", "61 * * * *", &env.data.display().to_string(), ""),
    )
    .unwrap();
    let out = env.run(&["apply", "-f", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("scheduler.schedule"),
        "{stderr}"
    );

    let bc = wait_obj(&env, "backupconfiguration", "badcron", "phase Invalid", |o| {
        phase(o) == "Invalid"
    });
    let c = condition(&bc, "ValidationPassed").unwrap_or_else(|| panic!("{bc:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(message.contains("scheduler.schedule"), "{message}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.sessions_of("badcron").is_empty());
    daemon.assert_healthy();
}

#[test]
fn restore_of_a_missing_snapshot_is_invalid() {
    let env = Env::new();
    std::fs::write(env.data.join("file.txt"), "data\n").unwrap();
    let mut daemon = env.start_daemon(&[]);
    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration("src", "0 0 1 1 *", &env.data.display().to_string(), ""));
    wait_obj(&env, "repository", "src-repo", "Repository src-repo Ready", |o| {
        phase(o) == "Ready"
    });

    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: restore-ghost, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: src-app, namespace: demo}
  dataSource:
    repository: src-repo
    snapshot: ghost-snapshot
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: workload-addon
    tasks: [{name: logical-backup-restore}]
"#,
    );
    let rs = wait_obj(&env, "restoresession", "restore-ghost", "phase Invalid", |o| {
        phase(o) == "Invalid"
    });
    let c = condition(&rs, "ValidationPassed").unwrap_or_else(|| panic!("{rs:#}"));
    let (status, message) = condition_status_message(c);
    assert_eq!(status, "False", "{c}");
    assert!(
        message.contains("ghost-snapshot") && message.contains("not found"),
        "{message}"
    );
    assert!(
        env.ok(&["get", "restoresession", "-n", "demo"])
            .contains("restore-ghost")
    );
    daemon.assert_healthy();
}
