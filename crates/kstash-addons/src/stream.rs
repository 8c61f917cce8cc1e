//! The stream-driver seam: a driver produces one byte stream for a backup (a database dump,
//! stored as one file, e.g. `dumpfile.sql`) and consumes it on restore. Backups read the stream
//! once and fan it out to every repository of the session; restores dump the file out of the
//! engine straight into the consumer. Nothing is staged on disk.

use std::io::{Read, Write};
use std::sync::Arc;

use kstash_api::client::Resources;
use kstash_api::common::TypedObjectReference;
use kstash_repo::Repository as EngineRepo;
use kstash_repo::backup_stream::{StreamBackupOptions, StreamBackupSummary, backup_stream_to_many};
use kstash_repo::dump::{DumpOptions, dump_file_with, find_node};
use kstash_repo::lock::{LockOptions, shared_and_fresh};
use kstash_repo::progress::Progress;
use kstash_repo::tree::NodeType;
use kstash_storage::LocalMode;

use crate::appbinding::{self, Connection};
use crate::elasticsearch::{self, Elasticsearch};
use crate::error::{ExecError, Result};
use crate::mysql::{self, MySql};
use crate::postgres::{self, Postgres};
use crate::redis::{self, Redis};
use crate::task::{DriverKind, ResolvedTask};
use crate::tool::{Consumer, Producer};
use crate::zookeeper::{self, ZooKeeper};

/// The producing end of a backup stream: read it to its end, then [`Source::finish`] judges
/// it (a dump tool's exit status, a native export's result).
pub trait Source: Read + Send {
    /// The bytes produced, or the producer's failure.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// The consuming end of a restore stream: write the stream into it, then [`Sink::finish`]
/// closes it and judges the consumer.
pub trait Sink: Write + Send {
    /// The bytes fed, or the consumer's failure.
    fn finish(self: Box<Self>) -> Result<u64>;
}

impl Source for Producer {
    fn finish(self: Box<Self>) -> Result<u64> {
        Producer::finish(*self)
    }
}

impl Sink for Consumer {
    fn finish(self: Box<Self>) -> Result<u64> {
        Consumer::finish(*self)
    }
}

/// A driver whose data is one byte stream.
pub trait StreamDriver: Send + Sync {
    /// The file name of the stream inside the restic snapshot.
    fn file_name(&self) -> &str;
    /// Wait for the target and start producing the stream.
    fn produce(&self) -> Result<Box<dyn Source>>;
    /// Wait for the target and start what the restored stream is written into.
    fn consume(&self) -> Result<Box<dyn Sink>>;
    /// Restore a snapshot whose path is a directory rather than one stream (a KubeStash
    /// snapshot of an interim dump directory), reading its files out of `repo`; returns the
    /// bytes read. `None`: the driver restores only streams.
    fn restore_dir(&self, _repo: &EngineRepo, _dir: &kstash_repo::tree::Node) -> Option<Result<u64>> {
        None
    }
}

/// The stream driver of `task` for the target `target` of `owner` (its namespace defaulting to
/// `namespace`); `None` when the task's driver is not a stream driver.
pub fn driver_for(
    client: &dyn Resources,
    task: &ResolvedTask,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
) -> Result<Option<Box<dyn StreamDriver>>> {
    if matches!(task.driver, DriverKind::Volume | DriverKind::Manifest) {
        return Ok(None);
    }
    task.check_required()?;
    let conn = target_connection(client, task.driver, target, namespace, owner, mode)?;
    driver_with(conn, task)
}

/// How `driver` reaches the AppBinding `target` of `owner`: the Secret keys it reads the
/// credentials from, and whether it may connect without any. The one way every database driver
/// (stream or verification) connects from an AppBinding.
pub(crate) fn target_connection(
    client: &dyn Resources,
    driver: DriverKind,
    target: Option<&TypedObjectReference>,
    namespace: &str,
    owner: &str,
    mode: LocalMode,
) -> Result<Connection> {
    // (user keys, password keys, whether the target may run without credentials)
    let (user_keys, password_keys, optional_auth) = match driver {
        DriverKind::Volume | DriverKind::Manifest => {
            return Err(ExecError::invalid(
                owner,
                "a volume or manifest target has no database connection",
            ));
        }
        DriverKind::Elasticsearch => (elasticsearch::USER_KEYS, elasticsearch::PASSWORD_KEYS, false),
        DriverKind::Postgres => (postgres::USER_KEYS, postgres::PASSWORD_KEYS, false),
        DriverKind::MySql => (mysql::USER_KEYS, mysql::PASSWORD_KEYS, false),
        DriverKind::Redis => (redis::USER_KEYS, redis::PASSWORD_KEYS, true),
        DriverKind::ZooKeeper => (zookeeper::USER_KEYS, zookeeper::PASSWORD_KEYS, true),
    };
    let connect = if optional_auth {
        appbinding::connection_optional_auth
    } else {
        appbinding::connection
    };
    connect(client, target, namespace, owner, mode, user_keys, password_keys)
}

/// The stream driver of `task` for the connection `conn`; `None` for the volume driver.
pub(crate) fn driver_with(conn: Connection, task: &ResolvedTask) -> Result<Option<Box<dyn StreamDriver>>> {
    Ok(Some(match task.driver {
        DriverKind::Volume | DriverKind::Manifest => return Ok(None),
        DriverKind::Elasticsearch => Box::new(Elasticsearch::new(conn, task.clone())),
        DriverKind::Postgres => Box::new(Postgres::new(conn, task.clone())?),
        DriverKind::MySql => Box::new(MySql::new(conn, task.clone())?),
        DriverKind::Redis => Box::new(Redis::new(conn, task.clone())),
        DriverKind::ZooKeeper => Box::new(ZooKeeper::new(conn, task.clone())),
    }))
}

/// How a stream backup is written.
pub struct StreamSpec<'a> {
    pub tags: &'a [String],
    pub hostname: &'a str,
    /// How to lock each repository.
    pub lock: LockOptions,
}

