//! [`FakeKubeApi`]: a **fake** Kubernetes API server, in memory, served over real HTTP on loopback,
//! for testing the operator with the real kube-rs client.
//!
//! It is a fake because no real kube-apiserver (nor k3s, kind, envtest or kwok) can be installed or
//! run on this machine or in CI (see the test-infra reference, §12). So that tests passing against
//! it mean something, it enforces the API semantics the operator relies on: resource registry and
//! discovery (plain and aggregated), CRD registration, create/get/list/replace/patch/delete with
//! `Status` errors shaped like the real ones, one global `resourceVersion` with optimistic
//! concurrency (409 `Conflict`), the status subresource, `generation`, finalizers and
//! `deletionTimestamp`, owner-reference garbage collection, name and label validation (422
//! `Invalid`), label/field selectors, and watches (chunked, one JSON event per line).
//!
//! Simplifications (tests must not rely on them):
//! - no authentication, no admission (webhooks), no schema validation or defaulting of custom
//!   resources, no conversion: one stored version per kind, shown in the request's `apiVersion`;
//! - no controllers: Pods and Jobs are inert; tests drive their status with [`FakeKubeApi::put`];
//! - `application/strategic-merge-patch+json` is treated as a JSON merge patch (RFC 7386), so
//!   lists are replaced rather than merged by key;
//! - server-side apply deep-merges the applied object into the stored one (maps recursively,
//!   lists replaced wholesale) instead of tracking field ownership: `managedFields` only records
//!   each manager (operation `Apply`), `force` is accepted and conflicts never arise;
//! - foreground deletion behaves like background; garbage collection runs synchronously inside the
//!   request; `blockOwnerDeletion` is ignored; deleting a Namespace removes its objects at once;
//! - objects may be created in namespaces that do not exist;
//! - a DELETE that removes the object at once answers a `Status` of `Success` (one with
//!   finalizers answers the object, now carrying `deletionTimestamp`);
//! - adding a finalizer to an object being deleted answers 422 `Invalid` on `metadata.finalizers`;
//! - `limit`/`continue` are ignored (a list is one page), `dryRun` is refused (400);
//! - kube-rs retries 429/503/504 by default (15 times, backing off for minutes): to see
//!   [`FakeKubeApi::set_unavailable`] fail fast, build the client with `Config::default_retry` off;
//! - the whole watch history is kept, so a watch never gets `410 Gone`; a watch without
//!   `resourceVersion` (or `"0"`) starts with synthetic `ADDED` events, as the real server does.
//!
//! ```no_run
//! let api = kstash_testsupport::FakeKubeApi::start().unwrap();
//! // kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())) ...
//! api.put(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}));
//! assert!(api.get("v1", "ConfigMap", "default", "c").is_some());
//! ```

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{IoContext, Result};

type Body = UnsyncBoxBody<Bytes, Infallible>;
/// Metadata only the server sets; updates keep the stored values.
const SERVER_OWNED: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];
/// group, plural, namespace (`""` when cluster-scoped), name.
type Key = (String, String, String, String);

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The fake API server on `127.0.0.1:<free port>`; `Drop` stops it and closes every connection.
pub struct FakeKubeApi {
    url: String,
    shared: Arc<Shared>,
    /// Stops the server when the handle is dropped.
    _server: crate::loopback::LoopbackServer,
}

struct Shared {
    state: Mutex<State>,
    /// The latest resourceVersion; bumped (or re-sent) to wake watches.
    changed: watch::Sender<u64>,
    requests: Mutex<Vec<String>>,
    unavailable: AtomicBool,
    address: String,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock except a test's own misuse; keep going then.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes watches if it changed anything.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state();
        let before = state.rv;
        let out = f(&mut state);
        let after = state.rv;
        drop(state);
        if after != before {
            self.changed.send_replace(after);
        }
        out
    }
}

