//! The auto-backup reconcilers (`kstash_controller::blueprint`) over the real SQLite store: the
//! store's change log drives `keys_for_change` and `dispatch::reconcile` the way the daemon loop
//! does, for the blueprint and target kinds only (no schedules or executors are involved), and
//! the tests assert the exact BackupConfigurations created, updated and deleted and the events.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kstash_api::client::{ClientResult, Resources};
use kstash_api::common::TypedObjectReference;
use kstash_api::meta::{self, ResourceType};
use kstash_api::storage::{BackupStorage, Repository, Snapshot};
use kstash_controller::dispatch::{self, Key};
use kstash_controller::platform::{
    CommandOutput, JobSpec, JobState, Platform, PlatformError, ScheduleSpec, StorageOps, StorageOpsError,
};
use kstash_controller::{Requeue, blueprint};
use kstash_embedded::Store;
use serde_json::{Value, json};

/// Resources from the store; events recorded; nothing else is available.
struct TestPlatform {
    store: Store,
    events: Mutex<Vec<(String, bool, String, String)>>,
    tasks: kstash_controller::tasks::TaskTracker,
    _dir: tempfile::TempDir,
}

/// Blueprints run no hooks.
struct NoHooks;

impl kstash_controller::platform::HookCommands for NoHooks {
    fn exec(
        &self,
        _: &str,
        _: &[String],
        _: &std::collections::BTreeMap<String, String>,
        _: Duration,
    ) -> Result<CommandOutput, PlatformError> {
        Err(unsupported())
    }
}

struct NoStorage;

fn unsupported() -> PlatformError {
    PlatformError::new("not available in this test")
}

fn no_storage() -> StorageOpsError {
    StorageOpsError::new("not available in this test")
}

impl StorageOps for NoStorage {
    fn initialize(&self, _: &BackupStorage, _: Option<&Secret>) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
    fn list_repositories(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
    ) -> Result<Vec<(Repository, Vec<Snapshot>)>, StorageOpsError> {
        Err(no_storage())
    }
    fn storage_size(&self, _: &BackupStorage, _: Option<&Secret>) -> Result<u64, StorageOpsError> {
        Err(no_storage())
    }
    fn write_repository(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
        _: &Repository,
    ) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
    fn repository_size(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
        _: &Repository,
    ) -> Result<u64, StorageOpsError> {
        Err(no_storage())
    }
    fn write_snapshot(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
        _: &Repository,
        _: &Snapshot,
    ) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
    fn wipe_snapshot(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
        _: &Repository,
        _: &Snapshot,
        _: &str,
    ) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
    fn wipe_repository(
        &self,
        _: &BackupStorage,
        _: Option<&Secret>,
        _: &Repository,
    ) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
    fn wipe_storage(&self, _: &BackupStorage, _: Option<&Secret>) -> Result<(), StorageOpsError> {
        Err(no_storage())
    }
}

impl Resources for TestPlatform {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        Resources::get(&self.store, rt, namespace, name)
    }
    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        Resources::list(&self.store, rt, namespace, labels)
    }
    fn create(&self, obj: Value) -> ClientResult<Value> {
        Resources::create(&self.store, obj)
    }
    fn update(&self, obj: Value) -> ClientResult<Value> {
        Resources::update(&self.store, obj)
    }
    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        Resources::update_status(&self.store, obj)
    }
    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        Resources::delete(&self.store, rt, namespace, name)
    }
}

impl Platform for TestPlatform {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn start_job(&self, _: &JobSpec) -> Result<(), PlatformError> {
        Err(unsupported())
    }
    fn job_state(&self, _: &str, _: &str) -> JobState {
        JobState::Missing
    }
    fn stop_job(&self, _: &str, _: &str, _: &str) -> Result<(), PlatformError> {
        Err(unsupported())
    }
    fn delete_job(&self, _: &str, _: &str) -> Result<(), PlatformError> {
        Err(unsupported())
    }
    fn ensure_schedule(&self, _: &ScheduleSpec) -> Result<Option<Timestamp>, PlatformError> {
        Err(unsupported())
    }
    fn remove_schedules(&self, _: &str, _: &str, _: &[String]) -> Result<(), PlatformError> {
        Err(unsupported())
    }
    fn target_found(&self, _: &TypedObjectReference) -> Result<Option<bool>, PlatformError> {
        Err(unsupported())
    }
    fn hook_commands(&self) -> std::sync::Arc<dyn kstash_controller::platform::HookCommands> {
        std::sync::Arc::new(NoHooks)
    }
    fn tasks(&self) -> &kstash_controller::tasks::TaskTracker {
        &self.tasks
    }
    fn storage(&self) -> std::sync::Arc<dyn StorageOps> {
        std::sync::Arc::new(NoStorage)
    }
    fn event(&self, object: &str, warning: bool, reason: &str, message: &str) {
        self.events
            .lock()
            .unwrap()
            .push((object.into(), warning, reason.into(), message.into()));
    }
}

