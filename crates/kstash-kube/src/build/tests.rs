//! Tests of the pure builders: exact objects for the catalog's addons, per-replica and per-node
//! Jobs, volume derivation, templating, and the Kubernetes schemas of everything built.

use super::*;
use kstash_api::addons::Addon;
use kstash_api::common::AddonInfo;
use kstash_controller::platform::JobPurpose;

fn catalog(file: &str) -> Vec<Value> {
    let path = format!("{}/../../catalog/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    kstash_api::manifest::parse_documents(&path, &text).unwrap()
}

fn addon_and_function(file: &str, function: &str) -> (Addon, Function) {
    let docs = catalog(file);
    let addon = docs.iter().find(|d| d["kind"] == "Addon").cloned().unwrap();
    let f = docs
        .iter()
        .find(|d| d["kind"] == "Function" && d["metadata"]["name"] == function)
        .cloned()
        .unwrap();
    (
        serde_json::from_value(addon).unwrap(),
        serde_json::from_value(f).unwrap(),
    )
}

fn backup_job(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        namespace: "demo".into(),
        purpose: JobPurpose::Backup {
            backup_session: name.into(),
        },
        labels: BTreeMap::from([
            ("kubestash.com/invoker-name".to_string(), "pg-backup".to_string()),
            ("kubestash.com/session-name".to_string(), "daily".to_string()),
        ]),
        deadline: None,
    }
}

fn session_owner(name: &str) -> Value {
    json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession", "name": name,
           "uid": "uid-1", "controller": true, "blockOwnerDeletion": true})
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

struct Fixture {
    job: JobSpec,
    addon: Addon,
    function: Function,
    info: AddonInfo,
}

impl Fixture {
    fn new(file: &str, function: &str, info: Value) -> Fixture {
        let (addon, function) = addon_and_function(file, function);
        Fixture {
            job: backup_job("pg-backup-daily-1763805600"),
            addon,
            function,
            info: serde_json::from_value(info).unwrap(),
        }
    }

    fn inputs<'a>(&'a self, target: Option<&'a Value>, vars: BTreeMap<String, String>) -> ExecutorInputs<'a> {
        let task_ref = &self.info.tasks[0];
        ExecutorInputs {
            job: &self.job,
            owner: session_owner(&self.job.name),
            addon: &self.info,
            task: self
                .addon
                .spec
                .backup_tasks
                .iter()
                .find(|t| t.name == task_ref.name)
                .unwrap(),
            task_ref,
            function: &self.function,
            vars,
            target,
            daemon_nodes: vec![],
            storages: vec![],
            service_account: EXECUTOR_SERVICE_ACCOUNT.into(),
            now: now(),
        }
    }
}

#[test]
fn long_generated_names_keep_head_and_tail_within_the_limit() {
    assert_eq!(shorten("short", 52), "short");
    let long = format!("trigger-{}-{}", "a".repeat(40), "nightly-full");
    let s = shorten(&long, 52);
    assert_eq!(s.len(), 52);
    assert!(
        s.starts_with("trigger-aaaa") && s.ends_with("nightly-full"),
        "{s}"
    );
    assert_eq!(trigger_name("pg", "daily"), "trigger-pg-daily");
    assert!(trigger_name(&"b".repeat(60), "daily").len() <= CRONJOB_NAME_MAX);
    // A cut landing on a dash never leaves the name ending in one.
    assert!(!shorten(&format!("{}-{}", "x".repeat(26), "y".repeat(40)), 27).ends_with('-'));
}

#[test]
fn function_templates_substitute_variables_and_defaults() {
    let v = vars(&[("namespace", "demo"), ("empty", "")]);
    assert_eq!(
        substitute("--namespace=${namespace:=default}", &v).unwrap(),
        "--namespace=demo"
    );
    assert_eq!(substitute("--x=${missing:=d}", &v).unwrap(), "--x=d");
    assert_eq!(substitute("--x=${missing:-d}", &v).unwrap(), "--x=d");
    assert_eq!(substitute("--x=${empty:=fallback}", &v).unwrap(), "--x=fallback");
    assert_eq!(
        substitute("a${namespace}b${namespace}", &v).unwrap(),
        "ademobdemo"
    );
    let err = substitute("--x=${missing}", &v).unwrap_err();
    assert!(err.contains("\"missing\""), "{err}");
    assert!(substitute("--x=${oops", &v).unwrap_err().contains("unclosed"));
}

