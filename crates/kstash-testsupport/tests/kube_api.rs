//! The fake Kubernetes API server driven by the real kube-rs client (what the operator uses), so
//! that the semantics the operator relies on are checked end to end over HTTP.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kstash_testsupport::FakeKubeApi;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope, oneshot};
use kube::runtime::watcher;
use kube::{Client, Config, Error};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client(api: &FakeKubeApi) -> Client {
    Client::try_from(Config::new(api.url().parse().unwrap())).unwrap()
}

fn api_error(result: Result<impl std::fmt::Debug, Error>) -> (u16, String, String) {
    match result {
        Err(Error::Api(status)) => (status.code, status.reason.clone(), status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn configmap(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap()
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "backupsessions.core.kubestash.com"},
        "spec": {"group": "core.kubestash.com", "scope": "Namespaced",
            "names": {"plural": "backupsessions", "singular": "backupsession", "kind": "BackupSession",
                "listKind": "BackupSessionList", "shortNames": ["bs"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn session_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("core.kubestash.com", "v1alpha1", "BackupSession");
    ApiResource::from_gvk_with_plural(&gvk, "backupsessions")
}

fn session(name: &str) -> DynamicObject {
    DynamicObject::new(name, &session_resource()).data(json!({"spec": {"invoker": "daily"}}))
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items.iter().map(|o| o.meta().name.clone().unwrap()).collect()
}

#[tokio::test]
async fn create_get_list_with_selectors() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "ns1");
    let pp = PostParams::default();
    cms.create(&pp, &configmap("a", json!({"app": "x", "tier": "db"})))
        .await?;
    cms.create(&pp, &configmap("b", json!({"app": "y"}))).await?;
    cms.create(&pp, &configmap("c", json!({}))).await?;
    let other: Api<ConfigMap> = Api::namespaced(client(&api), "ns2");
    other.create(&pp, &configmap("d", json!({"app": "x"}))).await?;

    let got = cms.get("a").await?;
    let meta = &got.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.namespace.as_deref(), Some("ns1"));
    assert_eq!(got.data.unwrap()["k"], "v");

    for (selector, expected) in [
        ("app=x", vec!["a"]),
        ("app==y", vec!["b"]),
        ("app!=x", vec!["b", "c"]),
        ("app in (x, y)", vec!["a", "b"]),
        ("app notin (x)", vec!["b", "c"]),
        ("tier", vec!["a"]),
        ("!tier", vec!["b", "c"]),
        ("app=x,tier=db", vec!["a"]),
    ] {
        let list = cms.list(&ListParams::default().labels(selector)).await?;
        assert_eq!(names(&list.items), expected, "selector {selector}");
        assert!(list.metadata.resource_version.is_some());
    }
    let by_name = cms.list(&ListParams::default().fields("metadata.name=b")).await?;
    assert_eq!(names(&by_name.items), ["b"]);
    let all: Api<ConfigMap> = Api::all(client(&api));
    assert_eq!(
        names(&all.list(&ListParams::default().labels("app=x")).await?.items),
        ["a", "d"]
    );
    let in_ns2 = all
        .list(&ListParams::default().fields("metadata.namespace=ns2"))
        .await?;
    assert_eq!(names(&in_ns2.items), ["d"]);

    let mut generated = configmap("", json!({}));
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let created = cms.create(&pp, &generated).await?;
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(api.list("v1", "ConfigMap", Some("ns1")).len(), 4);
    assert_eq!(api.list("v1", "ConfigMap", None).len(), 5);
    Ok(())
}

#[tokio::test]
async fn duplicate_create_stale_replace_and_namespace_mismatch() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    let pp = PostParams::default();
    let first = cms.create(&pp, &configmap("a", json!({}))).await?;
    let (code, reason, _) = api_error(cms.create(&pp, &configmap("a", json!({}))).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut updated = first.clone();
    updated.data = Some([("k".to_string(), "new".to_string())].into());
    let second = cms.replace("a", &pp, &updated).await?;
    assert_ne!(second.metadata.resource_version, first.metadata.resource_version);
    // Replacing with the old resourceVersion again is a conflict.
    let (code, reason, message) = api_error(cms.replace("a", &pp, &updated).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    // Without a resourceVersion the replace is unconditional.
    updated.metadata.resource_version = None;
    cms.replace("a", &pp, &updated).await?;
    let (code, reason, _) = api_error(
        cms.replace("missing", &pp, &configmap("missing", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let mut elsewhere = configmap("b", json!({}));
    elsewhere.metadata.namespace = Some("other".into());
    let (code, reason, _) = api_error(cms.create(&pp, &elsewhere).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    // Kind in the body must match the path.
    let response = kstash_testsupport::http::post(
        &format!("{}/api/v1/namespaces/default/secrets", api.url()),
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )?;
    assert_eq!(response.status, 400, "{}", response.text());
    Ok(())
}

#[tokio::test]
async fn status_subresource_isolation_and_generation() -> TestResult {
    let api = FakeKubeApi::start()?;
    let jobs: Api<Job> = Api::namespaced(client(&api), "default");
    let pp = PostParams::default();
    let mut with_status = job("j");
    with_status.status = Some(serde_json::from_value(json!({"succeeded": 5}))?);
    let created = jobs.create(&pp, &with_status).await?;
    assert!(created.status.is_none(), "status is dropped on create");

    // PUT /status changes only status, even if the body changes the spec.
    let mut body = created.clone();
    body.status = Some(serde_json::from_value(json!({"active": 1}))?);
    body.spec.as_mut().unwrap().parallelism = Some(7);
    let after_status = jobs.replace_status("j", &pp, &body).await?;
    assert_eq!(after_status.status.as_ref().unwrap().active, Some(1));
    assert_eq!(after_status.spec.as_ref().unwrap().parallelism, None);
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "a status change keeps generation"
    );

    // PUT on the main resource keeps the stored status and bumps generation for a spec change.
    let mut main = after_status.clone();
    main.status = Some(serde_json::from_value(json!({"failed": 3}))?);
    main.spec.as_mut().unwrap().parallelism = Some(2);
    let after_main = jobs.replace("j", &pp, &main).await?;
    assert_eq!(after_main.status.as_ref().unwrap().active, Some(1));
    assert_eq!(after_main.status.as_ref().unwrap().failed, None);
    assert_eq!(after_main.spec.as_ref().unwrap().parallelism, Some(2));
    assert_eq!(after_main.metadata.generation, Some(2));

    // Labels-only change: no generation bump. Stale status write: conflict.
    let mut labelled = after_main.clone();
    labelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    assert_eq!(
        jobs.replace("j", &pp, &labelled).await?.metadata.generation,
        Some(2)
    );
    let (code, reason, _) = api_error(jobs.replace_status("j", &pp, &after_status).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // Merge patch on /status touches only status; on the main resource it cannot change status.
    let patched = jobs
        .patch_status(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"succeeded": 1}})),
        )
        .await?;
    assert_eq!(patched.status.as_ref().unwrap().succeeded, Some(1));
    let main_patch =
        Patch::Merge(json!({"status": {"succeeded": 9}, "metadata": {"annotations": {"x": "y"}}}));
    let patched = jobs.patch("j", &PatchParams::default(), &main_patch).await?;
    assert_eq!(patched.status.as_ref().unwrap().succeeded, Some(1));
    assert_eq!(patched.metadata.annotations.unwrap()["x"], "y");

    // Kinds without a status subresource have no /status.
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    cms.create(&pp, &configmap("c", json!({}))).await?;
    let (code, _, _) = api_error(cms.get_status("c").await);
    assert_eq!(code, 404);
    Ok(())
}

#[tokio::test]
async fn server_side_apply() -> TestResult {
    let api = FakeKubeApi::start()?;
    let jobs: Api<Job> = Api::namespaced(client(&api), "default");
    let mut desired = serde_json::to_value(job("ssa"))?;
    desired["apiVersion"] = json!("batch/v1");
    desired["kind"] = json!("Job");
    desired["metadata"]["labels"] = json!({"a": "1"});
    let ssa = PatchParams::apply("kstash").force();
    let created = jobs.patch("ssa", &ssa, &Patch::Apply(&desired)).await?;
    let managers = created.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(managers[0].manager.as_deref(), Some("kstash"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));
    assert!(api.requests().iter().any(|r| {
        r.starts_with("PATCH /apis/batch/v1/namespaces/default/jobs/ssa?")
            && r.contains("fieldManager=kstash")
    }));

    // Re-applying the same object is a no-op; a change merges into the stored object.
    let again = jobs.patch("ssa", &ssa, &Patch::Apply(&desired)).await?;
    assert_eq!(again.metadata.resource_version, created.metadata.resource_version);
    jobs.patch(
        "ssa",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"keep": "me"}}})),
    )
    .await?;
    desired["metadata"]["labels"] = json!({"a": "2"});
    desired["spec"]["parallelism"] = json!(3);
    let updated = jobs.patch("ssa", &ssa, &Patch::Apply(&desired)).await?;
    assert_eq!(updated.metadata.labels.as_ref().unwrap()["a"], "2");
    assert_eq!(updated.metadata.annotations.as_ref().unwrap()["keep"], "me");
    assert_eq!(updated.spec.as_ref().unwrap().parallelism, Some(3));
    assert_eq!(updated.metadata.generation, Some(2));

    // SSA on /status only touches status.
    let status = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ssa"},
        "spec": {"parallelism": 9}, "status": {"active": 2}});
    let after = jobs.patch_status("ssa", &ssa, &Patch::Apply(&status)).await?;
    assert_eq!(after.status.unwrap().active, Some(2));
    assert_eq!(after.spec.unwrap().parallelism, Some(3));

    let (code, reason, message) = api_error(
        jobs.patch("ssa", &PatchParams::default(), &Patch::Apply(&desired))
            .await,
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(message.contains("fieldManager"), "{message}");
    Ok(())
}

