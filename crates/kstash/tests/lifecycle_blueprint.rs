//! End to end on the embedded daemon: BackupBlueprint auto-backup of a real PostgreSQL. An
//! AppBinding annotated with `blueprint.kubestash.com/*` and `variables.kubestash.com/*` gets a
//! generated BackupConfiguration with its placeholders filled, which becomes Ready and whose
//! instant backup succeeds; a missing variable is a warning naming it and creates nothing;
//! removing the annotations deletes the configuration; deleting the blueprint
//! (`deletionPolicy: OnDelete`) deletes what it generated.

mod lifecycle;

use std::time::Duration;

use kstash_testsupport::Postgres;
use lifecycle::{Env, name, phase, wait_for, wait_some};
use serde_json::Value;

const BLUEPRINT: &str = r#"
apiVersion: core.kubestash.com/v1alpha1
kind: BackupBlueprint
metadata: {name: pg-blueprint, namespace: demo}
spec:
  usagePolicy: {allowedNamespaces: {from: Same}}
  subjects:
    - {apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding}
  backupConfigurationTemplate:
    deletionPolicy: OnDelete
    backends:
      - name: local
        storageRef: {name: local-storage, namespace: demo}
        retentionPolicy: {name: keep-last, namespace: demo}
    sessions:
      - name: nightly
        scheduler: {schedule: "${schedule}"}
        repositories:
          - name: ${repoName}
            backend: local
            directory: ${namespace}/${targetName}
            encryptionSecret: {name: encrypt, namespace: demo}
        addon:
          name: postgres-addon
          tasks:
            - name: logical-backup
              params: {backupCmd: pg_dump, args: "-d ${database}"}
"#;

/// An AppBinding `name` to the test server, with `annotations` (YAML flow-map entries).
fn app_binding(pg: &Postgres, name: &str, annotations: &str) -> String {
    format!(
        r#"
apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata:
  name: {name}
  namespace: demo
  annotations: {{{annotations}}}
spec:
  type: kubedb.com/postgres
  clientConfig:
    service: {{scheme: postgresql, name: "{host}", port: {port}, query: sslmode=disable}}
  secret: {{name: pg-auth}}
"#,
        host = pg.host,
        port = pg.port,
    )
}

const ANNOTATIONS: &str = r#"blueprint.kubestash.com/name: pg-blueprint,
    blueprint.kubestash.com/namespace: demo,
    variables.kubestash.com/schedule: "0 0 1 1 *",
    variables.kubestash.com/repoName: shop-repo,
    variables.kubestash.com/namespace: demo,
    variables.kubestash.com/targetName: shop-db,
    variables.kubestash.com/database: shop"#;

const LONG: Duration = Duration::from_secs(90);

/// The first finished BackupSession of `bc` not named in `seen`.
fn finished_session(env: &Env, bc: &str, seen: &[&str]) -> Value {
    wait_some(LONG, &format!("a finished backup of {bc}"), || {
        env.sessions_of(bc)
            .into_iter()
            .find(|s| !seen.contains(&name(s)) && matches!(phase(s), "Succeeded" | "Failed" | "Skipped"))
    })
}

