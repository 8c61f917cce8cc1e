//! End to end on the embedded daemon: restic repositories written the way Stash v1 wrote them
//! (the real `restic`, `--host host-0` or an alias, `--stdin-filename dumpfile.sql|dumpfile.resp`,
//! a directory at its absolute path; restic format v1 and v2; local and S3 backends) are restored
//! into real servers by applying Stash's own Repository + RestoreSession manifests. The data
//! compares equal, the repository is left as it was (no forget, no prune), and what cannot work
//! (a wrong password, a missing Repository) says why in the RestoreSession's status.

mod lifecycle;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kstash_testsupport::{
    Elasticsearch, MariaDb, Postgres, Redis, Resp, Restic, SeaweedS3, es_data, restic_or_skip,
};
use lifecycle::{Env, condition, phase, tree_listing, wait_some, write_tree};
use serde_json::Value;

const STASH_PASSWORD: &str = "stash-restic-password";
const KIND: &str = "restoresessions.stash.appscode.com";

/// A Stash storage Secret: the restic password next to the backend's credentials.
fn storage_secret(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: demo}}\nstringData:\n  RESTIC_PASSWORD: {STASH_PASSWORD}\n{extra}"
    )
}

/// A Stash Repository on a local hostPath volume, its restic repository at `<root>/<sub_path>`.
fn local_repository(name: &str, root: &Path, sub_path: &str, secret: &str) -> String {
    format!(
        r#"apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata: {{name: {name}, namespace: demo}}
spec:
  backend:
    local:
      mountPath: /safe/data
      subPath: {sub_path}
      hostPath: {{path: "{root}"}}
    storageSecretName: {secret}
"#,
        root = root.display()
    )
}

