//! Reconcile flows of the Kubernetes runtime, end to end through kube-rs and HTTP, against
//! `FakeKubeApi`: an in-process FAKE of the Kubernetes API server (kstash-testsupport). No real
//! kube-apiserver, kind, k3s or envtest can be installed or run on this machine (see
//! reference/test-infra.md §12), so the fake stands in for it; it enforces resourceVersion
//! conflicts, the status subresource, finalizers and owner-reference garbage collection, and runs
//! no controllers — the test plays the Job controller (it runs the executor in-process, then sets
//! the Job's status) and the user (it creates and deletes objects). The storage, the engine and the
//! executor are real: a local BackupStorage in a temporary directory and real restic repositories.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kstash_api::client::Resources;
use kstash_controller::dispatch::{Key, RECONCILED};
use kstash_exec::{ExecOptions, LocalMode, StorageOpsImpl};
use kstash_kube::operator;
use kstash_kube::platform::{KubePlatform, KubeSettings};
use kstash_testsupport::FakeKubeApi;
use serde_json::{Value, json};

use common::{connect, repo_root};

const NS: &str = "demo";

/// A fake cluster with kstash's CRDs and addon catalog, a KubePlatform talking to it, and the
/// directories of one test: `storage` (the local BackupStorage's mount path) and `data`.
struct Cluster {
    api: FakeKubeApi,
    _rt: tokio::runtime::Runtime,
    p: KubePlatform,
    dir: tempfile::TempDir,
    storage: PathBuf,
    data: PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let api = FakeKubeApi::start().unwrap();
        api.install_kstash(&repo_root());
        let dir = tempfile::tempdir().unwrap();
        let (rt, res) = connect(&api, dir.path(), NS);
        let p = KubePlatform::new(
            res,
            Arc::new(StorageOpsImpl::new(LocalMode::Mounted)),
            KubeSettings {
                image: "ghcr.io/kstash/kstash:test".into(),
                pushgateway: None,
            },
        );
        let storage = dir.path().join("storage");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&storage).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        Cluster {
            api,
            _rt: rt,
            p,
            dir,
            storage,
            data,
        }
    }

    /// Create objects as a user would with `kubectl create -f` (kstash kinds through the client
    /// under test, built-in kinds directly in the fake).
    fn create(&self, yaml: &str) {
        for doc in kstash_api::manifest::parse_documents("test", yaml).unwrap() {
            let kstash_kind = doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.contains("kubestash.com") || v.starts_with("appcatalog"))
                || doc["kind"] == "Secret";
            if kstash_kind {
                self.p.create(doc).unwrap();
            } else {
                self.api.put(doc);
            }
        }
    }

    fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        self.api.get(api_version, kind, NS, name)
    }

    fn must(&self, api_version: &str, kind: &str, name: &str) -> Value {
        self.get(api_version, kind, name)
            .unwrap_or_else(|| panic!("{kind} {NS}/{name} does not exist"))
    }

    fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.api.list(api_version, kind, Some(NS))
    }

    /// Reconcile every object until `done` holds (at most 60 rounds), like the operator loop.
    fn settle_until(&self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        for _ in 0..60 {
            if done(self) {
                return;
            }
            for key in self.keys() {
                if let Err(e) = operator::reconcile(&self.p, &key) {
                    eprintln!("reconcile {key}: {e}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(done(self), "{what}: not reached after 60 reconcile rounds");
    }

    fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for rt in RECONCILED {
            for o in self.p.list(rt, None, &[]).unwrap() {
                keys.push(Key::of(rt.kind, &o));
            }
        }
        keys
    }

    /// Play the Job controller: set the Job's terminal condition.
    fn finish_job(&self, name: &str, ok: bool, message: &str) {
        let mut job = self.must("batch/v1", "Job", name);
        let (t, count) = if ok {
            ("Complete", "succeeded")
        } else {
            ("Failed", "failed")
        };
        job["status"] = json!({
            count: 1,
            "conditions": [{"type": t, "status": "True", "reason": if ok { "Completed" } else { "BackoffLimitExceeded" }, "message": message}],
        });
        self.api.put(job);
    }

    fn exec_opts() -> ExecOptions {
        ExecOptions {
            local_mode: LocalMode::Mounted,
            hostname: "dump".into(),
            deadline: None,
            component: None,
            total_components: None,
            progress_period: kstash_exec::PROGRESS_PERIOD,
            lock_liveness: None,
        }
    }

    /// The storage, retention policy, encryption Secret, and a Deployment whose volume holds
    /// `data` (mounted at the same path, so the in-process executor reads it there).
    fn storage_and_workload(&self) {
        let storage = self.storage.display();
        let data = self.data.display();
        self.create(&format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: encrypt-secret, namespace: demo}}
stringData: {{RESTIC_PASSWORD: changeit}}
---
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: local-storage, namespace: demo}}
spec:
  storage:
    provider: local
    local:
      mountPath: {storage}
      hostPath: {{path: {storage}}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
  deletionPolicy: Delete
---
apiVersion: storage.kubestash.com/v1alpha1
kind: RetentionPolicy
metadata: {{name: keep-5, namespace: demo}}
spec:
  successfulSnapshots: {{last: 5}}
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
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
        - name: web
          image: nginx
          volumeMounts: [{{name: source-data, mountPath: {data}}}]
      volumes: [{{name: source-data, hostPath: {{path: {data}}}}}]
"#
        ));
    }

    fn backup_configuration(&self) {
        let data = self.data.display();
        self.create(&format!(
            r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: web-backup, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web, namespace: demo}}
  backends:
    - name: local
      storageRef: {{name: local-storage, namespace: demo}}
      retentionPolicy: {{name: keep-5, namespace: demo}}
  sessions:
    - name: frequent
      scheduler:
        schedule: "*/5 * * * *"
        successfulJobsHistoryLimit: 2
        jobTemplate: {{backoffLimit: 1}}
      repositories:
        - name: web-repo
          backend: local
          directory: deployment/web
          encryptionSecret: {{name: encrypt-secret, namespace: demo}}
      addon:
        name: workload-addon
        tasks:
          - name: logical-backup
            targetVolumes:
              volumeMounts: [{{name: source-data, mountPath: {data}}}]
            params: {{paths: {data}}}
"#
        ));
    }
}

fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn write_data(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(root.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
}

#[test]
fn backup_configuration_creates_repository_cronjob_rbac_and_its_instant_backup_job() {
    let c = Cluster::new();
    write_data(&c.data);
    c.storage_and_workload();
    c.backup_configuration();
    c.settle_until("BackupConfiguration Ready with its instant BackupSession", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup")) == "Ready"
            && !c.list("core.kubestash.com/v1alpha1", "BackupSession").is_empty()
            && !c.list("batch/v1", "Job").is_empty()
    });

    // The storage is initialised in the bucket layout.
    assert!(c.storage.join("metadata.yaml").exists());
    // The Repository, as KubeStash creates it.
    let repo = c.must("storage.kubestash.com/v1alpha1", "Repository", "web-repo");
    assert_eq!(repo["spec"]["path"], "deployment/web");
    assert_eq!(repo["spec"]["storageRef"]["name"], "local-storage");
    assert_eq!(repo["spec"]["appRef"]["kind"], "Deployment");
    assert_eq!(repo["spec"]["encryptionSecret"]["name"], "encrypt-secret");
    // The trigger CronJob, owned by the configuration.
    let bc = c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup");
    let cron = c.must("batch/v1", "CronJob", "trigger-web-backup-frequent");
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(cron["spec"]["suspend"], false);
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 2);
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["backoffLimit"], 1);
    assert_eq!(
        cron["metadata"]["ownerReferences"][0]["uid"],
        bc["metadata"]["uid"]
    );
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kstash-trigger");
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "trigger",
            "web-backup",
            "--namespace",
            "demo",
            "--sessions",
            "frequent"
        ])
    );
    assert_eq!(pod["containers"][0]["image"], "ghcr.io/kstash/kstash:test");
    // Executor RBAC in the namespace.
    assert!(c.get("v1", "ServiceAccount", "kstash-executor").is_some());
    for (rb, sa) in [
        ("kstash-backup-job", "kstash-executor"),
        ("kstash-restore-job", "kstash-executor"),
        ("kstash-cron-job", "kstash-trigger"),
    ] {
        let b = c.must("rbac.authorization.k8s.io/v1", "RoleBinding", rb);
        assert_eq!(b["subjects"][0]["name"], sa);
    }
    // The instant backup: a BackupSession, a Snapshot and the executor Job.
    let sessions = c.list("core.kubestash.com/v1alpha1", "BackupSession");
    assert_eq!(sessions.len(), 1, "one instant backup per session");
    let bs = &sessions[0];
    let bs_name = bs["metadata"]["name"].as_str().unwrap();
    let snaps = c.list("storage.kubestash.com/v1alpha1", "Snapshot");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["spec"]["backupSession"], bs_name);
    let job = c.must("batch/v1", "Job", bs_name);
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        bs["metadata"]["uid"]
    );
    assert_eq!(job["metadata"]["labels"]["kstash.dev/component"], "dump");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        json!([
            "exec",
            "backup",
            "--namespace=demo",
            format!("--backupsession={bs_name}")
        ])
    );
    // The target volume comes from the Deployment's pod template; nothing secret is inlined.
    let vols = job["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let source = vols.iter().find(|v| v["name"] == "source-data").unwrap();
    assert_eq!(source["hostPath"]["path"], c.data.display().to_string());
    let backend = vols.iter().find(|v| v["name"] == "kstash-backend-0").unwrap();
    assert_eq!(backend["hostPath"]["path"], c.storage.display().to_string());
    let text = job.to_string();
    assert!(
        !text.contains("changeit"),
        "a secret value leaked into the Job: {text}"
    );
    // Everything was written with one field manager through server-side apply.
    assert!(
        c.api
            .requests()
            .iter()
            .any(|r| r.starts_with("PATCH /apis/batch/v1/namespaces/demo/jobs/")
                && r.contains("fieldManager=kstash-operator")),
        "{:?}",
        c.api.requests()
    );
}

