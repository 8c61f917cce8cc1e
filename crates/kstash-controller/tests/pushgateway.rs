//! Session metrics against a real Prometheus Pushgateway: pushed series appear with the grouping
//! labels, a second push replaces the group (PUT), escaping of grouping values, errors name the URL.

use std::collections::BTreeMap;

use kstash_api::core::{BackupConfiguration, BackupSession, RestoreSession};
use kstash_api::storage::{Repository, Snapshot};
use kstash_controller::metrics::{
    MetricsError, StateObjects, backup_session_metrics, push, restore_session_metrics, state_metrics,
};
use kstash_testsupport::Pushgateway;
use serde_json::json;

const JOB: &str = "kstash-backup";

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn bc() -> BackupConfiguration {
    from(json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "BackupConfiguration",
        "metadata": {"name": "pg-backup", "namespace": "demo", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {"target": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg"}},
        "status": {"phase": "Ready"}
    }))
}

fn session(phase: &str, duration: &str) -> BackupSession {
    from(json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "BackupSession",
        "metadata": {"name": "pg-backup-1", "namespace": "demo", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": "pg-backup"},
                 "session": "frequent"},
        "status": {"phase": phase, "duration": duration,
                   "snapshots": [{"name": "s3-repo-pg-backup-1", "phase": phase, "repository": "s3-repo"}]}
    }))
}

fn snapshot(phase: &str, size: &str) -> Snapshot {
    from(json!({
        "apiVersion": "storage.kubestash.com/v1alpha1",
        "kind": "Snapshot",
        "metadata": {"name": "s3-repo-pg-backup-1", "namespace": "demo"},
        "spec": {"repository": "s3-repo", "session": "frequent", "backupSession": "pg-backup-1",
                 "appRef": {"apiGroup": "kubedb.com", "kind": "Postgres", "namespace": "demo", "name": "pg"}},
        "status": {"phase": phase, "totalComponents": 1,
                   "components": {"dump": {"phase": phase, "duration": "20s", "size": size}}}
    }))
}

fn repository(count: i32) -> Repository {
    from(json!({
        "apiVersion": "storage.kubestash.com/v1alpha1",
        "kind": "Repository",
        "metadata": {"name": "s3-repo", "namespace": "demo"},
        "spec": {"appRef": {"kind": "Postgres", "name": "pg"}, "storageRef": {"name": "s3"}, "path": "/pg"},
        "status": {"integrity": true, "snapshotCount": count, "size": "10 MiB"}
    }))
}

/// One scraped sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the sample lines of a text exposition (labels with escaped values; comments skipped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).expect("sample line has a name");
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut key = String::new();
            let mut end = body.len();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|c| c.1) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => break,
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .expect("sample value")
            .parse()
            .expect("numeric value");
        out.push(Sample { name, labels, value });
    }
    out
}

fn scrape(gateway: &Pushgateway) -> Vec<Sample> {
    let text = ureq::get(format!("{}/metrics", gateway.url))
        .call()
        .expect("scrape the Pushgateway")
        .body_mut()
        .read_to_string()
        .expect("read scrape body");
    parse(&text)
}

/// Samples named `name` whose labels include every pair of `labels`.
fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

#[track_caller]
fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(
        found.len(),
        1,
        "expected one {name} with {labels:?}, got {found:?}"
    );
    found[0].value
}

const GROUP: [(&str, &str); 3] = [("job", JOB), ("namespace", "demo"), ("invoker_name", "pg-backup")];

