//! The volume driver end to end, on a real embedded store and a `local` BackupStorage in a temp
//! directory: objects are created the way the controller would create them (Addon,
//! BackupStorage, Secret, BackupConfiguration, Repository, then per backup a BackupSession and
//! its Snapshot), the job programs run, and the real `restic` binary checks what they wrote.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::core::{RestorePhase, RestoreSession};
use kstash_api::meta::{self, ResourceType};
use kstash_api::resolve;
use kstash_api::storage::{BackupProgress, BackupStorage, ComponentPhase, Repository, Snapshot};
use kstash_api::storage_ops::StorageOps;
use kstash_embedded::Store;
use kstash_exec::{ExecError, ExecOptions, LocalMode, StorageOpsImpl, access, run_backup, run_restore};
use kstash_testsupport::Restic;
use serde_json::{Value, json};
use tempfile::TempDir;

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";
const SESSION: &str = "demo-session";
const CONFIG: &str = "sample-backup";
const REPO: &str = "local-repo";
const REPO_DIR: &str = "deployment/demo";
const ENCRYPTION_SECRET: &str = "encrypt-secret";
const STORAGE: &str = "local-storage";

// ---- the world: a store, a storage directory and a directory tree to back up ----------------

/// A temp directory holding the embedded store, the storage's host path and the data.
struct World {
    dir: TempDir,
    store: Store,
}

impl World {
    /// A store with the workload Addon, a local BackupStorage and the encryption Secret.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.db")).unwrap();
        let world = World { dir, store };
        world.install_workload_addon("workload-backup");
        world.create_local_storage();
        world.create_encryption_secret(PASSWORD);
        world
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

    /// The BackupStorage's host path.
    fn storage_root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The directory tree that is backed up.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A fresh directory to restore into.
    fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Where the restic repository of component `dump` lives.
    fn component_repo(&self) -> PathBuf {
        self.storage_root()
            .join(REPO_DIR)
            .join("repository/v1")
            .join(SESSION)
            .join("dump")
    }

    /// The real restic binary on the component repository.
    fn restic(&self) -> Restic {
        Restic::new(self.component_repo().display().to_string(), PASSWORD).unwrap()
    }

    fn create(&self, obj: Value) -> Value {
        self.store.create(obj).unwrap()
    }

    /// Replace the status of an object, as the controller's status writes do.
    fn set_status(&self, rt: &'static ResourceType, name: &str, status: Value) {
        let mut obj = self.client().get(rt, NS, name).unwrap().unwrap();
        obj["status"] = status;
        self.client().update_status(obj).unwrap();
    }

    // ---- fixtures, in the order the controller and the user create them ----

    /// The `workload-addon` catalog entry, its backup task calling `backup_function`.
    fn install_workload_addon(&self, backup_function: &str) {
        let addon = json!({
            "apiVersion": "addons.kubestash.com/v1alpha1",
            "kind": "Addon",
            "metadata": {"name": "workload-addon"},
            "spec": {
                "backupTasks": [{
                    "name": "logical-backup",
                    "function": backup_function,
                    "driver": "Restic",
                    "executor": "Job",
                    "parameters": [
                        {"name": "paths", "usage": "Comma separated list of paths to backup", "required": true},
                        {"name": "exclude", "usage": "Comma separated list of patterns to exclude"},
                        {"name": "enableCache", "default": "true"}
                    ]
                }],
                "restoreTasks": [{
                    "name": "logical-backup-restore",
                    "function": "workload-restore",
                    "driver": "Restic",
                    "executor": "Job",
                    "parameters": [
                        {"name": "include", "usage": "Patterns to include"},
                        {"name": "exclude", "usage": "Patterns to exclude"}
                    ]
                }]
            }
        });
        match self.client().get(&meta::ADDON, "", "workload-addon").unwrap() {
            None => {
                self.create(addon);
            }
            Some(old) => {
                let mut new = addon;
                new["metadata"] = old["metadata"].clone();
                self.client().update(new).unwrap();
            }
        }
    }

