//! The `Resources` seam over the Kubernetes API: documents as JSON through kube-rs' dynamic API,
//! with the API server's own semantics (resourceVersion conflicts, the status subresource,
//! finalizers). Calls are synchronous for the shared reconcilers and executors; they block on the
//! client's tokio runtime from a blocking thread.

use std::future::Future;
use std::sync::Arc;

use kstash_api::client::{ClientError, ClientResult, Resources};
use kstash_api::dynamic::{AnyObjects, ApiKind};
use kstash_api::meta::ResourceType;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;

use crate::FIELD_MANAGER;
use crate::cache::{ObjectCache, kind_key};

/// The API resource of a kstash resource type.
pub fn api_resource(rt: &ResourceType) -> ApiResource {
    ApiResource {
        group: rt.group.to_string(),
        version: rt.version.to_string(),
        api_version: rt.api_version(),
        kind: rt.kind.to_string(),
        plural: rt.plural.to_string(),
    }
}

/// The API resource of a built-in kind, by apiVersion, kind and plural.
pub fn builtin(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// Run `fut` to completion on `handle` from synchronous code: a plain thread or a
/// `spawn_blocking` thread, never a runtime worker (the operator runs reconcilers on the blocking
/// pool for this reason).
pub fn block_on<F: Future>(handle: &tokio::runtime::Handle, fut: F) -> F::Output {
    handle.block_on(fut)
}

/// A short description of an object for messages: `BackupSession demo/x`.
fn describe(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// Map a kube-rs error on `object` to the seam's error kinds.
pub fn client_error(object: &str, e: kube::Error) -> ClientError {
    match e {
        kube::Error::Api(status) => match status.code {
            404 => ClientError::NotFound(object.to_string()),
            409 => ClientError::Conflict {
                object: object.to_string(),
                reason: status.message.clone(),
            },
            400 | 422 => ClientError::Invalid {
                object: object.to_string(),
                message: status.message.clone(),
            },
            code => ClientError::Other(format!(
                "{object}: the API server answered {code} {}: {}",
                status.reason, status.message
            )),
        },
        other => ClientError::Other(format!("{object}: Kubernetes API: {other}")),
    }
}

fn to_dynamic(obj: &Value, object: &str) -> ClientResult<DynamicObject> {
    serde_json::from_value(obj.clone()).map_err(|e| ClientError::Decode {
        object: object.to_string(),
        message: e.to_string(),
    })
}

fn to_value(obj: DynamicObject, object: &str) -> ClientResult<Value> {
    serde_json::to_value(obj).map_err(|e| ClientError::Decode {
        object: object.to_string(),
        message: e.to_string(),
    })
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Resources in a Kubernetes cluster.
#[derive(Clone)]
pub struct KubeResources {
    client: kube::Client,
    handle: tokio::runtime::Handle,
    /// The operator's read cache of the kinds it watches ([`ObjectCache`]); `None` elsewhere
    /// (executors, triggers and the CLI read through the API server).
    cache: Option<Arc<ObjectCache>>,
}

impl std::fmt::Debug for KubeResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeResources").finish_non_exhaustive()
    }
}

impl KubeResources {
    /// Resources through `client`, whose calls run on `handle`.
    pub fn new(client: kube::Client, handle: tokio::runtime::Handle) -> Self {
        KubeResources {
            client,
            handle,
            cache: None,
        }
    }

    /// The same resources, answering gets of the kinds `cache` holds from it and keeping the
    /// answers to writes in it.
    pub fn with_cache(mut self, cache: Arc<ObjectCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Keep the API server's answer to a write in the cache, when there is one.
    fn written(&self, rt: &ResourceType, out: ClientResult<Value>) -> ClientResult<Value> {
        if let (Some(cache), Ok(obj)) = (&self.cache, &out) {
            cache.written(&kind_key(rt.group, rt.kind), obj);
        }
        out
    }

    /// The kube-rs client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The runtime the client runs on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Run a future on the client's runtime from synchronous code.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        block_on(&self.handle, fut)
    }

    /// The dynamic API of `ar` in `namespace` (`None`: cluster-scoped or all namespaces).
    pub fn api(&self, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if !ns.is_empty() => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        }
    }

    fn api_of(&self, rt: &ResourceType, namespace: &str) -> Api<DynamicObject> {
        let ns = rt.namespaced.then_some(namespace);
        self.api(&api_resource(rt), ns)
    }

    /// Server-side apply `obj` (any kind, described by `ar`) under the operator's field manager,
    /// taking ownership of conflicting fields (the operator is the only writer of what it owns).
    pub fn apply(&self, ar: &ApiResource, obj: &Value) -> ClientResult<Value> {
        let ns = str_at(obj, "/metadata/namespace");
        let name = str_at(obj, "/metadata/name");
        let object = describe(&ar.kind, ns, name);
        let api = self.api(ar, Some(ns));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let out = self
            .block_on(api.patch(name, &params, &Patch::Apply(obj)))
            .map_err(|e| client_error(&object, e))?;
        to_value(out, &object)
    }

    /// Create an object of any kind (`metadata.generateName` allowed).
    pub fn create_any(&self, ar: &ApiResource, obj: &Value) -> ClientResult<Value> {
        let ns = str_at(obj, "/metadata/namespace");
        let object = describe(&ar.kind, ns, str_at(obj, "/metadata/name"));
        let dynamic = to_dynamic(obj, &object)?;
        let out = self
            .block_on(self.api(ar, Some(ns)).create(&PostParams::default(), &dynamic))
            .map_err(|e| client_error(&object, e))?;
        to_value(out, &object)
    }

    /// Objects of any kind carrying every label in `labels`.
    pub fn list_any(
        &self,
        ar: &ApiResource,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(&selector);
        }
        let object = format!("{} in {}", ar.plural, namespace.unwrap_or("all namespaces"));
        let list = self
            .block_on(self.api(ar, namespace).list(&params))
            .map_err(|e| client_error(&object, e))?;
        list.items
            .into_iter()
            .map(|o| {
                let mut v = to_value(o, &object)?;
                // List items come without apiVersion/kind; the decoders of kstash expect them.
                if let Some(map) = v.as_object_mut() {
                    map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
                    map.insert("kind".into(), Value::String(ar.kind.clone()));
                }
                Ok(v)
            })
            .collect()
    }

    /// The object of any kind, or `None`.
    pub fn get_any(&self, ar: &ApiResource, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        let object = describe(&ar.kind, namespace, name);
        let got = self
            .block_on(self.api(ar, Some(namespace)).get_opt(name))
            .map_err(|e| client_error(&object, e))?;
        got.map(|o| to_value(o, &object)).transpose()
    }

    /// Delete an object of any kind in the background (dependents through owner references); a
    /// missing object is not an error.
    pub fn delete_any(&self, ar: &ApiResource, namespace: &str, name: &str) -> ClientResult<()> {
        let object = describe(&ar.kind, namespace, name);
        match self.block_on(
            self.api(ar, Some(namespace))
                .delete(name, &DeleteParams::background()),
        ) {
            Ok(_) => Ok(()),
            Err(e) => match client_error(&object, e) {
                ClientError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl Resources for KubeResources {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        let ns = if rt.namespaced { namespace } else { "" };
        if let Some(answer) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&kind_key(rt.group, rt.kind), ns, name))
        {
            return Ok(answer);
        }
        self.get_any(&api_resource(rt), ns, name)
    }

    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        let ns = if rt.namespaced { namespace } else { None };
        self.list_any(&api_resource(rt), ns, labels)
    }

    fn create(&self, obj: Value) -> ClientResult<Value> {
        let rt = resource_type_of(&obj)?;
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let object = describe(rt.kind, &ns, str_at(&obj, "/metadata/name"));
        let dynamic = to_dynamic(&obj, &object)?;
        let out = self
            .block_on(self.api_of(rt, &ns).create(&PostParams::default(), &dynamic))
            .map_err(|e| match client_error(&object, e) {
                ClientError::Conflict { object, .. } => ClientError::Conflict {
                    object,
                    reason: "already exists".into(),
                },
                other => other,
            })?;
        self.written(rt, to_value(out, &object))
    }

    fn update(&self, obj: Value) -> ClientResult<Value> {
        let rt = resource_type_of(&obj)?;
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let name = str_at(&obj, "/metadata/name").to_string();
        let object = describe(rt.kind, &ns, &name);
        let dynamic = to_dynamic(&obj, &object)?;
        let out = self
            .block_on(
                self.api_of(rt, &ns)
                    .replace(&name, &PostParams::default(), &dynamic),
            )
            .map_err(|e| client_error(&object, e))?;
        self.written(rt, to_value(out, &object))
    }

    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        let rt = resource_type_of(&obj)?;
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let name = str_at(&obj, "/metadata/name").to_string();
        let object = describe(rt.kind, &ns, &name);
        let api = self.api_of(rt, &ns);
        let dynamic = to_dynamic(&obj, &object)?;
        let out = if rt.has_status {
            self.block_on(api.replace_status(&name, &PostParams::default(), &dynamic))
        } else {
            // Kinds without a status subresource keep their status in the object itself.
            self.block_on(api.replace(&name, &PostParams::default(), &dynamic))
        }
        .map_err(|e| client_error(&object, e))?;
        self.written(rt, to_value(out, &object))
    }

    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        let ns = if rt.namespaced { namespace } else { "" };
        self.delete_any(&api_resource(rt), ns, name)
    }

    fn any_objects(&self) -> Option<&dyn AnyObjects> {
        Some(self)
    }
}

