//! Unit tests of the pure auto-backup plan (plain values, no platform).

use serde_json::json;

use super::*;

fn blueprint_value() -> Value {
    json!({
        "apiVersion": "core.kubestash.com/v1alpha1",
        "kind": "BackupBlueprint",
        "metadata": {"name": "workload-blueprint", "namespace": "demo"},
        "spec": {
            "usagePolicy": {"allowedNamespaces": {"from": "Same"}},
            "subjects": [
                {"apiVersion": "apps/v1", "kind": "Deployment"},
                {"apiVersion": "apps/v1", "kind": "StatefulSet"},
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim"},
                {"apiVersion": "appcatalog.appscode.com/v1alpha1", "kind": "AppBinding"}
            ],
            "backupConfigurationTemplate": {
                "deletionPolicy": "OnDelete",
                "backends": [{
                    "name": "local",
                    "storageRef": {"name": "local-storage", "namespace": "demo"},
                    "retentionPolicy": {"name": "keep-last", "namespace": "demo"}
                }],
                "sessions": [
                    {
                        "name": "frequent-backup",
                        "scheduler": {"schedule": "${schedule}", "jobTemplate": {"backoffLimit": 1}},
                        "repositories": [{
                            "name": "${repoName}",
                            "backend": "local",
                            "directory": "${namespace}/${targetName}",
                            "encryptionSecret": {"name": "encrypt", "namespace": "demo"}
                        }],
                        "addon": {
                            "name": "workload-addon",
                            "tasks": [{"name": "logical-backup", "params": {"paths": "${paths}"}}]
                        },
                        "retryConfig": {"maxRetry": 2, "delay": "1m"}
                    },
                    {
                        "name": "nightly",
                        "scheduler": {"schedule": "0 1 * * *"},
                        "repositories": [{
                            "name": "${repoName}-nightly",
                            "backend": "local",
                            "directory": "${namespace}/${targetName}-nightly",
                            "encryptionSecret": {"name": "encrypt", "namespace": "demo"}
                        }],
                        "addon": {
                            "name": "workload-addon",
                            "tasks": [{"name": "logical-backup", "params": {"paths": "${paths}"}}]
                        }
                    }
                ]
            }
        }
    })
}

fn blueprint() -> BackupBlueprint {
    serde_json::from_value(blueprint_value()).unwrap()
}

fn blueprint_with(edit: impl FnOnce(&mut Value)) -> BackupBlueprint {
    let mut v = blueprint_value();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("schedule", "*/15 * * * *"),
        ("repoName", "app-repo"),
        ("namespace", "demo"),
        ("targetName", "app"),
        ("paths", "/source/data"),
    ]
}

fn annotations(extra: &[(&str, &str)], variables: &[(&str, &str)]) -> Value {
    let mut a = serde_json::Map::new();
    a.insert(ANNOTATION_BLUEPRINT_NAME.into(), "workload-blueprint".into());
    a.insert(ANNOTATION_BLUEPRINT_NAMESPACE.into(), "demo".into());
    for (k, v) in variables {
        a.insert(format!("{VARIABLE_PREFIX}{k}"), (*v).into());
    }
    for (k, v) in extra {
        a.insert((*k).into(), (*v).into());
    }
    Value::Object(a)
}

fn target(api_version: &str, kind: &str, ns: &str, name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {}
    })
}

fn deployment(ann: Value) -> Value {
    target("apps/v1", "Deployment", "demo", "app", ann)
}

fn obj(v: Value) -> Object {
    Object::from_value(&v).unwrap()
}

/// Storage, retention policy, and the namespaces `demo` (label team=a) and `other`.
fn existing() -> Vec<Object> {
    vec![
        obj(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "demo", "labels": {"team": "a"}}})),
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})),
        obj(
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": "local-storage", "namespace": "demo"},
            "spec": {"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                "hostPath": {"path": "/tmp/x"}}},
                "usagePolicy": {"allowedNamespaces": {"from": "All"}}, "default": true}}),
        ),
        obj(
            json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "RetentionPolicy",
            "metadata": {"name": "keep-last", "namespace": "demo"},
            "spec": {"usagePolicy": {"allowedNamespaces": {"from": "All"}}, "default": true,
                "successfulSnapshots": {"last": 3}}}),
        ),
    ]
}

