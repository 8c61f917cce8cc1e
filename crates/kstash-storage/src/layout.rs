//! The KubeStash bucket layout: `metadata.yaml` at the storage root, each repository's
//! `repository.yaml` and `snapshots/<name>.yaml`, where its per-component restic repositories live
//! (`repository/v1/<session>/<component>`), and wiping and sizing all of that.
//!
//! ```text
//! <prefix>/metadata.yaml                                     BackendMeta (initialisation)
//! <prefix>/<repo.path>/repository.yaml                       the Repository resource
//! <prefix>/<repo.path>/snapshots/<snapshot-name>.yaml        each Snapshot resource, once final
//! <prefix>/<repo.path>/repository/v1/<session>/<component>/  one restic repository per component
//! ```
//!
//! A repository path may contain slashes (`team-a/postgres`); a leading `/` (KubeStash's own
//! examples write `directory: /postgres`) means the same as none: paths are always inside the
//! storage.

use std::path::Path;

use bytes::Bytes;
use kstash_api::common::Timestamp;
use kstash_api::storage::{BackendMeta, Repository, RepositoryInfo, Snapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Location, StorageConfig};
use crate::error::{RemoteKind, Result, StorageError};
use crate::object::{ObjectEntry, ObjectStore};

/// The `BackendMeta` object at the storage root.
pub const METADATA_FILE: &str = "metadata.yaml";
/// The object written, read back and deleted to prove write access (as `kubectl kubestash debug`).
pub const PROBE_FILE: &str = "debug_metadata.yaml";
/// The Repository resource inside a repository directory.
pub const REPOSITORY_FILE: &str = "repository.yaml";
/// The directory of Snapshot resources inside a repository directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// The directory of the restic repositories inside a repository directory.
pub const DATA_DIR: &str = "repository";
/// The data layout version (`Snapshot.spec.version`).
pub const DATA_VERSION: &str = "v1";
/// `apiVersion` of `metadata.yaml`.
pub const BACKEND_META_API_VERSION: &str = "config.kubestash.com/v1alpha1";
/// `kind` of `metadata.yaml`.
pub const BACKEND_META_KIND: &str = "BackendMeta";

/// The KubeStash layout of one storage (a BackupStorage's bucket and prefix, or directory).
///
/// A restic REST server can only hold restic repository files: on one, every operation on the
/// KubeStash files (`metadata.yaml`, `repository.yaml`, snapshots, wiping, sizing) fails with
/// [`StorageError::Unsupported`], while [`StorageLayout::component_config`] still gives the
/// per-component repositories.
#[derive(Clone)]
pub struct StorageLayout {
    config: StorageConfig,
    display: String,
    store: Option<ObjectStore>,
}

impl std::fmt::Debug for StorageLayout {
    // Not derived: the config holds credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageLayout")
            .field("storage", &self.display)
            .field("mirror", &self.store.is_some())
            .finish()
    }
}

/// What [`StorageLayout::initialize`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// `metadata.yaml` was absent and has been written.
    Created,
    /// `metadata.yaml` was already there and was left as it was.
    AlreadyInitialized,
}

impl InitOutcome {
    /// Whether this call wrote `metadata.yaml`.
    pub fn created(self) -> bool {
        self == InitOutcome::Created
    }
}

/// A repository found in the storage by [`StorageLayout::list_repositories`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRepository {
    /// Its directory relative to the storage root, where `repository.yaml` was found (no leading
    /// or trailing `/`). This, not `repository.spec.path`, is where its data is.
    pub path: String,
    /// The Repository resource as stored.
    pub repository: Repository,
    /// Names of the Snapshot resources stored under `snapshots/` (file names without `.yaml`),
    /// sorted.
    pub snapshots: Vec<String>,
    /// Bytes of restic data under `repository/` (all components), from the same listing.
    pub size: u64,
}

/// A stored resource that could not be parsed (it does not hide the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The object, relative to the storage root.
    pub path: String,
    /// Why it could not be read.
    pub error: String,
}

/// The result of [`StorageLayout::list_repositories`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedRepositories {
    /// Every readable repository, sorted by path.
    pub repositories: Vec<StoredRepository>,
    /// Every `repository.yaml` that did not parse as a Repository.
    pub unreadable: Vec<Unreadable>,
}

/// The result of [`StorageLayout::list_snapshots`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedSnapshots {
    /// Every readable Snapshot, sorted by name.
    pub snapshots: Vec<Snapshot>,
    /// Every `snapshots/*.yaml` that did not parse as a Snapshot.
    pub unreadable: Vec<Unreadable>,
}

