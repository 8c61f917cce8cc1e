//! Benchmark of the dashboard's overview (run by `bench/ui-overview`): an embedded store filled with
//! N BackupConfigurations, their Repositories, M Snapshots with status and a few BackupSessions
//! each, the dashboard served over it, and the overview fetched R times through HTTP. Prints the
//! time of each render; asserts nothing about speed.
//!
//!   cargo run --release -p kstash --example ui_overview -- [CONFIGS=200] [SNAPSHOTS=5000] [ROUNDS=10]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kstash_api::client::Resources;
use kstash_embedded::Store;
use kstash_ui::{ComponentData, ComponentLocks, OpError, Operations, UiConfig};
use serde_json::{Value, json};

/// A runtime that allows nothing: the benchmark only reads.
struct ReadOnly;

impl Operations for ReadOnly {
    fn trigger(&self, _: &str, _: &str) -> Result<Vec<String>, OpError> {
        Err(OpError("read-only benchmark".into()))
    }
    fn set_paused(&self, _: &str, _: &str, _: bool) -> Result<(), OpError> {
        Err(OpError("read-only benchmark".into()))
    }
    fn unlock(&self, _: &str, _: &str) -> Result<usize, OpError> {
        Err(OpError("read-only benchmark".into()))
    }
    fn locks(&self, _: &str, _: &str) -> Result<Vec<ComponentLocks>, OpError> {
        Ok(Vec::new())
    }
    fn retention_reasons(&self, _: &str, _: &str) -> Result<BTreeMap<String, String>, OpError> {
        Ok(BTreeMap::new())
    }
    fn executor_log(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn open_component(&self, _: &str, _: &str, _: &str) -> Result<ComponentData, OpError> {
        Err(OpError("read-only benchmark".into()))
    }
    fn event(&self, _: &str, _: &str, _: &str) {}
}

fn with_status(store: &Store, obj: Value) {
    let status = obj.get("status").cloned();
    let mut created = Resources::create(store, obj).expect("create");
    if let Some(st) = status {
        created["status"] = st;
        Resources::update_status(store, created).expect("status");
    }
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let configs = args.first().copied().unwrap_or(200);
    let snapshots = args.get(1).copied().unwrap_or(5000);
    let rounds = args.get(2).copied().unwrap_or(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path().join("kstash.db")).expect("store"));
    let now = jiff::Timestamp::now();
    let at = |mins: i64| (now - jiff::SignedDuration::from_mins(mins)).to_string();
    let fill = Instant::now();
    for i in 0..configs {
        let (bc, repo) = (format!("app-{i:04}"), format!("app-{i:04}-repo"));
        with_status(
            &store,
            json!({
            "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
            "metadata": {"name": bc, "namespace": "bench"},
            "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": bc, "namespace": "bench"},
                     "backends": [{"name": "local", "storageRef": {"name": "local", "namespace": "bench"}}],
                     "sessions": [{"name": "hourly", "scheduler": {"schedule": "0 * * * *"},
                                   "repositories": [{"name": repo, "backend": "local", "directory": format!("bench/{bc}")}],
                                   "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}}]},
            "status": {"phase": "Ready", "sessions": [{"name": "hourly", "nextSchedule": at(-30)}]}}),
        );
        with_status(
            &store,
            json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": repo, "namespace": "bench"},
            "spec": {"storageRef": {"name": "local", "namespace": "bench"}, "path": format!("bench/{bc}")},
            "status": {"phase": "Ready", "size": "12.500 MiB", "snapshotCount": snapshots / configs.max(1), "integrity": true, "lastBackupTime": at(30)}}),
        );
        for k in 0..3 {
            with_status(
                &store,
                json!({
                "apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
                "metadata": {"name": format!("{bc}-hourly-{k}"), "namespace": "bench"},
                "spec": {"invoker": {"apiGroup": "core.kubestash.com", "kind": "BackupConfiguration", "name": bc}, "session": "hourly"},
                "status": {"phase": if k == 0 && i % 17 == 0 { "Failed" } else { "Succeeded" }, "duration": "4s"}}),
            );
        }
    }
    for j in 0..snapshots {
        let i = j % configs.max(1);
        let age = (j / configs.max(1)) as i64 * 60;
        with_status(
            &store,
            json!({
            "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Snapshot",
            "metadata": {"name": format!("app-{i:04}-repo-{j:06}"), "namespace": "bench"},
            "spec": {"repository": format!("app-{i:04}-repo"), "session": "hourly", "backupSession": format!("app-{i:04}-hourly-{j}")},
            "status": {"phase": "Succeeded", "snapshotTime": at(age), "size": format!("{}.000 MiB", 10 + j % 7),
                       "components": {"dump": {"phase": "Succeeded", "size": "10.000 MiB", "duration": "3.5s",
                                               "resticStats": [{"summary": {"id": "x", "uploaded": "1.000 MiB"}}]}}}}),
        );
    }
    eprintln!(
        "store filled with {configs} configurations, {snapshots} snapshots in {:.1}s",
        fill.elapsed().as_secs_f64()
    );
    let ui = kstash_ui::serve(
        UiConfig {
            addr: "127.0.0.1:0".into(),
            read_only: true,
            home: dir.path().to_path_buf(),
            ..UiConfig::default()
        },
        store,
        Arc::new(ReadOnly),
    )
    .expect("dashboard");
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(0).build().into();
    let link = kstash_ui::login_url(dir.path()).expect("login link");
    let login = agent.get(&link).call().expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let body = agent
            .get(format!("{}/", ui.url))
            .header("Cookie", &cookie)
            .call()
            .expect("overview")
            .into_body()
            .read_to_string()
            .expect("body");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "overview with {configs} configurations and {snapshots} snapshots: {bytes} bytes; ms per render: min {:.0}, median {:.0}, max {:.0} (rounds: {})",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