fn plan_with(
    target: &Value,
    bp: Option<BackupBlueprint>,
    existing: &[Object],
) -> std::result::Result<Option<BackupConfiguration>, AutoBackupError> {
    plan_auto_backup(
        target,
        |ns, name| bp.filter(|b| util::namespace(&b.metadata) == ns && util::name(&b.metadata) == name),
        existing,
    )
}

fn plan(target: &Value) -> std::result::Result<Option<BackupConfiguration>, AutoBackupError> {
    plan_with(target, Some(blueprint()), &existing())
}

fn plan_ok(target: &Value) -> BackupConfiguration {
    plan(target).unwrap().expect("a configuration")
}

fn plan_err(target: &Value) -> AutoBackupError {
    plan(target).expect_err("an error")
}

fn label<'a>(bc: &'a BackupConfiguration, key: &str) -> Option<&'a str> {
    bc.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

#[test]
fn a_target_without_annotations_gets_nothing() {
    assert_eq!(plan(&deployment(json!({}))).unwrap(), None);
    let plain = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "demo"}});
    assert_eq!(plan(&plain).unwrap(), None);
    // Variables alone do not opt in.
    assert_eq!(
        plan(&deployment(json!({"variables.kubestash.com/paths": "/x"}))).unwrap(),
        None
    );
}

#[test]
fn kinds_that_cannot_opt_in_get_nothing() {
    let secret = target("v1", "Secret", "demo", "s", annotations(&[], &vars()));
    assert_eq!(plan(&secret).unwrap(), None);
    let pod = target("v1", "Pod", "demo", "p", annotations(&[], &vars()));
    assert_eq!(plan(&pod).unwrap(), None);
    // A known kind under a wrong apiVersion is not a target either.
    let wrong = target(
        "apps/v1beta1",
        "Deployment",
        "demo",
        "app",
        annotations(&[], &vars()),
    );
    assert_eq!(plan(&wrong).unwrap(), None);
}

#[test]
fn a_target_being_deleted_gets_nothing() {
    let mut d = deployment(annotations(&[], &vars()));
    d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(plan(&d).unwrap(), None);
}

#[test]
fn an_annotated_deployment_gets_a_filled_configuration_named_after_it() {
    let bc = plan_ok(&deployment(annotations(&[], &vars())));
    assert_eq!(bc.metadata.name.as_deref(), Some("deployment-app"));
    assert_eq!(bc.metadata.namespace.as_deref(), Some("demo"));
    let t = bc.spec.target.clone().unwrap();
    assert_eq!(t.api_group.as_deref(), Some("apps"));
    assert_eq!(t.kind.as_deref(), Some("Deployment"));
    assert_eq!(t.namespace.as_deref(), Some("demo"));
    assert_eq!(t.name, "app");
    assert_eq!(bc.spec.sessions.len(), 2);
    let s = &bc.spec.sessions[0];
    assert_eq!(s.name, "frequent-backup");
    assert_eq!(s.scheduler.as_ref().unwrap().schedule, "*/15 * * * *");
    assert_eq!(s.repositories[0].name, "app-repo");
    assert_eq!(s.repositories[0].directory, "demo/app");
    assert_eq!(
        s.addon.as_ref().unwrap().tasks[0].params,
        Some(json!({"paths": "/source/data"}))
    );
    assert_eq!(bc.spec.sessions[1].repositories[0].name, "app-repo-nightly");
    assert_eq!(bc.spec.sessions[1].repositories[0].directory, "demo/app-nightly");
    // Defaults applied as admission would.
    assert_eq!(s.session_history_limit, Some(1));
    // No placeholder survives anywhere.
    let text = serde_json::to_string(&bc).unwrap();
    assert!(!text.contains("${"), "{text}");
}

