//! Pure builders of the objects the operator owns: executor Jobs from an Addon task and its
//! Function (one per replica or node when the task is not a singleton), trigger CronJobs
//! `trigger-<bc>-<session>`, and the per-namespace executor ServiceAccount and RoleBindings. No
//! I/O: the platform reads the inputs and applies the outputs, so every rule here is unit tested.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kstash_api::addons::{Function, Task};
use kstash_api::common::{AddonInfo, ContainerRuntimeSettings, TaskReference};
use kstash_api::core::SchedulerSpec;
use kstash_api::storage::BackupStorage;
use kstash_api::verification::BackupVerifierSpec;
use kstash_controller::platform::JobSpec;
use serde_json::{Map, Value, json};

use crate::error::{KubeError, Result};

/// Label on every executor Job: the executor (JobSpec) name it belongs to, for listing a group.
pub const LABEL_EXECUTOR: &str = "kstash.dev/executor";
/// Label naming the component an executor Job writes.
pub const LABEL_COMPONENT: &str = "kstash.dev/component";
/// KubeStash's managed-by label.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value on everything the operator creates.
pub const MANAGED_BY: &str = "kubestash.com";
/// Env var telling `kstash` it runs in a Kubernetes pod (resources through the API).
pub const RUNTIME_ENV: &str = "KSTASH_RUNTIME";
/// Env var holding the executor pod's namespace (downward API), where the pods named by
/// repository locks are looked up ([`crate::lock_holders`]).
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";
/// The executor ServiceAccount created in every namespace that runs executors.
pub const EXECUTOR_SERVICE_ACCOUNT: &str = "kstash-executor";
/// The ServiceAccount of trigger CronJob pods: it may only read BackupConfigurations and create
/// BackupSessions (`kubestash-cron-job`).
pub const TRIGGER_SERVICE_ACCOUNT: &str = "kstash-trigger";
/// ClusterRole reading the cluster-scoped Addon catalog, bound per executor ServiceAccount.
pub const CATALOG_READER_ROLE: &str = "kstash-catalog-reader";
/// Maximum length of a CronJob name (the API server appends 11 characters to its Jobs' names).
pub const CRONJOB_NAME_MAX: usize = 52;
/// Maximum length of a Job name (it becomes a label value on its pods).
pub const JOB_NAME_MAX: usize = 63;

