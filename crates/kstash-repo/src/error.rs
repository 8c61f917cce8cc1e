//! The engine's error type: every failure names the repository file, blob or snapshot concerned.

use crate::backend::FileType;
use crate::id::Id;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage operation failed.
    #[error("{op} {path}: {source}")]
    Backend {
        /// What was attempted (read, write, list, remove, stat).
        op: &'static str,
        /// The file or directory, as the backend names it.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote storage failed; the boxed error (from the storage crate) says which storage,
    /// which object and why.
    #[error("{0}")]
    Storage(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A file that should exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// A write-once file already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// No key file could be opened with the password.
    #[error("wrong password or no key found for repository {repo}")]
    WrongPassword {
        /// The repository location.
        repo: String,
    },
    /// `init` on a location that already holds a repository.
    #[error("repository {0} already initialised (config exists)")]
    AlreadyInitialised(String),
    /// A stored object failed authentication: wrong key or changed bytes.
    #[error("{file}: ciphertext verification failed (MAC mismatch): the file is corrupted or was changed")]
    Mac {
        /// The file (and blob) whose MAC failed.
        file: String,
    },
    /// Other envelope or KDF errors.
    #[error("{file}: {source}")]
    Crypto {
        /// The file concerned.
        file: String,
        /// The envelope error.
        #[source]
        source: crate::crypto::CryptoError,
    },
    /// A stored file's name is not the SHA-256 of its bytes, or a blob's content does not hash to its id.
    #[error("{what}: hash mismatch (expected {expected}, got {actual})")]
    HashMismatch {
        /// The file or blob.
        what: String,
        /// The id it should have.
        expected: Id,
        /// The id of what was read.
        actual: Id,
    },
    /// JSON that could not be parsed or written.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// The file or blob.
        what: String,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// Compressed data that would not decompress, or an unknown unpacked-file format.
    #[error("{what}: {reason}")]
    Format {
        /// The file or blob.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A repository version this engine does not know.
    #[error("repository {repo}: unsupported repository version {version}")]
    UnsupportedVersion {
        /// The repository location.
        repo: String,
        /// The version found in config.
        version: u32,
    },
    /// A pack file whose header is invalid.
    #[error("pack {pack}: {reason}")]
    InvalidPack {
        /// The pack id.
        pack: Id,
        /// What is wrong.
        reason: String,
    },
    /// A blob the index does not know.
    #[error("{kind} blob {id} not found in the index")]
    BlobNotFound {
        /// Data or tree.
        kind: &'static str,
        /// The blob id.
        id: Id,
    },
    /// No snapshot matched.
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    /// A snapshot id prefix matched more than one snapshot.
    #[error("snapshot prefix {0} is ambiguous")]
    AmbiguousSnapshot(String),
    /// A path not present in a snapshot.
    #[error("path {path} not found in snapshot {snapshot}")]
    PathNotFound {
        /// The snapshot id.
        snapshot: String,
        /// The path asked for.
        path: String,
    },
    /// A path in a snapshot that is not a regular file.
    #[error("{path} in snapshot {snapshot} is a {node_type}, not a file")]
    NotAFile {
        /// The snapshot id.
        snapshot: String,
        /// The path asked for.
        path: String,
        /// Its node type.
        node_type: String,
    },
    /// The input stream of a backup failed.
    #[error("reading the input stream failed after {bytes} bytes: {source}")]
    Input {
        /// Bytes read before the failure.
        bytes: u64,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },
    /// The input stream of a backup was empty and empty input is not allowed.
    #[error("the input stream was empty (no data read)")]
    EmptyInput,
    /// Writing restored data failed.
    #[error("writing output failed: {0}")]
    Output(#[source] std::io::Error),
    /// Key management refused (e.g. removing the key in use).
    #[error("{0}")]
    Key(String),
    /// A conflicting lock is held by another process.
    #[error("{}", crate::lock::locked_message(.holder, .waited))]
    Locked {
        /// The lock in the way.
        holder: Box<crate::lock::LockInfo>,
        /// How long we waited for it to go away.
        waited: std::time::Duration,
    },
    /// Our lock could not be kept fresh, so others may have taken it for stale.
    #[error("repository lock lost: {0}")]
    LockLost(String),
    /// A snapshot holds a name that would restore outside the target (`..`, `a/b`, `/etc/x`, …).
    #[error("refusing to restore snapshot {snapshot} into {}: {path} has the unsafe name {name:?} ({reason})", target.display())]
    UnsafeName {
        /// The snapshot id.
        snapshot: String,
        /// Where in the snapshot (the directory holding the name).
        path: String,
        /// The offending name.
        name: String,
        /// The restore target.
        target: std::path::PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A file system operation of a restore failed.
    #[error("cannot {op} {} ({path} of snapshot {snapshot}): {source}", target.display())]
    RestoreIo {
        /// The snapshot id.
        snapshot: String,
        /// The path in the snapshot.
        path: String,
        /// The file in the target directory.
        target: std::path::PathBuf,
        /// What was attempted.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content of a file could not be read from the repository during a restore.
    #[error("cannot restore {path} of snapshot {snapshot} to {}: {source}", target.display())]
    RestoreData {
        /// The snapshot id.
        snapshot: String,
        /// The path in the snapshot.
        path: String,
        /// The file in the target directory.
        target: std::path::PathBuf,
        /// The repository error.
        #[source]
        source: Box<Error>,
    },
    /// Every pack that holds a needed blob is missing from storage.
    #[error("stored only in pack {packs}, which is missing from storage")]
    PackMissing {
        /// The pack ids, comma-separated.
        packs: String,
    },
    /// The repository is damaged where an operation needs it intact (prune, copy).
    #[error("{what}: {source}; the repository is damaged: run `kstash repo check` (nothing was deleted)")]
    Damaged {
        /// The snapshot, tree, file or blob concerned.
        what: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// Invalid argument or option.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A worker thread panicked or a pipeline stage vanished.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wrap a crypto failure for `file`; MAC failures become [`Error::Mac`].
    pub fn crypto(file: impl Into<String>, e: crate::crypto::CryptoError) -> Error {
        match e {
            crate::crypto::CryptoError::Mac => Error::Mac { file: file.into() },
            source => Error::Crypto {
                file: file.into(),
                source,
            },
        }
    }

    /// Wrap a JSON error for `what`.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}

/// How a repository file is named in messages: `snapshots/1a2b…`.
pub fn file_name(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "config".to_string(),
        _ => format!("{}/{}", t.dir(), name),
    }
}