/// Pipe `data` into `restic backup --stdin` as Stash's database addons did.
fn stash_stdin_backup(restic: &Restic, host: &str, file_name: &str, data: &[u8]) {
    let mut child = restic
        .command(&[
            "backup",
            "--stdin",
            "--stdin-filename",
            file_name,
            "--host",
            host,
            "--quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "restic backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every restic snapshot id of a repository (`restic snapshots --json`).
fn restic_snapshot_ids(restic: &Restic) -> Vec<String> {
    let v: Value = serde_json::from_str(&restic.run(&["snapshots", "--json", "--no-lock"]).unwrap()).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Wait until the Stash RestoreSession has a final phase; return it.
fn wait_stash_restore_done(env: &Env, name: &str) -> Value {
    wait_some(
        Duration::from_secs(120),
        "the Stash RestoreSession to finish",
        || {
            env.get(KIND, "demo", name)
                .filter(|rs| matches!(phase(rs), "Succeeded" | "Failed" | "Invalid"))
        },
    )
}

/// A KubeDB-style AppBinding `demo/<name>` of database `kind` (`postgres`, `mariadb`) reached
/// through a service `host:port` with `scheme`, and its credentials Secret `<name>-auth`.
fn database_app_binding(
    name: &str,
    kind: &str,
    scheme: &str,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> String {
    let query = if kind == "postgres" {
        ", query: sslmode=disable"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: {name}-auth, namespace: demo}}
stringData: {{username: {user}, password: "{password}"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: {name}, namespace: demo}}
spec:
  type: kubedb.com/{kind}
  clientConfig:
    service: {{scheme: {scheme}, name: "{host}", port: {port}{query}}}
  secret: {{name: {name}-auth}}"#
    )
}

/// KubeDB's AppBinding `demo/sample-postgres` for `pg`.
fn postgres_app_binding(pg: &Postgres) -> String {
    database_app_binding(
        "sample-postgres",
        "postgres",
        "postgresql",
        &pg.host,
        pg.port,
        &pg.user,
        &pg.password,
    )
}

fn pg_dumpall(pg: &Postgres) -> Vec<u8> {
    let out = std::process::Command::new(pg.bin_dir().join("pg_dumpall"))
        .args([
            "--username",
            &pg.user,
            "--host",
            &pg.host,
            "--port",
            &pg.port.to_string(),
        ])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dumpall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A Stash RestoreSession restoring into the AppBinding `name` with `task`, newest snapshot.
fn stash_database_restore(name: &str, task: &str, repository: &str, app_binding: &str) -> String {
    format!(
        r#"apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata: {{name: {name}, namespace: demo}}
spec:
  task: {{name: {task}}}
  repository: {{name: {repository}}}
  target:
    ref: {{apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: {app_binding}}}
"#
    )
}

/// A fresh restic repository at `<backend root>/<sub_path>` in restic format `version`.
fn stash_local_restic(backend_root: &Path, sub_path: &str, version: &str) -> Restic {
    let dir = backend_root.join(sub_path);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let restic = Restic::new(dir.display().to_string(), STASH_PASSWORD).unwrap();
    restic.run(&["init", "--repository-version", version]).unwrap();
    restic
}

const CHECKSUM: &str = "SELECT count(*) || ':' || md5(string_agg(id || name, ',' ORDER BY id)) FROM items";

#[test]
fn a_stash_postgres_backup_in_a_restic_v1_repository_is_restored_with_stashs_own_manifests() {
    let Some(_) = restic_or_skip() else { return };
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    let shop = |sql: &str| pg.psql_in("shop", sql);
    shop("CREATE TABLE items (id int PRIMARY KEY, name text)");
    shop("INSERT INTO items SELECT g, 'old ' || g FROM generate_series(1, 10) g");

    // What Stash wrote: a restic v1 repository at the backend prefix, one snapshot per session.
    let env = Env::new();
    let backend_root = env.dir.path().join("stash-backend");
    let restic = stash_local_restic(&backend_root, "demo/postgres/sample-postgres", "1");
    stash_stdin_backup(&restic, "host-0", "dumpfile.sql", &pg_dumpall(&pg));
    shop("INSERT INTO items SELECT g, 'new ' || g FROM generate_series(11, 3000) g");
    let before = shop(CHECKSUM);
    stash_stdin_backup(&restic, "host-0", "dumpfile.sql", &pg_dumpall(&pg));
    let snapshots_before = restic_snapshot_ids(&restic);
    assert_eq!(snapshots_before.len(), 2);

    pg.psql("DROP DATABASE shop");

    let _daemon = env.start_daemon(&[]);
    env.apply(&format!(
        r#"{secret}
---
{repository}
---
{app_binding}
---
apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata:
  name: sample-postgres-restore
  namespace: demo
spec:
  task:
    name: postgres-restore-16.1
  repository:
    name: local-repo
  target:
    ref:
      apiVersion: appcatalog.appscode.com/v1alpha1
      kind: AppBinding
      name: sample-postgres
  rules:
    - snapshots: [latest]
"#,
        secret = storage_secret("local-secret", ""),
        repository = local_repository(
            "local-repo",
            &backend_root,
            "demo/postgres/sample-postgres",
            "local-secret"
        ),
        app_binding = postgres_app_binding(&pg),
    ));
    let rs = wait_stash_restore_done(&env, "sample-postgres-restore");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(rs["status"]["stats"][0]["hostname"], "host-0");
    assert_eq!(rs["status"]["stats"][0]["phase"], "Succeeded");
    assert_eq!(shop(CHECKSUM), before, "the newest Stash snapshot was restored");

    // kstash shows it with Stash's columns, and left the repository as it was.
    let table = env.ok(&["get", KIND, "-n", "demo"]);
    assert!(
        table.contains("REPOSITORY") && table.contains("local-repo") && table.contains("Succeeded"),
        "{table}"
    );
    assert_eq!(restic_snapshot_ids(&restic), snapshots_before);
    restic.run(&["check", "--read-data"]).unwrap();

    // `kstash snapshots` lists the Stash repository as Stash's Snapshot view did.
    let listing = env.ok(&["snapshots", "-n", "demo", "--repository", "local-repo"]);
    for id in &snapshots_before {
        assert!(listing.contains(&format!("local-repo-{}", &id[..8])), "{listing}");
    }
    assert_eq!(listing.matches("host-0").count(), 2, "{listing}");

    // `kstash convert` names what the Stash rules choose, and its output applies as KubeStash.
    let stash_restore = env.get(KIND, "demo", "sample-postgres-restore").unwrap();
    let input = env.dir.path().join("stash-restore.json");
    std::fs::write(&input, stash_restore.to_string()).unwrap();
    let converted = env.ok(&["convert", "-f", input.to_str().unwrap()]);
    let newest = restic
        .run(&["snapshots", "--json", "--no-lock", "latest"])
        .unwrap();
    let newest: Value = serde_json::from_str(&newest).unwrap();
    let short = &newest[0]["id"].as_str().unwrap()[..8];
    assert!(
        converted.contains(&format!("restic snapshot(s) {short} (host host-0)")),
        "{converted}"
    );
    assert!(
        converted.contains("kind: RestoreSession") && converted.contains("postgres-addon"),
        "{converted}"
    );
    let out = env.dir.path().join("converted.yaml");
    std::fs::write(&out, &converted).unwrap();
    env.ok(&["validate", "-f", out.to_str().unwrap()]);
}

#[test]
fn a_stash_redis_backup_on_s3_is_restored_from_the_aliased_host_by_short_id_and_by_latest() {
    let Some(_) = restic_or_skip() else { return };
    let redis = Redis::start().unwrap();
    let s3 = SeaweedS3::start().unwrap();
    s3.create_bucket("stash-testing").unwrap();
    let restic = s3
        .restic("stash-testing/demo/redis/sample-redis", STASH_PASSWORD)
        .unwrap();
    restic.run(&["init"]).unwrap();

    // redis-dump-go wrote RESP commands; two hosts share the repository (a BackupBatch, or a
    // renamed alias): `cache` holds the data, `host-0` a newer, different dump.
    let resp = |cmds: &[&[&str]]| {
        let mut out = String::new();
        for c in cmds {
            out.push_str(&format!("*{}\r\n", c.len()));
            for a in *c {
                out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
        }
        out.into_bytes()
    };
    stash_stdin_backup(
        &restic,
        "cache",
        "dumpfile.resp",
        &resp(&[
            &["SET", "user:1", "alice"],
            &["RPUSH", "queue", "a", "b", "c"],
            &["HSET", "profile:1", "name", "alice"],
        ]),
    );
    stash_stdin_backup(
        &restic,
        "host-0",
        "dumpfile.resp",
        &resp(&[&["SET", "wrong", "host"]]),
    );
    let ids = restic_snapshot_ids(&restic);

    let env = Env::new();
    let _daemon = env.start_daemon(&[]);
    env.apply(&format!(
        r#"{secret}
---
apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata: {{name: s3-repo, namespace: demo}}
spec:
  backend:
    s3:
      endpoint: "{endpoint}"
      bucket: stash-testing
      prefix: /demo/redis/sample-redis
      region: "{region}"
    storageSecretName: s3-secret
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: sample-redis, namespace: demo}}
spec:
  type: kubedb.com/redis
  clientConfig:
    url: "redis://{host}:{port}"
---
apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata: {{name: redis-restore-latest, namespace: demo}}
spec:
  task: {{name: redis-restore-7.0.5}}
  repository: {{name: s3-repo}}
  target:
    alias: cache
    ref: {{apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: sample-redis}}
    rules:
      - snapshots: [latest]
"#,
        secret = storage_secret(
            "s3-secret",
            &format!(
                "  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n",
                s3.access_key, s3.secret_key
            )
        ),
        endpoint = s3.endpoint,
        region = s3.region,
        host = redis.host,
        port = redis.port,
    ));
    let rs = wait_stash_restore_done(&env, "redis-restore-latest");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(rs["status"]["stats"][0]["hostname"], "cache");
    assert_eq!(
        redis.command(&["GET", "user:1"]).unwrap(),
        Resp::Bulk(Some(b"alice".to_vec()))
    );
    assert_eq!(redis.command(&["LLEN", "queue"]).unwrap(), Resp::Integer(3));
    assert_eq!(
        redis.command(&["EXISTS", "wrong"]).unwrap(),
        Resp::Integer(0),
        "latest of host cache, not the newer host-0 snapshot"
    );

    // An 8-character id (as `kubectl get snapshots` shows them) picks that snapshot.
    redis.command(&["FLUSHALL"]).unwrap();
    let host0 = ids
        .iter()
        .find(|id| {
            let v: Value =
                serde_json::from_str(&restic.run(&["snapshots", "--json", "--no-lock", id]).unwrap())
                    .unwrap();
            v[0]["hostname"] == "host-0"
        })
        .unwrap();
    env.apply(&format!(
        r#"apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata: {{name: redis-restore-by-id, namespace: demo}}
spec:
  task: {{name: redis-restore-7.0.5}}
  repository: {{name: s3-repo}}
  target:
    ref: {{apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: sample-redis}}
  rules:
    - snapshots: ["{short}"]
"#,
        short = &host0[..8]
    ));
    let rs = wait_stash_restore_done(&env, "redis-restore-by-id");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(
        redis.command(&["GET", "wrong"]).unwrap(),
        Resp::Bulk(Some(b"host".to_vec()))
    );
    assert_eq!(redis.command(&["EXISTS", "user:1"]).unwrap(), Resp::Integer(0));
    assert_eq!(restic_snapshot_ids(&restic), ids, "nothing forgotten or pruned");
}

#[test]
fn a_stash_volume_backup_comes_back_at_its_original_path_and_failures_say_why() {
    let Some(_) = restic_or_skip() else { return };
    let env = Env::new();
    let source = env.dir.path().join("source/data");
    write_tree(&source, 200_000);
    std::fs::write(source.join("scratch.tmp"), "not restored").unwrap();
    let expected: Vec<String> = tree_listing(&source)
        .into_iter()
        .filter(|l| !l.contains("scratch.tmp"))
        .collect();

    let backend_root = env.dir.path().join("stash-backend");
    let restic = stash_local_restic(&backend_root, "deployment/stash-demo", "1");
    // The sidecar of a Deployment backs up each target path with host host-0.
    restic
        .run(&["backup", source.to_str().unwrap(), "--host", "host-0", "--quiet"])
        .unwrap();
    std::fs::remove_dir_all(&source).unwrap();

    let _daemon = env.start_daemon(&[]);
    // A RestoreSession whose Repository is not applied yet waits for it, saying so.
    let restore = |name: &str, repo: &str| {
        format!(
            r#"apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata: {{name: {name}, namespace: demo}}
spec:
  repository: {{name: {repo}}}
  target:
    ref: {{apiVersion: apps/v1, kind: Deployment, name: stash-recovered}}
    volumeMounts:
      - {{name: source-data, mountPath: /source/data}}
    rules:
      - paths: ["{path}"]
        exclude: ["*.tmp"]
"#,
            path = source.display()
        )
    };
    env.apply(&restore("deployment-restore", "local-repo"));
    let pending = wait_some(
        Duration::from_secs(30),
        "the missing Repository to be reported",
        || {
            env.get(KIND, "demo", "deployment-restore")
                .filter(|rs| condition(rs, "ReferencesFound").is_some())
        },
    );
    assert_eq!(phase(&pending), "Pending");
    let message = condition(&pending, "ReferencesFound").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("spec.repository.name") && message.contains("local-repo"),
        "{message}"
    );

    // A wrong password fails the session naming the Secret and its key.
    env.apply(&format!(
        "{}---\n{}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: wrong-secret, namespace: demo}\nstringData: {RESTIC_PASSWORD: not-the-password}\n",
        local_repository("wrong-repo", &backend_root, "deployment/stash-demo", "wrong-secret")
    ));
    env.apply(&restore("wrong-password-restore", "wrong-repo"));
    let failed = wait_stash_restore_done(&env, "wrong-password-restore");
    assert_eq!(phase(&failed), "Failed");
    let error = failed["status"]["stats"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("wrong-secret") && error.contains("RESTIC_PASSWORD"),
        "{error}"
    );

    // Once the Repository exists, the waiting session restores.
    env.apply(&format!(
        "{}---\n{}",
        storage_secret("local-secret", ""),
        local_repository(
            "local-repo",
            &backend_root,
            "deployment/stash-demo",
            "local-secret"
        )
    ));
    let rs = wait_stash_restore_done(&env, "deployment-restore");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(
        tree_listing(&source),
        expected,
        "restored at the original absolute path, *.tmp excluded"
    );
}

#[test]
fn a_stash_mariadb_dump_is_restored_into_mariadb() {
    let Some(_) = restic_or_skip() else { return };
    let db = MariaDb::start().unwrap();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64));");
    let rows: Vec<String> = (1..=2000).map(|i| format!("({i}, 'item {i}')")).collect();
    db.sql(&format!("INSERT INTO shop.items VALUES {};", rows.join(",")));
    let checksum = "SELECT COUNT(*), MD5(GROUP_CONCAT(id, name ORDER BY id)) FROM shop.items";
    let before = db.sql(checksum);

    // Stash's MySQL/MariaDB addon: mysqldump --all-databases piped into restic (format v2 here).
    let env = Env::new();
    let backend_root = env.dir.path().join("stash-backend");
    let restic = stash_local_restic(&backend_root, "demo/mariadb/sample-mariadb", "2");
    let dump = std::process::Command::new("mariadb-dump")
        .args([
            "--host",
            &db.host,
            "--port",
            &db.port.to_string(),
            "--user",
            &db.user,
        ])
        .arg(format!("--password={}", db.password))
        .args(["--databases", "shop"])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    stash_stdin_backup(&restic, "host-0", "dumpfile.sql", &dump.stdout);
    db.sql("DROP DATABASE shop");

    let _daemon = env.start_daemon(&[]);
    env.apply(&format!(
        r#"{secret}
---
{repository}
---
{app_binding}
---
{restore}"#,
        secret = storage_secret("local-secret", ""),
        repository = local_repository(
            "local-repo",
            &backend_root,
            "demo/mariadb/sample-mariadb",
            "local-secret"
        ),
        app_binding = database_app_binding(
            "sample-mariadb",
            "mariadb",
            "mysql",
            &db.host,
            db.port,
            &db.user,
            &db.password
        ),
        restore = stash_database_restore(
            "sample-mariadb-restore",
            "mariadb-restore-10.6.23",
            "local-repo",
            "sample-mariadb"
        ),
    ));
    let rs = wait_stash_restore_done(&env, "sample-mariadb-restore");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(db.sql(checksum), before);
}

