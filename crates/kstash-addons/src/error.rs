//! The error type of the drivers and of the job programs built on them (`kstash-exec` re-exports
//! it): every failure names the object, the field or file, and how to fix it.

use kstash_api::ErrorCategory;
use kstash_api::client::ClientError;
use kstash_api::resolve::ResolveError;
use kstash_storage::StorageError;

/// Everything that can make a job program fail.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A resource could not be read or written (missing object, conflict, decode error).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The session, repository or one of their references could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A resource asks for something that cannot work; says which field and what to do.
    #[error("{object}: {message}")]
    Invalid {
        /// The object concerned (`BackupSession demo/x`, `Addon workload-addon task logical-backup`).
        object: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A Secret that a key is read from does not exist.
    #[error(
        "Secret {secret} not found: {purpose} is read from its key {key}; create the Secret with that key"
    )]
    SecretNotFound {
        /// `namespace/name`.
        secret: String,
        /// The key that was wanted.
        key: String,
        /// What the key is for.
        purpose: String,
    },
    /// A Secret exists but lacks the key (or holds an empty value).
    #[error("Secret {secret} has no key {key} (or it is empty): {purpose}; add `{key}` to the Secret")]
    SecretKeyMissing {
        /// `namespace/name`.
        secret: String,
        /// The missing key.
        key: String,
        /// What the key is for.
        purpose: String,
    },
    /// The task's function has no driver in kstash.
    #[error(
        "Addon {addon} task {task}: function {function} is not supported by kstash yet (supported: {supported})"
    )]
    UnsupportedFunction {
        /// The Addon.
        addon: String,
        /// The task.
        task: String,
        /// The function the Addon task names.
        function: String,
        /// Functions that are supported for this kind of task.
        supported: String,
    },
    /// A BackupVerifier query names a kind of database kstash has no driver for.
    #[error(
        "BackupVerifier query key {key} is not supported by kstash (no driver for it); supported keys: {supported}; fix: remove {key} from spec.query or verify with type RestoreOnly"
    )]
    UnsupportedQuery {
        /// The query key (`mongoDB`).
        key: String,
        /// The keys kstash runs.
        supported: String,
    },
    /// The storage could not be configured or reached.
    #[error("{}", prefixed(object, source))]
    Storage {
        /// The BackupStorage (or repository) concerned.
        object: String,
        /// The storage error.
        #[source]
        source: Box<StorageError>,
    },
    /// The engine failed on a repository.
    #[error("repository {repo}: {source}")]
    Repo {
        /// The repository location.
        repo: String,
        /// The engine error.
        #[source]
        source: Box<kstash_repo::Error>,
    },
    /// The encryption password opens no key of the repository.
    #[error("wrong password for repository {repo}; fix: {fix}")]
    WrongPassword {
        /// The repository location.
        repo: String,
        /// What to do.
        fix: String,
    },
    /// A path to back up does not exist.
    #[error(
        "backup path {path} does not exist ({detail}); fix: correct the `paths` parameter of {task} or mount the volume at {path}"
    )]
    PathMissing {
        /// The path.
        path: String,
        /// The OS error.
        detail: String,
        /// The task (`Addon x task y`).
        task: String,
    },
    /// A database tool (dump or restore client) failed; the message names the tool, the
    /// target and what the tool said.
    #[error("{message}")]
    Tool {
        /// The tool (`pg_dumpall`, `psql`).
        tool: String,
        /// What happened, with the tool's stderr tail.
        message: String,
    },
    /// The target did not accept connections within the wait timeout.
    #[error(
        "{target} is not ready after waiting {waited}: {detail}; fix: start the server, check the AppBinding's host and port, or raise the waitTimeout parameter"
    )]
    NotReady {
        /// The target and how it is reached.
        target: String,
        /// How long it was waited for.
        waited: String,
        /// The last readiness probe's answer.
        detail: String,
    },
    /// The job's deadline passed.
    #[error("deadline exceeded ({deadline}) before {what}")]
    DeadlineExceeded {
        /// The deadline.
        deadline: jiff::Timestamp,
        /// What was about to start.
        what: String,
    },
    /// Some components failed; each message names the Snapshot or RestoreSession and component.
    #[error("{}", .0.join("; "))]
    Failed(Vec<String>),
}

impl ExecError {
    /// What kind of failure this is (decides whether a caller retries).
    pub fn category(&self) -> ErrorCategory {
        match self {
            ExecError::Client(e) => e.category(),
            ExecError::Resolve(e) => e.category(),
            ExecError::Invalid { .. }
            | ExecError::SecretKeyMissing { .. }
            | ExecError::UnsupportedFunction { .. }
            | ExecError::UnsupportedQuery { .. }
            | ExecError::WrongPassword { .. }
            | ExecError::PathMissing { .. } => ErrorCategory::Invalid,
            ExecError::SecretNotFound { .. } => ErrorCategory::NotFound,
            ExecError::Storage { source, .. } => source.category(),
            ExecError::Repo { source, .. } => kstash_storage::repo_error_category(source),
            ExecError::NotReady { .. } => ErrorCategory::Transient,
            ExecError::Tool { .. } | ExecError::DeadlineExceeded { .. } | ExecError::Failed(_) => {
                ErrorCategory::Permanent
            }
        }
    }

    /// A storage error about `object`.
    pub fn storage(object: impl Into<String>, source: StorageError) -> ExecError {
        ExecError::Storage {
            object: object.into(),
            source: Box::new(source),
        }
    }

    /// An [`ExecError::Invalid`].
    pub fn invalid(object: impl Into<String>, message: impl Into<String>) -> ExecError {
        ExecError::Invalid {
            object: object.into(),
            message: message.into(),
        }
    }

    /// An engine error on `repo`, wrong passwords turned into [`ExecError::WrongPassword`].
    pub fn repo(repo: impl Into<String>, source: kstash_repo::Error, password_from: &str) -> ExecError {
        let repo = repo.into();
        match source {
            kstash_repo::Error::WrongPassword { .. } => ExecError::WrongPassword {
                fix: format!(
                    "{password_from} does not open any key of this repository; put back the password \
                     the repository was created with, or add this password as a key of the \
                     repository (restic key add) with the old one"
                ),
                repo,
            },
            source => ExecError::Repo {
                repo,
                source: Box::new(source),
            },
        }
    }
}

/// `object: message`, unless the message already starts with the object.
fn prefixed(object: &str, source: &StorageError) -> String {
    // (Boxed in the variant; `&Box<StorageError>` derefs here.)
    let message = source.to_string();
    if message.starts_with(object) {
        message
    } else {
        format!("{object}: {message}")
    }
}

/// Result with [`ExecError`].
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
