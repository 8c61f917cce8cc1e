//! End to end on the embedded runtime: `kubedump-addon` backs up kstash's own stored objects
//! (Secrets included) as one YAML file per object in KubeStash kubedump's layout, filtered by
//! namespace; `kstash download` gives the plain files; a fresh installation that has only the
//! BackupStorage gets the whole configuration back from a `manifest-restore` RestoreSession,
//! keeping what it already has; sessions are not created again.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::data::files_under;
use lifecycle::{Env, phase, wait_some};

/// Objects of the first installation beyond the storage: an application namespace with a
/// credentials Secret and an AppBinding, a volume BackupConfiguration, and a namespace the
/// manifest backup leaves out.
fn configuration(env: &Env) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: db-auth, namespace: apps, labels: {{team: data}}}}
stringData: {{username: postgres, password: s3cret}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: orders-db, namespace: apps}}
spec:
  type: postgres
  version: "16"
  clientConfig: {{url: "postgres://127.0.0.1:5432/orders"}}
  secret: {{name: db-auth}}
---
apiVersion: v1
kind: Secret
metadata: {{name: throwaway, namespace: scratch}}
stringData: {{token: x}}
---
{files}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: manifests, namespace: demo}}
spec:
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: frequent-backup
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: manifest-repo
          backend: local
          directory: /cluster-manifests
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: kubedump-addon
        tasks:
          - name: manifest-backup
            params:
              ExcludeNamespaces: scratch
"#,
        files = env.backup_configuration("files", "0 0 1 1 *", &env.data.display().to_string(), "")
    )
}

#[test]
fn a_lost_installation_gets_its_configuration_back_from_a_manifest_backup() {
    let first = Env::new();
    first.apply(&first.storage_manifests(5));
    first.apply(&configuration(&first));
    let out = first.ok(&["trigger", "manifests", "-n", "demo"]);
    assert!(out.contains("Succeeded"), "{out}");
    let snapshot = wait_some(Duration::from_secs(10), "the manifest Snapshot", || {
        first
            .list("snapshots", "demo")
            .into_iter()
            .find(|s| s["spec"]["repository"] == "manifest-repo")
    });
    assert_eq!(phase(&snapshot), "Succeeded", "{snapshot:#}");
    let snapshot_name = snapshot["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        snapshot.pointer("/status/components/manifest").is_some(),
        "kubedump writes component `manifest`: {snapshot:#}"
    );

    // `kstash download` gives the plain YAML files in kubedump's layout.
    let dest = first.dir.path().join("downloads");
    first.ok(&[
        "download",
        &snapshot_name,
        "-n",
        "demo",
        "--destination",
        dest.to_str().unwrap(),
    ]);
    let component = dest.join(&snapshot_name).join("manifest");
    let files: Vec<String> = files_under(&component)
        .into_iter()
        .map(|f| component.join(f).display().to_string())
        .collect();
    let has = |suffix: &str| files.iter().any(|f| f.ends_with(suffix));
    for want in [
        "/manifest/secrets/namespaces/apps/db-auth.yaml",
        "/manifest/appbindings.appcatalog.appscode.com/namespaces/apps/orders-db.yaml",
        "/manifest/backupconfigurations.core.kubestash.com/namespaces/demo/files.yaml",
        "/manifest/backupstorages.storage.kubestash.com/namespaces/demo/local-storage.yaml",
        "/manifest/secrets/namespaces/demo/encrypt.yaml",
    ] {
        assert!(has(want), "{want} missing from the download: {files:#?}");
    }
    assert!(
        !files.iter().any(|f| f.contains("/namespaces/scratch/")),
        "ExcludeNamespaces scratch: {files:#?}"
    );
    assert!(
        !files.iter().any(|f| f.contains("/cluster/")),
        "cluster-scoped objects (the Addons) only with IncludeClusterResources: {files:#?}"
    );
    let secret_file = files.iter().find(|f| f.ends_with("/db-auth.yaml")).unwrap();
    let secret_text = std::fs::read_to_string(secret_file).unwrap();
    assert!(
        !secret_text.contains("resourceVersion") && !secret_text.contains("uid:"),
        "{secret_text}"
    );
    assert!(
        secret_text.contains("password: czNjcmV0"),
        "the Secret's data is backed up: {secret_text}"
    );

    // A fresh installation with only the storage finds the Snapshot and restores the rest.
    let second = Env::new();
    second.apply(&first.storage_manifests(7));
    let _daemon = second.start_daemon(&[]);
    wait_some(
        Duration::from_secs(60),
        "the manifest Snapshot to be rebuilt",
        || {
            let s = second.get("snapshot", "demo", &snapshot_name)?;
            (phase(&s) == "Succeeded").then_some(s)
        },
    );
    second.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: get-config-back, namespace: demo}
spec:
  dataSource:
    repository: manifest-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: kubedump-addon
    tasks:
      - name: manifest-restore
"#,
    );
    let rs = wait_some(Duration::from_secs(60), "the manifest restore to finish", || {
        let rs = second.get("restoresession", "demo", "get-config-back")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");

    let secret = second
        .get("secret", "apps", "db-auth")
        .expect("the Secret is back");
    // (`kstash get` redacts values; the keys show the data came back.)
    let keys: Vec<&String> = secret["data"]
        .as_object()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["password", "username"], "{secret:#}");
    assert_eq!(secret["metadata"]["labels"]["team"], "data");
    let binding = second
        .get("appbinding", "apps", "orders-db")
        .expect("the AppBinding is back");
    assert_eq!(
        binding["spec"]["clientConfig"]["url"],
        "postgres://127.0.0.1:5432/orders"
    );
    let files_bc = second
        .get("bc", "demo", "files")
        .expect("the volume BackupConfiguration is back");
    assert_eq!(files_bc["spec"]["sessions"][0]["addon"]["name"], "workload-addon");
    assert!(second.get("bc", "demo", "manifests").is_some());
    assert!(
        second.get("secret", "scratch", "throwaway").is_none(),
        "it was never backed up"
    );
    // What the second installation already had is kept (OverrideResources is false).
    let retention = second.get("retentionpolicy", "demo", "keep-last").unwrap();
    assert_eq!(retention["spec"]["successfulSnapshots"]["last"], 7);
    // The first installation's BackupSessions are history: backed up, not created again.
    let first_sessions: Vec<String> = first
        .list("backupsessions", "demo")
        .iter()
        .map(|s| lifecycle::name(s).to_string())
        .collect();
    assert!(!first_sessions.is_empty());
    // The manifest backup's own session was Running, with its status, when the files were written
    // (the `files` configuration's first session may not have had one yet).
    let backed_up_session = files
        .iter()
        .find(|f| f.contains("/backupsessions.core.kubestash.com/namespaces/demo/manifests-"))
        .expect("the BackupSessions are in the backup");
    assert!(
        std::fs::read_to_string(backed_up_session)
            .unwrap()
            .contains("status:"),
        "records keep their status"
    );
    for name in &first_sessions {
        assert!(
            second.get("backupsession", "demo", name).is_none(),
            "{name} was created again"
        );
    }
}
