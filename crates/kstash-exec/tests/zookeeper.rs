//! The native ZooKeeper stream driver end to end against a real ZooKeeper 3.8 (testsupport):
//! over 1,000 nodes with binary data, digest/world/ip ACLs, sequential and container nodes are
//! backed up through `run_backup` (ephemeral nodes left out), destroyed, restored through
//! `run_restore`, and every node's data hash, ACL and mode must be identical. Failures (a wrong
//! password, a node kstash may not read, the server down, the connection cut halfway through
//! the walk or the restore by a `TcpCutProxy`) fail the component clearly and leave
//! no restic snapshot; restoring into a non-empty tree keeps existing nodes unless
//! `existingNode: overwrite`.

use std::collections::BTreeMap;

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::meta::{self, ResourceType};
use kstash_api::storage::{ComponentPhase, Snapshot};
use kstash_embedded::Store;
use kstash_exec::{ExecOptions, LocalMode, run_backup, run_restore};
use kstash_testsupport::zookeeper_tree::{NodePrint, ZkSession, create_varied_tree, digest_acl, zk};
use kstash_testsupport::{CutPlan, Restic, TcpCutProxy, ZooKeeper};
use serde_json::{Value, json};
use tempfile::TempDir;

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";
const SESSION: &str = "zk-session";
const CONFIG: &str = "zk-backup";
const REPO: &str = "zk-repo";
const REPO_DIR: &str = "zookeeper/demo";
const ENCRYPTION_SECRET: &str = "encrypt-secret";
const STORAGE: &str = "local-storage";
const APPBINDING: &str = "zk";
const AUTH_SECRET: &str = "zk-auth";
const USER: &str = "kstash";
const ZK_PASSWORD: &str = "zk-digest-password";

struct World {
    dir: TempDir,
    store: Store,
}

impl World {
    /// Store, storage, encryption Secret, the zookeeper Addon, and an AppBinding reaching
    /// `127.0.0.1:port` (URL form) with `user`/`password` in its Secret, or no Secret.
    fn new(port: u16, auth: Option<(&str, &str)>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db")).unwrap();
        let w = World { dir, store };
        kstash_embedded::server::install_catalog(
            &w.store,
            &[(
                "catalog/zookeeper-addon.yaml",
                include_str!("../../../catalog/zookeeper-addon.yaml"),
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
        let mut spec = json!({
            "type": "kubedb.com/zookeeper",
            "version": "3.8.4",
            "clientConfig": {"url": format!("zookeeper://127.0.0.1:{port}")},
        });
        if let Some((user, password)) = auth {
            w.create(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": AUTH_SECRET, "namespace": NS},
                "stringData": {"username": user, "password": password}
            }));
            spec["secret"] = json!({"name": AUTH_SECRET});
        }
        w.create(json!({
            "apiVersion": "appcatalog.appscode.com/v1alpha1",
            "kind": "AppBinding",
            "metadata": {"name": APPBINDING, "namespace": NS},
            "spec": spec
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
        match self.restic().run(&["snapshots", "--json"]) {
            Ok(out) => serde_json::from_str::<Vec<Value>>(&out).unwrap().len(),
            // No repository at all: nothing was written.
            Err(_) => 0,
        }
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
                    "addon": {"name": "zookeeper-addon", "tasks": [{"name": "logical-backup", "params": params}]}
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
                "addon": {"name": "zookeeper-addon", "tasks": [{"name": "logical-backup-restore", "params": params}]}
            }
        }));
    }

    fn snapshot(&self, name: &str) -> Snapshot {
        self.store.must_get(NS, name).unwrap()
    }

    fn dump_component(&self, snapshot: &str) -> kstash_api::storage::Component {
        self.snapshot(snapshot).status.unwrap().components["dump"].clone()
    }

    /// Back up once through a fresh BackupSession; the Snapshot's name.
    fn backup(&self, session: &str) -> String {
        let snapshot = self.trigger_backup_session(session);
        run_backup(self.client(), NS, session, &self.opts())
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("backup {session}: {e}"));
        snapshot
    }

    fn restore(&self, name: &str, snapshot: &str, params: Value) -> Result<(), String> {
        self.create_restore_session(name, params);
        let out = run_restore(self.client(), NS, name, snapshot, &self.opts())
            .map(|_| ())
            .map_err(|e| e.to_string());
        let rs: RestoreSession = self.store.must_get(NS, name).unwrap();
        let phase = rs.status.unwrap().components["dump"].phase;
        let want = if out.is_ok() {
            RestorePhase::Succeeded
        } else {
            RestorePhase::Failed
        };
        assert_eq!(phase, Some(want), "{out:?}");
        out
    }
}