    fn create_local_storage(&self) {
        std::fs::create_dir_all(self.storage_root()).unwrap();
        self.create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "BackupStorage",
            "metadata": {"name": STORAGE, "namespace": NS},
            "spec": {
                "storage": {
                    "provider": "local",
                    "local": {
                        "mountPath": "/kubestash",
                        "hostPath": {"path": self.storage_root().display().to_string()}
                    }
                },
                "usagePolicy": {"allowedNamespaces": {"from": "Same"}},
                "deletionPolicy": "WipeOut"
            }
        }));
    }

    fn create_encryption_secret(&self, password: &str) {
        self.create(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ENCRYPTION_SECRET, "namespace": NS},
            "stringData": {"RESTIC_PASSWORD": password}
        }));
    }

    /// The BackupConfiguration (one session, one repository, the workload addon with `params`)
    /// and the Repository the controller derives from it.
    fn create_backup_configuration(&self, params: Value) {
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": CONFIG, "namespace": NS},
            "spec": {
                "target": {"apiGroup": "apps", "kind": "Deployment", "name": "demo", "namespace": NS},
                "backends": [{"name": "local-backend", "storageRef": {"name": STORAGE, "namespace": NS}}],
                "sessions": [{
                    "name": SESSION,
                    "repositories": [{
                        "name": REPO,
                        "backend": "local-backend",
                        "directory": REPO_DIR,
                        "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
                    }],
                    "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup", "params": params}]}
                }]
            }
        }));
        self.create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Repository",
            "metadata": {"name": REPO, "namespace": NS},
            "spec": {
                "appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "demo", "namespace": NS},
                "storageRef": {"name": STORAGE, "namespace": NS},
                "path": REPO_DIR,
                "deletionPolicy": "Delete",
                "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
            }
        }));
    }

    /// A BackupSession and its Snapshot, as the controller creates them before starting the
    /// backup job. Returns the Snapshot's name.
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
            "metadata": {
                "name": snapshot,
                "namespace": NS,
                "labels": {"kubestash.com/repo-name": REPO}
            },
            "spec": {
                "snapshotID": "01J0000000000000000000000",
                "type": "FullBackup",
                "repository": REPO,
                "session": SESSION,
                "backupSession": backup_session,
                "version": "v1",
                "appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "demo", "namespace": NS},
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
            json!({
                "phase": "Running",
                "totalSnapshots": 1,
                "snapshots": [{"name": snapshot, "phase": "Pending", "repository": REPO}]
            }),
        );
        snapshot
    }

    /// A RestoreSession of Snapshot `snapshot` with the restore task's `params`.
    fn create_restore_session(&self, name: &str, params: Value) {
        self.create(json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "RestoreSession",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "dataSource": {
                    "repository": REPO,
                    "snapshot": "latest",
                    "encryptionSecret": {"name": ENCRYPTION_SECRET, "namespace": NS}
                },
                "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup-restore", "params": params}]}
            }
        }));
    }

    fn snapshot(&self, name: &str) -> Snapshot {
        self.store.must_get(NS, name).unwrap()
    }

    /// Ids of the restic snapshots in the component repository, as restic lists them.
    fn restic_snapshot_ids(&self) -> Vec<String> {
        let out = self.restic().run(&["snapshots", "--json"]).unwrap();
        let list: Vec<Value> = serde_json::from_str(&out).unwrap();
        list.iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }
}

// ---- the data ------------------------------------------------------------------------------

