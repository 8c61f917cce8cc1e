//! Tests of the store's Kubernetes semantics against a real SQLite file in a temporary directory.

use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;

use kstash_api::meta::{
    ADDON, BACKUP_CONFIGURATION, BACKUP_SESSION, BACKUP_STORAGE, FUNCTION, NAMESPACE, SECRET, SNAPSHOT,
};
use serde_json::json;
use tempfile::TempDir;

use super::*;

fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("kstash.db")).unwrap();
    (dir, store)
}

fn backup_config(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "BackupConfiguration",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "demo"}},
        "spec": {"target": {"name": "pg"}, "sessions": [{"name": "daily"}]}
    })
}

fn secret(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": {"password": "c2VjcmV0"}
    })
}

fn rv(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion").unwrap().parse().unwrap()
}

fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap()
}

fn owned_by(mut obj: Value, owner: &Value) -> Value {
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }]);
    obj
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn create_assigns_uid_resource_version_generation_and_timestamp() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let meta = &created["metadata"];
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert_eq!(meta["generation"], 1);
    assert_eq!(rv(&created), 1);
    let ts = meta["creationTimestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert!(
        ts.ends_with('Z') && !ts.contains('.'),
        "second precision UTC: {ts}"
    );

    let second = store.create(backup_config("demo", "other")).unwrap();
    assert_eq!(rv(&second), 2, "resourceVersion is a store-global revision");
    assert_ne!(meta["uid"], second["metadata"]["uid"]);

    let got = store.get(&BACKUP_CONFIGURATION, "demo", "sample-backup").unwrap();
    assert_eq!(got, created);
}

#[test]
fn create_rejects_duplicates_and_fills_in_defaults() {
    let (_dir, store) = temp_store();
    store.create(backup_config("demo", "sample-backup")).unwrap();
    let err = store.create(backup_config("demo", "sample-backup")).unwrap_err();
    assert!(err.is_already_exists());
    assert!(
        err.to_string().contains("BackupConfiguration demo/sample-backup"),
        "{err}"
    );

    let mut no_ns = secret("", "creds");
    no_ns["metadata"].as_object_mut().unwrap().remove("namespace");
    let created = store.create(no_ns).unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(
        store.get(&SECRET, "", "creds").is_ok(),
        "empty namespace means default"
    );

    let mut generated = secret("demo", "");
    generated["metadata"]["generateName"] = json!("creds-");
    let created = store.create(generated).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("creds-") && name.len() == "creds-".len() + 5,
        "{name}"
    );

    let nameless = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}});
    assert!(store.create(nameless).unwrap_err().is_invalid());
    let unknown = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    assert!(store.create(unknown).unwrap_err().is_invalid());
}

#[test]
fn create_drops_status_for_kinds_with_a_status_subresource() {
    let (_dir, store) = temp_store();
    let mut obj = backup_config("demo", "sample-backup");
    obj["status"] = json!({"phase": "Ready"});
    let created = store.create(obj).unwrap();
    assert!(created.get("status").is_none());
}

