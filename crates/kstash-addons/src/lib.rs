//! The drivers of kstash, one per target kind, and the seams the job programs (`kstash-exec`)
//! call them through: [`stream`], the stream-driver seam (a database dump or export as one byte
//! stream, produced on backup and consumed on restore), and [`volume`], the driver that backs
//! directories up as restic snapshots and restores them.
//!
//! Drivers are chosen by the Addon task's `function` ([`resolve_tasks`], [`DriverKind`]):
//! `workload-backup`/`pvc-backup` and `workload-restore`/`pvc-restore` run the volume driver;
//! `postgres-backup`/`postgres-restore` run the PostgreSQL stream driver (connection from the
//! target AppBinding); `mysql-backup`/`mysql-restore` and `mariadb-backup`/`mariadb-restore` run
//! the MySQL/MariaDB stream driver (`mysqldump`/`mariadb-dump` into `mysql`/`mariadb`);
//! `redis-backup`/`redis-restore` run the native Redis driver (DUMP/RESTORE as a RESP stream);
//! `zookeeper-backup`/`zookeeper-restore` run the native ZooKeeper stream driver;
//! `elasticsearch-backup`/`elasticsearch-restore` (also `opensearch-…`) run the native
//! Elasticsearch/OpenSearch driver, which also restores KubeStash's multielasticdump snapshots;
//! other functions are refused with [`ExecError::UnsupportedFunction`].
//!
//! [`dump_stream`] and [`load_stream`] run a stream driver without a store, the target given by
//! URL and credentials ([`DirectTarget`]).
//!
//! [`run_queries`] and [`run_queries_at`] verify a restored backup by query (a BackupVerifier
//! of `type: Query`): the checks of a `kstash_api::query::VerifierQuery` against the live target,
//! as a [`VerificationReport`].

mod appbinding;
mod direct;
mod duration;
mod elasticsearch;
mod error;
pub mod manifest;
mod mysql;
mod native;
mod postgres;
mod redis;
mod secret;
pub mod stream;
mod task;
mod tls;
mod tool;
mod verify;
pub mod volume;
mod zookeeper;

pub use appbinding::target_environment;
pub use direct::{DirectTarget, dump_stream, load_stream};
pub use duration::go_duration;
pub use error::{ExecError, Result};
pub use secret::secret_data;
pub use task::{DriverKind, ResolvedTask, TaskKind, resolve_tasks};
pub use verify::{Check, Found, VerificationReport, run_queries, run_queries_at};
