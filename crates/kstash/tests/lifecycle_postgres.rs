//! End to end on the embedded daemon with a real PostgreSQL: a BackupConfiguration on an
//! AppBinding streams `pg_dump` into the repository (postgres-addon from the shipped catalog), the
//! table is dropped, and a RestoreSession pipes the dump back through `psql`; the data is identical.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::Postgres;
use lifecycle::{Env, phase, wait_some};

const CHECKSUM: &str = "SELECT count(*) || ':' || md5(string_agg(id || name || encode(data, 'hex') || tags::text, ',' ORDER BY id)) FROM items";

#[test]
fn postgres_backup_and_restore_through_manifests() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    let shop = |sql: &str| pg.psql_in("shop", sql);
    shop("CREATE TABLE items (id int PRIMARY KEY, name text, data bytea, tags text[])");
    shop(
        "INSERT INTO items SELECT g, 'item ' || g, sha256(g::text::bytea), ARRAY['a' || g, 'b'] FROM generate_series(1, 5000) g",
    );
    let before = shop(CHECKSUM);

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: pg-auth, namespace: demo}}
stringData: {{username: {user}, password: "{password}"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: shop-db, namespace: demo}}
spec:
  type: kubedb.com/postgres
  clientConfig:
    service: {{scheme: postgresql, name: "{host}", port: {port}, query: sslmode=disable}}
  secret: {{name: pg-auth}}
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
        name: postgres-addon
        tasks:
          - name: logical-backup
            params: {{backupCmd: pg_dump, args: "-d shop"}}
"#,
        user = pg.user,
        password = pg.password,
        host = pg.host,
        port = pg.port,
    ));
    let _daemon = env.start_daemon(&[]);
    let session = wait_some(Duration::from_secs(90), "the instant PostgreSQL backup", || {
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

    shop("DROP TABLE items");
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
    name: postgres-addon
    tasks:
      - name: logical-backup-restore
        params: {args: "-d shop"}
"#,
    );
    let rs = wait_some(Duration::from_secs(90), "the PostgreSQL restore", || {
        let rs = env.get("restoresession", "demo", "shop-restore")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(shop(CHECKSUM), before, "restored rows differ");
}