#[test]
fn generated_configurations_carry_the_invoker_and_target_labels() {
    let bc = plan_ok(&deployment(annotations(&[], &vars())));
    assert_eq!(label(&bc, "app.kubernetes.io/managed-by"), Some("kubestash.com"));
    assert_eq!(
        label(&bc, "kubestash.com/invoker-name"),
        Some("workload-blueprint")
    );
    assert_eq!(label(&bc, "kubestash.com/invoker-namespace"), Some("demo"));
    assert_eq!(label(&bc, "kubestash.com/invoker-kind"), Some("BackupBlueprint"));
    assert_eq!(label(&bc, "kubestash.com/app-ref-kind"), Some("Deployment"));
    assert_eq!(label(&bc, "kubestash.com/app-ref-namespace"), Some("demo"));
    assert_eq!(label(&bc, "kubestash.com/app-ref-name"), Some("app"));
    let t = Target::of(&deployment(json!({}))).unwrap();
    assert!(is_generated_for(&bc, &t));
}

#[test]
fn app_bindings_and_pvcs_get_their_group_and_kind_in_the_name() {
    let ab = target(
        "appcatalog.appscode.com/v1alpha1",
        "AppBinding",
        "demo",
        "shop-db",
        annotations(&[], &vars()),
    );
    let bc = plan_ok(&ab);
    assert_eq!(bc.metadata.name.as_deref(), Some("appbinding-shop-db"));
    assert_eq!(
        bc.spec.target.unwrap().api_group.as_deref(),
        Some("appcatalog.appscode.com")
    );
    let pvc = target(
        "v1",
        "PersistentVolumeClaim",
        "demo",
        "data",
        annotations(&[], &vars()),
    );
    let bc = plan_ok(&pvc);
    assert_eq!(bc.metadata.name.as_deref(), Some("persistentvolumeclaim-data"));
    assert_eq!(bc.spec.target.unwrap().api_group, None);
}

#[test]
fn long_names_follow_the_63_character_rule() {
    let long = "a-very-long-deployment-name-that-goes-on-and-on-and-on-forever-x";
    let d = target("apps/v1", "Deployment", "demo", long, annotations(&[], &vars()));
    let bc = plan_ok(&d);
    let name = bc.metadata.name.clone().unwrap();
    assert_eq!(name.len(), 63);
    assert_eq!(name, names::name_with_prefix_and_suffix("deployment", long));
    assert!(name.starts_with("deployment-a-very"));
    assert!(name.ends_with("on-and-on-forever-x"));
    // The name label is left out when the name is no valid label value; spec.target still matches.
    assert_eq!(label(&bc, "kubestash.com/app-ref-name"), None);
    assert!(is_generated_for(
        &bc,
        &Target::of(&target("apps/v1", "Deployment", "demo", long, json!({}))).unwrap()
    ));
}

#[test]
fn the_configuration_lands_in_the_blueprint_namespace_or_the_template_namespace() {
    // Blueprint in `demo`, usable from all namespaces; target in `other`.
    let bp = blueprint_with(|v| v["spec"]["usagePolicy"]["allowedNamespaces"]["from"] = json!("All"));
    let d = target("apps/v1", "Deployment", "other", "app", annotations(&[], &vars()));
    let bc = plan_with(&d, Some(bp), &existing()).unwrap().unwrap();
    assert_eq!(bc.metadata.namespace.as_deref(), Some("demo"));
    assert_eq!(bc.metadata.name.as_deref(), Some("other-deployment-app"));
    assert_eq!(bc.spec.target.unwrap().namespace.as_deref(), Some("other"));

    // Template namespace from a variable: the target's own namespace.
    let bp = blueprint_with(|v| {
        v["spec"]["usagePolicy"]["allowedNamespaces"]["from"] = json!("All");
        v["spec"]["backupConfigurationTemplate"]["namespace"] = json!("${namespace}");
    });
    let mut vs = vars();
    vs.retain(|(k, _)| *k != "namespace");
    vs.push(("namespace", "other"));
    let d = target("apps/v1", "Deployment", "other", "app", annotations(&[], &vs));
    let bc = plan_with(&d, Some(bp.clone()), &existing()).unwrap().unwrap();
    assert_eq!(bc.metadata.namespace.as_deref(), Some("other"));
    assert_eq!(bc.metadata.name.as_deref(), Some("deployment-app"));
    let t = Target::of(&d).unwrap();
    assert_eq!(
        location(&t, &bp, &request(&d, &t).unwrap().unwrap().variables),
        Some(("other".into(), "deployment-app".into()))
    );
    // Unknown when the namespace variable is missing.
    assert_eq!(location(&t, &bp, &BTreeMap::new()), None);
}