impl FakeKubeApi {
    /// Starts the server on 127.0.0.1 on a free port, with the built-in kinds registered.
    pub fn start() -> Result<FakeKubeApi> {
        let bound = crate::loopback::Bound::new("fake kube api")?;
        let addr = bound.addr();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            changed: watch::channel(0).0,
            requests: Mutex::new(Vec::new()),
            unavailable: AtomicBool::new(false),
            address: addr.to_string(),
        });
        let server = bound.serve({
            let shared = Arc::clone(&shared);
            move |listener| accept_loop(listener, shared)
        })?;
        Ok(FakeKubeApi {
            url: format!("http://{addr}"),
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A kubeconfig for this server: cluster `server` = [`url`](Self::url), no auth, the
    /// context's default namespace `namespace`.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url
        )
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(namespace))
            .context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// The object as stored (uid, resourceVersion, creationTimestamp, generation filled), shown in
    /// `api_version`. `namespace` is ignored for cluster-scoped kinds.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.shared.state();
        let rt = state.type_of(api_version, kind)?;
        state.objects.get(&rt.key(namespace, name)).map(|o| rt.present(o))
    }

    /// All objects of a kind, in one namespace or (`None`) all, sorted by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.shared.state();
        let Some(rt) = state.type_of(api_version, kind) else {
            return Vec::new();
        };
        state
            .objects
            .iter()
            .filter(|(k, _)| rt.owns(k) && namespace.is_none_or(|ns| !rt.namespaced || k.2 == ns))
            .map(|(_, o)| rt.present(o))
            .collect()
    }

    /// Create-or-replace the whole object (status included), bypassing validation,
    /// resourceVersion checks and the status subresource, like another controller or a user
    /// would; still fills uid etc., bumps resourceVersion/generation, emits watch events, and
    /// finishes a deletion whose finalizers are gone. A put that changes nothing is a no-op.
    /// Namespaced objects without `metadata.namespace` go to `default`.
    ///
    /// # Panics
    /// If the kind is not registered (install its CRD first) or the object has no name.
    pub fn put(&self, obj: Value) -> Value {
        self.shared.with(|state| {
            let rt = state
                .type_of(str_at(&obj, "/apiVersion"), str_at(&obj, "/kind"))
                .unwrap_or_else(|| panic!("FakeKubeApi::put: kind not registered: {obj}"));
            let ns = match str_at(&obj, "/metadata/namespace") {
                "" => "default",
                ns => ns,
            };
            let key = rt.key(ns, str_at(&obj, "/metadata/name"));
            assert!(
                !key.3.is_empty(),
                "FakeKubeApi::put: object without metadata.name: {obj}"
            );
            let stored = state
                .update(&rt, &key, obj, Mode::Force, None)
                .unwrap_or_else(|e| panic!("FakeKubeApi::put: {}", e.message));
            rt.present(&stored)
        })
    }

    /// Deletes the object as someone else would (honours finalizers, runs owner GC); no-op when
    /// it does not exist.
    pub fn remove(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        self.shared.with(|state| {
            if let Some(rt) = state.type_of(api_version, kind) {
                state.delete_obj(&rt.key(namespace, name), false);
            }
        });
    }

    /// Every request as `"METHOD path?query"` (query as sent, percent-encoded), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// While on, every request answers 503 `ServiceUnavailable` and open watches end.
    pub fn set_unavailable(&self, on: bool) {
        self.shared.unavailable.store(on, Ordering::SeqCst);
        let rv = *self.shared.changed.borrow();
        self.shared.changed.send_replace(rv);
    }

    /// Installs CustomResourceDefinitions (as if POSTed; an existing one is replaced).
    ///
    /// # Panics
    /// If a document is not a valid CRD for the fake.
    pub fn install_crds(&self, docs: &[Value]) {
        self.shared.with(|state| {
            let rt = state
                .type_of("apiextensions.k8s.io/v1", "CustomResourceDefinition")
                .expect("CRDs are built in");
            for doc in docs {
                let key = rt.key("", str_at(doc, "/metadata/name"));
                let result = if state.objects.contains_key(&key) {
                    state.update(&rt, &key, doc.clone(), Mode::Main, None)
                } else {
                    state.create(&rt, "", doc.clone(), Mode::Main, None)
                };
                if let Err(e) = result {
                    panic!("FakeKubeApi::install_crds: {}", e.message);
                }
            }
        });
    }

    /// What `helm install` of kstash puts into a cluster, read from the repository at `root`: the
    /// CRDs of `deploy/crds/` and the Addons and Functions of `catalog/`.
    ///
    /// # Panics
    /// If a file cannot be read or parsed.
    pub fn install_kstash(&self, root: &Path) {
        let docs = |dir: &str| -> Vec<Value> {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect();
            files.sort();
            let mut out = Vec::new();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                    let v: Value = serde::Deserialize::deserialize(doc)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    if !v.is_null() {
                        out.push(v);
                    }
                }
            }
            out
        };
        self.install_crds(&docs("deploy/crds"));
        for doc in docs("catalog") {
            self.put(doc);
        }
    }
}

impl std::fmt::Debug for FakeKubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKubeApi").field("url", &self.url).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Resource types

#[derive(Debug, Clone)]
struct ResType {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    status: bool,
    short_names: Vec<String>,
    builtin: bool,
}

impl ResType {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `jobs.batch`, `pods`: how messages name the resource.
    fn group_resource(&self) -> String {
        dotted(&self.plural, &self.group)
    }

    fn key(&self, ns: &str, name: &str) -> Key {
        let ns = if self.namespaced { ns } else { "" };
        (self.group.clone(), self.plural.clone(), ns.into(), name.into())
    }

    fn owns(&self, key: &Key) -> bool {
        key.0 == self.group && key.1 == self.plural
    }

    /// The stored object shown in this type's apiVersion.
    fn present(&self, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.api_version());
        o["kind"] = json!(self.kind);
        o
    }
}

fn dotted(a: &str, group: &str) -> String {
    if group.is_empty() {
        a.to_owned()
    } else {
        format!("{a}.{group}")
    }
}

fn builtin_types() -> Vec<ResType> {
    // group, kind, plural, namespaced, has a status subresource (all version v1)
    const RBAC: &str = "rbac.authorization.k8s.io";
    let types: [(&str, &str, &str, bool, bool); 22] = [
        ("", "Namespace", "namespaces", false, true),
        ("", "Secret", "secrets", true, false),
        ("", "ConfigMap", "configmaps", true, false),
        ("", "ServiceAccount", "serviceaccounts", true, false),
        ("", "Pod", "pods", true, true),
        ("", "Event", "events", true, false),
        ("", "PersistentVolumeClaim", "persistentvolumeclaims", true, true),
        ("", "Node", "nodes", false, true),
        ("", "Service", "services", true, true),
        ("apps", "Deployment", "deployments", true, true),
        ("apps", "StatefulSet", "statefulsets", true, true),
        ("apps", "DaemonSet", "daemonsets", true, true),
        ("apps", "ReplicaSet", "replicasets", true, true),
        ("batch", "Job", "jobs", true, true),
        ("batch", "CronJob", "cronjobs", true, true),
        (RBAC, "Role", "roles", true, false),
        (RBAC, "RoleBinding", "rolebindings", true, false),
        (RBAC, "ClusterRole", "clusterroles", false, false),
        (RBAC, "ClusterRoleBinding", "clusterrolebindings", false, false),
        ("coordination.k8s.io", "Lease", "leases", true, false),
        ("events.k8s.io", "Event", "events", true, false),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            true,
        ),
    ];
    types
        .iter()
        .map(|&(group, kind, plural, namespaced, status)| ResType {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status,
            short_names: Vec::new(),
            builtin: true,
        })
        .collect()
}