#[tokio::test]
async fn merge_and_json_patch() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    cms.create(&PostParams::default(), &configmap("p", json!({"a": "1"})))
        .await?;
    let pp = PatchParams::default();
    let merged = cms
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": null, "b": "2"}}, "data": {"x": "y"}})),
        )
        .await?;
    assert_eq!(
        merged.metadata.labels.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );
    assert_eq!(merged.data.as_ref().unwrap().len(), 2);

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/x", "value": "y"},
        {"op": "replace", "path": "/data/x", "value": "z"},
        {"op": "remove", "path": "/data/k"},
        {"op": "add", "path": "/metadata/annotations", "value": {"n": "1"}}
    ]))?;
    let patched = cms.patch("p", &pp, &Patch::<()>::Json(ops)).await?;
    assert_eq!(patched.data.unwrap(), [("x".to_string(), "z".to_string())].into());
    assert_eq!(patched.metadata.annotations.unwrap()["n"], "1");

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/x", "value": "nope"}]))?;
    let (code, _, _) = api_error(cms.patch("p", &pp, &Patch::<()>::Json(failing)).await);
    assert_eq!(code, 422);
    // A patch carrying a stale resourceVersion is a conflict.
    let stale = Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"q": "r"}}));
    assert_eq!(api_error(cms.patch("p", &pp, &stale).await).0, 409);
    assert_eq!(
        api_error(cms.patch("absent", &pp, &Patch::Merge(json!({}))).await).0,
        404
    );
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    let mut cm = configmap("f", json!({}));
    cm.metadata.finalizers = Some(vec!["kstash.dev/cleanup".into()]);
    cms.create(&PostParams::default(), &cm).await?;

    let pending = cms.delete("f", &DeleteParams::default()).await?;
    let pending = pending.left().expect("the object, still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(0));
    assert!(cms.get("f").await?.metadata.deletion_timestamp.is_some());

    let add = Patch::Merge(json!({"metadata": {"finalizers": ["kstash.dev/cleanup", "other"]}}));
    let (code, reason, message) = api_error(cms.patch("f", &PatchParams::default(), &add).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("metadata.finalizers"), "{message}");

    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    cms.patch("f", &PatchParams::default(), &clear).await?;
    assert_eq!(api_error(cms.get("f").await).0, 404);

    cms.create(&PostParams::default(), &configmap("plain", json!({})))
        .await?;
    assert!(cms.delete("plain", &DeleteParams::default()).await?.is_right());
    assert_eq!(
        api_error(cms.delete("plain", &DeleteParams::default()).await).0,
        404
    );
    Ok(())
}