fn session(zk: &ZooKeeper) -> ZkSession {
    ZkSession::connect(&zk.connect_string(), Some((USER, ZK_PASSWORD))).unwrap()
}

fn differences(a: &BTreeMap<String, NodePrint>, b: &BTreeMap<String, NodePrint>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, pa) in a {
        match b.get(path) {
            None => out.push(format!("{path} missing")),
            Some(pb) if pa != pb => out.push(format!("{path}: {pa:?} != {pb:?}")),
            _ => {}
        }
    }
    out.extend(
        b.keys()
            .filter(|p| !a.contains_key(*p))
            .map(|p| format!("{p} extra")),
    );
    out
}

#[test]
fn a_varied_tree_backs_up_and_restores_identically() {
    let zk = ZooKeeper::start().unwrap();
    let s = session(&zk);
    let started = std::time::Instant::now();
    let tree = create_varied_tree(&s, USER, ZK_PASSWORD).unwrap();
    eprintln!("creating {} nodes took {:?}", tree.nodes, started.elapsed());
    assert!(tree.nodes >= 1000, "{}", tree.nodes);
    let before = s.fingerprint().unwrap();
    // Every node but the ephemeral ones, plus `/`.
    assert_eq!(before.len(), tree.nodes + 1);
    // ZooKeeper reports container nodes to clients as persistent ones (ephemeralOwner 0), so
    // they come back as persistent nodes; the fingerprint cannot tell either.
    assert_eq!(before["/app/containers"].mode, "persistent");
    assert!(
        before["/app/configs/cfg-0002"]
            .acl
            .iter()
            .any(|a| a.starts_with("r ip:127.0.0.1"))
    );

    let world = World::new(zk.port, Some((USER, ZK_PASSWORD)));
    world.create_backup_configuration(json!({}));
    let started = std::time::Instant::now();
    let snapshot = world.backup("zk-backup-1");
    eprintln!("backup of {} nodes took {:?}", tree.nodes, started.elapsed());
    let dump = world.dump_component(&snapshot);
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded), "{dump:?}");
    assert_eq!(dump.path, format!("repository/v1/{SESSION}/dump"));
    let summary = dump.restic_stats[0].summary.as_ref().unwrap();
    assert_eq!(summary.host_path, "zookeeper.ndjson");

    // The real restic reads the stream: a header, one record per node, the end record.
    let dumped = world
        .restic()
        .run(&["dump", "latest", "/zookeeper.ndjson"])
        .unwrap();
    let lines: Vec<Value> = dumped.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["kind"], "header");
    assert_eq!(lines[0]["root"], "/");
    assert_eq!(lines.len(), tree.nodes + 1 + 2);
    let end = lines.last().unwrap();
    assert_eq!(end["kind"], "end");
    assert_eq!(end["nodes"], json!(tree.nodes + 1));
    assert_eq!(end["ephemeralSkipped"], json!(tree.ephemeral.len()));
    for eph in &tree.ephemeral {
        assert!(!dumped.contains(&format!("\"path\":\"{eph}\"")), "{eph}");
    }
    assert!(!dumped.contains("\"path\":\"/zookeeper"));
    assert!(!dumped.contains(ZK_PASSWORD));
    // Parents come before their children.
    let mut seen = std::collections::HashSet::new();
    for l in &lines[1..lines.len() - 1] {
        let path = l["path"].as_str().unwrap().to_string();
        if path != "/" {
            let parent = match path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => path[..i].to_string(),
                None => unreachable!(),
            };
            assert!(seen.contains(&parent), "{path} before {parent}");
        }
        seen.insert(path);
    }

    let wiped = s.wipe().unwrap();
    assert_eq!(wiped, tree.nodes + tree.ephemeral.len());
    assert_eq!(s.fingerprint().unwrap().len(), 1);

    let started = std::time::Instant::now();
    world.restore("zk-restore-1", &snapshot, json!({})).unwrap();
    eprintln!("restore took {:?}", started.elapsed());
    let after = s.fingerprint().unwrap();
    let diff = differences(&before, &after);
    assert!(
        diff.is_empty(),
        "{} differences: {:?}",
        diff.len(),
        &diff[..diff.len().min(10)]
    );
    for eph in &tree.ephemeral {
        assert!(!s.exists(eph).unwrap(), "{eph} was restored");
    }
    // Sequential nodes keep their numbers.
    for seq in &tree.sequential {
        assert!(s.exists(seq).unwrap(), "{seq}");
    }
    // The world-read-only parent is closed again: nobody may create in it.
    let e = s
        .create(
            "/app/public/new",
            b"",
            &zk::Acls::anyone_all(),
            zk::CreateMode::Persistent,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not authorized"), "{e}");
}