fn is_crd_key(key: &Key) -> bool {
    key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions"
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A failed request, answered as a `Status` object.
#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    fn about(mut self, rt: &ResType, name: &str) -> Self {
        self.details = json!({"name": name, "group": rt.group, "kind": rt.plural});
        self
    }

    fn to_json(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code})
    }
}

fn not_found(rt: &ResType, name: &str) -> ApiError {
    let message = format!("{} \"{name}\" not found", rt.group_resource());
    ApiError::new(404, "NotFound", message).about(rt, name)
}

fn unknown_resource() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

fn conflict(rt: &ResType, name: &str, why: &str) -> ApiError {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        rt.group_resource()
    );
    ApiError::new(409, "Conflict", message).about(rt, name)
}

fn stale(rt: &ResType, name: &str) -> ApiError {
    conflict(
        rt,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

fn invalid(rt: &ResType, name: &str, field: &str, value: &str, detail: &str) -> ApiError {
    let cause = format!("Invalid value: {value:?}: {detail}");
    let message = format!(
        "{} \"{name}\" is invalid: {field}: {cause}",
        dotted(&rt.kind, &rt.group)
    );
    let mut e = ApiError::new(422, "Invalid", message);
    e.details = json!({"name": name, "group": rt.group, "kind": rt.kind,
        "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}]});
    e
}

// ---------------------------------------------------------------------------------------------
// Validation

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

fn dns_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_alnum(c) || c == '-')
                && part.starts_with(is_alnum)
                && part.ends_with(is_alnum)
        })
}

