//! The resource-client seam: what reconcilers and executors need from a resource store (the
//! embedded SQLite store or the Kubernetes API), as an object-safe trait over JSON documents, plus
//! typed helpers. Only the interface lives here; implementations live in the runtimes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::addons::{Addon, Function};
use crate::appcatalog::AppBinding;
use crate::core::{BackupBlueprint, BackupConfiguration, BackupSession, HookTemplate, RestoreSession};
use crate::meta::{self, ResourceType};
use crate::storage::{BackupStorage, Repository, RetentionPolicy, Snapshot};

/// Why a resource operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{object}: conflict: {reason}")]
    Conflict { object: String, reason: String },
    #[error("{object} is invalid: {message}")]
    Invalid { object: String, message: String },
    #[error("{object}: cannot decode: {message}")]
    Decode { object: String, message: String },
    #[error("resource store: {0}")]
    Other(String),
}

impl ClientError {
    /// True for a missing object.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound(_))
    }
    /// True for a resourceVersion conflict or an already existing object.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Conflict { .. })
    }
    /// What kind of failure this is: a store that cannot be reached or answers garbage is
    /// transient, a document that does not decode is invalid.
    pub fn category(&self) -> crate::ErrorCategory {
        use crate::ErrorCategory as C;
        match self {
            ClientError::NotFound(_) => C::NotFound,
            ClientError::Conflict { .. } => C::Conflict,
            ClientError::Invalid { .. } | ClientError::Decode { .. } => C::Invalid,
            ClientError::Other(_) => C::Transient,
        }
    }
}

/// Result of resource operations.
pub type ClientResult<T> = Result<T, ClientError>;

/// A resource store with Kubernetes API-server semantics (resourceVersion checks, a status
/// subresource, finalizers and owner references).
pub trait Resources: Send + Sync {
    /// The object, or `None` when it does not exist.
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>>;
    /// The object without the status fields that aggregate other objects
    /// ([`meta::aggregate_status_fields`]: a BackupStorage's `status.repositories`), for the
    /// frequent reads that do not need them. A store that keeps those fields apart answers without
    /// reading them; by default they are read and dropped.
    fn get_lean(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
    ) -> ClientResult<Option<Value>> {
        let mut obj = self.get(rt, namespace, name)?;
        let fields = meta::aggregate_status_fields(rt.group, rt.kind);
        if let Some(status) = obj
            .as_mut()
            .and_then(|o| o.get_mut("status"))
            .and_then(Value::as_object_mut)
        {
            for f in fields {
                status.remove(*f);
            }
        }
        Ok(obj)
    }
    /// Objects of `rt` in `namespace` (`None`: every namespace) carrying every label in `labels`.
    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>>;
    /// Create; fails with `Conflict` when the name is taken.
    fn create(&self, obj: Value) -> ClientResult<Value>;
    /// Replace metadata and spec; `metadata.resourceVersion` must be current.
    fn update(&self, obj: Value) -> ClientResult<Value>;
    /// Replace the status; `metadata.resourceVersion` must be current.
    fn update_status(&self, obj: Value) -> ClientResult<Value>;
    /// Delete (objects with finalizers only get a deletionTimestamp). A missing object is not an error.
    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()>;
    /// Objects of every kind the server serves, found by discovery; `None` when this client
    /// knows only kstash's registry (then [`crate::dynamic::RegistryObjects`] stands in).
    fn any_objects(&self) -> Option<&dyn crate::dynamic::AnyObjects> {
        None
    }
}

/// A kind with its resource type, for the typed helpers.
pub trait Kind: Serialize + DeserializeOwned {
    const RT: &'static ResourceType;
}

macro_rules! kind {
    ($t:ty, $rt:path) => {
        impl Kind for $t {
            const RT: &'static ResourceType = &$rt;
        }
    };
}
kind!(BackupStorage, meta::BACKUP_STORAGE);
kind!(Repository, meta::REPOSITORY);
kind!(RetentionPolicy, meta::RETENTION_POLICY);
kind!(Snapshot, meta::SNAPSHOT);
kind!(BackupConfiguration, meta::BACKUP_CONFIGURATION);
kind!(BackupSession, meta::BACKUP_SESSION);
kind!(RestoreSession, meta::RESTORE_SESSION);
kind!(HookTemplate, meta::HOOK_TEMPLATE);
kind!(BackupBlueprint, meta::BACKUP_BLUEPRINT);
kind!(crate::verification::BackupVerifier, meta::BACKUP_VERIFIER);
kind!(
    crate::verification::BackupVerificationSession,
    meta::BACKUP_VERIFICATION_SESSION
);
kind!(Addon, meta::ADDON);
kind!(Function, meta::FUNCTION);
kind!(AppBinding, meta::APP_BINDING);
kind!(k8s_openapi::api::core::v1::Secret, meta::SECRET);
kind!(crate::stash::Repository, meta::STASH_REPOSITORY);
kind!(
    crate::stash::BackupConfiguration,
    meta::STASH_BACKUP_CONFIGURATION
);
kind!(crate::stash::BackupSession, meta::STASH_BACKUP_SESSION);
kind!(crate::stash::RestoreSession, meta::STASH_RESTORE_SESSION);
kind!(crate::stash::BackupBlueprint, meta::STASH_BACKUP_BLUEPRINT);
kind!(crate::stash::Task, meta::STASH_TASK);

/// Decode a stored document as `T`.
pub fn decode<T: Kind>(value: Value) -> ClientResult<T> {
    let object = format!(
        "{} {}/{}",
        T::RT.kind,
        value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        object,
        message: e.to_string(),
    })
}

/// Encode `obj` as a document with apiVersion and kind set.
pub fn encode<T: Kind>(obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(T::RT.api_version()));
        map.insert("kind".into(), Value::String(T::RT.kind.to_string()));
    }
    v
}

/// Typed conveniences over any [`Resources`].
pub trait ResourcesExt: Resources {
    /// The typed object, or `None`.
    fn get_as<T: Kind>(&self, namespace: &str, name: &str) -> ClientResult<Option<T>> {
        self.get(T::RT, namespace, name)?.map(decode).transpose()
    }
    /// The typed object without its aggregate status fields ([`Resources::get_lean`]), or `None`.
    fn get_lean_as<T: Kind>(&self, namespace: &str, name: &str) -> ClientResult<Option<T>> {
        self.get_lean(T::RT, namespace, name)?.map(decode).transpose()
    }
    /// The typed object, or `NotFound` naming it.
    fn must_get<T: Kind>(&self, namespace: &str, name: &str) -> ClientResult<T> {
        self.get_as(namespace, name)?
            .ok_or_else(|| ClientError::NotFound(crate::object::describe(T::RT, Some(namespace), name)))
    }
    /// Typed list.
    fn list_as<T: Kind>(&self, namespace: Option<&str>, labels: &[(&str, &str)]) -> ClientResult<Vec<T>> {
        self.list(T::RT, namespace, labels)?
            .into_iter()
            .map(decode)
            .collect()
    }
    /// Typed create.
    fn create_as<T: Kind>(&self, obj: &T) -> ClientResult<T> {
        decode(self.create(encode(obj))?)
    }
    /// Typed update.
    fn update_as<T: Kind>(&self, obj: &T) -> ClientResult<T> {
        decode(self.update(encode(obj))?)
    }
    /// Typed status update.
    fn update_status_as<T: Kind>(&self, obj: &T) -> ClientResult<T> {
        decode(self.update_status(encode(obj))?)
    }
}

impl<R: Resources + ?Sized> ResourcesExt for R {}