/// A tree with nested directories, a symlink, an empty file, an empty directory, a file the
/// `*.tmp` exclude leaves out, and a 3 MiB random file.
fn write_sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("app/config/nested")).unwrap();
    std::fs::create_dir_all(root.join("app/empty-dir")).unwrap();
    std::fs::write(root.join("app/config/settings.yaml"), "replicas: 3\nmode: fast\n").unwrap();
    std::fs::write(root.join("app/config/nested/deep.txt"), "deep\n".repeat(1000)).unwrap();
    std::fs::write(root.join("app/empty"), b"").unwrap();
    std::fs::write(
        root.join("app/random.bin"),
        kstash_testsupport::data::noise(3 << 20, 7),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("app/config/settings.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    symlink("config/nested", root.join("app/link-to-nested")).unwrap();
    std::fs::write(root.join("app/scratch.tmp"), b"left out").unwrap();
}

/// Every entry below `root` (relative path → description: kind, mode, content or link target).
fn tree_listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let desc = if md.file_type().is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&path).unwrap().display())
            } else if md.is_dir() {
                walk(root, &path, out);
                format!("dir {mode:o}")
            } else {
                let content = std::fs::read(&path).unwrap();
                format!("file {mode:o} {} bytes, sha {:x}", content.len(), fnv(&content))
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A content fingerprint (FNV-1a, 64 bits) for comparing trees.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The tree at `restored` equals the one at `original`, except for `left_out` (relative paths
/// that must be missing).
fn assert_same_tree(original: &Path, restored: &Path, left_out: &[&str]) {
    let mut want = tree_listing(original);
    for l in left_out {
        assert!(want.remove(*l).is_some(), "{l} is not in the original tree");
    }
    let have = tree_listing(restored);
    assert_eq!(have, want, "restored tree {} differs", restored.display());
}

/// `restored_root/<absolute original path>`: where a restore with target `restored_root` puts a
/// backed-up directory.
fn under(restored_root: &Path, original: &Path) -> PathBuf {
    restored_root.join(original.strip_prefix("/").unwrap())
}

/// A world with a sample tree and a BackupConfiguration backing it up (excluding `*.tmp`).
fn world_with_sample_data() -> World {
    let world = World::new();
    write_sample_tree(&world.data());
    world.create_backup_configuration(json!({
        "paths": world.data().display().to_string(),
        "exclude": "*.tmp"
    }));
    world
}

// ---- backups ---------------------------------------------------------------------------------

#[test]
fn backup_records_the_component_and_restic_restores_the_same_tree() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let report = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();
    assert_eq!(report.snapshots.len(), 1);
    assert!(report.snapshots[0].repository_created);

    let snap = world.snapshot(&snapshot);
    let status = snap.status.as_ref().unwrap();
    assert_eq!(status.total_components, 1);
    assert_eq!(
        status.phase.map(|p| format!("{p:?}")).as_deref(),
        Some("Pending"),
        "the executor leaves the snapshot's phase to the controller"
    );
    let dump = &status.components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded), "{dump:?}");
    assert_eq!(dump.path, format!("repository/v1/{SESSION}/dump"));
    assert_eq!(dump.driver, Some(kstash_api::common::Driver::Restic));
    assert_eq!(dump.integrity, Some(true));
    assert!(dump.error.is_empty());
    assert!(
        !dump.duration.is_empty() && dump.duration.ends_with('s'),
        "{}",
        dump.duration
    );
    assert!(dump.size.ends_with("MiB"), "3 MiB of noise stored: {}", dump.size);
    assert_eq!(dump.restic_stats.len(), 1);
    let summary = dump.restic_stats[0].summary.as_ref().unwrap();
    assert_eq!(summary.host_path, world.data().display().to_string());
    assert_eq!(summary.id.len(), 64);
    assert!(summary.start_time.is_some() && summary.end_time.is_some());
    assert!(
        summary.size.ends_with("MiB") && summary.uploaded.ends_with("MiB"),
        "{summary:?}"
    );

    // The real restic reads what we wrote: the snapshot carries the session's tags, restores
    // byte for byte (without the excluded file) and the repository checks clean.
    let listed: Vec<Value> =
        serde_json::from_str(&world.restic().run(&["snapshots", "--json"]).unwrap()).unwrap();
    assert_eq!(listed.len(), 1);
    let bs_uid = world
        .store
        .get(&meta::BACKUP_SESSION, NS, "sample-backup-1")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let tags: Vec<&str> = listed[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&format!("session-uid={bs_uid}").as_str()),
        "{tags:?}"
    );
    assert!(
        tags.contains(&format!("kubestash.com/session-name={SESSION}").as_str()),
        "{tags:?}"
    );
    assert_eq!(listed[0]["hostname"], "kstash-test-host");

    let target = world.scratch("restic-restore");
    world
        .restic()
        .run(&["restore", &summary.id, "--target", &target.display().to_string()])
        .unwrap();
    assert_same_tree(
        &world.data(),
        &under(&target, &world.data()),
        &["app/scratch.tmp"],
    );
    world.restic().run(&["check", "--read-data"]).unwrap();
}

