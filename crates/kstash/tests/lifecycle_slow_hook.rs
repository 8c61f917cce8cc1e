//! End to end on the embedded daemon: a slow hook runs off the reconcile workers. While one
//! configuration's pre-backup hook is still running, four other configurations back up to the
//! end; and a daemon killed while a hook runs restarts into a session that ends Failed, saying the
//! hook was interrupted, never one left Running.
//!
//! The slow hook waits for a gate file the test creates, so "still running" is a fact the test
//! controls, not a timing guess.

mod lifecycle;

use std::path::Path;
use std::time::Duration;

use lifecycle::*;
use serde_json::Value;

/// A HookTemplate `wait-for-gate` whose exec action blocks until `gate` exists (at most 10 min).
fn wait_for_gate_template(gate: &Path) -> String {
    r#"
apiVersion: core.kubestash.com/v1alpha1
kind: HookTemplate
metadata: {name: wait-for-gate, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  action:
    exec:
      command: ["sh", "-c", "while [ ! -e @GATE@ ]; do sleep 0.05; done"]
  executor: {type: Operator}
"#
    .replace("@GATE@", &gate.display().to_string())
}

/// The session block of a configuration whose pre-backup hook waits for the gate.
const SLOW_PRE_HOOK: &str = "      hooks:
        preBackup:
          - name: slow
            hookTemplate: {name: wait-for-gate, namespace: demo}
            timeout: 10m
";

/// The first BackupSession of `bc` once its pre-backup hook is running (recorded `Pending`).
fn session_with_hook_running(env: &Env, bc: &str) -> Value {
    wait_some(
        Duration::from_secs(60),
        "the slow pre-backup hook to start",
        || {
            let s = env.sessions_of(bc).into_iter().next()?;
            let pending = s
                .pointer("/status/hooks/preHooks/0/phase")
                .and_then(Value::as_str)
                == Some("Pending");
            pending.then_some(s)
        },
    )
}

fn final_session(env: &Env, session: &str) -> Value {
    wait_some(Duration::from_secs(120), "the session to end", || {
        let s = env.get("backupsession", "demo", session)?;
        matches!(phase(&s), "Succeeded" | "Failed" | "Skipped").then_some(s)
    })
}

#[test]
fn ordinary_backups_finish_while_another_configurations_hook_is_still_running() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    env.apply(&env.storage_manifests(5));
    env.apply(&wait_for_gate_template(&gate));
    let _daemon = env.start_daemon(&[]);

    // One configuration whose instant backup blocks in its pre-backup hook.
    let slow_data = env.data.join("slow");
    write_tree(&slow_data, 1024);
    env.apply(&env.backup_configuration(
        "slow",
        "0 0 1 1 *",
        &slow_data.display().to_string(),
        SLOW_PRE_HOOK,
    ));
    let slow = session_with_hook_running(&env, "slow");
    let slow_name = name(&slow).to_string();

    // Four ordinary configurations applied while that hook runs.
    for i in 0..4 {
        let data = env.data.join(format!("plain-{i}"));
        write_tree(&data, 4096);
        env.apply(&env.backup_configuration(
            &format!("plain-{i}"),
            "0 0 1 1 *",
            &data.display().to_string(),
            "",
        ));
    }
    for i in 0..4 {
        let done = env.wait_sessions_done(&format!("plain-{i}"), 1).remove(0);
        assert_eq!(phase(&done), "Succeeded", "plain-{i}: {done:#}");
    }

    // All four finished while the hook was still running: the gate is not there yet.
    assert!(!gate.exists());
    let still = env.get("backupsession", "demo", &slow_name).unwrap();
    assert_eq!(phase(&still), "Running", "{still:#}");
    assert_eq!(
        still.pointer("/status/hooks/preHooks/0/phase"),
        Some(&Value::from("Pending")),
        "{still:#}"
    );

    // Released, the slow backup goes on and succeeds.
    std::fs::write(&gate, b"").unwrap();
    let slow = final_session(&env, &slow_name);
    assert_eq!(phase(&slow), "Succeeded", "{slow:#}");
    assert_eq!(
        slow.pointer("/status/hooks/preHooks/0/phase"),
        Some(&Value::from("Succeeded")),
        "{slow:#}"
    );
}

#[test]
fn daemon_killed_while_a_hook_runs_restarts_into_a_failed_session_not_a_running_one() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    env.apply(&env.storage_manifests(5));
    env.apply(&wait_for_gate_template(&gate));
    write_tree(&env.data, 1024);
    env.apply(&env.backup_configuration(
        "hooked",
        "0 0 1 1 *",
        &env.data.display().to_string(),
        SLOW_PRE_HOOK,
    ));
    let mut daemon = env.start_daemon(&[]);
    let session = name(&session_with_hook_running(&env, "hooked")).to_string();

    daemon.kill();
    // The orphaned hook command may end now; the outcome was lost with the daemon.
    std::fs::write(&gate, b"").unwrap();
    let _daemon2 = env.start_daemon(&[]);

    let s = final_session(&env, &session);
    assert_eq!(phase(&s), "Failed", "{s:#}");
    let hooks = condition(&s, "PreBackupHooksExecutionSucceeded")
        .unwrap_or_else(|| panic!("no hook condition: {s:#}"));
    let (status, message) = condition_status_message(hooks);
    assert_eq!(status, "False", "{hooks}");
    assert!(
        message.contains("\"slow\" was interrupted"),
        "the failure says the hook was interrupted: {message}"
    );
    assert_eq!(
        s.pointer("/status/hooks/preHooks/0/phase"),
        Some(&Value::from("Failed")),
        "{s:#}"
    );
    // No snapshot data was taken for a session whose pre-backup hook did not succeed.
    let snaps = env.list("snapshots", "demo");
    assert!(snaps.is_empty(), "{snaps:#?}");
}
