//! Backup verification end to end on the embedded daemon (volume targets): a BackupVerifier
//! linked from a repository restores the newest snapshot into a scratch directory, compares every
//! file with the snapshot, records `Verified` on the Snapshot and removes the copy; a damaged pack
//! ends VerificationFailed naming the pack and is retried per the session's `retryLeft`; a verifier
//! pointed at the configuration's own target is refused; the verifier's schedule starts sessions.

mod lifecycle;

use std::path::Path;
use std::time::Duration;

use lifecycle::{Env, condition, name, phase, wait_some, write_tree};
use serde_json::Value;

/// A BackupConfiguration `data` backing up `env.data` whose repository names the verifier
/// `data-verifier`, and that verifier: RestoreOnly into `scratch`, `schedule` (or none).
fn verified_volume_manifests(env: &Env, scratch: &Path, schedule: Option<&str>, retry: u32) -> String {
    let scheduler = schedule
        .map(|s| format!("  scheduler: {{schedule: \"{s}\"}}\n"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupVerifier
metadata: {{name: data-verifier, namespace: demo}}
spec:
  restoreOption:
    target: {{apiGroup: apps, kind: Deployment, name: data-verify-scratch, namespace: demo}}
    addonInfo:
      name: workload-addon
      tasks:
        - name: logical-backup-restore
          params: {{target: "{scratch}"}}
{scheduler}  type: RestoreOnly
  retryConfig: {{maxRetry: {retry}}}
  sessionHistoryLimit: 2
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: data, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: data-app, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-last, namespace: demo}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "0 0 1 1 *"}}
      sessionHistoryLimit: 10
      repositories:
        - name: data-repo
          backend: local
          directory: demo/data
          encryptionSecret: {{name: encrypt, namespace: demo}}
          backupVerifier: {{name: data-verifier, namespace: demo}}
      addon:
        name: workload-addon
        tasks:
          - name: logical-backup
            params: {{paths: "{data}"}}
"#,
        scratch = scratch.display(),
        data = env.data.display(),
    )
}

/// Verification sessions of namespace `demo`, oldest first.
fn verification_sessions(env: &Env) -> Vec<Value> {
    let mut v = env.list("backupverificationsessions", "demo");
    v.sort_by_key(|s| {
        (
            s.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name(s).to_string(),
        )
    });
    v
}

fn latest_snapshot(env: &Env) -> Value {
    let mut snaps = env.list("snapshots", "demo");
    snaps.sort_by_key(|s| {
        s.pointer("/status/snapshotTime")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    });
    snaps.pop().expect("a snapshot")
}

fn backup_now(env: &Env) {
    let before = env.sessions_of("data").len();
    env.ok(&["trigger", "data", "-n", "demo"]);
    let sessions = env.wait_sessions_done("data", before + 1);
    let last = sessions.last().unwrap();
    assert_eq!(phase(last), "Succeeded", "{last:#}");
}