#[test]
fn job_success_failure_and_vanishing_end_the_backup_session() {
    let c = Cluster::new();
    write_data(&c.data);
    c.storage_and_workload();
    c.backup_configuration();
    c.settle_until("the instant backup's Job", |c| {
        !c.list("batch/v1", "Job").is_empty()
    });
    let first = c.list("core.kubestash.com/v1alpha1", "BackupSession")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // Success: the executor runs (in-process, as the Job's pod would), then the Job completes.
    let report = kstash_exec::run_backup(c.p.resources(), NS, &first, &Cluster::exec_opts()).unwrap();
    assert_eq!(report.snapshots.len(), 1);
    c.finish_job(&first, true, "");
    c.settle_until("first BackupSession Succeeded", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &first)) == "Succeeded"
    });
    let snap = &c.list("storage.kubestash.com/v1alpha1", "Snapshot")[0];
    assert_eq!(phase(snap), "Succeeded");
    assert_eq!(snap["status"]["components"]["dump"]["phase"], "Succeeded");

    // Failure: the Job fails before the executor reported anything.
    let bc = kstash_api::client::ResourcesExt::must_get(&c.p, NS, "web-backup").unwrap();
    let second = kstash_controller::backup_configuration::trigger(&c.p, &bc, "frequent", 0).unwrap();
    let second = second.metadata.name.unwrap();
    c.settle_until("second session's Job", |c| {
        c.get("batch/v1", "Job", &second).is_some()
    });
    c.finish_job(&second, false, "Job has reached the specified backoff limit");
    c.settle_until("second BackupSession Failed", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &second)) == "Failed"
    });
    let failed = c
        .list("storage.kubestash.com/v1alpha1", "Snapshot")
        .into_iter()
        .find(|s| s["spec"]["backupSession"] == second.as_str())
        .unwrap();
    assert_eq!(phase(&failed), "Failed");
    assert!(
        failed["status"].to_string().contains("backoff limit"),
        "the Job's failure reaches the Snapshot: {failed}"
    );

    // Vanished: the Job is deleted while the session runs.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let third = kstash_controller::backup_configuration::trigger(&c.p, &bc, "frequent", 0).unwrap();
    let third = third.metadata.name.unwrap();
    c.settle_until("third session's Job", |c| {
        c.get("batch/v1", "Job", &third).is_some()
    });
    c.api.remove("batch/v1", "Job", NS, &third);
    c.settle_until("third BackupSession Failed as incomplete", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &third)) == "Failed"
    });
    let snaps = c.list("storage.kubestash.com/v1alpha1", "Snapshot");
    let vanished = snaps
        .iter()
        .find(|s| s["spec"]["backupSession"] == third.as_str())
        .unwrap();
    let incomplete = vanished["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "BackupIncomplete" && c["status"] == "True");
    assert!(incomplete, "{vanished}");

    // A Snapshot deleted underneath a running session fails it (never stuck in Running) and
    // stops its executor.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fourth = kstash_controller::backup_configuration::trigger(&c.p, &bc, "frequent", 0).unwrap();
    let fourth = fourth.metadata.name.unwrap();
    c.settle_until("fourth session's Job", |c| {
        c.get("batch/v1", "Job", &fourth).is_some()
    });
    let snap = c
        .list("storage.kubestash.com/v1alpha1", "Snapshot")
        .into_iter()
        .find(|s| s["spec"]["backupSession"] == fourth.as_str())
        .unwrap();
    let snap_name = snap["metadata"]["name"].as_str().unwrap().to_string();
    c.p.delete(&kstash_api::meta::SNAPSHOT, NS, &snap_name).unwrap();
    c.settle_until(
        "fourth BackupSession Failed after its Snapshot was deleted",
        |c| phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &fourth)) == "Failed",
    );
    assert!(
        c.get("batch/v1", "Job", &fourth).is_none(),
        "the executor was stopped"
    );
    let events = c.list("v1", "Event");
    let deleted = events
        .iter()
        .find(|e| e["involvedObject"]["name"] == fourth.as_str() && e["reason"] == "SnapshotDeleted")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(deleted["message"].as_str().unwrap().contains(&snap_name));

    // Every phase change left an Event on the session it happened to.
    let events = c.list("v1", "Event");
    let about = |name: &str, reason: &str| {
        events
            .iter()
            .any(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
    };
    assert!(about(&first, "PhaseSucceeded"), "{events:?}");
    assert!(about(&second, "PhaseFailed"), "{events:?}");
    let failed_event = events
        .iter()
        .find(|e| e["involvedObject"]["name"] == third.as_str() && e["reason"] == "PhaseFailed")
        .unwrap();
    assert_eq!(failed_event["type"], "Warning");
    assert_eq!(failed_event["involvedObject"]["kind"], "BackupSession");
}