impl TestPlatform {
    fn new() -> TestPlatform {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("kstash.db")).unwrap();
        TestPlatform {
            store,
            events: Mutex::new(Vec::new()),
            tasks: Default::default(),
            _dir: dir,
        }
    }

    fn apply(&self, docs: &str) {
        for d in kstash_api::manifest::parse_documents("test", docs).unwrap() {
            self.store.apply(d).unwrap();
        }
    }

    /// Run the auto-backup reconcilers on every change since `from` until nothing changes; the
    /// revision reached is returned. Only blueprint and target keys are reconciled (the other
    /// reconcilers need schedules and storage).
    fn settle(&self, from: u64) -> u64 {
        let mut rev = from;
        for _ in 0..20 {
            let events = self.store.changes_since(rev).unwrap();
            if events.is_empty() {
                return rev;
            }
            let mut keys = BTreeSet::new();
            for ev in events {
                rev = ev.revision;
                keys.extend(dispatch::keys_for_change(&ev.object));
            }
            for key in keys.into_iter().filter(auto_backup_key) {
                let r = dispatch::reconcile(self, &key);
                assert!(matches!(r, Ok(Requeue::Idle | Requeue::After(_))), "{key}: {r:?}");
            }
        }
        panic!("the auto-backup reconcilers did not settle");
    }

    /// Reconcile every target and blueprint once (a resync), then settle.
    fn resync(&self) {
        let rev = self.store.current_revision().unwrap();
        for rt in dispatch::RECONCILED {
            for o in Resources::list(&self.store, rt, None, &[]).unwrap() {
                let key = Key {
                    kind: rt.kind,
                    namespace: o["metadata"]["namespace"].as_str().unwrap_or("").into(),
                    name: o["metadata"]["name"].as_str().unwrap_or("").into(),
                };
                if auto_backup_key(&key) {
                    dispatch::reconcile(self, &key).unwrap();
                }
            }
        }
        self.settle(rev);
    }

    fn bc(&self, ns: &str, name: &str) -> Option<Value> {
        Resources::get(&self.store, &meta::BACKUP_CONFIGURATION, ns, name).unwrap()
    }

    fn bc_names(&self) -> Vec<String> {
        Resources::list(&self.store, &meta::BACKUP_CONFIGURATION, None, &[])
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{}/{}",
                    b["metadata"]["namespace"].as_str().unwrap(),
                    b["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn take_events(&self) -> Vec<(String, bool, String, String)> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

fn auto_backup_key(k: &Key) -> bool {
    k.kind == "BackupBlueprint" || blueprint::target_type(k.kind).is_some()
}

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Namespace
metadata: {name: backups}
---
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {name: local-storage, namespace: demo}
spec:
  storage: {provider: local, local: {mountPath: /safe/data, hostPath: {path: /tmp/none}}}
  usagePolicy: {allowedNamespaces: {from: All}}
  default: true
---
apiVersion: storage.kubestash.com/v1alpha1
kind: RetentionPolicy
metadata: {name: keep-last, namespace: demo}
spec:
  default: true
  usagePolicy: {allowedNamespaces: {from: All}}
  successfulSnapshots: {last: 3}
"#;

fn blueprint_yaml(extra_template: &str, deletion_policy: &str) -> String {
    format!(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupBlueprint
metadata: {{name: bp, namespace: demo}}
spec:
  usagePolicy: {{allowedNamespaces: {{from: Same}}}}
  subjects:
    - {{apiVersion: apps/v1, kind: Deployment}}
    - {{apiVersion: apps/v1, kind: StatefulSet}}
    - {{apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding}}
  backupConfigurationTemplate:
    {deletion_policy}
    {extra_template}
    backends:
      - name: local
        storageRef: {{name: local-storage, namespace: demo}}
        retentionPolicy: {{name: keep-last, namespace: demo}}
    sessions:
      - name: frequent
        scheduler: {{schedule: "${{schedule}}"}}
        repositories:
          - name: ${{repoName}}
            backend: local
            directory: demo/${{targetName}}
            encryptionSecret: {{name: encrypt, namespace: demo}}
        addon:
          name: workload-addon
          tasks: [{{name: logical-backup, params: {{paths: "${{paths}}"}}}}]
"#
    )
}

fn deployment(name: &str, annotations: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: demo
  annotations: {{{annotations}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: busybox}}]}}