#[test]
fn postgres_backup_job_is_built_from_the_addon_task_and_function() {
    let f = Fixture::new(
        "postgres-addon.yaml",
        "postgres-backup",
        json!({"name": "postgres-addon", "tasks": [{"name": "logical-backup",
            "variables": [{"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "pg-extra", "key": "token"}}}]}]}),
    );
    let target = json!({"apiVersion": "appcatalog.appscode.com/v1alpha1", "kind": "AppBinding",
                        "metadata": {"name": "pg", "namespace": "demo"}});
    let inputs = f.inputs(
        Some(&target),
        vars(&[
            ("namespace", "demo"),
            ("backupSession", "pg-backup-daily-1763805600"),
        ]),
    );
    let jobs = executor_jobs(&inputs).unwrap();
    assert_eq!(jobs.len(), 1);
    let expected = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "pg-backup-daily-1763805600",
            "namespace": "demo",
            "labels": {
                "app.kubernetes.io/managed-by": "kubestash.com",
                "kstash.dev/component": "dump",
                "kstash.dev/executor": "pg-backup-daily-1763805600",
                "kubestash.com/invoker-name": "pg-backup",
                "kubestash.com/session-name": "daily",
            },
            "ownerReferences": [session_owner("pg-backup-daily-1763805600")],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"kstash.dev/executor": "pg-backup-daily-1763805600"}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "kstash-executor",
                    "containers": [{
                        "name": "executor",
                        "image": "ghcr.io/kstash/kstash:latest",
                        "args": ["exec", "backup", "--namespace=demo", "--backupsession=pg-backup-daily-1763805600"],
                        "env": [
                            {"name": "KSTASH_RUNTIME", "value": "kubernetes"},
                            {"name": "KSTASH_COMPONENT", "value": "dump"},
                            {"name": "KSTASH_TOTAL_COMPONENTS", "value": "1"},
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "pg-extra", "key": "token"}}},
                        ],
                        "volumeMounts": [{"name": "kstash-tmp", "mountPath": "/kubestash-tmp"}],
                    }],
                    "volumes": [{"name": "kstash-tmp", "emptyDir": {}}],
                },
            },
        },
    });
    assert_eq!(
        jobs[0],
        expected,
        "{}",
        serde_json::to_string_pretty(&jobs[0]).unwrap()
    );
}

#[test]
fn runtime_settings_job_template_and_deadline_reach_the_pod() {
    let f = Fixture::new(
        "postgres-addon.yaml",
        "postgres-backup",
        json!({
            "name": "postgres-addon",
            "tasks": [{"name": "logical-backup"}],
            "containerRuntimeSettings": {
                "resources": {"requests": {"cpu": "200m"}, "limits": {"memory": "1Gi"}},
                "securityContext": {"runAsUser": 1000},
                "envFrom": [{"secretRef": {"name": "proxy-env"}}],
            },
            "jobTemplate": {
                "metadata": {"labels": {"team": "db"}, "annotations": {"a": "b"}},
                "spec": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k", "operator": "Exists"}],
                         "priorityClassName": "backup", "serviceAccountName": "custom-sa"}
            }
        }),
    );
    let mut inputs = f.inputs(None, vars(&[("namespace", "demo"), ("backupSession", "x")]));
    let mut job = f.job.clone();
    job.deadline = Some("2026-11-22T10:30:00Z".parse().unwrap());
    inputs.job = &job;
    let j = &executor_jobs(&inputs).unwrap()[0];
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 1800);
    let pod = &j["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["team"], "db");
    assert_eq!(pod["metadata"]["annotations"]["a"], "b");
    assert_eq!(pod["spec"]["nodeSelector"]["disk"], "ssd");
    assert_eq!(pod["spec"]["priorityClassName"], "backup");
    assert_eq!(pod["spec"]["serviceAccountName"], "custom-sa");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "k");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["resources"]["requests"]["cpu"], "200m");
    assert_eq!(c["securityContext"]["runAsUser"], 1000);
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "proxy-env");
}