#[test]
fn cluster_scoped_kinds_reject_a_namespace() {
    let (_dir, store) = temp_store();
    for (api_version, kind) in [
        ("addons.kubestash.com/v1alpha1", "Addon"),
        ("addons.kubestash.com/v1alpha1", "Function"),
    ] {
        let obj = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "postgres", "namespace": "demo"}, "spec": {}});
        let err = store.create(obj).unwrap_err();
        assert!(err.is_invalid(), "{err}");
        assert!(err.to_string().contains("cluster-scoped"), "{err}");
    }
    let addon = json!({"apiVersion": "addons.kubestash.com/v1alpha1", "kind": "Addon",
        "metadata": {"name": "postgres-addon"}, "spec": {}});
    let created = store.create(addon).unwrap();
    assert!(created["metadata"].get("namespace").is_none());
    assert!(store.get(&ADDON, "", "postgres-addon").is_ok());
    assert!(
        store
            .get(&FUNCTION, "", "postgres-addon")
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn apply_twice_is_unchanged_and_keeps_the_resource_version() {
    let (_dir, store) = temp_store();
    let (outcome, first) = store.apply(backup_config("demo", "sample-backup")).unwrap();
    assert_eq!(outcome, ApplyOutcome::Created);
    let (outcome, second) = store.apply(backup_config("demo", "sample-backup")).unwrap();
    assert_eq!(outcome, ApplyOutcome::Unchanged);
    assert_eq!(rv(&second), rv(&first));
    assert_eq!(second, first);
    assert_eq!(store.current_revision().unwrap(), 1);

    let mut changed = backup_config("demo", "sample-backup");
    changed["spec"]["target"]["name"] = json!("mysql");
    let (outcome, third) = store.apply(changed).unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(generation(&third), 2);
    assert_eq!(third["metadata"]["uid"], first["metadata"]["uid"]);
}

#[test]
fn apply_keeps_status_finalizers_and_owner_references_but_replaces_labels() {
    let (_dir, store) = temp_store();
    let mut obj = backup_config("demo", "sample-backup");
    obj["metadata"]["finalizers"] = json!(["kubestash.com/cleanup"]);
    let created = store.create(obj).unwrap();
    let mut with_status = created.clone();
    with_status["status"] = json!({"phase": "Ready"});
    store.update_status(with_status).unwrap();

    let mut manifest = backup_config("demo", "sample-backup");
    manifest["metadata"]["labels"] = json!({"team": "db"});
    let (outcome, applied) = store.apply(manifest).unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(applied["metadata"]["labels"], json!({"team": "db"}));
    assert_eq!(
        applied["metadata"]["finalizers"],
        json!(["kubestash.com/cleanup"])
    );
    assert_eq!(applied["status"], json!({"phase": "Ready"}));
    assert_eq!(generation(&applied), 1, "a label change is not a spec change");
}

#[test]
fn spec_change_bumps_generation_and_resource_version() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let mut edit = created.clone();
    edit["spec"]["sessions"][0]["name"] = json!("hourly");
    let updated = store.update(edit).unwrap();
    assert_eq!(generation(&updated), 2);
    assert!(rv(&updated) > rv(&created));
}

#[test]
fn label_only_change_bumps_resource_version_but_not_generation() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let mut edit = created.clone();
    edit["metadata"]["labels"]["tier"] = json!("gold");
    let updated = store.update(edit).unwrap();
    assert_eq!(generation(&updated), 1);
    assert!(rv(&updated) > rv(&created));
}

#[test]
fn no_op_update_keeps_the_resource_version() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let mut same = created.clone();
    // Server-owned fields sent back with other values are ignored, not "changes".
    same["metadata"]["generation"] = json!(42);
    let updated = store.update(same).unwrap();
    assert_eq!(updated, created);
    assert_eq!(store.current_revision().unwrap(), rv(&created));
}

#[test]
fn stale_update_is_rejected_with_conflict() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let mut first = created.clone();
    first["spec"]["target"]["name"] = json!("first");
    store.update(first).unwrap();

    let mut stale = created.clone();
    stale["spec"]["target"]["name"] = json!("second");
    let err = store.update(stale).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("BackupConfiguration demo/sample-backup"), "{msg}");
    assert!(msg.contains("the object has been modified"), "{msg}");

    let mut missing_rv = created.clone();
    missing_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert!(store.update(missing_rv).unwrap_err().is_invalid());

    let absent = backup_config("demo", "absent");
    assert!(store.update(absent).unwrap_err().is_not_found());
}