/// A label value, or the name part of a label key (then also non-empty).
fn label_value_ok(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn label_key_ok(key: &str) -> bool {
    let (prefix, name) = key.split_once('/').unwrap_or(("", key));
    (prefix.is_empty() || (!key.starts_with('/') && dns_subdomain_ok(prefix)))
        && !name.is_empty()
        && label_value_ok(name)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
    characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
    characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Why `name` is not a valid name for this kind, if it is not.
fn name_problem(rt: &ResType, name: &str) -> Option<String> {
    let max = match (rt.group.as_str(), rt.plural.as_str()) {
        ("rbac.authorization.k8s.io", _) => {
            let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']);
            return bad.then(|| "may not contain '/' or '%' and may not be '.' or '..'".into());
        }
        ("", "namespaces" | "services") => {
            let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
                and must start and end with an alphanumeric character (at most 63 characters)";
            return (!dns_label_ok(name)).then(|| msg.into());
        }
        ("batch", "jobs") => 63,
        ("batch", "cronjobs") => 52,
        _ => 253,
    };
    if name.len() > max {
        Some(format!("must be no more than {max} characters"))
    } else if !dns_subdomain_ok(name) {
        Some(SUBDOMAIN_MSG.into())
    } else {
        None
    }
}

fn validate(rt: &ResType, obj: &Value) -> Result<(), ApiError> {
    let name = str_at(obj, "/metadata/name");
    if let Some(problem) = name_problem(rt, name) {
        return Err(invalid(rt, name, "metadata.name", name, &problem));
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !label_key_ok(k) {
                let msg = "name part must consist of alphanumeric characters, '-', '_' or '.', \
                    must start and end with an alphanumeric character and be at most 63 characters, \
                    with an optional DNS subdomain prefix and '/'";
                return Err(invalid(rt, name, "metadata.labels", k, msg));
            }
            let value = v.as_str().unwrap_or("\u{0}");
            if value.len() > 63 {
                let msg = "must be no more than 63 characters";
                return Err(invalid(rt, name, "metadata.labels", value, msg));
            }
            if !label_value_ok(value) {
                return Err(invalid(rt, name, "metadata.labels", &v.to_string(), LABEL_MSG));
            }
        }
    }
    if rt.group == "apiextensions.k8s.io" {
        let spec = &obj["spec"];
        let expected = format!("{}.{}", str_at(spec, "/names/plural"), str_at(spec, "/group"));
        if name != expected {
            let msg = format!("must be spec.names.plural+\".\"+spec.group ({expected})");
            return Err(invalid(rt, name, "metadata.name", name, &msg));
        }
        let scope = str_at(spec, "/scope");
        if !matches!(scope, "Namespaced" | "Cluster") {
            let msg = "must be Namespaced or Cluster";
            return Err(invalid(rt, name, "spec.scope", scope, msg));
        }
        if str_at(spec, "/names/kind").is_empty() || spec["versions"].as_array().is_none_or(Vec::is_empty) {
            let msg = "spec.names.kind and spec.versions are required";
            return Err(invalid(rt, name, "spec", "", msg));
        }
    }
    Ok(())
}

/// Body `apiVersion`/`kind` must match the path (400 otherwise); when not `required` (all but
/// apply), missing ones default to the path's.
fn check_type(rt: &ResType, obj: &Value, required: bool) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(bad_request("the body must be a JSON object"));
    }
    let (av, kind) = (str_at(obj, "/apiVersion"), str_at(obj, "/kind"));
    if (av.is_empty() || kind.is_empty()) && required {
        return Err(bad_request("apiVersion and kind must be set"));
    }
    if !av.is_empty() && av != rt.api_version() {
        return Err(bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !kind.is_empty() && kind != rt.kind {
        return Err(bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("just made an object")
}

/// Sets `obj[field]`, or removes it when `value` is `None`.
fn set_field(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = obj.as_object_mut() {
        match value {
            Some(v) => {
                map.insert(field.into(), v);
            }
            None => {
                map.remove(field);
            }
        }
    }
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    set_field(&mut o, "metadata", None);
    set_field(&mut o, "status", None);
    o
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Server-side apply's merge: maps recursively, everything else (lists too) replaced; null removes.
fn deep_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k).filter(|e| e.is_object() && v.is_object()) {
                    deep_merge(existing, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Selectors

#[derive(Debug, Clone)]
enum Req {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses a label or field selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`.
fn parse_selector(s: &str) -> Result<Vec<Req>, ApiError> {
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let values = |v: &str| -> Vec<String> {
        let v = v.trim().trim_start_matches('(').trim_end_matches(')');
        v.split(',').map(|x| x.trim().to_owned()).collect()
    };
    let mut reqs = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let req = if let Some(key) = part.strip_prefix('!') {
            Req::NotExists(key.trim().into())
        } else if let Some((k, v)) = part.split_once(" notin ") {
            Req::NotIn(k.trim().into(), values(v))
        } else if let Some((k, v)) = part.split_once(" in ") {
            Req::In(k.trim().into(), values(v))
        } else if let Some((k, v)) = part.split_once("!=") {
            Req::NotIn(k.trim().into(), vec![v.trim().into()])
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Req::In(k.trim().into(), vec![v.trim().into()])
        } else if part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Req::Exists(part.into())
        } else {
            return Err(bad_request(format!("unable to parse requirement: {part:?}")));
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn satisfied(reqs: &[Req], lookup: impl Fn(&str) -> Option<String>) -> bool {
    reqs.iter().all(|r| match r {
        Req::In(k, vs) => lookup(k).is_some_and(|v| vs.contains(&v)),
        Req::NotIn(k, vs) => lookup(k).is_none_or(|v| !vs.contains(&v)),
        Req::Exists(k) => lookup(k).is_some(),
        Req::NotExists(k) => lookup(k).is_none(),
    })
}

/// Which objects a list, watch or deletecollection covers.
#[derive(Debug, Clone)]
struct Filter {
    rt: ResType,
    ns: Option<String>,
    labels: Vec<Req>,
    fields: Vec<Req>,
}

impl Filter {
    fn new(rt: &ResType, ns: Option<&str>, query: &Query) -> Result<Filter, ApiError> {
        Ok(Filter {
            rt: rt.clone(),
            ns: ns.map(String::from),
            labels: parse_selector(query.get("labelSelector").unwrap_or(""))?,
            fields: parse_selector(query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    fn covers(&self, key: &Key) -> bool {
        self.rt.owns(key) && self.ns.as_ref().is_none_or(|ns| &key.2 == ns)
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        satisfied(&self.labels, |k| {
            labels?.get(k).and_then(Value::as_str).map(String::from)
        }) && satisfied(&self.fields, |path| {
            // Any field path (`metadata.name`, `status.phase`, ...); absent reads as "".
            let v = obj.pointer(&format!("/{}", path.replace('.', "/")));
            Some(match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The store

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The main resource: a kind with a status subresource keeps its stored status.
    Main,
    /// `/status`: only `status` changes.
    Status,
    /// [`FakeKubeApi::put`]: everything as given, no checks.
    Force,
}

struct Event {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
    /// The object before a MODIFIED, for selector transitions.
    old: Option<Value>,
}

struct State {
    types: Vec<ResType>,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    events: Vec<Event>,
    /// uids of objects deleted with propagationPolicy Orphan, waiting for their finalizers.
    orphan_on_removal: HashSet<String>,
}

impl State {
    fn new() -> State {
        State {
            types: builtin_types(),
            objects: BTreeMap::new(),
            rv: 1,
            events: Vec::new(),
            orphan_on_removal: HashSet::new(),
        }
    }

    fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// By `apiVersion` and kind; another served version of the same group and kind also does.
    fn type_of(&self, api_version: &str, kind: &str) -> Option<ResType> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let same = |t: &&ResType| t.group == group && t.kind == kind;
        let found = self.types.iter().filter(same).find(|t| t.version == version);
        found.or_else(|| self.types.iter().find(same)).cloned()
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects.values().any(|o| str_at(o, "/metadata/uid") == uid)
    }

    fn emit(&mut self, key: &Key, kind: &'static str, object: &Value, old: Option<Value>) {
        self.events.push(Event {
            rv: self.rv,
            key: key.clone(),
            kind,
            object: object.clone(),
            old,
        });
    }

    /// Stores with a new resourceVersion and emits ADDED/MODIFIED.
    fn store(&mut self, key: &Key, mut obj: Value, old: Option<Value>) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects.insert(key.clone(), obj.clone());
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.emit(key, kind, &obj, old);
        if is_crd_key(key) {
            self.register_crd(&obj);
        }
        obj
    }

    fn create(
        &mut self,
        rt: &ResType,
        ns: &str,
        mut obj: Value,
        mode: Mode,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        if mode != Mode::Force {
            check_type(rt, &obj, false)?;
        }
        let meta = meta_mut(&mut obj);
        if rt.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
                _ => {
                    let msg = "name or generateName is required";
                    return Err(invalid(rt, "", "metadata.name", "", msg));
                }
            }
            meta.insert("name".into(), json!(name));
        }
        if mode != Mode::Force
            && !meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        {
            return Err(bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(f);
        }
        if mode != Mode::Force {
            meta.remove("managedFields");
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        if rt.status && mode != Mode::Force {
            set_field(&mut obj, "status", None);
        }
        obj = rt.present(&obj);
        if mode != Mode::Force {
            validate(rt, &obj)?;
        }
        let key = rt.key(ns, &name);
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{name}\" already exists", rt.group_resource());
            return Err(ApiError::new(409, "AlreadyExists", message).about(rt, &name));
        }
        if let Some(manager) = manager {
            record_manager(&mut obj, manager, false, &rt.api_version());
        }
        server_defaults(&key, &mut obj);
        Ok(self.store(&key, obj, None))
    }

    /// Replace (PUT), the last step of PATCH and apply, and [`FakeKubeApi::put`].
    fn update(
        &mut self,
        rt: &ResType,
        key: &Key,
        new: Value,
        mode: Mode,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.objects.get(key).cloned() else {
            if mode == Mode::Force {
                return self.create(rt, &key.2, new, mode, manager);
            }
            return Err(not_found(rt, &key.3));
        };
        if mode != Mode::Force {
            check_type(rt, &new, false)?;
        }
        let (name, ns) = (
            str_at(&new, "/metadata/name"),
            str_at(&new, "/metadata/namespace"),
        );
        if !name.is_empty() && name != key.3 {
            return Err(bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.3
            )));
        }
        if rt.namespaced && !ns.is_empty() && ns != key.2 {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let given_rv = str_at(&new, "/metadata/resourceVersion").to_owned();
        let mut obj = match mode {
            Mode::Status => {
                let mut o = old.clone();
                set_field(&mut o, "status", new.get("status").cloned());
                o
            }
            Mode::Main if rt.status => {
                let mut o = new;
                set_field(&mut o, "status", old.get("status").cloned());
                o
            }
            _ => new,
        };
        obj = rt.present(&obj);
        let meta = meta_mut(&mut obj);
        // A put may set managedFields; otherwise they stay as stored (apply records managers).
        let keep_managed = mode == Mode::Force && meta.contains_key("managedFields");
        for f in SERVER_OWNED
            .iter()
            .chain((!keep_managed).then_some(&"managedFields"))
        {
            match old["metadata"].get(*f) {
                Some(v) => meta.insert((*f).into(), v.clone()),
                None => meta.remove(*f),
            };
        }
        let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        if mode != Mode::Force {
            if !given_rv.is_empty() && given_rv != str_at(&old, "/metadata/resourceVersion") {
                return Err(stale(rt, &key.3));
            }
            validate(rt, &obj)?;
            let before = finalizers(&old);
            let added: Vec<_> = finalizers(&obj)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if deleting && !added.is_empty() {
                let msg = format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                );
                return Err(invalid(rt, &key.3, "metadata.finalizers", &added.join(","), &msg));
            }
        }
        if let Some(manager) = manager {
            record_manager(&mut obj, manager, mode == Mode::Status, &rt.api_version());
        }
        if spec_part(&obj) != spec_part(&old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut obj).insert("generation".into(), json!(generation + 1));
        }
        server_defaults(key, &mut obj);
        if obj == old {
            return Ok(old);
        }
        if deleting && finalizers(&obj).is_empty() {
            self.objects.insert(key.clone(), obj);
            return Ok(self.remove_now(key, false).expect("just inserted"));
        }
        Ok(self.store(key, obj, Some(old)))
    }

    /// DELETE without preconditions: marks an object with finalizers, removes one without.
    /// Returns the object if it is still there (being deleted), `None` if removed or absent.
    fn delete_obj(&mut self, key: &Key, orphan: bool) -> Option<Value> {
        let obj = self.objects.get(key)?.clone();
        if finalizers(&obj).is_empty() {
            self.remove_now(key, orphan);
            return None;
        }
        if orphan {
            self.orphan_on_removal
                .insert(str_at(&obj, "/metadata/uid").into());
        }
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Some(obj);
        }
        let mut marked = obj.clone();
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let meta = meta_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("generation".into(), json!(generation + 1));
        Some(self.store(key, marked, Some(obj)))
    }

    /// Removes the object now (DELETED event), then what depends on it: a CRD's custom
    /// resources, a Namespace's objects, and (garbage collection) objects it owns.
    fn remove_now(&mut self, key: &Key, orphan: bool) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.emit(key, "DELETED", &obj, None);
        let uid = str_at(&obj, "/metadata/uid").to_owned();
        let orphan = self.orphan_on_removal.remove(&uid) || orphan;
        let contained: Vec<Key> = if is_crd_key(key) {
            let (group, plural) = (str_at(&obj, "/spec/group"), str_at(&obj, "/spec/names/plural"));
            self.types
                .retain(|t| t.builtin || t.group != group || t.plural != plural);
            self.objects
                .keys()
                .filter(|k| k.0 == group && k.1 == plural)
                .cloned()
                .collect()
        } else if key.0.is_empty() && key.1 == "namespaces" {
            self.objects.keys().filter(|k| k.2 == key.3).cloned().collect()
        } else {
            Vec::new()
        };
        for k in contained {
            self.remove_now(&k, false);
        }
        let owned_by = |o: &Value| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/uid") == uid))
        };
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| owned_by(o))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            let Some(old) = self.objects.get(&dep).cloned() else {
                continue;
            };
            let mut refs = old["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            refs.retain(|r| str_at(r, "/uid") != uid);
            let other_owner_alive = refs.iter().any(|r| self.uid_exists(str_at(r, "/uid")));
            if orphan || other_owner_alive {
                let mut updated = old.clone();
                if refs.is_empty() {
                    meta_mut(&mut updated).remove("ownerReferences");
                } else {
                    meta_mut(&mut updated).insert("ownerReferences".into(), Value::Array(refs));
                }
                self.store(&dep, updated, Some(old));
            } else {
                self.delete_obj(&dep, false);
            }
        }
        Some(obj)
    }

    fn register_crd(&mut self, crd: &Value) {
        let spec = &crd["spec"];
        let (group, plural) = (str_at(spec, "/group"), str_at(spec, "/names/plural"));
        self.types
            .retain(|t| t.builtin || t.group != group || t.plural != plural);
        let short_names: Vec<String> = spec
            .pointer("/names/shortNames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            self.types.push(ResType {
                group: group.into(),
                version: str_at(v, "/name").into(),
                kind: str_at(spec, "/names/kind").into(),
                plural: plural.into(),
                namespaced: str_at(spec, "/scope") != "Cluster",
                status: v.pointer("/subresources/status").is_some(),
                short_names: short_names.clone(),
                builtin: false,
            });
        }
    }

    fn list(&self, filter: &Filter) -> Value {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, o)| filter.covers(k) && filter.matches(o))
            .map(|(_, o)| filter.rt.present(o))
            .collect();
        json!({"kind": format!("{}List", filter.rt.kind), "apiVersion": filter.rt.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()}, "items": items})
    }

    /// Watch lines for the events after `pos` that `filter` covers, and the new position.
    fn events_since(&self, pos: u64, filter: &Filter) -> (Vec<Bytes>, u64) {
        let start = self.events.partition_point(|e| e.rv <= pos);
        let mut lines = Vec::new();
        for e in &self.events[start..] {
            if !filter.covers(&e.key) {
                continue;
            }
            let now = filter.matches(&e.object);
            let kind = match (e.kind, e.old.as_ref().map(|o| filter.matches(o)), now) {
                ("MODIFIED", Some(true), true) => "MODIFIED",
                ("MODIFIED", Some(false), true) => "ADDED",
                ("MODIFIED", Some(true), false) => "DELETED",
                (kind @ ("ADDED" | "DELETED"), _, true) => kind,
                _ => continue,
            };
            lines.push(watch_line(kind, filter.rt.present(&e.object)));
        }
        (lines, self.rv)
    }
}

fn record_manager(obj: &mut Value, manager: &str, status: bool, api_version: &str) {
    let meta = meta_mut(obj);
    let entries = meta.entry("managedFields").or_insert_with(|| json!([]));
    let Some(list) = entries.as_array_mut() else {
        return;
    };
    let subresource = if status { "status" } else { "" };
    let known = list.iter().any(|e| {
        str_at(e, "/manager") == manager
            && str_at(e, "/operation") == "Apply"
            && str_at(e, "/subresource") == subresource
    });
    if !known {
        let mut entry = json!({"manager": manager, "operation": "Apply", "apiVersion": api_version,
            "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {}});
        if status {
            entry["subresource"] = json!("status");
        }
        list.push(entry);
    }
}

/// What the server or a built-in controller would set: a Namespace is `Active`, a CRD is
/// established at once.
fn server_defaults(key: &Key, obj: &mut Value) {
    if key.0.is_empty() && key.1 == "namespaces" && obj.pointer("/status/phase").is_none() {
        obj["status"] = json!({"phase": "Active"});
    }
    if !is_crd_key(key) {
        return;
    }
    let time = str_at(obj, "/metadata/creationTimestamp").to_owned();
    let condition = |kind: &str, reason: &str| {
        json!({"type": kind, "status": "True", "lastTransitionTime": time, "reason": reason,
            "message": "the fake API server accepts every CRD"})
    };
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    obj["status"] = json!({
        "conditions": [condition("NamesAccepted", "NoConflicts"), condition("Established", "InitialNamesAccepted")],
        "acceptedNames": obj["spec"]["names"].clone(),
        "storedVersions": stored,
    });
}

fn watch_line(kind: &str, object: Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON");
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(rt: &ResType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
    )
}

// ---------------------------------------------------------------------------------------------
// Discovery

impl State {
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => versions.push(t.version.clone()),
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(g, versions)| {
                let gv = |v: &String| json!({"groupVersion": format!("{g}/{v}"), "version": v});
                json!({"name": g, "versions": versions.iter().map(gv).collect::<Vec<_>>(),
                    "preferredVersion": gv(&versions[0])})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for t in self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
        {
            resources.push(json!({"name": t.plural, "singularName": t.kind.to_lowercase(),
                "namespaced": t.namespaced, "kind": t.kind, "verbs": VERBS, "shortNames": t.short_names}));
            if t.status {
                resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
            }
        }
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        (!resources.is_empty()).then(|| {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        })
    }

    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` for `/api` (core) or `/apis` (the rest).
    fn aggregated(&self, core: bool) -> Value {
        let items: Vec<Value> = self
            .groups()
            .into_iter()
            .filter(|(g, _)| g.is_empty() == core)
            .map(|(g, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self
                            .types
                            .iter()
                            .filter(|t| t.group == g && &t.version == v)
                            .map(|t| {
                                let gvk = json!({"group": g, "version": v, "kind": t.kind});
                                let sub: Vec<Value> = t
                                    .status
                                    .then(|| {
                                        json!({"subresource": "status",
                                    "responseKind": gvk, "verbs": ["get", "patch", "update"]})
                                    })
                                    .into_iter()
                                    .collect();
                                json!({"resource": t.plural, "responseKind": gvk,
                                    "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": t.kind.to_lowercase(), "verbs": VERBS,
                                    "shortNames": t.short_names, "subresources": sub})
                            })
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": g}, "versions": versions})
            })
            .collect();
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items})
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Decoded query parameters.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        let decode = |s: &str| {
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                    (b'%', Some(b)) => {
                        out.push(b);
                        i += 2;
                    }
                    (b'+', _) => out.push(b' '),
                    (b, _) => out.push(b),
                }
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn is_true(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// What a path addresses.
enum Route {
    Document(Value),
    Collection { rt: ResType, ns: Option<String> },
    Object { rt: ResType, key: Key, status: bool },
}

impl State {
    fn route(&self, path: &str, aggregated: bool, address: &str) -> Result<Route, ApiError> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let doc = |v: Option<Value>| v.map(Route::Document).ok_or_else(unknown_resource);
        match segs.as_slice() {
            ["version"] => doc(Some(
                json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64"}),
            )),
            ["api"] if aggregated => doc(Some(self.aggregated(true))),
            ["api"] => doc(Some(json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}))),
            ["apis"] if aggregated => doc(Some(self.aggregated(false))),
            ["apis"] => doc(Some(self.api_group_list())),
            ["api", "v1"] => doc(self.resource_list("", "v1")),
            ["apis", g, v] => doc(self.resource_list(g, v)),
            ["api", "v1", rest @ ..] => self.route_resource("", "v1", rest),
            ["apis", g, v, rest @ ..] => self.route_resource(g, v, rest),
            _ => Err(unknown_resource()),
        }
    }

    fn route_resource(&self, group: &str, version: &str, rest: &[&str]) -> Result<Route, ApiError> {
        let (ns, rest) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() && tail != ["status"] => (Some(*ns), tail),
            _ => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (*plural, None, false),
            [plural, name] => (*plural, Some(*name), false),
            [plural, name, "status"] => (*plural, Some(*name), true),
            _ => return Err(unknown_resource()),
        };
        let rt = self
            .find_type(group, version, plural)
            .ok_or_else(unknown_resource)?;
        if (ns.is_some() && !rt.namespaced) || (status && !rt.status) {
            return Err(unknown_resource());
        }
        match name {
            None => Ok(Route::Collection {
                rt,
                ns: ns.map(String::from),
            }),
            Some(_) if rt.namespaced && ns.is_none() => Err(unknown_resource()),
            Some(name) => {
                let key = rt.key(ns.unwrap_or(""), name);
                Ok(Route::Object { rt, key, status })
            }
        }
    }
}

/// One parsed request (all but the watch path run under the state lock).
struct Call {
    method: Method,
    path: String,
    query: Query,
    content_type: String,
    aggregated: bool,
    body: Bytes,
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

impl State {
    fn dispatch(&mut self, call: &Call, address: &str) -> Result<(u16, Value), ApiError> {
        if call.query.get("dryRun").is_some_and(|v| !v.is_empty()) {
            return Err(bad_request("dryRun is not supported by the fake API server"));
        }
        let route = self.route(&call.path, call.aggregated, address)?;
        let not_allowed = || {
            ApiError::new(
                405,
                "MethodNotAllowed",
                format!(
                    "the server does not allow this method on the requested resource ({} {})",
                    call.method, call.path
                ),
            )
        };
        match (route, &call.method) {
            (Route::Document(doc), &Method::GET) => Ok((200, doc)),
            (Route::Collection { rt, ns }, &Method::GET) => {
                Ok((200, self.list(&Filter::new(&rt, ns.as_deref(), &call.query)?)))
            }
            (Route::Collection { rt, ns: Some(ns) }, &Method::POST) => Ok((
                201,
                self.create(&rt, &ns, parse_json(&call.body)?, Mode::Main, None)?,
            )),
            (Route::Collection { rt, ns: None }, &Method::POST) if !rt.namespaced => Ok((
                201,
                self.create(&rt, "", parse_json(&call.body)?, Mode::Main, None)?,
            )),
            (Route::Collection { rt, ns }, &Method::DELETE) => {
                let filter = Filter::new(&rt, ns.as_deref(), &call.query)?;
                let orphan = delete_options(call)?.1;
                let keys: Vec<Key> = self
                    .objects
                    .iter()
                    .filter(|(k, o)| filter.covers(k) && filter.matches(o))
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut list = self.list(&filter);
                for key in keys {
                    self.delete_obj(&key, orphan);
                }
                list["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                Ok((200, list))
            }
            (Route::Object { rt, key, .. }, &Method::GET) => {
                let obj = self.objects.get(&key).ok_or_else(|| not_found(&rt, &key.3))?;
                Ok((200, rt.present(obj)))
            }
            (Route::Object { rt, key, status }, &Method::PUT) => {
                let mode = if status { Mode::Status } else { Mode::Main };
                Ok((
                    200,
                    rt.present(&self.update(&rt, &key, parse_json(&call.body)?, mode, None)?),
                ))
            }
            (Route::Object { rt, key, status }, &Method::PATCH) => {
                let (code, obj) = self.patch(&rt, &key, status, call)?;
                Ok((code, rt.present(&obj)))
            }
            (
                Route::Object {
                    rt,
                    key,
                    status: false,
                },
                &Method::DELETE,
            ) => {
                let (preconditions, orphan) = delete_options(call)?;
                let obj = self.objects.get(&key).ok_or_else(|| not_found(&rt, &key.3))?;
                for (field, path) in [
                    ("UID", "/metadata/uid"),
                    ("ResourceVersion", "/metadata/resourceVersion"),
                ] {
                    let wanted = str_at(&preconditions, &path.replace("/metadata/", "/"));
                    let actual = str_at(obj, path);
                    if !wanted.is_empty() && wanted != actual {
                        let why = format!(
                            "Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"
                        );
                        return Err(conflict(&rt, &key.3, &why));
                    }
                }
                let uid = str_at(obj, "/metadata/uid").to_owned();
                match self.delete_obj(&key, orphan) {
                    Some(still_there) => Ok((200, rt.present(&still_there))),
                    None => Ok((
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "details": {"name": key.3, "group": rt.group,
                        "kind": rt.plural, "uid": uid}}),
                    )),
                }
            }
            _ => Err(not_allowed()),
        }
    }

    fn patch(
        &mut self,
        rt: &ResType,
        key: &Key,
        status: bool,
        call: &Call,
    ) -> Result<(u16, Value), ApiError> {
        let mode = if status { Mode::Status } else { Mode::Main };
        let content_type = call.content_type.split(';').next().unwrap_or("").trim();
        if content_type == "application/apply-patch+yaml" {
            return self.apply(rt, key, status, call);
        }
        let old = self.objects.get(key).ok_or_else(|| not_found(rt, &key.3))?;
        let mut obj = rt.present(old);
        match content_type {
            // Strategic merge patch is treated as a JSON merge patch (see the module doc).
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                json_patch::merge(&mut obj, &parse_json(&call.body)?);
            }
            "application/json-patch+json" => {
                let patch: json_patch::Patch = serde_json::from_slice(&call.body)
                    .map_err(|e| bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut obj, &patch).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                    .about(rt, &key.3)
                })?;
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format ({other}) - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                     application/strategic-merge-patch+json"
                    ),
                ));
            }
        }
        Ok((200, self.update(rt, key, obj, mode, None)?))
    }

    /// Server-side apply (see the module doc for how it is simplified).
    fn apply(
        &mut self,
        rt: &ResType,
        key: &Key,
        status: bool,
        call: &Call,
    ) -> Result<(u16, Value), ApiError> {
        let manager = call.query.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
            bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
        })?;
        let mut applied: Value = serde_json::from_slice(&call.body)
            .or_else(|_| serde_yaml_ng::from_slice(&call.body))
            .map_err(|e| bad_request(format!("invalid apply patch: {e}")))?;
        check_type(rt, &applied, true)?;
        let name = str_at(&applied, "/metadata/name");
        if name != key.3 {
            return Err(bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.3
            )));
        }
        let Some(old) = self.objects.get(key) else {
            if status {
                return Err(not_found(rt, &key.3));
            }
            return Ok((201, self.create(rt, &key.2, applied, Mode::Main, Some(manager))?));
        };
        let mut obj = rt.present(old);
        if status {
            let mut merged = obj.get("status").cloned().unwrap_or_else(|| json!({}));
            deep_merge(&mut merged, &applied["status"]);
            set_field(&mut obj, "status", Some(merged));
        } else {
            if rt.status {
                set_field(&mut applied, "status", None);
            }
            deep_merge(&mut obj, &applied);
        }
        let mode = if status { Mode::Status } else { Mode::Main };
        Ok((200, self.update(rt, key, obj, mode, Some(manager))?))
    }
}