#[test]
fn volume_snapshots_are_verified_in_a_scratch_directory_then_a_damaged_pack_fails_and_is_retried() {
    let env = Env::new();
    write_tree(&env.data, 3 << 20);
    let scratch = env.dir.path().join("scratch");
    env.apply(&env.storage_manifests(5));
    env.apply(&verified_volume_manifests(&env, &scratch, None, 1));
    let _daemon = env.start_daemon(&[]);
    let first = env.wait_sessions_done("data", 1);
    assert_eq!(phase(&first[0]), "Succeeded", "{:#}", first[0]);
    let bc = wait_some(
        Duration::from_secs(30),
        "the configuration's repository status",
        || {
            env.get("backupconfiguration", "demo", "data").filter(|bc| {
                bc.pointer("/status/repositories/0/phase").and_then(Value::as_str) == Some("Ready")
            })
        },
    );
    assert_eq!(
        bc.pointer("/status/repositories/0/verificationConfigured"),
        None,
        "a verifier without a schedule is not scheduled: {bc:#}"
    );

    // 1. Verified: restored into the scratch directory, compared, the copy removed.
    let (bvs, ok) = env.verify_now("data");
    let session = name(&bvs).to_string();
    assert!(ok, "{bvs:#}");
    assert_eq!(phase(&bvs), "Succeeded", "{bvs:#}");
    let verified = condition(&bvs, "BackupVerified").expect("BackupVerified");
    assert_eq!(verified["status"], "True", "{bvs:#}");
    assert!(
        verified["message"]
            .as_str()
            .unwrap()
            .contains("match the snapshot"),
        "{verified:#}"
    );
    let snap = latest_snapshot(&env);
    assert_eq!(snap["status"]["verificationStatus"], "Verified", "{snap:#}");
    assert_eq!(snap["status"]["verificationSession"], session.as_str());
    let copy = scratch.join(env.data.strip_prefix("/").unwrap());
    assert!(
        !copy.exists(),
        "the scratch copy {} was not removed",
        copy.display()
    );
    // The source is untouched.
    assert!(env.data.join("sub/big.bin").exists());

    // 2. The same snapshot again: skipped, it is already verified.
    let (skipped, _) = env.verify_now("data");
    assert_eq!(phase(&skipped), "Skipped", "{skipped:#}");
    assert_eq!(
        condition(&skipped, "BackupVerificationSkipped").unwrap()["reason"],
        "SnapshotAlreadyVerified"
    );

    // 3. A new backup, verified into the same scratch target: the first run's restore is gone
    // and the second one succeeds.
    std::fs::write(env.data.join("hello.txt"), "changed\n").unwrap();
    backup_now(&env);
    let (second, ok) = env.verify_now("data");
    assert!(ok);
    assert_eq!(phase(&second), "Succeeded", "{second:#}");

    // 4. Damage the pack holding big.bin's data in a new snapshot: the restore fails naming
    // the pack, the Snapshot reads VerificationFailed, and a session with retryLeft 1 is
    // retried once.
    let packs = |env: &Env| -> Vec<std::path::PathBuf> {
        walk_files(&env.storage.join("demo/data"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/data/"))
            .collect()
    };
    let before = packs(&env);
    let noise: Vec<u8> = (0u32..(2 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(env.data.join("sub/big.bin"), noise).unwrap();
    backup_now(&env);
    let biggest = packs(&env)
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("the new backup wrote a pack");
    let pack_id = biggest.file_name().unwrap().to_string_lossy().to_string();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    env.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupVerificationSession
metadata: {name: data-repo-damaged, namespace: demo}
spec:
  invoker: {apiGroup: core.kubestash.com, kind: BackupConfiguration, name: data}
  session: frequent
  repository: data-repo
  retryLeft: 1
"#,
    );
    let failed = env.wait_verification_done("data-repo-damaged");
    assert_eq!(phase(&failed), "Failed", "{failed:#}");
    let restore = condition(&failed, "RestoreSucceeded").expect("RestoreSucceeded");
    assert_eq!(restore["status"], "False");
    let why = restore["message"].as_str().unwrap();
    assert!(
        why.contains(&pack_id[..8]),
        "the message names the damaged pack {pack_id}: {why}"
    );
    let snap = latest_snapshot(&env);
    assert_eq!(
        snap["status"]["verificationStatus"], "VerificationFailed",
        "{snap:#}"
    );
    let retried = wait_some(
        Duration::from_secs(60),
        "the retry of the failed verification",
        || {
            verification_sessions(&env).into_iter().find(|s| {
                s.pointer("/spec/retryLeft").is_none()
                    && s.pointer("/spec/snapshot") == failed.pointer("/spec/snapshot")
                    && name(s) != "data-repo-damaged"
            })
        },
    );
    let retried = env.wait_verification_done(name(&retried));
    assert_eq!(
        phase(&retried),
        "Failed",
        "the retry meets the same damage: {retried:#}"
    );
    let failed = env
        .get("backupverificationsession", "demo", "data-repo-damaged")
        .expect("the failed session is the newest one history keeps besides its retry");
    assert_eq!(failed["status"]["retried"], true, "{failed:#}");
    // sessionHistoryLimit 2: at most two finished sessions are kept.
    wait_some(Duration::from_secs(30), "history cleanup to 2 sessions", || {
        (verification_sessions(&env).len() <= 2).then_some(())
    });
}

/// KubeStash's API takes such a verifier; kstash warns at apply, naming both objects, and never
/// runs it (`resolve::verification` refuses).
#[test]
fn a_verifier_that_restores_into_the_configurations_own_target_is_a_warning_at_apply() {
    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    let scratch = env.dir.path().join("scratch");
    let manifests = verified_volume_manifests(&env, &scratch, None, 1)
        .replace("name: data-verify-scratch", "name: data-app");
    let path = env.dir.path().join("own-target.yaml");
    std::fs::write(&path, manifests).unwrap();
    let out = env.run(&["apply", "-f", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning:")
            && err.contains("backupVerifier")
            && err.contains("data-verifier")
            && err.contains("Deployment demo/data-app"),
        "{err}"
    );
    assert!(err.contains("own"), "{err}");
}

#[test]
fn the_verifier_schedule_starts_verification_sessions() {
    let env = Env::new();
    write_tree(&env.data, 1 << 16);
    let scratch = env.dir.path().join("scratch");
    env.apply(&env.storage_manifests(3));
    env.apply(&verified_volume_manifests(&env, &scratch, Some("* * * * *"), 1));
    let _daemon = env.start_daemon(&[]);
    let bc = wait_some(Duration::from_secs(60), "verification configured", || {
        env.get("backupconfiguration", "demo", "data").filter(|bc| {
            bc.pointer("/status/repositories/0/verificationConfigured") == Some(&Value::Bool(true))
        })
    });
    assert_eq!(bc["status"]["phase"], "Ready", "{bc:#}");
    let scheduled = wait_some(
        Duration::from_secs(150),
        "a scheduled verification that succeeded",
        || {
            verification_sessions(&env)
                .into_iter()
                .find(|s| phase(s) == "Succeeded" && name(s).starts_with("data-repo-frequent-"))
        },
    );
    assert_eq!(
        scheduled.pointer("/spec/invoker/name").and_then(Value::as_str),
        Some("data")
    );
}

fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