#[test]
fn both_blueprint_annotations_are_required() {
    let mut a = annotations(&[], &vars());
    a.as_object_mut().unwrap().remove(ANNOTATION_BLUEPRINT_NAMESPACE);
    let e = plan_err(&deployment(a));
    assert!(
        matches!(&e, AutoBackupError::IncompleteAnnotations { missing, .. } if *missing == ANNOTATION_BLUEPRINT_NAMESPACE),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("Deployment demo/app: annotation blueprint.kubestash.com/namespace is missing"),
        "{msg}"
    );
    assert!(msg.contains("fix:"), "{msg}");

    let mut a = annotations(&[], &vars());
    a[ANNOTATION_BLUEPRINT_NAME] = json!("");
    let e = plan_err(&deployment(a));
    assert!(
        e.to_string()
            .contains("annotation blueprint.kubestash.com/name is missing"),
        "{e}"
    );
}

#[test]
fn a_missing_blueprint_is_named() {
    let e = plan_with(&deployment(annotations(&[], &vars())), None, &existing()).unwrap_err();
    assert_eq!(
        e,
        AutoBackupError::BlueprintNotFound {
            target: "Deployment demo/app".into(),
            blueprint: "demo/workload-blueprint".into()
        }
    );
    assert!(
        e.to_string().contains("BackupBlueprint demo/workload-blueprint"),
        "{e}"
    );
    assert!(e.to_string().contains("fix: create it"), "{e}");
}

#[test]
fn a_blueprint_being_deleted_generates_nothing() {
    let bp = blueprint_with(|v| v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"));
    let e = plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).unwrap_err();
    assert!(matches!(e, AutoBackupError::BlueprintDeleting { .. }), "{e}");
}

#[test]
fn a_blueprint_without_template_is_reported() {
    let bp = blueprint_with(|v| {
        v["spec"]
            .as_object_mut()
            .unwrap()
            .remove("backupConfigurationTemplate");
    });
    let e = plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).unwrap_err();
    assert!(matches!(e, AutoBackupError::NoTemplate { .. }), "{e}");
    assert!(e.to_string().contains("spec.backupConfigurationTemplate"), "{e}");
}

#[test]
fn the_target_kind_must_be_a_subject() {
    let ds = target("apps/v1", "DaemonSet", "demo", "agent", annotations(&[], &vars()));
    let e = plan_err(&ds);
    let msg = e.to_string();
    assert!(matches!(e, AutoBackupError::KindNotInSubjects { .. }), "{msg}");
    assert!(
        msg.contains("does not list apps/v1 DaemonSet in spec.subjects"),
        "{msg}"
    );
    assert!(msg.contains("apps/v1 Deployment, apps/v1 StatefulSet"), "{msg}");
    assert!(
        msg.contains("fix: add `- apiVersion: apps/v1` / `kind: DaemonSet`"),
        "{msg}"
    );

    let bp = blueprint_with(|v| v["spec"]["subjects"] = json!([]));
    let e = plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).unwrap_err();
    assert!(e.to_string().contains("(it lists none)"), "{e}");

    // Any version of the group matches (KubeDB kinds move between versions).
    let bp = blueprint_with(|v| {
        v["spec"]["subjects"] = json!([{"apiVersion": "apps/v1beta2", "kind": "Deployment"}])
    });
    assert!(plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).is_ok());
    // …but not another group.
    let bp = blueprint_with(|v| {
        v["spec"]["subjects"] = json!([{"apiVersion": "extensions/v1beta1", "kind": "Deployment"}])
    });
    assert!(plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).is_err());
}