/// DeleteOptions from the body and query: `(preconditions, orphan)`.
fn delete_options(call: &Call) -> Result<(Value, bool), ApiError> {
    let opts = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(&call.body)?
    };
    let policy = call
        .query
        .get("propagationPolicy")
        .unwrap_or_else(|| str_at(&opts, "/propagationPolicy"));
    if opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(bad_request("dryRun is not supported by the fake API server"));
    }
    Ok((opts["preconditions"].clone(), policy == "Orphan"))
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().expect("header"));
    response
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_json())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{} {target}", req.method()));
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, accept) = (header(CONTENT_TYPE), header(ACCEPT));
    let mut call = Call {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        query: Query::parse(req.uri().query().unwrap_or("")),
        content_type,
        aggregated: accept.contains("apidiscovery.k8s.io"),
        body: Bytes::new(),
    };
    call.body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(error_response(&bad_request("could not read the request body"))),
    };
    if shared.unavailable.load(Ordering::SeqCst) {
        let e = ApiError::new(
            503,
            "ServiceUnavailable",
            "the fake API server is set unavailable",
        );
        return Ok(error_response(&e));
    }
    if call.method == Method::GET && call.query.is_true("watch") {
        return Ok(start_watch(&shared, &call).unwrap_or_else(|e| error_response(&e)));
    }
    let result = shared.with(|state| state.dispatch(&call, &shared.address));
    Ok(match result {
        Ok((code, body)) => json_response(code, &body),
        Err(e) => error_response(&e),
    })
}

