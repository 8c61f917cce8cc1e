//! The PostgreSQL stream driver end to end against a real server (testsupport): varied data in
//! several databases is backed up through `run_backup`, destroyed, restored through
//! `run_restore`, and `pg_dump` of every database (and the roles) must be identical before and
//! after. Failures (wrong password, server down) fail the component clearly and leave no restic
//! snapshot.

use std::process::Command;

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::meta::{self, ResourceType};
use kstash_api::storage::{ComponentPhase, Snapshot};
use kstash_embedded::Store;
use kstash_exec::{ExecOptions, LocalMode, run_backup, run_restore};
use kstash_testsupport::{Postgres, Restic};
use serde_json::{Value, json};
use tempfile::TempDir;

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";
const SESSION: &str = "pg-session";
const CONFIG: &str = "pg-backup";
const REPO: &str = "pg-repo";
const REPO_DIR: &str = "postgres/demo";
const ENCRYPTION_SECRET: &str = "encrypt-secret";
const STORAGE: &str = "local-storage";
const APPBINDING: &str = "pg";
const AUTH_SECRET: &str = "pg-auth";
const DATABASES: &[&str] = &["shop", "analytics"];

struct World {
    dir: TempDir,
    store: Store,
}

impl World {
    /// Store, storage, encryption Secret, the postgres Addon, and an AppBinding reaching
    /// `127.0.0.1:port` with `user`/`password` (legacy key names when `legacy_keys`).
    fn new(port: u16, user: &str, password: &str, legacy_keys: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db")).unwrap();
        let w = World { dir, store };
        // The shipped catalog entry, as `kstash server` installs it.
        kstash_embedded::server::install_catalog(
            &w.store,
            &[(
                "catalog/postgres-addon.yaml",
                include_str!("../../../catalog/postgres-addon.yaml"),
            )],
        )
        .unwrap();
        std::fs::create_dir_all(w.dir.path().join("storage")).unwrap();
        w.create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "BackupStorage",
            "metadata": {"name": STORAGE, "namespace": NS},
            "spec": {
                "storage": {"provider": "local", "local": {
                    "mountPath": "/kubestash",
                    "hostPath": {"path": w.dir.path().join("storage").display().to_string()}
                }},
                "usagePolicy": {"allowedNamespaces": {"from": "Same"}},
                "deletionPolicy": "WipeOut"
            }
        }));
        w.create(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": ENCRYPTION_SECRET, "namespace": NS},
            "stringData": {"RESTIC_PASSWORD": PASSWORD}
        }));
        let creds = if legacy_keys {
            json!({"POSTGRES_USER": user, "POSTGRES_PASSWORD": password})
        } else {
            json!({"username": user, "password": password})
        };
        w.create(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": AUTH_SECRET, "namespace": NS},
            "stringData": creds
        }));
        w.create(json!({
            "apiVersion": "appcatalog.appscode.com/v1alpha1",
            "kind": "AppBinding",
            "metadata": {"name": APPBINDING, "namespace": NS},
            "spec": {
                "type": "kubedb.com/postgres",
                "version": "15.18",
                "clientConfig": {"service": {"scheme": "postgresql", "name": "127.0.0.1", "port": port, "query": "sslmode=disable"}},
                "secret": {"name": AUTH_SECRET}
            }
        }));
        w
    }

    fn client(&self) -> &dyn Resources {
        &self.store
    }

    fn opts(&self) -> ExecOptions {
        ExecOptions {
            local_mode: LocalMode::Host,
            hostname: "kstash-test-host".into(),
            deadline: None,
            component: None,
            total_components: None,
            progress_period: kstash_exec::PROGRESS_PERIOD,
            lock_liveness: None,
        }
    }

    fn create(&self, obj: Value) -> Value {
        self.store.create(obj).unwrap()
    }

    fn set_status(&self, rt: &'static ResourceType, name: &str, status: Value) {
        let mut obj = self.client().get(rt, NS, name).unwrap().unwrap();
        obj["status"] = status;
        self.client().update_status(obj).unwrap();
    }

    fn restic(&self) -> Restic {
        let repo = self
            .dir
            .path()
            .join("storage")
            .join(REPO_DIR)
            .join("repository/v1")
            .join(SESSION)
            .join("dump");
        Restic::new(repo.display().to_string(), PASSWORD).unwrap()
    }

    fn restic_snapshot_count(&self) -> usize {
        let out = self.restic().run(&["snapshots", "--json"]).unwrap();
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
    }

    fn create_backup_configuration(&self, params: Value) {
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": CONFIG, "namespace": NS},
            "spec": {
                "target": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": APPBINDING, "namespace": NS},
                "backends": [{"name": "local-backend", "storageRef": {"name": STORAGE, "namespace": NS}}],
                "sessions": [{
                    "name": SESSION,
                    "repositories": [{
                        "name": REPO, "backend": "local-backend", "directory": REPO_DIR,
                        "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
                    }],
                    "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup", "params": params}]}
                }]
            }
        }));
        self.create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Repository",
            "metadata": {"name": REPO, "namespace": NS},
            "spec": {
                "appRef": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": APPBINDING, "namespace": NS},
                "storageRef": {"name": STORAGE, "namespace": NS},
                "path": REPO_DIR,
                "deletionPolicy": "Delete",
                "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
            }
        }));
    }

    /// A BackupSession and its Snapshot, as the controller creates them.
    fn trigger_backup_session(&self, backup_session: &str) -> String {
        let snapshot = format!("{REPO}-{backup_session}");
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupSession",
            "metadata": {"name": backup_session, "namespace": NS},
            "spec": {
                "invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": CONFIG},
                "session": SESSION
            }
        }));
        self.create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Snapshot",
            "metadata": {"name": snapshot, "namespace": NS, "labels": {"kubestash.com/repo-name": REPO}},
            "spec": {
                "snapshotID": "01J0000000000000000000000",
                "type": "FullBackup",
                "repository": REPO,
                "session": SESSION,
                "backupSession": backup_session,
                "version": "v1",
                "appRef": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": APPBINDING, "namespace": NS},
                "deletionPolicy": "Delete"
            }
        }));
        self.set_status(
            &meta::SNAPSHOT,
            &snapshot,
            json!({"phase": "Pending", "snapshotTime": "2026-01-01T00:00:00Z"}),
        );
        self.set_status(
            &meta::BACKUP_SESSION,
            backup_session,
            json!({"phase": "Running", "totalSnapshots": 1, "snapshots": [{"name": snapshot, "phase": "Pending", "repository": REPO}]}),
        );
        snapshot
    }

    fn create_restore_session(&self, name: &str, params: Value) {
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "RestoreSession",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "target": {"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": APPBINDING, "namespace": NS},
                "dataSource": {
                    "repository": REPO, "snapshot": "latest",
                    "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
                },
                "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup-restore", "params": params}]}
            }
        }));
    }

    fn snapshot(&self, name: &str) -> Snapshot {
        self.store.must_get(NS, name).unwrap()
    }
}