#[test]
fn the_usage_policy_is_checked_against_the_target_namespace() {
    // `from: Same` (the example) and a target in another namespace.
    let d = target("apps/v1", "Deployment", "other", "app", annotations(&[], &vars()));
    let e = plan_err(&d);
    assert_eq!(
        e,
        AutoBackupError::NamespaceNotAllowed {
            target: "Deployment other/app".into(),
            blueprint: "demo/workload-blueprint".into(),
            namespace: "other".into()
        }
    );
    assert!(
        e.to_string().contains("spec.usagePolicy.allowedNamespaces"),
        "{e}"
    );
    // No usage policy means `Same` too.
    let bp = blueprint_with(|v| {
        v["spec"].as_object_mut().unwrap().remove("usagePolicy");
    });
    assert!(plan_with(&d, Some(bp.clone()), &existing()).is_err());
    assert!(plan_with(&deployment(annotations(&[], &vars())), Some(bp), &existing()).is_ok());
    // A selector on namespace labels.
    let selector = |labels: Value| {
        blueprint_with(|v| {
            v["spec"]["usagePolicy"] =
                json!({"allowedNamespaces": {"from": "Selector", "selector": {"matchLabels": labels}}})
        })
    };
    assert!(
        plan_with(
            &deployment(annotations(&[], &vars())),
            Some(selector(json!({"team": "a"}))),
            &existing()
        )
        .is_ok()
    );
    assert!(plan_with(&d, Some(selector(json!({"team": "a"}))), &existing()).is_err());
    assert!(
        plan_with(
            &d,
            Some(selector(json!({"kubernetes.io/metadata.name": "other"}))),
            &existing()
        )
        .is_ok()
    );
}

#[test]
fn missing_variables_are_all_named_with_the_annotation_to_add() {
    let mut vs = vars();
    vs.retain(|(k, _)| !matches!(*k, "paths" | "repoName"));
    let e = plan_err(&deployment(annotations(&[], &vs)));
    assert_eq!(
        e,
        AutoBackupError::MissingVariables {
            target: "Deployment demo/app".into(),
            blueprint: "demo/workload-blueprint".into(),
            placeholders: "${paths}, ${repoName}".into(),
            annotations: "variables.kubestash.com/paths, variables.kubestash.com/repoName".into(),
        }
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "Deployment demo/app: BackupBlueprint demo/workload-blueprint uses ${paths}, ${repoName}"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("fix: add variables.kubestash.com/paths, variables.kubestash.com/repoName"),
        "{msg}"
    );
}

#[test]
fn only_the_variables_of_the_selected_sessions_are_needed() {
    let bp = blueprint_with(|v| {
        v["spec"]["backupConfigurationTemplate"]["sessions"][1]["scheduler"]["schedule"] =
            json!("${nightlySchedule}")
    });
    let d = deployment(annotations(
        &[(ANNOTATION_SESSION_NAMES, "frequent-backup")],
        &vars(),
    ));
    let bc = plan_with(&d, Some(bp.clone()), &existing()).unwrap().unwrap();
    assert_eq!(bc.spec.sessions.len(), 1);
    let all = deployment(annotations(&[], &vars()));
    let e = plan_with(&all, Some(bp), &existing()).unwrap_err();
    assert!(
        e.to_string().contains("variables.kubestash.com/nightlySchedule"),
        "{e}"
    );
}

#[test]
fn session_names_select_a_subset_in_template_order() {
    let d = deployment(annotations(
        &[(ANNOTATION_SESSION_NAMES, " nightly , frequent-backup ,")],
        &vars(),
    ));
    let bc = plan_ok(&d);
    let names: Vec<_> = bc.spec.sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["frequent-backup", "nightly"]);
    let d = deployment(annotations(&[(ANNOTATION_SESSION_NAMES, "nightly")], &vars()));
    let bc = plan_ok(&d);
    assert_eq!(bc.spec.sessions.len(), 1);
    assert_eq!(bc.spec.sessions[0].name, "nightly");
    // An empty list means every session.
    let d = deployment(annotations(&[(ANNOTATION_SESSION_NAMES, " , ")], &vars()));
    assert_eq!(plan_ok(&d).spec.sessions.len(), 2);
}