#[test]
fn restoring_into_a_non_empty_tree_keeps_existing_nodes_unless_asked_to_overwrite() {
    let zk = ZooKeeper::start().unwrap();
    let s = session(&zk);
    let tree = create_varied_tree(&s, USER, ZK_PASSWORD).unwrap();
    s.set_data("/", b"root data").unwrap();
    let before = s.fingerprint().unwrap();

    let world = World::new(zk.port, Some((USER, ZK_PASSWORD)));
    world.create_backup_configuration(json!({}));
    let snapshot = world.backup("zk-backup-1");

    // Change the tree: new data and ACL on some nodes, a deleted subtree, a new node.
    s.set_data("/", b"changed root").unwrap();
    s.set_data("/app/configs/cfg-0001", b"changed").unwrap();
    s.set_data("/app/secure/s-007/key", b"rotated").unwrap();
    s.set_acl(
        "/app/configs/cfg-0005",
        &[digest_acl(USER, ZK_PASSWORD, zk::Permission::ALL)],
    )
    .unwrap();
    for n in 0..10 {
        s.delete(&format!("/other/g-3/n-{n}")).unwrap();
    }
    s.delete("/other/g-3").unwrap();
    s.create(
        "/app/configs/added",
        b"new",
        &zk::Acls::anyone_all(),
        zk::CreateMode::Persistent,
    )
    .unwrap();
    let changed = s.fingerprint().unwrap();

    // keep (the default): the deleted nodes come back, changed nodes stay changed.
    world.restore("zk-restore-keep", &snapshot, json!({})).unwrap();
    let kept = s.fingerprint().unwrap();
    assert_eq!(kept["/other/g-3/n-4"], before["/other/g-3/n-4"]);
    assert_eq!(kept["/other/g-3"], before["/other/g-3"]);
    for p in [
        "/",
        "/app/configs/cfg-0001",
        "/app/secure/s-007/key",
        "/app/configs/cfg-0005",
    ] {
        assert_eq!(kept[p], changed[p], "{p}");
        assert_ne!(kept[p], before[p], "{p}");
    }
    assert!(kept.contains_key("/app/configs/added"));
    assert_eq!(kept.len(), before.len() + 1);

    // overwrite: data and ACLs of existing nodes are the backed-up ones again; nodes the
    // backup does not have stay.
    world
        .restore(
            "zk-restore-overwrite",
            &snapshot,
            json!({"existingNode": "overwrite"}),
        )
        .unwrap();
    let mut overwritten = s.fingerprint().unwrap();
    assert!(overwritten.remove("/app/configs/added").is_some());
    let diff = differences(&before, &overwritten);
    assert!(diff.is_empty(), "{diff:?}");
    assert_eq!(s.get_data("/").unwrap(), b"root data");
    assert!(tree.nodes > 1000);

    // A bad value is refused up front.
    let e = world
        .restore("zk-restore-bad", &snapshot, json!({"existingNode": "replace"}))
        .unwrap_err();
    assert!(e.contains("parameter existingNode is \"replace\""), "{e}");
}

#[test]
fn wrong_password_fails_the_component_naming_the_secret_and_the_node() {
    let zk = ZooKeeper::start().unwrap();
    let s = session(&zk);
    create_varied_tree(&s, USER, ZK_PASSWORD).unwrap();
    let world = World::new(zk.port, Some((USER, "not-the-password")));
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("Secret {NS}/{AUTH_SECRET}"))
            && e.contains("NoAuth")
            && e.contains("reading znode /app/")
            && e.contains("the password in Secret")
            && e.contains(&format!("AppBinding {NS}/{APPBINDING}")),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let dump = world.dump_component(&snapshot);
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("NoAuth"), "{}", dump.error);
    assert!(!dump.error.contains("not-the-password"));
    assert_eq!(world.restic_snapshot_count(), 0);
}