#[test]
fn an_annotated_app_binding_is_backed_up_through_its_blueprint() {
    let pg = Postgres::start().unwrap();
    pg.psql("CREATE DATABASE shop");
    pg.psql("CREATE DATABASE other");

    let env = Env::new();
    env.apply(&env.storage_manifests(3));
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: pg-auth, namespace: demo}}
stringData: {{username: {user}, password: "{password}"}}
"#,
        user = pg.user,
        password = pg.password,
    ));
    env.apply(BLUEPRINT);
    env.apply(&app_binding(&pg, "shop-db", ANNOTATIONS));
    let mut daemon = env.start_daemon(&[]);

    // The generated configuration, placeholders filled.
    let bc = wait_some(LONG, "the generated BackupConfiguration", || {
        env.get("backupconfiguration", "demo", "appbinding-shop-db")
    });
    let labels = &bc["metadata"]["labels"];
    assert_eq!(labels["kubestash.com/invoker-name"], "pg-blueprint", "{bc:#}");
    assert_eq!(labels["kubestash.com/invoker-namespace"], "demo", "{bc:#}");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubestash.com", "{bc:#}");
    let spec = &bc["spec"];
    assert_eq!(
        spec["target"],
        serde_json::json!({"apiGroup": "appcatalog.appscode.com", "kind": "AppBinding",
            "name": "shop-db", "namespace": "demo"})
    );
    let session = &spec["sessions"][0];
    assert_eq!(session["scheduler"]["schedule"], "0 0 1 1 *", "{bc:#}");
    assert_eq!(session["repositories"][0]["name"], "shop-repo", "{bc:#}");
    assert_eq!(session["repositories"][0]["directory"], "demo/shop-db", "{bc:#}");
    assert_eq!(
        session["addon"]["tasks"][0]["params"],
        serde_json::json!({"backupCmd": "pg_dump", "args": "-d shop"})
    );

    // Ready, and its instant backup succeeds.
    wait_for(LONG, "the generated configuration to be Ready", || {
        env.get("backupconfiguration", "demo", "appbinding-shop-db")
            .is_some_and(|b| phase(&b) == "Ready")
    });
    let first = finished_session(&env, "appbinding-shop-db", &[]);
    assert_eq!(phase(&first), "Succeeded", "{first:#}");
    let snaps = env.list("snapshots", "demo");
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    assert_eq!(snaps[0]["status"]["components"]["dump"]["phase"], "Succeeded");
    assert!(
        env.component_repo("demo/shop-db", "nightly")
            .join("config")
            .exists(),
        "no restic repository under demo/shop-db"
    );

    // A target missing a variable: a warning naming it, and no configuration.
    env.apply(&app_binding(
        &pg,
        "other-db",
        &ANNOTATIONS
            .replace("shop-repo", "other-repo")
            .replace("targetName: shop-db", "targetName: other-db")
            .replace(",\n    variables.kubestash.com/database: shop", ""),
    ));
    wait_for(LONG, "the missing-variable warning", || {
        let log = daemon.log_text();
        log.lines().any(|l| {
            l.contains("WARN")
                && l.contains("AppBinding demo/other-db")
                && l.contains("${database}")
                && l.contains("variables.kubestash.com/database")
        })
    });
    assert!(
        env.get("backupconfiguration", "demo", "appbinding-other-db")
            .is_none()
    );

    // Annotations removed: the generated configuration goes away (and only it).
    env.apply(&app_binding(&pg, "shop-db", ""));
    wait_for(LONG, "the generated configuration to be deleted", || {
        env.get("backupconfiguration", "demo", "appbinding-shop-db")
            .is_none()
    });

    // Annotated again: generated again, backed up again into the same directory.
    env.apply(&app_binding(&pg, "shop-db", ANNOTATIONS));
    wait_some(LONG, "the regenerated BackupConfiguration", || {
        env.get("backupconfiguration", "demo", "appbinding-shop-db")
    });
    let again = finished_session(&env, "appbinding-shop-db", &[name(&first)]);
    assert_eq!(phase(&again), "Succeeded", "{again:#}");
    assert_ne!(name(&again), name(&first));

    // Deleting the blueprint (deletionPolicy: OnDelete) deletes what it generated.
    env.ok(&["delete", "backupblueprint", "pg-blueprint", "-n", "demo"]);
    wait_for(LONG, "the blueprint and its configuration to be deleted", || {
        env.get("backupblueprint", "demo", "pg-blueprint").is_none()
            && env
                .get("backupconfiguration", "demo", "appbinding-shop-db")
                .is_none()
    });
    // The still annotated AppBinding now reports the missing blueprint and gets nothing.
    wait_for(LONG, "the missing-blueprint warning", || {
        daemon.log_text().lines().any(|l| {
            l.contains("WARN")
                && l.contains("AppBinding demo/shop-db")
                && l.contains("BackupBlueprint demo/pg-blueprint")
                && l.contains("does not exist")
        })
    });
    assert!(
        env.get("backupconfiguration", "demo", "appbinding-shop-db")
            .is_none()
    );
    daemon.assert_healthy();
}