#[test]
fn the_legacy_sessions_annotation_still_works() {
    let d = deployment(annotations(&[(ANNOTATION_SESSIONS_LEGACY, "nightly")], &vars()));
    assert_eq!(plan_ok(&d).spec.sessions.len(), 1);
    let d = deployment(annotations(&[(ANNOTATION_SESSIONS_LEGACY, "hourly")], &vars()));
    let e = plan_err(&d);
    assert!(
        e.to_string()
            .contains("annotation blueprint.kubestash.com/sessions names"),
        "{e}"
    );
}

#[test]
fn unknown_session_names_are_reported_with_the_available_ones() {
    let d = deployment(annotations(
        &[(ANNOTATION_SESSION_NAMES, "nightly,hourly,weekly")],
        &vars(),
    ));
    let e = plan_err(&d);
    assert_eq!(
        e,
        AutoBackupError::UnknownSessions {
            target: "Deployment demo/app".into(),
            blueprint: "demo/workload-blueprint".into(),
            annotation: ANNOTATION_SESSION_NAMES,
            unknown: "'hourly', 'weekly'".into(),
            available: "frequent-backup, nightly".into(),
        }
    );
    assert!(
        e.to_string()
            .contains("annotation blueprint.kubestash.com/session-names"),
        "{e}"
    );
}

#[test]
fn session_names_are_matched_after_filling_variables() {
    let bp = blueprint_with(|v| {
        v["spec"]["backupConfigurationTemplate"]["sessions"][1]["name"] = json!("${tier}-backup")
    });
    let mut vs = vars();
    vs.push(("tier", "gold"));
    let d = deployment(annotations(&[(ANNOTATION_SESSION_NAMES, "gold-backup")], &vs));
    let bc = plan_with(&d, Some(bp), &existing()).unwrap().unwrap();
    assert_eq!(bc.spec.sessions.len(), 1);
    assert_eq!(bc.spec.sessions[0].name, "gold-backup");
}

#[test]
fn placeholders_fill_inside_strings_and_keys() {
    let mut missing = BTreeSet::new();
    let vars: BTreeMap<String, String> = [("db", "shop"), ("x", "1"), ("empty", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        fill("-d ${db} --x=${x}${x}", &vars, &mut missing),
        "-d shop --x=11"
    );
    assert_eq!(fill("${empty}", &vars, &mut missing), "");
    assert_eq!(
        fill("$db ${ unterminated", &vars, &mut missing),
        "$db ${ unterminated"
    );
    assert_eq!(fill("${}", &vars, &mut missing), "${}");
    assert!(missing.is_empty());
    assert_eq!(fill("a ${nope} b ${db}", &vars, &mut missing), "a ${nope} b shop");
    assert_eq!(missing.into_iter().collect::<Vec<_>>(), ["nope"]);

    let mut v = json!({"k-${x}": ["${db}", 3, {"n": "${db}-${x}"}], "b": true});
    let mut missing = BTreeSet::new();
    fill_value(&mut v, &vars, &mut missing);
    assert_eq!(v, json!({"k-1": ["shop", 3, {"n": "shop-1"}], "b": true}));
}

#[test]
fn placeholders_in_task_params_and_hooks_are_filled() {
    let bp = blueprint_with(|v| {
        let s = &mut v["spec"]["backupConfigurationTemplate"]["sessions"][0];
        s["addon"]["tasks"][0]["params"] = json!({"args": "-d ${db}", "paths": "${paths}"});
        s["backupTimeout"] = json!("${timeout}");
    });
    let mut vs = vars();
    vs.push(("db", "shop"));
    vs.push(("timeout", "30m"));
    let bc = plan_with(&deployment(annotations(&[], &vs)), Some(bp), &existing())
        .unwrap()
        .unwrap();
    let s = &bc.spec.sessions[0];
    assert_eq!(
        s.addon.as_ref().unwrap().tasks[0].params,
        Some(json!({"args": "-d shop", "paths": "/source/data"}))
    );
    assert_eq!(s.backup_timeout.as_deref(), Some("30m"));
}

#[test]
fn an_invalid_generated_configuration_names_the_field() {
    // A variable that is no Go duration where the template wants one: KubeStash's webhook refuses
    // such a configuration too.
    let bp = blueprint_with(|v| {
        v["spec"]["backupConfigurationTemplate"]["sessions"][0]["backupTimeout"] = json!("${timeout}")
    });
    let mut vs = vars();
    vs.push(("timeout", "every day"));
    let e = plan_with(&deployment(annotations(&[], &vs)), Some(bp), &existing()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AutoBackupError::InvalidConfiguration { .. }), "{msg}");
    assert!(
        msg.contains("BackupConfiguration demo/deployment-app: spec.sessions[0].backupTimeout"),
        "{msg}"
    );
    assert!(msg.contains("variables.kubestash.com/* annotations"), "{msg}");
}