#[test]
fn push_then_scrape_and_replace() {
    let gateway = Pushgateway::start().expect("start the Pushgateway");
    let grouping = [("namespace", "demo"), ("invoker_name", "pg-backup")];

    let first = backup_session_metrics(
        &bc(),
        &session("Succeeded", "1m30s"),
        &[snapshot("Succeeded", "3 MiB")],
        &[repository(3)],
    );
    push(&gateway.url, JOB, &grouping, &first).expect("first push");

    let samples = scrape(&gateway);
    assert_eq!(
        value_of(&samples, "stash_appscode_com_backupsession_success", &GROUP),
        1.0
    );
    let success = find(&samples, "stash_appscode_com_backupsession_success", &GROUP)[0];
    assert_eq!(success.labels["invoker_kind"], "BackupConfiguration");
    assert_eq!(success.labels["driver"], "Restic");
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_duration_seconds",
            &GROUP
        ),
        90.0
    );
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_last_success_time_seconds",
            &GROUP
        ),
        1_714_557_690.0
    );
    let host: Vec<(&str, &str)> = GROUP
        .iter()
        .copied()
        .chain([
            ("hostname", "dump"),
            ("repository", "s3-repo"),
            ("kind", "Postgres"),
            ("group", "kubedb.com"),
            ("name", "pg"),
        ])
        .collect();
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_host_backup_success",
            &host
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_host_data_size_bytes",
            &host
        ),
        3_145_728.0
    );
    assert_eq!(
        value_of(&samples, "stash_appscode_com_repository_snapshot_count", &GROUP),
        3.0
    );
    assert!(!find(&samples, "push_time_seconds", &GROUP).is_empty());

    // A second push to the same group replaces it: new values, and series the second push does not
    // carry (the last success time of a failed session) are gone.
    let second = backup_session_metrics(
        &bc(),
        &session("Failed", "45s"),
        &[snapshot("Failed", "")],
        &[repository(4)],
    );
    push(&gateway.url, JOB, &grouping, &second).expect("second push");

    let samples = scrape(&gateway);
    assert_eq!(
        value_of(&samples, "stash_appscode_com_backupsession_success", &GROUP),
        0.0
    );
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_duration_seconds",
            &GROUP
        ),
        45.0
    );
    assert!(
        find(
            &samples,
            "stash_appscode_com_backupsession_last_success_time_seconds",
            &GROUP
        )
        .is_empty()
    );
    assert!(
        find(
            &samples,
            "stash_appscode_com_backupsession_host_data_size_bytes",
            &GROUP
        )
        .is_empty()
    );
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_backupsession_host_backup_success",
            &host
        ),
        0.0
    );
    assert_eq!(
        value_of(&samples, "stash_appscode_com_repository_snapshot_count", &GROUP),
        4.0
    );
}

#[test]
fn push_escapes_grouping_values_and_accepts_every_render() {
    let gateway = Pushgateway::start().expect("start the Pushgateway");

    // A value with '/' travels base64-encoded and an empty one as `@base64/=`; the gateway decodes them.
    let restore: RestoreSession = from(json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "RestoreSession",
        "metadata": {"name": "pg-restore", "namespace": "demo"},
        "spec": {"target": {"apiGroup": "kubedb.com", "kind": "Postgres", "name": "pg"},
                 "dataSource": {"repository": "s3-repo", "snapshot": "latest"}},
        "status": {"phase": "Succeeded", "duration": "2m",
                   "components": {"dump": {"phase": "Succeeded", "duration": "1m"}}}
    }));
    let grouping = [("namespace", "demo"), ("repo_path", "demo/pg db"), ("extra", "")];
    push(
        &gateway.url,
        "kstash-restore",
        &grouping,
        &restore_session_metrics(&restore),
    )
    .expect("push restore metrics");
    let samples = scrape(&gateway);
    let group = [
        ("job", "kstash-restore"),
        ("repo_path", "demo/pg db"),
        ("invoker_name", "pg-restore"),
    ];
    assert_eq!(
        value_of(&samples, "stash_appscode_com_restoresession_success", &group),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "stash_appscode_com_restoresession_host_restore_duration_seconds",
            &group
        ),
        60.0
    );

    // The state metrics parse in the gateway too (OpenMetrics output, `# EOF` trailer included).
    let objects = StateObjects {
        backup_configurations: vec![bc()],
        backup_sessions: vec![session("Succeeded", "1m30s")],
        restore_sessions: vec![restore],
        repositories: vec![repository(3)],
        snapshots: vec![snapshot("Succeeded", "3 MiB")],
        ..Default::default()
    };
    push(
        &gateway.url,
        "kstash-state",
        &[("namespace", "demo")],
        &state_metrics(&objects),
    )
    .expect("push state metrics");
    let samples = scrape(&gateway);
    let state = [("job", "kstash-state"), ("phase", "Succeeded")];
    assert_eq!(
        value_of(&samples, "core_kubestash_com_backupsession_phase", &state),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "core_kubestash_com_backupsession_duration_seconds",
            &[("job", "kstash-state")]
        ),
        90.0
    );
}

#[test]
fn push_errors_name_the_url() {
    // A port that was free a moment ago: nothing listens there.
    let port = kstash_testsupport::ports::free_port().expect("free port");
    let url = format!("http://127.0.0.1:{port}");
    let err = push(&url, JOB, &[("namespace", "demo")], "x 1\n").expect_err("nothing listens");
    assert!(matches!(err, MetricsError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");

    // A gateway that answers but rejects the body: the status and the gateway's reason are reported.
    let gateway = Pushgateway::start().expect("start the Pushgateway");
    let err = push(&gateway.url, JOB, &[], "this is not { a metric\n").expect_err("malformed body");
    match &err {
        MetricsError::Rejected { status, .. } => assert_eq!(*status, 400, "{err}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(err.to_string().contains(&gateway.url), "{err}");
}
