//! End to end: the bucket layout is the source of truth. Deleting a BackupConfiguration whose
//! repository policy is `Delete` removes the resources but keeps the data, and a fresh
//! installation pointed at the same storage rebuilds the Repository and its Snapshots from it
//! (disaster recovery of the backup system itself), then restores from them — also a Snapshot
//! with one of KubeStash's long (67+ character) names.

mod lifecycle;

use std::time::Duration;

use lifecycle::{Env, phase, tree_listing, wait_for, wait_some, write_tree};
use serde_json::Value;

#[test]
fn a_new_installation_rebuilds_repositories_and_snapshots_from_the_storage() {
    // First installation: one backup, run in the foreground (no daemon).
    let first = Env::new();
    write_tree(&first.data, 1 << 20);
    let before = tree_listing(&first.data);
    first.apply(&first.storage_manifests(5));
    first.apply(&first.backup_configuration("files", "0 0 1 1 *", &first.data.display().to_string(), ""));
    let out = first.ok(&["trigger", "files", "-n", "demo"]);
    assert!(out.contains("Succeeded"), "{out}");
    let snapshot = first.list("snapshots", "demo");
    assert_eq!(snapshot.len(), 1);
    let snapshot_name = snapshot[0]["metadata"]["name"].as_str().unwrap().to_string();

    // Deleting the configuration (repository policy Delete) removes the resources, not the data.
    let mut daemon = first.start_daemon(&[]);
    first.ok(&["delete", "backupconfiguration", "files", "-n", "demo"]);
    wait_for(Duration::from_secs(60), "the Repository resource to go", || {
        first.get("repo", "demo", "files-repo").is_none()
    });
    daemon.terminate();
    let repo_dir = first.storage.join("demo/files");
    assert!(
        repo_dir.join("repository.yaml").exists(),
        "repository.yaml must stay"
    );
    assert!(
        repo_dir
            .join("snapshots")
            .join(format!("{snapshot_name}.yaml"))
            .exists()
    );
    assert!(
        first
            .component_repo("demo/files", "frequent")
            .join("config")
            .exists()
    );

    // KubeStash (before its 63-character rule) wrote Snapshot names longer than a DNS label;
    // give this one such a name in the bucket, as a KubeStash user moving over would have.
    let long_name = "files-repo-sample-postgres-backup-frequent-backup-frequent-1725449400";
    assert!(long_name.len() > 63);
    let snapshots_dir = repo_dir.join("snapshots");
    let old_file = snapshots_dir.join(format!("{snapshot_name}.yaml"));
    let text = std::fs::read_to_string(&old_file).unwrap();
    std::fs::write(
        snapshots_dir.join(format!("{long_name}.yaml")),
        text.replace(&snapshot_name, long_name),
    )
    .unwrap();
    std::fs::remove_file(&old_file).unwrap();
    let snapshot_name = long_name.to_string();

    // A second installation with only the BackupStorage finds everything again.
    let second = Env::new();
    let storage = first.storage_manifests(5);
    second.apply(&storage);
    let _daemon2 = second.start_daemon(&[]);
    let repo = wait_some(
        Duration::from_secs(60),
        "the Repository to be rebuilt from the storage",
        || second.get("repo", "demo", "files-repo"),
    );
    assert_eq!(repo["spec"]["path"], "demo/files");
    let snap = wait_some(
        Duration::from_secs(60),
        "the Snapshot to be rebuilt with its status",
        || {
            let s = second.get("snapshot", "demo", &snapshot_name)?;
            (phase(&s) == "Succeeded").then_some(s)
        },
    );
    assert!(
        snap.pointer("/status/components/dump/resticStats/0/summary/id")
            .and_then(Value::as_str)
            .is_some(),
        "{snap:#}"
    );
    let bs = wait_some(
        Duration::from_secs(30),
        "the storage to list the repository",
        || {
            let bs = second.get("backupstorage", "demo", "local-storage")?;
            (bs.pointer("/status/repositories/0/name").and_then(Value::as_str) == Some("files-repo"))
                .then_some(bs)
        },
    );
    assert_eq!(phase(&bs), "Ready");

    // And restores from it.
    std::fs::remove_dir_all(&first.data).unwrap();
    second.apply(&format!(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {{name: recover, namespace: demo}}
spec:
  dataSource:
    repository: files-repo
    snapshot: {snapshot_name}
    encryptionSecret: {{name: encrypt, namespace: demo}}
  addon:
    name: workload-addon
    tasks:
      - name: logical-backup-restore
"#
    ));
    let rs = wait_some(Duration::from_secs(60), "the restore to finish", || {
        let rs = second.get("restoresession", "demo", "recover")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(tree_listing(&first.data), before);
}
