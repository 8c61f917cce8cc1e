//! End to end on the embedded daemon with a real ZooKeeper 3.8: a BackupConfiguration on an
//! AppBinding (zookeeper-addon from the shipped catalog) streams over 1,000 znodes with binary
//! data and digest/world/ip ACLs into the repository, ephemeral nodes left out; the tree is
//! wiped, and a RestoreSession recreates it: node count, data checksums and ACLs are identical.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::ZooKeeper;
use kstash_testsupport::zookeeper_tree::{ZkSession, create_varied_tree};
use lifecycle::{Env, phase, wait_some};

const USER: &str = "kstash";
const PASSWORD: &str = "zk digest password";

#[test]
fn zookeeper_backup_and_restore_through_manifests() {
    let zk = ZooKeeper::start().unwrap();
    let s = ZkSession::connect(&zk.connect_string(), Some((USER, PASSWORD))).unwrap();
    let tree = create_varied_tree(&s, USER, PASSWORD).unwrap();
    assert!(tree.nodes >= 1000);
    let before = s.fingerprint().unwrap();
    assert_eq!(before.len(), tree.nodes + 1);

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: zk-auth, namespace: demo}}
stringData: {{username: {USER}, password: "{PASSWORD}"}}
---
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {{name: coordination, namespace: demo}}
spec:
  type: kubedb.com/zookeeper
  version: "3.8"
  clientConfig:
    service: {{name: "{host}", port: {port}}}
  secret: {{name: zk-auth}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: zk-backup, namespace: demo}}
spec:
  target: {{apiGroup: appcatalog.appscode.com, kind: AppBinding, name: coordination, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 0 1 1 *"}}
      repositories:
        - name: zk-repo
          backend: local
          directory: demo/zk
          encryptionSecret: {{name: encrypt, namespace: demo}}
      addon:
        name: zookeeper-addon
        tasks:
          - name: logical-backup
            params: {{waitTimeout: "60"}}
"#,
        host = zk.host,
        port = zk.port,
    ));
    let _daemon = env.start_daemon(&[]);
    let session = wait_some(Duration::from_secs(90), "the instant ZooKeeper backup", || {
        env.sessions_of("zk-backup")
            .into_iter()
            .find(|s| matches!(phase(s), "Succeeded" | "Failed"))
    });
    assert_eq!(phase(&session), "Succeeded", "{session:#}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1);
    let component = &snaps[0]["status"]["components"]["dump"];
    assert_eq!(component["phase"], "Succeeded", "{component:#}");
    assert_eq!(
        component["resticStats"][0]["summary"]["hostPath"], "zookeeper.ndjson",
        "{component:#}"
    );

    let wiped = s.wipe().unwrap();
    assert_eq!(wiped, tree.nodes + tree.ephemeral.len());
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: zk-restore, namespace: demo}
spec:
  target: {apiGroup: appcatalog.appscode.com, kind: AppBinding, name: coordination, namespace: demo}
  dataSource:
    repository: zk-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  addon:
    name: zookeeper-addon
    tasks:
      - name: logical-backup-restore
"#,
    );
    let rs = wait_some(Duration::from_secs(90), "the ZooKeeper restore", || {
        let rs = env.get("restoresession", "demo", "zk-restore")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");

    let after = s.fingerprint().unwrap();
    assert_eq!(after.len(), before.len(), "node count");
    let differing: Vec<&String> = before
        .iter()
        .filter(|(p, b)| after.get(*p) != Some(*b))
        .map(|(p, _)| p)
        .collect();
    assert!(
        differing.is_empty(),
        "{} nodes differ (data or ACL), e.g. {:?}",
        differing.len(),
        &differing[..differing.len().min(5)]
    );
    for eph in &tree.ephemeral {
        assert!(!s.exists(eph).unwrap(), "ephemeral {eph} was restored");
    }
}