/// Run the producer once and back its stream up into every repository of `repos`, counting the
/// bytes read in `progress` (one file of unknown size). The outer error is the producer's
/// failure (then no repository got a snapshot); otherwise one result per repository.
pub fn backup_to_many(
    driver: &dyn StreamDriver,
    repos: &[&EngineRepo],
    spec: &StreamSpec<'_>,
    progress: Arc<Progress>,
) -> Result<Vec<kstash_repo::Result<StreamBackupSummary>>> {
    let mut producer = driver.produce()?;
    progress.set_totals(0, 1);
    let options = StreamBackupOptions {
        tags: spec.tags.to_vec(),
        hostname: Some(spec.hostname.to_string()),
        lock: Some(spec.lock.clone()),
        progress: Some(Arc::clone(&progress)),
        ..StreamBackupOptions::named(driver.file_name())
    };
    let results = backup_stream_to_many(repos, &mut producer, &options);
    progress.add_item();
    // The tool's own verdict comes first: a failed dump explains the failed backups.
    let bytes = producer.finish()?;
    let results = results.map_err(|e| ExecError::invalid("stream backup", e.to_string()))?;
    tracing::info!(bytes, repositories = repos.len(), "stream backed up");
    Ok(results)
}

/// Write the file `path` of restic snapshot `id` of `repo` into the driver's consumer,
/// counting the bytes written in `progress`. Returns the bytes restored.
pub fn restore_from(
    driver: &dyn StreamDriver,
    repo: &EngineRepo,
    id: &str,
    path: &str,
    lock: &LockOptions,
    progress: &Progress,
) -> Result<u64> {
    let repo_err = |e: kstash_repo::Error| ExecError::Repo {
        repo: repo.location(),
        source: Box::new(e),
    };
    {
        // A directory (KubeStash's interim dump directory) goes to the driver's own restore.
        let _lock = shared_and_fresh(repo, Some(lock)).map_err(repo_err)?;
        let sn = repo.find_snapshot(id).map_err(repo_err)?;
        let node = find_node(repo, &sn, path).map_err(repo_err)?;
        if node.node_type == NodeType::Dir {
            return driver.restore_dir(repo, &node).unwrap_or_else(|| {
                Err(ExecError::invalid(
                    format!("restic snapshot {id}"),
                    format!("{path} is a directory, but this driver restores one file (a stream)"),
                ))
            });
        }
        progress.set_totals(node.size, 1);
    }
    let mut consumer = driver.consume()?;
    let options = DumpOptions {
        lock: Some(lock.clone()),
        ..DumpOptions::default()
    };
    let counted = Counted {
        inner: &mut consumer,
        progress,
    };
    let dumped = dump_file_with(repo, id, path, counted, &options);
    if dumped.is_ok() {
        progress.add_item();
    }
    // When the consumer stopped (psql hit an error), its message says why the dump broke off.
    let fed = consumer.finish()?;
    let dumped = dumped.map_err(|e| ExecError::Repo {
        repo: repo.location(),
        source: Box::new(e),
    })?;
    tracing::info!(bytes = dumped, fed, "stream restored");
    Ok(dumped)
}

/// A writer that counts what passes through it as progress.
struct Counted<'a, W: Write + ?Sized> {
    inner: &'a mut W,
    progress: &'a Progress,
}

impl<W: Write + ?Sized> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