#[test]
fn update_status_does_not_touch_spec_or_generation_and_update_does_not_touch_status() {
    let (_dir, store) = temp_store();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();

    let mut status_req = created.clone();
    status_req["spec"]["target"]["name"] = json!("ignored");
    status_req["status"] = json!({"phase": "Ready"});
    let with_status = store.update_status(status_req).unwrap();
    assert_eq!(with_status["status"], json!({"phase": "Ready"}));
    assert_eq!(with_status["spec"], created["spec"]);
    assert_eq!(generation(&with_status), 1);
    assert!(rv(&with_status) > rv(&created));

    let mut spec_req = with_status.clone();
    spec_req["spec"]["target"]["name"] = json!("mysql");
    spec_req["status"] = json!({"phase": "Failed"});
    let updated = store.update(spec_req).unwrap();
    assert_eq!(updated["status"], json!({"phase": "Ready"}));
    assert_eq!(updated["spec"]["target"]["name"], "mysql");
    assert_eq!(generation(&updated), 2);

    let plain = store.create(secret("demo", "creds")).unwrap();
    let err = store.update_status(plain).unwrap_err();
    assert!(
        err.is_invalid() && err.to_string().contains("no status subresource"),
        "{err}"
    );
}

#[test]
fn finalizer_holds_deletion_until_removed_then_the_object_is_gone() {
    let (_dir, store) = temp_store();
    let mut obj = backup_config("demo", "sample-backup");
    obj["metadata"]["finalizers"] = json!(["kubestash.com/cleanup"]);
    store.create(obj).unwrap();

    let pending = store
        .delete(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap();
    let DeleteOutcome::Pending(pending) = pending else {
        panic!("deletion should wait for the finalizer");
    };
    let ts = pending["metadata"]["deletionTimestamp"].clone();
    assert!(ts.is_string());

    // Deleting again sets nothing new.
    let again = store
        .delete(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap();
    assert!(!again.is_deleted());
    assert_eq!(again.object()["metadata"]["deletionTimestamp"], ts);
    assert_eq!(rv(again.object()), rv(&pending));

    // No new finalizers while being deleted.
    let mut add = pending.clone();
    add["metadata"]["finalizers"] = json!(["kubestash.com/cleanup", "other/finalizer"]);
    let err = store.update(add).unwrap_err();
    assert!(
        err.is_invalid() && err.to_string().contains("no new finalizers"),
        "{err}"
    );

    // The deletionTimestamp cannot be cleared by an update.
    let mut edit = pending.clone();
    edit["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("deletionTimestamp");
    edit["metadata"]["labels"]["x"] = json!("y");
    let edited = store.update(edit).unwrap();
    assert_eq!(edited["metadata"]["deletionTimestamp"], ts);

    let mut release = edited.clone();
    release["metadata"]["finalizers"] = json!([]);
    store.update(release).unwrap();
    let err = store
        .get(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap_err();
    assert!(err.is_not_found());
}

#[test]
fn deleting_an_owner_deletes_its_children_and_grandchildren() {
    let (_dir, store) = temp_store();
    let owner = store.create(backup_config("demo", "sample-backup")).unwrap();
    let session = json!({
        "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
        "metadata": {"name": "sample-backup-1", "namespace": "demo"}, "spec": {}
    });
    let child = store.create(owned_by(session, &owner)).unwrap();
    let snapshot = json!({
        "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
        "metadata": {"name": "snap-1", "namespace": "demo", "finalizers": ["kubestash.com/cleanup"]},
        "spec": {}
    });
    let grandchild = store.create(owned_by(snapshot, &child)).unwrap();
    let great = store
        .create(owned_by(secret("demo", "snap-1-data"), &grandchild))
        .unwrap();
    let unrelated = store.create(secret("demo", "unrelated")).unwrap();

    let out = store
        .delete(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap();
    assert!(out.is_deleted());
    assert!(
        store
            .get(&BACKUP_SESSION, "demo", "sample-backup-1")
            .unwrap_err()
            .is_not_found()
    );
    // The grandchild has a finalizer: it is marked, and its own child waits for it.
    let snap = store.get(&SNAPSHOT, "demo", "snap-1").unwrap();
    assert!(snap["metadata"]["deletionTimestamp"].is_string());
    assert!(store.get(&SECRET, "demo", "snap-1-data").is_ok());

    let mut release = snap.clone();
    release["metadata"]["finalizers"] = json!([]);
    store.update(release).unwrap();
    assert!(store.get(&SNAPSHOT, "demo", "snap-1").unwrap_err().is_not_found());
    assert!(
        store
            .get(&SECRET, "demo", "snap-1-data")
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.get(&SECRET, "demo", "unrelated").is_ok());
    let _ = (great, unrelated);
}

#[test]
fn a_dependent_with_another_live_owner_survives() {
    let (_dir, store) = temp_store();
    let a = store.create(secret("demo", "owner-a")).unwrap();
    let b = store.create(secret("demo", "owner-b")).unwrap();
    let mut shared = owned_by(secret("demo", "shared"), &a);
    shared["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiVersion": "v1", "kind": "Secret", "name": "owner-b",
            "uid": b["metadata"]["uid"]}));
    store.create(shared).unwrap();
    store.delete(&SECRET, "demo", "owner-a").unwrap();
    assert!(store.get(&SECRET, "demo", "shared").is_ok());
    store.delete(&SECRET, "demo", "owner-b").unwrap();
    assert!(store.get(&SECRET, "demo", "shared").unwrap_err().is_not_found());
}

#[test]
fn collect_garbage_removes_objects_whose_owners_are_gone() {
    let (_dir, store) = temp_store();
    let ghost = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gone-owner", "uid": "00000000-0000-4000-8000-000000000000"}});
    store.create(owned_by(secret("demo", "orphan"), &ghost)).unwrap();
    store.create(secret("demo", "standalone")).unwrap();
    assert_eq!(store.collect_garbage().unwrap(), 1);
    assert!(store.get(&SECRET, "demo", "orphan").unwrap_err().is_not_found());
    assert!(store.get(&SECRET, "demo", "standalone").is_ok());
    assert_eq!(store.collect_garbage().unwrap(), 0);
}

#[test]
fn list_filters_by_namespace_and_selector_and_all_namespaces_like_dash_a() {
    let (_dir, store) = temp_store();
    store.create(backup_config("prod", "b")).unwrap();
    store.create(backup_config("demo", "z")).unwrap();
    store.create(backup_config("demo", "a")).unwrap();
    let mut other = backup_config("demo", "m");
    other["metadata"]["labels"] = json!({"app": "other"});
    store.create(other).unwrap();
    store.create(secret("vault", "creds")).unwrap();
    store
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}}))
        .unwrap();

    let names = |objs: Vec<Value>| -> Vec<String> {
        objs.iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    meta_str(o, "namespace").unwrap_or(""),
                    meta_str(o, "name").unwrap()
                )
            })
            .collect()
    };
    let all = LabelSelector::everything();
    assert_eq!(
        names(store.list(&BACKUP_CONFIGURATION, None, &all).unwrap()),
        ["demo/a", "demo/m", "demo/z", "prod/b"]
    );
    assert_eq!(
        names(store.list(&BACKUP_CONFIGURATION, Some("demo"), &all).unwrap()),
        ["demo/a", "demo/m", "demo/z"]
    );
    let demo_app = LabelSelector::parse("app=demo").unwrap();
    assert_eq!(
        names(store.list(&BACKUP_CONFIGURATION, None, &demo_app).unwrap()),
        ["demo/a", "demo/z", "prod/b"]
    );
    assert!(
        store
            .list(&BACKUP_CONFIGURATION, Some("nowhere"), &all)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list(&BACKUP_CONFIGURATION, None, &LabelSelector::nothing())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        names(store.list(&NAMESPACE, Some("demo"), &all).unwrap()),
        ["/empty"]
    );

    assert_eq!(
        store.list_namespaces().unwrap(),
        ["demo", "empty", "prod", "vault"]
    );
}

