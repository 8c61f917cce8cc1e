//! End to end: `retryConfig` of a backup session — a failed backup is retried exactly `maxRetry`
//! times after `delay`, the retries are marked on the failed session, and the failure is readable.
mod lifecycle;

use std::time::Duration;

use lifecycle::*;
use serde_json::Value;

#[test]
fn failed_backup_is_retried_once_and_only_once() {
    let env = Env::new();
    let missing = env.dir.path().join("does-not-exist");
    let missing = missing.display().to_string();
    let _daemon = env.start_daemon(&[]);

    env.apply(&env.storage_manifests(5));
    env.apply(&env.backup_configuration(
        "flaky",
        "0 0 1 1 *",
        &missing,
        "      retryConfig: {maxRetry: 1, delay: 2s}\n",
    ));

    // The instant first backup fails, and one retry follows it and fails too.
    let sessions = env.wait_sessions_done("flaky", 2);
    let (first, retry) = (&sessions[0], &sessions[1]);
    assert_eq!(phase(first), "Failed", "first: {first:#}");
    assert_eq!(phase(retry), "Failed", "retry: {retry:#}");
    assert_eq!(
        first
            .pointer("/spec/retryLeft")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        1,
        "{first:#}"
    );
    assert_eq!(
        retry
            .pointer("/spec/retryLeft")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        0,
        "{retry:#}"
    );

    // The first session records that it was retried, and when.
    assert_eq!(
        first.pointer("/status/retried"),
        Some(&Value::Bool(true)),
        "{first:#}"
    );
    assert!(
        first
            .pointer("/status/nextRetry")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty()),
        "no nextRetry: {first:#}"
    );
    assert_ne!(
        retry.pointer("/status/retried"),
        Some(&Value::Bool(true)),
        "{retry:#}"
    );

    // No third session, even well after the retry delay.
    std::thread::sleep(Duration::from_secs(8));
    let all = env.sessions_of("flaky");
    assert_eq!(
        all.len(),
        2,
        "sessions: {:#?}",
        all.iter().map(name).collect::<Vec<_>>()
    );

    // Each failed snapshot says which path is missing.
    let snapshots = env.list("snapshots", "demo");
    assert_eq!(snapshots.len(), 2, "{snapshots:#?}");
    for snap in &snapshots {
        assert_eq!(phase(snap), "Failed", "{snap:#}");
        let components = snap
            .pointer("/status/components")
            .and_then(Value::as_object)
            .expect("components");
        assert!(!components.is_empty(), "{snap:#}");
        for (comp, status) in components {
            let error = status["error"].as_str().unwrap_or("");
            assert!(
                error.contains(&missing),
                "component {comp} error does not name {missing}: {error:?}"
            );
        }
    }
}