#[tokio::test]
async fn owner_reference_garbage_collection_and_orphan() -> TestResult {
    let api = FakeKubeApi::start()?;
    api.install_crds(&[crd()]);
    let client = client(&api);
    let sessions: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &session_resource());
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PostParams::default();

    for (owner_name, job_name) in [("s1", "j1"), ("s2", "j2")] {
        let owner = sessions.create(&pp, &session(owner_name)).await?;
        let owner_ref = json!([{"apiVersion": "core.kubestash.com/v1alpha1", "kind": "BackupSession",
            "name": owner_name, "uid": owner.metadata.uid, "controller": true}]);
        let mut j = job(job_name);
        j.metadata.owner_references = Some(serde_json::from_value(owner_ref.clone())?);
        jobs.create(&pp, &j).await?;
        let mut held = configmap(&format!("{job_name}-cm"), json!({}));
        held.metadata.owner_references = Some(serde_json::from_value(owner_ref)?);
        held.metadata.finalizers = Some(vec!["x/y".into()]);
        cms.create(&pp, &held).await?;
    }

    sessions.delete("s1", &DeleteParams::background()).await?;
    assert_eq!(api_error(jobs.get("j1").await).0, 404, "owned Job collected");
    let held = cms.get("j1-cm").await?;
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "dependent with finalizer marked"
    );

    sessions.delete("s2", &DeleteParams::orphan()).await?;
    let orphan = jobs.get("j2").await?;
    assert!(
        orphan.metadata.owner_references.is_none(),
        "owner reference stripped"
    );
    assert!(cms.get("j2-cm").await?.metadata.deletion_timestamp.is_none());
    assert!(
        api.get("core.kubestash.com/v1alpha1", "BackupSession", "default", "s2")
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn name_and_label_validation() -> TestResult {
    let api = FakeKubeApi::start()?;
    let jobs: Api<Job> = Api::namespaced(client(&api), "default");
    let pp = PostParams::default();
    let long = "j".repeat(64);
    let (code, reason, message) = api_error(jobs.create(&pp, &job(&long)).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.contains("metadata.name") && message.contains("63"),
        "{message}"
    );
    jobs.create(&pp, &job(&"j".repeat(63))).await?;
    assert_eq!(api_error(jobs.create(&pp, &job("Upper")).await).0, 422);

    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    for labels in [
        json!({"a": "x".repeat(64)}),
        json!({"a": "-bad"}),
        json!({"bad key!": "v"}),
    ] {
        let (code, reason, message) = api_error(cms.create(&pp, &configmap("l", labels.clone())).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{labels}");
        assert!(message.contains("metadata.labels"), "{message}");
    }
    cms.create(
        &pp,
        &configmap("l", json!({"kstash.dev/part-of": "a.b_c-1", "empty": ""})),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn custom_resources_after_crd_install() -> TestResult {
    let api = FakeKubeApi::start()?;
    let sessions: Api<DynamicObject> = Api::namespaced_with(client(&api), "default", &session_resource());
    let (code, reason, _) = api_error(sessions.list(&ListParams::default()).await);
    assert_eq!(
        (code, reason.as_str()),
        (404, "NotFound"),
        "unknown resource before the CRD"
    );

    // Install the CRD through the API, like the operator's installer would.
    let crds: Api<DynamicObject> = Api::all_with(
        client(&api),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let installed = crds
        .create(&PostParams::default(), &serde_json::from_value(crd())?)
        .await?;
    let established = installed.data["status"]["conditions"].as_array().unwrap();
    assert!(
        established
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );

    let mut obj = session("daily-1");
    obj.data["status"] = json!({"phase": "Running"});
    let created = sessions.create(&PostParams::default(), &obj).await?;
    assert!(
        created.data.get("status").is_none(),
        "status subresource: status dropped on create"
    );
    let got = sessions.get("daily-1").await?;
    assert_eq!(got.data["spec"]["invoker"], "daily");
    let patch = Patch::Merge(json!({"status": {"phase": "Succeeded"}}));
    sessions
        .patch_status("daily-1", &PatchParams::default(), &patch)
        .await?;
    let stored = api
        .get(
            "core.kubestash.com/v1alpha1",
            "BackupSession",
            "default",
            "daily-1",
        )
        .unwrap();
    assert_eq!(stored["status"]["phase"], "Succeeded");
    assert_eq!(stored["metadata"]["generation"], 1);

    let other = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("core.kubestash.com", "v1alpha1", "RestoreSession"),
        "restoresessions",
    );
    let unknown: Api<DynamicObject> = Api::namespaced_with(client(&api), "default", &other);
    let (code, reason, _) = api_error(unknown.get("x").await);
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    // Deleting the CRD removes the kind and its objects.
    crds.delete("backupsessions.core.kubestash.com", &DeleteParams::default())
        .await?;
    assert_eq!(api_error(sessions.get("daily-1").await).0, 404);
    assert!(
        api.list("core.kubestash.com/v1alpha1", "BackupSession", None)
            .is_empty()
    );
    Ok(())
}

async fn next_event<S, T>(stream: &mut S) -> T
where
    S: futures::Stream<Item = Result<T, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a watch event in time")
        .expect("stream still open")
        .expect("no watcher error")
}

#[tokio::test]
async fn runtime_watcher_sees_changes() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    cms.create(&PostParams::default(), &configmap("before", json!({"w": "1"})))
        .await?;
    let mut stream = watcher(cms.clone(), watcher::Config::default().labels("w=1")).boxed();
    // Initial list.
    assert!(matches!(next_event(&mut stream).await, watcher::Event::Init));
    match next_event(&mut stream).await {
        watcher::Event::InitApply(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("before")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next_event(&mut stream).await, watcher::Event::InitDone));

    cms.create(&PostParams::default(), &configmap("after", json!({"w": "1"})))
        .await?;
    cms.create(&PostParams::default(), &configmap("unwatched", json!({"w": "2"})))
        .await?;
    api.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "after", "namespace": "default", "labels": {"w": "1"}}, "data": {"by": "put"}}));
    cms.delete("before", &DeleteParams::default()).await?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next_event(&mut stream).await {
            watcher::Event::Apply(cm) => seen.push(format!(
                "apply {} {:?}",
                cm.metadata.name.unwrap(),
                cm.data.unwrap_or_default().get("by")
            )),
            watcher::Event::Delete(cm) => seen.push(format!("delete {}", cm.metadata.name.unwrap())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["apply after None", "apply after Some(\"put\")", "delete before"]
    );
    Ok(())
}

