//! End to end on the embedded daemon, through manifests only: a directory backed up on a
//! one-minute schedule produces snapshots on time, retention keeps the newest ones (in the
//! resources and in the restic repository), and a RestoreSession brings the directory back byte
//! for byte while backups of the same target are paused.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::Restic;
use lifecycle::{Env, name, phase, tree_listing, wait_for, wait_some, write_tree};
use serde_json::Value;

fn succeeded_sessions(env: &Env, bc: &str) -> Vec<Value> {
    env.sessions_of(bc)
        .into_iter()
        .filter(|s| phase(s) == "Succeeded")
        .collect()
}

#[test]
fn scheduled_backups_retention_and_restore_byte_for_byte() {
    let env = Env::new();
    write_tree(&env.data, 3 << 20);
    let before = tree_listing(&env.data);
    env.apply(&env.storage_manifests(2));
    env.apply(&env.backup_configuration("files", "* * * * *", &env.data.display().to_string(), ""));
    let _daemon = env.start_daemon(&[]);

    // The instant first backup, then two scheduled ones at minute boundaries.
    wait_for(Duration::from_secs(200), "three successful backups", || {
        succeeded_sessions(&env, "files").len() >= 3
    });
    let sessions = succeeded_sessions(&env, "files");
    for s in sessions.iter().skip(1) {
        // Scheduled sessions are created right after the minute starts.
        let created = s
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap();
        let second: u32 = created[17..19].parse().unwrap();
        assert!(
            second <= 10,
            "scheduled session {} created at {created}, late for a '* * * * *' schedule",
            name(s)
        );
    }
    assert!(
        env.sessions_of("files").iter().all(|s| phase(s) != "Failed"),
        "no session may fail"
    );

    // Retention keeps the last 2 successful snapshots: resources and restic data agree.
    wait_for(Duration::from_secs(60), "retention to leave 2 snapshots", || {
        let snaps = env.list("snapshots", "demo");
        snaps.len() == 2 && snaps.iter().all(|s| phase(s) == "Succeeded")
    });
    let restic = Restic::new(
        env.component_repo("demo/files", "frequent").display().to_string(),
        "changeit",
    )
    .unwrap();
    let listed: Vec<Value> = wait_some(Duration::from_secs(60), "restic to list 2 snapshots", || {
        let out = restic.run(&["snapshots", "--json", "--no-lock"]).ok()?;
        let v: Vec<Value> = serde_json::from_str(&out).ok()?;
        (v.len() == 2).then_some(v)
    });
    let newest_two: Vec<String> = {
        let mut names: Vec<String> = sessions.iter().map(|s| name(s).to_string()).collect();
        names.sort();
        names.split_off(names.len() - 2)
    };
    let kept: Vec<String> = env
        .list("snapshots", "demo")
        .iter()
        .map(|s| s["spec"]["backupSession"].as_str().unwrap().to_string())
        .collect();
    for n in &newest_two {
        assert!(
            kept.contains(n),
            "retention must keep the snapshot of the newest session {n}; kept {kept:?}"
        );
    }
    assert!(
        listed
            .iter()
            .all(|s| s["paths"][0].as_str() == Some(env.data.to_str().unwrap()))
    );
    let repo = env.get("repo", "demo", "files-repo").unwrap();
    assert_eq!(
        repo.pointer("/status/snapshotCount").and_then(Value::as_i64),
        Some(2),
        "{repo}"
    );

    // Lose the data, then restore the latest snapshot in place.
    std::fs::remove_dir_all(&env.data).unwrap();
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: HookTemplate
metadata: {name: wait-a-bit, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  action:
    exec:
      command: ["sleep", "3"]
  executor:
    type: Operator
---
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {name: bring-back, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: files-app, namespace: demo}
  dataSource:
    repository: files-repo
    snapshot: latest
    encryptionSecret: {name: encrypt, namespace: demo}
  hooks:
    preRestore:
      - name: settle
        hookTemplate: {name: wait-a-bit, namespace: demo}
  addon:
    name: workload-addon
    tasks:
      - name: logical-backup-restore
"#,
    );
    // While the restore runs, backups of the same target are paused.
    wait_for(
        Duration::from_secs(30),
        "the configuration to be paused during the restore",
        || {
            let bc = env.get("bc", "demo", "files").unwrap();
            bc.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
        },
    );
    let rs = wait_some(Duration::from_secs(120), "the restore to finish", || {
        let rs = env.get("restoresession", "demo", "bring-back")?;
        matches!(phase(&rs), "Succeeded" | "Failed" | "Invalid").then_some(rs)
    });
    assert_eq!(phase(&rs), "Succeeded", "{rs:#}");
    assert_eq!(
        rs.pointer("/status/pausedBackups/0/name").and_then(Value::as_str),
        Some("files"),
        "the restore records which backups it paused"
    );
    assert_eq!(
        tree_listing(&env.data),
        before,
        "restored tree differs from the original"
    );
    wait_for(
        Duration::from_secs(30),
        "backups to resume after the restore",
        || {
            let bc = env.get("bc", "demo", "files").unwrap();
            bc.pointer("/spec/paused").and_then(Value::as_bool) != Some(true)
        },
    );
}
