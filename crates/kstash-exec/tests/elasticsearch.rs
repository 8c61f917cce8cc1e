//! The native Elasticsearch/OpenSearch driver end to end against a real server (osmem-server
//! from testsupport, behind a proxy that requires basic auth): varied indices, aliases and
//! templates are backed up through `run_backup`, destroyed, restored through `run_restore`, and
//! settings, mappings, aliases, templates, counts and document checksums must be identical.
//! Also: the existingIndex policies, wrong password, server down, an export dying halfway, and
//! the restore of a snapshot KubeStash took (multielasticdump files backed up by restic).

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::meta::{self, ResourceType};
use kstash_api::storage::{ComponentPhase, Snapshot};
use kstash_embedded::Store;
use kstash_exec::{ExecOptions, LocalMode, run_backup, run_restore};
use kstash_testsupport::es_data::{self, Fingerprint};
use kstash_testsupport::{Elasticsearch, Fault, FaultPlan, FaultProxy, Restic};
use serde_json::{Value, json};
use tempfile::TempDir;

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";
const SESSION: &str = "es-session";
const CONFIG: &str = "es-backup";
const REPO: &str = "es-repo";
const REPO_DIR: &str = "elasticsearch/demo";
const ENCRYPTION_SECRET: &str = "encrypt-secret";
const STORAGE: &str = "local-storage";
const APPBINDING: &str = "es";
const AUTH_SECRET: &str = "es-auth";
const ES_USER: &str = "elastic";
const ES_PASSWORD: &str = "es-Secret-pw-123";
const DOCS: usize = 12_000;

struct World {
    dir: TempDir,
    store: Store,
}

impl World {
    /// Store, storage, encryption Secret, the elasticsearch Addon, and an AppBinding reaching
    /// `url` with `user`/`password` (KubeStash's ADMIN_* key names when `admin_keys`).
    fn new(url: &str, user: &str, password: &str, admin_keys: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db")).unwrap();
        let w = World { dir, store };
        kstash_embedded::server::install_catalog(
            &w.store,
            &[(
                "catalog/elasticsearch-addon.yaml",
                include_str!("../../../catalog/elasticsearch-addon.yaml"),
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
        let creds = if admin_keys {
            json!({"ADMIN_USERNAME": user, "ADMIN_PASSWORD": password})
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
                "type": "kubedb.com/elasticsearch",
                "version": "opensearch-3.8.0",
                "clientConfig": {"url": url},
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

    fn component_repo(&self) -> std::path::PathBuf {
        self.dir
            .path()
            .join("storage")
            .join(REPO_DIR)
            .join("repository/v1")
            .join(SESSION)
            .join("dump")
    }

    fn restic(&self) -> Restic {
        Restic::new(self.component_repo().display().to_string(), PASSWORD).unwrap()
    }

    fn restic_snapshot_count(&self) -> usize {
        if !self.component_repo().join("config").exists() {
            return 0;
        }
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
                    "addon": {"name": "elasticsearch-addon", "tasks": [{"name": "logical-backup", "params": params}]}
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

    /// A Snapshot resource as the controller creates it (Pending).
    fn create_snapshot(&self, backup_session: &str) -> String {
        let snapshot = format!("{REPO}-{backup_session}");
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
        snapshot
    }

    /// A BackupSession and its Snapshot, as the controller creates them.
    fn trigger_backup_session(&self, backup_session: &str) -> String {
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupSession",
            "metadata": {"name": backup_session, "namespace": NS},
            "spec": {
                "invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": CONFIG},
                "session": SESSION
            }
        }));
        let snapshot = self.create_snapshot(backup_session);
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
                "addon": {"name": "elasticsearch-addon", "tasks": [{"name": "logical-backup-restore", "params": params}]}
            }
        }));
    }

    fn snapshot(&self, name: &str) -> Snapshot {
        self.store.must_get(NS, name).unwrap()
    }

    fn restore_phase(&self, name: &str) -> Option<RestorePhase> {
        let rs: RestoreSession = self.store.must_get(NS, name).unwrap();
        rs.status.unwrap().components["dump"].phase
    }
}