#[test]
fn watch_receives_added_modified_deleted_in_order() {
    let (_dir, store) = temp_store();
    let events = store.watch();
    let created = store.create(backup_config("demo", "sample-backup")).unwrap();
    let mut edit = created.clone();
    edit["spec"]["target"]["name"] = json!("mysql");
    let updated = store.update(edit).unwrap();
    store.update(updated.clone()).unwrap(); // no-op: no event
    store
        .delete(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap();

    let got: Vec<(WatchEventType, u64)> = (0..3)
        .map(|_| {
            let e = events.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(rv(&e.object), e.revision);
            assert_eq!(e.object["metadata"]["name"], "sample-backup");
            (e.event_type, e.revision)
        })
        .collect();
    assert_eq!(
        got,
        [
            (WatchEventType::Added, 1),
            (WatchEventType::Modified, 2),
            (WatchEventType::Deleted, 3)
        ]
    );
    assert_eq!(
        events.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn changes_since_serves_the_log_to_another_store_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let cli = Store::open(&path).unwrap();
    let daemon = Store::open(&path).unwrap();
    let start = daemon.current_revision().unwrap();

    let created = cli.create(backup_config("demo", "sample-backup")).unwrap();
    let mut edit = created.clone();
    edit["metadata"]["labels"]["x"] = json!("y");
    cli.update(edit).unwrap();
    cli.delete(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap();

    let changes = daemon.changes_since(start).unwrap();
    let kinds: Vec<_> = changes.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [
            WatchEventType::Added,
            WatchEventType::Modified,
            WatchEventType::Deleted
        ]
    );
    let deleted = &changes[2];
    assert_eq!(
        deleted.object["metadata"]["labels"]["x"], "y",
        "last state of the object"
    );
    assert_eq!(daemon.changes_since(changes[1].revision).unwrap(), changes[2..]);
    assert!(
        daemon
            .changes_since(daemon.current_revision().unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn changes_since_a_compacted_revision_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        change_log_retention: 3,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path().join("kstash.db"), options).unwrap();
    for i in 0..5 {
        store.create(secret("demo", &format!("s{i}"))).unwrap();
    }
    // The newest 3 entries before the last write are kept, and the last write's own.
    assert_eq!(store.changes_since(1).unwrap().len(), 4);
    let err = store.changes_since(0).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Gone {
                requested: 0,
                compacted: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn a_batch_larger_than_the_retention_keeps_what_a_current_follower_has_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        change_log_retention: 3,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path().join("kstash.db"), options).unwrap();
    store.create(secret("demo", "before")).unwrap();
    let follower = store.current_revision().unwrap();
    let batch = (0..10).map(|i| secret("demo", &format!("s{i}"))).collect();
    assert!(store.create_all(batch).unwrap().iter().all(Result::is_ok));
    assert_eq!(store.changes_since(follower).unwrap().len(), 10);
}

#[test]
fn two_stores_on_one_file_never_lose_an_update() {
    const UPDATES_PER_THREAD: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let seed = Store::open(&path).unwrap();
    let mut counter = backup_config("demo", "counter");
    counter["spec"]["count"] = json!(0);
    seed.create(counter).unwrap();
    drop(seed);

    let workers: Vec<_> = ["cli", "daemon"]
        .into_iter()
        .map(|who| {
            let store = Arc::new(Store::open(&path).unwrap());
            thread::spawn(move || {
                let (mut ok, mut conflicts) = (0u64, 0u64);
                for _ in 0..UPDATES_PER_THREAD {
                    let mut obj = store.get(&BACKUP_CONFIGURATION, "demo", "counter").unwrap();
                    let n = obj["spec"]["count"].as_u64().unwrap();
                    obj["spec"]["count"] = json!(n + 1);
                    // Widen the read-modify-write window so the two writers really interleave.
                    thread::sleep(Duration::from_millis(1));
                    match store.update(obj) {
                        Ok(_) => ok += 1,
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => panic!("{who}: unexpected error {e}"),
                    }
                }
                (ok, conflicts)
            })
        })
        .collect();
    let results: Vec<(u64, u64)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let successes: u64 = results.iter().map(|r| r.0).sum();
    let conflicts: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(successes + conflicts, 2 * UPDATES_PER_THREAD as u64);

    let store = Store::open(&path).unwrap();
    let obj = store.get(&BACKUP_CONFIGURATION, "demo", "counter").unwrap();
    assert_eq!(obj["spec"]["count"].as_u64().unwrap(), successes);
    assert_eq!(generation(&obj) as u64, successes + 1);
}

#[cfg(unix)]
#[test]
fn database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/home/kstash.db");
    let store = Store::open(&path).unwrap();
    store.create(secret("demo", "creds")).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let wal = path.with_extension("db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal) & 0o077, 0, "the WAL file holds secrets too");
    }

    // A pre-existing file with loose permissions is tightened on open.
    drop(store);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let _store = Store::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn reopening_keeps_objects_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let created = Store::open(&path)
        .unwrap()
        .create(secret("demo", "creds"))
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(&SECRET, "demo", "creds").unwrap(), created);
    assert_eq!(store.current_revision().unwrap(), 1);
}

#[test]
fn default_path_honours_kstash_home_then_home() {
    let p = resolve_default_path(Some("/data/ks".into()), Some("/home/u".into())).unwrap();
    assert_eq!(p, PathBuf::from("/data/ks/kstash.db"));
    let p = resolve_default_path(Some("".into()), Some("/home/u".into())).unwrap();
    assert_eq!(p, PathBuf::from("/home/u/.local/share/kstash/kstash.db"));
    assert!(resolve_default_path(None, None).is_err());
}

#[test]
fn error_messages_name_the_object() {
    let (_dir, store) = temp_store();
    let err = store
        .get(&BACKUP_CONFIGURATION, "demo", "sample-backup")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "BackupConfiguration demo/sample-backup not found; check the kind, namespace and name \
         (list what exists with `kstash get backupconfigurations -A`)"
    );
}