fn statefulset(replicas: u64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"spec": {"containers": [{"name": "db", "image": "x",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"},
                                 {"name": "conf", "mountPath": "/etc/conf"}]}],
                "volumes": [{"name": "conf", "configMap": {"name": "c"}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
        }
    })
}

#[test]
fn a_statefulset_gets_one_job_per_replica_with_its_own_claim() {
    let f = Fixture::new(
        "workload-addon.yaml",
        "workload-backup",
        json!({"name": "workload-addon", "tasks": [{"name": "logical-backup", "params": {"paths": "/var/lib/data"}}]}),
    );
    let sts = statefulset(3);
    let inputs = f.inputs(
        Some(&sts),
        vars(&[
            ("namespace", "demo"),
            ("backupSession", "x"),
            ("paths", "/var/lib/data"),
        ]),
    );
    let jobs = executor_jobs(&inputs).unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "pg-backup-daily-1763805600-pod-0",
            "pg-backup-daily-1763805600-pod-1",
            "pg-backup-daily-1763805600-pod-2"
        ]
    );
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(
            j["metadata"]["labels"]["kstash.dev/component"],
            format!("dump-pod-{i}")
        );
        assert_eq!(
            j["metadata"]["labels"]["kstash.dev/executor"],
            "pg-backup-daily-1763805600"
        );
        let vols = j["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        let data = vols.iter().find(|v| v["name"] == "data").unwrap();
        assert_eq!(data["persistentVolumeClaim"]["claimName"], format!("data-db-{i}"));
        // Only the volume holding the paths is mounted, at the workload's own mount path.
        assert!(!vols.iter().any(|v| v["name"] == "conf"));
        let mounts = j["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "data" && m["mountPath"] == "/var/lib/data")
        );
        let env = j["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "KSTASH_COMPONENT" && e["value"] == format!("dump-pod-{i}"))
        );
        assert!(
            env.iter()
                .any(|e| e["name"] == "KSTASH_TOTAL_COMPONENTS" && e["value"] == "3")
        );
    }
}

#[test]
fn a_daemonset_gets_one_job_per_node_pinned_to_it() {
    let f = Fixture::new(
        "workload-addon.yaml",
        "workload-backup",
        json!({"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}),
    );
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "demo"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "logs", "mountPath": "/var/log/agent"}]}],
            "volumes": [{"name": "logs", "hostPath": {"path": "/var/log/agent"}}]}}}});
    let mut inputs = f.inputs(
        Some(&ds),
        vars(&[
            ("namespace", "demo"),
            ("backupSession", "x"),
            ("paths", "/var/log/agent"),
        ]),
    );
    inputs.daemon_nodes = vec!["node-a".into(), "node-b".into()];
    let jobs = executor_jobs(&inputs).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["metadata"]["name"], "pg-backup-daily-1763805600-node-b");
    assert_eq!(
        jobs[1]["metadata"]["labels"]["kstash.dev/component"],
        "dump-node-b"
    );
    assert_eq!(jobs[1]["spec"]["template"]["spec"]["nodeName"], "node-b");
    let vols = jobs[1]["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(vols.iter().any(|v| v["hostPath"]["path"] == "/var/log/agent"));
    // No nodes yet: nothing to run on is an error, not zero Jobs.
    inputs.daemon_nodes.clear();
    assert!(
        executor_jobs(&inputs)
            .unwrap_err()
            .to_string()
            .contains("no replicas or nodes")
    );
}

#[test]
fn paths_on_an_emptydir_are_refused_naming_the_volume() {
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "x",
            "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]}}}});
    let err = target_volumes(&dep, &["/data/app".into()], None).unwrap_err();
    assert!(
        err.contains("emptyDir volume scratch") && err.contains("Deployment web"),
        "{err}"
    );
}

