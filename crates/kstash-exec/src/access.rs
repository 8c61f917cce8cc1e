//! Access to a Repository's data for the CLI (`kstash unlock`, `password …`, `download`): the
//! component repositories of a Repository with the storage to reach them and the password to
//! open them, and the download of a Snapshot's components into a local directory, as KubeStash's
//! `kubectl kubestash download` does (`<destination>/<snapshot>/<component>/<original paths>`).

use std::path::{Path, PathBuf};

use kstash_api::client::{Resources, ResourcesExt};
use kstash_api::resolve;
use kstash_api::storage::{Repository, Snapshot};
use kstash_repo::Repository as EngineRepo;
use kstash_storage::layout::{DATA_DIR, DATA_VERSION, component_path};
use kstash_storage::{Location, ObjectStore, StorageConfig};

use crate::ExecOptions;
use crate::refs;
use crate::{ExecError, Result};
use kstash_addons::volume::restore_snapshot;

/// One component repository of a Repository, with what it takes to open it.
#[derive(Clone)]
pub struct ComponentRepo {
    /// Its path inside the repository directory (`repository/v1/<session>/<component>`).
    pub path: String,
    /// Where it is.
    pub config: StorageConfig,
    password: String,
    password_from: String,
}

impl std::fmt::Debug for ComponentRepo {
    // Not derived: the config and password are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentRepo")
            .field("path", &self.path)
            .field("location", &self.config.display())
            .finish_non_exhaustive()
    }
}

impl ComponentRepo {
    /// The encryption password of the Repository.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The repository location, for messages.
    pub fn location(&self) -> String {
        self.config.display()
    }

    /// Open the restic repository (a wrong password says which Secret it came from).
    pub fn open(&self) -> Result<EngineRepo> {
        refs::open_repository(&self.config, &self.password, &self.password_from)
    }
}

/// The component repositories of `repo`: those in `status.componentPaths`, or when it lists
/// none, those found in the storage (every `repository/v1/<session>/<component>` holding a
/// restic `config`).
pub fn component_repositories(
    client: &dyn Resources,
    repo: &Repository,
    opts: &ExecOptions,
) -> Result<Vec<ComponentRepo>> {
    let resolved = resolve::repository(client, repo.clone())?;
    let repo_object = resolved.describe();
    let password = resolve::password(client, &resolved.password)?;
    let password_from = resolved.password.to_string();
    let layout = refs::repository_layout(client, &resolved, opts.local_mode)?;
    let mut paths: Vec<String> = repo
        .status
        .as_ref()
        .map(|s| s.component_paths.clone())
        .unwrap_or_default();
    if paths.is_empty() {
        paths = discover_components(layout.config(), &repo_object, &resolved.directory)?;
    }
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|path| {
            let config = refs::component_config(&layout, &repo_object, &resolved.directory, &path)?;
            Ok(ComponentRepo {
                path,
                config,
                password: password.clone(),
                password_from: password_from.clone(),
            })
        })
        .collect()
}

/// Component paths found in the storage under `<repo_path>/repository/v1/`.
fn discover_components(root: &StorageConfig, repo_object: &str, repo_path: &str) -> Result<Vec<String>> {
    if let Location::Rest(_) = root.location {
        return Err(ExecError::invalid(
            repo_object,
            "status.componentPaths is empty and a restic REST server cannot be listed; name the component paths",
        ));
    }
    let dir = refs::repo_dir(repo_object, repo_path)?;
    let prefix = format!("{dir}/{DATA_DIR}/{DATA_VERSION}/");
    let storage_err = |source| ExecError::storage(repo_object, source);
    let store = ObjectStore::open(root).map_err(storage_err)?;
    let mut out: Vec<String> = store
        .list(&prefix)
        .map_err(storage_err)?
        .into_iter()
        .filter_map(|e| {
            let rel = e.path.strip_prefix(&prefix)?;
            match rel.split('/').collect::<Vec<_>>().as_slice() {
                [session, component, "config"] => Some(component_path(session, component)),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Restore `components` (empty: every component) of Snapshot `namespace/snapshot_name` into
/// `<destination>/<snapshot>/<component>/`, each restic snapshot of a component at its original
/// absolute path below that directory.
pub fn download_snapshot(
    client: &dyn Resources,
    namespace: &str,
    snapshot_name: &str,
    components: &[String],
    destination: &Path,
    opts: &ExecOptions,
) -> Result<()> {
    let _span = tracing::info_span!("download", namespace, snapshot = snapshot_name).entered();
    let snap: Snapshot = client.must_get(namespace, snapshot_name)?;
    let snap_object = format!("Snapshot {namespace}/{snapshot_name}");
    let repo = resolve::repository_named(client, namespace, &snap.spec.repository)?;
    let repo_object = repo.describe();
    let password = resolve::password(client, &repo.password)?;
    let password_from = repo.password.to_string();
    let layout = refs::repository_layout(client, &repo, opts.local_mode)?;
    let all = snap.status.as_ref().map(|s| &s.components);
    let wanted: Vec<String> = if components.is_empty() {
        all.map(|c| c.keys().cloned().collect()).unwrap_or_default()
    } else {
        components.to_vec()
    };
    if wanted.is_empty() {
        return Err(ExecError::invalid(&snap_object, "has no components to download"));
    }
    for name in &wanted {
        let Some(comp) = all.and_then(|c| c.get(name)) else {
            return Err(ExecError::invalid(
                &snap_object,
                format!("has no component {name}"),
            ));
        };
        let ids = comp.restic_snapshot_ids();
        if ids.is_empty() {
            return Err(ExecError::invalid(
                &snap_object,
                format!("component {name} records no restic snapshot (resticStats[].summary.id)"),
            ));
        }
        let path = if comp.path.is_empty() {
            component_path(&snap.spec.session, name)
        } else {
            comp.path.clone()
        };
        let config = refs::component_config(&layout, &repo_object, &repo.directory, &path)?;
        let engine = refs::open_repository(&config, &password, &password_from)?;
        let target: PathBuf = destination.join(snapshot_name).join(name);
        for id in &ids {
            let lock = opts.lock_options(&format!("downloading snapshot {id} of component {name}"))?;
            let t = restore_snapshot(&engine, id, &target, &[], &[], &lock, None)?;
            tracing::info!(component = %name, snapshot = %id, target = %target.display(), files = t.files, "downloaded");
        }
    }
    Ok(())
}