"#
    )
}

const ANNOTATED: &str = r#"blueprint.kubestash.com/name: bp, blueprint.kubestash.com/namespace: demo,
  variables.kubestash.com/schedule: "*/5 * * * *", variables.kubestash.com/repoName: app-repo,
  variables.kubestash.com/targetName: app, variables.kubestash.com/paths: /data"#;

fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"].as_str().unwrap().to_string()
}

fn setup() -> (TestPlatform, u64) {
    let p = TestPlatform::new();
    p.apply(BASE);
    p.apply(&blueprint_yaml("", "deletionPolicy: OnDelete"));
    let rev = p.settle(0);
    (p, rev)
}

#[test]
fn an_annotated_deployment_and_app_binding_get_generated_configurations() {
    let (p, rev) = setup();
    let bp = Resources::get(&p.store, &meta::BACKUP_BLUEPRINT, "demo", "bp")
        .unwrap()
        .unwrap();
    assert_eq!(bp["metadata"]["finalizers"], json!(["kubestash.com/cleanup"]));

    p.apply(&deployment("app", ANNOTATED));
    p.apply(
        r#"
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata:
  name: db
  namespace: demo
  annotations:
    blueprint.kubestash.com/name: bp
    blueprint.kubestash.com/namespace: demo
    variables.kubestash.com/schedule: "0 * * * *"
    variables.kubestash.com/repoName: db-repo
    variables.kubestash.com/targetName: db
    variables.kubestash.com/paths: /unused
spec: {type: kubedb.com/postgres, clientConfig: {url: "postgresql://127.0.0.1:5432"}}
"#,
    );
    p.settle(rev);
    assert_eq!(p.bc_names(), ["demo/appbinding-db", "demo/deployment-app"]);
    let bc = p.bc("demo", "deployment-app").unwrap();
    assert_eq!(
        bc["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "kubestash.com",
            "kubestash.com/invoker-kind": "BackupBlueprint",
            "kubestash.com/invoker-name": "bp",
            "kubestash.com/invoker-namespace": "demo",
            "kubestash.com/app-ref-kind": "Deployment",
            "kubestash.com/app-ref-name": "app",
            "kubestash.com/app-ref-namespace": "demo",
        })
    );
    assert_eq!(
        bc["spec"],
        json!({
            "target": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": "demo"},
            "backends": [{"name": "local",
                "storageRef": {"name": "local-storage", "namespace": "demo"},
                "retentionPolicy": {"name": "keep-last", "namespace": "demo"}}],
            "sessions": [{
                "name": "frequent",
                "scheduler": {"schedule": "*/5 * * * *", "jobTemplate": {"template": {}}},
                "sessionHistoryLimit": 1,
                "addon": {"name": "workload-addon",
                    "tasks": [{"name": "logical-backup", "params": {"paths": "/data"}}]},
                "repositories": [{"name": "app-repo", "backend": "local", "directory": "demo/app",
                    "encryptionSecret": {"name": "encrypt", "namespace": "demo"}}]
            }]
        })
    );
    let ab = p.bc("demo", "appbinding-db").unwrap();
    assert_eq!(
        ab["spec"]["target"],
        json!({"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding", "name": "db", "namespace": "demo"})
    );
    assert_eq!(ab["spec"]["sessions"][0]["scheduler"]["schedule"], "0 * * * *");
    let events = p.take_events();
    assert!(
        events.contains(&(
            "Deployment demo/app".into(),
            false,
            "BackupConfigurationCreated".into(),
            "created BackupConfiguration demo/deployment-app from BackupBlueprint demo/bp".into()
        )),
        "{events:?}"
    );
    assert!(events.iter().all(|e| !e.1), "{events:?}");

    // Idempotent: a resync writes nothing.
    let before = rv(&p.bc("demo", "deployment-app").unwrap());
    let rev = p.store.current_revision().unwrap();
    p.resync();
    assert_eq!(rv(&p.bc("demo", "deployment-app").unwrap()), before);
    assert_eq!(
        p.store.current_revision().unwrap(),
        rev,
        "a resync changed something"
    );
    assert!(p.take_events().is_empty());
}