#[test]
fn explicit_target_volumes_local_backends_and_addon_volumes_are_mounted() {
    let f = Fixture::new(
        "pvc-addon.yaml",
        "pvc-backup",
        json!({"name": "pvc-addon", "tasks": [{"name": "logical-backup",
            "targetVolumes": {"volumes": [{"name": "src", "persistentVolumeClaim": {"claimName": "data"}}],
                              "volumeMounts": [{"name": "src", "mountPath": "/src"}]}}]}),
    );
    let storage: BackupStorage = serde_json::from_value(json!({
        "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
        "metadata": {"name": "local", "namespace": "demo"},
        "spec": {"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
            "persistentVolumeClaim": {"claimName": "backup-pvc"}}}}
    }))
    .unwrap();
    let mut inputs = f.inputs(None, vars(&[("namespace", "demo"), ("backupSession", "x")]));
    inputs.storages = vec![&storage];
    let j = &executor_jobs(&inputs).unwrap()[0];
    let spec = &j["spec"]["template"]["spec"];
    let vols = spec["volumes"].as_array().unwrap();
    assert!(
        vols.iter()
            .any(|v| v["name"] == "src" && v["persistentVolumeClaim"]["claimName"] == "data")
    );
    assert!(
        vols.iter()
            .any(|v| v["name"] == "kstash-backend-0"
                && v["persistentVolumeClaim"]["claimName"] == "backup-pvc")
    );
    let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "src" && m["mountPath"] == "/src")
    );
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "kstash-backend-0" && m["mountPath"] == "/safe/data")
    );
}

fn scheduler(v: Value) -> SchedulerSpec {
    serde_json::from_value(v).unwrap()
}

#[test]
fn trigger_cronjob_copies_the_scheduler_fields() {
    let sch = scheduler(json!({
        "schedule": "CRON_TZ=Europe/Berlin 0 2 * * *",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 120,
        "successfulJobsHistoryLimit": 2,
        "failedJobsHistoryLimit": 4,
        "jobTemplate": {"backoffLimit": 1, "template": {"spec": {"nodeSelector": {"pool": "ops"}}}},
    }));
    let owner = json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
                       "name": "pg-backup", "uid": "u", "controller": true, "blockOwnerDeletion": true});
    let cron = trigger_cronjob(&TriggerInputs {
        namespace: "demo",
        invoker: "pg-backup",
        session: "daily",
        schedule: "0 2 * * *",
        time_zone: Some("Europe/Berlin"),
        suspend: true,
        scheduler: &sch,
        owner: owner.clone(),
        image: "ghcr.io/kstash/kstash:0.1.0",
        service_account: TRIGGER_SERVICE_ACCOUNT,
        verifies: None,
    });
    let expected = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "trigger-pg-backup-daily",
            "namespace": "demo",
            "labels": {
                "app.kubernetes.io/managed-by": "kubestash.com",
                "kubestash.com/invoker-name": "pg-backup",
                "kubestash.com/invoker-kind": "BackupConfiguration",
                "kubestash.com/session-name": "daily",
            },
            "ownerReferences": [owner],
        },
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "suspend": true,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 120,
            "successfulJobsHistoryLimit": 2,
            "failedJobsHistoryLimit": 4,
            "jobTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "kubestash.com"}},
                "spec": {
                    "backoffLimit": 1,
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/managed-by": "kubestash.com"}},
                        "spec": {
                            "nodeSelector": {"pool": "ops"},
                            "restartPolicy": "Never",
                            "serviceAccountName": "kstash-trigger",
                            "containers": [{
                                "name": "trigger",
                                "image": "ghcr.io/kstash/kstash:0.1.0",
                                "args": ["trigger", "pg-backup", "--namespace", "demo", "--sessions", "daily"],
                                "env": [{"name": "KSTASH_RUNTIME", "value": "kubernetes"}],
                            }],
                        },
                    },
                },
            },
        },
    });
    assert_eq!(cron, expected, "{}", serde_json::to_string_pretty(&cron).unwrap());
}