/// A dump without the random `\restrict`/`\unrestrict` keys PostgreSQL ≥ 15.14 writes.
fn normalise(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run `tool` (from the server's bin dir) with `args` as the superuser; its stdout.
fn pg_tool(pg: &Postgres, tool: &str, args: &[&str]) -> String {
    let out = Command::new(pg.bin_dir().join(tool))
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres"])
        .args(args)
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn psql_db(pg: &Postgres, db: &str, sql: &str) -> String {
    pg_tool(
        pg,
        "psql",
        &[
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ],
    )
}

/// Several databases, a schema, a role, bytea/json/jsonb/array columns, a large object, a view,
/// a function.
fn create_varied_data(pg: &Postgres) {
    pg.psql("CREATE ROLE app_owner LOGIN PASSWORD 'owner-secret'");
    pg.psql("CREATE DATABASE shop OWNER app_owner");
    pg.psql("CREATE DATABASE analytics");
    psql_db(
        pg,
        "shop",
        "CREATE SCHEMA sales AUTHORIZATION app_owner;
         CREATE TABLE sales.orders (
             id serial PRIMARY KEY, customer text NOT NULL, raw bytea, payload jsonb, note json,
             tags text[], scores int[], created timestamptz DEFAULT '2024-01-01T00:00:00Z');
         INSERT INTO sales.orders (customer, raw, payload, note, tags, scores)
             SELECT 'customer ' || i, decode(md5(i::text) || md5((i*7)::text), 'hex'),
                    jsonb_build_object('i', i, 'items', jsonb_build_array(i, i*2, 'x'||i)),
                    json_build_object('quote', E'it''s \"quoted\"\\n' || i),
                    ARRAY['t' || (i % 5), 'u' || (i % 3)], ARRAY[i, i*i, -i]
             FROM generate_series(1, 3000) AS i;
         CREATE INDEX orders_customer ON sales.orders (customer);
         CREATE VIEW sales.big_orders AS SELECT id, customer FROM sales.orders WHERE id > 2900;
         ALTER TABLE sales.orders OWNER TO app_owner;
         GRANT SELECT ON sales.big_orders TO app_owner;
         COMMENT ON TABLE sales.orders IS 'orders with every column type';
         SELECT lo_from_bytea(424242, decode(repeat('0123456789abcdef', 40000), 'hex'));
         ALTER LARGE OBJECT 424242 OWNER TO app_owner;",
    );
    psql_db(
        pg,
        "analytics",
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text, at timestamptz, data jsonb);
         INSERT INTO events SELECT i, 'k' || (i % 7), '2024-01-01'::timestamptz + i * interval '1 minute',
             jsonb_build_object('n', i) FROM generate_series(1, 5000) AS i;
         CREATE FUNCTION event_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM events';",
    );
}

/// `pg_dump` of every test database and the roles (`pg_dumpall --roles-only`).
fn fingerprint(pg: &Postgres) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = DATABASES
        .iter()
        .map(|db| (db.to_string(), normalise(&pg_tool(pg, "pg_dump", &["-d", db]))))
        .collect();
    out.push((
        "roles".into(),
        normalise(&pg_tool(pg, "pg_dumpall", &["--roles-only"])),
    ));
    out
}

fn destroy(pg: &Postgres) {
    for db in DATABASES {
        pg.psql(&format!("DROP DATABASE {db}"));
    }
    pg.psql("DROP ROLE app_owner");
}

#[test]
fn pg_dumpall_backup_and_psql_restore_give_identical_databases() {
    let pg = Postgres::start().unwrap();
    create_varied_data(&pg);
    let before = fingerprint(&pg);
    assert!(before[0].1.contains("lo_create('424242')") || before[0].1.contains("424242"));

    let world = World::new(pg.port, "postgres", &pg.password, false);
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("pg-backup-1");
    let report = run_backup(world.client(), NS, "pg-backup-1", &world.opts()).unwrap();
    assert_eq!(report.snapshots.len(), 1);
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded), "{dump:?}");
    assert_eq!(dump.path, format!("repository/v1/{SESSION}/dump"));
    assert_eq!(dump.integrity, Some(true));
    assert_eq!(dump.restic_stats.len(), 1);
    let summary = dump.restic_stats[0].summary.as_ref().unwrap();
    assert_eq!(summary.host_path, "dumpfile.sql");
    assert_eq!(summary.id.len(), 64);
    assert!(
        !summary.size.is_empty() && !summary.uploaded.is_empty(),
        "{summary:?}"
    );

    // The real restic reads the dump; it is a pg_dumpall script.
    let dumped = world.restic().run(&["dump", "latest", "/dumpfile.sql"]).unwrap();
    assert!(
        dumped.contains("PostgreSQL database cluster dump"),
        "{}",
        &dumped[..200.min(dumped.len())]
    );
    assert!(!dumped.contains(&pg.password));

    // A retried executor reuses the snapshot.
    let again = run_backup(world.client(), NS, "pg-backup-1", &world.opts()).unwrap();
    assert!(again.snapshots[0].restic_snapshots[0].reused);
    assert_eq!(world.restic_snapshot_count(), 1);

    destroy(&pg);
    assert!(!pg.psql("select datname from pg_database").contains("shop"));

    world.create_restore_session("pg-restore-1", json!({}));
    let restored = run_restore(world.client(), NS, "pg-restore-1", &snapshot, &world.opts()).unwrap();
    assert_eq!(restored.components.len(), 1);
    let rs: RestoreSession = world.store.must_get(NS, "pg-restore-1").unwrap();
    let c = &rs.status.as_ref().unwrap().components["dump"];
    assert_eq!(c.phase, Some(RestorePhase::Succeeded), "{c:?}");

    let after = fingerprint(&pg);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        assert!(a == b, "pg_dump of {name} differs after the restore");
    }
    // The superuser keeps its password: the ALTER ROLE postgres … PASSWORD line was dropped.
    pg.psql("select 1");
}

