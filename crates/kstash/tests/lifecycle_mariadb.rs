//! End to end on the embedded daemon with a real MariaDB: a BackupConfiguration on an AppBinding
//! streams `mariadb-dump` of one database into the repository (mariadb-addon from the shipped
//! catalog), the database is dropped, and a RestoreSession pipes the dump back through
//! `mariadb`; the table checksums and row counts are identical.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::MariaDb;
use lifecycle::{Env, phase, wait_some};

const CHECKSUM: &str = "CHECKSUM TABLE shop.items EXTENDED; SELECT COUNT(*) FROM shop.items; \
                        SELECT COUNT(*) FROM shop.audit";

#[test]
fn mariadb_backup_and_restore_through_manifests() {
    let db = MariaDb::start().unwrap();
    db.sql(
        "CREATE DATABASE shop CHARACTER SET utf8mb4;
         USE shop;
         CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), data BLOB, doc JSON);
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT);
         CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item) VALUES (NEW.id);
         SET NAMES utf8mb4;
         INSERT INTO items SELECT seq, CONCAT('item ', seq, ' \u{2603}'), UNHEX(SHA2(seq, 256)),
             JSON_OBJECT('n', seq) FROM seq_1_to_5000;",
    );
    let before = db.sql(CHECKSUM);

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: mariadb-auth, namespace: demo}}
stringData: {{username: {user}, password: "{password}"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: shop-db, namespace: demo}}
spec:
  type: kubedb.com/mariadb
  clientConfig:
    service: {{scheme: mysql, name: "{host}", port: {port}}}
  secret: {{name: mariadb-auth}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: shop-backup, namespace: demo}}
spec:
  target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: shop-db, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: shop-repo
          backend: local
          directory: demo/shop
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: mariadb-addon
        tasks:
          - name: logical-backup
            params: {{args: "--databases shop"}}
"#,
        user = db.user,
        password = db.password,
        host = db.host,
        port = db.port,
    ));
    let _daemon = env.start_daemon(&[]);
    let session = wait_some(Duration::from_secs(90), "the instant MariaDB backup", || {
        env.sessions_of("shop-backup")
            .into_iter()
            .find(|s| matches!(phase(s), "Succeeded" | "Failed"))
    });
    assert_eq!(phase(&session), "Succeeded", "{session:#}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1);
    let component = &snaps[0]["status"]["components"]["dump"];
    assert_eq!(component["phase"], "Succeeded", "{component:#}");
    assert_eq!(
        component["resticStats"][0]["summary"]["hostPath"], "dumpfile.sql",
        "{component:#}"
    );

    db.sql("DROP DATABASE shop");
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: shop-restore, namespace: demo}
spec:
  target: {apiGroup: appcatalog.appscode.com, kind: AppBinding, name: shop-db, namespace: demo}
  dataSource:
    repository: shop-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: mariadb-addon
    tasks:
      - name: logical-backup-restore
"#,
    );
    let rs = wait_some(Duration::from_secs(90), "the MariaDB restore", || {
        let rs = env.get("restoresession", "demo", "shop-restore")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(db.sql(CHECKSUM), before, "restored rows differ");
    assert!(db.sql("SHOW TRIGGERS FROM shop").contains("items_audit"));
}
