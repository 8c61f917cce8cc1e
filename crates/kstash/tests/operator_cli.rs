//! `kstash operator` as a real process against a kubeconfig. The API server is `FakeKubeApi`, an
//! in-process FAKE of the Kubernetes API (kstash-testsupport): no real kube-apiserver can run on
//! this machine. Checks: clear errors for an unreachable API and a missing CRD, health endpoints,
//! reconciling through its watches (a BackupConfiguration gets its trigger CronJob), leader
//! election over a Lease between two replicas, and a clean exit on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kstash_testsupport::FakeKubeApi;
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fake API server with kstash's CRDs (unless `with_crds` is false) and the addon catalog.
fn fake_cluster(with_crds: bool) -> FakeKubeApi {
    let api = FakeKubeApi::start().unwrap();
    if with_crds {
        api.install_kstash(&repo_root());
    }
    api
}

/// One `kstash operator` process, its log, and its health port.
struct Operator {
    child: Option<Child>,
    log: PathBuf,
    health: u16,
}

impl Operator {
    fn start(dir: &Path, kubeconfig: &Path, pod_name: &str) -> Operator {
        let health = kstash_testsupport::ports::free_port().unwrap();
        let log = dir.join(format!("{pod_name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kstash"))
            .args([
                "operator",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--health-addr",
                &format!("127.0.0.1:{health}"),
                "--metrics-addr",
                "",
                "--image",
                "ghcr.io/kstash/kstash:test",
            ])
            .env("POD_NAME", pod_name)
            .env("POD_NAMESPACE", "kstash")
            .env("KSTASH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Operator {
            child: Some(child),
            log,
            health,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ready(&self) -> bool {
        kstash_testsupport::http::get(&format!("http://127.0.0.1:{}/readyz", self.health))
            .is_ok_and(|r| r.is_success())
    }

    /// SIGTERM and wait for the exit (at most 20 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "operator did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A local BackupStorage on `storage` and the repositories' encryption Secret, in `demo`.
fn storage_manifests(storage: &Path) -> String {
    format!(
        r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: local-storage, namespace: demo}}
spec:
  storage:
    provider: local
    local: {{mountPath: {s}, hostPath: {{path: {s}}}}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: encrypt-secret, namespace: demo}}
stringData: {{RESTIC_PASSWORD: changeit}}
"#,
        s = storage.display()
    )
}

fn lease_holder(api: &FakeKubeApi) -> Option<String> {
    api.get("coordination.k8s.io/v1", "Lease", "kstash", "kstash-operator")?
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A user creates a local storage (below `dir`) and the BackupConfiguration `demo/nightly`
/// (a Deployment's `/data`, every night at 02:00) in the API server; returns the storage directory.
fn put_nightly_configuration(api: &FakeKubeApi, dir: &Path) -> PathBuf {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let manifests = storage_manifests(&storage)
        + r#"
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {name: nightly, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web, namespace: demo}
  backends:
    - name: local
      storageRef: {name: local-storage, namespace: demo}
  sessions:
    - name: full
      scheduler: {schedule: "0 2 * * *"}
      repositories:
        - name: web-repo
          backend: local
          directory: web
          encryptionSecret: {name: encrypt-secret, namespace: demo}
      addon:
        name: workload-addon
        tasks: [{name: logical-backup, params: {paths: /data}}]
"#;
    for doc in kstash_api::manifest::parse_documents("test", &manifests).unwrap() {
        api.put(doc);
    }
    storage
}

#[test]
fn operator_reports_an_unreachable_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = kstash_testsupport::ports::free_port().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c}}\ncurrent-context: c\nusers: []\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(["operator", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--health-addr", "", "--metrics-addr", ""])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the Kubernetes API at http://127.0.0.1:{port}/ is unreachable"
        )),
        "{stderr}"
    );
}

#[test]
fn operator_names_a_missing_crd_and_how_to_install_it() {
    let api = fake_cluster(false);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "default").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(["operator", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--health-addr", "", "--metrics-addr", ""])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CustomResourceDefinitions not installed in the cluster: ")
            && stderr.contains("backupstorages.storage.kubestash.com, ")
            && stderr.contains("kubectl apply -f deploy/crds/"),
        "{stderr}"
    );
}