#[test]
fn restore_session_runs_a_restore_job_and_deleting_the_configuration_runs_its_finalizer() {
    let c = Cluster::new();
    write_data(&c.data);
    c.storage_and_workload();
    c.backup_configuration();
    c.settle_until("the instant backup's Job", |c| {
        !c.list("batch/v1", "Job").is_empty()
    });
    let bs = c.list("core.kubestash.com/v1alpha1", "BackupSession")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    kstash_exec::run_backup(c.p.resources(), NS, &bs, &Cluster::exec_opts()).unwrap();
    c.finish_job(&bs, true, "");
    c.settle_until("backup Succeeded", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &bs)) == "Succeeded"
    });

    // Restore into another directory through a RestoreSession.
    let restored = c.dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    c.create(&format!(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: RestoreSession
metadata: {{name: web-restore, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web, namespace: demo}}
  dataSource:
    repository: web-repo
    snapshot: latest
    encryptionSecret: {{name: encrypt-secret, namespace: demo}}
  addon:
    name: workload-addon
    tasks:
      - name: logical-backup-restore
        params: {{target: {}}}
"#,
        restored.display()
    ));
    c.settle_until("restore Job", |c| {
        c.list("batch/v1", "Job")
            .iter()
            .any(|j| j["metadata"]["ownerReferences"][0]["kind"] == "RestoreSession")
    });
    let job = c
        .list("batch/v1", "Job")
        .into_iter()
        .find(|j| j["metadata"]["ownerReferences"][0]["kind"] == "RestoreSession")
        .unwrap();
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert_eq!(args[1], "restore");
    assert_eq!(args[3], "--restoresession=web-restore");
    let snapshot = args[4]
        .as_str()
        .unwrap()
        .strip_prefix("--snapshot=")
        .unwrap()
        .to_string();
    kstash_exec::run_restore(
        c.p.resources(),
        NS,
        "web-restore",
        &snapshot,
        &Cluster::exec_opts(),
    )
    .unwrap();
    c.finish_job(job["metadata"]["name"].as_str().unwrap(), true, "");
    c.settle_until("RestoreSession Succeeded", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "RestoreSession", "web-restore")) == "Succeeded"
    });
    let inner = restored.join(c.data.strip_prefix("/").unwrap());
    assert_eq!(files(&inner), files(&c.data), "restored files differ");

    // Deleting the configuration: its finalizer runs, its CronJob goes (owner GC), it is removed.
    let bc = c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup");
    assert!(
        bc["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "kubestash.com/cleanup")
    );
    c.p.delete(&kstash_api::meta::BACKUP_CONFIGURATION, NS, "web-backup")
        .unwrap();
    c.settle_until("BackupConfiguration removed", |c| {
        c.get("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup")
            .is_none()
    });
    assert!(
        c.get("batch/v1", "CronJob", "trigger-web-backup-frequent")
            .is_none()
    );
    // The backed-up data stays in the storage (deletionPolicy Delete keeps data).
    assert!(c.storage.join("deployment/web/repository.yaml").exists());
}