// ---------------------------------------------------------------------------------------------
// Watch

struct WatchStream {
    shared: Arc<Shared>,
    filter: Filter,
    queue: VecDeque<Bytes>,
    pos: u64,
    deadline: Option<tokio::time::Instant>,
    bookmarks: bool,
    changed: watch::Receiver<u64>,
    done: bool,
}

fn start_watch(shared: &Arc<Shared>, call: &Call) -> Result<Response<Body>, ApiError> {
    let state = shared.state();
    let Route::Collection { rt, ns } = state.route(&call.path, false, &shared.address)? else {
        return Err(bad_request("watch needs a collection path"));
    };
    let filter = Filter::new(&rt, ns.as_deref(), &call.query)?;
    let bookmarks = call.query.is_true("allowWatchBookmarks");
    let send_initial = call.query.is_true("sendInitialEvents");
    let timeout = match call.query.get("timeoutSeconds") {
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => None,
    };
    let mut queue = VecDeque::new();
    let rv = call.query.get("resourceVersion").unwrap_or("");
    let pos = if send_initial || rv.is_empty() || rv == "0" {
        // Synthetic ADDED events for the current state, as the real server sends them.
        for (_, obj) in state
            .objects
            .iter()
            .filter(|(k, o)| filter.covers(k) && filter.matches(o))
        {
            queue.push_back(watch_line("ADDED", rt.present(obj)));
        }
        if send_initial && bookmarks {
            queue.push_back(bookmark(&rt, state.rv, true));
        }
        state.rv
    } else {
        rv.parse::<u64>()
            .map_err(|_| bad_request(format!("invalid resourceVersion {rv:?}")))?
    };
    drop(state);
    let stream = WatchStream {
        shared: Arc::clone(shared),
        filter,
        queue,
        pos,
        deadline: timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        bookmarks,
        changed: shared.changed.subscribe(),
        done: false,
    };
    let body = StreamBody::new(futures::stream::unfold(stream, next_chunk));
    let mut response = Response::new(body.boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().expect("header"));
    Ok(response)
}

enum Wake {
    Changed,
    Closed,
    Timeout,
}

async fn next_chunk(mut w: WatchStream) -> Option<(Result<Frame<Bytes>, Infallible>, WatchStream)> {
    loop {
        if let Some(chunk) = w.queue.pop_front() {
            return Some((Ok(Frame::data(chunk)), w));
        }
        if w.done || w.shared.unavailable.load(Ordering::SeqCst) {
            return None;
        }
        w.changed.borrow_and_update();
        let (lines, pos) = w.shared.state().events_since(w.pos, &w.filter);
        w.pos = pos;
        w.queue.extend(lines);
        if !w.queue.is_empty() {
            continue;
        }
        let deadline = w.deadline;
        let wake = tokio::select! {
            r = w.changed.changed() => if r.is_ok() { Wake::Changed } else { Wake::Closed },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => Wake::Timeout,
        };
        match wake {
            Wake::Changed => {}
            Wake::Closed => w.done = true,
            Wake::Timeout => {
                if w.bookmarks {
                    w.queue.push_back(bookmark(&w.filter.rt, w.pos, false));
                }
                w.done = true;
            }
        }
    }
}