/// KubeStash 2026: while the backup runs, the executor writes live progress into the running
/// component's `resticStats[0].progress`; the final status carries the completed progress.
#[test]
fn a_running_backup_writes_live_progress_into_the_snapshot_and_ends_at_100_percent() {
    let world = world_with_sample_data();
    for i in 0..8 {
        std::fs::write(
            world.data().join(format!("app/bulk-{i}.bin")),
            kstash_testsupport::data::noise(4 << 20, 100 + i),
        )
        .unwrap();
    }
    let snapshot = world.trigger_backup_session("sample-backup-1");
    let opts = ExecOptions {
        progress_period: std::time::Duration::from_millis(2),
        ..world.opts()
    };
    let events = world.store.watch();
    run_backup(world.client(), NS, "sample-backup-1", &opts).unwrap();

    let live: Vec<BackupProgress> = events
        .try_iter()
        .filter(|e| e.object["kind"] == "Snapshot" && e.object["metadata"]["name"] == snapshot.as_str())
        .filter_map(|e| {
            let snap: Snapshot = serde_json::from_value(e.object).unwrap();
            let dump = snap.status?.components.remove("dump")?;
            (dump.phase == Some(ComponentPhase::Running))
                .then(|| dump.restic_stats.into_iter().next()?.progress)
                .flatten()
        })
        .collect();
    assert!(!live.is_empty(), "no progress was written while the backup ran");
    for p in &live {
        assert!(!p.backup_done.is_empty(), "{p:?}");
        if p.total_files > 0 {
            assert!(p.files_done <= p.total_files, "{p:?}");
        }
        if !p.percent_done.is_empty() {
            let percent: f64 = p.percent_done.trim_end_matches('%').parse().unwrap();
            assert!((0.0..=100.0).contains(&percent), "{p:?}");
            assert!(!p.total.is_empty(), "a percentage needs a total: {p:?}");
        }
    }
    let seconds: Vec<i64> = live.iter().map(|p| p.seconds_elapsed).collect();
    assert!(seconds.is_sorted(), "elapsed time only grows: {seconds:?}");

    let done = world
        .snapshot(&snapshot)
        .status
        .unwrap()
        .components
        .remove("dump")
        .unwrap();
    assert_eq!(done.phase, Some(ComponentPhase::Succeeded));
    let last = done.restic_stats[0].progress.as_ref().unwrap();
    assert_eq!(last.percent_done, "100.00%");
    assert_eq!((last.files_done, last.total_files), (12, 12), "{last:?}");
    assert_eq!(last.backup_done, last.total);
    assert!(last.total.ends_with("MB"), "36 MB of data: {last:?}");
}

#[test]
fn a_retried_backup_session_reuses_its_snapshot() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let first = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();
    let second = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();

    let first_ref = &first.snapshots[0].restic_snapshots[0];
    let second_ref = &second.snapshots[0].restic_snapshots[0];
    assert!(!first_ref.reused && second_ref.reused);
    assert_eq!(first_ref.id, second_ref.id);
    assert_eq!(world.restic_snapshot_ids(), std::slice::from_ref(&first_ref.id));
    let dump = &world.snapshot(&snapshot).status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Succeeded));
    assert_eq!(dump.restic_stats[0].summary.as_ref().unwrap().id, first_ref.id);

    // A new BackupSession (a new uid) is a new backup.
    world.trigger_backup_session("sample-backup-2");
    let third = run_backup(world.client(), NS, "sample-backup-2", &world.opts()).unwrap();
    assert_ne!(third.snapshots[0].restic_snapshots[0].id, first_ref.id);
    assert_eq!(world.restic_snapshot_ids().len(), 2);
}

// ---- restores --------------------------------------------------------------------------------