#[test]
fn generated_configurations_follow_the_target_and_keep_paused() {
    let (p, rev) = setup();
    p.apply(&deployment("app", ANNOTATED));
    let rev = p.settle(rev);

    // A deleted generated configuration comes back.
    p.store
        .delete(&meta::BACKUP_CONFIGURATION, "demo", "deployment-app")
        .unwrap();
    let rev = p.settle(rev);
    assert!(p.bc("demo", "deployment-app").is_some());

    // Hand edits of the spec are reverted, but `paused` and the user's labels stay.
    let mut bc = p.bc("demo", "deployment-app").unwrap();
    bc["spec"]["paused"] = json!(true);
    bc["spec"]["sessions"][0]["scheduler"]["schedule"] = json!("0 0 * * *");
    bc["metadata"]["labels"]["team"] = json!("a");
    p.store.update(bc).unwrap();
    let rev = p.settle(rev);
    let bc = p.bc("demo", "deployment-app").unwrap();
    assert_eq!(bc["spec"]["paused"], true);
    assert_eq!(bc["spec"]["sessions"][0]["scheduler"]["schedule"], "*/5 * * * *");
    assert_eq!(bc["metadata"]["labels"]["team"], "a");
    p.take_events();

    // A changed variable updates the configuration in place.
    let uid = bc["metadata"]["uid"].clone();
    p.apply(&deployment(
        "app",
        &ANNOTATED.replace("*/5 * * * *", "*/7 * * * *"),
    ));
    let rev = p.settle(rev);
    let bc = p.bc("demo", "deployment-app").unwrap();
    assert_eq!(bc["metadata"]["uid"], uid);
    assert_eq!(bc["spec"]["sessions"][0]["scheduler"]["schedule"], "*/7 * * * *");
    assert_eq!(bc["spec"]["paused"], true);
    let events = p.take_events();
    assert_eq!(
        events,
        [(
            "Deployment demo/app".into(),
            false,
            "BackupConfigurationUpdated".into(),
            "updated BackupConfiguration demo/deployment-app from BackupBlueprint demo/bp".into()
        )]
    );

    // Removing the annotations deletes it.
    p.apply(&deployment("app", ""));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), Vec::<String>::new());
    assert_eq!(p.take_events()[0].2, "BackupConfigurationDeleted");

    // So does deleting the target.
    p.apply(&deployment("app", ANNOTATED));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), ["demo/deployment-app"]);
    p.store.delete(&meta::DEPLOYMENT, "demo", "app").unwrap();
    p.settle(rev);
    assert_eq!(p.bc_names(), Vec::<String>::new());
}

#[test]
fn configuration_errors_are_warning_events_and_create_nothing() {
    let (p, rev) = setup();
    // Missing variable.
    p.apply(&deployment(
        "app",
        &ANNOTATED.replace("variables.kubestash.com/paths: /data", "other: x"),
    ));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), Vec::<String>::new());
    let events = p.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let (object, warning, reason, message) = &events[0];
    assert_eq!(
        (object.as_str(), *warning, reason.as_str()),
        ("Deployment demo/app", true, "AutoBackupFailed")
    );
    assert!(
        message.contains("${paths}") && message.contains("variables.kubestash.com/paths"),
        "{message}"
    );

    // A user's configuration in the way is left alone.
    p.apply(
        r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupConfiguration
metadata: {name: statefulset-db, namespace: demo}
spec:
  target: {apiGroup: apps, kind: StatefulSet, name: db, namespace: demo}
  sessions: [{name: mine, scheduler: {schedule: "1 1 * * *"}}]
"#,
    );
    let mine = p.bc("demo", "statefulset-db").unwrap();
    p.apply(&format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: demo
  annotations: {{{}}}
spec:
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec: {{containers: [{{name: c, image: busybox}}]}}
"#,
        ANNOTATED
            .replace("app-repo", "db-repo")
            .replace("targetName: app", "targetName: db")
    ));
    let rev = p.settle(rev);
    assert_eq!(p.bc("demo", "statefulset-db").unwrap(), mine);
    let events = p.take_events();
    assert!(
        events.iter().any(|(o, w, _, m)| o == "StatefulSet demo/db"
            && *w
            && m.contains("BackupConfiguration demo/statefulset-db exists and was not generated")),
        "{events:?}"
    );
    // Removing the annotations does not delete it either.
    p.store.delete(&meta::STATEFUL_SET, "demo", "db").unwrap();
    p.settle(rev);
    assert_eq!(p.bc("demo", "statefulset-db").unwrap(), mine);

    // A kind the blueprint does not list.
    let rev = p.store.current_revision().unwrap();
    p.apply(ANNOTATED_DAEMONSET);
    p.settle(rev);
    let events = p.take_events();
    assert!(
        events
            .iter()
            .any(|(o, w, _, m)| o == "DaemonSet demo/agent" && *w && m.contains("spec.subjects")),
        "{events:?}"
    );
}

