//! End to end on the embedded daemon with a real Redis: a BackupConfiguration on an AppBinding
//! streams every key (DUMP + PTTL, redis-addon from the shipped catalog) into the repository,
//! the server is flushed, and a RestoreSession replays the RESTORE stream; every key's DUMP
//! payload and the key counts per database are identical, and TTLs survive.

mod lifecycle;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kstash_testsupport::{Redis, Resp};
use lifecycle::{Env, phase, wait_some};

/// Every key of databases 0 and 3 with its DUMP payload, as `(db, key, payload)`.
fn fingerprint(redis: &Redis) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for db in [0u32, 3] {
        let keys = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "-n", &db.to_string(), "--scan"])
            .output()
            .unwrap();
        let mut keys: Vec<String> = String::from_utf8(keys.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        keys.sort();
        for k in keys {
            // testsupport's command() talks to database 0; redis-cli (quoted output) to db 3.
            let payload = if db == 0 {
                match redis.command(&["DUMP", &k]).unwrap() {
                    Resp::Bulk(Some(p)) => p,
                    other => panic!("DUMP {k}: {other:?}"),
                }
            } else {
                let out = Command::new("redis-cli")
                    .args(["-p", &redis.port.to_string(), "-n", "3", "--no-raw", "DUMP", &k])
                    .output()
                    .unwrap();
                out.stdout
            };
            out.push((db, k.into_bytes(), payload));
        }
    }
    out
}

fn pipe(redis: &Redis, commands: &str) {
    let mut child = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("errors: 0"), "{text}");
}

#[test]
fn redis_backup_and_restore_through_manifests() {
    let redis = Redis::start().unwrap();
    // Inline commands, one per line, as redis-cli --pipe takes them.
    let mut data = String::new();
    for i in 0..1500 {
        data.push_str(&format!("SET user:{i} \"name {i} \\xff\\x00 end\"\r\n"));
    }
    data.push_str("PEXPIRE user:7 3600000\r\n");
    data.push_str("HSET profile:1 name alice age 30\r\n");
    data.push_str("RPUSH queue a b c d\r\n");
    data.push_str("ZADD ranking 1 x 2 y 3 z\r\n");
    data.push_str("XADD events * kind signup user 1\r\n");
    data.push_str("SELECT 3\r\n");
    for i in 0..200 {
        data.push_str(&format!("SADD tags:{i} 1 2 {}\r\n", i + 3));
    }
    pipe(&redis, &data);
    redis
        .command(&[
            "ACL",
            "SETUSER",
            "backup",
            "on",
            ">backup-pass",
            "~*",
            "&*",
            "+@all",
        ])
        .unwrap();
    let before = fingerprint(&redis);
    assert_eq!(before.len(), 1500 + 4 + 200);

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: redis-auth, namespace: demo}}
stringData: {{username: backup, password: backup-pass}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: cache, namespace: demo}}
spec:
  type: kubedb.com/redis
  clientConfig:
    url: redis://{host}:{port}
  secret: {{name: redis-auth}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: cache-backup, namespace: demo}}
spec:
  target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: cache, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: cache-repo
          backend: local
          directory: demo/cache
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: redis-addon
        tasks:
          - name: logical-backup
"#,
        host = redis.host,
        port = redis.port,
    ));
    let _daemon = env.start_daemon(&[]);
    let session = wait_some(Duration::from_secs(90), "the instant Redis backup", || {
        env.sessions_of("cache-backup")
            .into_iter()
            .find(|s| matches!(phase(s), "Succeeded" | "Failed"))
    });
    assert_eq!(phase(&session), "Succeeded", "{session:#}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1);
    let component = &snaps[0]["status"]["components"]["dump"];
    assert_eq!(component["phase"], "Succeeded", "{component:#}");
    assert_eq!(
        component["resticStats"][0]["summary"]["hostPath"], "dumpfile.resp",
        "{component:#}"
    );

    redis.command(&["FLUSHALL"]).unwrap();
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: cache-restore, namespace: demo}
spec:
  target: {apiGroup: appcatalog.appscode.com, kind: AppBinding, name: cache, namespace: demo}
  dataSource:
    repository: cache-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: redis-addon
    tasks:
      - name: logical-backup-restore
"#,
    );
    let rs = wait_some(Duration::from_secs(90), "the Redis restore", || {
        let rs = env.get("restoresession", "demo", "cache-restore")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert!(fingerprint(&redis) == before, "restored keys differ");
    match redis.command(&["PTTL", "user:7"]).unwrap() {
        Resp::Integer(ms) => assert!(ms > 3_000_000 && ms <= 3_600_000, "{ms}"),
        other => panic!("PTTL: {other:?}"),
    }
}