#[test]
fn restore_session_restores_into_another_directory_and_include_selects_a_subset() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");
    run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();

    let target = world.scratch("restored");
    world.create_restore_session("restore-all", json!({"target": target.display().to_string()}));
    let report = run_restore(world.client(), NS, "restore-all", &snapshot, &world.opts()).unwrap();
    assert_eq!(report.components.len(), 1);
    assert_same_tree(
        &world.data(),
        &under(&target, &world.data()),
        &["app/scratch.tmp"],
    );

    let rs: RestoreSession = world.store.must_get(NS, "restore-all").unwrap();
    let status = rs.status.unwrap();
    assert_eq!(status.total_components, 1);
    let dump = &status.components["dump"];
    assert_eq!(dump.phase, Some(RestorePhase::Succeeded), "{dump:?}");
    assert!(!dump.duration.is_empty());
    let progress = dump.progress.as_ref().unwrap();
    assert_eq!(progress.percent_done, "100.00%");
    assert_eq!(progress.total_files, 4, "settings, deep, empty, random");
    assert_eq!(progress.files_done, 4);
    // Progress sizes are KubeStash's (Go `units.HumanSize`, decimal): `3.151MB`.
    assert!(progress.total.ends_with("MB"), "{progress:?}");

    // include: only the nested config directory (and the directories leading to it).
    let subset = world.scratch("subset");
    world.create_restore_session(
        "restore-subset",
        json!({
            "target": subset.display().to_string(),
            "include": format!("{}/app/config/nested", world.data().display())
        }),
    );
    run_restore(world.client(), NS, "restore-subset", &snapshot, &world.opts()).unwrap();
    let restored = tree_listing(&under(&subset, &world.data()));
    let names: Vec<&str> = restored.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "app",
            "app/config",
            "app/config/nested",
            "app/config/nested/deep.txt"
        ]
    );
}

#[test]
fn restore_refuses_include_with_exclude_and_records_the_failure() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");
    run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();

    world.create_restore_session("both", json!({"include": "/a", "exclude": "/b"}));
    let e = run_restore(world.client(), NS, "both", &snapshot, &world.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("include and exclude are mutually exclusive"), "{e}");
    let rs: RestoreSession = world.store.must_get(NS, "both").unwrap();
    let dump = &rs.status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(RestorePhase::Failed));
    assert!(dump.error.contains("mutually exclusive"), "{}", dump.error);
}

#[test]
fn download_puts_each_component_under_destination_snapshot_component() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");
    run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();

    let destination = world.scratch("downloads");
    access::download_snapshot(world.client(), NS, &snapshot, &[], &destination, &world.opts()).unwrap();
    let component_dir = destination.join(&snapshot).join("dump");
    assert_same_tree(
        &world.data(),
        &under(&component_dir, &world.data()),
        &["app/scratch.tmp"],
    );

    // The CLI's view of the repository: one component, found in the storage.
    let repo: Repository = world.store.must_get(NS, REPO).unwrap();
    assert_eq!(
        resolve::password(
            world.client(),
            &resolve::repository(world.client(), repo.clone())
                .unwrap()
                .password
        )
        .unwrap(),
        PASSWORD
    );
    let components = access::component_repositories(world.client(), &repo, &world.opts()).unwrap();
    assert_eq!(components.len(), 1);
    assert_eq!(components[0].path, format!("repository/v1/{SESSION}/dump"));
    assert_eq!(components[0].open().unwrap().list_snapshots().unwrap().len(), 1);
}

// ---- failures --------------------------------------------------------------------------------

#[test]
fn a_missing_path_fails_the_component_and_writes_no_snapshot() {
    let world = World::new();
    let missing = world.dir.path().join("not-mounted");
    world.create_backup_configuration(json!({"paths": missing.display().to_string()}));
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let e = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap_err();
    assert!(matches!(e, ExecError::PathMissing { .. }), "{e}");
    let dump = &world.snapshot(&snapshot).status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(
        dump.error.contains(&missing.display().to_string()) && dump.error.contains("does not exist"),
        "{}",
        dump.error
    );
    assert!(dump.restic_stats.is_empty());
    assert!(
        !world.component_repo().join("snapshots").exists()
            || std::fs::read_dir(world.component_repo().join("snapshots"))
                .unwrap()
                .count()
                == 0,
        "no restic snapshot"
    );
}

