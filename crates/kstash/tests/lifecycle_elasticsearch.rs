//! End to end on the embedded daemon with a real Elasticsearch-API server (osmem, behind a proxy
//! requiring basic auth): a BackupConfiguration on an AppBinding backs up several indices with
//! mappings, settings and aliases, templates and 50,000 documents through elasticsearch-addon
//! from the shipped catalog; everything is deleted, a RestoreSession brings it back, and counts,
//! document checksums, mappings, settings, aliases and templates are identical.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::{Elasticsearch, es_data};
use lifecycle::{Env, phase, wait_some};

const DOCS: usize = 50_000;

#[test]
fn elasticsearch_backup_and_restore_through_manifests() {
    let es = Elasticsearch::start_secured("elastic", "s3cr3t-pw").unwrap();
    es_data::seed_varied(&es, DOCS).unwrap();
    let before = es_data::fingerprint(&es).unwrap();
    let total: usize = before.indices.values().map(|i| i.count).sum();
    assert_eq!(total, DOCS);
    assert_eq!(before.templates.len(), 3);

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: es-auth, namespace: demo}}
stringData: {{ADMIN_USERNAME: elastic, ADMIN_PASSWORD: "s3cr3t-pw"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: search, namespace: demo}}
spec:
  type: kubedb.com/elasticsearch
  clientConfig:
    url: "{url}"
  secret: {{name: es-auth}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: search-backup, namespace: demo}}
spec:
  target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: search, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: search-repo
          backend: local
          directory: demo/search
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: elasticsearch-addon
        tasks:
          - name: logical-backup
"#,
        url = es.url,
    ));
    let _daemon = env.start_daemon(&[]);
    let session = wait_some(
        Duration::from_secs(180),
        "the instant Elasticsearch backup",
        || {
            env.sessions_of("search-backup")
                .into_iter()
                .find(|s| matches!(phase(s), "Succeeded" | "Failed"))
        },
    );
    assert_eq!(phase(&session), "Succeeded", "{session:#}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1);
    let component = &snaps[0]["status"]["components"]["dump"];
    assert_eq!(component["phase"], "Succeeded", "{component:#}");
    assert_eq!(
        component["resticStats"][0]["summary"]["hostPath"], "elasticsearch.ndjson",
        "{component:#}"
    );

    es_data::destroy(&es).unwrap();
    assert!(es_data::fingerprint(&es).unwrap().indices.is_empty());
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: search-restore, namespace: demo}
spec:
  target: {apiGroup: appcatalog.appscode.com, kind: AppBinding, name: search, namespace: demo}
  dataSource:
    repository: search-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: elasticsearch-addon
    tasks:
      - name: logical-backup-restore
"#,
    );
    let rs = wait_some(Duration::from_secs(180), "the Elasticsearch restore", || {
        let rs = env.get("restoresession", "demo", "search-restore")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    before.assert_same(&es_data::fingerprint(&es).unwrap());
}