#[test]
fn pg_dump_of_one_database_with_legacy_secret_keys() {
    let pg = Postgres::start().unwrap();
    create_varied_data(&pg);
    let before = normalise(&pg_tool(&pg, "pg_dump", &["-d", "analytics"]));

    let world = World::new(pg.port, "postgres", &pg.password, true);
    world.create_backup_configuration(json!({"backupCmd": "pg_dump", "args": "--dbname=analytics"}));
    let snapshot = world.trigger_backup_session("pg-backup-1");
    run_backup(world.client(), NS, "pg-backup-1", &world.opts()).unwrap();

    pg.psql("DROP DATABASE analytics");
    pg.psql("CREATE DATABASE analytics");
    world.create_restore_session("pg-restore-1", json!({"args": "--dbname=analytics"}));
    run_restore(world.client(), NS, "pg-restore-1", &snapshot, &world.opts()).unwrap();
    assert!(
        normalise(&pg_tool(&pg, "pg_dump", &["-d", "analytics"])) == before,
        "analytics differs"
    );

    // Restoring again into the non-empty database stops at the first error by default...
    world.create_restore_session("pg-restore-2", json!({"args": "--dbname=analytics"}));
    let e = run_restore(world.client(), NS, "pg-restore-2", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("psql") && e.contains("already exists"), "{e}");
    let rs: RestoreSession = world.store.must_get(NS, "pg-restore-2").unwrap();
    assert_eq!(
        rs.status.unwrap().components["dump"].phase,
        Some(RestorePhase::Failed)
    );
    // ...and goes on when asked to.
    world.create_restore_session(
        "pg-restore-3",
        json!({"args": "--dbname=analytics", "onErrorStop": "false"}),
    );
    run_restore(world.client(), NS, "pg-restore-3", &snapshot, &world.opts())
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("onErrorStop=false restore failed: {e}"));
}