/// Drop from a resource's `metadata` what the API server assigns and what only makes sense in the
/// cluster the resource came from (a macro: the metadata type's crate is not a dependency).
macro_rules! clean_meta {
    ($meta:expr) => {{
        let meta = &mut $meta;
        meta.uid = None;
        meta.resource_version = None;
        meta.generation = None;
        meta.managed_fields = None;
        meta.owner_references = None;
        meta.self_link = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
    }};
}

/// `repository/v1/<session>/<component>`: a component's repository relative to its repository
/// directory (what KubeStash records in `Repository.status.componentPaths` and
/// `Snapshot.status.components[].path`).
pub fn component_path(session: &str, component: &str) -> String {
    format!("{DATA_DIR}/{DATA_VERSION}/{session}/{component}")
}

impl StorageLayout {
    /// The layout of the storage at `config` (the BackupStorage root). Nothing is sent yet.
    pub fn new(config: StorageConfig) -> Result<StorageLayout> {
        let display = config.display();
        let store = match &config.location {
            Location::Rest(_) => None,
            _ => Some(ObjectStore::open(&config)?),
        };
        Ok(StorageLayout {
            config,
            display,
            store,
        })
    }

    /// Whether the KubeStash files (metadata, Repository and Snapshot copies) can be kept in this
    /// storage: false for a restic REST server.
    pub fn supports_mirror(&self) -> bool {
        self.store.is_some()
    }