#[test]
fn a_stash_elasticsearch_interim_directory_is_loaded_into_elasticsearch() {
    let Some(_) = restic_or_skip() else { return };
    let es = Elasticsearch::start_secured("elastic", "s3cr3t-pw").unwrap();
    let env = Env::new();
    // Stash's ES addon: multielasticdump into the interim directory (with meta.txt since
    // 2023), then `restic backup <dir>`; the snapshot holds the directory at its absolute path.
    let interim = env.dir.path().join("stash-tmp/stash-interim-volume/data");
    es_data::write_multielasticdump_dir(&interim);
    std::fs::write(interim.join("meta.txt"), "1Gi\n").unwrap();
    let backend_root = env.dir.path().join("stash-backend");
    let restic = stash_local_restic(&backend_root, "demo/sample-es", "1");
    restic
        .run(&["backup", interim.to_str().unwrap(), "--host", "host-0", "--quiet"])
        .unwrap();
    std::fs::remove_dir_all(&interim).unwrap();

    let _daemon = env.start_daemon(&[]);
    env.apply(&format!(
        r#"{secret}
---
{repository}
---
apiVersion: v1
kind: Secret
metadata: {{name: es-auth, namespace: demo}}
stringData: {{ADMIN_USERNAME: elastic, ADMIN_PASSWORD: "s3cr3t-pw"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: sample-es, namespace: demo}}
spec:
  type: kubedb.com/elasticsearch
  clientConfig:
    url: "{url}"
  secret: {{name: es-auth}}
---
{restore}"#,
        secret = storage_secret("local-secret", ""),
        repository = local_repository("local-repo", &backend_root, "demo/sample-es", "local-secret"),
        url = es.url,
        restore = stash_database_restore(
            "sample-es-restore",
            "elasticsearch-restore-7.14.0",
            "local-repo",
            "sample-es"
        ),
    ));
    let rs = wait_stash_restore_done(&env, "sample-es-restore");
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    let after = es_data::fingerprint(&es).unwrap();
    assert_eq!(after.indices.keys().collect::<Vec<_>>(), ["orders", "products"]);
    assert_eq!(after.indices["products"].count, 1500);
    assert!(after.indices["products"].aliases.get("catalog").is_some());
    assert!(
        !interim.exists(),
        "loaded from the repository, not from a staged copy on disk"
    );
}