#[test]
fn wrong_password_fails_the_component_naming_the_secret() {
    let pg = Postgres::start().unwrap();
    let world = World::new(pg.port, "postgres", "not-the-password", false);
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("pg-backup-1");
    let e = run_backup(world.client(), NS, "pg-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pg_dumpall")
            && e.contains(&format!("Secret {NS}/{AUTH_SECRET}"))
            && e.contains("password authentication failed"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(
        dump.error.contains("password authentication failed"),
        "{}",
        dump.error
    );
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn server_down_fails_after_the_wait_timeout_without_a_snapshot() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = World::new(port, "postgres", "whatever", false);
    world.create_backup_configuration(json!({"waitTimeout": "2"}));
    let snapshot = world.trigger_backup_session("pg-backup-1");
    let e = run_backup(world.client(), NS, "pg-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not ready after")
            && e.contains(&format!("127.0.0.1:{port}"))
            && e.contains("AppBinding demo/pg"),
        "{e}"
    );
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert_eq!(world.restic_snapshot_count(), 0);
}

/// The PIDs of this test process's children whose command name is `name`.
fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
            comm == name && ppid == Some(me)
        })
        .collect()
}

/// Bytes a process has written so far (`wchar` of `/proc/<pid>/io`).
fn bytes_written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_dump_tool_killed_halfway_fails_the_component_and_leaves_no_snapshot() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    // About 150 MB of dump text: long enough to kill the dump while it streams.
    psql_db(
        &pg,
        "shop",
        "CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 12) AS body FROM generate_series(1, 400000) g",
    );
    let world = World::new(pg.port, "postgres", &pg.password, false);
    world.create_backup_configuration(json!({"backupCmd": "pg_dump", "args": "--dbname=shop"}));
    let snapshot = world.trigger_backup_session("pg-backup-1");

    let killer = std::thread::spawn(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Some(pid) = children_named("pg_dump").first().copied()
                && bytes_written(pid) > 4 << 20
            {
                let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                return killed.map(|s| s.success()).unwrap_or(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    });
    let result = run_backup(world.client(), NS, "pg-backup-1", &world.opts());
    assert!(
        killer.join().unwrap(),
        "pg_dump was not seen streaming, so it was not killed"
    );
    let e = result.unwrap_err().to_string();
    assert!(e.contains("pg_dump") && e.contains("was killed"), "{e}");
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("was killed"), "{}", dump.error);
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn tls_with_a_client_certificate_backs_up_and_restores() {
    let pg = Postgres::start().unwrap();
    let pki = kstash_testsupport::tls::Pki::new().unwrap();
    pg.psql("CREATE ROLE certuser LOGIN SUPERUSER");
    pg.enable_tls(&pki, "certuser").unwrap();
    let client = pki.client("certuser").unwrap();
    pg.psql("CREATE DATABASE shop");
    psql_db(
        &pg,
        "shop",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g",
    );
    let before = normalise(&pg_tool(&pg, "pg_dump", &["-d", "shop"]));

    let world = World::new(pg.port, "postgres", &pg.password, false);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    world.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pg-client-cert", "namespace": NS},
        "stringData": {"tls.crt": read(&client.cert), "tls.key": read(&client.key)}
    }));
    // The certificate is the only credential: no Secret with a password, verify-full by URL.
    let mut ab = world
        .client()
        .get(&meta::APP_BINDING, NS, APPBINDING)
        .unwrap()
        .unwrap();
    use base64::Engine as _;
    ab["spec"]["clientConfig"] = json!({
        "url": format!("postgres://127.0.0.1:{}/postgres?sslmode=verify-full", pg.port),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(read(&pki.ca)),
    });
    ab["spec"].as_object_mut().unwrap().remove("secret");
    ab["spec"]["tlsSecret"] = json!({"name": "pg-client-cert"});
    world.client().update(ab).unwrap();

    world.create_backup_configuration(
        json!({"backupCmd": "pg_dump", "args": "--dbname=shop", "user": "certuser"}),
    );
    let snapshot = world.trigger_backup_session("pg-backup-1");
    run_backup(world.client(), NS, "pg-backup-1", &world.opts())
        .map_err(|e| e.to_string())
        .unwrap();
    // The server saw a TLS connection of certuser authenticated by its certificate.
    let log = std::fs::read_to_string(pg.log_path()).unwrap_or_default();
    assert!(!log.contains("certificate verify failed"), "{log}");

    pg.psql("DROP DATABASE shop");
    pg.psql("CREATE DATABASE shop");
    world.create_restore_session(
        "pg-restore-1",
        json!({"args": "--dbname=shop", "user": "certuser"}),
    );
    run_restore(world.client(), NS, "pg-restore-1", &snapshot, &world.opts())
        .map_err(|e| e.to_string())
        .unwrap();
    assert!(
        normalise(&pg_tool(&pg, "pg_dump", &["-d", "shop"])) == before,
        "shop differs after a restore over TLS"
    );

    // A CA that did not sign the server certificate is refused.
    let other = kstash_testsupport::tls::Pki::new().unwrap();
    let mut ab = world
        .client()
        .get(&meta::APP_BINDING, NS, APPBINDING)
        .unwrap()
        .unwrap();
    ab["spec"]["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(read(&other.ca)));
    world.client().update(ab).unwrap();
    world.trigger_backup_session("pg-backup-2");
    let e = run_backup(world.client(), NS, "pg-backup-2", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate verify failed"), "{e}");
}

#[test]
fn an_unknown_compression_is_refused_before_anything_runs() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = World::new(port, "postgres", "whatever", false);
    world.create_backup_configuration(json!({"compression": "ultra"}));
    world.trigger_backup_session("pg-backup-1");
    let e = run_backup(world.client(), NS, "pg-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Addon postgres-addon task logical-backup")
            && e.contains("parameter compression is \"ultra\"; use one of auto, fastest, fast, better, max"),
        "{e}"
    );
}