/// KubeStash's naming rule for generated objects, with a length limit: names longer than `max`
/// keep their head and tail and drop the middle, so generated names stay unique and readable.
pub fn shorten(full: &str, max: usize) -> String {
    if full.len() <= max {
        return full.to_string();
    }
    let head = max / 2 + max % 2;
    let tail = max - head;
    let mut out = format!("{}{}", &full[..head], &full[full.len() - tail..]);
    // A cut may leave a dash at either end; names must start and end alphanumeric.
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The trigger CronJob name of a BackupConfiguration session.
pub fn trigger_name(bc: &str, session: &str) -> String {
    shorten(&format!("trigger-{bc}-{session}"), CRONJOB_NAME_MAX)
}

/// The CronJob of a repository's verifier: `trigger-verifier-<bc>-<repository>` (KubeStash's
/// `trigger-verifier` prefix).
pub fn trigger_verifier_name(bc: &str, repository: &str) -> String {
    shorten(&format!("trigger-verifier-{bc}-{repository}"), CRONJOB_NAME_MAX)
}

/// Label telling a verifier's trigger CronJob (`verifier`) from a backup's.
pub const LABEL_SCHEDULE: &str = "kstash.dev/schedule";

/// Substitute `${name}`, `${name:=default}` and `${name:-default}` from `vars` (KubeStash's
/// Function templating). An unknown name without a default is an error naming it.
pub fn substitute(template: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed ${{ in {template:?}"));
        };
        let expr = &after[..end];
        let (name, default) = match expr.find(":=").or_else(|| expr.find(":-")) {
            Some(i) => (&expr[..i], Some(&expr[i + 2..])),
            None => (expr, None),
        };
        match (vars.get(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("variable {name:?} has no value and no default")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One executor Job to create: which replica or node it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The component the Job writes (`dump`, `dump-pod-<n>`, `dump-<node>`).
    pub component: String,
    /// Suffix of the Job name (empty for a singleton).
    pub suffix: String,
    /// Pin the pod to this node (DaemonSet targets).
    pub node_name: Option<String>,
    /// StatefulSet ordinal, for its per-replica PVCs.
    pub ordinal: Option<u32>,
}

/// The replicas a non-singleton task runs for, from the target object: a StatefulSet's ordinals,
/// a DaemonSet's nodes (from `status`-independent input: the node names the caller found), or one
/// for anything else. Singletons always run once, as component `dump`.
pub fn replicas(singleton: bool, target: Option<&Value>, daemon_nodes: &[String]) -> Vec<Replica> {
    let one = || {
        vec![Replica {
            component: "dump".into(),
            suffix: String::new(),
            node_name: None,
            ordinal: None,
        }]
    };
    if singleton {
        return one();
    }
    match target.and_then(|t| t.pointer("/kind")).and_then(Value::as_str) {
        Some("StatefulSet") => {
            let n = target
                .and_then(|t| t.pointer("/spec/replicas"))
                .and_then(Value::as_u64)
                .unwrap_or(1) as u32;
            (0..n)
                .map(|i| Replica {
                    component: format!("dump-pod-{i}"),
                    suffix: format!("pod-{i}"),
                    node_name: None,
                    ordinal: Some(i),
                })
                .collect()
        }
        Some("DaemonSet") => daemon_nodes
            .iter()
            .map(|node| Replica {
                component: format!("dump-{node}"),
                suffix: node.clone(),
                node_name: Some(node.clone()),
                ordinal: None,
            })
            .collect(),
        _ => one(),
    }
}

/// The volumes and mounts of the target's pod template that hold the `paths` to back up (or
/// restore into): every mount whose path covers one of them. For a StatefulSet replica its
/// volumeClaimTemplates become that replica's PVCs (`<template>-<sts>-<ordinal>`); a PVC target is
/// mounted at `/kubestash-data` unless `paths` say otherwise.
pub fn target_volumes(
    target: &Value,
    paths: &[String],
    ordinal: Option<u32>,
) -> std::result::Result<(Vec<Value>, Vec<Value>), String> {
    let kind = target.pointer("/kind").and_then(Value::as_str).unwrap_or("");
    let name = target
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "PersistentVolumeClaim" {
        let mount = paths
            .first()
            .cloned()
            .unwrap_or_else(|| "/kubestash-data".to_string());
        return Ok((
            vec![json!({"name": "target", "persistentVolumeClaim": {"claimName": name}})],
            vec![json!({"name": "target", "mountPath": mount})],
        ));
    }
    if target.pointer("/spec/template/spec").is_none() {
        return Err(format!("{kind} {name} has no pod template (spec.template.spec)"));
    }
    let pod = &target["spec"]["template"]["spec"];
    let volumes = pod_volumes(target, ordinal);
    let covers = |mount: &str| {
        paths.iter().any(|p| {
            let m = mount.trim_end_matches('/');
            p == m
                || p.starts_with(&format!("{m}/"))
                || m.starts_with(&format!("{}/", p.trim_end_matches('/')))
        })
    };
    let mut out_volumes: Vec<Value> = Vec::new();
    let mut out_mounts: Vec<Value> = Vec::new();
    let containers = pod.pointer("/containers").and_then(Value::as_array);
    for c in containers.into_iter().flatten() {
        for m in c
            .pointer("/volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mount_path = m.pointer("/mountPath").and_then(Value::as_str).unwrap_or("");
            let vname = m.pointer("/name").and_then(Value::as_str).unwrap_or("");
            if !covers(mount_path) || out_mounts.iter().any(|x| x["mountPath"] == mount_path) {
                continue;
            }
            let volume = volumes
                .get(vname)
                .ok_or_else(|| format!("{kind} {name}: volumeMount {vname} has no volume"))?;
            if volume.get("emptyDir").is_some() {
                return Err(format!(
                    "{kind} {name}: path {mount_path} is on emptyDir volume {vname}, which only its own pod can see; back it up with a PVC or hostPath volume"
                ));
            }
            if !out_volumes.iter().any(|v| v["name"] == vname) {
                out_volumes.push(volume.clone());
            }
            let mut mount = json!({"name": vname, "mountPath": mount_path});
            if let Some(sub) = m.pointer("/subPath") {
                mount["subPath"] = sub.clone();
            }
            out_mounts.push(mount);
        }
    }
    Ok((out_volumes, out_mounts))
}

/// The volumes of a workload's pod template by name; for a StatefulSet replica its
/// volumeClaimTemplates become that replica's PVCs (`<template>-<sts>-<ordinal>`).
pub fn pod_volumes(target: &Value, ordinal: Option<u32>) -> BTreeMap<String, Value> {
    let name = target
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut volumes: BTreeMap<String, Value> = BTreeMap::new();
    let listed = target
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array);
    for v in listed.into_iter().flatten() {
        if let Some(n) = v.pointer("/name").and_then(Value::as_str) {
            volumes.insert(n.to_string(), v.clone());
        }
    }
    let templates = target
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array);
    for t in templates.into_iter().flatten() {
        if let Some(n) = t.pointer("/metadata/name").and_then(Value::as_str) {
            let claim = format!("{n}-{name}-{}", ordinal.unwrap_or(0));
            volumes.insert(
                n.to_string(),
                json!({"name": n, "persistentVolumeClaim": {"claimName": claim}}),
            );
        }
    }
    volumes
}

/// Everything an executor Job is built from.
#[derive(Debug, Clone)]
pub struct ExecutorInputs<'a> {
    /// What the controller asked for (name, namespace, labels, deadline).
    pub job: &'a JobSpec,
    /// Owner reference to the session the Job serves (BackupSession or RestoreSession).
    pub owner: Value,
    /// The addon of the session (`spec.sessions[].addon` or `RestoreSession.spec.addon`).
    pub addon: &'a AddonInfo,
    /// The task reference in the session and its definition in the Addon.
    pub task_ref: &'a TaskReference,
    pub task: &'a Task,
    pub function: &'a Function,
    /// Template variables: the session's (`namespace`, `backupSession`, `restoreSession`,
    /// `snapshot`, …) and the task's params.
    pub vars: BTreeMap<String, String>,
    /// The target object (Deployment, StatefulSet, DaemonSet, PVC, AppBinding), when found.
    pub target: Option<&'a Value>,
    /// Nodes of a DaemonSet target's pods.
    pub daemon_nodes: Vec<String>,
    /// Storages of the session's repositories; local ones are mounted into the Job.
    pub storages: Vec<&'a BackupStorage>,
    /// The executor ServiceAccount.
    pub service_account: String,
    pub now: Timestamp,
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn push_all(into: &mut Vec<Value>, from: impl IntoIterator<Item = Value>) {
    for v in from {
        let name = v.get("name").cloned();
        if name.is_some() && into.iter().any(|x| x.get("name") == name.as_ref()) {
            continue;
        }
        into.push(v);
    }
}

fn apply_container_settings(container: &mut Map<String, Value>, s: &ContainerRuntimeSettings) {
    let set = |c: &mut Map<String, Value>, key: &str, v: Value| {
        if !v.is_null() {
            c.insert(key.into(), v);
        }
    };
    set(container, "resources", to_value(&s.resources));
    set(container, "livenessProbe", to_value(&s.liveness_probe));
    set(container, "readinessProbe", to_value(&s.readiness_probe));
    set(container, "lifecycle", to_value(&s.lifecycle));
    set(container, "securityContext", to_value(&s.security_context));
    if !s.env.is_empty() {
        let env = container.entry("env").or_insert_with(|| json!([]));
        if let Some(list) = env.as_array_mut() {
            push_all(list, s.env.iter().map(to_value));
        }
    }
    if !s.env_from.is_empty() {
        let env = container.entry("envFrom").or_insert_with(|| json!([]));
        if let Some(list) = env.as_array_mut() {
            list.extend(s.env_from.iter().map(to_value));
        }
    }
}

/// The executor Jobs for one session task: one for a singleton, else one per replica or node.
/// Secrets reach the container only by reference (`secretKeyRef`/`secretRef` from the task's
/// variables and the runtime settings); the executor reads the rest through the API itself.
pub fn executor_jobs(inp: &ExecutorInputs<'_>) -> Result<Vec<Value>> {
    let object = format!("executor Job {}/{}", inp.job.namespace, inp.job.name);
    let err = |m: String| KubeError::build(object.clone(), m);
    let f = &inp.function.spec;
    if f.image.is_empty() {
        return Err(err(format!(
            "Function {} has no image",
            inp.function.metadata.name.clone().unwrap_or_default()
        )));
    }
    let image = substitute(&f.image, &inp.vars).map_err(|e| err(format!("Function image: {e}")))?;
    let args: Vec<String> = f
        .args
        .iter()
        .map(|a| substitute(a, &inp.vars))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(format!("Function args: {e}")))?;
    let paths: Vec<String> = inp
        .vars
        .get("paths")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let replicas = replicas(inp.task.singleton, inp.target, &inp.daemon_nodes);
    if replicas.is_empty() {
        return Err(err("the target has no replicas or nodes to run on".into()));
    }
    let deadline_secs = inp
        .job
        .deadline
        .map(|d| d.duration_since(inp.now).as_secs().max(1));

    let mut jobs = Vec::new();
    for r in &replicas {
        let name = if r.suffix.is_empty() {
            inp.job.name.clone()
        } else {
            shorten(&format!("{}-{}", inp.job.name, r.suffix), JOB_NAME_MAX)
        };
        let mut env: Vec<Value> = vec![
            json!({"name": RUNTIME_ENV, "value": "kubernetes"}),
            json!({"name": "KSTASH_COMPONENT", "value": r.component}),
            json!({"name": "KSTASH_TOTAL_COMPONENTS", "value": replicas.len().to_string()}),
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            json!({"name": POD_NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        ];
        push_all(&mut env, inp.task_ref.variables.iter().map(to_value));
        let mut volumes: Vec<Value> = Vec::new();
        let mut mounts: Vec<Value> = vec![json!({"name": "kstash-tmp", "mountPath": "/kubestash-tmp"})];
        volumes.push(json!({"name": "kstash-tmp", "emptyDir": {}}));
        // Target volumes: given explicitly, else derived from the workload's pod template.
        match &inp.task_ref.target_volumes {
            Some(tv) if !tv.volumes.is_empty() || !tv.volume_mounts.is_empty() => {
                push_all(&mut volumes, tv.volumes.iter().map(to_value));
                push_all(&mut mounts, tv.volume_mounts.iter().map(to_value));
                // Mounts naming a volume of the target's pod template (KubeStash's examples
                // list only `volumeMounts`) take that volume from the workload.
                let known = pod_volumes(inp.target.unwrap_or(&Value::Null), r.ordinal);
                for m in &tv.volume_mounts {
                    if tv.volumes.iter().any(|v| v.name == m.name) {
                        continue;
                    }
                    let v = known.get(&m.name).ok_or_else(|| {
                        err(format!(
                            "addon.tasks[].targetVolumes.volumeMounts names volume {:?}, which is neither in targetVolumes.volumes nor in the target's pod template",
                            m.name
                        ))
                    })?;
                    push_all(&mut volumes, [v.clone()]);
                }
            }
            _ => {
                if let Some(t) = inp.target
                    && !paths.is_empty()
                    && t.pointer("/kind").and_then(Value::as_str) != Some("AppBinding")
                {
                    let (v, m) = target_volumes(t, &paths, r.ordinal).map_err(err)?;
                    push_all(&mut volumes, v);
                    push_all(&mut mounts, m);
                }
            }
        }
        // Addon volumes: the task's volumeTemplate, overridden by the session's addonVolumes.
        for tmpl in &inp.task.volume_template {
            let tv = to_value(tmpl);
            let name = tv.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let own = inp.task_ref.addon_volumes.iter().find(|a| a.name == name);
            let mut vol = json!({"name": name});
            let source = match own.and_then(|a| a.source.as_ref()) {
                Some(s) => to_value(s),
                None => tv.get("source").cloned().unwrap_or(json!({"emptyDir": {}})),
            };
            if let (Some(obj), Some(src)) = (vol.as_object_mut(), source.as_object()) {
                for (k, v) in src {
                    if k != "volumeClaimTemplate" {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
            push_all(&mut volumes, [vol]);
        }
        push_all(&mut mounts, inp.task.volume_mounts.iter().map(to_value));
        push_all(&mut mounts, f.volume_mounts.iter().map(to_value));
        // Local backends: the storage's volume at its mountPath.
        for (i, s) in inp.storages.iter().enumerate() {
            if let Some(local) = &s.spec.storage.local {
                let vname = format!("kstash-backend-{i}");
                let mut vol = to_value(&local.volume);
                if let Some(obj) = vol.as_object_mut() {
                    obj.insert("name".into(), Value::String(vname.clone()));
                }
                volumes.push(vol);
                let mut mount = json!({"name": vname, "mountPath": local.mount_path});
                if !local.sub_path.is_empty() {
                    mount["subPath"] = Value::String(local.sub_path.clone());
                }
                mounts.push(mount);
            }
        }

        let mut container = Map::new();
        container.insert("name".into(), json!("executor"));
        container.insert("image".into(), json!(image));
        if !f.command.is_empty() {
            container.insert("command".into(), to_value(&f.command));
        }
        container.insert("args".into(), to_value(&args));
        if !f.working_dir.is_empty() {
            container.insert("workingDir".into(), json!(f.working_dir));
        }
        container.insert("env".into(), Value::Array(env));
        container.insert("volumeMounts".into(), Value::Array(mounts));
        if let Some(s) = &f.runtime_settings {
            apply_container_settings(&mut container, s);
        }
        if let Some(s) = &inp.addon.container_runtime_settings {
            apply_container_settings(&mut container, s);
        }

        let mut pod_labels: Map<String, Value> = Map::new();
        pod_labels.insert(LABEL_EXECUTOR.into(), json!(inp.job.name));
        let mut pod_annotations = Map::new();
        let mut pod = Map::new();
        pod.insert("restartPolicy".into(), json!("Never"));
        pod.insert("serviceAccountName".into(), json!(inp.service_account));
        if let Some(tmpl) = &inp.addon.job_template {
            if let Some(m) = &tmpl.metadata {
                for (k, v) in &m.labels {
                    pod_labels.insert(k.clone(), json!(v));
                }
                for (k, v) in &m.annotations {
                    pod_annotations.insert(k.clone(), json!(v));
                }
            }
            if let Some(spec) = &tmpl.spec {
                let sv = to_value(spec);
                for (k, v) in sv.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "volumes" => {
                            if let Some(list) = v.as_array() {
                                push_all(&mut volumes, list.iter().cloned());
                            }
                        }
                        "containerSecurityContext" => {
                            container.insert("securityContext".into(), v.clone());
                        }
                        "resources" => {
                            container.insert("resources".into(), v.clone());
                        }
                        "env" => {
                            if let (Some(list), Some(Value::Array(cur))) =
                                (v.as_array(), container.get_mut("env"))
                            {
                                push_all(cur, list.iter().cloned());
                            }
                        }
                        "initContainers" => {
                            pod.insert("initContainers".into(), v.clone());
                        }
                        _ => {
                            pod.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        if let Some(node) = &r.node_name {
            pod.insert("nodeName".into(), json!(node));
        }
        pod.insert("containers".into(), json!([Value::Object(container.clone())]));
        pod.insert("volumes".into(), Value::Array(volumes));

        let mut labels: Map<String, Value> = inp
            .job
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        labels.insert(LABEL_MANAGED_BY.into(), json!(MANAGED_BY));
        labels.insert(LABEL_EXECUTOR.into(), json!(inp.job.name));
        labels.insert(LABEL_COMPONENT.into(), json!(r.component));
        let mut spec = json!({
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": pod,
            },
        });
        if !pod_annotations.is_empty() {
            spec["template"]["metadata"]["annotations"] = Value::Object(pod_annotations);
        }
        if let Some(secs) = deadline_secs {
            spec["activeDeadlineSeconds"] = json!(secs);
        }
        jobs.push(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": inp.job.namespace,
                "labels": labels,
                "ownerReferences": [inp.owner],
            },
            "spec": spec,
        }));
    }
    Ok(jobs)
}

/// Everything a trigger CronJob is built from.
#[derive(Debug, Clone)]
pub struct TriggerInputs<'a> {
    pub namespace: &'a str,
    pub invoker: &'a str,
    pub session: &'a str,
    /// Already with `CRON_TZ=`/`TZ=` split off.
    pub schedule: &'a str,
    pub time_zone: Option<&'a str>,
    pub suspend: bool,
    pub scheduler: &'a SchedulerSpec,
    /// Owner reference to the BackupConfiguration.
    pub owner: Value,
    /// The image that runs `kstash trigger`.
    pub image: &'a str,
    pub service_account: &'a str,
    /// A verifier's schedule: the repository whose newest snapshot it verifies.
    pub verifies: Option<&'a str>,
}

/// The CronJob `trigger-<bc>-<session>` whose pod runs `kstash trigger <bc> --sessions <s>`,
/// copying the session's scheduler fields.
pub fn trigger_cronjob(inp: &TriggerInputs<'_>) -> Value {
    let sch = inp.scheduler;
    let jt = &sch.job_template;
    let mut pod = Map::new();
    let mut pod_meta = json!({"labels": {LABEL_MANAGED_BY: MANAGED_BY}});
    if let Some(spec) = &jt.template.spec {
        for (k, v) in to_value(spec).as_object().into_iter().flatten() {
            match k.as_str() {
                "containerSecurityContext" | "resources" | "env" => {}
                _ => {
                    pod.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if let Some(m) = &jt.template.metadata {
        for (k, v) in &m.labels {
            pod_meta["labels"][k] = json!(v);
        }
        if !m.annotations.is_empty() {
            pod_meta["annotations"] = to_value(&m.annotations);
        }
    }
    let mut container = json!({
        "name": "trigger",
        "image": inp.image,
        "args": match inp.verifies {
            None => json!(["trigger", inp.invoker, "--namespace", inp.namespace, "--sessions", inp.session]),
            Some(repo) => json!(["verify", inp.invoker, "--namespace", inp.namespace, "--repository", repo]),
        },
        "env": [{"name": RUNTIME_ENV, "value": "kubernetes"}],
    });
    if let Some(spec) = &jt.template.spec {
        if let Some(sc) = &spec.container_security_context {
            container["securityContext"] = to_value(sc);
        }
        if let Some(r) = &spec.resources {
            container["resources"] = to_value(r);
        }
    }
    pod.insert("restartPolicy".into(), json!("Never"));
    pod.insert("serviceAccountName".into(), json!(inp.service_account));
    pod.insert("containers".into(), json!([container]));
    let mut job_spec = json!({
        "backoffLimit": jt.backoff_limit.unwrap_or(0),
        "template": {"metadata": pod_meta, "spec": pod},
    });
    if let Some(d) = jt.active_deadline_seconds {
        job_spec["activeDeadlineSeconds"] = json!(d);
    }
    if let Some(t) = jt.ttl_seconds_after_finished {
        job_spec["ttlSecondsAfterFinished"] = json!(t);
    }
    let mut spec = json!({
        "schedule": inp.schedule,
        "suspend": inp.suspend,
        "concurrencyPolicy": sch.concurrency_policy.map(|c| format!("{c:?}")).unwrap_or_else(|| "Forbid".into()),
        "jobTemplate": {"metadata": {"labels": {LABEL_MANAGED_BY: MANAGED_BY}}, "spec": job_spec},
    });
    if let Some(tz) = inp.time_zone {
        spec["timeZone"] = json!(tz);
    }
    if let Some(s) = sch.starting_deadline_seconds {
        spec["startingDeadlineSeconds"] = json!(s);
    }
    if let Some(n) = sch.successful_jobs_history_limit {
        spec["successfulJobsHistoryLimit"] = json!(n);
    }
    if let Some(n) = sch.failed_jobs_history_limit {
        spec["failedJobsHistoryLimit"] = json!(n);
    }
    let mut labels = json!({
        LABEL_MANAGED_BY: MANAGED_BY,
        "kubestash.com/invoker-name": inp.invoker,
        "kubestash.com/invoker-kind": "BackupConfiguration",
        "kubestash.com/session-name": inp.session,
    });
    if let Some(repo) = inp.verifies {
        labels["kubestash.com/repo-name"] = json!(repo);
        labels[LABEL_SCHEDULE] = json!("verifier");
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": match inp.verifies {
                None => trigger_name(inp.invoker, inp.session),
                Some(repo) => trigger_verifier_name(inp.invoker, repo),
            },
            "namespace": inp.namespace,
            "labels": labels,
            "ownerReferences": [inp.owner],
        },
        "spec": spec,
    })
}

/// What a BackupVerificationSession's verifier Job is built from.
pub struct VerifierJobInputs<'a> {
    pub job: &'a JobSpec,
    /// Owner reference to the BackupVerificationSession.
    pub owner: Value,
    pub verifier: &'a BackupVerifierSpec,
    /// The verifier's `function` (e.g. KubeDB's `kubedbverifier`), when it names one; otherwise
    /// kstash's own verifier (`kstash exec verify`) runs from `image`.
    pub function: Option<&'a Function>,
    /// Template variables: `namespace`, `backupVerificationSession`, `snapshot`, `target*`.
    pub vars: BTreeMap<String, String>,
    pub image: &'a str,
    pub service_account: String,
}

/// The verifier Job (component `kubestash-backup-verifier`): the Function's image and args
/// with KubeStash's variables substituted, or `kstash exec verify`; the verifier's `volumes` and
/// `volumeMounts` (a ConfigMap holding a script); no retries (the session retries).
pub fn verifier_job(inp: &VerifierJobInputs<'_>) -> Result<Value> {
    let object = format!("verifier Job {}/{}", inp.job.namespace, inp.job.name);
    let err = |m: String| KubeError::build(object.clone(), m);
    let (image, args) = match inp.function {
        Some(f) => {
            let image =
                substitute(&f.spec.image, &inp.vars).map_err(|e| err(format!("Function image: {e}")))?;
            let args: Vec<String> = f
                .spec
                .args
                .iter()
                .map(|a| substitute(a, &inp.vars))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| err(format!("Function args: {e}")))?;
            (image, args)
        }
        None => {
            let session = inp
                .vars
                .get("backupVerificationSession")
                .cloned()
                .unwrap_or_default();
            let args = [
                "exec",
                "verify",
                "--namespace",
                &inp.job.namespace,
                "--backupverificationsession",
                &session,
            ]
            .map(String::from)
            .to_vec();
            (inp.image.to_string(), args)
        }
    };
    let mut container = json!({
        "name": "verifier",
        "image": image,
        "args": args,
        "env": [{"name": RUNTIME_ENV, "value": "kubernetes"}],
    });
    if !inp.verifier.volume_mounts.is_empty() {
        container["volumeMounts"] = to_value(&inp.verifier.volume_mounts);
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "serviceAccountName": inp.service_account,
        "containers": [container],
    });
    if !inp.verifier.volumes.is_empty() {
        pod["volumes"] = to_value(&inp.verifier.volumes);
    }
    let mut labels: Map<String, Value> = inp
        .job
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    labels.insert(LABEL_MANAGED_BY.into(), json!(MANAGED_BY));
    labels.insert(LABEL_EXECUTOR.into(), json!(inp.job.name));
    labels.insert(LABEL_COMPONENT.into(), json!("kubestash-backup-verifier"));
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": inp.job.name,
            "namespace": inp.job.namespace,
            "labels": labels,
            "ownerReferences": [inp.owner],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_EXECUTOR: inp.job.name}},
                "spec": pod,
            },
        },
    }))
}

