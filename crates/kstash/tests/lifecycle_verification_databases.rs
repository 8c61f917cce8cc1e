//! Query verification end to end on the embedded daemon with real databases: the newest backup of
//! each is restored into a separate verification target (another database or server, never the
//! backed-up one) and the BackupVerifier's queries run there. PostgreSQL: the true row count ends
//! Verified, a wrong one VerificationFailed naming the table and both numbers, and the source's
//! dump is byte-identical before and after; MariaDB, Redis and the Elasticsearch-API server each
//! pass one query; ZooKeeper is verified by its restore alone (RestoreOnly) into a second server.

mod lifecycle;

use std::process::Command;
use std::time::Duration;

use kstash_testsupport::zookeeper_tree::{ZkSession, create_varied_tree};
use kstash_testsupport::{Elasticsearch, MariaDb, Postgres, Redis, ZooKeeper};
use lifecycle::{Env, condition, phase, wait_some};
use serde_json::Value;

/// The parts of one verified database backup: the source and verification AppBindings (with
/// their Secret), the addon, the backup and restore task params, and the verifier's query.
struct VerifiedDatabase<'a> {
    /// Secret + AppBinding `source` + AppBinding `verify-target`, as YAML.
    bindings: String,
    addon: &'a str,
    backup_params: &'a str,
    restore_params: &'a str,
    /// The verifier's `type` and `query` (see [`query`]).
    verification: String,
}

/// A Query verification of `checks` (the lines under `query:`, indented by 4 spaces).
fn query(checks: &str) -> String {
    format!("  type: Query\n  query:\n{checks}")
}

impl VerifiedDatabase<'_> {
    /// The configuration `db-backup` of AppBinding `source` whose repository names verifier
    /// `db-verifier`, which restores into AppBinding `verify-target` and runs the query.
    fn manifests(&self) -> String {
        format!(
            r#"
{bindings}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupVerifier
metadata: {{name: db-verifier, namespace: demo}}
spec:
  restoreOption:
    target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: verify-target, namespace: demo}}
    addonInfo:
      name: {addon}
      tasks:
        - name: logical-backup-restore
          params: {restore_params}
{verification}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: db-backup, namespace: demo}}
spec:
  target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: source, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 0 1 1 *"}}
      sessionHistoryLimit: 5
      repositories:
        - name: db-repo
          backend: local
          directory: demo/db
          encryptionSecret: {{name: encrypt, namespace: demo}}
          backupVerifier: {{name: db-verifier}}
      addon:
        name: {addon}
        tasks:
          - name: logical-backup
            params: {backup_params}
"#,
            bindings = self.bindings,
            addon = self.addon,
            restore_params = self.restore_params,
            backup_params = self.backup_params,
            verification = self.verification,
        )
    }
}

/// Apply everything, start the daemon and wait for the instant backup to succeed.
fn backed_up(env: &Env, db: &VerifiedDatabase<'_>) -> lifecycle::Daemon {
    env.apply(&env.storage_manifests(5));
    env.apply(&db.manifests());
    let daemon = env.start_daemon(&[]);
    let sessions = wait_some(Duration::from_secs(120), "the instant backup", || {
        let s = env.sessions_of("db-backup");
        s.iter()
            .any(|s| matches!(phase(s), "Succeeded" | "Failed"))
            .then_some(s)
    });
    assert_eq!(phase(&sessions[0]), "Succeeded", "{:#}", sessions[0]);
    daemon
}

fn verified_message(bvs: &Value) -> (String, String) {
    let c = condition(bvs, "BackupVerified").unwrap_or_else(|| panic!("no BackupVerified: {bvs:#}"));
    (
        c["status"].as_str().unwrap_or("").to_string(),
        c["message"].as_str().unwrap_or("").to_string(),
    )
}

fn snapshot_verification(env: &Env, bvs: &Value) -> Value {
    let snap = bvs["spec"]["snapshot"].as_str().unwrap();
    env.get("snapshot", "demo", snap).unwrap()["status"]["verificationStatus"].clone()
}

fn secret_and_bindings(kind: &str, secret: &str, source: &str, verify: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: db-auth, namespace: demo}}
stringData: {secret}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: source, namespace: demo}}
spec:
  type: kubedb.com/{kind}
  clientConfig: {source}
  secret: {{name: db-auth}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: verify-target, namespace: demo}}
spec:
  type: kubedb.com/{kind}
  clientConfig: {verify}
  secret: {{name: db-auth}}