#[test]
fn one_store_shared_by_threads_delivers_watch_events_in_revision_order() {
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    let events = store.watch();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for i in 0..10 {
                    store.create(secret("demo", &format!("t{t}-s{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let revisions: Vec<u64> = events.try_iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (1..=40).collect::<Vec<_>>());
    let all = store
        .list(&SECRET, Some("demo"), &LabelSelector::everything())
        .unwrap();
    assert_eq!(all.len(), 40);
}

#[test]
fn a_list_by_label_follows_label_changes_and_deletions() {
    let (_dir, store) = temp_store();
    let a = store.create(backup_config("demo", "a")).unwrap();
    store.create(backup_config("demo", "b")).unwrap();
    let by = |sel: &str| -> Vec<String> {
        store
            .list(
                &BACKUP_CONFIGURATION,
                Some("demo"),
                &LabelSelector::parse(sel).unwrap(),
            )
            .unwrap()
            .iter()
            .map(|o| meta_str(o, "name").unwrap().to_string())
            .collect()
    };
    assert_eq!(by("app=demo"), ["a", "b"]);
    assert_eq!(by("app=demo,tier"), Vec::<String>::new());

    let mut relabelled = a.clone();
    relabelled["metadata"]["labels"] = json!({"app": "other", "tier": "db"});
    store.update(relabelled).unwrap();
    assert_eq!(by("app=demo"), ["b"]);
    assert_eq!(by("app=other"), ["a"]);
    assert_eq!(by("app=other,tier=db"), ["a"]);
    assert_eq!(by("app=other,tier!=db"), Vec::<String>::new());

    store.delete(&BACKUP_CONFIGURATION, "demo", "a").unwrap();
    assert_eq!(by("app=other"), Vec::<String>::new());
}

#[test]
fn objects_stored_before_the_label_index_are_found_by_label_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let store = Store::open(&path).unwrap();
    store.create(backup_config("demo", "old")).unwrap();
    drop(store);
    // Back to schema version 1: no label index.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE objects DROP COLUMN bulk; DROP TABLE labels; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);

    let store = Store::open(&path).unwrap();
    let found = store
        .list(
            &BACKUP_CONFIGURATION,
            None,
            &LabelSelector::parse("app=demo").unwrap(),
        )
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn reads_do_not_wait_for_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&path, options).unwrap();
    store.create(backup_config("demo", "a")).unwrap();
    // Another connection holds the write lock with an uncommitted change.
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value + 100 WHERE key = 'revision';")
        .unwrap();

    let all = LabelSelector::everything();
    assert_eq!(store.list(&BACKUP_CONFIGURATION, None, &all).unwrap().len(), 1);
    assert!(store.get(&BACKUP_CONFIGURATION, "demo", "a").is_ok());
    assert_eq!(
        store.current_revision().unwrap(),
        1,
        "the uncommitted change is not seen"
    );
    assert!(
        store.create(backup_config("demo", "b")).is_err(),
        "writes still wait for the lock"
    );
    other.execute_batch("ROLLBACK").unwrap();
    assert!(store.create(backup_config("demo", "b")).is_ok());
}

#[test]
fn list_keys_names_every_object_of_a_kind_in_order() {
    let (_dir, store) = temp_store();
    store.create(backup_config("prod", "b")).unwrap();
    store.create(backup_config("demo", "z")).unwrap();
    store.create(secret("demo", "s")).unwrap();
    assert_eq!(
        store.list_keys(&BACKUP_CONFIGURATION, &[]).unwrap(),
        [
            ("demo".to_string(), "z".to_string()),
            ("prod".to_string(), "b".to_string())
        ]
    );
}

/// A BackupStorage whose status lists `repositories` Repositories.
fn storage_listing(store: &Store, repositories: usize) -> Value {
    let created = store
        .create(json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "BackupStorage",
            "metadata": {"name": "s3", "namespace": "demo"},
            "spec": {"storage": {"provider": "local", "local": {"mountPath": "/safe"}}}
        }))
        .unwrap();
    let mut with_status = created;
    with_status["status"] = json!({
        "phase": "Ready",
        "repositories": (0..repositories)
            .map(|i| json!({"name": format!("r{i}"), "namespace": "demo", "path": format!("/r{i}")}))
            .collect::<Vec<_>>(),
        "conditions": [{"type": "BackendInitialized", "status": "True"}]
    });
    store.update_status(with_status).unwrap()
}