fn print(es: &Elasticsearch) -> Fingerprint {
    es_data::fingerprint(es).unwrap()
}

#[test]
fn backup_destroy_restore_gives_identical_indices_and_existing_index_policies_hold() {
    let es = Elasticsearch::start_secured(ES_USER, ES_PASSWORD).unwrap();
    es_data::seed_varied(&es, DOCS).unwrap();
    let before = print(&es);
    assert_eq!(before.indices.len(), 5, "{:?}", before.indices.keys());
    assert_eq!(
        before.indices["archive"].settings["index"]["blocks"]["write"],
        "true"
    );
    assert_eq!(
        before.indices["logs-2024.01"].count,
        es_data::varied_counts(DOCS)["logs-2024.01"]
    );
    assert_eq!(before.templates.len(), 3, "{:?}", before.templates.keys());

    let world = World::new(&es.url, ES_USER, ES_PASSWORD, false);
    // Small pages and slices so that paging and parallel slices are exercised, through a
    // point in time (OpenSearch's default is a scroll, which the other tests use).
    world.create_backup_configuration(json!({"batchSize": "700", "parallel": "3", "paging": "pit"}));
    let snapshot = world.trigger_backup_session("es-backup-1");
    let report = run_backup(world.client(), NS, "es-backup-1", &world.opts()).unwrap();
    assert_eq!(report.snapshots.len(), 1);
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded), "{dump:?}");
    assert_eq!(dump.integrity, Some(true));
    let summary = dump.restic_stats[0].summary.as_ref().unwrap();
    assert_eq!(summary.host_path, "elasticsearch.ndjson");

    // The real restic reads the stream: a header, templates, indices, documents, an end line;
    // no dot index, no credentials.
    let stream = world
        .restic()
        .run(&["dump", "latest", "/elasticsearch.ndjson"])
        .unwrap();
    let lines: Vec<Value> = stream.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["format"], "kstash-elasticsearch");
    assert_eq!(lines[0]["source"]["distribution"], "opensearch");
    assert_eq!(lines.iter().filter(|l| l.get("doc").is_some()).count(), DOCS);
    let end = &lines.last().unwrap()["end"];
    assert_eq!(end["docs"], DOCS as u64);
    assert!(!stream.contains(".internal-audit"));
    assert!(!stream.contains(ES_PASSWORD));
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.as_object().and_then(|m| m.keys().next()).map(String::as_str))
        .filter(|k| *k != "doc")
        .collect();
    assert_eq!(
        kinds,
        [
            "format",
            "component_template",
            "index_template",
            "legacy_template",
            "index",
            "index",
            "index",
            "index",
            "index",
            "end"
        ]
    );

    es_data::destroy(&es).unwrap();
    assert!(print(&es).indices.is_empty());

    world.create_restore_session("es-restore-1", json!({"bulkSize": "500", "parallel": "3"}));
    let restored = run_restore(world.client(), NS, "es-restore-1", &snapshot, &world.opts()).unwrap();
    assert_eq!(restored.components.len(), 1);
    assert_eq!(world.restore_phase("es-restore-1"), Some(RestorePhase::Succeeded));
    before.assert_same(&print(&es));
    // The dot index was never touched.
    assert_eq!(
        es.call("GET", "/.internal-audit/_count", None).unwrap()["count"],
        50
    );

    // Into a non-empty cluster: `fail` (the default) writes nothing and names the indices.
    es.call(
        "PUT",
        "/users/_doc/extra",
        Some(&json!({"name": "added later", "age": 1})),
    )
    .unwrap();
    es.call("DELETE", "/_index_template/metrics", None).unwrap();
    let with_extra = print(&es);
    world.create_restore_session("es-restore-2", json!({}));
    let e = run_restore(world.client(), NS, "es-restore-2", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already exist")
            && e.contains("logs-2024.01")
            && e.contains("users")
            && e.contains("existingIndex")
            && e.contains("AppBinding demo/es"),
        "{e}"
    );
    assert_eq!(world.restore_phase("es-restore-2"), Some(RestorePhase::Failed));
    with_extra.assert_same(&print(&es));

    // `skip`: existing indices are left as they are (templates are put back).
    world.create_restore_session("es-restore-3", json!({"existingIndex": "skip"}));
    run_restore(world.client(), NS, "es-restore-3", &snapshot, &world.opts()).unwrap();
    let after_skip = print(&es);
    assert_eq!(after_skip.indices, with_extra.indices);
    assert_eq!(after_skip.templates, before.templates);

    // `overwrite`: the indices are replaced by the backup's.
    world.create_restore_session("es-restore-4", json!({"existingIndex": "overwrite"}));
    run_restore(world.client(), NS, "es-restore-4", &snapshot, &world.opts()).unwrap();
    before.assert_same(&print(&es));

    // A bad policy name is refused with the parameter's name.
    world.create_restore_session("es-restore-5", json!({"existingIndex": "merge"}));
    let e = run_restore(world.client(), NS, "es-restore-5", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("existingIndex") && e.contains("merge"), "{e}");
}