"#
    )
}

/// The dump of `db` without pg_dump's per-run `\restrict` keys (random since 15.14).
fn pg_dump(pg: &Postgres, db: &str) -> String {
    let out = Command::new(pg.bin_dir().join("pg_dump"))
        .args([
            "-h",
            &pg.host,
            "-p",
            &pg.port.to_string(),
            "-U",
            &pg.user,
            "-d",
            db,
        ])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_query_verification_passes_with_the_true_count_and_names_the_table_when_wrong() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    pg.psql("CREATE DATABASE shop_verify");
    let source_sql = |sql: &str| pg.psql_in("shop", sql);
    source_sql("CREATE TABLE orders (id int PRIMARY KEY, note text)");
    source_sql("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 1234) g");
    let source_before = pg_dump(&pg, "shop");

    let service = |db: &str| {
        format!(
            "{{service: {{scheme: postgresql, name: \"{}\", port: {}, path: {db}, query: sslmode=disable}}}}",
            pg.host, pg.port
        )
    };
    let orders = |count: u32| {
        query(&format!(
            "    postgres:\n      - database: shop_verify\n        schema: public\n        table: orders\n        rowCount: {{operator: Equal, value: {count}}}"
        ))
    };
    let env = Env::new();
    let db = VerifiedDatabase {
        bindings: secret_and_bindings(
            "postgres",
            &format!("{{username: {}, password: \"{}\"}}", pg.user, pg.password),
            &service("shop"),
            &service("shop_verify"),
        ),
        addon: "postgres-addon",
        // --clean --if-exists: the dump drops what it creates, so it restores again and again
        // into the same verification database.
        backup_params: r#"{backupCmd: pg_dump, args: "-d shop --clean --if-exists"}"#,
        restore_params: r#"{args: "-d shop_verify"}"#,
        verification: orders(1234),
    };
    let _daemon = backed_up(&env, &db);

    let (bvs, ok) = env.verify_now("db-backup");
    assert!(ok, "{bvs:#}");
    assert_eq!(phase(&bvs), "Succeeded", "{bvs:#}");
    let (status, message) = verified_message(&bvs);
    assert_eq!(status, "True", "{message}");
    assert_eq!(snapshot_verification(&env, &bvs), "Verified");

    // A verifier expecting a wrong count, on a new backup restored into the same database.
    env.apply(
        &VerifiedDatabase {
            verification: orders(1000),
            ..db
        }
        .manifests(),
    );
    env.ok(&["trigger", "db-backup", "-n", "demo"]);
    env.wait_sessions_done("db-backup", 2);
    let (bvs, ok) = env.verify_now("db-backup");
    assert!(!ok, "kstash verify exits 1 when a verification fails");
    assert_eq!(phase(&bvs), "Failed", "{bvs:#}");
    let (status, message) = verified_message(&bvs);
    assert_eq!(status, "False");
    assert!(
        message.contains("public.orders") && message.contains("1000") && message.contains("1234"),
        "the message names the table, the expected and the found count: {message}"
    );
    assert_eq!(snapshot_verification(&env, &bvs), "VerificationFailed");
    assert!(
        pg_dump(&pg, "shop") == source_before,
        "verification must not touch the backed-up database"
    );
}

#[test]
fn mariadb_query_verification_passes() {
    let db = MariaDb::start().unwrap();
    db.sql(
        "CREATE DATABASE shop; CREATE DATABASE shop_verify; USE shop;
         CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50));
         INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_321;",
    );
    let service = format!(
        "{{service: {{scheme: mysql, name: \"{}\", port: {}}}}}",
        db.host, db.port
    );
    let env = Env::new();
    let _daemon = backed_up(
        &env,
        &VerifiedDatabase {
            bindings: secret_and_bindings(
                "mariadb",
                &format!("{{username: {}, password: \"{}\"}}", db.user, db.password),
                &service,
                &service,
            ),
            addon: "mariadb-addon",
            backup_params: r#"{args: "shop"}"#,
            restore_params: r#"{args: "shop_verify"}"#,
            verification: query(
                "    mariaDB:\n      - database: shop_verify\n        table: items\n        rowCount: 321",
            ),
        },
    );
    let (bvs, ok) = env.verify_now("db-backup");
    assert!(ok && phase(&bvs) == "Succeeded", "{bvs:#}");
    let (_, message) = verified_message(&bvs);
    assert!(message.contains("321"), "{message}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.items").trim(), "321");
}