#[test]
fn operator_reconciles_through_its_watches_and_hands_over_the_lease_on_sigterm() {
    let api = fake_cluster(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "default").unwrap();

    let mut first = Operator::start(dir.path(), &kubeconfig, "operator-a");
    wait_for(Duration::from_secs(30), "operator-a ready", || first.ready());
    wait_for(Duration::from_secs(30), "operator-a to hold the Lease", || {
        lease_holder(&api).as_deref() == Some("operator-a")
    });
    let mut second = Operator::start(dir.path(), &kubeconfig, "operator-b");
    wait_for(Duration::from_secs(30), "operator-b ready", || second.ready());

    // A user creates a storage and a configuration; the leader's watches reconcile them.
    let storage = put_nightly_configuration(&api, dir.path());
    wait_for(Duration::from_secs(60), "the trigger CronJob", || {
        api.get("batch/v1", "CronJob", "demo", "trigger-nightly-full")
            .is_some()
    });
    let cron = api
        .get("batch/v1", "CronJob", "demo", "trigger-nightly-full")
        .unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    // The BackupStorage is reconciled by another worker: its metadata may land just after.
    wait_for(Duration::from_secs(30), "the storage to be initialised", || {
        storage.join("metadata.yaml").exists()
    });
    // Only the leader acted.
    assert!(lease_holder(&api).as_deref() == Some("operator-a"));
    assert!(
        second.log_text().contains("waiting for the leader"),
        "{}",
        second.log_text()
    );
    assert!(!second.log_text().contains("reconcile"), "{}", second.log_text());

    // SIGTERM: a clean exit that releases the Lease; the other replica takes over.
    let status = first.terminate();
    assert!(status.success(), "exit {status:?}\n{}", first.log_text());
    assert!(
        first.log_text().contains("operator stopped"),
        "{}",
        first.log_text()
    );
    wait_for(Duration::from_secs(30), "operator-b to take the Lease", || {
        lease_holder(&api).as_deref() == Some("operator-b")
    });
    assert!(second.terminate().success(), "{}", second.log_text());
}

/// Run `kstash` as a pod the operator made would: `KSTASH_RUNTIME=kubernetes`, the API from
/// `KUBECONFIG` (in a pod: the ServiceAccount), and the env of the Job's container.
fn run_in_pod(kubeconfig: &Path, args: &[String], env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(args)
        .env("KSTASH_RUNTIME", "kubernetes")
        .env("KUBECONFIG", kubeconfig)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn executor_and_trigger_commands_work_through_the_api_as_in_their_pods() {
    let api = fake_cluster(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "default").unwrap();
    let storage = dir.path().join("storage");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(data.join("sub/b.bin"), vec![3u8; 100_000]).unwrap();
    let _operator = Operator::start(dir.path(), &kubeconfig, "operator-a");
    let manifests = storage_manifests(&storage)
        + &format!(
            r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: demo}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - {{name: web, image: nginx, volumeMounts: [{{name: source-data, mountPath: {d}}}]}}
      volumes: [{{name: source-data, hostPath: {{path: {d}}}}}]
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: web-backup, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "*/5 * * * *"}}
      repositories:
        - name: web-repo
          backend: local
          directory: web
          encryptionSecret: {{name: encrypt-secret, namespace: demo}}
      addon:
        name: workload-addon
        tasks: [{{name: logical-backup, params: {{paths: {d}}}}}]
