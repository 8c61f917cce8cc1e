//! `kubedump-addon` in a cluster: the manifest driver reads every listable kind through the
//! Kubernetes API (discovery) and restores into another cluster, CustomResourceDefinitions first
//! so that their objects can follow.
//!
//! The API server is kstash-testsupport's **fake** (`FakeKubeApi`): no real kube-apiserver can run
//! on this machine or in CI. It serves discovery, CRD registration and the Status errors the
//! driver relies on.

use std::collections::BTreeMap;

mod common;

use common::{connect, repo_root};
use kstash_addons::manifest::{self, ManifestFilter, RestoreOptions};
use kstash_addons::{DriverKind, ResolvedTask};
use kstash_testsupport::FakeKubeApi;
use kstash_testsupport::data::files_under;
use serde_json::json;

/// A `kubedump-addon` task with `params`.
fn task(name: &str, params: &[(&str, &str)]) -> ResolvedTask {
    ResolvedTask {
        addon: "kubedump-addon".into(),
        task: name.into(),
        function: "kubedump-backup".into(),
        driver: DriverKind::Manifest,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        required: Vec::new(),
    }
}

#[test]
fn a_cluster_is_dumped_through_discovery_and_restored_into_another() {
    let dir = tempfile::tempdir().unwrap();
    let source = FakeKubeApi::start().unwrap();
    source.install_kstash(&repo_root());
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo-a"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "demo-a"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "demo-a"}, "data": {"password": "czNjcmV0"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo-a"},
               "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "noise", "namespace": "kube-system"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    ] {
        source.put(obj);
    }
    let web = source.get("apps/v1", "Deployment", "demo-a", "web").unwrap();
    source.put(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f", "namespace": "demo-a", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": web["metadata"]["uid"], "controller": true}]}}));

    // Backup: every listable kind, kube-system and events left out.
    let (_rt1, from) = connect(&source, dir.path(), "default");
    let backup = task(
        "manifest-backup",
        &[
            ("IncludeClusterResources", "true"),
            ("ExcludeNamespaces", "kube-system"),
            ("ExcludeResources", "events,events.events.k8s.io"),
        ],
    );
    let filter = ManifestFilter::from_task(&backup).unwrap();
    let out = dir.path().join("manifest");
    let written = manifest::with_objects(&from, |api| manifest::dump_manifests(api, &filter, &out)).unwrap();
    for file in [
        "namespaces/cluster/demo-a.yaml",
        "configmaps/namespaces/demo-a/conf.yaml",
        "secrets/namespaces/demo-a/creds.yaml",
        "deployments.apps/namespaces/demo-a/web.yaml",
        "replicasets.apps/namespaces/demo-a/web-5d8f.yaml",
        "clusterroles.rbac.authorization.k8s.io/cluster/reader.yaml",
        "customresourcedefinitions.apiextensions.k8s.io/cluster/backupconfigurations.core.kubestash.com.yaml",
        "addons.addons.kubestash.com/cluster/workload-addon.yaml",
    ] {
        assert!(out.join(file).is_file(), "{file} not written ({written:?})");
    }
    assert!(!out.join("configmaps/namespaces/kube-system").exists());
    let deployment =
        std::fs::read_to_string(out.join("deployments.apps/namespaces/demo-a/web.yaml")).unwrap();
    assert!(
        !deployment.contains("readyReplicas") && !deployment.contains("resourceVersion"),
        "server-set fields are dropped:\n{deployment}"
    );

    // Restore into an empty cluster: CRDs first, then the custom objects of their kinds.
    let target = FakeKubeApi::start().unwrap();
    let (_rt2, into) = connect(&target, dir.path(), "default");
    let restore = task("manifest-restore", &[("IncludeClusterResources", "true")]);
    let options = RestoreOptions::from_task(&restore).unwrap();
    let objects = manifest::read_manifests(&out).unwrap();
    let summary = manifest::restore_objects(&into, objects, &options).unwrap();
    assert_eq!(summary.failures(), None, "{summary:#?}");
    assert!(target.get("v1", "Namespace", "", "demo-a").is_some());
    assert_eq!(
        target.get("v1", "ConfigMap", "demo-a", "conf").unwrap()["data"]["k"],
        "v"
    );
    assert_eq!(
        target.get("v1", "Secret", "demo-a", "creds").unwrap()["data"]["password"],
        "czNjcmV0"
    );
    assert_eq!(
        target.get("apps/v1", "Deployment", "demo-a", "web").unwrap()["spec"]["replicas"],
        2
    );
    assert!(
        target
            .get("apps/v1", "ReplicaSet", "demo-a", "web-5d8f")
            .is_none(),
        "a controller-owned object is left to its controller"
    );
    assert!(
        target
            .get("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader")
            .is_some()
    );
    assert!(
        target
            .get("addons.kubestash.com/v1alpha1", "Addon", "", "workload-addon")
            .is_some(),
        "objects of a restored CRD's kind are restored too"
    );

    // Existing objects are kept unless OverrideResources.
    target.put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "demo-a"}, "data": {"k": "changed"}}));
    let objects = manifest::read_manifests(&out).unwrap();
    manifest::restore_objects(&into, objects, &options).unwrap();
    assert_eq!(
        target.get("v1", "ConfigMap", "demo-a", "conf").unwrap()["data"]["k"],
        "changed"
    );
    let overriding = RestoreOptions::from_task(&task(
        "manifest-restore",
        &[("IncludeResources", "configmaps"), ("OverrideResources", "true")],
    ))
    .unwrap();
    let objects = manifest::read_manifests(&out).unwrap();
    let summary = manifest::restore_objects(&into, objects, &overriding).unwrap();
    assert_eq!(summary.failures(), None, "{summary:#?}");
    assert_eq!(
        target.get("v1", "ConfigMap", "demo-a", "conf").unwrap()["data"]["k"],
        "v"
    );
}