#[test]
fn redis_query_verification_passes_on_a_second_server() {
    let source = Redis::start().unwrap();
    let scratch = Redis::start().unwrap();
    for i in 0..40 {
        source.command(&["SET", &format!("k{i}"), "v"]).unwrap();
    }
    let url = |r: &Redis| format!("{{url: \"redis://{}:{}\"}}", r.host, r.port);
    let bindings = secret_and_bindings("redis", "{}", &url(&source), &url(&scratch))
        .replace("  secret: {name: db-auth}\n", "");
    let env = Env::new();
    let _daemon = backed_up(
        &env,
        &VerifiedDatabase {
            bindings,
            addon: "redis-addon",
            backup_params: "{}",
            restore_params: r#"{replace: "true"}"#,
            verification: query("    redis:\n      - index: 0\n        dbSize: 40"),
        },
    );
    let (bvs, ok) = env.verify_now("db-backup");
    assert!(ok && phase(&bvs) == "Succeeded", "{bvs:#}");
    assert_eq!(snapshot_verification(&env, &bvs), "Verified");
}

#[test]
fn elasticsearch_query_verification_passes_on_a_second_server() {
    let source = Elasticsearch::start().unwrap();
    let scratch = Elasticsearch::start().unwrap();
    let docs: Vec<_> = (0..25)
        .map(|i| {
            (
                "orders".to_string(),
                format!("{i}"),
                None,
                serde_json::json!({"n": i}),
            )
        })
        .collect();
    source.bulk(&docs).unwrap();
    source.call("POST", "/orders/_refresh", None).unwrap();
    let url = |e: &Elasticsearch| format!("{{url: \"{}\"}}", e.url);
    let bindings = secret_and_bindings(
        "elasticsearch",
        "{ADMIN_USERNAME: elastic, ADMIN_PASSWORD: unused}",
        &url(&source),
        &url(&scratch),
    );
    let env = Env::new();
    let _daemon = backed_up(
        &env,
        &VerifiedDatabase {
            bindings,
            addon: "elasticsearch-addon",
            backup_params: "{}",
            restore_params: "{}",
            verification: query(
                "    elasticsearch:\n      - index: orders\n        documentCount: {operator: GreaterThanOrEqual, value: 25}",
            ),
        },
    );
    let (bvs, ok) = env.verify_now("db-backup");
    assert!(ok && phase(&bvs) == "Succeeded", "{bvs:#}");
    assert_eq!(snapshot_verification(&env, &bvs), "Verified");
}

#[test]
fn zookeeper_restore_only_verification_recreates_the_tree_on_a_second_server() {
    const USER: &str = "kstash";
    const PASSWORD: &str = "zk digest password";
    let source = ZooKeeper::start().unwrap();
    let scratch = ZooKeeper::start().unwrap();
    let s = ZkSession::connect(&source.connect_string(), Some((USER, PASSWORD))).unwrap();
    let tree = create_varied_tree(&s, USER, PASSWORD).unwrap();
    let before = s.fingerprint().unwrap();
    let service = |zk: &ZooKeeper| format!("{{service: {{name: \"{}\", port: {}}}}}", zk.host, zk.port);
    let env = Env::new();
    let _daemon = backed_up(
        &env,
        &VerifiedDatabase {
            bindings: secret_and_bindings(
                "zookeeper",
                &format!("{{username: {USER}, password: \"{PASSWORD}\"}}"),
                &service(&source),
                &service(&scratch),
            ),
            addon: "zookeeper-addon",
            backup_params: r#"{waitTimeout: "60"}"#,
            restore_params: r#"{waitTimeout: "60"}"#,
            verification: "  type: RestoreOnly".into(),
        },
    );
    let (bvs, ok) = env.verify_now("db-backup");
    assert!(ok && phase(&bvs) == "Succeeded", "{bvs:#}");
    assert_eq!(condition(&bvs, "RestoreSucceeded").unwrap()["status"], "True");
    assert_eq!(snapshot_verification(&env, &bvs), "Verified");
    let restored = ZkSession::connect(&scratch.connect_string(), Some((USER, PASSWORD)))
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_eq!(
        restored.len(),
        tree.nodes + 1,
        "every znode reached the scratch server"
    );
    assert_eq!(s.fingerprint().unwrap(), before, "the source tree is untouched");
}