#[tokio::test]
async fn raw_watch_from_resource_version_with_selector_transitions() -> TestResult {
    let api = FakeKubeApi::start()?;
    let cms: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("m", json!({"w": "1"})))
        .await?;
    let rv = created.metadata.resource_version.unwrap();
    api.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "m", "namespace": "default", "labels": {"w": "0"}}}));
    api.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "m", "namespace": "default", "labels": {"w": "1"}}}));
    api.remove("v1", "ConfigMap", "default", "m");
    let wp = WatchParams::default().labels("w=1").timeout(2);
    let events: Vec<_> = cms.watch(&wp, &rv).await?.try_collect().await?;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        })
        .collect();
    // Leaving the selector reads as DELETED, re-entering as ADDED; then the real delete.
    // WatchParams asks for bookmarks by default: one comes when the watch times out.
    assert_eq!(kinds, ["DELETED", "ADDED", "DELETED", "BOOKMARK"]);
    assert!(api.requests().iter().any(|r| r.contains("watch=true")));
    Ok(())
}

#[tokio::test]
async fn unavailable_server_fails_requests() -> TestResult {
    let api = FakeKubeApi::start()?;
    // kube retries 503 (up to 15 times, backing off for minutes) unless default_retry is off.
    let mut config = Config::new(api.url().parse()?);
    config.default_retry = false;
    let cms: Api<ConfigMap> = Api::namespaced(Client::try_from(config)?, "default");
    api.set_unavailable(true);
    let (code, reason, _) = api_error(cms.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"));

    // With the default client the request is retried and succeeds once the API is back.
    let retrying: Api<ConfigMap> = Api::namespaced(client(&api), "default");
    let list = tokio::spawn(async move { retrying.list(&ListParams::default()).await });
    let attempts = || {
        api.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/namespaces/default/configmaps"))
            .count()
    };
    while attempts() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    api.set_unavailable(false);
    assert!(list.await?.is_ok());
    cms.list(&ListParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn discovery_finds_crd_kind_via_kubeconfig() -> TestResult {
    let api = FakeKubeApi::start()?;
    api.install_crds(&[crd()]);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, "team-a")?;
    let config =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(&path)?, &KubeConfigOptions::default()).await?;
    assert_eq!(config.default_namespace, "team-a");
    let client = Client::try_from(config)?;
    assert_eq!(client.apiserver_version().await?.major, "1");

    let gvk = GroupVersionKind::gvk("core.kubestash.com", "v1alpha1", "BackupSession");
    for discovery in [
        Discovery::new(client.clone()).run().await?,
        Discovery::new(client.clone()).run_aggregated().await?,
    ] {
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("BackupSession discovered");
        assert_eq!(ar.plural, "backupsessions");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(discovery.has_group("batch"));
    }
    let (ar, caps) = oneshot::pinned_kind(&client, &gvk).await?;
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("backupsessions", Scope::Namespaced)
    );
    let (jobs, _) = oneshot::pinned_kind(&client, &GroupVersionKind::gvk("batch", "v1", "Job")).await?;
    assert_eq!(jobs.plural, "jobs");
    // The default namespace from the kubeconfig is used.
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    cms.create(&PostParams::default(), &configmap("in-team-a", json!({})))
        .await?;
    assert!(api.get("v1", "ConfigMap", "team-a", "in-team-a").is_some());
    Ok(())
}
