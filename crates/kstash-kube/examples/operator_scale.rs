//! The operator at scale, for `bench/operator-scale`: the real `kstash operator` process against
//! `FakeKubeApi`, an in-process FAKE of the Kubernetes API server (no real kube-apiserver, kind,
//! k3s or envtest can run on this machine; see reference/test-infra.md §12).
//!
//! The fake runs no controllers, so this program plays them: it is the user (it applies N
//! BackupConfigurations at once), the CronJob controller (at every minute boundary it creates each
//! configuration's BackupSession, as the trigger pod's `kstash trigger` would, through the same
//! `new_backup_session`), and the Job controller (it marks every executor Job it sees Complete; no
//! executor runs, so those sessions end Failed with "executor exited without reporting every
//! component" — the control plane's path is the same up to there).
//!
//! It prints: how long the operator took to settle N configurations (CronJob and instant-backup
//! Job for each), the lag from each scheduled BackupSession's creation to its executor Job (p50,
//! p90, p99, max per minute), whether every session got its Job within its minute, the sessions
//! by phase, and the operator's peak RSS and CPU time.
//!
//! ```text
//! cargo run --release -p kstash-kube --example operator_scale -- KSTASH_BINARY [N=500] [MINUTES=2] [--slow-hook]
//! ```
//! `--slow-hook` adds one configuration whose pre-backup hook (an `httpGet` the operator runs,
//! to a server here that answers after a minute; the operator runs no exec hooks itself) takes a
//! minute.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kstash_api::core::BackupConfiguration;
use kstash_controller::backup_configuration::new_backup_session;
use kstash_testsupport::FakeKubeApi;
use serde_json::{Value, json};

const NS: &str = "scale";
const POLL: Duration = Duration::from_millis(200);

struct Args {
    kstash: PathBuf,
    configs: usize,
    minutes: u32,
    slow_hook: bool,
}

fn parse_args() -> Args {
    let mut pos = Vec::new();
    let mut slow_hook = false;
    for a in std::env::args().skip(1) {
        if a == "--slow-hook" {
            slow_hook = true;
        } else {
            pos.push(a);
        }
    }
    let Some(kstash) = pos.first() else {
        eprintln!("usage: operator_scale KSTASH_BINARY [N=500] [MINUTES=2] [--slow-hook]");
        std::process::exit(2);
    };
    let number = |i: usize, default: usize| -> usize {
        pos.get(i).map_or(default, |s| {
            s.parse().unwrap_or_else(|_| panic!("{s:?} is not a number"))
        })
    };
    Args {
        kstash: PathBuf::from(kstash),
        configs: number(1, 500),
        minutes: u32::try_from(number(2, 2)).expect("minutes"),
        slow_hook,
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The user's objects: an encryption Secret, a local BackupStorage under `dir`, a RetentionPolicy,
/// the Deployment every configuration targets, and (with `slow_hook`) the hook template.
fn shared_objects(api: &FakeKubeApi, dir: &Path, slow_hook: Option<u16>) {
    let storage = dir.join("storage");
    let data = dir.join("data");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "scale\n").unwrap();
    let (storage, data) = (storage.display().to_string(), data.display().to_string());
    api.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.put(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "enc", "namespace": NS},
        "data": {"RESTIC_PASSWORD": "YmVuY2g="}}),
    );
    api.put(json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
        "metadata": {"name": "local", "namespace": NS},
        "spec": {"storage": {"provider": "local", "local": {"mountPath": storage, "hostPath": {"path": storage}}},
                 "default": true, "deletionPolicy": "WipeOut"}}));
    api.put(
        json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": "keep", "namespace": NS},
        "spec": {"default": true, "successfulSnapshots": {"last": 2}}}),
    );
    api.put(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": "app"}},
                 "template": {"metadata": {"labels": {"app": "app"}},
                              "spec": {"containers": [{"name": "app", "image": "busybox",
                                           "volumeMounts": [{"name": "data", "mountPath": data}]}],
                                       "volumes": [{"name": "data", "hostPath": {"path": data}}]}}}}),
    );
    if let Some(port) = slow_hook {
        api.put(json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "HookTemplate",
            "metadata": {"name": "sleep-a-minute", "namespace": NS},
            "spec": {"usagePolicy": {"allowedNamespaces": {"from": "Same"}},
                     "action": {"httpGet": {"host": "127.0.0.1", "port": port, "path": "/", "scheme": "HTTP"}},
                     "executor": {"type": "Operator"}}}));
    }
}