#[test]
fn an_annotated_deployment_gets_a_backup_configuration_from_its_blueprint() {
    let c = Cluster::new();
    c.storage_and_workload();
    c.create(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupBlueprint
metadata: {name: workload-blueprint, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  subjects: [{apiVersion: apps/v1, kind: Deployment}]
  backupConfigurationTemplate:
    deletionPolicy: OnDelete
    backends:
      - name: local
        storageRef: {name: local-storage, namespace: demo}
        retentionPolicy: {name: keep-5, namespace: demo}
    sessions:
      - name: frequent
        scheduler: {schedule: "${schedule}"}
        repositories:
          - name: ${repoName}
            backend: local
            directory: ${namespace}/${targetName}
            encryptionSecret: {name: encrypt-secret, namespace: demo}
        addon:
          name: workload-addon
          tasks: [{name: logical-backup, params: {paths: "${paths}"}}]
"#,
    );
    let mut web = c.must("apps/v1", "Deployment", "web");
    web["metadata"]["annotations"] = json!({
        "blueprint.kubestash.com/name": "workload-blueprint",
        "blueprint.kubestash.com/namespace": "demo",
        "variables.kubestash.com/schedule": "*/30 * * * *",
        "variables.kubestash.com/repoName": "web-auto",
        "variables.kubestash.com/namespace": "demo",
        "variables.kubestash.com/targetName": "web",
        "variables.kubestash.com/paths": c.data.display().to_string(),
    });
    c.api.put(web);
    c.settle_until("the generated BackupConfiguration and its CronJob", |c| {
        c.get("batch/v1", "CronJob", "trigger-deployment-web-frequent")
            .is_some()
    });
    let bc = c.must(
        "core.kubestash.com/v1alpha1",
        "BackupConfiguration",
        "deployment-web",
    );
    assert_eq!(bc["spec"]["target"]["kind"], "Deployment");
    assert_eq!(bc["spec"]["target"]["name"], "web");
    assert_eq!(bc["spec"]["sessions"][0]["scheduler"]["schedule"], "*/30 * * * *");
    assert_eq!(bc["spec"]["sessions"][0]["repositories"][0]["name"], "web-auto");
    assert_eq!(
        bc["spec"]["sessions"][0]["repositories"][0]["directory"],
        "demo/web"
    );
    assert_eq!(
        bc["metadata"]["labels"]["kubestash.com/invoker-kind"],
        "BackupBlueprint"
    );

    // Removing the annotations removes the generated configuration (and its CronJob).
    let mut web = c.must("apps/v1", "Deployment", "web");
    web["metadata"]["annotations"] = json!({});
    c.api.put(web);
    c.settle_until("the generated BackupConfiguration removed", |c| {
        c.get(
            "core.kubestash.com/v1alpha1",
            "BackupConfiguration",
            "deployment-web",
        )
        .is_none()
    });
    assert!(
        c.get("batch/v1", "CronJob", "trigger-deployment-web-frequent")
            .is_none()
    );
}

#[test]
fn executors_are_granted_the_other_namespaces_their_session_reads() {
    let c = Cluster::new();
    c.storage_and_workload(); // the target Deployment (and an unused storage in demo)
    let storage = c.storage.display();
    let data = c.data.display();
    c.create(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: shared-encryption, namespace: secrets}}
stringData: {{RESTIC_PASSWORD: changeit}}
---
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: shared-storage, namespace: infra}}
spec:
  storage:
    provider: local
    local: {{mountPath: {storage}, hostPath: {{path: {storage}}}}}
  usagePolicy: {{allowedNamespaces: {{from: All}}}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: web-backup, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web, namespace: demo}}
  backends:
    - name: shared
      storageRef: {{name: shared-storage, namespace: infra}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "*/5 * * * *"}}
      repositories:
        - name: web-repo
          backend: shared
          directory: demo/web
          encryptionSecret: {{name: shared-encryption, namespace: secrets}}
      addon:
        name: workload-addon
        tasks: [{{name: logical-backup, params: {{paths: {data}}}}}]