/// The two stored columns of `demo/s3`.
fn stored_columns(store: &Store) -> (String, Option<String>) {
    let conn = Connection::open(&store.path).unwrap();
    conn.query_row(
        "SELECT body, bulk FROM objects WHERE kind = 'BackupStorage' AND name = 's3'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_backup_storages_repository_list_is_kept_apart_and_lean_reads_skip_it() {
    let (_dir, store) = temp_store();
    let start = store.current_revision().unwrap();
    let written = storage_listing(&store, 3);
    assert_eq!(written["status"]["repositories"].as_array().unwrap().len(), 3);

    let (body, bulk) = stored_columns(&store);
    assert!(
        !body.contains("\"r1\"") && body.contains("BackendInitialized"),
        "{body}"
    );
    assert!(bulk.as_deref().is_some_and(|b| b.contains("\"r1\"")), "{bulk:?}");

    // Whole reads, lists and the change log have every field; a lean read all but the list.
    let whole = store.get(&BACKUP_STORAGE, "demo", "s3").unwrap();
    assert_eq!(whole, written);
    let all = LabelSelector::everything();
    assert_eq!(
        store.list(&BACKUP_STORAGE, None, &all).unwrap(),
        vec![written.clone()]
    );
    let logged = store.changes_since(start).unwrap().pop().unwrap();
    assert_eq!(logged.object, written);
    let lean = store.get_lean(&BACKUP_STORAGE, "demo", "s3").unwrap();
    assert_eq!(lean["status"]["phase"], "Ready");
    assert_eq!(lean["status"]["conditions"], written["status"]["conditions"]);
    assert!(lean["status"].get("repositories").is_none(), "{lean:#}");
    assert_eq!(lean["spec"], written["spec"]);

    // Kinds without aggregate fields, and a status without the list, keep one column.
    let mut emptied = whole;
    emptied["status"]["repositories"] = json!([]);
    let emptied = store.update_status(emptied).unwrap();
    assert_eq!(
        stored_columns(&store).1.as_deref(),
        Some(r#"{"repositories":[]}"#)
    );
    assert_eq!(store.get(&BACKUP_STORAGE, "demo", "s3").unwrap(), emptied);
    let mut dropped = emptied;
    dropped["status"].as_object_mut().unwrap().remove("repositories");
    store.update_status(dropped).unwrap();
    assert_eq!(stored_columns(&store).1, None);
    let bc = store.create(backup_config("demo", "bc")).unwrap();
    assert_eq!(store.get_lean(&BACKUP_CONFIGURATION, "demo", "bc").unwrap(), bc);
}

#[test]
fn a_backup_storage_stored_before_the_bulk_column_reads_whole_until_its_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kstash.db");
    let store = Store::open(&path).unwrap();
    let written = storage_listing(&store, 2);
    drop(store);
    // Back to schema version 2: the list inside the body, no bulk column.
    let conn = Connection::open(&path).unwrap();
    let whole = serde_json::to_string(&written).unwrap();
    conn.execute(
        "UPDATE objects SET body = ?1, bulk = NULL WHERE kind = 'BackupStorage'",
        [&whole],
    )
    .unwrap();
    conn.execute_batch("ALTER TABLE objects DROP COLUMN bulk; PRAGMA user_version = 2;")
        .unwrap();
    drop(conn);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.get(&BACKUP_STORAGE, "demo", "s3").unwrap(), written);
    let lean = store.get_lean(&BACKUP_STORAGE, "demo", "s3").unwrap();
    assert_eq!(lean["status"]["phase"], "Ready", "{lean:#}");
    // The next status write moves the list apart.
    let mut next = store.get(&BACKUP_STORAGE, "demo", "s3").unwrap();
    next["status"]["phase"] = json!("NotReady");
    let next = store.update_status(next).unwrap();
    assert!(stored_columns(&store).1.is_some());
    assert_eq!(store.get(&BACKUP_STORAGE, "demo", "s3").unwrap(), next);
    assert!(
        store.get_lean(&BACKUP_STORAGE, "demo", "s3").unwrap()["status"]
            .get("repositories")
            .is_none()
    );
}