/// The executor ClusterRoles bound in every namespace that runs executors (KubeStash's names).
pub const EXECUTOR_CLUSTER_ROLES: &[&str] = &["kubestash-backup-job", "kubestash-restore-job"];
/// The ClusterRole of trigger CronJob pods.
pub const TRIGGER_CLUSTER_ROLE: &str = "kubestash-cron-job";

/// The ServiceAccounts and bindings of `namespace`: executors (`kstash-executor`: RoleBindings to
/// the backup and restore ClusterRoles, and a ClusterRoleBinding to the catalog reader, since
/// Addons and Functions are cluster-scoped) and trigger pods (`kstash-trigger`: only
/// `kubestash-cron-job`).
pub fn executor_rbac(namespace: &str) -> Vec<Value> {
    let labels = json!({LABEL_MANAGED_BY: MANAGED_BY});
    let subject = |sa: &str| json!([{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]);
    let mut out = Vec::new();
    for sa in [EXECUTOR_SERVICE_ACCOUNT, TRIGGER_SERVICE_ACCOUNT] {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": namespace, "labels": labels},
        }));
    }
    let bindings = EXECUTOR_CLUSTER_ROLES
        .iter()
        .map(|r| (*r, EXECUTOR_SERVICE_ACCOUNT))
        .chain([(TRIGGER_CLUSTER_ROLE, TRIGGER_SERVICE_ACCOUNT)]);
    for (role, sa) in bindings {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": format!("kstash-{}", role.trim_start_matches("kubestash-")), "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subject(sa),
        }));
    }
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": shorten(&format!("{CATALOG_READER_ROLE}-{namespace}"), 253), "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CATALOG_READER_ROLE},
        "subjects": subject(EXECUTOR_SERVICE_ACCOUNT),
    }));
    out
}

/// A RoleBinding in `foreign_ns` (where a session's BackupStorage, encryption Secret or target
/// lives) granting `role` to the executor ServiceAccount of `session_ns`, so an executor can read
/// what its session references across namespaces (the storage's usage policy already allowed it).
pub fn foreign_binding(session_ns: &str, foreign_ns: &str, role: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": shorten(&format!("kstash-{}-{session_ns}", role.trim_start_matches("kubestash-")), 253),
            "namespace": foreign_ns,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, "kstash.dev/executor-namespace": session_ns},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": EXECUTOR_SERVICE_ACCOUNT, "namespace": session_ns}],
    })
}

#[cfg(test)]
mod tests;
