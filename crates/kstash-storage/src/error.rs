//! The storage crate's error type: every failure names the storage, the object and why.

use std::fmt;

use kstash_api::ErrorCategory;

/// Result with the storage crate's [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Why a request to a remote storage failed, as far as the answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// The credentials were refused (HTTP 401/403, a bad signature, an unknown key).
    Auth,
    /// The object does not exist.
    NotFound,
    /// The bucket or container does not exist.
    BucketMissing,
    /// The server could not be reached or the connection broke (after retries).
    Network,
    /// The server kept answering "slow down" / 5xx (after retries).
    Unavailable,
    /// Anything else the server or the client library reported.
    Other,
}

impl RemoteKind {
    /// A short human phrase for messages.
    pub fn phrase(self) -> &'static str {
        match self {
            RemoteKind::Auth => "access denied (check the credentials)",
            RemoteKind::NotFound => "not found",
            RemoteKind::BucketMissing => "the bucket/container does not exist (create it first)",
            RemoteKind::Network => "storage unreachable (check the endpoint and the network)",
            RemoteKind::Unavailable => "the storage kept failing (server errors after retries)",
            RemoteKind::Other => "storage error",
        }
    }
}

impl fmt::Display for RemoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// Everything that can go wrong when configuring or using a storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A resource or URL describes a storage that cannot work; says which field and how to fix it.
    #[error("{object}: {field}: {reason}; {fix}")]
    Config {
        /// The object concerned (`BackupStorage ns/name`, `repository URL s3:…`).
        object: String,
        /// The field (`spec.storage.s3.bucket`, secret key `AWS_ACCESS_KEY_ID`).
        field: String,
        /// What is wrong.
        reason: String,
        /// What to do about it.
        fix: String,
    },
    /// A request to the storage failed.
    #[error("{storage}: {op} {object}: {kind}: {detail}")]
    Remote {
        /// The storage (`s3:http://host/bucket/prefix`).
        storage: String,
        /// What was attempted (read, write, list, delete, stat).
        op: &'static str,
        /// The object path inside the storage.
        object: String,
        /// The class of failure.
        kind: RemoteKind,
        /// The server's or library's own words.
        detail: String,
    },
    /// The operation is not possible on this kind of storage.
    #[error("{storage}: {what} is not supported by this storage")]
    Unsupported {
        /// The storage.
        storage: String,
        /// What was asked.
        what: String,
    },
    /// A YAML document in the bucket could not be read or written.
    #[error("{object}: {source}")]
    Yaml {
        /// The object concerned.
        object: String,
        /// The parser error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A local file (spool file, local storage) could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An engine error (from a local repository).
    #[error(transparent)]
    Repo(#[from] kstash_repo::Error),
}

/// What kind of failure an engine error is: storage I/O and locks may go away by themselves, a
/// wrong password or a bad key is the user's to fix, a missing file or snapshot is not found, and
/// damaged data or a failed input stays failed.
pub fn repo_error_category(e: &kstash_repo::Error) -> ErrorCategory {
    use kstash_repo::Error as E;
    match e {
        E::Backend { .. } | E::Locked { .. } | E::LockLost(_) => ErrorCategory::Transient,
        E::Storage(inner) => match inner.downcast_ref::<StorageError>() {
            Some(s) => s.category(),
            None => ErrorCategory::Transient,
        },
        E::NotFound(_) | E::SnapshotNotFound(_) | E::PathNotFound { .. } => ErrorCategory::NotFound,
        E::AlreadyExists(_) | E::AlreadyInitialised(_) => ErrorCategory::Conflict,
        E::WrongPassword { .. } | E::Key(_) | E::AmbiguousSnapshot(_) | E::NotAFile { .. } => {
            ErrorCategory::Invalid
        }
        _ => ErrorCategory::Permanent,
    }
}

impl StorageError {
    /// What kind of failure this is: a network or server failure is transient, a refused
    /// credential or a bad field is the user's to fix, a missing object is not found.
    pub fn category(&self) -> ErrorCategory {
        match self {
            StorageError::Config { .. } | StorageError::Unsupported { .. } => ErrorCategory::Invalid,
            StorageError::Remote { kind, .. } => match kind {
                RemoteKind::Auth | RemoteKind::BucketMissing => ErrorCategory::Invalid,
                RemoteKind::NotFound => ErrorCategory::NotFound,
                RemoteKind::Network | RemoteKind::Unavailable | RemoteKind::Other => ErrorCategory::Transient,
            },
            StorageError::Yaml { .. } => ErrorCategory::Permanent,
            StorageError::Io { .. } => ErrorCategory::Transient,
            StorageError::Repo(e) => repo_error_category(e),
        }
    }

    /// The class of a remote failure, if this is one.
    pub fn remote_kind(&self) -> Option<RemoteKind> {
        match self {
            StorageError::Remote { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// A configuration error.
    pub(crate) fn config(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> StorageError {
        StorageError::Config {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

/// Engine errors for the [`kstash_repo::Backend`] implementations: "not found" stays the engine's
/// own variant (it decides "no repository here" on it); the rest keeps the whole storage error.
impl From<StorageError> for kstash_repo::Error {
    fn from(e: StorageError) -> kstash_repo::Error {
        match e {
            StorageError::Remote {
                kind: RemoteKind::NotFound,
                storage,
                object,
                ..
            } => kstash_repo::Error::NotFound(format!("{storage}/{object}")),
            StorageError::Repo(e) => e,
            other => kstash_repo::Error::Storage(Box::new(other)),
        }
    }
}