#[test]
fn what_kubestash_admits_is_generated_and_refused_later() {
    // A bad cron: the configuration is generated and goes Invalid (its reconciler says why).
    let mut vs = vars();
    vs.retain(|(k, _)| *k != "schedule");
    vs.push(("schedule", "every day"));
    assert!(plan(&deployment(annotations(&[], &vs))).is_ok());
    // A directory escaping the storage: generated, and refused by the storage when the
    // Repository is created (kstash-storage's `repo_dir`).
    let mut vs = vars();
    vs.retain(|(k, _)| *k != "targetName");
    vs.push(("targetName", "../../etc"));
    let bc = plan(&deployment(annotations(&[], &vs))).unwrap().unwrap();
    assert_eq!(bc.spec.sessions[0].repositories[0].directory, "demo/../../etc");
}

#[test]
fn a_repository_of_another_target_is_a_collision() {
    let mut ex = existing();
    ex.push(obj(json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "app-repo", "namespace": "demo"},
        "spec": {"appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "someone-else", "namespace": "demo"},
            "storageRef": {"name": "local-storage", "namespace": "demo"}, "path": "demo/someone-else"}})));
    let e = plan_with(&deployment(annotations(&[], &vars())), Some(blueprint()), &ex).unwrap_err();
    assert!(
        e.to_string()
            .contains("Repository demo/app-repo already exists for another target"),
        "{e}"
    );
    // The target's own Repository (an update) is fine.
    let mut ex = existing();
    ex.push(obj(
        json!({"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "app-repo", "namespace": "demo"},
        "spec": {"appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "app", "namespace": "demo"},
            "storageRef": {"name": "local-storage", "namespace": "demo"}, "path": "demo/app"}}),
    ));
    assert!(plan_with(&deployment(annotations(&[], &vars())), Some(blueprint()), &ex).is_ok());
}

