//! Fixture of the database driver tests: a Store holding a local BackupStorage, the encryption
//! Secret, a shipped catalog entry, and an AppBinding with its credentials Secret; the
//! BackupSession/Snapshot/RestoreSession objects the controller would create; and the restic
//! view of the component repository.
#![allow(dead_code)]

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::meta::{self, ResourceType};
use kstash_api::storage::{ComponentPhase, Snapshot};
use kstash_embedded::Store;
use kstash_exec::{ExecOptions, LocalMode};
use kstash_testsupport::Restic;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const NS: &str = "demo";
pub const PASSWORD: &str = "correct horse battery staple";
pub const SESSION: &str = "db-session";
pub const CONFIG: &str = "db-backup";
pub const REPO: &str = "db-repo";
pub const REPO_DIR: &str = "db/demo";
pub const ENCRYPTION_SECRET: &str = "encrypt-secret";
pub const STORAGE: &str = "local-storage";
pub const APPBINDING: &str = "db";
pub const AUTH_SECRET: &str = "db-auth";

/// The addon under test and how its AppBinding looks.
pub struct Target<'a> {
    /// `(path, yaml)` catalog entries to install.
    pub catalog: &'a [(&'a str, &'a str)],
    /// The Addon's name.
    pub addon: &'a str,
    /// AppBinding `spec.type`.
    pub app_type: &'a str,
    /// AppBinding `spec.clientConfig.service.scheme`.
    pub scheme: &'a str,
    pub port: u16,
    /// The credentials Secret's `stringData`; `Value::Null`: no Secret, and an AppBinding
    /// without `spec.secret`.
    pub credentials: Value,
}

pub struct World {
    pub dir: TempDir,
    pub store: Store,
    pub addon: String,
}

impl World {
    pub fn new(t: Target<'_>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db")).unwrap();
        let w = World {
            dir,
            store,
            addon: t.addon.to_string(),
        };
        // The shipped catalog entry, as `kstash server` installs it.
        kstash_embedded::server::install_catalog(&w.store, t.catalog).unwrap();
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
        let mut app_binding = json!({
            "apiVersion": "appcatalog.appscode.com/v1alpha1",
            "kind": "AppBinding",
            "metadata": {"name": APPBINDING, "namespace": NS},
            "spec": {
                "type": t.app_type,
                "clientConfig": {"service": {"scheme": t.scheme, "name": "127.0.0.1", "port": t.port}}
            }
        });
        if !t.credentials.is_null() {
            w.create(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": AUTH_SECRET, "namespace": NS},
                "stringData": t.credentials
            }));
            app_binding["spec"]["secret"] = json!({"name": AUTH_SECRET});
        }
        w.create(app_binding);
        w
    }

    pub fn client(&self) -> &dyn Resources {
        &self.store
    }

    pub fn opts(&self) -> ExecOptions {
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

    pub fn create(&self, obj: Value) -> Value {
        self.store.create(obj).unwrap()
    }

    fn set_status(&self, rt: &'static ResourceType, name: &str, status: Value) {
        let mut obj = self.client().get(rt, NS, name).unwrap().unwrap();
        obj["status"] = status;
        self.client().update_status(obj).unwrap();
    }

    /// restic on the component repository `dump` of the session.
    pub fn restic(&self) -> Restic {
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

    pub fn restic_snapshot_count(&self) -> usize {
        let out = self.restic().run(&["snapshots", "--json"]).unwrap();
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len()
    }

    pub fn create_backup_configuration(&self, params: Value) {
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
                    "addon": {"name": self.addon, "tasks": [{"name": "logical-backup", "params": params}]}
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
    pub fn trigger_backup_session(&self, backup_session: &str) -> String {
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

    pub fn create_restore_session(&self, name: &str, params: Value) {
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
                "addon": {"name": self.addon, "tasks": [{"name": "logical-backup-restore", "params": params}]}
            }
        }));
    }

    pub fn snapshot(&self, name: &str) -> Snapshot {
        self.store.must_get(NS, name).unwrap()
    }

    /// The phase and error of the Snapshot's `dump` component.
    pub fn dump_component(&self, snapshot: &str) -> (Option<ComponentPhase>, String) {
        let snap = self.snapshot(snapshot);
        let c = &snap.status.as_ref().unwrap().components["dump"];
        (c.phase, c.error.clone())
    }

    /// The phase of the RestoreSession's `dump` component.
    pub fn restore_phase(&self, name: &str) -> Option<RestorePhase> {
        let rs: RestoreSession = self.store.must_get(NS, name).unwrap();
        rs.status.unwrap().components["dump"].phase
    }
}