#[test]
fn selected_indices_only_with_kubestash_args_and_admin_keys() {
    let es = Elasticsearch::start_secured(ES_USER, ES_PASSWORD).unwrap();
    es_data::seed_varied(&es, 800).unwrap();
    let before = print(&es);
    let world = World::new(&es.url, ES_USER, ES_PASSWORD, true);
    world.create_backup_configuration(json!({
        "args": "--match=^(?![.])(?!empty)(users|logs-.*)$ --ignoreType=template --limit=100",
        "indices": "*,-logs-2023*"
    }));
    let snapshot = world.trigger_backup_session("es-backup-1");
    run_backup(world.client(), NS, "es-backup-1", &world.opts()).unwrap();
    let stream = world
        .restic()
        .run(&["dump", "latest", "/elasticsearch.ndjson"])
        .unwrap();
    let indices: Vec<String> = stream
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|l| l["index"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(indices, ["logs-2024.01", "users"]);
    assert!(!stream.contains("\"component_template\""));

    es_data::destroy(&es).unwrap();
    world.create_restore_session("es-restore-1", json!({"indices": "users"}));
    run_restore(world.client(), NS, "es-restore-1", &snapshot, &world.opts()).unwrap();
    let after = print(&es);
    assert_eq!(after.indices.keys().collect::<Vec<_>>(), ["users"]);
    assert_eq!(after.indices["users"], before.indices["users"]);
}

#[test]
fn wrong_password_fails_the_component_naming_the_secret() {
    let es = Elasticsearch::start_secured(ES_USER, ES_PASSWORD).unwrap();
    let world = World::new(&es.url, ES_USER, "not-the-password", false);
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("es-backup-1");
    let e = run_backup(world.client(), NS, "es-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("authentication failed")
            && e.contains(&format!("Secret {NS}/{AUTH_SECRET}"))
            && e.contains("user elastic")
            && e.contains("401"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let snap = world.snapshot(&snapshot);
    let dump = &snap.status.as_ref().unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("authentication failed"), "{}", dump.error);
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn server_down_fails_after_the_wait_timeout_without_a_snapshot() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = World::new(&format!("http://127.0.0.1:{port}"), ES_USER, "whatever", false);
    world.create_backup_configuration(json!({"waitTimeout": "2"}));
    let snapshot = world.trigger_backup_session("es-backup-1");
    let e = run_backup(world.client(), NS, "es-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not ready after")
            && e.contains(&format!("127.0.0.1:{port}"))
            && e.contains("AppBinding demo/es"),
        "{e}"
    );
    let snap = world.snapshot(&snapshot);
    assert_eq!(
        snap.status.as_ref().unwrap().components["dump"].phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn an_export_dying_halfway_leaves_no_snapshot_and_a_restore_dying_halfway_fails() {
    let es = Elasticsearch::start().unwrap();
    es_data::seed_varied(&es, 3000).unwrap();
    // The connection breaks on the third search page.
    let proxy = FaultProxy::start(
        &es.url,
        FaultPlan::every_nth(3, Fault::ResetConnection).only_path_containing("_search"),
    )
    .unwrap();
    let world = World::new(proxy.url(), ES_USER, ES_PASSWORD, false);
    world.create_backup_configuration(json!({"batchSize": "500", "parallel": "1"}));
    let snapshot = world.trigger_backup_session("es-backup-1");
    let e = run_backup(world.client(), NS, "es-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reading documents of index") && e.contains("AppBinding demo/es"),
        "{e}"
    );
    assert!(proxy.faults_injected() > 0);
    assert_eq!(
        world.snapshot(&snapshot).status.unwrap().components["dump"].phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);

    // A good backup; then the restore's bulk requests break halfway.
    proxy.set_plan(FaultPlan::none());
    let snapshot = world.trigger_backup_session("es-backup-2");
    run_backup(world.client(), NS, "es-backup-2", &world.opts()).unwrap();
    es_data::destroy(&es).unwrap();
    proxy.set_plan(FaultPlan::every_nth(2, Fault::InternalErrorAfterForward).only_path_containing("_bulk"));
    world.create_restore_session("es-restore-1", json!({"bulkSize": "200"}));
    let e = run_restore(world.client(), NS, "es-restore-1", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bulk loading documents") && e.contains("HTTP 500"),
        "{e}"
    );
    assert_eq!(world.restore_phase("es-restore-1"), Some(RestorePhase::Failed));
}

#[test]
fn a_snapshot_taken_by_kubestash_is_restored() {
    let es = Elasticsearch::start_secured(ES_USER, ES_PASSWORD).unwrap();
    let world = World::new(&es.url, ES_USER, ES_PASSWORD, true);
    world.create_backup_configuration(json!({}));
    // KubeStash: multielasticdump into the interim dir, then `restic backup <dir>`.
    let interim = world.dir.path().join("kubestash-interim/data");
    es_data::write_multielasticdump_dir(&interim);
    std::fs::create_dir_all(world.component_repo()).unwrap();
    world.restic().run(&["init"]).unwrap();
    world
        .restic()
        .run(&["backup", "--host", "es-0", interim.to_str().unwrap()])
        .unwrap();
    let snaps: Vec<Value> =
        serde_json::from_str(&world.restic().run(&["snapshots", "--json"]).unwrap()).unwrap();
    let id = snaps[0]["id"].as_str().unwrap().to_string();
    let snapshot = world.create_snapshot("kubestash-backup-1");
    world.set_status(
        &meta::SNAPSHOT,
        &snapshot,
        json!({
            "phase": "Succeeded", "snapshotTime": "2025-06-01T00:00:00Z", "totalComponents": 1,
            "components": {"dump": {
                "path": format!("repository/v1/{SESSION}/dump"), "phase": "Succeeded",
                "driver": "Restic",
                "resticStats": [{"summary": {"id": id, "hostPath": interim.display().to_string()}}]
            }}
        }),
    );

    world.create_restore_session("es-restore-1", json!({}));
    let report = run_restore(world.client(), NS, "es-restore-1", &snapshot, &world.opts()).unwrap();
    assert_eq!(report.components.len(), 1);
    assert_eq!(world.restore_phase("es-restore-1"), Some(RestorePhase::Succeeded));

    let after = print(&es);
    assert_eq!(after.indices.keys().collect::<Vec<_>>(), ["orders", "products"]);
    let products = &after.indices["products"];
    assert_eq!(products.count, 1500);
    assert_eq!(products.settings["index"]["number_of_shards"], "2");
    assert_ne!(products.settings["index"]["uuid"], "old-uuid");
    assert_eq!(products.mappings["properties"]["sku"]["type"], "keyword");
    assert!(products.aliases.get("catalog").is_some() && products.aliases.get("cheap").is_some());
    let routed = products.docs.iter().filter(|d| d.contains("\tshelf-a\t")).count();
    assert_eq!(routed, 1500usize.div_ceil(7));
    assert!(
        products
            .docs
            .iter()
            .any(|d| d.starts_with("p43\t\t") && d.contains("\\\"special\\\" ü"))
    );
    assert_eq!(
        after.indices["orders"].mappings["properties"]["total"]["type"],
        "long"
    );
    assert!(
        after.templates.contains_key("legacy/kubestash-legacy"),
        "{:?}",
        after.templates.keys()
    );

    // Again into the now non-empty cluster: refused by default, like KubeStash's own restore
    // (which fails on resource_already_exists_exception), but with the fix spelled out.
    world.create_restore_session("es-restore-2", json!({}));
    let e = run_restore(world.client(), NS, "es-restore-2", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exist") && e.contains("products"), "{e}");
    world.create_restore_session("es-restore-3", json!({"existingIndex": "overwrite"}));
    run_restore(world.client(), NS, "es-restore-3", &snapshot, &world.opts()).unwrap();
    assert_eq!(print(&es).indices["products"], *products);
}

/// A TLS-terminating reverse proxy (Python's standard library) in front of `upstream`, with a
/// server certificate for 127.0.0.1 issued by a CA made here (openssl).
struct TlsFront {
    child: std::process::Child,
    url: String,
    ca_pem: String,
    _dir: TempDir,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TLS_PROXY: &str = r#"
import http.client, http.server, ssl, sys
cert, key, upstream, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def forward(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else None
        conn = http.client.HTTPConnection(upstream, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

fn tls_front(upstream: &str) -> TlsFront {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kstash test CA",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &d("server.key"),
        "-out",
        &d("server.csr"),
    ]);
    std::fs::write(
        dir.path().join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &d("server.csr"),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &d("ext.cnf"),
        "-out",
        &d("server.pem"),
    ]);
    let port = kstash_testsupport::ports::free_port().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_string();
    let mut child = Command::new("python3")
        .args([
            "-c",
            TLS_PROXY,
            &d("server.pem"),
            &d("server.key"),
            &upstream,
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    TlsFront {
        child,
        url: format!("https://127.0.0.1:{port}"),
        ca_pem: std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        _dir: dir,
    }
}

#[test]
fn https_with_the_appbinding_ca_bundle() {
    use base64::Engine as _;
    let es = Elasticsearch::start().unwrap();
    es_data::seed_varied(&es, 800).unwrap();
    let before = print(&es);
    let tls = tls_front(&es.url);
    let world = World::new(&tls.url, ES_USER, ES_PASSWORD, false);
    let mut ab = world
        .client()
        .get(&meta::APP_BINDING, NS, APPBINDING)
        .unwrap()
        .unwrap();
    ab["spec"]["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&tls.ca_pem));
    world.client().update(ab).unwrap();
    world.create_backup_configuration(json!({"waitTimeout": "5"}));
    let snapshot = world.trigger_backup_session("es-backup-1");
    run_backup(world.client(), NS, "es-backup-1", &world.opts()).unwrap();
    es_data::destroy(&es).unwrap();
    world.create_restore_session("es-restore-1", json!({"waitTimeout": "5"}));
    run_restore(world.client(), NS, "es-restore-1", &snapshot, &world.opts()).unwrap();
    before.assert_same(&print(&es));

    // Without the CA bundle the server's certificate is not trusted.
    let mut ab = world
        .client()
        .get(&meta::APP_BINDING, NS, APPBINDING)
        .unwrap()
        .unwrap();
    ab["spec"]["clientConfig"]
        .as_object_mut()
        .unwrap()
        .remove("caBundle");
    world.client().update(ab).unwrap();
    world.create_restore_session("es-restore-2", json!({"waitTimeout": "1"}));
    let e = run_restore(world.client(), NS, "es-restore-2", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not ready") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
}