/// A Stash BackupConfiguration applied to kstash.
fn stash_backup_configuration(schedule: &str) -> String {
    format!(
        r#"apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata: {{name: sample-postgres-backup, namespace: demo}}
spec:
  schedule: "{schedule}"
  task: {{name: postgres-backup-16.1}}
  repository: {{name: local-repo}}
  target:
    ref: {{apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: sample-postgres}}
  retentionPolicy: {{name: keep-last-2, keepLast: 2, prune: true}}
"#
    )
}

/// A Stash BackupSession created by hand, as Stash's docs trigger an instant backup.
fn stash_backup_session(name: &str) -> String {
    format!(
        r#"apiVersion: stash.appscode.com/v1beta1
kind: BackupSession
metadata:
  name: {name}
  namespace: demo
  labels: {{stash.appscode.com/backup-configuration: sample-postgres-backup}}
spec:
  invoker: {{apiGroup: stash.appscode.com, kind: BackupConfiguration, name: sample-postgres-backup}}
"#
    )
}

fn wait_stash_backup_done(env: &Env, name: &str) -> Value {
    wait_some(
        Duration::from_secs(120),
        "the Stash BackupSession to finish",
        || {
            env.get("backupsessions.stash.appscode.com", "demo", name)
                .filter(|bs| matches!(phase(bs), "Succeeded" | "Failed" | "Skipped"))
        },
    )
}