    /// The storage root's config.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The storage as a URL, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    fn store(&self, what: &str) -> Result<&ObjectStore> {
        self.store.as_ref().ok_or_else(|| StorageError::Unsupported {
            storage: self.display.clone(),
            what: format!(
                "{what} (a restic REST server only stores restic repository files; use an object \
                 storage or a directory for a KubeStash BackupStorage)"
            ),
        })
    }

    /// Prove the storage usable and write `metadata.yaml` if it is absent.
    ///
    /// The bucket is listed (a missing bucket, refused credentials or an unreachable endpoint fail
    /// here with that [`RemoteKind`]), then `debug_metadata.yaml` is written, read back, compared
    /// and deleted. An existing `metadata.yaml` is left untouched, so its `creationTimestamp`
    /// stays that of the first initialisation.
    pub fn initialize(&self, operator_version: &str) -> Result<InitOutcome> {
        let store = self.store("initialising the storage (metadata.yaml)")?;
        store.probe()?;
        self.write_probe(store)?;
        if store.exists(METADATA_FILE)? {
            tracing::debug!(storage = %self.display, "metadata.yaml present; storage already initialised");
            return Ok(InitOutcome::AlreadyInitialized);
        }
        let meta = BackendMeta {
            api_version: BACKEND_META_API_VERSION.into(),
            kind: BACKEND_META_KIND.into(),
            creation_timestamp: Some(now()),
            operator_version: operator_version.into(),
            repositories: Vec::new(),
        };
        self.write_yaml(store, METADATA_FILE, &meta)?;
        tracing::info!(storage = %self.display, "storage initialised (metadata.yaml written)");
        Ok(InitOutcome::Created)
    }

    fn write_probe(&self, store: &ObjectStore) -> Result<()> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let content = format!(
            "# write probe of kstash; deleted right after it is read back\nwrittenBy: kstash\n\
             nonce: \"{stamp}-{}\"\n",
            std::process::id()
        );
        store.write(PROBE_FILE, Bytes::from(content.clone()))?;
        let back = store.read(PROBE_FILE)?;
        if back != content.as_bytes() {
            return Err(StorageError::Remote {
                storage: self.display.clone(),
                op: "read",
                object: PROBE_FILE.into(),
                kind: RemoteKind::Other,
                detail: format!(
                    "read back {} bytes that differ from the {} bytes written (another writer, or a \
                     storage that does not keep what it is sent)",
                    back.len(),
                    content.len()
                ),
            });
        }
        match store.delete(PROBE_FILE) {
            Err(e) if e.remote_kind() == Some(RemoteKind::NotFound) => Ok(()),
            r => r,
        }
    }

    /// `metadata.yaml`, or `None` if the storage was never initialised.
    pub fn read_metadata(&self) -> Result<Option<BackendMeta>> {
        let store = self.store("reading metadata.yaml")?;
        let Some(data) = read_opt(store, METADATA_FILE)? else {
            return Ok(None);
        };
        serde_yaml_ng::from_slice(&data)
            .map(Some)
            .map_err(|e| self.yaml_error(METADATA_FILE, e))
    }

    /// Rewrite `metadata.yaml` with `repos` as its repository list, keeping its
    /// `creationTimestamp` and `operatorVersion` (a missing file is created).
    pub fn update_metadata_repositories(&self, repos: Vec<RepositoryInfo>) -> Result<()> {
        let store = self.store("writing metadata.yaml")?;
        let mut meta = self.read_metadata()?.unwrap_or_else(|| BackendMeta {
            creation_timestamp: Some(now()),
            ..Default::default()
        });
        meta.api_version = BACKEND_META_API_VERSION.into();
        meta.kind = BACKEND_META_KIND.into();
        meta.repositories = repos;
        self.write_yaml(store, METADATA_FILE, &meta)
    }

    /// Store `repo` as `<spec.path>/repository.yaml`. Server-assigned metadata (uid,
    /// resourceVersion, generation, managedFields, ownerReferences, deletion marks) is left out:
    /// the copy is for re-creating the resource in any cluster.
    pub fn write_repository(&self, repo: &Repository) -> Result<()> {
        let store = self.store("storing repository.yaml")?;
        let dir = self.repo_dir(&repo.spec.path)?;
        let mut copy = repo.clone();
        clean_meta!(copy.metadata);
        self.write_yaml(store, &format!("{dir}/{REPOSITORY_FILE}"), &copy)
    }

    /// The Repository stored at `<path>/repository.yaml`, `None` if there is none.
    pub fn read_repository(&self, path: &str) -> Result<Option<Repository>> {
        let store = self.store("reading repository.yaml")?;
        let object = format!("{}/{REPOSITORY_FILE}", self.repo_dir(path)?);
        let Some(data) = read_opt(store, &object)? else {
            return Ok(None);
        };
        parse_resource(&data, "Repository", |r: &Repository| r.metadata.name.is_some())
            .map(Some)
            .map_err(|e| self.yaml_error(&object, e))
    }

    /// Every repository in the storage: each `repository.yaml` at any depth (except inside restic
    /// data, `…/repository/v1/…`), with its snapshot names and data size. This is how a new
    /// installation finds the repositories of an existing storage. One listing of the whole
    /// storage, then one read per repository; files that do not parse are returned in
    /// `unreadable` rather than failing the rest.
    pub fn list_repositories(&self) -> Result<ListedRepositories> {
        let store = self.store("listing repository.yaml files")?;
        let mut entries = store.list("")?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut dirs: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                let dir = e.path.strip_suffix(REPOSITORY_FILE)?.strip_suffix('/')?;
                (!dir.is_empty() && !in_restic_data(dir)).then(|| dir.to_string())
            })
            .collect();
        // By directory, not by object path (`a/b-2/repository.yaml` sorts before `a/b/…`).
        dirs.sort();
        let mut out = ListedRepositories::default();
        for dir in dirs {
            let object = format!("{dir}/{REPOSITORY_FILE}");
            let Some(data) = read_opt(store, &object)? else {
                continue; // deleted since the listing
            };
            match parse_resource(&data, "Repository", |r: &Repository| r.metadata.name.is_some()) {
                Ok(repository) => {
                    let snap_prefix = format!("{dir}/{SNAPSHOTS_DIR}/");
                    let snapshots = under(&entries, &snap_prefix)
                        .iter()
                        .filter_map(|e| snapshot_name(&e.path[snap_prefix.len()..]))
                        .map(str::to_string)
                        .collect();
                    let size = under(&entries, &format!("{dir}/{DATA_DIR}/"))
                        .iter()
                        .map(|e| e.size)
                        .sum();
                    out.repositories.push(StoredRepository {
                        path: dir,
                        repository,
                        snapshots,
                        size,
                    });
                }
                Err(e) => {
                    tracing::warn!(storage = %self.display, object = %object, error = %e, "unreadable repository.yaml");
                    out.unreadable.push(Unreadable {
                        path: object,
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Store `snapshot` as `<repo_path>/snapshots/<metadata.name>.yaml` (server-assigned
    /// metadata left out as for [`StorageLayout::write_repository`]).
    pub fn write_snapshot(&self, repo_path: &str, snapshot: &Snapshot) -> Result<()> {
        let store = self.store("storing snapshot metadata")?;
        let dir = self.repo_dir(repo_path)?;
        let name = snapshot.metadata.name.as_deref().unwrap_or_default();
        self.segment("metadata.name", "the Snapshot's name", name)?;
        let mut copy = snapshot.clone();
        clean_meta!(copy.metadata);
        self.write_yaml(store, &format!("{dir}/{SNAPSHOTS_DIR}/{name}.yaml"), &copy)
    }

    /// The Snapshots stored under `<repo_path>/snapshots/`, sorted by name; files that do not
    /// parse are returned in `unreadable`.
    pub fn list_snapshots(&self, repo_path: &str) -> Result<ListedSnapshots> {
        let store = self.store("listing snapshot metadata")?;
        let prefix = format!("{}/{SNAPSHOTS_DIR}/", self.repo_dir(repo_path)?);
        let mut entries = store.list(&prefix)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out = ListedSnapshots::default();
        for e in entries {
            let Some(rel) = e.path.strip_prefix(&prefix) else {
                continue;
            };
            if snapshot_name(rel).is_none() {
                continue;
            }
            let Some(data) = read_opt(store, &e.path)? else {
                continue;
            };
            match parse_resource(&data, "Snapshot", |s: &Snapshot| s.metadata.name.is_some()) {
                Ok(s) => out.snapshots.push(s),
                Err(err) => {
                    tracing::warn!(storage = %self.display, object = %e.path, error = %err, "unreadable snapshot");
                    out.unreadable.push(Unreadable {
                        path: e.path,
                        error: err.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Delete `<repo_path>/snapshots/<name>.yaml`; false if it was not there.
    pub fn delete_snapshot(&self, repo_path: &str, name: &str) -> Result<bool> {
        let store = self.store("deleting snapshot metadata")?;
        let dir = self.repo_dir(repo_path)?;
        self.segment("metadata.name", "the Snapshot's name", name)?;
        match store.delete(&format!("{dir}/{SNAPSHOTS_DIR}/{name}.yaml")) {
            Ok(()) => Ok(true),
            Err(e) if e.remote_kind() == Some(RemoteKind::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The storage of the restic repository of `component` of `session` in the repository at
    /// `repo_path`: `<prefix>/<repo_path>/repository/v1/<session>/<component>` (for
    /// [`crate::open_backend`]). Works on every kind of storage, REST servers included.
    pub fn component_config(&self, repo_path: &str, session: &str, component: &str) -> Result<StorageConfig> {
        let dir = self.repo_dir(repo_path)?;
        self.segment(
            "session",
            "the backup session (BackupConfiguration session) name",
            session,
        )?;
        self.segment("component", "the component name (e.g. dump, manifest)", component)?;
        Ok(self
            .config
            .join(&format!("{dir}/{}", component_path(session, component))))
    }

    /// Delete everything under `<repo_path>/` (repository.yaml, snapshots, every component
    /// repository): a Repository's `WipeOut`. Returns how many objects were deleted. A sibling
    /// directory that merely shares the name's beginning (`demo-2` beside `demo`) is untouched.
    pub fn wipe_repository(&self, repo_path: &str) -> Result<u64> {
        let store = self.store("wiping a repository")?;
        let dir = self.repo_dir(repo_path)?;
        let n = store.delete_all(&format!("{dir}/"))?;
        if let Location::Local { root } = &self.config.location {
            remove_empty_dirs(&root.join(&dir), true);
        }
        tracing::info!(storage = %self.display, path = %dir, objects = n, "repository wiped");
        Ok(n)
    }

    /// Delete everything under the storage prefix, `metadata.yaml` included: a BackupStorage's
    /// `WipeOut`. Returns how many objects were deleted.
    pub fn wipe_out(&self) -> Result<u64> {
        let store = self.store("wiping the storage")?;
        let n = store.delete_all("")?;
        if let Location::Local { root } = &self.config.location {
            remove_empty_dirs(root, false);
        }
        tracing::info!(storage = %self.display, objects = n, "storage wiped");
        Ok(n)
    }

    /// Bytes of restic data under `<repo_path>/repository/` (every component), from one listing.
    pub fn repository_size(&self, repo_path: &str) -> Result<u64> {
        let store = self.store("measuring a repository")?;
        let dir = self.repo_dir(repo_path)?;
        Ok(store
            .list(&format!("{dir}/{DATA_DIR}/"))?
            .iter()
            .map(|e| e.size)
            .sum())
    }

    /// A repository path as a directory relative to the storage root: slashes trimmed and
    /// collapsed; empty, `.`/`..` components and URLs refused.
    fn repo_dir(&self, path: &str) -> Result<String> {
        const FIX: &str = "set spec.path to a directory inside the storage, e.g. /demo/postgres";
        let refuse = |reason: String| StorageError::config(&self.display, "spec.path", reason, FIX);
        if path.contains("://") {
            return Err(refuse(format!(
                "'{path}' is a URL, not a directory inside the storage"
            )));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return Err(refuse(format!(
                "'{path}' does not name a directory below the storage root"
            )));
        }
        if let Some(bad) = parts.iter().find(|p| **p == ".." || **p == ".") {
            return Err(refuse(format!("'{path}' must not contain '{bad}'")));
        }
        if parts.iter().any(|p| p.chars().any(char::is_control)) {
            return Err(refuse(format!("{path:?} contains control characters")));
        }
        Ok(parts.join("/"))
    }

    /// One path component (a session, component or snapshot name).
    fn segment(&self, field: &str, what: &str, name: &str) -> Result<()> {
        let reason = if name.is_empty() {
            "empty".to_string()
        } else if name.contains('/') || name == "." || name == ".." || name.chars().any(char::is_control) {
            format!("'{name}' is not a single path component")
        } else {
            return Ok(());
        };
        Err(StorageError::config(
            &self.display,
            field,
            reason,
            format!("set {what} to a Kubernetes object name"),
        ))
    }

    fn write_yaml<T: Serialize>(&self, store: &ObjectStore, object: &str, value: &T) -> Result<()> {
        let text = serde_yaml_ng::to_string(value).map_err(|e| self.yaml_error(object, e))?;
        store.write(object, Bytes::from(text))
    }

    fn yaml_error(&self, object: &str, source: serde_yaml_ng::Error) -> StorageError {
        StorageError::Yaml {
            object: format!("{}/{object}", self.display),
            source,
        }
    }
}

/// The current time as a Kubernetes timestamp.
fn now() -> Timestamp {
    Timestamp::from(jiff::Timestamp::now())
}

/// An object's content, `None` if it does not exist.
fn read_opt(store: &ObjectStore, object: &str) -> Result<Option<Bytes>> {
    match store.read(object) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.remote_kind() == Some(RemoteKind::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parse a stored resource, refusing another `kind` and a resource `valid` rejects (no name).
fn parse_resource<T: DeserializeOwned>(
    data: &[u8],
    kind: &str,
    valid: impl Fn(&T) -> bool,
) -> std::result::Result<T, serde_yaml_ng::Error> {
    use serde::de::Error as _;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(data)?;
    if let Some(k) = value.get("kind").and_then(|k| k.as_str())
        && k != kind
    {
        return Err(serde_yaml_ng::Error::custom(format!(
            "kind is {k}, expected {kind}"
        )));
    }
    let t: T = serde_yaml_ng::from_value(value)?;
    if !valid(&t) {
        return Err(serde_yaml_ng::Error::custom(format!(
            "the {kind} has no metadata.name"
        )));
    }
    Ok(t)
}

/// The snapshot name of a file directly inside `snapshots/` (`<name>.yaml`).
fn snapshot_name(rel: &str) -> Option<&str> {
    let name = rel.strip_suffix(".yaml")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Whether a directory lies inside restic data (`…/repository/v1/…`), where no repository.yaml
/// of the layout can be.
fn in_restic_data(dir: &str) -> bool {
    let parts: Vec<&str> = dir.split('/').collect();
    parts.windows(2).any(|w| w[0] == DATA_DIR && w[1] == DATA_VERSION)
}

/// The entries of a path-sorted listing that start with `prefix`.
fn under<'a>(sorted: &'a [ObjectEntry], prefix: &str) -> &'a [ObjectEntry] {
    let start = sorted.partition_point(|e| e.path.as_str() < prefix);
    let len = sorted[start..].partition_point(|e| e.path.starts_with(prefix));
    &sorted[start..start + len]
}

/// Remove the empty directories below `dir` (a local storage keeps them after its objects are
/// deleted), and `dir` itself if `including_self`. Best effort: a directory that cannot be
/// removed stays.
fn remove_empty_dirs(dir: &Path, including_self: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path(), true);
        }
    }
    if including_self && let Err(e) = std::fs::remove_dir(dir) {
        tracing::debug!(dir = %dir.display(), error = %e, "directory left in place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kstash_api::storage::{RepositorySpec, SnapshotSpec};

    fn local() -> (tempfile::TempDir, StorageLayout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = StorageLayout::new(StorageConfig::new(Location::Local {
            root: dir.path().into(),
        }))
        .unwrap();
        (dir, layout)
    }

    fn repo(name: &str, path: &str) -> Repository {
        let mut r = Repository::new(
            name,
            RepositorySpec {
                path: path.into(),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("demo".into());
        r
    }

    fn snapshot(name: &str) -> Snapshot {
        let mut s = Snapshot::new(
            name,
            SnapshotSpec {
                repository: "pg".into(),
                session: "frequent".into(),
                version: DATA_VERSION.into(),
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("demo".into());
        s
    }

    fn files(root: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn initialize_twice_keeps_the_first_metadata() {
        let (dir, layout) = local();
        assert!(layout.supports_mirror());
        assert_eq!(layout.read_metadata().unwrap(), None);
        assert_eq!(layout.initialize("v0.1.0").unwrap(), InitOutcome::Created);
        let first = layout.read_metadata().unwrap().unwrap();
        assert_eq!(first.api_version, BACKEND_META_API_VERSION);
        assert_eq!(first.kind, BACKEND_META_KIND);
        assert_eq!(first.operator_version, "v0.1.0");
        assert!(first.creation_timestamp.is_some());
        assert!(
            !dir.path().join(PROBE_FILE).exists(),
            "the write probe is deleted"
        );

        // An older file, as another installation left it: the second initialisation keeps it.
        let old = BackendMeta {
            creation_timestamp: Some(Timestamp::from(
                jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            )),
            ..first
        };
        std::fs::write(
            dir.path().join(METADATA_FILE),
            serde_yaml_ng::to_string(&old).unwrap(),
        )
        .unwrap();
        let outcome = layout.initialize("v0.2.0").unwrap();
        assert_eq!(outcome, InitOutcome::AlreadyInitialized);
        assert!(!outcome.created());
        assert_eq!(layout.read_metadata().unwrap().unwrap(), old);
        let text = std::fs::read_to_string(dir.path().join(METADATA_FILE)).unwrap();
        assert!(
            text.contains("apiVersion: config.kubestash.com/v1alpha1")
                && text.contains("kind: BackendMeta")
                && text.contains("creationTimestamp: 2023-11-14T22:13:20Z"),
            "{text}"
        );

        let info = RepositoryInfo {
            name: "pg".into(),
            namespace: "demo".into(),
            path: "team-a/pg".into(),
            synced: Some(true),
            ..Default::default()
        };
        layout.update_metadata_repositories(vec![info.clone()]).unwrap();
        let updated = layout.read_metadata().unwrap().unwrap();
        assert_eq!(updated.creation_timestamp, old.creation_timestamp);
        assert_eq!(updated.operator_version, "v0.1.0");
        assert_eq!(updated.repositories, vec![info]);
    }

    #[test]
    fn repository_and_snapshot_round_trip() {
        let (dir, layout) = local();
        let mut r = repo("pg", "/team-a/postgres/");
        r.metadata.uid = Some("1234".into());
        r.metadata.resource_version = Some("99".into());
        layout.write_repository(&r).unwrap();
        let text = std::fs::read_to_string(dir.path().join("team-a/postgres/repository.yaml")).unwrap();
        assert!(
            text.contains("apiVersion: storage.kubestash.com/v1alpha1") && text.contains("kind: Repository"),
            "{text}"
        );
        assert!(
            !text.contains("1234") && !text.contains("resourceVersion"),
            "{text}"
        );

        let back = layout.read_repository("team-a/postgres").unwrap().unwrap();
        assert_eq!(back.metadata.name.as_deref(), Some("pg"));
        assert_eq!(back.metadata.namespace.as_deref(), Some("demo"));
        assert_eq!(back.spec, r.spec);
        assert_eq!(back.metadata.uid, None);
        assert_eq!(layout.read_repository("team-a/other").unwrap(), None);

        layout
            .write_snapshot("team-a/postgres", &snapshot("pg-frequent-1"))
            .unwrap();
        layout
            .write_snapshot("/team-a/postgres", &snapshot("pg-frequent-2"))
            .unwrap();
        assert!(
            dir.path()
                .join("team-a/postgres/snapshots/pg-frequent-1.yaml")
                .is_file()
        );
        let listed = layout.list_snapshots("team-a/postgres").unwrap();
        assert!(listed.unreadable.is_empty());
        let names: Vec<_> = listed
            .snapshots
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["pg-frequent-1", "pg-frequent-2"]);
        assert_eq!(listed.snapshots[0].spec, snapshot("x").spec);

        assert!(
            layout
                .delete_snapshot("team-a/postgres", "pg-frequent-1")
                .unwrap()
        );
        assert!(
            !layout
                .delete_snapshot("team-a/postgres", "pg-frequent-1")
                .unwrap()
        );
        assert_eq!(
            layout.list_snapshots("team-a/postgres").unwrap().snapshots.len(),
            1
        );
        assert!(layout.list_snapshots("nowhere").unwrap().snapshots.is_empty());

        // A repository.yaml where a snapshot belongs is reported, not returned as a Snapshot.
        std::fs::write(
            dir.path().join("team-a/postgres/snapshots/odd.yaml"),
            std::fs::read(dir.path().join("team-a/postgres/repository.yaml")).unwrap(),
        )
        .unwrap();
        let listed = layout.list_snapshots("team-a/postgres").unwrap();
        assert_eq!(listed.snapshots.len(), 1);
        assert_eq!(listed.unreadable.len(), 1);
        assert!(
            listed.unreadable[0]
                .error
                .contains("kind is Repository, expected Snapshot"),
            "{:?}",
            listed.unreadable
        );

        let mut nameless = snapshot("x");
        nameless.metadata.name = None;
        let e = layout.write_snapshot("team-a/postgres", &nameless).unwrap_err();
        assert!(e.to_string().contains("metadata.name: empty"), "{e}");
    }

    #[test]
    fn listing_finds_nested_repositories_and_reports_a_corrupt_one() {
        let (dir, layout) = local();
        layout.initialize("v1").unwrap();
        layout.write_repository(&repo("a", "alpha")).unwrap();
        layout.write_repository(&repo("pg", "team-a/postgres")).unwrap();
        layout.write_repository(&repo("deep", "x/y/z/w")).unwrap();
        layout
            .write_repository(&repo("pg2", "team-a/postgres-2"))
            .unwrap();
        layout.write_snapshot("team-a/postgres", &snapshot("s1")).unwrap();
        layout.write_snapshot("team-a/postgres", &snapshot("s2")).unwrap();
        let data = dir.path().join("team-a/postgres/repository/v1/frequent/dump");
        std::fs::create_dir_all(data.join("data/ab")).unwrap();
        std::fs::write(data.join("config"), b"0123456789").unwrap();
        std::fs::write(data.join("data/ab/abcdef"), vec![0u8; 90]).unwrap();
        // Not a repository: a repository.yaml inside restic data is never one of ours.
        std::fs::write(data.join("repository.yaml"), b"kind: Repository\n").unwrap();
        std::fs::create_dir_all(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken/repository.yaml"), b"{not: [yaml").unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("empty/repository.yaml"), b"").unwrap();

        let listed = layout.list_repositories().unwrap();
        let paths: Vec<_> = listed.repositories.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["alpha", "team-a/postgres", "team-a/postgres-2", "x/y/z/w"]
        );
        let pg = &listed.repositories[1];
        assert_eq!(pg.repository.metadata.name.as_deref(), Some("pg"));
        assert_eq!(pg.snapshots, ["s1", "s2"]);
        assert_eq!(
            pg.size,
            100 + data.join("repository.yaml").metadata().unwrap().len()
        );
        assert_eq!(listed.repositories[0].size, 0);
        let bad: Vec<_> = listed.unreadable.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(bad, ["broken/repository.yaml", "empty/repository.yaml"]);
        assert!(listed.unreadable.iter().all(|u| !u.error.is_empty()));

        assert_eq!(layout.repository_size("team-a/postgres").unwrap(), pg.size);
        assert_eq!(layout.repository_size("alpha").unwrap(), 0);
    }

    #[test]
    fn component_config_is_the_component_directory() {
        let (dir, layout) = local();
        let c = layout
            .component_config("/team-a/postgres", "frequent", "dump")
            .unwrap();
        assert_eq!(
            c.display(),
            dir.path()
                .join("team-a/postgres/repository/v1/frequent/dump")
                .display()
                .to_string()
        );
        assert_eq!(component_path("frequent", "dump"), "repository/v1/frequent/dump");
        let e = layout.component_config("pg", "frequent", "../dump").unwrap_err();
        assert!(e.to_string().contains("component: '../dump'"), "{e}");
        let e = layout.component_config("pg", "", "dump").unwrap_err();
        assert!(e.to_string().contains("session: empty"), "{e}");

        let s3 = StorageLayout::new(StorageConfig::new(Location::S3(crate::S3Location::new(
            "http://127.0.0.1:9000",
            "bkt",
            "/kubestash/",
            "",
            None,
            false,
            None,
        ))))
        .unwrap();
        assert_eq!(
            s3.component_config("demo/pg", "s", "dump-pod-0")
                .unwrap()
                .display(),
            "s3:http://127.0.0.1:9000/bkt/kubestash/demo/pg/repository/v1/s/dump-pod-0"
        );
    }

    #[test]
    fn rest_storage_has_components_but_no_mirror() {
        let rest = crate::RestLocation::parse("t", "url", "http://127.0.0.1:8000/base").unwrap();
        let layout = StorageLayout::new(StorageConfig::new(Location::Rest(rest))).unwrap();
        assert!(!layout.supports_mirror());
        assert_eq!(
            layout.component_config("pg", "s", "dump").unwrap().display(),
            "rest:http://127.0.0.1:8000/base/pg/repository/v1/s/dump"
        );
        let e = layout.initialize("v1").unwrap_err();
        assert!(matches!(e, StorageError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("metadata.yaml"), "{e}");
        let e = layout.list_repositories().unwrap_err();
        assert!(e.to_string().contains("repository.yaml"), "{e}");
        assert!(matches!(
            layout.wipe_repository("pg").unwrap_err(),
            StorageError::Unsupported { .. }
        ));
    }

    #[test]
    fn wipe_repository_leaves_siblings_sharing_a_prefix() {
        let (dir, layout) = local();
        layout.initialize("v1").unwrap();
        for (name, path) in [("demo", "demo"), ("demo2", "demo-2"), ("nested", "demo/inner")] {
            layout.write_repository(&repo(name, path)).unwrap();
            layout.write_snapshot(path, &snapshot("s")).unwrap();
        }
        let data = dir.path().join("demo/repository/v1/s/dump/data/00");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("0011"), b"pack").unwrap();

        assert_eq!(layout.wipe_repository("/demo/").unwrap(), 5);
        assert_eq!(
            files(dir.path()),
            [
                "demo-2/repository.yaml",
                "demo-2/snapshots/s.yaml",
                "metadata.yaml"
            ]
        );
        assert!(!dir.path().join("demo").exists(), "empty directories go too");
        assert_eq!(layout.wipe_repository("demo").unwrap(), 0);
        assert_eq!(layout.list_repositories().unwrap().repositories.len(), 1);

        assert_eq!(layout.wipe_out().unwrap(), 3);
        assert!(files(dir.path()).is_empty());
        assert!(dir.path().is_dir(), "the storage root itself stays");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(layout.read_metadata().unwrap(), None);
    }

    #[test]
    fn path_arguments_are_validated() {
        let (_dir, layout) = local();
        for (path, reason) in [
            ("", "does not name a directory"),
            ("///", "does not name a directory"),
            ("a/../b", "must not contain '..'"),
            ("../outside", "must not contain '..'"),
            ("./a", "must not contain '.'"),
            ("s3://bucket/x", "is a URL"),
        ] {
            for e in [
                layout.write_repository(&repo("r", path)).unwrap_err(),
                layout.wipe_repository(path).unwrap_err(),
                layout.repository_size(path).unwrap_err(),
                layout.list_snapshots(path).unwrap_err(),
                layout.component_config(path, "s", "c").unwrap_err(),
            ] {
                assert!(matches!(e, StorageError::Config { .. }), "{e}");
                let t = e.to_string();
                assert!(
                    t.contains("spec.path") && t.contains(reason) && t.contains("set spec.path to"),
                    "{path:?}: {t}"
                );
            }
        }
        let e = layout.delete_snapshot("pg", "a/b").unwrap_err();
        assert!(
            e.to_string()
                .contains("metadata.name: 'a/b' is not a single path component"),
            "{e}"
        );
        // Slashes are trimmed and collapsed: these all name the same directory.
        layout.write_repository(&repo("r", "//a//b/")).unwrap();
        assert!(layout.read_repository("a/b").unwrap().is_some());
    }

    #[test]
    fn in_restic_data_and_snapshot_names() {
        assert!(in_restic_data("pg/repository/v1/s/c"));
        assert!(!in_restic_data("pg/repository"));
        assert!(!in_restic_data("repository-v1/x"));
        assert_eq!(snapshot_name("a.yaml"), Some("a"));
        assert_eq!(snapshot_name("a/b.yaml"), None);
        assert_eq!(snapshot_name(".yaml"), None);
        assert_eq!(snapshot_name("a.json"), None);
    }
}