/// Put `objects` into `api`.
fn put_all(api: &FakeKubeApi, objects: Vec<serde_json::Value>) {
    for o in objects {
        api.put(o);
    }
}

#[test]
fn a_workload_is_backed_up_with_what_its_pods_reference_and_an_application_with_its_dependants() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeKubeApi::start().unwrap();
    put_all(
        &api,
        vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web-sa", "namespace": "demo"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-conf", "namespace": "demo"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-env", "namespace": "demo"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": "demo"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "demo"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "web-data", "namespace": "demo"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "web-role", "namespace": "demo"}, "rules": []}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-rb", "namespace": "demo"},
                   "subjects": [{"kind": "ServiceAccount", "name": "web-sa", "namespace": "demo"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-role"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "web-reader"}, "rules": []}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "web-crb"},
                   "subjects": [{"kind": "ServiceAccount", "name": "web-sa", "namespace": "demo"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "web-reader"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
                   "spec": {"template": {"spec": {
                       "serviceAccountName": "web-sa",
                       "volumes": [{"name": "c", "configMap": {"name": "web-conf"}},
                                   {"name": "t", "secret": {"secretName": "web-tls"}},
                                   {"name": "d", "persistentVolumeClaim": {"claimName": "web-data"}},
                                   {"name": "gone", "secret": {"secretName": "does-not-exist"}}],
                       "containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "web-env"}}]}]}}}}),
        ],
    );
    let web = api.get("apps/v1", "Deployment", "demo", "web").unwrap();
    api.put(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f", "namespace": "demo", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": web["metadata"]["uid"], "controller": true}]}}));
    let rs = api.get("apps/v1", "ReplicaSet", "demo", "web-5d8f").unwrap();
    api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5d8f-x1", "namespace": "demo", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": rs["metadata"]["uid"], "controller": true}]}}));
    let (_rt, res) = connect(&api, dir.path(), "default");
    let target = kstash_api::common::TypedObjectReference {
        api_group: Some("apps".into()),
        kind: Some("Deployment".into()),
        namespace: Some("demo".into()),
        name: "web".into(),
    };

    // workload-addon's manifest-backup: the workload and its references, RBAC on request.
    let mut workload = task("manifest-backup", &[]);
    workload.function = "manifest-backup".into();
    let (scratch, _) = manifest::dump_task(&res, &workload, Some(&target), "demo").unwrap();
    assert_eq!(
        files_under(&scratch.manifest),
        [
            "configmaps/namespaces/demo/web-conf.yaml",
            "configmaps/namespaces/demo/web-env.yaml",
            "deployments.apps/namespaces/demo/web.yaml",
            "persistentvolumeclaims/namespaces/demo/web-data.yaml",
            "secrets/namespaces/demo/web-tls.yaml",
            "serviceaccounts/namespaces/demo/web-sa.yaml",
        ]
    );
    workload
        .params
        .insert("includeRBACResources".into(), "true".into());
    let (scratch, _) = manifest::dump_task(&res, &workload, Some(&target), "demo").unwrap();
    let files = files_under(&scratch.manifest);
    for rbac in [
        "rolebindings.rbac.authorization.k8s.io/namespaces/demo/web-rb.yaml",
        "roles.rbac.authorization.k8s.io/namespaces/demo/web-role.yaml",
        "clusterrolebindings.rbac.authorization.k8s.io/cluster/web-crb.yaml",
        "clusterroles.rbac.authorization.k8s.io/cluster/web-reader.yaml",
    ] {
        assert!(files.iter().any(|f| f == rbac), "{rbac} missing: {files:#?}");
    }
    assert_eq!(files.len(), 10, "{files:#?}");

    // kubedump-addon with a target: the application and what it owns, nested as KubeStash does.
    let app = task("manifest-backup", &[("includeDependants", "true")]);
    let (scratch, _) = manifest::dump_task(&res, &app, Some(&target), "demo").unwrap();
    assert_eq!(
        files_under(&scratch.manifest),
        [
            "ReplicaSet/web-5d8f/Pod/web-5d8f-x1/web-5d8f-x1.yaml",
            "ReplicaSet/web-5d8f/web-5d8f.yaml",
            "web.yaml",
        ]
    );
    let missing = kstash_api::common::TypedObjectReference {
        name: "nope".into(),
        ..target
    };
    let err = manifest::dump_task(&res, &app, Some(&missing), "demo")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("target Deployment demo/nope does not exist"),
        "{err}"
    );
}