/// A Secret with a password and no `username` is refused before connecting (digest auth needs
/// both), naming the Secret and the key, instead of becoming an unauthenticated session.
#[test]
fn a_secret_without_a_username_is_refused_naming_the_secret_and_the_key() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = World::new(port, None);
    world.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": AUTH_SECRET, "namespace": NS},
        "stringData": {"password": ZK_PASSWORD}
    }));
    let mut ab = world
        .client()
        .get(&meta::APP_BINDING, NS, APPBINDING)
        .unwrap()
        .unwrap();
    ab["spec"]["secret"] = json!({"name": AUTH_SECRET});
    world.client().update(ab).unwrap();
    world.create_backup_configuration(json!({"waitTimeout": "60"}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let started = std::time::Instant::now();
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("{e} (after {:?})", started.elapsed());
    assert!(
        e.contains(&format!("Secret {NS}/{AUTH_SECRET} has no key username"))
            && e.contains("digest authentication needs both")
            && e.contains(&format!("AppBinding {NS}/{APPBINDING}")),
        "{e}"
    );
    // Refused up front, not after waiting for the (absent) server.
    assert!(!e.contains("is not ready after"), "{e}");
    assert!(!e.contains(ZK_PASSWORD), "{e}");
    assert_eq!(
        world.dump_component(&snapshot).phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn a_node_kstash_may_not_read_fails_naming_its_path_and_a_subtree_root_avoids_it() {
    let zk = ZooKeeper::start().unwrap();
    let s = session(&zk);
    let open = zk::Acls::anyone_all();
    s.create("/svc", b"", &open, zk::CreateMode::Persistent).unwrap();
    s.create("/svc/public", b"p", &open, zk::CreateMode::Persistent)
        .unwrap();
    s.create(
        "/svc/private",
        b"theirs",
        &[digest_acl("other", "other-pw", zk::Permission::ALL)],
        zk::CreateMode::Persistent,
    )
    .unwrap();

    s.create(
        "/svc/shared",
        b"s",
        &[
            zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
            digest_acl("other", "other-pw", zk::Permission::ALL),
        ],
        zk::CreateMode::Persistent,
    )
    .unwrap();

    // Anonymous (no Secret on the AppBinding).
    let world = World::new(zk.port, None);
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reading znode /svc/private was refused (NoAuth) for an unauthenticated session")
            && e.contains("add spec.secret"),
        "{e}"
    );
    assert_eq!(
        world.dump_component(&snapshot).phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);

    // A readable node whose ACL names another digest user: ZooKeeper hides that user's hash
    // from kstash (no admin on the node), so its ACL cannot be backed up.
    s.delete("/svc/private").unwrap();
    let world = World::new(zk.port, Some((USER, ZK_PASSWORD)));
    world.create_backup_configuration(json!({}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert_eq!(
        world.dump_component(&snapshot).phase,
        Some(ComponentPhase::Failed)
    );
    assert!(
        e.contains("the ACL of znode /svc/shared grants digest user other")
            && e.contains(&format!(
                "grant digest user {USER} (Secret {NS}/{AUTH_SECRET}) admin on /svc/shared"
            )),
        "{e}"
    );
    assert_eq!(world.restic_snapshot_count(), 0);

    // The readable part alone, with root, restores into a wiped tree.
    let world = World::new(zk.port, None);
    world.create_backup_configuration(json!({"root": "/svc/public"}));
    let snapshot = world.backup("zk-backup-2");
    s.delete("/svc/public").unwrap();
    s.delete("/svc/shared").unwrap();
    s.delete("/svc").unwrap();
    world.restore("zk-restore-1", &snapshot, json!({})).unwrap();
    assert_eq!(s.get_data("/svc/public").unwrap(), b"p");
    assert!(!s.exists("/svc/shared").unwrap());
}

#[test]
fn server_down_fails_after_the_wait_timeout_without_a_snapshot() {
    let port = kstash_testsupport::ports::free_port().unwrap();
    let world = World::new(port, Some((USER, ZK_PASSWORD)));
    world.create_backup_configuration(json!({"waitTimeout": "2"}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not ready after")
            && e.contains(&format!("127.0.0.1:{port}"))
            && e.contains(&format!("AppBinding {NS}/{APPBINDING}")),
        "{e}"
    );
    assert!(!e.contains(ZK_PASSWORD), "{e}");
    assert_eq!(
        world.dump_component(&snapshot).phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);
}

#[test]
fn a_connection_cut_halfway_fails_the_backup_and_the_restore_without_a_snapshot() {
    let zk = ZooKeeper::start().unwrap();
    let s = session(&zk);
    let tree = create_varied_tree(&s, USER, ZK_PASSWORD).unwrap();
    // The walk's replies break after 200 KiB (of about 1.5 MiB).
    let proxy = TcpCutProxy::start(("127.0.0.1", zk.port), CutPlan::from_upstream_after(200 << 10)).unwrap();
    let world = World::new(proxy.port(), Some((USER, ZK_PASSWORD)));
    world.create_backup_configuration(json!({"waitTimeout": "5"}));
    let snapshot = world.trigger_backup_session("zk-backup-1");
    let started = std::time::Instant::now();
    let e = run_backup(world.client(), NS, "zk-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!("after {:?}: {e}", started.elapsed());
    eprintln!(
        "connections {} cuts {} refused {}",
        proxy.connections(),
        proxy.cuts(),
        proxy.refused()
    );
    let appbinding = format!("AppBinding {NS}/{APPBINDING}");
    assert!(
        e.contains("zookeeper")
            && e.contains(&appbinding)
            && e.contains(&format!("127.0.0.1:{}", proxy.port()))
            && e.contains("reading znode /")
            && e.contains("the connection broke"),
        "{e}"
    );
    assert!(!e.contains(ZK_PASSWORD), "{e}");
    assert_eq!(proxy.cuts(), 1);
    let dump = world.dump_component(&snapshot);
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("the connection broke"), "{}", dump.error);
    assert_eq!(world.restic_snapshot_count(), 0);

    // Reset, and the server gone for good after it: the client's reconnects are refused, and
    // the backup still fails at once with the request the reset broke.
    proxy.set_plan(CutPlan::from_upstream_after(200 << 10).reset().then_refuse());
    let snapshot = world.trigger_backup_session("zk-backup-2");
    let e = run_backup(world.client(), NS, "zk-backup-2", &world.opts())
        .unwrap_err()
        .to_string();
    eprintln!(
        "connections {} cuts {} refused {}: {e}",
        proxy.connections(),
        proxy.cuts(),
        proxy.refused()
    );
    assert!(
        e.contains(&appbinding) && e.contains("reading znode /") && e.contains("the connection broke"),
        "{e}"
    );
    assert_eq!(proxy.cuts(), 2);
    assert_eq!(
        world.dump_component(&snapshot).phase,
        Some(ComponentPhase::Failed)
    );
    assert_eq!(world.restic_snapshot_count(), 0);

    // Unbroken, the same target backs up; then the restore's creates break after 200 KiB.
    proxy.set_plan(CutPlan::none());
    let snapshot = world.backup("zk-backup-3");
    assert_eq!(world.restic_snapshot_count(), 1);
    s.wipe().unwrap();
    proxy.set_plan(CutPlan::to_upstream_after(200 << 10).reset());
    let started = std::time::Instant::now();
    let e = world
        .restore("zk-restore-1", &snapshot, json!({"waitTimeout": "5"}))
        .unwrap_err();
    eprintln!("after {:?}: {e}", started.elapsed());
    eprintln!(
        "connections {} cuts {} refused {}",
        proxy.connections(),
        proxy.cuts(),
        proxy.refused()
    );
    assert!(
        e.contains("zookeeper")
            && e.contains(&appbinding)
            && e.contains("creating znode /")
            && e.contains("the connection broke"),
        "{e}"
    );
    assert_eq!(proxy.cuts(), 3);
    let restored = s.fingerprint().unwrap().len();
    eprintln!("{restored} of {} nodes restored before the cut", tree.nodes + 1);
    assert!(restored < tree.nodes + 1, "{restored}");
}