"#
    ));
    c.settle_until("the instant backup's Job", |c| {
        !c.list("batch/v1", "Job").is_empty()
    });
    for ns in ["infra", "secrets"] {
        let rb = c
            .api
            .get(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                ns,
                "kstash-backup-job-demo",
            )
            .unwrap_or_else(|| panic!("no RoleBinding for the executor in {ns}"));
        assert_eq!(rb["roleRef"]["name"], "kubestash-backup-job");
        assert_eq!(rb["subjects"][0]["name"], "kstash-executor");
        assert_eq!(rb["subjects"][0]["namespace"], "demo");
    }
    assert!(
        c.api
            .get(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "demo",
                "kstash-backup-job-demo"
            )
            .is_none(),
        "the session's own namespace has the plain binding"
    );
}

/// kstash installs no admission webhook: the operator applies KubeStash's webhook defaults itself,
/// so a configuration relying on them (no backends: the namespace's default storage and policy)
/// works as it does with KubeStash.
#[test]
fn webhook_defaults_are_applied_by_the_operator() {
    let c = Cluster::new();
    c.storage_and_workload();
    let default_dir = c.dir.path().join("default-storage");
    std::fs::create_dir_all(&default_dir).unwrap();
    let data = c.data.display();
    c.create(&format!(
        r#"
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: default-storage, namespace: demo}}
spec:
  default: true
  storage:
    provider: local
    local: {{mountPath: {d}, hostPath: {{path: {d}}}}}
---
apiVersion: storage.kubestash.com/v1alpha1
kind: RetentionPolicy
metadata: {{name: default-policy, namespace: demo}}
spec:
  default: true
  successfulSnapshots: {{last: 3}}
---
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {{name: defaulted, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web, namespace: demo}}
  sessions:
    - name: daily
      scheduler: {{schedule: "0 1 * * *"}}
      repositories:
        - name: defaulted-repo
          directory: demo/defaulted
          encryptionSecret: {{name: encrypt-secret, namespace: demo}}
      addon:
        name: workload-addon
        tasks: [{{name: logical-backup, params: {{paths: {data}}}}}]
"#,
        d = default_dir.display()
    ));
    c.settle_until("the defaulted configuration Ready", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "defaulted")) == "Ready"
    });
    let storage = c.must(
        "storage.kubestash.com/v1alpha1",
        "BackupStorage",
        "default-storage",
    );
    assert_eq!(
        storage["spec"]["usagePolicy"]["allowedNamespaces"]["from"],
        "Same"
    );
    assert_eq!(storage["spec"]["deletionPolicy"], "Delete");
    let bc = c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "defaulted");
    let backend = &bc["spec"]["backends"][0];
    assert_eq!(backend["storageRef"]["name"], "default-storage");
    assert_eq!(backend["retentionPolicy"]["name"], "default-policy");
    assert_eq!(
        bc["spec"]["sessions"][0]["repositories"][0]["backend"],
        backend["name"]
    );
    assert!(default_dir.join("metadata.yaml").exists());
}