#[test]
fn a_template_without_backends_gets_the_namespace_default_storage() {
    let bp = blueprint_with(|v| {
        let t = &mut v["spec"]["backupConfigurationTemplate"];
        t.as_object_mut().unwrap().remove("backends");
        for s in t["sessions"].as_array_mut().unwrap() {
            s["repositories"][0].as_object_mut().unwrap().remove("backend");
        }
    });
    let bc = plan_with(
        &deployment(annotations(&[], &vars())),
        Some(bp.clone()),
        &existing(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(bc.spec.backends.len(), 1);
    assert_eq!(
        bc.spec.backends[0].storage_ref.as_ref().unwrap().name,
        "local-storage"
    );
    assert_eq!(
        bc.spec.backends[0].retention_policy.as_ref().unwrap().name,
        "keep-last"
    );
    assert_eq!(
        bc.spec.sessions[0].repositories[0].backend,
        bc.spec.backends[0].name
    );
    // Without a default storage the configuration is invalid, and says so.
    let e = plan_with(&deployment(annotations(&[], &vars())), Some(bp), &[]).unwrap_err();
    assert!(e.to_string().contains("spec.backends"), "{e}");
}

#[test]
fn the_plan_is_deterministic() {
    let d = deployment(annotations(&[], &vars()));
    assert_eq!(plan_ok(&d), plan_ok(&d));
}

#[test]
fn only_generated_configurations_for_the_same_target_count_as_generated() {
    let bc = plan_ok(&deployment(annotations(&[], &vars())));
    let me = Target::of(&deployment(json!({}))).unwrap();
    assert!(is_generated_for(&bc, &me));
    let other = Target::of(&target("apps/v1", "Deployment", "demo", "other", json!({}))).unwrap();
    assert!(!is_generated_for(&bc, &other));
    let sts = Target::of(&target("apps/v1", "StatefulSet", "demo", "app", json!({}))).unwrap();
    assert!(!is_generated_for(&bc, &sts));
    // A user's configuration (no invoker-kind label) is never ours, even for the same target.
    let mut user = bc.clone();
    user.metadata.labels = None;
    assert!(!is_generated_for(&user, &me));
    let mut user = bc;
    user.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kubestash.com/invoker-kind".into(), "BackupConfiguration".into());
    assert!(!is_generated_for(&user, &me));
}

#[test]
fn changes_wake_the_right_reconcilers() {
    use crate::dispatch::{Key, keys_for_change};
    let key = |kind: &'static str, ns: &str, name: &str| Key {
        kind,
        namespace: ns.into(),
        name: name.into(),
    };
    let bc = plan_ok(&deployment(annotations(&[], &vars())));
    let v = kstash_api::client::encode(&bc);
    assert_eq!(
        keys_for_change(&v),
        [
            key("BackupConfiguration", "demo", "deployment-app"),
            key("Deployment", "demo", "app")
        ]
    );
    // A user's configuration wakes only itself.
    let mut user = v.clone();
    user["metadata"]["labels"] = json!({});
    assert_eq!(
        keys_for_change(&user),
        [key("BackupConfiguration", "demo", "deployment-app")]
    );
    assert_eq!(
        keys_for_change(&deployment(json!({}))),
        [key("Deployment", "demo", "app")]
    );
    assert_eq!(
        keys_for_change(&target("v1", "PersistentVolumeClaim", "demo", "d", json!({}))),
        [key("PersistentVolumeClaim", "demo", "d")]
    );
    assert_eq!(
        keys_for_change(&blueprint_value()),
        [key("BackupBlueprint", "demo", "workload-blueprint")]
    );
}

#[test]
fn the_shipped_example_generates_a_valid_configuration() {
    use kstash_api::admission::admit;
    use kstash_api::manifest::{parse_documents, sort_for_apply};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut docs = Vec::new();
    for dir in ["postgres-s3", "blueprint"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            docs.extend(parse_documents(&path.display().to_string(), &text).unwrap());
        }
    }
    sort_for_apply(&mut docs);
    let mut stored: Vec<Object> = Vec::new();
    for d in &docs {
        stored.push(admit(d, &stored, None).unwrap().object);
    }
    let find = |kind: &str, name: &str| {
        stored
            .iter()
            .find(|o| o.resource_type().kind == kind && o.name() == name)
            .unwrap()
            .to_value()
    };
    let deployment = find("Deployment", "blueprint-demo");
    let bp: BackupBlueprint =
        serde_json::from_value(find("BackupBlueprint", "workload-backup-blueprint")).unwrap();
    let bc = plan_auto_backup(&deployment, |_, _| Some(bp), &stored)
        .unwrap()
        .unwrap();
    assert_eq!(bc.metadata.name.as_deref(), Some("deployment-blueprint-demo"));
    assert_eq!(bc.metadata.namespace.as_deref(), Some("demo"));
    let s = &bc.spec.sessions[0];
    assert_eq!(s.scheduler.as_ref().unwrap().schedule, "*/15 * * * *");
    assert_eq!(s.repositories[0].name, "blueprint-demo-repo");
    assert_eq!(s.repositories[0].directory, "demo/blueprint-demo");
}