"#,
            d = data.display()
        );
    for doc in kstash_api::manifest::parse_documents("test", &manifests).unwrap() {
        api.put(doc);
    }
    // The instant backup's executor Job appears; run its container's command as its pod would.
    wait_for(Duration::from_secs(60), "the instant backup's Job", || {
        !api.list("batch/v1", "Job", Some("demo")).is_empty()
    });
    let mut job = api.list("batch/v1", "Job", Some("demo")).remove(0);
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect();
    let out = run_in_pod(&kubeconfig, &args, &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    job["status"] =
        serde_json::json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    api.put(job.clone());
    let bs_name = job["metadata"]["name"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(60), "the BackupSession to succeed", || {
        api.get("core.kubestash.com/v1alpha1", "BackupSession", "demo", &bs_name)
            .is_some_and(|b| b["status"]["phase"] == "Succeeded")
    });
    assert!(storage.join("web/repository/v1/frequent/dump/config").exists());

    // The trigger CronJob's command creates a BackupSession through the API.
    let cron = api
        .get("batch/v1", "CronJob", "demo", "trigger-web-backup-frequent")
        .unwrap();
    let trigger_args: Vec<String> = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let out = run_in_pod(&kubeconfig, &trigger_args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = stdout
        .trim()
        .strip_prefix("backupsession.core.kubestash.com/")
        .and_then(|s| s.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let bs = api
        .get("core.kubestash.com/v1alpha1", "BackupSession", "demo", created)
        .unwrap();
    assert_eq!(bs["spec"]["session"], "frequent");
    assert_eq!(bs["spec"]["invoker"]["name"], "web-backup");

    // A paused configuration is not triggered; a missing one is named.
    let mut bc = api
        .get(
            "core.kubestash.com/v1alpha1",
            "BackupConfiguration",
            "demo",
            "web-backup",
        )
        .unwrap();
    bc["spec"]["paused"] = serde_json::json!(true);
    api.put(bc);
    let before = api
        .list("core.kubestash.com/v1alpha1", "BackupSession", Some("demo"))
        .len();
    let out = run_in_pod(&kubeconfig, &trigger_args, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is paused"));
    assert_eq!(
        api.list("core.kubestash.com/v1alpha1", "BackupSession", Some("demo"))
            .len(),
        before
    );
    let missing: Vec<String> = ["trigger", "nope", "--namespace", "demo"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run_in_pod(&kubeconfig, &missing, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BackupConfiguration demo/nope not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_operator_that_loses_its_lease_stops_acting_and_exits() {
    let api = fake_cluster(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "default").unwrap();
    let mut op = Operator::start(dir.path(), &kubeconfig, "operator-a");
    wait_for(Duration::from_secs(30), "operator-a to hold the Lease", || {
        lease_holder(&api).as_deref() == Some("operator-a")
    });
    // Another replica (say, after a network partition) holds a fresh Lease now.
    let mut lease = api
        .get("coordination.k8s.io/v1", "Lease", "kstash", "kstash-operator")
        .unwrap();
    lease["spec"]["holderIdentity"] = Value::from("operator-z");
    lease["spec"]["leaseDurationSeconds"] = Value::from(300);
    lease["spec"]["renewTime"] = Value::from(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
    );
    api.put(lease);
    let mut child = op.child.take().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "operator kept running without its Lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "{}", op.log_text());
    assert!(
        op.log_text()
            .contains("lost the Lease kstash/kstash-operator to operator-z"),
        "{}",
        op.log_text()
    );
    assert_eq!(
        lease_holder(&api).as_deref(),
        Some("operator-z"),
        "the loser must not release another's Lease"
    );
}

#[test]
fn the_operators_dashboard_reads_and_acts_through_the_kubernetes_api() {
    let api = fake_cluster(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "default").unwrap();
    let home = dir.path().join("home");
    let log = dir.path().join("operator.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .args(["operator", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "--health-addr",
            "",
            "--metrics-addr",
            "",
            "--leader-elect",
            "false",
        ])
        .args(["--ui-addr", "127.0.0.1:0"])
        .env("KSTASH_HOME", &home)
        .env("KSTASH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    put_nightly_configuration(&api, dir.path());
    wait_for(Duration::from_secs(30), "the dashboard's address", || {
        home.join("ui-address").exists()
    });
    let link = Command::new(env!("CARGO_BIN_EXE_kstash"))
        .arg("ui-url")
        .env("KSTASH_HOME", &home)
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout).trim().to_string();
    let base = link.split("/login").next().unwrap().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let login = agent.get(&link).call().unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = |path: &str| {
        agent
            .get(format!("{base}{path}"))
            .header("Cookie", &cookie)
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap()
    };
    let overview = page("/");
    assert!(
        overview.contains("data-configuration=\"demo/nightly\""),
        "{overview}"
    );
    assert!(!overview.contains("changeit"), "no Secret value on the page");
    let at = overview.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = overview[at..at + 64].to_string();
    let r = agent
        .post(format!("{base}/configurations/demo/nightly/pause"))
        .header("Cookie", &cookie)
        .send_form([("csrf", csrf.as_str())])
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "{}",
        r.into_body().read_to_string().unwrap_or_default()
    );
    let bc = api
        .get(
            "core.kubestash.com/v1alpha1",
            "BackupConfiguration",
            "demo",
            "nightly",
        )
        .unwrap();
    assert_eq!(bc.pointer("/spec/paused"), Some(&Value::Bool(true)));
    wait_for(
        Duration::from_secs(10),
        "the event naming the dashboard action",
        || {
            api.list("v1", "Event", Some("demo")).iter().any(|e| {
                e["reason"] == "DashboardAction" && e["message"].as_str().unwrap_or("").contains("paused")
            })
        },
    );
    let _ = child.kill();
    let _ = child.wait();
}