/// Backup verification on Kubernetes: the repository's verifier gets a `trigger-verifier-…`
/// CronJob running `kstash verify`; a BackupVerificationSession gets a RestoreSession owned by it
/// into the verifier's target, then a verifier Job (component `kubestash-backup-verifier`) with the
/// verifier's volumes; the verifier's outcome ends the session and marks the Snapshot.
#[test]
fn a_verification_session_restores_then_runs_the_verifier_job_and_marks_the_snapshot() {
    let c = Cluster::new();
    write_data(&c.data);
    c.storage_and_workload();
    let scratch = c.dir.path().join("scratch");
    let script = c.dir.path().join("check.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ntest -n \"$(find \"$KSTASH_RESTORE_DIR\" -name a.txt)\" || { echo no a.txt; exit 3; }\necho restored files present\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.create(&format!(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupVerifier
metadata: {{name: web-verifier, namespace: demo}}
spec:
  restoreOption:
    target: {{apiGroup: apps, kind: Deployment, name: web-scratch, namespace: demo}}
    addonInfo:
      name: workload-addon
      tasks:
        - name: logical-backup-restore
          params: {{target: {scratch}}}
  scheduler: {{schedule: "0 3 * * *"}}
  type: Script
  script: {{location: {script}}}
  volumes: [{{name: scripts, configMap: {{name: verify-scripts}}}}]
  volumeMounts: [{{name: scripts, mountPath: /tmp/config}}]
"#,
        scratch = scratch.display(),
        script = script.display()
    ));
    c.backup_configuration();
    let mut bc = c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup");
    bc["spec"]["sessions"][0]["repositories"][0]["backupVerifier"] = json!({"name": "web-verifier"});
    c.p.update(bc).unwrap();
    c.settle_until("the verifier's CronJob", |c| {
        c.get("batch/v1", "CronJob", "trigger-verifier-web-backup-web-repo")
            .is_some()
    });
    let cron = c.must("batch/v1", "CronJob", "trigger-verifier-web-backup-web-repo");
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    let args = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &json!([
            "verify",
            "web-backup",
            "--namespace",
            "demo",
            "--repository",
            "web-repo"
        ])
    );
    assert_eq!(cron["metadata"]["labels"]["kubestash.com/repo-name"], "web-repo");
    assert!(
        c.get("batch/v1", "CronJob", "trigger-web-backup-frequent")
            .is_some()
    );
    c.settle_until("verificationConfigured", |c| {
        c.must("core.kubestash.com/v1alpha1", "BackupConfiguration", "web-backup")
            .pointer("/status/repositories/0/verificationConfigured")
            == Some(&json!(true))
    });

    // The instant backup.
    c.settle_until("the instant backup's Job", |c| {
        !c.list("batch/v1", "Job").is_empty()
    });
    let bs = c.list("core.kubestash.com/v1alpha1", "BackupSession")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    kstash_exec::run_backup(c.p.resources(), NS, &bs, &Cluster::exec_opts()).unwrap();
    c.finish_job(&bs, true, "");
    c.settle_until("backup Succeeded", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupSession", &bs)) == "Succeeded"
    });

    // What the CronJob's `kstash verify` creates.
    let bvs =
        kstash_controller::verification_session::trigger(&c.p, NS, "web-backup", "frequent", "web-repo", 0)
            .unwrap()
            .metadata
            .name
            .unwrap();
    assert!(bvs.starts_with("web-repo-frequent-"), "{bvs}");
    c.settle_until("the verification's RestoreSession", |c| {
        c.get("core.kubestash.com/v1alpha1", "RestoreSession", &bvs)
            .is_some()
            && c.list("batch/v1", "Job")
                .iter()
                .any(|j| j["metadata"]["ownerReferences"][0]["kind"] == "RestoreSession")
    });
    let rs = c.must("core.kubestash.com/v1alpha1", "RestoreSession", &bvs);
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["kind"],
        "BackupVerificationSession"
    );
    assert_eq!(rs["spec"]["target"]["name"], "web-scratch");
    let snapshot =
        c.must("core.kubestash.com/v1alpha1", "BackupVerificationSession", &bvs)["spec"]["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
    assert_eq!(rs["spec"]["dataSource"]["snapshot"], snapshot.as_str());
    let restore_job = c
        .list("batch/v1", "Job")
        .into_iter()
        .find(|j| j["metadata"]["ownerReferences"][0]["kind"] == "RestoreSession")
        .unwrap();
    kstash_exec::run_restore(c.p.resources(), NS, &bvs, &snapshot, &Cluster::exec_opts()).unwrap();
    c.finish_job(restore_job["metadata"]["name"].as_str().unwrap(), true, "");

    c.settle_until("the verifier Job", |c| {
        c.list("batch/v1", "Job")
            .iter()
            .any(|j| j["metadata"]["labels"]["kstash.dev/component"] == "kubestash-backup-verifier")
    });
    let job = c
        .list("batch/v1", "Job")
        .into_iter()
        .find(|j| j["metadata"]["labels"]["kstash.dev/component"] == "kubestash-backup-verifier")
        .unwrap();
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["kind"],
        "BackupVerificationSession"
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "exec",
            "verify",
            "--namespace",
            "demo",
            "--backupverificationsession",
            bvs
        ])
    );
    assert_eq!(pod["containers"][0]["image"], "ghcr.io/kstash/kstash:test");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "verify-scripts");
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/tmp/config"
    );
    let report = kstash_exec::run_verify(c.p.resources(), NS, &bvs, &Cluster::exec_opts()).unwrap();
    assert!(report.verified, "{report:?}");
    c.finish_job(job["metadata"]["name"].as_str().unwrap(), true, "");
    c.settle_until("verification Succeeded", |c| {
        phase(&c.must("core.kubestash.com/v1alpha1", "BackupVerificationSession", &bvs)) == "Succeeded"
    });
    let snap = c.must("storage.kubestash.com/v1alpha1", "Snapshot", &snapshot);
    assert_eq!(snap["status"]["verificationStatus"], "Verified");
    assert_eq!(snap["status"]["verificationSession"], bvs.as_str());
}