#[test]
fn a_missing_encryption_secret_names_the_secret_and_key() {
    let world = world_with_sample_data();
    world
        .client()
        .delete(&meta::SECRET, NS, ENCRYPTION_SECRET)
        .unwrap();
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let e = run_backup(world.client(), NS, "sample-backup-1", &world.opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("Secret {NS}/{ENCRYPTION_SECRET} not found")) && e.contains("RESTIC_PASSWORD"),
        "{e}"
    );
    let dump = &world.snapshot(&snapshot).status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert_eq!(dump.error, e);
}

#[test]
fn a_component_repository_with_another_password_is_a_wrong_password() {
    let world = world_with_sample_data();
    std::fs::create_dir_all(world.component_repo().parent().unwrap()).unwrap();
    Restic::new(world.component_repo().display().to_string(), "another password")
        .unwrap()
        .run(&["init"])
        .unwrap();
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let e = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap_err();
    assert!(matches!(e, ExecError::WrongPassword { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("wrong password for repository")
            && text.contains(&world.component_repo().display().to_string())
            && text.contains(&format!("Secret {NS}/{ENCRYPTION_SECRET}")),
        "{text}"
    );
    let dump = &world.snapshot(&snapshot).status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("wrong password"), "{}", dump.error);
}

#[test]
fn an_unsupported_function_names_addon_task_and_function() {
    let world = world_with_sample_data();
    world.install_workload_addon("volumesnapshot-backup");
    let snapshot = world.trigger_backup_session("sample-backup-1");

    let e = run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap_err();
    let ExecError::UnsupportedFunction {
        addon,
        task,
        function,
        ..
    } = &e
    else {
        panic!("expected UnsupportedFunction, got {e}");
    };
    assert_eq!(
        (addon.as_str(), task.as_str(), function.as_str()),
        ("workload-addon", "logical-backup", "volumesnapshot-backup")
    );
    assert!(e.to_string().contains("function volumesnapshot-backup"), "{e}");
    let status = world.snapshot(&snapshot).status.unwrap();
    assert!(
        status.components.is_empty(),
        "no driver ran, no component written"
    );
}

#[test]
fn a_passed_deadline_fails_the_component() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");
    let opts = ExecOptions {
        deadline: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)),
        component: None,
        total_components: None,
        progress_period: kstash_exec::PROGRESS_PERIOD,
        ..world.opts()
    };
    let e = run_backup(world.client(), NS, "sample-backup-1", &opts).unwrap_err();
    assert!(matches!(e, ExecError::DeadlineExceeded { .. }), "{e}");
    let dump = &world.snapshot(&snapshot).status.unwrap().components["dump"];
    assert_eq!(dump.phase, Some(ComponentPhase::Failed));
    assert!(dump.error.contains("deadline exceeded"), "{}", dump.error);
}

// ---- storage operations ----------------------------------------------------------------------

#[test]
fn storage_ops_initialize_mirror_and_wipe() {
    let world = world_with_sample_data();
    let snapshot_name = world.trigger_backup_session("sample-backup-1");
    run_backup(world.client(), NS, "sample-backup-1", &world.opts()).unwrap();

    let ops = StorageOpsImpl::new(LocalMode::Host);
    let storage: BackupStorage = world.store.must_get(NS, STORAGE).unwrap();
    let repo: Repository = world.store.must_get(NS, REPO).unwrap();
    let snapshot = world.snapshot(&snapshot_name);
    let secret: Option<Secret> = None;

    ops.initialize(&storage, secret.as_ref()).unwrap();
    let metadata = std::fs::read_to_string(world.storage_root().join("metadata.yaml")).unwrap();
    assert!(metadata.contains("kind: BackendMeta"), "{metadata}");

    ops.write_repository(&storage, None, &repo).unwrap();
    ops.write_snapshot(&storage, None, &repo, &snapshot).unwrap();
    let yaml = world
        .storage_root()
        .join(REPO_DIR)
        .join("snapshots")
        .join(format!("{snapshot_name}.yaml"));
    assert!(yaml.is_file());
    let listed = ops.list_repositories(&storage, None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.metadata.name.as_deref(), Some(REPO));
    assert_eq!(listed[0].1.len(), 1);
    assert!(ops.repository_size(&storage, None, &repo).unwrap() > 3 << 20);
    assert!(ops.storage_size(&storage, None).unwrap() > ops.repository_size(&storage, None, &repo).unwrap());

    ops.wipe_snapshot(&storage, None, &repo, &snapshot, PASSWORD)
        .unwrap();
    assert!(world.restic_snapshot_ids().is_empty(), "restic lists no snapshot");
    assert!(!yaml.exists(), "the snapshot's YAML is gone");
    world.restic().run(&["check"]).unwrap();
    // Wiping again is harmless.
    ops.wipe_snapshot(&storage, None, &repo, &snapshot, PASSWORD)
        .unwrap();

    ops.wipe_repository(&storage, None, &repo).unwrap();
    assert!(!world.storage_root().join(REPO_DIR).exists());
    assert!(world.storage_root().join("metadata.yaml").is_file());
    ops.wipe_storage(&storage, None).unwrap();
    assert!(!world.storage_root().join("metadata.yaml").exists());
}