/// The API resource of a discovered kind.
fn api_resource_of(kind: &ApiKind) -> ApiResource {
    ApiResource {
        group: kind.group.clone(),
        version: kind.version.clone(),
        api_version: kind.api_version(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

/// Every kind of the cluster, found by discovery (a manifest backup reads them all).
impl AnyObjects for KubeResources {
    fn kinds(&self) -> ClientResult<Vec<ApiKind>> {
        let discovery = self
            .block_on(Discovery::new(self.client.clone()).run())
            .map_err(|e| client_error("API discovery", e))?;
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::GET) {
                    continue;
                }
                out.push(ApiKind {
                    group: ar.group,
                    version: ar.version,
                    kind: ar.kind,
                    plural: ar.plural,
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
        }
        Ok(out)
    }

    fn list(&self, kind: &ApiKind) -> ClientResult<Vec<Value>> {
        self.list_any(&api_resource_of(kind), None, &[])
    }

    fn get(&self, kind: &ApiKind, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        let ns = if kind.namespaced { namespace } else { "" };
        self.get_any(&api_resource_of(kind), ns, name)
    }

    fn create(&self, kind: &ApiKind, obj: Value) -> ClientResult<Value> {
        self.create_any(&api_resource_of(kind), &obj)
    }

    fn replace(&self, kind: &ApiKind, obj: Value) -> ClientResult<Value> {
        let ar = api_resource_of(kind);
        let ns = if kind.namespaced {
            str_at(&obj, "/metadata/namespace")
        } else {
            ""
        };
        let name = str_at(&obj, "/metadata/name");
        let object = describe(&ar.kind, ns, name);
        let dynamic = to_dynamic(&obj, &object)?;
        let out = self
            .block_on(
                self.api(&ar, Some(ns))
                    .replace(name, &PostParams::default(), &dynamic),
            )
            .map_err(|e| client_error(&object, e))?;
        to_value(out, &object)
    }
}

/// The kstash resource type of a document, from its apiVersion and kind.
fn resource_type_of(obj: &Value) -> ClientResult<&'static ResourceType> {
    let api_version = str_at(obj, "/apiVersion");
    let kind = str_at(obj, "/kind");
    kstash_api::meta::by_api_version_kind(api_version, kind).ok_or_else(|| ClientError::Invalid {
        object: format!("{kind} {}", str_at(obj, "/metadata/name")),
        message: format!("apiVersion {api_version:?} kind {kind:?} is not a kind kstash manages"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_keep_group_version_and_plural() {
        let ar = api_resource(&kstash_api::meta::BACKUP_SESSION);
        assert_eq!(ar.api_version, "core.kubestash.com/v1alpha1");
        assert_eq!(ar.plural, "backupsessions");
        let secret = api_resource(&kstash_api::meta::SECRET);
        assert_eq!((secret.group.as_str(), secret.api_version.as_str()), ("", "v1"));
        let job = builtin("batch/v1", "Job", "jobs");
        assert_eq!((job.group.as_str(), job.version.as_str()), ("batch", "v1"));
    }

    #[test]
    fn api_errors_map_to_the_seam_kinds() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "m".into(),
                reason: "R".into(),
                ..Default::default()
            }))
        };
        assert!(client_error("x", status(404)).is_not_found());
        assert!(client_error("x", status(409)).is_conflict());
        assert!(matches!(
            client_error("x", status(422)),
            ClientError::Invalid { .. }
        ));
        assert!(matches!(client_error("x", status(500)), ClientError::Other(m) if m.contains("500")));
    }

    #[test]
    fn documents_of_unmanaged_kinds_are_refused_by_name() {
        let err = resource_type_of(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("Pod p"), "{err}");
    }
}