const ANNOTATED_DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: demo
  annotations: {blueprint.kubestash.com/name: bp, blueprint.kubestash.com/namespace: demo}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

#[test]
fn a_blueprint_change_replans_its_targets_and_moves_configurations() {
    let (p, rev) = setup();
    p.apply(&deployment("app", ANNOTATED));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), ["demo/deployment-app"]);

    // Another literal in the template: every target is re-planned.
    p.apply(&blueprint_yaml("", "deletionPolicy: OnDelete").replace("workload-addon", "pvc-addon"));
    let rev = p.settle(rev);
    let bc = p.bc("demo", "deployment-app").unwrap();
    assert_eq!(bc["spec"]["sessions"][0]["addon"]["name"], "pvc-addon");

    // A template namespace: the configuration moves there, named after the target's namespace.
    p.apply(&blueprint_yaml("namespace: backups", "deletionPolicy: OnDelete"));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), ["backups/demo-deployment-app"]);
    let bc = p.bc("backups", "demo-deployment-app").unwrap();
    assert_eq!(bc["spec"]["target"]["namespace"], "demo");

    // Annotations removed: the leftover in the other namespace is collected by the blueprint.
    p.apply(&deployment("app", ""));
    let rev = p.settle(rev);
    assert_eq!(
        p.bc_names(),
        ["backups/demo-deployment-app"],
        "collected only on the blueprint's reconcile"
    );
    p.resync();
    assert_eq!(p.bc_names(), Vec::<String>::new());
    let _ = rev;
}

#[test]
fn deleting_a_blueprint_with_on_delete_deletes_its_configurations() {
    let (p, rev) = setup();
    p.apply(&deployment("app", ANNOTATED));
    let rev = p.settle(rev);
    assert_eq!(p.bc_names(), ["demo/deployment-app"]);
    p.take_events();
    p.store.delete(&meta::BACKUP_BLUEPRINT, "demo", "bp").unwrap();
    p.settle(rev);
    assert!(
        Resources::get(&p.store, &meta::BACKUP_BLUEPRINT, "demo", "bp")
            .unwrap()
            .is_none()
    );
    assert_eq!(p.bc_names(), Vec::<String>::new());
    let events = p.take_events();
    assert!(
        events
            .iter()
            .any(|(o, w, r, _)| o == "BackupBlueprint demo/bp" && !w && r == "BackupConfigurationDeleted"),
        "{events:?}"
    );
    // The still annotated target now reports the missing blueprint.
    assert!(
        events
            .iter()
            .any(|(o, w, _, m)| o == "Deployment demo/app" && *w && m.contains("BackupBlueprint demo/bp")),
        "{events:?}"
    );
}

#[test]
fn deleting_a_blueprint_without_on_delete_keeps_its_configurations() {
    let p = TestPlatform::new();
    p.apply(BASE);
    p.apply(&blueprint_yaml("", ""));
    p.apply(&deployment("app", ANNOTATED));
    let rev = p.settle(0);
    assert_eq!(p.bc_names(), ["demo/deployment-app"]);
    p.store.delete(&meta::BACKUP_BLUEPRINT, "demo", "bp").unwrap();
    p.settle(rev);
    assert!(
        Resources::get(&p.store, &meta::BACKUP_BLUEPRINT, "demo", "bp")
            .unwrap()
            .is_none()
    );
    assert_eq!(p.bc_names(), ["demo/deployment-app"]);
}
