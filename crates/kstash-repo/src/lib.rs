//! The kstash engine: restic-compatible repositories (format v2) written and read by our own code,
//! built for streaming database dumps with bounded memory. Knows nothing of Kubernetes.

pub mod archiver;
pub mod backend;
pub mod backup_stream;
mod blob_read;
pub mod check;
pub mod chunker;
pub mod config;
pub mod copy;
pub mod crypto;
pub mod dump;
pub mod error;
pub mod forget;
pub mod gojson;
pub mod host;
pub mod id;
pub mod index;
pub mod keys;
pub mod lock;
pub mod pack;
pub mod pattern;
pub mod progress;
pub mod prune;
pub mod repair_index;
pub mod repair_snapshots;
pub mod repository;
pub mod restore;
pub mod saver;
pub mod snapshot;
pub mod stats;
pub mod tree;
pub mod verify_tree;

pub use backend::{Backend, FileType, LocalBackend, MemoryBackend};
pub use backup_stream::{StreamBackupOptions, StreamBackupSummary, backup_stream, backup_stream_to_many};
pub use check::{CheckOptions, CheckProblem, CheckReport, ProblemKind, ReadDataSubset, check};
pub use dump::{DumpOptions, dump_file, dump_file_with};
pub use error::{Error, Result};
pub use id::Id;
pub use index::BlobType;
pub use lock::{
    HolderLiveness, HolderState, LivenessJudge, LockInfo, LockOptions, RepoLock, acquire_exclusive,
    acquire_shared, list_locks, remove_all_locks, remove_stale_locks,
};
pub use repository::{InitOptions, Repository};
pub use restore::{ExistingFiles, RestoreOptions, RestoreSummary, restore};
pub use snapshot::{Snapshot, SnapshotEntry};
pub use verify_tree::{CompareOptions, Difference, Mismatch, TreeComparison, compare_restored_tree};