#[test]
fn storage_ops_errors_name_the_storage_and_operation() {
    let world = World::new();
    let ops = StorageOpsImpl::new(LocalMode::Host);
    let mut storage: BackupStorage = world.store.must_get(NS, STORAGE).unwrap();
    storage.spec.storage.local.as_mut().unwrap().mount_path.clear();
    storage.spec.storage.local.as_mut().unwrap().volume.host_path = None;
    let e = ops.initialize(&storage, None).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "BackupStorage {NS}/{STORAGE}: initialising the storage:"
        )) && e.contains("mountPath"),
        "{e}"
    );
}

// ---- one job per replica ---------------------------------------------------------------------

/// On Kubernetes a task that is not a singleton runs once per replica: each job writes and
/// restores only its own component (`dump-pod-<n>`) of the same Snapshot.
#[test]
fn per_replica_jobs_write_and_restore_their_own_components() {
    let world = world_with_sample_data();
    let snapshot = world.trigger_backup_session("sample-backup-1");
    let replica = |n: u32| ExecOptions {
        component: Some(format!("dump-pod-{n}")),
        total_components: Some(2),
        ..world.opts()
    };
    run_backup(world.client(), NS, "sample-backup-1", &replica(0)).unwrap();
    run_backup(world.client(), NS, "sample-backup-1", &replica(1)).unwrap();
    let status = world.snapshot(&snapshot).status.unwrap();
    assert_eq!(status.total_components, 2);
    let names: Vec<&str> = status.components.keys().map(String::as_str).collect();
    assert_eq!(names, ["dump-pod-0", "dump-pod-1"]);
    for (name, c) in &status.components {
        assert_eq!(c.phase, Some(ComponentPhase::Succeeded), "{name}: {c:?}");
        assert_eq!(c.path, format!("repository/v1/{SESSION}/{name}"));
    }

    // Replica 1's restore job restores component dump-pod-1 only.
    let target = world.scratch("replica-1");
    world.create_restore_session("restore-replica", json!({"target": target.display().to_string()}));
    let report = run_restore(world.client(), NS, "restore-replica", &snapshot, &replica(1)).unwrap();
    let restored: Vec<&str> = report.components.iter().map(|c| c.component.as_str()).collect();
    assert_eq!(restored, ["dump-pod-1"]);
    assert_same_tree(
        &world.data(),
        &under(&target, &world.data()),
        &["app/scratch.tmp"],
    );
    let rs: RestoreSession = world.store.must_get(NS, "restore-replica").unwrap();
    let st = rs.status.unwrap();
    assert_eq!(st.total_components, 2);
    assert_eq!(st.components.keys().collect::<Vec<_>>(), ["dump-pod-1"]);

    // A replica the Snapshot has no component for is refused, naming what it has.
    world.create_restore_session(
        "restore-replica-7",
        json!({"target": target.display().to_string()}),
    );
    let err = run_restore(world.client(), NS, "restore-replica-7", &snapshot, &replica(7))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no component dump-pod-7") && err.contains("dump-pod-0, dump-pod-1"),
        "{err}"
    );
}
