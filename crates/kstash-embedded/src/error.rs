//! Typed errors of the embedded store; every message names the object concerned and says what to do.

use kstash_api::ErrorCategory;
use std::path::PathBuf;

use thiserror::Error;

/// Human name of an object as kubectl prints it: `BackupConfiguration demo/sample-backup`, or
/// `Addon postgres-addon` for cluster-scoped kinds (empty namespace).
pub fn object_ref(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// The plural kubectl-style name of a kind (`backupconfigurations`), for hints in messages.
fn plural(kind: &str) -> String {
    kstash_api::meta::lookup(kind)
        .map(|t| t.plural.to_string())
        .unwrap_or_else(|| kind.to_ascii_lowercase())
}

/// Everything that can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error(
        "{} not found; check the kind, namespace and name (list what exists with `kstash get {} -A`)",
        object_ref(kind, namespace, name),
        plural(kind)
    )]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },

    /// `create` of an object that already exists.
    #[error(
        "{} already exists; use apply or update to change it, or delete it first",
        object_ref(kind, namespace, name)
    )]
    AlreadyExists {
        kind: String,
        namespace: String,
        name: String,
    },

    /// Optimistic-concurrency failure: the caller's copy is stale (resourceVersion or uid mismatch).
    #[error(
        "Operation cannot be fulfilled on {}: {reason}",
        object_ref(kind, namespace, name)
    )]
    Conflict {
        kind: String,
        namespace: String,
        name: String,
        /// E.g. "the object has been modified; please apply your changes to the latest version and
        /// try again".
        reason: String,
    },

    /// The request itself is wrong (unknown kind, missing name, bad namespace, forbidden change).
    #[error("{object} is invalid: {reason}")]
    Invalid {
        /// The object as far as it could be identified (`BackupConfiguration demo/x`, or `object`).
        object: String,
        reason: String,
    },

    /// `changes_since` was asked for a revision older than the retained change log.
    #[error(
        "too old resource version: {requested} (the change log starts after {compacted}); list the objects again and watch from the current revision"
    )]
    Gone { requested: u64, compacted: u64 },

    /// The database file was written by a newer kstash.
    #[error(
        "the store {path} has schema version {found}, newer than {supported} supported by this kstash; upgrade kstash"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// SQLite failed.
    #[error(
        "database error in {path}: {source}; check that the file is readable and writable and not corrupt"
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// File-system failure (creating the data directory or the database file).
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stored document could not be (de)serialised.
    #[error("stored document of {object} is not valid JSON: {source}; the store may be corrupt")]
    Json {
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// What kind of failure this is: a busy or failing database file is transient, a schema from a
    /// newer kstash is permanent.
    pub fn category(&self) -> ErrorCategory {
        match self {
            StoreError::NotFound { .. } => ErrorCategory::NotFound,
            StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => ErrorCategory::Conflict,
            StoreError::Invalid { .. } | StoreError::Json { .. } => ErrorCategory::Invalid,
            StoreError::Gone { .. } | StoreError::Sqlite { .. } | StoreError::Io { .. } => {
                ErrorCategory::Transient
            }
            StoreError::SchemaTooNew { .. } => ErrorCategory::Permanent,
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// True for [`StoreError::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, StoreError::AlreadyExists { .. })
    }

    /// True for [`StoreError::Conflict`]: re-read the object and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// True for [`StoreError::Invalid`].
    pub fn is_invalid(&self) -> bool {
        matches!(self, StoreError::Invalid { .. })
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