/// `(hostname, paths)` of every restic snapshot, oldest first.
fn restic_hosts_and_paths(restic: &Restic) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&restic.run(&["snapshots", "--json", "--no-lock"]).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["hostname"].as_str().unwrap().to_string(),
                s["paths"][0].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stash_backup_configuration_keeps_adding_to_the_repository_stash_wrote() {
    let Some(_) = restic_or_skip() else { return };
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    pg.psql_in("shop", "CREATE TABLE items (id int PRIMARY KEY, name text)");
    pg.psql_in(
        "shop",
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g",
    );

    // Stash's last backup before the move, in restic format v1.
    let env = Env::new();
    let backend_root = env.dir.path().join("stash-backend");
    let restic = stash_local_restic(&backend_root, "demo/postgres/sample-postgres", "1");
    stash_stdin_backup(&restic, "host-0", "dumpfile.sql", &pg_dumpall(&pg));
    let stash_made = restic_snapshot_ids(&restic);

    let _daemon = env.start_daemon(&[]);
    env.apply(&format!(
        r#"{secret}
---
{repository}
---
{app_binding}
---
{bc}"#,
        secret = storage_secret("local-secret", ""),
        repository = local_repository(
            "local-repo",
            &backend_root,
            "demo/postgres/sample-postgres",
            "local-secret"
        ),
        app_binding = postgres_app_binding(&pg),
        bc = stash_backup_configuration("0 0 1 1 *"),
    ));
    let bc = wait_some(
        Duration::from_secs(30),
        "the Stash BackupConfiguration to be Ready",
        || {
            env.get(
                "backupconfigurations.stash.appscode.com",
                "demo",
                "sample-postgres-backup",
            )
            .filter(|bc| phase(bc) == "Ready")
        },
    );
    assert_eq!(condition(&bc, "CronJobCreated").unwrap()["status"], "True");

    // An instant backup: the new snapshot sits next to Stash's, same host, same file.
    pg.psql_in("shop", "INSERT INTO items VALUES (501, 'after the move')");
    env.apply(&stash_backup_session("sample-postgres-backup-instant"));
    let bs = wait_stash_backup_done(&env, "sample-postgres-backup-instant");
    assert_eq!(phase(&bs), "Succeeded", "{bs:#}");
    assert_eq!(bs["status"]["targets"][0]["stats"][0]["hostname"], "host-0");
    assert_eq!(
        restic_hosts_and_paths(&restic),
        vec![("host-0".to_string(), "/dumpfile.sql".to_string()); 2],
        "old and new side by side"
    );
    // The Stash Repository's status counts what the repository holds, as Stash's did.
    let repo = env
        .get("repositories.stash.appscode.com", "demo", "local-repo")
        .unwrap();
    assert_eq!(repo["status"]["snapshotCount"], 2, "{repo:#}");
    assert!(repo["status"]["lastBackupTime"].is_string() && repo["status"]["totalSize"].is_string());
    let newest = restic
        .run(&["dump", "--no-lock", "latest", "/dumpfile.sql"])
        .unwrap();
    assert!(
        newest.contains("after the move"),
        "the real restic reads kstash's dump"
    );

    // The schedule fires (every minute now): a session named as Stash named them; the inline
    // retention (keepLast 2, prune) then forgets Stash's snapshot, as Stash's own would have.
    env.apply(&stash_backup_configuration("* * * * *"));
    let scheduled = wait_some(
        Duration::from_secs(150),
        "a scheduled Stash BackupSession to succeed",
        || {
            env.list("backupsessions.stash.appscode.com", "demo")
                .into_iter()
                .find(|s| lifecycle::name(s) != "sample-postgres-backup-instant" && phase(s) == "Succeeded")
        },
    );
    let name = lifecycle::name(&scheduled).to_string();
    let suffix = name.trim_start_matches("sample-postgres-backup-");
    assert!(suffix.parse::<i64>().is_ok(), "{name}");
    let ids = restic_snapshot_ids(&restic);
    assert_eq!(ids.len(), 2, "keepLast 2");
    assert!(
        !ids.contains(&stash_made[0]),
        "the oldest (Stash's) snapshot was forgotten"
    );
    restic.run(&["check"]).unwrap();
    // backupHistoryLimit (default 1): only the newest finished session is kept.
    wait_some(Duration::from_secs(30), "old sessions to be cleaned up", || {
        (env.list("backupsessions.stash.appscode.com", "demo").len() == 1).then_some(())
    });
}