#[test]
fn a_list_by_label_walks_the_label_index_not_every_object_of_the_kind() {
    let (_dir, store) = temp_store();
    let conn = Connection::open(&store.path).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {LIST_BY_LABEL}"))
        .unwrap()
        .query_map(
            params!["core.kubestash.com", "BackupSession", "demo", "app", "x"],
            |r| r.get::<_, String>(3),
        )
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        plan[0].starts_with("SEARCH l USING PRIMARY KEY (grp=? AND kind=? AND lkey=? AND lvalue=?"),
        "{plan:?}"
    );
    assert!(plan[1].starts_with("SEARCH o USING INDEX"), "{plan:?}");
    assert!(
        !plan.iter().any(|p| p.contains("TEMP B-TREE")),
        "no sort: {plan:?}"
    );
}

#[test]
fn list_keys_leaves_out_the_phases_asked() {
    let (_dir, store) = temp_store();
    for (name, phase) in [
        ("done", Some("Succeeded")),
        ("running", Some("Running")),
        ("new", None),
    ] {
        let created = store
            .create(json!({
                "apiVersion": "core.kubestash.com/v1alpha1",
                "kind": "BackupSession",
                "metadata": {"name": name, "namespace": "demo"},
                "spec": {"session": "daily"}
            }))
            .unwrap();
        if let Some(phase) = phase {
            let mut with_status = created;
            with_status["status"] = json!({"phase": phase});
            store.update_status(with_status).unwrap();
        }
    }
    let names = |except: &[&str]| -> Vec<String> {
        store
            .list_keys(&BACKUP_SESSION, except)
            .unwrap()
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    };
    assert_eq!(names(&[]), ["done", "new", "running"]);
    assert_eq!(names(&["Succeeded", "Failed"]), ["new", "running"]);
}