/// BackupConfiguration `name` on `* * * * *`, backing up the shared Deployment into its own
/// repository.
fn configuration(name: &str, data: &Path, slow_hook: bool) -> Value {
    let mut session = json!({
        "name": "s",
        "scheduler": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1},
        "repositories": [{"name": format!("r-{name}"), "backend": "b", "directory": name,
                          "encryptionSecret": {"name": "enc", "namespace": NS}}],
        "addon": {"name": "workload-addon", "tasks": [{"name": "logical-backup",
                  "params": {"paths": data.display().to_string()}}]},
    });
    if slow_hook {
        session["hooks"] = json!({"preBackup": [{"name": "slow",
            "hookTemplate": {"name": "sleep-a-minute", "namespace": NS}, "timeout": "2m"}]});
    }
    json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": NS},
                 "backends": [{"name": "b", "storageRef": {"name": "local", "namespace": NS},
                               "retentionPolicy": {"name": "keep", "namespace": NS}}],
                 "sessions": [session]}})
}

/// An HTTP server on loopback that answers every request 200 after a minute; its port.
fn slow_http_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut conn, &mut buf);
                std::thread::sleep(Duration::from_secs(60));
                let _ = std::io::Write::write_all(
                    &mut conn,
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    port
}

fn start_operator(kstash: &Path, kubeconfig: &Path, log: &Path) -> Child {
    Command::new(kstash)
        .args([
            "operator",
            "--leader-elect",
            "false",
            "--health-addr",
            "",
            "--metrics-addr",
            "",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .expect("start kstash operator")
}

/// Peak RSS (MiB) and CPU seconds (user + system) of a running process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| rest.get(i)?.parse::<f64>().ok())
        .sum();
    (hwm_kib / 1024.0, ticks / 100.0)
}

/// Plays the Job controller: marks every executor Job without a status Complete, and returns the
/// owning session of every Job seen, with the first instant it was seen.
fn watch_jobs(api: &FakeKubeApi, seen: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    for mut job in api.list("batch/v1", "Job", Some(NS)) {
        let Some(owner) = job["metadata"]["ownerReferences"][0]["name"].as_str() else {
            continue;
        };
        seen.entry(owner.to_string()).or_insert(now);
        if job["status"].is_null() {
            job["status"] = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True", "reason": "Completed"}]});
            api.put(job);
        }
    }
}

fn quantiles(mut ms: Vec<u128>) -> String {
    if ms.is_empty() {
        return "none".into();
    }
    ms.sort_unstable();
    let q = |p: f64| ms[((p * ms.len() as f64) as usize).min(ms.len() - 1)];
    format!(
        "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (of {})",
        q(0.5),
        q(0.9),
        q(0.99),
        ms[ms.len() - 1],
        ms.len()
    )
}

fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().unwrap();
    let api = FakeKubeApi::start().unwrap();
    api.install_kstash(&repo_root());
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NS).unwrap();
    shared_objects(&api, dir.path(), args.slow_hook.then(slow_http_server));
    let mut operator = start_operator(&args.kstash, &kubeconfig, &dir.path().join("operator.log"));
    let pid = operator.id();

    // The user applies every configuration at once.
    let mut names: Vec<String> = (0..args.configs).map(|i| format!("bc{i}")).collect();
    let data = dir.path().join("data");
    let applied = Instant::now();
    for name in &names {
        api.put(configuration(name, &data, false));
    }
    if args.slow_hook {
        api.put(configuration("slow", &data, true));
        names.push("slow".into());
    }
    eprintln!(
        "applied {} BackupConfigurations in {} ms; waiting for the operator to settle them…",
        names.len(),
        applied.elapsed().as_millis()
    );

    // Settling: each configuration's trigger CronJob and its instant backup's executor Job.
    let mut jobs_seen: HashMap<String, Instant> = HashMap::new();
    let mut cronjobs_at: BTreeMap<String, Instant> = BTreeMap::new();
    let settle_limit = Duration::from_secs(600);
    loop {
        watch_jobs(&api, &mut jobs_seen);
        let now = Instant::now();
        for cj in api.list("batch/v1", "CronJob", Some(NS)) {
            if let Some(n) = cj["metadata"]["name"].as_str() {
                cronjobs_at.entry(n.to_string()).or_insert(now);
            }
        }
        let configs_with_job = names
            .iter()
            .filter(|n| jobs_seen.keys().any(|s| s.starts_with(&format!("{n}-s-"))))
            .count();
        // The slow configuration's instant backup waits for its hook: not part of settling.
        if cronjobs_at.len() >= names.len() && configs_with_job >= args.configs {
            break;
        }
        if applied.elapsed() > settle_limit {
            eprintln!(
                "not settled after {} s: {} CronJobs, {} configurations with an executor Job",
                settle_limit.as_secs(),
                cronjobs_at.len(),
                configs_with_job
            );
            break;
        }
        std::thread::sleep(POLL);
    }
    let cron_ms: Vec<u128> = cronjobs_at
        .values()
        .map(|t| t.duration_since(applied).as_millis())
        .collect();
    let job_ms: Vec<u128> = jobs_seen
        .values()
        .map(|t| t.duration_since(applied).as_millis())
        .collect();
    println!(
        "settled {} configurations in {:.1} s",
        names.len(),
        applied.elapsed().as_secs_f64()
    );
    println!("  apply → trigger CronJob: {}", quantiles(cron_ms));
    println!("  apply → instant backup's executor Job: {}", quantiles(job_ms));

    // Scheduled minutes: at each minute boundary every configuration's BackupSession is created
    // (by `kstash trigger` in the CronJob's pod on a real cluster).
    let configs: Vec<BackupConfiguration> = names
        .iter()
        .map(|n| {
            serde_json::from_value(
                api.get("core.kubestash.com/v1alpha1", "BackupConfiguration", NS, n)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let mut all_in_time = true;
    for minute in 1..=args.minutes {
        let now = jiff::Timestamp::now();
        let to_boundary = 60 - now.as_second().rem_euclid(60);
        std::thread::sleep(Duration::from_secs(u64::try_from(to_boundary).unwrap()));
        let fired = Instant::now();
        let at = jiff::Timestamp::now();
        let mut created: Vec<(String, Instant)> = Vec::with_capacity(configs.len());
        for bc in &configs {
            let bs = new_backup_session(bc, "s", 0, at).unwrap();
            let name = bs.metadata.name.clone().unwrap();
            api.put(serde_json::to_value(&bs).unwrap());
            created.push((name, Instant::now()));
        }
        let creating_ms = fired.elapsed().as_millis();
        loop {
            watch_jobs(&api, &mut jobs_seen);
            let waiting = created
                .iter()
                .filter(|(n, _)| !n.starts_with("slow-") && !jobs_seen.contains_key(n))
                .count();
            if waiting == 0 || fired.elapsed() > Duration::from_secs(58) {
                break;
            }
            std::thread::sleep(POLL);
        }
        let lags: Vec<u128> = created
            .iter()
            .filter_map(|(n, t)| Some(jobs_seen.get(n)?.saturating_duration_since(*t).as_millis()))
            .collect();
        let ordinary = created.iter().filter(|(n, _)| !n.starts_with("slow-")).count();
        let ordinary_with_job = created
            .iter()
            .filter(|(n, _)| !n.starts_with("slow-") && jobs_seen.contains_key(n))
            .count();
        all_in_time &= ordinary_with_job == ordinary;
        println!(
            "minute {minute}: {} BackupSessions created in {creating_ms} ms; session → executor Job: {}; \
             {ordinary_with_job}/{ordinary} ordinary sessions got their Job within the minute",
            created.len(),
            quantiles(lags)
        );
    }
    println!("every ordinary session got its executor Job within its minute: {all_in_time}");
    std::thread::sleep(Duration::from_secs(5));
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for bs in api.list("core.kubestash.com/v1alpha1", "BackupSession", Some(NS)) {
        let phase = bs["status"]["phase"].as_str().unwrap_or("Pending").to_string();
        if bs["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("slow-"))
        {
            println!(
                "the slow configuration's {}: {phase}, {}",
                bs["metadata"]["name"], bs["status"]["conditions"]
            );
        }
        *phases.entry(phase).or_default() += 1;
    }
    println!("BackupSessions left (history limits apply) by phase: {phases:?}");
    let (rss, cpu) = usage(pid);
    let (_, own_cpu) = usage(std::process::id());
    println!(
        "operator peak RSS {rss:.0} MiB, CPU {cpu:.1} s (this bench with the fake API server: CPU {own_cpu:.1} s)"
    );
    let mut requests: BTreeMap<String, usize> = BTreeMap::new();
    for r in api.requests() {
        // "METHOD /apis/group/version/namespaces/ns/kind[/name[/sub]]?query" → "METHOD kind[/sub] [list|watch]"
        let (method, rest) = r.split_once(' ').unwrap_or((&r, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let at = parts
            .iter()
            .position(|p| *p == "namespaces")
            .map_or(parts.len().min(3), |i| i + 2);
        let kind = parts.get(at).copied().unwrap_or("-");
        let sub = parts.get(at + 2).map(|s| format!("/{s}")).unwrap_or_default();
        let shape = if query.contains("watch") {
            " watch"
        } else if parts.len() == at + 1 {
            " list"
        } else {
            ""
        };
        *requests
            .entry(format!("{method} {kind}{sub}{shape}"))
            .or_default() += 1;
    }
    let mut by_count: Vec<_> = requests.into_iter().collect();
    by_count.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    println!(
        "API requests, all the operator's (this bench writes around HTTP): {}",
        by_count
            .iter()
            .take(14)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = operator.kill();
    let _ = operator.wait();
    if std::env::var_os("KEEP").is_some() {
        std::fs::write(dir.path().join("requests.txt"), api.requests().join("\n")).unwrap();
        println!("kept {}", dir.keep().display());
    }
}
