//! Objects of every kind an API serves, not only kstash's registry: the seam a manifest backup
//! (`kubedump-addon`) reads and restores through. A Kubernetes client answers from discovery; a
//! client without discovery answers with kstash's registry ([`RegistryObjects`]).

use serde_json::Value;

use crate::client::{ClientError, ClientResult, Resources};
use crate::meta::{self, ResourceType};

/// A kind served by an API, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiKind {
    /// API group; empty for the core group.
    pub group: String,
    /// Version within the group.
    pub version: String,
    /// Kind (`StatefulSet`).
    pub kind: String,
    /// Lower-case plural (`statefulsets`).
    pub plural: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
}

impl ApiKind {
    /// The kind of one of kstash's registered resource types.
    pub fn of(rt: &ResourceType) -> ApiKind {
        ApiKind {
            group: rt.group.to_string(),
            version: rt.version.to_string(),
            kind: rt.kind.to_string(),
            plural: rt.plural.to_string(),
            namespaced: rt.namespaced,
        }
    }

    /// `plural` for the core group, `plural.group` otherwise (`statefulsets.apps`).
    pub fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Reading and writing objects of every kind an API serves.
pub trait AnyObjects {
    /// Every kind that can be listed.
    fn kinds(&self) -> ClientResult<Vec<ApiKind>>;
    /// Every object of `kind`, in every namespace.
    fn list(&self, kind: &ApiKind) -> ClientResult<Vec<Value>>;
    /// The object, `None` when it does not exist (`namespace` is ignored for cluster-scoped kinds).
    fn get(&self, kind: &ApiKind, namespace: &str, name: &str) -> ClientResult<Option<Value>>;
    /// Create the object; `Conflict` when its name is taken.
    fn create(&self, kind: &ApiKind, obj: Value) -> ClientResult<Value>;
    /// Replace the object; its `metadata.resourceVersion` must be current.
    fn replace(&self, kind: &ApiKind, obj: Value) -> ClientResult<Value>;
}

/// The kinds of kstash's registry, through a resource client: on the embedded runtime, every
/// object kstash stores (Secrets included).
pub struct RegistryObjects<'a>(pub &'a dyn Resources);

impl RegistryObjects<'_> {
    fn resource_type(kind: &ApiKind) -> ClientResult<&'static ResourceType> {
        meta::by_api_version_kind(&kind.api_version(), &kind.kind).ok_or_else(|| ClientError::Invalid {
            object: format!("{} {}", kind.api_version(), kind.kind),
            message: "is not a kind this installation stores".into(),
        })
    }
}

impl AnyObjects for RegistryObjects<'_> {
    fn kinds(&self) -> ClientResult<Vec<ApiKind>> {
        Ok(meta::every_kind().map(ApiKind::of).collect())
    }

    fn list(&self, kind: &ApiKind) -> ClientResult<Vec<Value>> {
        self.0.list(Self::resource_type(kind)?, None, &[])
    }

    fn get(&self, kind: &ApiKind, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        self.0.get(Self::resource_type(kind)?, namespace, name)
    }

    fn create(&self, _kind: &ApiKind, obj: Value) -> ClientResult<Value> {
        self.0.create(obj)
    }

    fn replace(&self, _kind: &ApiKind, obj: Value) -> ClientResult<Value> {
        self.0.update(obj)
    }
}