#[test]
fn executor_rbac_binds_kubestash_cluster_roles_to_narrow_service_accounts() {
    let objs = executor_rbac("demo");
    let summary: Vec<String> = objs
        .iter()
        .map(|o| {
            let who = match o["kind"].as_str().unwrap() {
                "ServiceAccount" => o["metadata"]["name"].as_str().unwrap(),
                _ => o["subjects"][0]["name"].as_str().unwrap(),
            };
            format!(
                "{} {} {who}",
                o["kind"].as_str().unwrap(),
                o["roleRef"]["name"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "ServiceAccount - kstash-executor",
            "ServiceAccount - kstash-trigger",
            "RoleBinding kubestash-backup-job kstash-executor",
            "RoleBinding kubestash-restore-job kstash-executor",
            "RoleBinding kubestash-cron-job kstash-trigger",
            "ClusterRoleBinding kstash-catalog-reader kstash-executor",
        ]
    );
    for o in &objs[2..] {
        assert_eq!(o["subjects"][0]["namespace"], "demo");
    }
}

/// Every object the builders produce passes the Kubernetes 1.32 schemas (`kubernetes-validate
/// --strict`, installed by scripts/setup), so a real API server would accept them.
#[test]
fn built_objects_pass_kubernetes_validate_strict() {
    let mut objects = Vec::new();
    let f = Fixture::new(
        "postgres-addon.yaml",
        "postgres-backup",
        json!({"name": "postgres-addon", "tasks": [{"name": "logical-backup",
            "variables": [{"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}],
            "containerRuntimeSettings": {"resources": {"requests": {"cpu": "100m"}}},
            "jobTemplate": {"spec": {"nodeSelector": {"a": "b"}}}}),
    );
    let mut job = f.job.clone();
    job.deadline = Some("2026-11-22T11:00:00Z".parse().unwrap());
    let mut inputs = f.inputs(None, vars(&[("namespace", "demo"), ("backupSession", "x")]));
    inputs.job = &job;
    objects.extend(executor_jobs(&inputs).unwrap());
    let w = Fixture::new(
        "workload-addon.yaml",
        "workload-backup",
        json!({"name": "workload-addon", "tasks": [{"name": "logical-backup"}]}),
    );
    let sts = statefulset(2);
    objects.extend(
        executor_jobs(&w.inputs(
            Some(&sts),
            vars(&[
                ("namespace", "demo"),
                ("backupSession", "x"),
                ("paths", "/var/lib/data"),
            ]),
        ))
        .unwrap(),
    );
    let sch = scheduler(json!({"schedule": "*/5 * * * *", "jobTemplate": {"backoffLimit": 1}}));
    objects.push(trigger_cronjob(&TriggerInputs {
        namespace: "demo",
        invoker: "pg-backup",
        session: "daily",
        schedule: "*/5 * * * *",
        time_zone: None,
        suspend: false,
        scheduler: &sch,
        owner: json!({"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupConfiguration",
                      "name": "pg-backup", "uid": "u"}),
        image: "ghcr.io/kstash/kstash:latest",
        service_account: EXECUTOR_SERVICE_ACCOUNT,
        verifies: None,
    }));
    objects.extend(executor_rbac("demo"));
    let event =
        crate::platform::event_for("BackupSession demo/x", true, "BackupFailed", "boom", now()).unwrap();
    let mut event = event;
    event["metadata"]["name"] = json!("x.1");
    objects.push(event);

    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let p = dir.path().join(format!(
            "{i:02}-{}.yaml",
            o["kind"].as_str().unwrap().to_lowercase()
        ));
        std::fs::write(&p, serde_json::to_string_pretty(o).unwrap()).unwrap();
        files.push(p);
    }
    let tool = kstash_testsupport::tools::venv_dir().join("bin/kubernetes-validate");
    assert!(tool.exists(), "{} is missing; run scripts/setup", tool.display());
    let out = std::process::Command::new(&tool)
        .args(["-k", "1.32.0", "--strict"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate rejected a built object:\n{text}"
    );
    assert_eq!(
        text.matches(" passed for resource ").count(),
        objects.len(),
        "{text}"
    );
}
